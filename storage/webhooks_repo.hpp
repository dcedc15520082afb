#pragma once
/// Webhook subscriptions, the transactional outbox and the delivery queue (tables `webhooks`,
/// `webhook_outbox`, `webhook_deliveries`, `webhook_attempts`). Plain SOCI, identical on
/// SQLite and PostgreSQL; no CAF, no HTTP. See docs/webhooks.md for the states and the
/// claim/lease semantics (at-least-once delivery with a stable event id).

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "domain/webhook.hpp"
#include "storage/api_queries.hpp"

namespace soci {
class session;
}

namespace si::storage {

// -- subscriptions -----------------------------------------------------------------------------

/// A webhook subscription as the client sent it; `create_webhook` validates it.
struct new_webhook {
  std::string url;             ///< stored as given: the caller checks scheme and SSRF rules
  nlohmann::json event_types;  ///< non-empty JSON array of known event type names
  nlohmann::json filters;      ///< JSON object of top-level `data` fields to match, or null
};

/// The created webhook `{id, url, event_types, filters, enabled, disabled_reason,
/// disabled_at, secret, created_at, updated_at}` (the only answer that carries the secret),
/// or the invalid field (`url`, `event_types`, `filters`).
using create_webhook_result = std::variant<nlohmann::json, field_error>;

/// Inserts a webhook with a fresh id (`wh_...`) and signing secret (`whsec_...`), stored
/// sealed with `cipher` (in clear when `cipher` is nullptr). `created_at = updated_at =
/// now_ms`. Throws std::runtime_error for database failures.
create_webhook_result create_webhook(soci::session& sql, const new_webhook& hook,
                                     const domain::secret_cipher* cipher, long long now_ms);

/// `{webhooks:[{id, url, event_types, filters, enabled, disabled_reason, disabled_at,
/// created_at, updated_at}], total}`, newest first (ties by id); never the secret.
nlohmann::json list_webhooks(soci::session& sql, page_request page);

/// One webhook as in the list; nullopt when no webhook has `id`.
std::optional<nlohmann::json> get_webhook(soci::session& sql, const std::string& id);

/// Deletes the webhook with its deliveries and their attempts (one transaction; the outbox
/// events stay). False when no webhook has `id`.
bool delete_webhook(soci::session& sql, const std::string& id);

/// Enables or disables a webhook. Disabling records `reason` (e.g. "endpoint answered 410
/// Gone") and `disabled_at`; enabling clears both. While disabled a webhook gets no new
/// deliveries and its pending ones are held (not claimed) until it is enabled again.
/// False when no webhook has `id`.
bool set_webhook_enabled(soci::session& sql, const std::string& id, bool enabled,
                         const std::string& reason, long long now_ms);

// -- the outbox --------------------------------------------------------------------------------

/// An event written to the outbox and the deliveries it fanned out to.
struct enqueued_event {
  std::string event_id;      ///< `msg_...`, the `webhook-id` of every delivery attempt
  long long deliveries = 0;  ///< webhooks it was queued for
};

/// Writes event `type` with `data` (a JSON object) to `webhook_outbox` and queues one pending
/// delivery, due at `now_ms`, for every enabled webhook subscribed to `type` whose filters
/// match `data`. The stored payload is the exact delivery body (`domain::delivery_body`).
///
/// Runs in the CALLER's transaction and opens none: the caller begins one, writes the data
/// that caused the event, calls this, and commits, so the data and its events commit (or roll
/// back) together (design.md §4). Outside a transaction each statement commits on its own.
/// Throws std::invalid_argument for an unknown type or non-object `data`, std::runtime_error
/// (from SOCI) for database failures; either way the caller's transaction should roll back.
enqueued_event enqueue_event(soci::session& sql, std::string_view type, const nlohmann::json& data,
                             long long now_ms);

/// `enqueue_event` in a transaction of its own, for events not tied to a data write.
enqueued_event publish_event(soci::session& sql, std::string_view type, const nlohmann::json& data,
                             long long now_ms);

/// True when an enabled webhook subscribes to event `type` (whatever its filters). Lets a
/// writer skip building events nobody would receive (e.g. `payment.created` per ingested
/// page); one small query on `webhooks`.
bool has_subscribers(soci::session& sql, std::string_view type);

/// Queues a `test` event (`data = {webhook_id, message}`) for webhook `webhook_id` only,
/// whatever its subscriptions and filters, in a transaction of its own. A disabled webhook's
/// test delivery is held like its other deliveries. nullopt when no webhook has that id.
std::optional<enqueued_event> enqueue_test_event(soci::session& sql, const std::string& webhook_id,
                                                 long long now_ms);

// -- the delivery queue ------------------------------------------------------------------------

/// Where a delivery is in its life.
enum class delivery_status { pending, delivered, failed };

/// `pending`, `delivered` or `failed` (the stored words).
std::string_view to_string(delivery_status status);

/// Everything a sender needs for one claimed delivery.
struct claimed_delivery {
  long long delivery_id = 0;
  std::string webhook_id;
  std::string url;
  /// The signing secret in clear (`whsec_...`); empty when `secret_error` is set.
  std::string secret;
  /// Why the stored secret could not be opened (wrong WEBHOOK_SECRET_KEY, altered value).
  /// Such a delivery must not be sent: record an attempt with this error instead.
  std::optional<std::string> secret_error;
  std::string event_id;    ///< the `webhook-id` header: the same on every attempt
  std::string event_type;  ///< e.g. `payment.created`
  std::string body;        ///< the exact bytes to POST and sign
  int attempts = 0;        ///< attempts made before this one
  long long created_at = 0;
  /// The lease: the claim is exclusive until then. Also the claim's token: pass it back in
  /// `attempt_report::claimed_until`.
  long long claimed_until = 0;
};

/// The most deliveries one `claim_due` returns.
inline constexpr int max_claim_batch = 1000;

/// Claims up to `limit` (1..max_claim_batch) due deliveries, oldest due first: status
/// `pending`, `next_attempt_at <= now_ms`, webhook enabled, and no live claim
/// (`claimed_until` NULL or `<= now_ms`). Each is marked `claimed_until = now_ms + lease_ms`
/// in one transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL: FOR UPDATE SKIP LOCKED plus a
/// re-checked UPDATE), so concurrent dispatchers never claim one delivery twice within a
/// lease. A claim that is neither recorded nor released (crash, kill -9) expires and the
/// delivery becomes claimable again with the same event id: at-least-once. Secrets are
/// opened with `cipher` (nullptr: none configured). Deliveries of the webhooks in
/// `skip_webhooks` are left alone (a dispatcher that already holds enough of one webhook's
/// deliveries asks for other webhooks' instead, so one slow endpoint cannot take every claim).
/// `sql` must not be inside a transaction. Throws std::invalid_argument when `lease_ms <= 0`.
std::vector<claimed_delivery> claim_due(soci::session& sql, long long now_ms, int limit,
                                        long long lease_ms, const domain::secret_cipher* cipher,
                                        const std::vector<std::string>& skip_webhooks = {});

/// When a delivery gives up.
struct delivery_policy {
  int max_attempts = 8;               ///< failed after this many attempts
  long long max_age_ms = 86'400'000;  ///< failed after a failed attempt older than this
  domain::backoff_policy backoff;     ///< delay before each retry
};

/// The result of one HTTP attempt, as the sender saw it.
struct attempt_report {
  long long delivery_id = 0;
  long long claimed_until = 0;       ///< from the claim (its token)
  long long attempted_at = 0;        ///< unix ms when the attempt started
  std::optional<int> status_code;    ///< the response's status, if one arrived
  std::optional<std::string> error;  ///< transport error text (never secrets), if any
  long long duration_ms = 0;
};

/// What `record_attempt` did.
struct attempt_outcome {
  int attempt = 0;  ///< this attempt's number (1-based)
  delivery_status status = delivery_status::pending;
  std::optional<long long> next_attempt_at;  ///< set when a retry was scheduled
  /// False when the claim had been taken over (lease expired and another dispatcher claimed)
  /// or released: the attempt is logged, a success still marks the delivery delivered, but a
  /// failure leaves the schedule to the current holder.
  bool held_claim = true;
  bool webhook_disabled = false;  ///< the answer was 410 Gone: the webhook was disabled
};

/// Records one attempt in one transaction: appends its `webhook_attempts` row (number =
/// attempts + 1, status code or error, duration), counts it, stores the last status/error,
/// and moves the delivery on:
/// - a 2xx answer: `delivered`;
/// - 410 Gone: `failed`, and the webhook is disabled ("endpoint answered 410 Gone");
/// - otherwise, when the claim was held: `failed` (dead letter) once attempts >=
///   `max_attempts` or the delivery is older than `max_age_ms` at `attempted_at`, else
///   `pending` again with `next_attempt_at = attempted_at + retry_delay_ms(...)`.
/// The claim is cleared whenever the status or the schedule changes. A delivery already
/// `delivered` stays so and a `failed` one only becomes `delivered` (a late 2xx: the receiver
/// has it); the attempt is logged either way. nullopt when the
/// delivery no longer exists (its webhook was deleted). `sql` must not be inside a
/// transaction.
std::optional<attempt_outcome> record_attempt(soci::session& sql, const attempt_report& report,
                                              const delivery_policy& policy,
                                              const domain::unit_random& random);

/// `record_attempt` for several reports in ONE transaction (one commit for a batch of
/// attempts: what a busy dispatcher does). Outcomes in the order of `reports`; on any error
/// the whole batch rolls back and the exception propagates, so it can be retried as is.
/// `sql` must not be inside a transaction.
std::vector<std::optional<attempt_outcome>> record_attempts(
    soci::session& sql, const std::vector<attempt_report>& reports, const delivery_policy& policy,
    const domain::unit_random& random);

/// Hands claimed deliveries back (dispatcher shutdown): each pending one among `ids` loses
/// its claim and is due again at its `next_attempt_at`; attempts are unchanged. Returns how
/// many were released.
long long release_claims(soci::session& sql, const std::vector<long long>& ids, long long now_ms);

/// `{webhook_id, deliveries:[{id, event_id, event_type, status, attempts, next_attempt_at,
/// claimed_until, last_status_code, last_error, created_at, updated_at, attempt_log:[{attempt,
/// attempted_at, status_code, error, duration_ms}]}], total}`: newest delivery first, its
/// attempts oldest first. nullopt when no webhook has `webhook_id`.
std::optional<nlohmann::json> deliveries_of(soci::session& sql, const std::string& webhook_id,
                                            page_request page);

/// The delivery queue at a glance (for /metrics and logs).
struct webhook_delivery_stats {
  long long pending = 0;
  long long delivered = 0;
  long long failed = 0;
  long long queue_depth = 0;  ///< = pending (held ones of disabled webhooks included)
  long long in_flight = 0;    ///< pending with a live claim (claimed_until > now)
  long long due = 0;          ///< claimable now
  std::optional<long long> oldest_pending_age_ms;  ///< now - oldest pending created_at
};

/// Counts by status, queue depth, in-flight and due counts, oldest pending age at `now_ms`.
webhook_delivery_stats delivery_stats(soci::session& sql, long long now_ms);

/// Only `pending`, `queue_depth` and `oldest_pending_age_ms` of delivery_stats (the others
/// stay 0): a range of one index, cheap enough for a gauge refreshed every few seconds.
webhook_delivery_stats pending_stats(soci::session& sql, long long now_ms);

/// `{pending, delivered, failed, queue_depth, in_flight, due, oldest_pending_age_ms}`.
nlohmann::json to_json(const webhook_delivery_stats& stats);

}  // namespace si::storage
