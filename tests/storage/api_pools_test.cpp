#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <optional>
#include <string>
#include <vector>

#include "storage/database.hpp"
#include "storage/pools_repo.hpp"
#include "support.hpp"

using namespace si::storage;
using nlohmann::json;

namespace {

std::unique_ptr<soci::session> fresh_sqlite() {
  auto sql = open_session(std::get<database_url>(parse_database_url("sqlite::memory:")));
  REQUIRE(migrate(*sql, backend::sqlite) == latest_schema_version());
  return sql;
}

/// The reserves of a real pool (liquidity_pool_single.json), as Horizon spells them.
const std::string reserves_text =
    R"([{"asset":"native","amount":"22548198.4301913"},)"
    R"({"asset":"USDC:GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN",)"
    R"("amount":"1897783.4547179"}])";

using opt = std::optional<double>;

void insert_pool(soci::session& sql, const std::string& id, const std::string& reserves, opt tvl,
                 opt volume, opt fees, opt apy, long long synced) {
  soci::indicator tvl_i = tvl ? soci::i_ok : soci::i_null;
  soci::indicator vol_i = volume ? soci::i_ok : soci::i_null;
  soci::indicator fee_i = fees ? soci::i_ok : soci::i_null;
  soci::indicator apy_i = apy ? soci::i_ok : soci::i_null;
  double t = tvl.value_or(0), v = volume.value_or(0), f = fees.value_or(0), a = apy.value_or(0);
  sql << "INSERT INTO liquidity_pools (pool_id, fee_bp, type, reserves, total_shares, "
         "total_trustlines, tvl, volume_24h, fees_24h, apy, last_synced_at) VALUES (:id, 30, "
         "'constant_product', :r, 5787922.2796105, 885, :t, :v, :f, :a, :s)",
      soci::use(id), soci::use(reserves), soci::use(t, tvl_i), soci::use(v, vol_i),
      soci::use(f, fee_i), soci::use(a, apy_i), soci::use(synced);
}

void insert_snapshot(soci::session& sql, const std::string& id, long long at, opt tvl) {
  soci::indicator tvl_i = tvl ? soci::i_ok : soci::i_null;
  double t = tvl.value_or(0);
  sql << "INSERT INTO liquidity_pool_snapshots (pool_id, snapshot_at, reserves, total_shares, "
         "total_trustlines, tvl) VALUES (:id, :at, :r, 10, 3, :t)",
      soci::use(id), soci::use(at), soci::use(reserves_text), soci::use(t, tvl_i);
}

void seed(soci::session& sql) {
  insert_pool(sql, "p1", reserves_text, 1000, 50, 0.15, 5, 100);
  insert_pool(sql, "p2", "[]", std::nullopt, 500, 1.5, std::nullopt, 200);
  insert_pool(sql, "p3", "[]", 3000, std::nullopt, std::nullopt, 12, 300);
  insert_pool(sql, "p4", "not json", 10, 5, 0.01, 1, 150);
}

using strings = std::vector<std::string>;

strings ids(const json& list) {
  strings out;
  for (const auto& p : list.at("pools")) {
    out.push_back(p.at("pool_id").get<std::string>());
  }
  return out;
}

void check_list(soci::session& sql) {
  auto empty = list_pools(sql, {});
  CHECK(empty.at("pools").empty());
  CHECK(empty.at("total") == 0);
  seed(sql);

  pool_query q;
  auto all = list_pools(sql, q);
  CHECK(all.at("total") == 4);
  CHECK(ids(all) == strings{"p3", "p1", "p4", "p2"});  // tvl desc, unknown tvl last

  const auto& p1 = all.at("pools").at(1);
  CHECK(p1.at("fee_bp") == 30);
  CHECK(p1.at("type") == "constant_product");
  REQUIRE(p1.at("reserves").is_array());
  REQUIRE(p1.at("reserves").size() == 2);
  CHECK(p1.at("reserves").at(0).at("asset") == "native");
  CHECK(p1.at("reserves").at(0).at("amount") == "22548198.4301913");
  CHECK(p1.at("total_shares").get<double>() == Approx(5787922.2796105));
  CHECK(p1.at("total_trustlines") == 885);
  CHECK(p1.at("tvl").get<double>() == Approx(1000));
  CHECK(p1.at("volume_24h").get<double>() == Approx(50));
  CHECK(p1.at("fees_24h").get<double>() == Approx(0.15));
  CHECK(p1.at("apy").get<double>() == Approx(5));
  CHECK(p1.at("last_synced_at") == 100);
  const auto& p2 = all.at("pools").at(3);
  CHECK(p2.at("tvl").is_null());
  CHECK(p2.at("apy").is_null());
  CHECK(p2.at("reserves") == json::array());
  CHECK(all.at("pools").at(2).at("reserves").is_null());  // stored text is not JSON

  q.order = sort_order::asc;
  CHECK(ids(list_pools(sql, q)) == strings{"p4", "p1", "p3", "p2"});
  q.sort_by = pool_sort::volume;
  CHECK(ids(list_pools(sql, q)) == strings{"p4", "p1", "p2", "p3"});
  q.order = sort_order::desc;
  CHECK(ids(list_pools(sql, q)) == strings{"p2", "p1", "p4", "p3"});
  q.sort_by = pool_sort::fees;
  CHECK(ids(list_pools(sql, q)) == strings{"p2", "p1", "p4", "p3"});
  q.order = sort_order::asc;
  CHECK(ids(list_pools(sql, q)) == strings{"p4", "p1", "p2", "p3"});
  q.sort_by = pool_sort::apy;
  CHECK(ids(list_pools(sql, q)) == strings{"p4", "p1", "p3", "p2"});
  q.order.reset();
  CHECK(ids(list_pools(sql, q)) == strings{"p3", "p1", "p4", "p2"});

  pool_query paged;
  paged.page = {2, 1};
  auto page = list_pools(sql, paged);
  CHECK(ids(page) == strings{"p1", "p4"});
  CHECK(page.at("total") == 4);
  paged.page = {2, 3};
  CHECK(ids(list_pools(sql, paged)) == strings{"p2"});
  paged.page = {0, 0};
  CHECK(ids(list_pools(sql, paged)) == strings{"p3"});

  // Equal figures fall back to the pool id.
  insert_pool(sql, "p0", "[]", 1000, 1, 1, 1, 1);
  paged.page = {2, 1};
  CHECK(ids(list_pools(sql, paged)) == strings{"p0", "p1"});

  auto one = get_pool(sql, "p1");
  REQUIRE(one.has_value());
  CHECK(*one == p1);
  CHECK_FALSE(get_pool(sql, "nope").has_value());
}

void check_snapshots_and_stats(soci::session& sql) {
  auto none = pool_stats(sql);
  CHECK(none.at("total_pools") == 0);
  CHECK(none.at("total_tvl").is_null());
  CHECK(none.at("pools_with_tvl") == 0);
  CHECK(none.at("total_volume_24h").is_null());
  CHECK(none.at("total_fees_24h").is_null());
  CHECK(none.at("avg_apy").is_null());
  CHECK(none.at("last_synced_at").is_null());

  seed(sql);
  for (long long at : {200, 100, 300}) {
    insert_snapshot(sql, "p1", at, at == 200 ? opt{} : opt{double(at)});
  }
  insert_snapshot(sql, "gone", 50, 1.0);  // a pool no longer listed still has its history

  auto all = list_pool_snapshots(sql, "p1", {});
  REQUIRE(all.has_value());
  CHECK(all->at("pool_id") == "p1");
  CHECK(all->at("total") == 3);
  const auto& snaps = all->at("snapshots");
  REQUIRE(snaps.size() == 3);
  CHECK(snaps.at(0).at("snapshot_at") == 300);
  CHECK(snaps.at(1).at("snapshot_at") == 200);
  CHECK(snaps.at(2).at("snapshot_at") == 100);
  CHECK(snaps.at(0).at("tvl").get<double>() == Approx(300));
  CHECK(snaps.at(1).at("tvl").is_null());
  CHECK(snaps.at(1).at("volume_24h").is_null());
  CHECK(snaps.at(0).at("total_trustlines") == 3);
  CHECK(snaps.at(0).at("reserves").size() == 2);

  auto page = list_pool_snapshots(sql, "p1", {2, 1});
  REQUIRE(page.has_value());
  CHECK(page->at("total") == 3);
  REQUIRE(page->at("snapshots").size() == 2);
  CHECK(page->at("snapshots").at(0).at("snapshot_at") == 200);
  CHECK(page->at("snapshots").at(1).at("snapshot_at") == 100);

  auto unsnapped = list_pool_snapshots(sql, "p2", {});
  REQUIRE(unsnapped.has_value());
  CHECK(unsnapped->at("snapshots").empty());
  CHECK(unsnapped->at("total") == 0);
  auto gone = list_pool_snapshots(sql, "gone", {});
  REQUIRE(gone.has_value());
  CHECK(gone->at("total") == 1);
  CHECK_FALSE(list_pool_snapshots(sql, "nope", {}).has_value());

  auto stats = pool_stats(sql);
  CHECK(stats.at("total_pools") == 4);
  CHECK(stats.at("total_tvl").get<double>() == Approx(4010));
  CHECK(stats.at("pools_with_tvl") == 3);
  CHECK(stats.at("total_volume_24h").get<double>() == Approx(555));
  CHECK(stats.at("pools_with_volume") == 3);
  CHECK(stats.at("total_fees_24h").get<double>() == Approx(1.66));
  CHECK(stats.at("pools_with_fees") == 3);
  CHECK(stats.at("avg_apy").get<double>() == Approx(6));
  CHECK(stats.at("pools_with_apy") == 3);
  CHECK(stats.at("last_synced_at") == 300);
}

}  // namespace

TEST_CASE("parse helper for pool sorting", "[sqlite][api]") {
  CHECK(parse_pool_sort("tvl") == pool_sort::tvl);
  CHECK(parse_pool_sort("fees") == pool_sort::fees);
  CHECK_FALSE(parse_pool_sort("volume_24h").has_value());
}

TEST_CASE("pool list: sorts with nulls last, paging, one pool (sqlite)", "[sqlite][api]") {
  auto sql = fresh_sqlite();
  check_list(*sql);
}

TEST_CASE("pool snapshots and stats (sqlite)", "[sqlite][api]") {
  auto sql = fresh_sqlite();
  check_snapshots_and_stats(*sql);
}

TEST_CASE("pool list: sorts with nulls last, paging, one pool (postgres)", "[postgres][api]") {
  si::test::pg_schema schema;
  auto sql = schema.open();
  REQUIRE(migrate(*sql, backend::postgresql) == latest_schema_version());
  check_list(*sql);
}

TEST_CASE("pool snapshots and stats (postgres)", "[postgres][api]") {
  si::test::pg_schema schema;
  auto sql = schema.open();
  REQUIRE(migrate(*sql, backend::postgresql) == latest_schema_version());
  check_snapshots_and_stats(*sql);
}
