#include <catch2/catch.hpp>
#include <hiredis/hiredis.h>

#include <thread>
#include <unistd.h>

#include "storage/cache_backend.hpp"
#include "support.hpp"

using namespace si::storage;
using namespace std::chrono_literals;
using si::test::fake_clock;
using si::test::redis_process;

namespace {

std::string shared_redis_url() {
  return si::test::require_env(
      "SI_TEST_REDIS_URL",
      "the [redis] tests need a redis:// URL of a server they may write keys to, e.g. "
      "redis://127.0.0.1:6379");
}

/// A key prefix no other run shares.
std::string unique_prefix(const std::string& tag) {
  static int counter = 0;
  return "si-test:" + std::to_string(getpid()) + ":" + std::to_string(++counter) + ":" + tag + ":";
}

/// A plain hiredis connection for checking what the backend wrote.
class raw_redis {
 public:
  explicit raw_redis(const std::string& url) {
    // Only the host:port forms the tests use.
    const auto hostport = url.substr(url.find("://") + 3);
    const auto colon = hostport.rfind(':');
    const std::string host = hostport.substr(0, colon);
    const int port = std::stoi(hostport.substr(colon + 1));
    ctx_ = redisConnectWithTimeout(host.c_str(), port, timeval{2, 0});
    REQUIRE(ctx_ != nullptr);
    REQUIRE(ctx_->err == 0);
  }
  ~raw_redis() {
    redisFree(ctx_);
  }
  raw_redis(const raw_redis&) = delete;
  raw_redis& operator=(const raw_redis&) = delete;

  /// Runs a command; returns the integer, string or status text of the reply.
  std::string run(std::vector<std::string> argv) {
    std::vector<const char*> args;
    std::vector<size_t> lens;
    for (const auto& a : argv) {
      args.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(ctx_, static_cast<int>(args.size()), args.data(), lens.data()));
    REQUIRE(r != nullptr);
    std::string out;
    if (r->type == REDIS_REPLY_INTEGER) {
      out = std::to_string(r->integer);
    } else if (r->type == REDIS_REPLY_NIL) {
      out = "(nil)";
    } else if (r->str != nullptr) {
      out.assign(r->str, r->len);
    }
    freeReplyObject(r);
    return out;
  }

 private:
  redisContext* ctx_ = nullptr;
};

}  // namespace

TEST_CASE("redis cache stores, reads and expires values", "[redis]") {
  const auto url = shared_redis_url();
  redis_options opts;
  opts.url = url;
  opts.key_prefix = unique_prefix("rt");
  auto cache = make_redis_cache(opts);
  CHECK(std::string(cache->name()) == "redis");
  CHECK(cache->healthy());

  cache->set("k", std::string("v\0binary", 8), 60s);
  CHECK(cache->get("k") == std::string("v\0binary", 8));
  CHECK(cache->get("absent") == std::nullopt);

  // The key carries the prefix and a PX TTL of at most what was asked.
  raw_redis raw(url);
  const long long pttl = std::stoll(raw.run({"PTTL", opts.key_prefix + "k"}));
  CHECK(pttl > 0);
  CHECK(pttl <= 60'000);
  CHECK(raw.run({"EXISTS", "k"}) == "0");

  // A short TTL really expires on the server (bounded polling, no fixed sleep).
  cache->set("short", "x", 30ms);
  bool expired = false;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!expired && std::chrono::steady_clock::now() < deadline) {
    expired = !cache->get("short").has_value();
    if (!expired) {
      std::this_thread::sleep_for(5ms);
    }
  }
  CHECK(expired);

  cache->set("zero", "x", 0ms);
  CHECK(raw.run({"EXISTS", opts.key_prefix + "zero"}) == "0");

  const auto s = cache->stats();
  CHECK(s.hits >= 1);
  CHECK(s.misses >= 2);
  CHECK(s.sets == 2);
  CHECK(s.errors == 0);
  CHECK(s.entries == 0);
  cache->invalidate("*");
  cache->close();
  CHECK_FALSE(cache->healthy());
  CHECK(cache->get("k") == std::nullopt);
}

TEST_CASE("redis invalidation SCANs past 1000 keys and stays in its prefix", "[redis]") {
  const auto url = shared_redis_url();
  const std::string base = unique_prefix("scan");
  redis_options opts;
  opts.url = url;
  opts.key_prefix = base + "[x]*:";  // glob characters in the prefix must be literal
  auto cache = make_redis_cache(opts);
  for (int i = 0; i < 1200; ++i) {
    cache->set("bulk:" + std::to_string(i), "v", 5min);
  }
  for (int i = 0; i < 10; ++i) {
    cache->set("keep:" + std::to_string(i), "v", 5min);
  }
  REQUIRE(cache->stats().sets == 1210);
  // A key the unescaped pattern would match: it must survive.
  raw_redis raw(url);
  const std::string foreign = base + "x-foreign:bulk:1";
  raw.run({"SET", foreign, "v", "PX", "300000"});

  CHECK(cache->invalidate("bulk:*") == 1200);
  CHECK(cache->stats().invalidations == 1200);
  CHECK(cache->get("bulk:7") == std::nullopt);
  CHECK(cache->get("keep:3") == "v");
  CHECK(raw.run({"EXISTS", foreign}) == "1");
  CHECK(cache->invalidate("keep:?") == 10);
  CHECK(cache->invalidate("*") == 0);
  CHECK(cache->stats().errors == 0);
  raw.run({"DEL", foreign});
}

TEST_CASE("redis URL credentials and database are used", "[redis]") {
  redis_process server(si::test::free_loopback_port(), {"--requirepass", "s3cret"});
  server.start();
  const std::string hostport = "127.0.0.1:" + std::to_string(server.port());

  redis_options opts;
  opts.url = "redis://:s3cret@" + hostport + "/3";
  opts.key_prefix = "p:";
  auto cache = make_redis_cache(opts);
  CHECK(cache->healthy());
  cache->set("k", "in-db-3", 1min);
  CHECK(cache->get("k") == "in-db-3");

  raw_redis raw("redis://" + hostport);
  CHECK(raw.run({"AUTH", "s3cret"}) == "OK");
  CHECK(raw.run({"GET", "p:k"}) == "(nil)");  // not in db 0
  CHECK(raw.run({"SELECT", "3"}) == "OK");
  CHECK(raw.run({"GET", "p:k"}) == "in-db-3");

  opts.url = "redis://default:s3cret@" + hostport;  // Redis 6 ACL form
  auto acl = make_redis_cache(opts);
  CHECK(acl->healthy());

  fake_clock clock;
  opts.url = "redis://:wrong@" + hostport;
  opts.clock = clock.fn();
  auto denied = make_redis_cache(opts);
  CHECK_FALSE(denied->healthy());
  CHECK(denied->get("k") == std::nullopt);
  CHECK(denied->stats().errors == 1);  // the get fell in the backoff window: no new attempt
  CHECK(denied->stats().misses == 1);
}

TEST_CASE("redis killed mid-test: misses, backoff, then reconnect", "[redis]") {
  redis_process server(si::test::free_loopback_port());
  server.start();
  fake_clock clock;
  redis_options opts;
  opts.url = server.url();
  opts.op_timeout = 500ms;
  opts.reconnect_min = 100ms;
  opts.reconnect_max = 400ms;
  opts.clock = clock.fn();
  auto cache = make_redis_cache(opts);

  cache->set("a", "1", 1min);
  CHECK(cache->get("a") == "1");
  CHECK(cache->healthy());

  server.kill_hard();
  // The dead connection fails once, counted, then everything is a quiet miss or no-op.
  std::optional<std::string> value{"sentinel"};
  REQUIRE_NOTHROW(value = cache->get("a"));
  CHECK(value == std::nullopt);
  CHECK(cache->stats().errors == 1);
  REQUIRE_NOTHROW(cache->set("b", "2", 1min));
  CHECK(cache->stats().sets == 1);
  CHECK_FALSE(cache->healthy());
  CHECK(cache->invalidate("*") == 0);
  CHECK(cache->stats().errors == 1);  // inside the backoff window nothing touched the network

  // Backoff doubles from 100 ms to the 400 ms cap, measured on the injected clock.
  clock.advance(100ms);
  CHECK_FALSE(cache->healthy());  // attempt 1: refused
  CHECK(cache->stats().errors == 2);
  clock.advance(199ms);
  CHECK_FALSE(cache->healthy());  // window is 200 ms now
  CHECK(cache->stats().errors == 2);
  clock.advance(1ms);
  CHECK_FALSE(cache->healthy());  // attempt 2
  CHECK(cache->stats().errors == 3);
  clock.advance(400ms);
  CHECK_FALSE(cache->healthy());  // attempt 3
  CHECK(cache->stats().errors == 4);
  clock.advance(399ms);
  CHECK(cache->get("a") == std::nullopt);  // capped at 400 ms: still inside the window
  CHECK(cache->stats().errors == 4);
  clock.advance(1ms);
  CHECK_FALSE(cache->healthy());  // attempt 4
  CHECK(cache->stats().errors == 5);

  // Back on the same port: the backend waits out its window, then reconnects.
  server.start();
  CHECK_FALSE(cache->healthy());  // still in the window although the server is up
  CHECK(cache->stats().errors == 5);
  clock.advance(400ms);
  CHECK(cache->healthy());
  cache->set("c", "3", 1min);
  CHECK(cache->get("c") == "3");
  CHECK(cache->stats().errors == 5);

  // A success resets the backoff to its minimum.
  server.kill_hard();
  CHECK(cache->get("c") == std::nullopt);
  CHECK(cache->stats().errors == 6);
  server.start();
  clock.advance(100ms);
  CHECK(cache->get("c") == std::nullopt);  // reconnected; the new server is empty
  CHECK(cache->healthy());
  CHECK(cache->stats().errors == 6);
}

TEST_CASE("a hung redis times out within op_timeout and counts an error", "[redis]") {
  redis_process server(si::test::free_loopback_port());
  server.start();
  fake_clock clock;
  redis_options opts;
  opts.url = server.url();
  opts.op_timeout = 200ms;
  opts.clock = clock.fn();
  auto cache = make_redis_cache(opts);
  cache->set("k", "v", 1min);
  REQUIRE(cache->get("k") == "v");

  server.pause();
  const auto started = std::chrono::steady_clock::now();
  CHECK(cache->get("k") == std::nullopt);
  const auto took = std::chrono::steady_clock::now() - started;
  server.resume();
  CHECK(took >= 150ms);
  CHECK(took < 3s);
  CHECK(cache->stats().errors == 1);

  clock.advance(opts.reconnect_min);
  CHECK(cache->healthy());
  CHECK(cache->get("k") == "v");
}

TEST_CASE("an unreachable redis never throws", "[redis]") {
  // A port with nothing listening: connection refused at once.
  const auto port = si::test::free_loopback_port();
  fake_clock clock;
  redis_options opts;
  opts.url = "redis://127.0.0.1:" + std::to_string(port);
  opts.clock = clock.fn();
  auto cache = make_redis_cache(opts);
  for (int i = 0; i < 5; ++i) {
    REQUIRE_NOTHROW(cache->set("k", "v", 1s));
    REQUIRE_NOTHROW(cache->get("k"));
    REQUIRE_NOTHROW(cache->invalidate("*"));
    CHECK_FALSE(cache->healthy());
    clock.advance(opts.reconnect_max);
  }
  const auto s = cache->stats();
  CHECK(s.errors == 5);
  CHECK(s.misses == 5);
  CHECK(s.sets == 0);
  CHECK(s.hits == 0);
}
