// Actor-level tests of webhook_dispatcher on CAF's test_coordinator: a db actor that runs
// each task inline on a real (temp file) SQLite session, a fake sender whose requests the
// test completes, a fake unix clock. Deterministic: no sleeps, no threads.

#include "actors/webhook_dispatcher.hpp"
#include "fixture.hpp"
#include "net/prometheus.hpp"
#include "storage/database.hpp"
#include "storage/webhooks_repo.hpp"

#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <catch2/catch.hpp>

#include <soci/soci.h>

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <set>

using namespace si;
using namespace si::actors;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr int64_t t0 = 1'700'000'000'000;

/// Records every POST; the test completes them (or cancel_all does).
struct fake_sender final : webhook_sender {
  struct call {
    net::webhook_request request;
    net::webhook_completion done;
    bool finished = false;
  };
  std::vector<call> calls;
  int cancels = 0;

  void post(net::webhook_request request, net::webhook_completion done) override {
    calls.push_back({std::move(request), std::move(done), false});
  }
  void cancel_all() override {
    ++cancels;
    for (auto& c : calls) {
      if (!c.finished) {
        net::webhook_result r;
        r.error = net::webhook_error_kind::cancelled;
        r.message = "cancelled";
        c.finished = true;
        c.done(r);
      }
    }
  }
  /// Answers request `i` with `status` (0: a connect error instead).
  void complete(std::size_t i, int status) {
    REQUIRE(i < calls.size());
    REQUIRE_FALSE(calls[i].finished);
    net::webhook_result r;
    if (status == 0) {
      r.error = net::webhook_error_kind::connect;
      r.message = "connection refused";
    } else {
      r.status = status;
    }
    r.duration_ms = 3;
    calls[i].finished = true;
    calls[i].done(r);
  }
  std::size_t open() const {
    std::size_t n = 0;
    for (const auto& c : calls) {
      n += c.finished ? 0 : 1;
    }
    return n;
  }
  std::string header(std::size_t i, const std::string& name) const {
    auto v = net::find_header(calls.at(i).request.headers, name);
    return v ? std::string{*v} : std::string{};
  }
};

struct dispatcher_fixture : si::test::coordinator_fixture {
  std::filesystem::path dir;
  std::shared_ptr<soci::session> sql;
  std::shared_ptr<std::atomic<int64_t>> clock = std::make_shared<std::atomic<int64_t>>(t0);
  std::shared_ptr<bool> db_down = std::make_shared<bool>(false);
  std::shared_ptr<fake_sender> sender = std::make_shared<fake_sender>();
  std::shared_ptr<net::metrics_registry> metrics = std::make_shared<net::metrics_registry>();
  std::shared_ptr<webhook_doorbell> doorbell = std::make_shared<webhook_doorbell>();
  db_actor db;
  webhook_dispatcher_actor disp;

  dispatcher_fixture() {
    static int n = 0;
    dir = std::filesystem::temp_directory_path()
          / ("si-dispatcher-" + std::to_string(::getpid()) + "-" + std::to_string(++n));
    std::filesystem::remove_all(dir);
    auto url = std::get<storage::database_url>(
        storage::parse_database_url("sqlite://" + (dir / "t.db").string()));
    sql = storage::open_session(url);
    storage::migrate(*sql, url.kind);
    describe_webhook_metrics(*metrics);
    auto session = sql;
    auto down = db_down;
    // The unused int: CAF 0.17 dereferences a null argument tuple for a function-based actor
    // spawned without arguments (UBSan reports it).
    db = sys.spawn(
        [session, down](db_actor::pointer, int) -> db_actor::behavior_type {
          return {
              [=](query_atom, db_task& task) -> caf::result<db_result> {
                if (*down) {
                  return make_error(errc::query_failed, task.label + ": database down");
                }
                try {
                  return db_result{task.fn(*session)};
                } catch (const std::exception& e) {
                  return make_error(errc::query_failed, task.label + ": " + e.what());
                }
              },
              [](health_atom) { return true; },
              [](stats_atom) { return std::string{"{}"}; },
              [](drain_atom) { return std::string{"{}"}; },
          };
        },
        0);
  }

  ~dispatcher_fixture() {
    caf::anon_send_exit(disp, caf::exit_reason::kill);
    caf::anon_send_exit(db, caf::exit_reason::kill);
    run_jobs();
    sql.reset();
    std::filesystem::remove_all(dir);
  }

  webhook_dispatcher_options options() {
    webhook_dispatcher_options o;
    o.db = db;
    o.sender = sender;
    o.policy.max_attempts = 3;
    o.policy.max_age_ms = 86'400'000;
    o.policy.backoff = {1'000, 8'000, domain::backoff_jitter::none};
    o.timeout = 1s;
    o.lease = 60s;
    o.poll_interval = 500ms;
    o.concurrency = 8;
    o.per_destination = 2;
    o.drain_timeout = 2s;
    o.drain_db_timeout = 1s;
    o.stats_interval = 1h;
    o.doorbell = doorbell;
    o.metrics = metrics;
    o.now_ms = [c = clock] { return c->load(); };
    o.random = [] { return 0.5; };
    return o;
  }

  void start(webhook_dispatcher_options o) {
    disp = spawn_webhook_dispatcher(sys, std::move(o));
    run_jobs();
  }
  void start() {
    start(options());
  }

  json hook(const std::string& url, json types = {"payment.created"}, json filters = json{},
            const domain::secret_cipher* cipher = nullptr) {
    auto r = storage::create_webhook(*sql, {url, std::move(types), std::move(filters)}, cipher,
                                     clock->load());
    REQUIRE(std::holds_alternative<json>(r));
    return std::get<json>(r);
  }

  std::string event(const std::string& type = "payment.created", json data = {{"n", 1}}) {
    return storage::publish_event(*sql, type, data, clock->load()).event_id;
  }

  /// `{status, attempts, next_attempt_at, claimed (bool), last_status_code, last_error}`.
  json delivery(const std::string& event_id) {
    std::string status;
    long long attempts = 0, next = 0, claimed = 0, code = 0;
    std::string error;
    soci::indicator ci = soci::i_null, code_i = soci::i_null, err_i = soci::i_null;
    *sql << "SELECT status, attempts, next_attempt_at, claimed_until, last_status_code, "
            "last_error FROM webhook_deliveries WHERE event_id = :e",
        soci::use(event_id), soci::into(status), soci::into(attempts), soci::into(next),
        soci::into(claimed, ci), soci::into(code, code_i), soci::into(error, err_i);
    REQUIRE(sql->got_data());
    return {{"status", status},
            {"attempts", attempts},
            {"next_attempt_at", next},
            {"claimed", ci == soci::i_ok},
            {"last_status_code", code_i == soci::i_ok ? json(code) : json(nullptr)},
            {"last_error", err_i == soci::i_ok ? json(error) : json(nullptr)}};
  }

  void complete(std::size_t i, int status) {
    sender->complete(i, status);
    run_jobs();
  }

  /// One poll interval later (the clock of the deliveries moves by `unix_ms`).
  void poll(int64_t unix_ms = 0) {
    *clock += unix_ms;
    advance(500ms);
  }

  std::shared_ptr<std::optional<std::string>> drain() {
    auto reply = std::make_shared<std::optional<std::string>>();
    sys.spawn(
        [d = disp, reply](caf::event_based_actor* s, int) {
          s->request(d, 60s, drain_atom_v)
              .then([=](std::string& counts) { *reply = counts; },
                    [=](caf::error& e) { *reply = "error: " + to_string(e); });
        },
        0);
    run_jobs();
    return reply;
  }

  double metric(const std::string& outcome) {
    return metrics->value("si_webhook_deliveries_total", {{"outcome", outcome}});
  }
};

}  // namespace

TEST_CASE_METHOD(dispatcher_fixture,
                 "a due delivery is signed (Standard Webhooks) and recorded delivered on 2xx",
                 "[webhook_dispatcher]") {
  auto h = hook("http://receiver.test/hook");
  auto id = event("payment.created", {{"amount", "5.0000000"}});
  start();
  REQUIRE(sender->calls.size() == 1);
  const auto& req = sender->calls[0].request;
  CHECK(req.url == "http://receiver.test/hook");
  CHECK(req.timeout == 1s);
  CHECK(sender->header(0, "webhook-id") == id);
  CHECK(sender->header(0, "webhook-timestamp") == std::to_string(t0 / 1000));
  CHECK(domain::verify_webhook_signature(h["secret"].get<std::string>(), id, t0 / 1000, req.body,
                                         sender->header(0, "webhook-signature")));
  auto body = json::parse(req.body);
  CHECK(body["type"] == "payment.created");
  CHECK(body["data"] == json{{"amount", "5.0000000"}});
  CHECK(delivery(id)["claimed"] == true);

  complete(0, 204);
  auto d = delivery(id);
  CHECK(d["status"] == "delivered");
  CHECK(d["attempts"] == 1);
  CHECK(d["claimed"] == false);
  CHECK(metric("delivered") == 1);
  CHECK(sender->calls.size() == 1);
}

TEST_CASE_METHOD(dispatcher_fixture,
                 "failures are retried on the backoff schedule under the same webhook-id, then "
                 "dead-lettered",
                 "[webhook_dispatcher]") {
  auto h = hook("http://receiver.test/hook");
  auto id = event();
  start();
  REQUIRE(sender->calls.size() == 1);
  complete(0, 500);
  auto d = delivery(id);
  CHECK(d["status"] == "pending");
  CHECK(d["attempts"] == 1);
  CHECK(d["last_status_code"] == 500);
  CHECK(d["next_attempt_at"] == t0 + 1'000);  // min · 2^0
  CHECK(metric("retry") == 1);

  poll(999);  // not due yet
  CHECK(sender->calls.size() == 1);
  poll(1);  // due
  REQUIRE(sender->calls.size() == 2);
  CHECK(sender->header(1, "webhook-id") == id);
  CHECK(sender->calls[1].request.body == sender->calls[0].request.body);
  CHECK(sender->header(1, "webhook-timestamp") == std::to_string((t0 + 1'000) / 1000));
  complete(1, 0);  // connection refused
  d = delivery(id);
  CHECK(d["attempts"] == 2);
  CHECK(d["next_attempt_at"] == t0 + 1'000 + 2'000);  // min · 2^1
  CHECK(d["last_error"].get<std::string>().find("connect: connection refused") == 0);

  poll(1'999);
  CHECK(sender->calls.size() == 2);
  poll(1);
  REQUIRE(sender->calls.size() == 3);
  CHECK(sender->header(2, "webhook-id") == id);
  complete(2, 503);
  d = delivery(id);
  CHECK(d["status"] == "failed");  // WEBHOOK_MAX_ATTEMPTS = 3
  CHECK(d["attempts"] == 3);
  CHECK(metric("failed") == 1);
  CHECK(metric("retry") == 2);
  poll(60'000);
  CHECK(sender->calls.size() == 3);  // a dead letter is never sent again
}

TEST_CASE_METHOD(dispatcher_fixture, "410 Gone disables the webhook; its waiting deliveries stay",
                 "[webhook_dispatcher]") {
  auto h = hook("http://gone.test/hook");
  auto first = event();
  auto second = event();
  auto o = options();
  o.per_destination = 1;
  start(o);
  REQUIRE(sender->calls.size() == 1);  // the second waits for the destination's only slot
  CHECK(delivery(second)["claimed"] == true);
  complete(0, 410);
  CHECK(delivery(first)["status"] == "failed");
  auto d = delivery(second);
  CHECK(d["status"] == "pending");
  CHECK(d["attempts"] == 0);
  CHECK(d["claimed"] == false);  // handed back, held while the webhook is disabled
  auto w = storage::get_webhook(*sql, h["id"]);
  REQUIRE(w);
  CHECK((*w)["enabled"] == false);
  CHECK((*w)["disabled_reason"] == "endpoint answered 410 Gone");
  CHECK(metric("disabled") == 1);
  poll(60'000);
  CHECK(sender->calls.size() == 1);
}

TEST_CASE_METHOD(dispatcher_fixture,
                 "requests stay within the per-destination and overall bounds, destinations "
                 "taking turns",
                 "[webhook_dispatcher]") {
  hook("http://a.test/hook", {"payment.created"});
  hook("http://b.test/hook", {"anchor.status_changed"});
  std::set<std::string> events;
  for (int i = 0; i < 5; ++i) {
    events.insert(event("payment.created", {{"i", i}}));
    events.insert(event("anchor.status_changed", {{"i", i}}));
  }
  auto o = options();
  o.concurrency = 3;
  o.per_destination = 2;
  start(o);
  std::set<std::string> sent;
  std::size_t max_open = 0;
  for (int round = 0; round < 20 && sent.size() < events.size(); ++round) {
    std::map<std::string, int> open_by_host;
    std::size_t next = sender->calls.size();
    for (std::size_t i = 0; i < sender->calls.size(); ++i) {
      if (!sender->calls[i].finished) {
        ++open_by_host[sender->calls[i].request.url];
        next = std::min(next, i);
      }
    }
    max_open = std::max(max_open, sender->open());
    CHECK(sender->open() <= 3);
    for (const auto& [url, n] : open_by_host) {
      CHECK(n <= 2);
    }
    REQUIRE(next < sender->calls.size());
    sent.insert(sender->header(next, "webhook-id"));
    complete(next, 200);
  }
  CHECK(max_open == 3);
  CHECK(sent == events);
  CHECK(sender->calls.size() == events.size());  // each event once
  CHECK(metric("delivered") == 10);
  // The first round went to both destinations, not to a alone.
  CHECK(sender->calls[0].request.url == "http://a.test/hook");
  CHECK(sender->calls[1].request.url == "http://b.test/hook");
}

TEST_CASE_METHOD(dispatcher_fixture, "the doorbell wakes the dispatcher at once; rings coalesce",
                 "[webhook_dispatcher]") {
  hook("http://receiver.test/hook");
  auto o = options();
  o.poll_interval = 1h;
  start(o);
  CHECK(sender->calls.empty());
  auto id = event();
  doorbell->ring();
  doorbell->ring();
  doorbell->ring();
  CHECK(doorbell->wakeups() == 1);
  run_jobs();
  REQUIRE(sender->calls.size() == 1);
  CHECK(sender->header(0, "webhook-id") == id);
  event();
  doorbell->ring();  // re-armed by the wake-up it handled
  CHECK(doorbell->wakeups() == 2);
  run_jobs();
  CHECK(sender->calls.size() == 2);
}

TEST_CASE_METHOD(dispatcher_fixture,
                 "drain: unsent claims handed back at once, in-flight requests finish, report",
                 "[webhook_dispatcher][shutdown]") {
  hook("http://receiver.test/hook");
  auto a = event();
  auto b = event();
  auto c = event();
  auto o = options();
  o.per_destination = 1;
  start(o);
  REQUIRE(sender->calls.size() == 1);
  auto reply = drain();
  CHECK_FALSE(reply->has_value());  // waits for the request in flight
  CHECK(delivery(b)["claimed"] == false);
  CHECK(delivery(c)["claimed"] == false);
  // A new event during the drain is not claimed.
  event();
  doorbell->ring();
  poll();
  CHECK(sender->calls.size() == 1);
  complete(0, 200);
  REQUIRE(reply->has_value());
  auto counts = json::parse(**reply);
  CHECK(counts["delivered"] == 1);
  CHECK(counts["failed"] == 0);
  CHECK(counts["pending_left"] == 2);
  CHECK(counts["queue_depth"] == 3);
  CHECK(delivery(a)["status"] == "delivered");
  CHECK(delivery(b)["status"] == "pending");
  CHECK(delivery(b)["attempts"] == 0);
}

TEST_CASE_METHOD(dispatcher_fixture,
                 "drain deadline: requests still in flight are cancelled and handed back",
                 "[webhook_dispatcher][shutdown]") {
  hook("http://slow.test/hook");
  auto a = event();
  start();
  REQUIRE(sender->calls.size() == 1);
  auto reply = drain();
  advance(1'999ms);
  CHECK_FALSE(reply->has_value());
  CHECK(sender->cancels == 0);
  advance(1ms);
  CHECK(sender->cancels == 1);
  REQUIRE(reply->has_value());
  auto counts = json::parse(**reply);
  CHECK(counts["cut"] == 1);
  CHECK(counts["attempts"] == 0);
  CHECK(counts["pending_left"] == 1);
  auto d = delivery(a);
  CHECK(d["status"] == "pending");
  CHECK(d["attempts"] == 0);
  CHECK(d["claimed"] == false);
}

TEST_CASE_METHOD(dispatcher_fixture, "an idle dispatcher drains at once",
                 "[webhook_dispatcher][shutdown]") {
  start();
  auto reply = drain();
  REQUIRE(reply->has_value());
  auto counts = json::parse(**reply);
  CHECK(counts["pending_left"] == 0);
  CHECK(counts["queue_depth"] == 0);
}

TEST_CASE_METHOD(dispatcher_fixture,
                 "a dispatcher killed mid-request loses nothing: the next one sends the same "
                 "webhook-id once the lease ends",
                 "[webhook_dispatcher][crash]") {
  hook("http://receiver.test/hook");
  auto id = event();
  start();
  REQUIRE(sender->calls.size() == 1);
  caf::anon_send_exit(disp, caf::exit_reason::kill);
  run_jobs();
  start();  // a restart: the claim is still leased to the dead one
  CHECK(sender->calls.size() == 1);
  poll(59'999);
  CHECK(sender->calls.size() == 1);
  poll(1);  // the lease (60 s) has ended
  REQUIRE(sender->calls.size() == 2);
  CHECK(sender->header(1, "webhook-id") == id);
  CHECK(sender->calls[1].request.body == sender->calls[0].request.body);
  complete(1, 200);
  CHECK(delivery(id)["status"] == "delivered");
  // The dead dispatcher's request answering late changes nothing.
  sender->complete(0, 200);
  run_jobs();
  CHECK(delivery(id)["attempts"] == 1);
}

TEST_CASE_METHOD(dispatcher_fixture,
                 "a secret that does not open is recorded as a failed attempt, never sent",
                 "[webhook_dispatcher]") {
  std::string hex(64, 'a');
  auto cipher = std::get<domain::secret_cipher>(domain::secret_cipher::from_key_text(hex));
  hook("http://receiver.test/hook", {"payment.created"}, json{}, &cipher);
  auto id = event();
  start();  // no WEBHOOK_SECRET_KEY configured
  CHECK(sender->calls.empty());
  auto d = delivery(id);
  CHECK(d["attempts"] == 1);
  CHECK(d["status"] == "pending");
  CHECK(d["last_error"].get<std::string>().find("WEBHOOK_SECRET_KEY") != std::string::npos);
  CHECK(d["last_error"].get<std::string>().find("whsec_") == std::string::npos);
}

TEST_CASE_METHOD(dispatcher_fixture,
                 "attempts that cannot be recorded are kept and recorded once the database "
                 "answers again",
                 "[webhook_dispatcher]") {
  hook("http://receiver.test/hook");
  auto id = event();
  start();
  REQUIRE(sender->calls.size() == 1);
  *db_down = true;
  complete(0, 200);
  CHECK(delivery(id)["status"] == "pending");
  *db_down = false;
  poll();  // the retry of the record (and a poll)
  CHECK(delivery(id)["status"] == "delivered");
  CHECK(delivery(id)["attempts"] == 1);
  CHECK(sender->calls.size() == 1);
}
