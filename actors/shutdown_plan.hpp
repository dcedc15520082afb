#pragma once
/// The shutdown plan: one declared table of (actor, depends-on, deadline), and its checks.
/// Pure data and graph code: no CAF header, so tests and tools include it cheaply.

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace si::config {
struct settings;
}

namespace si::actors {

/// One row of the plan: `actor` uses every actor in `depends_on`, so it must have stopped
/// (reported) before any of them is told to stop. `deadline` bounds its own drain.
struct plan_entry {
  std::string actor;
  std::vector<std::string> depends_on;
  std::chrono::milliseconds deadline{0};
};

using shutdown_plan = std::vector<plan_entry>;

/// The plan of the actors this build runs, with deadlines from the settings. This is the one
/// place the stop order is declared; design.md §3 shows the full intended table.
shutdown_plan default_plan(const config::settings& s);

/// Checks the plan: non-empty unique names, every dependency known, no self-dependency, no
/// cycle, every deadline > 0. Returns the problem, or nullopt when the plan is valid.
std::optional<std::string> validate_plan(const shutdown_plan& plan);

/// For each actor, the actors that depend on it (must stop before it).
std::map<std::string, std::set<std::string>> dependents_of(const shutdown_plan& plan);

/// Stop order as waves: every actor in wave k has all its dependents in earlier waves.
/// Actors within one wave stop in parallel. Requires a valid plan.
std::vector<std::vector<std::string>> stop_waves(const shutdown_plan& plan);

/// Start order: the reverse of the stop order (dependencies first), flattened.
std::vector<std::string> start_order(const shutdown_plan& plan);

/// Longest chain of deadlines through the stop order: the worst-case cascade duration when
/// every actor uses its whole deadline. Requires a valid plan.
std::chrono::milliseconds critical_path(const shutdown_plan& plan);

}  // namespace si::actors
