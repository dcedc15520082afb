#include "support.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace si::test {

namespace {

int open_connected(std::uint16_t port, int& error) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = errno;
    return -1;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    error = errno;
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  error = 0;
  return fd;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

}  // namespace

bool parsed_response::closes() const {
  auto v = header("Connection");
  return v && lower(*v) == "close";
}

raw_client::raw_client(std::uint16_t port) {
  int error = 0;
  fd_ = open_connected(port, error);
  if (fd_ < 0) {
    throw std::runtime_error(std::string("connect failed: ") + std::strerror(error));
  }
}

raw_client::raw_client(raw_client&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), buffer_(std::move(other.buffer_)) {}

raw_client::~raw_client() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

int raw_client::try_connect(std::uint16_t port) {
  int error = 0;
  int fd = open_connected(port, error);
  if (fd >= 0) {
    ::close(fd);
  }
  return error;
}

bool raw_client::send(std::string_view data) {
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

void raw_client::shutdown_send() {
  ::shutdown(fd_, SHUT_WR);
}

long raw_client::fill(std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return -1;
    }
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
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

std::optional<parsed_response> raw_client::read_response(bool head,
                                                         std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  std::size_t end;
  while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    if (fill(deadline) <= 0) {
      return std::nullopt;
    }
  }
  parsed_response res;
  std::string_view head_text(buffer_.data(), end);
  auto line_end = head_text.find("\r\n");
  auto status_line = head_text.substr(0, line_end);
  // "HTTP/1.1 200 OK"
  auto sp1 = status_line.find(' ');
  auto sp2 = status_line.find(' ', sp1 + 1);
  res.status = std::stoi(std::string(status_line.substr(sp1 + 1, sp2 - sp1 - 1)));
  res.reason = sp2 == std::string_view::npos ? "" : std::string(status_line.substr(sp2 + 1));
  std::size_t pos = line_end == std::string_view::npos ? head_text.size() : line_end + 2;
  while (pos < head_text.size()) {
    auto next = head_text.find("\r\n", pos);
    if (next == std::string_view::npos) {
      next = head_text.size();
    }
    auto line = head_text.substr(pos, next - pos);
    auto colon = line.find(':');
    auto value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') {
      value.remove_prefix(1);
    }
    res.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
    pos = next + 2;
  }
  buffer_.erase(0, end + 4);
  std::size_t length = 0;
  if (auto cl = res.header("Content-Length"); cl && !head) {
    length = std::stoul(std::string(*cl));
  }
  while (buffer_.size() < length) {
    if (fill(deadline) <= 0) {
      return std::nullopt;
    }
  }
  res.body = buffer_.substr(0, length);
  buffer_.erase(0, length);
  return res;
}

bool raw_client::wait_closed(std::chrono::milliseconds limit) {
  // 0: EOF or reset; >0: data instead of a close (kept in the buffer); -1: timed out.
  return fill(std::chrono::steady_clock::now() + limit) == 0;
}

std::string get_request(std::string_view path, std::string_view extra) {
  std::string r = "GET ";
  r += path;
  r += " HTTP/1.1\r\nHost: test\r\n";
  r += extra;
  r += "\r\n";
  return r;
}

void held_requests::push(net::http_request req, net::respond_fn respond) {
  {
    std::lock_guard lock(mutex_);
    held_.emplace_back(std::move(req), std::move(respond));
    ++total_;
  }
  cv_.notify_all();
}

bool held_requests::wait_for(std::size_t n) {
  std::unique_lock lock(mutex_);
  return cv_.wait_for(lock, wait_limit, [&] { return total_ >= n; });
}

std::pair<net::http_request, net::respond_fn> held_requests::pop() {
  std::lock_guard lock(mutex_);
  if (held_.empty()) {
    throw std::logic_error("held_requests::pop: nothing held");
  }
  auto front = std::move(held_.front());
  held_.pop_front();
  return front;
}

std::size_t held_requests::total() const {
  std::lock_guard lock(mutex_);
  return total_;
}

void event::set() {
  {
    std::lock_guard lock(mutex_);
    set_ = true;
  }
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

}  // namespace si::test
