#include "net/ws_connection.hpp"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstdlib>
#include <new>

#include <algorithm>
#include <array>
#include <exception>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/websocket/stream.hpp>

#include "net/ws_transport.hpp"

namespace si::net {

bool ws_close_code_sendable(std::uint16_t code) noexcept {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014)
         || (code >= 3000 && code <= 4999);
}

std::string_view to_string(ws_send_result result) noexcept {
  switch (result) {
    case ws_send_result::queued:
      return "queued";
    case ws_send_result::closed:
      return "closed";
    case ws_send_result::overflow:
      return "overflow";
  }
  return "unknown";
}

ws_upgrade_decision ws_upgrade_decision::accept(ws_handlers handlers) {
  ws_upgrade_decision d;
  d.accepted = true;
  d.handlers = std::move(handlers);
  return d;
}

ws_upgrade_decision ws_upgrade_decision::reject(http_response response) {
  ws_upgrade_decision d;
  d.rejection = std::move(response);
  return d;
}

ws_upgrade_decision ws_upgrade_decision::reject(int status, std::string_view code,
                                                std::string_view message,
                                                const ws_upgrade_request& request) {
  return reject(make_error_response(status, code, message, request.request_id));
}

namespace detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using steady = std::chrono::steady_clock;

namespace {

/// A FIFO of shared messages that allocates nothing while it holds at most one (an idle
/// connection's queue costs no memory, and a broadcast to connections that keep up
/// allocates nothing per connection: the message goes into the inline slot, which the io
/// thread empties again). std::deque allocates on construction.
class message_queue {
 public:
  bool empty() const noexcept {
    return !first_ && head_ == rest_.size();
  }

  void push(std::shared_ptr<const std::string> message) {
    if (!first_ && head_ == rest_.size()) {
      first_ = std::move(message);  // empty: the inline slot
    } else {
      rest_.push_back(std::move(message));  // behind the slot (or behind older ones)
    }
  }

  /// The oldest message (requires !empty()): the inline slot when set, else the vector's.
  std::shared_ptr<const std::string> pop() {
    if (first_) {
      return std::move(first_);
    }
    auto message = std::move(rest_[head_++]);
    if (head_ == rest_.size()) {
      clear_rest();
    } else if (head_ >= 64 && head_ * 2 >= rest_.size()) {
      rest_.erase(rest_.begin(), rest_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
    return message;
  }

  /// Discards every message; returns how many and their bytes.
  std::pair<std::size_t, std::size_t> discard() {
    std::size_t count = 0;
    std::size_t bytes = 0;
    if (first_) {
      ++count;
      bytes += first_->size();
      first_.reset();
    }
    for (auto i = head_; i < rest_.size(); ++i) {
      ++count;
      bytes += rest_[i]->size();
    }
    clear_rest();
    return {count, bytes};
  }

 private:
  void clear_rest() {
    rest_.clear();
    head_ = 0;
    if (rest_.capacity() > 64) {
      rest_.shrink_to_fit();
    }
  }

  // Invariant: when first_ is set it is the oldest message (the vector only takes messages
  // while the slot is full or the vector still holds older ones).
  std::shared_ptr<const std::string> first_;
  std::vector<std::shared_ptr<const std::string>> rest_;
  std::size_t head_ = 0;
};

/// Errors that the peer or our own closing cause in normal operation: logged at debug.
bool is_expected_error(const error_code& ec) {
  return ec == asio::error::operation_aborted || ec == asio::error::connection_reset
         || ec == asio::error::broken_pipe || ec == asio::error::eof
         || ec == asio::error::connection_aborted || ec == asio::error::not_connected
         || ec == asio::error::bad_descriptor || ec == websocket::error::closed
         || ec == beast::error::timeout;
}

/// A close frame's reason, held inline: at most 123 bytes (RFC 6455 5.5), so closing
/// allocates nothing per connection (a shutdown closes all of them at once, from the hub's
/// thread, and the io threads would free what it allocated).
class close_reason {
 public:
  static constexpr std::size_t max_size = 123;

  /// `reason` cut to what fits, not inside a UTF-8 sequence.
  void assign(std::string_view reason) noexcept {
    std::size_t n = reason.size();
    if (n > max_size) {
      n = max_size;
      while (n > 0 && (static_cast<unsigned char>(reason[n]) & 0xc0) == 0x80) {
        --n;  // reason[n] continues a sequence: cut before the sequence's first byte
      }
    }
    std::copy_n(reason.data(), n, text_.data());
    size_ = static_cast<std::uint8_t>(n);
  }
  std::string_view view() const noexcept {
    return {text_.data(), size_};
  }

 private:
  std::array<char, max_size> text_{};
  std::uint8_t size_ = 0;
};

/// A completion handler that asio treats as a continuation of the handler running now
/// (the asio_handler_is_continuation hook): a write that completes at once (nearly every
/// write) queues its completion on the calling io thread, with no lock of the shared queue
/// and no wake-up of another io thread per message. The pump always runs on an io thread.
template <class F>
struct continuation {
  F f;
  template <class... Args>
  void operator()(Args&&... args) {
    f(std::forward<Args>(args)...);
  }
  friend bool asio_handler_is_continuation(continuation*) {
    return true;
  }
};
template <class F>
continuation(F) -> continuation<F>;

double millis_since(steady::time_point start) {
  return std::chrono::duration<double, std::milli>(steady::now() - start).count();
}

using strand_type = strand_executor;  // the connection's, given by the HTTP server

/// The header of an unmasked, unfragmented text frame of `size` payload bytes (RFC 6455 5.2:
/// the server never masks) into `out` (10 bytes at most); returns its length.
std::size_t text_frame_header(unsigned char* out, std::size_t size) noexcept {
  out[0] = 0x81;  // FIN, opcode 1 (text)
  if (size <= 125) {
    out[1] = static_cast<unsigned char>(size);
    return 2;
  }
  if (size <= 0xffff) {
    out[1] = 126;
    out[2] = static_cast<unsigned char>(size >> 8);
    out[3] = static_cast<unsigned char>(size & 0xff);
    return 4;
  }
  out[1] = 127;
  for (int i = 0; i < 8; ++i) {
    out[2 + i] =
        static_cast<unsigned char>((static_cast<std::uint64_t>(size) >> (56 - 8 * i)) & 0xff);
  }
  return 10;
}

/// One non-blocking sendmsg of `iov` (an interrupted call is repeated): the bytes the kernel
/// took, or -1 with errno set (EAGAIN or EWOULDBLOCK: nothing taken, the buffers are full).
ssize_t send_now(int fd, iovec* iov, std::size_t count) noexcept {
  msghdr mh{};
  mh.msg_iov = iov;
  mh.msg_iovlen = count;
  ssize_t n = 0;
  do {
    n = ::sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n;
}

/// One text frame written by send_text_frame: how much of it the kernel took.
struct frame_write {
  std::size_t header_size = 0;  ///< of the header built into the caller's buffer
  std::size_t total = 0;        ///< header and message
  std::size_t done = 0;         ///< bytes taken (0 when nothing or on an error)
  int error = 0;                ///< the write failed with it (EAGAIN is no error: nothing taken)

  bool whole() const noexcept {
    return done == total;
  }

  /// Records send_now's result `n` (errno read at once when it is -1).
  void took(ssize_t n) noexcept {
    if (n > 0) {
      done = static_cast<std::size_t>(n);
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      error = errno;
    }
  }
};

/// A text frame of `message` (its header built into `header`, which must live until the
/// frame is written) in one non-blocking sendmsg of header and shared message (send_now).
frame_write send_text_frame(int fd, std::array<unsigned char, 10>& header,
                            const std::string& message) noexcept {
  frame_write w;
  w.header_size = text_frame_header(header.data(), message.size());
  w.total = w.header_size + message.size();
  iovec iov[2] = {{header.data(), w.header_size},
                  {const_cast<char*>(message.data()), message.size()}};
  w.took(send_now(fd, iov, 2));
  return w;
}

/// Our close frame (RFC 6455 5.5.1): FIN + opcode 8, unmasked, the code in network order,
/// then the reason (close_reason cut it to 123 bytes).
struct close_frame {
  std::array<char, 2 + 2 + close_reason::max_size> bytes{};
  std::size_t size = 0;

  close_frame(std::uint16_t code, std::string_view reason) noexcept {
    const auto payload = 2 + std::min<std::size_t>(reason.size(), close_reason::max_size);
    bytes[0] = static_cast<char>(0x88);
    bytes[1] = static_cast<char>(payload);
    bytes[2] = static_cast<char>(code >> 8);
    bytes[3] = static_cast<char>(code & 0xff);
    std::copy_n(reason.data(), payload - 2, bytes.data() + 4);
    size = 2 + payload;
  }
};

/// Our close frame in one non-blocking send on `fd` (send_now). Taken whole, it is counted
/// and the sending side ends at once: the client reads the close frame and the end of the
/// stream together, answers and is done, instead of waiting for the server to read its
/// answer and only then send the FIN (the answer still arrives: a half-closed connection
/// receives). Else `rest` gets what the kernel did not take (all of it when it took nothing,
/// which is no error; nothing on an error).
frame_write send_close_frame_now(int fd, std::uint16_t code, std::string_view reason,
                                 ws_counters& counters, std::string& rest) {
  const close_frame frame(code, reason);
  frame_write w;
  w.total = frame.size;
  iovec iov{const_cast<char*>(frame.bytes.data()), frame.size};
  w.took(send_now(fd, &iov, 1));
  if (w.error != 0) {
    return w;
  }
  if (w.whole()) {
    ++counters.close_frames_sent;
    ::shutdown(fd, SHUT_WR);
  } else {
    rest.assign(frame.bytes.data() + w.done, frame.size - w.done);
  }
  return w;
}

/// What the session's writer and its socket share (ws_socket below). It lives in the session,
/// next to the fields the writer reads for every message: the socket itself lives inside
/// Beast's stream, two cache lines away, and a broadcast to 10,000 connections touches each
/// connection's memory once, cold (the two loads it took there were a third of the writer's
/// own time in a profile).
struct ws_write_state {
  ws_handle* handle = nullptr;  ///< the session's handle (set by the session's constructor)
  int fd = -1;                  ///< the socket's descriptor, set at the opening: valid until
                                ///< finish() or stream_ended (every close of the socket sets one)
  unsigned beast_writes = 0;    ///< Beast writes begun whose completion has not run
  bool data_pending = false;    ///< one of the session's frames is only partly written
  /// Our close frame began (ws_session::send_close_frame, written like a data frame): nothing
  /// may follow it on the wire (RFC 6455 5.5.1), so from now on Beast's writes are completed
  /// at once without writing. Beast still reads the peer's answer: its read operation takes
  /// the answer for a close the peer started and "echoes" it, which ws_socket drops, then
  /// tears the connection down (teardown) and completes the read with
  /// websocket::error::closed, the clean end. A pong Beast would write for a ping read after
  /// our close frame is dropped the same way.
  bool after_close = false;
  bool stream_ended = false;  ///< the peer's close frame was read, Beast sent a close frame
                              ///< or closed the socket: no frame of ours may follow
};

/// Under the handle's mutex: no direct write (ws_handle::idle_fd_) from now on. Returns
/// false while a data frame a direct write left unfinished waits for the session (whatever
/// would be written now must wait behind it).
bool revoke_direct_writes(ws_handle& handle) noexcept;

/// Under the handle's mutex: a close pass wrote our close frame (ws_handle::direct_close_).
bool direct_close_written(ws_handle& handle) noexcept;

/// The WebSocket session's socket: the upgraded TCP socket itself (moved, not re-registered:
/// a socket asio took over by assign() is deregistered with an extra epoll_ctl at its close),
/// as a type of its own so that the close handshake ends with our teardown (below) instead of
/// Beast's and so that Beast's frames and the session's data frames stay apart.
class ws_socket : public strand_socket {
  using base = strand_socket;

 public:
  ws_socket(strand_socket&& socket, ws_write_state& shared)
      : base(std::move(socket)), st_(&shared) {}

  // The session's frames and Beast's. The session writes its data frames and its own close
  // frame itself, straight to the socket (ws_session::pump: one non-blocking send, with no
  // Beast or asio write operation per frame) - and while its writer is idle, a fan-out's
  // task may write queued data frames the same way (ws_handle::idle_fd_, under the handle's
  // mutex) - and Beast writes the other control frames (pong, keep-alive ping, the answer to
  // a close the peer started, close 1009 for a message over the limit) through
  // async_write_some below. Three rules keep frames whole on the wire: the session starts a
  // frame only while no Beast write is in flight (beast_writes); while one of its frames is
  // only partly written (set_data_pending, or a direct write's rest handed to the session)
  // Beast's next write waits for it (deferred, then run_deferred()); and Beast's write, like
  // the session's, first revokes the direct writes. After our close frame Beast writes
  // nothing (ws_write_state::after_close).

  /// The socket as asio's type: writes through it bypass the rules above (the session's
  /// own rest of a frame).
  base& data_stream() noexcept {
    return *this;
  }

  /// The stream ended: the peer's close frame was read (the session's control callback), or
  /// Beast tears the connection down or closes the socket (teardown, beast_close_socket) -
  /// called before the close, so that no direct write reaches the descriptor once it is
  /// freed. No frame of ours follows.
  void mark_ended() noexcept {
    st_->stream_ended = true;
    revoke_direct_writes(*st_->handle);
  }

  /// Called (on the strand, from the completion of Beast's last write in flight) when no
  /// Beast write is left; the session uses it to resume its data frames. `owner` (the
  /// session) is kept alive by each of Beast's writes in flight: their completions touch this
  /// socket, and a keep-alive ping's holds nothing else of the session.
  void on_beast_idle(std::function<void()> fn, std::weak_ptr<void> owner) {
    on_beast_idle_ = std::move(fn);
    owner_ = std::move(owner);
  }

  /// A data frame is partly written (true) or done (false).
  void set_data_pending(bool pending) noexcept {
    st_->data_pending = pending;
  }

  /// Starts Beast's write that waited behind a data frame, if any.
  void run_deferred() {
    if (auto d = std::move(deferred_)) {
      d->run();
    }
  }

  /// Beast's writes pass here (asio::async_write calls the stream's async_write_some).
  template <class ConstBufferSequence, class WriteHandler>
  void async_write_some(const ConstBufferSequence& buffers, WriteHandler&& handler) {
    if (!st_->after_close && direct_close_written(*st_->handle)) {
      // A close pass wrote our close frame (the session adopts it when it next runs): this
      // write, inside Beast's operation, is already one after it.
      st_->after_close = true;
    }
    if (st_->after_close) {
      // Completed as if written (posted: never inside the initiating call).
      asio::post(get_executor(),
                 beast::bind_front_handler(std::forward<WriteHandler>(handler), error_code{},
                                           asio::buffer_size(buffers)));
      return;
    }
    if (st_->data_pending || !revoke_direct_writes(*st_->handle)) {
      // Behind the data frame being written: started again by run_deferred().
      deferred_ = make_deferred([this, buffers, h = std::forward<WriteHandler>(handler)]() mutable {
        async_write_some(buffers, std::move(h));
      });
      return;
    }
    if (asio::buffer_size(buffers) >= 2) {
      unsigned char head = 0;
      asio::buffer_copy(asio::buffer(&head, 1), buffers);
      if (head == 0x88) {
        st_->stream_ended = true;  // Beast's close frame (an answer, or 1009): nothing after it
      }
    }
    ++st_->beast_writes;
    base::async_write_some(buffers, tracked<std::decay_t<WriteHandler>>{
                                        std::forward<WriteHandler>(handler), this, owner_.lock()});
  }

 private:
  /// Beast's write completion, counted: when it was the last one in flight, on_beast_idle
  /// runs first (it only posts), then Beast's operation goes on (a composed write that is not
  /// done starts its next write here, synchronously, before anything posted can run).
  template <class Handler>
  struct tracked {
    Handler handler;
    ws_socket* socket;
    std::shared_ptr<void> keep;  ///< the owner of `socket`
    void operator()(const error_code& ec, std::size_t n) {
      if (--socket->st_->beast_writes == 0 && socket->on_beast_idle_) {
        socket->on_beast_idle_();
      }
      handler(ec, n);
    }
  };

  struct deferred_write {
    virtual ~deferred_write() = default;
    virtual void run() = 0;
  };
  template <class Fn>
  static std::unique_ptr<deferred_write> make_deferred(Fn fn) {
    struct impl final : deferred_write {
      explicit impl(Fn f) : fn(std::move(f)) {}
      void run() override {
        fn();
      }
      Fn fn;
    };
    return std::make_unique<impl>(std::move(fn));
  }

  ws_write_state* const st_;  ///< in the session, which outlives every use (see on_beast_idle)
  std::function<void()> on_beast_idle_;
  std::weak_ptr<void> owner_;
  std::unique_ptr<deferred_write> deferred_;
};

/// The end of the TCP connection after the close handshake, found by Beast through ADL
/// (an exact match for ws_socket beats Beast's template for any basic_stream_socket).
/// Beast's server teardown shuts the sending side down, then reads until the client's FIN
/// and only then closes: a system call, a wake-up and a round trip per connection more. RFC
/// 6455 (7.1.1) has the server close the TCP connection as soon as both close frames are
/// exchanged; close() still sends everything written before it, then the FIN.
void teardown(beast::role_type, ws_socket& socket, error_code& ec) {
  socket.mark_ended();
  socket.close(ec);
}

/// How Beast closes the socket when it fails the connection (a timeout, a stream error):
/// found by ADL like teardown; the session's writer learns it without a look into Beast.
void beast_close_socket(ws_socket& socket) {
  socket.mark_ended();
  error_code ignored;
  socket.close(ignored);
}

template <class Handler>
void async_teardown(beast::role_type role, ws_socket& socket, Handler&& handler) {
  error_code ec;
  teardown(role, socket, ec);
  // Completed as if by post (an asynchronous operation never completes inside its
  // initiating call).
  asio::post(socket.get_executor(), beast::bind_front_handler(std::forward<Handler>(handler), ec));
}

}  // namespace

/// The handles' memory (each one block: std::allocate_shared's control block with the
/// handle), carved from 2 MiB chunks the kernel is asked to back with a transparent huge page
/// (madvise(MADV_HUGEPAGE); without THP they are ordinary pages). A fan-out and a close pass
/// touch each connection's handle and nothing else of it, once, after the connections sat
/// idle: on the VMs measured each 4 KiB page left alone for a fraction of a second cost
/// microseconds on its next touch, 10,000 handles lay on ~1,250 such pages, and a huge page
/// costs that once (docs/websocket-transport.md, "Handles in huge pages"). Blocks are kept
/// for reuse, never returned (a server keeps its peak connections' handles: ~0.5 KiB each).
/// Not under AddressSanitizer or ThreadSanitizer, whose own allocators check each handle.
class handle_pool {
 public:
  static handle_pool& instance() {
    static auto* pool = new handle_pool;  // never destroyed: a handle may outlive statics
    return *pool;
  }

  void* allocate(std::size_t size) {
    if (size > max_block) {
      return ::operator new(size);
    }
    std::lock_guard lock(mutex_);
    if (free_ != nullptr) {
      auto* block = free_;
      free_ = free_->next;
      return block;
    }
    if (end_ - cur_ < static_cast<std::ptrdiff_t>(max_block)) {
      auto* chunk = static_cast<char*>(std::aligned_alloc(chunk_size, chunk_size));
      if (chunk == nullptr) {
        throw std::bad_alloc();
      }
      ::madvise(chunk, chunk_size, MADV_HUGEPAGE);  // EINVAL without THP: ordinary pages
      cur_ = chunk;
      end_ = chunk + chunk_size;
    }
    auto* block = cur_;
    cur_ += max_block;
    return block;
  }

  void deallocate(void* p, std::size_t size) noexcept {
    if (size > max_block) {
      ::operator delete(p);
      return;
    }
    std::lock_guard lock(mutex_);
    free_ = ::new (p) free_block{free_};
  }

  /// Every block is this large (one handle with its control block fits: checked below).
  static constexpr std::size_t max_block = 512;
  static constexpr std::size_t chunk_size = std::size_t{2} << 20;

 private:
  struct free_block {
    free_block* next;
  };
  std::mutex mutex_;
  free_block* free_ = nullptr;
  char* cur_ = nullptr;  ///< the rest of the chunk being carved
  char* end_ = nullptr;
};

/// std::allocate_shared's allocator for the handles (handle_pool).
template <class T>
struct handle_allocator {
  using value_type = T;
  handle_allocator() = default;
  template <class U>
  handle_allocator(const handle_allocator<U>&) noexcept {}  // NOLINT: rebinding
  T* allocate(std::size_t n) {
    return static_cast<T*>(handle_pool::instance().allocate(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept {
    handle_pool::instance().deallocate(p, n * sizeof(T));
  }
  template <class U>
  bool operator==(const handle_allocator<U>&) const noexcept {
    return true;
  }
};

class ws_session;

/// What a ws_connection_ptr points to: the thread-safe half of a connection. It holds the
/// outgoing queue and the close request under a mutex; the session (the io half, on the
/// strand) drains the queue. It never owns the session, so it may outlive the server.
class ws_handle final : public ws_connection, public std::enable_shared_from_this<ws_handle> {
 public:
  ws_handle(std::uint64_t id, std::string remote, std::shared_ptr<ws_registry> registry,
            asio::io_context::executor_type io)
      : ws_connection(id, std::move(remote)), registry_(std::move(registry)), io_(io) {
    transport_ = true;
  }

  ws_send_result send(std::shared_ptr<const std::string> message) override;
  void close(std::uint16_t code, std::string reason) override;

  /// send() without the wake-up post: `wake` is set when the writer is idle and the session
  /// must be kicked (by send() itself or a ws_wake_batch).
  ws_send_result enqueue(std::shared_ptr<const std::string> message, bool& wake);
  void drop() override;
  bool is_open() const override;

  enum class state : std::uint8_t { open, closing, closed };

  /// Starts closing with `code` unless already closing; false when not the first.
  bool request_close(std::uint16_t code, std::string_view reason);

  /// Posts `fn(session)` onto the session's strand; false once the session or the server is
  /// gone.
  template <class Fn>
  bool post_to_session(Fn fn);

  const std::shared_ptr<ws_registry> registry_;
  const asio::io_context::executor_type io_;  ///< the server's io_context (ws_wake_batch)
  std::weak_ptr<ws_session> session_;         // set once, before the handle is shared

  // Guarded by mutex_ (the session reads and updates them on its strand).
  mutable std::mutex mutex_;
  state state_ = state::open;
  message_queue queue_;
  std::size_t queued_messages_ = 0;  ///< in queue_ plus the one being written
  std::size_t queued_bytes_ = 0;     ///< bytes of those
  bool pump_pending_ = false;        ///< a pump is posted or the writer is busy
  bool close_requested_ = false;
  bool drop_requested_ = false;
  std::uint16_t close_code_ = ws_close::normal;
  close_reason close_reason_;

  // Direct writes (write_directly, from a fan-out's task on any io thread). The session
  // publishes its socket's descriptor here while its writer is idle: open, nothing of its own
  // or of Beast's in flight or deferred, no close begun, the stream not ended. Whatever is
  // about to write or close the socket on the strand clears it first, under mutex_, and a
  // direct write happens under mutex_ only: the two never overlap, and a direct write never
  // reaches a descriptor that was closed (and perhaps reused).
  int idle_fd_ = -1;
  /// The rest of a data frame a direct write left unfinished: the session writes it first.
  struct unfinished_frame {
    std::shared_ptr<const std::string> message;
    std::array<unsigned char, 10> header{};
    std::size_t header_size = 0;
    std::size_t done = 0;  ///< bytes of header + message already written
  };
  std::optional<unfinished_frame> handoff_;
  int handoff_errno_ = 0;          ///< a direct write failed with it: the session ends
  std::uint64_t direct_sent_ = 0;  ///< messages direct writes wrote (the session's count)
  /// A close pass wrote our close frame itself (close_directly), as it writes data frames
  /// (idle_fd_): the session has not seen it yet and adopts it the next time it runs
  /// (ws_session::adopt_direct_close). Set once; from then on nothing else may be written.
  bool direct_close_ = false;
  /// The rest of that close frame when the kernel took it only in part: the session writes it.
  std::string close_rest_;

  /// What the session adopts of a direct close (ws_session::adopted_direct_close).
  struct direct_close_taken {
    std::uint16_t code = 0;  ///< the frame's
    std::string rest;        ///< what of it the kernel did not take (empty: all)
    int failed = 0;          ///< the errno its write failed with (0: none)
  };
  /// With mutex_ held: a direct close, taken over by the session (once), or nothing.
  std::optional<direct_close_taken> take_direct_close() {
    if (!direct_close_) {
      return std::nullopt;
    }
    return direct_close_taken{close_code_, std::exchange(close_rest_, {}),
                              std::exchange(handoff_errno_, 0)};
  }
};

static_assert(sizeof(ws_handle) + 32 <= handle_pool::max_block,
              "a handle with its control block must fit handle_pool's blocks");

/// A new handle: in handle_pool's blocks, except under the sanitizers.
template <class... Args>
std::shared_ptr<ws_handle> make_handle(Args&&... args) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return std::make_shared<ws_handle>(std::forward<Args>(args)...);
#else
  return std::allocate_shared<ws_handle>(handle_allocator<ws_handle>{},
                                         std::forward<Args>(args)...);
#endif
}

/// The io half of a connection, on its strand: the Beast stream, the read loop, the write
/// pump that drains the handle's queue one message at a time, and the close handshake.
///
/// It ends exactly once (finish): on the peer's close (clean), our close answered (clean),
/// a protocol failure (1009), a timeout, an I/O error, drop() or the server's stop. Then
/// the socket is closed, the handle is marked closed, on_closed runs and the registry lets
/// the session go (it dies when its last pending completion has run).
class ws_session : public std::enable_shared_from_this<ws_session> {
 public:
  ws_session(std::shared_ptr<ws_registry> registry, ws_handoff handoff);
  ~ws_session();
  ws_session(const ws_session&) = delete;
  ws_session& operator=(const ws_session&) = delete;

  /// Links the handle back to this session; before start().
  void attach() {
    handle_->session_ = weak_from_this();
  }

  /// Writes the 101 response; on the strand.
  void start();

  /// A send() queued a message while the writer was idle; on the strand.
  void on_kick() {
    pump();
  }

  /// close() or an overflow asked for the close handshake; on the strand.
  void on_close_requested();

  /// drop(); on the strand.
  void on_drop() {
    finish(ws_close::abnormal, false, "dropped");
  }

  /// Server stop, with no io thread left: drops the connection on the calling thread.
  void drop_on_stop() {
    finish(ws_close::abnormal, false, "server stopped");
  }

  /// The connection's strand.
  const strand_type& executor() const {
    return strand_;
  }

  /// Runs `fn(*this)` on the session's strand: at once when called on an io thread with the
  /// strand idle, else queued on the strand.
  template <class Fn>
  static void dispatch(std::shared_ptr<ws_session> s, Fn fn) {
    const auto& strand = s->strand_;  // a member: alive as long as the lambda holds `s`
    asio::dispatch(strand, [s = std::move(s), fn = std::move(fn)]() mutable { fn(*s); });
  }

 private:
  void on_accept(const error_code& ec);
  void do_read();
  void on_read(const error_code& ec);
  void pump();
  /// Writes the rest of writing_ (header_ and header_size_ its frame header) from byte
  /// `done` of the frame on, asynchronously; nothing else is written until it is out.
  void write_rest(std::size_t done);
  void on_data_written(const error_code& ec);
  /// After a data frame's write failed (not at `finish`): the end, logged as a write error.
  void on_write_failed(const error_code& ec);
  /// Writes our close frame (the queue is flushed, no Beast write is in flight), then shuts
  /// the sending side down; the read loop reads the answer.
  void send_close_frame(std::uint16_t code, std::string_view reason);
  /// After our close frame began: Beast's idle timeout and keep-alive pings off.
  void stop_beast_timeouts();
  /// Writes `rest`, the unwritten rest of our close frame, asynchronously; then the sending
  /// side is shut down (on_close_frame_written).
  void write_close_rest(std::string rest);
  void on_close_frame_written(const error_code& ec);
  /// Catches up with a close frame a close pass wrote itself (close_directly,
  /// ws_handle::direct_close_): on the strand, first thing in every entry point that reads
  /// or writes the close state (the read's completion, a close request, the close deadline;
  /// the pump does it under its own lock).
  void adopt_direct_close();
  /// adopt_direct_close's half after the handle's mutex (a failed write ends the connection,
  /// reported with the frame's code as when the session's own write fails).
  void adopted_direct_close(ws_handle::direct_close_taken taken);
  void arm_close_deadline();

 public:
  /// The close deadline (ws_registry::arm_close_deadline) passed; on the strand.
  void on_close_deadline();

 private:
  /// Our own close(): the handle stops taking messages, the queue is flushed, then the close
  /// frame goes out (bounded by close_timeout from now).
  void close_from_session(std::uint16_t code, std::string reason);
  void finish(std::uint16_t code, bool clean, std::string_view why);
  /// True once the peer's close frame (with a code) was read: the close handshake is
  /// complete even if the peer then does not close TCP.
  bool peer_answered() const {
    return ws_.reason().code != websocket::close_code::none;
  }

  const std::shared_ptr<ws_registry> registry_;
  ws_registry& reg_;
  const strand_type strand_;
  const std::shared_ptr<ws_handle> handle_;
  ws_handlers handlers_;
  websocket::stream<ws_socket> ws_;
  beast::flat_buffer read_buffer_;
  std::optional<beast::http::request<beast::http::string_body>> request_;
  const std::string request_id_;
  const std::string path_;
  const steady::time_point received_at_;
  steady::time_point opened_at_;

  std::shared_ptr<const std::string> writing_;  ///< the frame whose rest is being written
  std::array<unsigned char, 10> header_{};      ///< its frame header (lives until written)
  std::size_t header_size_ = 0;
  bool waiting_beast_ = false;  ///< data frames wait for Beast's control frame to be out
  bool opened_ = false;
  bool reading_ = false;
  bool close_deadline_armed_ = false;  ///< the registry's close deadline is armed
  bool close_sent_ = false;            ///< our close frame is being written or was written
  std::uint16_t close_code_ = ws_close::normal;
  ws_write_state wstate_;  ///< shared with ws_'s socket (which only keeps its address)
  bool finished_ = false;
  std::uint64_t sent_ = 0;
  std::uint64_t received_ = 0;
};

// ---------------------------------------------------------------------------------------
// ws_handle

namespace {

bool revoke_direct_writes(ws_handle& handle) noexcept {
  std::lock_guard lock(handle.mutex_);
  handle.idle_fd_ = -1;
  return !handle.handoff_;
}

bool direct_close_written(ws_handle& handle) noexcept {
  std::lock_guard lock(handle.mutex_);
  return handle.direct_close_;
}

}  // namespace

template <class Fn>
bool ws_handle::post_to_session(Fn fn) {
  std::shared_lock lock(registry_->life_mutex_);
  if (!registry_->alive_) {
    return false;
  }
  auto s = session_.lock();
  if (!s) {
    return false;
  }
  auto ex = s->executor();
  asio::post(ex, [s = std::move(s), fn = std::move(fn)]() mutable { fn(*s); });
  return true;
}

ws_send_result ws_handle::send(std::shared_ptr<const std::string> message) {
  if (!message) {
    throw std::invalid_argument("ws_connection::send: null message");
  }
  bool wake = false;
  const auto r = enqueue(std::move(message), wake);
  if (r != ws_send_result::queued || !wake) {
    return r;  // refused, or the writer is busy / a pump is already posted
  }
  return post_to_session([](ws_session& s) { s.on_kick(); }) ? ws_send_result::queued
                                                             : ws_send_result::closed;
}

ws_send_result ws_handle::enqueue(std::shared_ptr<const std::string> message, bool& wake) {
  const auto& o = registry_->options_;
  wake = false;
  bool overflowed = false;
  std::size_t discarded = 0;
  std::size_t queued_before = 0;
  std::size_t bytes_before = 0;
  {
    std::lock_guard lock(mutex_);
    if (state_ != state::open) {
      return ws_send_result::closed;
    }
    const auto size = message->size();
    const bool over_count = queued_messages_ >= o.max_queued_messages;
    const bool over_bytes = queued_messages_ > 0 && queued_bytes_ + size > o.max_queued_bytes;
    if (!over_count && !over_bytes) {
      queue_.push(std::move(message));
      ++queued_messages_;
      queued_bytes_ += size;
      wake = !std::exchange(pump_pending_, true);
    } else {
      // Before the close request because the close frame must not wait behind messages the
      // client is not reading; the one being written (if any) still completes first.
      overflowed = true;
      queued_before = queued_messages_;
      bytes_before = queued_bytes_;
      auto [count, bytes] = queue_.discard();
      discarded = count;
      queued_messages_ -= count;
      queued_bytes_ -= bytes;
      state_ = state::closing;
      close_requested_ = true;
      close_code_ = o.overflow_close_code;
      close_reason_.assign("send queue overflow");
    }
  }
  if (!overflowed) {
    return ws_send_result::queued;
  }
  auto& c = registry_->counters_;
  ++c.overflow_closes;
  c.messages_dropped += 1 + discarded;
  registry_->log_->info(
      "websocket {} ({}): send queue overflow ({} messages, {} bytes queued); closing with {}",
      id(), remote_addr(), queued_before, bytes_before, o.overflow_close_code);
  post_to_session([](ws_session& s) { s.on_close_requested(); });
  return ws_send_result::overflow;
}

bool ws_handle::request_close(std::uint16_t code, std::string_view reason) {
  std::lock_guard lock(mutex_);
  if (state_ != state::open) {
    return false;
  }
  state_ = state::closing;
  close_requested_ = true;
  close_code_ = code;
  close_reason_.assign(reason);
  return true;
}

void ws_handle::close(std::uint16_t code, std::string reason) {
  if (!ws_close_code_sendable(code)) {
    throw std::invalid_argument("ws_connection::close: code " + std::to_string(code)
                                + " may not be sent");
  }
  if (request_close(code, reason)) {
    post_to_session([](ws_session& s) { s.on_close_requested(); });
  }
}

void ws_handle::drop() {
  {
    std::lock_guard lock(mutex_);
    if (state_ == state::closed || std::exchange(drop_requested_, true)) {
      return;
    }
    if (state_ == state::open) {
      state_ = state::closing;
    }
  }
  post_to_session([](ws_session& s) { s.on_drop(); });
}

bool ws_handle::is_open() const {
  std::lock_guard lock(mutex_);
  return state_ == state::open;
}

// ---------------------------------------------------------------------------------------
// ws_session

ws_session::ws_session(std::shared_ptr<ws_registry> registry, ws_handoff handoff)
    : registry_(std::move(registry)),
      reg_(*registry_),
      strand_(handoff.socket.get_executor()),
      handle_(make_handle(handoff.id, std::move(handoff.remote), registry_,
                          strand_.get_inner_executor())),
      handlers_(std::move(handoff.handlers)),
      ws_(std::move(handoff.socket), wstate_),
      request_(std::move(handoff.request)),
      request_id_(std::move(handoff.request_id)),
      path_(std::move(handoff.path)),
      received_at_(handoff.received_at) {
  wstate_.handle = handle_.get();
}

ws_session::~ws_session() {
  if (opened_ && !finished_) {
    --reg_.counters_.open;
  }
}

void ws_session::start() {
  const auto& o = reg_.options_;
  websocket::stream_base::timeout timeouts{};
  timeouts.handshake_timeout = o.handshake_timeout;
  timeouts.idle_timeout = o.idle_timeout;
  timeouts.keep_alive_pings = o.keep_alive_pings;
  ws_.set_option(timeouts);
  websocket::permessage_deflate no_deflate;  // off: no zlib state per connection
  no_deflate.server_enable = false;
  no_deflate.client_enable = false;
  ws_.set_option(no_deflate);
  // The peer's close frame, as Beast reads it (before it answers and tears down): no frame
  // of ours may follow. `this` is alive: the read that calls it holds the session.
  ws_.control_callback([this](websocket::frame_type kind, beast::string_view) {
    if (kind == websocket::frame_type::close) {
      ws_.next_layer().mark_ended();
    }
  });
  ws_.read_message_max(o.max_message_size);
  ws_.auto_fragment(false);
  // Data frames wait while Beast writes a control frame; its last completion resumes them
  // (posted: the completion runs before Beast's operation goes on). `this` is alive there:
  // the socket keeps the session (its owner) while a Beast write is in flight.
  ws_.next_layer().on_beast_idle(
      [this] {
        if (std::exchange(waiting_beast_, false)) {
          asio::post(strand_, [self = shared_from_this()] { self->pump(); });
        }
      },
      weak_from_this());
  // The decorator runs inside async_accept (the response is built there): `this` is alive.
  ws_.set_option(websocket::stream_base::decorator([this](websocket::response_type& res) {
    res.set(beast::http::field::server, reg_.server_name_);
    res.set("X-Request-ID", request_id_);
  }));
  ws_.async_accept(*request_,
                   [self = shared_from_this()](const error_code& ec) { self->on_accept(ec); });
}

void ws_session::on_accept(const error_code& ec) {
  request_.reset();
  if (finished_) {
    return;
  }
  if (ec) {
    if (ec == beast::error::timeout) {
      ++reg_.counters_.timed_out;
    }
    auto level = is_expected_error(ec) ? spdlog::level::debug : spdlog::level::warn;
    reg_.log_->log(level, "GET {} 101 not sent: {} request_id={} remote={}", path_, ec.message(),
                   request_id_, handle_->remote_addr());
    finish(ws_close::abnormal, false, "handshake failed");
    return;
  }
  opened_ = true;
  wstate_.fd = ws_.next_layer().native_handle();
  opened_at_ = steady::now();
  ++reg_.counters_.open;
  ++reg_.counters_.accepted;
  reg_.log_->info("GET {} 101 {:.1f}ms request_id={} remote={}", path_, millis_since(received_at_),
                  request_id_, handle_->remote_addr());
  if (handlers_.on_open) {
    try {
      handlers_.on_open(handle_);
    } catch (const std::exception& e) {
      reg_.log_->error("websocket {}: on_open threw: {}", handle_->id(), e.what());
      close_from_session(ws_close::internal_error, "internal error");
    } catch (...) {
      reg_.log_->error("websocket {}: on_open threw a non-exception", handle_->id());
      close_from_session(ws_close::internal_error, "internal error");
    }
  }
  do_read();
  pump();  // messages queued before the handshake completed
}

void ws_session::do_read() {
  if (finished_ || reading_) {
    return;
  }
  reading_ = true;
  ws_.async_read(read_buffer_, [self = shared_from_this()](const error_code& ec, std::size_t) {
    self->on_read(ec);
  });
}

void ws_session::on_read(const error_code& ec) {
  reading_ = false;
  if (finished_) {
    return;
  }
  adopt_direct_close();
  if (ec) {
    if (ec == websocket::error::closed) {
      // The peer's close frame, answered by Beast: a clean close (or the answer to ours).
      const auto code = static_cast<std::uint16_t>(ws_.reason().code);
      finish(close_sent_ ? close_code_ : (code == 0 ? ws_close::no_status : code), true,
             close_sent_ ? "closed" : "closed by peer");
      return;
    }
    if (ec == websocket::error::message_too_big) {
      // Beast sent close 1009 and tore the connection down.
      ++reg_.counters_.oversize_closes;
      finish(ws_close::too_big, false, "message too big");
      return;
    }
    if (ec == beast::error::timeout) {
      ++reg_.counters_.timed_out;
      finish(close_sent_ ? close_code_ : ws_close::abnormal, close_sent_ && peer_answered(),
             close_sent_ ? "close timeout" : "idle timeout");
      return;
    }
    if (!is_expected_error(ec)) {
      reg_.log_->warn("websocket {} ({}): read failed: {}", handle_->id(), handle_->remote_addr(),
                      ec.message());
    }
    finish(close_sent_ ? close_code_ : ws_close::abnormal, false, ec.message());
    return;
  }
  if (close_sent_) {
    // After our close frame the peer's messages are discarded (RFC 6455 1.4); the read goes
    // on for its answer.
    read_buffer_.consume(read_buffer_.size());
    do_read();
    return;
  }
  if (!ws_.got_text()) {
    read_buffer_.clear();
    read_buffer_.shrink_to_fit();
    ++reg_.counters_.binary_closes;
    close_from_session(ws_close::unsupported_data, "binary messages are not supported");
    return;
  }
  const auto data = read_buffer_.data();
  std::string message(static_cast<const char*>(data.data()), data.size());
  read_buffer_.consume(read_buffer_.size());
  if (read_buffer_.capacity() > 4096) {
    read_buffer_.shrink_to_fit();  // an idle connection keeps no large buffer
  }
  ++received_;
  ++reg_.counters_.messages_received;
  if (handlers_.on_text && handle_->is_open()) {
    try {
      handlers_.on_text(handle_, std::move(message));
    } catch (const std::exception& e) {
      reg_.log_->error("websocket {}: on_text threw: {}", handle_->id(), e.what());
      close_from_session(ws_close::internal_error, "internal error");
      return;
    } catch (...) {
      reg_.log_->error("websocket {}: on_text threw a non-exception", handle_->id());
      close_from_session(ws_close::internal_error, "internal error");
      return;
    }
  }
  do_read();
}

void ws_session::pump() {
  if (finished_ || !opened_ || writing_ || close_sent_) {
    return;  // after the handshake, on_accept pumps; after a partial write, its completion
  }
  std::size_t written = 0;  // the message written at once in the last round, to account
  std::size_t written_bytes = 0;
  for (;;) {
    std::shared_ptr<const std::string> message;
    std::uint16_t code = 0;
    std::optional<close_reason> reason;  // set (copied out of the handle) only to close
    std::optional<ws_handle::unfinished_frame> rest;
    std::optional<ws_handle::direct_close_taken> direct_close;
    int failed = 0;
    {
      std::lock_guard lock(handle_->mutex_);
      handle_->queued_messages_ -= written;
      handle_->queued_bytes_ -= written_bytes;
      handle_->idle_fd_ = -1;  // the session writes (or waits): no direct write meanwhile
      if ((direct_close = handle_->take_direct_close())) {
        // Written by a close pass since this session last looked (the queue was empty, so
        // nothing was written in this round): nothing more of ours goes out.
      } else if (handle_->handoff_errno_ != 0) {
        failed = std::exchange(handle_->handoff_errno_, 0);
      } else if (handle_->handoff_) {
        rest = std::move(handle_->handoff_);
        handle_->handoff_.reset();
      } else if (handle_->queue_.empty() && !handle_->close_requested_) {
        handle_->pump_pending_ = false;  // idle: the next send() posts a pump
        if (wstate_.beast_writes == 0 && !wstate_.data_pending && !wstate_.stream_ended) {
          handle_->idle_fd_ = wstate_.fd;  // a fan-out may write directly until revoked
        }
        return;
      } else if (wstate_.beast_writes > 0) {
        waiting_beast_ = true;  // pump_pending_ stays set: resumed by on_beast_idle
        return;
      } else if (!handle_->queue_.empty()) {
        message = handle_->queue_.pop();
      } else {
        code = handle_->close_code_;
        reason = handle_->close_reason_;  // 124 bytes, no allocation
      }
    }
    if (direct_close) {
      adopted_direct_close(std::move(*direct_close));
      return;
    }
    if (failed != 0) {
      on_write_failed(error_code(failed, boost::system::system_category()));
      return;
    }
    if (rest) {
      // A direct write's frame the kernel took only in part (write_directly): its rest first.
      writing_ = std::move(rest->message);
      header_ = rest->header;
      header_size_ = rest->header_size;
      write_rest(rest->done);
      return;
    }
    if (!message) {
      if (!wstate_.stream_ended) {
        send_close_frame(code, reason->view());
      }
      // else the stream ended (the peer's close frame was read, or Beast failed the
      // connection): Beast answers and tears down, on_read concludes.
      return;
    }
    if (wstate_.stream_ended) {
      // The stream ended (the peer's close frame was read and Beast answers it, or Beast
      // failed the connection; on_read concludes): nothing may follow. Dropped with the
      // queue when the session ends.
      std::lock_guard lock(handle_->mutex_);
      --handle_->queued_messages_;
      handle_->queued_bytes_ -= message->size();
      return;
    }
    // One frame, written at once when the kernel takes it (nearly always): the header and
    // the shared message in one non-blocking sendmsg.
    const auto w = send_text_frame(wstate_.fd, header_, *message);
    header_size_ = w.header_size;
    if (w.whole()) {
      ++sent_;
      ++reg_.counters_.messages_sent;
      written = 1;
      written_bytes = message->size();
      continue;
    }
    if (w.error != 0) {
      const error_code ec(w.error, boost::system::system_category());
      {
        std::lock_guard lock(handle_->mutex_);
        --handle_->queued_messages_;
        handle_->queued_bytes_ -= message->size();
      }
      on_write_failed(ec);
      return;
    }
    // The kernel took a part or nothing (the client is not reading fast enough): the rest
    // asynchronously, and nothing else (Beast's frames included) until it is out.
    writing_ = std::move(message);
    write_rest(w.done);
    return;
  }
}

void ws_session::write_rest(std::size_t done) {
  const auto head_done = std::min(done, header_size_);
  const auto body_done = done > header_size_ ? done - header_size_ : 0;
  std::array<asio::const_buffer, 2> rest{
      asio::buffer(header_.data() + head_done, header_size_ - head_done),
      asio::buffer(writing_->data() + body_done, writing_->size() - body_done)};
  auto& socket = ws_.next_layer();
  socket.set_data_pending(true);
  asio::async_write(socket.data_stream(), rest,
                    continuation{[self = shared_from_this()](const error_code& ec, std::size_t) {
                      self->on_data_written(ec);
                    }});
}

void ws_session::on_data_written(const error_code& ec) {
  ws_.next_layer().set_data_pending(false);
  const auto size = writing_->size();
  writing_.reset();
  if (finished_) {
    return;  // finish() already emptied the queue accounting
  }
  {
    std::lock_guard lock(handle_->mutex_);
    --handle_->queued_messages_;
    handle_->queued_bytes_ -= size;
  }
  if (ec) {
    if (ec == asio::error::operation_aborted) {
      return;  // the connection is ending: the read or close completion concludes
    }
    on_write_failed(ec);
    return;
  }
  ++sent_;
  ++reg_.counters_.messages_sent;
  ws_.next_layer().run_deferred();  // Beast's frame that waited behind this one
  pump();
}

void ws_session::on_write_failed(const error_code& ec) {
  auto level = is_expected_error(ec) ? spdlog::level::debug : spdlog::level::warn;
  reg_.log_->log(level, "websocket {} ({}): write failed: {}", handle_->id(),
                 handle_->remote_addr(), ec.message());
  finish(close_sent_ ? close_code_ : ws_close::abnormal, false, ec.message());
}

void ws_session::close_from_session(std::uint16_t code, std::string reason) {
  if (handle_->request_close(code, reason)) {
    on_close_requested();
  }
}

void ws_session::on_close_requested() {
  if (finished_) {
    return;
  }
  adopt_direct_close();
  arm_close_deadline();
  pump();  // the close frame goes out once the queue is flushed
  if (opened_) {
    do_read();  // the answer comes through the read loop (a no-op while a read is pending)
  }
}

void ws_session::arm_close_deadline() {
  if (close_deadline_armed_) {
    return;
  }
  close_deadline_armed_ = true;
  reg_.arm_close_deadline(handle_->id(), strand_.get_inner_executor());
}

void ws_session::on_close_deadline() {
  if (finished_) {
    return;
  }
  adopt_direct_close();
  ++reg_.counters_.timed_out;
  std::uint16_t code = close_code_;
  if (!close_sent_) {
    std::lock_guard lock(handle_->mutex_);
    code = handle_->close_code_;
  }
  finish(code, close_sent_ && peer_answered(), "close timeout");
}

void ws_session::send_close_frame(std::uint16_t code, std::string_view reason) {
  close_sent_ = true;
  close_code_ = code;
  // Set here, not through the socket (which keeps wstate_'s address): the socket lives in
  // Beast's stream, and touching it cost a cache miss per connection in the close pass (half
  // of this function's own samples, perf annotate), which one io thread writes alone.
  wstate_.after_close = true;
  stop_beast_timeouts();
  // On the descriptor, not through the socket: the same, without touching Beast's stream.
  std::string rest;
  const auto w = send_close_frame_now(wstate_.fd, code, reason, reg_.counters_, rest);
  if (w.error != 0) {
    on_write_failed(error_code(w.error, boost::system::system_category()));
  } else if (!w.whole()) {
    write_close_rest(std::move(rest));  // the client is not reading: the rest asynchronously
  }
}

void ws_session::stop_beast_timeouts() {
  // Beast's idle timeout and keep-alive pings off: its pings would follow our close frame
  // (they would be dropped, see ws_socket), and its idle timeout is not the bound of the
  // closing handshake: the close deadline (armed when the close was asked for) is. Its
  // timer's pending wait is left alone: when it fires, with the idle timeout off, it does
  // nothing, and the stream cancels it when the answer ends it. Turning every timeout off
  // would cancel it here - a removal from asio's timer heap among 10,000 others, under the
  // lock both io threads take, 5% of their time while a shutdown writes its close frames.
  // The handshake timeout (not `none` unless configured so: only then is the timer
  // cancelled) applies to a WebSocket handshake, long done.
  auto timeouts = websocket::stream_base::timeout{};
  timeouts.handshake_timeout = reg_.options_.handshake_timeout;
  timeouts.idle_timeout = websocket::stream_base::none();
  timeouts.keep_alive_pings = false;
  ws_.set_option(timeouts);
}

void ws_session::write_close_rest(std::string rest) {
  // Held by writing_ until written.
  writing_ = std::make_shared<const std::string>(std::move(rest));
  auto& socket = ws_.next_layer();
  socket.set_data_pending(true);
  asio::async_write(socket.data_stream(), asio::buffer(*writing_),
                    continuation{[self = shared_from_this()](const error_code& ec, std::size_t) {
                      self->on_close_frame_written(ec);
                    }});
}

void ws_session::adopt_direct_close() {
  if (close_sent_) {
    return;
  }
  std::optional<ws_handle::direct_close_taken> taken;
  {
    std::lock_guard lock(handle_->mutex_);
    taken = handle_->take_direct_close();
  }
  if (taken) {
    adopted_direct_close(std::move(*taken));
  }
}

void ws_session::adopted_direct_close(ws_handle::direct_close_taken taken) {
  close_sent_ = true;
  close_code_ = taken.code;
  close_deadline_armed_ = true;  // by the close pass, with the frame (moot when it failed)
  wstate_.after_close = true;
  if (taken.failed != 0) {
    on_write_failed(error_code(taken.failed, boost::system::system_category()));
    return;
  }
  stop_beast_timeouts();
  if (!taken.rest.empty()) {
    write_close_rest(std::move(taken.rest));  // its shutdown follows it
  }
}

void ws_session::on_close_frame_written(const error_code& ec) {
  ws_.next_layer().set_data_pending(false);
  writing_.reset();
  if (finished_) {
    return;
  }
  if (ec) {
    if (ec != asio::error::operation_aborted) {
      on_write_failed(ec);
    }
    return;  // aborted: the connection is ending, the read completion concludes
  }
  ++reg_.counters_.close_frames_sent;
  error_code ignored;
  ws_.next_layer().shutdown(tcp::socket::shutdown_send, ignored);
}

void ws_session::finish(std::uint16_t code, bool clean, std::string_view why) {
  if (finished_) {
    return;
  }
  finished_ = true;
  {
    std::lock_guard lock(handle_->mutex_);
    handle_->state_ = ws_handle::state::closed;
    handle_->idle_fd_ = -1;     // before the close: see ws_handle::idle_fd_
    handle_->handoff_.reset();  // a direct write's rest: not written, the connection ends
    handle_->handoff_errno_ = 0;
    handle_->close_rest_ = {};  // a close pass's rest of the close frame: not written either
    handle_->queue_.discard();
    handle_->queued_messages_ = 0;
    handle_->queued_bytes_ = 0;
    sent_ += std::exchange(handle_->direct_sent_, 0);
  }
  error_code ignored;
  beast::get_lowest_layer(ws_).close(ignored);  // pending operations end with operation_aborted
  // A Beast write that waited behind a data frame now fails on the closed socket (instead of
  // being destroyed unfinished with the session).
  ws_.next_layer().set_data_pending(false);
  ws_.next_layer().run_deferred();
  if (opened_) {
    --reg_.counters_.open;
    reg_.log_->info(
        "websocket {} closed: code={} clean={} ({}) after {:.1f}s, {} sent, {} received "
        "remote={}",
        handle_->id(), code, clean, why, millis_since(opened_at_) / 1000.0, sent_, received_,
        handle_->remote_addr());
  }
  if (handlers_.on_closed) {
    try {
      handlers_.on_closed(handle_, code, clean);
    } catch (const std::exception& e) {
      reg_.log_->error("websocket {}: on_closed threw: {}", handle_->id(), e.what());
    } catch (...) {
      reg_.log_->error("websocket {}: on_closed threw a non-exception", handle_->id());
    }
  }
  // Whatever the owner's callbacks hold is released now. (read_buffer_ stays: a read that
  // completed before the socket closed may still copy into it.)
  handlers_ = {};
  // Last: the registry's reference; the caller still holds one.
  registry_->remove(handle_->id());
}

// ---------------------------------------------------------------------------------------
// ws_registry

ws_registry::ws_registry(const ws_options& options, std::string server_name,
                         std::shared_ptr<spdlog::logger> log)
    : options_([&] {
        auto o = options;
        o.hook = nullptr;
        return o;
      }()),
      server_name_(std::move(server_name)),
      log_(std::move(log)) {}

bool ws_registry::add(std::uint64_t id, std::shared_ptr<ws_session> session) {
  std::lock_guard lock(mutex_);
  if (stopped_) {
    return false;
  }
  sessions_.emplace(id, std::move(session));
  return true;
}

void ws_registry::remove(std::uint64_t id) {
  std::shared_ptr<ws_session> keep;  // destroyed outside the lock
  std::lock_guard lock(mutex_);
  if (auto it = sessions_.find(id); it != sessions_.end()) {
    keep = std::move(it->second);
    sessions_.erase(it);
  }
}

void ws_registry::drop_all() {
  std::unordered_map<std::uint64_t, std::shared_ptr<ws_session>> all;
  {
    std::lock_guard lock(mutex_);
    stopped_ = true;
    all.swap(sessions_);
  }
  if (!all.empty()) {
    log_->info("stop: dropping {} open WebSocket connection(s)", all.size());
  }
  for (auto& [id, s] : all) {
    s->drop_on_stop();
  }
  std::lock_guard lock(deadline_mutex_);
  deadlines_stopped_ = true;
  deadlines_.clear();
  deadline_timer_.reset();  // before the server's io_context goes
}

void ws_registry::arm_close_deadline(std::uint64_t id, const asio::io_context::executor_type& io) {
  std::lock_guard lock(deadline_mutex_);
  if (deadlines_stopped_) {
    return;  // the server stopped: drop_all ended every session
  }
  const auto at = steady::now() + options_.close_timeout;
  deadlines_.emplace_back(at, id);
  if (!deadline_timer_) {
    deadline_timer_.emplace(io);
  }
  if (!deadline_waiting_) {
    wait_close_deadline(at);
  }
}

void ws_registry::wait_close_deadline(std::chrono::steady_clock::time_point at) {
  deadline_waiting_ = true;
  deadline_timer_->expires_at(at);
  // `this` outlives the wait: drop_all resets the timer after the io threads were joined,
  // and a handler not run by then is destroyed with the io_context, never run.
  deadline_timer_->async_wait([this](const error_code& ec) {
    if (!ec) {
      on_close_deadlines();
    }
  });
}

void ws_registry::on_close_deadlines() {
  std::vector<std::uint64_t> due;
  {
    std::lock_guard lock(deadline_mutex_);
    deadline_waiting_ = false;
    if (!deadline_timer_) {
      return;
    }
    const auto now = steady::now();
    while (!deadlines_.empty() && deadlines_.front().first <= now) {
      due.push_back(deadlines_.front().second);
      deadlines_.pop_front();
    }
    if (!deadlines_.empty()) {
      wait_close_deadline(deadlines_.front().first);
    }
  }
  for (const auto id : due) {
    std::shared_ptr<ws_session> s;
    {
      std::lock_guard lock(mutex_);
      if (auto it = sessions_.find(id); it != sessions_.end()) {
        s = it->second;
      }
    }
    if (s) {
      ws_session::dispatch(std::move(s), [](ws_session& session) { session.on_close_deadline(); });
    }
  }
}

// ---------------------------------------------------------------------------------------
// Batched calls (net/ws_fanout.cpp)

ws_handle* transport_handle(ws_connection* connection) noexcept {
  // Only ws_handle sets the flag (in its constructor).
  return connection->transport_ ? static_cast<ws_handle*>(connection) : nullptr;
}

ws_send_result enqueue_message(ws_handle& handle, std::shared_ptr<const std::string> message,
                               bool& wake) {
  return handle.enqueue(std::move(message), wake);
}

bool mark_closing(ws_handle& handle, std::uint16_t code, std::string_view reason) {
  return handle.request_close(code, reason);
}

namespace {

/// A fan-out's wake-up without the session: while the session's writer is idle (it
/// published the descriptor, ws_handle::idle_fd_), the queued data frames are written right
/// here, under the handle's mutex, each in one non-blocking sendmsg - no lock of the
/// session, no dispatch onto its strand. True when that left nothing for the session: the
/// queue is empty and no close waits. False when the session must run: its writer is not
/// idle, a close waits, the kernel took a frame only in part (its rest is handed to the
/// session, which writes it before anything else) or the write failed (the session ends).
bool write_directly(ws_handle& h) {
  std::lock_guard lock(h.mutex_);
  if (h.idle_fd_ < 0) {
    return false;
  }
  for (;;) {
    if (h.queue_.empty()) {
      if (h.close_requested_) {
        return false;  // the close frame is the session's
      }
      h.pump_pending_ = false;  // idle again: the next send() or fan-out wakes it
      return true;
    }
    auto message = h.queue_.pop();
    ws_handle::unfinished_frame frame;
    const auto w = send_text_frame(h.idle_fd_, frame.header, *message);
    if (w.whole()) {
      --h.queued_messages_;
      h.queued_bytes_ -= message->size();
      ++h.direct_sent_;
      ++h.registry_->counters_.messages_sent;
      continue;
    }
    h.idle_fd_ = -1;  // pump_pending_ stays set: the session is woken below
    if (w.error != 0) {
      h.handoff_errno_ = w.error;
      --h.queued_messages_;
      h.queued_bytes_ -= message->size();
      return false;
    }
    // Still counted as queued until the session has written its rest (on_data_written).
    frame.header_size = w.header_size;
    frame.done = w.done;
    frame.message = std::move(message);
    h.handoff_ = std::move(frame);
    return false;
  }
}

/// A close pass's close without the session, like write_directly: while the session's
/// writer is idle and nothing is queued, our close frame is written right here, under the
/// handle's mutex, and the sending side shut down; the close deadline is armed. The session
/// is not touched: it adopts the close the next time it runs (ws_session::adopt_direct_close;
/// until then whatever it or Beast would write is dropped). True when that left nothing for
/// the session now. False when the session must run: it is not idle or messages wait (it
/// writes them, then the close frame), the kernel took the frame only in part (the session
/// writes its rest) or the write failed (the session ends).
///
/// Why: the close pass is written by one thread while every client waits for its frame, and
/// the session's memory - its object, its strand, Beast's stream - untouched since the
/// server_shutdown message a grace period ago, was most of the pass's time per connection
/// (docs/websocket-transport.md, "Close pass").
bool close_directly(ws_handle& h) {
  bool whole = false;
  {
    std::lock_guard lock(h.mutex_);
    if (h.idle_fd_ < 0 || !h.close_requested_ || h.direct_close_ || !h.queue_.empty()) {
      return false;
    }
    // Under the lock (the shutdown included), so no close of the descriptor comes first:
    // whatever closes it revokes idle_fd_ under this mutex before.
    std::string rest;
    const auto w = send_close_frame_now(h.idle_fd_, h.close_code_, h.close_reason_.view(),
                                        h.registry_->counters_, rest);
    if (w.error == 0 && w.done == 0) {
      return false;  // nothing taken: the session writes it (asynchronously)
    }
    h.idle_fd_ = -1;  // no write of any kind after this one
    h.direct_close_ = true;
    if (w.error != 0) {
      // The session ends with it, as when its own close frame's write fails: with our code.
      h.handoff_errno_ = w.error;
      return false;
    }
    whole = w.whole();
    h.close_rest_ = std::move(rest);
  }
  h.registry_->arm_close_deadline(h.id(), h.io_);
  return whole;
}

/// Runs `st` for `h`'s live session, on its strand (inline when the strand is idle); on an
/// io thread of the handle's server. A kick writes directly when it can, and so does a close.
void wake_session(const std::shared_ptr<ws_handle>& h, ws_wake_batch::step st) {
  if (st == ws_wake_batch::step::kick ? write_directly(*h) : close_directly(*h)) {
    return;
  }
  // The session is locked here, on the io thread that runs it, not by the caller.
  auto s = h->session_.lock();
  if (!s) {
    return;  // ended meanwhile: its handle is closed, what was queued is discarded
  }
  ws_session::dispatch(std::move(s), [st](ws_session& session) {
    if (st == ws_wake_batch::step::kick) {
      session.on_kick();
    } else {
      session.on_close_requested();
    }
  });
}

}  // namespace

/// One close pass (ws_wake_batch::start_close_pass): the first of its tasks to run writes it,
/// the others wait until that one is done. A task waits only for a pass already being
/// written by another thread, never for one not yet begun, so two passes posted at the same
/// time cannot hold each other's threads (each is written by the first of its tasks to run)
/// and a stopped io_context, which runs no more tasks, leaves no task waiting.
///
/// The writer starts once every task is in the io_context's queue (`posted`): an answer
/// wakes an io thread by itself (epoll), and what that thread's reactor queues goes behind
/// whatever is queued already, so behind the waiting tasks only if they were queued before
/// the first close frame went out. It writes the handles as the poster hands them over
/// (`published`), and waits for the next ones when it has caught up, until the poster marks
/// its last (`complete`: the poster never waits for an io thread, so that wait ends).
struct close_pass {
  enum : int { queued, writing, done };
  static constexpr std::size_t complete = std::size_t{1}
                                          << (std::numeric_limits<std::size_t>::digits - 1);

  explicit close_pass(std::size_t capacity) : handles(capacity) {}

  /// Sized once, before the writer starts: the poster fills the slots from `published` on
  /// while the writer reads those before it.
  std::vector<std::shared_ptr<ws_handle>> handles;
  /// How many of `handles` the poster filled in; with `complete` once that is all of them.
  std::atomic<std::size_t> published{0};
  std::atomic<int> state{queued};
  std::atomic<bool> posted{false};  ///< set by the poster once all tasks are queued

  /// The poster: the first `filled` handles are set (`last`: and there are no more).
  void publish(std::size_t filled, bool last) noexcept {
    published.store(filled | (last ? complete : 0), std::memory_order_release);
    published.notify_all();
  }

  void run() {
    int expected = queued;
    if (state.compare_exchange_strong(expected, writing, std::memory_order_acq_rel)) {
      struct mark_done {
        std::atomic<int>& s;
        ~mark_done() {
          s.store(done, std::memory_order_release);
          s.notify_all();
        }
      } at_exit{state};
      posted.wait(false, std::memory_order_acquire);  // the poster posts, nothing more
      write();
      return;
    }
    for (int s = expected; s == writing; s = state.load(std::memory_order_acquire)) {
      state.wait(s, std::memory_order_acquire);
    }
  }

 private:
  void write() {
    std::size_t i = 0;
    for (;;) {
      const auto p = published.load(std::memory_order_acquire);
      for (const auto n = p & ~complete; i < n; ++i) {
        wake_session(handles[i], ws_wake_batch::step::close);
      }
      if ((p & complete) != 0) {
        return;
      }
      published.wait(p, std::memory_order_acquire);  // until the poster hands more over
    }
  }
};

void ws_wake_batch::post(group& g) {
  std::vector<std::shared_ptr<ws_handle>> handles;
  handles.swap(g.handles);
  g.handles.reserve(chunk_);
  // The shared lock as in post_to_session: a post made under it reaches a live io_context.
  std::shared_lock lock(g.registry->life_mutex_);
  if (!g.registry->alive_) {
    return;  // the server stopped: stop() drops every session
  }
  // One task for the chunk, posted to the io_context itself (the strands' inner executor).
  const auto io = handles.front()->io_;
  asio::post(io, [handles = std::move(handles)]() {
    for (const auto& h : handles) {
      wake_session(h, ws_wake_batch::step::kick);
    }
  });
}

void ws_wake_batch::start_close_pass(group& g, const asio::io_context::executor_type& io) {
  g.pass = std::make_shared<close_pass>(capacity_);
  g.filled = 0;
  std::shared_lock lock(g.registry->life_mutex_);  // as in post()
  if (!g.registry->alive_) {
    return;  // the server stopped: the pass is filled, and nobody writes it
  }
  // One task per io thread, all alike: the first to run writes the close frames, each other
  // one keeps its thread from reading answers (and from the cores) until they are all out
  // (why, and what it costs: docs/websocket-transport.md, "Close pass").
  struct mark_posted {  // even when a post throws: the writer must not wait for ever
    close_pass& p;
    ~mark_posted() {
      p.posted.store(true, std::memory_order_release);
      p.posted.notify_all();
    }
  } at_exit{*g.pass};
  for (unsigned i = 0, n = g.registry->io_threads(); i < n; ++i) {
    asio::post(io, [pass = g.pass] { pass->run(); });
  }
}

ws_wake_batch::ws_wake_batch(step s, std::size_t chunk, std::size_t capacity)
    : step_(s), chunk_(std::max<std::size_t>(1, chunk)), capacity_(capacity) {}

ws_wake_batch::~ws_wake_batch() {
  try {
    flush();
  } catch (const std::exception& e) {
    // Only an allocation can fail here; the sessions not woken end at their timeouts.
    for (auto& g : groups_) {
      g.registry->log_->error("websocket batch: {} wake-ups lost: {}", g.handles.size(), e.what());
    }
  }
}

void ws_wake_batch::add(ws_handle& handle) {
  group* g = nullptr;
  for (auto& x : groups_) {
    if (x.registry == handle.registry_) {
      g = &x;
      break;
    }
  }
  if (g == nullptr) {
    g = &groups_.emplace_back(group{handle.registry_, {}, {}, 0});
    if (step_ == step::kick) {
      g->handles.reserve(chunk_);
    }
  }
  if (step_ == step::kick) {
    g->handles.push_back(handle.shared_from_this());
    if (g->handles.size() >= chunk_) {
      post(*g);  // at once: the io threads start writing while the caller goes on
    }
    return;
  }
  if (!g->pass) {
    start_close_pass(*g, handle.io_);  // its writer starts on the first chunk
  }
  if (g->filled == g->pass->handles.size()) {
    throw std::length_error("ws_wake_batch: more handles than the close pass's capacity");
  }
  g->pass->handles[g->filled++] = handle.shared_from_this();
  if (g->filled % chunk_ == 0) {
    g->pass->publish(g->filled, false);
  }
}

void ws_wake_batch::flush() {
  for (auto& g : groups_) {
    if (step_ == step::kick) {
      if (!g.handles.empty()) {
        post(g);
      }
    } else if (g.pass) {
      g.pass->publish(g.filled, true);
      g.pass.reset();
      g.filled = 0;
    }
  }
}

void start_ws_session(const std::shared_ptr<ws_registry>& registry, ws_handoff handoff) {
  const auto id = handoff.id;
  auto s = std::make_shared<ws_session>(registry, std::move(handoff));
  s->attach();
  if (!registry->add(id, s)) {
    s->drop_on_stop();  // the server is stopping: the upgrade cannot be served
    return;
  }
  s->start();
}

}  // namespace detail
}  // namespace si::net
