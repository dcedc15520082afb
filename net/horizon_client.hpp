#pragma once
/// A blocking HTTP(S) client for Horizon (Boost.Beast + Asio SSL behind a pimpl): keep-alive,
/// per-request timeout, retries with full-jitter backoff, Retry-After, a circuit breaker, a
/// token-bucket rate limit and problem+json errors. No business logic.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "net/http_types.hpp"

namespace si::net {

namespace detail {
class horizon_client_core;
}  // namespace detail

/// Tunables of a horizon_client; the defaults suit public Horizon.
struct horizon_client_options {
  /// `http://host[:port][/prefix]` or `https://...`; every request path is appended to the
  /// prefix. Parsed by the constructor (std::invalid_argument when malformed).
  std::string base_url = "https://horizon.stellar.org";
  /// Write of the request until its response is complete (one attempt).
  std::chrono::milliseconds request_timeout{10'000};
  /// Resolve + TCP connect + TLS handshake (one attempt).
  std::chrono::milliseconds connect_timeout{5'000};
  /// Retries after the first attempt (connect, timeout, 5xx and 429 only).
  unsigned max_retries = 5;
  /// Full jitter: retry n (0-based) sleeps uniform [0, min(backoff_max, backoff_min * 2^n)].
  std::chrono::milliseconds backoff_min{250};
  std::chrono::milliseconds backoff_max{30'000};
  /// Consecutive failed attempts that open the circuit breaker (0 = no breaker).
  unsigned breaker_threshold = 5;
  /// How long an open breaker fails fast before it lets a single trial through (half-open).
  std::chrono::milliseconds breaker_cooldown{30'000};
  /// Attempts per second (token bucket; 0 = unlimited) and the bucket size (burst).
  double rate_limit_per_second = 10.0;
  double rate_limit_burst = 10.0;
  /// PEM file of trusted CAs for https; empty = the system's default verify paths.
  std::string ca_file;
  std::string user_agent = "stellar-insights";
  std::size_t body_limit = 64 * 1024 * 1024;  ///< larger responses are `malformed`
  /// Seed of the jitter generator; 0 = random.
  std::uint64_t jitter_seed = 0;
  /// Clock of backoff, rate limit and breaker (not of the I/O timeouts); empty = steady_clock.
  std::function<std::chrono::steady_clock::time_point()> now;
  /// Sleeps of backoff and rate limit; empty = a real sleep that cancel() interrupts.
  std::function<void(std::chrono::milliseconds)> sleep;
};

/// A complete HTTP response (any status a caller asked to see: 2xx/3xx).
struct horizon_response {
  int status = 0;
  header_list headers;
  std::string body;

  /// The value of header `name` (case-insensitive), if present.
  std::optional<std::string_view> header(std::string_view name) const {
    return find_header(headers, name);
  }
};

/// Why a get() produced no response.
enum class horizon_error_kind {
  timeout,       ///< connect or request timeout (after the retries)
  connect,       ///< resolve / TCP connect / connection lost (after the retries)
  tls,           ///< handshake or certificate verification failed (not retried)
  http_status,   ///< a 4xx/5xx response (4xx other than 429 is never retried)
  circuit_open,  ///< the breaker is open: failed fast, nothing was sent
  cancelled,     ///< cancel() was called
  malformed,     ///< unparseable response, too large, or a bad request target
};

/// The name of `kind` ("timeout", "http_status", ...).
std::string_view to_string(horizon_error_kind kind) noexcept;

/// A failed get(): what went wrong, and for http_status what Horizon said.
struct horizon_error {
  horizon_error_kind kind = horizon_error_kind::connect;
  std::string message;
  int status = 0;                   ///< HTTP status for http_status, else 0
  std::int64_t retry_after_ms = 0;  ///< Retry-After of the last response (ms), else 0
  std::string problem_type;         ///< problem+json `type` ("" when not problem+json)
  std::string title;                ///< problem+json `title`
  std::string detail;               ///< problem+json `detail`
  std::string body;                 ///< the error response's body, as sent
};

/// A response, or why there is none.
using horizon_result = std::variant<horizon_response, horizon_error>;

/// Counters of a horizon_client (snapshot).
struct horizon_client_stats {
  std::uint64_t requests = 0;    ///< get() calls
  std::uint64_t attempts = 0;    ///< requests written (or tried) on the wire
  std::uint64_t retries = 0;     ///< attempts after a retryable failure
  std::uint64_t connects = 0;    ///< connections established
  std::uint64_t reconnects = 0;  ///< resends after a kept-alive connection was found closed
  std::uint64_t breaker_opens = 0;
  bool breaker_open = false;
};

/// A Horizon client with one kept-alive connection. get() blocks the calling thread (run it
/// on a detached actor or a thread of its own); calls are serialised. cancel() may be called
/// from any thread. Every deadline is bounded; there is no infinite wait.
class horizon_client {
 public:
  /// Parses `options.base_url` (std::invalid_argument when malformed) and prepares TLS
  /// (std::runtime_error when ca_file cannot be loaded). Connects lazily.
  explicit horizon_client(horizon_client_options options);
  horizon_client(const horizon_client&) = delete;
  horizon_client& operator=(const horizon_client&) = delete;
  ~horizon_client();

  /// GETs `target`: a path with optional query ("/ledgers?limit=5", appended to the base
  /// URL's prefix) or an absolute URL on the same scheme, host and port (a `_links` href).
  /// 2xx/3xx → horizon_response; otherwise a horizon_error after the retries.
  horizon_result get(std::string_view target, const header_list& extra_headers = {});

  /// Aborts an in-flight get() promptly (closes its socket, wakes its sleep) and makes it
  /// and every later get() return `cancelled`. Callable from any thread; idempotent.
  void cancel();

  /// True once cancel() was called.
  bool cancelled() const noexcept;

  /// Current counters.
  horizon_client_stats stats() const;

 private:
  std::unique_ptr<detail::horizon_client_core> core_;
};

}  // namespace si::net
