// Event streams and the growing chain: records after a cursor in order, then new ledgers as
// they close; whole ledgers only; limit/byebye; Last-Event-ID; shutdown.

#include <catch2/catch.hpp>

#include <signal.h>

#include <algorithm>
#include <set>
#include <string>

#include "tests/sim/support.hpp"

using namespace si;
using namespace si::test;

namespace {

constexpr uint64_t toid(uint64_t ledger, uint64_t tx, uint64_t op) {
  return (ledger << 32) | (tx << 12) | op;
}

/// The record events of `events` parsed as T (open/close events skipped); fails on others.
template <class T>
std::vector<T> records_of(const std::vector<domain::sse_event>& events) {
  std::vector<T> out;
  for (const auto& e : events) {
    auto item = parsed_ok(domain::parse_stream_event<T>(e));
    if (item.kind == domain::stream_event_kind::record) {
      CHECK(e.has_own_id);
      out.push_back(std::move(*item.record));
    }
  }
  return out;
}

std::size_t record_count(const std::vector<domain::sse_event>& events) {
  return static_cast<std::size_t>(std::count_if(events.begin(), events.end(), [](const auto& e) {
    return e.event == "message" && e.data.starts_with("{");
  }));
}

}  // namespace

TEST_CASE(
    "a stream from a cursor sends the stored records in order, then new ones as ledgers "
    "close",
    "[sim][stream]") {
  sim_process sim({"--seed", "5", "--ledgers", "5", "--close-ms", "150", "--max-ledgers", "10",
                   "--tx-per-ledger", "4", "--base-time", std::string(fixed_base_time)});
  const uint64_t cursor = toid(1002, 0, 0);
  sse_reader ops(sim.port(), "/operations?include_failed=true&cursor=" + std::to_string(cursor));
  REQUIRE(ops.status() == 200);
  CHECK(ops.head().find("text/event-stream") != std::string::npos);
  CHECK(ops.head().find("Transfer-Encoding: chunked") != std::string::npos);

  // The last ledger (1009) closing is the event to wait for: a ledger stream reports it.
  sse_reader ledgers(sim.port(), "/ledgers?cursor=" + std::to_string(toid(1008, 0, 0)));
  REQUIRE(ledgers.read_until(
      [&] {
        const auto& e = ledgers.events();
        return !e.empty() && e.back().id == std::to_string(toid(1009, 0, 0));
      },
      15s));
  const auto seen_ledgers = records_of<domain::ledger>(ledgers.events());
  REQUIRE(seen_ledgers.size() == 1);
  CHECK(seen_ledgers[0].sequence == 1009);

  net::horizon_client client(client_options(sim));
  const json truth = get_json(client, "/_sim/truth?from=1002&to=1009");
  const std::size_t expected = truth["operations"];
  REQUIRE(expected > 0);
  REQUIRE(ops.read_until([&] { return record_count(ops.events()) >= expected; }, 15s));

  const auto& events = ops.events();
  auto hello = parsed_ok(domain::parse_stream_event<domain::operation>(events.front()));
  CHECK(hello.kind == domain::stream_event_kind::open);
  CHECK(hello.text == "hello");
  CHECK(events.front().retry_ms == 1000);
  const auto records = records_of<domain::operation>(events);
  REQUIRE(records.size() == expected);
  std::vector<uint64_t> ids;
  for (std::size_t i = 0; i < records.size(); ++i) {
    ids.push_back(static_cast<uint64_t>(records[i].id));
    CHECK(records[i].paging_token == std::to_string(records[i].id));
  }
  CHECK(ids.front() > cursor);
  CHECK(std::adjacent_find(ids.begin(), ids.end(), std::greater_equal<>()) == ids.end());
  CHECK((ids.back() >> 32) == 1009);
  // The same records paging serves.
  std::vector<uint64_t> paged;
  for (const json& op : walk<domain::operation>(
           client, "/operations?limit=200&include_failed=true&cursor=" + std::to_string(cursor))) {
    paged.push_back(std::stoull(op["id"].get<std::string>()));
  }
  CHECK(paged == ids);
}

TEST_CASE("cursor=now streams only new ledgers; a limit ends the stream with byebye",
          "[sim][stream]") {
  sim_process sim({"--ledgers", "3", "--close-ms", "100", "--max-ledgers", "9", "--base-time",
                   std::string(fixed_base_time)});
  net::horizon_client client(client_options(sim));
  const int64_t before = get_json(client, "/")["history_latest_ledger"];

  sse_reader fresh(sim.port(), "/ledgers?cursor=now");
  REQUIRE(fresh.read_until([&] { return record_count(fresh.events()) >= 2; }, 10s));
  const auto new_ledgers = records_of<domain::ledger>(fresh.events());
  REQUIRE(new_ledgers.size() >= 2);
  CHECK(new_ledgers[0].sequence > before);
  CHECK(new_ledgers[1].sequence == new_ledgers[0].sequence + 1);

  sse_reader limited(sim.port(), "/operations?limit=5");
  REQUIRE(limited.read_until([&] { return limited.ended(); }, 5s));
  CHECK(limited.ended_cleanly());
  const auto& events = limited.events();
  CHECK(record_count(events) == 5);
  auto last = parsed_ok(domain::parse_stream_event<domain::operation>(events.back()));
  CHECK(last.kind == domain::stream_event_kind::close);
  CHECK(last.text == "byebye");
  CHECK(events.back().retry_ms == 10);
  for (const auto& op : records_of<domain::operation>(events)) {
    CHECK(op.transaction_successful);
  }
}

TEST_CASE("Last-Event-ID resumes a stream; /payments streams payments only", "[sim][stream]") {
  sim_process sim({"--ledgers", "6", "--base-time", std::string(fixed_base_time)});
  net::horizon_client client(client_options(sim));
  const json page = get_json(client, "/transactions?limit=4");
  const std::string resume_after = page["_embedded"]["records"][1]["paging_token"];

  sse_reader resumed(sim.port(), "/transactions?limit=2", {"Last-Event-ID: " + resume_after});
  REQUIRE(resumed.read_until([&] { return resumed.ended(); }, 5s));
  const auto txs = records_of<domain::transaction>(resumed.events());
  REQUIRE(txs.size() == 2);
  CHECK(txs[0].paging_token == page["_embedded"]["records"][2]["paging_token"]);
  CHECK(txs[1].paging_token == page["_embedded"]["records"][3]["paging_token"]);

  sse_reader payments(sim.port(), "/payments?include_failed=true&limit=40");
  REQUIRE(payments.read_until([&] { return payments.ended(); }, 5s));
  const auto pays = records_of<domain::operation>(payments.events());
  CHECK(pays.size() == 40);
  bool saw_failed = false;
  for (const auto& p : pays) {
    CHECK(domain::is_payment_like(p.type));
    CHECK(p.payment.has_value());
    saw_failed = saw_failed || !p.transaction_successful;
  }
  CHECK(saw_failed);

  // Streams exist for the four collections only, and only ascending.
  sse_reader not_streamable(sim.port(), "/assets");
  CHECK(not_streamable.status() == 406);
  sse_reader descending(sim.port(), "/operations?order=desc");
  CHECK(descending.status() == 400);
}

TEST_CASE("a growing chain exposes whole ledgers only", "[sim][stream]") {
  sim_process sim({"--seed", "9", "--ledgers", "2", "--close-ms", "40", "--max-ledgers", "40",
                   "--tx-per-ledger", "6", "--base-time", std::string(fixed_base_time)});
  net::horizon_client client(client_options(sim));
  const int64_t final_ledger = 1039;
  std::set<int64_t> tips;
  int64_t latest = 0;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  // Sample the chain while it grows (bounded in count and time): the newest ledger visible in
  // any answer is complete, and its record agrees with what was served.
  for (int round = 0;
       round < 5000 && latest < final_ledger && std::chrono::steady_clock::now() < deadline;
       ++round) {
    const int64_t before = get_json(client, "/_sim/info")["latest_ledger"];
    const json page = get_json(client, "/operations?order=desc&include_failed=true&limit=200");
    latest = get_json(client, "/_sim/info")["latest_ledger"];
    tips.insert(latest);
    CHECK(latest >= before);
    const auto& records = page["_embedded"]["records"];
    if (records.empty()) {
      continue;
    }
    const uint64_t top = std::stoull(records[0]["id"].get<std::string>()) >> 32;
    CHECK(static_cast<int64_t>(top) <= latest);
    int in_top = 0;
    for (const json& op : records) {
      in_top += (std::stoull(op["id"].get<std::string>()) >> 32) == top ? 1 : 0;
    }
    const json ledger = get_json(client, "/ledgers/" + std::to_string(top));
    CHECK(ledger["tx_set_operation_count"] == in_top);
    const int next_status =
        status_of(client, "/ledgers/" + std::to_string(top + 1) + "/operations");
    CHECK((next_status == 404 || next_status == 200));
  }
  REQUIRE(latest == final_ledger);
  CHECK(tips.size() >= 3);
  const json info = get_json(client, "/_sim/info");
  CHECK(info["growing"] == false);
  const json truth = get_json(client, "/_sim/truth");
  CHECK(truth["ledgers"] == 40);
  CHECK(walk<domain::operation>(client, "/operations?limit=200&include_failed=true").size()
        == truth["operations"]);
  CHECK(status_of(client, "/ledgers/1040") == 404);
}

TEST_CASE("SIGTERM ends open streams with byebye and the simulator exits 0", "[sim][stream]") {
  sim_process sim(
      {"--ledgers", "3", "--close-ms", "1000", "--base-time", std::string(fixed_base_time)});
  sse_reader stream(sim.port(), "/ledgers?cursor=now");
  REQUIRE(stream.read_until([&] { return !stream.events().empty(); }, 5s));  // the hello
  const auto started = std::chrono::steady_clock::now();
  CHECK(sim.stop(SIGTERM, 5s) == 0);
  CHECK(std::chrono::steady_clock::now() - started < 3s);
  REQUIRE(stream.read_until([&] { return stream.ended(); }, 5s));
  const auto& events = stream.events();
  REQUIRE(!events.empty());
  auto last = parsed_ok(domain::parse_stream_event<domain::ledger>(events.back()));
  CHECK(last.kind == domain::stream_event_kind::close);
}
