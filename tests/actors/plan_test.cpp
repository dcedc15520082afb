// Unit tests of the shutdown plan table: validation, stop waves, critical path.

#include "actors/shutdown_plan.hpp"
#include "config/settings.hpp"

#include <catch2/catch.hpp>

using namespace si::actors;
using namespace std::chrono_literals;

TEST_CASE("a valid plan yields dependency-ordered waves", "[plan]") {
  shutdown_plan plan{
      {"http_gateway", {"cache", "db", "ws_hub"}, 30s},
      {"ingestor", {"db", "cache", "broadcaster"}, 10s},
      {"broadcaster", {"ws_hub"}, 1s},
      {"ws_hub", {}, 5s},
      {"cache", {"db"}, 5s},
      {"db", {}, 5s},
  };
  REQUIRE_FALSE(validate_plan(plan).has_value());
  auto waves = stop_waves(plan);
  REQUIRE(waves.size() == 3);
  CHECK(waves[0] == std::vector<std::string>{"http_gateway", "ingestor"});
  CHECK(waves[1] == std::vector<std::string>{"broadcaster", "cache"});
  CHECK(waves[2] == std::vector<std::string>{"ws_hub", "db"});
  auto start = start_order(plan);
  CHECK(start.front() == "ws_hub");
  CHECK(start.back() == "ingestor");
  // gateway 30 s → cache 5 s → db 5 s is the longest chain.
  CHECK(critical_path(plan) == 40s);
}

TEST_CASE("plan validation rejects what cannot be stopped in order", "[plan]") {
  CHECK(validate_plan({}).value() == "shutdown plan is empty");
  CHECK(validate_plan({{"", {}, 1s}}).value().find("empty actor name") != std::string::npos);
  CHECK(validate_plan({{"a", {}, 1s}, {"a", {}, 1s}}).value().find("'a' twice")
        != std::string::npos);
  CHECK(validate_plan({{"a", {"ghost"}, 1s}}).value().find("unknown actor 'ghost'")
        != std::string::npos);
  CHECK(validate_plan({{"a", {"a"}, 1s}}).value().find("depends on itself") != std::string::npos);
  CHECK(validate_plan({{"a", {}, 0ms}}).value().find("no positive deadline") != std::string::npos);
  auto cycle = validate_plan({{"a", {"b"}, 1s}, {"b", {"c"}, 1s}, {"c", {"a"}, 1s}});
  REQUIRE(cycle.has_value());
  CHECK(cycle->find("cycle: a -> b -> c -> a") != std::string::npos);
}

TEST_CASE("the default plan is valid and uses the configured deadlines", "[plan]") {
  si::config::settings s;
  s.shutdown_db_timeout = 7s;
  s.shutdown_cache_timeout = 3s;
  s.shutdown_ws_timeout = 4s;
  s.shutdown_background_timeout = 9s;
  auto plan = default_plan(s);
  REQUIRE_FALSE(validate_plan(plan).has_value());
  for (const auto& e : plan) {
    if (e.actor == "db") {
      CHECK(e.deadline == 7s);
    }
    if (e.actor == "ws_hub") {
      CHECK(e.deadline == 4s);
    }
    if (e.actor == "broadcaster") {
      CHECK(e.deadline == 9s);
    }
    if (e.actor == "webhook_dispatcher") {
      CHECK(e.deadline == 9s);
      CHECK(e.depends_on == std::vector<std::string>{"db"});
    }
  }
  // The gateway, the ingestor and the schedulers stop together (none uses another).
  CHECK(stop_waves(plan).front()
        == std::vector<std::string>{"http_gateway", "ingestor", "sync_metrics", "sync_pools",
                                    "sync_trustlines"});
  // Then the broadcaster (the ingestor and schedulers publish to it) with the cache and the
  // webhook dispatcher (the gateway's webhook routes use it); the hub after the gateway and
  // the broadcaster; the database last.
  CHECK(stop_waves(plan).at(1)
        == std::vector<std::string>{"broadcaster", "cache", "webhook_dispatcher"});
  CHECK(stop_waves(plan).back() == std::vector<std::string>{"ws_hub", "db"});
  // gateway (0 s delay + 30 s graceful + 2 s margin) → webhook_dispatcher 9 s → db 7 s.
  CHECK(critical_path(plan) == 48s);
  s.ingest_enabled = false;
  s.sync_enabled = false;
  auto without = default_plan(s);
  REQUIRE_FALSE(validate_plan(without).has_value());
  CHECK(stop_waves(without).front() == std::vector<std::string>{"http_gateway", "broadcaster"});
  CHECK(without.size() == plan.size() - 4);
}
