#include "actors/ingestor.hpp"
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
#include "domain/ledger_batch.hpp"
#include "net/prometheus.hpp"
#include "storage/database.hpp"
#include "storage/ingestion_repo.hpp"

namespace si::actors {

void ingest_progress::set_state(std::string state, std::string error) {
  std::lock_guard<std::mutex> guard{mtx_};
  state_ = std::move(state);
  if (!error.empty()) {
    last_error_ = std::move(error);
  }
}

void ingest_progress::set_committed(int64_t last_ledger) {
  last_ledger_ = last_ledger;
  if (network_latest_.load() < last_ledger) {
    network_latest_ = last_ledger;
  }
}

void ingest_progress::set_network_latest(int64_t latest) {
  network_latest_ = std::max(latest, last_ledger_.load());
}

nlohmann::json ingest_progress::snapshot() const {
  std::lock_guard<std::mutex> guard{mtx_};
  nlohmann::json j;
  j["state"] = state_;
  auto last = last_ledger_.load();
  auto latest = network_latest_.load();
  j["last_ledger"] = last > 0 ? nlohmann::json(last) : nlohmann::json(nullptr);
  j["network_latest"] = latest > 0 ? nlohmann::json(latest) : nlohmann::json(nullptr);
  j["ledgers_behind"] =
      last > 0 && latest > 0 ? nlohmann::json(std::max<int64_t>(0, latest - last)) : nullptr;
  j["last_error"] = last_error_.empty() ? nlohmann::json(nullptr) : nlohmann::json(last_error_);
  return j;
}

std::string ingest_progress::state() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return state_;
}

void describe_ingest_metrics(net::metrics_registry& m) {
  m.describe_counter("si_ingested_ledgers_total", "Ledgers committed by the ingestor.");
  m.describe_counter("si_ingested_transactions_total",
                     "Transactions committed by the ingestor (failed ones included).");
  m.describe_counter("si_ingested_operations_total",
                     "Operations committed by the ingestor (failed ones included).");
  m.describe_counter("si_ingest_errors_total",
                     "Batches that could not be read or committed, by kind; retried with backoff.");
  m.describe_gauge("si_ingestion_last_ledger", "Newest ledger committed.");
  m.describe_gauge("si_ingestion_lag_ledgers",
                   "Ledgers between the newest one Horizon has and the newest one committed.");
}

namespace {

using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

struct ingestor_state {
  static inline const char* name = "ingestor";
  ingestor_options opts;
  std::shared_ptr<net::horizon_client> client;
  horizon_fetcher_actor fetcher;
  std::shared_ptr<spdlog::logger> log = config::logger("ingestor");

  bool initialised = false;   // the start cursor is known
  std::string cursor;         // committed (or the start position before the first commit)
  int64_t expected_next = 0;  // the ledger the cursor leads to (0 = unknown: latest)
  bool fetch_in_flight = false;
  bool discard_fetch = false;  // the read in flight started from a batch that failed
  bool commit_in_flight = false;
  std::string committing_cursor;  // the batch being committed: where a read-ahead starts
  int64_t committing_last = 0;
  std::optional<fetched_batch> stash;  // read ahead while a commit runs
  milliseconds backoff{0};
  uint64_t timer_generation = 0;
  steady::time_point latest_checked{};
  std::string db_state;  // last state sent to ingestion_state
  std::optional<std::pair<std::string, std::string>> pending_state;  // {state, error}
  bool state_write_in_flight = false;
  bool finishing = false;  // drained: replying once `stopped` is written

  bool draining = false;
  std::optional<caf::typed_response_promise<std::string>> drain_promise;

  int64_t ledgers = 0, transactions = 0, operations = 0, batches = 0, errors = 0, abandoned = 0;
  int64_t last_ledger = 0;
};

using self_ptr = ingestor_actor::stateful_pointer<ingestor_state>;

nlohmann::json counts(const ingestor_state& st) {
  return {{"ledgers", st.ledgers},
          {"transactions", st.transactions},
          {"operations", st.operations},
          {"batches", st.batches},
          {"errors", st.errors},
          {"abandoned", st.abandoned},
          {"last_cursor", st.cursor.empty() ? nlohmann::json(nullptr) : nlohmann::json(st.cursor)},
          {"last_ledger",
           st.last_ledger > 0 ? nlohmann::json(st.last_ledger) : nlohmann::json(nullptr)}};
}

void start_fetch(self_ptr self);
void schedule(self_ptr self, milliseconds delay);
void maybe_reply(self_ptr self);

/// Writes the newest pending state to ingestion_state, one write at a time: the db actor's
/// workers run queries in parallel, so two writes in flight could commit out of order.
void flush_state(self_ptr self) {
  auto& st = self->state;
  if (st.state_write_in_flight || !st.pending_state) {
    return;
  }
  auto [state, error] = std::move(*st.pending_state);
  st.pending_state.reset();
  st.state_write_in_flight = true;
  std::optional<std::string> err = error.empty() ? std::nullopt : std::optional<std::string>{error};
  db_task task{"ingestion.state",
               [stream = st.opts.stream, state = state, err](soci::session& sql) -> nlohmann::json {
                 std::optional<std::string_view> e;
                 if (err) {
                   e = *err;
                 }
                 storage::record_ingestion_state(sql, stream, state, e, storage::unix_ms_now());
                 return nullptr;
               }};
  self->request(st.opts.db, st.opts.db_timeout, query_atom_v, std::move(task))
      .then(
          [self](db_result&) {
            self->state.state_write_in_flight = false;
            flush_state(self);
            maybe_reply(self);
          },
          [self](caf::error& e) {
            self->state.state_write_in_flight = false;
            self->state.log->warn("could not record the ingestion state: {}", to_string(e));
            flush_state(self);
            maybe_reply(self);
          });
}

/// Records the state for /api/v1/ingestion/status (in memory at once, in the database when
/// it changed or carries an error). A lost write costs a stale status only.
void set_state(self_ptr self, const std::string& state, const std::string& error = {}) {
  auto& st = self->state;
  if (st.opts.progress) {
    st.opts.progress->set_state(state, error);
  }
  if (state == st.db_state && error.empty()) {
    return;
  }
  st.db_state = state;
  st.pending_state = std::make_pair(state, error);
  flush_state(self);
}

void finish_drain(self_ptr self) {
  auto& st = self->state;
  if (!st.drain_promise || st.commit_in_flight || st.finishing) {
    return;  // a commit in flight finishes first: its batch is whole or not written at all
  }
  st.finishing = true;
  st.log->info("ingestor stopped: {}", counts(st).dump());
  if (st.opts.progress) {
    st.opts.progress->set_state("stopped");
  }
  // Record `stopped` (after any state write in flight), then reply: the db actor stops
  // after us (it is our dependency).
  st.db_state = "stopped";
  st.pending_state = std::make_pair(std::string{"stopped"}, std::string{});
  flush_state(self);
}

/// Called when a state write completes: the drain replies once `stopped` is written.
void maybe_reply(self_ptr self) {
  auto& st = self->state;
  if (!st.finishing || st.state_write_in_flight || st.pending_state || !st.drain_promise) {
    return;
  }
  st.drain_promise->deliver(counts(st).dump());
  st.drain_promise.reset();
  self->quit();
}

void on_failure(self_ptr self, const std::string& kind, const std::string& message,
                int64_t retry_after_ms) {
  auto& st = self->state;
  ++st.errors;
  if (st.opts.metrics) {
    st.opts.metrics->counter_add("si_ingest_errors_total", {{"kind", kind}});
  }
  st.backoff =
      st.backoff.count() == 0 ? st.opts.backoff_min : std::min(st.opts.backoff_max, st.backoff * 2);
  auto delay = std::max(st.backoff, milliseconds{retry_after_ms});
  st.log->warn("ingestion {}: {}; retrying from cursor {} in {} ms", kind, message,
               st.cursor.empty() ? "(start)" : st.cursor, delay.count());
  set_state(self, "backoff", kind + ": " + message);
  schedule(self, delay);
}

void commit(self_ptr self, fetched_batch batch) {
  auto& st = self->state;
  st.commit_in_flight = true;
  st.committing_cursor = batch.new_cursor;
  st.committing_last = batch.last_ledger;
  auto b = batch.batch;
  db_task task{"ingest.commit",
               [b, stream = st.opts.stream, cursor = batch.new_cursor, last = batch.last_ledger,
                outbox = st.opts.outbox](soci::session& sql) -> nlohmann::json {
                 auto r = storage::commit_page(sql, storage::backend_of(sql), *b, stream, cursor,
                                               last, storage::unix_ms_now(), outbox);
                 return {{"ledgers", r.ledgers_written},
                         {"transactions", r.transactions_written},
                         {"operations", r.operations_written},
                         {"events", r.events_written}};
               }};
  self->request(st.opts.db, st.opts.db_timeout, query_atom_v, std::move(task))
      .then(
          [self, batch](db_result& r) {
            auto& st = self->state;
            st.commit_in_flight = false;
            st.cursor = batch.new_cursor;
            st.expected_next = batch.last_ledger + 1;
            st.last_ledger = batch.last_ledger;
            st.backoff = milliseconds{0};
            ++st.batches;
            // Rows newly written (a re-commit after a crash writes none twice).
            auto nl = r.value.value("ledgers", int64_t{0});
            auto nt = r.value.value("transactions", int64_t{0});
            auto no = r.value.value("operations", int64_t{0});
            st.ledgers += nl;
            st.transactions += nt;
            st.operations += no;
            if (st.opts.progress) {
              st.opts.progress->set_committed(batch.last_ledger);
            }
            if (auto& m = st.opts.metrics) {
              m->counter_add("si_ingested_ledgers_total", {}, static_cast<double>(nl));
              m->counter_add("si_ingested_transactions_total", {}, static_cast<double>(nt));
              m->counter_add("si_ingested_operations_total", {}, static_cast<double>(no));
              m->gauge_set("si_ingestion_last_ledger", {}, static_cast<double>(batch.last_ledger));
              if (st.opts.progress) {
                auto latest = st.opts.progress->network_latest();
                m->gauge_set("si_ingestion_lag_ledgers", {},
                             static_cast<double>(std::max<int64_t>(0, latest - batch.last_ledger)));
              }
            }
            st.log->debug("committed ledgers {}..{} ({} operations), cursor {}", batch.first_ledger,
                          batch.last_ledger, no, batch.new_cursor);
            if (st.opts.on_commit || st.opts.broadcaster) {
              committed_batch done{batch.batch, batch.new_cursor, batch.last_ledger,
                                   r.value.value("events", int64_t{0})};
              if (st.opts.on_commit) {
                st.opts.on_commit(done);
              }
              if (st.opts.broadcaster) {
                caf::anon_send(st.opts.broadcaster, publish_atom_v, std::move(done));
              }
            }
            if (st.drain_promise) {
              finish_drain(self);
              return;
            }
            set_state(self, batch.caught_up ? "tailing" : "catching_up");
            if (st.stash) {
              auto next = std::move(*st.stash);
              st.stash.reset();
              bool more = !next.caught_up;
              commit(self, std::move(next));
              if (more && !st.fetch_in_flight) {
                start_fetch(self);
              }
              return;
            }
            if (!st.fetch_in_flight) {
              if (batch.caught_up) {
                schedule(self, st.opts.poll_interval);
              } else {
                start_fetch(self);
              }
            }
          },
          [self](caf::error& e) {
            auto& st = self->state;
            st.commit_in_flight = false;
            if (st.stash) {
              ++st.abandoned;
              st.stash.reset();
            }
            if (st.fetch_in_flight) {
              st.discard_fetch = true;  // it reads on from a batch that was not written
            }
            if (st.drain_promise) {
              finish_drain(self);
              return;
            }
            on_failure(self, "database", error_context(e).empty() ? to_string(e) : error_context(e),
                       0);
          });
}

void on_fetched(self_ptr self, fetch_outcome& outcome) {
  auto& st = self->state;
  st.fetch_in_flight = false;
  if (st.discard_fetch) {
    st.discard_fetch = false;
    if (auto* b = std::get_if<fetched_batch>(&outcome.value); b && b->last_ledger > 0) {
      ++st.abandoned;
    }
    if (st.draining) {
      finish_drain(self);
    }
    return;  // a failure handler already scheduled the retry
  }
  if (st.draining) {
    if (auto* b = std::get_if<fetched_batch>(&outcome.value); b && b->last_ledger > 0) {
      ++st.abandoned;  // read but never written: the next start reads it again
    }
    finish_drain(self);
    return;
  }
  if (auto* f = std::get_if<fetch_failure>(&outcome.value)) {
    on_failure(self, f->kind, f->message, f->retry_after_ms);
    return;
  }
  auto& batch = std::get<fetched_batch>(outcome.value);
  if (batch.network_latest > 0 && st.opts.progress) {
    st.opts.progress->set_network_latest(batch.network_latest);
  }
  if (batch.last_ledger == 0) {
    // Nothing new yet: poll again (a commit in flight schedules its own follow-up).
    if (!st.commit_in_flight && !st.stash) {
      set_state(self, "tailing");
      if (st.opts.progress && st.last_ledger > 0) {
        st.opts.progress->set_network_latest(st.last_ledger);
      }
      schedule(self, st.opts.poll_interval);
    }
    return;
  }
  bool more = !batch.caught_up;
  if (st.commit_in_flight) {
    st.stash = std::move(batch);  // read ahead; committed right after the one in flight
    return;
  }
  commit(self, std::move(batch));
  if (more) {
    start_fetch(self);  // read the next batch while this one commits
  }
}

void start_fetch(self_ptr self) {
  auto& st = self->state;
  if (st.draining || st.fetch_in_flight) {
    return;
  }
  st.fetch_in_flight = true;
  // Read on from the newest batch read: the one waiting to be committed, else the one
  // being committed, else the committed cursor.
  std::string from = st.cursor;
  int64_t expected = st.expected_next;
  if (st.stash) {
    from = st.stash->new_cursor;
    expected = st.stash->last_ledger + 1;
  } else if (st.commit_in_flight) {
    from = st.committing_cursor;
    expected = st.committing_last + 1;
  }
  bool want_latest = steady::now() - st.latest_checked >= st.opts.latest_refresh;
  if (want_latest) {
    st.latest_checked = steady::now();
  }
  self->request(st.fetcher, st.opts.fetch_timeout, fetch_atom_v, from, expected, want_latest)
      .then([self](fetch_outcome& o) { on_fetched(self, o); },
            [self](caf::error& e) {
              fetch_outcome o{fetch_failure{"timeout", "horizon fetcher: " + to_string(e), 0}};
              on_fetched(self, o);
            });
}

/// Finds where to start: the stored cursor, else INGEST_START_LEDGER, else the newest ledger.
void initialise(self_ptr self) {
  auto& st = self->state;
  st.fetch_in_flight = true;  // no other read may start meanwhile
  db_task task{"ingestion.cursor", [stream = st.opts.stream](soci::session& sql) -> nlohmann::json {
                 auto c = storage::read_cursor(sql, stream);
                 if (!c) {
                   return nullptr;
                 }
                 return {{"cursor", c->first}, {"last_ledger", c->second}};
               }};
  self->request(st.opts.db, st.opts.db_timeout, query_atom_v, std::move(task))
      .then(
          [self](db_result& r) {
            auto& st = self->state;
            st.fetch_in_flight = false;
            if (st.draining) {
              finish_drain(self);
              return;
            }
            if (r.value.is_object()) {
              st.cursor = r.value.at("cursor").get<std::string>();
              st.last_ledger = r.value.value("last_ledger", int64_t{0});
              auto next = domain::next_ledger_after(st.cursor);
              st.expected_next = next.value_or(0);
              if (st.opts.progress && st.last_ledger > 0) {
                st.opts.progress->set_committed(st.last_ledger);
              }
              st.log->info("resuming after cursor {} (ledger {})", st.cursor, st.last_ledger);
            } else if (st.opts.start_ledger > 0) {
              st.cursor = domain::cursor_before_ledger(st.opts.start_ledger);
              st.expected_next = st.opts.start_ledger;
              st.log->info("no cursor yet: starting at ledger {} (INGEST_START_LEDGER)",
                           st.opts.start_ledger);
            } else {
              // latest: ask Horizon for its newest ledger first.
              st.fetch_in_flight = true;
              self->request(st.fetcher, st.opts.fetch_timeout, latest_atom_v)
                  .then(
                      [self](fetch_outcome& o) {
                        auto& st = self->state;
                        st.fetch_in_flight = false;
                        if (st.draining) {
                          finish_drain(self);
                          return;
                        }
                        if (auto* f = std::get_if<fetch_failure>(&o.value)) {
                          on_failure(self, f->kind, f->message, f->retry_after_ms);
                          return;
                        }
                        auto latest = std::get<fetched_batch>(o.value).network_latest;
                        st.cursor = domain::cursor_before_ledger(latest);
                        st.expected_next = latest;
                        st.initialised = true;
                        if (st.opts.progress) {
                          st.opts.progress->set_network_latest(latest);
                        }
                        st.log->info("no cursor yet: starting at the newest ledger, {}", latest);
                        start_fetch(self);
                      },
                      [self](caf::error& e) {
                        self->state.fetch_in_flight = false;
                        on_failure(self, "timeout", "horizon fetcher: " + to_string(e), 0);
                      });
              return;
            }
            st.initialised = true;
            set_state(self, "catching_up");
            start_fetch(self);
          },
          [self](caf::error& e) {
            self->state.fetch_in_flight = false;
            on_failure(self, "database", "cannot read the cursor: " + to_string(e), 0);
          });
}

void schedule(self_ptr self, milliseconds delay) {
  auto gen = ++self->state.timer_generation;
  self->delayed_send(self, delay, tick_atom_v, gen);
}

ingestor_actor::behavior_type ingestor_impl(self_ptr self, ingestor_options opts) {
  auto& st = self->state;
  st.opts = std::move(opts);
  st.client = std::make_shared<net::horizon_client>(st.opts.client);
  st.fetcher = spawn_horizon_fetcher(self->system(), st.client, st.opts.fetch);
  self->link_to(st.fetcher);
  st.log->info("following {} (batches of {} ledgers)", st.opts.client.base_url,
               st.opts.fetch.batch_ledgers);
  set_state(self, "starting");
  initialise(self);
  return {
      [=](drain_atom) -> caf::result<std::string> {
        auto& st = self->state;
        if (ignore_drain_for_test(st.opts.test_hang_on_drain, *st.log)) {
          return self->make_response_promise<std::string>();  // never delivered
        }
        auto promise = self->make_response_promise<std::string>();
        if (st.draining) {
          return promise;  // idempotent: the first request's reply is the report
        }
        st.draining = true;
        st.drain_promise = promise;
        ++st.timer_generation;  // a pending retry or poll timer is now stale
        st.stash.reset();
        // Before finishing because a read in flight must end now: its Horizon request is
        // aborted, and a batch that was read but not committed is simply read again later.
        st.client->cancel();
        if (!st.fetch_in_flight) {
          finish_drain(self);
        }
        return promise;
      },
      [=](status_atom) -> std::string {
        auto& st = self->state;
        auto j = counts(st);
        j["state"] = st.opts.progress ? st.opts.progress->state() : st.db_state;
        return j.dump();
      },
      [=](tick_atom, uint64_t generation) {
        auto& st = self->state;
        if (generation != st.timer_generation || st.draining || st.fetch_in_flight
            || st.commit_in_flight) {
          return;
        }
        if (!st.initialised) {
          initialise(self);
        } else {
          start_fetch(self);
        }
      },
      [=](caf::update_atom, const std::string& name, const caf::actor& handle) {
        if (name == "db") {
          self->state.opts.db = caf::actor_cast<db_actor>(handle);
        } else if (name == "broadcaster") {
          self->state.opts.broadcaster = handle;
        }
      },
  };
}

}  // namespace

ingestor_actor spawn_ingestor(caf::actor_system& sys, ingestor_options opts) {
  return sys.spawn(ingestor_impl, std::move(opts));
}

}  // namespace si::actors
