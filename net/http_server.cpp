#include "net/http_server.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <deque>
#include <exception>
#include <limits>
#include <mutex>
#include <optional>
#include <random>
#include <shared_mutex>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include "config/logging.hpp"
#include "net/gate.hpp"
#include "net/thread_name.hpp"
#include "net/ws_transport.hpp"

namespace si::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using steady = std::chrono::steady_clock;
using detail::strand_executor;
using detail::strand_socket;

namespace {

constexpr std::size_t first_read_size = 8 * 1024;
constexpr std::string_view continue_line = "HTTP/1.1 100 Continue\r\n\r\n";

/// RFC 9110 token characters, for header names the handler hands us.
bool is_token(std::string_view s) {
  static constexpr std::string_view extra = "!#$%&'*+-.^_`|~";
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || extra.find(c) != std::string_view::npos;
  });
}

/// Header values must not smuggle a line break or NUL (response splitting).
bool is_field_value(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

/// Errors that the peer or our own shutdown cause in normal operation: logged at debug.
bool is_expected_error(const error_code& ec) {
  return ec == asio::error::operation_aborted || ec == asio::error::connection_reset
         || ec == asio::error::broken_pipe || ec == asio::error::eof
         || ec == asio::error::connection_aborted || ec == asio::error::not_connected
         || ec == asio::error::bad_descriptor || ec == http::error::end_of_stream
         || ec == http::error::partial_message || ec == beast::error::timeout;
}

/// True for parse errors of the request itself (→ 400), as opposed to I/O errors.
bool is_parse_error(const error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_method).category()
         && ec != http::error::end_of_stream && ec != http::error::partial_message
         && ec != http::error::need_more && ec != http::error::need_buffer
         && ec != http::error::header_limit && ec != http::error::body_limit;
}

/// asio marks every socket it adopted by assign() - its accept() does that too - as possibly
/// shared with another descriptor, and close() then takes it out of epoll with an epoll_ctl
/// of its own first: one system call and a descriptor lock more per closed connection (6%
/// of the io threads' time while 10,000 WebSockets ended). A socket accept() just returned
/// is never duplicated, so close() alone removes it. The flag goes with the socket when it
/// is moved (to a WebSocket session too).
void mark_not_duplicated(strand_socket& socket) noexcept {
  // basic_socket::impl_ is protected: reached through a pointer to member of a derived type.
  struct access : strand_socket {
    static auto impl() {
      return &access::impl_;
    }
  };
  auto& state = (socket.*access::impl()).get_implementation().state_;
  state = static_cast<asio::detail::socket_ops::state_type>(
      state & ~asio::detail::socket_ops::possible_dup);
}

std::string endpoint_string(const strand_socket& socket) {
  error_code ec;
  auto ep = socket.remote_endpoint(ec);
  if (ec) {
    return "unknown";
  }
  auto addr = ep.address().to_string();
  if (ep.address().is_v6()) {
    addr = "[" + addr + "]";
  }
  return addr + ":" + std::to_string(ep.port());
}

std::string_view sv(beast::string_view s) {
  return {s.data(), s.size()};
}

double millis_since(steady::time_point start) {
  return std::chrono::duration<double, std::milli>(steady::now() - start).count();
}

/// The WebSocket options, checked (http_server's constructor throws for invalid ones).
const ws_options& validated(const ws_options& o) {
  auto fail = [](const std::string& what) {
    throw std::invalid_argument("http_server_options.websocket: " + what);
  };
  if (o.handshake_timeout.count() <= 0 || o.idle_timeout.count() <= 0
      || o.close_timeout.count() <= 0) {
    fail("timeouts must be positive");
  }
  if (o.max_message_size == 0 || o.max_queued_messages == 0 || o.max_queued_bytes == 0) {
    fail("limits must be positive");
  }
  if (o.overflow_close_code != ws_close::policy_violation
      && o.overflow_close_code != ws_close::try_again_later) {
    fail("overflow_close_code must be 1008 or 1013, not " + std::to_string(o.overflow_close_code));
  }
  return o;
}

}  // namespace

namespace detail {

class session;

/// What respond_fn holders need after the server may be gone: stop() flips `alive` under
/// the exclusive lock, so a post made under the shared lock always reaches a live
/// io_context.
struct lifeline {
  std::shared_mutex mutex;
  bool alive = true;
};

/// Everything the server owns. Sessions hold a reference to it; they are all destroyed
/// before the members they use (io_context_ is declared after them, and is destroyed first).
class http_server_core {
 public:
  http_server_core(http_server_options options, handler_fn handler);
  ~http_server_core();

  std::uint16_t start();
  std::size_t close_acceptor();
  void begin_drain();
  void async_wait_drained(std::function<void()> callback);
  std::size_t cut_remaining();
  void stop();
  http_server_stats stats() const;

  std::string make_request_id();
  std::uint16_t port() const {
    return port_.load();
  }
  void unregister_session(std::uint64_t id);

  const http_server_options options_;
  const handler_fn handler_;
  const std::shared_ptr<spdlog::logger> log_;
  const std::shared_ptr<lifeline> lifeline_ = std::make_shared<lifeline>();
  /// WebSocket sessions (outside the connection gate) and their counters.
  const std::shared_ptr<ws_registry> ws_;

  std::atomic<std::uint64_t> connections_open_{0};
  std::atomic<std::uint64_t> connections_total_{0};
  std::atomic<std::uint64_t> requests_total_{0};
  std::atomic<std::uint64_t> in_flight_{0};
  std::atomic<std::uint64_t> served_during_drain_{0};
  std::atomic<std::uint64_t> idle_closed_by_drain_{0};
  std::atomic<std::uint64_t> cut_{0};
  std::atomic<std::uint64_t> refused_over_limit_{0};
  std::atomic<std::uint64_t> bad_requests_{0};
  std::atomic<std::uint64_t> timed_out_{0};
  std::atomic<std::uint64_t> from_backlog_{0};
  std::atomic<bool> accepting_{false};
  std::atomic<bool> draining_{false};

 private:
  void do_accept();  // acceptor_mutex_ held
  void on_accept_ready(const error_code& ec);
  /// Accepts (non-blocking) and starts up to `limit` connections waiting in the backlog;
  /// acceptor_mutex_ held. A client that gave up before it was accepted is skipped; any
  /// other error ends it and is left in `ec` (would_block: the backlog is empty).
  std::size_t accept_backlog(std::size_t limit, error_code& ec);
  void start_connection(strand_socket socket);
  std::vector<std::shared_ptr<session>> snapshot();

  std::atomic<bool> started_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<std::uint64_t> next_connection_id_{1};
  std::atomic<std::uint64_t> next_request_id_{1};
  std::uint32_t id_nonce_ = 0;
  std::atomic<std::uint16_t> port_{0};

  // Declared before io_context_: sessions destroyed with the io_context's pending handlers
  // still release their hold and unregister.
  gate connections_;
  std::mutex sessions_mutex_;
  /// Strong references: a connection lives until it closes itself (or is cut), whatever
  /// a handler does with its respond_fn.
  std::unordered_map<std::uint64_t, std::shared_ptr<session>> sessions_;

  asio::io_context io_context_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::mutex acceptor_mutex_;  // every acceptor_ call outside its completion handlers
  tcp::acceptor acceptor_;
  asio::steady_timer accept_retry_;
  std::vector<std::thread> threads_;
};

/// One connection, driven on its strand (the stream's executor).
///
/// Reading and writing are independent: the read side reads requests ahead (up to
/// max_pipelined unanswered ones) and hands each to the handler; every request gets a slot
/// in `slots_` (numbered in arrival order) that its respond_fn fills from any thread via a
/// post onto the strand; the write side writes only the oldest slot, once it is filled. So
/// responses go out strictly in request order whatever order the handlers answer in.
///
/// A response is the connection's last (and carries `Connection: close`) when it ends the
/// connection by itself (the client asked to close, the server could not parse the request)
/// or when nothing follows it: the read side has stopped (client EOF, draining) and no
/// other slot is queued. Then the session sends FIN and reads and discards the peer's input
/// for close_linger_timeout before closing, so the client reads the response, not an RST.
class session : public std::enable_shared_from_this<session> {
 public:
  session(http_server_core& core, strand_socket socket, gate::hold hold, std::uint64_t id,
          bool counted, bool reject);
  ~session();
  session(const session&) = delete;
  session& operator=(const session&) = delete;

  /// Begins serving (posted onto the strand). Call once, after registering.
  void start();

  /// Begin-drain notice; on the strand.
  void on_drain();

  /// Closes the socket now (cut_remaining); on the strand.
  void hard_close();

  /// Claims this connection for cut_remaining: false once it has finished by itself.
  bool claim_cut() {
    return !finished_.exchange(true);
  }

  /// Fills slot `seq` with `res` (from a respond_fn, via post); on the strand.
  void respond(std::uint64_t seq, http_response res);

  strand_executor executor() {
    return stream_.get_executor();
  }

  const std::string& remote() const {
    return remote_;
  }

 private:
  enum class read_phase {
    waiting,  ///< async_read_some for the first byte of the next request
    header,   ///< reading a request header
    body,     ///< reading a request body
    paused,   ///< max_pipelined unanswered requests: not reading
    stopped,  ///< no more requests will be read on this connection
  };
  enum class timer_role { none, idle, linger };

  struct slot {
    std::uint64_t seq = 0;
    bool ready = false;
    bool close_after = false;  ///< this response ends the connection
    bool head = false;
    unsigned version = 11;
    std::string method = "-";
    std::string path = "-";
    std::string request_id;
    steady::time_point received_at;
    http_response res;
  };

  void on_start();
  void next_read();
  void skip_empty_lines();
  void on_first_bytes(const error_code& ec, std::size_t n);
  void read_header();
  void on_header(const error_code& ec);
  void on_body(const error_code& ec);
  void on_read_error(const error_code& ec);
  void on_upgrade_header();
  void upgrade();
  void reject_upgrade(http_response res, const std::string& request_id);
  void hand_off(ws_handlers handlers, std::string request_id);
  void dispatch();
  void push_error(int status, std::string_view code, std::string message);
  void stop_reading();
  void do_write();
  void write_rest(std::size_t sent, bool last, bool bodiless);
  void on_write(const error_code& ec, bool last);
  /// A response was written (or failed): logs it, drops its slot and moves the connection
  /// on; true when the caller may write the next response.
  bool after_write(const error_code& ec, bool last);
  void on_continue_written(const error_code& ec);
  void begin_linger();
  void start_discard_read();
  void on_linger_read(const error_code& ec);
  void arm_idle_timer();
  void arm_timer(timer_role role, steady::time_point deadline);
  /// Stops the role's timer. The wait itself is left pending (on_timer ignores it, a later
  /// arm_timer reuses it) unless `release`: a closing session lets go of it at once.
  void cancel_timer(bool release = false);
  void start_timer_wait(steady::time_point until);
  void on_timer(const error_code& ec, std::uint64_t generation);
  void close_now();
  bool idle() const {
    return slots_.empty() && !writing_;
  }
  std::string request_id_of(const http::request_parser<http::string_body>::value_type& msg);
  /// Renders the status line and fields of the front slot's response into head_.
  void render_head(slot& s, bool last, int status, bool bodiless);
  /// head_ and the body to send (which points into the slot's response, owned or shared
  /// bytes, in place until the write completes).
  std::array<asio::const_buffer, 2> write_buffers(slot& s, bool bodiless) const;

  http_server_core& core_;
  gate::hold hold_;  // first member: released last, after the socket is closed
  const std::uint64_t id_;
  bool counted_;  ///< in connections_open_ (until a WebSocket hand-off)
  const bool reject_;
  /// The strand as the stream's concrete executor (not asio::any_io_executor, whose copies
  /// and conversions in every asynchronous operation allocate: a strand does not fit its
  /// small buffer); the socket keeps it when it is handed to a WebSocket session.
  beast::basic_stream<tcp, strand_executor> stream_;
  asio::steady_timer timer_;
  std::string remote_;
  const steady::time_point accepted_at_ = steady::now();

  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  read_phase read_phase_ = read_phase::waiting;
  bool read_op_pending_ = false;
  bool first_request_ = true;
  steady::time_point request_started_;

  std::deque<slot> slots_;
  std::uint64_t next_seq_ = 0;
  bool writing_ = false;
  /// Status line and fields of the response being written (reused: no allocation once
  /// grown); the body is written from the slot.
  std::string head_;
  /// Bounds a write the kernel did not take at once (most responses are sent by one
  /// non-blocking send in do_write and never arm it).
  asio::steady_timer write_timer_;
  std::uint64_t write_generation_ = 0;
  /// A next_read() for buffered (pipelined) bytes is posted instead of run from inside
  /// dispatch, so a burst of pipelined requests never recurses.
  bool resume_posted_ = false;

  bool draining_ = false;
  /// A WebSocket upgrade read while earlier responses were pending: handled once they are
  /// written (the read side is paused until then).
  bool pending_upgrade_ = false;
  bool closing_ = false;  ///< last response written: FIN sent, only discarding input now
  bool closed_ = false;   ///< socket closed; every completion just returns
  std::atomic<bool> finished_{false};

  /// One asio wait serves the idle and linger roles lazily: arming for a later deadline
  /// than the pending wait's, or cancelling, costs no timer operation (one per request
  /// otherwise); the wait, when it ends, checks the role's current deadline.
  timer_role timer_role_ = timer_role::none;
  steady::time_point timer_deadline_;  ///< of timer_role_
  bool timer_waiting_ = false;         ///< an async_wait on timer_ (until its expiry) is pending
  std::uint64_t timer_generation_ = 0;
  std::array<char, 4096> discard_{};
};

/// The session inside dispatch() on this thread: its handler, then the write of an answer
/// the handler gave at once. Meanwhile a response for it is only stored (dispatch writes it
/// after the handler, so the handler never re-enters the session) and buffered pipelined
/// bytes are resumed by a post, not by recursion.
thread_local session* dispatching = nullptr;

/// The state behind one respond_fn: exactly-once delivery onto the session's strand, or a
/// 500 when the last copy is dropped unanswered.
class responder {
 public:
  responder(std::weak_ptr<session> s, std::uint64_t seq, std::string request_id,
            std::shared_ptr<lifeline> line, std::shared_ptr<spdlog::logger> log)
      : session_(std::move(s)),
        seq_(seq),
        request_id_(std::move(request_id)),
        lifeline_(std::move(line)),
        log_(std::move(log)) {}

  responder(const responder&) = delete;
  responder& operator=(const responder&) = delete;

  ~responder() {
    if (!done_.exchange(true)
        && deliver(make_error_response(500, "INTERNAL_ERROR", "the request was not answered",
                                       request_id_))) {
      log_->error("request {}: respond_fn dropped without an answer; sent 500", request_id_);
    }
  }

  void respond(http_response res) {
    if (done_.exchange(true)) {
      log_->warn("request {}: respond_fn called more than once; later call ignored", request_id_);
      return;
    }
    deliver(std::move(res));
  }

 private:
  /// Posts `res` to the connection; false when the connection or the server is gone.
  bool deliver(http_response res) noexcept {
    try {
      std::shared_lock lock(lifeline_->mutex);
      if (!lifeline_->alive) {
        return false;
      }
      auto s = session_.lock();
      if (!s) {
        return false;  // connection already gone (closed or cut): nobody to answer
      }
      if (s.get() == dispatching) {
        // Answered from inside the handler, on the session's strand: no round trip.
        s->respond(seq_, std::move(res));
        return true;
      }
      auto ex = s->executor();
      asio::post(ex, [s = std::move(s), seq = seq_, res = std::move(res)]() mutable {
        s->respond(seq, std::move(res));
      });
      return true;
    } catch (const std::exception& e) {
      log_->error("request {}: could not deliver response: {}", request_id_, e.what());
      return false;
    }
  }

  std::weak_ptr<session> session_;
  const std::uint64_t seq_;
  const std::string request_id_;
  const std::shared_ptr<lifeline> lifeline_;
  const std::shared_ptr<spdlog::logger> log_;
  std::atomic<bool> done_{false};
};

// ---------------------------------------------------------------------------------------
// session

session::session(http_server_core& core, strand_socket socket, gate::hold hold, std::uint64_t id,
                 bool counted, bool reject)
    : core_(core),
      hold_(std::move(hold)),
      id_(id),
      counted_(counted),
      reject_(reject),
      stream_(std::move(socket)),
      timer_(stream_.get_executor()),
      write_timer_(stream_.get_executor()) {
  remote_ = endpoint_string(stream_.socket());
  error_code ignored;
  stream_.socket().set_option(tcp::no_delay(true), ignored);
  // Synchronous sends return would_block instead of waiting: do_write sends at once
  // (asynchronous operations are unaffected).
  stream_.socket().non_blocking(true, ignored);
  if (reject_) {
    finished_ = true;  // a refusal is not a served connection: cut does not count it
  }
}

session::~session() {
  core_.in_flight_ -= slots_.size();
  if (counted_) {
    --core_.connections_open_;
  }
}

void session::start() {
  asio::post(stream_.get_executor(), [self = shared_from_this()] { self->on_start(); });
}

void session::on_start() {
  if (closed_) {
    return;  // cut before it started
  }
  if (core_.draining_.load()) {
    draining_ = true;
  }
  if (reject_) {
    read_phase_ = read_phase::stopped;
    slot s;
    s.seq = next_seq_++;
    s.ready = true;
    s.close_after = true;
    s.request_id = core_.make_request_id();
    s.received_at = steady::now();
    s.res = make_error_response(503, "SERVICE_UNAVAILABLE",
                                "the server has too many open connections", s.request_id);
    s.res.headers.emplace_back("Retry-After", "1");
    slots_.push_back(std::move(s));
    ++core_.in_flight_;
    do_write();
    return;
  }
  next_read();
}

void session::next_read() {
  if (closed_ || closing_ || read_phase_ == read_phase::stopped || read_op_pending_
      || resume_posted_ || read_phase_ == read_phase::header || read_phase_ == read_phase::body) {
    return;  // reading already, or a resume is on its way
  }
  if (slots_.size() >= std::max<std::size_t>(core_.options_.max_pipelined, 1)) {
    read_phase_ = read_phase::paused;  // resumed by on_write
    return;
  }
  skip_empty_lines();
  if (buffer_.size() > 0) {
    if (dispatching == this) {
      // Called from inside dispatch (its response was written at once): continue from the
      // strand instead of recursing into the next pipelined request.
      resume_posted_ = true;
      asio::post(stream_.get_executor(), [self = shared_from_this()] {
        self->resume_posted_ = false;
        self->next_read();
      });
      return;
    }
    read_header();  // bytes of the next request are already here
    return;
  }
  if (draining_ && !idle()) {
    // Draining and an answer is still due: the response queued last closes the connection.
    read_phase_ = read_phase::stopped;
    return;
  }
  read_phase_ = read_phase::waiting;
  stream_.expires_never();  // our timer_ bounds the wait, and only while idle
  read_op_pending_ = true;
  // On the socket itself, not through tcp_stream (no timeout here): asio then skips the
  // read attempt that could only fail with EAGAIN while the client reads the last response.
  stream_.socket().async_read_some(
      buffer_.prepare(first_read_size),
      [self = shared_from_this()](const error_code& ec, std::size_t n) {
        self->on_first_bytes(ec, n);
      });
  if (idle()) {
    arm_idle_timer();
  }
}

void session::skip_empty_lines() {
  // RFC 9112 §2.2: a server SHOULD ignore empty lines received before a request-line.
  auto data = buffer_.data();
  auto text = std::string_view(static_cast<const char*>(data.data()), data.size());
  auto skip = text.find_first_not_of("\r\n");
  buffer_.consume(skip == std::string_view::npos ? text.size() : skip);
}

void session::on_first_bytes(const error_code& ec, std::size_t n) {
  read_op_pending_ = false;
  if (closed_) {
    return;
  }
  if (closing_) {
    on_linger_read(ec);  // the wait became the linger read: discard what came
    return;
  }
  if (read_phase_ == read_phase::stopped) {
    // stop_reading() cancelled this wait for the last response; bytes that raced in are
    // a request sent after that response was decided: the client sees the close.
    return;
  }
  buffer_.commit(n);
  if (n > 0) {
    skip_empty_lines();
    if (buffer_.size() == 0) {
      next_read();  // only the empty lines some clients send between requests
      return;
    }
    cancel_timer();
    read_header();
    return;
  }
  if (ec == asio::error::eof) {
    // The client closed its side: answer what is queued, then close.
    read_phase_ = read_phase::stopped;
    if (idle()) {
      close_now();
    }
    return;
  }
  if (ec) {
    if (!is_expected_error(ec)) {
      core_.log_->warn("connection {} ({}): read failed: {}", id_, remote_, ec.message());
    }
    close_now();
  }
}

void session::read_header() {
  read_phase_ = read_phase::header;
  request_started_ = steady::now();
  parser_.emplace();
  parser_->header_limit(
      static_cast<std::uint32_t>(std::min<std::size_t>(core_.options_.header_limit, UINT32_MAX)));
  parser_->body_limit(core_.options_.body_limit);
  // Most requests arrive whole in one segment: parse what is buffered first, and read on
  // (under the header timeout) only when the header is incomplete.
  error_code ec;
  const auto used = parser_->put(buffer_.data(), ec);
  buffer_.consume(used);
  if (ec != http::error::need_more) {
    on_header(ec);
    return;
  }
  if (first_request_) {
    // Slowloris bound for a new connection: accept → complete header.
    stream_.expires_at(accepted_at_ + core_.options_.read_header_timeout);
  } else {
    stream_.expires_after(core_.options_.read_header_timeout);
  }
  read_op_pending_ = true;
  http::async_read_header(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](const error_code& ec, std::size_t) { self->on_header(ec); });
}

void session::on_header(const error_code& ec) {
  read_op_pending_ = false;
  if (closed_) {
    return;
  }
  if (ec) {
    on_read_error(ec);
    return;
  }
  first_request_ = false;
  if (core_.options_.websocket.hook && websocket::is_upgrade(parser_->get())) {
    on_upgrade_header();
    return;
  }
  if (parser_->is_done()) {
    dispatch();
    return;
  }
  auto expect = parser_->get()[http::field::expect];
  if (iequals(sv(expect), "100-continue") && idle()) {
    // The client waits for this before sending the body. Only sent when nothing is queued
    // before it (it must not overtake an earlier response); otherwise the client sends the
    // body after its own timeout.
    writing_ = true;
    stream_.expires_after(core_.options_.write_timeout);
    asio::async_write(stream_, asio::buffer(continue_line.data(), continue_line.size()),
                      [self = shared_from_this()](const error_code& wec, std::size_t) {
                        self->on_continue_written(wec);
                      });
  }
  read_phase_ = read_phase::body;
  stream_.expires_after(core_.options_.read_body_timeout);
  read_op_pending_ = true;
  http::async_read(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](const error_code& bec, std::size_t) { self->on_body(bec); });
}

void session::on_body(const error_code& ec) {
  read_op_pending_ = false;
  if (closed_) {
    return;
  }
  if (ec) {
    on_read_error(ec);
    return;
  }
  dispatch();
}

void session::on_continue_written(const error_code& ec) {
  writing_ = false;
  if (closed_) {
    return;
  }
  if (ec) {
    if (ec == beast::error::timeout) {
      ++core_.timed_out_;
    }
    close_now();
    return;
  }
  do_write();
}

void session::on_read_error(const error_code& ec) {
  if (ec == http::error::header_limit) {
    push_error(
        431, "HEADERS_TOO_LARGE",
        "the request header exceeds " + std::to_string(core_.options_.header_limit) + " bytes");
    return;
  }
  if (ec == http::error::body_limit) {
    push_error(413, "PAYLOAD_TOO_LARGE",
               "the request body exceeds " + std::to_string(core_.options_.body_limit) + " bytes");
    return;
  }
  if (is_parse_error(ec)) {
    push_error(400, "BAD_REQUEST", "malformed request: " + ec.message());
    return;
  }
  if (ec == beast::error::timeout) {
    ++core_.timed_out_;
    core_.log_->debug("connection {} ({}): {} timed out", id_, remote_,
                      read_phase_ == read_phase::header ? "request header" : "request body");
  } else if (!is_expected_error(ec)) {
    core_.log_->warn("connection {} ({}): read failed: {}", id_, remote_, ec.message());
  }
  close_now();
}

std::string session::request_id_of(const http::request_parser<http::string_body>::value_type& msg) {
  auto given = sv(msg["X-Request-ID"]);
  if (sane_request_id(given)) {
    return std::string(given);
  }
  return core_.make_request_id();
}

void session::push_error(int status, std::string_view code, std::string message) {
  ++core_.bad_requests_;
  read_phase_ = read_phase::stopped;  // the rest of the stream cannot be trusted
  slot s;
  s.seq = next_seq_++;
  s.ready = true;
  s.close_after = true;
  s.received_at = request_started_;
  if (parser_) {
    const auto& msg = parser_->get();
    if (!msg.method_string().empty()) {
      s.method = std::string(msg.method_string());
    }
    if (!msg.target().empty()) {
      auto target = sv(msg.target());
      s.path = std::string(target.substr(0, target.find('?')));
    }
    s.request_id = request_id_of(msg);
    s.version = msg.version() == 10 ? 10 : 11;
  } else {
    s.request_id = core_.make_request_id();
  }
  s.res = make_error_response(status, code, message, s.request_id);
  parser_.reset();
  slots_.push_back(std::move(s));
  ++core_.in_flight_;
  do_write();
}

void session::on_upgrade_header() {
  if (!parser_->is_done()) {
    // A body on an upgrade request: not a handshake to take over (the linger discards it).
    ++core_.bad_requests_;
    reject_upgrade(
        make_error_response(400, "BAD_REQUEST", "a WebSocket upgrade request must not have a body",
                            request_id_of(parser_->get())),
        request_id_of(parser_->get()));
    return;
  }
  if (!idle()) {
    // Earlier responses go out first (in order); on_write resumes here once they have.
    pending_upgrade_ = true;
    read_phase_ = read_phase::paused;
    return;
  }
  upgrade();
}

void session::upgrade() {
  auto& msg = parser_->get();
  const auto request_id = request_id_of(msg);
  auto reject = [&](int status, std::string_view code, std::string message) {
    reject_upgrade(make_error_response(status, code, message, request_id), request_id);
  };
  if (draining_ || core_.draining_.load() || !core_.accepting_.load()) {
    // Drain began (or the acceptor is closed): WebSocket connections opened now would only
    // be closed again by the hub.
    auto res =
        make_error_response(503, "SERVICE_UNAVAILABLE", "the server is shutting down", request_id);
    res.headers.emplace_back("Retry-After", "1");
    reject_upgrade(std::move(res), request_id);
    return;
  }
  // What Beast's accept would refuse with a plain-text answer: refused here as JSON.
  const auto key = sv(msg[http::field::sec_websocket_key]);
  if (msg.count(http::field::host) == 0 || key.empty() || key.size() > 24) {
    ++core_.bad_requests_;
    reject(400, "BAD_REQUEST", "invalid WebSocket handshake (Host or Sec-WebSocket-Key)");
    return;
  }
  if (sv(msg[http::field::sec_websocket_version]) != "13") {
    auto res = make_error_response(426, "UPGRADE_REQUIRED", "Sec-WebSocket-Version must be 13",
                                   request_id);
    res.headers.emplace_back("Sec-WebSocket-Version", "13");
    reject_upgrade(std::move(res), request_id);
    return;
  }
  if (buffer_.size() > 0) {
    // RFC 6455 §4.1: the client waits for the 101 before sending frames.
    ++core_.bad_requests_;
    reject(400, "BAD_REQUEST", "data sent before the WebSocket handshake completed");
    return;
  }
  ws_upgrade_request req;
  req.target = std::string(msg.target());
  split_target(req.target, req.path, req.query);
  for (const auto& field : msg) {
    req.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  req.remote_addr = remote_;
  req.connection_id = id_;
  req.request_id = request_id;
  ws_upgrade_decision decision;
  try {
    decision = core_.options_.websocket.hook(req);
  } catch (const std::exception& e) {
    core_.log_->error("websocket upgrade hook threw: {}", e.what());
    reject(500, "INTERNAL_ERROR", "internal error");
    return;
  } catch (...) {
    core_.log_->error("websocket upgrade hook threw a non-exception");
    reject(500, "INTERNAL_ERROR", "internal error");
    return;
  }
  if (!decision.accepted) {
    if (decision.rejection.status < 200 || decision.rejection.status > 999) {
      core_.log_->error("websocket upgrade hook rejected with status {}; sent 500",
                        decision.rejection.status);
      reject(500, "INTERNAL_ERROR", "internal error");
      return;
    }
    reject_upgrade(std::move(decision.rejection), request_id);
    return;
  }
  hand_off(std::move(decision.handlers), request_id);
}

void session::reject_upgrade(http_response res, const std::string& request_id) {
  ++core_.ws_->counters_.upgrades_rejected;
  read_phase_ = read_phase::stopped;  // the client asked to switch protocols: no more HTTP
  slot s;
  s.seq = next_seq_++;
  s.ready = true;
  s.close_after = true;
  s.received_at = request_started_;
  const auto& msg = parser_->get();
  s.method = std::string(msg.method_string());
  auto target = sv(msg.target());
  s.path = std::string(target.substr(0, target.find('?')));
  s.request_id = request_id;
  s.version = msg.version() == 10 ? 10 : 11;
  s.res = std::move(res);
  parser_.reset();
  slots_.push_back(std::move(s));
  ++core_.in_flight_;
  do_write();
}

void session::hand_off(ws_handlers handlers, std::string request_id) {
  // Nothing of this session is pending (idle, no read): the socket changes owner. The
  // connection leaves the gate because WebSocket connections never hold up the HTTP drain.
  cancel_timer(true);
  stream_.expires_never();
  error_code ignored;
  stream_.socket().non_blocking(false, ignored);  // the WebSocket side starts from defaults
  auto target = sv(parser_->get().target());
  ws_handoff h{stream_.release_socket(),
               parser_->release(),
               std::move(handlers),
               id_,
               remote_,
               std::move(request_id),
               std::string(target.substr(0, target.find('?'))),
               request_started_};
  parser_.reset();
  read_phase_ = read_phase::stopped;
  closed_ = true;  // every completion of this session just returns from now on
  closing_ = true;
  finished_ = true;
  buffer_ = {};
  hold_.release();
  if (counted_) {
    --core_.connections_open_;
    counted_ = false;
  }
  core_.unregister_session(id_);
  start_ws_session(core_.ws_, std::move(h));
}

void session::dispatch() {
  auto& msg = parser_->get();
  http_request req;
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  split_target(req.target, req.path, req.query);
  req.version = msg.version() == 10 ? 10 : 11;
  for (const auto& field : msg) {
    req.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  req.body = std::move(msg.body());
  req.remote_addr = remote_;
  req.keep_alive = msg.keep_alive();
  req.connection_id = id_;
  req.request_id = request_id_of(msg);
  req.received_at = request_started_;
  parser_.reset();

  slot s;
  s.seq = next_seq_++;
  s.close_after = !req.keep_alive;
  s.head = req.method == "HEAD";
  s.version = req.version;
  s.method = req.method;
  s.path = req.path;
  s.request_id = req.request_id;
  s.received_at = req.received_at;
  const auto seq = s.seq;
  slots_.push_back(std::move(s));
  ++core_.in_flight_;
  if (!req.keep_alive) {
    read_phase_ = read_phase::stopped;
  } else {
    read_phase_ = read_phase::paused;  // next_read() below decides
  }

  auto state = std::make_shared<responder>(weak_from_this(), seq, req.request_id, core_.lifeline_,
                                           core_.log_);
  respond_fn respond = [state](http_response res) { state->respond(std::move(res)); };
  auto* outer = std::exchange(dispatching, this);
  try {
    core_.handler_(std::move(req), std::move(respond));
  } catch (const std::exception& e) {
    core_.log_->error("handler threw: {}", e.what());
    state->respond(
        make_error_response(500, "INTERNAL_ERROR", "internal error", slots_.back().request_id));
  } catch (...) {
    core_.log_->error("handler threw a non-exception");
    state->respond(
        make_error_response(500, "INTERNAL_ERROR", "internal error", slots_.back().request_id));
  }
  state.reset();  // if the handler kept no copy, the 500 is stored now
  do_write();     // an answer the handler gave at once
  dispatching = outer;
  next_read();
}

void session::respond(std::uint64_t seq, http_response res) {
  if (closed_ || slots_.empty()) {
    return;
  }
  const auto first = slots_.front().seq;
  if (seq < first || seq - first >= slots_.size()) {
    return;
  }
  auto& s = slots_[seq - first];
  if (s.ready) {
    return;
  }
  s.ready = true;
  s.res = std::move(res);
  if (dispatching != this) {
    do_write();
  }
}

void session::stop_reading() {
  read_phase_ = read_phase::stopped;
  if (read_op_pending_) {
    // Only the "waiting" read can be pending here (no request bytes buffered); no write is
    // pending (do_write checks writing_ first), so cancel() touches just that read.
    error_code ignored;
    stream_.socket().cancel(ignored);
  }
  cancel_timer();
}

void session::do_write() {
  // A loop, not recursion: each response the kernel takes at once is finished here and the
  // next ready one (pipelining) follows.
  while (!writing_ && !closed_ && !closing_ && !slots_.empty() && slots_.front().ready) {
    auto& s = slots_.front();
    bool last = s.close_after;
    if (!last && slots_.size() == 1) {
      if (read_phase_ == read_phase::stopped) {
        last = true;
      } else if (draining_ && !pending_upgrade_
                 && (read_phase_ == read_phase::waiting || read_phase_ == read_phase::paused)
                 && buffer_.size() == 0) {
        // Draining and no further request has begun to arrive: this response is the last.
        stop_reading();
        last = true;
      }
    }
    // Counted as the write begins: a client can read the response before its completion runs.
    ++core_.requests_total_;
    if (core_.draining_.load()) {
      ++core_.served_during_drain_;
    }
    const int status = (s.res.status >= 100 && s.res.status <= 999) ? s.res.status : 500;
    const bool bodiless = status < 200 || status == 204 || status == 304;
    render_head(s, last, status, bodiless);
    const auto buffers = write_buffers(s, bodiless);
    const auto total = asio::buffer_size(buffers);
    writing_ = true;
    error_code ec;
    const auto sent = stream_.socket().write_some(buffers, ec);
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
      if (!after_write(ec, last)) {
        return;
      }
      continue;
    }
    if (sent < total) {
      write_rest(sent, last, bodiless);  // the kernel's buffer is full: the rest asynchronously
      return;
    }
    if (!after_write({}, last)) {
      return;
    }
  }
}

void session::write_rest(std::size_t sent, bool last, bool bodiless) {
  auto buffers = write_buffers(slots_.front(), bodiless);
  for (auto& b : buffers) {
    const auto skip = std::min(sent, b.size());
    b += skip;
    sent -= skip;
  }
  const auto generation = ++write_generation_;
  write_timer_.expires_after(core_.options_.write_timeout);
  write_timer_.async_wait([self = shared_from_this(), generation](const error_code& ec) {
    if (ec || self->closed_ || !self->writing_ || generation != self->write_generation_) {
      return;
    }
    ++self->core_.timed_out_;
    self->core_.log_->debug("connection {} ({}): response write timed out", self->id_,
                            self->remote_);
    self->close_now();  // the write completes with operation_aborted
  });
  asio::async_write(stream_.socket(), buffers,
                    [self = shared_from_this(), last](const error_code& ec, std::size_t) {
                      ++self->write_generation_;
                      self->write_timer_.cancel();
                      self->on_write(ec, last);
                    });
}

void session::render_head(slot& s, bool last, int status, bool bodiless) {
  auto& r = s.res;
  auto& h = head_;
  h.clear();
  h += s.version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  char code[4] = {static_cast<char>('0' + status / 100), static_cast<char>('0' + status / 10 % 10),
                  static_cast<char>('0' + status % 10), ' '};
  h.append(code, 4);
  h += sv(http::obsolete_reason(static_cast<http::status>(status)));
  h += "\r\n";
  bool has_server = false;
  for (auto& [name, value] : r.headers) {
    if (iequals(name, "Content-Length") || iequals(name, "Connection")
        || iequals(name, "Transfer-Encoding") || iequals(name, "X-Request-ID")) {
      continue;  // framing belongs to the server
    }
    if (!is_token(name) || !is_field_value(value)) {
      core_.log_->warn("request {}: dropped invalid response header '{}'", s.request_id, name);
      continue;
    }
    has_server = has_server || iequals(name, "Server");
    h += name;
    h += ": ";
    h += value;
    h += "\r\n";
  }
  if (!has_server) {
    h += "Server: ";
    h += core_.options_.server_name;
    h += "\r\n";
  }
  h += "X-Request-ID: ";
  h += s.request_id;
  h += "\r\n";
  if (last) {
    h += "Connection: close\r\n";
  } else if (s.version == 10) {
    h += "Connection: keep-alive\r\n";
  }
  if (!bodiless) {
    char length[24];
    const auto end = std::to_chars(length, length + sizeof length, r.body_bytes().size()).ptr;
    h += "Content-Length: ";
    h.append(length, end);
    h += "\r\n";
  }
  h += "\r\n";
}

std::array<asio::const_buffer, 2> session::write_buffers(slot& s, bool bodiless) const {
  std::array<asio::const_buffer, 2> b{asio::buffer(head_), asio::const_buffer()};
  if (!bodiless && !s.head) {
    const auto bytes = s.res.body_bytes();
    b[1] = asio::buffer(bytes.data(), bytes.size());
  }
  return b;
}

void session::on_write(const error_code& ec, bool last) {
  if (after_write(ec, last)) {
    do_write();
  }
}

bool session::after_write(const error_code& ec, bool last) {
  writing_ = false;
  if (slots_.empty()) {
    return false;  // cannot happen: a write is always for the front slot
  }
  slot done = std::move(slots_.front());
  slots_.pop_front();
  --core_.in_flight_;
  const int status = done.res.status >= 100 && done.res.status <= 999 ? done.res.status : 500;
  if (ec) {
    if (ec == beast::error::timeout) {
      ++core_.timed_out_;
    }
    if (!closed_) {
      auto level = is_expected_error(ec) ? spdlog::level::debug : spdlog::level::warn;
      core_.log_->log(level, "{} {} {} not sent: {} request_id={} remote={}", done.method,
                      done.path, status, ec.message(), done.request_id, remote_);
      close_now();
    }
    return false;
  }
  if (core_.log_->should_log(spdlog::level::info)) {  // (no clock read when it is off)
    core_.log_->info("{} {} {} {:.1f}ms request_id={} remote={}", done.method, done.path, status,
                     millis_since(done.received_at), done.request_id, remote_);
  }
  if (closed_) {
    return false;
  }
  if (last) {
    begin_linger();
    return false;
  }
  if (pending_upgrade_ && idle()) {
    pending_upgrade_ = false;
    upgrade();
    return false;
  }
  if (read_phase_ == read_phase::paused) {
    next_read();
  } else if (read_phase_ == read_phase::waiting && idle()) {
    arm_idle_timer();
  } else if (read_phase_ == read_phase::stopped && idle()) {
    begin_linger();  // e.g. client EOF while this (non-last) response was written
    return false;
  }
  return true;
}

void session::begin_linger() {
  if (closing_ || closed_) {
    return;
  }
  closing_ = true;
  read_phase_ = read_phase::stopped;
  finished_ = true;
  error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (ec) {
    close_now();
    return;
  }
  arm_timer(timer_role::linger, steady::now() + core_.options_.close_linger_timeout);
  if (!read_op_pending_) {
    buffer_.clear();
    start_discard_read();
  }
  // else: the pending "waiting" read finishes into on_first_bytes → on_linger_read.
}

void session::start_discard_read() {
  stream_.expires_never();
  read_op_pending_ = true;
  stream_.async_read_some(asio::buffer(discard_),
                          [self = shared_from_this()](const error_code& ec, std::size_t) {
                            self->read_op_pending_ = false;
                            self->on_linger_read(ec);
                          });
}

void session::on_linger_read(const error_code& ec) {
  if (closed_) {
    return;
  }
  if (!ec || ec == asio::error::operation_aborted) {
    start_discard_read();  // input discarded (or a cancelled wait): keep reading until EOF
    return;
  }
  close_now();  // EOF (the client closed too) or an error: done
}

void session::arm_idle_timer() {
  const auto now = steady::now();
  auto deadline = first_request_ ? accepted_at_ + core_.options_.read_header_timeout
                                 : now + core_.options_.keep_alive_idle_timeout;
  if (draining_) {
    deadline = std::min(deadline, now + core_.options_.drain_idle_window);
  }
  arm_timer(timer_role::idle, deadline);
}

void session::arm_timer(timer_role role, steady::time_point deadline) {
  timer_role_ = role;
  timer_deadline_ = deadline;
  if (timer_waiting_ && timer_.expiry() <= deadline) {
    return;  // the pending wait ends first; on_timer waits on for the rest
  }
  start_timer_wait(deadline);
}

void session::start_timer_wait(steady::time_point until) {
  timer_waiting_ = true;
  const auto generation = ++timer_generation_;
  timer_.expires_at(until);  // a pending wait ends with operation_aborted (superseded)
  timer_.async_wait([self = shared_from_this(), generation](const error_code& ec) {
    self->on_timer(ec, generation);
  });
}

void session::cancel_timer(bool release) {
  timer_role_ = timer_role::none;
  if (release && timer_waiting_) {
    timer_waiting_ = false;
    ++timer_generation_;
    timer_.cancel();
  }
}

void session::on_timer(const error_code& ec, std::uint64_t generation) {
  if (generation != timer_generation_) {
    return;  // superseded by a later wait, or released
  }
  timer_waiting_ = false;
  if (ec || closed_ || timer_role_ == timer_role::none) {
    return;
  }
  if (steady::now() < timer_deadline_) {
    start_timer_wait(timer_deadline_);  // the deadline moved later since this wait began
    return;
  }
  const auto role = std::exchange(timer_role_, timer_role::none);
  if (role == timer_role::linger) {
    close_now();
    return;
  }
  if (role != timer_role::idle || !idle() || read_phase_ != read_phase::waiting
      || buffer_.size() > 0) {
    return;  // stale: the connection got busy in the meantime
  }
  if (draining_) {
    ++core_.idle_closed_by_drain_;
    core_.log_->debug("connection {} ({}): closed idle by drain", id_, remote_);
  } else {
    ++core_.timed_out_;
    core_.log_->debug("connection {} ({}): closed idle ({})", id_, remote_,
                      first_request_ ? "no request" : "keep-alive timeout");
  }
  // The pending wait becomes the linger read (FIN now; discard whatever still comes).
  begin_linger();
}

void session::on_drain() {
  if (draining_ || closed_) {
    return;
  }
  draining_ = true;
  if (closing_) {
    return;
  }
  if (read_phase_ == read_phase::waiting && idle() && buffer_.size() == 0) {
    // Idle keep-alive: a window for a request already on the wire, then close.
    const auto window = steady::now() + core_.options_.drain_idle_window;
    if (timer_role_ != timer_role::idle || window < timer_deadline_) {
      arm_timer(timer_role::idle, window);
    }
  }
  // Busy connections: do_write makes the response queued last the closing one; a request
  // being read is finished first (next_read stops reading after it).
}

void session::hard_close() {
  if (closed_) {
    return;
  }
  if (!slots_.empty()) {
    core_.log_->warn("connection {} ({}): cut with {} unanswered request(s)", id_, remote_,
                     slots_.size());
  }
  close_now();
}

void session::close_now() {
  if (closed_) {
    return;
  }
  closed_ = true;
  closing_ = true;
  finished_ = true;
  cancel_timer(true);
  write_timer_.cancel();
  stream_.close();  // pending operations complete with operation_aborted
  // Drop the registry's reference last; the caller's completion handler still holds one.
  core_.unregister_session(id_);
}

// ---------------------------------------------------------------------------------------
// http_server_core

http_server_core::http_server_core(http_server_options options, handler_fn handler)
    : options_(std::move(options)),
      handler_(std::move(handler)),
      log_(si::config::logger("http_gateway")),
      ws_(std::make_shared<ws_registry>(validated(options_.websocket), options_.server_name, log_)),
      acceptor_(asio::make_strand(io_context_)),
      accept_retry_(acceptor_.get_executor()) {
  std::random_device rd;
  id_nonce_ = rd();
}

http_server_core::~http_server_core() {
  stop();
}

std::string http_server_core::make_request_id() {
  // "%08x-%012llx" (nonce, counter) without printf's cost on every request.
  auto hex = [](std::string& out, std::uint64_t v, std::size_t min_width) {
    char digits[16];
    const auto end = std::to_chars(digits, digits + sizeof digits, v, 16).ptr;
    const auto n = static_cast<std::size_t>(end - digits);
    out.append(n < min_width ? min_width - n : 0, '0');
    out.append(digits, n);
  };
  std::string id;
  id.reserve(21);
  hex(id, id_nonce_, 8);
  id += '-';
  hex(id, next_request_id_.fetch_add(1), 12);
  return id;
}

std::uint16_t http_server_core::start() {
  if (started_.exchange(true)) {
    throw std::logic_error("http_server::start called twice");
  }
  tcp::endpoint endpoint;
  try {
    error_code ec;
    auto address = asio::ip::make_address(options_.host, ec);
    if (!ec) {
      endpoint = tcp::endpoint(address, options_.port);
    } else {
      tcp::resolver resolver(io_context_);
      auto results = resolver.resolve(options_.host, std::to_string(options_.port));
      endpoint = results.begin()->endpoint();
    }
    std::lock_guard lock(acceptor_mutex_);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(asio::socket_base::max_listen_connections);
    acceptor_.non_blocking(true);  // on_accept_ready and close_acceptor accept until EAGAIN
    port_ = acceptor_.local_endpoint().port();
    accepting_ = true;
    do_accept();
  } catch (const boost::system::system_error& e) {
    throw std::system_error(
        e.code().value(), std::system_category(),
        "http_server: cannot listen on " + options_.host + ":" + std::to_string(options_.port));
  }
  work_.emplace(io_context_.get_executor());
  const unsigned n = options_.io_threads > 0 ? options_.io_threads
                                             : std::max(1u, std::thread::hardware_concurrency());
  ws_->set_io_threads(n);
  for (unsigned i = 0; i < n; ++i) {
    threads_.emplace_back([this] {
      name_this_thread("si-http-io");
      for (;;) {
        try {
          io_context_.run();
          return;
        } catch (const std::exception& e) {
          log_->error("io thread: unhandled exception: {}", e.what());
        }
      }
    });
  }
  log_->info("listening on {}:{} ({} io threads)", endpoint.address().to_string(), port_.load(), n);
  return port_;
}

void http_server_core::do_accept() {
  acceptor_.async_wait(tcp::acceptor::wait_read,
                       [this](const error_code& ec) { on_accept_ready(ec); });
}

void http_server_core::on_accept_ready(const error_code& ready_ec) {
  // The accept and the registration happen under acceptor_mutex_, as close_acceptor's
  // backlog sweep does: every connection the kernel handed over is either registered here
  // before close_acceptor runs, or still in the backlog for its sweep. (With async_accept
  // the socket was accepted on an io thread and registered later by the handler: a handler
  // that ran after close_acceptor and begin_drain found the gate closed and closed a
  // connection whose request had been sent before the drain: a request lost.)
  std::lock_guard lock(acceptor_mutex_);
  if (!acceptor_.is_open() || ready_ec == asio::error::operation_aborted) {
    return;
  }
  error_code ec = ready_ec;
  if (!ec) {
    // A bounded batch per wake-up: the lock is not held for a whole flood of connections.
    constexpr std::size_t accept_batch = 16;
    accept_backlog(accept_batch, ec);
  }
  if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
    // E.g. EMFILE: retry shortly instead of spinning on the same error.
    log_->warn("accept failed: {}; retrying in 100 ms", ec.message());
    accept_retry_.expires_after(std::chrono::milliseconds(100));
    accept_retry_.async_wait([this](const error_code& wait_ec) {
      std::lock_guard retry_lock(acceptor_mutex_);
      if (!wait_ec && acceptor_.is_open()) {
        do_accept();
      }
    });
    return;
  }
  do_accept();
}

std::size_t http_server_core::accept_backlog(std::size_t limit, error_code& ec) {
  std::size_t started = 0;
  ec = {};
  while (started < limit) {
    strand_socket socket(asio::make_strand(io_context_));
    acceptor_.accept(socket, ec);  // non-blocking (set in start)
    if (ec == asio::error::connection_aborted) {
      ec = {};  // the client gave up before it was accepted: the next one
      continue;
    }
    if (ec) {
      break;
    }
    mark_not_duplicated(socket);
    start_connection(std::move(socket));
    ++started;
  }
  return started;
}

void http_server_core::start_connection(strand_socket socket) {
  auto hold = connections_.enter();
  if (!hold) {
    // Accepted after begin_drain (begin_drain without close_acceptor first): not served.
    error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    log_->debug("connection accepted after drain began: closed");
    return;
  }
  bool reject = false;
  auto open = connections_open_.load();
  do {
    if (open >= options_.max_connections) {
      reject = true;
      break;
    }
  } while (!connections_open_.compare_exchange_weak(open, open + 1));
  if (reject) {
    ++refused_over_limit_;
  } else {
    ++connections_total_;
  }
  const auto id = next_connection_id_.fetch_add(1);
  auto s =
      std::make_shared<session>(*this, std::move(socket), std::move(*hold), id, !reject, reject);
  if (reject) {
    log_->warn("connection {} ({}) refused: {} connections open", id, s->remote(),
               options_.max_connections);
  }
  {
    std::lock_guard lock(sessions_mutex_);
    sessions_.emplace(id, s);
  }
  // Registered before it starts, so begin_drain/cut_remaining never miss it; their posts
  // queue behind on_start on the strand.
  s->start();
}

void http_server_core::unregister_session(std::uint64_t id) {
  std::shared_ptr<session> keep;  // destroyed outside the lock
  std::lock_guard lock(sessions_mutex_);
  if (auto it = sessions_.find(id); it != sessions_.end()) {
    keep = std::move(it->second);
    sessions_.erase(it);
  }
}

std::vector<std::shared_ptr<session>> http_server_core::snapshot() {
  std::vector<std::shared_ptr<session>> all;
  std::lock_guard lock(sessions_mutex_);
  all.reserve(sessions_.size());
  for (auto& [id, s] : sessions_) {
    all.push_back(s);
  }
  return all;
}

std::size_t http_server_core::close_acceptor() {
  std::size_t taken = 0;
  {
    std::lock_guard lock(acceptor_mutex_);
    if (!acceptor_.is_open()) {
      return 0;
    }
    // Clients already in the kernel backlog completed their handshake and may have sent a
    // request: take them before closing (closing would reset them).
    error_code ec;
    taken = accept_backlog(std::numeric_limits<std::size_t>::max(), ec);
    acceptor_.close(ec);
    accept_retry_.cancel();
    accepting_ = false;
  }
  from_backlog_ += taken;
  log_->info("acceptor closed: new connections are refused ({} taken from the backlog)", taken);
  return taken;
}

void http_server_core::begin_drain() {
  if (draining_.exchange(true)) {
    return;
  }
  // Before notifying sessions because one accepted from now on must not be served.
  connections_.close();
  auto all = snapshot();
  log_->info("drain begins: {} connection(s) open, {} request(s) in flight", all.size(),
             in_flight_.load());
  for (auto& s : all) {
    auto ex = s->executor();
    asio::post(ex, [s = std::move(s)] { s->on_drain(); });
  }
}

void http_server_core::async_wait_drained(std::function<void()> callback) {
  connections_.on_drained(std::move(callback));
}

std::size_t http_server_core::cut_remaining() {
  auto all = snapshot();
  std::size_t n = 0;
  for (auto& s : all) {
    if (s->claim_cut()) {
      ++n;
    }
    auto ex = s->executor();
    asio::post(ex, [s = std::move(s)] { s->hard_close(); });
  }
  cut_ += n;
  if (n > 0) {
    log_->warn("graceful timeout: cut {} connection(s)", n);
  }
  return n;
}

void http_server_core::stop() {
  if (stopped_.exchange(true)) {
    return;
  }
  {
    // Before stopping the threads because a respond_fn posting now must find a live
    // io_context; after this, every respond_fn is a no-op.
    std::unique_lock lock(lifeline_->mutex);
    lifeline_->alive = false;
  }
  {
    // Before stopping the threads because a ws_connection posting now must find a live
    // io_context; after this, send/close/drop on any handle post nothing.
    std::unique_lock lock(ws_->life_mutex_);
    ws_->alive_ = false;
  }
  {
    std::lock_guard lock(acceptor_mutex_);
    error_code ignored;
    acceptor_.close(ignored);
    accepting_ = false;
  }
  work_.reset();
  io_context_.stop();
  for (auto& t : threads_) {
    if (t.get_id() == std::this_thread::get_id()) {
      log_->critical("http_server::stop called from an io thread; not joining it");
      t.detach();
    } else if (t.joinable()) {
      t.join();
    }
  }
  threads_.clear();
  // After joining because a WebSocket session is only touched on its strand: with no io
  // thread left, this thread may drop the connections still open (and run their on_closed).
  ws_->drop_all();
  // Sessions with no pending operation die here; the rest die with io_context_'s handlers.
  std::unordered_map<std::uint64_t, std::shared_ptr<session>> remaining;
  {
    std::lock_guard lock(sessions_mutex_);
    remaining.swap(sessions_);
  }
  remaining.clear();
  if (started_.load()) {
    log_->info("stopped: {} request(s) served", requests_total_.load());
  }
}

http_server_stats http_server_core::stats() const {
  http_server_stats s;
  s.connections_open = connections_open_.load();
  s.connections_total = connections_total_.load();
  s.requests_total = requests_total_.load();
  s.in_flight = in_flight_.load();
  s.served_during_drain = served_during_drain_.load();
  s.idle_closed_by_drain = idle_closed_by_drain_.load();
  s.cut = cut_.load();
  s.refused_over_limit = refused_over_limit_.load();
  s.bad_requests = bad_requests_.load();
  s.timed_out = timed_out_.load();
  s.from_backlog = from_backlog_.load();
  s.accepting = accepting_.load();
  s.draining = draining_.load();
  const auto& w = ws_->counters_;
  s.ws_open = w.open.load();
  s.ws_accepted = w.accepted.load();
  s.ws_upgrades_rejected = w.upgrades_rejected.load();
  s.ws_messages_sent = w.messages_sent.load();
  s.ws_messages_received = w.messages_received.load();
  s.ws_messages_dropped = w.messages_dropped.load();
  s.ws_overflow_closes = w.overflow_closes.load();
  s.ws_oversize_closes = w.oversize_closes.load();
  s.ws_binary_closes = w.binary_closes.load();
  s.ws_timed_out = w.timed_out.load();
  s.ws_close_frames_sent = w.close_frames_sent.load();
  return s;
}

}  // namespace detail

// ---------------------------------------------------------------------------------------
// http_server

http_server::http_server(http_server_options options, handler_fn handler)
    : core_(std::make_unique<detail::http_server_core>(std::move(options), std::move(handler))) {}

http_server::~http_server() {
  stop();
}

std::uint16_t http_server::start() {
  return core_->start();
}

std::size_t http_server::close_acceptor() {
  return core_->close_acceptor();
}

void http_server::begin_drain() {
  core_->begin_drain();
}

void http_server::async_wait_drained(std::function<void()> callback) {
  core_->async_wait_drained(std::move(callback));
}

std::size_t http_server::cut_remaining() {
  return core_->cut_remaining();
}

void http_server::stop() {
  core_->stop();
}

http_server_stats http_server::stats() const {
  return core_->stats();
}

std::uint16_t http_server::port() const {
  return core_->port();
}

}  // namespace si::net
