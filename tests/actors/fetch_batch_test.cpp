// fetch_ledger_batch against an in-memory Horizon built from real fixture records: whole
// ledgers, paging, early stop, and every way a partial answer must fail instead of
// advancing the cursor.

#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "actors/horizon_fetcher.hpp"
#include "domain/ledger_batch.hpp"

using namespace si;
using nlohmann::json;

namespace {

json fixture(const std::string& name) {
  std::ifstream in(std::string(SI_SOURCE_DIR) + "/../shared/horizon-fixtures/" + name);
  REQUIRE(in.good());
  return json::parse(in);
}

std::string hex64(int64_t n, char kind) {
  std::ostringstream out;
  out << kind << std::hex << n;
  auto s = out.str();
  s.resize(64, '0');
  for (auto& c : s) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) {
      c = 'a';
    }
  }
  return s;
}

/// A tiny Horizon: ledgers from 100 with `tx_per_ledger[i]` transactions of two operations.
struct fake_horizon {
  std::vector<json> ledgers, transactions, operations;
  int calls = 0;
  std::vector<std::string> targets;
  /// Hooks to break answers: (target, records) → records to serve.
  std::function<void(const std::string&, std::vector<json>&)> tamper;
  std::function<std::optional<net::horizon_error>(const std::string&)> fail;

  explicit fake_horizon(const std::vector<int>& tx_per_ledger) {
    auto l0 = fixture("ledger_single.json");
    auto t0 = fixture("transaction_failed.json");
    auto o0 = fixture("operation_payment.json");
    for (size_t i = 0; i < tx_per_ledger.size(); ++i) {
      int64_t seq = 100 + static_cast<int64_t>(i);
      auto l = l0;
      l["sequence"] = seq;
      l["paging_token"] = std::to_string(domain::toid(seq));
      l["hash"] = l["id"] = hex64(seq, 'a');
      l["prev_hash"] = hex64(seq - 1, 'a');
      int failed = tx_per_ledger[i] / 3;
      l["successful_transaction_count"] = tx_per_ledger[i] - failed;
      l["failed_transaction_count"] = failed;
      l["operation_count"] = (tx_per_ledger[i] - failed) * 2;
      l["tx_set_operation_count"] = tx_per_ledger[i] * 2;
      ledgers.push_back(l);
      for (int t = 1; t <= tx_per_ledger[i]; ++t) {
        auto tx = t0;
        auto hash = hex64(domain::toid(seq, t), 'b');
        tx["hash"] = tx["id"] = hash;
        tx["ledger"] = seq;
        tx["paging_token"] = std::to_string(domain::toid(seq, t));
        tx["successful"] = t > failed;
        tx["operation_count"] = 2;
        transactions.push_back(tx);
        for (int o = 1; o <= 2; ++o) {
          auto op = o0;
          auto id = std::to_string(domain::toid(seq, t, o));
          op["id"] = op["paging_token"] = id;
          op["transaction_hash"] = hash;
          op["transaction_successful"] = t > failed;
          operations.push_back(op);
        }
      }
    }
  }

  static std::map<std::string, std::string> query(const std::string& target) {
    std::map<std::string, std::string> q;
    auto qpos = target.find('?');
    std::istringstream in(qpos == std::string::npos ? "" : target.substr(qpos + 1));
    std::string kv;
    while (std::getline(in, kv, '&')) {
      auto eq = kv.find('=');
      q[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
    }
    return q;
  }

  net::horizon_result operator()(const std::string& target) {
    ++calls;
    targets.push_back(target);
    if (fail) {
      if (auto e = fail(target)) {
        return *e;
      }
    }
    auto path = target.substr(0, target.find('?'));
    auto q = query(target);
    const std::vector<json>* all = path == "/ledgers"        ? &ledgers
                                   : path == "/transactions" ? &transactions
                                                             : &operations;
    size_t limit = q.count("limit") ? std::stoul(q["limit"]) : 10;
    std::vector<json> out;
    if (q["order"] == "desc") {
      for (auto i = all->rbegin(); i != all->rend() && out.size() < limit; ++i) {
        out.push_back(*i);
      }
    } else {
      auto cursor = q.count("cursor") ? std::stoll(q["cursor"]) : -1;
      for (const auto& r : *all) {
        if (std::stoll(r["paging_token"].get<std::string>()) > cursor && out.size() < limit) {
          out.push_back(r);
        }
      }
    }
    if (tamper) {
      tamper(target, out);
    }
    json page{{"_links", {{"self", {{"href", target}}}}}, {"_embedded", {{"records", out}}}};
    net::horizon_response r;
    r.status = 200;
    r.body = page.dump();
    return r;
  }

  actors::horizon_get getter() {
    return [this](const std::string& t) { return (*this)(t); };
  }
};

actors::fetch_options small_pages(unsigned ledgers = 3, unsigned limit = 4) {
  actors::fetch_options o;
  o.batch_ledgers = ledgers;
  o.page_limit = limit;
  o.max_pages = 100;
  return o;
}

}  // namespace

TEST_CASE("fetch: whole ledgers with every transaction and operation, paged", "[fetch]") {
  fake_horizon h({3, 0, 5, 2, 4});
  auto r =
      actors::fetch_ledger_batch(h.getter(), domain::cursor_before_ledger(100), 100, small_pages());
  REQUIRE(std::holds_alternative<actors::fetched_batch>(r));
  auto& b = std::get<actors::fetched_batch>(r);
  CHECK(b.first_ledger == 100);
  CHECK(b.last_ledger == 102);
  CHECK(b.new_cursor == std::to_string(domain::toid(102)));
  CHECK_FALSE(b.caught_up);
  CHECK(b.batch->ledgers.size() == 3);
  CHECK(b.batch->transactions.size() == 8);
  CHECK(b.batch->operations.size() == 16);
  // 1 ledger page + 2 transaction pages (8 of limit 4, stopped by the count) + 4 op pages.
  CHECK(b.pages == 7);
  CHECK(h.calls == 7);
  for (const auto& t : h.targets) {
    if (t.rfind("/ledgers", 0) != 0) {
      CHECK(t.find("include_failed=true") != std::string::npos);
    }
  }
  // The next batch starts where this one ended, and the tip is reported as caught up.
  auto r2 = actors::fetch_ledger_batch(h.getter(), b.new_cursor, 103, small_pages());
  REQUIRE(std::holds_alternative<actors::fetched_batch>(r2));
  auto& b2 = std::get<actors::fetched_batch>(r2);
  CHECK(b2.first_ledger == 103);
  CHECK(b2.last_ledger == 104);
  CHECK(b2.caught_up);
  CHECK(b2.batch->transactions.size() == 6);
  CHECK(b2.batch->operations.size() == 12);
  auto r3 = actors::fetch_ledger_batch(h.getter(), b2.new_cursor, 105, small_pages());
  REQUIRE(std::holds_alternative<actors::fetched_batch>(r3));
  CHECK(std::get<actors::fetched_batch>(r3).last_ledger == 0);
  CHECK(std::get<actors::fetched_batch>(r3).caught_up);
}

TEST_CASE("fetch: empty ledgers need no transaction or operation request", "[fetch]") {
  fake_horizon h({0, 0, 0});
  auto r =
      actors::fetch_ledger_batch(h.getter(), domain::cursor_before_ledger(100), 100, small_pages());
  REQUIRE(std::holds_alternative<actors::fetched_batch>(r));
  CHECK(std::get<actors::fetched_batch>(r).last_ledger == 102);
  CHECK(h.calls == 1);
}

TEST_CASE("fetch: a partial or inconsistent answer fails and advances nothing", "[fetch]") {
  fake_horizon h({3, 2, 2, 1});
  auto fetch = [&] {
    return actors::fetch_ledger_batch(h.getter(), domain::cursor_before_ledger(100), 100,
                                      small_pages(3, 200));
  };
  auto failure_of = [](const auto& r) {
    REQUIRE(std::holds_alternative<actors::fetch_failure>(r));
    return std::get<actors::fetch_failure>(r);
  };
  SECTION("a missing transaction") {
    h.tamper = [](const std::string& t, std::vector<json>& recs) {
      if (t.rfind("/transactions", 0) == 0) {
        recs.erase(recs.begin() + 1);
      }
    };
    auto f = failure_of(fetch());
    CHECK(f.kind == "inconsistent");
    CHECK(f.message.find("ledger 100 has 2 transactions") != std::string::npos);
  }
  SECTION("a missing operation") {
    h.tamper = [](const std::string& t, std::vector<json>& recs) {
      if (t.rfind("/operations", 0) == 0) {
        recs.erase(recs.begin() + 3);
      }
    };
    auto f = failure_of(fetch());
    CHECK(f.kind == "inconsistent");
    CHECK(f.message.find("operation_count says 2") != std::string::npos);
  }
  SECTION("a duplicated operation") {
    h.tamper = [](const std::string& t, std::vector<json>& recs) {
      if (t.rfind("/operations", 0) == 0) {
        recs.insert(recs.begin() + 1, recs[0]);
        recs.pop_back();
      }
    };
    CHECK(failure_of(fetch()).message.find("appears twice") != std::string::npos);
  }
  SECTION("a gap between the cursor and the first ledger") {
    auto r = actors::fetch_ledger_batch(h.getter(), domain::cursor_before_ledger(100), 99,
                                        small_pages());
    auto f = failure_of(r);
    CHECK(f.kind == "inconsistent");
    CHECK(f.message.find("a gap") != std::string::npos);
  }
  SECTION("ledgers that are not consecutive") {
    h.tamper = [](const std::string& t, std::vector<json>& recs) {
      if (t.rfind("/ledgers", 0) == 0 && recs.size() > 2) {
        recs.erase(recs.begin() + 1);
      }
    };
    CHECK(failure_of(fetch()).message.find("not consecutive") != std::string::npos);
  }
  SECTION("a record that does not parse") {
    h.tamper = [](const std::string& t, std::vector<json>& recs) {
      if (t.rfind("/operations", 0) == 0) {
        recs[2].erase("type");
      }
    };
    auto f = failure_of(fetch());
    CHECK(f.kind == "malformed");
    CHECK(f.message.find("record 2") != std::string::npos);
  }
  SECTION("a Horizon error is passed on with its kind and Retry-After") {
    h.fail = [](const std::string& t) -> std::optional<net::horizon_error> {
      if (t.rfind("/operations", 0) == 0) {
        net::horizon_error e;
        e.kind = net::horizon_error_kind::http_status;
        e.status = 429;
        e.retry_after_ms = 3000;
        e.message = "429 Too Many Requests";
        e.title = "Rate Limit Exceeded";
        return e;
      }
      return std::nullopt;
    };
    auto f = failure_of(fetch());
    CHECK(f.kind == "http_status");
    CHECK(f.retry_after_ms == 3000);
    CHECK(f.message.find("Rate Limit Exceeded") != std::string::npos);
  }
  SECTION("a runaway answer is bounded by max_pages") {
    auto o = small_pages(3, 1);
    o.max_pages = 3;
    auto f = failure_of(
        actors::fetch_ledger_batch(h.getter(), domain::cursor_before_ledger(100), 100, o));
    CHECK(f.message.find("more than 3 pages") != std::string::npos);
  }
}

TEST_CASE("fetch: latest ledger and cursor arithmetic", "[fetch]") {
  fake_horizon h({1, 1, 1, 1});
  auto latest = actors::fetch_latest_ledger(h.getter());
  REQUIRE(std::holds_alternative<int64_t>(latest));
  CHECK(std::get<int64_t>(latest) == 103);
  CHECK(domain::next_ledger_after(domain::cursor_before_ledger(7)) == 7);
  CHECK(domain::next_ledger_after(std::to_string(domain::toid(7))) == 8);
  CHECK(domain::next_ledger_after(std::to_string(domain::toid(7, 3, 1))) == 8);
  CHECK_FALSE(domain::next_ledger_after("x1").has_value());
  CHECK_FALSE(domain::next_ledger_after("").has_value());
  CHECK_FALSE(domain::next_ledger_after("-5").has_value());
  CHECK(domain::toid(52425760) == 225166924667944960LL);
}
