#pragma once
/// Internal to net/ (includes Boost; only net/http_server.cpp and net/ws_connection.cpp use
/// it): the hand-off of an upgraded socket from the HTTP server to a WebSocket session, and
/// the state all WebSocket sessions of one server share.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <spdlog/logger.h>

#include "net/http_server.hpp"
#include "net/ws_connection.hpp"

namespace si::net::detail {

/// Every connection of the server runs on a strand of its io_context, the concrete executor
/// type of its socket (and so of the WebSocket session that takes the socket over).
using strand_executor = boost::asio::strand<boost::asio::io_context::executor_type>;
using strand_socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, strand_executor>;

class ws_session;

/// Counters of the WebSocket sessions of one server (http_server_stats' ws_* fields).
struct ws_counters {
  std::atomic<std::uint64_t> open{0};
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> upgrades_rejected{0};
  std::atomic<std::uint64_t> messages_sent{0};
  std::atomic<std::uint64_t> messages_received{0};
  std::atomic<std::uint64_t> messages_dropped{0};
  std::atomic<std::uint64_t> overflow_closes{0};
  std::atomic<std::uint64_t> oversize_closes{0};
  std::atomic<std::uint64_t> binary_closes{0};
  std::atomic<std::uint64_t> timed_out{0};
  std::atomic<std::uint64_t> close_frames_sent{0};
};

/// Shared by a server and its WebSocket sessions (and, through them, by every ws_connection
/// handle, which may outlive the server). Owns the strong references to live sessions.
class ws_registry {
 public:
  ws_registry(const ws_options& options, std::string server_name,
              std::shared_ptr<spdlog::logger> log);
  ws_registry(const ws_registry&) = delete;
  ws_registry& operator=(const ws_registry&) = delete;

  /// Keeps `session` alive until remove(); false once the server stopped (not kept).
  bool add(std::uint64_t id, std::shared_ptr<ws_session> session);
  /// Drops the reference to session `id` (when it ended).
  void remove(std::uint64_t id);
  /// Server stop, after its io threads were joined (so no strand runs): drops every session
  /// still registered on the calling thread, and refuses new ones.
  void drop_all();

  /// The close deadline of session `id` (options_.close_timeout from now), on the calling
  /// session's strand; `io` is its io_context. One timer serves every closing session: the
  /// timeout is the same for all, so deadlines armed in order expire in order (a queue, no
  /// timer per session to arm and cancel). At the deadline the session, if still
  /// registered, gets on_close_deadline() on its strand; a session that ended before is
  /// simply no longer registered.
  void arm_close_deadline(std::uint64_t id, const boost::asio::io_context::executor_type& io);

  /// How many threads run the server's io_context (set by the server before they start; 1
  /// until then): ws_wake_batch's close pass holds all of them but the one writing.
  void set_io_threads(unsigned n) noexcept {
    io_threads_.store(n < 1 ? 1 : n, std::memory_order_relaxed);
  }
  unsigned io_threads() const noexcept {
    return io_threads_.load(std::memory_order_relaxed);
  }

  const ws_options options_;  ///< without the hook (the server keeps that)
  const std::string server_name_;
  const std::shared_ptr<spdlog::logger> log_;
  ws_counters counters_;

  /// Held shared while posting onto the server's io_context from a handle; stop() flips
  /// `alive_` under the exclusive lock before it stops the io threads, so a post made under
  /// the shared lock always reaches a live io_context, and none is made afterwards.
  std::shared_mutex life_mutex_;
  bool alive_ = true;

 private:
  std::atomic<unsigned> io_threads_{1};

  void on_close_deadlines();
  /// Waits for the front deadline `at`; deadline_mutex_ held.
  void wait_close_deadline(std::chrono::steady_clock::time_point at);

  std::mutex mutex_;
  bool stopped_ = false;
  std::unordered_map<std::uint64_t, std::shared_ptr<ws_session>> sessions_;

  std::mutex deadline_mutex_;  ///< guards the three below (and every call on the timer)
  std::deque<std::pair<std::chrono::steady_clock::time_point, std::uint64_t>> deadlines_;
  std::optional<boost::asio::steady_timer> deadline_timer_;  ///< reset by drop_all
  bool deadline_waiting_ = false;
  bool deadlines_stopped_ = false;
};

/// Everything a WebSocket session starts from: the upgraded socket (its executor is the
/// connection's strand), the upgrade request (for the 101 response) and the hook's handlers.
struct ws_handoff {
  strand_socket socket;
  boost::beast::http::request<boost::beast::http::string_body> request;
  ws_handlers handlers;
  std::uint64_t id = 0;
  std::string remote;
  std::string request_id;
  std::string path;                                   ///< for the access log line
  std::chrono::steady_clock::time_point received_at;  ///< first byte of the upgrade request
};

/// Starts a WebSocket session: writes the 101 response, then serves the connection. Call
/// on the socket's strand. When the server already stopped, the socket is closed and
/// on_closed reports 1006.
void start_ws_session(const std::shared_ptr<ws_registry>& registry, ws_handoff handoff);

// ---------------------------------------------------------------------------------------
// For the batched calls of net/ws_fanout.cpp (implemented in net/ws_connection.cpp).

class ws_handle;

/// The transport's handle behind `connection`, or null when it is another implementation of
/// ws_connection (e.g. a test fake): those get the per-connection calls.
ws_handle* transport_handle(ws_connection* connection) noexcept;

/// ws_connection::send without the wake-up post: the same queueing, limits and overflow
/// handling (an overflow posts its own close). `wake` is set when the connection's writer is
/// idle: the caller must then add the handle to a ws_wake_batch (step kick).
ws_send_result enqueue_message(ws_handle& handle, std::shared_ptr<const std::string> message,
                               bool& wake);

/// ws_connection::close without the wake-up post (`code` must be sendable): true when this
/// started the closing; the caller must then add the handle to a ws_wake_batch (step close).
bool mark_closing(ws_handle& handle, std::uint16_t code, std::string_view reason);

/// One close pass of a ws_wake_batch (net/ws_connection.cpp).
struct close_pass;

/// Wakes many sessions with few posts. add() keeps the handle (not the session: the caller's
/// thread then touches nothing of the session, whose state the io thread owns); the handles
/// of one server become tasks posted onto that server's io_context, which run every live
/// session's step on the session's strand (inline when the strand is idle: the io thread is
/// already running). One batch per calling thread; not thread-safe itself.
///
/// step kick: each `chunk` handles are one task, posted as soon as the chunk is full (the io
/// threads start writing while the caller goes on); flush() (and the destructor) posts the
/// rest. The task writes an idle session's queued frames itself, under the handle's mutex
/// (net/ws_connection.cpp, write_directly), and wakes the others.
/// step close: the first add() of a server's handle posts that server's close pass: one io
/// thread writes every close frame while the server's other io threads wait for it (one
/// task each, posted with the pass). The handles added go to the pass as they come, `chunk`
/// at a time, so the writer starts while the caller is still adding; flush() (and the
/// destructor) hands over the rest and ends the pass. No answer to a close frame is read and
/// no connection torn down until every close frame is out, and the pass takes one core, not
/// all of them (docs/websocket-transport.md, "Close pass"). `capacity` bounds the handles
/// one server's pass takes (the pass's array is allocated once, before its writer starts:
/// std::length_error beyond it).
class ws_wake_batch {
 public:
  enum class step : std::uint8_t { kick, close };
  ws_wake_batch(step s, std::size_t chunk, std::size_t capacity = 0);
  ~ws_wake_batch();
  ws_wake_batch(const ws_wake_batch&) = delete;
  ws_wake_batch& operator=(const ws_wake_batch&) = delete;

  /// Queues the wake-up of `handle`'s session (a session that ended meanwhile is skipped:
  /// its handle is closed, so what was queued is discarded).
  void add(ws_handle& handle);
  /// Posts every wake-up still held.
  void flush();

 private:
  struct group {
    std::shared_ptr<ws_registry> registry;
    std::vector<std::shared_ptr<ws_handle>> handles;  ///< step kick: the chunk being filled
    std::shared_ptr<close_pass> pass;                 ///< step close: the pass being filled
    std::size_t filled = 0;                           ///< step close: handles in `pass`
  };
  void post(group& g);
  void start_close_pass(group& g, const boost::asio::io_context::executor_type& io);

  const step step_;
  const std::size_t chunk_;
  const std::size_t capacity_;
  std::vector<group> groups_;  ///< one per server (nearly always one)
};

}  // namespace si::net::detail
