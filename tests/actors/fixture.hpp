#pragma once
/// Deterministic actor-test fixture: CAF's test_coordinator scheduler driven from Catch2.

#include "actors/atoms.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/stateful_actor.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace si::test {

inline caf::actor_system_config& testing_config(caf::actor_system_config& cfg) {
  cfg.set("scheduler.policy", caf::atom("testing"));
  cfg.set("logger.file-verbosity", caf::atom("quiet"));
  cfg.set("logger.console-verbosity", caf::atom("quiet"));
  return cfg;
}

/// Owns an actor system on the test scheduler; time moves only when a test says so.
struct coordinator_fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{testing_config(cfg)};
  caf::scheduler::test_coordinator& sched =
      dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());

  coordinator_fixture() {
    sched.clock().current_time += std::chrono::hours(1);
  }

  /// Runs every queued job, without firing any timeout.
  size_t run_jobs() {
    size_t n = 0;
    while (sched.try_run_once()) {
      ++n;
    }
    return n;
  }

  /// Moves the clock, fires the timeouts due, then runs the jobs that produced.
  size_t advance(std::chrono::milliseconds d) {
    auto fired = sched.advance_time(d);
    run_jobs();
    return fired;
  }
};

/// What a fake child does when asked to drain.
enum class on_drain {
  reply,       ///< reply its counts at once and quit
  hold,        ///< keep the reply until it receives ok_atom
  ignore,      ///< never reply (a hung subsystem)
  crash,       ///< exit with an error mid-drain
  incomplete,  ///< report that it cut work at its own deadline (errc::drain_incomplete)
};

/// Shared event log of fake children ("spawn:a", "drain:a", "exit:a").
struct event_log {
  std::vector<std::string> events;
  /// Position of `e` in the log, or -1.
  int index_of(const std::string& e) const {
    for (size_t i = 0; i < events.size(); ++i) {
      if (events[i] == e) {
        return static_cast<int>(i);
      }
    }
    return -1;
  }
  int count(const std::string& e) const {
    int n = 0;
    for (const auto& x : events) {
      n += x == e ? 1 : 0;
    }
    return n;
  }
};

struct fake_state {
  std::optional<caf::response_promise> pending;
};

/// A stand-in subsystem actor: answers the drain protocol as its mode says; `reset_atom`
/// makes it crash (for restart tests); `ok_atom` releases a held drain.
inline caf::behavior fake_child(caf::stateful_actor<fake_state>* self, std::string name,
                                on_drain mode, std::shared_ptr<event_log> log) {
  log->events.push_back("spawn:" + name);
  self->attach_functor([=] { log->events.push_back("exit:" + name); });
  return {
      [=](drain_atom) -> caf::result<std::string> {
        log->events.push_back("drain:" + name);
        switch (mode) {
          case on_drain::reply:
            self->quit();
            return std::string{R"({"handled":7})"};
          case on_drain::crash:
            self->quit(caf::sec::runtime_error);  // dies without a reply
            return caf::delegated<std::string>{};
          case on_drain::incomplete:
            self->quit();
            return make_error(errc::drain_incomplete, R"({"cut":2})");
          case on_drain::hold:
          case on_drain::ignore:
            break;
        }
        auto rp = self->make_response_promise();
        self->state.pending = rp;
        return caf::delegated<std::string>{};
      },
      [=](caf::ok_atom) {
        if (self->state.pending) {
          self->state.pending->deliver(std::string{R"({"handled":1})"});
          self->state.pending.reset();
          self->quit();
        }
      },
      [=](caf::reset_atom) { self->quit(caf::sec::runtime_error); },
      [=](caf::update_atom, const std::string& dep, const caf::actor&) {
        log->events.push_back("update:" + name + ":" + dep);
      },
  };
}

}  // namespace si::test
