/// Fuzz target `ws_message`: one text message a WebSocket client sends on `/ws`, through the
/// hub's parser (actors/ws_protocol.hpp, docs/websocket.md "Client messages") and the answer
/// the hub builds from it.
///
/// Invariants: a subscribe/unsubscribe names at least one channel, each once and in canonical
/// form (canonicalising again changes nothing); a ping's timestamp is a number or null; an
/// invalid message carries the error text to send; every answer serialises as JSON.

#include "tests/fuzz/fuzz_target.hpp"

#include "actors/ws_protocol.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <string>
#include <string_view>

namespace {

using si::actors::ws_client_message;

/// The hub's answer to `m` (what on_text sends), serialised.
std::string answer(const ws_client_message& m) {
  switch (m.type) {
    case ws_client_message::kind::subscribe:
    case ws_client_message::kind::unsubscribe:
      return nlohmann::json{
          {"type", "subscription_confirm"},
          {"channels", m.channels},
          {"status", m.type == ws_client_message::kind::subscribe ? "subscribed" : "unsubscribed"}}
          .dump();
    case ws_client_message::kind::ping:
      return nlohmann::json{{"type", "pong"}, {"timestamp", m.timestamp}}.dump();
    case ws_client_message::kind::invalid:
      return nlohmann::json{{"type", "error"}, {"message", m.error}}.dump();
  }
  return {};
}

}  // namespace

SI_FUZZ_TARGET(ws_message) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto m = si::actors::parse_ws_client_message(text);
  switch (m.type) {
    case ws_client_message::kind::subscribe:
    case ws_client_message::kind::unsubscribe: {
      SI_FUZZ_CHECK(!m.channels.empty(), "a subscription names channels");
      for (auto it = m.channels.begin(); it != m.channels.end(); ++it) {
        SI_FUZZ_CHECK(si::actors::canonical_channel(*it) == *it, "canonical: " + *it);
        SI_FUZZ_CHECK(std::find(m.channels.begin(), it, *it) == it, "each channel once: " + *it);
      }
      SI_FUZZ_CHECK(m.error.empty(), "a valid message has no error");
      break;
    }
    case ws_client_message::kind::ping:
      SI_FUZZ_CHECK(m.timestamp.is_null() || m.timestamp.is_number(), "ping timestamp");
      SI_FUZZ_CHECK(m.channels.empty() && m.error.empty(), "a ping is only a ping");
      break;
    case ws_client_message::kind::invalid:
      SI_FUZZ_CHECK(!m.error.empty(), "an invalid message says why");
      SI_FUZZ_CHECK(m.channels.empty(), "an invalid message subscribes nothing");
      break;
  }
  auto sent = nlohmann::json::parse(answer(m), nullptr, false);
  SI_FUZZ_CHECK(!sent.is_discarded() && sent.contains("type"), "the answer is JSON");
}
