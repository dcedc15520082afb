#pragma once
/// `shutdown_summary`: collects every actor's shutdown report and renders the one summary.
/// Spawned first and exits last, outside the cascade it observes.

#include "actors/atoms.hpp"

#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace si::net {
class metrics_registry;
}

namespace si::actors {

/// Messages: `shutdown_atom, reason` when the cascade begins; one `report_atom` per actor;
/// `finalize_atom, reason, base_exit_code, total_ms` when the cascade ends;
/// `get_atom` → the summary JSON so far.
using shutdown_summary_actor =
    caf::typed_actor<caf::reacts_to<shutdown_atom, std::string>,
                     caf::reacts_to<report_atom, actor_report>,
                     caf::reacts_to<finalize_atom, std::string, int32_t, int64_t>,
                     caf::replies_to<get_atom>::with<std::string>>;

/// How the summary publishes its result.
struct summary_options {
  /// Actors the plan lists; one missing from the reports is listed with outcome "failed".
  std::vector<std::string> expected_actors;
  /// Where to write the JSON report (SHUTDOWN_REPORT_PATH), if anywhere.
  std::optional<std::string> report_path;
  /// Stores the report (in the database); exceptions are caught and logged.
  std::function<void(const nlohmann::json&)> persist;
  /// Called once with the final exit code and report, after logging/writing/persisting.
  std::function<void(int, const nlohmann::json&)> on_complete;
};

/// Exit codes of the process (documented in docs/graceful-shutdown.md).
namespace exit_code {
constexpr int ok = 0;                 ///< every actor reported ok
constexpr int unclean_shutdown = 1;   ///< some actor timed_out, failed or was forced
constexpr int config_error = 2;       ///< invalid configuration
constexpr int restart_intensity = 3;  ///< a child crashed past the restart intensity
constexpr int hard_deadline = 4;      ///< SHUTDOWN_HARD_TIMEOUT passed
constexpr int startup_failure = 5;    ///< a dependency could not be opened at start
}  // namespace exit_code

/// Pure: the summary JSON for these reports, and the exit code it implies
/// (`base_exit_code` unless it is 0 and some actor was not ok, then 1).
nlohmann::json build_summary(const std::vector<actor_report>& reports,
                             const std::vector<std::string>& expected_actors,
                             const std::string& reason, int base_exit_code, int64_t total_ms,
                             int64_t started_at_unix_ms);

/// Describes the lifecycle metric families (restarts, last shutdown) in `m`.
void describe_lifecycle_metrics(net::metrics_registry& m);

/// Publishes a (previous run's) shutdown report as gauges: per-actor duration and outcome,
/// total duration and exit code.
void export_shutdown_metrics(net::metrics_registry& m, const nlohmann::json& report);

/// Spawns the summary; `detached` gives it its own thread (production: file and database
/// writes must not block the scheduler); tests spawn it on the test scheduler.
shutdown_summary_actor spawn_shutdown_summary(caf::actor_system& sys, summary_options opts,
                                              bool detached);

}  // namespace si::actors
