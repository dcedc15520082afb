#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "domain/webhook.hpp"
#include "storage/webhooks_repo.hpp"
#include "support.hpp"

using namespace si::storage;
using nlohmann::json;
using si::webhook_test::test_database;
namespace domain = si::domain;

namespace {

/// Every repository test body runs once per backend.
#define WEBHOOK_REPO_TEST(name, body)                     \
  TEST_CASE(name " (sqlite)", "[webhooks][sqlite]") {     \
    auto db = test_database::sqlite();                    \
    body(*db);                                            \
  }                                                       \
  TEST_CASE(name " (postgres)", "[webhooks][postgres]") { \
    auto db = test_database::postgres();                  \
    body(*db);                                            \
  }

constexpr long long t0 = 1'700'000'000'000;
constexpr long long minute = 60'000;

domain::secret_cipher test_cipher(const std::string& hex_digit = "a") {
  std::string hex;
  for (int i = 0; i < 64; ++i) {
    hex += hex_digit;
  }
  auto parsed = domain::secret_cipher::from_key_text(hex);
  REQUIRE(std::holds_alternative<domain::secret_cipher>(parsed));
  return std::get<domain::secret_cipher>(std::move(parsed));
}

json created(const create_webhook_result& result) {
  if (const auto* error = std::get_if<field_error>(&result)) {
    FAIL("create_webhook refused " << error->field << ": " << error->message);
  }
  return std::get<json>(result);
}

/// Creates a webhook and returns its JSON (with the secret).
json make_hook(soci::session& sql, json types, json filters, long long now_ms,
               const domain::secret_cipher* cipher = nullptr,
               const std::string& url = "https://receiver.example/hook") {
  return created(create_webhook(sql, {url, std::move(types), std::move(filters)}, cipher, now_ms));
}

std::string make_hook_id(soci::session& sql, json types, json filters, long long now_ms,
                         const domain::secret_cipher* cipher = nullptr) {
  return make_hook(sql, std::move(types), std::move(filters), now_ms, cipher)
      .at("id")
      .get<std::string>();
}

long long count(soci::session& sql, const std::string& table) {
  long long n = 0;
  sql << "SELECT COUNT(*) FROM " + table, soci::into(n);
  return n;
}

/// Webhook ids the event was fanned out to.
std::set<std::string> targets(soci::session& sql, const std::string& event_id) {
  std::set<std::string> out;
  soci::rowset<std::string> rows =
      (sql.prepare << "SELECT webhook_id FROM webhook_deliveries WHERE event_id = :e",
       soci::use(event_id));
  for (const auto& id : rows) {
    out.insert(id);
  }
  return out;
}

/// The ids of `claims`, in order.
std::vector<std::string> event_ids(const std::vector<claimed_delivery>& claims) {
  std::vector<std::string> out;
  for (const auto& c : claims) {
    out.push_back(c.event_id);
  }
  return out;
}

std::vector<claimed_delivery> claim(soci::session& sql, long long now_ms, int limit = 100,
                                    long long lease_ms = minute,
                                    const domain::secret_cipher* cipher = nullptr) {
  return claim_due(sql, now_ms, limit, lease_ms, cipher);
}

/// A unit_random that must not be consulted (policies without jitter).
double no_random() {
  FAIL("the retry schedule asked for a random number");
  return 0.0;
}

delivery_policy exact_policy(int max_attempts = 5, long long max_age_ms = 86'400'000) {
  delivery_policy p;
  p.max_attempts = max_attempts;
  p.max_age_ms = max_age_ms;
  p.backoff = {1'000, 60'000, domain::backoff_jitter::none};
  return p;
}

attempt_report report_of(const claimed_delivery& c, long long at, std::optional<int> status,
                         std::optional<std::string> error = std::nullopt,
                         long long duration_ms = 25) {
  attempt_report r;
  r.delivery_id = c.delivery_id;
  r.claimed_until = c.claimed_until;
  r.attempted_at = at;
  r.status_code = status;
  r.error = std::move(error);
  r.duration_ms = duration_ms;
  return r;
}

attempt_outcome record(soci::session& sql, const attempt_report& report,
                       const delivery_policy& policy = exact_policy(),
                       const domain::unit_random& random = no_random) {
  auto outcome = record_attempt(sql, report, policy, random);
  REQUIRE(outcome.has_value());
  return *outcome;
}

/// Records a 200 for every claim (they leave the queue).
void deliver_all(soci::session& sql, const std::vector<claimed_delivery>& claims, long long at) {
  for (const auto& c : claims) {
    REQUIRE(record(sql, report_of(c, at, 200)).status == delivery_status::delivered);
  }
}

struct delivery_row {
  std::string status;
  long long attempts = 0;
  long long next_attempt_at = 0;
  std::optional<long long> claimed_until;
  std::optional<long long> last_status_code;
  std::optional<std::string> last_error;
};

delivery_row delivery(soci::session& sql, long long id) {
  delivery_row out;
  int attempts = 0;
  long long claimed = 0;
  int code = 0;
  std::string error;
  soci::indicator claimed_ind = soci::i_null;
  soci::indicator code_ind = soci::i_null;
  soci::indicator error_ind = soci::i_null;
  sql << "SELECT status, attempts, next_attempt_at, claimed_until, last_status_code, last_error "
         "FROM webhook_deliveries WHERE id = :id",
      soci::into(out.status), soci::into(attempts), soci::into(out.next_attempt_at),
      soci::into(claimed, claimed_ind), soci::into(code, code_ind), soci::into(error, error_ind),
      soci::use(id);
  REQUIRE(sql.got_data());
  out.attempts = attempts;
  if (claimed_ind == soci::i_ok) {
    out.claimed_until = claimed;
  }
  if (code_ind == soci::i_ok) {
    out.last_status_code = code;
  }
  if (error_ind == soci::i_ok) {
    out.last_error = error;
  }
  return out;
}

// -- subscriptions -----------------------------------------------------------------------------

void crud(test_database& db) {
  auto sql = db.open();
  const auto cipher = test_cipher();

  const json first = make_hook(*sql, json{"payment.created", "test", "payment.created"},
                               json{{"asset_code", "USDC"}}, t0, &cipher);
  const std::string id = first.at("id");
  CHECK(id.rfind("wh_", 0) == 0);
  CHECK(first.at("url") == "https://receiver.example/hook");
  CHECK(first.at("event_types") == json{"payment.created", "test"});
  CHECK(first.at("filters") == json{{"asset_code", "USDC"}});
  CHECK(first.at("enabled") == true);
  CHECK(first.at("created_at") == t0);
  const std::string secret = first.at("secret");
  REQUIRE(secret.rfind("whsec_", 0) == 0);
  CHECK(domain::webhook_secret_key(secret).size() == 32);

  // Sealed at rest, bound to the webhook's id.
  std::string stored;
  *sql << "SELECT secret FROM webhooks WHERE id = :id", soci::into(stored), soci::use(id);
  CHECK(stored.rfind("enc:v1:", 0) == 0);
  CHECK(stored.find(secret.substr(6)) == std::string::npos);
  CHECK(domain::load_webhook_secret(&cipher, stored, id) == secret);

  // Read back without the secret.
  auto got = get_webhook(*sql, id);
  REQUIRE(got);
  json expected = first;
  expected.erase("secret");
  CHECK(*got == expected);

  // Without a cipher the secret is stored as is; null filters are {}.
  const json second = make_hook(*sql, json{"anchor.status_changed"}, nullptr, t0 + 1);
  const std::string second_id = second.at("id");
  CHECK(second.at("filters") == json::object());
  *sql << "SELECT secret FROM webhooks WHERE id = :id", soci::into(stored), soci::use(second_id);
  CHECK(stored == second.at("secret").get<std::string>());
  const std::string third_id = make_hook_id(*sql, json{"test"}, json::object(), t0 + 2);

  // Lists: newest first, paged, with the total; never a secret.
  auto page = list_webhooks(*sql, {2, 0});
  CHECK(page.at("total") == 3);
  REQUIRE(page.at("webhooks").size() == 2);
  CHECK(page.at("webhooks")[0].at("id") == third_id);
  CHECK(page.at("webhooks")[1].at("id") == second_id);
  page = list_webhooks(*sql, {2, 2});
  REQUIRE(page.at("webhooks").size() == 1);
  CHECK(page.at("webhooks")[0] == expected);
  CHECK(list_webhooks(*sql, {0, -4}).at("webhooks").size() == 1);  // clamped
  CHECK(list_webhooks(*sql, {50, 3}).at("webhooks").empty());
  // The page is kept in a variable: a range-for over `list_webhooks(...).at(...)` would
  // iterate a member of a temporary destroyed before the loop (ThreadSanitizer saw it).
  const auto all = list_webhooks(*sql, {});
  for (const auto& item : all.at("webhooks")) {
    CHECK_FALSE(item.contains("secret"));
  }

  // Validation names the field and writes nothing.
  const auto refused = [&](new_webhook hook, const std::string& field) {
    auto result = create_webhook(*sql, hook, &cipher, t0 + 3);
    REQUIRE(std::holds_alternative<field_error>(result));
    CHECK(std::get<field_error>(result).field == field);
  };
  refused({"", json{"test"}, nullptr}, "url");
  refused({"https://x.example", json::array(), nullptr}, "event_types");
  refused({"https://x.example", json{"test", "payment.deleted"}, nullptr}, "event_types");
  refused({"https://x.example", json("test"), nullptr}, "event_types");
  refused({"https://x.example", nullptr, nullptr}, "event_types");
  refused({"https://x.example", json{"test"}, json::array()}, "filters");
  refused({"https://x.example", json{"test"}, json("asset_code=USDC")}, "filters");
  CHECK(count(*sql, "webhooks") == 3);

  // Enable / disable.
  CHECK(set_webhook_enabled(*sql, second_id, false, "maintenance", t0 + 10));
  got = get_webhook(*sql, second_id);
  REQUIRE(got);
  CHECK(got->at("enabled") == false);
  CHECK(got->at("disabled_reason") == "maintenance");
  CHECK(got->at("disabled_at") == t0 + 10);
  CHECK(got->at("updated_at") == t0 + 10);
  CHECK(set_webhook_enabled(*sql, second_id, true, "", t0 + 11));
  got = get_webhook(*sql, second_id);
  CHECK(got->at("enabled") == true);
  CHECK(got->at("disabled_reason").is_null());
  CHECK(got->at("disabled_at").is_null());
  CHECK_FALSE(set_webhook_enabled(*sql, "wh_unknown", false, "x", t0));

  // Delete removes the webhook, its deliveries and their attempts; events stay.
  const auto event = publish_event(*sql, "test", json{{"asset_code", "USDC"}, {"n", 1}}, t0 + 20);
  CHECK(event.deliveries == 2);  // first and third subscribe to `test`
  auto claims = claim(*sql, t0 + 20);
  REQUIRE(claims.size() == 2);
  for (const auto& c : claims) {
    record(*sql, report_of(c, t0 + 21, 500));
  }
  CHECK(count(*sql, "webhook_attempts") == 2);
  CHECK(delete_webhook(*sql, id));
  CHECK_FALSE(get_webhook(*sql, id));
  CHECK(targets(*sql, event.event_id) == std::set<std::string>{third_id});
  CHECK(count(*sql, "webhook_attempts") == 1);
  CHECK(count(*sql, "webhook_outbox") == 1);
  CHECK_FALSE(delete_webhook(*sql, id));
  CHECK(list_webhooks(*sql, {}).at("total") == 2);
}
WEBHOOK_REPO_TEST("webhooks are created, listed, read, disabled and deleted", crud)

// -- the outbox --------------------------------------------------------------------------------

void fan_out(test_database& db) {
  auto sql = db.open();
  const auto a = make_hook_id(*sql, json{"payment.created"}, nullptr, t0);
  const auto b = make_hook_id(*sql, json{"payment.created"}, json{{"asset_code", "USDC"}}, t0 + 1);
  const auto c = make_hook_id(*sql, json{"anchor.status_changed"}, nullptr, t0 + 2);
  const auto d =
      make_hook_id(*sql, json{"payment.created", "pool.liquidity_dropped"}, nullptr, t0 + 3);
  const auto e =
      make_hook_id(*sql, json{"pool.liquidity_dropped"}, json{{"pool_id", "abc"}}, t0 + 4);
  REQUIRE(set_webhook_enabled(*sql, d, false, "paused", t0 + 5));

  const json usdc = {{"asset_code", "USDC"}, {"amount", 5}};
  const auto e1 = publish_event(*sql, "payment.created", usdc, t0 + 100);
  CHECK(e1.deliveries == 2);
  CHECK(targets(*sql, e1.event_id) == std::set<std::string>{a, b});
  const auto e2 = publish_event(*sql, "payment.created", json{{"asset_code", "EURC"}}, t0 + 101);
  CHECK(targets(*sql, e2.event_id) == std::set<std::string>{a});
  const auto e3 = publish_event(*sql, "anchor.status_changed", json{{"status", "red"}}, t0 + 102);
  CHECK(targets(*sql, e3.event_id) == std::set<std::string>{c});
  const auto e4 = publish_event(*sql, "pool.liquidity_dropped", json{{"pool_id", "abc"}}, t0 + 103);
  CHECK(targets(*sql, e4.event_id) == std::set<std::string>{e});  // d is disabled
  const auto e5 = publish_event(*sql, "pool.liquidity_dropped", json{{"pool_id", "x"}}, t0 + 104);
  CHECK(e5.deliveries == 0);
  const auto e6 = publish_event(*sql, "corridor.health_degraded", json::object(), t0 + 105);
  CHECK(e6.deliveries == 0);
  CHECK(count(*sql, "webhook_outbox") == 6);  // every event is kept, delivered or not
  CHECK(count(*sql, "webhook_deliveries") == 5);

  // The outbox row holds the exact delivery body; the deliveries are pending and due.
  std::string type;
  std::string payload;
  long long created_at = 0;
  long long dispatched_at = 0;
  *sql << "SELECT type, payload, created_at, dispatched_at FROM webhook_outbox WHERE id = :id",
      soci::into(type), soci::into(payload), soci::into(created_at), soci::into(dispatched_at),
      soci::use(e1.event_id);
  CHECK(type == "payment.created");
  CHECK(payload == domain::delivery_body("payment.created", t0 + 100, usdc));
  CHECK(created_at == t0 + 100);
  CHECK(dispatched_at == t0 + 100);
  CHECK(e1.event_id.rfind("msg_", 0) == 0);
  long long delivery_id = 0;
  std::string event_type;
  *sql << "SELECT id, event_type FROM webhook_deliveries WHERE event_id = :e AND webhook_id = :w",
      soci::into(delivery_id), soci::into(event_type), soci::use(e1.event_id), soci::use(b);
  CHECK(event_type == "payment.created");
  const auto row = delivery(*sql, delivery_id);
  CHECK(row.status == "pending");
  CHECK(row.attempts == 0);
  CHECK(row.next_attempt_at == t0 + 100);
  CHECK_FALSE(row.claimed_until);

  // Refused events write nothing.
  CHECK_THROWS_AS(publish_event(*sql, "payment.deleted", usdc, t0), std::invalid_argument);
  CHECK_THROWS_AS(enqueue_event(*sql, "Payment.Created", usdc, t0), std::invalid_argument);
  CHECK_THROWS_AS(publish_event(*sql, "payment.created", json::array({1}), t0),
                  std::invalid_argument);
  CHECK_THROWS_AS(publish_event(*sql, "payment.created", json("x"), t0), std::invalid_argument);
  CHECK(count(*sql, "webhook_outbox") == 6);

  // A test event goes to the one webhook asked for, whatever it subscribes to.
  const auto test = enqueue_test_event(*sql, c, t0 + 200);
  REQUIRE(test);
  CHECK(test->deliveries == 1);
  CHECK(targets(*sql, test->event_id) == std::set<std::string>{c});
  *sql << "SELECT type, payload FROM webhook_outbox WHERE id = :id", soci::into(type),
      soci::into(payload), soci::use(test->event_id);
  CHECK(type == "test");
  CHECK(json::parse(payload).at("data").at("webhook_id") == c);
  CHECK_FALSE(enqueue_test_event(*sql, "wh_missing", t0 + 201));
  CHECK(count(*sql, "webhook_outbox") == 7);
}
WEBHOOK_REPO_TEST("events fan out to enabled webhooks whose types and filters match", fan_out)

void outbox_transaction(test_database& db) {
  auto sql = db.open();
  auto other = db.open();
  const auto hook = make_hook_id(*sql, json{"payment.created"}, nullptr, t0);
  const auto runs = [](soci::session& s) { return count(s, "sync_runs"); };

  {
    soci::transaction tr(*sql);
    *sql << "INSERT INTO sync_runs (name, last_run_at) VALUES ('payments', 1)";
    const auto event = enqueue_event(*sql, "payment.created", json{{"n", 1}}, t0 + 1);
    CHECK(event.deliveries == 1);
    CHECK(count(*sql, "webhook_outbox") == 1);    // visible inside the transaction
    CHECK(count(*other, "webhook_outbox") == 0);  // and nowhere else yet
    tr.rollback();
  }
  CHECK(runs(*sql) == 0);
  CHECK(count(*sql, "webhook_outbox") == 0);
  CHECK(count(*sql, "webhook_deliveries") == 0);

  // A failure after the data write: the caller's transaction rolls both back.
  try {
    soci::transaction tr(*sql);
    *sql << "INSERT INTO sync_runs (name, last_run_at) VALUES ('payments', 2)";
    enqueue_event(*sql, "payment.created", json{{"n", 2}}, t0 + 2);
    enqueue_event(*sql, "payment.unknown", json{{"n", 3}}, t0 + 2);
    tr.commit();
    FAIL("an unknown type was accepted");
  } catch (const std::invalid_argument&) {
  }
  CHECK(runs(*sql) == 0);
  CHECK(count(*sql, "webhook_outbox") == 0);

  std::string event_id;
  {
    soci::transaction tr(*sql);
    *sql << "INSERT INTO sync_runs (name, last_run_at) VALUES ('payments', 3)";
    event_id = enqueue_event(*sql, "payment.created", json{{"n", 4}}, t0 + 3).event_id;
    tr.commit();
  }
  CHECK(runs(*other) == 1);
  CHECK(count(*other, "webhook_outbox") == 1);
  CHECK(targets(*other, event_id) == std::set<std::string>{hook});
  const auto claims = claim(*other, t0 + 3);
  REQUIRE(claims.size() == 1);
  CHECK(claims[0].event_id == event_id);
}
WEBHOOK_REPO_TEST("an event commits or rolls back with the data that caused it", outbox_transaction)

// -- claims ------------------------------------------------------------------------------------

void claims_and_leases(test_database& db) {
  auto one = db.open();
  auto two = db.open();
  const auto cipher = test_cipher();
  const json hook = make_hook(*one, json{"payment.created"}, nullptr, t0, &cipher);
  const std::string hook_id = hook.at("id");
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(publish_event(*one, "payment.created", json{{"i", i}}, t0 + i).event_id);
  }

  const long long now = t0 + 10;
  auto first = claim(*one, now, 3, minute, &cipher);
  REQUIRE(first.size() == 3);
  CHECK(event_ids(first) == std::vector<std::string>(ids.begin(), ids.begin() + 3));
  for (std::size_t i = 0; i < first.size(); ++i) {
    const auto& c = first[i];
    CHECK(c.webhook_id == hook_id);
    CHECK(c.url == "https://receiver.example/hook");
    CHECK(c.secret == hook.at("secret").get<std::string>());
    CHECK_FALSE(c.secret_error);
    CHECK(c.event_type == "payment.created");
    CHECK(c.body
          == domain::delivery_body("payment.created", t0 + static_cast<long long>(i),
                                   json{{"i", i}}));
    CHECK(c.attempts == 0);
    CHECK(c.created_at == t0 + static_cast<long long>(i));
    CHECK(c.claimed_until == now + minute);
    CHECK(delivery(*one, c.delivery_id).claimed_until == now + minute);
  }
  // Another dispatcher gets only what is left; nobody gets anything twice within the lease.
  auto second = claim(*two, now, 10, minute, &cipher);
  CHECK(event_ids(second) == std::vector<std::string>(ids.begin() + 3, ids.end()));
  CHECK(claim(*one, now + 1, 10).empty());
  CHECK(claim(*two, now + minute - 1, 10).empty());

  // Once the lease has expired the deliveries are claimable again, same events, no attempt
  // counted (nothing was recorded).
  auto again = claim(*two, now + minute, 10, minute, &cipher);
  CHECK(event_ids(again) == ids);
  for (const auto& c : again) {
    CHECK(c.attempts == 0);
    CHECK(c.claimed_until == now + 2 * minute);
  }
  deliver_all(*one, again, now + minute + 1);

  // Not due yet: not claimed.
  const auto later = publish_event(*one, "payment.created", json{{"i", 9}}, t0 + 10 * minute);
  CHECK(claim(*one, t0 + 10 * minute - 1).size() == 0);
  auto due = claim(*one, t0 + 10 * minute, 10, minute, &cipher);
  CHECK(event_ids(due) == std::vector<std::string>{later.event_id});
  deliver_all(*one, due, t0 + 10 * minute);

  // A disabled webhook's deliveries are held, and come back when it is enabled again.
  const auto held = publish_event(*one, "payment.created", json{{"i", 10}}, t0 + 20 * minute);
  REQUIRE(set_webhook_enabled(*one, hook_id, false, "paused", t0 + 20 * minute));
  CHECK(claim(*one, t0 + 21 * minute).empty());
  REQUIRE(set_webhook_enabled(*one, hook_id, true, "", t0 + 21 * minute));
  const auto resumed = claim(*one, t0 + 21 * minute, 1, minute, &cipher);
  CHECK(event_ids(resumed) == std::vector<std::string>{held.event_id});
  deliver_all(*one, resumed, t0 + 21 * minute);

  // limit is clamped to at least 1; a lease must be positive.
  publish_event(*one, "payment.created", json{{"i", 11}}, t0 + 30 * minute);
  publish_event(*one, "payment.created", json{{"i", 12}}, t0 + 30 * minute);
  CHECK(claim(*one, t0 + 30 * minute, 0, minute, &cipher).size() == 1);
  CHECK_THROWS_AS(claim(*one, t0 + 30 * minute, 5, 0), std::invalid_argument);
  CHECK(claim(*one, t0 + 30 * minute, 5, minute, &cipher).size() == 1);
}
WEBHOOK_REPO_TEST("claims are exclusive within their lease and expire", claims_and_leases)

void claim_secrets(test_database& db) {
  auto sql = db.open();
  const auto cipher = test_cipher();
  const auto wrong = test_cipher("b");
  const json sealed = make_hook(*sql, json{"test"}, nullptr, t0, &cipher);
  const json clear = make_hook(*sql, json{"test"}, nullptr, t0 + 1, nullptr);
  publish_event(*sql, "test", json::object(), t0 + 2);

  const auto by_hook = [](const std::vector<claimed_delivery>& claims, const json& hook) {
    for (const auto& c : claims) {
      if (c.webhook_id == hook.at("id").get<std::string>()) {
        return c;
      }
    }
    FAIL("no claim for " << hook.at("id"));
    return claimed_delivery{};
  };
  // The right key opens the sealed secret; a clear one is returned as is.
  auto claims = claim(*sql, t0 + 2, 10, 1'000, &cipher);
  REQUIRE(claims.size() == 2);
  CHECK(by_hook(claims, sealed).secret == sealed.at("secret").get<std::string>());
  CHECK(by_hook(claims, clear).secret == clear.at("secret").get<std::string>());

  // A wrong key (or none) claims anyway but says why the secret is unusable, never leaking it.
  claims = claim(*sql, t0 + 2 + 1'000, 10, 1'000, &wrong);
  REQUIRE(claims.size() == 2);
  auto bad = by_hook(claims, sealed);
  CHECK(bad.secret.empty());
  REQUIRE(bad.secret_error);
  CHECK(bad.secret_error->find("WEBHOOK_SECRET_KEY") != std::string::npos);
  CHECK(bad.secret_error->find(sealed.at("secret").get<std::string>().substr(6))
        == std::string::npos);
  CHECK(by_hook(claims, clear).secret == clear.at("secret").get<std::string>());
  claims = claim(*sql, t0 + 2 + 2'000, 10, 1'000, nullptr);
  REQUIRE(claims.size() == 2);
  bad = by_hook(claims, sealed);
  REQUIRE(bad.secret_error);
  CHECK(bad.secret_error->find("not configured") != std::string::npos);
}
WEBHOOK_REPO_TEST("claimed secrets are opened with the configured key", claim_secrets)

void concurrent_claimers(test_database& db) {
  {
    auto sql = db.open();
    make_hook_id(*sql, json{"payment.created"}, nullptr, t0);
    make_hook_id(*sql, json{"payment.created"}, nullptr, t0 + 1);
    for (int i = 0; i < 30; ++i) {
      publish_event(*sql, "payment.created", json{{"i", i}}, t0 + i);
    }
  }
  constexpr int workers = 4;
  std::vector<std::unique_ptr<soci::session>> sessions;
  for (int w = 0; w < workers; ++w) {
    sessions.push_back(db.open());
  }
  std::vector<std::vector<long long>> got(workers);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      try {
        for (;;) {
          auto claims = claim_due(*sessions[w], t0 + 100, 3, minute, nullptr);
          if (claims.empty()) {
            return;
          }
          for (const auto& c : claims) {
            got[w].push_back(c.delivery_id);
          }
        }
      } catch (...) {
        ++failures;
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  REQUIRE(failures == 0);
  std::vector<long long> all;
  for (const auto& g : got) {
    all.insert(all.end(), g.begin(), g.end());
  }
  std::set<long long> unique(all.begin(), all.end());
  CHECK(all.size() == 60);     // every delivery claimed...
  CHECK(unique.size() == 60);  // ...exactly once
}
WEBHOOK_REPO_TEST("concurrent dispatchers never claim one delivery twice", concurrent_claimers)

TEST_CASE("a claim skips rows another transaction has locked (postgres)", "[webhooks][postgres]") {
  auto db = test_database::postgres();
  auto sql = db->open();
  auto locker = db->open();
  make_hook_id(*sql, json{"payment.created"}, nullptr, t0);
  for (int i = 0; i < 5; ++i) {
    publish_event(*sql, "payment.created", json{{"i", i}}, t0 + i);
  }
  *sql << "SET lock_timeout = '5s'";  // a regression fails instead of hanging
  std::vector<long long> ids(10);
  *sql << "SELECT id FROM webhook_deliveries ORDER BY next_attempt_at, id", soci::into(ids);
  REQUIRE(ids.size() == 5);

  locker->begin();
  *locker << "SELECT id FROM webhook_deliveries WHERE id IN (:a, :b) FOR UPDATE", soci::use(ids[0]),
      soci::use(ids[1]);
  auto claims = claim(*sql, t0 + 10, 10);
  std::vector<long long> claimed;
  for (const auto& c : claims) {
    claimed.push_back(c.delivery_id);
  }
  CHECK(claimed == std::vector<long long>(ids.begin() + 2, ids.end()));
  locker->rollback();
  claims = claim(*sql, t0 + 10, 10);
  REQUIRE(claims.size() == 2);
  CHECK(claims[0].delivery_id == ids[0]);
  CHECK(claims[1].delivery_id == ids[1]);
}

// -- attempts ----------------------------------------------------------------------------------

void retries_and_dead_letters(test_database& db) {
  auto sql = db.open();
  const auto hook = make_hook_id(*sql, json{"payment.created"}, nullptr, t0);
  const auto policy = exact_policy(3);

  // Failures reschedule with the exponential schedule until max_attempts.
  const auto event = publish_event(*sql, "payment.created", json{{"n", 1}}, t0);
  auto c = claim(*sql, t0);
  REQUIRE(c.size() == 1);
  auto out = record(*sql, report_of(c[0], t0 + 5, 500, std::nullopt, 120), policy);
  CHECK(out.attempt == 1);
  CHECK(out.status == delivery_status::pending);
  CHECK(out.next_attempt_at == t0 + 5 + 1'000);
  CHECK(out.held_claim);
  CHECK_FALSE(out.webhook_disabled);
  auto row = delivery(*sql, c[0].delivery_id);
  CHECK(row.status == "pending");
  CHECK(row.attempts == 1);
  CHECK(row.next_attempt_at == t0 + 1'005);
  CHECK_FALSE(row.claimed_until);
  CHECK(row.last_status_code == 500);
  CHECK_FALSE(row.last_error);

  CHECK(claim(*sql, t0 + 1'004).empty());
  c = claim(*sql, t0 + 1'005);
  REQUIRE(c.size() == 1);
  CHECK(c[0].attempts == 1);
  CHECK(c[0].event_id == event.event_id);  // the same webhook-id on every attempt
  out = record(*sql, report_of(c[0], t0 + 1'010, std::nullopt, "connection refused", 3), policy);
  CHECK(out.attempt == 2);
  CHECK(out.next_attempt_at == t0 + 1'010 + 2'000);
  row = delivery(*sql, c[0].delivery_id);
  CHECK_FALSE(row.last_status_code);
  CHECK(row.last_error == "connection refused");

  c = claim(*sql, t0 + 3'010);
  REQUIRE(c.size() == 1);
  out = record(*sql, report_of(c[0], t0 + 3'020, 503, std::nullopt, 7), policy);
  CHECK(out.attempt == 3);
  CHECK(out.status == delivery_status::failed);  // dead letter: 3 attempts
  CHECK_FALSE(out.next_attempt_at);
  row = delivery(*sql, c[0].delivery_id);
  CHECK(row.status == "failed");
  CHECK(row.attempts == 3);
  CHECK_FALSE(row.claimed_until);
  CHECK(claim(*sql, t0 + 100 * minute).empty());

  auto history = deliveries_of(*sql, hook, {});
  REQUIRE(history);
  REQUIRE(history->at("deliveries").size() == 1);
  const json log = history->at("deliveries")[0].at("attempt_log");
  REQUIRE(log.size() == 3);
  CHECK(log[0]
        == json{{"attempt", 1},
                {"attempted_at", t0 + 5},
                {"status_code", 500},
                {"error", nullptr},
                {"duration_ms", 120}});
  CHECK(log[1]
        == json{{"attempt", 2},
                {"attempted_at", t0 + 1'010},
                {"status_code", nullptr},
                {"error", "connection refused"},
                {"duration_ms", 3}});
  CHECK(log[2].at("status_code") == 503);

  // Jitter comes from the injected source.
  auto jittered = exact_policy(5);
  jittered.backoff.jitter = domain::backoff_jitter::full;
  publish_event(*sql, "payment.created", json{{"n", 2}}, t0 + 200 * minute);
  c = claim(*sql, t0 + 200 * minute);
  REQUIRE(c.size() == 1);
  out = record(*sql, report_of(c[0], t0 + 200 * minute, 502), jittered, [] { return 0.25; });
  CHECK(out.next_attempt_at == t0 + 200 * minute + 1'000 + 250);  // [1000, 2000] at 0.25
}
WEBHOOK_REPO_TEST("failed attempts retry on schedule and dead-letter after max attempts",
                  retries_and_dead_letters)

void success_gone_and_age(test_database& db) {
  auto sql = db.open();
  const auto hook = make_hook_id(*sql, json{"payment.created"}, nullptr, t0);

  // 2xx: delivered, never claimed again; a later failure report does not undo it.
  publish_event(*sql, "payment.created", json{{"n", 1}}, t0);
  auto c = claim(*sql, t0);
  REQUIRE(c.size() == 1);
  auto out = record(*sql, report_of(c[0], t0 + 40, 204));
  CHECK(out.status == delivery_status::delivered);
  CHECK_FALSE(out.next_attempt_at);
  auto row = delivery(*sql, c[0].delivery_id);
  CHECK(row.status == "delivered");
  CHECK(row.last_status_code == 204);
  CHECK_FALSE(row.claimed_until);
  CHECK(claim(*sql, t0 + 100 * minute).empty());
  out = record(*sql, report_of(c[0], t0 + 50, 500));
  CHECK(out.status == delivery_status::delivered);
  CHECK(out.attempt == 2);
  CHECK(delivery(*sql, c[0].delivery_id).last_status_code == 204);

  // Age: a failure after max_age dead-letters even at the first attempt; at max_age exactly
  // it still retries.
  const auto aged = exact_policy(10, 10'000);
  publish_event(*sql, "payment.created", json{{"n", 2}}, t0 + minute);
  publish_event(*sql, "payment.created", json{{"n", 3}}, t0 + minute + 1);
  c = claim(*sql, t0 + minute + 10'001);
  REQUIRE(c.size() == 2);
  out = record(*sql, report_of(c[0], t0 + minute + 10'001, 500), aged);
  CHECK(out.status == delivery_status::failed);
  CHECK(out.attempt == 1);
  out = record(*sql, report_of(c[1], t0 + minute + 1 + 10'000, 500), aged);
  CHECK(out.status == delivery_status::pending);

  // A late success turns a dead letter into delivered.
  out = record(*sql, report_of(c[0], t0 + minute + 20'000, 200), aged);
  CHECK(out.status == delivery_status::delivered);

  // Unknown delivery: nothing to record.
  CHECK_FALSE(record_attempt(*sql, attempt_report{424242, 0, t0, 200, std::nullopt, 1},
                             exact_policy(), no_random));
  CHECK(deliveries_of(*sql, hook, {})->at("total") == 3);
}
WEBHOOK_REPO_TEST("2xx delivers and age dead-letters", success_gone_and_age)

void gone(test_database& db) {
  auto sql = db.open();
  const auto other = make_hook_id(*sql, json{"anchor.status_changed"}, nullptr, t0);
  const auto gone_hook = make_hook_id(*sql, json{"anchor.status_changed"}, nullptr, t0 + 1);
  publish_event(*sql, "anchor.status_changed", json{{"n", 1}}, t0 + 10);
  publish_event(*sql, "anchor.status_changed", json{{"n", 2}}, t0 + 20);
  auto c = claim(*sql, t0 + 10);
  REQUIRE(c.size() == 2);
  const auto mine = c[0].webhook_id == gone_hook ? c[0] : c[1];
  REQUIRE(mine.webhook_id == gone_hook);

  // 410 Gone: that delivery fails at once and the webhook is disabled.
  const auto out = record(*sql, report_of(mine, t0 + 15, 410));
  CHECK(out.status == delivery_status::failed);
  CHECK(out.webhook_disabled);
  CHECK(out.attempt == 1);
  const auto disabled = get_webhook(*sql, gone_hook);
  REQUIRE(disabled);
  CHECK(disabled->at("enabled") == false);
  CHECK(disabled->at("disabled_reason").get<std::string>().find("410") != std::string::npos);
  CHECK(disabled->at("disabled_at") == t0 + 15);
  CHECK(delivery(*sql, mine.delivery_id).status == "failed");

  // Its other pending delivery is held; new events skip it; the other webhook carries on.
  c = claim(*sql, t0 + 10 * minute);
  REQUIRE(c.size() == 2);
  for (const auto& d : c) {
    CHECK(d.webhook_id == other);
  }
  long long held = 0;
  *sql << "SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = :w AND status = 'pending'",
      soci::into(held), soci::use(gone_hook);
  CHECK(held == 1);
  const auto next = publish_event(*sql, "anchor.status_changed", json{{"n", 3}}, t0 + minute);
  CHECK(targets(*sql, next.event_id) == std::set<std::string>{other});

  deliver_all(*sql, c, t0 + 10 * minute + 1);
  CHECK(get_webhook(*sql, other)->at("enabled") == true);
}
WEBHOOK_REPO_TEST("410 Gone fails the delivery and disables the webhook", gone)

void stale_claims(test_database& db) {
  auto sql = db.open();
  make_hook_id(*sql, json{"payment.created"}, nullptr, t0);
  publish_event(*sql, "payment.created", json{{"n", 1}}, t0);

  // A's lease (1 s) expires while it is still sending; B claims the delivery.
  const auto a = claim(*sql, t0, 1, 1'000);
  REQUIRE(a.size() == 1);
  const auto b = claim(*sql, t0 + 1'000, 1, 1'000);
  REQUIRE(b.size() == 1);
  CHECK(b[0].delivery_id == a[0].delivery_id);
  CHECK(b[0].claimed_until > a[0].claimed_until);

  // A's failure is logged but leaves B's claim and the schedule alone.
  auto out = record(*sql, report_of(a[0], t0 + 1'500, 500));
  CHECK_FALSE(out.held_claim);
  CHECK(out.status == delivery_status::pending);
  CHECK_FALSE(out.next_attempt_at);
  auto row = delivery(*sql, a[0].delivery_id);
  CHECK(row.claimed_until == b[0].claimed_until);
  CHECK(row.next_attempt_at == t0);
  CHECK(row.attempts == 1);
  CHECK(claim(*sql, t0 + 1'600).empty());  // B still holds it

  // B's success is the one that moves it on.
  out = record(*sql, report_of(b[0], t0 + 1'700, 200));
  CHECK(out.held_claim);
  CHECK(out.attempt == 2);
  CHECK(out.status == delivery_status::delivered);
}
WEBHOOK_REPO_TEST("a report from an expired claim does not override the new holder", stale_claims)

void release(test_database& db) {
  auto sql = db.open();
  make_hook_id(*sql, json{"payment.created"}, nullptr, t0);
  for (int i = 0; i < 3; ++i) {
    publish_event(*sql, "payment.created", json{{"i", i}}, t0 + i);
  }
  auto c = claim(*sql, t0 + 10);
  REQUIRE(c.size() == 3);
  // One of them has a failed attempt first.
  record(*sql, report_of(c[2], t0 + 11, 500));
  c = claim(*sql, t0 + 11 + 1'000);
  REQUIRE(c.size() == 1);
  const long long retried = c[0].delivery_id;
  CHECK(c[0].attempts == 1);

  std::vector<long long> ids(10);
  *sql << "SELECT id FROM webhook_deliveries ORDER BY id", soci::into(ids);
  REQUIRE(ids.size() == 3);

  // Shutdown hands two back (an unknown id is ignored): due again at once, attempts kept.
  CHECK(release_claims(*sql, {ids[0], retried, 999'999}, t0 + 1'100) == 2);
  CHECK(release_claims(*sql, {}, t0 + 1'100) == 0);
  CHECK(release_claims(*sql, {ids[0]}, t0 + 1'100) == 0);  // no claim left to release
  CHECK_FALSE(delivery(*sql, ids[0]).claimed_until);
  CHECK(delivery(*sql, ids[1]).claimed_until == t0 + 10 + minute);
  c = claim(*sql, t0 + 1'200);
  std::set<long long> again;
  for (const auto& d : c) {
    again.insert(d.delivery_id);
    CHECK(d.attempts == (d.delivery_id == retried ? 1 : 0));
  }
  CHECK(again == std::set<long long>{ids[0], retried});
  CHECK(delivery(*sql, retried).attempts == 1);
}
WEBHOOK_REPO_TEST("released claims are pending and due again with attempts unchanged", release)

void crash_recovery(test_database& db) {
  std::string event_id;
  std::string body;
  {
    // A dispatcher commits an event, claims it, and dies (its session vanishes).
    auto writer = db.open();
    make_hook_id(*writer, json{"payment.created"}, nullptr, t0);
    {
      soci::transaction tr(*writer);
      *writer << "INSERT INTO sync_runs (name, last_run_at) VALUES ('payments', 1)";
      event_id = enqueue_event(*writer, "payment.created", json{{"n", 1}}, t0).event_id;
      tr.commit();
    }
    auto dispatcher = db.open();
    const auto claims = claim(*dispatcher, t0 + 1, 10, 30'000);
    REQUIRE(claims.size() == 1);
    body = claims[0].body;
    // And an event not yet committed at the moment of death never existed.
    writer->begin();
    enqueue_event(*writer, "payment.created", json{{"n", 2}}, t0);
  }
  auto restarted = db.open();
  CHECK(count(*restarted, "webhook_outbox") == 1);
  CHECK(claim(*restarted, t0 + 30'000).empty());  // the dead dispatcher's lease still runs
  const auto claims = claim(*restarted, t0 + 1 + 30'000);
  REQUIRE(claims.size() == 1);
  CHECK(claims[0].event_id == event_id);  // at-least-once with a stable id
  CHECK(claims[0].body == body);          // and the same bytes
  CHECK(claims[0].attempts == 0);
}
WEBHOOK_REPO_TEST("after a crash an expired lease makes the delivery claimable again",
                  crash_recovery)

// -- stats and history -------------------------------------------------------------------------

void stats_and_history(test_database& db) {
  auto sql = db.open();
  auto empty = delivery_stats(*sql, t0);
  CHECK(empty.pending == 0);
  CHECK(empty.delivered == 0);
  CHECK(empty.failed == 0);
  CHECK(empty.queue_depth == 0);
  CHECK_FALSE(empty.oldest_pending_age_ms);
  CHECK(to_json(empty).at("oldest_pending_age_ms").is_null());

  const auto a = make_hook_id(*sql, json{"payment.created"}, nullptr, t0);
  const auto b = make_hook_id(*sql, json{"pool.liquidity_dropped"}, nullptr, t0 + 1);
  std::vector<std::string> events;
  for (int i = 0; i < 4; ++i) {
    events.push_back(publish_event(*sql, "payment.created", json{{"i", i}}, t0 + 10 * i).event_id);
  }
  publish_event(*sql, "pool.liquidity_dropped", json{{"p", 1}}, t0 + 5);
  publish_event(*sql, "pool.liquidity_dropped", json{{"p", 2}}, t0 + 6);
  REQUIRE(set_webhook_enabled(*sql, b, false, "paused", t0 + 7));

  auto c = claim(*sql, t0 + 100, 2, 1'000);  // events[0] and events[1]
  REQUIRE(event_ids(c) == std::vector<std::string>{events[0], events[1]});
  record(*sql, report_of(c[0], t0 + 150, 200, std::nullopt, 33));
  // a third delivery dead-letters
  c = claim(*sql, t0 + 160, 1, 1'000);
  REQUIRE(event_ids(c) == std::vector<std::string>{events[2]});
  record(*sql, report_of(c[0], t0 + 170, 500), exact_policy(1));

  const auto s = delivery_stats(*sql, t0 + 200);
  CHECK(s.pending == 4);  // events[1] (claimed), events[3], and b's two held ones
  CHECK(s.delivered == 1);
  CHECK(s.failed == 1);
  CHECK(s.queue_depth == 4);
  CHECK(s.in_flight == 1);
  CHECK(s.due == 1);  // events[3]; b is disabled
  CHECK(s.oldest_pending_age_ms == 200 - 5);
  const json j = to_json(s);
  CHECK(j
        == json{{"pending", 4},
                {"delivered", 1},
                {"failed", 1},
                {"queue_depth", 4},
                {"in_flight", 1},
                {"due", 1},
                {"oldest_pending_age_ms", 195}});
  CHECK(delivery_stats(*sql, t0 + 1'100).in_flight == 0);  // the lease ran out
  CHECK(delivery_stats(*sql, t0 + 1'100).due == 2);

  // History: newest delivery first, paged, attempts oldest first; other webhooks not mixed in.
  auto page = deliveries_of(*sql, a, {2, 0});
  REQUIRE(page);
  CHECK(page->at("webhook_id") == a);
  CHECK(page->at("total") == 4);
  REQUIRE(page->at("deliveries").size() == 2);
  CHECK(page->at("deliveries")[0].at("event_id") == events[3]);
  CHECK(page->at("deliveries")[1].at("event_id") == events[2]);
  CHECK(page->at("deliveries")[1].at("status") == "failed");
  CHECK(page->at("deliveries")[1].at("attempts") == 1);
  CHECK(page->at("deliveries")[1].at("last_status_code") == 500);
  CHECK(page->at("deliveries")[0].at("attempt_log") == json::array());
  page = deliveries_of(*sql, a, {2, 2});
  REQUIRE(page);
  REQUIRE(page->at("deliveries").size() == 2);
  const json first = page->at("deliveries")[1];
  CHECK(first.at("event_id") == events[0]);
  CHECK(first.at("event_type") == "payment.created");
  CHECK(first.at("status") == "delivered");
  CHECK(first.at("created_at") == t0);
  CHECK(first.at("claimed_until").is_null());
  CHECK(first.at("attempt_log")
        == json::array({json{{"attempt", 1},
                             {"attempted_at", t0 + 150},
                             {"status_code", 200},
                             {"error", nullptr},
                             {"duration_ms", 33}}}));
  CHECK(page->at("deliveries")[0].at("claimed_until") == t0 + 100 + 1'000);
  CHECK(deliveries_of(*sql, b, {})->at("total") == 2);
  CHECK(deliveries_of(*sql, a, {0, 0})->at("deliveries").size() == 1);  // limit clamped
  CHECK_FALSE(deliveries_of(*sql, "wh_missing", {}));
}
WEBHOOK_REPO_TEST("stats count the queue and history lists attempts", stats_and_history)

void stored_text_is_sanitised(test_database& db) {
  auto sql = db.open();
  make_hook_id(*sql, json{"test"}, nullptr, t0);
  publish_event(*sql, "test", json::object(), t0);
  auto c = claim(*sql, t0);
  REQUIRE(c.size() == 1);
  // Invalid UTF-8 and NUL bytes (e.g. from a broken reason phrase) are stored as '?', and
  // long errors are cut: PostgreSQL would otherwise refuse the row and lose the attempt.
  static constexpr char raw[] = "bad \xff\xfe byte and a \0 nul";
  const std::string error = std::string(raw, sizeof(raw) - 1) + std::string(5000, 'x');
  record(*sql, report_of(c[0], t0 + 1, std::nullopt, error));
  const auto row = delivery(*sql, c[0].delivery_id);
  REQUIRE(row.last_error);
  CHECK(row.last_error->rfind("bad ?? byte and a ? nul", 0) == 0);
  CHECK(row.last_error->size() == 2000);
}
WEBHOOK_REPO_TEST("error texts are stored as bounded valid UTF-8", stored_text_is_sanitised)

}  // namespace
