// Actor-level tests of the db and cache actors on the real scheduler (their workers are
// detached threads). Synchronisation is by replies and promises, never sleeps.

#include "actors/cache.hpp"
#include "actors/db.hpp"
#include "storage/database.hpp"
#include "storage/shutdown_reports.hpp"

#include "real_system.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include <catch2/catch.hpp>

#include <soci/soci.h>

#include <cstdlib>
#include <filesystem>
#include <future>

using namespace si;
using namespace si::actors;
using namespace std::chrono_literals;

namespace {

using test::real_system;
using test::temp_sqlite;

db_task list_reports() {
  return {"shutdown_reports.list", [](soci::session& sql) {
            return nlohmann::json(storage::list_shutdown_reports(sql, 10));
          }};
}

db_task insert_report(int n) {
  return {"shutdown_reports.insert", [n](soci::session& sql) {
            nlohmann::json report{{"reason", "test"},
                                  {"exit_code", 0},
                                  {"n", n},
                                  {"all_ok", true},
                                  {"actors", nlohmann::json::array()}};
            return nlohmann::json(storage::insert_shutdown_report(sql, report));
          }};
}

/// Drains the db actor and checks its report counted `queries` successful queries.
void drain_and_check(caf::scoped_actor& self, const db_actor& db, int queries) {
  self->request(db, 10s, drain_atom_v)
      .receive(
          [&](std::string& counts) {
            auto j = nlohmann::json::parse(counts);
            CHECK(j["queries"].get<int>() >= queries);
            CHECK(j["in_flight"] == 0);
          },
          [](caf::error& err) { FAIL(to_string(err)); });
}

void run_db_suite(const storage::database_url& url) {
  real_system rs;
  caf::scoped_actor self{rs.sys};
  db_options opts;
  opts.url = url;
  opts.pool_size = 2;
  opts.query_timeout = 2s;
  auto db = spawn_db(rs.sys, opts);

  SECTION("queries run on the pool and return their results") {
    for (int i = 0; i < 5; ++i) {
      self->request(db, 5s, query_atom_v, insert_report(i))
          .receive([](db_result& id) { CHECK(id.value.get<long long>() > 0); },
                   [](caf::error& err) { FAIL(to_string(err)); });
    }
    self->request(db, 5s, query_atom_v, list_reports())
        .receive([](db_result& rows) { CHECK(rows.value.size() >= 5); },
                 [](caf::error& err) { FAIL(to_string(err)); });
    self->request(db, 5s, health_atom_v)
        .receive([](bool ok) { CHECK(ok); }, [](caf::error& err) { FAIL(to_string(err)); });
    drain_and_check(self, db, 7);
  }

  SECTION("a throwing query answers query_failed and the pool keeps working") {
    db_task bad{"bad", [](soci::session& sql) -> nlohmann::json {
                  sql << "SELECT * FROM no_such_table";
                  return nullptr;
                }};
    self->request(db, 5s, query_atom_v, bad)
        .receive([](db_result&) { FAIL("expected an error"); },
                 [](caf::error& err) {
                   CHECK(is_error(err, errc::query_failed));
                   CHECK(to_string(err).find("bad") != std::string::npos);
                 });
    self->request(db, 5s, query_atom_v, list_reports())
        .receive([](db_result&) { SUCCEED(); }, [](caf::error& err) { FAIL(to_string(err)); });
    drain_and_check(self, db, 1);
  }

  SECTION("drain waits for the running query, refuses new ones, then reports") {
    auto started = std::make_shared<std::promise<void>>();
    auto release = std::make_shared<std::promise<void>>();
    auto release_f = release->get_future().share();
    db_task slow{"slow", [started, release_f](soci::session& sql) {
                   started->set_value();
                   release_f.wait();  // held by the test, released below
                   int one = 0;
                   sql << "SELECT 1", soci::into(one);
                   return nlohmann::json(one);
                 }};
    auto slow_reply = self->request(db, 10s, query_atom_v, slow);
    started->get_future().wait();  // the query is running on a worker
    auto drain_reply = self->request(db, 10s, drain_atom_v);
    self->request(db, 5s, query_atom_v, list_reports())
        .receive([](db_result&) { FAIL("a query during drain must be refused"); },
                 [](caf::error& err) { CHECK(is_error(err, errc::closing)); });
    release->set_value();
    std::move(slow_reply)
        .receive([](db_result& v) { CHECK(v.value.get<int>() == 1); },
                 [](caf::error& err) { FAIL(to_string(err)); });
    std::move(drain_reply)
        .receive(
            [](std::string& counts) {
              auto j = nlohmann::json::parse(counts);
              CHECK(j["queries"] == 1);
              CHECK(j["refused"] == 1);
              CHECK(j["in_flight"] == 0);
            },
            [](caf::error& err) { FAIL(to_string(err)); });
  }
}

}  // namespace

TEST_CASE("db actor on SQLite", "[db][sqlite]") {
  run_db_suite(temp_sqlite("db").url);
}

TEST_CASE("db actor on PostgreSQL", "[db][postgres]") {
  const char* env = std::getenv("SI_TEST_POSTGRES_URL");
  if (env == nullptr) {
    FAIL("SI_TEST_POSTGRES_URL is not set: run the suite through scripts/test");
  }
  auto url = std::get<storage::database_url>(storage::parse_database_url(env));
  auto sql = storage::open_session(url);
  storage::migrate(*sql, url.kind);
  run_db_suite(url);
}

TEST_CASE("db actor reopens a PostgreSQL session the server closed while it was idle",
          "[db][postgres]") {
  // Found by scripts/chaos/dependency-faults.sh: after a PostgreSQL restart, each pool
  // worker's first query failed on its dead session (a 503 to an API client long after the
  // database was back) and a health ping on it answered false until some other query failed
  // there. pg_terminate_backend closes a session the way a restart does (FATAL, then close).
  const char* env = std::getenv("SI_TEST_POSTGRES_URL");
  if (env == nullptr) {
    FAIL("SI_TEST_POSTGRES_URL is not set: run the suite through scripts/test");
  }
  real_system rs;
  caf::scoped_actor self{rs.sys};
  db_options opts;
  opts.url = std::get<storage::database_url>(storage::parse_database_url(env));
  opts.pool_size = 1;
  auto db = spawn_db(rs.sys, opts);
  db_task backend_pid{"backend_pid", [](soci::session& sql) {
                        int pid = 0;
                        sql << "SELECT pg_backend_pid()", soci::into(pid);
                        return nlohmann::json(pid);
                      }};
  auto pid_of_worker = [&] {
    int pid = 0;
    self->request(db, 10s, query_atom_v, backend_pid)
        .receive([&](db_result& r) { pid = r.value.get<int>(); },
                 [](caf::error& err) { FAIL(to_string(err)); });
    return pid;
  };
  auto terminate = [&](int pid) {
    auto admin = storage::open_session(opts.url);
    int done = 0;
    // Waits (up to 5 s) until the backend process has exited, its socket closed.
    *admin << "SELECT CASE WHEN pg_terminate_backend(:pid, 5000) THEN 1 ELSE 0 END", soci::use(pid),
        soci::into(done);
    REQUIRE(done == 1);
  };
  int first = pid_of_worker();
  REQUIRE(first > 0);
  terminate(first);
  self->request(db, 10s, health_atom_v)
      .receive([](bool ok) { CHECK(ok); }, [](caf::error& err) { FAIL(to_string(err)); });
  terminate(pid_of_worker());
  int third = pid_of_worker();  // the query itself must not fail on the dead session
  CHECK(third > 0);
  CHECK(third != first);
  self->request(db, 5s, stats_atom_v)
      .receive([](std::string& s) { CHECK(nlohmann::json::parse(s)["failed"] == 0); },
               [](caf::error& err) { FAIL(to_string(err)); });
  drain_and_check(self, db, 4);
}

TEST_CASE("db actor replaces a worker stuck past the query timeout", "[db][sqlite]") {
  real_system rs;
  caf::scoped_actor self{rs.sys};
  db_options opts;
  const auto db_file = temp_sqlite("stuck");
  opts.url = db_file.url;
  opts.pool_size = 1;
  opts.query_timeout = 100ms;
  auto db = spawn_db(rs.sys, opts);
  auto release = std::make_shared<std::promise<void>>();
  auto release_f = release->get_future().share();
  db_task stuck{"stuck", [release_f](soci::session&) {
                  release_f.wait();
                  return nlohmann::json(true);
                }};
  self->request(db, 5s, query_atom_v, stuck)
      .receive([](db_result&) { FAIL("expected a timeout"); },
               [](caf::error& err) { CHECK(err == caf::sec::request_timeout); });
  // The pool has one fresh worker: the next query runs although the old one is stuck.
  self->request(db, 5s, query_atom_v, list_reports())
      .receive([](db_result&) { SUCCEED(); }, [](caf::error& err) { FAIL(to_string(err)); });
  release->set_value();
  self->request(db, 5s, stats_atom_v)
      .receive(
          [](std::string& s) {
            auto j = nlohmann::json::parse(s);
            CHECK(j["replaced_workers"] == 1);
            CHECK(j["failed"] == 1);
          },
          [](caf::error& err) { FAIL(to_string(err)); });
}

namespace {

void run_cache_suite(cache_actor cache, caf::scoped_actor& self, const char* backend) {
  auto get = [&](const std::string& key) {
    std::pair<bool, std::string> out;
    self->request(cache, 5s, get_atom_v, key)
        .receive(
            [&](bool found, std::string& v) {
              out = {found, v};
            },
            [](caf::error& err) { FAIL(to_string(err)); });
    return out;
  };
  auto put = [&](const std::string& key, const std::string& value) {
    self->request(cache, 5s, put_atom_v, key, value, int64_t{60'000})
        .receive([](bool) {}, [](caf::error& err) { FAIL(to_string(err)); });
  };
  CHECK_FALSE(get("corridors:list").first);
  put("corridors:list", "[1,2]");
  put("corridors:one", "{}");
  put("anchors:list", "[]");
  CHECK(get("corridors:list") == std::make_pair(true, std::string{"[1,2]"}));
  self->request(cache, 5s, invalidate_atom_v, std::string{"corridors:*"})
      .receive([](uint64_t n) { CHECK(n == 2); }, [](caf::error& err) { FAIL(to_string(err)); });
  CHECK_FALSE(get("corridors:list").first);
  CHECK(get("anchors:list").first);
  self->request(cache, 5s, health_atom_v)
      .receive([](std::string& h) { CHECK(h == "ok"); },
               [](caf::error& err) { FAIL(to_string(err)); });
  self->request(cache, 5s, drain_atom_v)
      .receive(
          [&](std::string& counts) {
            auto j = nlohmann::json::parse(counts);
            CHECK(j["backend"] == backend);
            CHECK(j["hits"] == 2);
            CHECK(j["misses"] == 2);
            CHECK(j["invalidations"] == 2);
            CHECK(j["hit_rate_percent"] == Approx(50.0));
          },
          [](caf::error& err) { FAIL(to_string(err)); });
}

}  // namespace

TEST_CASE("cache actor on the in-process backend", "[cache][memory]") {
  real_system rs;
  caf::scoped_actor self{rs.sys};
  auto cache = spawn_cache(rs.sys, [] { return storage::make_memory_cache(100); });
  run_cache_suite(cache, self, "memory");
}

TEST_CASE("cache actor on Redis", "[cache][redis]") {
  const char* env = std::getenv("SI_TEST_REDIS_URL");
  if (env == nullptr) {
    FAIL("SI_TEST_REDIS_URL is not set: run the suite through scripts/test");
  }
  real_system rs;
  caf::scoped_actor self{rs.sys};
  std::string url = env;
  auto cache = spawn_cache(rs.sys, [url] {
    storage::redis_options o;
    o.url = url;
    o.key_prefix = "si-actor-test:" + std::to_string(::getpid()) + ":";
    return storage::make_redis_cache(o);
  });
  run_cache_suite(cache, self, "redis");
}

TEST_CASE("cache actor with Redis unreachable answers misses and degraded", "[cache][redis]") {
  real_system rs;
  caf::scoped_actor self{rs.sys};
  auto cache = spawn_cache(rs.sys, [] {
    storage::redis_options o;
    o.url = "redis://127.0.0.1:1";  // nothing listens on port 1
    o.op_timeout = 50ms;
    return storage::make_redis_cache(o);
  });
  self->request(cache, 5s, put_atom_v, std::string{"k"}, std::string{"v"}, int64_t{1000})
      .receive([](bool) {}, [](caf::error& err) { FAIL(to_string(err)); });
  self->request(cache, 5s, get_atom_v, std::string{"k"})
      .receive([](bool found, std::string&) { CHECK_FALSE(found); },
               [](caf::error& err) { FAIL(to_string(err)); });
  self->request(cache, 5s, health_atom_v)
      .receive([](std::string& h) { CHECK(h == "degraded"); },
               [](caf::error& err) { FAIL(to_string(err)); });
}
