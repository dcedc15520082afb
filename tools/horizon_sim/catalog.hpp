#pragma once
/// Records that are not part of a ledger's transaction set: liquidity pools, their trades
/// and asset statistics. Rendered on demand (they are few, or cheap).
///
/// Trades: pool p trades once per `trade_spacing` ledgers. Trade k of p happens in ledger
/// k*s + 1 + h(p, k) % s (s = trade_spacing), so trades are strictly ordered, one per
/// ledger at most, and computable in any order. Its TOID is (ledger, p.index + 1, 1 + h % 3),
/// its id and paging token "<TOID>-0". Trades exist for every ledger number, also before the
/// start ledger; /liquidity_pools/{id}/trades serves those of the last 48 h of ledger time.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "tools/horizon_sim/world.hpp"

namespace si::sim {

/// Ledgers in 48 hours of ledger time (the trade window).
inline constexpr int64_t trade_window_ledgers = 48 * 3600 / ledger_seconds;

/// The ledger of trade `k` of `p`.
int64_t trade_ledger(const world& w, const pool_def& p, int64_t k);

/// The TOID of trade `k` of `p`.
uint64_t trade_toid(const world& w, const pool_def& p, int64_t k);

/// The first trade index whose ledger is >= `ledger` (ledger >= 1).
int64_t first_trade_at_or_after(const world& w, const pool_def& p, int64_t ledger);

/// The last trade index whose ledger is <= `ledger`, or -1.
int64_t last_trade_at_or_before(const world& w, const pool_def& p, int64_t ledger);

/// Appends the JSON of trade `k` of `p`.
void render_trade(std::string& out, const world& w, const pool_def& p, int64_t k);

/// Appends the JSON of pool `p` as of ledger `latest` (its last trade modified it).
void render_pool(std::string& out, const world& w, const pool_def& p, uint32_t latest);

/// Appends the JSON of the statistics of issued asset `ref`.
void render_asset(std::string& out, const world& w, asset_ref ref);

/// `CODE_ISSUER_credit_alphanum4` (or 12): an asset record's paging token.
std::string asset_paging_token(const world& w, asset_ref ref);

/// Parses a trade cursor "<toid>-<n>" or "<toid>" into (toid, n); nullopt when malformed.
std::optional<std::pair<uint64_t, uint64_t>> parse_trade_cursor(std::string_view text);

}  // namespace si::sim
