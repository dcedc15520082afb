#pragma once
/// Read repository of asset trustline figures (tables `trustline_stats`,
/// `trustline_snapshots`) for `GET /api/v1/trustlines/...`.

#include <optional>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "storage/api_queries.hpp"

namespace soci {
class session;
}

namespace si::storage {

/// What trustline rankings are sorted by: trustline count or supply (issued amount).
enum class trustline_sort { accounts, supply };

/// Parses `accounts`, `supply`; nullopt otherwise.
std::optional<trustline_sort> parse_trustline_sort(std::string_view text);

/// Sort and page of the rankings.
struct trustline_ranking_query {
  trustline_sort sort_by = trustline_sort::accounts;
  std::optional<sort_order> order;  ///< default desc
  page_request page;
};

/// `{total_assets, total_trustlines, authorized_trustlines, unauthorized_trustlines,
/// assets_reporting_authorization, last_updated}` over `trustline_stats`: `total_trustlines`
/// sums `num_accounts`; the authorized/unauthorized sums cover the assets that report them
/// (counted in `assets_reporting_authorization`) and are null when none does. Supplies of
/// different assets are not summed (they are not one unit).
nlohmann::json trustline_stats(soci::session& sql);

/// `{rankings:[{rank, asset_code, asset_issuer, num_accounts, authorized_accounts,
/// unauthorized_accounts, supply, num_claimable_balances, num_liquidity_pools, updated_at}],
/// total}`; `rank` is the 1-based position in this ordering (offset included). Ties break on
/// code, then issuer.
nlohmann::json trustline_rankings(soci::session& sql, const trustline_ranking_query& query);

/// `{asset_code, asset_issuer, history:[{snapshot_at, num_accounts, supply}], total}` newest
/// first, or nullopt when the asset is unknown (no stats row and no snapshot).
std::optional<nlohmann::json> trustline_history(soci::session& sql, std::string_view code,
                                                std::string_view issuer, page_request page);

}  // namespace si::storage
