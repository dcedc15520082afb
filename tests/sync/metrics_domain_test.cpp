#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "domain/metrics.hpp"
#include "sync_support.hpp"

using namespace si::domain;
using si::sync_test::eurc;
using si::sync_test::fixture_page;
using si::sync_test::usdc;

namespace {

constexpr int64_t t0 = 1'719'997'200'000;  // an hour boundary (2024-07-03T09:00:00Z)

trade pool_trade(const std::string& pool_id, int64_t at, asset base, int64_t base_amount,
                 asset counter, int64_t counter_amount) {
  trade t;
  t.id = std::to_string(at) + "-0";
  t.ledger_close_time_ms = at;
  t.trade_type = "liquidity_pool";
  t.base_asset = std::move(base);
  t.base_amount = base_amount;
  t.counter_asset = std::move(counter);
  t.counter_amount = counter_amount;
  t.base_account = si::sync_test::account_a;
  t.counter_liquidity_pool_id = pool_id;
  t.liquidity_pool_fee_bp = 30;
  return t;
}

liquidity_pool make_pool(const std::string& id, asset a, int64_t a_stroops, asset b,
                         int64_t b_stroops) {
  liquidity_pool p;
  p.id = id;
  p.fee_bp = 30;
  p.type = "constant_product";
  p.total_shares = 1'000'000'000;
  p.total_trustlines = 2;
  p.reserves = {{std::move(a), a_stroops}, {std::move(b), b_stroops}};
  return p;
}

const std::string pool_id(64, 'c');
const std::string other_pool_id(64, 'd');

}  // namespace

TEST_CASE("success rate is percent of attempts and unknown without attempts", "[metrics]") {
  CHECK(success_rate(4, 5) == 80.0);
  CHECK(success_rate(0, 7) == 0.0);
  CHECK(success_rate(3, 3) == 100.0);
  CHECK(*success_rate(1, 3) == Approx(100.0 / 3.0));
  CHECK_FALSE(success_rate(0, 0).has_value());
  CHECK_FALSE(success_rate(0, -1).has_value());
}

TEST_CASE("hour buckets start at the hour at or before the instant", "[metrics]") {
  CHECK(hour_floor(t0) == t0);
  CHECK(hour_floor(t0 + hour_ms - 1) == t0);
  CHECK(hour_floor(t0 + hour_ms) == t0 + hour_ms);
  CHECK(hour_floor(0) == 0);
  CHECK(hour_floor(-1) == -hour_ms);
  CHECK(hour_floor(-hour_ms) == -hour_ms);
}

TEST_CASE("the counted operation types are exactly the payment-like ones", "[metrics]") {
  for (auto type : corridor_operation_types) {
    INFO(type);
    CHECK(is_payment_like(type));
  }
  CHECK(corridor_operation_types.size() == 5);
  CHECK_FALSE(is_payment_like("manage_sell_offer"));
}

TEST_CASE("corridor health thresholds are inclusive and need enough attempts", "[metrics]") {
  const corridor_health_params p;  // documented defaults: 95 / 80 / 10
  CHECK(p.healthy_min_rate == 95.0);
  CHECK(p.degraded_min_rate == 80.0);
  CHECK(p.min_attempts == 10);
  CHECK(classify_corridor(100, 100, p) == corridor_health::healthy);
  CHECK(classify_corridor(19, 20, p) == corridor_health::healthy);  // exactly 95 %
  CHECK(classify_corridor(94, 100, p) == corridor_health::degraded);
  CHECK(classify_corridor(16, 20, p) == corridor_health::degraded);  // exactly 80 %
  CHECK(classify_corridor(79, 100, p) == corridor_health::critical);
  CHECK(classify_corridor(0, 10, p) == corridor_health::critical);
  CHECK(classify_corridor(10, 10, p) == corridor_health::healthy);  // exactly min_attempts
  CHECK_FALSE(classify_corridor(9, 9, p).has_value());              // one short
  CHECK_FALSE(classify_corridor(0, 0, corridor_health_params{95, 80, 0}).has_value());

  const corridor_health_params strict{99.5, 90, 1};
  CHECK(classify_corridor(1, 1, strict) == corridor_health::healthy);
  CHECK(classify_corridor(199, 200, strict) == corridor_health::healthy);  // 99.5
  CHECK(classify_corridor(198, 200, strict) == corridor_health::degraded);

  CHECK(to_string(corridor_health::degraded) == "degraded");
  CHECK(parse_corridor_health("critical") == corridor_health::critical);
  CHECK_FALSE(parse_corridor_health("Critical").has_value());
}

TEST_CASE("health degradation needs two known evaluations and a worse one", "[metrics]") {
  using h = corridor_health;
  CHECK(health_degraded(h::healthy, h::degraded));
  CHECK(health_degraded(h::healthy, h::critical));
  CHECK(health_degraded(h::degraded, h::critical));
  CHECK_FALSE(health_degraded(h::healthy, h::healthy));
  CHECK_FALSE(health_degraded(h::critical, h::critical));
  CHECK_FALSE(health_degraded(h::critical, h::degraded));
  CHECK_FALSE(health_degraded(h::degraded, h::healthy));
  CHECK_FALSE(health_degraded(std::nullopt, h::critical));
  CHECK_FALSE(health_degraded(h::healthy, std::nullopt));
}

TEST_CASE("anchor reliability: score scaled by evidence, status from the rate", "[metrics]") {
  const anchor_reliability_params p;  // documented defaults: 95 / 80 / 10 / 100
  CHECK(p.green_min_rate == 95.0);
  CHECK(p.yellow_min_rate == 80.0);
  CHECK(p.min_attempts == 10);
  CHECK(p.full_confidence_attempts == 100);

  auto r = assess_anchor(95, 100, p);
  CHECK(r.success_rate == 95.0);
  CHECK(r.score == 95.0);
  CHECK(r.status == anchor_status::green);

  r = assess_anchor(200, 200, p);  // confidence capped at 1
  CHECK(r.score == 100.0);

  r = assess_anchor(8, 10, p);  // exactly min_attempts, exactly 80 %
  CHECK(r.success_rate == 80.0);
  CHECK(r.score == 8.0);  // 80 * 10 / 100
  CHECK(r.status == anchor_status::yellow);

  r = assess_anchor(79, 100, p);
  CHECK(r.status == anchor_status::red);
  CHECK(r.score == 79.0);

  r = assess_anchor(9, 9, p);  // one short of min_attempts: rate known, nothing judged
  CHECK(r.success_rate == 100.0);
  CHECK_FALSE(r.score.has_value());
  CHECK_FALSE(r.status.has_value());

  r = assess_anchor(0, 0, anchor_reliability_params{95, 80, 0, 100});
  CHECK_FALSE(r.success_rate.has_value());
  CHECK_FALSE(r.score.has_value());
  CHECK_FALSE(r.status.has_value());

  r = assess_anchor(4, 5, anchor_reliability_params{95, 80, 4, 10});
  CHECK(r.score == 40.0);
  CHECK(r.status == anchor_status::yellow);

  CHECK(to_string(anchor_status::yellow) == "yellow");
  CHECK(parse_anchor_status("red") == anchor_status::red);
  CHECK_FALSE(parse_anchor_status("amber").has_value());
}

TEST_CASE("pool volume and fees count reserve A of the pool's trades in the last 24 h",
          "[metrics]") {
  const int64_t now = t0 + 30 * 60'000;
  const auto pool = make_pool(pool_id, usdc(), 10'000'000'000, eurc(), 5'000'000'000);
  std::vector<trade> trades = {
      pool_trade(pool_id, now - 1, usdc(), 100'000'000, eurc(), 50'000'000),       // 10 A
      pool_trade(pool_id, now - hour_ms, eurc(), 40'000'000, usdc(), 80'000'000),  // 8 A
      pool_trade(pool_id, now - day_ms, usdc(), 20'000'000, eurc(), 10'000'000),   // first instant
      pool_trade(pool_id, now, usdc(), 1'000'000'000, eurc(), 1),                  // window end
      pool_trade(pool_id, now - day_ms - 1, usdc(), 1'000'000'000, eurc(), 1),     // before it
      pool_trade(other_pool_id, now - 1, usdc(), 1'000'000'000, eurc(), 1),        // another pool
  };
  trade book = pool_trade(pool_id, now - 1, usdc(), 1'000'000'000, eurc(), 1);
  book.counter_liquidity_pool_id.reset();
  book.counter_account = si::sync_test::account_b;
  book.trade_type = "orderbook";
  trades.push_back(book);

  CHECK(traded_reserve_a(pool, trades[0]) == 100'000'000);
  CHECK(traded_reserve_a(pool, trades[1]) == 80'000'000);  // reserve A on the counter side
  CHECK_FALSE(traded_reserve_a(pool, trades[5]).has_value());
  CHECK_FALSE(traded_reserve_a(pool, book).has_value());

  const auto f = analyse_pool(pool, &trades, now);
  CHECK(f.trades_in_window == 3);
  CHECK(*f.volume_24h == Approx(20.0).epsilon(1e-12));
  CHECK(*f.fees_24h == Approx(0.06).epsilon(1e-12));  // 20 * 30 / 10000
  // daily yield 0.06 / (2 * 1000) compounded daily for a year, in percent
  CHECK(*f.apy == Approx((std::pow(1.00003, 365.0) - 1.0) * 100.0).epsilon(1e-12));
  CHECK(*f.apy == Approx(1.1010005).epsilon(1e-7));
  CHECK_FALSE(f.tvl.has_value());  // no XLM reserve: no common unit to value it in
}

TEST_CASE("pool figures are null when they cannot be derived", "[metrics]") {
  const int64_t now = t0;
  const auto pool = make_pool(pool_id, usdc(), 10'000'000'000, eurc(), 5'000'000'000);

  const auto unknown = analyse_pool(pool, nullptr, now);  // trades never fetched
  CHECK_FALSE(unknown.volume_24h.has_value());
  CHECK_FALSE(unknown.fees_24h.has_value());
  CHECK_FALSE(unknown.apy.has_value());
  CHECK(unknown.trades_in_window == 0);

  const std::vector<trade> none;
  const auto quiet = analyse_pool(pool, &none, now);  // known: nothing traded
  CHECK(quiet.volume_24h == 0.0);
  CHECK(quiet.fees_24h == 0.0);
  CHECK_FALSE(quiet.apy.has_value());  // no trade, no yield to annualise

  const std::vector<trade> one = {
      pool_trade(pool_id, now - 1, usdc(), 10'000'000, eurc(), 5'000'000)};
  auto empty = make_pool(pool_id, usdc(), 0, eurc(), 0);
  const auto drained = analyse_pool(empty, &one, now);
  CHECK(*drained.volume_24h == Approx(1.0));
  CHECK_FALSE(drained.apy.has_value());  // empty reserve A: no value to relate fees to

  auto bare = pool;
  bare.reserves.clear();
  CHECK_FALSE(reserve_a_units(bare).has_value());
  const auto no_reserves = analyse_pool(bare, &one, now);
  CHECK_FALSE(no_reserves.volume_24h.has_value());  // no reserve A to count in
  CHECK_FALSE(no_reserves.fees_24h.has_value());
  CHECK_FALSE(no_reserves.apy.has_value());
  CHECK_FALSE(no_reserves.tvl.has_value());

  // A yield so large it does not fit a double is not reported as infinity.
  const auto tiny = make_pool(pool_id, usdc(), 1, eurc(), 1);
  const std::vector<trade> huge = {
      pool_trade(pool_id, now - 1, usdc(), 9'000'000'000'000'000, eurc(), 1)};
  const auto wild = analyse_pool(tiny, &huge, now);
  CHECK(wild.fees_24h.has_value());
  CHECK_FALSE(wild.apy.has_value());
}

TEST_CASE("pool TVL is twice the XLM reserve, in XLM", "[metrics]") {
  const auto pool = make_pool(pool_id, native_asset(), 500'000'000, usdc(), 1'000'000'000);
  const auto f = analyse_pool(pool, nullptr, t0);
  CHECK(f.tvl == 100.0);  // 2 * 50 XLM
  const auto empty = make_pool(pool_id, native_asset(), 0, usdc(), 0);
  CHECK(analyse_pool(empty, nullptr, t0).tvl == 0.0);
}

TEST_CASE("liquidity drop is a percent of the previous figure, threshold inclusive", "[metrics]") {
  CHECK(drop_percent(100, 80) == 20.0);
  CHECK(drop_percent(100, 120) == -20.0);
  CHECK(drop_percent(10, 0) == 100.0);
  CHECK_FALSE(drop_percent(0, 5).has_value());
  CHECK(liquidity_dropped(100, 80, 20));
  CHECK_FALSE(liquidity_dropped(100, 80.0000001, 20));
  CHECK(liquidity_dropped(100, 79.9999999, 20));
  CHECK_FALSE(liquidity_dropped(100, 120, 20));
  CHECK_FALSE(liquidity_dropped(0, 0, 20));
  CHECK_FALSE(liquidity_dropped(100, 100, 0));  // no drop at all is never a drop
  CHECK(liquidity_dropped(100, 99.9, 0));
}

TEST_CASE("trustline figures from Horizon asset records", "[metrics]") {
  const auto page = fixture_page<asset_stats>("assets_page.json");
  REQUIRE(page.records.size() == 3);
  const auto f = trustline_figures_of(page.records[0]);
  CHECK(f.num_accounts == 25);
  CHECK(f.authorized_accounts == 25);
  CHECK(f.unauthorized_accounts == 0);
  CHECK(f.amount == 988.9481303);
  CHECK(f.num_claimable_balances == 0);
  CHECK(f.num_liquidity_pools == 0);

  asset_stats s;
  s.stats_asset = usdc();
  s.num_accounts = 7;
  s.amount = 123'456'789;
  s.accounts = asset_accounts{5, 2, 3};
  s.num_claimable_balances = 4;
  s.num_liquidity_pools = 1;
  const auto g = trustline_figures_of(s);
  CHECK(g.num_accounts == 7);
  CHECK(g.authorized_accounts == 5);
  CHECK(g.unauthorized_accounts == 5);  // unauthorized 3 + authorized_to_maintain_liabilities 2
  CHECK(g.amount == 12.3456789);
  CHECK(g.num_claimable_balances == 4);
  CHECK(g.num_liquidity_pools == 1);

  s.accounts.reset();  // a legacy record without the breakdown
  const auto legacy = trustline_figures_of(s);
  CHECK(legacy.num_accounts == 7);
  CHECK_FALSE(legacy.authorized_accounts.has_value());
  CHECK_FALSE(legacy.unauthorized_accounts.has_value());
}
