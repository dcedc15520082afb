#pragma once
/// The writes of the sync schedulers (metrics, pools, trustlines): each `run_*` recomputes its
/// figures with `domain/metrics.hpp`, writes them, records itself in `sync_runs` and reports
/// domain events, all in ONE transaction it opens and commits (design.md §4). A run
/// interrupted at any point (shutdown, crash, a throwing callback) leaves nothing behind.
///
/// Every write is an upsert on a natural key, so running again with the same inputs and the
/// same `now_ms` changes nothing and emits no event a second time. Formulas, units and when a
/// figure is NULL: docs/analytics.md.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "domain/horizon.hpp"
#include "domain/metrics.hpp"
#include "storage/database.hpp"

namespace soci {
class session;
}

namespace si::storage {

/// Webhook event type: a corridor's health got worse between two evaluations.
inline constexpr std::string_view event_corridor_health_degraded = "corridor.health_degraded";
/// Webhook event type: an anchor's measured status changed.
inline constexpr std::string_view event_anchor_status_changed = "anchor.status_changed";
/// Webhook event type: a pool's total shares fell by at least the threshold.
inline constexpr std::string_view event_pool_liquidity_dropped = "pool.liquidity_dropped";

/// The `sync_runs` names the runs record themselves under.
inline constexpr std::string_view metrics_run_name = "metrics";
inline constexpr std::string_view pools_run_name = "pools";
inline constexpr std::string_view trustlines_run_name = "trustlines";

/// Cache key prefixes of the GET routes each run affects (the gateway caches under
/// `"api:" + path + "?" + canonical query`; invalidate with the glob `prefix + "*"`).
inline constexpr std::string_view corridors_cache_prefix = "api:/api/v1/corridors";
inline constexpr std::string_view anchors_cache_prefix = "api:/api/v1/anchors";
inline constexpr std::string_view pools_cache_prefix = "api:/api/v1/liquidity-pools";
inline constexpr std::string_view trustlines_cache_prefix = "api:/api/v1/trustlines";

/// Called once per detected domain event, INSIDE the run's transaction, with the run's
/// session (e.g. to insert a webhook outbox row that then commits with the data). Throwing
/// aborts the run: everything it wrote is rolled back and the exception propagates.
using sync_event_fn = std::function<void(soci::session& sql, const std::string& event_type,
                                         const nlohmann::json& data)>;

/// One event a run emitted (also handed to `sync_event_fn`).
struct sync_event {
  std::string type;
  nlohmann::json data;
};

/// Tunables of `run_metrics_sync` (defaults documented in docs/analytics.md).
struct metrics_sync_params {
  /// Corridor health thresholds.
  domain::corridor_health_params health;
  /// Corridor health looks at buckets with `now - health_window_ms <= bucket_start < now`.
  int64_t health_window_ms = domain::day_ms;
  /// Anchor score and status thresholds.
  domain::anchor_reliability_params reliability;
  /// Anchor figures count operations with `now - anchor_window_ms <= created_at < now`.
  int64_t anchor_window_ms = 7 * domain::day_ms;
};

/// What `run_metrics_sync` wrote and found.
struct metrics_sync_result {
  int64_t buckets_deleted = 0;      ///< buckets of the rebuilt hours removed first
  int64_t buckets_written = 0;      ///< buckets of the rebuilt hours written again
  int64_t corridors_written = 0;    ///< corridor rows inserted or changed
  int64_t corridors_evaluated = 0;  ///< corridors with a known health in the window
  int64_t anchors_updated = 0;      ///< anchors recomputed (every anchor, each run)
  int64_t anchor_history_rows = 0;  ///< anchor_metrics_history rows written (one per anchor)
  std::vector<std::string> changed_corridor_ids;   ///< new or changed lifetime figures, sorted
  std::vector<int64_t> status_changed_anchor_ids;  ///< API-visible status changed, ascending
  std::vector<sync_event> events;                  ///< in emission order
  std::vector<std::string> invalidate_prefixes;    ///< cache key prefixes to invalidate
};

/// Recomputes corridors and anchors from the ingested operations in one transaction:
/// 1. `corridor_buckets` of every hour from `hour_floor(window_start_ms)` on are deleted and
///    rebuilt with one GROUP BY over the payment-like operations with both assets set
///    (attempts, successful, failed, volume = Σ successful destination amounts);
/// 2. each corridor's lifetime row (`corridors`) is re-summed from all its buckets; rows
///    whose figures changed (or are new) get `last_updated = now_ms`;
/// 3. each corridor's health over the trailing `health_window_ms` is compared with the last
///    known one (table `corridor_health`, migration 4): `corridor.health_degraded` when it
///    got worse;
/// 4. every anchor is recomputed over the trailing `anchor_window_ms` (operations from or to
///    its account, or in one of its assets), with one `anchor_metrics_history` row at
///    `now_ms`; `anchor.status_changed` when a measured status changes;
/// 5. `sync_runs(metrics_run_name)` records the run as `ok`.
/// `sql` must not be inside a transaction. Exceptions (database errors, or from `on_event`)
/// propagate after the rollback.
metrics_sync_result run_metrics_sync(soci::session& sql, backend kind, int64_t now_ms,
                                     int64_t window_start_ms, const metrics_sync_params& params,
                                     const sync_event_fn& on_event);

/// Tunables of `run_pool_sync`.
struct pool_sync_params {
  /// `pool.liquidity_dropped` when total shares fall by at least this percent between the
  /// stored pool and the new one.
  double liquidity_drop_percent = 20.0;
};

/// What `run_pool_sync` wrote and found.
struct pool_sync_result {
  int64_t pools_upserted = 0;
  int64_t snapshots_written = 0;
  std::vector<std::string> updated_pool_ids;  ///< in input order, each once
  std::vector<sync_event> events;
  std::vector<std::string> invalidate_prefixes;
};

/// Upserts every pool of `pools` into `liquidity_pools` with the figures of
/// `domain::analyse_pool` and writes one `liquidity_pool_snapshots` row per pool at `now_ms`
/// (upserted: a re-run at the same instant replaces it). `trades_by_pool[pool_id]` must hold
/// all of that pool's trades since at least `now_ms - 24h`; a pool without an entry has
/// unknown volume, fees and APY (NULL). Pools missing from `pools` are left as they are.
/// Records `sync_runs(pools_run_name)`. One transaction, as `run_metrics_sync`.
pool_sync_result run_pool_sync(
    soci::session& sql, backend kind, int64_t now_ms,
    const std::vector<domain::liquidity_pool>& pools,
    const std::map<std::string, std::vector<domain::trade>>& trades_by_pool,
    const pool_sync_params& params, const sync_event_fn& on_event);

/// What `run_trustline_sync` wrote.
struct trustline_sync_result {
  int64_t assets_upserted = 0;
  int64_t snapshots_written = 0;
  std::vector<std::string> updated_assets;  ///< `CODE:ISSUER`, in input order, each once
  std::vector<sync_event> events;           ///< always empty: the contract has no such event
  std::vector<std::string> invalidate_prefixes;
};

/// Upserts `assets` and `trustline_stats` from each `domain::asset_stats` (figures of
/// `domain::trustline_figures_of`) and writes one `trustline_snapshots` row per asset at
/// `now_ms` (upserted). `assets.home_domain` is left as it was (Horizon's `/assets` has no
/// such field). Records `sync_runs(trustlines_run_name)`. One transaction. No event type
/// exists for trustlines, so `on_event` is never called; it is taken for a uniform signature.
trustline_sync_result run_trustline_sync(soci::session& sql, backend kind, int64_t now_ms,
                                         const std::vector<domain::asset_stats>& assets,
                                         const sync_event_fn& on_event);

/// A `sync_runs` row.
struct sync_run {
  std::string name;
  std::optional<int64_t> last_run_at;  ///< when the last recorded run started (unix ms)
  std::optional<std::string> last_status;
  std::optional<std::string> last_error;
  std::optional<int64_t> last_duration_ms;
};

/// The row of `name`, or nullopt when that sync never recorded a run.
std::optional<sync_run> read_last_run(soci::session& sql, const std::string& name);

/// Upserts the row of `name`: `last_run_at = started_ms`, `last_status = status`,
/// `last_error = error` (NULL when nullopt), `last_duration_ms = duration_ms`. One statement,
/// in the caller's transaction if there is one. The `run_*` functions record their own
/// success; a caller uses this for a failed run (after the rollback).
void record_run(soci::session& sql, const std::string& name, int64_t started_ms,
                const std::string& status, const std::optional<std::string>& error,
                int64_t duration_ms);

}  // namespace si::storage
