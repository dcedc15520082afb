#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <functional>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "net/http_server.hpp"
#include "net/ws_connection.hpp"
#include "net/ws_fanout.hpp"
#include "ws_support.hpp"

using namespace si::test;
using nlohmann::json;
using si::net::http_request;
using si::net::http_response;
using si::net::http_server;
using si::net::http_server_options;
using si::net::respond_fn;
using si::net::ws_connection_ptr;
using si::net::ws_send_result;
using si::net::ws_upgrade_decision;
using si::net::ws_upgrade_request;
using steady = std::chrono::steady_clock;

namespace {

http_server_options test_options() {
  http_server_options o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.io_threads = 2;
  return o;
}

std::shared_ptr<const std::string> text(std::string s) {
  return std::make_shared<const std::string>(std::move(s));
}

/// The hook of most tests: /ws accepts (401 with token=bad), /full is 503, /throw throws,
/// /boom accepts with an on_text that throws, anything else is 404. Counts its calls.
si::net::ws_upgrade_hook standard_hook(ws_recorder& rec, std::atomic<int>* calls = nullptr) {
  return [&rec, calls](const ws_upgrade_request& req) {
    if (calls != nullptr) {
      ++*calls;
    }
    if (req.path == "/throw") {
      throw std::runtime_error("hook failure");
    }
    if (req.path == "/full") {
      auto d = ws_upgrade_decision::reject(503, "TOO_MANY_CONNECTIONS",
                                           "the WebSocket connection limit is reached", req);
      d.rejection.set_header("Retry-After", "5");
      return d;
    }
    if (req.path == "/boom") {
      auto h = rec.handlers();
      h.on_text = [](const ws_connection_ptr&, std::string) {
        throw std::runtime_error("on_text failure");
      };
      return ws_upgrade_decision::accept(std::move(h));
    }
    if (req.path != "/ws") {
      return ws_upgrade_decision::reject(404, "NOT_FOUND", "no WebSocket endpoint here", req);
    }
    if (req.query.find("token=bad") != std::string::npos) {
      return ws_upgrade_decision::reject(401, "UNAUTHORIZED", "invalid token", req);
    }
    return ws_upgrade_decision::accept(rec.handlers());
  };
}

/// HTTP requests: /hold is kept until the test answers it; anything else is 200 "http".
class http_side {
 public:
  si::net::handler_fn handler() {
    return [this](http_request req, respond_fn respond) {
      if (req.path == "/hold") {
        {
          std::lock_guard lock(mutex_);
          held_.push_back(std::move(respond));
          paths_.push_back(req.path);
        }
        cv_.notify_all();
        return;
      }
      {
        std::lock_guard lock(mutex_);
        paths_.push_back(req.path);
      }
      cv_.notify_all();
      respond(http_response{200, {{"Content-Type", "text/plain"}}, "http"});
    };
  }

  bool wait_held(std::size_t n) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, wait_limit, [&] { return held_.size() >= n; });
  }

  respond_fn pop_held() {
    std::lock_guard lock(mutex_);
    auto r = std::move(held_.front());
    held_.erase(held_.begin());
    return r;
  }

  std::vector<std::string> paths() {
    std::lock_guard lock(mutex_);
    return paths_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<respond_fn> held_;
  std::vector<std::string> paths_;
};

/// The API's error body of `body`: {code, request_id}.
std::pair<std::string, std::string> error_of(const std::string& body) {
  auto j = json::parse(body);
  return {j.at("error").at("code").get<std::string>(),
          j.at("error").at("request_id").get<std::string>()};
}

/// Starts the close handshake on `c`: with close() (the session writes the close frame), or
/// with ws_close_all (a close pass, which writes it itself while the session's writer is idle
/// and nothing is queued: the session adopts the close when it next runs).
void start_close(bool close_pass, const ws_connection_ptr& c, std::uint16_t code,
                 std::string_view reason) {
  if (close_pass) {
    const std::vector<si::net::ws_connection*> one{c.get()};
    si::net::ws_close_all(one, code, reason);
  } else {
    c->close(code, std::string(reason));
  }
}

/// A raw client that completed the upgrade on /ws (101 required).
raw_ws upgraded_raw_ws(std::uint16_t port, int receive_buffer = 0) {
  raw_ws c(port, receive_buffer);
  auto reply = c.upgrade("/ws");
  REQUIRE(reply);
  REQUIRE(reply->status == 101);
  return c;
}

/// The server most tests start: test_options() with the recording hook (echoing texts),
/// changed by `adjust`, and a plain HTTP side; started on a free port.
struct recording_server {
  explicit recording_server(const std::function<void(http_server_options&)>& adjust = {})
      : server(options(adjust), http.handler()), port(server.start()) {}

  ws_recorder rec;
  http_side http;
  http_server server;
  std::uint16_t port;

 private:
  http_server_options options(const std::function<void(http_server_options&)>& adjust) {
    auto o = test_options();
    o.websocket.hook = standard_hook(rec);
    if (adjust) {
      adjust(o);
    }
    return o;
  }
};

}  // namespace

TEST_CASE("ws: an accepted upgrade echoes, closes cleanly from the server and counts", "[ws]") {
  recording_server f;
  auto& rec = f.rec;
  auto& server = f.server;
  const auto port = f.port;

  ws_io io;
  ws_client c(io);
  REQUIRE(c.connect(port, "/ws?token=good"));
  CHECK(c.status() == 101);
  CHECK(c.header("Server") == std::optional<std::string>("stellar-insights"));
  CHECK(c.header("X-Request-ID").has_value());
  REQUIRE(rec.wait_opened(1));
  auto conn = rec.opened().at(0);
  CHECK(conn->is_open());
  CHECK(conn->remote_addr().rfind("127.0.0.1:", 0) == 0);

  REQUIRE(c.write("hello"));
  auto r = c.read();
  REQUIRE(r);
  CHECK(r->ok);
  CHECK(r->text == "hello");
  CHECK(rec.texts() == std::vector<std::string>{"hello"});

  auto s = server.stats();
  CHECK(s.ws_open == 1);
  CHECK(s.ws_accepted == 1);
  CHECK(s.ws_messages_received == 1);
  CHECK(s.connections_open == 0);  // no longer an HTTP connection

  conn->close(si::net::ws_close::normal, "bye");
  CHECK_FALSE(conn->is_open());
  CHECK(conn->send(text("late")) == ws_send_result::closed);
  auto end = c.read();
  REQUIRE(end);
  CHECK_FALSE(end->ok);
  CHECK(end->close_code == 1000);
  CHECK(end->close_reason == "bye");
  REQUIRE(rec.wait_closed(1));
  auto closed = rec.closed().at(0);
  CHECK(closed.id == conn->id());
  CHECK(closed.code == 1000);
  CHECK(closed.clean);

  s = server.stats();
  CHECK(s.ws_open == 0);
  CHECK(s.ws_messages_sent == 1);
  CHECK(s.ws_timed_out == 0);
}

TEST_CASE("ws: a close from the client is clean and reports its code", "[ws]") {
  recording_server f;
  auto& rec = f.rec;
  auto& server = f.server;
  const auto port = f.port;

  ws_io io;
  ws_client c(io);
  REQUIRE(c.connect(port));
  REQUIRE(rec.wait_opened(1));
  REQUIRE(c.close(4000));
  REQUIRE(rec.wait_closed(1));
  auto closed = rec.closed().at(0);
  CHECK(closed.code == 4000);
  CHECK(closed.clean);
  CHECK_FALSE(rec.opened().at(0)->is_open());
  CHECK(server.stats().ws_open == 0);
}

TEST_CASE("ws: rejected upgrades reach the client as JSON error responses", "[ws]") {
  ws_recorder rec;
  http_side http;
  std::atomic<int> hook_calls{0};
  auto o = test_options();
  o.websocket.hook = standard_hook(rec, &hook_calls);
  http_server server(o, http.handler());
  auto port = server.start();
  ws_io io;

  struct expected {
    std::string target;
    int status;
    std::string code;
  };
  const std::vector<expected> cases = {
      {"/ws?token=bad", 401, "UNAUTHORIZED"},
      {"/elsewhere", 404, "NOT_FOUND"},
      {"/full", 503, "TOO_MANY_CONNECTIONS"},
      {"/throw", 500, "INTERNAL_ERROR"},
  };
  for (const auto& e : cases) {
    INFO(e.target);
    ws_client c(io);
    CHECK_FALSE(c.connect(port, e.target));
    CHECK(c.status() == e.status);
    auto [code, request_id] = error_of(c.body());
    CHECK(code == e.code);
    CHECK(c.header("X-Request-ID") == std::optional<std::string>(request_id));
    CHECK(c.header("Connection") == std::optional<std::string>("close"));
    CHECK(c.header("Content-Type") == std::optional<std::string>("application/json"));
  }
  {
    ws_client c(io);
    CHECK_FALSE(c.connect(port, "/full"));
    CHECK(c.header("Retry-After") == std::optional<std::string>("5"));
  }
  CHECK(hook_calls == 5);

  // Handshakes Beast would refuse in plain text are refused as JSON before the hook runs.
  {
    raw_ws raw(port);
    REQUIRE(raw.send(
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"));
    auto reply = raw.read_reply();
    REQUIRE(reply);
    CHECK(reply->status == 426);
    CHECK(reply->header("Sec-WebSocket-Version") == std::optional<std::string_view>("13"));
    CHECK(error_of(reply->body).first == "UPGRADE_REQUIRED");
    CHECK(raw.wait_closed());
  }
  {
    raw_ws raw(port);
    REQUIRE(
        raw.send("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n"));
    auto reply = raw.read_reply();
    REQUIRE(reply);
    CHECK(reply->status == 400);
    CHECK(error_of(reply->body).first == "BAD_REQUEST");
  }
  {
    // A frame sent before the 101 (RFC 6455 §4.1 forbids it).
    raw_ws raw(port);
    REQUIRE(raw.send(raw_ws::upgrade_request("/ws") + std::string("\x81\x80\x01\x02\x03\x04", 6)));
    auto reply = raw.read_reply();
    REQUIRE(reply);
    CHECK(reply->status == 400);
  }
  CHECK(hook_calls == 5);

  auto s = server.stats();
  CHECK(s.ws_upgrades_rejected == 8);
  CHECK(s.ws_accepted == 0);
  CHECK(rec.opened().empty());

  // Plain HTTP is unaffected.
  raw_ws plain(port);
  REQUIRE(plain.send("GET /plain HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto reply = plain.read_reply();
  REQUIRE(reply);
  CHECK(reply->status == 200);
  CHECK(reply->body == "http");
}

TEST_CASE("ws: without a hook an upgrade request is an ordinary HTTP request", "[ws]") {
  http_side http;
  http_server server(test_options(), http.handler());
  auto port = server.start();
  ws_io io;
  ws_client c(io);
  CHECK_FALSE(c.connect(port, "/ws"));
  CHECK(c.status() == 200);
  CHECK(c.body() == "http");
  CHECK(http.paths() == std::vector<std::string>{"/ws"});
  CHECK(server.stats().ws_upgrades_rejected == 0);
}

TEST_CASE("ws: text frames of every length encoding arrive whole", "[ws]") {
  // The session writes data frames itself: a 7-bit, a 16-bit and a 64-bit payload length,
  // at each boundary, read back by Beast's client (an independent parser).
  recording_server f;
  auto& rec = f.rec;
  const auto port = f.port;

  ws_io io;
  ws_client c(io);
  REQUIRE(c.connect(port));
  REQUIRE(rec.wait_opened(1));
  auto conn = rec.opened().at(0);
  const std::vector<std::size_t> sizes{0, 1, 125, 126, 127, 65535, 65536, 70000};
  std::vector<std::string> sent;
  for (auto n : sizes) {
    std::string m(n, 'x');
    for (std::size_t i = 0; i < n; ++i) {
      m[i] = static_cast<char>('a' + (i * 31 + n) % 26);
    }
    REQUIRE(conn->send(text(m)) == ws_send_result::queued);
    sent.push_back(std::move(m));
  }
  for (const auto& m : sent) {
    auto r = c.read();
    REQUIRE(r);
    REQUIRE(r->ok);
    CHECK(r->text.size() == m.size());
    CHECK(r->text == m);
  }
}

TEST_CASE("ws: messages sent from another thread arrive in order", "[ws]") {
  recording_server f;
  auto& rec = f.rec;
  const auto port = f.port;

  ws_io io;
  ws_client c(io);
  REQUIRE(c.connect(port));
  REQUIRE(rec.wait_opened(1));
  auto conn = rec.opened().at(0);

  constexpr int count = 200;
  std::vector<ws_send_result> results;
  std::thread sender([&] {
    for (int i = 0; i < count; ++i) {
      results.push_back(conn->send(text("m" + std::to_string(i))));
    }
  });
  sender.join();
  for (auto r : results) {
    CHECK(r == ws_send_result::queued);
  }
  for (int i = 0; i < count; ++i) {
    auto r = c.read();
    REQUIRE(r);
    REQUIRE(r->ok);
    CHECK(r->text == "m" + std::to_string(i));
  }
}

TEST_CASE("ws: one shared buffer fans out to many connections", "[ws]") {
  recording_server f;
  auto& rec = f.rec;
  auto& server = f.server;
  const auto port = f.port;

  constexpr std::size_t n = 20;
  ws_io io;
  std::vector<std::unique_ptr<ws_client>> clients;
  for (std::size_t i = 0; i < n; ++i) {
    clients.push_back(std::make_unique<ws_client>(io));
    REQUIRE(clients.back()->connect(port));
  }
  REQUIRE(rec.wait_opened(n));
  const auto buffer = text(R"({"type":"corridor_update","id":"USDC-XLM"})");
  for (const auto& conn : rec.opened()) {
    CHECK(conn->send(buffer) == ws_send_result::queued);
  }
  for (auto& c : clients) {
    auto r = c->read();
    REQUIRE(r);
    REQUIRE(r->ok);
    CHECK(r->text == *buffer);
  }
  // The close frame goes out after the queue is flushed: once every close is reported,
  // every write has completed.
  for (const auto& conn : rec.opened()) {
    conn->close(si::net::ws_close::going_away);
  }
  for (auto& c : clients) {
    auto r = c->read();
    REQUIRE(r);
    CHECK(r->close_code == 1001);
  }
  REQUIRE(rec.wait_closed(n));
  CHECK(server.stats().ws_messages_sent == n);
  CHECK(server.stats().ws_messages_dropped == 0);
}

TEST_CASE("ws: a client that never reads overflows only its own queue", "[ws][slow]") {
  ws_recorder rec;
  http_side http;
  auto o = test_options();
  o.websocket.hook = standard_hook(rec);
  o.websocket.max_queued_messages = 32;
  o.websocket.max_queued_bytes = 16 * 1024 * 1024;
  o.websocket.overflow_close_code = si::net::ws_close::try_again_later;
  // Generous: the close frame waits until the slow client reads, which it does only after
  // the broadcast; a slow (sanitizer) run must not turn that into a close timeout.
  o.websocket.close_timeout = std::chrono::seconds(60);
  http_server server(o, http.handler());
  auto port = server.start();

  // The slow client: a small receive window, and it reads nothing until the end.
  auto slow = upgraded_raw_ws(port, 4096);
  REQUIRE(rec.wait_opened(1));
  const auto slow_conn = rec.opened().at(0);

  constexpr std::size_t fast_count = 100;
  ws_io io;
  std::vector<std::unique_ptr<ws_client>> fast;
  for (std::size_t i = 0; i < fast_count; ++i) {
    fast.push_back(std::make_unique<ws_client>(io));
    REQUIRE(fast.back()->connect(port));
  }
  REQUIRE(rec.wait_opened(fast_count + 1));
  std::vector<ws_connection_ptr> fast_conns;
  for (const auto& conn : rec.opened()) {
    if (conn != slow_conn) {
      fast_conns.push_back(conn);
    }
  }
  REQUIRE(fast_conns.size() == fast_count);

  // Each fast client checks it gets every message, in order.
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::size_t> received(fast_count, 0);
  std::size_t out_of_order = 0;
  std::size_t ended = 0;
  for (std::size_t i = 0; i < fast_count; ++i) {
    fast[i]->read_loop(
        [&, i](std::string m) {
          {
            std::lock_guard lock(mutex);
            if (std::stoul(m.substr(0, m.find(' '))) != received[i]) {
              ++out_of_order;
            }
            ++received[i];
          }
          cv.notify_all();
        },
        [&](std::uint16_t) {
          std::lock_guard lock(mutex);
          ++ended;
        });
  }
  io.start_thread();
  auto all_have = [&](std::size_t n) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, wait_limit, [&] {
      return std::all_of(received.begin(), received.end(), [&](auto r) { return r >= n; });
    });
  };

  // The slow client stalls: 8 MiB for it alone is more than its socket buffers can take
  // (tcp_wmem max 4 MiB + a 4 KiB receive window), so from here on its queue only grows.
  const auto filler = text(std::string(1024 * 1024, 'f'));
  for (int i = 0; i < 8; ++i) {
    REQUIRE(slow_conn->send(filler) == ws_send_result::queued);
  }

  std::size_t seq = 0;
  std::size_t fast_refused = 0;
  std::size_t slow_overflows = 0;
  std::size_t slow_later_not_closed = 0;
  std::size_t after_overflow = 0;
  const auto started = steady::now();
  for (; seq < 1'000 && after_overflow < 32; ++seq) {
    auto message = std::to_string(seq) + ' ';
    message.resize(4096, 'x');
    const auto buffer = text(std::move(message));
    for (const auto& conn : fast_conns) {
      fast_refused += conn->send(buffer) != ws_send_result::queued;
    }
    const auto r = slow_conn->send(buffer);
    if (slow_overflows == 0) {
      slow_overflows += r == ws_send_result::overflow;
    } else {
      ++after_overflow;
      slow_later_not_closed += r != ws_send_result::closed;
    }
    // The fast clients keep up (they are not more than 16 messages behind): the test paces
    // on their progress, never on time.
    if (seq >= 16) {
      REQUIRE(all_have(seq - 15));
    }
  }
  REQUIRE(slow_overflows == 1);
  CHECK(seq <= 32 + 32);  // the queue limit (32 messages) tripped, not luck
  REQUIRE(all_have(seq));
  const auto elapsed = steady::now() - started;
  io.stop_thread();
  CHECK(fast_refused == 0);
  CHECK(slow_later_not_closed == 0);
  CHECK(out_of_order == 0);
  CHECK(ended == 0);
  INFO("messages per client: " << seq << " in " << std::chrono::duration<double>(elapsed).count()
                               << " s");
  CHECK_FALSE(slow_conn->is_open());
  for (const auto& conn : fast_conns) {
    CHECK(conn->is_open());
  }
  auto s = server.stats();
  CHECK(s.ws_overflow_closes == 1);
  CHECK(s.ws_messages_dropped >= 1);
  CHECK(s.ws_messages_dropped <= 33);

  // The slow client finally reads: what was written before the overflow, then close 1013;
  // it answers and closes its socket once the server's FIN arrives.
  auto code = slow.read_until_close();
  REQUIRE(code);
  CHECK(*code == 1013);
  REQUIRE(slow.send_frame(8, close_payload(1013)));
  CHECK(slow.wait_closed());
  slow.close();
  REQUIRE(rec.wait_closed(1));
  auto closed = rec.closed();
  REQUIRE(closed.size() == 1);  // no fast client was closed
  CHECK(closed[0].id == slow_conn->id());
  CHECK(closed[0].code == 1013);
  CHECK(closed[0].clean);
}

TEST_CASE("ws: a queue overflow closes with 1008 by default and never blocks the sender", "[ws]") {
  recording_server f([&](http_server_options& o) {
    o.websocket.max_queued_messages = 8;
    o.websocket.close_timeout = std::chrono::seconds(60);  // the client answers: never reached
  });
  auto& rec = f.rec;
  auto& server = f.server;
  const auto port = f.port;

  auto slow = upgraded_raw_ws(port, 4096);
  REQUIRE(rec.wait_opened(1));
  auto conn = rec.opened().at(0);

  const auto big = text(std::string(64 * 1024, 'y'));
  ws_send_result r = ws_send_result::queued;
  std::size_t sends = 0;
  while (r == ws_send_result::queued && sends < 10'000) {
    r = conn->send(big);
    ++sends;
  }
  REQUIRE(r == ws_send_result::overflow);
  CHECK(conn->send(big) == ws_send_result::closed);
  CHECK_FALSE(conn->is_open());
  auto s = server.stats();
  CHECK(s.ws_overflow_closes == 1);
  // The refused message plus those still queued (7 or 8: one may be being written).
  CHECK(s.ws_messages_dropped >= 8);
  CHECK(s.ws_messages_dropped <= 9);

  auto code = slow.read_until_close();
  REQUIRE(code);
  CHECK(*code == 1008);
  REQUIRE(slow.send_frame(8, close_payload(1008)));
  CHECK(slow.wait_closed());
  slow.close();
  REQUIRE(rec.wait_closed(1));
  CHECK(rec.closed().at(0).code == 1008);
  CHECK(rec.closed().at(0).clean);
  CHECK(server.stats().ws_open == 0);
}

TEST_CASE("ws: an incoming message over the limit closes with 1009", "[ws]") {
  recording_server f([&](http_server_options& o) { o.websocket.max_message_size = 1024; });
  auto& rec = f.rec;
  auto& server = f.server;
  const auto port = f.port;

  ws_io io;
  ws_client c(io);
  REQUIRE(c.connect(port));
  REQUIRE(rec.wait_opened(1));
  REQUIRE(c.write(std::string(1024, 'a')));  // at the limit: fine
  auto r = c.read();
  REQUIRE(r);
  CHECK(r->ok);
  CHECK(r->text.size() == 1024);

  REQUIRE(c.write(std::string(1025, 'b')));
  r = c.read();
  REQUIRE(r);
  CHECK_FALSE(r->ok);
  CHECK(r->close_code == 1009);
  REQUIRE(rec.wait_closed(1));
  CHECK(rec.closed().at(0).code == 1009);
  CHECK_FALSE(rec.closed().at(0).clean);
  CHECK(rec.texts().size() == 1);
  CHECK(server.stats().ws_oversize_closes == 1);
}

TEST_CASE("ws: a binary message closes with 1003", "[ws]") {
  recording_server f;
  auto& rec = f.rec;
  auto& server = f.server;
  const auto port = f.port;

  ws_io io;
  ws_client c(io);
  REQUIRE(c.connect(port));
  REQUIRE(rec.wait_opened(1));
  REQUIRE(c.write(std::string("\x01\x02\x03", 3), true));
  auto r = c.read();
  REQUIRE(r);
  CHECK_FALSE(r->ok);
  CHECK(r->close_code == 1003);
  REQUIRE(rec.wait_closed(1));
  CHECK(rec.closed().at(0).code == 1003);
  CHECK(rec.closed().at(0).clean);
  CHECK(rec.texts().empty());
  CHECK(server.stats().ws_binary_closes == 1);
}

TEST_CASE("ws: a callback that throws closes the connection with 1011", "[ws]") {
  recording_server f;
  auto& rec = f.rec;
  const auto port = f.port;

  ws_io io;
  ws_client c(io);
  REQUIRE(c.connect(port, "/boom"));
  REQUIRE(c.write("anything"));
  auto r = c.read();
  REQUIRE(r);
  CHECK_FALSE(r->ok);
  CHECK(r->close_code == 1011);
  REQUIRE(rec.wait_closed(1));
  CHECK(rec.closed().at(0).code == 1011);
}

TEST_CASE("ws: protocol pings keep a reading client alive past the idle timeout", "[ws]") {
  recording_server f(
      [&](http_server_options& o) { o.websocket.idle_timeout = std::chrono::milliseconds(300); });
  auto& rec = f.rec;
  auto& server = f.server;
  const auto port = f.port;

  ws_io io;
  ws_client c(io);
  REQUIRE(c.connect(port));
  REQUIRE(rec.wait_opened(1));
  // A ping every idle_timeout / 2 of silence; the client's pongs keep the connection: four
  // pings span two idle timeouts.
  REQUIRE(c.wait_pings(4));
  CHECK(rec.opened().at(0)->is_open());
  REQUIRE(c.write("still here"));
  auto r = c.read();
  REQUIRE(r);
  REQUIRE(r->ok);
  CHECK(r->text == "still here");
  CHECK(rec.closed().empty());
  CHECK(server.stats().ws_timed_out == 0);
}

TEST_CASE("ws: a client that answers no ping is dropped at the idle timeout", "[ws]") {
  recording_server f(
      [&](http_server_options& o) { o.websocket.idle_timeout = std::chrono::milliseconds(300); });
  auto& rec = f.rec;
  auto& server = f.server;
  const auto port = f.port;

  auto silent = upgraded_raw_ws(port);
  REQUIRE(rec.wait_opened(1));
  const auto opened = steady::now();
  REQUIRE(rec.wait_closed(1));
  CHECK(steady::now() - opened >= std::chrono::milliseconds(250));
  CHECK(rec.closed().at(0).code == 1006);
  CHECK_FALSE(rec.closed().at(0).clean);
  CHECK(server.stats().ws_timed_out == 1);
  auto ping = silent.read_frame();
  REQUIRE(ping);
  CHECK(ping->opcode == 9);
  CHECK(silent.wait_closed());
}

TEST_CASE("ws: close is clean when the peer answers, dropped at the close timeout otherwise",
          "[ws]") {
  const bool close_pass = GENERATE(false, true);
  INFO("ws_close_all: " << close_pass);
  recording_server f(
      [&](http_server_options& o) { o.websocket.close_timeout = std::chrono::milliseconds(300); });
  auto& rec = f.rec;
  auto& server = f.server;
  const auto port = f.port;

  // A peer that answers: Beast replies to the close frame while reading.
  ws_io io;
  ws_client answering(io);
  REQUIRE(answering.connect(port));
  REQUIRE(rec.wait_opened(1));
  auto first = rec.opened().at(0);
  first->send(text("last words"));
  start_close(close_pass, first, si::net::ws_close::going_away, "shutting down");
  auto r = answering.read();
  REQUIRE(r);
  CHECK(r->text == "last words");  // queued before the close: written first
  r = answering.read();
  REQUIRE(r);
  CHECK(r->close_code == 1001);
  CHECK(r->close_reason == "shutting down");
  REQUIRE(rec.wait_closed(1));
  CHECK(rec.closed_of(first->id()).code == 1001);
  CHECK(rec.closed_of(first->id()).clean);

  // A peer that never answers.
  auto mute = upgraded_raw_ws(port);
  REQUIRE(rec.wait_opened(2));
  auto second = rec.opened().at(1);
  const auto asked = steady::now();
  start_close(close_pass, second, si::net::ws_close::going_away, "shutting down");
  REQUIRE(rec.wait_closed(2));
  CHECK(steady::now() - asked >= std::chrono::milliseconds(250));
  CHECK(rec.closed_of(second->id()).code == 1001);
  CHECK_FALSE(rec.closed_of(second->id()).clean);
  CHECK(server.stats().ws_timed_out == 1);
  auto code = mute.read_until_close();
  REQUIRE(code);
  CHECK(*code == 1001);
  CHECK(mute.wait_closed());

  // A peer that answers the close frame but never closes its socket: the handshake is
  // complete (clean), and the server closes the TCP connection at once (RFC 6455 7.1.1).
  auto lingering = upgraded_raw_ws(port);
  REQUIRE(rec.wait_opened(3));
  auto third = rec.opened().at(2);
  start_close(close_pass, third, si::net::ws_close::normal, "");
  code = lingering.read_until_close();
  REQUIRE(code);
  CHECK(*code == 1000);
  REQUIRE(lingering.send_frame(8, close_payload(1000)));
  REQUIRE(rec.wait_closed(3));
  CHECK(rec.closed_of(third->id()).code == 1000);
  CHECK(rec.closed_of(third->id()).clean);
  CHECK(lingering.wait_closed());
}

TEST_CASE("ws: close deadlines expire in order, each close_timeout after its own close", "[ws]") {
  // One timer serves every closing connection (the registry's deadline queue): each mute
  // peer is dropped no sooner than close_timeout after its own close, and the deadline of
  // a connection that ended cleanly before it passes without effect. A close pass arms the
  // deadline where it writes the close frame, on an io thread, not on the session's strand.
  const bool close_pass = GENERATE(false, true);
  INFO("ws_close_all: " << close_pass);
  recording_server f(
      [&](http_server_options& o) { o.websocket.close_timeout = std::chrono::milliseconds(300); });
  auto& rec = f.rec;
  auto& server = f.server;
  const auto port = f.port;

  auto a = upgraded_raw_ws(port);
  REQUIRE(rec.wait_opened(1));
  auto first = rec.opened().at(0);
  const auto a_closed_at = steady::now();
  start_close(close_pass, first, si::net::ws_close::going_away, "a");
  REQUIRE(rec.wait_closed(1));
  CHECK(steady::now() - a_closed_at >= std::chrono::milliseconds(250));

  // After the first deadline fired (the timer idle again): one peer that answers, then two
  // that do not, closed one after the other.
  ws_io io;
  ws_client d(io);
  REQUIRE(d.connect(port));
  REQUIRE(rec.wait_opened(2));  // one at a time: opened() is in this order
  auto b = upgraded_raw_ws(port);
  REQUIRE(rec.wait_opened(3));
  auto c = upgraded_raw_ws(port);
  REQUIRE(rec.wait_opened(4));
  const auto opened = rec.opened();
  const auto d_conn = opened.at(1);
  start_close(close_pass, d_conn, si::net::ws_close::going_away, "d");
  auto r = d.read();  // Beast's client answers the close frame while reading
  REQUIRE(r);
  CHECK(r->close_code == 1001);
  REQUIRE(rec.wait_closed(2));
  CHECK(rec.closed_of(d_conn->id()).clean);
  const auto bc_closed_at = steady::now();
  start_close(close_pass, opened.at(2), si::net::ws_close::going_away, "b");
  start_close(close_pass, opened.at(3), si::net::ws_close::going_away, "c");
  REQUIRE(rec.wait_closed(4));
  CHECK(steady::now() - bc_closed_at >= std::chrono::milliseconds(250));
  CHECK_FALSE(rec.closed_of(opened.at(2)->id()).clean);
  CHECK_FALSE(rec.closed_of(opened.at(3)->id()).clean);
  // The clean one's deadline came before theirs: it passed, and counted nothing.
  CHECK(server.stats().ws_timed_out == 3);
  CHECK(a.read_until_close() == std::optional<std::uint16_t>(1001));
  CHECK(b.read_until_close() == std::optional<std::uint16_t>(1001));
  CHECK(c.read_until_close() == std::optional<std::uint16_t>(1001));
}

TEST_CASE("ws: Beast's pong waits behind a data frame the kernel took only in part", "[ws]") {
  // Data frames are written straight to the socket; Beast writes its control frames. A pong
  // asked for while a large data frame is only partly written must follow it whole: any
  // interleaving would corrupt both frames. Sent with send(), the session writes the frame;
  // with ws_fanout to an idle connection, the fan-out's task writes it directly and hands
  // its rest to the session.
  const bool batched = GENERATE(false, true);
  INFO("batched: " << batched);
  recording_server f;
  auto& rec = f.rec;
  auto& server = f.server;
  const auto port = f.port;

  auto client = upgraded_raw_ws(port, 4096);  // a small window: the kernel takes a part
  REQUIRE(rec.wait_opened(1));
  auto c = rec.opened().at(0);
  // A round trip first (the echo): the session's writer is idle afterwards.
  REQUIRE(client.send_frame(1, "hello"));
  auto echo = client.read_frame();
  REQUIRE(echo);
  CHECK(echo->payload == "hello");
  std::string big(16 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) {
    big[i] = static_cast<char>('a' + (i * 7 + i / 4099) % 26);
  }
  auto message = std::make_shared<const std::string>(big);
  if (batched) {
    std::vector<si::net::ws_connection*> one{c.get()};
    REQUIRE(si::net::ws_fanout(one, message).queued == 1);
  } else {
    REQUIRE(c->send(message) == si::net::ws_send_result::queued);
  }
  // Its first bytes arrived: the frame is being written, and the rest waits for this client
  // to read. A ping, then a text. Beast reads the ping at once (reads are not blocked), while
  // the data frame waits for this client to read 16 MiB: the pong is asked for behind it, and
  // Beast's reading waits for the pong (as it waited for its own write lock before), so the
  // text is read and echoed only once the client reads.
  REQUIRE(client.await_data());
  REQUIRE(client.send_frame(9, "p1"));
  REQUIRE(client.send_frame(1, "after the ping"));

  auto frame = client.read_frame(std::chrono::seconds(30));
  REQUIRE(frame);
  CHECK(frame->opcode == 1);
  REQUIRE(frame->payload.size() == big.size());
  CHECK(frame->payload == big);
  frame = client.read_frame();
  REQUIRE(frame);
  CHECK(frame->opcode == 10);
  CHECK(frame->payload == "p1");
  frame = client.read_frame();
  REQUIRE(frame);
  CHECK(frame->opcode == 1);
  CHECK(frame->payload == "after the ping");  // the echo, queued after the large message
  REQUIRE(rec.wait_texts(2));
  CHECK(c->is_open());
  CHECK(server.stats().ws_messages_sent == 3);
}

TEST_CASE("ws: a server close sends the FIN after the close frame and ends at the answer", "[ws]") {
  // With ws_close_all the close pass writes the close frame and the FIN itself (the text was
  // read first, so the session's writer is idle), and the session learns of it only when the
  // client's frames arrive: Beast's pong must be dropped then all the same.
  const bool close_pass = GENERATE(false, true);
  INFO("ws_close_all: " << close_pass);
  // A close timeout far beyond every bounded wait below: nothing here may wait for it.
  recording_server f(
      [&](http_server_options& o) { o.websocket.close_timeout = std::chrono::seconds(60); });
  auto& rec = f.rec;
  auto& server = f.server;
  const auto port = f.port;

  auto client = upgraded_raw_ws(port);
  REQUIRE(rec.wait_opened(1));
  auto c = rec.opened().at(0);
  c->send(text("before the close"));
  if (!close_pass) {
    c->close(si::net::ws_close::going_away, "server shutting down");
  }
  auto frame = client.read_frame();
  REQUIRE(frame);
  CHECK(frame->opcode == 1);
  CHECK(frame->payload == "before the close");
  if (close_pass) {
    start_close(true, c, si::net::ws_close::going_away, "server shutting down");
  }
  frame = client.read_frame();
  REQUIRE(frame);
  REQUIRE(frame->opcode == 8);
  CHECK(frame->close_code() == 1001);
  // The end of the stream follows the close frame before we answered: the client can finish
  // without waiting for the server to read its answer.
  CHECK(client.wait_closed());
  CHECK(rec.closed().empty());  // the server still waits for the answer

  // Before the answer, a ping and a text: after its close frame the server writes nothing
  // (Beast's pong is dropped: written after the FIN it would fail the connection, and the
  // close would not be clean) and delivers no message.
  REQUIRE(client.send_frame(9, "late ping"));
  REQUIRE(client.send_frame(1, "late text"));
  // The half-closed connection still carries the answer: the handshake completes, cleanly,
  // and the server ends the connection then, not at the close timeout.
  REQUIRE(client.send_frame(8, close_payload(1001)));
  REQUIRE(rec.wait_closed(1));
  CHECK(rec.closed_of(c->id()).code == 1001);
  CHECK(rec.closed_of(c->id()).clean);
  CHECK(rec.texts().empty());
  CHECK(server.stats().ws_timed_out == 0);
}

TEST_CASE("ws: no keep-alive ping follows our close frame; a silent peer ends timed out", "[ws]") {
  // After a close pass wrote the close frame, Beast's idle timer still runs (the session, not
  // run since, has not turned it off): its keep-alive ping is asked for after the close frame
  // and must be dropped. A peer that never answers ends timed out with the close code: at
  // the idle timeout when that comes before the close deadline, as here (with close(): at
  // the close deadline, the session having turned the timer off).
  const bool close_pass = GENERATE(false, true);
  INFO("ws_close_all: " << close_pass);
  recording_server f([&](http_server_options& o) {
    o.websocket.idle_timeout = std::chrono::milliseconds(400);
    o.websocket.close_timeout = std::chrono::milliseconds(1000);
  });
  auto& rec = f.rec;
  auto& server = f.server;
  const auto port = f.port;

  const auto connected = steady::now();  // Beast's idle timer starts after this
  auto silent = upgraded_raw_ws(port);
  REQUIRE(rec.wait_opened(1));
  auto c = rec.opened().at(0);
  start_close(close_pass, c, si::net::ws_close::going_away, "bye");
  auto frame = silent.read_frame();
  REQUIRE(frame);
  REQUIRE(frame->opcode == 8);
  CHECK(frame->close_code() == 1001);
  REQUIRE(rec.wait_closed(1));
  CHECK(steady::now() - connected >= std::chrono::milliseconds(350));
  CHECK(rec.closed().at(0).code == 1001);
  CHECK_FALSE(rec.closed().at(0).clean);
  CHECK(server.stats().ws_timed_out == 1);
  CHECK(server.stats().ws_close_frames_sent == 1);
  CHECK_FALSE(silent.read_frame());  // the end of the stream: no ping, nothing else
}

TEST_CASE("ws: the HTTP drain completes while WebSockets stay open; stop() drops them",
          "[ws][drain]") {
  ws_recorder rec;
  http_side http;
  auto o = test_options();
  o.websocket.hook = standard_hook(rec);
  o.drain_idle_window = std::chrono::milliseconds(100);
  auto server = std::make_unique<http_server>(o, http.handler());
  auto port = server->start();

  ws_io io;
  ws_client a(io);
  ws_client b(io);
  REQUIRE(a.connect(port));
  REQUIRE(b.connect(port));
  REQUIRE(rec.wait_opened(2));
  raw_ws keep_alive(port);  // an idle HTTP keep-alive connection
  REQUIRE(keep_alive.send("GET /x HTTP/1.1\r\nHost: x\r\n\r\n"));
  REQUIRE(keep_alive.read_reply());

  server->close_acceptor();
  server->begin_drain();
  // Shared: the io thread may still be inside set() when wait() returns.
  auto drained = std::make_shared<event>();
  server->async_wait_drained([drained] { drained->set(); });
  // The idle keep-alive connection is closed after drain_idle_window (FIN; the server lingers
  // until the client closes too).
  CHECK(keep_alive.wait_closed());
  keep_alive.close();
  REQUIRE(drained->wait());
  auto s = server->stats();
  CHECK(s.connections_open == 0);
  CHECK(s.ws_open == 2);

  // Both directions still work after the HTTP drain, and the cut does not touch them.
  CHECK(server->cut_remaining() == 0);
  for (const auto& conn : rec.opened()) {
    CHECK(conn->is_open());
    CHECK(conn->send(text("after drain")) == ws_send_result::queued);
  }
  for (auto* c : {&a, &b}) {
    auto r = c->read();
    REQUIRE(r);
    CHECK(r->text == "after drain");
  }
  REQUIRE(a.write("echo"));
  auto r = a.read();
  REQUIRE(r);
  CHECK(r->text == "echo");
  CHECK(rec.closed().empty());

  auto conns = rec.opened();
  server->stop();
  // on_closed ran on this thread, inside stop().
  auto closed = rec.closed();
  REQUIRE(closed.size() == 2);
  for (const auto& c : closed) {
    CHECK(c.code == 1006);
    CHECK_FALSE(c.clean);
  }
  CHECK(server->stats().ws_open == 0);
  for (const auto& conn : conns) {
    CHECK_FALSE(conn->is_open());
    CHECK(conn->send(text("too late")) == ws_send_result::closed);
  }
  for (auto* c : {&a, &b}) {
    auto end = c->read();
    REQUIRE(end);
    CHECK_FALSE(end->ok);
  }
  server.reset();
  // Handles outlive the server harmlessly.
  CHECK(conns[0]->send(text("after destruction")) == ws_send_result::closed);
  conns[0]->close(si::net::ws_close::normal);
  conns[0]->drop();
}

TEST_CASE("ws: upgrades after close_acceptor or during the drain are refused with 503",
          "[ws][drain]") {
  ws_recorder rec;
  http_side http;
  std::atomic<int> hook_calls{0};
  auto o = test_options();
  o.websocket.hook = standard_hook(rec, &hook_calls);
  o.drain_idle_window = std::chrono::milliseconds(5'000);
  http_server server(o, http.handler());
  auto port = server.start();

  raw_ws first(port);
  raw_ws second(port);
  server.close_acceptor();
  auto reply = first.upgrade("/ws");
  REQUIRE(reply);
  CHECK(reply->status == 503);
  CHECK(error_of(reply->body).first == "SERVICE_UNAVAILABLE");
  CHECK(reply->header("Connection") == std::optional<std::string_view>("close"));
  CHECK(first.wait_closed());
  first.close();

  server.begin_drain();
  reply = second.upgrade("/ws");
  REQUIRE(reply);
  CHECK(reply->status == 503);
  CHECK(reply->header("Connection") == std::optional<std::string_view>("close"));
  CHECK(second.wait_closed());
  second.close();

  CHECK(hook_calls == 0);
  auto s = server.stats();
  CHECK(s.ws_upgrades_rejected == 2);
  CHECK(s.ws_accepted == 0);
  // Shared: the io thread may still be inside set() when wait() returns.
  auto drained = std::make_shared<event>();
  server.async_wait_drained([drained] { drained->set(); });
  CHECK(drained->wait());
}

TEST_CASE("ws: an upgrade pipelined behind an unanswered request waits for its answer", "[ws]") {
  recording_server f;
  auto& rec = f.rec;
  auto& http = f.http;
  const auto port = f.port;

  raw_ws raw(port);
  REQUIRE(raw.send("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n" + raw_ws::upgrade_request("/ws")));
  REQUIRE(http.wait_held(1));
  CHECK(rec.opened().empty());
  http.pop_held()(http_response{200, {}, "held"});
  auto first = raw.read_reply();
  REQUIRE(first);
  CHECK(first->status == 200);
  CHECK(first->body == "held");
  CHECK_FALSE(first->header("Connection") == std::optional<std::string_view>("close"));
  auto second = raw.read_reply();
  REQUIRE(second);
  CHECK(second->status == 101);
  REQUIRE(rec.wait_opened(1));
  REQUIRE(raw.send_frame(1, "hi"));
  auto echo = raw.read_frame();
  REQUIRE(echo);
  CHECK(echo->opcode == 1);
  CHECK(echo->payload == "hi");
}

TEST_CASE("ws: invalid options and arguments are refused", "[ws]") {
  http_side http;
  auto o = test_options();
  o.websocket.overflow_close_code = 1000;
  CHECK_THROWS_AS(http_server(o, http.handler()), std::invalid_argument);
  o = test_options();
  o.websocket.close_timeout = std::chrono::milliseconds(0);
  CHECK_THROWS_AS(http_server(o, http.handler()), std::invalid_argument);
  o = test_options();
  o.websocket.max_queued_bytes = 0;
  CHECK_THROWS_AS(http_server(o, http.handler()), std::invalid_argument);
  o = test_options();
  o.websocket.overflow_close_code = si::net::ws_close::try_again_later;
  CHECK_NOTHROW(http_server(o, http.handler()));

  CHECK(si::net::ws_close_code_sendable(1000));
  CHECK(si::net::ws_close_code_sendable(4999));
  CHECK_FALSE(si::net::ws_close_code_sendable(1005));
  CHECK_FALSE(si::net::ws_close_code_sendable(1006));
  CHECK_FALSE(si::net::ws_close_code_sendable(999));
  CHECK(si::net::to_string(ws_send_result::overflow) == "overflow");

  ws_recorder rec;
  o = test_options();
  o.websocket.hook = standard_hook(rec);
  http_server server(o, http.handler());
  auto port = server.start();
  ws_io io;
  ws_client c(io);
  REQUIRE(c.connect(port));
  REQUIRE(rec.wait_opened(1));
  auto conn = rec.opened().at(0);
  CHECK_THROWS_AS(conn->send(nullptr), std::invalid_argument);
  CHECK_THROWS_AS(conn->close(1006), std::invalid_argument);
  CHECK(conn->is_open());
  // A reason longer than a close frame allows is cut to 123 bytes.
  conn->close(4001, std::string(300, 'r'));
  auto r = c.read();
  REQUIRE(r);
  CHECK(r->close_code == 4001);
  CHECK(r->close_reason == std::string(123, 'r'));
  REQUIRE(rec.wait_closed(1));
  CHECK(rec.closed().at(0).clean);

  // The cut is never inside a UTF-8 sequence: "é" at bytes 123-124 goes whole (Beast's
  // client would fail a close frame whose reason is not valid UTF-8).
  ws_client c2(io);
  REQUIRE(c2.connect(port));
  REQUIRE(rec.wait_opened(2));
  auto conn2 = rec.opened().at(1);
  conn2->close(4002, std::string(122, 'r') + "\xc3\xa9 and more");
  r = c2.read();
  REQUIRE(r);
  CHECK(r->close_code == 4002);
  CHECK(r->close_reason == std::string(122, 'r'));
  REQUIRE(rec.wait_closed(2));
}

TEST_CASE("ws: drop() aborts at once", "[ws]") {
  recording_server f;
  auto& rec = f.rec;
  auto& server = f.server;
  const auto port = f.port;

  ws_io io;
  ws_client c(io);
  REQUIRE(c.connect(port));
  REQUIRE(rec.wait_opened(1));
  auto conn = rec.opened().at(0);
  conn->drop();
  CHECK_FALSE(conn->is_open());
  REQUIRE(rec.wait_closed(1));
  CHECK(rec.closed().at(0).code == 1006);
  CHECK_FALSE(rec.closed().at(0).clean);
  auto r = c.read();
  REQUIRE(r);
  CHECK_FALSE(r->ok);
  CHECK(server.stats().ws_open == 0);
}

TEST_CASE("ws: an idle connection costs at most 16 KiB of resident memory", "[ws][memory]") {
  // SI_WS_RSS_CONNECTIONS overrides the count (e.g. 9000 for a near-10k measurement).
  std::size_t n = 1000;
  if (const char* env = std::getenv("SI_WS_RSS_CONNECTIONS")) {
    n = std::stoul(env);
  }
  ws_recorder rec;
  http_side http;
  auto o = test_options();
  o.websocket.hook = [&rec](const ws_upgrade_request&) {
    return ws_upgrade_decision::accept(rec.handlers());
  };
  http_server server(o, http.handler());
  auto port = server.start();

  std::vector<raw_ws> clients;
  clients.reserve(n + 100);
  auto open_one = [&] {
    clients.emplace_back(port);
    auto reply = clients.back().upgrade("/ws");
    return reply && reply->status == 101;
  };
  // Warm-up: thread arenas, pools and the first allocations are not per-connection costs.
  for (int i = 0; i < 100; ++i) {
    REQUIRE(open_one());
  }
  REQUIRE(rec.wait_opened(100));
  const auto before = resident_bytes();
  for (std::size_t i = 0; i < n; ++i) {
    REQUIRE(open_one());
  }
  REQUIRE(rec.wait_opened(n + 100));
  const auto after = resident_bytes();
  const double per_connection =
      after > before ? static_cast<double>(after - before) / static_cast<double>(n) : 0.0;
  if (std::getenv("SI_WS_RSS_CONNECTIONS") != nullptr) {
    std::printf("websocket idle RSS: %zu connections, %.0f bytes per connection\n", n,
                per_connection);
  }
  INFO("bytes per idle connection: " << per_connection);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // Sanitizer shadow memory and redzones dwarf the figure: only the connections are checked.
  SUCCEED("RSS per connection is not meaningful under a sanitizer");
#else
  CHECK(per_connection <= 16 * 1024);
#endif
  CHECK(server.stats().ws_open == n + 100);
}
