#include "actors/ws_protocol.hpp"

#include "domain/asset.hpp"

#include <algorithm>
#include <variant>

namespace si::actors {

std::optional<std::string> canonical_channel(std::string_view channel) {
  for (std::string_view fixed : {"corridors", "anchors", "pools", "payments", "alerts"}) {
    if (channel == fixed) {
      return std::string{channel};
    }
  }
  constexpr std::string_view corridor_prefix = "corridor:";
  if (channel.substr(0, corridor_prefix.size()) == corridor_prefix) {
    auto key = domain::parse_corridor_id(channel.substr(corridor_prefix.size()));
    if (auto* k = std::get_if<domain::corridor_key>(&key)) {
      return std::string{corridor_prefix} + k->id();
    }
  }
  return std::nullopt;
}

namespace {

ws_client_message invalid(std::string error) {
  ws_client_message m;
  m.error = std::move(error);
  return m;
}

/// subscribe / unsubscribe: every channel must be valid, else the whole message is.
ws_client_message subscription(const nlohmann::json& m, ws_client_message::kind type) {
  constexpr std::string_view bad_list = "\"channels\" must be a non-empty array of channel names";
  auto it = m.find("channels");
  if (it == m.end() || !it->is_array() || it->empty()) {
    return invalid(std::string{bad_list});
  }
  ws_client_message out;
  out.type = type;
  for (const auto& v : *it) {
    if (!v.is_string()) {
      return invalid(std::string{bad_list});
    }
    const auto& given = v.get_ref<const std::string&>();
    auto name = canonical_channel(given);
    if (!name) {
      return invalid("unknown channel '" + given + "'");
    }
    if (std::find(out.channels.begin(), out.channels.end(), *name) == out.channels.end()) {
      out.channels.push_back(std::move(*name));
    }
  }
  return out;
}

}  // namespace

ws_client_message parse_ws_client_message(std::string_view text) {
  auto m = nlohmann::json::parse(text, nullptr, false);
  if (m.is_discarded()) {
    return invalid("invalid JSON");
  }
  auto type = m.is_object() ? m.find("type") : m.end();
  if (!m.is_object() || type == m.end() || !type->is_string()) {
    return invalid("a message must be a JSON object with a string \"type\"");
  }
  const auto& t = type->get_ref<const std::string&>();
  if (t == "subscribe") {
    return subscription(m, ws_client_message::kind::subscribe);
  }
  if (t == "unsubscribe") {
    return subscription(m, ws_client_message::kind::unsubscribe);
  }
  if (t == "ping") {
    ws_client_message out;
    out.type = ws_client_message::kind::ping;
    auto ts = m.find("timestamp");
    if (ts != m.end() && ts->is_number()) {
      out.timestamp = *ts;
    }
    return out;
  }
  return invalid("unknown message type '" + t + "'");
}

}  // namespace si::actors
