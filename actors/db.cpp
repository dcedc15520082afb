#include "actors/db.hpp"
#include "actors/test_hang.hpp"

#include "config/logging.hpp"

#include <caf/actor_system.hpp>
#include <caf/exit_reason.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include <soci/soci.h>

#include <deque>
#include <memory>
#include <optional>

namespace si::actors {

namespace {

using worker_actor = caf::typed_actor<caf::replies_to<query_atom, db_task>::with<db_result>>;

struct worker_state {
  static inline const char* name = "db_worker";
  storage::database_url url;
  std::unique_ptr<soci::session> session;
};

/// A detached worker: opens its session on first use, reopens it after a broken connection.
worker_actor::behavior_type worker_impl(worker_actor::stateful_pointer<worker_state> self,
                                        storage::database_url url) {
  self->state.url = std::move(url);
  // The session closes with the state (its unique_ptr): no attach_functor, because CAF
  // destroys the state before it runs attachables.
  return {
      [=](query_atom, const db_task& task) -> caf::result<db_result> {
        auto& st = self->state;
        try {
          if (st.session && !storage::session_alive(*st.session)) {
            // Reopened before the task, not after it failed: the server closed this idle
            // session (a PostgreSQL restart), and the task would fail on it although the
            // database is back (and a health ping would answer false for good).
            config::logger("db")->warn("db worker: the server closed the session; reopening");
            st.session.reset();
          }
          if (!st.session) {
            st.session = storage::open_session(st.url);
          }
          return db_result{task.fn(*st.session)};
        } catch (const std::exception& e) {
          // A broken connection must not poison the next query: reopen when ping fails.
          if (st.session && !storage::ping(*st.session)) {
            st.session.reset();
          }
          return make_error(errc::query_failed, task.label + ": " + e.what());
        }
      },
  };
}

struct pending_query {
  db_task task;
  caf::typed_response_promise<db_result> promise;
};

struct worker_slot {
  worker_actor handle;
  bool busy = false;
};

struct db_state {
  static inline const char* name = "db";
  db_options opts;
  std::vector<worker_slot> workers;
  std::deque<pending_query> queue;
  size_t in_flight = 0;
  bool closing = false;
  std::optional<caf::typed_response_promise<std::string>> drain_promise;
  uint64_t queries = 0;
  uint64_t failed = 0;
  uint64_t refused = 0;
  uint64_t replaced_workers = 0;
  std::shared_ptr<spdlog::logger> log = config::logger("db");
};

using self_ptr = db_actor::stateful_pointer<db_state>;

worker_actor spawn_worker(self_ptr self) {
  return self->system().spawn<caf::detached>(worker_impl, self->state.opts.url);
}

std::string counts_json(const db_state& st) {
  return nlohmann::json{{"queries", st.queries},
                        {"failed", st.failed},
                        {"refused", st.refused},
                        {"queued", st.queue.size()},
                        {"in_flight", st.in_flight},
                        {"pool_size", st.workers.size()},
                        {"replaced_workers", st.replaced_workers}}
      .dump();
}

void close_pool(self_ptr self) {
  for (auto& w : self->state.workers) {
    self->send_exit(w.handle, caf::exit_reason::user_shutdown);
  }
}

void maybe_finish_drain(self_ptr self) {
  auto& st = self->state;
  if (!st.drain_promise || st.in_flight > 0 || !st.queue.empty()) {
    return;
  }
  // Close the sessions only now: before this, accepted queries still needed them.
  close_pool(self);
  st.log->info("db closed: {}", counts_json(st));
  st.drain_promise->deliver(counts_json(st));
  st.drain_promise.reset();
  self->quit();
}

void dispatch(self_ptr self) {
  auto& st = self->state;
  for (size_t i = 0; i < st.workers.size() && !st.queue.empty(); ++i) {
    if (st.workers[i].busy) {
      continue;
    }
    auto job = std::move(st.queue.front());
    st.queue.pop_front();
    st.workers[i].busy = true;
    ++st.in_flight;
    auto worker = st.workers[i].handle;
    auto rp = job.promise;
    auto label = job.task.label;
    self->request(worker, st.opts.query_timeout, query_atom_v, std::move(job.task))
        .then(
            [=](db_result& result) mutable {
              auto& st = self->state;
              ++st.queries;
              --st.in_flight;
              st.workers[i].busy = false;
              rp.deliver(std::move(result));
              dispatch(self);
              maybe_finish_drain(self);
            },
            [=](caf::error& err) mutable {
              auto& st = self->state;
              ++st.failed;
              --st.in_flight;
              if (err == caf::sec::request_timeout) {
                // The worker is stuck in a statement: retire it, keep the pool at full size.
                st.log->error("query '{}' exceeded {} ms; replacing its worker", label,
                              st.opts.query_timeout.count());
                self->send_exit(st.workers[i].handle, caf::exit_reason::kill);
                st.workers[i].handle = spawn_worker(self);
                ++st.replaced_workers;
              } else {
                st.log->warn("query failed: {}", to_string(err));
              }
              st.workers[i].busy = false;
              rp.deliver(std::move(err));
              dispatch(self);
              maybe_finish_drain(self);
            });
  }
}

db_actor::behavior_type db_impl(self_ptr self, db_options opts) {
  auto& st = self->state;
  st.opts = std::move(opts);
  for (unsigned i = 0; i < st.opts.pool_size; ++i) {
    st.workers.push_back({spawn_worker(self), false});
  }
  st.log->info("db pool of {} workers on {}", st.opts.pool_size, st.opts.url.redacted);
  return {
      [=](query_atom, db_task& task) -> caf::result<db_result> {
        auto& st = self->state;
        if (st.closing) {
          ++st.refused;
          return make_error(errc::closing, "database is closing; query refused");
        }
        if (st.queue.size() >= st.opts.queue_limit) {
          ++st.refused;
          return make_error(errc::overloaded, "database queue is full");
        }
        auto rp = self->make_response_promise<db_result>();
        st.queue.push_back({std::move(task), rp});
        dispatch(self);
        return rp;
      },
      [=](health_atom) -> caf::result<bool> {
        if (self->state.closing) {
          return false;
        }
        auto rp = self->make_response_promise<bool>();
        db_task ping{"health",
                     [](soci::session& sql) { return nlohmann::json(storage::ping(sql)); }};
        self->request(caf::actor_cast<db_actor>(self), self->state.opts.query_timeout, query_atom_v,
                      std::move(ping))
            .then([=](db_result& ok) mutable { rp.deliver(ok.value.get<bool>()); },
                  [=](caf::error&) mutable { rp.deliver(false); });
        return rp;
      },
      [=](stats_atom) { return counts_json(self->state); },
      [=](drain_atom) -> caf::result<std::string> {
        auto& st = self->state;
        st.log->info("db drain: refusing new queries; {} in flight, {} queued", st.in_flight,
                     st.queue.size());
        st.closing = true;
        if (ignore_drain_for_test(st.opts.test_hang_on_drain, *st.log)) {
          return self->make_response_promise<std::string>();  // never delivered
        }
        st.drain_promise = self->make_response_promise<std::string>();
        auto rp = *st.drain_promise;
        maybe_finish_drain(self);
        return rp;
      },
  };
}

}  // namespace

db_actor spawn_db(caf::actor_system& sys, db_options opts) {
  return sys.spawn(db_impl, std::move(opts));
}

}  // namespace si::actors
