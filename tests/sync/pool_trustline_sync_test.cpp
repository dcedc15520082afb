#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "domain/horizon_values.hpp"
#include "storage/pools_repo.hpp"
#include "storage/sync_repo.hpp"
#include "storage/trustlines_repo.hpp"
#include "sync_support.hpp"

using namespace si::storage;
using namespace si::sync_test;
namespace domain = si::domain;
using nlohmann::json;

namespace {

constexpr int64_t hour = domain::hour_ms;

/// The fixture pools, in page order: 0000a819… (XLM/GOLDBANK001, the traded one),
/// 00027e57… (XLM/OPAL), 00038572… (NRI/VELO, no XLM).
std::vector<domain::liquidity_pool> fixture_pools() {
  auto pools = fixture_page<domain::liquidity_pool>("liquidity_pools_page.json").records;
  REQUIRE(pools.size() == 3);
  return pools;
}

/// The fixture trade's close time (2024-01-13T11:19:52Z) plus one hour.
int64_t after_trade() {
  const auto trades = fixture_page<domain::trade>("liquidity_pool_trades_page.json").records;
  REQUIRE(trades.size() == 1);
  return trades[0].ledger_close_time_ms + hour;
}

json without_sync_runs(json dump) {
  dump.erase("sync_runs");
  return dump;
}

void pools_from_fixtures(test_db& db) {
  const auto pools = fixture_pools();
  const auto trades = fixture_page<domain::trade>("liquidity_pool_trades_page.json").records;
  const int64_t now = after_trade();
  // The traded pool with its (complete) trades; OPAL's known to have none; NRI/VELO's unknown.
  const std::map<std::string, std::vector<domain::trade>> by_pool = {{pools[0].id, trades},
                                                                     {pools[1].id, {}}};

  event_log log;
  const auto r = run_pool_sync(db.sql(), db.kind(), now, pools, by_pool, {}, log.fn());
  CHECK(r.pools_upserted == 3);
  CHECK(r.snapshots_written == 3);
  CHECK(r.updated_pool_ids == std::vector<std::string>{pools[0].id, pools[1].id, pools[2].id});
  CHECK(r.invalidate_prefixes == std::vector<std::string>{"api:/api/v1/liquidity-pools"});
  CHECK(r.events.empty());

  // 0.0242091 XLM traded (the base side is reserve A, native); fee 30 bp; reserve A 2.649445.
  const double volume = 0.0242091;
  const double fees = volume * 30 / 10'000;
  const double apy = (std::pow(1 + fees / (2 * 2.649445), 365.0) - 1) * 100;

  const auto traded = get_pool(db.sql(), pools[0].id);
  REQUIRE(traded);
  CHECK(traded->at("fee_bp") == 30);
  CHECK(traded->at("type") == "constant_product");
  CHECK(traded->at("total_shares") == 5494.2144063);
  CHECK(traded->at("total_trustlines") == 1);
  CHECK(traded->at("reserves")
        == json::array(
            {{{"asset", "native"}, {"amount", "2.6494450"}},
             {{"asset", "GOLDBANK001:GDEUQ2MX3YXMITFOTC3CO3GW5V3XE3IVG7JKLZZAOZ7WFYIN256INDUS"},
              {"amount", "16342845.4610607"}}}));
  CHECK(traded->at("volume_24h").get<double>() == Approx(volume).epsilon(1e-12));
  CHECK(traded->at("fees_24h").get<double>() == Approx(fees).epsilon(1e-12));
  CHECK(traded->at("apy").get<double>() == Approx(apy).epsilon(1e-12));
  CHECK(traded->at("apy").get<double>() == Approx(0.5015239).epsilon(1e-6));
  CHECK(traded->at("tvl").get<double>() == Approx(5.29889).epsilon(1e-12));
  CHECK(traded->at("last_synced_at") == now);

  const auto quiet = get_pool(db.sql(), pools[1].id);
  REQUIRE(quiet);
  CHECK(quiet->at("volume_24h") == 0.0);
  CHECK(quiet->at("fees_24h") == 0.0);
  CHECK(quiet->at("apy").is_null());
  CHECK(quiet->at("tvl").get<double>() == Approx(0.1594868).epsilon(1e-12));

  const auto unknown = get_pool(db.sql(), pools[2].id);
  REQUIRE(unknown);
  CHECK(unknown->at("volume_24h").is_null());
  CHECK(unknown->at("fees_24h").is_null());
  CHECK(unknown->at("apy").is_null());
  CHECK(unknown->at("tvl").is_null());  // NRI/VELO: no XLM reserve, no common unit

  pool_query by_tvl;
  const auto list = list_pools(db.sql(), by_tvl);
  REQUIRE(list.at("total") == 3);
  CHECK(list.at("pools").at(0).at("pool_id") == pools[0].id);
  CHECK(list.at("pools").at(2).at("pool_id") == pools[2].id);  // unknown TVL last

  const auto stats = pool_stats(db.sql());
  CHECK(stats.at("total_pools") == 3);
  CHECK(stats.at("pools_with_tvl") == 2);
  CHECK(stats.at("total_tvl").get<double>() == Approx(5.29889 + 0.1594868).epsilon(1e-12));
  CHECK(stats.at("pools_with_volume") == 2);
  CHECK(stats.at("total_volume_24h").get<double>() == Approx(volume).epsilon(1e-12));
  CHECK(stats.at("pools_with_fees") == 2);
  CHECK(stats.at("pools_with_apy") == 1);
  CHECK(stats.at("avg_apy").get<double>() == Approx(apy).epsilon(1e-12));
  CHECK(stats.at("last_synced_at") == now);

  auto snaps = list_pool_snapshots(db.sql(), pools[0].id, {});
  REQUIRE(snaps);
  REQUIRE(snaps->at("total") == 1);
  CHECK(snaps->at("snapshots").at(0).at("snapshot_at") == now);
  CHECK(snaps->at("snapshots").at(0).at("reserves") == traded->at("reserves"));
  CHECK(snaps->at("snapshots").at(0).at("apy") == traded->at("apy"));

  // The trade is older than 24 h a day later: volume 0, no APY. Snapshots accumulate.
  const auto day_later =
      run_pool_sync(db.sql(), db.kind(), now + domain::day_ms, pools, by_pool, {}, log.fn());
  CHECK(day_later.events.empty());
  const auto stale = get_pool(db.sql(), pools[0].id);
  CHECK(stale->at("volume_24h") == 0.0);
  CHECK(stale->at("apy").is_null());
  snaps = list_pool_snapshots(db.sql(), pools[0].id, {});
  REQUIRE(snaps->at("total") == 2);
  CHECK(snaps->at("snapshots").at(0).at("snapshot_at") == now + domain::day_ms);  // newest first
  CHECK(snaps->at("snapshots").at(1).at("volume_24h").get<double>()
        == Approx(volume).epsilon(1e-12));

  // Re-running the same instant upserts: no new snapshot, nothing changes.
  const auto before = without_sync_runs(dump_sync_tables(db.sql()));
  run_pool_sync(db.sql(), db.kind(), now + domain::day_ms, pools, by_pool, {}, log.fn());
  CHECK(without_sync_runs(dump_sync_tables(db.sql())) == before);
  CHECK(count_rows(db.sql(), "liquidity_pool_snapshots") == 6);
  CHECK(log.seen.empty());
  CHECK(read_last_run(db.sql(), "pools")->last_run_at == now + domain::day_ms);
}

SI_SYNC_BOTH_BACKENDS("pool sync from Horizon fixtures: figures, nulls, snapshots",
                      pools_from_fixtures)

void liquidity_drop_events(test_db& db) {
  auto pools = fixture_pools();
  const int64_t n1 = after_trade();
  const std::map<std::string, std::vector<domain::trade>> none;
  pools[0].total_shares = 1'000'000'000;  // 100 shares
  pools[1].total_shares = 1'000'000'000;
  event_log log;
  CHECK(run_pool_sync(db.sql(), db.kind(), n1, pools, none, {}, log.fn()).events.empty());

  // Exactly the 20 % threshold drops; 19.9999999 % does not.
  pools[0].total_shares = 800'000'000;
  pools[1].total_shares = 800'000'001;
  const int64_t n2 = n1 + hour;
  const auto r2 = run_pool_sync(db.sql(), db.kind(), n2, pools, none, {}, log.fn());
  REQUIRE(r2.events.size() == 1);
  CHECK(r2.events[0].type == "pool.liquidity_dropped");
  CHECK(r2.events[0].data
        == json{{"pool_id", pools[0].id},
                {"previous_total_shares", 100.0},
                {"current_total_shares", 80.0},
                {"previous_reserve_a", 2.649445},
                {"current_reserve_a", 2.649445},
                {"drop_percent", 20.0},
                {"threshold_percent", 20.0}});
  CHECK(log.seen.size() == 1);
  CHECK(count_rows(db.sql(), "webhook_outbox") == 1);

  // Re-running the same snapshot does not report the drop again.
  CHECK(run_pool_sync(db.sql(), db.kind(), n2, pools, none, {}, log.fn()).events.empty());
  CHECK(count_rows(db.sql(), "liquidity_pool_snapshots") == 6);

  // A throwing callback undoes the whole run, sync_runs included.
  pools[0].total_shares = 400'000'000;
  pools[0].reserves[0].amount = 13'247'225;
  const int64_t n3 = n2 + hour;
  const auto before = dump_sync_tables(db.sql());
  REQUIRE_THROWS_WITH(run_pool_sync(db.sql(), db.kind(), n3, pools, none, {}, throwing_callback()),
                      "outbox unavailable");
  CHECK(dump_sync_tables(db.sql()) == before);

  const auto r3 = run_pool_sync(db.sql(), db.kind(), n3, pools, none, {}, log.fn());
  REQUIRE(r3.events.size() == 1);
  CHECK(r3.events[0].data.at("drop_percent") == 50.0);
  CHECK(r3.events[0].data.at("previous_reserve_a") == 2.649445);
  CHECK(r3.events[0].data.at("current_reserve_a") == 1.3247225);
  CHECK(log.seen.size() == 2);

  // A custom threshold.
  pools[1].total_shares = 700'000'000;  // 12.5 % below 80.0000001
  pool_sync_params ten;
  ten.liquidity_drop_percent = 10;
  const auto r4 = run_pool_sync(db.sql(), db.kind(), n3 + hour, pools, none, ten, log.fn());
  REQUIRE(r4.events.size() == 1);
  CHECK(r4.events[0].data.at("pool_id") == pools[1].id);
  CHECK(r4.events[0].data.at("threshold_percent") == 10.0);
}

SI_SYNC_BOTH_BACKENDS("pool.liquidity_dropped fires once when shares fall past the threshold",
                      liquidity_drop_events)

void trustlines_from_fixtures(test_db& db) {
  const auto assets = fixture_page<domain::asset_stats>("assets_page.json").records;
  REQUIRE(assets.size() == 3);
  const std::string big = "GBBJZOYEGLOCW32Q4ZGWRWQ7UKIGMMIQXIRBBBOVJVFJTZW7CR2VQKAT";
  const int64_t now = 1'720'000'000'000;

  // A home domain learnt elsewhere survives the sync (Horizon's /assets does not carry it).
  db.sql() << "INSERT INTO assets (asset_code, asset_issuer, asset_type, home_domain, "
              "last_synced_at) VALUES ('0', :i, 'credit_alphanum4', 'zero.example', 1)",
      soci::use(big);

  event_log log;
  const auto r = run_trustline_sync(db.sql(), db.kind(), now, assets, log.fn());
  CHECK(r.assets_upserted == 3);
  CHECK(r.snapshots_written == 3);
  CHECK(r.updated_assets
        == std::vector<std::string>{"0:" + big,
                                    "0:GCKHHE33Q64N7NVM2AEWLWK4T55VPZBFQ5WNU7E3TNO6LTGM6JR3GJGG",
                                    "0:GD3OJBRBHR77ZCRCK5I7LNKHMWN4RYLEAUJ3EROF4PYO6FZZOQBCDION"});
  CHECK(r.invalidate_prefixes == std::vector<std::string>{"api:/api/v1/trustlines"});
  CHECK(r.events.empty());
  CHECK(log.seen.empty());

  const auto stats = trustline_stats(db.sql());
  CHECK(stats
        == json{{"total_assets", 3},
                {"total_trustlines", 27},
                {"authorized_trustlines", 27},
                {"unauthorized_trustlines", 0},
                {"assets_reporting_authorization", 3},
                {"last_updated", now}});

  trustline_ranking_query q;
  const auto ranks = trustline_rankings(db.sql(), q);
  REQUIRE(ranks.at("total") == 3);
  const auto& first = ranks.at("rankings").at(0);
  CHECK(first.at("asset_issuer") == big);
  CHECK(first.at("num_accounts") == 25);
  CHECK(first.at("authorized_accounts") == 25);
  CHECK(first.at("unauthorized_accounts") == 0);
  CHECK(first.at("supply") == 988.9481303);
  CHECK(first.at("num_claimable_balances") == 0);
  CHECK(first.at("num_liquidity_pools") == 0);
  CHECK(first.at("updated_at") == now);

  std::string type;
  std::string home;
  long long accounts = 0;
  double amount = 0;
  int clawback = -1;
  long long synced = 0;
  db.sql() << "SELECT asset_type, home_domain, num_accounts, amount, auth_clawback_enabled, "
              "last_synced_at FROM assets WHERE asset_code = '0' AND asset_issuer = :i",
      soci::into(type), soci::into(home), soci::into(accounts), soci::into(amount),
      soci::into(clawback), soci::into(synced), soci::use(big);
  CHECK(type == "credit_alphanum4");
  CHECK(home == "zero.example");
  CHECK(accounts == 25);
  CHECK(amount == 988.9481303);
  CHECK(clawback == 0);
  CHECK(synced == now);

  // Same instant again: upserts, one snapshot per asset still.
  const auto before = without_sync_runs(dump_sync_tables(db.sql()));
  run_trustline_sync(db.sql(), db.kind(), now, assets, log.fn());
  CHECK(without_sync_runs(dump_sync_tables(db.sql())) == before);

  // An hour later, from the other fixture (24 accounts, 998.9481303): a second snapshot.
  const auto legacy =
      fixture_page<domain::asset_stats>("assets_page_with_legacy_num_accounts.json").records;
  run_trustline_sync(db.sql(), db.kind(), now + hour, legacy, log.fn());
  const auto history = trustline_history(db.sql(), "0", big, {});
  REQUIRE(history);
  CHECK(history->at("total") == 2);
  CHECK(
      history->at("history")
      == json::array({{{"snapshot_at", now + hour}, {"num_accounts", 24}, {"supply", 998.9481303}},
                      {{"snapshot_at", now}, {"num_accounts", 25}, {"supply", 988.9481303}}}));
  CHECK(count_rows(db.sql(), "trustline_snapshots") == 4);
  CHECK(read_last_run(db.sql(), "trustlines")->last_run_at == now + hour);

  // A record without the `accounts` breakdown reports unknown authorization counts.
  domain::asset_stats bare = legacy[0];
  bare.accounts.reset();
  run_trustline_sync(db.sql(), db.kind(), now + 2 * hour, {bare}, log.fn());
  const auto after = trustline_stats(db.sql());
  CHECK(after.at("assets_reporting_authorization") == 2);
  CHECK(after.at("authorized_trustlines") == 2);
}

SI_SYNC_BOTH_BACKENDS("trustline sync from Horizon fixtures: stats, rankings, snapshots",
                      trustlines_from_fixtures)

}  // namespace
