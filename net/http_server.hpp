#pragma once
/// The HTTP/1.1 server (Boost.Beast behind a pimpl): sockets, framing, timeouts, limits and
/// a drain that loses no request. No business logic: every request goes to one handler_fn,
/// and WebSocket upgrades to the hook in http_server_options::websocket.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "net/http_types.hpp"
#include "net/ws_connection.hpp"

namespace si::net {

namespace detail {
class http_server_core;
}  // namespace detail

/// WebSocket tunables of an http_server (docs/websocket-transport.md); production defaults.
struct ws_options {
  /// Decides on `Upgrade: websocket` requests. Empty (the default): upgrade requests are
  /// ordinary requests for the handler_fn, as without WebSocket support.
  ws_upgrade_hook hook;
  /// Upgrade accepted by the hook → 101 response written; beyond, the connection is dropped.
  std::chrono::milliseconds handshake_timeout{10'000};
  /// Largest incoming message (all frames); beyond → close 1009.
  std::size_t max_message_size = 64 * 1024;
  /// With nothing received for idle_timeout / 2 the server sends a ping (keep_alive_pings);
  /// with nothing received (a pong counts) for idle_timeout the connection is dropped.
  std::chrono::milliseconds idle_timeout{60'000};
  bool keep_alive_pings = true;  ///< false: no pings, dropped after idle_timeout of silence
  /// close() (or an overflow) → peer's close frame; beyond, the connection is dropped.
  std::chrono::milliseconds close_timeout{5'000};
  /// Per connection: messages queued and not yet written; one more is an overflow.
  std::size_t max_queued_messages = 256;
  /// Per connection: bytes of queued messages not yet written; a message that would pass it
  /// is an overflow (a single message larger than this is still taken by an empty queue).
  std::size_t max_queued_bytes = 1024 * 1024;
  /// Close code sent on overflow: 1008 (policy violation) or 1013 (try again later).
  std::uint16_t overflow_close_code = ws_close::policy_violation;
};

/// Tunables of an http_server; the defaults are production values.
struct http_server_options {
  std::string host = "0.0.0.0";  ///< address to bind (IP literal or resolvable name)
  std::uint16_t port = 0;        ///< 0 = ephemeral; start() returns the bound port
  unsigned io_threads = 0;       ///< io_context threads; 0 = hardware concurrency (min 1)
  /// From a connection's accept (first request) or a request's first byte (later ones)
  /// until its header is complete; a client trickling a header is cut here (slowloris).
  std::chrono::milliseconds read_header_timeout{10'000};
  std::chrono::milliseconds read_body_timeout{30'000};  ///< header complete → body complete
  /// Per response: the part the kernel does not take at once (a large body, a client that
  /// reads slowly) must be written within it, else the connection is closed (timed_out).
  std::chrono::milliseconds write_timeout{30'000};
  /// How long a keep-alive connection may sit with nothing to answer and no request bytes.
  std::chrono::milliseconds keep_alive_idle_timeout{60'000};
  std::size_t header_limit = 16 * 1024;  ///< request line + fields; beyond → 431 and close
  std::size_t body_limit = 1024 * 1024;  ///< beyond → 413 and close
  /// Open connections served at once; one more is accepted, answered 503 and closed.
  std::size_t max_connections = 10'000;
  /// Requests read ahead on one connection while earlier ones await their response; the
  /// connection stops reading until one is answered.
  std::size_t max_pipelined = 16;
  /// During drain: how long a connection idle in keep-alive is kept for a request that
  /// may already be on the wire before it is closed.
  std::chrono::milliseconds drain_idle_window{250};
  /// After the last response of a connection (FIN sent), how long unread client input is
  /// read and discarded before the socket closes, so the close never resets (RST) a
  /// response the client has not read yet.
  std::chrono::milliseconds close_linger_timeout{1'000};
  std::string server_name = "stellar-insights";  ///< `Server` header (unless the handler set one)
  ws_options websocket;                          ///< WebSocket upgrades (off without a hook)
};

/// Counters of an http_server; a consistent-enough snapshot of atomics, readable any time.
struct http_server_stats {
  std::uint64_t connections_open = 0;      ///< served connections alive (not 503-refused)
  std::uint64_t connections_total = 0;     ///< served connections ever accepted
  std::uint64_t requests_total = 0;        ///< responses sent (write begun; any status)
  std::uint64_t in_flight = 0;             ///< requests read whose response is not written
  std::uint64_t served_during_drain = 0;   ///< responses whose write began after begin_drain()
  std::uint64_t idle_closed_by_drain = 0;  ///< idle keep-alive connections closed by drain
  std::uint64_t cut = 0;                   ///< connections closed by cut_remaining()
  std::uint64_t refused_over_limit = 0;    ///< connections answered 503 (max_connections)
  std::uint64_t bad_requests = 0;          ///< 400/413/431 answered by the server itself
  std::uint64_t timed_out = 0;             ///< connections closed by a read/write/idle timeout
  std::uint64_t from_backlog = 0;          ///< accepted by close_acceptor() from the backlog
  bool accepting = false;                  ///< listening socket open
  bool draining = false;                   ///< begin_drain() was called
  // WebSocket (not counted in the HTTP fields above once upgraded)
  std::uint64_t ws_open = 0;               ///< WebSocket connections open (101 sent, not ended)
  std::uint64_t ws_accepted = 0;           ///< upgrades completed (101 sent)
  std::uint64_t ws_upgrades_rejected = 0;  ///< upgrade requests answered with an error status
  std::uint64_t ws_messages_sent = 0;      ///< messages written to clients
  std::uint64_t ws_messages_received = 0;  ///< text messages passed to on_text
  std::uint64_t ws_messages_dropped = 0;   ///< refused or discarded by a queue overflow
  std::uint64_t ws_overflow_closes = 0;    ///< connections closed for a queue overflow
  std::uint64_t ws_oversize_closes = 0;    ///< connections closed 1009 (message too big)
  std::uint64_t ws_binary_closes = 0;      ///< connections closed 1003 (binary message)
  std::uint64_t ws_timed_out = 0;          ///< dropped by a handshake, idle or close timeout
  std::uint64_t ws_close_frames_sent = 0;  ///< our close frames written whole
};

/// An HTTP/1.1 server on its own io_context threads. Each connection is a session on a
/// strand: keep-alive, pipelining (responses strictly in request order), read/write/idle
/// timeouts, header/body limits, X-Request-ID on every response, one access-log line per
/// request (logger "http_gateway"). Thread-safety: every public member may be called from
/// any thread except an io thread of this server (i.e. not from inside the handler or a
/// drain callback) — close_acceptor() and stop() wait for the io threads.
///
/// WebSocket connections (upgrades accepted by options.websocket.hook) are not HTTP
/// connections: they are not in the connection gate, so close_acceptor, begin_drain,
/// async_wait_drained and cut_remaining neither wait for nor touch them (their owner closes
/// them); upgrades arriving after close_acceptor() or begin_drain() get 503. stop() drops
/// those still open.
class http_server {
 public:
  /// A server that will pass every request to `handler`; nothing listens before start().
  /// Throws std::invalid_argument for invalid WebSocket options (a zero timeout or limit, an
  /// overflow code other than 1008/1013).
  http_server(http_server_options options, handler_fn handler);
  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;
  /// Calls stop().
  ~http_server();

  /// Binds, listens and starts the io threads; returns the bound port. Call once; throws
  /// std::system_error when the address cannot be bound.
  std::uint16_t start();

  /// Drain step 1: takes connections already waiting in the kernel backlog (they are served
  /// like any other), then closes the listening socket, so new connects are refused.
  /// Idempotent; returns how many connections it took from the backlog.
  std::size_t close_acceptor();

  /// Drain step 2 (after close_acceptor, because a connection accepted later would only be
  /// closed again): from now on every connection closes after its last response, which
  /// carries `Connection: close`. Requests whose bytes have arrived are read and answered;
  /// a connection idle in keep-alive gets drain_idle_window for a request already on the
  /// wire, then is closed gracefully (FIN, no RST). Idempotent.
  void begin_drain();

  /// Runs `callback` once no connection is left after begin_drain(): at once on the calling
  /// thread if that is already so, else on an io thread (keep it short; do not call
  /// close_acceptor or stop from it). May be called more than once; each callback fires once.
  void async_wait_drained(std::function<void()> callback);

  /// Drain step 3 (the graceful timeout passed): closes every remaining connection at once
  /// (their handlers' later responses are dropped) and returns how many had not finished.
  /// The sockets close asynchronously on their strands; async_wait_drained fires after.
  std::size_t cut_remaining();

  /// Stops the io threads and joins them; pending connections are destroyed without a
  /// response, open WebSocket connections are dropped (their on_closed runs on the calling
  /// thread, 1006, not clean). Idempotent; later respond_fn calls are dropped and later
  /// ws_connection::send calls return `closed`.
  void stop();

  /// Current counters.
  http_server_stats stats() const;

  /// The bound port (0 before start()).
  std::uint16_t port() const;

 private:
  std::unique_ptr<detail::http_server_core> core_;
};

}  // namespace si::net
