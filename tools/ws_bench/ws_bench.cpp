/// ws-bench: the native client of scripts/bench/ws.sh (docs/websocket.md, "Bench"). N
/// WebSocket clients on plain non-blocking POSIX sockets and epoll (one event loop per
/// thread), a minimal RFC 6455 client (tools/ws_bench/ws_wire.hpp). It measures the server,
/// not itself: one read per ready socket, no JSON parsing of channel messages, CLOCK_MONOTONIC
/// timestamps, and its own CPU time and the server's reported next to the latencies.
///
///   ws-bench PORT SERVER_PID CLIENTS GRACE_MS ROUNDS [THREADS] [--option value ...]
///
/// Opens CLIENTS connections (at most --connect-inflight handshakes at a time), subscribes
/// each to --channel, measures the server's RSS per idle connection, triggers ROUNDS
/// broadcasts through the test-only POST /api/v1/test/broadcast (HTTP_TEST_ROUTES=true) and
/// timestamps every delivery against the trigger, then sends SIGTERM to SERVER_PID and
/// timestamps each client's server_shutdown, close frame (answered with the same code) and
/// end of connection. Prints one JSON object with the fields tests/ws_e2e/bench.mjs prints,
/// plus its own (client, threads, CPU times, close-frame times). Exit 1 when the bench could
/// not complete (the reason on stderr), 2 for bad arguments.

#include "tools/ws_bench/bench_util.hpp"
#include "tools/ws_bench/ws_wire.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace si::wsbench {
namespace {

struct options {
  std::string host = "127.0.0.1";
  unsigned port = 0;
  pid_t pid = 0;
  unsigned clients = 10'000;
  unsigned grace_ms = 500;
  unsigned rounds = 5;
  unsigned threads = 1;
  std::string channel = "alerts";
  std::string path = "/ws";
  unsigned connect_inflight = 256;
  unsigned connect_timeout_s = 120;
  unsigned round_timeout_s = 30;
  unsigned close_timeout_s = 60;
  unsigned settle_ms = 1000;
  unsigned round_gap_ms = 300;
  unsigned http_timeout_s = 10;
  bool sigterm = true;
  bool sched_batch = false;
  bool close_each = false;
};

constexpr std::string_view usage_text =
    R"(usage: ws-bench PORT SERVER_PID CLIENTS GRACE_MS ROUNDS [THREADS] [--option value ...]
  PORT               the server's HTTP port on --host (HTTP_TEST_ROUTES=true required)
  SERVER_PID         its process id: RSS and CPU time are read from /proc, SIGTERM sent to it
  CLIENTS            WebSocket connections (1..1000000)
  GRACE_MS           the server's SHUTDOWN_WS_GRACE_MS (reported, for the target)
  ROUNDS             broadcasts (1..1000)
  THREADS            client event-loop threads (1..64, default 1)
options (defaults in brackets):
  --host ADDR              IPv4 address of the server [127.0.0.1]
  --channel NAME           channel every client subscribes to and the bench broadcasts on [alerts]
  --path PATH              WebSocket endpoint [/ws]
  --connect-inflight N     connections in their handshake at once, over all threads [256]
  --connect-timeout-s N    all clients connected and subscribed within [120]
  --round-timeout-s N      every client got a broadcast within [30]
  --close-timeout-s N      every connection ended after SIGTERM within [60]
  --settle-ms N            wait after connecting, before the RSS is read [1000]
  --round-gap-ms N         pause between broadcasts [300]
  --http-timeout-s N       one HTTP request (trigger, /metrics) [10]
  --no-sigterm             do not stop the server (no shutdown figures)
  --sched-batch            run the client threads as SCHED_BATCH: a woken client thread
                           does not preempt the server's io threads (fewer context switches
                           when client and server share the cores)
  --close-each             close each client socket as soon as its connection ended. By
                           default an ended socket leaves the event loop and is closed once
                           every connection ended: the client's own TCP teardown (on
                           loopback ~40% of its CPU time in the close phase) then does not
                           compete with the server for the cores while it is measured
)";

options parse_options(int argc, char** argv) {
  options o;
  // The flags, then the text options; any other option without a value is reported as such
  // before it is looked up.
  auto other = [&](std::string_view a, int& i) {
    if (a == "--no-sigterm") {
      o.sigterm = false;
      return true;
    }
    if (a == "--close-each") {
      o.close_each = true;
      return true;
    }
    if (a == "--sched-batch") {
      o.sched_batch = true;
      return true;
    }
    if (i + 1 >= argc) {
      throw usage_error(std::string(a) + " needs a value");
    }
    const std::string_view v = argv[i + 1];
    if (a == "--host") {
      in_addr probe{};
      if (inet_pton(AF_INET, std::string(v).c_str(), &probe) != 1) {
        throw usage_error("--host must be an IPv4 address, not '" + std::string(v) + "'");
      }
      o.host = v;
    } else if (a == "--channel") {
      if (v.empty() || v.find_first_of("\"\\") != std::string_view::npos) {
        throw usage_error("--channel must be a non-empty name without quotes or backslashes");
      }
      o.channel = v;
    } else if (a == "--path") {
      if (v.empty() || v.front() != '/') {
        throw usage_error("--path must start with '/'");
      }
      o.path = v;
    } else {
      return false;
    }
    ++i;
    return true;
  };
  const auto positional =
      parse_command_line(argc, argv, usage_text,
                         {{"--connect-inflight", &o.connect_inflight, 1, 65'536},
                          {"--connect-timeout-s", &o.connect_timeout_s, 1, 3'600},
                          {"--round-timeout-s", &o.round_timeout_s, 1, 3'600},
                          {"--close-timeout-s", &o.close_timeout_s, 1, 3'600},
                          {"--settle-ms", &o.settle_ms, 0, 600'000},
                          {"--round-gap-ms", &o.round_gap_ms, 0, 600'000},
                          {"--http-timeout-s", &o.http_timeout_s, 1, 3'600}},
                         other);
  if (positional.size() < 5 || positional.size() > 6) {
    throw usage_error("expected PORT SERVER_PID CLIENTS GRACE_MS ROUNDS [THREADS]");
  }
  o.port = parse_unsigned("PORT", positional[0], 1, 65'535);
  o.pid = static_cast<pid_t>(parse_unsigned("SERVER_PID", positional[1], 1, 1u << 30));
  o.clients = parse_unsigned("CLIENTS", positional[2], 1, 1'000'000);
  o.grace_ms = parse_unsigned("GRACE_MS", positional[3], 0, 3'600'000);
  o.rounds = parse_unsigned("ROUNDS", positional[4], 1, 1'000);
  if (positional.size() == 6) {
    o.threads = parse_unsigned("THREADS", positional[5], 1, 64);
  }
  o.threads = std::min(o.threads, o.clients);
  return o;
}

// ---------------------------------------------------------------------------------------
// The server process, from /proc

/// VmRSS of `pid` in KiB.
long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::strtol(line.c_str() + 6, nullptr, 10);
    }
  }
  throw std::runtime_error("no VmRSS in /proc/" + std::to_string(pid)
                           + "/status (is the server running?)");
}

/// CPU time of every thread of `pid` in milliseconds (schedstat: nanoseconds on the CPU).
double process_cpu_ms(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir.c_str()), closedir);
  if (!d) {
    return nan;
  }
  double total_ns = 0;
  while (auto* e = readdir(d.get())) {
    if (e->d_name[0] == '.') {
      continue;
    }
    std::ifstream in(dir + "/" + e->d_name + "/schedstat");
    double ns = 0;
    if (in >> ns) {
      total_ns += ns;
    }
  }
  return total_ns / 1e6;
}

/// /proc/PID/stat's state and CPU time (utime + stime, all threads, in clock ticks): the
/// CPU time of a process that exited and was not reaped yet (a zombie has no tasks left).
struct stat_cpu {
  char state = '?';
  double ms = nan;
};
stat_cpu process_stat_cpu(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(in, text)) {
    return {};
  }
  // After the command name (in parentheses, may contain spaces): state, then fields 4..
  const auto close = text.rfind(')');
  if (close == std::string::npos) {
    return {};
  }
  std::istringstream rest(text.substr(close + 2));
  stat_cpu r;
  rest >> r.state;
  std::string skip;
  for (int field = 4; field <= 13; ++field) {
    rest >> skip;
  }
  double utime = 0;
  double stime = 0;
  if (!(rest >> utime >> stime)) {
    return {};
  }
  r.ms = (utime + stime) * 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
  return r;
}

// ---------------------------------------------------------------------------------------
// Blocking HTTP/1.1 for the trigger and /metrics, on one kept-alive connection opened before
// the first broadcast (a publisher holds its connection: setting one up is not part of a
// broadcast) and closed before the SIGTERM, so that no connection of the bench is left open
// when the server drains.

struct http_answer {
  int status = 0;
  std::string body;
};

sockaddr_in server_address(const options& o) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(o.port));
  inet_pton(AF_INET, o.host.c_str(), &a.sin_addr);
  return a;
}

class http_connection {
 public:
  explicit http_connection(const options& o) : o_(o) {}
  ~http_connection() {
    close();
  }
  http_connection(const http_connection&) = delete;
  http_connection& operator=(const http_connection&) = delete;

  /// Opens the connection (once; request() opens it when needed).
  void open() {
    if (fd_ >= 0) {
      return;
    }
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
      throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    }
    timeval tv{static_cast<time_t>(o_.http_timeout_s), 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    const int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto addr = server_address(o_);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      const int err = errno;
      close();
      throw std::runtime_error("HTTP connect to " + o_.host + ":" + std::to_string(o_.port) + ": "
                               + std::strerror(err));
    }
  }

  void close() {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }

  /// One request and its response (which must have a Content-Length: the connection stays
  /// open). Never retried: a connection the server closed is an error (a POST may have been
  /// served).
  http_answer request(std::string_view method, std::string_view target, std::string_view body) {
    open();
    const auto what = std::string(method) + " " + std::string(target);
    std::string req =
        what + " HTTP/1.1\r\nHost: " + o_.host + ":" + std::to_string(o_.port) + "\r\n";
    if (!body.empty()) {
      req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size())
             + "\r\n";
    }
    req += "\r\n";
    req += body;
    for (std::size_t off = 0; off < req.size();) {
      auto n = ::send(fd_, req.data() + off, req.size() - off, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        const int err = errno;
        close();
        throw std::runtime_error(what + ": send: " + std::strerror(err));
      }
      off += static_cast<std::size_t>(n);
    }
    std::string in;
    std::size_t head_end = std::string::npos;
    std::optional<std::size_t> length;
    char buf[16384];
    while (head_end == std::string::npos || !length || in.size() < head_end + 4 + *length) {
      auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        const int err = errno;
        close();
        throw std::runtime_error(
            what + ": "
            + (n == 0 ? std::string("the server closed the connection before its whole answer")
               : err == EAGAIN ? std::string("no answer within --http-timeout-s")
                               : std::string(std::strerror(err))));
      }
      in.append(buf, static_cast<std::size_t>(n));
      if (head_end == std::string::npos && (head_end = in.find("\r\n\r\n")) != std::string::npos) {
        std::string head = in.substr(0, head_end);
        std::transform(head.begin(), head.end(), head.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (in.size() < 12 || in.rfind("HTTP/1.1 ", 0) != 0) {
          close();
          throw std::runtime_error(what + ": no valid HTTP response");
        }
        if (auto at = head.find("\r\ncontent-length:"); at != std::string::npos) {
          length = std::strtoul(head.c_str() + at + 17, nullptr, 10);
        } else {
          close();
          throw std::runtime_error(what + ": the answer has no Content-Length");
        }
      }
    }
    if (in.size() != head_end + 4 + *length) {
      close();
      throw std::runtime_error(what + ": more bytes than the answer's Content-Length");
    }
    http_answer a;
    a.status = std::atoi(in.c_str() + 9);
    a.body = in.substr(head_end + 4);
    return a;
  }

 private:
  const options& o_;
  int fd_ = -1;
};

// ---------------------------------------------------------------------------------------
// What the client threads record and the coordinator reads.

struct results : progress {
  explicit results(const options& o)
      : delivered_at(o.rounds, std::vector<double>(o.clients, nan)),
        shutdown_at(o.clients, nan),
        close_frame_at(o.clients, nan),
        closed_at(o.clients, nan),
        codes(o.clients, 0),
        clean(o.clients, 0),
        rounds_done(o.rounds, 0) {}

  // One slot per client, written by the thread that owns the client; read by the
  // coordinator after that thread reported the phase complete (under mutex).
  std::vector<std::vector<double>> delivered_at;  ///< [round][client], CLOCK_MONOTONIC ms
  std::vector<double> shutdown_at;
  std::vector<double> close_frame_at;
  std::vector<double> closed_at;
  std::vector<std::uint16_t> codes;  ///< close code received (1006: none)
  std::vector<std::uint8_t> clean;   ///< close frames both ways, then the server's FIN

  std::atomic<bool> sigterm_sent{false};  ///< before it, a connection must not end
  std::atomic<std::uint64_t> duplicates{0};
  std::atomic<std::uint64_t> other_messages{0};

  // Per-thread phase completions, under progress::mutex.
  unsigned threads_ready = 0;
  std::vector<unsigned> rounds_done;
  unsigned threads_closed = 0;
};

// ---------------------------------------------------------------------------------------
// One event-loop thread and its share of the clients.

class client_thread {
 public:
  client_thread(const options& o, results& r, unsigned first, unsigned count, unsigned max_inflight)
      : o_(o),
        r_(r),
        first_(first),
        max_inflight_(std::max(1u, max_inflight)),
        conns_(count),
        bufs_(count),
        round_count_(o.rounds, 0),
        rng_(std::random_device{}()) {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (epoll_ < 0 || wake_ < 0) {
      throw std::runtime_error(std::string("epoll/eventfd: ") + std::strerror(errno));
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = wake_token;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &ev);
    for (unsigned i = 0; i < count; ++i) {
      pending_.push_back({i, 0.0});
    }
    subscribe_ = R"({"type":"subscribe","channels":[")" + o_.channel + R"("]})";
  }

  ~client_thread() {
    for (auto& c : conns_) {
      if (c.fd >= 0) {
        ::close(c.fd);
      }
    }
    ::close(epoll_);
    ::close(wake_);
  }

  client_thread(const client_thread&) = delete;
  client_thread& operator=(const client_thread&) = delete;

  /// Asks run() to return (from any thread).
  void stop() {
    stopping_.store(true);
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_, &one, sizeof one);
  }

  /// The event loop; returns after stop() or a fatal error (reported through results).
  void run() {
    try {
      if (o_.sched_batch) {
        sched_param none{};
        if (int err = pthread_setschedparam(pthread_self(), SCHED_BATCH, &none); err != 0) {
          throw std::runtime_error(std::string("SCHED_BATCH: ") + std::strerror(err));
        }
      }
      loop();
    } catch (const std::exception& e) {
      r_.fail(e.what());
    }
  }

 private:
  enum class phase : std::uint8_t { idle, connecting, upgrading, subscribing, ready, ended };

  /// What every read and write of a connection looks at: 16 bytes, so that a broadcast or a
  /// close, which touches each connection once, touches a few dozen pages of them for
  /// 10,000 connections rather than hundreds (its buffers, rarely used, are in bufs_).
  struct conn {
    int fd = -1;
    phase ph = phase::idle;
    bool want_write = false;
    bool close_sent = false;
    bool close_received = false;
    std::uint8_t message_op = 0;  ///< opcode of the fragmented message being assembled
    bool in_pending = false;      ///< bufs_[i].in holds bytes not yet decoded
    bool out_pending = false;     ///< bufs_[i].out holds bytes not yet written
    std::uint16_t close_code = 1006;
  };

  static_assert(sizeof(conn) <= 16);

  struct conn_buffers {
    std::string in;       ///< bytes not yet decoded (usually none)
    std::string out;      ///< bytes not yet written (usually none)
    std::string accept;   ///< the Sec-WebSocket-Accept expected (during the handshake)
    std::string message;  ///< fragments of a message (rare: the server sends single frames)
  };

  struct retry {
    unsigned index;
    double at;  ///< CLOCK_MONOTONIC ms; 0: now
  };

  static constexpr std::uint64_t wake_token = std::numeric_limits<std::uint64_t>::max();
  static constexpr std::size_t max_payload = 16 * 1024 * 1024;

  void loop() {
    std::vector<epoll_event> events(512);
    while (!stopping_.load()) {
      const int timeout = start_connects();
      const int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), timeout);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        throw std::runtime_error(std::string("epoll_wait: ") + std::strerror(errno));
      }
      for (int k = 0; k < n; ++k) {
        const auto& ev = events[static_cast<std::size_t>(k)];
        if (ev.data.u64 == wake_token) {
          continue;  // stop(): the loop condition sees it
        }
        on_event(static_cast<unsigned>(ev.data.u64), ev.events);
      }
    }
  }

  /// Starts connections while fewer than max_inflight_ are in their handshake; returns the
  /// epoll timeout (ms) until the next retry, or -1.
  int start_connects() {
    const double now = now_ms();
    while (inflight_ < max_inflight_ && !pending_.empty()) {
      auto next = pending_.front();
      if (next.at > now) {
        return std::max(1, static_cast<int>(next.at - now));
      }
      pending_.pop_front();
      start_connect(next.index);
    }
    return -1;
  }

  void start_connect(unsigned i) {
    auto& c = conns_[i];
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) {
      throw std::runtime_error(std::string("socket: ") + std::strerror(errno)
                               + " (raise ulimit -n?)");
    }
    const int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto addr = server_address(o_);
    if (::connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0
        && errno != EINPROGRESS) {
      const int err = errno;
      ::close(c.fd);
      c.fd = -1;
      if (err == EAGAIN || err == EINTR) {
        // No room right now (e.g. the local port range or backlog): retry shortly.
        if (++connect_retries_ > 10'000) {
          throw std::runtime_error("connect keeps failing with EAGAIN (10000 retries)");
        }
        pending_.push_back({i, now_ms() + 10.0});
        return;
      }
      throw std::runtime_error("connect to " + o_.host + ":" + std::to_string(o_.port) + ": "
                               + std::strerror(err));
    }
    c.ph = phase::connecting;
    ++inflight_;
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.u64 = i;
    if (epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
      throw std::runtime_error(std::string("epoll_ctl: ") + std::strerror(errno));
    }
  }

  void set_interest(unsigned i, bool want_write) {
    auto& c = conns_[i];
    if (c.want_write == want_write) {
      return;
    }
    c.want_write = want_write;
    epoll_event ev{};
    ev.events = EPOLLIN | (want_write ? EPOLLOUT : 0u);
    ev.data.u64 = i;
    epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
  }

  void on_event(unsigned i, std::uint32_t events) {
    auto& c = conns_[i];
    if (c.ph == phase::ended) {
      return;
    }
    if (c.ph == phase::connecting) {
      if (const int err = connect_error(c.fd); err != 0) {
        throw std::runtime_error("connect to " + o_.host + ":" + std::to_string(o_.port) + ": "
                                 + std::strerror(err));
      }
      c.ph = phase::upgrading;
      const auto key = make_key();
      bufs_[i].accept = accept_for(key);
      c.want_write = true;  // registered for EPOLLOUT: send() switches to EPOLLIN
      send(i, upgrade_request(o_.host, o_.port, o_.path, key));
      return;
    }
    if ((events & EPOLLOUT) != 0 && !flush(i)) {
      return;
    }
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) {
      on_readable(i);
    }
  }

  /// Writes as much of `bytes` as the kernel takes now (`bytes` keeps the rest); false when
  /// the connection ended (reset by the peer).
  bool write_some(unsigned i, std::string_view& bytes) {
    while (!bytes.empty()) {
      const auto n = ::send(conns_[i].fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        if (errno == EAGAIN) {
          return true;
        }
        end(i, true);  // reset by the peer
        return false;
      }
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  /// Writes what is pending; false when the connection ended.
  bool flush(unsigned i) {
    auto& c = conns_[i];
    if (c.out_pending) {
      auto& out = bufs_[i].out;
      std::string_view rest = out;
      if (!write_some(i, rest)) {
        return false;
      }
      out.erase(0, out.size() - rest.size());
      c.out_pending = !out.empty();
    }
    set_interest(i, c.out_pending);
    return true;
  }

  /// Writes `bytes` at once when nothing is pending (nearly always): only what the kernel
  /// does not take is kept in bufs_[i].out, so a connection's buffer is never touched on its
  /// way - in the close, where this client is what the time waits for, a write through a
  /// buffer left alone since the handshake cost a cold heap block per connection.
  void send(unsigned i, std::string_view bytes) {
    auto& c = conns_[i];
    if (!c.out_pending && !write_some(i, bytes)) {
      return;
    }
    if (!bytes.empty()) {
      bufs_[i].out.append(bytes);
      c.out_pending = true;
    }
    flush(i);
  }

  void send_frame(unsigned i, std::uint8_t op, std::string_view payload) {
    std::string f;
    append_frame(f, op, payload, static_cast<std::uint32_t>(rng_()));
    send(i, f);
  }

  void on_readable(unsigned i) {
    auto& c = conns_[i];
    ssize_t n = 0;
    do {
      n = ::read(c.fd, buffer_, sizeof buffer_);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN) {
        return;
      }
      end(i, true);  // reset
      return;
    }
    if (n == 0) {
      end(i, false);  // the server's FIN
      return;
    }
    const double at = now_ms();
    const auto data =
        unread(bufs_[i].in, c.in_pending, std::string_view(buffer_, static_cast<std::size_t>(n)));
    std::size_t used = 0;
    if (c.ph == phase::upgrading) {
      auto& accept = bufs_[i].accept;
      auto h = check_upgrade_response(data, accept);
      if (h.state == handshake_result::status::incomplete) {
        keep(i, data, 0);
        return;
      }
      if (h.state == handshake_result::status::bad) {
        throw std::runtime_error("client " + std::to_string(first_ + i) + ": " + h.error);
      }
      accept.clear();
      accept.shrink_to_fit();
      used = h.consumed;
      c.ph = phase::subscribing;
      send_frame(i, opcode::text, subscribe_);
    }
    while (used < data.size() && c.ph != phase::ended) {
      frame f;
      std::size_t consumed = 0;
      std::string error;
      const auto st = decode_frame(data.substr(used), max_payload, f, consumed, error);
      if (st == decode_status::incomplete) {
        break;
      }
      if (st == decode_status::error) {
        throw std::runtime_error("client " + std::to_string(first_ + i) + ": " + error);
      }
      on_frame(i, f, at);
      used += consumed;
    }
    if (c.ph != phase::ended) {
      keep(i, data, used);
    }
  }

  /// Keeps data[used..] in bufs_[i].in for the next read (keep_unread).
  void keep(unsigned i, std::string_view data, std::size_t used) {
    keep_unread(bufs_[i].in, conns_[i].in_pending, data, used);
  }

  void on_frame(unsigned i, const frame& f, double at) {
    auto& c = conns_[i];
    switch (f.op) {
      case opcode::text:
      case opcode::binary:
        if (c.message_op != 0) {
          throw std::runtime_error("client " + std::to_string(first_ + i)
                                   + ": a new message inside a fragmented one");
        }
        if (f.fin) {
          on_message(i, f.payload, at);
        } else {
          c.message_op = f.op;
          bufs_[i].message.assign(f.payload);
        }
        return;
      case opcode::continuation:
        if (c.message_op == 0) {
          throw std::runtime_error("client " + std::to_string(first_ + i)
                                   + ": continuation frame without a message");
        }
        bufs_[i].message.append(f.payload);
        if (f.fin) {
          c.message_op = 0;
          std::string m = std::move(bufs_[i].message);
          bufs_[i].message.clear();
          on_message(i, m, at);
        }
        return;
      case opcode::ping:
        send_frame(i, opcode::pong, f.payload);
        return;
      case opcode::pong:
        return;
      case opcode::close: {
        if (c.close_received) {
          return;
        }
        c.close_received = true;
        c.close_code = 1005;
        if (f.payload.size() >= 2) {
          c.close_code = static_cast<std::uint16_t>(
              (static_cast<unsigned>(static_cast<std::uint8_t>(f.payload[0])) << 8)
              | static_cast<std::uint8_t>(f.payload[1]));
        }
        r_.close_frame_at[first_ + i] = at;
        if (!c.close_sent) {
          // Answer with the same code (RFC 6455 §5.5.1); then wait for the server's FIN.
          c.close_sent = true;
          send_frame(i, opcode::close,
                     c.close_code == 1005 ? std::string() : close_payload(c.close_code));
        }
        return;
      }
      default:
        return;
    }
  }

  void on_message(unsigned i, std::string_view m, double at) {
    auto& c = conns_[i];
    const unsigned client = first_ + i;
    // Keys are sorted by the server's JSON: a test_broadcast starts with its data.
    static constexpr std::string_view round_prefix = R"({"data":{"round":)";
    if (c.ph == phase::ready && m.substr(0, round_prefix.size()) == round_prefix) {
      unsigned round = 0;
      const auto* b = m.data() + round_prefix.size();
      auto res = std::from_chars(b, m.data() + m.size(), round);
      if (res.ec != std::errc{} || round >= o_.rounds) {
        ++r_.other_messages;
        return;
      }
      auto& slot = r_.delivered_at[round][client];
      if (!std::isnan(slot)) {
        ++r_.duplicates;
        return;
      }
      slot = at;
      if (++round_count_[round] == conns_.size()) {
        r_.report([&] { ++r_.rounds_done[round]; });
      }
      return;
    }
    if (m.find(R"("type":"server_shutdown")") != std::string_view::npos) {
      if (std::isnan(r_.shutdown_at[client])) {
        r_.shutdown_at[client] = at;
      }
      return;
    }
    if (c.ph == phase::subscribing) {
      if (m.find(R"("type":"subscription_confirm")") != std::string_view::npos) {
        c.ph = phase::ready;
        --inflight_;
        if (++ready_ == conns_.size()) {
          r_.report([&] { ++r_.threads_ready; });
        }
        return;
      }
      if (m.find(R"("type":"error")") != std::string_view::npos) {
        throw std::runtime_error("client " + std::to_string(client)
                                 + ": subscribe answered: " + std::string(m));
      }
      return;  // {"type":"connected",...}
    }
    ++r_.other_messages;
  }

  /// The connection ended (the server's FIN, or a reset): recorded, fd closed.
  void end(unsigned i, bool reset) {
    auto& c = conns_[i];
    const unsigned client = first_ + i;
    if (c.ph == phase::ended) {
      return;
    }
    if (c.ph != phase::ready) {
      throw std::runtime_error("client " + std::to_string(client)
                               + ": connection ended during its handshake/subscribe");
    }
    if (!r_.sigterm_sent.load()) {
      throw std::runtime_error(
          "client " + std::to_string(client) + ": the connection ended before the SIGTERM ("
          + (c.close_received ? "close " + std::to_string(c.close_code)
                              : std::string(reset ? "reset" : "no close frame"))
          + ")");
    }
    c.ph = phase::ended;
    r_.closed_at[client] = now_ms();
    r_.codes[client] = c.close_received ? c.close_code : 1006;
    r_.clean[client] = c.close_received && c.close_sent && !reset ? 1 : 0;
    if (o_.close_each) {
      ::close(c.fd);
      c.fd = -1;
    } else {
      epoll_ctl(epoll_, EPOLL_CTL_DEL, c.fd, nullptr);  // closed by the destructor
    }
    if (c.in_pending || c.out_pending) {
      bufs_[i].in = {};
      bufs_[i].out = {};
      c.in_pending = c.out_pending = false;
    }
    if (++ended_ == conns_.size()) {
      r_.report([&] { ++r_.threads_closed; });
    }
  }

  const options& o_;
  results& r_;
  const unsigned first_;
  const unsigned max_inflight_;
  std::vector<conn> conns_;
  std::vector<conn_buffers> bufs_;  ///< by connection, like conns_
  std::deque<retry> pending_;
  std::vector<std::size_t> round_count_;
  std::minstd_rand rng_;  ///< frame masks (the bench needs no unpredictability)
  int epoll_ = -1;
  int wake_ = -1;
  std::atomic<bool> stopping_{false};
  unsigned inflight_ = 0;
  std::size_t ready_ = 0;
  std::size_t ended_ = 0;
  std::size_t connect_retries_ = 0;
  std::string subscribe_;
  char buffer_[65536];
};

// ---------------------------------------------------------------------------------------
// The coordinator

double sample(const std::string& metrics, const std::string& name) {
  std::istringstream in(metrics);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + " ", 0) == 0) {
      return std::strtod(line.c_str() + name.size() + 1, nullptr);
    }
  }
  return nan;
}

nlohmann::json run(const options& o) {
  if (const auto l = raise_fd_limit(o.clients); l.error != 0) {
    if (l.hard != RLIM_INFINITY && l.hard < l.want) {
      throw std::runtime_error("ulimit -Hn is " + std::to_string(l.hard) + ": "
                               + std::to_string(o.clients) + " clients need "
                               + std::to_string(l.want));
    }
    throw std::runtime_error(std::string("setrlimit(RLIMIT_NOFILE): ") + std::strerror(l.error));
  }
  results r(o);
  const long rss_before = rss_kib(o.pid);
  const double t0 = now_ms();

  std::vector<std::unique_ptr<client_thread>> workers;
  for (unsigned t = 0, first = 0; t < o.threads; ++t) {
    const unsigned share = share_of(o.clients, o.threads, t);
    workers.push_back(
        std::make_unique<client_thread>(o, r, first, share, o.connect_inflight / o.threads));
    first += share;
  }
  std::vector<std::thread> threads;
  struct joiner {
    std::vector<std::unique_ptr<client_thread>>& w;
    std::vector<std::thread>& t;
    ~joiner() {
      for (auto& x : w) {
        x->stop();
      }
      for (auto& x : t) {
        x.join();
      }
    }
  } join_on_exit{workers, threads};
  for (auto& w : workers) {
    threads.emplace_back([&w] { w->run(); });
  }
  r.wait(
      o.connect_timeout_s, [&] { return r.threads_ready == o.threads; },
      [&] { return "not every client connected and subscribed"; });
  const double connect_ms = now_ms() - t0;
  http_connection http(o);
  http.open();  // the trigger's connection: set up before, like the clients'
  std::this_thread::sleep_for(std::chrono::milliseconds(o.settle_ms));  // allocator, first reads
  const long rss_after = rss_kib(o.pid);

  nlohmann::json rounds = nlohmann::json::array();
  std::vector<double> p99s;
  double server_cpu_rounds = 0;
  double client_cpu_rounds = 0;
  for (unsigned round = 0; round < o.rounds; ++round) {
    const double server_cpu0 = process_cpu_ms(o.pid);
    const double client_cpu0 = cpu_ms();
    const double start = now_ms();
    auto a = http.request(
        "POST", "/api/v1/test/broadcast",
        R"({"channels":[")" + o.channel + R"("],"data":{"round":)" + std::to_string(round) + "}}");
    const double queued_ms = now_ms() - start;
    if (a.status != 200) {
      throw std::runtime_error("POST /api/v1/test/broadcast answered " + std::to_string(a.status)
                               + ": " + a.body + " (is HTTP_TEST_ROUTES=true?)");
    }
    const auto queued = nlohmann::json::parse(a.body).value("queued", std::uint64_t{0});
    r.wait(
        o.round_timeout_s, [&] { return r.rounds_done[round] == o.threads; },
        [&] {
          std::size_t got = 0;
          for (double t : r.delivered_at[round]) {
            got += std::isnan(t) ? 0 : 1;
          }
          return "broadcast " + std::to_string(round + 1) + " reached " + std::to_string(got)
                 + " of " + std::to_string(o.clients) + " clients (queued " + std::to_string(queued)
                 + ")";
        });
    server_cpu_rounds += process_cpu_ms(o.pid) - server_cpu0;
    client_cpu_rounds += cpu_ms() - client_cpu0;
    const auto lat = sorted_since(r.delivered_at[round], start);
    p99s.push_back(percentile(lat, 99));
    rounds.push_back({{"queued", queued},
                      {"queued_ms", queued_ms},
                      {"delivered", lat.size()},
                      {"p50", percentile(lat, 50)},
                      {"p99", percentile(lat, 99)},
                      {"max", lat.back()},
                      {"first", lat.front()},
                      {"start_monotonic_ms", start}});
    std::this_thread::sleep_for(std::chrono::milliseconds(o.round_gap_ms));
  }
  std::sort(p99s.begin(), p99s.end());
  auto metrics = http.request("GET", "/metrics", {});
  http.close();  // before the SIGTERM: the server's drain waits for no connection of ours
  const double fanout_ms = 1000.0 * sample(metrics.body, "si_ws_fanout_seconds_sum")
                           / sample(metrics.body, "si_ws_fanout_seconds_count");

  nlohmann::json out = {
      {"client", "native"},
      {"clients", o.clients},
      {"workers", o.threads},
      {"threads", o.threads},
      {"sched_batch", o.sched_batch},
      {"connect_ms", std::lround(connect_ms)},
      {"rss_before_kib", rss_before},
      {"rss_after_kib", rss_after},
      {"rss_per_connection_kib",
       static_cast<double>(rss_after - rss_before) / static_cast<double>(o.clients)},
      {"rounds", rounds},
      {"p99_median_round_ms", p99s[p99s.size() / 2]},
      {"hub_fanout_mean_ms", fanout_ms},
      {"server_cpu_ms_per_round", server_cpu_rounds / o.rounds},
      {"client_cpu_ms_per_round", client_cpu_rounds / o.rounds},
      {"duplicates", r.duplicates.load()},
      {"other_messages", r.other_messages.load()},
      {"grace_ms", o.grace_ms},
      {"client_close_each", o.close_each},
  };
  if (!o.sigterm) {
    return out;
  }

  // From /proc/PID/stat, not the threads' schedstat: the server's threads end during its
  // shutdown, and the sum over the threads still there would shrink (10 ms resolution).
  const double server_stat_cpu0 = process_stat_cpu(o.pid).ms;
  const double client_cpu0 = cpu_ms();
  r.sigterm_sent.store(true);
  const double term = now_ms();
  if (::kill(o.pid, SIGTERM) != 0) {
    throw std::runtime_error("kill(" + std::to_string(o.pid)
                             + ", SIGTERM): " + std::strerror(errno));
  }
  r.wait(
      o.close_timeout_s, [&] { return r.threads_closed == o.threads; },
      [&] {
        std::size_t closed = 0;
        for (double t : r.closed_at) {
          closed += std::isnan(t) ? 0 : 1;
        }
        return std::to_string(closed) + " of " + std::to_string(o.clients)
               + " connections ended after SIGTERM";
      });
  const double client_cpu_shutdown = cpu_ms() - client_cpu0;
  const double server_cpu_shutdown = process_stat_cpu(o.pid).ms - server_stat_cpu0;  // NaN: exited
  // The whole shutdown's CPU: /proc/PID/stat read every millisecond until the process is
  // gone (ws.sh's shell reaps it at once); the last reading misses at most the last
  // millisecond (10 ms resolution anyway). NaN when it does not exit within
  // --close-timeout-s.
  double server_cpu_to_exit = nan;
  for (const double until = now_ms() + o.close_timeout_s * 1000.0;;) {
    const auto st = process_stat_cpu(o.pid);
    if (st.state == '?') {
      break;  // gone: the previous reading stands
    }
    server_cpu_to_exit = st.ms - server_stat_cpu0;
    if (now_ms() > until) {
      server_cpu_to_exit = nan;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // bounded poll, a tool
  }

  auto [first_shutdown, last_shutdown, notified] = spread_since(r.shutdown_at, term);
  auto [first_close_frame, last_close_frame, close_frames] = spread_since(r.close_frame_at, term);
  auto [first_closed, last_closed, closed] = spread_since(r.closed_at, term);
  double gap_min = nan;
  double frame_gap_min = nan;
  for (unsigned i = 0; i < o.clients; ++i) {
    const double g = r.closed_at[i] - r.shutdown_at[i];
    const double fg = r.close_frame_at[i] - r.shutdown_at[i];
    if (!std::isnan(g)) {
      gap_min = std::isnan(gap_min) ? g : std::min(gap_min, g);
    }
    if (!std::isnan(fg)) {
      frame_gap_min = std::isnan(frame_gap_min) ? fg : std::min(frame_gap_min, fg);
    }
  }
  out["sigterm_monotonic_ms"] = term;  // CLOCK_MONOTONIC, e.g. for perf --clockid monotonic
  out["notified"] = notified;
  out["closed"] = closed;
  out["closed_1001"] = std::count(r.codes.begin(), r.codes.end(), 1001);
  out["closed_cleanly"] = std::count(r.clean.begin(), r.clean.end(), 1);
  out["sigterm_to_first_shutdown_ms"] = first_shutdown;
  out["sigterm_to_last_shutdown_ms"] = last_shutdown;
  out["shutdown_to_close_min_ms"] = gap_min;
  out["shutdown_to_close_frame_min_ms"] = frame_gap_min;
  out["close_frames"] = close_frames;
  out["sigterm_to_first_close_frame_ms"] = first_close_frame;
  out["sigterm_to_last_close_frame_ms"] = last_close_frame;
  out["sigterm_to_first_closed_ms"] = first_closed;
  out["sigterm_to_all_closed_ms"] = last_closed;
  out["client_cpu_ms_shutdown"] = client_cpu_shutdown;
  out["server_cpu_ms_shutdown"] = server_cpu_shutdown;
  out["server_cpu_ms_sigterm_to_exit"] = server_cpu_to_exit;
  return out;
}

}  // namespace
}  // namespace si::wsbench

int main(int argc, char** argv) {
  using namespace si::wsbench;
  return run_main("ws-bench", usage_text, argc, argv, parse_options, run);
}
