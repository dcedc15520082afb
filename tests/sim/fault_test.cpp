// Fault injection: each kind is seen by si::net::horizon_client (retries off) or by our
// parsers as it would be from a misbehaving Horizon, and the next request is served normally.

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "tests/sim/support.hpp"

using namespace si;
using namespace si::test;

namespace {

const std::string target = "/operations?limit=50";

std::vector<std::string> fault_args() {
  return {"--ledgers", "5", "--base-time", std::string(fixed_base_time)};
}

void inject(const sim_process& sim, const json& rule) {
  const auto reply = post_fault(sim, rule);
  INFO(reply.body);
  REQUIRE(reply.status == 200);
}

}  // namespace

TEST_CASE("status faults answer problem+json, then the simulator recovers", "[sim][fault]") {
  sim_process sim(fault_args());
  net::horizon_client client(client_options(sim));
  const std::string good = get_body(client, target);

  inject(sim, {{"kind", "status_500"}, {"path", "/operations"}});
  auto e500 = get_error(client, target);
  CHECK(e500.kind == net::horizon_error_kind::http_status);
  CHECK(e500.status == 500);
  CHECK(e500.problem_type == "https://stellar.org/horizon-errors/server_error");
  CHECK(get_body(client, target) == good);

  inject(sim, {{"kind", "status_503"}, {"path", "/operations"}, {"retry_after_s", 2}});
  auto e503 = get_error(client, target);
  CHECK(e503.status == 503);
  CHECK(e503.retry_after_ms == 2000);
  CHECK(e503.title == "Service Unavailable");
  CHECK(get_body(client, target) == good);

  inject(sim, {{"kind", "status_429"}, {"path", "/operations"}});
  auto e429 = get_error(client, target);
  CHECK(e429.status == 429);
  CHECK(e429.retry_after_ms == 1000);
  CHECK(e429.problem_type == "https://stellar.org/horizon-errors/rate_limit_exceeded");
  CHECK(get_body(client, target) == good);

  // count N: the next N matching requests; a path filter spares other paths.
  inject(sim, {{"kind", "status_500"}, {"path", "/ledgers"}, {"count", 3}});
  CHECK(get_body(client, target) == good);
  for (int i = 0; i < 3; ++i) {
    CHECK(status_of(client, "/ledgers") == 500);
  }
  CHECK(status_of(client, "/ledgers") == 200);

  // Control endpoints are never faulted; DELETE clears what is pending.
  inject(sim, {{"kind", "status_500"}, {"count", 5}});
  CHECK(status_of(client, "/_sim/info") == 200);
  const auto cleared = http_call(sim.port(), "DELETE", "/_sim/fault");
  CHECK(cleared.status == 200);
  CHECK(json::parse(cleared.body)["cleared"] == 1);
  CHECK(get_body(client, target) == good);

  const json stats = get_json(client, "/_sim/stats");
  CHECK(stats["faults_injected"]["status_500"] == 4);
  CHECK(stats["faults_injected"]["status_503"] == 1);
  CHECK(stats["faults_injected"]["status_429"] == 1);
  CHECK(stats["faults_pending"] == 0);
  CHECK(stats["requests"]["/operations"].get<int>() >= 8);
}

TEST_CASE("transport faults: truncated body, reset connection, latency", "[sim][fault]") {
  sim_process sim(fault_args());
  net::horizon_client client(client_options(sim));
  const std::string good = get_body(client, target);

  inject(sim, {{"kind", "truncated"}, {"path", "/operations"}});
  auto cut = get_error(client, target);
  CHECK(cut.kind == net::horizon_error_kind::connect);
  CHECK(get_body(client, target) == good);

  // On a fresh connection a reset is an error...
  inject(sim, {{"kind", "reset"}, {"path", "/operations"}});
  net::horizon_client fresh(client_options(sim));
  auto reset = get_error(fresh, target);
  CHECK(reset.kind == net::horizon_error_kind::connect);
  CHECK(get_body(fresh, target) == good);
  // ...on a kept-alive one the client resends once on a new connection, as it does when an
  // idle connection was closed under it.
  inject(sim, {{"kind", "reset"}, {"path", "/operations"}});
  const auto reconnects = fresh.stats().reconnects;
  CHECK(get_body(fresh, target) == good);
  CHECK(fresh.stats().reconnects == reconnects + 1);

  inject(sim, {{"kind", "latency"}, {"path", "/operations"}, {"latency_ms", 200}});
  const auto started = std::chrono::steady_clock::now();
  CHECK(get_body(client, target) == good);
  CHECK(std::chrono::steady_clock::now() - started >= 200ms);

  net::horizon_client impatient(client_options(sim, 150ms));
  inject(sim, {{"kind", "latency"}, {"path", "/operations"}, {"latency_ms", 1500}});
  auto slow = get_error(impatient, target);
  CHECK(slow.kind == net::horizon_error_kind::timeout);
  CHECK(get_body(impatient, target) == good);
}

TEST_CASE("malformed and bad_record answers 200 with a document our parsers refuse",
          "[sim][fault]") {
  sim_process sim(fault_args());
  net::horizon_client client(client_options(sim));
  const std::string good = get_body(client, target);

  inject(sim, {{"kind", "malformed"}, {"path", "/operations"}});
  const std::string broken = get_body(client, target);
  auto syntax = domain::parse_page<domain::operation>(broken);
  REQUIRE(std::holds_alternative<domain::parse_error>(syntax));
  CHECK(std::get<domain::parse_error>(syntax).problem.starts_with("is not valid JSON"));
  CHECK(get_body(client, target) == good);

  inject(sim, {{"kind", "bad_record"}, {"path", "/operations"}});
  const std::string bad = get_body(client, target);
  CHECK(json::accept(bad));
  auto semantic = domain::parse_page<domain::operation>(bad);
  REQUIRE(std::holds_alternative<domain::parse_error>(semantic));
  const auto& error = std::get<domain::parse_error>(semantic);
  CHECK(error.field == "type");
  CHECK(error.context == "record 25");  // the middle record of 50
  CHECK(get_body(client, target) == good);

  // Single records and other kinds lose their own required field.
  inject(sim, {{"kind", "bad_record"}, {"path", "/transactions"}});
  auto tx_page = domain::parse_page<domain::transaction>(get_body(client, "/transactions"));
  REQUIRE(std::holds_alternative<domain::parse_error>(tx_page));
  CHECK(std::get<domain::parse_error>(tx_page).field == "hash");
  inject(sim, {{"kind", "bad_record"}, {"path", "/ledgers/1001"}});
  auto ledger = domain::parse_record<domain::ledger>(get_body(client, "/ledgers/1001"));
  REQUIRE(std::holds_alternative<domain::parse_error>(ledger));
  CHECK(std::get<domain::parse_error>(ledger).field == "sequence");

  // A stream with a fault sends one damaged event and ends.
  inject(sim, {{"kind", "malformed"}, {"path", "/operations"}});
  sse_reader stream(sim.port(), "/operations");
  REQUIRE(stream.read_until([&] { return stream.ended(); }, 5s));
  REQUIRE(stream.events().size() == 2);
  auto damaged = domain::parse_stream_event<domain::operation>(stream.events()[1]);
  REQUIRE(std::holds_alternative<domain::parse_error>(damaged));
  CHECK(std::get<domain::parse_error>(damaged).problem.find("not valid JSON") != std::string::npos);
}

TEST_CASE("fault rules: invalid ones are refused; --fault sets them at start", "[sim][fault]") {
  sim_process sim(
      {"--ledgers", "3", "--fault", "status_503:2:/ledgers", "--fault", "bad_record:1:/payments"});
  net::horizon_client client(client_options(sim));
  CHECK(status_of(client, "/operations") == 200);
  CHECK(status_of(client, "/ledgers") == 503);
  CHECK(status_of(client, "/ledgers?limit=2") == 503);
  CHECK(status_of(client, "/ledgers") == 200);
  CHECK(std::holds_alternative<domain::parse_error>(
      domain::parse_page<domain::operation>(get_body(client, "/payments"))));
  parsed_ok(domain::parse_page<domain::operation>(get_body(client, "/payments")));

  for (const json& rule :
       {json{{"kind", "explode"}}, json{{"kind", "reset"}, {"count", 0}},
        json{{"kind", "reset"}, {"path", "ledgers"}}, json{{"count", 1}}, json::array()}) {
    INFO(rule.dump());
    const auto reply = post_fault(sim, rule);
    CHECK(reply.status == 400);
    CHECK(json::parse(reply.body)["type"] == "https://stellar.org/horizon-errors/bad_request");
  }
  CHECK(json::parse(http_call(sim.port(), "GET", "/_sim/fault").body)["pending"].empty());
}
