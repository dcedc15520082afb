#pragma once
/// The webhook events derived from ingested data: `payment.created` for every successful
/// payment-like operation of a committed page, written to the outbox inside the page's
/// transaction (storage::commit_hook). Plain SOCI; no CAF, no HTTP.

#include <nlohmann/json.hpp>

#include "domain/horizon.hpp"
#include "storage/ingest_repo.hpp"

namespace soci {
class session;
}

namespace si::storage {

/// The `data` of a `payment.created` event (the shape of the WebSocket `new_payment`):
/// `{id, type, transaction_hash, ledger, created_at, from, to, source_asset,
/// destination_asset, source_amount, amount, corridor_id}`. `id` is the operation's TOID as a
/// decimal string (it passes 2^53); amounts are Horizon's 7-decimal strings (null when
/// unknown, e.g. account_merge); assets are `CODE:ISSUER` (`XLM:native`). Requires
/// `op.payment`.
nlohmann::json payment_event_data(const domain::operation& op);

/// The commit hook of the ingestor: one `payment.created` event (fanned out by
/// enqueue_event) per successful payment-like operation of `batch` that is not stored yet.
/// Does nothing, beyond a scan of the batch in memory and one small query, when no enabled
/// webhook subscribes to `payment.created`. Operations already stored (a page written again
/// after a crash) are skipped, so a page yields its events once. Runs in the caller's
/// transaction, before the page's rows are written; returns the events written.
long long enqueue_payment_events(soci::session& sql, const ingest_batch& batch, long long now_ms);

}  // namespace si::storage
