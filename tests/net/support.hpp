#pragma once
/// Test support for net/: a raw POSIX TCP client that speaks just enough HTTP/1.1 to check
/// the server byte by byte, and a mailbox for respond_fns the tests hold on to.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "net/http_types.hpp"

namespace si::test {

using namespace std::chrono_literals;

/// Bound on every wait in these tests: a bug fails a test instead of hanging it.
inline constexpr std::chrono::milliseconds wait_limit = 5s;

/// A response as parsed by raw_client.
struct parsed_response {
  int status = 0;
  std::string reason;
  net::header_list headers;
  std::string body;

  std::optional<std::string_view> header(std::string_view name) const {
    return net::find_header(headers, name);
  }
  /// True when `Connection: close` was sent.
  bool closes() const;
};

/// A blocking loopback TCP client; every read is bounded by a deadline (poll).
class raw_client {
 public:
  /// Connects to 127.0.0.1:port; throws std::runtime_error when the connect fails.
  explicit raw_client(std::uint16_t port);
  raw_client(raw_client&& other) noexcept;
  raw_client& operator=(raw_client&&) = delete;
  raw_client(const raw_client&) = delete;
  raw_client& operator=(const raw_client&) = delete;
  ~raw_client();

  /// The errno of a connect to 127.0.0.1:port (0 when it succeeded; the socket is closed).
  static int try_connect(std::uint16_t port);

  /// Writes all of `data`; false on error (e.g. the server reset the connection).
  bool send(std::string_view data);

  /// Reads one response (status line, headers, Content-Length body; `head` = no body).
  /// Nothing when the connection closed or `limit` passed first.
  std::optional<parsed_response> read_response(bool head = false,
                                               std::chrono::milliseconds limit = wait_limit);

  /// Waits until the server closes the connection (read returns 0 or an error). False when
  /// `limit` passed first, or when data arrived instead (kept in the buffer).
  bool wait_closed(std::chrono::milliseconds limit = wait_limit);

  /// Half-closes our sending side (FIN).
  void shutdown_send();

 private:
  /// Reads more bytes into buffer_ until `deadline`; 0 on EOF/error, -1 on timeout.
  long fill(std::chrono::steady_clock::time_point deadline);

  int fd_ = -1;
  std::string buffer_;
};

/// A GET request with optional extra header lines (each ending in "\r\n").
std::string get_request(std::string_view path, std::string_view extra = {});

/// respond_fns held by a test handler until the test answers them, with a wait by count.
class held_requests {
 public:
  void push(net::http_request req, net::respond_fn respond);
  /// Waits until at least `n` were pushed in total; false after wait_limit.
  bool wait_for(std::size_t n);
  /// The oldest held request (requires one).
  std::pair<net::http_request, net::respond_fn> pop();
  std::size_t total() const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::pair<net::http_request, net::respond_fn>> held_;
  std::size_t total_ = 0;
};

/// A one-shot event to wait on with a bound.
class event {
 public:
  void set();
  bool wait(std::chrono::milliseconds limit = wait_limit);
  bool is_set() const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool set_ = false;
};

}  // namespace si::test
