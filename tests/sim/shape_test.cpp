// The simulator's documents against the real Horizon fixtures: every record type parses with
// our parsers and has exactly the keys of the matching fixture (recursively).

#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <string>

#include "domain/strkey.hpp"
#include "tests/sim/support.hpp"

using namespace si;
using namespace si::test;

namespace {

std::vector<std::string> shape_args() {
  return {"--seed",          "7",  "--ledgers",   "40",
          "--tx-per-ledger", "12", "--base-time", std::string(fixed_base_time)};
}

/// Keys Horizon sends only sometimes (a muxed source; a sponsor; a memo; an upper time bound).
const std::vector<std::string> op_optional = {"source_account_muxed", "source_account_muxed_id",
                                              "sponsor"};
const std::vector<std::string> tx_optional = {"memo", "memo_bytes", "valid_before",
                                              "preconditions.timebounds.max_time"};

/// The fixture record each operation type must match.
json operation_fixture(const std::string& type) {
  static const std::map<std::string, std::string> files = {
      {"payment", "operation_payment.json"},
      {"path_payment_strict_send", "operation_path_payment_strict_send.json"},
      {"path_payment_strict_receive", "operation_path_payment_strict_receive_failed_tx.json"},
      {"create_account", "operation_create_account.json"},
      {"account_merge", "operation_account_merge.json"},
      {"change_trust", "operation_change_trust.json"},
      {"manage_sell_offer", "operation_manage_sell_offer.json"},
      // Horizon renders manage_buy_offer with the same fields as manage_sell_offer.
      {"manage_buy_offer", "operation_manage_sell_offer.json"},
      {"liquidity_pool_deposit", "operation_liquidity_pool_deposit.json"},
      {"liquidity_pool_withdraw", "operation_liquidity_pool_withdraw.json"},
  };
  if (type == "set_options") {
    return fixture("operations_page.json")["_embedded"]["records"][2];
  }
  return fixture(files.at(type));
}

/// The page document without its records (for comparing the page envelope).
json page_envelope(json page) {
  page["_embedded"]["records"] = json::array();
  return page;
}

/// 8 big-endian bytes as a number.
uint64_t big_endian(const std::vector<uint8_t>& bytes, std::size_t from) {
  uint64_t v = 0;
  for (std::size_t i = 0; i < 8; ++i) {
    v = (v << 8) | bytes[from + i];
  }
  return v;
}

}  // namespace

TEST_CASE("every operation type parses and has exactly its fixture's keys", "[sim][shape]") {
  sim_process sim(shape_args());
  net::horizon_client client(client_options(sim));
  const auto ops = walk<domain::operation>(client, "/operations?limit=200&include_failed=true");
  REQUIRE(ops.size() > 400);

  std::map<std::string, std::set<std::string>> expected;
  std::map<std::string, std::size_t> seen;
  std::map<std::string, std::string> mismatch;  // type -> the first offending record
  bool muxed_checked = false;
  bool sponsor_seen = false;
  bool failed_receive_zero = false;
  bool failed_send_zero = false;
  bool failed_deposit_zero = false;
  std::size_t hops_seen = 0;
  for (const json& op : ops) {
    const auto model = parsed_ok(domain::parse_operation(op));
    const std::string type = model.type;
    if (!expected.count(type)) {
      expected[type] = key_paths(normalize(operation_fixture(type), op_optional));
    }
    ++seen[type];
    auto want = expected[type];
    if (op.contains("path") && op["path"].empty()) {
      // A direct path payment: an empty path array has no element keys.
      std::erase_if(want, [](const std::string& k) { return k.starts_with("path[]."); });
    } else if (op.contains("path")) {
      ++hops_seen;
    }
    if (key_paths(normalize(op, op_optional)) != want && !mismatch.count(type)) {
      mismatch[type] = op.dump();
    }
    CHECK(model.payment.has_value() == domain::is_payment_like(type));
    if (op.contains("source_account_muxed") && !muxed_checked) {
      // SEP-23: the M... address is the G... key followed by the id, big-endian.
      auto m = domain::decode_strkey(op["source_account_muxed"].get<std::string>(), 'M');
      auto g = domain::decode_strkey(op["source_account"].get<std::string>(), 'G');
      REQUIRE(m);
      REQUIRE(g);
      REQUIRE(m->size() == 40);
      CHECK(std::equal(g->begin(), g->end(), m->begin()));
      CHECK(std::to_string(big_endian(*m, 32)) == op["source_account_muxed_id"]);
      muxed_checked = true;
    }
    sponsor_seen = sponsor_seen || op.contains("sponsor");
    const bool failed = !op["transaction_successful"].get<bool>();
    if (failed && type == "path_payment_strict_receive") {
      CHECK(op["source_amount"] == "0.0000000");
      CHECK(op["amount"] != "0.0000000");
      failed_receive_zero = true;
    }
    if (failed && type == "path_payment_strict_send") {
      CHECK(op["amount"] == "0.0000000");
      CHECK(op["source_amount"] != "0.0000000");
      failed_send_zero = true;
    }
    if (failed && type == "liquidity_pool_deposit") {
      CHECK(op["shares_received"] == "0.0000000");
      failed_deposit_zero = true;
    }
  }
  for (const auto& [type, record] : mismatch) {
    INFO("type " << type << ": " << record);
    CHECK(false);
  }
  CHECK(seen.size() == 11);
  CHECK(muxed_checked);
  CHECK(sponsor_seen);
  CHECK(failed_receive_zero);
  CHECK(failed_send_zero);
  CHECK(failed_deposit_zero);
  CHECK(hops_seen > 0);
}

TEST_CASE("transactions have the keys of the plain, failed and fee-bump fixtures", "[sim][shape]") {
  sim_process sim(shape_args());
  net::horizon_client client(client_options(sim));
  const auto txs = walk<domain::transaction>(client, "/transactions?limit=200&include_failed=true");
  REQUIRE(txs.size() > 200);

  const auto plain = key_paths(
      normalize(fixture("transactions_page.json")["_embedded"]["records"][0], tx_optional));
  // The page's other records differ from the first only in optional keys.
  REQUIRE(plain
          == key_paths(normalize(fixture("transactions_page.json")["_embedded"]["records"][1],
                                 tx_optional)));
  const auto failed = key_paths(normalize(fixture("transaction_failed.json"), tx_optional));
  const auto bump = key_paths(normalize(fixture("transaction_fee_bump.json"), tx_optional));

  std::size_t plain_n = 0;
  std::size_t failed_n = 0;
  std::size_t bump_n = 0;
  std::size_t memo_n = 0;
  std::size_t bounded_n = 0;
  std::string first_mismatch;
  for (const json& tx : txs) {
    const auto model = parsed_ok(domain::parse_transaction(tx));
    const auto keys = key_paths(normalize(tx, tx_optional));
    const bool is_bump = tx.contains("fee_bump_transaction");
    CHECK(model.is_fee_bump() == is_bump);
    const auto& want = is_bump ? bump : (model.successful ? plain : failed);
    if (keys != want && first_mismatch.empty()) {
      first_mismatch = tx.dump();
    }
    if (is_bump) {
      ++bump_n;
      CHECK(*model.inner_transaction_hash != model.hash);
      CHECK(model.fee_account != model.source_account);
      CHECK(tx["fee_bump_transaction"]["hash"] == tx["hash"]);
    } else {
      ++(model.successful ? plain_n : failed_n);
      CHECK(model.fee_account == model.source_account);
    }
    CHECK(tx.contains("memo") == (model.memo_type == "text"));
    CHECK(tx.contains("memo_bytes") == tx.contains("memo"));
    CHECK(tx.contains("valid_before") == tx["preconditions"]["timebounds"].contains("max_time"));
    memo_n += tx.contains("memo") ? 1 : 0;
    bounded_n += tx.contains("valid_before") ? 1 : 0;
  }
  INFO("first mismatching transaction: " << first_mismatch);
  CHECK(first_mismatch.empty());
  CHECK(plain_n > 0);
  CHECK(failed_n > 0);
  CHECK(bump_n > 0);
  CHECK(memo_n > 0);
  CHECK(memo_n < txs.size());
  CHECK(bounded_n > 0);
  CHECK(bounded_n < txs.size());
}

TEST_CASE("ledgers, pools, trades, assets and pages have their fixtures' keys", "[sim][shape]") {
  sim_process sim(shape_args());
  net::horizon_client client(client_options(sim));

  const auto ledger_keys = key_paths(fixture("ledger_single.json"));
  REQUIRE(ledger_keys == key_paths(fixture("ledgers_page.json")["_embedded"]["records"][0]));
  const auto ledgers = walk<domain::ledger>(client, "/ledgers?limit=17");
  REQUIRE(ledgers.size() == 40);
  for (const json& l : ledgers) {
    CHECK(key_paths(l) == ledger_keys);
  }

  const auto pools = walk<domain::liquidity_pool>(client, "/liquidity_pools?limit=7");
  REQUIRE(pools.size() == 20);
  const auto pool_keys = key_paths(fixture("liquidity_pool_single.json"));
  for (const json& p : pools) {
    CHECK(key_paths(p) == pool_keys);
  }

  const std::string pool_id = pools.front()["id"];
  const auto trades =
      walk<domain::trade>(client, "/liquidity_pools/" + pool_id + "/trades?limit=50");
  REQUIRE(!trades.empty());
  const auto trade_keys = key_paths(normalize(fixture("trade_liquidity_pool_single.json")));
  for (const json& t : trades) {
    CHECK(key_paths(normalize(t)) == trade_keys);
    CHECK(t["_links"]["self"]["href"] == "");  // as Horizon sends it
    const auto model = parsed_ok(domain::parse_trade(t));
    CHECK(model.counter_liquidity_pool_id == pool_id);
  }

  const auto assets = walk<domain::asset_stats>(client, "/assets?limit=4");
  REQUIRE(assets.size() == 30);
  const auto asset_keys = key_paths(fixture("assets_page.json")["_embedded"]["records"][0]);
  for (const json& a : assets) {
    CHECK(key_paths(a) == asset_keys);
  }

  // Page envelopes: _links self/next/prev and _embedded.records, like every fixture page.
  for (const auto& [target, file] : std::vector<std::pair<std::string, std::string>>{
           {"/operations?limit=3", "operations_page.json"},
           {"/payments?limit=3", "payments_page.json"},
           {"/transactions?limit=3", "transactions_page.json"},
           {"/ledgers?limit=3", "ledgers_page.json"},
           {"/liquidity_pools?limit=3", "liquidity_pools_page.json"},
           {"/assets?limit=3", "assets_page.json"},
           {"/liquidity_pools/" + pool_id + "/trades?limit=3", "liquidity_pool_trades_page.json"},
       }) {
    INFO(target);
    CHECK(key_paths(page_envelope(get_json(client, target)))
          == key_paths(page_envelope(fixture(file))));
  }

  // Single records parse as their kind.
  const json& l0 = ledgers.front();
  auto one = parsed_ok(domain::parse_record<domain::ledger>(
      get_body(client, "/ledgers/" + std::to_string(l0["sequence"].get<int64_t>()))));
  CHECK(one.hash == l0["hash"]);
  auto pool = parsed_ok(domain::parse_record<domain::liquidity_pool>(
      get_body(client, "/liquidity_pools/" + pool_id)));
  CHECK(pool.id == pool_id);
  CHECK(pool.reserves.size() == 2);
}

TEST_CASE("errors are problem+json documents shaped like Horizon's", "[sim][shape]") {
  sim_process sim(shape_args());
  net::horizon_client client(client_options(sim));

  auto not_found = get_error(client, "/no/such/thing");
  CHECK(not_found.status == 404);
  CHECK(not_found.problem_type == "https://stellar.org/horizon-errors/not_found");
  CHECK(key_paths(json::parse(not_found.body)) == key_paths(fixture("error_404_not_found.json")));
  parsed_ok(domain::parse_record<domain::problem>(not_found.body));
  CHECK(http_call(sim.port(), "GET", "/no/such/thing")
            .head.find("Content-Type: application/problem+json")
        != std::string::npos);
  CHECK(http_call(sim.port(), "GET", "/ledgers")
            .head.find("Content-Type: application/hal+json; charset=utf-8")
        != std::string::npos);

  auto bad = get_error(client, "/operations?limit=abc");
  CHECK(bad.status == 400);
  const json bad_body = json::parse(bad.body);
  CHECK(key_paths(bad_body) == key_paths(fixture("error_400_bad_request.json")));
  CHECK(bad_body["extras"]["invalid_field"] == "limit");
  CHECK(bad_body["extras"]["reason"] == "unparseable value");

  REQUIRE(post_fault(sim, {{"kind", "status_429"}, {"path", "/ledgers"}}).status == 200);
  net::horizon_client limited_client(client_options(sim));
  auto rate = get_error(limited_client, "/ledgers");
  CHECK(rate.status == 429);
  CHECK(rate.retry_after_ms == 1000);
  // The fixture spells it "details" (old docs); Horizon sends "detail".
  json want = fixture("error_429_rate_limit_exceeded.json");
  want["detail"] = want["details"];
  want.erase("details");
  CHECK(key_paths(json::parse(rate.body)) == key_paths(want));
  CHECK(json::parse(rate.body)["detail"] == want["detail"]);
}

TEST_CASE("the root document names the chain's range", "[sim][shape]") {
  sim_process sim(shape_args());
  net::horizon_client client(client_options(sim));
  const json root = get_json(client, "/");
  CHECK(root["history_elder_ledger"] == 1000);
  CHECK(root["history_latest_ledger"] == 1039);
  CHECK(root["core_latest_ledger"] == 1039);
  CHECK(root["history_latest_ledger_closed_at"] == "2023-11-14T22:16:35Z");
  CHECK(root["network_passphrase"].is_string());
  CHECK(root["_links"]["self"]["href"] == sim.base_url() + "/");
}
