#pragma once
/// `broadcaster`: turns what the ingestor committed and what the sync schedulers changed into
/// the realtime messages of `/ws` (docs/websocket.md) and hands them to `ws_hub`, one shared
/// buffer per message.

#include "actors/atoms.hpp"
#include "actors/db.hpp"
#include "actors/ingestor.hpp"
#include "actors/sync_scheduler.hpp"
#include "actors/ws_hub.hpp"

#include <caf/actor.hpp>
#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace si::net {
class metrics_registry;
}  // namespace si::net

namespace si::actors {

/// Messages: `publish_atom, committed_batch` (ingestor) → `new_payment` on `payments`;
/// `publish_atom, sync_changes` (schedulers) → `corridor_update`, `anchor_update`,
/// `pool_update` (figures read back from the database) and `health_alert`; `drain_atom` →
/// `{batches, sync_runs, published, payments_published, payments_skipped_catch_up,
/// payments_skipped_cap, updates_unchanged, lookups_failed, lookups_abandoned}` and quit;
/// `status_atom` → the same counters; `update_atom, "ws_hub"|"db", handle` → use the
/// restarted actor.
using broadcaster_actor = caf::typed_actor<
    caf::reacts_to<publish_atom, committed_batch>, caf::reacts_to<publish_atom, sync_changes>,
    caf::replies_to<drain_atom>::with<std::string>, caf::replies_to<status_atom>::with<std::string>,
    caf::reacts_to<caf::update_atom, std::string, caf::actor>>;

/// Settings of the broadcaster.
struct broadcaster_options {
  ws_hub_actor hub;
  /// Reads the rows a sync run changed (corridors, pools, anchors); may be invalid, then
  /// those updates are skipped (counted in lookups_failed).
  db_actor db;
  /// The ingestor's view of the network tip (null: every batch counts as at the tip).
  std::shared_ptr<ingest_progress> progress;
  std::shared_ptr<net::metrics_registry> metrics;  ///< may be null
  /// Payments are published only from batches whose last ledger is at most this many
  /// ledgers behind the network's newest: a catch-up (restart, outage) floods no client.
  int64_t tip_window = 5;
  /// At most this many new_payment messages per committed batch: the newest are kept.
  std::size_t max_payments_per_batch = 100;
  /// At most this many corridor_update / pool_update messages per sync run, and anchors read
  /// per metrics run.
  std::size_t max_updates_per_run = 200;
  std::chrono::milliseconds db_timeout{11'000};  ///< one lookup (DB_QUERY_TIMEOUT + margin)
  /// Clock of message timestamps (unix ms); empty = the system clock.
  std::function<int64_t()> now_ms;
  /// TEST_HANG_ON_DRAIN: ignore the drain request (tests of timed_out and hard deadline).
  bool test_hang_on_drain = false;
};

/// Spawns the broadcaster.
broadcaster_actor spawn_broadcaster(caf::actor_system& sys, broadcaster_options opts);

/// One message for the hub: its channels and the JSON text every subscriber receives.
struct channel_message {
  std::vector<std::string> channels;
  std::string type;
  std::string text;
};

/// `{"type":type,"timestamp":now_ms,"data":data}` for `channels`.
channel_message make_channel_message(std::vector<std::string> channels, std::string type,
                                     int64_t now_ms, const nlohmann::json& data);

/// What a committed batch yields for the `payments` channel.
struct payment_selection {
  std::vector<channel_message> messages;  ///< in ledger order
  uint64_t skipped_catch_up = 0;          ///< payments of a batch too far behind the tip
  uint64_t skipped_cap = 0;               ///< payments over max_payments_per_batch (the oldest)
};

/// The `new_payment` messages of `batch`: every payment-like operation of a successful
/// transaction (payment, path payments, create_account, account_merge), none when
/// `network_latest - batch.last_ledger > tip_window` (network_latest 0 = unknown = at the
/// tip), at most `max` of them (the newest).
payment_selection select_payments(const committed_batch& batch, int64_t network_latest,
                                  int64_t tip_window, std::size_t max, int64_t now_ms);

/// The `health_alert` for a sync event (`corridor.health_degraded` → `alerts` and
/// `corridor:<id>`; `anchor.status_changed`, `pool.liquidity_dropped` → `alerts`); nullopt
/// for other event types.
std::optional<channel_message> alert_message(const storage::sync_event& event, int64_t now_ms);

}  // namespace si::actors
