#include "actors/sync_scheduler.hpp"
#include "actors/test_hang.hpp"

#include <algorithm>
#include <optional>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <soci/soci.h>
#include <spdlog/spdlog.h>

#include "config/logging.hpp"
#include "net/prometheus.hpp"
#include "storage/database.hpp"

namespace si::actors {

std::string to_string(sync_kind kind) {
  switch (kind) {
    case sync_kind::metrics:
      return "metrics";
    case sync_kind::pools:
      return "pools";
    case sync_kind::trustlines:
      return "trustlines";
  }
  return "unknown";
}

void describe_sync_metrics(net::metrics_registry& m) {
  m.describe_counter("si_sync_runs_total", "Sync scheduler runs, by job and outcome.");
  m.describe_gauge("si_sync_last_run_duration_seconds", "Duration of the last run, by job.");
  m.describe_gauge("si_sync_last_success_timestamp_seconds",
                   "Unix time of the last successful run, by job.");
  m.describe_counter("si_sync_events_total", "Domain events emitted by sync runs, by type.");
}

namespace {

using std::chrono::milliseconds;

struct scheduler_state {
  static inline const char* name = "sync_scheduler";
  sync_options opts;
  std::string job;
  std::shared_ptr<net::horizon_client> client;  // pools and trustlines only
  horizon_fetcher_actor fetcher;
  std::shared_ptr<spdlog::logger> log;

  bool running = false;
  bool in_db = false;  // the run is inside its database transaction
  int64_t run_started_ms = 0;
  uint64_t timer_generation = 0;
  std::optional<int64_t> next_run_at;  // when the pending timer fires (unix ms)
  bool draining = false;
  std::optional<caf::typed_response_promise<std::string>> drain_promise;

  int64_t runs = 0, failures = 0, abandoned = 0;
  std::optional<int64_t> last_run_at;
  std::string last_status = "never";
  std::string last_error;
};

using self_ptr = sync_scheduler_actor::stateful_pointer<scheduler_state>;

int64_t now_ms(const sync_options& o) {
  return o.now_ms ? o.now_ms() : storage::unix_ms_now();
}

nlohmann::json counts(const scheduler_state& st) {
  return {{"job", st.job},
          {"runs", st.runs},
          {"failures", st.failures},
          {"abandoned", st.abandoned},
          {"last_run_at", st.last_run_at ? nlohmann::json(*st.last_run_at) : nullptr},
          {"last_status", st.last_status},
          {"last_error",
           st.last_error.empty() ? nlohmann::json(nullptr) : nlohmann::json(st.last_error)}};
}

void schedule(self_ptr self, milliseconds delay) {
  auto& st = self->state;
  auto gen = ++st.timer_generation;
  delay = std::max(delay, milliseconds{0});
  st.next_run_at = now_ms(st.opts) + delay.count();
  self->delayed_send(self, delay, tick_atom_v, gen);
}

void finish_drain(self_ptr self) {
  auto& st = self->state;
  if (!st.drain_promise || st.in_db) {
    return;  // a transaction in flight commits or rolls back first
  }
  auto report = counts(st).dump();
  st.log->info("{} scheduler stopped: {}", st.job, report);
  st.drain_promise->deliver(report);
  st.drain_promise.reset();
  self->quit();
}

void run_done(self_ptr self, bool ok, const std::string& error, const nlohmann::json& summary,
              std::vector<storage::sync_event> events) {
  auto& st = self->state;
  auto finished = now_ms(st.opts);
  auto duration = finished - st.run_started_ms;
  st.running = false;
  st.in_db = false;
  ++st.runs;
  st.last_run_at = st.run_started_ms;
  st.last_status = ok ? "ok" : "failed";
  if (auto& m = st.opts.metrics) {
    m->counter_add("si_sync_runs_total", {{"job", st.job}, {"outcome", st.last_status}});
    m->gauge_set("si_sync_last_run_duration_seconds", {{"job", st.job}},
                 static_cast<double>(duration) / 1000.0);
    if (ok) {
      m->gauge_set("si_sync_last_success_timestamp_seconds", {{"job", st.job}},
                   static_cast<double>(finished) / 1000.0);
      for (const auto& e : events) {
        m->counter_add("si_sync_events_total", {{"type", e.type}});
      }
    }
  }
  if (ok) {
    st.last_error.clear();
    st.log->info("{} run ok in {} ms: {}", st.job, duration, summary.dump());
    // After the commit because readers must not re-cache the old figures: invalidate.
    for (const auto& prefix : summary.value("invalidate_prefixes", std::vector<std::string>{})) {
      if (st.opts.responses) {
        st.opts.responses->invalidate(prefix + "*");
      }
      if (st.opts.cache) {
        caf::anon_send(st.opts.cache, invalidate_atom_v, prefix + "*");
      }
    }
    sync_changes changes{st.opts.kind, summary, std::move(events)};
    if (st.opts.on_changes) {
      st.opts.on_changes(changes);
    }
    if (st.opts.broadcaster) {
      caf::anon_send(st.opts.broadcaster, publish_atom_v, std::move(changes));
    }
  } else {
    ++st.failures;
    st.last_error = error;
    st.log->warn("{} run failed after {} ms: {}", st.job, duration, error);
    // Recorded after the rollback, outside the run's transaction.
    db_task task{"sync.record_failure",
                 [name = st.job, started = st.run_started_ms, error,
                  duration](soci::session& sql) -> nlohmann::json {
                   storage::record_run(sql, name, started, "failed", error, duration);
                   return nullptr;
                 }};
    self->request(st.opts.db, st.opts.db_timeout, query_atom_v, std::move(task))
        .then([](db_result&) {},
              [self](caf::error& e) {
                self->state.log->warn("could not record the failed run: {}", to_string(e));
              });
  }
  if (st.drain_promise) {
    finish_drain(self);
    return;
  }
  schedule(self, ok ? st.opts.interval : std::min(st.opts.interval, st.opts.retry_delay));
}

/// The run's database transaction (one db_task): the job's run_* function, its events handed
/// to on_event inside the same transaction.
void run_in_db(self_ptr self, std::shared_ptr<sync_data> data) {
  auto& st = self->state;
  st.in_db = true;
  auto kind = st.opts.kind;
  auto now = st.run_started_ms;
  auto on_event = st.opts.on_event;
  auto mparams = st.opts.metrics_params;
  auto pparams = st.opts.pool_params;
  // Ledgers ingested while a previous run was being written can carry an ingested_at just
  // before its start: look back a margin so no hour is ever left unbuilt.
  auto margin = std::max<int64_t>(60'000, 2 * st.opts.db_timeout.count());
  db_task task{"sync." + st.job, [=](soci::session& sql) -> nlohmann::json {
                 storage::sync_event_fn forward = [&](soci::session& s, const std::string& type,
                                                      const nlohmann::json& d) {
                   if (on_event) {
                     on_event(s, type, d);
                   }
                 };
                 nlohmann::json out;
                 auto events_json = [](const std::vector<storage::sync_event>& events) {
                   auto a = nlohmann::json::array();
                   for (const auto& e : events) {
                     a.push_back({{"type", e.type}, {"data", e.data}});
                   }
                   return a;
                 };
                 switch (kind) {
                   case sync_kind::metrics: {
                     // Rebuild from the oldest ledger ingested since the last run began.
                     auto last = storage::read_last_run(sql, "metrics");
                     int64_t since = last && last->last_run_at ? *last->last_run_at - margin : 0;
                     long long oldest = 0;
                     soci::indicator ind = soci::i_null;
                     sql << "SELECT MIN(closed_at) FROM ledgers WHERE ingested_at >= :since",
                         soci::use(static_cast<long long>(since)), soci::into(oldest, ind);
                     int64_t window_start = ind == soci::i_ok ? oldest : now;
                     auto r = storage::run_metrics_sync(sql, storage::backend_of(sql), now,
                                                        window_start, mparams, forward);
                     out = {{"window_start", window_start},
                            {"buckets_written", r.buckets_written},
                            {"corridors_written", r.corridors_written},
                            {"anchors_updated", r.anchors_updated},
                            {"changed_corridor_ids", r.changed_corridor_ids},
                            {"status_changed_anchor_ids", r.status_changed_anchor_ids},
                            {"invalidate_prefixes", r.invalidate_prefixes},
                            {"events", events_json(r.events)}};
                     break;
                   }
                   case sync_kind::pools: {
                     auto r =
                         storage::run_pool_sync(sql, storage::backend_of(sql), now, data->pools,
                                                data->trades_by_pool, pparams, forward);
                     out = {{"pools_upserted", r.pools_upserted},
                            {"snapshots_written", r.snapshots_written},
                            {"updated_pool_ids", r.updated_pool_ids},
                            {"invalidate_prefixes", r.invalidate_prefixes},
                            {"events", events_json(r.events)}};
                     break;
                   }
                   case sync_kind::trustlines: {
                     auto r = storage::run_trustline_sync(sql, storage::backend_of(sql), now,
                                                          data->assets, forward);
                     out = {{"assets_upserted", r.assets_upserted},
                            {"snapshots_written", r.snapshots_written},
                            {"updated_assets", r.updated_assets},
                            {"invalidate_prefixes", r.invalidate_prefixes},
                            {"events", events_json(r.events)}};
                     break;
                   }
                 }
                 return out;
               }};
  self->request(st.opts.db, st.opts.db_timeout, query_atom_v, std::move(task))
      .then(
          [self](db_result& r) {
            std::vector<storage::sync_event> events;
            for (const auto& e : r.value.value("events", nlohmann::json::array())) {
              events.push_back({e.at("type").get<std::string>(), e.at("data")});
            }
            auto summary = r.value;
            summary.erase("events");
            summary["events"] = events.size();
            run_done(self, true, {}, summary, std::move(events));
          },
          [self](caf::error& e) {
            auto text = error_context(e);
            run_done(self, false, text.empty() ? to_string(e) : text, {}, {});
          });
}

void start_run(self_ptr self) {
  auto& st = self->state;
  if (st.running || st.draining) {
    return;
  }
  st.running = true;
  st.run_started_ms = now_ms(st.opts);
  if (st.opts.kind == sync_kind::metrics) {
    run_in_db(self, nullptr);
    return;
  }
  // Before the transaction because Horizon reads can take long: never hold a connection
  // (or SQLite's write lock) while waiting on the network.
  std::string what = st.opts.kind == sync_kind::pools ? "pools" : "assets";
  int64_t since = st.run_started_ms - 24 * 3'600'000LL;
  self->request(st.fetcher, st.opts.fetch_timeout, sync_atom_v, what,
                static_cast<uint32_t>(st.opts.max_items), since)
      .then(
          [self](sync_outcome& o) {
            auto& st = self->state;
            if (st.draining) {
              st.running = false;
              ++st.abandoned;  // nothing was written; the next start runs it again
              finish_drain(self);
              return;
            }
            if (auto* f = std::get_if<fetch_failure>(&o.value)) {
              run_done(self, false, f->kind + ": " + f->message, {}, {});
              return;
            }
            run_in_db(self, std::make_shared<sync_data>(std::get<sync_data>(std::move(o.value))));
          },
          [self](caf::error& e) {
            auto& st = self->state;
            if (st.draining) {
              st.running = false;
              ++st.abandoned;
              finish_drain(self);
              return;
            }
            run_done(self, false, "horizon fetcher: " + to_string(e), {}, {});
          });
}

/// Reads the last run and schedules the next one: now when due or never run (a run missed
/// while the server was down runs at start), else when the interval ends.
void initialise(self_ptr self) {
  auto& st = self->state;
  db_task task{
      "sync.last_run", [name = st.job](soci::session& sql) -> nlohmann::json {
        auto r = storage::read_last_run(sql, name);
        if (!r || !r->last_run_at) {
          return nullptr;
        }
        return {{"last_run_at", *r->last_run_at}, {"last_status", r->last_status.value_or("")}};
      }};
  self->request(st.opts.db, st.opts.db_timeout, query_atom_v, std::move(task))
      .then(
          [self](db_result& r) {
            auto& st = self->state;
            if (st.draining) {
              return;
            }
            milliseconds delay{0};
            if (r.value.is_object()) {
              st.last_run_at = r.value.at("last_run_at").get<int64_t>();
              st.last_status = r.value.value("last_status", std::string{});
              auto due = *st.last_run_at + st.opts.interval.count();
              delay = milliseconds{std::max<int64_t>(0, due - now_ms(st.opts))};
            }
            st.log->info("{} scheduler: every {} s, next run in {} ms", st.job,
                         st.opts.interval.count() / 1000, delay.count());
            schedule(self, delay);
          },
          [self](caf::error& e) {
            auto& st = self->state;
            st.log->warn("{} scheduler cannot read its last run ({}); retrying", st.job,
                         to_string(e));
            self->delayed_send(self, std::min(st.opts.interval, st.opts.retry_delay), tick_atom_v,
                               uint64_t{0});
          });
}

sync_scheduler_actor::behavior_type scheduler_impl(self_ptr self, sync_options opts) {
  auto& st = self->state;
  st.opts = std::move(opts);
  st.job = to_string(st.opts.kind);
  st.log = config::logger("sync_" + st.job);
  if (st.opts.kind != sync_kind::metrics) {
    st.client = std::make_shared<net::horizon_client>(st.opts.client);
    st.fetcher = spawn_horizon_fetcher(self->system(), st.client, st.opts.fetch);
    self->link_to(st.fetcher);
  }
  initialise(self);
  return {
      [=](drain_atom) -> caf::result<std::string> {
        auto& st = self->state;
        if (ignore_drain_for_test(st.opts.test_hang_on_drain, *st.log)) {
          return self->make_response_promise<std::string>();  // never delivered
        }
        auto promise = self->make_response_promise<std::string>();
        if (st.draining) {
          return promise;
        }
        st.draining = true;
        st.drain_promise = promise;
        ++st.timer_generation;  // the next run's timer is now stale
        if (st.client) {
          st.client->cancel();  // a Horizon read in flight ends now; nothing was written
        }
        if (!st.running) {
          finish_drain(self);
        }
        return promise;
      },
      [=](status_atom) -> std::string {
        auto& st = self->state;
        auto j = counts(st);
        j["running"] = st.running;
        j["next_run_in_ms"] =
            !st.running && st.next_run_at
                ? nlohmann::json(std::max<int64_t>(0, *st.next_run_at - now_ms(st.opts)))
                : nlohmann::json(nullptr);
        return j.dump();
      },
      [=](sync_atom) { start_run(self); },
      [=](tick_atom, uint64_t generation) {
        auto& st = self->state;
        if (st.draining) {
          return;
        }
        if (generation == 0) {
          initialise(self);  // the retry of a failed start-up read
          return;
        }
        if (generation == st.timer_generation) {
          start_run(self);
        }
      },
      [=](caf::update_atom, const std::string& name, const caf::actor& handle) {
        if (name == "db") {
          self->state.opts.db = caf::actor_cast<db_actor>(handle);
        } else if (name == "cache") {
          self->state.opts.cache = caf::actor_cast<cache_actor>(handle);
        } else if (name == "broadcaster") {
          self->state.opts.broadcaster = handle;
        }
      },
  };
}

}  // namespace

sync_scheduler_actor spawn_sync_scheduler(caf::actor_system& sys, sync_options opts) {
  return sys.spawn(scheduler_impl, std::move(opts));
}

}  // namespace si::actors
