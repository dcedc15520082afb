#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <thread>

#include "storage/database.hpp"
#include "storage/shutdown_reports.hpp"
#include "support.hpp"

using namespace si::storage;
using si::test::pg_schema;

TEST_CASE("migrations on a fresh postgres schema are complete and idempotent", "[postgres]") {
  pg_schema schema;
  {
    auto sql = schema.open();
    CHECK(ping(*sql));
    CHECK(schema_version(*sql) == 0);
    CHECK(migrate(*sql, backend::postgresql) == latest_schema_version());
    CHECK(schema_version(*sql) == latest_schema_version());
  }
  auto sql = schema.open();
  CHECK(schema_version(*sql) == latest_schema_version());
  CHECK(migrate(*sql, backend::postgresql) == latest_schema_version());
  int rows = 0;
  *sql << "SELECT COUNT(*) FROM schema_migrations", soci::into(rows);
  CHECK(rows == latest_schema_version());

  // The tables live in the private schema, nowhere else.
  int elsewhere = 0;
  *sql << "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'ledgers' "
          "AND table_schema = :s",
      soci::use(schema.name()), soci::into(elsewhere);
  CHECK(elsewhere == 1);
}

TEST_CASE("postgres and sqlite get the identical schema", "[postgres]") {
  pg_schema schema;
  auto pg = schema.open();
  REQUIRE(migrate(*pg, backend::postgresql) == latest_schema_version());
  auto lite = open_session(std::get<database_url>(parse_database_url("sqlite::memory:")));
  REQUIRE(migrate(*lite, backend::sqlite) == latest_schema_version());

  const auto pg_tables = si::test::describe_tables(*pg);
  const auto lite_tables = si::test::describe_tables(*lite);
  CHECK(pg_tables.size() == lite_tables.size());
  for (const auto& [table, columns] : lite_tables) {
    INFO("table " << table);
    REQUIRE(pg_tables.count(table) == 1);
    CHECK(pg_tables.at(table) == columns);
  }
  CHECK(si::test::named_indexes(*pg) == si::test::named_indexes(*lite));
  CHECK(si::test::named_indexes(*pg).size() > 20);
}

TEST_CASE("the postgres schema enforces keys, constraints and cascades", "[postgres]") {
  pg_schema schema;
  auto sql = schema.open();
  REQUIRE(migrate(*sql, backend::postgresql) == latest_schema_version());
  si::test::exercise_schema(*sql);
}

TEST_CASE("two processes migrating one postgres schema at once both succeed", "[postgres]") {
  pg_schema schema;
  auto a = schema.open();
  auto b = schema.open();
  int result_a = -1;
  int result_b = -1;
  std::string error_b;
  std::thread other([&] {
    try {
      result_b = migrate(*b, backend::postgresql);
    } catch (const std::exception& e) {
      error_b = e.what();
    }
  });
  result_a = migrate(*a, backend::postgresql);
  other.join();
  CHECK(error_b.empty());
  CHECK(result_a == latest_schema_version());
  CHECK(result_b == latest_schema_version());
  int rows = 0;
  *a << "SELECT COUNT(*) FROM schema_migrations", soci::into(rows);
  CHECK(rows == latest_schema_version());
}

TEST_CASE("shutdown reports round-trip through postgres", "[postgres]") {
  pg_schema schema;
  auto sql = schema.open();
  REQUIRE(migrate(*sql, backend::postgresql) == latest_schema_version());
  CHECK(list_shutdown_reports(*sql, 10).empty());

  std::vector<long long> ids;
  for (int i = 0; i < 205; ++i) {
    ids.push_back(insert_shutdown_report(
        *sql, {{"reason", "run " + std::to_string(i)}, {"exit_code", i % 3}, {"all_ok", true}}));
  }
  for (std::size_t i = 1; i < ids.size(); ++i) {
    REQUIRE(ids[i - 1] < ids[i]);
  }
  auto newest = list_shutdown_reports(*sql, 3);
  REQUIRE(newest.size() == 3);
  CHECK(newest[0]["id"] == ids[204]);
  CHECK(newest[0]["reason"] == "run 204");
  CHECK(newest[0]["exit_code"] == 204 % 3);
  CHECK(newest[2]["id"] == ids[202]);
  CHECK(list_shutdown_reports(*sql, 1000).size() == 200);
  CHECK(list_shutdown_reports(*sql, 0).size() == 1);

  int exit_code = -1;
  std::string outcome;
  *sql << "SELECT exit_code, outcome FROM shutdown_reports WHERE id = :id", soci::use(ids[5]),
      soci::into(exit_code), soci::into(outcome);
  CHECK(exit_code == 5 % 3);
  CHECK(outcome == "ok");
}
