#include "actors/webhook_dispatcher.hpp"
#include "actors/test_hang.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <vector>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>
#include <soci/soci.h>
#include <spdlog/spdlog.h>

#include "config/logging.hpp"
#include "net/prometheus.hpp"
#include "storage/database.hpp"

namespace si::actors {

// -- doorbell and sender -----------------------------------------------------------------------

void webhook_doorbell::attach(const caf::actor& dispatcher) {
  std::lock_guard<std::mutex> guard{mtx_};
  target_ = dispatcher.address();
  // A wake-up addressed to a predecessor is lost with it: the next ring must send again.
  pending_ = false;
}

void webhook_doorbell::ring() {
  if (pending_.exchange(true)) {
    return;  // a wake-up is already on its way: the dispatcher will see this event too
  }
  caf::actor target;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    target = caf::actor_cast<caf::actor>(target_);
  }
  if (!target) {
    pending_ = false;  // nobody to wake (not started yet, or restarting): it polls at start
    return;
  }
  ++wakeups_;
  caf::anon_send(target, wake_atom_v);
}

void webhook_doorbell::rearm() {
  pending_ = false;
}

namespace {

/// net::webhook_client behind the webhook_sender interface.
class client_sender final : public webhook_sender {
 public:
  explicit client_sender(net::webhook_client_options options) : client_(std::move(options)) {}

  void post(net::webhook_request request, net::webhook_completion done) override {
    client_.post(std::move(request), std::move(done));
  }

  void cancel_all() override {
    client_.cancel_all();
  }

 private:
  net::webhook_client client_;
};

}  // namespace

std::shared_ptr<webhook_sender> make_webhook_client_sender(net::webhook_client_options options) {
  return std::make_shared<client_sender>(std::move(options));
}

void describe_webhook_metrics(net::metrics_registry& m) {
  m.describe_counter("si_webhook_deliveries_total",
                     "Webhook delivery attempts recorded, by outcome: delivered, retry (scheduled "
                     "again), failed (dead-lettered), disabled (410 Gone disabled the webhook).");
  m.describe_histogram("si_webhook_attempt_duration_seconds",
                       "Duration of one webhook POST, from hand-over to the client to its result.",
                       {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30});
  m.describe_gauge("si_webhook_queue_depth",
                   "Webhook deliveries pending (due, scheduled for a retry, or held).");
  m.describe_gauge("si_webhook_oldest_pending_age_seconds",
                   "Age of the oldest pending webhook delivery (0 when none is pending).");
  m.describe_gauge("si_webhook_in_flight_requests", "Webhook POSTs in flight.");
}

namespace {

using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

/// A claimed delivery this dispatcher holds until its attempt is recorded or it is released.
struct held_delivery {
  storage::claimed_delivery claim;
  std::string destination;  ///< scheme://host:port, the per-destination bound's key
  bool sent = false;        ///< handed to the sender (in flight, or its result is recorded)
};

/// Most attempt reports written in one transaction.
constexpr std::size_t record_batch = 512;
/// Most webhooks named in one claim's skip list.
constexpr std::size_t max_skipped_webhooks = 200;

struct dispatcher_state {
  static inline const char* name = "webhook_dispatcher";
  webhook_dispatcher_options opts;
  std::shared_ptr<spdlog::logger> log = config::logger("webhook_dispatcher");

  std::map<long long, held_delivery> held;               ///< by delivery id
  std::map<std::string, std::deque<long long>> waiting;  ///< not sent yet, by destination
  std::map<std::string, std::size_t> dest_in_flight;
  std::map<std::string, std::size_t> held_by_webhook;
  std::size_t in_flight = 0;
  std::vector<storage::attempt_report> to_record;
  std::vector<long long> to_release;

  bool claim_in_flight = false;
  bool claim_wanted = false;  ///< woken or polled while a claim ran / without room
  bool more_due = false;      ///< the last claim was full: more may be due right now
  /// The last claim skipped webhooks holding their share: claim again as attempts finish.
  bool saturated = false;
  bool record_in_flight = false;
  int releases_in_flight = 0;
  bool flush_scheduled = false;
  bool claims_failing = false;
  uint64_t timer_generation = 0;
  uint64_t gauge_generation = 0;

  bool draining = false;
  bool finishing = false;
  steady::time_point drain_started{};
  std::optional<caf::typed_response_promise<std::string>> drain_promise;

  uint64_t claims = 0, attempts = 0, delivered = 0, retried = 0, failed = 0, disabled = 0;
  uint64_t stale = 0, lease_lapsed = 0, record_errors = 0, unrecorded = 0, cut = 0;
  long long pending_left = 0;
  std::optional<long long> queue_depth;
};

using self_ptr = webhook_dispatcher_actor::stateful_pointer<dispatcher_state>;

int64_t now_ms(const webhook_dispatcher_options& o) {
  return o.now_ms ? o.now_ms() : storage::unix_ms_now();
}

std::size_t max_held(const dispatcher_state& st) {
  return std::max<std::size_t>(1, st.opts.concurrency * 2);
}

std::size_t max_held_per_webhook(const dispatcher_state& st) {
  return std::max<std::size_t>(1, st.opts.per_destination * 4);
}

std::string destination_of(const std::string& url) {
  auto parsed = net::parse_webhook_url(url);
  if (auto* u = std::get_if<net::webhook_url>(&parsed)) {
    return u->destination();
  }
  return url;  // the client refuses it (invalid_request); it still gets a queue of its own
}

nlohmann::json counts(const dispatcher_state& st) {
  return {{"claimed", st.claims},
          {"attempts", st.attempts},
          {"delivered", st.delivered},
          {"retried", st.retried},
          {"failed", st.failed},
          {"disabled", st.disabled},
          {"stale", st.stale},
          {"lease_lapsed", st.lease_lapsed},
          {"cut", st.cut},
          {"record_errors", st.record_errors},
          {"unrecorded", st.unrecorded},
          {"pending_left", st.pending_left},
          {"queue_depth", st.queue_depth ? nlohmann::json(*st.queue_depth) : nullptr}};
}

void claim(self_ptr self);
void flush(self_ptr self);
void maybe_finish(self_ptr self);
std::chrono::milliseconds request_timeout(const dispatcher_state& st);

/// Drops a delivery that is not waiting from what this dispatcher holds.
void forget(dispatcher_state& st, long long id) {
  auto it = st.held.find(id);
  if (it == st.held.end()) {
    return;
  }
  auto w = st.held_by_webhook.find(it->second.claim.webhook_id);
  if (w != st.held_by_webhook.end() && --w->second == 0) {
    st.held_by_webhook.erase(w);
  }
  st.held.erase(it);
}

void count_outcome(dispatcher_state& st, const char* outcome) {
  if (st.opts.metrics) {
    st.opts.metrics->counter_add("si_webhook_deliveries_total", {{"outcome", outcome}});
  }
}

void set_in_flight_gauge(dispatcher_state& st) {
  if (st.opts.metrics) {
    st.opts.metrics->gauge_set("si_webhook_in_flight_requests", {},
                               static_cast<double>(st.in_flight));
  }
}

/// An attempt that failed before anything was sent (its secret does not open, ...).
void record_local_failure(self_ptr self, held_delivery& h, int64_t now, std::string error) {
  auto& st = self->state;
  h.sent = true;
  ++st.attempts;
  storage::attempt_report r;
  r.delivery_id = h.claim.delivery_id;
  r.claimed_until = h.claim.claimed_until;
  r.attempted_at = now;
  r.error = std::move(error);
  st.to_record.push_back(std::move(r));
}

/// Signs and POSTs one held delivery.
void send(self_ptr self, long long id) {
  auto& st = self->state;
  auto& h = st.held.at(id);
  auto now = now_ms(st.opts);
  if (h.claim.claimed_until - now <= st.opts.timeout.count()) {
    // Not sent: the lease would end before the request could, and another dispatcher may
    // then send it too. The delivery is claimable again once the lease ends.
    ++st.lease_lapsed;
    st.log->warn(
        "delivery {} of event {}: lease ends in {} ms, before a request could; left "
        "for the next claim",
        id, h.claim.event_id, h.claim.claimed_until - now);
    forget(st, id);
    return;
  }
  if (h.claim.secret_error) {
    record_local_failure(self, h, now, "not sent: " + *h.claim.secret_error);
    return;
  }
  auto ts = now / 1000;
  std::string signature;
  try {
    signature = domain::sign_webhook(h.claim.secret, h.claim.event_id, ts, h.claim.body);
  } catch (const domain::webhook_crypto_error& e) {
    record_local_failure(self, h, now, std::string{"not sent: "} + e.what());
    return;
  }
  net::webhook_request req;
  req.url = h.claim.url;
  req.headers = {{"webhook-id", h.claim.event_id},
                 {"webhook-timestamp", std::to_string(ts)},
                 {"webhook-signature", std::move(signature)}};
  req.body = h.claim.body;
  req.timeout = st.opts.timeout;
  h.sent = true;
  ++st.in_flight;
  ++st.dest_in_flight[h.destination];
  ++st.attempts;
  set_in_flight_gauge(st);
  auto me = caf::actor_cast<caf::actor>(self);
  st.opts.sender->post(std::move(req), [me, id, now](net::webhook_result result) {
    // On a client io thread: back to the actor, which owns every bit of state.
    caf::anon_send(me, sent_atom_v, webhook_sent{id, now, std::move(result)});
  });
}

/// Sends waiting deliveries while the overall and per-destination bounds allow, one per
/// destination per round so that destinations take turns.
void pump(self_ptr self) {
  auto& st = self->state;
  if (st.draining) {
    return;
  }
  bool progress = true;
  while (progress && st.in_flight < st.opts.concurrency) {
    progress = false;
    for (auto it = st.waiting.begin();
         it != st.waiting.end() && st.in_flight < st.opts.concurrency;) {
      auto& queue = it->second;
      if (!queue.empty() && st.dest_in_flight[it->first] < st.opts.per_destination) {
        auto id = queue.front();
        queue.pop_front();
        send(self, id);
        progress = true;
      }
      if (queue.empty()) {
        if (st.dest_in_flight[it->first] == 0) {
          st.dest_in_flight.erase(it->first);
        }
        it = st.waiting.erase(it);
      } else {
        ++it;
      }
    }
  }
  flush(self);  // attempts that failed before sending
}

/// Hands claims back at once (webhook disabled, drain): pending again, due as scheduled.
void release_now(self_ptr self, std::vector<long long> ids) {
  auto& st = self->state;
  if (ids.empty()) {
    return;
  }
  auto clock = st.opts.now_ms;
  db_task task{"webhooks.release", [ids, clock](soci::session& sql) -> nlohmann::json {
                 return storage::release_claims(sql, ids, clock ? clock() : storage::unix_ms_now());
               }};
  ++st.releases_in_flight;
  self->request(st.opts.db, request_timeout(st), query_atom_v, std::move(task))
      .then(
          [self](db_result& r) {
            auto& st = self->state;
            --st.releases_in_flight;
            if (st.draining) {
              st.pending_left += r.value.is_number() ? r.value.get<long long>() : 0;
            }
            maybe_finish(self);
          },
          [self, n = ids.size()](caf::error& e) {
            // Their leases end on their own: claimable again then.
            auto& st = self->state;
            --st.releases_in_flight;
            if (st.draining) {
              st.pending_left += static_cast<long long>(n);
            }
            st.log->warn(
                "could not release {} claims ({}); claimable again when their leases "
                "end",
                n, to_string(e));
            maybe_finish(self);
          });
}

/// Drops the deliveries of a disabled webhook that wait here (they are held until it is
/// enabled again, and must not be sent meanwhile).
void drop_waiting_of(self_ptr self, const std::string& webhook_id) {
  auto& st = self->state;
  std::vector<long long> dropped;
  for (auto& [dest, queue] : st.waiting) {
    for (auto it = queue.begin(); it != queue.end();) {
      auto h = st.held.find(*it);
      if (h != st.held.end() && h->second.claim.webhook_id == webhook_id) {
        dropped.push_back(*it);
        forget(st, *it);
        it = queue.erase(it);
      } else {
        ++it;
      }
    }
  }
  release_now(self, std::move(dropped));
}

void on_recorded(self_ptr self, const storage::attempt_report& report,
                 const std::optional<storage::attempt_outcome>& outcome) {
  auto& st = self->state;
  auto h = st.held.find(report.delivery_id);
  std::string event_id = h != st.held.end() ? h->second.claim.event_id : std::string{};
  std::string webhook_id = h != st.held.end() ? h->second.claim.webhook_id : std::string{};
  forget(st, report.delivery_id);
  if (!outcome) {
    return;  // the webhook was deleted meanwhile: nothing left to schedule
  }
  switch (outcome->status) {
    case storage::delivery_status::delivered:
      ++st.delivered;
      count_outcome(st, "delivered");
      return;
    case storage::delivery_status::failed:
      if (outcome->webhook_disabled || (report.status_code && *report.status_code == 410)) {
        ++st.disabled;
        count_outcome(st, "disabled");
        st.log->warn("webhook {} answered 410 Gone for event {}: webhook disabled", webhook_id,
                     event_id);
        drop_waiting_of(self, webhook_id);
      } else {
        ++st.failed;
        count_outcome(st, "failed");
        st.log->warn("delivery {} of event {} to webhook {} dead-lettered after {} attempts ({})",
                     report.delivery_id, event_id, webhook_id, outcome->attempt,
                     report.error ? *report.error
                                  : "HTTP " + std::to_string(report.status_code.value_or(0)));
      }
      return;
    case storage::delivery_status::pending:
      if (outcome->held_claim) {
        ++st.retried;
      } else {
        ++st.stale;  // our lease had lapsed: the schedule is the current holder's
      }
      count_outcome(st, "retry");
      return;
  }
}

std::chrono::milliseconds request_timeout(const dispatcher_state& st) {
  if (!st.draining) {
    return st.opts.db_timeout;
  }
  // During the drain every request is bounded by what is left of its budget.
  auto used = std::chrono::duration_cast<milliseconds>(steady::now() - st.drain_started);
  auto left = st.opts.drain_timeout + st.opts.drain_db_timeout - used;
  return std::clamp(left, milliseconds{100}, st.opts.db_timeout);
}

/// Writes the finished attempts, one batch (one transaction) at a time.
void flush(self_ptr self) {
  auto& st = self->state;
  if (st.record_in_flight || st.to_record.empty()) {
    return;
  }
  auto n = std::min(st.to_record.size(), record_batch);
  auto batch = std::make_shared<std::vector<storage::attempt_report>>(
      std::make_move_iterator(st.to_record.begin()),
      std::make_move_iterator(st.to_record.begin() + static_cast<std::ptrdiff_t>(n)));
  st.to_record.erase(st.to_record.begin(), st.to_record.begin() + static_cast<std::ptrdiff_t>(n));
  auto outcomes = std::make_shared<std::vector<std::optional<storage::attempt_outcome>>>();
  st.record_in_flight = true;
  auto policy = st.opts.policy;
  auto random = st.opts.random ? st.opts.random : domain::system_unit_random();
  db_task task{"webhooks.record",
               [batch, outcomes, policy, random](soci::session& sql) -> nlohmann::json {
                 *outcomes = storage::record_attempts(sql, *batch, policy, random);
                 return outcomes->size();
               }};
  self->request(st.opts.db, request_timeout(st), query_atom_v, std::move(task))
      .then(
          [self, batch, outcomes](db_result&) {
            auto& st = self->state;
            st.record_in_flight = false;
            for (std::size_t i = 0; i < batch->size() && i < outcomes->size(); ++i) {
              on_recorded(self, (*batch)[i], (*outcomes)[i]);
            }
            flush(self);
            pump(self);
            if (st.more_due || st.claim_wanted || st.saturated) {
              claim(self);
            }
            maybe_finish(self);
          },
          [self, batch](caf::error& e) {
            auto& st = self->state;
            st.record_in_flight = false;
            ++st.record_errors;
            st.log->warn("could not record {} webhook attempts: {}", batch->size(), to_string(e));
            if (st.draining) {
              // Their claims end with their leases: delivered ones may be sent again (at
              // least once), none is lost.
              st.unrecorded += batch->size();
              for (const auto& r : *batch) {
                forget(st, r.delivery_id);
              }
              maybe_finish(self);
              return;
            }
            // The whole batch rolled back: try it again, first, after a pause.
            st.to_record.insert(st.to_record.begin(), std::make_move_iterator(batch->begin()),
                                std::make_move_iterator(batch->end()));
            if (!st.flush_scheduled) {
              st.flush_scheduled = true;
              self->delayed_send(self, st.opts.poll_interval, flush_atom_v);
            }
          });
}

void on_claimed(self_ptr self, std::vector<storage::claimed_delivery> claimed, std::size_t limit) {
  auto& st = self->state;
  st.claim_in_flight = false;
  if (st.claims_failing) {
    st.claims_failing = false;
    st.log->info("claiming due deliveries works again");
  }
  st.more_due = claimed.size() >= limit;
  for (auto& c : claimed) {
    auto id = c.delivery_id;
    if (st.draining) {
      st.to_release.push_back(id);  // claimed just as the drain began: not sent
      continue;
    }
    ++st.claims;
    if (auto it = st.held.find(id); it != st.held.end()) {
      // Held already (its lease had lapsed while it waited or was in flight): the new lease
      // is ours, and its token is the one to report.
      it->second.claim.claimed_until = c.claimed_until;
      continue;
    }
    auto dest = destination_of(c.url);
    ++st.held_by_webhook[c.webhook_id];
    st.held.emplace(id, held_delivery{std::move(c), dest, false});
    st.waiting[dest].push_back(id);
  }
  if (st.draining) {
    maybe_finish(self);
    return;
  }
  pump(self);
  if (st.more_due || st.claim_wanted) {
    claim(self);
  }
}

/// Claims due deliveries when there is room (bounded: at most twice WEBHOOK_CONCURRENCY held).
void claim(self_ptr self) {
  auto& st = self->state;
  if (st.draining || st.claim_in_flight) {
    return;
  }
  auto room = max_held(st) > st.held.size() ? max_held(st) - st.held.size() : 0;
  if (room == 0) {
    st.claim_wanted = true;  // claimed again once attempts are recorded
    return;
  }
  st.claim_wanted = false;
  st.claim_in_flight = true;
  std::vector<std::string> skip;
  for (const auto& [webhook, n] : st.held_by_webhook) {
    if (n >= max_held_per_webhook(st) && skip.size() < max_skipped_webhooks) {
      skip.push_back(webhook);
    }
  }
  // Not "more due" by itself (that would claim in a loop): claimed again as attempts finish.
  st.saturated = !skip.empty();
  auto limit = std::min<std::size_t>(room, storage::max_claim_batch);
  auto out = std::make_shared<std::vector<storage::claimed_delivery>>();
  auto clock = st.opts.now_ms;
  auto lease = st.opts.lease.count();
  auto cipher = st.opts.cipher;
  db_task task{"webhooks.claim",
               [out, clock, limit, lease, cipher, skip](soci::session& sql) -> nlohmann::json {
                 auto now = clock ? clock() : storage::unix_ms_now();
                 *out = storage::claim_due(sql, now, static_cast<int>(limit), lease, cipher.get(),
                                           skip);
                 return out->size();
               }};
  self->request(st.opts.db, st.opts.db_timeout, query_atom_v, std::move(task))
      .then([self, out, limit](db_result&) { on_claimed(self, std::move(*out), limit); },
            [self](caf::error& e) {
              auto& st = self->state;
              st.claim_in_flight = false;
              st.more_due = false;  // the next poll tries again
              if (!st.claims_failing) {
                st.claims_failing = true;
                st.log->warn("cannot claim due deliveries: {}; retrying every {} ms", to_string(e),
                             st.opts.poll_interval.count());
              }
              maybe_finish(self);
            });
}

void schedule_tick(self_ptr self) {
  auto gen = ++self->state.timer_generation;
  self->delayed_send(self, self->state.opts.poll_interval, tick_atom_v, gen);
}

void schedule_gauges(self_ptr self, milliseconds delay) {
  auto gen = ++self->state.gauge_generation;
  self->delayed_send(self, delay, gauge_atom_v, gen);
}

void refresh_gauges(self_ptr self) {
  auto& st = self->state;
  auto clock = st.opts.now_ms;
  db_task task{"webhooks.queue_stats", [clock](soci::session& sql) -> nlohmann::json {
                 return storage::to_json(
                     storage::pending_stats(sql, clock ? clock() : storage::unix_ms_now()));
               }};
  self->request(st.opts.db, st.opts.db_timeout, query_atom_v, std::move(task))
      .then(
          [self](db_result& r) {
            auto& st = self->state;
            st.queue_depth = r.value.value("queue_depth", 0LL);
            if (auto& m = st.opts.metrics) {
              auto age = r.value.value("oldest_pending_age_ms", nlohmann::json(nullptr));
              m->gauge_set("si_webhook_queue_depth", {}, static_cast<double>(*st.queue_depth));
              m->gauge_set("si_webhook_oldest_pending_age_seconds", {},
                           age.is_number() ? age.get<double>() / 1000.0 : 0.0);
            }
            if (!st.draining) {
              schedule_gauges(self, st.opts.stats_interval);
            }
          },
          [self](caf::error&) {
            if (!self->state.draining) {
              schedule_gauges(self, self->state.opts.stats_interval);
            }
          });
}

/// Ends the drain once nothing is in flight: records what finished, releases every claim
/// still held, replies the report and quits.
void maybe_finish(self_ptr self) {
  auto& st = self->state;
  if (!st.draining || st.finishing || !st.drain_promise) {
    return;
  }
  if (st.in_flight > 0 || st.claim_in_flight || st.record_in_flight || st.releases_in_flight > 0) {
    return;  // their results come back here
  }
  if (!st.to_record.empty()) {
    flush(self);  // before releasing because a recorded attempt must not be handed back
    return;
  }
  st.finishing = true;
  for (const auto& [id, h] : st.held) {
    st.to_release.push_back(id);
  }
  st.held.clear();
  st.held_by_webhook.clear();
  st.waiting.clear();
  auto ids = std::move(st.to_release);
  st.to_release.clear();
  auto clock = st.opts.now_ms;
  db_task task{"webhooks.release", [ids, clock](soci::session& sql) -> nlohmann::json {
                 auto now = clock ? clock() : storage::unix_ms_now();
                 auto released = storage::release_claims(sql, ids, now);
                 return {{"released", released},
                         {"queue_depth", storage::pending_stats(sql, now).queue_depth}};
               }};
  auto reply = [self](std::optional<nlohmann::json> result) {
    auto& st = self->state;
    if (result) {
      st.pending_left += result->value("released", 0LL);
      st.queue_depth = result->value("queue_depth", 0LL);
    }
    auto report = counts(st);
    st.log->info("webhook dispatcher stopped in {} ms: {}",
                 std::chrono::duration_cast<milliseconds>(steady::now() - st.drain_started).count(),
                 report.dump());
    st.drain_promise->deliver(report.dump());
    st.drain_promise.reset();
    self->quit();
  };
  self->request(st.opts.db, request_timeout(st), query_atom_v, std::move(task))
      .then([reply](db_result& r) { reply(r.value); },
            [self, reply, n = ids.size()](caf::error& e) {
              self->state.log->warn(
                  "could not release {} claims at shutdown ({}); they are "
                  "claimable again when their leases end",
                  n, to_string(e));
              self->state.pending_left += static_cast<long long>(n);
              reply(std::nullopt);
            });
}

webhook_dispatcher_actor::behavior_type dispatcher_impl(self_ptr self,
                                                        webhook_dispatcher_options opts) {
  auto& st = self->state;
  st.opts = std::move(opts);
  st.opts.concurrency = std::max<std::size_t>(1, st.opts.concurrency);
  st.opts.per_destination = std::max<std::size_t>(1, st.opts.per_destination);
  if (st.opts.doorbell) {
    st.opts.doorbell->attach(caf::actor_cast<caf::actor>(self));
  }
  st.log->info(
      "delivering webhooks: {} requests at once ({} per destination), {} ms timeout, "
      "{} attempts at most, polling every {} ms",
      st.opts.concurrency, st.opts.per_destination, st.opts.timeout.count(),
      st.opts.policy.max_attempts, st.opts.poll_interval.count());
  // What a previous run left pending goes first: claim at once.
  claim(self);
  schedule_tick(self);
  refresh_gauges(self);
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
        st.drain_started = steady::now();
        ++st.timer_generation;  // no more polls
        ++st.gauge_generation;
        // Unsent claims go back at once: before waiting for the requests in flight because
        // another dispatcher can send them meanwhile.
        std::vector<long long> unsent;
        for (auto& [dest, queue] : st.waiting) {
          for (auto id : queue) {
            unsent.push_back(id);
            forget(st, id);
          }
        }
        st.waiting.clear();
        st.log->info("drain: {} requests in flight, {} unsent claims handed back", st.in_flight,
                     unsent.size());
        release_now(self, std::move(unsent));
        if (st.in_flight > 0) {
          self->delayed_send(self, st.opts.drain_timeout, cut_atom_v);
        }
        maybe_finish(self);
        return promise;
      },
      [=](status_atom) -> std::string {
        auto& st = self->state;
        auto j = counts(st);
        j["held"] = st.held.size();
        j["in_flight"] = st.in_flight;
        j["draining"] = st.draining;
        return j.dump();
      },
      [=](wake_atom) {
        auto& st = self->state;
        if (st.opts.doorbell) {
          st.opts.doorbell->rearm();
        }
        st.claim_wanted = true;
        claim(self);
      },
      [=](tick_atom, uint64_t generation) {
        auto& st = self->state;
        if (generation != st.timer_generation || st.draining) {
          return;
        }
        st.claim_wanted = true;
        claim(self);
        schedule_tick(self);
      },
      [=](gauge_atom, uint64_t generation) {
        if (generation == self->state.gauge_generation && !self->state.draining) {
          refresh_gauges(self);
        }
      },
      [=](flush_atom) {
        self->state.flush_scheduled = false;
        flush(self);
      },
      [=](sent_atom, webhook_sent& s) {
        auto& st = self->state;
        auto it = st.held.find(s.delivery_id);
        if (it == st.held.end()) {
          // Not held any more (cannot happen while it is in flight): only the count.
          st.in_flight -= st.in_flight > 0 ? 1 : 0;
          maybe_finish(self);
          return;
        }
        --st.in_flight;
        auto d = st.dest_in_flight.find(it->second.destination);
        if (d != st.dest_in_flight.end() && --d->second == 0
            && st.waiting.count(it->second.destination) == 0) {
          st.dest_in_flight.erase(d);
        }
        set_in_flight_gauge(st);
        if (st.opts.metrics) {
          st.opts.metrics->histogram_observe("si_webhook_attempt_duration_seconds", {},
                                             static_cast<double>(s.result.duration_ms) / 1000.0);
        }
        if (s.result.error == net::webhook_error_kind::none && s.result.status == 410) {
          // Before sending more because the webhook is being disabled (by the record of
          // this attempt): its waiting deliveries must not go out meanwhile.
          drop_waiting_of(self, it->second.claim.webhook_id);
        }
        if (st.draining && s.result.error == net::webhook_error_kind::cancelled) {
          // Cut at the drain deadline: handed back, not counted as an attempt.
          ++st.cut;
          --st.attempts;
          st.to_release.push_back(s.delivery_id);
          forget(st, s.delivery_id);
          maybe_finish(self);
          return;
        }
        storage::attempt_report r;
        r.delivery_id = s.delivery_id;
        r.claimed_until = it->second.claim.claimed_until;  // the newest lease we hold
        r.attempted_at = s.attempted_at;
        r.duration_ms = s.result.duration_ms;
        if (s.result.error == net::webhook_error_kind::none) {
          r.status_code = s.result.status;
        } else {
          r.error = std::string{net::to_string(s.result.error)} + ": " + s.result.message;
        }
        st.to_record.push_back(std::move(r));
        flush(self);
        pump(self);
        maybe_finish(self);
      },
      [=](cut_atom) {
        auto& st = self->state;
        if (st.finishing || st.in_flight == 0) {
          return;
        }
        st.log->warn(
            "drain: {} requests still in flight after {} ms: cancelling them (their "
            "deliveries stay pending)",
            st.in_flight, st.opts.drain_timeout.count());
        st.opts.sender->cancel_all();
      },
      [=](caf::update_atom, const std::string& name, const caf::actor& handle) {
        if (name == "db") {
          self->state.opts.db = caf::actor_cast<db_actor>(handle);
        }
      },
  };
}

}  // namespace

webhook_dispatcher_actor spawn_webhook_dispatcher(caf::actor_system& sys,
                                                  webhook_dispatcher_options opts) {
  return sys.spawn(dispatcher_impl, std::move(opts));
}

}  // namespace si::actors
