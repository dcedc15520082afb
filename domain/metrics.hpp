#pragma once
/// The analytics the sync schedulers compute, as pure functions: corridor success rates and
/// health, anchor reliability, liquidity pool figures from real trades, and trustline counts
/// from asset statistics. No I/O; `storage/sync_repo` feeds them rows and stores the results.
///
/// Every figure that cannot be derived from the data is `nullopt` (stored as NULL, shown as
/// JSON null), never a default. Units and formulas are listed in docs/analytics.md.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "domain/horizon.hpp"

namespace si::domain {

/// One hour in milliseconds: the width of a corridor bucket.
inline constexpr int64_t hour_ms = 3'600'000;
/// One day in milliseconds: the window of `volume_24h` / `fees_24h`.
inline constexpr int64_t day_ms = 24 * hour_ms;

// --- corridors ------------------------------------------------------------------------------

/// The operation types corridors and anchors count: the payment-like types of
/// `is_payment_like` (the ones whose from/to, assets and amounts the ingestor stores).
inline constexpr std::array<std::string_view, 5> corridor_operation_types = {
    "payment", "path_payment_strict_send", "path_payment_strict_receive", "create_account",
    "account_merge"};

/// Success rate in percent, `100 * successful / attempts`; nullopt without attempts.
std::optional<double> success_rate(int64_t successful, int64_t attempts);

/// The start of the hourly bucket holding `unix_ms` (floored to the hour, also before 1970).
int64_t hour_floor(int64_t unix_ms);

/// How well a corridor's payments go through, from best to worst.
enum class corridor_health { healthy, degraded, critical };

/// `healthy`, `degraded` or `critical`.
std::string_view to_string(corridor_health health);
/// The inverse of `to_string`; nullopt for anything else.
std::optional<corridor_health> parse_corridor_health(std::string_view text);

/// Thresholds of corridor health (success rates in percent, bounds inclusive).
struct corridor_health_params {
  /// At or above: healthy.
  double healthy_min_rate = 95.0;
  /// At or above (and below `healthy_min_rate`): degraded; below: critical.
  double degraded_min_rate = 80.0;
  /// Fewer attempts in the window: health unknown (nullopt).
  int64_t min_attempts = 10;
};

/// The health of a corridor with `successful` of `attempts` payments in a window; nullopt
/// when `attempts < params.min_attempts` (too few to judge).
std::optional<corridor_health> classify_corridor(int64_t successful, int64_t attempts,
                                                 const corridor_health_params& params = {});

/// True when health got worse between two evaluations (healthy → degraded, healthy →
/// critical, degraded → critical). False when either is unknown: two known snapshots are
/// needed to speak of a change.
bool health_degraded(std::optional<corridor_health> previous,
                     std::optional<corridor_health> current);

// --- anchors --------------------------------------------------------------------------------

/// An anchor's traffic light.
enum class anchor_status { green, yellow, red };

/// `green`, `yellow` or `red`.
std::string_view to_string(anchor_status status);
/// The inverse of `to_string`; nullopt for anything else.
std::optional<anchor_status> parse_anchor_status(std::string_view text);

/// Thresholds of anchor reliability (rates in percent, bounds inclusive).
struct anchor_reliability_params {
  /// Success rate at or above: green.
  double green_min_rate = 95.0;
  /// Success rate at or above (and below `green_min_rate`): yellow; below: red.
  double yellow_min_rate = 80.0;
  /// Fewer attempts: not judged (score nullopt, status kept as it was).
  int64_t min_attempts = 10;
  /// Attempts from which the score is the success rate itself; below, it is scaled down in
  /// proportion (less evidence, less credit). Must be >= 1.
  int64_t full_confidence_attempts = 100;
};

/// What one evaluation of an anchor says.
struct anchor_reliability {
  std::optional<double> success_rate;  ///< percent; nullopt without attempts
  /// `success_rate * min(1, attempts / full_confidence_attempts)`, 0..100; nullopt when
  /// `attempts < min_attempts`.
  std::optional<double> score;
  /// From the success rate; nullopt when `attempts < min_attempts` (keep the previous one).
  std::optional<anchor_status> status;
};

/// Judges an anchor with `successful` of `attempts` operations.
anchor_reliability assess_anchor(int64_t successful, int64_t attempts,
                                 const anchor_reliability_params& params = {});

// --- liquidity pools ------------------------------------------------------------------------

/// Figures of one liquidity pool derived from its reserves and its trades.
struct pool_analytics {
  /// Σ over the pool's trades in [now - 24h, now) of the traded amount of reserve A (the
  /// pool's first reserve asset), in units of reserve A. nullopt when the trades are unknown
  /// or the pool has no reserves.
  std::optional<double> volume_24h;
  /// `volume_24h * fee_bp / 10000`, in units of reserve A; nullopt when `volume_24h` is.
  std::optional<double> fees_24h;
  /// Percent per year, `((1 + fees_24h / (2 * reserve_a)) ^ 365 - 1) * 100`; nullopt without
  /// a trade in the window, with an empty reserve A, without two reserves, or when not finite.
  std::optional<double> apy;
  /// Total value locked in XLM, `2 * native reserve`, for pools holding XLM; nullopt for
  /// pools without XLM (no price source to value them in a common unit).
  std::optional<double> tvl;
  /// The trades counted in the window.
  int64_t trades_in_window = 0;
};

/// `pool.reserves[0]` in units; nullopt when the pool has no reserves.
std::optional<double> reserve_a_units(const liquidity_pool& pool);

/// The traded amount of the pool's reserve A in `t`, in stroops: the base amount when the
/// base asset is reserve A, the counter amount when the counter asset is; nullopt when `t`
/// did not trade against `pool` (another pool or none) or does not hold reserve A.
std::optional<int64_t> traded_reserve_a(const liquidity_pool& pool, const trade& t);

/// The pool's figures at `now_ms`. `trades` holds every trade of the pool since at least
/// `now_ms - 24h` (older and newer ones are ignored, as are trades against other pools);
/// nullptr means they are unknown, which makes volume, fees and APY nullopt.
pool_analytics analyse_pool(const liquidity_pool& pool, const std::vector<trade>* trades,
                            int64_t now_ms);

/// The drop from `previous` to `current` in percent of `previous` (negative for a rise);
/// nullopt when `previous <= 0` (nothing to drop from).
std::optional<double> drop_percent(double previous, double current);

/// True when `current` is at least `threshold_percent` percent below `previous` (> 0).
bool liquidity_dropped(double previous, double current, double threshold_percent);

// --- trustlines -----------------------------------------------------------------------------

/// Trustline figures of one asset, from Horizon's `/assets` record.
struct trustline_figures {
  /// Authorized trustlines (`accounts.authorized`, else the legacy `num_accounts`).
  int64_t num_accounts = 0;
  /// `accounts.authorized`; nullopt when the record has no `accounts` breakdown.
  std::optional<int64_t> authorized_accounts;
  /// Not fully authorized: `accounts.unauthorized + accounts.authorized_to_maintain_liabilities`;
  /// nullopt when the record has no `accounts` breakdown.
  std::optional<int64_t> unauthorized_accounts;
  /// Units held on authorized trustlines (`balances.authorized`, else the legacy `amount`).
  double amount = 0;
  int64_t num_claimable_balances = 0;
  int64_t num_liquidity_pools = 0;
};

/// The trustline figures of `stats`.
trustline_figures trustline_figures_of(const asset_stats& stats);

}  // namespace si::domain
