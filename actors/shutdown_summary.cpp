#include "actors/shutdown_summary.hpp"

#include "config/logging.hpp"
#include "net/prometheus.hpp"
#include "storage/database.hpp"

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <chrono>
#include <fstream>
#include <map>

namespace si::actors {

nlohmann::json build_summary(const std::vector<actor_report>& reports,
                             const std::vector<std::string>& expected_actors,
                             const std::string& reason, int base_exit_code, int64_t total_ms,
                             int64_t started_at_unix_ms) {
  std::map<std::string, const actor_report*> by_name;
  for (const auto& r : reports) {
    by_name[r.actor] = &r;
  }
  auto actors = nlohmann::json::array();
  bool all_ok = true;
  auto add = [&](const actor_report& r) {
    auto counts = nlohmann::json::parse(r.counts, nullptr, false);
    if (counts.is_discarded() || !counts.is_object()) {
      counts = nlohmann::json::object();
    }
    nlohmann::json j{{"actor", r.actor},
                     {"outcome", r.outcome},
                     {"started_ms", r.started_ms},
                     {"duration_ms", r.duration_ms},
                     {"counts", counts}};
    if (!r.detail.empty()) {
      j["detail"] = r.detail;
    }
    all_ok = all_ok && r.outcome == "ok";
    actors.push_back(std::move(j));
  };
  for (const auto& r : reports) {
    add(r);
  }
  // An expected actor with no report is a defect of the cascade: say so, never hide it.
  for (const auto& name : expected_actors) {
    if (by_name.count(name) == 0) {
      add(actor_report{name, "failed", 0, 0, "{}", "no report received"});
    }
  }
  int code = base_exit_code;
  if (code == exit_code::ok && !all_ok) {
    code = exit_code::unclean_shutdown;
  }
  return {{"reason", reason},     {"started_at_ms", started_at_unix_ms},
          {"total_ms", total_ms}, {"all_ok", all_ok},
          {"exit_code", code},    {"actors", std::move(actors)}};
}

void describe_lifecycle_metrics(net::metrics_registry& m) {
  m.describe_counter("si_actor_restarts_total", "Restarts of a crashed actor by the supervisor.");
  m.describe_gauge("si_last_shutdown_actor_duration_seconds",
                   "Drain duration of each actor in the last recorded shutdown, by outcome.");
  m.describe_gauge("si_last_shutdown_actor_ok",
                   "1 when the actor's outcome in the last recorded shutdown was ok, else 0.");
  m.describe_gauge("si_last_shutdown_duration_seconds", "Duration of the last shutdown.");
  m.describe_gauge("si_last_shutdown_exit_code", "Exit code of the last recorded shutdown.");
}

void export_shutdown_metrics(net::metrics_registry& m, const nlohmann::json& report) {
  if (!report.is_object() || !report.contains("actors") || !report["actors"].is_array()) {
    return;
  }
  for (const auto& a : report["actors"]) {
    auto actor = a.value("actor", std::string{"unknown"});
    auto outcome = a.value("outcome", std::string{"unknown"});
    m.gauge_set("si_last_shutdown_actor_duration_seconds", {{"actor", actor}, {"outcome", outcome}},
                a.value("duration_ms", 0.0) / 1000.0);
    m.gauge_set("si_last_shutdown_actor_ok", {{"actor", actor}}, outcome == "ok" ? 1.0 : 0.0);
  }
  m.gauge_set("si_last_shutdown_duration_seconds", {}, report.value("total_ms", 0.0) / 1000.0);
  m.gauge_set("si_last_shutdown_exit_code", {}, report.value("exit_code", 0.0));
}

namespace {

struct summary_state {
  static inline const char* name = "shutdown_summary";
  summary_options opts;
  std::vector<actor_report> reports;
  std::string reason = "not shut down";
  int64_t started_at_unix_ms = 0;
  bool finalized = false;
};

void publish(summary_options& opts, const nlohmann::json& report) {
  auto log = config::logger("shutdown_summary");
  for (const auto& a : report["actors"]) {
    log->info("actor={} outcome={} started_ms={} duration_ms={} counts={}{}",
              a["actor"].get<std::string>(), a["outcome"].get<std::string>(),
              a["started_ms"].get<int64_t>(), a["duration_ms"].get<int64_t>(), a["counts"].dump(),
              a.contains("detail") ? " detail=" + a["detail"].dump() : std::string{});
  }
  log->info("shutdown total: actors={} all_ok={} total_ms={} exit_code={} reason={}",
            report["actors"].size(), report["all_ok"].get<bool>(),
            report["total_ms"].get<int64_t>(), report["exit_code"].get<int>(),
            report["reason"].get<std::string>());
  if (opts.report_path) {
    // Write to a temporary file and rename, so a reader never sees half a report.
    auto tmp = *opts.report_path + ".tmp";
    std::ofstream out(tmp, std::ios::trunc);
    out << report.dump(2) << '\n';
    out.close();
    if (!out || std::rename(tmp.c_str(), opts.report_path->c_str()) != 0) {
      log->error("could not write shutdown report to {}", *opts.report_path);
    }
  }
  if (opts.persist) {
    try {
      opts.persist(report);
    } catch (const std::exception& e) {
      log->error("could not persist shutdown report: {}", e.what());
    }
  }
}

shutdown_summary_actor::behavior_type summary_impl(
    shutdown_summary_actor::stateful_pointer<summary_state> self, summary_options opts) {
  self->state.opts = std::move(opts);
  return {
      [=](shutdown_atom, const std::string& reason) {
        if (self->state.started_at_unix_ms == 0) {
          self->state.reason = reason;
          self->state.started_at_unix_ms = storage::unix_ms_now();
        }
      },
      [=](report_atom, const actor_report& r) { self->state.reports.push_back(r); },
      [=](finalize_atom, const std::string& reason, int32_t base_exit_code, int64_t total_ms) {
        auto& st = self->state;
        if (st.finalized) {
          return;
        }
        st.finalized = true;
        if (st.started_at_unix_ms == 0) {
          st.started_at_unix_ms = storage::unix_ms_now();
        }
        auto report = build_summary(st.reports, st.opts.expected_actors, reason, base_exit_code,
                                    total_ms, st.started_at_unix_ms);
        publish(st.opts, report);
        if (st.opts.on_complete) {
          st.opts.on_complete(report["exit_code"].get<int>(), report);
        }
        self->quit();
      },
      [=](get_atom) -> std::string {
        auto& st = self->state;
        return build_summary(st.reports, {}, st.reason, 0, 0, st.started_at_unix_ms).dump();
      },
  };
}

}  // namespace

shutdown_summary_actor spawn_shutdown_summary(caf::actor_system& sys, summary_options opts,
                                              bool detached) {
  if (detached) {
    return sys.spawn<caf::detached>(summary_impl, std::move(opts));
  }
  return sys.spawn(summary_impl, std::move(opts));
}

}  // namespace si::actors
