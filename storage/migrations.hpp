#pragma once
/// The versioned schema migrations (the list itself lives in migrations.cpp).

#include <string>
#include <vector>

#include "storage/database.hpp"

namespace si::storage {

/// One schema step: applied once, in its own transaction, recorded in `schema_migrations`.
struct migration {
  int version;                          ///< 1, 2, 3 ... without gaps
  std::string name;                     ///< short snake_case description
  std::vector<std::string> statements;  ///< portable SQL; `{{AUTO_ID}}` = auto primary key
};

/// Every migration this build knows, oldest first.
const std::vector<migration>& migrations();

/// `statement` with the per-backend fragments substituted (`{{AUTO_ID}}` becomes
/// `INTEGER PRIMARY KEY AUTOINCREMENT` on SQLite, `BIGSERIAL PRIMARY KEY` on PostgreSQL).
std::string render_statement(const std::string& statement, backend kind);

}  // namespace si::storage
