#pragma once
/// Test support for the WebSocket transport: a Boost.Beast WebSocket client (behind a pimpl,
/// so test files stay light), a raw POSIX client that speaks the handshake and frames byte by
/// byte (for peers that never read or never answer), events and a recording server hook.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "net/http_server.hpp"
#include "net/http_types.hpp"
#include "net/ws_connection.hpp"

namespace si::test {

using namespace std::chrono_literals;

/// Bound on every wait in these tests: a bug fails a test instead of hanging it.
inline constexpr std::chrono::milliseconds wait_limit = 5s;

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

/// An io_context for Beast test clients: driven by the calling thread inside the clients'
/// blocking calls, or by a background thread (start_thread) for clients in read loops.
class ws_io {
 public:
  ws_io();
  ~ws_io();
  ws_io(const ws_io&) = delete;
  ws_io& operator=(const ws_io&) = delete;

  /// Runs the io_context on a background thread until stop_thread().
  void start_thread();
  /// Stops and joins the background thread (idempotent).
  void stop_thread();

  struct impl;
  std::unique_ptr<impl> impl_;
};

/// What a client read: a text/binary message, or the end of the connection.
struct ws_read_result {
  bool ok = false;  ///< a message (else the connection ended: see close_code / error)
  std::string text;
  bool binary = false;
  std::uint16_t close_code = 0;  ///< the server's close code when it closed the connection
  std::string close_reason;
  std::string error;  ///< the error that ended the read, e.g. "The WebSocket stream was gracefully
                      ///< closed..."
};

/// A Beast WebSocket client on 127.0.0.1. Blocking calls drive its ws_io on the calling thread
/// (they must not be used while the ws_io's background thread runs) and are bounded.
class ws_client {
 public:
  explicit ws_client(ws_io& io);
  ~ws_client();
  ws_client(const ws_client&) = delete;
  ws_client& operator=(const ws_client&) = delete;

  /// Connects and performs the handshake; true when the server answered 101. Otherwise
  /// status()/body()/header() describe the server's answer (0 if there was none).
  bool connect(std::uint16_t port, std::string_view target = "/ws",
               net::header_list extra_headers = {});
  int status() const;
  std::string body() const;
  std::optional<std::string> header(std::string_view name) const;

  /// Sends one message; false on error or after the bound.
  bool write(std::string_view data, bool binary = false);
  /// Reads one message (or the end of the connection); nothing after `limit`. A read left
  /// pending by a timeout is the one the next call waits for.
  std::optional<ws_read_result> read(std::chrono::milliseconds limit = wait_limit);
  /// Client-initiated close handshake; true when it completed (the server answered).
  bool close(std::uint16_t code, std::chrono::milliseconds limit = wait_limit);
  /// Keeps a read pending until `n` pings arrived; false after `limit` or if the read ended.
  bool wait_pings(int n, std::chrono::milliseconds limit = wait_limit);
  int pings() const;

  /// Reads in a loop on the ws_io's thread: each message goes to `on_message`, the end (with
  /// the server's close code, 0 if none) to `on_end`. Start before ws_io::start_thread().
  void read_loop(std::function<void(std::string)> on_message,
                 std::function<void(std::uint16_t)> on_end);

  struct impl;

 private:
  std::shared_ptr<impl> impl_;
};

/// A WebSocket frame as the raw client reads it.
struct raw_frame {
  int opcode = 0;  ///< 1 text, 2 binary, 8 close, 9 ping, 10 pong
  std::string payload;
  /// For close frames: the code (0 when the payload has none).
  std::uint16_t close_code() const;
};

/// A close frame's payload carrying `code` (no reason), as a client answers with it.
std::string close_payload(std::uint16_t code);

/// An HTTP answer as the raw client reads it.
struct raw_reply {
  int status = 0;
  net::header_list headers;
  std::string body;
  std::optional<std::string_view> header(std::string_view name) const {
    return net::find_header(headers, name);
  }
};

/// A blocking POSIX client on 127.0.0.1; every read is bounded (poll).
class raw_ws {
 public:
  /// Connects; `receive_buffer` > 0 sets SO_RCVBUF before connecting (a small window).
  explicit raw_ws(std::uint16_t port, int receive_buffer = 0);
  raw_ws(raw_ws&& other) noexcept;
  raw_ws& operator=(raw_ws&&) = delete;
  raw_ws(const raw_ws&) = delete;
  raw_ws& operator=(const raw_ws&) = delete;
  ~raw_ws();

  /// The bytes of an upgrade request for `target` (extra header lines end in "\r\n").
  static std::string upgrade_request(std::string_view target, std::string_view extra = {});
  bool send(std::string_view data);
  /// Sends an upgrade request and reads the answer (101 or an error response).
  std::optional<raw_reply> upgrade(std::string_view target, std::string_view extra = {});
  /// Reads one HTTP answer (head, and a Content-Length body).
  std::optional<raw_reply> read_reply(std::chrono::milliseconds limit = wait_limit);
  /// True once some bytes of the server's next frame arrived (they stay buffered for
  /// read_frame); false on close/EOF or after `limit`.
  bool await_data(std::chrono::milliseconds limit = wait_limit);
  /// Reads one frame; nothing on close/EOF or after `limit`.
  std::optional<raw_frame> read_frame(std::chrono::milliseconds limit = wait_limit);
  /// Sends one masked frame.
  bool send_frame(int opcode, std::string_view payload);
  /// Reads (and skips data/ping frames) until a close frame; its code, or nothing on
  /// EOF/timeout before one.
  std::optional<std::uint16_t> read_until_close(std::chrono::milliseconds limit = wait_limit);
  /// True when the server closed the connection (EOF/reset) within `limit`; data that
  /// arrives meanwhile is discarded.
  bool wait_closed(std::chrono::milliseconds limit = wait_limit);
  /// Closes our socket (as a client does once the server's FIN arrived).
  void close();
  /// Closes our socket with a reset (SO_LINGER 0): the server's next write fails.
  void reset();

 private:
  long fill(std::chrono::steady_clock::time_point deadline);
  bool need(std::size_t n, std::chrono::steady_clock::time_point deadline);

  int fd_ = -1;
  std::string buffer_;
};

/// What a recording server saw, with bounded waits.
class ws_recorder {
 public:
  struct closed_info {
    std::uint64_t id = 0;
    std::uint16_t code = 0;
    bool clean = false;
  };

  /// Handlers that record into this recorder; `echo` answers each text with itself.
  net::ws_handlers handlers(bool echo = true);

  bool wait_opened(std::size_t n, std::chrono::milliseconds limit = wait_limit);
  bool wait_closed(std::size_t n, std::chrono::milliseconds limit = wait_limit);
  bool wait_texts(std::size_t n, std::chrono::milliseconds limit = wait_limit);
  std::vector<net::ws_connection_ptr> opened() const;
  std::vector<closed_info> closed() const;
  std::vector<std::string> texts() const;
  /// The close record of connection `id` (requires one).
  closed_info closed_of(std::uint64_t id) const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<net::ws_connection_ptr> opened_;
  std::vector<closed_info> closed_;
  std::vector<std::string> texts_;
};

/// Resident set size of this process in bytes (/proc/self/statm).
std::size_t resident_bytes();

}  // namespace si::test
