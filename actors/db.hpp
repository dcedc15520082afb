#pragma once
/// `db`: the database actor. Owns a small pool of detached workers, each with its own SOCI
/// session, so no query ever blocks CAF's scheduler threads.

#include "actors/atoms.hpp"
#include "storage/database.hpp"

#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <string>

namespace si::actors {

/// A unit of database work, run on one pool worker with that worker's session.
/// Throwing from `fn` answers the caller with `errc::query_failed` and the message.
struct db_task {
  std::string label;  ///< what it is, for logs and counters ("shutdown_reports.list")
  std::function<nlohmann::json(soci::session&)> fn;
};

}  // namespace si::actors

namespace si::actors {

/// The JSON a db_task returned. Wrapped in a struct because nlohmann::json's
/// initializer-list constructor turns CAF's brace-initialisation into a one-element array.
struct db_result {
  nlohmann::json value;
};

}  // namespace si::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(si::actors::db_task)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(si::actors::db_result)

namespace si::actors {

/// Messages: `query_atom, task` → the task's JSON result (`db_result`) (or an error: `closing`
/// while draining, `overloaded` past the queue limit, `query_failed`); `health_atom` → whether a
/// worker's session answers; `stats_atom` → JSON counters; `drain_atom` → stop taking
/// queries, finish the accepted ones, close the sessions, reply the counts and quit.
using db_actor = caf::typed_actor<
    caf::replies_to<query_atom, db_task>::with<db_result>, caf::replies_to<health_atom>::with<bool>,
    caf::replies_to<stats_atom>::with<std::string>, caf::replies_to<drain_atom>::with<std::string>>;

/// Database actor settings (from config: DATABASE_URL, DB_POOL_SIZE, DB_QUERY_TIMEOUT,
/// DB_QUEUE_LIMIT).
struct db_options {
  storage::database_url url;
  unsigned pool_size = 4;
  std::chrono::milliseconds query_timeout{10'000};  ///< a worker stuck longer is replaced
  std::size_t queue_limit = 10'000;                 ///< queued queries beyond → overloaded
  /// TEST_HANG_ON_DRAIN: ignore the drain request (tests of timed_out and hard deadline).
  bool test_hang_on_drain = false;
};

/// Spawns the db actor and its `pool_size` detached workers (sessions open lazily).
db_actor spawn_db(caf::actor_system& sys, db_options opts);

}  // namespace si::actors
