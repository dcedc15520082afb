#pragma once
/// WebSocket transport values (no Boost here): the connection handle the server hands to its
/// owner, the upgrade hook that decides who may connect, and the callbacks of a connection.
/// The server side lives in net/http_server (see docs/websocket-transport.md).

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "net/http_types.hpp"

namespace si::net {

class ws_connection;
namespace detail {
class ws_handle;
ws_handle* transport_handle(ws_connection* connection) noexcept;
}  // namespace detail

/// Close codes of RFC 6455 §7.4.1 that the transport sends or reports.
namespace ws_close {
inline constexpr std::uint16_t normal = 1000;            ///< normal closure
inline constexpr std::uint16_t going_away = 1001;        ///< server shutting down
inline constexpr std::uint16_t protocol_error = 1002;    ///< protocol violation
inline constexpr std::uint16_t unsupported_data = 1003;  ///< e.g. a binary message
inline constexpr std::uint16_t no_status = 1005;         ///< peer's close frame had no code
inline constexpr std::uint16_t abnormal = 1006;  ///< no close handshake (dropped, timed out)
inline constexpr std::uint16_t policy_violation = 1008;  ///< default for send-queue overflow
inline constexpr std::uint16_t too_big = 1009;           ///< incoming message over the limit
inline constexpr std::uint16_t internal_error = 1011;    ///< a callback threw
inline constexpr std::uint16_t try_again_later = 1013;   ///< allowed for send-queue overflow
}  // namespace ws_close

/// True when `code` may be sent in a close frame (1000-1003, 1007-1014, 3000-4999).
bool ws_close_code_sendable(std::uint16_t code) noexcept;

/// What ws_connection::send did with a message.
enum class ws_send_result {
  queued,    ///< queued behind earlier messages; it will be written unless the connection ends
  closed,    ///< not queued: the connection is closing or closed
  overflow,  ///< not queued: the queue limit was hit, the connection is being closed for it
};

/// "queued", "closed" or "overflow".
std::string_view to_string(ws_send_result result) noexcept;

/// One WebSocket connection, as a thread-safe handle. The server creates it when an upgrade
/// is accepted and passes it to the callbacks; whoever keeps a copy may use it from any
/// thread, also after the connection (or the server) is gone: then send() returns `closed`
/// and close()/drop() do nothing. Nothing here blocks: every call only queues work onto the
/// connection's strand. Abstract so that the owner's tests can use a fake.
class ws_connection {
 public:
  virtual ~ws_connection() = default;
  ws_connection(const ws_connection&) = delete;
  ws_connection& operator=(const ws_connection&) = delete;

  /// Unique per server; the same number as the upgrade request's connection_id.
  std::uint64_t id() const noexcept {
    return id_;
  }

  /// The peer's "ip:port".
  const std::string& remote_addr() const noexcept {
    return remote_addr_;
  }

  /// Queues one text message. The buffer is shared, never copied: the same buffer may go to
  /// any number of connections (fan-out) and must not change afterwards. Never blocks. When
  /// the queue already holds the configured maximum of messages or bytes, the message is
  /// refused, the queued ones are discarded and the connection is closed with the configured
  /// overflow code (`overflow`). Throws std::invalid_argument for a null buffer.
  virtual ws_send_result send(std::shared_ptr<const std::string> message) = 0;

  /// Starts the close handshake: messages queued before are still written, then a close
  /// frame with `code` and `reason` (cut to 123 bytes) goes out; the connection ends when
  /// the peer answers (on_closed with clean=true) or when the close timeout passes (dropped,
  /// clean=false). Later sends return `closed`. Idempotent: only the first close counts.
  /// Throws std::invalid_argument when `code` may not be sent (ws_close_code_sendable).
  virtual void close(std::uint16_t code, std::string reason = {}) = 0;

  /// Aborts the connection: the socket closes without a close frame; queued messages are
  /// discarded; on_closed reports 1006 (abnormal), clean=false. Idempotent.
  virtual void drop() = 0;

  /// True until close(), drop(), an overflow or the end of the connection.
  virtual bool is_open() const = 0;

 protected:
  ws_connection(std::uint64_t id, std::string remote_addr)
      : id_(id), remote_addr_(std::move(remote_addr)) {}

 private:
  const std::uint64_t id_;
  const std::string remote_addr_;
  /// Set by the transport's own handle (net/ws_connection.cpp): the batched calls of
  /// net/ws_fanout.hpp tell it from other implementations without a dynamic_cast.
  bool transport_ = false;
  friend class detail::ws_handle;
  friend detail::ws_handle* detail::transport_handle(ws_connection* connection) noexcept;
};

using ws_connection_ptr = std::shared_ptr<ws_connection>;

/// The callbacks of one accepted connection. All run on the connection's strand (an io
/// thread of the server), one at a time per connection and concurrently for different
/// connections; they must not block. An exception thrown from on_open or on_text is logged
/// and closes the connection with 1011. Empty callbacks are skipped.
struct ws_handlers {
  /// The handshake is done (101 sent); the connection may be used.
  std::function<void(const ws_connection_ptr& connection)> on_open;
  /// One complete text message from the client (binary messages close with 1003).
  std::function<void(const ws_connection_ptr& connection, std::string message)> on_text;
  /// Called exactly once for every accepted upgrade, last: also when the handshake failed
  /// (then on_open was never called). `close_code` is the code of the close frame that began
  /// the closing (ours or the peer's; 1005 if the peer's had none), or 1006 when the
  /// connection ended without one (dropped, timed out, reset). `clean` is true only when
  /// both close frames were exchanged. For connections still open when the server stops,
  /// it runs on the thread calling http_server::stop() (1006, not clean).
  std::function<void(const ws_connection_ptr& connection, std::uint16_t close_code, bool clean)>
      on_closed;
};

/// The head of a WebSocket upgrade request, as the upgrade hook sees it.
struct ws_upgrade_request {
  std::string target;               ///< as sent, e.g. "/ws?token=abc"
  std::string path;                 ///< target up to '?', not percent-decoded
  std::string query;                ///< target after '?', not percent-decoded
  header_list headers;              ///< every field, in arrival order
  std::string remote_addr;          ///< peer "ip:port"
  std::uint64_t connection_id = 0;  ///< the id the ws_connection will have
  std::string request_id;           ///< the X-Request-ID a rejection will carry

  /// The value of header `name` (case-insensitive), if present.
  std::optional<std::string_view> header(std::string_view name) const {
    return find_header(headers, name);
  }
};

/// The upgrade hook's answer: accept with callbacks, or reject with an HTTP response.
struct ws_upgrade_decision {
  bool accepted = false;
  ws_handlers handlers;     ///< used when accepted
  http_response rejection;  ///< sent when not accepted (then the connection closes)

  /// Accepts the upgrade; `handlers` drive the connection.
  static ws_upgrade_decision accept(ws_handlers handlers);
  /// Rejects with `response` (status ≥ 200; the server adds framing and X-Request-ID).
  static ws_upgrade_decision reject(http_response response);
  /// Rejects with the API's JSON error body, e.g. (503, "TOO_MANY_CONNECTIONS", ...).
  static ws_upgrade_decision reject(int status, std::string_view code, std::string_view message,
                                    const ws_upgrade_request& request);
};

/// Decides on an upgrade request. Called on an io thread (the connection's strand) for every
/// `Upgrade: websocket` request the server can serve; must not block. An exception thrown
/// from it answers 500 INTERNAL_ERROR.
using ws_upgrade_hook = std::function<ws_upgrade_decision(const ws_upgrade_request& request)>;

}  // namespace si::net
