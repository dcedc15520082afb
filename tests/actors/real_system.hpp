#pragma once
/// Shared by the actor tests that need real threads (detached db workers, blocking Horizon
/// reads): an actor system on CAF's real scheduler, and a migrated SQLite file per test.

#include "storage/database.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>
#include <utility>
#include <variant>

namespace si::test {

/// An actor system on the real scheduler (2 threads), CAF's own logging off.
struct real_system {
  caf::actor_system_config cfg;
  caf::actor_system sys;
  real_system() : sys(init(cfg)) {}
  static caf::actor_system_config& init(caf::actor_system_config& cfg) {
    cfg.set("scheduler.max-threads", size_t{2});
    cfg.set("logger.file-verbosity", caf::atom("quiet"));
    cfg.set("logger.console-verbosity", caf::atom("quiet"));
    return cfg;
  }
};

/// A fresh, migrated SQLite database under the temp directory, named after the test; its
/// directory is removed with it (an open file is only unlinked, so actors may outlive it).
struct temp_sqlite_db {
  std::filesystem::path dir;
  storage::database_url url;
  temp_sqlite_db(std::filesystem::path d, storage::database_url u)
      : dir(std::move(d)), url(std::move(u)) {}
  temp_sqlite_db(const temp_sqlite_db&) = delete;
  temp_sqlite_db& operator=(const temp_sqlite_db&) = delete;
  ~temp_sqlite_db() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

inline temp_sqlite_db temp_sqlite(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path()
             / ("si-actors-" + std::to_string(::getpid()) + "-" + name);
  std::filesystem::remove_all(dir);
  auto url = std::get<storage::database_url>(
      storage::parse_database_url("sqlite://" + (dir / "t.db").string()));
  auto sql = storage::open_session(url);
  storage::migrate(*sql, url.kind);
  return temp_sqlite_db{dir, url};
}

}  // namespace si::test
