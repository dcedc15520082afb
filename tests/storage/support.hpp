#pragma once
/// Helpers shared by the storage tests: temp dirs, a fake clock, PostgreSQL schemas and
/// redis-server child processes.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <sys/types.h>

#include "storage/cache_backend.hpp"
#include "storage/database.hpp"

namespace si::test {

/// The value of an environment variable; FAILs the test with `purpose` when it is unset.
std::string require_env(const char* name, const char* purpose);

/// A fresh directory under /tmp, removed with everything in it on destruction.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::string& path() const {
    return path_;
  }

 private:
  std::string path_;
};

/// A manual clock for cache TTLs and Redis backoff.
class fake_clock {
 public:
  fake_clock();
  /// The function the backends take.
  storage::cache_clock fn() const;
  void advance(std::chrono::milliseconds d);

 private:
  std::shared_ptr<std::chrono::steady_clock::time_point> now_;
};

/// A private schema in the database SI_TEST_POSTGRES_URL names, dropped on destruction,
/// so runs never see each other's tables.
class pg_schema {
 public:
  pg_schema();
  ~pg_schema();
  pg_schema(const pg_schema&) = delete;
  pg_schema& operator=(const pg_schema&) = delete;
  /// A new session whose search_path is this schema.
  std::unique_ptr<soci::session> open() const;
  const std::string& name() const {
    return name_;
  }

 private:
  storage::database_url url_;
  std::string name_;
};

/// Table name -> column names in declaration order, for the current schema.
std::map<std::string, std::vector<std::string>> describe_tables(soci::session& sql);

/// Names of the explicitly created indexes (those ending in "_idx").
std::set<std::string> named_indexes(soci::session& sql);

/// Writes through the schema's natural keys, constraints and cascades; REQUIREs each result.
void exercise_schema(soci::session& sql);

/// A free TCP port on 127.0.0.1 (bound to port 0, then released).
uint16_t free_loopback_port();

/// True when something on 127.0.0.1:port answers PING with PONG within `timeout`
/// (`password` is sent with AUTH first when not empty).
bool redis_answers(uint16_t port, std::chrono::milliseconds timeout,
                   const std::string& password = {});

/// A redis-server child process on a given port, killed with SIGKILL on destruction.
class redis_process {
 public:
  redis_process(uint16_t port, std::vector<std::string> extra_args = {});
  ~redis_process();
  redis_process(const redis_process&) = delete;
  redis_process& operator=(const redis_process&) = delete;
  /// Spawns the server and polls PING (bounded) until it answers; FAILs otherwise.
  void start();
  /// SIGKILL and reap: when this returns the port is closed.
  void kill_hard();
  /// SIGSTOP / SIGCONT: the server keeps its sockets but answers nothing.
  void pause();
  void resume();
  uint16_t port() const {
    return port_;
  }
  std::string url() const;

 private:
  uint16_t port_;
  std::vector<std::string> extra_args_;
  temp_dir dir_;
  pid_t pid_ = -1;
  std::string password_;
};

}  // namespace si::test
