#include "actors/shutdown_plan.hpp"

#include "config/settings.hpp"

#include <algorithm>
#include <functional>

namespace si::actors {

shutdown_plan default_plan(const config::settings& s) {
  // One row per running actor. Rows are added here as subsystems land; the summary lists
  // exactly these actors. Stop order follows from depends_on (design.md §3):
  //   cache before db because a cache flush may still read through to the database.
  //   http_gateway before cache and db because in-flight requests still read through them.
  // The gateway enforces SHUTDOWN_GRACEFUL_TIMEOUT itself (it cuts and reports); its plan
  // deadline adds the drain delay and a margin for that report to arrive.
  //   ingestor before cache and db because its last commit and state record go through db.
  //   http_gateway before ws_hub because the gateway hands the HTTP server to the hub at the
  //   end of its drain and the hub stops it after closing the WebSockets (the HTTP drain
  //   never waits for WebSockets).
  //   broadcaster before ws_hub because it publishes through the hub, and before db because
  //   it reads changed rows back; ingestor and schedulers before it because they publish to
  //   it. ws_hub enforces its own deadline (drops what is left and reports) inside
  //   SHUTDOWN_WS_TIMEOUT.
  //   webhook_dispatcher before db because its last attempts are recorded and the claims it
  //   did not send are released through db (pending again, not lost); http_gateway before
  //   webhook_dispatcher because its webhook routes queue events and ring the dispatcher.
  shutdown_plan plan{
      {"http_gateway",
       {"cache", "db", "ws_hub", "webhook_dispatcher"},
       s.shutdown_drain_delay + s.shutdown_graceful_timeout + std::chrono::milliseconds{2'000}},
      {"ws_hub", {}, s.shutdown_ws_timeout},
      {"broadcaster", {"ws_hub", "db"}, s.shutdown_background_timeout},
      {"cache", {"db"}, s.shutdown_cache_timeout},
      {"db", {}, s.shutdown_db_timeout},
      {"webhook_dispatcher", {"db"}, s.shutdown_background_timeout},
  };
  if (s.ingest_enabled) {
    plan.push_back({"ingestor", {"cache", "db", "broadcaster"}, s.shutdown_background_timeout});
  }
  //   schedulers before cache and db because a run in flight commits through db and then
  //   invalidates cache keys.
  if (s.sync_enabled) {
    for (const char* name : {"sync_metrics", "sync_pools", "sync_trustlines"}) {
      plan.push_back({name, {"cache", "db", "broadcaster"}, s.shutdown_background_timeout});
    }
  }
  return plan;
}

std::optional<std::string> validate_plan(const shutdown_plan& plan) {
  if (plan.empty()) {
    return "shutdown plan is empty";
  }
  std::set<std::string> names;
  for (const auto& e : plan) {
    if (e.actor.empty()) {
      return "shutdown plan has an entry with an empty actor name";
    }
    if (!names.insert(e.actor).second) {
      return "shutdown plan lists actor '" + e.actor + "' twice";
    }
    if (e.deadline <= std::chrono::milliseconds::zero()) {
      return "shutdown plan: actor '" + e.actor + "' has no positive deadline";
    }
  }
  for (const auto& e : plan) {
    for (const auto& d : e.depends_on) {
      if (d == e.actor) {
        return "shutdown plan: actor '" + e.actor + "' depends on itself";
      }
      if (names.count(d) == 0) {
        return "shutdown plan: actor '" + e.actor + "' depends on unknown actor '" + d + "'";
      }
    }
  }
  // Cycle detection: depth-first search with colours; report the cycle path.
  std::map<std::string, const plan_entry*> by_name;
  for (const auto& e : plan) {
    by_name[e.actor] = &e;
  }
  std::map<std::string, int> colour;  // 0 white, 1 grey (on stack), 2 black
  std::vector<std::string> stack;
  std::optional<std::string> cycle;
  std::function<void(const std::string&)> visit = [&](const std::string& n) {
    colour[n] = 1;
    stack.push_back(n);
    for (const auto& d : by_name[n]->depends_on) {
      if (cycle) {
        return;
      }
      if (colour[d] == 1) {
        auto from = std::find(stack.begin(), stack.end(), d);
        std::string path;
        for (auto i = from; i != stack.end(); ++i) {
          path += *i + " -> ";
        }
        cycle = "shutdown plan has a dependency cycle: " + path + d;
        return;
      }
      if (colour[d] == 0) {
        visit(d);
      }
    }
    stack.pop_back();
    colour[n] = 2;
  };
  for (const auto& e : plan) {
    if (colour[e.actor] == 0 && !cycle) {
      visit(e.actor);
    }
  }
  return cycle;
}

std::map<std::string, std::set<std::string>> dependents_of(const shutdown_plan& plan) {
  std::map<std::string, std::set<std::string>> result;
  for (const auto& e : plan) {
    result[e.actor];
    for (const auto& d : e.depends_on) {
      result[d].insert(e.actor);
    }
  }
  return result;
}

std::vector<std::vector<std::string>> stop_waves(const shutdown_plan& plan) {
  auto dependents = dependents_of(plan);
  std::set<std::string> done;
  std::vector<std::vector<std::string>> waves;
  while (done.size() < plan.size()) {
    std::vector<std::string> wave;
    for (const auto& e : plan) {
      if (done.count(e.actor) != 0) {
        continue;
      }
      const auto& deps = dependents[e.actor];
      if (std::all_of(deps.begin(), deps.end(),
                      [&](const std::string& x) { return done.count(x) != 0; })) {
        wave.push_back(e.actor);
      }
    }
    if (wave.empty()) {
      break;  // only on an invalid (cyclic) plan; validate_plan reports it
    }
    done.insert(wave.begin(), wave.end());
    waves.push_back(std::move(wave));
  }
  return waves;
}

std::vector<std::string> start_order(const shutdown_plan& plan) {
  auto waves = stop_waves(plan);
  std::vector<std::string> order;
  for (auto i = waves.rbegin(); i != waves.rend(); ++i) {
    order.insert(order.end(), i->begin(), i->end());
  }
  return order;
}

std::chrono::milliseconds critical_path(const shutdown_plan& plan) {
  // finish[a] = deadline[a] + max(finish[d] for d that depend on a); walk the stop order.
  auto dependents = dependents_of(plan);
  std::map<std::string, std::chrono::milliseconds> deadline;
  for (const auto& e : plan) {
    deadline[e.actor] = e.deadline;
  }
  std::map<std::string, std::chrono::milliseconds> finish;
  std::chrono::milliseconds longest{0};
  for (const auto& wave : stop_waves(plan)) {
    for (const auto& a : wave) {
      std::chrono::milliseconds start{0};
      for (const auto& d : dependents[a]) {
        start = std::max(start, finish[d]);
      }
      finish[a] = start + deadline[a];
      longest = std::max(longest, finish[a]);
    }
  }
  return longest;
}

}  // namespace si::actors
