#pragma once
/// `webhook_dispatcher`: delivers the webhook outbox (docs/webhooks.md). It claims due
/// deliveries through the db actor (leased, so a crash loses nothing), signs each one
/// (Standard Webhooks, `webhook-id` = the event id on every attempt) and POSTs it under
/// per-destination and overall bounds, records every attempt (delivered, retry with backoff,
/// dead letter, 410 disables the webhook), and on drain hands back what it has not sent.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <atomic>
#include <string>

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/atoms.hpp"
#include "actors/db.hpp"
#include "domain/webhook.hpp"
#include "net/address_policy.hpp"
#include "net/webhook_client.hpp"
#include "storage/webhooks_repo.hpp"

namespace si::net {
class metrics_registry;
}  // namespace si::net

namespace si::actors {

/// A thread-safe doorbell: whoever writes webhook events (the gateway's test route, the
/// ingestor, the schedulers) rings it after the commit, and the attached dispatcher looks
/// for due deliveries at once instead of at its next poll. Rings coalesce: one wake-up
/// message is in the dispatcher's mailbox at most.
class webhook_doorbell {
 public:
  /// A (re)started dispatcher takes over (held weakly: a dead one is simply not woken).
  void attach(const caf::actor& dispatcher);
  /// Wakes the attached dispatcher unless a wake-up is already pending.
  void ring();
  /// Called by the dispatcher when it handles a wake-up: the next ring sends another.
  void rearm();
  /// Rings that sent a wake-up message (the others were coalesced).
  uint64_t wakeups() const {
    return wakeups_.load();
  }

 private:
  std::mutex mtx_;
  caf::actor_addr target_;  ///< guarded by mtx_
  std::atomic<bool> pending_{false};
  std::atomic<uint64_t> wakeups_{0};
};

/// Where deliveries are POSTed: net::webhook_client in production, a fake in tests.
class webhook_sender {
 public:
  virtual ~webhook_sender() = default;
  /// Sends `request`; `done` runs exactly once, on any thread.
  virtual void post(net::webhook_request request, net::webhook_completion done) = 0;
  /// Completes every request in flight with `cancelled` (the drain deadline).
  virtual void cancel_all() = 0;
};

/// A sender backed by a net::webhook_client with `options` (its io threads start now).
std::shared_ptr<webhook_sender> make_webhook_client_sender(net::webhook_client_options options);

/// What the /api/v1/webhooks routes need besides the database (built once in main).
struct webhook_api_options {
  /// WEBHOOK_SECRET_KEY: seals signing secrets at rest (null: stored as given).
  std::shared_ptr<const domain::secret_cipher> cipher;
  bool allow_private = false;  ///< WEBHOOK_ALLOW_PRIVATE
  /// Bound of the DNS lookup of a URL being registered (it runs on a db worker, so it stays
  /// below HTTP_UPSTREAM_TIMEOUT_MS).
  std::chrono::milliseconds resolve_timeout{3'000};
  net::resolver_fn resolver;                   ///< empty: getaddrinfo (tests inject fakes)
  std::shared_ptr<webhook_doorbell> doorbell;  ///< rung after POST /{id}/test (may be null)
};

/// One finished POST, sent from the client's io thread back to the dispatcher.
struct webhook_sent {
  long long delivery_id = 0;
  long long attempted_at = 0;  ///< unix ms when it was handed to the sender
  net::webhook_result result;
};

}  // namespace si::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(si::actors::webhook_sent)

namespace si::actors {

/// Settings of the dispatcher (from config: WEBHOOK_*, SHUTDOWN_BACKGROUND_TIMEOUT).
struct webhook_dispatcher_options {
  db_actor db;
  std::shared_ptr<webhook_sender> sender;  ///< required
  /// Opens sealed secrets (WEBHOOK_SECRET_KEY); null when none is configured.
  std::shared_ptr<const domain::secret_cipher> cipher;
  /// WEBHOOK_MAX_ATTEMPTS, WEBHOOK_MAX_AGE, WEBHOOK_BACKOFF_MIN_MS / _MAX_MS (full jitter).
  storage::delivery_policy policy;
  std::chrono::milliseconds timeout{10'000};       ///< WEBHOOK_TIMEOUT_MS, per request
  std::chrono::milliseconds lease{60'000};         ///< WEBHOOK_LEASE_MS
  std::chrono::milliseconds poll_interval{500};    ///< WEBHOOK_POLL_INTERVAL_MS
  std::size_t concurrency = 64;                    ///< WEBHOOK_CONCURRENCY: requests at once
  std::size_t per_destination = 4;                 ///< WEBHOOK_PER_DESTINATION
  std::chrono::milliseconds drain_timeout{9'000};  ///< in-flight requests may finish this long
  /// What the drain has after that for its last database requests (record, release).
  std::chrono::milliseconds drain_db_timeout{1'000};
  std::chrono::milliseconds db_timeout{11'000};     ///< one database request
  std::chrono::milliseconds stats_interval{5'000};  ///< queue gauges refresh
  std::shared_ptr<webhook_doorbell> doorbell;       ///< may be null (then only polling)
  std::shared_ptr<net::metrics_registry> metrics;   ///< may be null
  /// Clock of attempts and claims (unix ms); empty = the system clock.
  std::function<int64_t()> now_ms;
  /// Retry jitter; empty = OpenSSL's CSPRNG.
  domain::unit_random random;
  /// TEST_HANG_ON_DRAIN: ignore the drain request (tests of timed_out and hard deadline).
  bool test_hang_on_drain = false;
};

/// Messages: `drain_atom` → stop claiming, hand back (release) the claims not yet sent, let
/// requests in flight finish within `drain_timeout` (then cancel them and hand those back
/// too), record what finished, reply `{delivered, retried, failed, disabled, attempts,
/// pending_left, unrecorded, queue_depth}` and quit; `status_atom` → the same counters and
/// what is held now; `wake_atom` → look for due deliveries now (the doorbell);
/// `update_atom, "db", handle` → use the restarted db actor. The rest are its own timers and
/// the completions of its requests.
using webhook_dispatcher_actor =
    caf::typed_actor<caf::replies_to<drain_atom>::with<std::string>,
                     caf::replies_to<status_atom>::with<std::string>, caf::reacts_to<wake_atom>,
                     caf::reacts_to<tick_atom, uint64_t>, caf::reacts_to<gauge_atom, uint64_t>,
                     caf::reacts_to<flush_atom>, caf::reacts_to<sent_atom, webhook_sent>,
                     caf::reacts_to<cut_atom>,
                     caf::reacts_to<caf::update_atom, std::string, caf::actor>>;

/// Spawns the dispatcher; it attaches to the doorbell and looks for due deliveries at once
/// (what a previous run left pending is sent first).
webhook_dispatcher_actor spawn_webhook_dispatcher(caf::actor_system& sys,
                                                  webhook_dispatcher_options opts);

/// Describes the webhook metric families (call once per registry).
void describe_webhook_metrics(net::metrics_registry& m);

}  // namespace si::actors
