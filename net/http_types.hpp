#pragma once
/// Plain HTTP request/response values exchanged between the HTTP server (net/) and whoever
/// answers requests (the gateway actor). No Boost here: cheap to include anywhere.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace si::net {

/// Header fields in arrival order; names keep their spelling, lookups ignore case.
using header_list = std::vector<std::pair<std::string, std::string>>;

/// The value of the first field called `name` (ASCII case-insensitive), if any.
std::optional<std::string_view> find_header(const header_list& headers, std::string_view name);

/// True when `a` and `b` are equal ignoring ASCII case.
bool iequals(std::string_view a, std::string_view b) noexcept;

/// X-Request-ID values the server echoes: 1..128 visible ASCII characters (no space, no
/// control); any other value is replaced by a generated id.
bool sane_request_id(std::string_view id);

/// Splits a request-target into path and query (neither percent-decoded); the absolute form
/// ("http://host/p?q", RFC 9112 §3.2.2) keeps its path and query only.
void split_target(const std::string& target, std::string& path, std::string& query);

/// One complete HTTP request as read from a connection (body fully received).
struct http_request {
  std::string method;     ///< e.g. "GET", as sent
  std::string target;     ///< request-target as sent, e.g. "/api/v1/corridors?limit=5"
  std::string path;       ///< target up to '?', not percent-decoded (absolute form: its path)
  std::string query;      ///< target after '?', not percent-decoded; empty if none
  unsigned version = 11;  ///< 10 for HTTP/1.0, 11 for HTTP/1.1
  header_list headers;
  std::string body;
  std::string remote_addr;          ///< peer "ip:port"
  bool keep_alive = true;           ///< what the client asked for (version and Connection header)
  std::uint64_t connection_id = 0;  ///< unique per server, shared by requests of a connection
  /// Echoed X-Request-ID when the client sent a sane one, else generated; the server puts
  /// it on the response whatever the handler does, so error bodies should quote it.
  std::string request_id;
  std::chrono::steady_clock::time_point received_at;  ///< first byte of this request seen

  /// The value of header `name` (case-insensitive), if present.
  std::optional<std::string_view> header(std::string_view name) const {
    return find_header(headers, name);
  }
};

/// A response to send. The server owns the framing fields: it sets Content-Length (none for
/// 1xx/204/304, whose body is dropped), Connection and X-Request-ID, and drops any the
/// handler set; every other header is kept as given (Server is added if absent).
struct http_response {
  http_response() = default;
  /// `http_response{200, {{"Content-Type", "text/plain"}}, "hello"}`.
  http_response(int status_code, header_list fields = {}, std::string text = {})
      : status(status_code), headers(std::move(fields)), body(std::move(text)) {}

  int status = 200;
  header_list headers;
  std::string body;
  /// Instead of `body`: bytes owned elsewhere and shared by many responses (a cached page),
  /// written as they are, without a copy; `shared_owner` keeps them alive until written.
  /// Used when `shared_owner` is set (then `body` is ignored).
  std::shared_ptr<const void> shared_owner;
  std::string_view shared_body;

  /// The bytes to send: `shared_body` when shared, else `body`.
  std::string_view body_bytes() const {
    return shared_owner ? shared_body : std::string_view(body);
  }

  /// The value of header `name` (case-insensitive), if present.
  std::optional<std::string_view> header(std::string_view name) const {
    return find_header(headers, name);
  }

  /// Replaces every field called `name` (case-insensitive) with one `name: value`.
  void set_header(std::string_view name, std::string value);
};

/// Delivers the response to one request. Callable from any thread, exactly once (later
/// calls are ignored and logged); it posts the response onto the connection's strand, so it
/// never blocks and never runs the I/O itself. If every copy is destroyed without a call,
/// the client gets 500 INTERNAL_ERROR. Calling it after the connection or the server is
/// gone is harmless (the response is dropped).
using respond_fn = std::function<void(http_response)>;

/// Answers requests. Called on the connection's strand (an io thread) once per request, in
/// request order per connection; must not block. It may call `respond` at once or keep it
/// and call it later from any thread; requests pipelined on one connection are still
/// answered in order. An exception thrown from the handler answers 500 INTERNAL_ERROR.
using handler_fn = std::function<void(http_request, respond_fn)>;

/// The JSON error every part of the API uses (api.md "Conventions"):
/// `{"error":{"code":...,"message":...,"request_id":...}}`, Content-Type application/json.
http_response make_error_response(int status, std::string_view code, std::string_view message,
                                  std::string_view request_id);

}  // namespace si::net
