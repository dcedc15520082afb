/// ws-floor: the peer of scripts/bench/ws.sh (docs/websocket.md, "Bench"): the WebSocket
/// fan-out and close this host can do with no framework at all, measured in the same run.
///
///   ws-floor CLIENTS ROUNDS [--senders T] [--frame-bytes B] [--client-threads C] ...
///
/// It forks. The child is the "raw server": it accepts CLIENTS connections (TCP_NODELAY,
/// non-blocking) on a free 127.0.0.1 port (bound before the fork, so both processes know it)
/// and obeys commands from a socketpair. "broadcast": T sender threads each send() one
/// pre-encoded unmasked text frame of B payload bytes to each connection of a contiguous
/// share (a short write or EAGAIN is an error: the buffers are empty). "close": one thread
/// sends a close frame (1001) and the FIN (shutdown) to every connection, then the T sender
/// threads wait (each its own epoll) for each close reply of their share, read it and
/// close() the socket: the server side of RFC 6455's closing handshake as
/// net/ws_connection.cpp does it (its close pass is one io thread's, the answers read after;
/// --close-in-parallel: each sender thread writes the close frames of its own share, then
/// reads its replies).
/// It reports its CPU time per phase.
///
/// The parent is the client, built like ws-bench's: non-blocking sockets, one epoll loop per
/// thread, one read per ready socket, frames found but not parsed further. No HTTP upgrade:
/// raw TCP carrying WebSocket frames (the upgrade is not what is measured). A round is timed
/// from just before its command to each socket's arrival of the whole frame (CLOCK_MONOTONIC);
/// the close phase from its command to the last close frame and to the last end of
/// connection (each client answers the close frame with a masked close 1001 and close()s on
/// the server's FIN, which arrives right behind the close frame). One JSON object on stdout; exit 1
/// when it could not complete (the reason on stderr), 2 for bad arguments.

#include "tools/ws_bench/bench_util.hpp"
#include "tools/ws_bench/ws_wire.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace si::wsfloor {
namespace {

using namespace si::wsbench;  // ws_wire.hpp and bench_util.hpp

int ms_until(double deadline) {
  return static_cast<int>(std::max(0.0, deadline - now_ms()));
}
[[noreturn]] void fail(const std::string& why) {
  throw std::runtime_error(why);
}
[[noreturn]] void fail_errno(const std::string& what) {
  fail(what + ": " + std::strerror(errno));
}

struct options {
  unsigned clients = 0;
  unsigned rounds = 0;
  unsigned senders = std::max(1u, std::thread::hardware_concurrency());
  // ws.sh's message: {"data":{"round":N},"timestamp":<13 digits>,"type":"test_broadcast"}
  unsigned frame_bytes = 70;
  unsigned client_threads = 1;
  unsigned connect_inflight = 256;
  unsigned settle_ms = 1000;
  unsigned round_gap_ms = 300;
  unsigned timeout_s = 60;
  bool close_each = false;
  bool close_in_parallel = false;
};

constexpr std::string_view usage_text = R"(usage: ws-floor CLIENTS ROUNDS [--option value ...]
  CLIENTS                  connections (1..1000000)
  ROUNDS                   broadcasts (1..1000)
options (defaults in brackets):
  --senders T              the raw server's sender threads [number of cores]
  --frame-bytes B          text frame payload, 1..8192 [70: ws.sh's test_broadcast message]
  --client-threads C       client event-loop threads, 1..64 [1]
  --connect-inflight N     connects in flight at once, over all client threads [256]
  --settle-ms N            wait after connecting, before the first broadcast [1000]
  --round-gap-ms N         pause between broadcasts [300]
  --timeout-s N            bound of every wait (connecting, one round, closing) [60]
  --close-each             the client closes each socket as soon as its connection ended
                           (by default once every connection ended, as ws-bench does)
  --close-in-parallel      each sender thread writes the close frames of its share, then
                           reads its replies (by default one thread writes them all, then
                           the sender threads read the replies)
)";

options parse_options(int argc, char** argv) {
  options o;
  const auto positional =
      parse_command_line(argc, argv, usage_text,
                         {{"--senders", &o.senders, 1, 256},
                          {"--frame-bytes", &o.frame_bytes, 1, 8192},
                          {"--client-threads", &o.client_threads, 1, 64},
                          {"--connect-inflight", &o.connect_inflight, 1, 65'536},
                          {"--settle-ms", &o.settle_ms, 0, 600'000},
                          {"--round-gap-ms", &o.round_gap_ms, 0, 600'000},
                          {"--timeout-s", &o.timeout_s, 1, 3'600}},
                         [&](std::string_view a, int&) {
                           if (a == "--close-each") {
                             o.close_each = true;
                             return true;
                           }
                           if (a == "--close-in-parallel") {
                             o.close_in_parallel = true;
                             return true;
                           }
                           return false;
                         });
  if (positional.size() != 2) {
    throw usage_error("expected CLIENTS ROUNDS");
  }
  o.clients = parse_unsigned("CLIENTS", positional[0], 1, 1'000'000);
  o.rounds = parse_unsigned("ROUNDS", positional[1], 1, 1'000);
  o.senders = std::min(o.senders, o.clients);
  o.client_threads = std::min(o.client_threads, o.clients);
  return o;
}

/// An unmasked server frame (FIN set), payload under 64 KiB.
std::string server_frame(std::uint8_t op, std::string_view payload) {
  std::string f(1, static_cast<char>(0x80 | op));
  const auto n = payload.size();
  if (n < 126) {
    f += static_cast<char>(n);
  } else {
    f += {static_cast<char>(126), static_cast<char>(n >> 8), static_cast<char>(n & 0xFF)};
  }
  return f.append(payload);
}

// ---------------------------------------------------------------------------------------
// The child: the raw server.

class raw_server {
 public:
  raw_server(const options& o, int listen_fd, int ctl) : o_(o), listen_(listen_fd), ctl_(ctl) {}

  void run() {
    accept_all();
    tell("accepted");
    // Between two commands the client waits up to timeout_s, then pauses or settles.
    const int idle_ms = static_cast<int>(2 * o_.timeout_s * 1000 + o_.settle_ms + o_.round_gap_ms);
    for (;;) {
      pollfd p{ctl_, POLLIN, 0};
      char cmd = 0;
      if (::poll(&p, 1, idle_ms) != 1) {
        fail("no command from the client within " + std::to_string(idle_ms) + " ms");
      }
      if (::read(ctl_, &cmd, 1) != 1) {
        return;  // the client is gone
      }
      // The sender threads start per command (microseconds, inside the measured phase).
      const double cpu0 = cpu_ms();
      on_senders(cmd == 'c');
      tell((cmd == 'c' ? "closed " : "broadcast ") + std::to_string(cpu_ms() - cpu0));
      if (cmd == 'c') {
        return;
      }
    }
  }

 private:
  void accept_all() {
    const double deadline = now_ms() + o_.timeout_s * 1e3;
    while (fds_.size() < o_.clients) {
      pollfd p{listen_, POLLIN, 0};
      if (::poll(&p, 1, ms_until(deadline)) == 0) {
        fail("accepted " + std::to_string(fds_.size()) + " of " + std::to_string(o_.clients)
             + " connections within the timeout");
      }
      const int fd = ::accept4(listen_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0 && errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
        fail_errno("accept4");
      }
      if (fd >= 0) {
        const int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fds_.push_back(fd);
      }
    }
    // Each sender thread's epoll holds its share from the start, as an io thread's would.
    for (unsigned t = 0; t < o_.senders; ++t) {
      epolls_.push_back(epoll_create1(EPOLL_CLOEXEC));
      for (unsigned i = begin(t); i < begin(t + 1); ++i) {
        epoll_event ev{EPOLLIN, {.u32 = i}};
        if (epolls_.back() < 0 || epoll_ctl(epolls_.back(), EPOLL_CTL_ADD, fds_[i], &ev) != 0) {
          fail_errno("epoll");
        }
      }
    }
  }

  /// Sender thread t's share is fds_[begin(t), begin(t + 1)).
  unsigned begin(unsigned t) const {
    return static_cast<unsigned>(std::uint64_t{o_.clients} * t / o_.senders);
  }

  /// Runs the broadcast (or close) on o_.senders threads, joins them, rethrows an error.
  /// The close frames are written first by this thread, all of them, unless
  /// close_in_parallel.
  void on_senders(bool close) {
    const bool one_writer = close && !o_.close_in_parallel;
    if (one_writer) {
      send_range(0, o_.clients, close_frame_, true);
    }
    std::mutex m;
    std::string error;
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < o_.senders; ++t) {
      threads.emplace_back([&, t] {
        try {
          if (!one_writer) {
            send_range(begin(t), begin(t + 1), close ? close_frame_ : text_frame_, close);
          }
          if (close) {
            await_replies(t);
          }
        } catch (const std::exception& e) {
          std::lock_guard lock(m);
          error = error.empty() ? e.what() : error;
        }
      });
    }
    for (auto& t : threads) {
      t.join();
    }
    if (!error.empty()) {
      fail(error);
    }
  }

  /// `fin`: the sending side is shut down right after the frame, as the server does after
  /// its close frame (the client reads the close frame and the end of the stream together).
  void send_range(unsigned from, unsigned to, const std::string& frame, bool fin) const {
    for (unsigned i = from; i < to; ++i) {
      const auto n = ::send(fds_[i], frame.data(), frame.size(), MSG_NOSIGNAL);
      if (n < 0) {
        fail_errno("connection " + std::to_string(i) + ": send");
      }
      if (n != static_cast<ssize_t>(frame.size())) {
        fail("connection " + std::to_string(i) + ": short write");
      }
      if (fin && ::shutdown(fds_[i], SHUT_WR) != 0) {
        fail_errno("connection " + std::to_string(i) + ": shutdown");
      }
    }
  }

  /// Reads each close reply of t's share (0x88, 0x82: masked, 2 bytes; the mask; 1001
  /// masked), then close()s the socket (the FIN went out with the close frame).
  void await_replies(unsigned t) {
    const unsigned from = begin(t);
    std::vector<std::array<unsigned char, 8>> reply(begin(t + 1) - from);
    std::vector<std::uint8_t> got(reply.size(), 0);
    std::vector<epoll_event> events(512);
    const double deadline = now_ms() + o_.timeout_s * 1e3;
    for (std::size_t open = reply.size(); open > 0;) {
      const int n = epoll_wait(epolls_[t], events.data(), 512, ms_until(deadline));
      if (n == 0) {
        fail(std::to_string(open) + " close replies missing after the timeout");
      }
      for (int k = 0; k < n; ++k) {
        const unsigned i = events[static_cast<std::size_t>(k)].data.u32;
        auto& r = reply[i - from];
        auto& g = got[i - from];
        const auto m = ::read(fds_[i], r.data() + g, r.size() - g);
        if (m < 0 && (errno == EAGAIN || errno == EINTR)) {
          continue;
        }
        if (m <= 0) {
          fail("connection " + std::to_string(i) + " ended before its close reply");
        }
        if ((g += static_cast<std::uint8_t>(m)) < r.size()) {
          continue;
        }
        if (r[0] != 0x88 || r[1] != 0x82 || (r[2] ^ r[6]) != 1001 >> 8
            || (r[3] ^ r[7]) != (1001 & 0xFF)) {
          fail("connection " + std::to_string(i) + ": not a masked close 1001");
        }
        ::close(fds_[i]);
        --open;
      }
    }
  }

  void tell(const std::string& line) const {
    const std::string l = line + "\n";
    if (::write(ctl_, l.data(), l.size()) != static_cast<ssize_t>(l.size())) {
      fail_errno("write to the client");
    }
  }

  const options& o_;
  const int listen_;
  const int ctl_;
  const std::string text_frame_ = server_frame(opcode::text, std::string(o_.frame_bytes, 'x'));
  const std::string close_frame_ = server_frame(opcode::close, close_payload(1001));
  std::vector<int> fds_;
  std::vector<int> epolls_;
};

// ---------------------------------------------------------------------------------------
// The parent: client threads, and the coordinator that talks to the raw server.

struct shared : progress {
  explicit shared(const options& o)
      : arrived(o.rounds, std::vector<double>(o.clients, nan)),
        close_frame_at(o.clients, nan),
        closed_at(o.clients, nan),
        rounds_done(o.rounds, 0) {}

  // One slot per client, written by its thread, read once that thread reported (mutex).
  std::vector<std::vector<double>> arrived;  ///< [round][client], CLOCK_MONOTONIC ms
  std::vector<double> close_frame_at;
  std::vector<double> closed_at;
  std::atomic<bool> closing{false};  ///< before it, a close frame or an end is an error
  std::atomic<bool> stop{false};

  // Per-thread completions, under progress::mutex.
  unsigned connected = 0;
  std::vector<unsigned> rounds_done;
  unsigned closed = 0;
};

class client_thread {
 public:
  client_thread(const options& o, shared& s, sockaddr_in addr, unsigned first, unsigned count)
      : o_(o),
        s_(s),
        addr_(addr),
        first_(first),
        conns_(count),
        ins_(count),
        round_count_(o.rounds, 0) {
    max_inflight_ = std::max(1u, o.connect_inflight / o.client_threads);
  }
  ~client_thread() {
    for (auto& c : conns_) {
      if (c.fd >= 0) {
        ::close(c.fd);
      }
    }
    ::close(epoll_);
  }
  client_thread(const client_thread&) = delete;
  client_thread& operator=(const client_thread&) = delete;

  /// The event loop, until shared::stop (seen within 100 ms) or an error (reported).
  void run() {
    try {
      if (epoll_ < 0) {
        fail_errno("epoll_create1");
      }
      std::vector<epoll_event> events(512);
      while (!s_.stop.load()) {
        const int n = epoll_wait(epoll_, events.data(), 512, connect_more());
        for (int k = 0; k < n; ++k) {
          on_event(static_cast<unsigned>(events[static_cast<std::size_t>(k)].data.u64));
        }
      }
    } catch (const std::exception& e) {
      s_.fail(e.what());
    }
  }

 private:
  /// 12 bytes, like ws-bench's (its buffer, rarely used, in ins_): a broadcast touches each
  /// connection's state once.
  struct conn {
    int fd = -1;
    bool connected = false;
    bool ended = false;
    bool in_pending = false;  ///< ins_[i] holds the start of a frame not yet whole (rare)
    unsigned frames = 0;      ///< text frames so far: the k-th is round k's
  };
  static_assert(sizeof(conn) <= 12);

  /// Starts connects, in order, while fewer than max_inflight_ are pending; EAGAIN (no
  /// local port or backlog room right now) retries the same one 10 ms later. The epoll timeout.
  int connect_more() {
    const double now = now_ms();
    while (inflight_ < max_inflight_ && next_ < conns_.size() && retry_at_ <= now) {
      auto& c = conns_[next_];
      c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (c.fd < 0) {
        fail_errno("socket");
      }
      const int one = 1;
      setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&addr_), sizeof addr_) != 0
          && errno != EINPROGRESS) {
        if (errno != EAGAIN || ++retries_ > 10'000) {
          fail_errno("connect");
        }
        ::close(c.fd);
        c.fd = -1;
        retry_at_ = now + 10;
        return 10;
      }
      epoll_event ev{EPOLLOUT, {.u64 = next_++}};
      if (epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
        fail_errno("epoll_ctl");
      }
      ++inflight_;
    }
    return 100;
  }

  void on_event(unsigned i) {
    auto& c = conns_[i];
    const unsigned client = first_ + i;
    if (c.fd < 0 || c.ended) {
      return;
    }
    if (!c.connected) {
      if (const int err = connect_error(c.fd); err != 0) {
        fail(std::string("connect: ") + std::strerror(err));
      }
      c.connected = true;
      --inflight_;
      epoll_event ev{EPOLLIN, {.u64 = i}};
      epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
      if (++connected_ == conns_.size()) {
        s_.report([&] { ++s_.connected; });
      }
      return;
    }
    const auto n = ::read(c.fd, buffer_, sizeof buffer_);  // one read per ready socket
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      return;
    }
    if (n < 0) {
      fail_errno("client " + std::to_string(client) + ": read");
    }
    if (n == 0) {  // the server's FIN (right behind its close frame, which we answered)
      if (std::isnan(s_.close_frame_at[client])) {
        fail("client " + std::to_string(client) + ": connection ended without a close frame");
      }
      s_.closed_at[client] = now_ms();
      c.ended = true;
      if (o_.close_each) {
        ::close(c.fd);
        c.fd = -1;
      } else {
        epoll_ctl(epoll_, EPOLL_CTL_DEL, c.fd, nullptr);  // closed by the destructor
      }
      if (++ended_ == conns_.size()) {
        s_.report([&] { ++s_.closed; });
      }
      return;
    }
    const double at = now_ms();
    const auto data =
        unread(ins_[i], c.in_pending, std::string_view(buffer_, static_cast<std::size_t>(n)));
    std::size_t used = 0;
    for (;;) {
      frame f;
      std::size_t size = 0;
      std::string error;
      const auto st = decode_frame(data.substr(used), 1 << 16, f, size, error);
      if (st == decode_status::incomplete) {
        break;
      }
      if (st == decode_status::error) {
        fail("client " + std::to_string(client) + ": " + error);
      }
      used += size;
      on_frame(c, client, f.op, at);
    }
    keep_unread(ins_[i], c.in_pending, data, used);
  }

  void on_frame(conn& c, unsigned client, std::uint8_t op, double at) {
    if (op == opcode::text && c.frames < o_.rounds) {
      const unsigned round = c.frames++;
      s_.arrived[round][client] = at;
      if (++round_count_[round] == conns_.size()) {
        s_.report([&] { ++s_.rounds_done[round]; });
      }
    } else if (op == opcode::close && s_.closing.load()) {
      s_.close_frame_at[client] = at;
      std::string reply;
      append_frame(reply, opcode::close, close_payload(1001), static_cast<std::uint32_t>(rng_()));
      if (::send(c.fd, reply.data(), reply.size(), MSG_NOSIGNAL)
          != static_cast<ssize_t>(reply.size())) {
        fail("client " + std::to_string(client) + ": the close reply was not sent whole");
      }
    } else {
      fail("client " + std::to_string(client) + ": unexpected frame, opcode " + std::to_string(op));
    }
  }

  const options& o_;
  shared& s_;
  const sockaddr_in addr_;
  const unsigned first_;
  unsigned max_inflight_ = 1;
  std::vector<conn> conns_;
  std::vector<std::string> ins_;  ///< by connection, like conns_
  std::vector<std::size_t> round_count_;
  std::minstd_rand rng_{std::random_device{}()};  ///< close-reply masks
  int epoll_ = epoll_create1(EPOLL_CLOEXEC);
  unsigned inflight_ = 0;
  std::size_t next_ = 0;  ///< the next connection to start
  double retry_at_ = 0;
  std::size_t retries_ = 0;
  std::size_t connected_ = 0;
  std::size_t ended_ = 0;
  char buffer_[65536];
};

/// Reads the raw server's next line, which must start with `word`; the number after it.
double expect(int ctl, const std::string& word, unsigned timeout_s) {
  std::string line;
  const double deadline = now_ms() + timeout_s * 1e3;
  for (char ch = 0; ch != '\n'; line += ch) {
    pollfd p{ctl, POLLIN, 0};
    if (::poll(&p, 1, ms_until(deadline)) == 0) {
      fail("no '" + word + "' from the raw server within " + std::to_string(timeout_s) + " s");
    }
    if (::read(ctl, &ch, 1) != 1) {
      fail("the raw server exited before '" + word + "'");
    }
  }
  if (line.rfind(word, 0) != 0) {
    fail("the raw server said '" + line + "', expected '" + word + "'");
  }
  return std::strtod(line.c_str() + word.size(), nullptr);
}

void command(int ctl, char c) {
  if (::write(ctl, &c, 1) != 1) {
    fail_errno("sending a command to the raw server (has it exited?)");
  }
}

nlohmann::json run_client(const options& o, int ctl, pid_t child, sockaddr_in addr) {
  shared s(o);
  std::vector<std::unique_ptr<client_thread>> workers;
  for (unsigned t = 0, first = 0; t < o.client_threads; ++t) {
    const unsigned n = share_of(o.clients, o.client_threads, t);
    workers.push_back(std::make_unique<client_thread>(o, s, addr, first, n));
    first += n;
  }
  std::vector<std::jthread> threads;  // joined before workers and s are destroyed
  struct stopper {
    shared& s;
    ~stopper() {
      s.stop.store(true);
    }
  } stop_on_exit{s};  // destroyed before threads: they see stop, then are joined
  const double t0 = now_ms();
  for (auto& w : workers) {
    threads.emplace_back([&w] { w->run(); });
  }
  s.wait(
      o.timeout_s, [&] { return s.connected == o.client_threads; }, "connecting");
  expect(ctl, "accepted", o.timeout_s);
  const double connect_ms = now_ms() - t0;
  std::this_thread::sleep_for(std::chrono::milliseconds(o.settle_ms));

  nlohmann::json rounds = nlohmann::json::array();
  std::vector<double> p99s;
  double sender_cpu = 0;
  double client_cpu = 0;
  for (unsigned round = 0; round < o.rounds; ++round) {
    const double cpu0 = cpu_ms();
    const double start = now_ms();
    command(ctl, 'b');
    s.wait(
        o.timeout_s, [&] { return s.rounds_done[round] == o.client_threads; },
        "broadcast " + std::to_string(round + 1) + " did not reach every client");
    client_cpu += cpu_ms() - cpu0;
    sender_cpu += expect(ctl, "broadcast", o.timeout_s);
    const auto lat = sorted_since(s.arrived[round], start);
    p99s.push_back(percentile(lat, 99));
    rounds.push_back({{"p50", percentile(lat, 50)}, {"p99", p99s.back()}, {"max", lat.back()}});
    std::this_thread::sleep_for(std::chrono::milliseconds(o.round_gap_ms));
  }
  std::sort(p99s.begin(), p99s.end());

  s.closing.store(true);
  const double cpu0 = cpu_ms();
  const double start = now_ms();
  command(ctl, 'c');
  s.wait(
      o.timeout_s, [&] { return s.closed == o.client_threads; }, "not every connection ended");
  const double client_close_cpu = cpu_ms() - cpu0;
  const double sender_close_cpu = expect(ctl, "closed", o.timeout_s);
  int status = 0;
  const double deadline = now_ms() + o.timeout_s * 1e3;
  while (waitpid(child, &status, WNOHANG) == 0) {
    if (now_ms() > deadline) {
      fail("the raw server did not exit");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fail("the raw server failed (wait status " + std::to_string(status) + ")");
  }
  return {{"clients", o.clients},
          {"senders", o.senders},
          {"frame_bytes", o.frame_bytes},
          {"client_threads", o.client_threads},
          {"client_close_each", o.close_each},
          {"connect_ms", std::lround(connect_ms)},
          {"rounds", rounds},
          {"p99_median_round_ms", p99s[p99s.size() / 2]},
          {"sender_cpu_ms_per_round", sender_cpu / o.rounds},
          {"client_cpu_ms_per_round", client_cpu / o.rounds},
          {"close_frames_last_ms", spread_since(s.close_frame_at, start).last},
          {"all_closed_ms", spread_since(s.closed_at, start).last},
          {"sender_close_cpu_ms", sender_close_cpu},
          {"client_close_cpu_ms", client_close_cpu}};
}

/// Binds the port, forks the raw server and runs the client against it.
nlohmann::json run(const options& o) {
  // Each process holds one end of every connection.
  if (const auto l = raise_fd_limit(o.clients); l.error != 0) {
    fail("raising the fd limit to " + std::to_string(l.want) + " (ulimit -Hn is "
         + std::to_string(l.hard) + "): " + std::strerror(l.error));
  }
  const int listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listen_fd < 0 || ::bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0
      || ::listen(listen_fd, SOMAXCONN) != 0
      || getsockname(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    fail_errno("listen on 127.0.0.1");
  }
  int ctl[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) != 0) {
    fail_errno("socketpair");
  }
  const pid_t parent = getpid();
  const pid_t child = fork();
  if (child < 0) {
    fail_errno("fork");
  }
  if (child == 0) {
    ::close(ctl[0]);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int code = getppid() == parent ? 0 : 1;  // 1: the client is already gone
    try {
      if (code == 0) {
        raw_server(o, listen_fd, ctl[1]).run();
      }
    } catch (const std::exception& e) {
      std::cerr << "ws-floor (raw server): " << e.what() << std::endl;
      code = 1;
    }
    ::_exit(code);
  }
  ::close(listen_fd);
  ::close(ctl[1]);
  try {
    return run_client(o, ctl[0], child, addr);
  } catch (...) {
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    throw;
  }
}

}  // namespace
}  // namespace si::wsfloor

int main(int argc, char** argv) {
  using namespace si::wsfloor;
  return si::wsbench::run_main("ws-floor", usage_text, argc, argv, parse_options, run);
}
