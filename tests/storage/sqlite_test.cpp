#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <filesystem>
#include <thread>

#include "storage/database.hpp"
#include "storage/migrations.hpp"
#include "storage/shutdown_reports.hpp"
#include "support.hpp"

using namespace si::storage;
using si::test::temp_dir;

namespace {

database_url sqlite_url(const std::string& path) {
  auto parsed = parse_database_url("sqlite://" + path);
  REQUIRE(std::holds_alternative<database_url>(parsed));
  return std::get<database_url>(parsed);
}

}  // namespace

TEST_CASE("open_session creates the directory and sets the pragmas", "[sqlite]") {
  temp_dir dir;
  const std::string path = dir.path() + "/nested dir/deeper/si.db";  // spaces are fine
  auto sql = open_session(sqlite_url(path));
  CHECK(std::filesystem::exists(dir.path() + "/nested dir/deeper"));
  CHECK(ping(*sql));

  std::string journal;
  int busy = 0;
  int foreign_keys = 0;
  int synchronous = -1;
  *sql << "PRAGMA journal_mode", soci::into(journal);
  *sql << "PRAGMA busy_timeout", soci::into(busy);
  *sql << "PRAGMA foreign_keys", soci::into(foreign_keys);
  *sql << "PRAGMA synchronous", soci::into(synchronous);
  CHECK(journal == "wal");
  CHECK(busy == 5000);
  CHECK(foreign_keys == 1);
  CHECK(synchronous == 1);  // NORMAL

  // WAL really on: a write leaves a -wal file beside the database.
  *sql << "CREATE TABLE t (x INTEGER)";
  *sql << "INSERT INTO t VALUES (1)";
  CHECK(std::filesystem::exists(path + "-wal"));
  // And it persists in the file header: a second connection sees WAL too.
  auto other = open_session(sqlite_url(path));
  std::string again;
  *other << "PRAGMA journal_mode", soci::into(again);
  CHECK(again == "wal");
}

TEST_CASE("migrations on a fresh sqlite file are complete and idempotent", "[sqlite]") {
  temp_dir dir;
  const auto url = sqlite_url(dir.path() + "/si.db");
  {
    auto sql = open_session(url);
    CHECK(schema_version(*sql) == 0);
    CHECK(latest_schema_version() >= 1);
    CHECK(migrate(*sql, backend::sqlite) == latest_schema_version());
    CHECK(schema_version(*sql) == latest_schema_version());
  }
  auto sql = open_session(url);
  CHECK(schema_version(*sql) == latest_schema_version());
  CHECK(migrate(*sql, backend::sqlite) == latest_schema_version());
  CHECK(migrate(*sql, backend::sqlite) == latest_schema_version());
  int rows = 0;
  long long applied_at = 0;
  std::string name;
  *sql << "SELECT COUNT(*) FROM schema_migrations", soci::into(rows);
  *sql << "SELECT name, applied_at FROM schema_migrations WHERE version = 1", soci::into(name),
      soci::into(applied_at);
  CHECK(rows == latest_schema_version());
  CHECK(name == "initial_schema");
  CHECK(applied_at > 1'600'000'000'000LL);

  const auto tables = si::test::describe_tables(*sql);
  for (const char* table : {"schema_migrations",
                            "ledgers",
                            "transactions",
                            "operations",
                            "corridors",
                            "corridor_buckets",
                            "anchors",
                            "anchor_assets",
                            "anchor_metrics_history",
                            "assets",
                            "liquidity_pools",
                            "liquidity_pool_snapshots",
                            "trustline_stats",
                            "trustline_snapshots",
                            "ingestion_cursor",
                            "sync_runs",
                            "webhooks",
                            "webhook_outbox",
                            "webhook_deliveries",
                            "webhook_attempts",
                            "shutdown_reports"}) {
    INFO(table);
    CHECK(tables.count(table) == 1);
  }
  CHECK(si::test::named_indexes(*sql).count("webhook_deliveries_due_idx") == 1);
}

TEST_CASE("the sqlite schema enforces keys, constraints and cascades", "[sqlite]") {
  auto sql = open_session(sqlite_url(":memory:"));
  REQUIRE(migrate(*sql, backend::sqlite) == latest_schema_version());
  si::test::exercise_schema(*sql);
}

TEST_CASE("the auto id fragment is substituted per backend", "[sqlite]") {
  const std::string stmt = "CREATE TABLE x (id {{AUTO_ID}}, y {{AUTO_ID}})";
  CHECK(render_statement(stmt, backend::sqlite) ==
        "CREATE TABLE x (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "y INTEGER PRIMARY KEY AUTOINCREMENT)");
  CHECK(render_statement(stmt, backend::postgresql)
        == "CREATE TABLE x (id BIGSERIAL PRIMARY KEY, y BIGSERIAL PRIMARY KEY)");
  int previous = 0;
  for (const auto& m : migrations()) {
    CHECK(m.version == previous + 1);
    previous = m.version;
  }
  CHECK(previous == latest_schema_version());
}

TEST_CASE("two processes migrating one sqlite file at once both succeed", "[sqlite]") {
  temp_dir dir;
  const auto url = sqlite_url(dir.path() + "/race.db");
  auto a = open_session(url);
  auto b = open_session(url);
  int result_a = -1;
  int result_b = -1;
  std::thread other([&] { result_b = migrate(*b, backend::sqlite); });
  result_a = migrate(*a, backend::sqlite);
  other.join();
  CHECK(result_a == latest_schema_version());
  CHECK(result_b == latest_schema_version());
  int rows = 0;
  *a << "SELECT COUNT(*) FROM schema_migrations", soci::into(rows);
  CHECK(rows == latest_schema_version());
}

TEST_CASE("a failing migration statement names the migration", "[sqlite]") {
  auto sql = open_session(sqlite_url(":memory:"));
  // A table in the way of migration 1's last table makes it fail after creating many
  // others; none of them may stay behind.
  *sql << "CREATE TABLE shutdown_reports (x INTEGER)";
  CHECK_THROWS_WITH(migrate(*sql, backend::sqlite),
                    Catch::StartsWith("migration 1 (initial_schema) failed: "));
  CHECK(schema_version(*sql) == 0);
  int leftovers = 1;
  *sql << "SELECT COUNT(*) FROM sqlite_master WHERE name = 'transactions'", soci::into(leftovers);
  CHECK(leftovers == 0);
}

TEST_CASE("shutdown reports round-trip through sqlite", "[sqlite]") {
  auto sql = open_session(sqlite_url(":memory:"));
  REQUIRE(migrate(*sql, backend::sqlite) == latest_schema_version());
  CHECK(list_shutdown_reports(*sql, 50).empty());

  std::vector<long long> ids;
  for (int i = 0; i < 3; ++i) {
    nlohmann::json report{
        {"reason", "signal " + std::to_string(i)},
        {"exit_code", i},
        {"all_ok", i == 0},
        {"actors", nlohmann::json::array({{{"actor", "db"}, {"outcome", "ok"}}})}};
    ids.push_back(insert_shutdown_report(*sql, report));
  }
  CHECK(ids[0] < ids[1]);
  CHECK(ids[1] < ids[2]);

  auto two = list_shutdown_reports(*sql, 2);
  REQUIRE(two.size() == 2);
  CHECK(two[0]["id"] == ids[2]);
  CHECK(two[0]["reason"] == "signal 2");
  CHECK(two[0]["actors"][0]["actor"] == "db");
  CHECK(two[1]["id"] == ids[1]);
  CHECK(list_shutdown_reports(*sql, 0).size() == 1);  // clamped up to 1
  CHECK(list_shutdown_reports(*sql, -5).size() == 1);
  CHECK(list_shutdown_reports(*sql, 100000).size() == 3);  // clamped down to 200

  int exit_code = -1;
  std::string outcome;
  *sql << "SELECT exit_code, outcome FROM shutdown_reports WHERE id = :id", soci::use(ids[0]),
      soci::into(exit_code), soci::into(outcome);
  CHECK(exit_code == 0);
  CHECK(outcome == "ok");
  *sql << "SELECT outcome FROM shutdown_reports WHERE id = :id", soci::use(ids[1]),
      soci::into(outcome);
  CHECK(outcome == "unclean");

  CHECK_THROWS_AS(insert_shutdown_report(*sql, nlohmann::json::array()), std::invalid_argument);

  // A row that is not a JSON object is shown, not dropped.
  *sql << "INSERT INTO shutdown_reports (created_at, report) VALUES (1, 'not json')";
  auto newest = list_shutdown_reports(*sql, 1);
  REQUIRE(newest.size() == 1);
  CHECK(newest[0]["invalid_report"] == "not json");
}

TEST_CASE("ping reports a closed session as dead", "[sqlite]") {
  auto sql = open_session(sqlite_url(":memory:"));
  CHECK(ping(*sql));
  sql->close();
  CHECK_FALSE(ping(*sql));
}
