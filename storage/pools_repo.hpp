#pragma once
/// Read repository of liquidity pools (tables `liquidity_pools`, `liquidity_pool_snapshots`)
/// for `GET /api/v1/liquidity-pools...`.

#include <optional>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "storage/api_queries.hpp"

namespace soci {
class session;
}

namespace si::storage {

/// What a pool list is sorted by.
enum class pool_sort { tvl, volume, fees, apy };

/// Parses `tvl`, `volume`, `fees`, `apy`; nullopt otherwise.
std::optional<pool_sort> parse_pool_sort(std::string_view text);

/// Sort and page of a pool list.
struct pool_query {
  pool_sort sort_by = pool_sort::tvl;
  std::optional<sort_order> order;  ///< default desc
  page_request page;
};

/// `{pools:[{pool_id, type, fee_bp, reserves:[{asset, amount}], total_shares,
/// total_trustlines, tvl, volume_24h, fees_24h, apy, last_synced_at}], total}`. `reserves` is
/// the stored JSON array as the pools sync wrote it (null if the stored text is not an
/// array); `tvl`, `volume_24h`, `fees_24h`, `apy` are null when not derived. NULLs sort last
/// in both orders; ties break on `pool_id`.
nlohmann::json list_pools(soci::session& sql, const pool_query& query);

/// One pool as in the list, or nullopt.
std::optional<nlohmann::json> get_pool(soci::session& sql, std::string_view pool_id);

/// `{pool_id, snapshots:[{snapshot_at, reserves, total_shares, total_trustlines, tvl,
/// volume_24h, fees_24h, apy}], total}` newest first, or nullopt when the pool is unknown
/// (neither in `liquidity_pools` nor in any snapshot).
std::optional<nlohmann::json> list_pool_snapshots(soci::session& sql, std::string_view pool_id,
                                                  page_request page);

/// `{total_pools, total_tvl, pools_with_tvl, total_volume_24h, pools_with_volume,
/// total_fees_24h, pools_with_fees, avg_apy, pools_with_apy, last_synced_at}`: each sum or
/// average covers the pools that report the figure (counted next to it) and is null when
/// none does; `last_synced_at` is the newest sync (null without pools).
nlohmann::json pool_stats(soci::session& sql);

}  // namespace si::storage
