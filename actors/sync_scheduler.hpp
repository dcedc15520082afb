#pragma once
/// `sync_scheduler`: runs one periodic analytics job — `metrics` (corridor buckets and anchor
/// aggregates from ingested operations), `pools` (liquidity pools and their trades from
/// Horizon) or `trustlines` (asset statistics from Horizon) — each run in one database
/// transaction, then invalidates the cache keys it affected and hands its changes on.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>
#include <nlohmann/json.hpp>

#include "actors/atoms.hpp"
#include "actors/cache.hpp"
#include "actors/db.hpp"
#include "actors/response_cache.hpp"
#include "actors/horizon_fetcher.hpp"
#include "net/horizon_client.hpp"
#include "storage/sync_repo.hpp"

namespace si::net {
class metrics_registry;
}  // namespace si::net

namespace si::actors {

/// Which job a scheduler runs.
enum class sync_kind { metrics, pools, trustlines };

/// "metrics", "pools" or "trustlines" (also the sync_runs name).
std::string to_string(sync_kind kind);

/// What one run changed, for listeners (the realtime broadcaster, tests).
struct sync_changes {
  sync_kind kind = sync_kind::metrics;
  nlohmann::json summary;  ///< the run's counts and changed ids
  std::vector<storage::sync_event> events;
};

}  // namespace si::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(si::actors::sync_changes)

namespace si::actors {

/// Settings of a scheduler (from config: SYNC_*, HORIZON_*).
struct sync_options {
  sync_kind kind = sync_kind::metrics;
  db_actor db;
  cache_actor cache;  ///< may be invalid: then nothing is invalidated
  /// The gateway's io-thread page cache, invalidated with the cache actor (may be null).
  std::shared_ptr<response_cache> responses;
  std::chrono::milliseconds interval{300'000};
  /// Horizon access for pools and trustlines (unused by metrics).
  net::horizon_client_options client;
  fetch_options fetch;
  unsigned max_items = 200;                       ///< SYNC_POOLS_MAX or SYNC_ASSETS_MAX
  std::chrono::milliseconds retry_delay{60'000};  ///< after a failed run (capped by interval)
  std::chrono::milliseconds db_timeout{11'000};   ///< one run's transaction
  std::chrono::milliseconds fetch_timeout{600'000};
  storage::metrics_sync_params metrics_params;
  storage::pool_sync_params pool_params;
  /// Called inside each run's transaction for every domain event (e.g. the webhook outbox).
  storage::sync_event_fn on_event;
  /// Called on the scheduler's thread after each successful run (may be empty).
  std::function<void(const sync_changes&)> on_changes;
  /// The realtime broadcaster: receives `publish_atom, sync_changes` after each successful
  /// run (may be invalid; replaced by `update_atom, "broadcaster", handle`).
  caf::actor broadcaster;
  std::shared_ptr<net::metrics_registry> metrics;  ///< may be null
  /// Clock of run timestamps (unix ms); empty = the system clock.
  std::function<int64_t()> now_ms;
  /// TEST_HANG_ON_DRAIN: ignore the drain request (tests of timed_out and hard deadline).
  bool test_hang_on_drain = false;
};

/// Messages: `drain_atom` → cancel a Horizon read in flight, let a database run in flight
/// commit (or roll back), reply `{runs, failures, last_run_at, last_status, abandoned}` and
/// quit; `status_atom` → the same counters plus `running` and `next_run_in_ms` (null while
/// running or before the first schedule); `sync_atom` → run now (tests, operators);
/// `update_atom, name, handle` → use a restarted db/cache. `tick_atom, generation` is the
/// scheduler's own timer.
using sync_scheduler_actor =
    caf::typed_actor<caf::replies_to<drain_atom>::with<std::string>,
                     caf::replies_to<status_atom>::with<std::string>, caf::reacts_to<sync_atom>,
                     caf::reacts_to<tick_atom, uint64_t>,
                     caf::reacts_to<caf::update_atom, std::string, caf::actor>>;

/// Spawns a scheduler. At start it reads its `sync_runs` row: a run that is due (never ran,
/// or the interval passed while the server was down) starts at once, else at the due time.
sync_scheduler_actor spawn_sync_scheduler(caf::actor_system& sys, sync_options opts);

/// Describes the sync metric families (call once per registry).
void describe_sync_metrics(net::metrics_registry& m);

}  // namespace si::actors
