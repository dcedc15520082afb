#pragma once
/// Helpers of the webhook tests: a migrated database on either backend (a temp SQLite file
/// or a private PostgreSQL schema), openable as many sessions as a test needs.

#include <memory>
#include <string>

#include "storage/database.hpp"

namespace soci {
class session;
}

namespace si::webhook_test {

/// A migrated, empty database that lives as long as this object: SQLite in a fresh temp
/// directory, or a private schema in the database SI_TEST_POSTGRES_URL names (dropped on
/// destruction). FAILs the test when PostgreSQL is asked for and the variable is unset.
class test_database {
 public:
  /// A SQLite file in a new temp directory (removed on destruction).
  static std::unique_ptr<test_database> sqlite();
  /// A new schema in SI_TEST_POSTGRES_URL's database (dropped on destruction).
  static std::unique_ptr<test_database> postgres();

  ~test_database();
  test_database(const test_database&) = delete;
  test_database& operator=(const test_database&) = delete;

  /// A new session on this database (search_path set to the schema on PostgreSQL).
  std::unique_ptr<soci::session> open() const;

  storage::backend kind() const {
    return url_.kind;
  }

 private:
  test_database() = default;

  storage::database_url url_;
  std::string dir_;     ///< SQLite: the temp directory
  std::string schema_;  ///< PostgreSQL: the private schema
};

}  // namespace si::webhook_test
