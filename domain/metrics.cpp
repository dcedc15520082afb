#include "domain/metrics.hpp"

#include <algorithm>
#include <cmath>

namespace si::domain {

// --- corridors ------------------------------------------------------------------------------

std::optional<double> success_rate(int64_t successful, int64_t attempts) {
  if (attempts <= 0) {
    return std::nullopt;
  }
  return 100.0 * static_cast<double>(successful) / static_cast<double>(attempts);
}

int64_t hour_floor(int64_t unix_ms) {
  int64_t q = unix_ms / hour_ms;
  if (unix_ms % hour_ms < 0) {
    --q;  // C++ division truncates towards zero; a bucket starts at or before its instants
  }
  return q * hour_ms;
}

std::string_view to_string(corridor_health health) {
  switch (health) {
    case corridor_health::healthy:
      return "healthy";
    case corridor_health::degraded:
      return "degraded";
    case corridor_health::critical:
      break;
  }
  return "critical";
}

std::optional<corridor_health> parse_corridor_health(std::string_view text) {
  if (text == "healthy") {
    return corridor_health::healthy;
  }
  if (text == "degraded") {
    return corridor_health::degraded;
  }
  if (text == "critical") {
    return corridor_health::critical;
  }
  return std::nullopt;
}

std::optional<corridor_health> classify_corridor(int64_t successful, int64_t attempts,
                                                 const corridor_health_params& params) {
  if (attempts <= 0 || attempts < params.min_attempts) {
    return std::nullopt;
  }
  const double rate = *success_rate(successful, attempts);
  if (rate >= params.healthy_min_rate) {
    return corridor_health::healthy;
  }
  if (rate >= params.degraded_min_rate) {
    return corridor_health::degraded;
  }
  return corridor_health::critical;
}

bool health_degraded(std::optional<corridor_health> previous,
                     std::optional<corridor_health> current) {
  // The enum runs from best to worst, so "worse" is "greater".
  return previous && current && static_cast<int>(*current) > static_cast<int>(*previous);
}

// --- anchors --------------------------------------------------------------------------------

std::string_view to_string(anchor_status status) {
  switch (status) {
    case anchor_status::green:
      return "green";
    case anchor_status::yellow:
      return "yellow";
    case anchor_status::red:
      break;
  }
  return "red";
}

std::optional<anchor_status> parse_anchor_status(std::string_view text) {
  if (text == "green") {
    return anchor_status::green;
  }
  if (text == "yellow") {
    return anchor_status::yellow;
  }
  if (text == "red") {
    return anchor_status::red;
  }
  return std::nullopt;
}

anchor_reliability assess_anchor(int64_t successful, int64_t attempts,
                                 const anchor_reliability_params& params) {
  anchor_reliability out;
  out.success_rate = success_rate(successful, attempts);
  if (!out.success_rate || attempts < params.min_attempts) {
    return out;
  }
  const double rate = *out.success_rate;
  const int64_t full = std::max<int64_t>(1, params.full_confidence_attempts);
  const double confidence =
      std::min(1.0, static_cast<double>(attempts) / static_cast<double>(full));
  out.score = rate * confidence;
  if (rate >= params.green_min_rate) {
    out.status = anchor_status::green;
  } else if (rate >= params.yellow_min_rate) {
    out.status = anchor_status::yellow;
  } else {
    out.status = anchor_status::red;
  }
  return out;
}

// --- liquidity pools ------------------------------------------------------------------------

std::optional<double> reserve_a_units(const liquidity_pool& pool) {
  if (pool.reserves.empty()) {
    return std::nullopt;
  }
  return stroops_to_units(pool.reserves.front().amount);
}

std::optional<int64_t> traded_reserve_a(const liquidity_pool& pool, const trade& t) {
  if (pool.reserves.empty() || t.liquidity_pool_id() != pool.id) {
    return std::nullopt;
  }
  const asset& a = pool.reserves.front().reserve_asset;
  if (t.base_asset == a) {
    return t.base_amount;
  }
  if (t.counter_asset == a) {
    return t.counter_amount;
  }
  return std::nullopt;
}

pool_analytics analyse_pool(const liquidity_pool& pool, const std::vector<trade>* trades,
                            int64_t now_ms) {
  pool_analytics out;
  for (const auto& r : pool.reserves) {
    if (r.reserve_asset.is_native()) {
      // At the pool's own marginal price a constant-product pool holds equal values of both
      // reserves, so its value in XLM is twice its XLM reserve.
      out.tvl = 2.0 * stroops_to_units(r.amount);
      break;
    }
  }
  if (trades == nullptr || pool.reserves.empty()) {
    return out;  // trades unknown, or no reserve A to count them in
  }
  double volume = 0;  // units: int64 stroops could overflow over a day of a big supply
  for (const auto& t : *trades) {
    if (t.ledger_close_time_ms < now_ms - day_ms || t.ledger_close_time_ms >= now_ms) {
      continue;
    }
    if (auto amount = traded_reserve_a(pool, t)) {
      volume += stroops_to_units(*amount);
      ++out.trades_in_window;
    }
  }
  out.volume_24h = volume;
  out.fees_24h = *out.volume_24h * static_cast<double>(pool.fee_bp) / 10'000.0;
  const auto reserve_a = reserve_a_units(pool);
  if (out.trades_in_window == 0 || pool.reserves.size() != 2 || !reserve_a || *reserve_a <= 0) {
    return out;
  }
  const double daily = *out.fees_24h / (2.0 * *reserve_a);
  const double apy = (std::pow(1.0 + daily, 365.0) - 1.0) * 100.0;
  if (std::isfinite(apy)) {
    out.apy = apy;
  }
  return out;
}

std::optional<double> drop_percent(double previous, double current) {
  if (!(previous > 0)) {
    return std::nullopt;
  }
  return (previous - current) * 100.0 / previous;
}

bool liquidity_dropped(double previous, double current, double threshold_percent) {
  const auto drop = drop_percent(previous, current);
  return drop && *drop >= threshold_percent && *drop > 0;
}

// --- trustlines -----------------------------------------------------------------------------

trustline_figures trustline_figures_of(const asset_stats& stats) {
  trustline_figures out;
  out.num_accounts = stats.num_accounts;
  if (stats.accounts) {
    out.authorized_accounts = stats.accounts->authorized;
    out.unauthorized_accounts =
        stats.accounts->unauthorized + stats.accounts->authorized_to_maintain_liabilities;
  }
  out.amount = stroops_to_units(stats.amount);
  out.num_claimable_balances = stats.num_claimable_balances;
  out.num_liquidity_pools = stats.num_liquidity_pools;
  return out;
}

}  // namespace si::domain
