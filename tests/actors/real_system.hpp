#pragma once
/// Shared by the actor tests that need real threads (detached db workers, blocking Horizon
/// reads): an actor system on CAF's real scheduler, and a migrated SQLite file per test.

#include "storage/database.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <unistd.h>

#include <filesystem>
#include <string>
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

/// A fresh, migrated SQLite database under the temp directory, named after the test.
inline storage::database_url temp_sqlite(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path()
             / ("si-actors-" + std::to_string(::getpid()) + "-" + name);
  std::filesystem::remove_all(dir);
  auto url = std::get<storage::database_url>(
      storage::parse_database_url("sqlite://" + (dir / "t.db").string()));
  auto sql = storage::open_session(url);
  storage::migrate(*sql, url.kind);
  return url;
}

}  // namespace si::test
