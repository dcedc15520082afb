// Actor-level tests of ws_hub (protocol, fan-out, rate limit, shutdown) and of its admission
// (ws_endpoint) with recording fake connections, on CAF's deterministic test_coordinator:
// time moves only through advance().

#include "actors/ws_hub.hpp"
#include "fixture.hpp"
#include "net/http_server.hpp"
#include "net/prometheus.hpp"

#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace si;
using namespace si::actors;
using namespace std::chrono_literals;

namespace {

/// A ws_connection that records what the hub does with it. `queue_limit` > 0 makes the
/// send after that many messages an overflow (as the transport's bounded queue does).
class fake_connection final : public net::ws_connection {
 public:
  explicit fake_connection(uint64_t id, std::size_t queue_limit = 0)
      : ws_connection(id, "127.0.0.1:" + std::to_string(40000 + id)), limit_(queue_limit) {}

  net::ws_send_result send(std::shared_ptr<const std::string> message) override {
    if (!open_) {
      return net::ws_send_result::closed;
    }
    if (limit_ > 0 && messages.size() >= limit_) {
      open_ = false;
      overflowed = true;
      return net::ws_send_result::overflow;
    }
    messages.push_back(std::move(message));
    return net::ws_send_result::queued;
  }
  void close(uint16_t code, std::string reason) override {
    if (close_code) {
      return;
    }
    open_ = false;
    close_code = code;
    close_reason = std::move(reason);
  }
  void drop() override {
    open_ = false;
    dropped = true;
  }
  bool is_open() const override {
    return open_;
  }

  nlohmann::json json(std::size_t i) const {
    return nlohmann::json::parse(*messages.at(i));
  }
  nlohmann::json last() const {
    REQUIRE_FALSE(messages.empty());
    return nlohmann::json::parse(*messages.back());
  }
  std::vector<std::string> types() const {
    std::vector<std::string> t;
    for (const auto& m : messages) {
      t.push_back(nlohmann::json::parse(*m).value("type", ""));
    }
    return t;
  }

  std::vector<std::shared_ptr<const std::string>> messages;
  std::optional<uint16_t> close_code;
  std::string close_reason;
  bool dropped = false;
  bool overflowed = false;

 private:
  std::size_t limit_;
  bool open_ = true;
};

using fake_ptr = std::shared_ptr<fake_connection>;

struct hub_fixture : si::test::coordinator_fixture {
  std::shared_ptr<net::metrics_registry> metrics = [] {
    auto m = std::make_shared<net::metrics_registry>();
    describe_ws_metrics(*m);
    return m;
  }();
  std::shared_ptr<ws_endpoint> endpoint;
  ws_hub_actor hub;

  void start(unsigned rate = 5, std::size_t max_connections = 100,
             std::optional<std::string> token = std::nullopt) {
    ws_endpoint_options eo;
    eo.max_connections = max_connections;
    eo.auth_token = std::move(token);
    eo.metrics = metrics;
    endpoint = std::make_shared<ws_endpoint>(eo);
    spawn_hub(rate);
  }

  void spawn_hub(unsigned rate = 5) {
    ws_hub_options o;
    o.endpoint = endpoint;
    o.metrics = metrics;
    o.message_rate = rate;
    o.max_channels = 4;
    o.grace = 500ms;
    o.deadline = 5s;  // the hub stops waiting at 4.5 s
    o.reconnect_after = 1'500ms;
    hub = spawn_ws_hub(sys, o);
    run_jobs();
  }

  ~hub_fixture() {
    // The system waits for every actor: a hub that did not drain is stopped here.
    caf::anon_send_exit(hub, caf::exit_reason::kill);
    run_jobs();
  }

  fake_ptr open(uint64_t id, std::size_t queue_limit = 0) {
    auto c = std::make_shared<fake_connection>(id, queue_limit);
    caf::anon_send(hub, ws_open_atom_v, net::ws_connection_ptr{c});
    run_jobs();
    return c;
  }

  void text(const fake_ptr& c, const std::string& message) {
    caf::anon_send(hub, ws_text_atom_v, net::ws_connection_ptr{c}, message);
    run_jobs();
  }

  void closed(const fake_ptr& c, uint16_t code, bool clean) {
    caf::anon_send(hub, ws_closed_atom_v, net::ws_connection_ptr{c}, code, clean);
    run_jobs();
  }

  /// Publishes `text` on `channels` through a request; returns the hub's reply.
  std::optional<uint64_t> publish(std::vector<std::string> channels, const std::string& text) {
    auto result = std::make_shared<std::optional<uint64_t>>();
    auto payload = std::make_shared<const std::string>(text);
    sys.spawn(
        [h = hub, channels, payload, result](caf::event_based_actor* s, int) {
          s->request(h, 1s, publish_atom_v, channels, ws_payload{payload}).then([=](uint64_t n) {
            *result = n;
          });
        },
        0);
    run_jobs();
    return *result;
  }

  /// Sends drain_atom; the reply (or error text) lands in the result when it comes.
  std::shared_ptr<std::optional<std::string>> drain() {
    auto reply = std::make_shared<std::optional<std::string>>();
    sys.spawn(
        [h = hub, reply](caf::event_based_actor* s, int) {
          s->request(h, 10s, drain_atom_v)
              .then([=](std::string& counts) { *reply = counts; },
                    [=](caf::error& e) { *reply = "error: " + to_string(e); });
        },
        0);
    run_jobs();
    return reply;
  }

  double metric(const std::string& name, const net::metric_labels& labels = {}) {
    return metrics->value(name, labels);
  }
};

std::string subscribe(std::vector<std::string> channels, const char* type = "subscribe") {
  return nlohmann::json{{"type", type}, {"channels", channels}}.dump();
}

}  // namespace

TEST_CASE_METHOD(hub_fixture, "a new connection is greeted with its connection id", "[ws_hub]") {
  start();
  auto c = open(7);
  REQUIRE(c->messages.size() == 1);
  CHECK(c->json(0) == nlohmann::json{{"type", "connected"}, {"connection_id", 7}});
  CHECK(metric("si_ws_connections") == 1);
  CHECK(metric("si_ws_messages_sent_total", {{"kind", "control"}}) == 1);
  closed(c, 1000, true);
  CHECK(metric("si_ws_connections") == 0);
}

TEST_CASE_METHOD(hub_fixture, "subscribe and unsubscribe are confirmed with canonical names",
                 "[ws_hub]") {
  start();
  auto c = open(1);
  text(c, subscribe({"payments", "corridor:native->native", "payments"}));
  CHECK(c->last()
        == nlohmann::json{{"type", "subscription_confirm"},
                          {"channels", {"payments", "corridor:XLM:native->XLM:native"}},
                          {"status", "subscribed"}});
  CHECK(publish({"corridor:XLM:native->XLM:native"}, R"({"type":"corridor_update"})") == 1u);
  text(c, subscribe({"payments"}, "unsubscribe"));
  CHECK(c->last()
        == nlohmann::json{{"type", "subscription_confirm"},
                          {"channels", {"payments"}},
                          {"status", "unsubscribed"}});
  CHECK(publish({"payments"}, R"({"type":"new_payment"})") == 0u);
  CHECK(publish({"corridor:XLM:native->XLM:native"}, R"({"type":"corridor_update"})") == 1u);
}

TEST_CASE_METHOD(hub_fixture,
                 "a message reaches only the subscribers of its channels, once, "
                 "from one shared buffer",
                 "[ws_hub]") {
  start();
  auto a = open(1);
  auto b = open(2);
  auto c = open(3);
  auto idle = open(4);
  text(a, subscribe({"payments"}));
  text(b, subscribe({"pools"}));
  text(c, subscribe({"payments", "alerts"}));
  auto before = [](const fake_ptr& f) { return f->messages.size(); };
  auto na = before(a), nb = before(b), nc = before(c), ni = before(idle);

  CHECK(publish({"payments"}, R"({"type":"new_payment","n":1})") == 2u);
  REQUIRE(a->messages.size() == na + 1);
  REQUIRE(c->messages.size() == nc + 1);
  CHECK(b->messages.size() == nb);
  CHECK(idle->messages.size() == ni);
  // The same buffer, not a copy per client.
  CHECK(a->messages.back().get() == c->messages.back().get());

  // A client on two of the channels gets the message once.
  CHECK(publish({"alerts", "payments", "pools"}, R"({"type":"health_alert"})") == 3u);
  CHECK(c->messages.size() == nc + 2);
  CHECK(a->messages.size() == na + 2);
  CHECK(b->messages.size() == nb + 1);
  CHECK(idle->messages.size() == ni);
  CHECK(publish({"anchors"}, R"({"type":"anchor_update"})") == 0u);
  CHECK(metric("si_ws_messages_sent_total", {{"kind", "broadcast"}}) == 5);

  // A closed connection leaves its channels.
  closed(a, 1000, true);
  CHECK(publish({"payments"}, R"({"type":"new_payment","n":2})") == 1u);
}

TEST_CASE_METHOD(hub_fixture, "a slow client overflows alone and is counted", "[ws_hub]") {
  start();
  auto slow = open(1, 3);  // connected + confirmation + 1 message fit
  auto fast = open(2);
  text(slow, subscribe({"payments"}));
  text(fast, subscribe({"payments"}));
  for (int i = 0; i < 5; ++i) {
    publish({"payments"}, R"({"type":"new_payment"})");
  }
  CHECK(slow->overflowed);
  CHECK(slow->messages.size() == 3);
  CHECK(fast->messages.size() == 2 + 5);
  CHECK(metric("si_ws_slow_client_closes_total") == 1);
  CHECK(metric("si_ws_messages_dropped_total") == 1);
}

TEST_CASE_METHOD(hub_fixture, "ping is answered with pong and the client's timestamp", "[ws_hub]") {
  start();
  auto c = open(1);
  text(c, R"({"type":"ping","timestamp":1732550400123})");
  CHECK(c->last() == nlohmann::json{{"type", "pong"}, {"timestamp", 1732550400123}});
  text(c, R"({"type":"ping"})");
  CHECK(c->last().at("type") == "pong");
  CHECK(c->last().at("timestamp").get<int64_t>() > 1'600'000'000'000);
}

TEST_CASE_METHOD(hub_fixture, "protocol errors are answered with error and keep the connection",
                 "[ws_hub]") {
  start(100);
  auto c = open(1);
  auto error_of = [&](const std::string& message) {
    text(c, message);
    auto last = c->last();
    CHECK(last.at("type") == "error");
    return last.value("message", "");
  };
  CHECK(error_of("{not json") == "invalid JSON");
  CHECK(error_of("[1,2]") == "a message must be a JSON object with a string \"type\"");
  CHECK(error_of(R"({"type":7})") == "a message must be a JSON object with a string \"type\"");
  CHECK(error_of(R"({"type":"dance"})") == "unknown message type 'dance'");
  CHECK(error_of(subscribe({"payments", "weather"})) == "unknown channel 'weather'");
  CHECK(error_of(subscribe({"corridor:USD->EUR"})) == "unknown channel 'corridor:USD->EUR'");
  CHECK(error_of(R"({"type":"subscribe","channels":"payments"})")
        == "\"channels\" must be a non-empty array of channel names");
  CHECK(error_of(R"({"type":"subscribe","channels":[]})")
        == "\"channels\" must be a non-empty array of channel names");
  CHECK(error_of(subscribe({"payments", "pools", "alerts", "anchors", "corridors"}))
        == "at most 4 channels per connection");
  // Nothing was subscribed by the refused requests.
  CHECK(publish({"payments"}, R"({"type":"new_payment"})") == 0u);
  CHECK(c->is_open());
  CHECK_FALSE(c->close_code);
}

TEST_CASE_METHOD(hub_fixture, "a client over the message rate gets an error, then close 1008",
                 "[ws_hub]") {
  start(5);
  auto c = open(1);
  auto calm = open(2);
  for (int i = 0; i < 5; ++i) {
    text(c, R"({"type":"ping","timestamp":1})");
  }
  CHECK_FALSE(c->close_code);
  CHECK(c->types().back() == "pong");
  text(c, R"({"type":"ping","timestamp":1})");
  CHECK(c->last()
        == nlohmann::json{{"type", "error"},
                          {"message",
                           "rate limit exceeded: at most 5 messages per "
                           "second"}});
  REQUIRE(c->close_code);
  CHECK(*c->close_code == 1008);
  CHECK(metric("si_ws_rate_limit_closes_total") == 1);

  // The bucket refills with time: 5 per second, whatever the burst before.
  for (int i = 0; i < 5; ++i) {
    text(calm, R"({"type":"ping","timestamp":2})");
  }
  advance(400ms);  // 2 tokens back
  text(calm, R"({"type":"ping","timestamp":3})");
  text(calm, R"({"type":"ping","timestamp":4})");
  CHECK_FALSE(calm->close_code);
  text(calm, R"({"type":"ping","timestamp":5})");
  CHECK(calm->close_code == std::optional<uint16_t>{1008});
}

TEST_CASE_METHOD(hub_fixture, "shutdown: server_shutdown, grace, close 1001, then the report",
                 "[ws_hub][shutdown]") {
  start();
  auto a = open(1);
  auto b = open(2);
  auto c = open(3);
  text(a, subscribe({"payments"}));
  auto reply = drain();
  for (const auto& f : {a, b, c}) {
    CHECK(f->last()
          == nlohmann::json{{"type", "server_shutdown"},
                            {"message", "the server is shutting down; reconnect shortly"},
                            {"reconnect_after_ms", 1500}});
    CHECK_FALSE(f->close_code);
  }
  // No channel traffic after server_shutdown; no new upgrades.
  CHECK(publish({"payments"}, R"({"type":"new_payment"})") == 0u);
  net::ws_upgrade_request up;
  up.path = "/ws";
  CHECK(endpoint->decide(up).rejection.status == 503);

  advance(499ms);
  CHECK_FALSE(a->close_code);
  advance(1ms);
  for (const auto& f : {a, b, c}) {
    CHECK(f->close_code == std::optional<uint16_t>{1001});
  }
  // Two answer the close; the third never does.
  closed(a, 1001, true);
  closed(b, 1001, true);
  CHECK_FALSE(reply->has_value());
  advance(3'999ms);  // 4.5 s after the drain began
  CHECK_FALSE(reply->has_value());
  advance(1ms);
  REQUIRE(reply->has_value());
  auto counts = nlohmann::json::parse(**reply);
  CHECK(counts.at("connections") == 3);
  CHECK(counts.at("notified") == 3);
  CHECK(counts.at("closed_cleanly") == 2);
  CHECK(counts.at("dropped") == 1);
  CHECK(c->dropped);
  CHECK_FALSE(a->dropped);
}

TEST_CASE_METHOD(hub_fixture, "shutdown reports as soon as the last client answered",
                 "[ws_hub][shutdown]") {
  start();
  auto a = open(1);
  auto b = open(2);
  auto reply = drain();
  advance(500ms);
  closed(a, 1001, true);
  CHECK_FALSE(reply->has_value());
  closed(b, 1006, false);  // reset instead of a close reply
  REQUIRE(reply->has_value());
  auto counts = nlohmann::json::parse(**reply);
  CHECK(counts.at("connections") == 2);
  CHECK(counts.at("closed_cleanly") == 1);
  CHECK(counts.at("dropped") == 1);
}

TEST_CASE_METHOD(hub_fixture, "a connection opened during the drain gets the same sequence",
                 "[ws_hub][shutdown]") {
  start();
  auto a = open(1);
  auto reply = drain();
  auto late = open(2);
  CHECK(late->types() == std::vector<std::string>{"server_shutdown"});
  advance(500ms);
  auto later = open(3);
  CHECK(later->close_code == std::optional<uint16_t>{1001});
  closed(a, 1001, true);
  closed(late, 1001, true);
  closed(later, 1001, true);
  REQUIRE(reply->has_value());
  auto counts = nlohmann::json::parse(**reply);
  CHECK(counts.at("connections") == 3);
  CHECK(counts.at("notified") == 2);
  CHECK(counts.at("closed_cleanly") == 3);
  CHECK(counts.at("dropped") == 0);
}

TEST_CASE_METHOD(hub_fixture,
                 "shutdown without connections reports at once and releases the "
                 "server it was handed",
                 "[ws_hub][shutdown]") {
  start();
  net::http_server_options so;
  so.host = "127.0.0.1";
  so.io_threads = 1;
  auto server = std::make_shared<net::http_server>(so, [](net::http_request, net::respond_fn) {});
  server->start();
  std::weak_ptr<net::http_server> watch = server;
  caf::anon_send(hub, adopt_atom_v, server_lease{std::move(server)});
  run_jobs();
  CHECK_FALSE(watch.expired());
  auto reply = drain();
  REQUIRE(reply->has_value());
  CHECK(nlohmann::json::parse(**reply)
        == nlohmann::json::parse(R"({"connections":0,"notified":0,"closed_cleanly":0,
            "dropped":0,"messages_sent":0,"slow_client_closes":0})"));
  run_jobs();
  CHECK(watch.expired());
}

TEST_CASE_METHOD(hub_fixture, "admission: path, token, connection limit", "[ws_hub][admission]") {
  start(5, 2, std::string{"s3cret"});
  net::ws_upgrade_request req;
  req.path = "/ws";
  req.request_id = "r1";
  auto status = [&](const std::string& path, const std::string& query) {
    req.path = path;
    req.query = query;
    auto d = endpoint->decide(req);
    return d.accepted ? 101 : d.rejection.status;
  };
  CHECK(status("/other", "token=s3cret") == 404);
  CHECK(status("/ws", "") == 401);
  CHECK(status("/ws", "token=s3cre") == 401);
  CHECK(status("/ws", "token=s3cretX") == 401);
  CHECK(status("/ws", "token=%zz") == 401);
  CHECK(metric("si_ws_upgrades_refused_total", {{"reason", "auth"}}) == 4);
  req.query = "token=s3cret";
  auto first = endpoint->decide(req);
  auto second = endpoint->decide(req);
  REQUIRE(first.accepted);
  REQUIRE(second.accepted);
  CHECK(endpoint->connections() == 2);
  auto third = endpoint->decide(req);
  CHECK(third.rejection.status == 503);
  CHECK(nlohmann::json::parse(third.rejection.body)["error"]["code"] == "TOO_MANY_CONNECTIONS");
  CHECK(metric("si_ws_upgrades_refused_total", {{"reason", "full"}}) == 1);
  // A connection that ends (even one whose handshake failed) frees its slot.
  auto c = std::make_shared<fake_connection>(11);
  first.handlers.on_closed(c, 1006, false);
  run_jobs();
  CHECK(endpoint->connections() == 1);
  CHECK(endpoint->decide(req).accepted);
  CHECK(endpoint->connections() == 2);

  // The callbacks reach the hub: on_open greets, on_text is handled.
  auto d = std::make_shared<fake_connection>(12);
  second.handlers.on_open(d);
  run_jobs();
  CHECK(d->types() == std::vector<std::string>{"connected"});
  second.handlers.on_text(d, R"({"type":"ping","timestamp":9})");
  run_jobs();
  CHECK(d->last() == nlohmann::json{{"type", "pong"}, {"timestamp", 9}});
}

TEST_CASE_METHOD(hub_fixture, "a restarted hub closes its predecessor's connections with 1012",
                 "[ws_hub]") {
  start();
  net::ws_upgrade_request req;
  req.path = "/ws";
  auto d = endpoint->decide(req);
  REQUIRE(d.accepted);
  auto c = std::make_shared<fake_connection>(5);
  d.handlers.on_open(c);
  run_jobs();
  CHECK(c->types() == std::vector<std::string>{"connected"});
  caf::anon_send_exit(hub, caf::exit_reason::kill);
  run_jobs();
  spawn_hub();
  CHECK(c->close_code == std::optional<uint16_t>{1012});
  // New connections report to the new hub.
  auto d2 = endpoint->decide(req);
  REQUIRE(d2.accepted);
  auto c2 = std::make_shared<fake_connection>(6);
  d2.handlers.on_open(c2);
  run_jobs();
  CHECK(c2->types() == std::vector<std::string>{"connected"});
  CHECK_FALSE(c2->close_code);
}

TEST_CASE("channel names of api.md", "[ws_hub]") {
  CHECK(canonical_channel("corridors") == "corridors");
  CHECK(canonical_channel("alerts") == "alerts");
  CHECK(canonical_channel("corridor:native->XLM:native") == "corridor:XLM:native->XLM:native");
  CHECK_FALSE(canonical_channel("corridor:"));
  CHECK_FALSE(canonical_channel("Payments"));
  CHECK_FALSE(canonical_channel(""));
  CHECK(ws_cut_after(5s) == 4'500ms);
  CHECK(ws_cut_after(1s) == 800ms);
}
