// Actor-level tests of the supervisor's shutdown cascade and restarts, on CAF's
// deterministic test_coordinator: time moves only through advance().

#include "actors/root_supervisor.hpp"
#include "actors/shutdown_summary.hpp"
#include "fixture.hpp"

#include <caf/send.hpp>

#include <catch2/catch.hpp>

using namespace si;
using namespace si::actors;
using namespace std::chrono_literals;
using si::test::on_drain;

namespace {

struct cascade_fixture : si::test::coordinator_fixture {
  std::shared_ptr<si::test::event_log> log = std::make_shared<si::test::event_log>();
  std::optional<int> exit_code;
  nlohmann::json report;
  root_supervisor_actor supervisor;

  child_spec child(const std::string& name, on_drain mode) {
    auto log_ptr = log;
    return {name, [=](caf::actor_system& sys, const directory&) {
              return sys.spawn(si::test::fake_child, name, mode, log_ptr);
            }};
  }

  void start(shutdown_plan plan, std::vector<child_spec> children, unsigned max_restarts = 5) {
    summary_options so;
    for (const auto& e : plan) {
      so.expected_actors.push_back(e.actor);
    }
    so.on_complete = [this](int code, const nlohmann::json& r) {
      exit_code = code;
      report = r;
    };
    supervisor_options opts;
    opts.plan = std::move(plan);
    opts.children = std::move(children);
    opts.summary = spawn_shutdown_summary(sys, std::move(so), false);
    opts.max_restarts = max_restarts;
    opts.restart_window = 60s;
    opts.backoff_min = 100ms;
    opts.backoff_max = 1s;
    auto spawned = spawn_root_supervisor(sys, std::move(opts));
    REQUIRE(std::holds_alternative<root_supervisor_actor>(spawned));
    supervisor = std::get<root_supervisor_actor>(spawned);
    run_jobs();
  }

  void signal() {
    caf::anon_send(supervisor, shutdown_atom_v, std::string{"signal SIGTERM"});
    run_jobs();
  }

  caf::actor lookup(const std::string& name) {
    caf::actor result;
    // The unused int works around CAF 0.17 dereferencing a null argument tuple (UBSan) when
    // a function actor is spawned without arguments.
    auto self = sys.spawn(
        [&](caf::event_based_actor* s, int) {
          s->request(supervisor, 1s, lookup_atom_v, name).then([&](caf::actor& a) { result = a; });
        },
        0);
    run_jobs();
    return result;
  }

  const nlohmann::json& actor_entry(const std::string& name) {
    for (const auto& a : report["actors"]) {
      if (a["actor"] == name) {
        return a;
      }
    }
    FAIL("no report entry for " << name);
    return report;
  }
};

shutdown_plan product_like_plan() {
  return {
      {"http_gateway", {"cache", "db"}, 1000ms},
      {"ingestor", {"cache", "db"}, 500ms},
      {"cache", {"db"}, 300ms},
      {"db", {}, 300ms},
  };
}

}  // namespace

TEST_CASE_METHOD(cascade_fixture, "cascade stops actors in the plan's dependency order",
                 "[cascade]") {
  start(product_like_plan(),
        {child("db", on_drain::reply), child("cache", on_drain::reply),
         child("ingestor", on_drain::reply), child("http_gateway", on_drain::reply)});
  // Started dependencies first.
  CHECK(log->index_of("spawn:db") < log->index_of("spawn:cache"));
  CHECK(log->index_of("spawn:cache") < log->index_of("spawn:http_gateway"));
  signal();
  REQUIRE(exit_code.has_value());
  CHECK(*exit_code == 0);
  auto gw = log->index_of("drain:http_gateway");
  auto in = log->index_of("drain:ingestor");
  auto ca = log->index_of("drain:cache");
  auto db = log->index_of("drain:db");
  REQUIRE(gw >= 0);
  REQUIRE(in >= 0);
  CHECK(gw < ca);
  CHECK(in < ca);
  CHECK(ca < db);
  CHECK(report["all_ok"] == true);
  CHECK(report["actors"].size() == 4);
  CHECK(report["reason"] == "signal SIGTERM");
}

TEST_CASE_METHOD(cascade_fixture, "independent branches drain in parallel", "[cascade]") {
  start({{"a", {"c"}, 1000ms}, {"b", {"c"}, 1000ms}, {"c", {}, 1000ms}},
        {child("a", on_drain::hold), child("b", on_drain::hold), child("c", on_drain::reply)});
  signal();
  // Both branches were told to drain before either reported.
  CHECK(log->count("drain:a") == 1);
  CHECK(log->count("drain:b") == 1);
  CHECK(log->count("drain:c") == 0);
  auto a = lookup("a");
  auto b = lookup("b");
  caf::anon_send(a, caf::ok_atom_v);
  run_jobs();
  CHECK(log->count("drain:c") == 0);  // c still waits for b, which depends on it
  caf::anon_send(b, caf::ok_atom_v);
  run_jobs();
  CHECK(log->count("drain:c") == 1);
  REQUIRE(exit_code.has_value());
  CHECK(*exit_code == 0);
  // Parallel: b started draining at the same (test) instant as a.
  CHECK(actor_entry("a")["started_ms"] == actor_entry("b")["started_ms"]);
}

TEST_CASE_METHOD(cascade_fixture,
                 "a child that ignores the drain is timed_out at its deadline and the "
                 "cascade continues",
                 "[cascade]") {
  start({{"stuck", {"db"}, 250ms}, {"db", {}, 300ms}},
        {child("stuck", on_drain::ignore), child("db", on_drain::reply)});
  signal();
  CHECK(log->count("drain:stuck") == 1);
  CHECK(log->count("drain:db") == 0);
  advance(249ms);
  CHECK(log->count("drain:db") == 0);
  CHECK_FALSE(exit_code.has_value());
  advance(1ms);
  CHECK(log->count("exit:stuck") == 1);  // killed
  CHECK(log->count("drain:db") == 1);
  REQUIRE(exit_code.has_value());
  CHECK(*exit_code == exit_code::unclean_shutdown);
  CHECK(actor_entry("stuck")["outcome"] == "timed_out");
  CHECK(actor_entry("stuck")["duration_ms"] == 250);
  CHECK(actor_entry("db")["outcome"] == "ok");
  CHECK(actor_entry("db")["started_ms"] == 250);
  CHECK(report["all_ok"] == false);
}

TEST_CASE_METHOD(cascade_fixture, "a child that crashes mid-drain is reported failed",
                 "[cascade]") {
  start({{"flaky", {"db"}, 1000ms}, {"db", {}, 300ms}},
        {child("flaky", on_drain::crash), child("db", on_drain::reply)});
  signal();
  REQUIRE(exit_code.has_value());
  CHECK(*exit_code == exit_code::unclean_shutdown);
  CHECK(actor_entry("flaky")["outcome"] == "failed");
  CHECK(actor_entry("flaky")["detail"].get<std::string>().find("runtime_error")
        != std::string::npos);
  CHECK(actor_entry("db")["outcome"] == "ok");
  // Not restarted during shutdown.
  CHECK(log->count("spawn:flaky") == 1);
}

TEST_CASE_METHOD(cascade_fixture,
                 "a child that cut work at its own deadline is timed_out with its counts",
                 "[cascade]") {
  start({{"gateway", {"db"}, 1000ms}, {"db", {}, 300ms}},
        {child("gateway", on_drain::incomplete), child("db", on_drain::reply)});
  signal();
  REQUIRE(exit_code.has_value());
  CHECK(*exit_code == exit_code::unclean_shutdown);
  CHECK(actor_entry("gateway")["outcome"] == "timed_out");
  CHECK(actor_entry("gateway")["counts"]["cut"] == 2);
  CHECK(actor_entry("db")["outcome"] == "ok");
}

TEST_CASE_METHOD(cascade_fixture, "a second signal forces every unfinished actor", "[cascade]") {
  start({{"slow", {"db"}, 10'000ms}, {"db", {}, 300ms}},
        {child("slow", on_drain::hold), child("db", on_drain::reply)});
  signal();
  CHECK(log->count("drain:slow") == 1);
  advance(20ms);
  caf::anon_send(supervisor, force_atom_v);
  run_jobs();
  REQUIRE(exit_code.has_value());
  CHECK(*exit_code == exit_code::unclean_shutdown);
  CHECK(actor_entry("slow")["outcome"] == "forced");
  CHECK(actor_entry("slow")["duration_ms"] == 20);
  CHECK(actor_entry("db")["outcome"] == "forced");
  CHECK(log->count("drain:db") == 0);
  CHECK(log->count("exit:slow") == 1);
  CHECK(log->count("exit:db") == 1);
  // The first signal is idempotent and a third changes nothing.
  caf::anon_send(supervisor, shutdown_atom_v, std::string{"again"});
  run_jobs();
  CHECK(report["reason"] == "signal SIGTERM");
}

TEST_CASE_METHOD(cascade_fixture,
                 "a crashing child is restarted with backoff; past the intensity limit the "
                 "process shuts down with exit code 3",
                 "[restart]") {
  start({{"worker", {"db"}, 300ms}, {"db", {}, 300ms}},
        {child("worker", on_drain::reply), child("db", on_drain::reply)}, 2);
  auto first = lookup("worker");
  REQUIRE(first);
  caf::anon_send(first, caf::reset_atom_v);
  run_jobs();
  CHECK_FALSE(lookup("worker"));  // down, waiting for its backoff
  advance(99ms);
  CHECK(log->count("spawn:worker") == 1);
  advance(1ms);  // first backoff: 100 ms
  CHECK(log->count("spawn:worker") == 2);
  auto second = lookup("worker");
  REQUIRE(second);
  CHECK(second != first);
  caf::anon_send(second, caf::reset_atom_v);
  run_jobs();
  advance(199ms);
  CHECK(log->count("spawn:worker") == 2);
  advance(1ms);  // second backoff doubles: 200 ms
  CHECK(log->count("spawn:worker") == 3);
  CHECK_FALSE(exit_code.has_value());
  // Third crash inside the window exceeds max_restarts=2: orderly shutdown, exit code 3.
  caf::anon_send(lookup("worker"), caf::reset_atom_v);
  run_jobs();
  REQUIRE(exit_code.has_value());
  CHECK(*exit_code == exit_code::restart_intensity);
  CHECK(report["reason"].get<std::string>().find("restart intensity exceeded: 'worker'")
        != std::string::npos);
  CHECK(actor_entry("worker")["outcome"] == "failed");  // it was down when its turn came
  CHECK(actor_entry("db")["outcome"] == "ok");
}

TEST_CASE_METHOD(cascade_fixture,
                 "a restarted child's dependents get its new handle and the hook counts it",
                 "[restart]") {
  std::vector<std::string> restarted;
  summary_options so;
  so.expected_actors = {"gateway", "db"};
  supervisor_options opts;
  opts.plan = {{"gateway", {"db"}, 300ms}, {"db", {}, 300ms}};
  opts.children = {child("gateway", on_drain::reply), child("db", on_drain::reply)};
  opts.summary = spawn_shutdown_summary(sys, std::move(so), false);
  opts.on_restart = [&](const std::string& name) { restarted.push_back(name); };
  supervisor = std::get<root_supervisor_actor>(spawn_root_supervisor(sys, std::move(opts)));
  run_jobs();
  caf::anon_send(lookup("db"), caf::reset_atom_v);
  run_jobs();
  advance(100ms);
  CHECK(restarted == std::vector<std::string>{"db"});
  CHECK(log->count("update:gateway:db") == 1);
  CHECK(lookup("db"));
}

TEST_CASE_METHOD(cascade_fixture, "restarts outside the window do not count", "[restart]") {
  start({{"worker", {}, 300ms}}, {child("worker", on_drain::reply)}, 1);
  for (int i = 0; i < 3; ++i) {
    caf::anon_send(lookup("worker"), caf::reset_atom_v);
    run_jobs();
    advance(100ms);  // restarted after the first backoff
    advance(61s);    // and the crash leaves the 60 s window
  }
  CHECK(log->count("spawn:worker") == 4);
  CHECK_FALSE(exit_code.has_value());
  signal();
  REQUIRE(exit_code.has_value());
  CHECK(*exit_code == 0);
}

TEST_CASE_METHOD(cascade_fixture, "summary lists every actor with timings and counts",
                 "[summary]") {
  start({{"a", {"b"}, 500ms}, {"b", {}, 500ms}},
        {child("a", on_drain::hold), child("b", on_drain::reply)});
  signal();
  advance(40ms);
  caf::anon_send(lookup("a"), caf::ok_atom_v);
  run_jobs();
  REQUIRE(exit_code.has_value());
  CHECK(*exit_code == 0);
  const auto& a = actor_entry("a");
  CHECK(a["outcome"] == "ok");
  CHECK(a["started_ms"] == 0);
  CHECK(a["duration_ms"] == 40);
  CHECK(a["counts"]["handled"] == 1);
  const auto& b = actor_entry("b");
  CHECK(b["started_ms"] == 40);
  CHECK(b["counts"]["handled"] == 7);
  CHECK(report["total_ms"] == 40);
  CHECK(report["exit_code"] == 0);
  CHECK(report.contains("started_at_ms"));
}

TEST_CASE("build_summary flags an expected actor without a report", "[summary]") {
  std::vector<actor_report> reports{{"a", "ok", 0, 5, R"({"x":1})", ""}};
  auto j = build_summary(reports, {"a", "b"}, "signal SIGTERM", 0, 5, 1);
  REQUIRE(j["actors"].size() == 2);
  CHECK(j["actors"][1]["actor"] == "b");
  CHECK(j["actors"][1]["outcome"] == "failed");
  CHECK(j["exit_code"] == exit_code::unclean_shutdown);
  CHECK(j["all_ok"] == false);
  auto ok = build_summary(reports, {"a"}, "signal SIGINT", 0, 5, 1);
  CHECK(ok["exit_code"] == 0);
  auto intensity = build_summary(reports, {"a"}, "x", exit_code::restart_intensity, 5, 1);
  CHECK(intensity["exit_code"] == exit_code::restart_intensity);
}

TEST_CASE("supervision refuses a plan and children that disagree", "[plan]") {
  auto noop = [](caf::actor_system&, const directory&) { return caf::actor{}; };
  shutdown_plan plan{{"a", {}, 100ms}};
  CHECK_FALSE(validate_supervision(plan, {{"a", noop}}).has_value());
  CHECK(validate_supervision(plan, {}).value().find("unknown actor 'a'") != std::string::npos);
  CHECK(validate_supervision(plan, {{"a", noop}, {"b", noop}})
            .value()
            .find("'b' is not in the shutdown plan")
        != std::string::npos);
  CHECK(validate_supervision(plan, {{"a", noop}, {"a", noop}}).value().find("twice")
        != std::string::npos);
  CHECK(validate_supervision(plan, {{"a", {}}}).value().find("no spawn function")
        != std::string::npos);
}

TEST_CASE("restart backoff doubles up to its cap", "[restart]") {
  CHECK(restart_backoff(1, 100ms, 1s) == 100ms);
  CHECK(restart_backoff(2, 100ms, 1s) == 200ms);
  CHECK(restart_backoff(4, 100ms, 1s) == 800ms);
  CHECK(restart_backoff(5, 100ms, 1s) == 1s);
  CHECK(restart_backoff(60, 100ms, 1s) == 1s);
}
