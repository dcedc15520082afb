#include "ws_support.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/stream.hpp>

namespace si::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using error_code = boost::system::error_code;
using steady = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------
// event

void event::set() {
  // Notified under the lock: a waiter that returns may destroy the event at once.
  std::lock_guard lock(mutex_);
  set_ = true;
  cv_.notify_all();
}

bool event::wait(std::chrono::milliseconds limit) {
  std::unique_lock lock(mutex_);
  return cv_.wait_for(lock, limit, [&] { return set_; });
}

bool event::is_set() const {
  std::lock_guard lock(mutex_);
  return set_;
}

// ---------------------------------------------------------------------------------------
// ws_io

struct ws_io::impl {
  asio::io_context ioc;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;
};

ws_io::ws_io() : impl_(std::make_unique<impl>()) {}

ws_io::~ws_io() {
  stop_thread();
}

void ws_io::start_thread() {
  impl_->ioc.restart();
  impl_->work.emplace(impl_->ioc.get_executor());
  impl_->thread = std::thread([i = impl_.get()] { i->ioc.run(); });
}

void ws_io::stop_thread() {
  if (!impl_->thread.joinable()) {
    return;
  }
  impl_->work.reset();
  impl_->ioc.stop();
  impl_->thread.join();
}

// ---------------------------------------------------------------------------------------
// ws_client

struct ws_client::impl : std::enable_shared_from_this<ws_client::impl> {
  explicit impl(ws_io::impl& i) : io(i), ws(i.ioc) {}

  /// Drives the io_context on this thread until `done()` or `limit`.
  template <class Pred>
  bool run_until(Pred done, std::chrono::milliseconds limit) {
    const auto deadline = steady::now() + limit;
    io.ioc.restart();
    while (!done()) {
      if (io.ioc.run_one_until(deadline) == 0) {
        return done();
      }
    }
    return true;
  }

  void start_read() {
    read_pending = true;
    ws.async_read(buffer, [self = shared_from_this()](const error_code& ec, std::size_t) {
      self->on_read(ec);
    });
  }

  void on_read(const error_code& ec) {
    read_pending = false;
    ws_read_result r;
    if (!ec) {
      r.ok = true;
      r.binary = ws.got_binary();
      r.text = beast::buffers_to_string(buffer.data());
      buffer.consume(buffer.size());
    } else {
      r.error = ec.message();
      r.close_code = ws.reason().code;
      r.close_reason = std::string(ws.reason().reason.data(), ws.reason().reason.size());
    }
    if (on_message) {
      if (r.ok) {
        on_message(std::move(r.text));
        start_read();
      } else if (on_end) {
        on_end(r.close_code);
      }
      return;
    }
    result = std::move(r);
  }

  ws_io::impl& io;
  websocket::stream<beast::tcp_stream> ws;
  websocket::response_type response;
  beast::flat_buffer buffer;
  bool read_pending = false;
  std::optional<ws_read_result> result;
  int pings = 0;
  std::function<void(std::string)> on_message;
  std::function<void(std::uint16_t)> on_end;
};

ws_client::ws_client(ws_io& io) : impl_(std::make_shared<impl>(*io.impl_)) {
  impl_->ws.control_callback([i = impl_.get()](websocket::frame_type kind, beast::string_view) {
    if (kind == websocket::frame_type::ping) {
      ++i->pings;
    }
  });
}

ws_client::~ws_client() {
  error_code ignored;
  beast::get_lowest_layer(impl_->ws).socket().close(ignored);
  if (!impl_->io.thread.joinable()) {
    // Run the aborted completions now, so nothing refers to this client afterwards.
    impl_->io.ioc.restart();
    impl_->io.ioc.poll();
  }
}

bool ws_client::connect(std::uint16_t port, std::string_view target,
                        net::header_list extra_headers) {
  auto& i = *impl_;
  auto connected = std::make_shared<std::optional<error_code>>();
  asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
  beast::get_lowest_layer(i.ws).async_connect(
      ep, [connected](const error_code& ec) { *connected = ec; });
  if (!i.run_until([&] { return connected->has_value(); }, wait_limit) || **connected) {
    return false;
  }
  i.ws.set_option(websocket::stream_base::decorator([extra_headers](websocket::request_type& req) {
    for (const auto& [name, value] : extra_headers) {
      req.set(name, value);
    }
  }));
  auto shaken = std::make_shared<std::optional<error_code>>();
  i.ws.async_handshake(i.response, "127.0.0.1:" + std::to_string(port), std::string(target),
                       [shaken, self = impl_](const error_code& ec) { *shaken = ec; });
  if (!i.run_until([&] { return shaken->has_value(); }, wait_limit)) {
    return false;
  }
  return !**shaken;
}

int ws_client::status() const {
  return static_cast<int>(impl_->response.result_int());
}

std::string ws_client::body() const {
  return impl_->response.body();
}

std::optional<std::string> ws_client::header(std::string_view name) const {
  auto it = impl_->response.find(beast::string_view(name.data(), name.size()));
  if (it == impl_->response.end()) {
    return std::nullopt;
  }
  return std::string(it->value());
}

bool ws_client::write(std::string_view data, bool binary) {
  auto& i = *impl_;
  auto payload = std::make_shared<std::string>(data);
  auto written = std::make_shared<std::optional<error_code>>();
  i.ws.binary(binary);
  i.ws.async_write(
      asio::buffer(*payload),
      [payload, written, self = impl_](const error_code& ec, std::size_t) { *written = ec; });
  return i.run_until([&] { return written->has_value(); }, wait_limit) && !**written;
}

std::optional<ws_read_result> ws_client::read(std::chrono::milliseconds limit) {
  auto& i = *impl_;
  if (!i.result && !i.read_pending) {
    i.start_read();
  }
  if (!i.run_until([&] { return i.result.has_value(); }, limit)) {
    return std::nullopt;
  }
  auto r = std::move(*i.result);
  i.result.reset();
  return r;
}

bool ws_client::close(std::uint16_t code, std::chrono::milliseconds limit) {
  auto& i = *impl_;
  auto closed = std::make_shared<std::optional<error_code>>();
  i.ws.async_close(websocket::close_reason(code),
                   [closed, self = impl_](const error_code& ec) { *closed = ec; });
  return i.run_until([&] { return closed->has_value(); }, limit) && !**closed;
}

bool ws_client::wait_pings(int n, std::chrono::milliseconds limit) {
  auto& i = *impl_;
  if (!i.result && !i.read_pending) {
    i.start_read();
  }
  i.run_until([&] { return i.pings >= n || i.result.has_value(); }, limit);
  return i.pings >= n;
}

int ws_client::pings() const {
  return impl_->pings;
}

void ws_client::read_loop(std::function<void(std::string)> on_message,
                          std::function<void(std::uint16_t)> on_end) {
  impl_->on_message = std::move(on_message);
  impl_->on_end = std::move(on_end);
  impl_->start_read();
}

// ---------------------------------------------------------------------------------------
// raw_ws

std::uint16_t raw_frame::close_code() const {
  if (opcode != 8 || payload.size() < 2) {
    return 0;
  }
  return static_cast<std::uint16_t>((static_cast<unsigned char>(payload[0]) << 8)
                                    | static_cast<unsigned char>(payload[1]));
}

std::string close_payload(std::uint16_t code) {
  return {static_cast<char>(code >> 8), static_cast<char>(code & 0xff)};
}

raw_ws::raw_ws(std::uint16_t port, int receive_buffer) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    throw std::runtime_error(std::string("socket failed: ") + std::strerror(errno));
  }
  if (receive_buffer > 0) {
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    auto error = errno;
    ::close(fd_);
    throw std::runtime_error(std::string("connect failed: ") + std::strerror(error));
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

raw_ws::raw_ws(raw_ws&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), buffer_(std::move(other.buffer_)) {}

raw_ws::~raw_ws() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

std::string raw_ws::upgrade_request(std::string_view target, std::string_view extra) {
  std::string r = "GET ";
  r += target;
  r += " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
  r += extra;
  r += "\r\n";
  return r;
}

bool raw_ws::send(std::string_view data) {
  while (!data.empty()) {
    auto n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::optional<raw_reply> raw_ws::upgrade(std::string_view target, std::string_view extra) {
  if (!send(upgrade_request(target, extra))) {
    return std::nullopt;
  }
  return read_reply();
}

bool raw_ws::await_data(std::chrono::milliseconds limit) {
  return !buffer_.empty() || fill(steady::now() + limit) > 0;
}

long raw_ws::fill(steady::time_point deadline) {
  for (;;) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()).count();
    if (left <= 0) {
      return -1;
    }
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r == 0) {
      return -1;
    }
    char chunk[16 * 1024];
    auto n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return 0;
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return n;
  }
}

bool raw_ws::need(std::size_t n, steady::time_point deadline) {
  while (buffer_.size() < n) {
    if (fill(deadline) <= 0) {
      return false;
    }
  }
  return true;
}

std::optional<raw_reply> raw_ws::read_reply(std::chrono::milliseconds limit) {
  const auto deadline = steady::now() + limit;
  std::size_t end;
  while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    if (fill(deadline) <= 0) {
      return std::nullopt;
    }
  }
  raw_reply reply;
  std::string_view head(buffer_.data(), end);
  auto line_end = head.find("\r\n");
  auto status_line = head.substr(0, line_end);
  auto sp = status_line.find(' ');
  reply.status = std::stoi(std::string(status_line.substr(sp + 1, 3)));
  std::size_t pos = line_end == std::string_view::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    auto next = head.find("\r\n", pos);
    if (next == std::string_view::npos) {
      next = head.size();
    }
    auto line = head.substr(pos, next - pos);
    auto colon = line.find(':');
    auto value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') {
      value.remove_prefix(1);
    }
    reply.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
    pos = next + 2;
  }
  buffer_.erase(0, end + 4);
  std::size_t length = 0;
  if (auto cl = reply.header("Content-Length")) {
    length = std::stoul(std::string(*cl));
  }
  if (!need(length, deadline)) {
    return std::nullopt;
  }
  reply.body = buffer_.substr(0, length);
  buffer_.erase(0, length);
  return reply;
}

std::optional<raw_frame> raw_ws::read_frame(std::chrono::milliseconds limit) {
  const auto deadline = steady::now() + limit;
  if (!need(2, deadline)) {
    return std::nullopt;
  }
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(buffer_[i]); };
  raw_frame f;
  f.opcode = byte(0) & 0x0f;
  std::uint64_t length = byte(1) & 0x7f;
  std::size_t header = 2;
  if (length == 126) {
    if (!need(4, deadline)) {
      return std::nullopt;
    }
    length = (std::uint64_t{byte(2)} << 8) | byte(3);
    header = 4;
  } else if (length == 127) {
    if (!need(10, deadline)) {
      return std::nullopt;
    }
    length = 0;
    for (std::size_t i = 2; i < 10; ++i) {
      length = (length << 8) | byte(i);
    }
    header = 10;
  }
  if (!need(header + length, deadline)) {
    return std::nullopt;
  }
  f.payload = buffer_.substr(header, length);
  buffer_.erase(0, header + length);
  return f;
}

bool raw_ws::send_frame(int opcode, std::string_view payload) {
  std::string frame;
  frame.push_back(static_cast<char>(0x80 | opcode));
  if (payload.size() < 126) {
    frame.push_back(static_cast<char>(0x80 | payload.size()));
  } else if (payload.size() < 65536) {
    frame.push_back(static_cast<char>(0x80 | 126));
    frame.push_back(static_cast<char>(payload.size() >> 8));
    frame.push_back(static_cast<char>(payload.size() & 0xff));
  } else {
    frame.push_back(static_cast<char>(0x80 | 127));
    for (int shift = 56; shift >= 0; shift -= 8) {
      frame.push_back(static_cast<char>((std::uint64_t{payload.size()} >> shift) & 0xff));
    }
  }
  const char mask[4] = {0x11, 0x22, 0x33, 0x44};
  frame.append(mask, 4);
  for (std::size_t i = 0; i < payload.size(); ++i) {
    frame.push_back(static_cast<char>(payload[i] ^ mask[i % 4]));
  }
  return send(frame);
}

std::optional<std::uint16_t> raw_ws::read_until_close(std::chrono::milliseconds limit) {
  const auto deadline = steady::now() + limit;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
    if (left.count() <= 0) {
      return std::nullopt;
    }
    auto f = read_frame(left);
    if (!f) {
      return std::nullopt;
    }
    if (f->opcode == 8) {
      return f->close_code();
    }
  }
}

bool raw_ws::wait_closed(std::chrono::milliseconds limit) {
  const auto deadline = steady::now() + limit;
  for (;;) {
    auto r = fill(deadline);
    if (r == 0) {
      return true;
    }
    if (r < 0) {
      return false;
    }
    buffer_.clear();
  }
}

void raw_ws::close() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

void raw_ws::reset() {
  if (fd_ >= 0) {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  close();
}

// ---------------------------------------------------------------------------------------
// ws_recorder

net::ws_handlers ws_recorder::handlers(bool echo) {
  net::ws_handlers h;
  h.on_open = [this](const net::ws_connection_ptr& c) {
    {
      std::lock_guard lock(mutex_);
      opened_.push_back(c);
    }
    cv_.notify_all();
  };
  h.on_text = [this, echo](const net::ws_connection_ptr& c, std::string message) {
    if (echo) {
      c->send(std::make_shared<const std::string>(message));
    }
    {
      std::lock_guard lock(mutex_);
      texts_.push_back(std::move(message));
    }
    cv_.notify_all();
  };
  h.on_closed = [this](const net::ws_connection_ptr& c, std::uint16_t code, bool clean) {
    {
      std::lock_guard lock(mutex_);
      closed_.push_back({c->id(), code, clean});
    }
    cv_.notify_all();
  };
  return h;
}

bool ws_recorder::wait_opened(std::size_t n, std::chrono::milliseconds limit) {
  std::unique_lock lock(mutex_);
  return cv_.wait_for(lock, limit, [&] { return opened_.size() >= n; });
}

bool ws_recorder::wait_closed(std::size_t n, std::chrono::milliseconds limit) {
  std::unique_lock lock(mutex_);
  return cv_.wait_for(lock, limit, [&] { return closed_.size() >= n; });
}

bool ws_recorder::wait_texts(std::size_t n, std::chrono::milliseconds limit) {
  std::unique_lock lock(mutex_);
  return cv_.wait_for(lock, limit, [&] { return texts_.size() >= n; });
}

std::vector<net::ws_connection_ptr> ws_recorder::opened() const {
  std::lock_guard lock(mutex_);
  return opened_;
}

std::vector<ws_recorder::closed_info> ws_recorder::closed() const {
  std::lock_guard lock(mutex_);
  return closed_;
}

std::vector<std::string> ws_recorder::texts() const {
  std::lock_guard lock(mutex_);
  return texts_;
}

ws_recorder::closed_info ws_recorder::closed_of(std::uint64_t id) const {
  std::lock_guard lock(mutex_);
  for (const auto& c : closed_) {
    if (c.id == id) {
      return c;
    }
  }
  throw std::logic_error("ws_recorder: connection " + std::to_string(id) + " not closed");
}

std::size_t resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) {
    return 0;
  }
  unsigned long size = 0;
  unsigned long resident = 0;
  int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)) : 0;
}

}  // namespace si::test
