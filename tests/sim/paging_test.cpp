// Paging, cursors, links, TOIDs, ledger counters and the ground truth of the simulator.

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <string>

#include "tests/sim/support.hpp"

using namespace si;
using namespace si::test;

namespace {

constexpr int64_t first_ledger = 1000;
constexpr int64_t last_ledger = 1029;

std::vector<std::string> paging_args() {
  return {"--seed",
          "3",
          "--ledgers",
          "30",
          "--tx-per-ledger",
          "8",
          "--ops-per-tx",
          "3",
          "--failed-percent",
          "20",
          "--fee-bump-percent",
          "10",
          "--base-time",
          std::string(fixed_base_time)};
}

uint64_t token_of(const json& record) {
  return std::stoull(record.at("paging_token").get<std::string>());
}

std::vector<uint64_t> tokens_of(const std::vector<json>& records) {
  std::vector<uint64_t> out;
  for (const auto& r : records) {
    out.push_back(token_of(r));
  }
  return out;
}

constexpr uint64_t toid(uint64_t ledger, uint64_t tx, uint64_t op) {
  return (ledger << 32) | (tx << 12) | op;
}

/// Walks `path` (which has a '?') with `query` appended, both ways, and checks the orders.
std::vector<uint64_t> walk_both_ways(net::horizon_client& client, const std::string& path) {
  const auto asc = tokens_of(walk<domain::operation>(client, path + "&order=asc"));
  auto desc = tokens_of(walk<domain::operation>(client, path + "&order=desc"));
  CHECK(std::adjacent_find(asc.begin(), asc.end(), std::greater_equal<>()) == asc.end());
  std::reverse(desc.begin(), desc.end());
  CHECK(desc == asc);
  return asc;
}

std::string cursor_of_link(const json& page, const std::string& link) {
  return domain::cursor_of(page["_links"][link]["href"].get<std::string>());
}

}  // namespace

TEST_CASE("paging visits every record exactly once in both orders and matches the truth",
          "[sim][paging]") {
  sim_process sim(paging_args());
  net::horizon_client client(client_options(sim));
  const json truth = get_json(client, "/_sim/truth");
  REQUIRE(truth["ledgers"] == 30);
  REQUIRE(truth["failed_transactions"] > 0);

  for (const char* limit : {"200", "13"}) {
    INFO("limit " << limit);
    const std::string l = std::string("?limit=") + limit;
    auto ops = walk_both_ways(client, "/operations" + l);
    CHECK(ops.size() == truth["successful_operations"]);
    auto all_ops = walk_both_ways(client, "/operations" + l + "&include_failed=true");
    CHECK(all_ops.size() == truth["operations"]);
    auto pays = walk_both_ways(client, "/payments" + l);
    CHECK(pays.size() == truth["successful_payment_operations"]);
    auto all_pays = walk_both_ways(client, "/payments" + l + "&include_failed=true");
    CHECK(all_pays.size() == truth["payment_operations"]);
    CHECK(std::includes(all_ops.begin(), all_ops.end(), ops.begin(), ops.end()));
    CHECK(std::includes(all_ops.begin(), all_ops.end(), all_pays.begin(), all_pays.end()));

    const auto txs = tokens_of(walk<domain::transaction>(client, "/transactions" + l));
    CHECK(txs.size() == truth["successful_transactions"]);
    const auto all_txs =
        tokens_of(walk<domain::transaction>(client, "/transactions" + l + "&include_failed=true"));
    CHECK(all_txs.size() == truth["transactions"]);
    auto desc_txs = tokens_of(
        walk<domain::transaction>(client, "/transactions" + l + "&include_failed=true&order=desc"));
    std::reverse(desc_txs.begin(), desc_txs.end());
    CHECK(desc_txs == all_txs);
  }
}

TEST_CASE("ledger counters, hash chain and TOIDs agree with the records", "[sim][paging]") {
  sim_process sim(paging_args());
  net::horizon_client client(client_options(sim));
  const auto ledgers = walk<domain::ledger>(client, "/ledgers?limit=200");
  const auto txs = walk<domain::transaction>(client, "/transactions?limit=200&include_failed=true");
  const auto ops = walk<domain::operation>(client, "/operations?limit=200&include_failed=true");
  REQUIRE(ledgers.size() == 30);

  struct counts {
    int successful = 0;
    int failed = 0;
    int ops = 0;
    int successful_ops = 0;
  };
  std::map<int64_t, counts> by_ledger;
  std::map<uint64_t, json> tx_by_token;
  std::map<int64_t, std::vector<uint64_t>> tx_index;
  std::set<std::size_t> ops_per_tx;
  for (const json& tx : txs) {
    const auto model = parsed_ok(domain::parse_transaction(tx));
    const uint64_t t = token_of(tx);
    CHECK(static_cast<int64_t>(t >> 32) == model.ledger);
    CHECK((t & 0xfff) == 0);
    tx_index[model.ledger].push_back((t >> 12) & 0xfffff);
    (model.successful ? by_ledger[model.ledger].successful : by_ledger[model.ledger].failed) += 1;
    tx_by_token[t] = tx;
    ops_per_tx.insert(static_cast<std::size_t>(model.operation_count));
  }
  // Transactions of a ledger are numbered 1..n.
  for (const auto& [ledger, indexes] : tx_index) {
    for (std::size_t i = 0; i < indexes.size(); ++i) {
      CHECK(indexes[i] == i + 1);
    }
  }
  std::map<uint64_t, std::vector<uint64_t>> ops_of_tx;
  for (const json& op : ops) {
    const auto model = parsed_ok(domain::parse_operation(op));
    const uint64_t id = static_cast<uint64_t>(model.id);
    CHECK(std::to_string(id) == model.paging_token);
    const uint64_t tx_token = id & ~uint64_t{0xfff};
    REQUIRE(tx_by_token.count(tx_token) == 1);
    const json& tx = tx_by_token[tx_token];
    CHECK(model.transaction_hash == tx["hash"]);
    CHECK(model.transaction_successful == tx["successful"]);
    CHECK(op["created_at"] == tx["created_at"]);
    ops_of_tx[tx_token].push_back(id & 0xfff);
    auto& c = by_ledger[static_cast<int64_t>(id >> 32)];
    c.ops += 1;
    c.successful_ops += model.transaction_successful ? 1 : 0;
  }
  for (const auto& [tx_token, indexes] : ops_of_tx) {
    CHECK(indexes.size() == tx_by_token[tx_token]["operation_count"]);
    for (std::size_t j = 0; j < indexes.size(); ++j) {
      CHECK(indexes[j] == j + 1);
    }
  }

  std::string prev_hash;
  int empty = 0;
  std::set<int> tx_counts;
  for (const json& l : ledgers) {
    const auto model = parsed_ok(domain::parse_ledger(l));
    const counts& c = by_ledger[model.sequence];
    INFO("ledger " << model.sequence);
    CHECK(model.paging_token == std::to_string(toid(static_cast<uint64_t>(model.sequence), 0, 0)));
    CHECK(model.successful_transaction_count == c.successful);
    CHECK(model.failed_transaction_count == c.failed);
    CHECK(model.operation_count == c.successful_ops);
    CHECK(model.tx_set_operation_count == c.ops);
    CHECK(model.closed_at_ms == (1'700'000'000 + (model.sequence - first_ledger) * 5) * 1000);
    if (!prev_hash.empty()) {
      CHECK(model.prev_hash == prev_hash);
    }
    prev_hash = model.hash;
    empty += (c.successful + c.failed == 0) ? 1 : 0;
    tx_counts.insert(c.successful + c.failed);
  }
  CHECK(empty > 0);              // some ledgers are empty
  CHECK(tx_counts.size() >= 5);  // the count varies per ledger
  CHECK(ops_per_tx.count(1) == 1);
  CHECK(*ops_per_tx.rbegin() == 5);  // 1..2*3-1

  // A sub-range of the truth equals the sums of its ledgers.
  const json part = get_json(client, "/_sim/truth?from=1005&to=1014");
  int tx_sum = 0;
  int op_sum = 0;
  int failed_sum = 0;
  for (int64_t seq = 1005; seq <= 1014; ++seq) {
    tx_sum += by_ledger[seq].successful + by_ledger[seq].failed;
    failed_sum += by_ledger[seq].failed;
    op_sum += by_ledger[seq].ops;
  }
  CHECK(part["ledgers"] == 10);
  CHECK(part["transactions"] == tx_sum);
  CHECK(part["failed_transactions"] == failed_sum);
  CHECK(part["operations"] == op_sum);
}

TEST_CASE("single records and ledger-scoped collections agree with the global pages",
          "[sim][paging]") {
  sim_process sim(paging_args());
  net::horizon_client client(client_options(sim));
  const auto txs = walk<domain::transaction>(client, "/transactions?limit=200&include_failed=true");
  const auto ops = walk<domain::operation>(client, "/operations?limit=200&include_failed=true");

  for (int64_t seq : {first_ledger, int64_t{1013}, last_ledger}) {
    INFO("ledger " << seq);
    const std::string base = "/ledgers/" + std::to_string(seq);
    auto scoped_ops = tokens_of(
        walk<domain::operation>(client, base + "/operations?limit=3&include_failed=true"));
    std::vector<uint64_t> expected;
    for (const json& op : ops) {
      if ((token_of(op) >> 32) == static_cast<uint64_t>(seq)) {
        expected.push_back(token_of(op));
      }
    }
    CHECK(scoped_ops == expected);
    auto scoped_txs = walk<domain::transaction>(client, base + "/transactions?limit=200");
    for (const json& tx : scoped_txs) {
      CHECK(tx["ledger"] == seq);
      CHECK(tx["successful"] == true);
    }
    auto scoped_pays = walk<domain::operation>(client, base + "/payments?limit=200");
    for (const json& p : scoped_pays) {
      CHECK(domain::is_payment_like(p["type"].get<std::string>()));
    }
  }

  int fee_bumps = 0;
  for (std::size_t i = 0; i < txs.size(); i += 17) {
    const json& tx = txs[i];
    const std::string hash = tx["hash"];
    const std::string single = get_body(client, "/transactions/" + hash);
    CHECK(parsed_ok(domain::parse_record<domain::transaction>(single)).hash == hash);
    CHECK(json::parse(single) == tx);
    const auto own_ops = walk<domain::operation>(client, "/transactions/" + hash + "/operations");
    CHECK(own_ops.size() == tx["operation_count"]);
    for (const json& op : own_ops) {
      CHECK(op["transaction_hash"] == hash);
    }
  }
  for (const json& tx : txs) {
    if (tx.contains("inner_transaction") && fee_bumps < 3) {
      // Horizon also finds a fee bump by its inner hash.
      const std::string inner = tx["inner_transaction"]["hash"];
      CHECK(get_json(client, "/transactions/" + inner) == tx);
      ++fee_bumps;
    }
  }
  CHECK(fee_bumps > 0);
  for (std::size_t i = 0; i < ops.size(); i += 23) {
    const std::string single = get_body(client, "/operations/" + ops[i]["id"].get<std::string>());
    CHECK(std::to_string(parsed_ok(domain::parse_record<domain::operation>(single)).id)
          == ops[i]["id"]);
    CHECK(json::parse(single) == ops[i]);
  }
}

TEST_CASE("the truth's corridors and type counts match what /payments and /operations serve",
          "[sim][paging]") {
  sim_process sim(paging_args());
  net::horizon_client client(client_options(sim));
  const json truth = get_json(client, "/_sim/truth");

  std::map<std::string, std::map<std::string, int>> corridors;
  for (const json& p : walk<domain::operation>(client, "/payments?limit=200&include_failed=true")) {
    const auto model = parsed_ok(domain::parse_operation(p));
    REQUIRE(model.payment);
    const std::string key =
        model.payment->source_asset.id() + "->" + model.payment->destination_asset.id();
    corridors[key]["attempts"] += 1;
    corridors[key][model.transaction_successful ? "successful" : "failed"] += 1;
  }
  REQUIRE(truth["payments"].size() == corridors.size());
  for (const auto& [key, value] : truth["payments"].items()) {
    INFO(key);
    CHECK(value["attempts"] == corridors[key]["attempts"]);
    CHECK(value["successful"] == corridors[key]["successful"]);
    CHECK(value["failed"] == corridors[key]["failed"]);
  }

  std::map<std::string, int> types;
  std::map<std::string, int> successful_types;
  for (const json& op :
       walk<domain::operation>(client, "/operations?limit=200&include_failed=true")) {
    types[op["type"]] += 1;
    successful_types[op["type"]] += op["transaction_successful"].get<bool>() ? 1 : 0;
  }
  for (const auto& [type, n] : truth["operations_by_type"].items()) {
    CHECK(n == types[type]);
    CHECK(truth["successful_operations_by_type"][type] == successful_types[type]);
  }
}

TEST_CASE("cursors, links and parameters behave as Horizon's", "[sim][paging]") {
  sim_process sim(paging_args());
  net::horizon_client client(client_options(sim));
  const auto all =
      tokens_of(walk<domain::operation>(client, "/operations?limit=200&include_failed=true"));
  REQUIRE(all.size() > 40);
  const uint64_t x = all[20];

  SECTION("asc gives tokens above the cursor, desc below it") {
    const json up =
        get_json(client, "/operations?include_failed=true&limit=5&cursor=" + std::to_string(x));
    std::vector<uint64_t> got = tokens_of(up["_embedded"]["records"].get<std::vector<json>>());
    CHECK(got == std::vector<uint64_t>(all.begin() + 21, all.begin() + 26));
    const json down = get_json(
        client, "/operations?include_failed=true&limit=5&order=desc&cursor=" + std::to_string(x));
    got = tokens_of(down["_embedded"]["records"].get<std::vector<json>>());
    CHECK(got == std::vector<uint64_t>({all[19], all[18], all[17], all[16], all[15]}));
    // A cursor between records: a ledger's own TOID precedes all its operations.
    const uint64_t ledger = x >> 32;
    const json from_ledger = get_json(client, "/operations?include_failed=true&limit=1&cursor="
                                                  + std::to_string(toid(ledger, 0, 0)));
    const auto first =
        std::find_if(all.begin(), all.end(), [&](uint64_t t) { return (t >> 32) == ledger; });
    CHECK(token_of(from_ledger["_embedded"]["records"][0]) == *first);
  }

  SECTION("links: self echoes the request, next continues, prev goes back") {
    const json page1 = get_json(client, "/operations?include_failed=true&limit=4");
    CHECK(cursor_of_link(page1, "self").empty());
    const std::string next = page1["_links"]["next"]["href"];
    CHECK(next.starts_with(sim.base_url() + "/operations?"));
    CHECK(next.find("include_failed=true") != std::string::npos);
    CHECK(cursor_of_link(page1, "next") == std::to_string(all[3]));
    const json page2 = get_json(client, next);
    CHECK(cursor_of_link(page2, "self") == std::to_string(all[3]));
    CHECK(token_of(page2["_embedded"]["records"][0]) == all[4]);
    const std::string prev = page2["_links"]["prev"]["href"];
    CHECK(prev.find("order=desc") != std::string::npos);
    const json back = get_json(client, prev);
    CHECK(tokens_of(back["_embedded"]["records"].get<std::vector<json>>())
          == std::vector<uint64_t>({all[3], all[2], all[1], all[0]}));
  }

  SECTION("cursor=now and cursors past the tip") {
    const json later = get_json(client, "/operations?cursor=now");
    CHECK(later["_embedded"]["records"].empty());
    CHECK(cursor_of_link(later, "next") == "now");
    const json newest = get_json(client, "/operations?cursor=now&order=desc&include_failed=true");
    CHECK(token_of(newest["_embedded"]["records"][0]) == all.back());
    const json past = get_json(client, "/ledgers?cursor=" + std::to_string(toid(5000, 0, 0)));
    CHECK(past["_embedded"]["records"].empty());
    const json ledgers_desc = get_json(client, "/ledgers?order=desc&limit=2");
    CHECK(ledgers_desc["_embedded"]["records"][0]["sequence"] == last_ledger);
  }

  SECTION("invalid parameters are 400 naming the field; unknown resources 404") {
    for (const auto& [target, field] : std::vector<std::pair<std::string, std::string>>{
             {"/operations?limit=0", "limit"},
             {"/operations?limit=201", "limit"},
             {"/ledgers?limit=ten", "limit"},
             {"/transactions?order=up", "order"},
             {"/payments?include_failed=maybe", "include_failed"},
             {"/operations?cursor=abc", "cursor"},
             {"/operations/notanumber", "id"},
         }) {
      INFO(target);
      auto error = get_error(client, target);
      CHECK(error.status == 400);
      CHECK(json::parse(error.body)["extras"]["invalid_field"] == field);
    }
    for (const std::string& target : std::vector<std::string>{
             "/operations/1", "/ledgers/999", "/ledgers/1030", "/ledgers/1030/operations",
             "/transactions/" + std::string(64, '0'), "/ledgers/", "/effects"}) {
      INFO(target);
      CHECK(status_of(client, target) == 404);
    }
    // Horizon refuses a descending cursor at or before its oldest ledger.
    auto gone =
        get_error(client, "/operations?order=desc&cursor=" + std::to_string(toid(1000, 0, 0)));
    CHECK(gone.status == 410);
    CHECK(gone.problem_type == "https://stellar.org/horizon-errors/before_history");
    CHECK(http_call(sim.port(), "POST", "/ledgers").status == 405);
  }
}

TEST_CASE("pools, trades and assets page with cursors in both orders", "[sim][paging]") {
  sim_process sim(paging_args());
  net::horizon_client client(client_options(sim));
  const json info = get_json(client, "/_sim/info");

  auto pools = walk<domain::liquidity_pool>(client, "/liquidity_pools?limit=3");
  std::vector<std::string> ids;
  for (const json& p : pools) {
    ids.push_back(p["id"]);
  }
  auto want = info["pools"].get<std::vector<std::string>>();
  CHECK(std::is_sorted(ids.begin(), ids.end()));
  std::sort(want.begin(), want.end());
  CHECK(ids == want);
  auto pools_desc = walk<domain::liquidity_pool>(client, "/liquidity_pools?limit=3&order=desc");
  REQUIRE(pools_desc.size() == pools.size());
  CHECK(pools_desc.front()["id"] == ids.back());

  const int64_t tip_ms = (1'700'000'000LL + (last_ledger - first_ledger) * 5) * 1000;
  for (std::size_t i = 0; i < 3; ++i) {
    INFO("pool " << ids[i]);
    const std::string path = "/liquidity_pools/" + ids[i] + "/trades?limit=9";
    const auto asc = walk<domain::trade>(client, path);
    auto desc = walk<domain::trade>(client, path + "&order=desc");
    REQUIRE(!asc.empty());
    std::reverse(desc.begin(), desc.end());
    CHECK(desc == asc);
    int64_t previous = 0;
    for (const json& t : asc) {
      const auto model = parsed_ok(domain::parse_trade(t));
      CHECK(model.counter_liquidity_pool_id == ids[i]);
      CHECK(model.ledger_close_time_ms <= tip_ms);
      CHECK(model.ledger_close_time_ms > tip_ms - 48LL * 3600 * 1000);
      CHECK(model.ledger_close_time_ms > previous);
      CHECK(model.price_n > 0);
      CHECK(model.base_amount > 0);
      previous = model.ledger_close_time_ms;
    }
  }

  const auto assets = walk<domain::asset_stats>(client, "/assets?limit=4");
  REQUIRE(assets.size() == info["assets"].size());
  for (std::size_t i = 1; i < assets.size(); ++i) {
    CHECK(std::make_pair(assets[i - 1]["asset_code"].get<std::string>(),
                         assets[i - 1]["asset_issuer"].get<std::string>())
          < std::make_pair(assets[i]["asset_code"].get<std::string>(),
                           assets[i]["asset_issuer"].get<std::string>()));
  }
  const json usdc = get_json(client, "/assets?asset_code=USDC");
  REQUIRE(usdc["_embedded"]["records"].size() == 1);
  CHECK(usdc["_embedded"]["records"][0]["asset_issuer"] == info["anchors"][0]);
  // Asset statistics agree with the pools: count and reserves held.
  for (const json& a : assets) {
    const std::string id =
        a["asset_code"].get<std::string>() + ":" + a["asset_issuer"].get<std::string>();
    int holding = 0;
    for (const json& p : pools) {
      for (const json& r : p["reserves"]) {
        holding += r["asset"] == id ? 1 : 0;
      }
    }
    CHECK(a["num_liquidity_pools"] == holding);
  }
}
