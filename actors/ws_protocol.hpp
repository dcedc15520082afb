#pragma once
/// The `/ws` client protocol (docs/websocket.md, "Client messages"): one client text message
/// parsed into what it asks for, and the channel names. Pure code (no CAF, no I/O): the hub
/// calls it, and so does the fuzzer (tests/fuzz/ws_message.cpp).

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace si::actors {

/// The channel as the hub keys it (`corridor:<id>` with the id in canonical form, e.g.
/// `native` → `XLM:native`), or nullopt when it is not a channel of api.md.
std::optional<std::string> canonical_channel(std::string_view channel);

/// What one client text message asks for.
struct ws_client_message {
  enum class kind { subscribe, unsubscribe, ping, invalid };
  kind type = kind::invalid;
  /// subscribe / unsubscribe: the channels in canonical form, each once, in the order sent;
  /// never empty (an empty list is `invalid`).
  std::vector<std::string> channels;
  /// ping: the client's `timestamp` when it is a JSON number, else null (the hub then
  /// answers with its own clock).
  nlohmann::json timestamp;
  /// invalid: the text of the `{"type":"error","message":...}` answer.
  std::string error;
};

/// Parses one client text message (invalid JSON, no string `type`, an unknown type, a bad
/// `channels` list or an unknown channel are `invalid` with the error to send). Never
/// throws. The per-connection channel limit is the hub's (it knows the subscriptions).
ws_client_message parse_ws_client_message(std::string_view text);

}  // namespace si::actors
