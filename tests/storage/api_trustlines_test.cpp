#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <optional>
#include <string>
#include <vector>

#include "storage/database.hpp"
#include "storage/trustlines_repo.hpp"
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
const std::string eurc_issuer = "GDEUQ2MX3YXMITFOTC3CO3GW5V3XE3IVG7JKLZZAOZ7WFYIN256INDUS";
const std::string aqua_issuer = "GBDEVU63Y6NTHJQQZIKVTC23NWLQVP3WJ2RI2OTSJTNYOIGICST6DUXR";
const std::string yxlm_issuer = "GCKA6K5PCQ6PNF5RQBF7PQDJWRHO6UOGFMRLK3DYHDOI244V47XKQ4GP";

void insert_stats(soci::session& sql, const std::string& code, const std::string& issuer,
                  long long accounts, std::optional<long long> authorized,
                  std::optional<long long> unauthorized, double amount, long long updated) {
  soci::indicator a_i = authorized ? soci::i_ok : soci::i_null;
  soci::indicator u_i = unauthorized ? soci::i_ok : soci::i_null;
  long long a = authorized.value_or(0), u = unauthorized.value_or(0);
  sql << "INSERT INTO trustline_stats (asset_code, asset_issuer, num_accounts, "
         "authorized_accounts, unauthorized_accounts, amount, updated_at) "
         "VALUES (:c, :i, :n, :a, :u, :m, :t)",
      soci::use(code), soci::use(issuer), soci::use(accounts), soci::use(a, a_i), soci::use(u, u_i),
      soci::use(amount), soci::use(updated);
}

void insert_snapshot(soci::session& sql, const std::string& code, const std::string& issuer,
                     long long at, long long accounts, double amount) {
  sql << "INSERT INTO trustline_snapshots (asset_code, asset_issuer, snapshot_at, num_accounts, "
         "amount) VALUES (:c, :i, :t, :n, :m)",
      soci::use(code), soci::use(issuer), soci::use(at), soci::use(accounts), soci::use(amount);
}

void seed(soci::session& sql) {
  insert_stats(sql, "USDC", usdc_issuer, 1000, 900, 100, 5e6, 10);
  insert_stats(sql, "EURC", eurc_issuer, 300, std::nullopt, std::nullopt, 1e6, 20);
  insert_stats(sql, "AQUA", aqua_issuer, 5000, 4000, 1000, 1e9, 30);
  insert_stats(sql, "yXLM", yxlm_issuer, 300, 250, std::nullopt, 2e6, 15);
}

using strings = std::vector<std::string>;

strings codes(const json& list) {
  strings out;
  for (const auto& r : list.at("rankings")) {
    out.push_back(r.at("asset_code").get<std::string>());
  }
  return out;
}

void check_stats_and_rankings(soci::session& sql) {
  auto none = trustline_stats(sql);
  CHECK(none.at("total_assets") == 0);
  CHECK(none.at("total_trustlines") == 0);
  CHECK(none.at("authorized_trustlines").is_null());
  CHECK(none.at("unauthorized_trustlines").is_null());
  CHECK(none.at("assets_reporting_authorization") == 0);
  CHECK(none.at("last_updated").is_null());
  CHECK(trustline_rankings(sql, {}).at("rankings").empty());

  seed(sql);
  auto stats = trustline_stats(sql);
  CHECK(stats.at("total_assets") == 4);
  CHECK(stats.at("total_trustlines") == 6600);
  // Only USDC and AQUA report both counts; yXLM's half-known figures are left out.
  CHECK(stats.at("authorized_trustlines") == 4900);
  CHECK(stats.at("unauthorized_trustlines") == 1100);
  CHECK(stats.at("assets_reporting_authorization") == 2);
  CHECK(stats.at("last_updated") == 30);

  trustline_ranking_query q;
  auto by_accounts = trustline_rankings(sql, q);
  CHECK(by_accounts.at("total") == 4);
  CHECK(codes(by_accounts) == strings{"AQUA", "USDC", "EURC", "yXLM"});  // tie: by code
  const auto& first = by_accounts.at("rankings").at(0);
  CHECK(first.at("rank") == 1);
  CHECK(first.at("asset_issuer") == aqua_issuer);
  CHECK(first.at("num_accounts") == 5000);
  CHECK(first.at("authorized_accounts") == 4000);
  CHECK(first.at("unauthorized_accounts") == 1000);
  CHECK(first.at("supply").get<double>() == Approx(1e9));
  CHECK(first.at("num_claimable_balances").is_null());
  CHECK(first.at("updated_at") == 30);
  CHECK(by_accounts.at("rankings").at(2).at("authorized_accounts").is_null());

  q.order = sort_order::asc;
  CHECK(codes(trustline_rankings(sql, q)) == strings{"EURC", "yXLM", "USDC", "AQUA"});
  q.sort_by = trustline_sort::supply;
  CHECK(codes(trustline_rankings(sql, q)) == strings{"EURC", "yXLM", "USDC", "AQUA"});
  q.order = sort_order::desc;
  auto by_supply = trustline_rankings(sql, q);
  CHECK(codes(by_supply) == strings{"AQUA", "USDC", "yXLM", "EURC"});

  q.page = {2, 1};
  auto page = trustline_rankings(sql, q);
  CHECK(codes(page) == strings{"USDC", "yXLM"});
  CHECK(page.at("rankings").at(0).at("rank") == 2);
  CHECK(page.at("rankings").at(1).at("rank") == 3);
  CHECK(page.at("total") == 4);
  q.page = {5, -1};
  CHECK(trustline_rankings(sql, q).at("rankings").at(0).at("rank") == 1);
}

void check_history(soci::session& sql) {
  seed(sql);
  for (long long at : {200, 100, 300}) {
    insert_snapshot(sql, "USDC", usdc_issuer, at, at * 2, at * 10.5);
  }
  insert_snapshot(sql, "USDC", eurc_issuer, 400, 1, 1);  // same code, other issuer
  insert_snapshot(sql, "OLD", aqua_issuer, 50, 7, 70);   // no stats row any more

  auto all = trustline_history(sql, "USDC", usdc_issuer, {});
  REQUIRE(all.has_value());
  CHECK(all->at("asset_code") == "USDC");
  CHECK(all->at("asset_issuer") == usdc_issuer);
  CHECK(all->at("total") == 3);
  const auto& history = all->at("history");
  REQUIRE(history.size() == 3);
  CHECK(history.at(0).at("snapshot_at") == 300);
  CHECK(history.at(0).at("num_accounts") == 600);
  CHECK(history.at(0).at("supply").get<double>() == Approx(3150));
  CHECK(history.at(2).at("snapshot_at") == 100);

  auto page = trustline_history(sql, "USDC", usdc_issuer, {1, 1});
  REQUIRE(page.has_value());
  REQUIRE(page->at("history").size() == 1);
  CHECK(page->at("history").at(0).at("snapshot_at") == 200);
  CHECK(page->at("total") == 3);

  auto no_snapshots = trustline_history(sql, "EURC", eurc_issuer, {});
  REQUIRE(no_snapshots.has_value());
  CHECK(no_snapshots->at("history").empty());
  CHECK(no_snapshots->at("total") == 0);
  auto old = trustline_history(sql, "OLD", aqua_issuer, {});
  REQUIRE(old.has_value());
  CHECK(old->at("total") == 1);
  CHECK_FALSE(trustline_history(sql, "USDC", aqua_issuer, {}).has_value());
  CHECK_FALSE(trustline_history(sql, "usdc", usdc_issuer, {}).has_value());
}

}  // namespace

TEST_CASE("parse helper for trustline sorting", "[sqlite][api]") {
  CHECK(parse_trustline_sort("accounts") == trustline_sort::accounts);
  CHECK(parse_trustline_sort("supply") == trustline_sort::supply);
  CHECK_FALSE(parse_trustline_sort("amount").has_value());
}

TEST_CASE("trustline stats and rankings (sqlite)", "[sqlite][api]") {
  auto sql = fresh_sqlite();
  check_stats_and_rankings(*sql);
}

TEST_CASE("trustline history (sqlite)", "[sqlite][api]") {
  auto sql = fresh_sqlite();
  check_history(*sql);
}

TEST_CASE("trustline stats and rankings (postgres)", "[postgres][api]") {
  si::test::pg_schema schema;
  auto sql = schema.open();
  REQUIRE(migrate(*sql, backend::postgresql) == latest_schema_version());
  check_stats_and_rankings(*sql);
}

TEST_CASE("trustline history (postgres)", "[postgres][api]") {
  si::test::pg_schema schema;
  auto sql = schema.open();
  REQUIRE(migrate(*sql, backend::postgresql) == latest_schema_version());
  check_history(*sql);
}
