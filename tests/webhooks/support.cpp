#include "support.hpp"

#include <catch2/catch.hpp>
#include <soci/soci.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <unistd.h>

namespace si::webhook_test {

std::unique_ptr<test_database> test_database::sqlite() {
  std::unique_ptr<test_database> db(new test_database());
  std::string tmpl = "/tmp/si-webhooks-test.XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    FAIL("mkdtemp failed: " << std::strerror(errno));
  }
  db->dir_ = tmpl;
  auto parsed = storage::parse_database_url("sqlite://" + tmpl + "/webhooks.db");
  REQUIRE(std::holds_alternative<storage::database_url>(parsed));
  db->url_ = std::get<storage::database_url>(parsed);
  auto sql = db->open();
  REQUIRE(storage::migrate(*sql, storage::backend::sqlite) == storage::latest_schema_version());
  return db;
}

std::unique_ptr<test_database> test_database::postgres() {
  const char* raw = std::getenv("SI_TEST_POSTGRES_URL");
  if (raw == nullptr || *raw == '\0') {
    FAIL(
        "SI_TEST_POSTGRES_URL is not set: the [postgres] webhook tests need a postgresql:// "
        "URL to a database they may create schemas in");
  }
  auto parsed = storage::parse_database_url(raw);
  if (auto* error = std::get_if<std::string>(&parsed)) {
    FAIL("SI_TEST_POSTGRES_URL is invalid: " << *error);
  }
  std::unique_ptr<test_database> db(new test_database());
  db->url_ = std::get<storage::database_url>(parsed);
  if (db->url_.kind != storage::backend::postgresql) {
    FAIL("SI_TEST_POSTGRES_URL must be a postgresql:// URL, got " << db->url_.redacted);
  }
  static int counter = 0;
  const auto stamp = std::chrono::system_clock::now().time_since_epoch().count();
  db->schema_ = "si_wh_test_" + std::to_string(getpid()) + "_" + std::to_string(++counter) + "_"
                + std::to_string(stamp % 1'000'000'000);
  {
    auto admin = storage::open_session(db->url_);
    *admin << "CREATE SCHEMA " + db->schema_;
  }
  auto sql = db->open();
  REQUIRE(storage::migrate(*sql, storage::backend::postgresql) == storage::latest_schema_version());
  return db;
}

test_database::~test_database() {
  try {
    if (!schema_.empty()) {
      auto admin = storage::open_session(url_);
      *admin << "SET client_min_messages TO warning";
      *admin << "DROP SCHEMA IF EXISTS " + schema_ + " CASCADE";
    }
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  } catch (...) {
    // Best effort: leftovers have unique names and harm no later run.
  }
}

std::unique_ptr<soci::session> test_database::open() const {
  auto sql = storage::open_session(url_);
  if (!schema_.empty()) {
    *sql << "SET search_path TO " + schema_;
  }
  return sql;
}

}  // namespace si::webhook_test
