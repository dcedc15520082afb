// Actor-level tests of the sync schedulers on the real scheduler with a real db actor on
// SQLite: catch-up at start (a run missed while the server was down runs at once; a recent
// one waits for its due time), a run's results and cache invalidation, and a drain while a
// Horizon read hangs. Synchronisation is by replies and promises, never sleeps.

#include "actors/cache.hpp"
#include "actors/db.hpp"
#include "actors/sync_scheduler.hpp"
#include "storage/cache_backend.hpp"
#include "storage/database.hpp"
#include "storage/sync_repo.hpp"

#include "real_system.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include <catch2/catch.hpp>

#include <soci/soci.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <future>

using namespace si;
using namespace si::actors;
using namespace std::chrono_literals;

namespace {

using test::real_system;
using test::temp_sqlite;

constexpr int64_t now = 1'800'000'000'000;  // the schedulers' fixed clock

nlohmann::json status_of(caf::scoped_actor& self, const sync_scheduler_actor& s) {
  nlohmann::json j;
  self->request(s, 5s, status_atom_v)
      .receive([&](std::string& text) { j = nlohmann::json::parse(text); },
               [](caf::error& e) { FAIL(to_string(e)); });
  return j;
}

std::string drain(caf::scoped_actor& self, const caf::actor& a) {
  std::string report;
  self->request(a, 10s, drain_atom_v)
      .receive([&](std::string& r) { report = r; }, [](caf::error& e) { FAIL(to_string(e)); });
  return report;
}

/// A TCP listener that never accepts: connects succeed (kernel backlog), requests hang.
struct black_hole {
  int fd = -1;
  uint16_t port = 0;
  black_hole() {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd, 16) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~black_hole() {
    ::close(fd);
  }
};

}  // namespace

TEST_CASE("sync scheduler: a run missed while down runs at start; a recent one waits", "[sync]") {
  const auto db_file = temp_sqlite("catchup");
  const auto& url = db_file.url;
  real_system rs;
  auto db = spawn_db(rs.sys, db_options{url, 1});
  caf::scoped_actor self{rs.sys};

  SECTION("never ran: runs at once, records itself, hands its changes on") {
    std::promise<sync_changes> ran;
    sync_options o;
    o.kind = sync_kind::metrics;
    o.db = db;
    o.interval = 1h;
    o.now_ms = [] { return now; };
    o.on_changes = [&ran](const sync_changes& c) { ran.set_value(c); };
    auto s = spawn_sync_scheduler(rs.sys, o);
    auto f = ran.get_future();
    REQUIRE(f.wait_for(10s) == std::future_status::ready);
    auto changes = f.get();
    CHECK(changes.kind == sync_kind::metrics);
    CHECK(changes.summary.contains("buckets_written"));
    auto st = status_of(self, s);
    CHECK(st["runs"] == 1);
    CHECK(st["last_status"] == "ok");
    CHECK(st["last_run_at"] == now);
    CHECK(st["next_run_in_ms"] == 3'600'000);  // the next run one interval later
    auto report = nlohmann::json::parse(drain(self, caf::actor_cast<caf::actor>(s)));
    CHECK(report["runs"] == 1);
    CHECK(report["failures"] == 0);
    auto sql = storage::open_session(url);
    auto row = storage::read_last_run(*sql, "metrics");
    REQUIRE(row);
    CHECK(row->last_run_at == now);
    CHECK(row->last_status == "ok");
  }

  SECTION("last run two intervals ago (server was down): due at once") {
    {
      auto sql = storage::open_session(url);
      storage::record_run(*sql, "metrics", now - 2 * 3'600'000, "ok", std::nullopt, 5);
    }
    std::promise<void> ran;
    sync_options o;
    o.kind = sync_kind::metrics;
    o.db = db;
    o.interval = 1h;
    o.now_ms = [] { return now; };
    o.on_changes = [&ran](const sync_changes&) { ran.set_value(); };
    auto s = spawn_sync_scheduler(rs.sys, o);
    REQUIRE(ran.get_future().wait_for(10s) == std::future_status::ready);
    CHECK(status_of(self, s)["runs"] == 1);
    drain(self, caf::actor_cast<caf::actor>(s));
  }

  SECTION("last run 10 minutes ago: the next run waits for its due time") {
    {
      auto sql = storage::open_session(url);
      storage::record_run(*sql, "metrics", now - 600'000, "ok", std::nullopt, 5);
    }
    sync_options o;
    o.kind = sync_kind::metrics;
    o.db = db;
    o.interval = 1h;
    o.now_ms = [] { return now; };
    auto s = spawn_sync_scheduler(rs.sys, o);
    // The start-up read is one db round trip; the status after it shows the due time.
    auto st = nlohmann::json::object();
    for (int i = 0; i < 200 && st.value("next_run_in_ms", nlohmann::json()).is_null(); ++i) {
      st = status_of(self, s);  // bounded: each status is a reply, not a sleep
    }
    CHECK(st["runs"] == 0);
    CHECK(st["next_run_in_ms"] == 3'000'000);  // 60 min − 10 min
    CHECK(st["last_run_at"] == now - 600'000);
    auto report = nlohmann::json::parse(drain(self, caf::actor_cast<caf::actor>(s)));
    CHECK(report["runs"] == 0);
  }
  drain(self, caf::actor_cast<caf::actor>(db));
}

TEST_CASE("sync scheduler: a run invalidates the cache keys it affected", "[sync]") {
  const auto db_file = temp_sqlite("invalidate");
  const auto& url = db_file.url;
  {
    // One successful USDC payment an hour ago: the run builds its corridor.
    auto sql = storage::open_session(url);
    const long long at = now - 3'600'000;
    *sql << "INSERT INTO ledgers (sequence, hash, closed_at, ingested_at) "
            "VALUES (1000, 'h1000', :at, :at2)",
        soci::use(at), soci::use(at);
    *sql << "INSERT INTO operations (id, transaction_hash, ledger, type, source_account, "
            "successful, created_at, from_account, to_account, source_asset_code, "
            "source_asset_issuer, destination_asset_code, destination_asset_issuer, amount, "
            "source_amount) VALUES (4294967296001, 't1', 1000, 'payment', 'GA', 1, :at, 'GA', "
            "'GB', 'USDC', 'GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN', 'USDC', "
            "'GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN', 10.0, 10.0)",
        soci::use(at);
  }
  real_system rs;
  auto db = spawn_db(rs.sys, db_options{url, 1});
  auto cache = spawn_cache(
      rs.sys, [] { return storage::make_memory_cache(100); }, false);
  caf::scoped_actor self{rs.sys};
  self->request(cache, 5s, put_atom_v, std::string{"api:/api/v1/corridors?limit=5"},
                std::string{"old"}, int64_t{60'000})
      .receive([](bool) {}, [](caf::error& e) { FAIL(to_string(e)); });
  self->request(cache, 5s, put_atom_v, std::string{"api:/health"}, std::string{"kept"},
                int64_t{60'000})
      .receive([](bool) {}, [](caf::error& e) { FAIL(to_string(e)); });
  std::promise<sync_changes> ran;
  sync_options o;
  o.kind = sync_kind::metrics;
  o.db = db;
  o.cache = cache;
  o.interval = 1h;
  o.now_ms = [] { return now; };
  o.on_changes = [&ran](const sync_changes& c) { ran.set_value(c); };
  auto s = spawn_sync_scheduler(rs.sys, o);
  auto f = ran.get_future();
  REQUIRE(f.wait_for(10s) == std::future_status::ready);
  auto changes = f.get();
  CHECK(changes.summary["changed_corridor_ids"].size() == 1);
  drain(self, caf::actor_cast<caf::actor>(s));  // after the run: its invalidations were sent
  auto present = [&](const std::string& key) {
    bool found = false;
    self->request(cache, 5s, get_atom_v, key)
        .receive([&](bool hit, std::string&) { found = hit; },
                 [](caf::error& e) { FAIL(to_string(e)); });
    return found;
  };
  CHECK_FALSE(present("api:/api/v1/corridors?limit=5"));
  CHECK(present("api:/health"));
  drain(self, caf::actor_cast<caf::actor>(cache));
  drain(self, caf::actor_cast<caf::actor>(db));
}

TEST_CASE("sync scheduler: drain while a Horizon read hangs cancels it; nothing written",
          "[sync]") {
  const auto db_file = temp_sqlite("drain");
  const auto& url = db_file.url;
  real_system rs;
  auto db = spawn_db(rs.sys, db_options{url, 1});
  caf::scoped_actor self{rs.sys};
  black_hole horizon;
  sync_options o;
  o.kind = sync_kind::pools;
  o.db = db;
  o.interval = 1h;
  o.now_ms = [] { return now; };
  o.client.base_url = "http://127.0.0.1:" + std::to_string(horizon.port);
  o.client.request_timeout = 60s;  // the read would hang for a minute without the cancel
  o.client.max_retries = 0;
  o.client.rate_limit_per_second = 0;
  auto s = spawn_sync_scheduler(rs.sys, o);
  auto st = nlohmann::json::object();
  for (int i = 0; i < 200 && !st.value("running", false); ++i) {
    st = status_of(self, s);
  }
  REQUIRE(st["running"] == true);
  auto t0 = std::chrono::steady_clock::now();
  auto report = nlohmann::json::parse(drain(self, caf::actor_cast<caf::actor>(s)));
  // Far below the client's 60 s request timeout: the read was cancelled, not waited out.
  CHECK(std::chrono::steady_clock::now() - t0 < 30s);
  CHECK(report["abandoned"] == 1);
  CHECK(report["runs"] == 0);
  auto sql = storage::open_session(url);
  CHECK_FALSE(storage::read_last_run(*sql, "pools").has_value());
  int pools = -1;
  *sql << "SELECT COUNT(*) FROM liquidity_pools", soci::into(pools);
  CHECK(pools == 0);
  drain(self, caf::actor_cast<caf::actor>(db));
}
