#pragma once
/// Every atom and custom message type of stellar-insights, in one type-ID block.

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/make_message.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/type_id.hpp>

#include <cstdint>
#include <functional>
#include <string>

CAF_BEGIN_TYPE_ID_BLOCK(stellar_insights, caf::first_custom_type_id)

// -- lifecycle: supervisor <-> children, signals, summary
CAF_ADD_ATOM(stellar_insights, si, drain_atom, "drain")
CAF_ADD_ATOM(stellar_insights, si, shutdown_atom, "shutdown")
CAF_ADD_ATOM(stellar_insights, si, force_atom, "force")
CAF_ADD_ATOM(stellar_insights, si, restart_atom, "restart")
CAF_ADD_ATOM(stellar_insights, si, report_atom, "report")
CAF_ADD_ATOM(stellar_insights, si, finalize_atom, "finalize")
CAF_ADD_ATOM(stellar_insights, si, status_atom, "status")
CAF_ADD_ATOM(stellar_insights, si, lookup_atom, "lookup")

// -- db
CAF_ADD_ATOM(stellar_insights, si, query_atom, "query")
CAF_ADD_ATOM(stellar_insights, si, done_atom, "done")

// -- cache
CAF_ADD_ATOM(stellar_insights, si, invalidate_atom, "invalidate")
CAF_ADD_ATOM(stellar_insights, si, stats_atom, "stats")
CAF_ADD_ATOM(stellar_insights, si, health_atom, "health")

// -- http_gateway
CAF_ADD_ATOM(stellar_insights, si, http_atom, "http")
CAF_ADD_ATOM(stellar_insights, si, drain_step_atom, "drainstep")
CAF_ADD_ATOM(stellar_insights, si, drained_atom, "drained")
CAF_ADD_ATOM(stellar_insights, si, cut_atom, "cut")
CAF_ADD_ATOM(stellar_insights, si, respond_atom, "respond")

// -- ingestor and schedulers
CAF_ADD_ATOM(stellar_insights, si, fetch_atom, "fetch")
CAF_ADD_ATOM(stellar_insights, si, latest_atom, "latest")
CAF_ADD_ATOM(stellar_insights, si, committed_atom, "committed")
CAF_ADD_ATOM(stellar_insights, si, tick_atom, "tick")
CAF_ADD_ATOM(stellar_insights, si, sync_atom, "sync")
CAF_ADD_ATOM(stellar_insights, si, publish_atom, "publish")

// -- ws_hub (transport callbacks, the server hand-over from the gateway)
CAF_ADD_ATOM(stellar_insights, si, ws_open_atom, "wsopen")
CAF_ADD_ATOM(stellar_insights, si, ws_text_atom, "wstext")
CAF_ADD_ATOM(stellar_insights, si, ws_closed_atom, "wsclosed")
CAF_ADD_ATOM(stellar_insights, si, adopt_atom, "adopt")

// -- webhook_dispatcher (doorbell, request completions, its own timers)
CAF_ADD_ATOM(stellar_insights, si, wake_atom, "whwake")
CAF_ADD_ATOM(stellar_insights, si, sent_atom, "whsent")
CAF_ADD_ATOM(stellar_insights, si, flush_atom, "whflush")
CAF_ADD_ATOM(stellar_insights, si, gauge_atom, "whgauge")

CAF_END_TYPE_ID_BLOCK(stellar_insights)

namespace si {

// CAF's predefined atoms used across our interfaces.
using caf::get_atom;
using caf::get_atom_v;
using caf::put_atom;
using caf::put_atom_v;

/// One actor's shutdown result, as collected by `shutdown_summary`.
struct actor_report {
  std::string actor;          ///< plan name, e.g. "db"
  std::string outcome;        ///< "ok" | "timed_out" | "failed" | "forced"
  int64_t started_ms = 0;     ///< when its drain began, ms after the shutdown began
  int64_t duration_ms = 0;    ///< drain duration (to report, deadline or force)
  std::string counts = "{}";  ///< JSON object of the actor's own counters
  std::string detail;         ///< error text for failed/forced/timed_out, else ""
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, actor_report& x) {
  return f(caf::meta::type_name("actor_report"), x.actor, x.outcome, x.started_ms, x.duration_ms,
           x.counts, x.detail);
}

/// Errors of stellar-insights' own actors (category atom "si").
enum class errc : uint8_t {
  closing = 1,       ///< the actor is draining and refuses new work
  overloaded = 2,    ///< a bounded queue is full
  query_failed = 3,  ///< a database statement threw
  unavailable = 4,   ///< a dependency is down
  /// A drain that had to cut work at its own deadline; the context is the counts JSON.
  drain_incomplete = 5,
};

/// Builds a CAF error in the "si" category with a human-readable context.
inline caf::error make_error(errc code, std::string context) {
  return caf::error{static_cast<uint8_t>(code), caf::atom("si"),
                    caf::make_message(std::move(context))};
}

/// The text context of an error made by make_error ("" when there is none).
inline std::string error_context(const caf::error& err) {
  const auto& ctx = err.context();
  return ctx.match_elements<std::string>() ? ctx.get_as<std::string>(0) : std::string{};
}

/// True when `err` is `code` in the "si" category.
inline bool is_error(const caf::error& err, errc code) {
  return err.category() == caf::atom("si") && err.code() == static_cast<uint8_t>(code);
}

}  // namespace si
