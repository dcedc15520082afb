// Tests of the realtime broadcaster: which payments become new_payment (tip window, cap),
// which sync events become health_alert, and the actor delivering them through a real ws_hub
// to recording connections (CAF test_coordinator).

#include "actors/broadcaster.hpp"
#include "fixture.hpp"
#include "net/prometheus.hpp"
#include "storage/ingest_repo.hpp"

#include <caf/send.hpp>

#include <catch2/catch.hpp>

using namespace si;
using namespace si::actors;
using namespace std::chrono_literals;

namespace {

const std::string alice = "GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN";
const std::string bob = "GDEUQ2MX3YXMITFOTC3CO3GW5V3XE3IVG7JKLZZAOZ7WFYIN256INDUS";

domain::operation payment(int64_t ledger, int index, bool successful, int64_t stroops) {
  domain::operation op;
  op.id = (ledger << 32) | (1 << 12) | index;
  op.transaction_hash = std::string(64, 'a');
  op.transaction_successful = successful;
  op.type = "payment";
  op.source_account = alice;
  op.created_at_ms = 1'732'550'400'000 + ledger;
  domain::payment_effect p;
  p.from = alice;
  p.to = bob;
  p.source_asset = domain::native_asset();
  p.destination_asset = domain::asset{"USDC", bob};
  p.source_amount = stroops;
  p.amount = stroops / 10;
  op.payment = p;
  return op;
}

committed_batch batch_of(int64_t last_ledger, std::vector<domain::operation> ops) {
  auto b = std::make_shared<storage::ingest_batch>();
  b->operations = std::move(ops);
  return {b, std::to_string(last_ledger << 32), last_ledger};
}

/// Records what the hub sends it (the test's only subscriber).
class recording_connection final : public net::ws_connection {
 public:
  explicit recording_connection(uint64_t id) : ws_connection(id, "127.0.0.1:1") {}
  net::ws_send_result send(std::shared_ptr<const std::string> m) override {
    messages.push_back(nlohmann::json::parse(*m));
    return net::ws_send_result::queued;
  }
  void close(uint16_t, std::string) override {}
  void drop() override {}
  bool is_open() const override {
    return true;
  }
  std::vector<nlohmann::json> of_type(const std::string& type) const {
    std::vector<nlohmann::json> out;
    for (const auto& m : messages) {
      if (m.value("type", "") == type) {
        out.push_back(m);
      }
    }
    return out;
  }
  std::vector<nlohmann::json> messages;
};

}  // namespace

TEST_CASE("new_payment: successful payment-like operations, exact amounts", "[broadcaster]") {
  auto b = batch_of(100, {payment(100, 1, true, 1'234'567'891), payment(100, 2, false, 5),
                          payment(100, 3, true, 10'000'000)});
  auto sel = select_payments(b, 100, 5, 100, 42);
  REQUIRE(sel.messages.size() == 2);
  const auto& m = sel.messages.front();
  CHECK(m.channels == std::vector<std::string>{"payments"});
  CHECK(m.type == "new_payment");
  auto j = nlohmann::json::parse(m.text);
  CHECK(j.at("type") == "new_payment");
  CHECK(j.at("timestamp") == 42);
  const auto& d = j.at("data");
  CHECK(d.at("id") == std::to_string(b.batch->operations[0].id));
  CHECK(d.at("ledger") == 100);
  CHECK(d.at("from") == alice);
  CHECK(d.at("to") == bob);
  CHECK(d.at("source_asset") == "XLM:native");
  CHECK(d.at("destination_asset") == "USDC:" + bob);
  CHECK(d.at("source_amount") == "123.4567891");
  CHECK(d.at("amount") == "12.3456789");
  CHECK(d.at("corridor_id") == "XLM:native->USDC:" + bob);
  CHECK(d.at("created_at") == 1'732'550'400'100);
  CHECK(sel.skipped_catch_up == 0);
  CHECK(sel.skipped_cap == 0);
}

TEST_CASE("new_payment: nothing from a catch-up batch, at most the cap from one batch",
          "[broadcaster]") {
  std::vector<domain::operation> ops;
  for (int i = 1; i <= 10; ++i) {
    ops.push_back(payment(200, i, true, i));
  }
  auto b = batch_of(200, ops);
  // 6 ledgers behind the tip with a window of 5: a catch-up.
  auto behind = select_payments(b, 206, 5, 100, 0);
  CHECK(behind.messages.empty());
  CHECK(behind.skipped_catch_up == 10);
  // Within the window (or the tip unknown): at most 4, the newest.
  auto capped = select_payments(b, 205, 5, 4, 0);
  REQUIRE(capped.messages.size() == 4);
  CHECK(capped.skipped_cap == 6);
  CHECK(nlohmann::json::parse(capped.messages.front().text)["data"]["source_amount"]
        == "0.0000007");
  CHECK(select_payments(b, 0, 5, 100, 0).messages.size() == 10);
}

TEST_CASE("health_alert for the three webhook event kinds", "[broadcaster]") {
  storage::sync_event corridor{
      "corridor.health_degraded",
      {{"corridor_id", "XLM:native->XLM:native"}, {"current_health", "degraded"}}};
  auto a = alert_message(corridor, 7);
  REQUIRE(a);
  CHECK(a->channels == std::vector<std::string>{"alerts", "corridor:XLM:native->XLM:native"});
  auto j = nlohmann::json::parse(a->text);
  CHECK(j.at("type") == "health_alert");
  CHECK(j.at("data").at("event") == "corridor.health_degraded");
  CHECK(j.at("data").at("details").at("current_health") == "degraded");
  auto anchor = alert_message({"anchor.status_changed", {{"anchor_id", 3}}}, 7);
  REQUIRE(anchor);
  CHECK(anchor->channels == std::vector<std::string>{"alerts"});
  CHECK(alert_message({"pool.liquidity_dropped", {{"pool_id", "ab"}}}, 7));
  CHECK_FALSE(alert_message({"payment.created", {}}, 7));
}

TEST_CASE_METHOD(si::test::coordinator_fixture,
                 "the broadcaster publishes through the hub to the channel's subscribers",
                 "[broadcaster]") {
  auto metrics = std::make_shared<net::metrics_registry>();
  describe_ws_metrics(*metrics);
  ws_endpoint_options eo;
  auto endpoint = std::make_shared<ws_endpoint>(eo);
  ws_hub_options ho;
  ho.endpoint = endpoint;
  auto hub = spawn_ws_hub(sys, ho);
  run_jobs();
  auto conn = std::make_shared<recording_connection>(1);
  caf::anon_send(hub, ws_open_atom_v, net::ws_connection_ptr{conn});
  caf::anon_send(hub, ws_text_atom_v, net::ws_connection_ptr{conn},
                 std::string{R"({"type":"subscribe","channels":["payments","alerts"]})"});
  run_jobs();

  auto progress = std::make_shared<ingest_progress>();
  progress->set_network_latest(300);
  broadcaster_options bo;
  bo.hub = hub;
  bo.progress = progress;
  bo.metrics = metrics;
  bo.max_payments_per_batch = 2;
  bo.now_ms = [] { return int64_t{99}; };
  auto b = spawn_broadcaster(sys, bo);
  run_jobs();

  caf::anon_send(b, publish_atom_v, batch_of(250, {payment(250, 1, true, 1)}));  // catch-up
  caf::anon_send(b, publish_atom_v,
                 batch_of(299, {payment(299, 1, true, 1), payment(299, 2, true, 2),
                                payment(299, 3, true, 3)}));
  sync_changes changes;
  changes.kind = sync_kind::trustlines;  // no lookup; the events still become alerts
  changes.events = {{"pool.liquidity_dropped", {{"pool_id", "ab"}}}};
  caf::anon_send(b, publish_atom_v, changes);
  run_jobs();

  auto payments = conn->of_type("new_payment");
  REQUIRE(payments.size() == 2);
  CHECK(payments[0]["data"]["source_amount"] == "0.0000002");
  CHECK(payments[1]["data"]["source_amount"] == "0.0000003");
  CHECK(payments[1]["timestamp"] == 99);
  REQUIRE(conn->of_type("health_alert").size() == 1);
  CHECK(metrics->value("si_ws_published_total", {{"type", "new_payment"}}) == 2);
  CHECK(metrics->value("si_ws_payments_skipped_total", {{"reason", "catch_up"}}) == 1);
  CHECK(metrics->value("si_ws_payments_skipped_total", {{"reason", "cap"}}) == 1);

  auto reply = std::make_shared<std::string>();
  sys.spawn(
      [=](caf::event_based_actor* s, int) {
        s->request(b, 1s, drain_atom_v).then([=](std::string& counts) { *reply = counts; });
      },
      0);
  run_jobs();
  auto counts = nlohmann::json::parse(*reply);
  CHECK(counts.at("batches") == 2);
  CHECK(counts.at("payments_published") == 2);
  CHECK(counts.at("payments_skipped_catch_up") == 1);
  CHECK(counts.at("payments_skipped_cap") == 1);
  CHECK(counts.at("published") == 3);
  caf::anon_send_exit(hub, caf::exit_reason::kill);
  run_jobs();
}
