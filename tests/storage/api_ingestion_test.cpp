#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <stdexcept>
#include <string>

#include "storage/database.hpp"
#include "storage/ingestion_repo.hpp"
#include "support.hpp"

using namespace si::storage;
using nlohmann::json;

namespace {

std::unique_ptr<soci::session> fresh_sqlite() {
  auto sql = open_session(std::get<database_url>(parse_database_url("sqlite::memory:")));
  REQUIRE(migrate(*sql, backend::sqlite) == latest_schema_version());
  return sql;
}

void check_status(soci::session& sql) {
  auto nothing = ingestion_status(sql, "ledgers", 5000);
  CHECK(nothing.at("name") == "ledgers");
  CHECK(nothing.at("state") == "not_started");
  CHECK(nothing.at("last_ledger").is_null());
  CHECK(nothing.at("cursor").is_null());
  CHECK(nothing.at("ledgers_behind").is_null());  // unknown start: not "5000 behind"
  CHECK(nothing.at("last_error").is_null());
  CHECK(nothing.at("last_error_at").is_null());

  sql << "INSERT INTO ingestion_cursor (name, cursor, last_ledger, last_error, updated_at) "
         "VALUES ('ledgers', '4294967296-1', 1000, 'horizon 503', 77)";
  auto cursor_only = ingestion_status(sql, "ledgers", 1010);
  CHECK(cursor_only.at("last_ledger") == 1000);
  CHECK(cursor_only.at("cursor") == "4294967296-1");
  CHECK(cursor_only.at("ledgers_behind") == 10);
  CHECK(cursor_only.at("last_error") == "horizon 503");
  CHECK(cursor_only.at("last_error_at").is_null());
  CHECK(cursor_only.at("state").is_null());  // nobody reported one: not invented
  CHECK(cursor_only.at("cursor_updated_at") == 77);
  CHECK(ingestion_status(sql, "ledgers", std::nullopt).at("ledgers_behind").is_null());
  CHECK(ingestion_status(sql, "ledgers", 990).at("ledgers_behind") == 0);
  CHECK(ingestion_status(sql, "payments", 1010).at("state") == "not_started");

  record_ingestion_state(sql, "ledgers", "streaming", std::nullopt, 100);
  auto streaming = ingestion_status(sql, "ledgers", 1000);
  CHECK(streaming.at("state") == "streaming");
  CHECK(streaming.at("state_updated_at") == 100);
  CHECK(streaming.at("ledgers_behind") == 0);
  CHECK(streaming.at("last_error") == "horizon 503");  // the cursor's, none recorded here

  record_ingestion_state(sql, "ledgers", "backoff", std::string_view("timeout after 10s"), 200);
  auto backoff = ingestion_status(sql, "ledgers", 1000);
  CHECK(backoff.at("state") == "backoff");
  CHECK(backoff.at("last_error") == "timeout after 10s");
  CHECK(backoff.at("last_error_at") == 200);

  // Recovering keeps the last error (with its time) for operators to see.
  record_ingestion_state(sql, "ledgers", "streaming", std::nullopt, 300);
  auto recovered = ingestion_status(sql, "ledgers", 1000);
  CHECK(recovered.at("state") == "streaming");
  CHECK(recovered.at("state_updated_at") == 300);
  CHECK(recovered.at("last_error") == "timeout after 10s");
  CHECK(recovered.at("last_error_at") == 200);

  // A state before the first commit: no cursor, no ledger, still a state and an error.
  record_ingestion_state(sql, "payments", "starting", std::string_view("dns failure"), 400);
  auto starting = ingestion_status(sql, "payments", 1000);
  CHECK(starting.at("state") == "starting");
  CHECK(starting.at("last_ledger").is_null());
  CHECK(starting.at("ledgers_behind").is_null());
  CHECK(starting.at("last_error") == "dns failure");

  CHECK_THROWS_AS(record_ingestion_state(sql, "", "x", std::nullopt, 1), std::invalid_argument);
  CHECK_THROWS_AS(record_ingestion_state(sql, "ledgers", "", std::nullopt, 1),
                  std::invalid_argument);
  int rows = 0;
  sql << "SELECT COUNT(*) FROM ingestion_state", soci::into(rows);
  CHECK(rows == 2);
}

}  // namespace

TEST_CASE("ingestion status from cursor and reported state (sqlite)", "[sqlite][api]") {
  auto sql = fresh_sqlite();
  check_status(*sql);
}

TEST_CASE("ingestion status from cursor and reported state (postgres)", "[postgres][api]") {
  si::test::pg_schema schema;
  auto sql = schema.open();
  REQUIRE(migrate(*sql, backend::postgresql) == latest_schema_version());
  check_status(*sql);
}

TEST_CASE("migration 2 adds ingestion_state on both backends' schema", "[sqlite][api]") {
  auto sql = fresh_sqlite();
  CHECK(latest_schema_version() >= 2);
  const auto tables = si::test::describe_tables(*sql);
  REQUIRE(tables.count("ingestion_state") == 1);
  CHECK(tables.at("ingestion_state")
        == std::vector<std::string>{"name", "state", "last_error", "last_error_at", "updated_at"});
}
