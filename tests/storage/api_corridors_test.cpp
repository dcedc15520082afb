#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <string>
#include <vector>

#include "storage/corridors_repo.hpp"
#include "storage/database.hpp"
#include "support.hpp"

using namespace si::storage;
using nlohmann::json;

namespace {

std::unique_ptr<soci::session> fresh_sqlite() {
  auto sql = open_session(std::get<database_url>(parse_database_url("sqlite::memory:")));
  REQUIRE(migrate(*sql, backend::sqlite) == latest_schema_version());
  return sql;
}

const std::string usdc_issuer = "GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN";
const std::string eurc_issuer = "GDM4RQUQQUVSKQA7S6EM7XBZP3FCGH4Q7CL6TABQ7B2BEJ5ERARM2M5M";
const std::string btc_issuer = "GDEUQ2MX3YXMITFOTC3CO3GW5V3XE3IVG7JKLZZAOZ7WFYIN256INDUS";
const std::string eth_issuer = "GBDEVU63Y6NTHJQQZIKVTC23NWLQVP3WJ2RI2OTSJTNYOIGICST6DUXR";

const std::string corridor_a = "USDC:" + usdc_issuer + "->XLM:native";
const std::string corridor_b = "XLM:native->EURC:" + eurc_issuer;
const std::string corridor_c = "EURC:" + eurc_issuer + "->USDC:" + usdc_issuer;
const std::string corridor_d = "BTC:" + btc_issuer + "->ETH:" + eth_issuer;

constexpr long long hour = 3'600'000;
constexpr long long now = 1'720'000'000'000;  // the window end every period test uses

void insert_corridor(soci::session& sql, const std::string& id, long long attempts,
                     long long successful, long long failed, double volume,
                     long long last_updated) {
  const auto arrow = id.find("->");
  const std::string src = id.substr(0, arrow);
  const std::string dst = id.substr(arrow + 2);
  const std::string src_code = src.substr(0, src.find(':'));
  const std::string src_issuer = src.substr(src.find(':') + 1);
  const std::string dst_code = dst.substr(0, dst.find(':'));
  const std::string dst_issuer = dst.substr(dst.find(':') + 1);
  // The stored success_rate is deliberately wrong: the API derives the rate from the counts.
  sql << "INSERT INTO corridors (id, source_asset_code, source_asset_issuer, "
         "destination_asset_code, destination_asset_issuer, success_rate, total_attempts, "
         "successful, failed, volume, last_updated) VALUES (:id, :sc, :si, :dc, :di, -1, :a, "
         ":s, :f, :v, :u)",
      soci::use(id), soci::use(src_code), soci::use(src_issuer), soci::use(dst_code),
      soci::use(dst_issuer), soci::use(attempts), soci::use(successful), soci::use(failed),
      soci::use(volume), soci::use(last_updated);
}

void insert_bucket(soci::session& sql, const std::string& id, long long start, long long attempts,
                   long long successful, long long failed, double volume) {
  sql << "INSERT INTO corridor_buckets (corridor_id, bucket_start, attempts, successful, "
         "failed, volume) VALUES (:id, :b, :a, :s, :f, :v)",
      soci::use(id), soci::use(start), soci::use(attempts), soci::use(successful),
      soci::use(failed), soci::use(volume);
}

/// Four corridors with lifetime figures, and buckets around `now` for three of them.
void seed(soci::session& sql) {
  insert_corridor(sql, corridor_a, 100, 90, 10, 5000, 1001);
  insert_corridor(sql, corridor_b, 50, 25, 25, 20000, 1002);
  insert_corridor(sql, corridor_c, 0, 0, 0, 0, 1003);
  insert_corridor(sql, corridor_d, 10, 10, 0, 100, 1004);

  insert_bucket(sql, corridor_a, now - hour, 10, 9, 1, 100);
  insert_bucket(sql, corridor_a, now - 23 * hour, 10, 5, 5, 50);
  insert_bucket(sql, corridor_a, now - 24 * hour, 1, 1, 0, 1);  // first instant: inside
  insert_bucket(sql, corridor_a, now - 25 * hour, 100, 100, 0, 1000);
  insert_bucket(sql, corridor_a, now, 1000, 0, 1000, 9999);  // window end: outside
  insert_bucket(sql, corridor_b, now - 8 * 24 * hour, 4, 2, 2, 40);
  insert_bucket(sql, corridor_c, now - 2 * hour, 2, 0, 2, 7);
}

std::vector<std::string> ids(const json& list) {
  std::vector<std::string> out;
  for (const auto& c : list.at("corridors")) {
    out.push_back(c.at("id").get<std::string>());
  }
  return out;
}

using strings = std::vector<std::string>;

void check_lifetime_list(soci::session& sql) {
  seed(sql);
  corridor_query q;
  auto all = list_corridors(sql, q);
  CHECK(all.at("total") == 4);
  // Default: volume, descending.
  CHECK(ids(all) == strings{corridor_b, corridor_a, corridor_d, corridor_c});

  const auto& a = all.at("corridors").at(1);
  CHECK(a.at("source_asset") == "USDC:" + usdc_issuer);
  CHECK(a.at("destination_asset") == "XLM:native");
  CHECK(a.at("success_rate").get<double>() == Approx(90.0));
  CHECK(a.at("total_attempts") == 100);
  CHECK(a.at("successful") == 90);
  CHECK(a.at("failed") == 10);
  CHECK(a.at("volume").get<double>() == Approx(5000));
  CHECK(a.at("last_updated") == 1001);
  CHECK(a.size() == 9);
  // No attempts: the rate cannot be derived and is null, not 0 or 100.
  CHECK(all.at("corridors").at(3).at("success_rate").is_null());

  SECTION("asset_code matches either side, exactly") {
    q.asset_code = "USDC";
    auto usdc = list_corridors(sql, q);
    CHECK(usdc.at("total") == 2);
    CHECK(ids(usdc) == strings{corridor_a, corridor_c});
    q.asset_code = "XLM";
    CHECK(ids(list_corridors(sql, q)) == strings{corridor_b, corridor_a});
    q.asset_code = "usdc";
    CHECK(list_corridors(sql, q).at("total") == 0);
    // A value is bound, never spliced into the SQL.
    q.asset_code = "USDC' OR '1'='1";
    auto injected = list_corridors(sql, q);
    CHECK(injected.at("total") == 0);
    CHECK(injected.at("corridors").empty());
  }
  SECTION("success rate bounds are inclusive and exclude unknown rates") {
    q.success_rate_min = 90;
    CHECK(ids(list_corridors(sql, q)) == strings{corridor_a, corridor_d});
    q.success_rate_min.reset();
    q.success_rate_max = 50;
    auto low = list_corridors(sql, q);
    CHECK(ids(low) == strings{corridor_b});
    CHECK(low.at("total") == 1);
    q.success_rate_min = 60;
    q.success_rate_max = 95;
    CHECK(ids(list_corridors(sql, q)) == strings{corridor_a});
  }
  SECTION("volume bounds are inclusive") {
    q.volume_min = 100;
    q.volume_max = 5000;
    auto mid = list_corridors(sql, q);
    CHECK(ids(mid) == strings{corridor_a, corridor_d});
    CHECK(mid.at("total") == 2);
    q.volume_min = 20001;
    q.volume_max.reset();
    CHECK(list_corridors(sql, q).at("total") == 0);
  }
  SECTION("filters combine") {
    q.asset_code = "XLM";
    q.success_rate_min = 80;
    CHECK(ids(list_corridors(sql, q)) == strings{corridor_a});
  }
  SECTION("each sort key, both orders, NULL rates last") {
    q.sort_by = corridor_sort::success_rate;
    CHECK(ids(list_corridors(sql, q)) == strings{corridor_d, corridor_a, corridor_b, corridor_c});
    q.order = sort_order::asc;
    CHECK(ids(list_corridors(sql, q)) == strings{corridor_b, corridor_a, corridor_d, corridor_c});
    q.sort_by = corridor_sort::attempts;
    CHECK(ids(list_corridors(sql, q)) == strings{corridor_c, corridor_d, corridor_b, corridor_a});
    q.order = sort_order::desc;
    CHECK(ids(list_corridors(sql, q)) == strings{corridor_a, corridor_b, corridor_d, corridor_c});
    q.sort_by = corridor_sort::volume;
    q.order = sort_order::asc;
    CHECK(ids(list_corridors(sql, q)) == strings{corridor_c, corridor_d, corridor_a, corridor_b});
  }
  SECTION("paging: limit, offset, total of the filtered set, clamping") {
    q.page = {2, 1};
    auto page = list_corridors(sql, q);
    CHECK(ids(page) == strings{corridor_a, corridor_d});
    CHECK(page.at("total") == 4);
    q.page = {2, 3};
    CHECK(ids(list_corridors(sql, q)) == strings{corridor_c});
    q.page = {2, 4};
    auto past = list_corridors(sql, q);
    CHECK(past.at("corridors").empty());
    CHECK(past.at("total") == 4);
    q.page = {0, -3};  // clamped to limit 1, offset 0
    CHECK(ids(list_corridors(sql, q)) == strings{corridor_b});
    q.page = {100000, 0};
    CHECK(list_corridors(sql, q).at("corridors").size() == 4);
    q.asset_code = "USDC";
    q.page = {1, 1};
    auto filtered = list_corridors(sql, q);
    CHECK(ids(filtered) == strings{corridor_c});
    CHECK(filtered.at("total") == 2);
  }
  SECTION("equal sort values fall back to the id") {
    insert_corridor(sql, "AAA:" + eth_issuer + "->XLM:native", 1, 1, 0, 100, 1);
    q.sort_by = corridor_sort::volume;
    q.volume_min = 100;
    q.volume_max = 100;
    const auto tied = ids(list_corridors(sql, q));
    REQUIRE(tied.size() == 2);
    CHECK(tied[0] < tied[1]);
    q.order = sort_order::asc;
    CHECK(ids(list_corridors(sql, q)) == tied);
  }
}

void check_period_list(soci::session& sql) {
  seed(sql);
  corridor_query q;
  q.now_ms = now;

  q.period = corridor_period::h24;
  auto day = list_corridors(sql, q);
  CHECK(day.at("total") == 2);
  CHECK(ids(day) == strings{corridor_a, corridor_c});
  const auto& a = day.at("corridors").at(0);
  CHECK(a.at("total_attempts") == 21);
  CHECK(a.at("successful") == 15);
  CHECK(a.at("failed") == 6);
  CHECK(a.at("volume").get<double>() == Approx(151));
  CHECK(a.at("success_rate").get<double>() == Approx(100.0 * 15 / 21));
  CHECK(a.at("last_updated") == 1001);
  const auto& c = day.at("corridors").at(1);
  CHECK(c.at("total_attempts") == 2);
  CHECK(c.at("success_rate").get<double>() == Approx(0.0));

  q.period = corridor_period::d7;
  auto week = list_corridors(sql, q);
  CHECK(ids(week) == strings{corridor_a, corridor_c});
  CHECK(week.at("corridors").at(0).at("total_attempts") == 121);
  CHECK(week.at("corridors").at(0).at("volume").get<double>() == Approx(1151));

  q.period = corridor_period::d30;
  auto month = list_corridors(sql, q);
  CHECK(month.at("total") == 3);
  CHECK(ids(month) == strings{corridor_a, corridor_b, corridor_c});
  CHECK(month.at("corridors").at(1).at("success_rate").get<double>() == Approx(50));

  // Filters and sorts apply to the window's figures, not the lifetime ones.
  q.success_rate_min = 60;
  CHECK(ids(list_corridors(sql, q)) == strings{corridor_a});
  q.success_rate_min.reset();
  q.volume_max = 50;
  CHECK(ids(list_corridors(sql, q)) == strings{corridor_b, corridor_c});
  q.volume_max.reset();
  q.sort_by = corridor_sort::attempts;
  q.order = sort_order::asc;
  CHECK(ids(list_corridors(sql, q)) == strings{corridor_c, corridor_b, corridor_a});
  q.asset_code = "EURC";
  auto eurc = list_corridors(sql, q);
  CHECK(ids(eurc) == strings{corridor_c, corridor_b});
  CHECK(eurc.at("total") == 2);
  q.page = {1, 1};
  auto paged = list_corridors(sql, q);
  CHECK(ids(paged) == strings{corridor_b});
  CHECK(paged.at("total") == 2);

  // The window moves with now_ms.
  corridor_query later;
  later.period = corridor_period::h24;
  later.now_ms = now + 2 * hour;  // now-1h is still inside; now itself now counts too
  auto moved = list_corridors(sql, later);
  CHECK(ids(moved) == strings{corridor_a, corridor_c});
  CHECK(moved.at("corridors").at(0).at("total_attempts") == 1010);
}

void check_detail(soci::session& sql) {
  seed(sql);
  CHECK_FALSE(get_corridor(sql, {"NOPE:" + usdc_issuer + "->XLM:native", {}, now}).has_value());
  CHECK_FALSE(get_corridor(sql, {"", corridor_period::h24, now}).has_value());

  auto lifetime = get_corridor(sql, {corridor_a, std::nullopt, 0});
  REQUIRE(lifetime.has_value());
  CHECK(lifetime->at("corridor").at("id") == corridor_a);
  CHECK(lifetime->at("corridor").at("total_attempts") == 100);
  CHECK(lifetime->at("corridor").at("success_rate").get<double>() == Approx(90));
  const auto& all = lifetime->at("history");
  REQUIRE(all.size() == 5);
  CHECK(all.at(0).at("bucket_start") == now - 25 * hour);
  CHECK(all.at(4).at("bucket_start") == now);
  CHECK(all.at(4).at("success_rate").get<double>() == Approx(0));

  auto day = get_corridor(sql, {corridor_a, corridor_period::h24, now});
  REQUIRE(day.has_value());
  CHECK(day->at("corridor").at("total_attempts") == 21);
  CHECK(day->at("corridor").at("volume").get<double>() == Approx(151));
  const auto& history = day->at("history");
  REQUIRE(history.size() == 3);
  CHECK(history.at(0).at("bucket_start") == now - 24 * hour);
  CHECK(history.at(1).at("bucket_start") == now - 23 * hour);
  CHECK(history.at(2).at("bucket_start") == now - hour);
  CHECK(history.at(2).at("attempts") == 10);
  CHECK(history.at(2).at("successful") == 9);
  CHECK(history.at(2).at("failed") == 1);
  CHECK(history.at(2).at("success_rate").get<double>() == Approx(90));
  CHECK(history.at(2).at("volume").get<double>() == Approx(100));

  // A known corridor with no bucket in the window: zero figures, unknown rate, empty history.
  auto quiet = get_corridor(sql, {corridor_d, corridor_period::h24, now});
  REQUIRE(quiet.has_value());
  CHECK(quiet->at("corridor").at("total_attempts") == 0);
  CHECK(quiet->at("corridor").at("volume").get<double>() == Approx(0));
  CHECK(quiet->at("corridor").at("success_rate").is_null());
  CHECK(quiet->at("history").empty());
  auto quiet_lifetime = get_corridor(sql, {corridor_d, std::nullopt, 0});
  REQUIRE(quiet_lifetime.has_value());
  CHECK(quiet_lifetime->at("corridor").at("success_rate").get<double>() == Approx(100));
  CHECK(quiet_lifetime->at("history").empty());

  auto month_b = get_corridor(sql, {corridor_b, corridor_period::d30, now});
  REQUIRE(month_b.has_value());
  CHECK(month_b->at("history").size() == 1);
  CHECK(month_b->at("corridor").at("total_attempts") == 4);
}

}  // namespace

TEST_CASE("parse helpers for corridor queries", "[sqlite][api]") {
  CHECK(parse_corridor_period("24h") == corridor_period::h24);
  CHECK(parse_corridor_period("7d") == corridor_period::d7);
  CHECK(parse_corridor_period("30d") == corridor_period::d30);
  CHECK_FALSE(parse_corridor_period("1y").has_value());
  CHECK(period_ms(corridor_period::d7) == 7 * 24 * hour);
  CHECK(to_string(corridor_period::d30) == "30d");
  CHECK(parse_corridor_sort("attempts") == corridor_sort::attempts);
  CHECK_FALSE(parse_corridor_sort("id").has_value());
  CHECK_FALSE(parse_corridor_sort("volume; DROP TABLE corridors").has_value());
  CHECK(parse_sort_order("asc") == sort_order::asc);
  CHECK_FALSE(parse_sort_order("ASC").has_value());
}

TEST_CASE("corridor list: lifetime filters, sorts and paging (sqlite)", "[sqlite][api]") {
  auto sql = fresh_sqlite();
  check_lifetime_list(*sql);
}

TEST_CASE("corridor list: period windows from buckets (sqlite)", "[sqlite][api]") {
  auto sql = fresh_sqlite();
  check_period_list(*sql);
}

TEST_CASE("corridor detail: history, windows, not found (sqlite)", "[sqlite][api]") {
  auto sql = fresh_sqlite();
  check_detail(*sql);
}

TEST_CASE("corridor list: lifetime filters, sorts and paging (postgres)", "[postgres][api]") {
  si::test::pg_schema schema;
  auto sql = schema.open();
  REQUIRE(migrate(*sql, backend::postgresql) == latest_schema_version());
  check_lifetime_list(*sql);
}

TEST_CASE("corridor list: period windows from buckets (postgres)", "[postgres][api]") {
  si::test::pg_schema schema;
  auto sql = schema.open();
  REQUIRE(migrate(*sql, backend::postgresql) == latest_schema_version());
  check_period_list(*sql);
}

TEST_CASE("corridor detail: history, windows, not found (postgres)", "[postgres][api]") {
  si::test::pg_schema schema;
  auto sql = schema.open();
  REQUIRE(migrate(*sql, backend::postgresql) == latest_schema_version());
  check_detail(*sql);
}
