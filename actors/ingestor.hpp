#pragma once
/// `ingestor`: follows the Stellar network from Horizon in cursor order and commits whole
/// ledgers (with every transaction and operation, failed ones included) together with the
/// cursor they advance, in one database transaction (design.md §4).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
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
#include "actors/horizon_fetcher.hpp"
#include "net/horizon_client.hpp"

namespace si::net {
class metrics_registry;
}  // namespace si::net

namespace si::actors {

/// What the ingestor is doing, shared with the HTTP gateway (readiness, ingestion status,
/// lag) without a round trip. Written by the ingestor only; thread-safe.
class ingest_progress {
 public:
  void set_state(std::string state, std::string error = {});
  void set_committed(int64_t last_ledger);
  void set_network_latest(int64_t latest);
  /// `{state, last_ledger, network_latest, ledgers_behind, last_error}`; ledgers_behind is
  /// null until both ledgers are known.
  nlohmann::json snapshot() const;
  std::string state() const;
  int64_t network_latest() const {
    return network_latest_.load();
  }

 private:
  mutable std::mutex mtx_;
  std::string state_ = "not_started";
  std::string last_error_;
  std::atomic<int64_t> last_ledger_{0};
  std::atomic<int64_t> network_latest_{0};
};

/// One committed batch, for listeners (the realtime broadcaster, tests).
struct committed_batch {
  std::shared_ptr<const storage::ingest_batch> batch;
  std::string cursor;
  int64_t last_ledger = 0;
  int64_t events = 0;  ///< webhook outbox events written with it (by `outbox`)
};

}  // namespace si::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(si::actors::committed_batch)

namespace si::actors {

/// Settings of the ingestor (from config: HORIZON_*, INGEST_*).
struct ingestor_options {
  db_actor db;
  net::horizon_client_options client;  ///< base_url, timeouts, retries, rate limit, CA file
  fetch_options fetch;
  int64_t start_ledger = 0;  ///< INGEST_START_LEDGER (0 = latest); a stored cursor wins
  std::string stream = "horizon";
  std::chrono::milliseconds poll_interval{1'000};  ///< INGEST_POLL_INTERVAL_MS
  std::chrono::milliseconds backoff_min{1'000};    ///< INGEST_BACKOFF_MIN_MS
  std::chrono::milliseconds backoff_max{60'000};   ///< INGEST_BACKOFF_MAX_MS
  std::chrono::milliseconds db_timeout{11'000};    ///< one commit (DB_QUERY_TIMEOUT + margin)
  /// One whole batch read (bounded by the client's own per-request timeouts and retries).
  std::chrono::milliseconds fetch_timeout{600'000};
  /// How often the newest network ledger is re-read while catching up (lag figure).
  std::chrono::milliseconds latest_refresh{10'000};
  std::shared_ptr<ingest_progress> progress;       ///< may be null
  std::shared_ptr<net::metrics_registry> metrics;  ///< may be null
  /// Called on the ingestor's thread after each commit (may be empty).
  std::function<void(const committed_batch&)> on_commit;
  /// Runs inside each commit's transaction (storage::commit_hook): the webhook outbox's
  /// `payment.created` events, committed with the page or not at all (may be empty).
  storage::commit_hook outbox;
  /// The realtime broadcaster: receives `publish_atom, committed_batch` after each commit
  /// (may be invalid; replaced by `update_atom, "broadcaster", handle` after a restart).
  caf::actor broadcaster;
  /// TEST_HANG_ON_DRAIN: ignore the drain request (tests of timed_out and hard deadline).
  bool test_hang_on_drain = false;
};

/// Messages: `drain_atom` → abandon a read in flight (its Horizon request is cancelled),
/// finish a commit in flight, record state `stopped`, reply `{ledgers, transactions,
/// operations, batches, errors, abandoned, last_cursor, last_ledger}` and quit;
/// `status_atom` → the same counters plus state; `update_atom, "db"|"broadcaster", handle`
/// → use the restarted actor. `tick_atom, generation` is the ingestor's own timer.
using ingestor_actor = caf::typed_actor<
    caf::replies_to<drain_atom>::with<std::string>, caf::replies_to<status_atom>::with<std::string>,
    caf::reacts_to<tick_atom, uint64_t>, caf::reacts_to<caf::update_atom, std::string, caf::actor>>;

/// Spawns the ingestor (and its detached horizon_fetcher, linked to it).
ingestor_actor spawn_ingestor(caf::actor_system& sys, ingestor_options opts);

/// Describes the ingestion metric families (call once per registry).
void describe_ingest_metrics(net::metrics_registry& m);

}  // namespace si::actors
