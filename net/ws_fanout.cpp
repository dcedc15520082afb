#include "net/ws_fanout.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>

#include "net/ws_transport.hpp"

namespace si::net {

namespace {

void check_batch(std::span<ws_connection* const> connections, const ws_batch_options& options,
                 const char* what) {
  if (options.chunk == 0) {
    throw std::invalid_argument(std::string(what) + ": chunk must be at least 1");
  }
  if (std::find(connections.begin(), connections.end(), nullptr) != connections.end()) {
    throw std::invalid_argument(std::string(what) + ": null connection");
  }
}

}  // namespace

ws_fanout_result ws_fanout(std::span<ws_connection* const> connections,
                           const std::shared_ptr<const std::string>& message,
                           const ws_batch_options& options) {
  if (!message) {
    throw std::invalid_argument("ws_fanout: null message");
  }
  check_batch(connections, options, "ws_fanout");
  ws_fanout_result result;
  detail::ws_wake_batch wake(detail::ws_wake_batch::step::kick, options.chunk);
  for (auto* c : connections) {
    ws_send_result r;
    if (auto* h = detail::transport_handle(c)) {
      bool idle = false;
      r = detail::enqueue_message(*h, message, idle);
      if (r == ws_send_result::queued && idle) {
        wake.add(*h);
      }
    } else {
      r = c->send(message);
    }
    switch (r) {
      case ws_send_result::queued:
        ++result.queued;
        break;
      case ws_send_result::closed:
        ++result.closed;
        break;
      case ws_send_result::overflow:
        result.overflowed.push_back(c);
        break;
    }
  }
  wake.flush();
  return result;
}

void ws_close_all(std::span<ws_connection* const> connections, std::uint16_t code,
                  std::string_view reason, const ws_batch_options& options) {
  if (!ws_close_code_sendable(code)) {
    throw std::invalid_argument("ws_close_all: code " + std::to_string(code) + " may not be sent");
  }
  check_batch(connections, options, "ws_close_all");
  detail::ws_wake_batch wake(detail::ws_wake_batch::step::close, options.chunk, connections.size());
  for (auto* c : connections) {
    if (auto* h = detail::transport_handle(c)) {
      if (detail::mark_closing(*h, code, reason)) {
        wake.add(*h);
      }
    } else {
      c->close(code, std::string(reason));
    }
  }
  wake.flush();
}

}  // namespace si::net
