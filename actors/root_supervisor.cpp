#include "actors/root_supervisor.hpp"

#include "config/logging.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <algorithm>
#include <deque>
#include <set>

namespace si::actors {

using std::chrono::milliseconds;

std::chrono::milliseconds restart_backoff(unsigned n, milliseconds min, milliseconds max) {
  milliseconds d = min;
  for (unsigned i = 1; i < n && d < max; ++i) {
    d *= 2;
  }
  return std::min(d, max);
}

std::optional<std::string> validate_supervision(const shutdown_plan& plan,
                                                const std::vector<child_spec>& children) {
  if (auto err = validate_plan(plan)) {
    return err;
  }
  std::set<std::string> planned;
  for (const auto& e : plan) {
    planned.insert(e.actor);
  }
  std::set<std::string> spawnable;
  for (const auto& c : children) {
    if (!c.spawn) {
      return "child '" + c.name + "' has no spawn function";
    }
    if (!spawnable.insert(c.name).second) {
      return "child '" + c.name + "' is declared twice";
    }
    if (planned.count(c.name) == 0) {
      return "child '" + c.name + "' is not in the shutdown plan";
    }
  }
  for (const auto& name : planned) {
    if (spawnable.count(name) == 0) {
      return "shutdown plan names unknown actor '" + name + "'";
    }
  }
  return std::nullopt;
}

namespace {

using clock_type = caf::actor_clock::clock_type;
using time_point = caf::actor_clock::time_point;

enum class phase { running, waiting, draining, finished };

struct child_state {
  child_spec spec;
  caf::actor handle;
  bool alive = false;
  uint64_t generation = 0;          ///< bumps on every (re)spawn; stale messages are ignored
  std::string last_exit;            ///< reason of the last unexpected exit
  std::deque<time_point> restarts;  ///< crash times inside the intensity window
  uint64_t total_restarts = 0;
  phase stage = phase::running;
  time_point drain_started{};
  milliseconds deadline{0};
};

struct supervisor_state {
  static inline const char* name = "root_supervisor";
  supervisor_options opts;
  std::map<std::string, child_state> children;
  std::vector<std::string> start_order;
  std::map<std::string, std::set<std::string>> dependents;
  bool shutting_down = false;
  bool forcing = false;
  std::string reason;
  int base_exit = exit_code::ok;
  time_point t0{};
  size_t finished = 0;
  std::shared_ptr<spdlog::logger> log = config::logger("root_supervisor");
};

using self_ptr = root_supervisor_actor::stateful_pointer<supervisor_state>;

int64_t ms_between(time_point a, time_point b) {
  return std::chrono::duration_cast<milliseconds>(b - a).count();
}

directory current_directory(supervisor_state& st) {
  directory dir;
  for (auto& [name, c] : st.children) {
    if (c.alive) {
      dir.emplace(name, c.handle);
    }
  }
  return dir;
}

void spawn_child(self_ptr self, child_state& c) {
  c.handle = c.spec.spawn(self->system(), current_directory(self->state));
  c.alive = static_cast<bool>(c.handle);
  ++c.generation;
  if (c.alive) {
    self->monitor(c.handle);
  }
}

void advance(self_ptr self);

void finish(self_ptr self, child_state& c, const std::string& outcome, std::string counts,
            std::string detail) {
  auto& st = self->state;
  if (c.stage == phase::finished) {
    return;
  }
  auto now = self->clock().now();
  if (c.stage != phase::draining) {
    c.drain_started = now;  // never started draining (forced or already dead)
  }
  c.stage = phase::finished;
  ++st.finished;
  actor_report r{c.spec.name,
                 outcome,
                 ms_between(st.t0, c.drain_started),
                 ms_between(c.drain_started, now),
                 std::move(counts),
                 std::move(detail)};
  st.log->info("stopped actor={} outcome={} duration_ms={}", r.actor, r.outcome, r.duration_ms);
  self->send(st.opts.summary, report_atom_v, std::move(r));
}

void complete_if_done(self_ptr self) {
  auto& st = self->state;
  if (st.finished < st.children.size()) {
    return;
  }
  auto total = ms_between(st.t0, self->clock().now());
  st.log->info("shutdown cascade finished in {} ms", total);
  self->send(st.opts.summary, finalize_atom_v, st.reason, static_cast<int32_t>(st.base_exit),
             static_cast<int64_t>(total));
  self->quit();
}

void begin_drain(self_ptr self, child_state& c) {
  auto& st = self->state;
  c.stage = phase::draining;
  c.drain_started = self->clock().now();
  if (!c.alive) {
    finish(self, c, "failed", "{}",
           "not running when its drain began (last exit: " + c.last_exit + ")");
    return;
  }
  st.log->info("draining actor={} deadline_ms={}", c.spec.name, c.deadline.count());
  auto name = c.spec.name;
  auto gen = c.generation;
  // High priority: a drain must not queue behind the actor's backlog (design.md §6).
  self->request<caf::message_priority::high>(c.handle, c.deadline, drain_atom_v)
      .then(
          [=](std::string& counts) {
            auto& ch = self->state.children.at(name);
            if (ch.stage != phase::draining || ch.generation != gen) {
              return;
            }
            finish(self, ch, "ok", std::move(counts), "");
            advance(self);
          },
          [=](caf::error& err) {
            auto& ch = self->state.children.at(name);
            if (ch.stage != phase::draining || ch.generation != gen) {
              return;
            }
            // Force: kill is fatal even to actors that trap exits; the cascade goes on.
            self->send_exit(ch.handle, caf::exit_reason::kill);
            if (is_error(err, errc::drain_incomplete)) {
              // The actor enforced its own deadline (e.g. the gateway cut requests) and says
              // what it left behind: that is a timeout, with its counts.
              finish(self, ch, "timed_out", error_context(err), "drain cut work at its deadline");
            } else if (err == caf::sec::request_timeout) {
              finish(self, ch, "timed_out", "{}",
                     "no report within " + std::to_string(ch.deadline.count()) + " ms");
            } else {
              finish(self, ch, "failed", "{}", "drain failed: " + to_string(err));
            }
            advance(self);
          });
}

void advance(self_ptr self) {
  auto& st = self->state;
  if (st.forcing) {
    return;
  }
  // Start every actor whose dependents have all reported: independent branches together.
  // Repeat while a pass finished someone at once (a child that was already down), since
  // that may make an actor earlier in the order ready.
  for (auto before = st.finished + 1; before != st.finished;) {
    before = st.finished;
    for (auto& name : st.start_order) {
      auto& c = st.children.at(name);
      if (c.stage != phase::waiting) {
        continue;
      }
      const auto& deps = st.dependents[name];
      bool ready = std::all_of(deps.begin(), deps.end(), [&](const std::string& d) {
        return st.children.at(d).stage == phase::finished;
      });
      if (ready) {
        begin_drain(self, c);
      }
    }
  }
  complete_if_done(self);
}

void start_shutdown(self_ptr self, const std::string& reason, int base_exit) {
  auto& st = self->state;
  if (st.shutting_down) {
    return;
  }
  st.shutting_down = true;
  st.reason = reason;
  st.base_exit = base_exit;
  st.t0 = self->clock().now();
  st.log->info("shutdown cascade begins: {}", reason);
  self->send(st.opts.summary, shutdown_atom_v, reason);
  for (auto& [name, c] : st.children) {
    c.stage = phase::waiting;
  }
  advance(self);
}

void force_remaining(self_ptr self) {
  auto& st = self->state;
  st.forcing = true;
  st.log->warn("second signal: forcing every actor that has not finished");
  for (auto& name : st.start_order) {
    auto& c = st.children.at(name);
    if (c.stage == phase::finished) {
      continue;
    }
    if (c.alive) {
      self->send_exit(c.handle, caf::exit_reason::kill);
    }
    finish(self, c, "forced", "{}", "forced by a second signal");
  }
  complete_if_done(self);
}

void on_down(self_ptr self, const caf::down_msg& dm) {
  auto& st = self->state;
  auto it = std::find_if(st.children.begin(), st.children.end(), [&](auto& kv) {
    return kv.second.alive && kv.second.handle.address() == dm.source;
  });
  if (it == st.children.end()) {
    return;
  }
  auto& c = it->second;
  c.alive = false;
  c.last_exit = to_string(dm.reason);
  if (st.shutting_down) {
    if (c.stage == phase::draining) {
      finish(self, c, "failed", "{}", "exited during drain: " + c.last_exit);
      advance(self);
    }
    return;  // a waiting child that died is reported failed when its turn comes
  }
  auto now = self->clock().now();
  c.restarts.push_back(now);
  while (!c.restarts.empty() && now - c.restarts.front() > st.opts.restart_window) {
    c.restarts.pop_front();
  }
  auto n = static_cast<unsigned>(c.restarts.size());
  if (n > st.opts.max_restarts) {
    auto why = "restart intensity exceeded: '" + c.spec.name + "' exited " + std::to_string(n)
               + " times within " + std::to_string(st.opts.restart_window.count())
               + " ms (last: " + c.last_exit + ")";
    st.log->error("{}", why);
    start_shutdown(self, why, exit_code::restart_intensity);
    return;
  }
  auto delay = restart_backoff(n, st.opts.backoff_min, st.opts.backoff_max);
  st.log->warn("actor={} exited ({}); restart {} in {} ms", c.spec.name, c.last_exit, n,
               delay.count());
  self->delayed_send(self, delay, restart_atom_v, c.spec.name, c.generation);
}

root_supervisor_actor::behavior_type supervisor_impl(self_ptr self, supervisor_options opts) {
  auto& st = self->state;
  st.opts = std::move(opts);
  st.dependents = dependents_of(st.opts.plan);
  st.start_order = start_order(st.opts.plan);
  std::map<std::string, milliseconds> deadlines;
  for (const auto& e : st.opts.plan) {
    deadlines[e.actor] = e.deadline;
  }
  for (auto& spec : st.opts.children) {
    auto& c = st.children[spec.name];
    c.spec = spec;
    c.deadline = deadlines.at(spec.name);
  }
  // Dependencies first, so each factory finds the handles it needs in the directory.
  for (const auto& name : st.start_order) {
    spawn_child(self, st.children.at(name));
    st.log->info("started actor={}", name);
  }
  self->set_down_handler([=](caf::down_msg& dm) { on_down(self, dm); });
  return {
      [=](shutdown_atom, const std::string& reason) {
        start_shutdown(self, reason, exit_code::ok);
      },
      [=](force_atom) {
        if (!self->state.shutting_down) {
          start_shutdown(self, "forced", exit_code::ok);
        }
        if (self->state.finished < self->state.children.size()) {
          force_remaining(self);
        }
      },
      [=](restart_atom, const std::string& name, uint64_t generation) {
        auto& st = self->state;
        auto i = st.children.find(name);
        if (st.shutting_down || i == st.children.end() || i->second.alive
            || i->second.generation != generation) {
          return;
        }
        auto& c = i->second;
        spawn_child(self, c);
        ++c.total_restarts;
        st.log->info("restarted actor={} (restart #{})", name, c.total_restarts);
        if (st.opts.on_restart) {
          st.opts.on_restart(name);
        }
        // Actors that use this one still hold the old handle: hand them the new one.
        for (const auto& user : st.dependents[name]) {
          auto& u = st.children.at(user);
          if (u.alive && c.alive) {
            caf::anon_send(u.handle, caf::update_atom_v, name, c.handle);
          }
        }
      },
      [=](status_atom) -> std::string {
        auto& st = self->state;
        auto children = nlohmann::json::array();
        for (auto& name : st.start_order) {
          auto& c = st.children.at(name);
          children.push_back({{"name", name}, {"alive", c.alive}, {"restarts", c.total_restarts}});
        }
        return nlohmann::json{{"state", st.shutting_down ? "shutting_down" : "running"},
                              {"children", children}}
            .dump();
      },
      [=](lookup_atom, const std::string& name) -> caf::actor {
        auto& st = self->state;
        auto i = st.children.find(name);
        return i != st.children.end() && i->second.alive ? i->second.handle : caf::actor{};
      },
  };
}

}  // namespace

std::variant<root_supervisor_actor, std::string> spawn_root_supervisor(caf::actor_system& sys,
                                                                       supervisor_options opts) {
  if (auto err = validate_supervision(opts.plan, opts.children)) {
    return *err;
  }
  return sys.spawn(supervisor_impl, std::move(opts));
}

}  // namespace si::actors
