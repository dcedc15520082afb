#include "storage/webhook_events.hpp"

#include <soci/soci.h>

#include <algorithm>
#include <unordered_set>
#include <vector>

#include "domain/asset.hpp"
#include "domain/horizon_values.hpp"
#include "storage/api_queries.hpp"
#include "storage/webhooks_repo.hpp"

namespace si::storage {

namespace {

constexpr std::string_view payment_created = "payment.created";

nlohmann::json stroops_or_null(const std::optional<int64_t>& stroops) {
  return stroops ? nlohmann::json(domain::format_stroops(*stroops)) : nlohmann::json(nullptr);
}

}  // namespace

nlohmann::json payment_event_data(const domain::operation& op) {
  const auto& p = *op.payment;
  return {
      {"id", std::to_string(op.id)},
      {"type", op.type},
      {"transaction_hash", op.transaction_hash},
      {"ledger", op.id >> 32},
      {"created_at", op.created_at_ms},
      {"from", p.from},
      {"to", p.to},
      {"source_asset", p.source_asset.id()},
      {"destination_asset", p.destination_asset.id()},
      {"source_amount", stroops_or_null(p.source_amount)},
      {"amount", stroops_or_null(p.amount)},
      {"corridor_id", domain::corridor_key{p.source_asset, p.destination_asset}.id()},
  };
}

long long enqueue_payment_events(soci::session& sql, const ingest_batch& batch, long long now_ms) {
  auto is_event = [](const domain::operation& op) {
    return op.transaction_successful && op.payment.has_value();
  };
  // The common case first and cheapest: nobody subscribes (one small query per page).
  if (std::none_of(batch.operations.begin(), batch.operations.end(), is_event)
      || !has_subscribers(sql, payment_created)) {
    return 0;
  }
  std::vector<const domain::operation*> payments;
  for (const auto& op : batch.operations) {
    if (is_event(op)) {
      payments.push_back(&op);
    }
  }
  // Operations of this page already stored: one primary-key range, empty for a new page.
  auto [lo, hi] = std::minmax_element(
      payments.begin(), payments.end(),
      [](const domain::operation* a, const domain::operation* b) { return a->id < b->id; });
  std::unordered_set<long long> stored;
  bound_query q;
  q.sql("SELECT id FROM operations WHERE id >= ")
      .value(static_cast<long long>((*lo)->id))
      .sql(" AND id <= ")
      .value(static_cast<long long>((*hi)->id));
  q.for_each_row(sql, [&](const soci::row& r) { stored.insert(row_int(r, 0).value_or(0)); });
  long long written = 0;
  for (const auto* op : payments) {
    if (stored.count(op->id) != 0) {
      continue;
    }
    enqueue_event(sql, payment_created, payment_event_data(*op), now_ms);
    ++written;
  }
  return written;
}

}  // namespace si::storage
