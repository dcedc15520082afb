#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "storage/anchors_repo.hpp"
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

const std::string account_alpha = "GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN";
const std::string account_beta = "GDEUQ2MX3YXMITFOTC3CO3GW5V3XE3IVG7JKLZZAOZ7WFYIN256INDUS";
const std::string account_gamma = "GBDEVU63Y6NTHJQQZIKVTC23NWLQVP3WJ2RI2OTSJTNYOIGICST6DUXR";
const std::string account_delta = "GCKA6K5PCQ6PNF5RQBF7PQDJWRHO6UOGFMRLK3DYHDOI244V47XKQ4GP";
const std::string issuer_other = "GDYW6MND6EB32PNRZAMQNOTFLJOZEAFDG3DUWID7I7NRILFWJS66NOWB";

using strings = std::vector<std::string>;

long long created_id(const create_anchor_result& result) {
  if (const auto* error = std::get_if<field_error>(&result)) {
    FAIL("create_anchor refused " << error->field << ": " << error->message);
  }
  if (std::holds_alternative<conflict_error>(result)) {
    FAIL("create_anchor reported a conflict");
  }
  return std::get<json>(result).at("id").get<long long>();
}

/// Sets an anchor's measured figures as the metrics sync would.
void measure(soci::session& sql, long long id, long long total, long long ok,
             std::optional<double> reliability, const std::string& status) {
  const long long failed = total - ok;
  double score = reliability.value_or(0);
  soci::indicator ind = reliability ? soci::i_ok : soci::i_null;
  sql << "UPDATE anchors SET total_transactions = :t, successful_transactions = :s, "
         "failed_transactions = :f, reliability_score = :r, status = :st WHERE id = :id",
      soci::use(total), soci::use(ok), soci::use(failed), soci::use(score, ind), soci::use(status),
      soci::use(id);
}

struct seeded {
  long long alpha, beta, gamma, delta;
};

seeded seed(soci::session& sql) {
  seeded ids{};
  ids.alpha = created_id(create_anchor(sql, {"Alpha", account_alpha, "alpha.example"}, 10));
  ids.beta = created_id(create_anchor(sql, {"beta", account_beta, std::nullopt}, 11));
  ids.gamma = created_id(create_anchor(sql, {"Gamma", account_gamma, std::nullopt}, 12));
  ids.delta = created_id(create_anchor(sql, {"delta", account_delta, std::nullopt}, 13));
  measure(sql, ids.alpha, 1000, 995, 99.5, "green");
  measure(sql, ids.beta, 5000, 4000, 80, "yellow");
  // gamma: never measured (no transactions, no score) - keeps the schema's default status.
  measure(sql, ids.delta, 10, 4, 40, "red");
  return ids;
}

strings names(const json& list) {
  strings out;
  for (const auto& a : list.at("anchors")) {
    out.push_back(a.at("name").get<std::string>());
  }
  return out;
}

void check_list(soci::session& sql) {
  const auto ids = seed(sql);
  anchor_query q;
  auto all = list_anchors(sql, q);
  CHECK(all.at("total") == 4);
  // Default: reliability, descending, unmeasured last.
  CHECK(names(all) == strings{"Alpha", "beta", "delta", "Gamma"});

  const auto& alpha = all.at("anchors").at(0);
  CHECK(alpha.at("id") == ids.alpha);
  CHECK(alpha.at("stellar_account") == account_alpha);
  CHECK(alpha.at("home_domain") == "alpha.example");
  CHECK(alpha.at("total_transactions") == 1000);
  CHECK(alpha.at("successful") == 995);
  CHECK(alpha.at("failed") == 5);
  CHECK(alpha.at("reliability_score").get<double>() == Approx(99.5));
  CHECK(alpha.at("status") == "green");
  CHECK(alpha.at("created_at") == 10);
  const auto& gamma = all.at("anchors").at(3);
  CHECK(gamma.at("home_domain").is_null());
  CHECK(gamma.at("reliability_score").is_null());
  CHECK(gamma.at("status").is_null());  // not measured: the stored default is not shown
  CHECK(gamma.at("avg_settlement_time_ms").is_null());

  SECTION("status filter uses measured status only") {
    q.status = anchor_status::green;
    auto green = list_anchors(sql, q);
    CHECK(names(green) == strings{"Alpha"});
    CHECK(green.at("total") == 1);
    q.status = anchor_status::red;
    CHECK(names(list_anchors(sql, q)) == strings{"delta"});
    q.status = anchor_status::yellow;
    CHECK(list_anchors(sql, q).at("total") == 1);
  }
  SECTION("each sort key and order") {
    q.order = sort_order::asc;
    CHECK(names(list_anchors(sql, q)) == strings{"delta", "beta", "Alpha", "Gamma"});
    q.sort_by = anchor_sort::transactions;
    CHECK(names(list_anchors(sql, q)) == strings{"Gamma", "delta", "Alpha", "beta"});
    q.order = sort_order::desc;
    CHECK(names(list_anchors(sql, q)) == strings{"beta", "Alpha", "delta", "Gamma"});
    q.sort_by = anchor_sort::name;
    q.order.reset();  // name defaults to ascending, case-insensitively
    CHECK(names(list_anchors(sql, q)) == strings{"Alpha", "beta", "delta", "Gamma"});
    q.order = sort_order::desc;
    CHECK(names(list_anchors(sql, q)) == strings{"Gamma", "delta", "beta", "Alpha"});
  }
  SECTION("paging") {
    q.page = {2, 2};
    auto page = list_anchors(sql, q);
    CHECK(names(page) == strings{"delta", "Gamma"});
    CHECK(page.at("total") == 4);
    q.status = anchor_status::green;
    q.page = {10, 1};
    auto empty = list_anchors(sql, q);
    CHECK(empty.at("anchors").empty());
    CHECK(empty.at("total") == 1);
  }
}

void check_detail_and_writes(soci::session& sql) {
  const auto ids = seed(sql);
  CHECK_FALSE(get_anchor(sql, 999999).has_value());
  CHECK_FALSE(get_anchor_by_account(sql, account_alpha.substr(0, 55) + "A").has_value());

  auto fresh = get_anchor(sql, ids.gamma);
  REQUIRE(fresh.has_value());
  CHECK(fresh->at("anchor").at("name") == "Gamma");
  CHECK(fresh->at("assets").empty());
  CHECK(fresh->at("metrics_history").empty());

  SECTION("assets: add, conflict, not found, invalid input") {
    auto added = add_anchor_asset(sql, ids.alpha, {"USDC", account_alpha}, 50);
    REQUIRE(std::holds_alternative<json>(added));
    CHECK(std::get<json>(added).at("anchor_id") == ids.alpha);
    CHECK(std::get<json>(added).at("asset_code") == "USDC");
    CHECK(std::get<json>(added).at("asset_issuer") == account_alpha);
    CHECK(std::get<json>(added).at("created_at") == 50);
    CHECK(std::holds_alternative<json>(
        add_anchor_asset(sql, ids.alpha, {"EURC", account_alpha}, 51)));
    CHECK(
        std::holds_alternative<json>(add_anchor_asset(sql, ids.alpha, {"USDC", issuer_other}, 52)));
    // The same asset on another anchor is fine; twice on one anchor is a conflict.
    CHECK(
        std::holds_alternative<json>(add_anchor_asset(sql, ids.beta, {"USDC", account_alpha}, 53)));
    CHECK(std::holds_alternative<conflict_error>(
        add_anchor_asset(sql, ids.alpha, {"USDC", account_alpha}, 54)));
    CHECK(std::holds_alternative<not_found_error>(
        add_anchor_asset(sql, 999999, {"USDC", account_alpha}, 55)));

    const auto field = [&](const new_anchor_asset& a) {
      auto result = add_anchor_asset(sql, ids.alpha, a, 56);
      REQUIRE(std::holds_alternative<field_error>(result));
      return std::get<field_error>(result).field;
    };
    CHECK(field({"", account_alpha}) == "asset_code");
    CHECK(field({"TOOLONGCODE13", account_alpha}) == "asset_code");
    CHECK(field({"US$", account_alpha}) == "asset_code");
    CHECK(field({"XLM", "native"}) == "asset_issuer");
    CHECK(field({"USDC", ""}) == "asset_issuer");
    std::string bad_checksum = account_alpha;
    bad_checksum[20] = bad_checksum[20] == 'A' ? 'B' : 'A';
    CHECK(field({"USDC", bad_checksum}) == "asset_issuer");

    auto detail = get_anchor(sql, ids.alpha);
    REQUIRE(detail.has_value());
    const auto& assets = detail->at("assets");
    REQUIRE(assets.size() == 3);
    CHECK(assets.at(0).at("asset_code") == "EURC");
    CHECK(assets.at(1).at("asset_code") == "USDC");
    CHECK(assets.at(2).at("asset_code") == "USDC");
    CHECK(assets.at(1).at("asset_issuer").get<std::string>()
          < assets.at(2).at("asset_issuer").get<std::string>());
    CHECK(get_anchor(sql, ids.beta)->at("assets").size() == 1);
  }
  SECTION("metrics history: newest rows, shown oldest first") {
    for (long long at : {300, 100, 200, 400}) {
      sql << "INSERT INTO anchor_metrics_history (anchor_id, recorded_at, total_transactions, "
             "successful_transactions, failed_transactions, success_rate, volume, "
             "reliability_score, status) VALUES (:id, :at, :t, :s, 1, 90.5, NULL, 88, 'green')",
          soci::use(ids.beta), soci::use(at), soci::use(at), soci::use(at - 1);
    }
    auto detail = get_anchor(sql, ids.beta);
    REQUIRE(detail.has_value());
    const auto& history = detail->at("metrics_history");
    REQUIRE(history.size() == 4);
    CHECK(history.at(0).at("recorded_at") == 100);
    CHECK(history.at(3).at("recorded_at") == 400);
    CHECK(history.at(0).at("total_transactions") == 100);
    CHECK(history.at(0).at("successful") == 99);
    CHECK(history.at(0).at("failed") == 1);
    CHECK(history.at(0).at("success_rate").get<double>() == Approx(90.5));
    CHECK(history.at(0).at("volume").is_null());
    CHECK(history.at(0).at("avg_settlement_time_ms").is_null());
    CHECK(history.at(0).at("reliability_score").get<double>() == Approx(88));
    CHECK(history.at(0).at("status") == "green");

    auto two = get_anchor(sql, ids.beta, 2);
    REQUIRE(two.has_value());
    REQUIRE(two->at("metrics_history").size() == 2);
    CHECK(two->at("metrics_history").at(0).at("recorded_at") == 300);
    CHECK(two->at("metrics_history").at(1).at("recorded_at") == 400);
    CHECK(get_anchor(sql, ids.beta, 0)->at("metrics_history").size() == 1);  // clamped
    CHECK(get_anchor(sql, ids.alpha)->at("metrics_history").empty());

    auto by_account = get_anchor_by_account(sql, account_beta, 2);
    REQUIRE(by_account.has_value());
    CHECK(*by_account == *two);
  }
  SECTION("create: conflicts and validation") {
    auto duplicate = create_anchor(sql, {"Alpha again", account_alpha, std::nullopt}, 20);
    REQUIRE(std::holds_alternative<conflict_error>(duplicate));
    CHECK_THAT(std::get<conflict_error>(duplicate).message, Catch::Contains("stellar_account"));
    CHECK(list_anchors(sql, {}).at("total") == 4);

    const auto field = [&](const new_anchor& a) {
      auto result = create_anchor(sql, a, 21);
      REQUIRE(std::holds_alternative<field_error>(result));
      return std::get<field_error>(result);
    };
    const std::string other = issuer_other;
    CHECK(field({"", other, std::nullopt}).field == "name");
    CHECK(field({"   \t", other, std::nullopt}).field == "name");
    CHECK(field({std::string(201, 'x'), other, std::nullopt}).field == "name");
    CHECK(field({"bad\x01name", other, std::nullopt}).field == "name");
    CHECK(field({"bad \xff utf8", other, std::nullopt}).field == "name");
    CHECK(field({"surrogate \xed\xa0\x80", other, std::nullopt}).field == "name");
    CHECK(field({"ok", "", std::nullopt}).field == "stellar_account");
    CHECK(field({"ok", "GABC", std::nullopt}).field == "stellar_account");
    const auto seed_key = field({"ok", "S" + other.substr(1), std::nullopt});
    CHECK(seed_key.field == "stellar_account");
    CHECK_THAT(seed_key.message, Catch::Contains("must start with 'G'"));
    CHECK(field({"ok", other, std::string("")}).field == "home_domain");
    CHECK(field({"ok", other, std::string("https://example.com")}).field == "home_domain");
    CHECK(field({"ok", other, std::string("example.com/path")}).field == "home_domain");
    CHECK(field({"ok", other, std::string("localhost")}).field == "home_domain");
    CHECK(field({"ok", other, std::string("-bad.example.com")}).field == "home_domain");
    CHECK(field({"ok", other, std::string("a..b")}).field == "home_domain");
    CHECK(list_anchors(sql, {}).at("total") == 4);

    // 200 characters of multi-byte UTF-8 are fine; names are trimmed; domains lowered.
    std::string accented;
    for (int i = 0; i < 200; ++i) {
      accented += "\xc3\xa9";
    }
    auto created = create_anchor(sql, {"  " + accented + " ", other, "Pay.Example.COM"}, 22);
    REQUIRE(std::holds_alternative<json>(created));
    const auto& anchor = std::get<json>(created);
    CHECK(anchor.at("name") == accented);
    CHECK(anchor.at("home_domain") == "pay.example.com");
    CHECK(anchor.at("stellar_account") == other);
    CHECK(anchor.at("total_transactions") == 0);
    CHECK(anchor.at("status").is_null());
    CHECK(anchor.at("created_at") == 22);
    CHECK(anchor.at("updated_at") == 22);
    auto found = get_anchor_by_account(sql, other);
    REQUIRE(found.has_value());
    CHECK(found->at("anchor") == anchor);
    CHECK(get_anchor(sql, anchor.at("id").get<long long>())->at("anchor") == anchor);
  }
}

}  // namespace

TEST_CASE("parse helpers for anchor queries", "[sqlite][api]") {
  CHECK(parse_anchor_status("yellow") == anchor_status::yellow);
  CHECK_FALSE(parse_anchor_status("purple").has_value());
  CHECK(to_string(anchor_status::red) == "red");
  CHECK(parse_anchor_sort("name") == anchor_sort::name);
  CHECK(parse_anchor_sort("transactions") == anchor_sort::transactions);
  CHECK_FALSE(parse_anchor_sort("id").has_value());
}

TEST_CASE("anchor list: status filter, sorts, paging (sqlite)", "[sqlite][api]") {
  auto sql = fresh_sqlite();
  check_list(*sql);
}

TEST_CASE("anchor detail, create and add asset (sqlite)", "[sqlite][api]") {
  auto sql = fresh_sqlite();
  check_detail_and_writes(*sql);
}

TEST_CASE("anchor list: status filter, sorts, paging (postgres)", "[postgres][api]") {
  si::test::pg_schema schema;
  auto sql = schema.open();
  REQUIRE(migrate(*sql, backend::postgresql) == latest_schema_version());
  check_list(*sql);
}

TEST_CASE("anchor detail, create and add asset (postgres)", "[postgres][api]") {
  si::test::pg_schema schema;
  auto sql = schema.open();
  REQUIRE(migrate(*sql, backend::postgresql) == latest_schema_version());
  check_detail_and_writes(*sql);
}

TEST_CASE("concurrent creates of one account give one anchor and one conflict", "[postgres][api]") {
  si::test::pg_schema schema;
  auto a = schema.open();
  auto b = schema.open();
  REQUIRE(migrate(*a, backend::postgresql) == latest_schema_version());
  // b holds an open transaction with the row inserted; a's insert waits on it, then finds
  // the conflict once b commits.
  b->begin();
  auto first = create_anchor(*b, {"First", account_alpha, std::nullopt}, 1);
  REQUIRE(std::holds_alternative<json>(first));
  std::optional<create_anchor_result> second;
  std::thread other([&] {
    second = create_anchor(*a, {"Second", account_alpha, std::nullopt}, 2);
  });
  // Wait (bounded) until a's INSERT is blocked on b's uncommitted row, then commit b.
  auto probe = schema.open();
  int waiting = 0;
  for (int i = 0; i < 5000 && waiting == 0; ++i) {
    *probe << "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
              "AND datname = current_database()",
        soci::into(waiting);
  }
  b->commit();
  other.join();
  CHECK(waiting == 1);
  REQUIRE(second.has_value());
  CHECK(std::holds_alternative<conflict_error>(*second));
  CHECK(list_anchors(*a, {}).at("total") == 1);
}
