#pragma once
/// Read repository of payment corridors (tables `corridors`, `corridor_buckets`) for
/// `GET /api/v1/corridors` and `GET /api/v1/corridors/{id}`.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "storage/api_queries.hpp"

namespace soci {
class session;
}

namespace si::storage {

/// The window corridor figures are computed over: the last 24 hours, 7 or 30 days.
enum class corridor_period { h24, d7, d30 };

/// Parses `24h`, `7d`, `30d`; nullopt otherwise.
std::optional<corridor_period> parse_corridor_period(std::string_view text);
/// `24h`, `7d` or `30d`.
std::string_view to_string(corridor_period period);
/// The period's length in milliseconds.
long long period_ms(corridor_period period);

/// What a corridor list is sorted by.
enum class corridor_sort { success_rate, volume, attempts };

/// Parses `success_rate`, `volume`, `attempts`; nullopt otherwise.
std::optional<corridor_sort> parse_corridor_sort(std::string_view text);

/// Filters, window, sort and page of a corridor list. Unset filters do not filter.
struct corridor_query {
  std::optional<std::string> asset_code;   ///< source OR destination asset code, exact
  std::optional<double> success_rate_min;  ///< percent 0..100, inclusive
  std::optional<double> success_rate_max;
  std::optional<double> volume_min;  ///< inclusive
  std::optional<double> volume_max;
  /// Unset: each corridor's lifetime figures (table `corridors`). Set: figures summed from
  /// the corridor's buckets with `now_ms - period <= bucket_start < now_ms`, and only
  /// corridors with at least one bucket in that window are listed.
  std::optional<corridor_period> period;
  long long now_ms = 0;  ///< end of the window (exclusive), unix ms; used with `period`
  corridor_sort sort_by = corridor_sort::volume;
  std::optional<sort_order> order;  ///< default desc
  page_request page;
};

/// `{corridors:[{id, source_asset, destination_asset, success_rate, total_attempts,
/// successful, failed, volume, last_updated}], total}`: filters, sort and paging applied in
/// SQL; `total` counts the filtered set. `success_rate` is `100 * successful /
/// total_attempts` computed in SQL (the stored `corridors.success_rate` is not read), null
/// when there were no attempts; NULLs sort last in both orders; ties break on `id`.
nlohmann::json list_corridors(soci::session& sql, const corridor_query& query);

/// Which corridor and window `get_corridor` reports.
struct corridor_detail_query {
  std::string id;  ///< canonical `CODE:ISSUER->CODE:ISSUER` (see domain::parse_corridor_id)
  /// Unset: lifetime figures and every bucket. Set: figures and history from the buckets in
  /// `[now_ms - period, now_ms)` (a corridor with none there shows 0 attempts, null rate).
  std::optional<corridor_period> period;
  long long now_ms = 0;
};

/// `{corridor:{...as in the list...}, history:[{bucket_start, attempts, successful, failed,
/// success_rate, volume}]}` with history oldest first, or nullopt when no corridor has `id`.
std::optional<nlohmann::json> get_corridor(soci::session& sql, const corridor_detail_query& query);

/// The corridors of `ids` with their lifetime figures, each shaped as in `list_corridors`,
/// in the order of `ids`; unknown ids are left out. One primary-key lookup per id (for the
/// realtime broadcaster, which asks for the corridors a sync run changed).
nlohmann::json corridors_by_id(soci::session& sql, const std::vector<std::string>& ids);

}  // namespace si::storage
