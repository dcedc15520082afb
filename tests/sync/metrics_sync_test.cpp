#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <string>
#include <vector>

#include "storage/anchors_repo.hpp"
#include "storage/corridors_repo.hpp"
#include "storage/sync_repo.hpp"
#include "sync_support.hpp"

using namespace si::storage;
using namespace si::sync_test;
namespace domain = si::domain;
using nlohmann::json;

namespace {

constexpr int64_t hour = domain::hour_ms;
constexpr int64_t day = domain::day_ms;
constexpr int64_t minute = 60'000;
constexpr int64_t t0 = 1'719'997'200'000;  // an hour boundary (2024-07-03T09:00:00Z)
constexpr int64_t now = t0 + 30 * minute;

const domain::asset xlm = domain::native_asset();
const std::string corridor_a = "USDC:" + usdc_issuer + "->XLM:native";
const std::string corridor_b = "XLM:native->XLM:native";
const std::string corridor_c = "EURC:" + eurc_issuer + "->USDC:" + usdc_issuer;

constexpr int64_t units(double u) {
  return static_cast<int64_t>(u * 10'000'000 + 0.5);
}

op_spec op(int64_t at, domain::asset src, domain::asset dst, double amount, bool ok = true,
           std::string type = "payment") {
  op_spec s;
  s.created_at_ms = at;
  s.source = std::move(src);
  s.destination = std::move(dst);
  s.amount_stroops = units(amount);
  s.successful = ok;
  s.type = std::move(type);
  return s;
}

json bucket(const std::string& id, int64_t start, int64_t attempts, int64_t successful,
            int64_t failed, double volume) {
  return {{"corridor_id", id},        {"bucket_start", start}, {"attempts", attempts},
          {"successful", successful}, {"failed", failed},      {"volume", volume}};
}

json without_sync_runs(json dump) {
  dump.erase("sync_runs");  // holds the measured duration, which differs run to run
  return dump;
}

/// Corridors A (USDC -> XLM, two hours) and B (XLM -> XLM, the current hour).
void seed_two_corridors(test_db& db) {
  std::vector<op_spec> ops = {
      op(t0 - 2 * hour, usdc(), xlm, 10, true, "path_payment_strict_send"),
      op(t0 - 2 * hour + minute, usdc(), xlm, 20, true, "path_payment_strict_send"),
      op(t0 - 2 * hour + 2 * minute, usdc(), xlm, 5, false, "path_payment_strict_send"),
      op(t0 - hour - 1, usdc(), xlm, 1.5, true, "path_payment_strict_receive"),  // last ms
      op(t0 - hour, usdc(), xlm, 100),                                           // next hour
      op(t0 + 10 * minute, xlm, xlm, 7),
      op(t0 + 5 * minute, xlm, xlm, 2, true, "create_account"),
      op(t0 + 20 * minute, xlm, xlm, 0, true, "manage_sell_offer"),  // no payment fields
  };
  auto merge = op(t0 + 6 * minute, xlm, xlm, 0, true, "account_merge");
  merge.amount_stroops.reset();  // only effects know what a merge moved
  ops.push_back(merge);
  ingest(db.sql(), db.kind(), ops);
}

void buckets_corridors_and_api(test_db& db) {
  seed_two_corridors(db);
  event_log log;
  const auto r = run_metrics_sync(db.sql(), db.kind(), now, 0, {}, log.fn());
  CHECK(r.buckets_deleted == 0);
  CHECK(r.buckets_written == 3);
  CHECK(r.corridors_written == 2);
  CHECK(r.changed_corridor_ids == std::vector<std::string>{corridor_a, corridor_b});
  CHECK(r.invalidate_prefixes == std::vector<std::string>{"api:/api/v1/corridors"});
  CHECK(r.events.empty());
  CHECK(log.seen.empty());
  CHECK(r.corridors_evaluated == 0);  // 5 and 3 attempts: fewer than 10, health unknown
  CHECK(count_rows(db.sql(), "corridor_health") == 0);

  CHECK(buckets(db.sql())
        == json::array({
            bucket(corridor_a, t0 - 2 * hour, 4, 3, 1, 31.5),
            bucket(corridor_a, t0 - hour, 1, 1, 0, 100),
            bucket(corridor_b, t0, 3, 3, 0, 9),
        }));

  // What the API then serves: lifetime rows...
  const auto list = list_corridors(db.sql(), corridor_query{});
  REQUIRE(list.at("total") == 2);
  const auto& a = list.at("corridors").at(0);
  CHECK(a.at("id") == corridor_a);
  CHECK(a.at("source_asset") == "USDC:" + usdc_issuer);
  CHECK(a.at("destination_asset") == "XLM:native");
  CHECK(a.at("total_attempts") == 5);
  CHECK(a.at("successful") == 4);
  CHECK(a.at("failed") == 1);
  CHECK(a.at("success_rate") == 80.0);
  CHECK(a.at("volume") == 131.5);
  CHECK(a.at("last_updated") == now);
  const auto& b = list.at("corridors").at(1);
  CHECK(b.at("id") == corridor_b);
  CHECK(b.at("total_attempts") == 3);
  CHECK(b.at("success_rate") == 100.0);
  CHECK(b.at("volume") == 9.0);  // the merge counts as an attempt without a known amount

  // ...windowed figures from the buckets...
  corridor_query day_q;
  day_q.period = corridor_period::h24;
  day_q.now_ms = now;
  const auto windowed = list_corridors(db.sql(), day_q);
  CHECK(windowed.at("total") == 2);
  CHECK(windowed.at("corridors").at(0).at("volume") == 131.5);
  day_q.now_ms = t0 - hour;  // the window ends before A's second bucket and B's bucket
  const auto earlier = list_corridors(db.sql(), day_q);
  REQUIRE(earlier.at("total") == 1);
  CHECK(earlier.at("corridors").at(0).at("total_attempts") == 4);
  CHECK(earlier.at("corridors").at(0).at("success_rate") == 75.0);

  // ...and the detail with its hourly history.
  const auto detail = get_corridor(db.sql(), {corridor_a, std::nullopt, 0});
  REQUIRE(detail);
  const auto& history = detail->at("history");
  REQUIRE(history.size() == 2);
  CHECK(history.at(0).at("bucket_start") == t0 - 2 * hour);
  CHECK(history.at(0).at("success_rate") == 75.0);
  CHECK(history.at(0).at("volume") == 31.5);
  CHECK(history.at(1).at("bucket_start") == t0 - hour);

  // A late operation in the current hour: only hours from the window start are rebuilt, and
  // only the corridor whose figures moved is reported and re-stamped.
  ingest(db.sql(), db.kind(), {op(t0 + 20 * minute, usdc(), xlm, 50)});
  const int64_t later = now + minute;
  const auto r2 = run_metrics_sync(db.sql(), db.kind(), later, t0 + 15 * minute, {}, log.fn());
  CHECK(r2.buckets_deleted == 1);  // B's bucket of hour t0
  CHECK(r2.buckets_written == 2);  // A's and B's buckets of hour t0
  CHECK(r2.corridors_written == 1);
  CHECK(r2.changed_corridor_ids == std::vector<std::string>{corridor_a});
  CHECK(buckets(db.sql())
        == json::array({
            bucket(corridor_a, t0 - 2 * hour, 4, 3, 1, 31.5),
            bucket(corridor_a, t0 - hour, 1, 1, 0, 100),
            bucket(corridor_a, t0, 1, 1, 0, 50),
            bucket(corridor_b, t0, 3, 3, 0, 9),
        }));
  const auto after = list_corridors(db.sql(), corridor_query{});
  CHECK(after.at("corridors").at(0).at("volume") == 181.5);
  CHECK(after.at("corridors").at(0).at("last_updated") == later);
  CHECK(after.at("corridors").at(1).at("last_updated") == now);  // B unchanged

  // The same run again changes nothing and reports nothing.
  const auto before = without_sync_runs(dump_sync_tables(db.sql()));
  const auto r3 = run_metrics_sync(db.sql(), db.kind(), later, t0 + 15 * minute, {}, log.fn());
  CHECK(r3.corridors_written == 0);
  CHECK(r3.changed_corridor_ids.empty());
  CHECK(r3.invalidate_prefixes.empty());
  CHECK(without_sync_runs(dump_sync_tables(db.sql())) == before);

  // A full rebuild gives the same buckets as the incremental ones.
  const auto r4 = run_metrics_sync(db.sql(), db.kind(), later, 0, {}, log.fn());
  CHECK(r4.buckets_deleted == 4);
  CHECK(r4.buckets_written == 4);
  CHECK(without_sync_runs(dump_sync_tables(db.sql())) == before);
  CHECK(log.seen.empty());
}

SI_SYNC_BOTH_BACKENDS("metrics sync builds hourly buckets and the corridors the API serves",
                      buckets_corridors_and_api)

/// Corridor C: 20 successful payments three hours before t0.
void seed_healthy_corridor(test_db& db) {
  ingest(db.sql(), db.kind(), repeat(op(t0 - 3 * hour, eurc(), usdc(), 1), 20));
}

void health_events_once(test_db& db) {
  seed_healthy_corridor(db);
  event_log log;
  const auto r1 = run_metrics_sync(db.sql(), db.kind(), now, 0, {}, log.fn());
  CHECK(r1.corridors_evaluated == 1);
  CHECK(r1.events.empty());  // the first evaluation has nothing to compare with
  CHECK(count_rows(db.sql(), "corridor_health") == 1);

  // 5 failures: 20 of 25 = exactly 80 %, the inclusive lower bound of "degraded".
  ingest(db.sql(), db.kind(), repeat(op(t0 + hour, eurc(), usdc(), 1, false), 5));
  const int64_t n2 = t0 + 2 * hour + 30 * minute;
  const auto r2 = run_metrics_sync(db.sql(), db.kind(), n2, t0, {}, log.fn());
  REQUIRE(r2.events.size() == 1);
  REQUIRE(log.seen.size() == 1);
  CHECK(log.seen[0].type == "corridor.health_degraded");
  CHECK(log.seen[0].data
        == json{{"corridor_id", corridor_c},
                {"previous_health", "healthy"},
                {"current_health", "degraded"},
                {"previous_success_rate", 100.0},
                {"current_success_rate", 80.0},
                {"previous_evaluated_at", now},
                {"attempts", 25},
                {"successful", 20},
                {"window_ms", day},
                {"window_start", n2 - day},
                {"window_end", n2}});
  CHECK(r2.events[0].data == log.seen[0].data);
  CHECK(count_rows(db.sql(), "webhook_outbox") == 1);  // written inside the run's transaction

  // The API's 24h figures at n2 are the ones the event reported.
  const auto detail = get_corridor(db.sql(), {corridor_c, corridor_period::h24, n2});
  REQUIRE(detail);
  CHECK(detail->at("corridor").at("total_attempts") == 25);
  CHECK(detail->at("corridor").at("success_rate") == 80.0);

  // Re-running, or running later on the same data, does not report the crossing again.
  CHECK(run_metrics_sync(db.sql(), db.kind(), n2, t0, {}, log.fn()).events.empty());
  CHECK(run_metrics_sync(db.sql(), db.kind(), n2 + minute, t0, {}, log.fn()).events.empty());

  // One more failure: 20 of 26 is below 80 %, degraded -> critical.
  ingest(db.sql(), db.kind(), {op(t0 + 2 * hour, eurc(), usdc(), 1, false)});
  const int64_t n3 = n2 + hour;
  const auto r3 = run_metrics_sync(db.sql(), db.kind(), n3, t0, {}, log.fn());
  REQUIRE(r3.events.size() == 1);
  CHECK(r3.events[0].data.at("previous_health") == "degraded");
  CHECK(r3.events[0].data.at("current_health") == "critical");
  CHECK(r3.events[0].data.at("previous_success_rate") == 80.0);
  CHECK(r3.events[0].data.at("current_success_rate") == Approx(100.0 * 20 / 26));

  // Two days later nothing is in the window: unknown health keeps the baseline, no event.
  const auto r4 = run_metrics_sync(db.sql(), db.kind(), n3 + 2 * day, t0, {}, log.fn());
  CHECK(r4.events.empty());
  CHECK(r4.corridors_evaluated == 0);
  std::string health;
  long long evaluated_at = 0;
  db.sql() << "SELECT health, evaluated_at FROM corridor_health WHERE corridor_id = :id",
      soci::into(health), soci::into(evaluated_at), soci::use(corridor_c);
  CHECK(health == "critical");
  CHECK(evaluated_at == n3);
  CHECK(log.seen.size() == 2);
  CHECK(count_rows(db.sql(), "webhook_outbox") == 2);
}

SI_SYNC_BOTH_BACKENDS("corridor.health_degraded fires once per crossing", health_events_once)

void thresholds_are_parameters(test_db& db) {
  seed_healthy_corridor(db);
  metrics_sync_params strict;
  strict.health = {100.0, 99.0, 20};
  event_log log;
  run_metrics_sync(db.sql(), db.kind(), now, 0, strict, log.fn());
  ingest(db.sql(), db.kind(), {op(t0, eurc(), usdc(), 1, false)});  // 20 of 21: 95.2 %
  const auto r = run_metrics_sync(db.sql(), db.kind(), now + minute, t0, strict, log.fn());
  REQUIRE(r.events.size() == 1);
  CHECK(r.events[0].data.at("current_health") == "critical");  // below 99 %

  // A 2-hour window no longer sees the 20 successes of t0 - 3h: 1 attempt, unknown.
  strict.health_window_ms = 2 * hour;
  strict.health.min_attempts = 1;
  const auto narrow = run_metrics_sync(db.sql(), db.kind(), now + 2 * minute, t0, strict, log.fn());
  CHECK(narrow.corridors_evaluated == 1);
  CHECK(narrow.events.empty());  // critical (0 %) again: no change from the baseline
}

SI_SYNC_BOTH_BACKENDS("health thresholds and window come from the parameters",
                      thresholds_are_parameters)

void rollback_on_throwing_callback(test_db& db) {
  seed_healthy_corridor(db);
  event_log log;
  run_metrics_sync(db.sql(), db.kind(), now, 0, {}, log.fn());
  ingest(db.sql(), db.kind(), repeat(op(t0 + hour, eurc(), usdc(), 1, false), 10));
  const int64_t n2 = t0 + 2 * hour;

  const auto before = dump_sync_tables(db.sql());  // sync_runs included: the run is undone
  REQUIRE_THROWS_WITH(run_metrics_sync(db.sql(), db.kind(), n2, 0, {}, throwing_callback()),
                      "outbox unavailable");
  CHECK(dump_sync_tables(db.sql()) == before);
  CHECK(read_last_run(db.sql(), "metrics")->last_run_at == now);

  // The session is usable again, and the event that was rolled back is emitted once now.
  const auto r = run_metrics_sync(db.sql(), db.kind(), n2, 0, {}, log.fn());
  REQUIRE(r.events.size() == 1);
  CHECK(r.events[0].data.at("current_success_rate") == Approx(100.0 * 20 / 30));
  CHECK(count_rows(db.sql(), "webhook_outbox") == 1);
  CHECK(read_last_run(db.sql(), "metrics")->last_run_at == n2);
  CHECK(run_metrics_sync(db.sql(), db.kind(), n2, 0, {}, log.fn()).events.empty());
}

SI_SYNC_BOTH_BACKENDS("a throwing event callback rolls the whole metrics run back",
                      rollback_on_throwing_callback)

long long created_id(const create_anchor_result& r) {
  REQUIRE(std::holds_alternative<json>(r));
  return std::get<json>(r).at("id").get<long long>();
}

void anchors_reliability(test_db& db) {
  const long long circle =
      created_id(create_anchor(db.sql(), {"Circle", usdc_issuer, "circle.example"}, 1));
  const long long quiet =
      created_id(create_anchor(db.sql(), {"Quiet", eurc_issuer, std::nullopt}, 1));
  REQUIRE(
      std::holds_alternative<json>(add_anchor_asset(db.sql(), circle, {"USDC", usdc_issuer}, 1)));

  const int64_t n2 = now + minute;
  auto from_anchor = op(t0 - 2 * hour, xlm, xlm, 5);
  from_anchor.from = usdc_issuer;
  auto to_anchor = op(t0 - 2 * hour, xlm, xlm, 1, false);
  to_anchor.to = usdc_issuer;
  ingest(db.sql(), db.kind(),
         {
             op(t0 - hour, usdc(), usdc(), 10),  // in the anchor's asset
             op(t0 - hour, usdc(), usdc(), 20),
             op(t0 - hour, xlm, usdc(), 30, true, "path_payment_strict_receive"), from_anchor,
             to_anchor, op(t0 - hour, xlm, xlm, 99),       // neither account nor asset
             op(now - 7 * day - 1, usdc(), usdc(), 1000),  // before the 7-day window
             op(n2, usdc(), usdc(), 1000),  // the end of the second run's window: outside
         });

  metrics_sync_params params;
  params.reliability = {95.0, 80.0, 4, 10};
  event_log log;
  const auto r1 = run_metrics_sync(db.sql(), db.kind(), now, 0, params, log.fn());
  CHECK(r1.anchors_updated == 2);
  CHECK(r1.anchor_history_rows == 2);
  CHECK(r1.events.empty());  // a first measurement is not a change of status
  CHECK(r1.status_changed_anchor_ids == std::vector<int64_t>{circle});  // null -> yellow
  CHECK(r1.invalidate_prefixes
        == std::vector<std::string>{"api:/api/v1/corridors", "api:/api/v1/anchors"});

  auto detail = get_anchor(db.sql(), circle);
  REQUIRE(detail);
  auto a = detail->at("anchor");
  CHECK(a.at("total_transactions") == 5);
  CHECK(a.at("successful") == 4);
  CHECK(a.at("failed") == 1);
  CHECK(a.at("total_volume") == 65.0);
  CHECK(a.at("reliability_score") == 40.0);  // 80 % * min(1, 5 / 10)
  CHECK(a.at("status") == "yellow");
  CHECK(a.at("avg_settlement_time_ms").is_null());
  CHECK(a.at("updated_at") == now);
  REQUIRE(detail->at("metrics_history").size() == 1);
  CHECK(detail->at("metrics_history").at(0)
        == json{{"recorded_at", now},
                {"total_transactions", 5},
                {"successful", 4},
                {"failed", 1},
                {"success_rate", 80.0},
                {"volume", 65.0},
                {"avg_settlement_time_ms", nullptr},
                {"reliability_score", 40.0},
                {"status", "yellow"}});

  auto q = get_anchor(db.sql(), quiet);
  REQUIRE(q);
  CHECK(q->at("anchor").at("status").is_null());  // nothing measured: no invented status
  CHECK(q->at("anchor").at("reliability_score").is_null());
  CHECK(q->at("metrics_history").at(0).at("success_rate").is_null());
  CHECK(q->at("metrics_history").at(0).at("status").is_null());

  anchor_query yellow;
  yellow.status = anchor_status::yellow;
  CHECK(list_anchors(db.sql(), yellow).at("total") == 1);

  // Five failures in the anchor's asset: 4 of 10 = 40 % -> red, reported once.
  ingest(db.sql(), db.kind(), repeat(op(t0 + 10 * minute, usdc(), usdc(), 3, false), 5));
  const auto r2 = run_metrics_sync(db.sql(), db.kind(), n2, t0, params, log.fn());
  REQUIRE(r2.events.size() == 1);
  CHECK(r2.events[0].type == "anchor.status_changed");
  CHECK(r2.events[0].data
        == json{{"anchor_id", circle},
                {"stellar_account", usdc_issuer},
                {"old_status", "yellow"},
                {"new_status", "red"},
                {"success_rate", 40.0},
                {"reliability_score", 40.0},
                {"total_transactions", 10},
                {"window_ms", 7 * day},
                {"window_start", n2 - 7 * day},
                {"window_end", n2}});
  CHECK(r2.status_changed_anchor_ids == std::vector<int64_t>{circle});
  const auto again = run_metrics_sync(db.sql(), db.kind(), n2, t0, params, log.fn());
  CHECK(again.events.empty());
  CHECK(again.status_changed_anchor_ids.empty());
  CHECK(log.seen.size() == 1);
  CHECK(get_anchor(db.sql(), circle)->at("metrics_history").size() == 2);  // now and n2

  // Eight days on, two operations in the window: too few to judge. The score is unknown and
  // the last measured status stays; no event.
  const int64_t n3 = n2 + 8 * day;
  ingest(db.sql(), db.kind(), repeat(op(n3 - hour, usdc(), usdc(), 1), 2));
  const auto r3 = run_metrics_sync(db.sql(), db.kind(), n3, n3 - day, params, log.fn());
  CHECK(r3.events.empty());
  detail = get_anchor(db.sql(), circle);
  a = detail->at("anchor");
  CHECK(a.at("total_transactions") == 2);
  CHECK(a.at("reliability_score").is_null());
  CHECK(a.at("status") == "red");
  const auto& last = detail->at("metrics_history").back();
  CHECK(last.at("recorded_at") == n3);
  CHECK(last.at("success_rate") == 100.0);
  CHECK(last.at("reliability_score").is_null());
  CHECK(last.at("status").is_null());  // not measured in this run
}

SI_SYNC_BOTH_BACKENDS("anchor reliability, status and anchor.status_changed", anchors_reliability)

void sync_runs_bookkeeping(test_db& db) {
  CHECK_FALSE(read_last_run(db.sql(), "metrics").has_value());
  run_metrics_sync(db.sql(), db.kind(), now, 0, {}, nullptr);  // no callback is fine
  auto run = read_last_run(db.sql(), "metrics");
  REQUIRE(run);
  CHECK(run->name == "metrics");
  CHECK(run->last_run_at == now);
  CHECK(run->last_status == "ok");
  CHECK_FALSE(run->last_error.has_value());
  REQUIRE(run->last_duration_ms.has_value());
  CHECK(*run->last_duration_ms >= 0);

  record_run(db.sql(), "metrics", now + 5, "failed", std::string("database is locked"), 12);
  run = read_last_run(db.sql(), "metrics");
  CHECK(run->last_run_at == now + 5);
  CHECK(run->last_status == "failed");
  CHECK(run->last_error == "database is locked");
  CHECK(run->last_duration_ms == 12);

  record_run(db.sql(), "metrics", now + 9, "ok", std::nullopt, 3);
  run = read_last_run(db.sql(), "metrics");
  CHECK(run->last_status == "ok");
  CHECK_FALSE(run->last_error.has_value());
  CHECK_FALSE(read_last_run(db.sql(), "pools").has_value());
  CHECK(count_rows(db.sql(), "sync_runs") == 1);
}

SI_SYNC_BOTH_BACKENDS("sync_runs records each run's start, status and error", sync_runs_bookkeeping)

}  // namespace
