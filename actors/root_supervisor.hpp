#pragma once
/// `root_supervisor`: spawns every subsystem actor, restarts crashed ones (one_for_one with
/// exponential backoff and an intensity limit) and runs the dependency-ordered shutdown
/// cascade of `shutdown_plan`, reporting each actor's result to `shutdown_summary`.

#include "actors/atoms.hpp"
#include "actors/shutdown_plan.hpp"
#include "actors/shutdown_summary.hpp"

#include <caf/actor.hpp>
#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <variant>
#include <string>
#include <vector>

namespace si::actors {

/// Handles of the running children by plan name, for factories that need their
/// dependencies (dependencies are always spawned first).
using directory = std::map<std::string, caf::actor>;

/// How to (re)start one child. The child must answer `drain_atom` with a JSON object of
/// its counts (then quit), or with an error (reported as `failed`). After a restart, every
/// child that depends on it receives `update_atom, name, new_handle`.
struct child_spec {
  std::string name;
  std::function<caf::actor(caf::actor_system& sys, const directory& deps)> spawn;
};

/// Supervision and cascade settings.
struct supervisor_options {
  shutdown_plan plan;
  std::vector<child_spec> children;
  shutdown_summary_actor summary;
  unsigned max_restarts = 5;  ///< per child within restart_window
  std::chrono::milliseconds restart_window{60'000};
  std::chrono::milliseconds backoff_min{100};  ///< first restart delay, doubling
  std::chrono::milliseconds backoff_max{5'000};
  /// Called on every restart with the child's name (metrics: si_actor_restarts_total).
  std::function<void(const std::string&)> on_restart;
};

/// Messages: `shutdown_atom, reason` starts the cascade (idempotent); `force_atom` kills
/// whatever has not finished (a second signal); `status_atom` → JSON of children, restart
/// counts and shutdown state; `lookup_atom, name` → the child's current handle (or an
/// invalid handle).
using root_supervisor_actor =
    caf::typed_actor<caf::reacts_to<shutdown_atom, std::string>, caf::reacts_to<force_atom>,
                     caf::reacts_to<restart_atom, std::string, uint64_t>,
                     caf::replies_to<status_atom>::with<std::string>,
                     caf::replies_to<lookup_atom, std::string>::with<caf::actor>>;

/// Checks the plan itself and that plan and children name the same actors.
std::optional<std::string> validate_supervision(const shutdown_plan& plan,
                                                const std::vector<child_spec>& children);

/// Validates (see validate_supervision) and spawns the supervisor, which spawns its
/// children in dependency order. Returns the error text instead when invalid.
std::variant<root_supervisor_actor, std::string> spawn_root_supervisor(caf::actor_system& sys,
                                                                       supervisor_options opts);

/// The restart delay after `restarts_in_window` restarts (1-based): min·2^(n-1), capped.
std::chrono::milliseconds restart_backoff(unsigned restarts_in_window,
                                          std::chrono::milliseconds min,
                                          std::chrono::milliseconds max);

}  // namespace si::actors
