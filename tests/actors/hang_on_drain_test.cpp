// TEST_HANG_ON_DRAIN (test-only): the setting accepts exactly the actors of the shutdown plan,
// and each real actor told to hang ignores its drain request (no reply, still serving other
// requests) until it is killed, while the same actor without the switch drains and replies.
// And a gateway killed in its drain (timed_out) still leaves the WebSockets to the ws_hub,
// which closes them with server_shutdown and 1001 (regression: they were cut with the server).
// Real scheduler; the only waits are request timeouts, socket reads and the actors' exits.
// scripts/chaos/timeouts.sh drives the same switch against the real binary.

#include "actors/broadcaster.hpp"
#include "actors/cache.hpp"
#include "actors/db.hpp"
#include "actors/http_gateway.hpp"
#include "actors/ingestor.hpp"
#include "actors/shutdown_plan.hpp"
#include "actors/sync_scheduler.hpp"
#include "actors/webhook_dispatcher.hpp"
#include "actors/ws_hub.hpp"
#include "config/settings.hpp"
#include "net/http_server.hpp"
#include "net/prometheus.hpp"
#include "net/webhook_client.hpp"
#include "storage/cache_backend.hpp"

#include "real_system.hpp"

#include <caf/exit_reason.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <soci/soci.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <future>
#include <set>
#include <vector>

using namespace si;
using namespace si::actors;
using namespace std::chrono_literals;

namespace {

using test::real_system;
using test::temp_sqlite;

/// What a drain request got: a reply, or the error (request_timeout when nobody answered).
struct drain_outcome {
  bool replied = false;
  caf::error error;
};

template <class Handle>
drain_outcome request_drain(caf::scoped_actor& self, const Handle& h,
                            std::chrono::milliseconds timeout) {
  drain_outcome out;
  self->request(h, timeout, drain_atom_v)
      .receive([&](std::string&) { out.replied = true; }, [&](caf::error& e) { out.error = e; });
  return out;
}

/// With the switch: the drain gets no reply within 300 ms, yet the actor still answers
/// `probe` (it keeps running); killed, it goes. Without: the drain replies and the actor quits.
template <class Handle, class Probe>
void check_drain(caf::actor_system& sys, const Handle& h, bool hang, Probe probe) {
  caf::scoped_actor self{sys};
  if (hang) {
    auto out = request_drain(self, h, 300ms);
    CHECK_FALSE(out.replied);
    CHECK(out.error == caf::sec::request_timeout);
    bool alive = false;
    self->request(h, 10s, probe).receive([&](std::string&) { alive = true; }, [&](caf::error&) {});
    CHECK(alive);
    self->send_exit(h, caf::exit_reason::kill);
  } else {
    CHECK(request_drain(self, h, 10s).replied);
  }
  self->wait_for(h);
}

/// A minimal WebSocket client over a blocking POSIX socket (reads bounded by 5 s): the
/// handshake, the server's (unmasked, unfragmented) frames, and a masked close answer.
class raw_ws {
 public:
  struct frame {
    int opcode = -1;  ///< -1: the connection ended (or a read timed out) instead
    std::string payload;
  };

  explicit raw_ws(uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    timeval limit{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      return;
    }
    send_all(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n");
    std::string head;
    char c = 0;
    while (head.find("\r\n\r\n") == std::string::npos && ::recv(fd_, &c, 1, 0) == 1) {
      head += c;
    }
    upgraded_ = head.rfind("HTTP/1.1 101", 0) == 0;
  }
  ~raw_ws() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  raw_ws(const raw_ws&) = delete;
  raw_ws& operator=(const raw_ws&) = delete;

  bool upgraded() const {
    return upgraded_;
  }

  frame read() {
    unsigned char h[2];
    if (!read_exact(h, 2)) {
      return {};
    }
    uint64_t len = h[1] & 0x7f;
    int extra = len == 126 ? 2 : len == 127 ? 8 : 0;
    if (extra > 0) {
      unsigned char b[8];
      if (!read_exact(b, extra)) {
        return {};
      }
      len = 0;
      for (int i = 0; i < extra; ++i) {
        len = (len << 8) | b[i];
      }
    }
    std::string payload(len, '\0');
    if (len > 0 && !read_exact(payload.data(), len)) {
      return {};
    }
    return {h[0] & 0x0f, std::move(payload)};
  }

  /// Answers the server's close frame (masked, as every client frame must be).
  void answer_close(uint16_t code) {
    const char mask[4] = {0x11, 0x22, 0x33, 0x44};
    std::string f{'\x88', '\x82'};
    f.append(mask, 4);
    f.push_back(static_cast<char>((code >> 8) ^ mask[0]));
    f.push_back(static_cast<char>((code & 0xff) ^ mask[1]));
    send_all(f);
  }

  /// After the close handshake the server ends the TCP connection (FIN); the client closes
  /// its socket once it has read that end. True when the end came (not a read timeout).
  bool finish() {
    char c = 0;
    bool ended = ::recv(fd_, &c, 1, 0) == 0;
    ::close(fd_);
    fd_ = -1;
    return ended;
  }

 private:
  bool read_exact(void* out, std::size_t n) {
    auto* p = static_cast<char*>(out);
    while (n > 0) {
      auto got = ::recv(fd_, p, n, 0);
      if (got <= 0) {
        return false;
      }
      p += got;
      n -= static_cast<std::size_t>(got);
    }
    return true;
  }
  void send_all(const std::string& data) {
    std::size_t sent = 0;
    while (sent < data.size()) {
      auto n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) {
        return;
      }
      sent += static_cast<std::size_t>(n);
    }
  }

  int fd_;
  bool upgraded_ = false;
};

}  // namespace

TEST_CASE("TEST_HANG_ON_DRAIN accepts exactly the actors of the shutdown plan", "[hang]") {
  config::settings all;
  all.ingest_enabled = true;
  all.sync_enabled = true;
  std::set<std::string> planned;
  for (const auto& e : default_plan(all)) {
    planned.insert(e.actor);
  }
  const auto& names = config::hang_on_drain_actors();
  CHECK(std::set<std::string>(names.begin(), names.end()) == planned);
  CHECK(names.size() == planned.size());

  std::string joined;
  for (const auto& n : names) {
    joined += (joined.empty() ? "" : ",") + n;
  }
  auto loaded = config::load({{"TEST_HANG_ON_DRAIN", joined}}, {});
  REQUIRE(std::holds_alternative<config::settings>(loaded));
  const auto& s = std::get<config::settings>(loaded);
  for (const auto& n : names) {
    CHECK(s.hangs_on_drain(n));
  }
  CHECK_FALSE(s.hangs_on_drain("gateway"));
  CHECK_FALSE(config::settings{}.hangs_on_drain("db"));
  CHECK(std::holds_alternative<config::config_error>(
      config::load({{"TEST_HANG_ON_DRAIN", "http_gateway,gateway"}}, {})));
}

TEST_CASE("an actor told to hang ignores its drain and keeps running until killed", "[hang]") {
  auto hang = GENERATE(true, false);
  INFO("test_hang_on_drain = " << hang);
  const auto db_file = temp_sqlite(hang ? "hang" : "nohang");
  const auto& url = db_file.url;
  real_system rs;
  auto& sys = rs.sys;
  auto db = spawn_db(sys, db_options{url, 1});
  auto metrics = std::make_shared<net::metrics_registry>();

  SECTION("db") {
    db_options o{url, 1};
    o.test_hang_on_drain = hang;
    check_drain(sys, spawn_db(sys, o), hang, stats_atom_v);
  }
  SECTION("cache") {
    auto cache = spawn_cache(
        sys, [] { return storage::make_memory_cache(10); }, hang);
    check_drain(sys, cache, hang, stats_atom_v);
  }
  SECTION("broadcaster") {
    broadcaster_options o;
    o.db = db;
    o.test_hang_on_drain = hang;
    check_drain(sys, spawn_broadcaster(sys, o), hang, status_atom_v);
  }
  SECTION("ws_hub") {
    ws_hub_options o;
    o.endpoint = std::make_shared<ws_endpoint>(ws_endpoint_options{});
    o.deadline = 1s;
    o.test_hang_on_drain = hang;
    check_drain(sys, spawn_ws_hub(sys, o), hang, status_atom_v);
  }
  SECTION("sync scheduler") {
    sync_options o;
    o.kind = sync_kind::metrics;
    o.db = db;
    o.interval = 1h;
    o.test_hang_on_drain = hang;
    check_drain(sys, spawn_sync_scheduler(sys, o), hang, status_atom_v);
  }
  SECTION("ingestor") {
    ingestor_options o;
    o.db = db;
    o.client.base_url = "http://127.0.0.1:9";  // closed: it backs off and retries
    o.client.max_retries = 0;
    o.test_hang_on_drain = hang;
    check_drain(sys, spawn_ingestor(sys, o), hang, status_atom_v);
  }
  SECTION("webhook_dispatcher") {
    webhook_dispatcher_options o;
    o.db = db;
    o.sender = make_webhook_client_sender(net::webhook_client_options{});
    o.drain_timeout = 1s;
    o.drain_db_timeout = 1s;
    o.test_hang_on_drain = hang;
    check_drain(sys, spawn_webhook_dispatcher(sys, o), hang, status_atom_v);
  }
  SECTION("http_gateway") {
    http_gateway_options o;
    o.server = std::make_shared<net::http_server_options>();
    o.server->host = "127.0.0.1";
    o.server->io_threads = 1;
    o.db = db;
    o.metrics = metrics;
    o.graceful_timeout = 1s;
    o.test_hang_on_drain = hang;
    check_drain(sys, spawn_http_gateway(sys, o), hang, status_atom_v);
  }
  caf::anon_send_exit(db, caf::exit_reason::kill);
}

TEST_CASE("a gateway killed in its drain leaves the WebSockets to the ws_hub: 1001, not a cut",
          "[hang]") {
  const auto db_file = temp_sqlite("handover");
  const auto& url = db_file.url;
  real_system rs;
  auto& sys = rs.sys;
  auto db = spawn_db(sys, db_options{url, 1});
  ws_hub_options ho;
  ho.endpoint = std::make_shared<ws_endpoint>(ws_endpoint_options{});
  ho.grace = 0ms;
  ho.deadline = 2s;
  auto hub = spawn_ws_hub(sys, ho);
  std::promise<uint16_t> listening;
  http_gateway_options o;
  o.server = std::make_shared<net::http_server_options>();
  o.server->host = "127.0.0.1";
  o.server->io_threads = 1;
  o.db = db;
  o.metrics = std::make_shared<net::metrics_registry>();
  o.websocket = ho.endpoint;
  o.test_hang_on_drain = true;  // stands for a gateway stuck in its drain
  o.on_listen = [&listening](uint16_t port, const std::string&) { listening.set_value(port); };
  auto gateway = spawn_http_gateway(sys, o);
  auto port = listening.get_future();
  REQUIRE(port.wait_for(10s) == std::future_status::ready);
  raw_ws client(port.get());
  REQUIRE(client.upgraded());
  CHECK(client.read().payload.find("\"connected\"") != std::string::npos);

  // The supervisor's force: no reply by the deadline, then kill.
  caf::scoped_actor self{sys};
  CHECK(request_drain(self, gateway, 300ms).error == caf::sec::request_timeout);
  self->send_exit(gateway, caf::exit_reason::kill);
  self->wait_for(gateway);

  // The hub's drain, while the client reads (and answers the close) on its own thread.
  bool tcp_ended = false;
  auto seen = std::async(std::launch::async, [&client, &tcp_ended] {
    std::vector<raw_ws::frame> frames;
    for (int i = 0; i < 10; ++i) {
      frames.push_back(client.read());
      if (frames.back().opcode == 8) {
        client.answer_close(1001);
        tcp_ended = client.finish();
      }
      if (frames.back().opcode == 8 || frames.back().opcode == -1) {
        break;
      }
    }
    return frames;
  });
  std::string counts;
  self->request(hub, 10s, drain_atom_v)
      .receive([&](std::string& c) { counts = c; },
               [&](caf::error& e) { FAIL("hub drain: " << to_string(e)); });
  auto frames = seen.get();
  REQUIRE(frames.size() >= 2);
  CHECK(frames[frames.size() - 2].payload.find("\"server_shutdown\"") != std::string::npos);
  const auto& last = frames.back();
  REQUIRE(last.opcode == 8);
  REQUIRE(last.payload.size() >= 2);
  CHECK(((static_cast<unsigned char>(last.payload[0]) << 8)
         | static_cast<unsigned char>(last.payload[1]))
        == 1001);
  CHECK(tcp_ended);
  auto j = nlohmann::json::parse(counts);
  CHECK(j["notified"] == 1);
  CHECK(j["closed_cleanly"] == 1);
  caf::anon_send_exit(db, caf::exit_reason::kill);
}
