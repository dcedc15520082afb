#pragma once
/// Read/write repository of anchors (tables `anchors`, `anchor_assets`,
/// `anchor_metrics_history`) for `GET/POST /api/v1/anchors...`.

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "domain/metrics.hpp"
#include "storage/api_queries.hpp"

namespace soci {
class session;
}

namespace si::storage {

/// An anchor's health light: the one the metrics sync computes (domain/metrics.hpp), with
/// its parse_anchor_status / to_string.
using domain::anchor_status;
using domain::parse_anchor_status;
using domain::to_string;

/// What an anchor list is sorted by.
enum class anchor_sort { reliability, transactions, name };

/// Parses `reliability`, `transactions`, `name`; nullopt otherwise.
std::optional<anchor_sort> parse_anchor_sort(std::string_view text);

/// Filter, sort and page of an anchor list.
struct anchor_query {
  std::optional<anchor_status> status;
  anchor_sort sort_by = anchor_sort::reliability;
  /// Default: ascending for `name`, descending otherwise.
  std::optional<sort_order> order;
  page_request page;
};

/// `{anchors:[{id, name, stellar_account, home_domain, total_transactions, successful,
/// failed, reliability_score, status, total_volume, avg_settlement_time_ms, created_at,
/// updated_at}], total}`. `status` is null for an anchor nothing has been measured for yet
/// (no transactions and no reliability score): the stored default is not a measurement.
/// Name sorting is case-insensitive; NULL scores sort last; ties break on `id`.
nlohmann::json list_anchors(soci::session& sql, const anchor_query& query);

/// How many of the newest metrics rows an anchor's detail includes by default.
inline constexpr int default_anchor_history = 100;
/// The most it includes.
inline constexpr int max_anchor_history = 1000;

/// `{anchor:{...as in the list...}, assets:[{id, asset_code, asset_issuer, created_at}],
/// metrics_history:[{recorded_at, total_transactions, successful, failed, success_rate,
/// volume, avg_settlement_time_ms, reliability_score, status}]}`: assets by code, the newest
/// `history_limit` (1..1000) metrics rows oldest first. nullopt when no anchor has `id`.
std::optional<nlohmann::json> get_anchor(soci::session& sql, long long id,
                                         int history_limit = default_anchor_history);

/// As `get_anchor`, found by its `stellar_account` (exact match).
std::optional<nlohmann::json> get_anchor_by_account(soci::session& sql,
                                                    std::string_view stellar_account,
                                                    int history_limit = default_anchor_history);

/// A new anchor, as the client sent it; `create_anchor` validates every field.
struct new_anchor {
  std::string name;                        ///< trimmed; 1..200 characters, no control chars
  std::string stellar_account;             ///< valid G... StrKey, unique across anchors
  std::optional<std::string> home_domain;  ///< a host name such as `example.com` (lowered)
};

/// The created anchor (as in the list), an invalid field, or a conflict when an anchor with
/// that `stellar_account` exists (HTTP 409).
using create_anchor_result = std::variant<nlohmann::json, field_error, conflict_error>;

/// Inserts `anchor` with `created_at = updated_at = now_ms`. Race-free: two concurrent
/// creates of one account give one anchor and one conflict.
create_anchor_result create_anchor(soci::session& sql, const new_anchor& anchor, long long now_ms);

/// An asset an anchor issues, as the client sent it; `add_anchor_asset` validates it.
struct new_anchor_asset {
  std::string asset_code;    ///< 1..12 ASCII letters and digits
  std::string asset_issuer;  ///< valid G... StrKey (not `native`: lumens have no issuer)
};

/// The added asset `{id, anchor_id, asset_code, asset_issuer, created_at}`, an invalid field,
/// the anchor not existing (404), or the anchor already listing that asset (409).
using add_anchor_asset_result =
    std::variant<nlohmann::json, field_error, not_found_error, conflict_error>;

/// Adds `asset` to anchor `anchor_id` with `created_at = now_ms`.
add_anchor_asset_result add_anchor_asset(soci::session& sql, long long anchor_id,
                                         const new_anchor_asset& asset, long long now_ms);

}  // namespace si::storage
