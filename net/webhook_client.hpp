#pragma once
/// The outbound webhook transport: an asynchronous HTTP/1.1 + HTTPS POST client (Boost.Beast
/// + Asio SSL behind a pimpl) with a keep-alive pool per destination, bounded concurrency per
/// destination and overall, a bounded FIFO queue, per-request deadlines, and the SSRF policy
/// of net/address_policy.hpp applied to every address it connects to. No business logic.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "net/address_policy.hpp"
#include "net/http_types.hpp"

namespace si::net {

namespace detail {
class webhook_client_core;
}  // namespace detail

/// Why a webhook POST produced no HTTP status (`none` when it did).
enum class webhook_error_kind {
  none,             ///< a response arrived: see `status` (any status, 3xx included)
  invalid_request,  ///< bad URL or header; nothing was sent
  blocked,          ///< the address policy refused the host's addresses; nothing was sent
  resolve,          ///< the host name did not resolve
  connect,          ///< TCP connect failed (refused, unreachable)
  tls,              ///< TLS handshake, certificate or host-name verification failed
  timeout,          ///< the request's deadline passed (queue, resolve, connect, TLS or HTTP)
  connection,       ///< the connection broke while sending or receiving
  protocol,         ///< the response was not valid HTTP/1.1 (or its header was too large)
  overloaded,       ///< the client's queue was full; nothing was sent
  cancelled,        ///< cancel_all() or stop() ended the request
};

/// The name of `kind` ("timeout", "blocked", ...).
std::string_view to_string(webhook_error_kind kind) noexcept;

/// One POST to send.
struct webhook_request {
  /// http:// or https:// URL, parsed by parse_webhook_url (invalid → `invalid_request`).
  std::string url;
  /// Extra header fields, sent as given. Host, Content-Length, Transfer-Encoding,
  /// Connection, Keep-Alive, TE, Trailer, Upgrade and Expect belong to the client
  /// (→ `invalid_request`), as do names that are not tokens and values with CR, LF or NUL.
  /// Content-Type defaults to application/json, User-Agent to the client's.
  header_list headers;
  std::string body;
  /// Deadline of the whole request, from post() to completion: queue wait, resolve,
  /// connect, TLS, write and read. Zero or negative = the client's default_timeout.
  std::chrono::milliseconds timeout{0};
};

/// Longest response body prefix a webhook_result keeps.
inline constexpr std::size_t webhook_body_prefix_limit = 1024;

/// The outcome of one POST.
struct webhook_result {
  int status = 0;  ///< HTTP status when a response arrived, else 0
  webhook_error_kind error = webhook_error_kind::none;
  std::string message;           ///< what went wrong ("" when a response arrived)
  std::int64_t duration_ms = 0;  ///< post() → completion
  /// The first ≤ webhook_body_prefix_limit bytes of the response body.
  std::string body_prefix;
  /// The body was longer than response_body_limit: reading stopped there and the
  /// connection was closed (the status is still valid).
  bool body_truncated = false;
  bool reused_connection = false;  ///< sent on a kept-alive connection
  std::string remote_address;      ///< "ip:port" the request went to ("" if not connected)

  /// True for a 2xx response.
  bool delivered() const noexcept {
    return error == webhook_error_kind::none && status >= 200 && status < 300;
  }
};

/// Receives the result of a post(), exactly once, on a client io thread (or, after stop(),
/// on the caller's thread). Keep it short and non-blocking; it may call post() and
/// cancel_all() but not stop() or the destructor.
using webhook_completion = std::function<void(webhook_result)>;

/// Tunables of a webhook_client; the defaults are production values.
struct webhook_client_options {
  unsigned io_threads = 1;  ///< io_context threads (at least 1)
  /// Requests in progress at once per destination (scheme + host + port); each uses its own
  /// connection, so this also caps the connections in use per destination.
  std::size_t max_per_destination = 4;
  std::size_t max_in_flight = 64;  ///< requests in progress at once, all destinations
  /// Requests waiting for a slot (FIFO); one more completes at once with `overloaded`.
  std::size_t max_queued = 1024;
  std::chrono::milliseconds default_timeout{10'000};  ///< when webhook_request::timeout ≤ 0
  /// A kept-alive connection unused for this long is closed.
  std::chrono::milliseconds idle_timeout{15'000};
  std::size_t max_idle_connections = 256;  ///< idle kept-alive connections, all destinations
  /// Response bytes read at most; beyond, the result is `body_truncated` and the connection
  /// is closed.
  std::size_t response_body_limit = 64 * 1024;
  std::size_t header_limit = 16 * 1024;  ///< response status line + fields (→ `protocol`)
  /// Deliver to private, loopback, link-local, ... addresses too (tests, private setups:
  /// WEBHOOK_ALLOW_PRIVATE).
  bool allow_private = false;
  /// PEM file of trusted CAs for https; empty = the system's default verify paths.
  std::string ca_file;
  std::string user_agent = "stellar-insights-webhooks";
  /// Host name lookups (run on a helper thread, given the time left before the request's
  /// deadline); empty = getaddrinfo. Must be copyable and safe to call after the client is
  /// gone (capture by value): an abandoned lookup may outlive it.
  resolver_fn resolver;
  /// How long stop() waits for the io threads to finish the cancelled work.
  std::chrono::milliseconds stop_timeout{2'000};
};

/// Counters of a webhook_client (a snapshot of atomics).
struct webhook_client_stats {
  std::uint64_t in_flight = 0;           ///< requests holding a slot (resolve/connect/HTTP)
  std::uint64_t queued = 0;              ///< requests waiting for a slot
  std::uint64_t connections_open = 0;    ///< sockets held: connecting, in use or idle
  std::uint64_t connections_idle = 0;    ///< kept-alive connections waiting for reuse
  std::uint64_t connections_opened = 0;  ///< connections established (TCP, and TLS if https)
  std::uint64_t connections_reused = 0;  ///< requests sent on a kept-alive connection
  std::uint64_t requests = 0;            ///< post() calls
  std::uint64_t completed = 0;           ///< completions called
  std::uint64_t delivered = 0;           ///< completions with a 2xx status
  std::uint64_t overloaded = 0;          ///< completions with `overloaded`
  std::uint64_t blocked = 0;             ///< completions with `blocked`
  std::uint64_t timeouts = 0;            ///< completions with `timeout`
  std::uint64_t cancelled = 0;           ///< completions with `cancelled`
  /// Requests resent once on a new connection because the kept-alive one had been closed
  /// by the server before any response byte arrived.
  std::uint64_t stale_retries = 0;
};

/// An asynchronous webhook POST client on its own io_context thread(s). post() never
/// blocks; the completion runs on a client thread. It resolves host names itself and
/// connects only to addresses that pass the address policy at that moment (the addresses it
/// vets are the ones it connects to, so DNS rebinding cannot slip a private address in);
/// redirects are not followed. Thread-safety: every member may be called from any thread,
/// except stop() and the destructor, which must not run on a client thread.
class webhook_client {
 public:
  /// Starts the io threads; throws std::runtime_error when `ca_file` cannot be loaded.
  explicit webhook_client(webhook_client_options options = {});
  webhook_client(const webhook_client&) = delete;
  webhook_client& operator=(const webhook_client&) = delete;
  /// Calls stop().
  ~webhook_client();

  /// Sends `request` (POST) and calls `completion` once with the result. Never blocks;
  /// over capacity the request waits in the FIFO queue, and with the queue full it
  /// completes with `overloaded` at once. After stop() it completes with `cancelled`.
  void post(webhook_request request, webhook_completion completion);

  /// Completes every queued and in-flight request with `cancelled` promptly (their sockets
  /// are closed); kept-alive idle connections stay. The client stays usable.
  void cancel_all();

  /// Shutdown: cancels everything as cancel_all(), closes every connection, and joins the
  /// io threads (bounded by stop_timeout). Later post() calls complete with `cancelled` on
  /// the caller's thread. Idempotent.
  void stop();

  /// Current counters.
  webhook_client_stats stats() const;

 private:
  std::unique_ptr<detail::webhook_client_core> core_;
};

}  // namespace si::net
