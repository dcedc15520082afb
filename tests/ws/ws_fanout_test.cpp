// net/ws_fanout: the batched send and close over many connections (the ws_hub's fan-out and
// shutdown passes). Real connections on 127.0.0.1 (Beast clients reading in loops, a raw
// client that never reads) and fakes for connections of another implementation.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <span>
#include <thread>
#include <vector>

#include "net/http_server.hpp"
#include "net/ws_connection.hpp"
#include "net/ws_fanout.hpp"
#include "ws_support.hpp"

using namespace si::test;
using si::net::http_server;
using si::net::ws_connection;
using si::net::ws_connection_ptr;
using si::net::ws_fanout;
using si::net::ws_send_result;

namespace {

std::shared_ptr<const std::string> msg(std::string s) {
  return std::make_shared<const std::string>(std::move(s));
}

/// A server whose /ws accepts every upgrade into `rec` (no echo); HTTP requests get 404.
std::unique_ptr<http_server> fanout_server(ws_recorder& rec,
                                           const std::function<void(si::net::ws_options&)>& tune,
                                           unsigned io_threads = 2) {
  si::net::http_server_options o;
  o.host = "127.0.0.1";
  o.io_threads = io_threads;
  o.websocket.hook = [&rec](const si::net::ws_upgrade_request&) {
    return si::net::ws_upgrade_decision::accept(rec.handlers(false));
  };
  if (tune) {
    tune(o.websocket);
  }
  return std::make_unique<http_server>(o, [](si::net::http_request, si::net::respond_fn r) {
    r(si::net::http_response{404, {}, "no"});
  });
}

/// `n` Beast clients reading in loops on one background thread; records what each got.
class readers {
 public:
  readers(std::uint16_t port, std::size_t n) : got_(n), ended_(n, 0) {
    for (std::size_t i = 0; i < n; ++i) {
      clients_.push_back(std::make_unique<ws_client>(io_));
      REQUIRE(clients_.back()->connect(port));
    }
    for (std::size_t i = 0; i < n; ++i) {
      clients_[i]->read_loop(
          [this, i](std::string m) {
            {
              std::lock_guard lock(mutex_);
              got_[i].push_back(std::move(m));
            }
            cv_.notify_all();
          },
          [this, i](std::uint16_t code) {
            {
              std::lock_guard lock(mutex_);
              ended_[i] = code == 0 ? 1006 : code;
            }
            cv_.notify_all();
          });
    }
    io_.start_thread();
  }
  ~readers() {
    io_.stop_thread();
  }

  /// True once every client got at least `n` messages (bounded wait).
  bool wait_all(std::size_t n) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, wait_limit, [&] {
      return std::all_of(got_.begin(), got_.end(), [&](const auto& g) { return g.size() >= n; });
    });
  }
  /// True once the clients got at least `n` messages between them (bounded wait).
  bool wait_total(std::size_t n) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, wait_limit, [&] {
      std::size_t total = 0;
      for (const auto& g : got_) {
        total += g.size();
      }
      return total >= n;
    });
  }
  /// True once every client's connection ended (bounded wait).
  bool wait_ended() {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, wait_limit, [&] {
      return std::all_of(ended_.begin(), ended_.end(), [](auto c) { return c != 0; });
    });
  }
  std::vector<std::vector<std::string>> got() {
    std::lock_guard lock(mutex_);
    return got_;
  }
  std::vector<std::uint16_t> ended() {
    std::lock_guard lock(mutex_);
    return ended_;
  }

 private:
  // Before clients_ because a client's destructor runs its aborted read, whose on_end
  // callback records here.
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::vector<std::string>> got_;
  std::vector<std::uint16_t> ended_;
  ws_io io_;
  std::vector<std::unique_ptr<ws_client>> clients_;
};

/// The only client of a fresh server: a small receive window, and it reads nothing until
/// finish().
struct stalled_client {
  stalled_client(std::uint16_t port, ws_recorder& rec) : socket(port, 4096) {
    const auto answer = socket.upgrade("/ws");
    REQUIRE((answer && answer->status == 101));
    REQUIRE(rec.wait_opened(1));
    conn = rec.opened().front();
  }
  /// Reads up to the server's close frame and answers it with its code; returns the code.
  std::uint16_t finish() {
    const auto code = socket.read_until_close();
    REQUIRE(code.has_value());
    const char echo[2] = {static_cast<char>(*code >> 8), static_cast<char>(*code & 0xff)};
    REQUIRE(socket.send_frame(8, std::string(echo, 2)));
    CHECK(socket.wait_closed());
    socket.close();
    return *code;
  }
  raw_ws socket;
  ws_connection_ptr conn;
};

std::vector<ws_connection*> raw(const std::vector<ws_connection_ptr>& conns) {
  std::vector<ws_connection*> out;
  for (const auto& c : conns) {
    out.push_back(c.get());
  }
  return out;
}

/// A connection of another implementation: records the calls, answers `answer`.
class fake_connection final : public ws_connection {
 public:
  explicit fake_connection(std::uint64_t id, ws_send_result answer = ws_send_result::queued)
      : ws_connection(id, "fake"), answer_(answer) {}
  ws_send_result send(std::shared_ptr<const std::string> message) override {
    if (!message) {
      throw std::invalid_argument("null");
    }
    sent.push_back(*message);
    return answer_;
  }
  void close(std::uint16_t code, std::string reason) override {
    closes.emplace_back(code, std::move(reason));
  }
  void drop() override {}
  bool is_open() const override {
    return closes.empty();
  }
  std::vector<std::string> sent;
  std::vector<std::pair<std::uint16_t, std::string>> closes;

 private:
  ws_send_result answer_;
};

}  // namespace

TEST_CASE("ws_fanout: every connection gets each message once, in order with its sends",
          "[ws][fanout]") {
  ws_recorder rec;
  auto server = fanout_server(rec, {});
  const auto port = server->start();
  constexpr std::size_t n = 40;
  readers clients(port, n);
  REQUIRE(rec.wait_opened(n));
  const auto conns = rec.opened();
  const auto targets = raw(conns);

  // Chunks of 7 over 40 connections: several full chunks and a partial last one, posted
  // while the fan-out is still queueing; every third message goes out with send() instead.
  const si::net::ws_batch_options chunked{7};
  constexpr std::size_t rounds = 30;
  for (std::size_t k = 0; k < rounds; ++k) {
    if (k % 3 == 0) {
      for (const auto& c : conns) {
        REQUIRE(c->send(msg("send " + std::to_string(k))) == ws_send_result::queued);
      }
      continue;
    }
    auto r = ws_fanout(targets, msg("fanout " + std::to_string(k)), chunked);
    CHECK(r.queued == n);
    CHECK(r.closed == 0);
    CHECK(r.overflowed.empty());
  }
  REQUIRE(clients.wait_all(rounds));
  for (const auto& g : clients.got()) {
    REQUIRE(g.size() == rounds);  // exactly once: nothing more arrived
    for (std::size_t k = 0; k < rounds; ++k) {
      CHECK(g[k] == (k % 3 == 0 ? "send " : "fanout ") + std::to_string(k));
    }
  }

  // A connection listed twice gets the message twice; the default chunk serves one batch.
  std::vector<ws_connection*> twice{targets[0], targets[0]};
  auto r = ws_fanout(twice, msg("twice"));
  CHECK(r.queued == 2);
  REQUIRE(clients.wait_total(n * rounds + 2));
  std::size_t with_twice = 0;
  for (const auto& g : clients.got()) {
    if (g.size() == rounds + 2) {  // the client behind targets[0] (whichever it is)
      ++with_twice;
      CHECK(g[rounds] == "twice");
      CHECK(g[rounds + 1] == "twice");
    } else {
      CHECK(g.size() == rounds);
    }
  }
  CHECK(with_twice == 1);
}

TEST_CASE("ws_fanout: a full queue overflows only its own connection, once", "[ws][fanout]") {
  ws_recorder rec;
  auto server = fanout_server(rec, [](si::net::ws_options& w) {
    w.max_queued_messages = 16;
    w.max_queued_bytes = 16 * 1024 * 1024;
    w.overflow_close_code = si::net::ws_close::try_again_later;
    w.close_timeout = std::chrono::seconds(60);  // the slow client answers in the end
  });
  const auto port = server->start();

  stalled_client slow(port, rec);
  const auto slow_conn = slow.conn;
  constexpr std::size_t fast_count = 20;
  readers fast(port, fast_count);
  REQUIRE(rec.wait_opened(fast_count + 1));
  const auto targets = raw(rec.opened());  // the slow connection first

  // 8 MiB for the slow client alone is more than its socket buffers take: its writer stays
  // busy, so from here on its queue only grows (one message per fan-out).
  const auto filler = msg(std::string(1024 * 1024, 'f'));
  for (int i = 0; i < 8; ++i) {
    REQUIRE(slow_conn->send(filler) == ws_send_result::queued);
  }
  std::size_t seq = 0;
  std::size_t overflows = 0;
  std::size_t closed_after = 0;
  for (; seq < 200 && closed_after < 5; ++seq) {
    auto r = ws_fanout(targets, msg(std::to_string(seq)), si::net::ws_batch_options{4});
    CHECK(r.queued + r.closed + r.overflowed.size() == targets.size());
    CHECK(r.queued >= fast_count);  // the readers are never refused
    if (!r.overflowed.empty()) {
      ++overflows;
      REQUIRE(r.overflowed.size() == 1);
      CHECK(r.overflowed[0] == slow_conn.get());
    } else if (overflows > 0) {
      closed_after += r.closed;
      CHECK(r.closed == 1);
    }
    REQUIRE(fast.wait_all(seq + 1));  // paced on the readers, never on time
  }
  REQUIRE(overflows == 1);
  CHECK(seq <= 16 + 5 + 1);  // the limit (16 messages) tripped, not luck
  for (const auto& g : fast.got()) {
    REQUIRE(g.size() == seq);
    for (std::size_t k = 0; k < seq; ++k) {
      CHECK(g[k] == std::to_string(k));
    }
  }
  CHECK_FALSE(slow_conn->is_open());
  for (std::size_t i = 1; i < targets.size(); ++i) {
    CHECK(targets[i]->is_open());
  }
  auto s = server->stats();
  CHECK(s.ws_overflow_closes == 1);
  CHECK(s.ws_messages_dropped >= 1);

  CHECK(slow.finish() == 1013);
  REQUIRE(rec.wait_closed(1));
  CHECK(rec.closed().at(0).id == slow_conn->id());
  CHECK(rec.closed().at(0).code == 1013);
}

TEST_CASE("ws_close_all: what was queued is written, then one close frame each", "[ws][fanout]") {
  ws_recorder rec;
  auto server = fanout_server(rec, {});
  const auto port = server->start();
  constexpr std::size_t n = 12;
  readers clients(port, n);
  REQUIRE(rec.wait_opened(n));
  const auto targets = raw(rec.opened());

  REQUIRE(ws_fanout(targets, msg("last words")).queued == n);
  si::net::ws_close_all(targets, 4002, "bye", si::net::ws_batch_options{5});
  si::net::ws_close_all(targets, 4003, "again");  // only the first close counts
  for (auto* c : targets) {
    CHECK_FALSE(c->is_open());
  }
  auto after = ws_fanout(targets, msg("too late"));
  CHECK(after.queued == 0);
  CHECK(after.closed == n);
  REQUIRE(clients.wait_ended());
  for (const auto& g : clients.got()) {
    REQUIRE(g.size() == 1);
    CHECK(g[0] == "last words");
  }
  for (auto code : clients.ended()) {
    CHECK(code == 4002);
  }
  REQUIRE(rec.wait_closed(n));
  for (const auto& c : rec.closed()) {
    CHECK(c.code == 4002);
    CHECK(c.clean);
  }
  // Each close frame followed the completed write of the message before it.
  CHECK(server->stats().ws_messages_sent == n);
}

TEST_CASE("ws_close_all: every close frame is out before any answer is read", "[ws][fanout]") {
  // Four io threads and clients that answer at once: were the pass spread over the threads
  // or the answers read meanwhile, a connection would end (on_closed) while close frames of
  // others were still to be written. The pass's writer starts on the first chunk while the
  // caller marks the rest: with chunks of one it catches up with the caller again and again
  // and waits for the next, holding the other threads all the while.
  const std::size_t chunk = GENERATE(std::size_t{256}, std::size_t{1});
  INFO("chunk: " << chunk);
  constexpr std::size_t n = 200;
  ws_recorder rec;
  std::atomic<const http_server*> server_ptr{nullptr};
  std::mutex seen_mutex;
  std::vector<std::uint64_t> frames_out_at_close;  // the server's close frames, per on_closed
  auto server = fanout_server(
      rec,
      [&](si::net::ws_options& o) {
        o.hook = [&](const si::net::ws_upgrade_request&) {
          auto h = rec.handlers(false);
          h.on_closed = [&, inner = h.on_closed](const ws_connection_ptr& c, std::uint16_t code,
                                                 bool clean) {
            {
              std::lock_guard lock(seen_mutex);
              frames_out_at_close.push_back(server_ptr.load()->stats().ws_close_frames_sent);
            }
            inner(c, code, clean);
          };
          return si::net::ws_upgrade_decision::accept(std::move(h));
        };
      },
      4);
  server_ptr = server.get();
  const auto port = server->start();
  readers clients(port, n);
  REQUIRE(rec.wait_opened(n));
  const auto targets = raw(rec.opened());

  si::net::ws_close_all(targets, 1001, "going away", si::net::ws_batch_options{chunk});
  REQUIRE(clients.wait_ended());
  REQUIRE(rec.wait_closed(n));
  for (const auto& c : rec.closed()) {
    CHECK(c.code == 1001);
    CHECK(c.clean);
  }
  std::lock_guard lock(seen_mutex);
  REQUIRE(frames_out_at_close.size() == n);
  CHECK(*std::min_element(frames_out_at_close.begin(), frames_out_at_close.end()) == n);
  CHECK(server->stats().ws_close_frames_sent == n);
}

TEST_CASE("ws_close_all: passes posted at once, or from an io thread, all complete",
          "[ws][fanout]") {
  // A pass holds the server's io threads until its close frames are written: two posted at
  // once must not hold each other's threads, and one posted from a handler (on an io thread,
  // busy until the handler returns) must not wait for that thread.
  const bool from_handler = GENERATE(false, true);
  INFO("from a handler: " << from_handler);
  constexpr std::size_t n = 40;
  ws_recorder rec;
  std::atomic<const std::vector<ws_connection*>*> everyone{nullptr};
  const auto close_in_two_passes = [](const std::vector<ws_connection*>& all, bool on_two_threads) {
    const std::span<ws_connection* const> s(all);
    const auto half = s.size() / 2;
    const auto first = [&] { si::net::ws_close_all(s.first(half), 1001, "one"); };
    const auto second = [&] { si::net::ws_close_all(s.subspan(half), 1001, "two"); };
    if (on_two_threads) {
      std::thread a(first);
      std::thread b(second);
      a.join();
      b.join();
    } else {
      first();
      second();
    }
  };
  auto server = fanout_server(
      rec,
      [&](si::net::ws_options& o) {
        o.hook = [&](const si::net::ws_upgrade_request&) {
          auto h = rec.handlers(false);
          h.on_text = [&, inner = h.on_text](const ws_connection_ptr& c, std::string m) {
            if (const auto* all = everyone.load(); all != nullptr && m == "close everyone") {
              close_in_two_passes(*all, false);
            }
            inner(c, std::move(m));
          };
          return si::net::ws_upgrade_decision::accept(std::move(h));
        };
      },
      2);
  const auto port = server->start();
  raw_ws trigger(port);  // opened first: it sends the text that closes everyone
  const auto answer = trigger.upgrade("/ws");
  REQUIRE((answer && answer->status == 101));
  REQUIRE(rec.wait_opened(1));
  readers clients(port, n);
  REQUIRE(rec.wait_opened(n + 1));
  const auto targets = raw(rec.opened());
  if (from_handler) {
    everyone = &targets;
    REQUIRE(trigger.send_frame(1, "close everyone"));
  } else {
    close_in_two_passes(targets, true);
  }
  const auto code = trigger.read_until_close();
  REQUIRE(code.has_value());
  CHECK(*code == 1001);
  REQUIRE(trigger.send_frame(8, close_payload(1001)));
  REQUIRE(clients.wait_ended());
  REQUIRE(rec.wait_closed(n + 1));
  for (const auto& c : rec.closed()) {
    CHECK(c.code == 1001);
    CHECK(c.clean);
  }
  CHECK(server->stats().ws_close_frames_sent == n + 1);
}

TEST_CASE(
    "ws_fanout and ws_close_all: connections their clients reset end, whoever finds "
    "the reset first",
    "[ws][fanout]") {
  // The batched call races the server's read of each reset: either its task's direct write
  // (a message, or the close frame) fails and the failure is handed to the session, which
  // ends, or the session ended first (closed). Once a close frame was tried - written before
  // the reset reached the server's socket (loopback may defer it to a softirq thread), or its
  // write failed - the connection ends with our code, not clean, however the session's own
  // close frame or a close pass's went.
  const bool close_all = GENERATE(false, true);
  INFO("ws_close_all: " << close_all);
  ws_recorder rec;
  auto server = fanout_server(rec, {});
  const auto port = server->start();
  constexpr std::size_t n = 20;
  std::vector<raw_ws> clients;
  clients.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    clients.emplace_back(port);
    const auto answer = clients.back().upgrade("/ws");
    REQUIRE((answer && answer->status == 101));
  }
  REQUIRE(rec.wait_opened(n));
  const auto targets = raw(rec.opened());
  for (auto& c : clients) {
    c.reset();
  }
  if (close_all) {
    si::net::ws_close_all(targets, 1001, "after the reset");
  } else {
    const auto r = ws_fanout(targets, msg("after the reset"));
    CHECK(r.queued + r.closed == n);
    CHECK(r.overflowed.empty());
  }
  REQUIRE(rec.wait_closed(n));
  std::size_t ours = 0;  // ended with our close code: their close frame was tried
  for (const auto& c : rec.closed()) {
    CHECK((c.code == 1006 || (close_all && c.code == 1001)));
    CHECK_FALSE(c.clean);
    ours += c.code == 1001 ? 1 : 0;
  }
  CHECK(ws_fanout(targets, msg("again")).closed == n);
  CHECK(server->stats().ws_open == 0);
  CHECK(server->stats().ws_close_frames_sent <= ours);
}

TEST_CASE("ws_fanout: after the server stopped every connection counts as closed", "[ws][fanout]") {
  ws_recorder rec;
  auto server = fanout_server(rec, {});
  const auto port = server->start();
  ws_io io;
  std::vector<std::unique_ptr<ws_client>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<ws_client>(io));
    REQUIRE(clients.back()->connect(port));
  }
  REQUIRE(rec.wait_opened(3));
  const auto conns = rec.opened();
  server->stop();
  auto r = ws_fanout(raw(conns), msg("nobody"));
  CHECK(r.queued == 0);
  CHECK(r.closed == 3);
  CHECK_NOTHROW(si::net::ws_close_all(raw(conns), 1001, "gone"));
}

TEST_CASE("ws_fanout: other implementations get send()/close(); bad arguments throw first",
          "[ws][fanout]") {
  fake_connection a(1);
  fake_connection b(2, ws_send_result::overflow);
  fake_connection c(3, ws_send_result::closed);
  std::vector<ws_connection*> all{&a, &b, &c};
  auto r = ws_fanout(all, msg("m"));
  CHECK(r.queued == 1);
  CHECK(r.closed == 1);
  REQUIRE(r.overflowed.size() == 1);
  CHECK(r.overflowed[0] == &b);
  CHECK(a.sent == std::vector<std::string>{"m"});
  CHECK(b.sent == std::vector<std::string>{"m"});

  si::net::ws_close_all(all, 1001, "shutting down");
  REQUIRE(a.closes.size() == 1);
  CHECK(a.closes[0] == std::pair<std::uint16_t, std::string>{1001, "shutting down"});

  fake_connection d(4);
  std::vector<ws_connection*> with_null{&d, nullptr};
  CHECK_THROWS_AS(ws_fanout(with_null, msg("x")), std::invalid_argument);
  CHECK_THROWS_AS(si::net::ws_close_all(with_null, 1001, ""), std::invalid_argument);
  std::vector<ws_connection*> just_d{&d};
  CHECK_THROWS_AS(ws_fanout(just_d, nullptr), std::invalid_argument);
  CHECK_THROWS_AS(ws_fanout(just_d, msg("x"), si::net::ws_batch_options{0}), std::invalid_argument);
  CHECK_THROWS_AS(si::net::ws_close_all(just_d, 1005, ""), std::invalid_argument);
  CHECK_THROWS_AS(si::net::ws_close_all(just_d, 1001, "", si::net::ws_batch_options{0}),
                  std::invalid_argument);
  CHECK(d.sent.empty());  // nothing was queued or closed before the throw
  CHECK(d.closes.empty());
  CHECK(ws_fanout({}, msg("x")).queued == 0);
}
