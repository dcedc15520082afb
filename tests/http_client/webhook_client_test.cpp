// Tests of si::net::webhook_client over plain HTTP against local receivers on 127.0.0.1:0
// (si::net::http_server, or a scripted raw TCP server for broken peers). Host names other
// than localhost go through fake resolvers; nothing leaves the loopback interface. Every
// wait is bounded (support.hpp: wait_limit); no sleep is used to order events.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "config/logging.hpp"
#include "net/webhook_client.hpp"
#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using si::net::http_request;
using si::net::http_response;
using si::net::ip_address;
using si::net::resolve_result;
using si::net::webhook_client;
using si::net::webhook_client_options;
using si::net::webhook_error_kind;
using si::net::webhook_request;
using si::net::webhook_result;
using si::test::receiver;
using si::test::result_sink;
using si::test::wait_until;

/// Options for loopback receivers: private addresses allowed, short deadlines.
webhook_client_options test_options() {
  webhook_client_options o;
  o.allow_private = true;
  o.default_timeout = 4s;
  o.io_threads = 2;
  return o;
}

webhook_request post_to(const std::string& url, std::string body = R"({"type":"test"})",
                        std::chrono::milliseconds timeout = 4s) {
  webhook_request r;
  r.url = url;
  r.body = std::move(body);
  r.timeout = timeout;
  return r;
}

webhook_result expect_result(result_sink& sink, std::size_t index) {
  auto r = sink.wait(index);
  if (!r) {
    FAIL("no completion for request " << index << " within the wait limit");
  }
  return *r;
}

/// A blocking resolver gate for "hang.example": lookups wait until opened (bounded).
struct hanging_dns {
  struct state {
    std::mutex mutex;
    std::condition_variable cv;
    bool open = false;
    std::atomic<int> entered{0};
  };
  std::shared_ptr<state> s = std::make_shared<state>();

  ~hanging_dns() {
    release();
  }
  void release() {
    {
      std::lock_guard<std::mutex> lock(s->mutex);
      s->open = true;
    }
    s->cv.notify_all();
  }
  si::net::resolver_fn fn() const {
    return [s = s](const std::string& host, std::chrono::milliseconds) {
      if (host == "hang.example") {
        ++s->entered;
        std::unique_lock<std::mutex> lock(s->mutex);
        s->cv.wait_for(lock, si::test::wait_limit, [&] { return s->open; });
        return resolve_result{{}, "released"};
      }
      return resolve_result{{*ip_address::parse("127.0.0.1")}, {}};
    };
  }
};

}  // namespace

TEST_CASE("webhook_client: POST body and headers arrive intact", "[webhook_client]") {
  receiver rx;
  webhook_client client(test_options());
  result_sink sink;
  std::string body = R"({"type":"payment.created","data":{"memo":"caf\u00e9 \"quoted\""}})";
  body += std::string(200 * 1024, 'x');  // more than one socket write
  auto req = post_to(rx.url("/hooks/abc?x=1&y=2"), body);
  req.headers = {{"webhook-id", "msg_2Lq"},
                 {"webhook-timestamp", "1700000000"},
                 {"webhook-signature", "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="},
                 {"X-Repeated", "one"},
                 {"X-Repeated", "two"}};
  client.post(req, sink.slot(0));
  auto r = expect_result(sink, 0);
  INFO(r.message);
  CHECK(r.error == webhook_error_kind::none);
  CHECK(r.status == 200);
  CHECK(r.delivered());
  CHECK(r.body_prefix == "ok");
  CHECK_FALSE(r.body_truncated);
  CHECK_FALSE(r.reused_connection);
  CHECK(r.remote_address == "127.0.0.1:" + std::to_string(rx.port()));
  CHECK(r.duration_ms >= 0);
  CHECK(r.duration_ms < 4000);
  CHECK(sink.thread_of(0) != std::this_thread::get_id());
  CHECK(sink.calls(0) == 1);

  auto got = rx.requests();
  REQUIRE(got.size() == 1);
  CHECK(got[0].method == "POST");
  CHECK(got[0].target == "/hooks/abc?x=1&y=2");
  CHECK(got[0].body == body);
  CHECK(got[0].header("webhook-id") == "msg_2Lq");
  CHECK(got[0].header("webhook-timestamp") == "1700000000");
  CHECK(got[0].header("webhook-signature") == "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=");
  CHECK(got[0].header("Content-Type") == "application/json");
  CHECK(got[0].header("User-Agent") == "stellar-insights-webhooks");
  CHECK(got[0].header("Host") == "127.0.0.1:" + std::to_string(rx.port()));
  CHECK(got[0].header("Content-Length") == std::to_string(body.size()));
  auto repeated = std::count_if(got[0].headers.begin(), got[0].headers.end(),
                                [](const auto& h) { return h.first == "X-Repeated"; });
  CHECK(repeated == 2);

  // A caller's Content-Type and User-Agent replace the defaults (sent once).
  auto custom = post_to(rx.url("/"), "x");
  custom.headers = {{"Content-Type", "application/cloudevents+json"}, {"User-Agent", "t/1"}};
  client.post(custom, sink.slot(1));
  CHECK(expect_result(sink, 1).status == 200);
  got = rx.requests();
  REQUIRE(got.size() == 2);
  CHECK(got[1].header("Content-Type") == "application/cloudevents+json");
  CHECK(got[1].header("User-Agent") == "t/1");
  auto types = std::count_if(got[1].headers.begin(), got[1].headers.end(), [](const auto& h) {
    return si::net::iequals(h.first, "Content-Type");
  });
  CHECK(types == 1);
  CHECK(client.stats().delivered == 2);
}

TEST_CASE("webhook_client: keep-alive reuses one connection", "[webhook_client]") {
  receiver rx;
  webhook_client client(test_options());
  result_sink sink;
  for (std::size_t i = 0; i < 5; ++i) {
    client.post(post_to(rx.url()), sink.slot(i));
    auto r = expect_result(sink, i);
    CHECK(r.status == 200);
    CHECK(r.reused_connection == (i > 0));
  }
  CHECK(rx.server().stats().connections_total == 1);
  auto s = client.stats();
  CHECK(s.connections_opened == 1);
  CHECK(s.connections_reused == 4);
  CHECK(s.requests == 5);
  CHECK(s.completed == 5);
  // The slot is released just after the completion ran.
  REQUIRE(wait_until([&] {
    auto st = client.stats();
    return st.connections_idle == 1 && st.in_flight == 0;
  }));
  CHECK(client.stats().connections_open == 1);
}

TEST_CASE("webhook_client: the per-destination concurrency cap is enforced", "[webhook_client]") {
  receiver rx(/*hold=*/true);
  auto o = test_options();
  o.max_per_destination = 3;
  webhook_client client(o);
  result_sink sink;
  constexpr std::size_t total = 10;
  for (std::size_t i = 0; i < total; ++i) {
    client.post(post_to(rx.url("/n" + std::to_string(i))), sink.slot(i));
  }
  REQUIRE(rx.wait_arrived(3));
  REQUIRE(wait_until([&] {
    auto s = client.stats();
    return s.in_flight == 3 && s.queued == total - 3;
  }));
  CHECK(rx.arrived() == 3);
  for (std::size_t released = 0; released < total; ++released) {
    REQUIRE(rx.wait_arrived(std::min(total, released + 3)));
    CHECK(rx.meter().max <= 3);
    REQUIRE(rx.release_one());
  }
  REQUIRE(sink.wait_count(total));
  CHECK(rx.meter().max == 3);
  for (std::size_t i = 0; i < total; ++i) {
    CHECK(expect_result(sink, i).status == 200);
  }
  // FIFO within the destination: the first three race on their own connections; each
  // later one started alone, when a slot was freed.
  auto got = rx.requests();
  REQUIRE(got.size() == total);
  std::vector<std::string> first{got[0].target, got[1].target, got[2].target};
  std::sort(first.begin(), first.end());
  CHECK(first == std::vector<std::string>{"/n0", "/n1", "/n2"});
  for (std::size_t i = 3; i < total; ++i) {
    CHECK(got[i].target == "/n" + std::to_string(i));
  }
  // Three connections, each reused by the requests that waited for it.
  CHECK(rx.server().stats().connections_total == 3);
  CHECK(client.stats().connections_opened == 3);
  CHECK(client.stats().connections_reused == total - 3);
}

TEST_CASE("webhook_client: the overall cap holds across destinations, FIFO across them",
          "[webhook_client]") {
  auto meter = std::make_shared<si::test::concurrency_meter>();
  receiver a(true, {}, meter);
  receiver b(true, {}, meter);
  auto o = test_options();
  o.max_per_destination = 3;
  o.max_in_flight = 4;
  webhook_client client(o);
  result_sink sink;
  // Posted a0 b0 a1 b1 a2 b2: the first four run, a2 and b2 wait for a global slot.
  for (std::size_t i = 0; i < 6; ++i) {
    auto& rx = i % 2 == 0 ? a : b;
    client.post(post_to(rx.url("/" + std::to_string(i))), sink.slot(i));
  }
  REQUIRE(a.wait_arrived(2));
  REQUIRE(b.wait_arrived(2));
  REQUIRE(wait_until([&] {
    auto s = client.stats();
    return s.in_flight == 4 && s.queued == 2;
  }));
  CHECK(meter->max == 4);
  // Freeing a slot at b starts the oldest waiting request, a2, not b2.
  REQUIRE(b.release_one());
  REQUIRE(a.wait_arrived(3));
  CHECK(b.arrived() == 2);
  CHECK(a.requests().back().target == "/4");
  REQUIRE(a.release_one());
  REQUIRE(b.wait_arrived(3));
  a.release_all();
  b.release_all();
  REQUIRE(sink.wait_count(6));
  for (std::size_t i = 0; i < 6; ++i) {
    CHECK(expect_result(sink, i).status == 200);
  }
  CHECK(meter->max == 4);
}

TEST_CASE("webhook_client: a full queue answers overloaded at once", "[webhook_client]") {
  receiver rx(true);
  auto o = test_options();
  o.max_in_flight = 1;
  o.max_queued = 2;
  webhook_client client(o);
  result_sink sink;
  for (std::size_t i = 0; i < 4; ++i) {
    client.post(post_to(rx.url()), sink.slot(i));
  }
  auto r = expect_result(sink, 3);  // while the first is still held
  CHECK(r.error == webhook_error_kind::overloaded);
  CHECK(r.message.find("queue full") != std::string::npos);
  CHECK(r.status == 0);
  CHECK(sink.count() == 1);
  CHECK(client.stats().overloaded == 1);
  CHECK(client.stats().queued == 2);
  rx.release_all();
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(expect_result(sink, i).status == 200);
  }
  CHECK(rx.arrived() == 3);
}

TEST_CASE("webhook_client: a receiver that never answers times out", "[webhook_client]") {
  receiver rx;
  webhook_client client(test_options());
  result_sink sink;
  // A first answered request leaves a kept-alive connection, so the timed-out one is
  // surely past connecting when its deadline passes, even on a loaded machine.
  client.post(post_to(rx.url()), sink.slot(0));
  REQUIRE(expect_result(sink, 0).status == 200);
  rx.set_hold(true);
  client.post(post_to(rx.url(), "{}", 1000ms), sink.slot(1));
  REQUIRE(rx.wait_arrived(2));
  auto r = expect_result(sink, 1);
  INFO(r.message);
  CHECK(r.error == webhook_error_kind::timeout);
  CHECK(r.message.find("1000 ms") != std::string::npos);
  CHECK(r.message.find("waiting for the response") != std::string::npos);
  CHECK(r.duration_ms >= 1000);
  CHECK(r.duration_ms < 4000);
  CHECK(r.reused_connection);
  CHECK(client.stats().timeouts == 1);
  REQUIRE(wait_until([&] { return client.stats().in_flight == 0; }));
  // The timed-out connection is closed, not reused: the next request opens a new one.
  rx.release_all();
  client.post(post_to(rx.url()), sink.slot(2));
  auto next = expect_result(sink, 2);
  CHECK(next.status == 200);
  CHECK_FALSE(next.reused_connection);
  CHECK(client.stats().connections_opened == 2);
}

TEST_CASE("webhook_client: the deadline covers the time in the queue", "[webhook_client]") {
  receiver rx(true);
  auto o = test_options();
  o.max_in_flight = 1;
  webhook_client client(o);
  result_sink sink;
  client.post(post_to(rx.url("/first")), sink.slot(0));
  REQUIRE(rx.wait_arrived(1));
  client.post(post_to(rx.url("/second"), "{}", 200ms), sink.slot(1));
  auto r = expect_result(sink, 1);
  CHECK(r.error == webhook_error_kind::timeout);
  CHECK(r.message.find("waiting in the queue") != std::string::npos);
  CHECK(client.stats().queued == 0);
  rx.release_all();
  CHECK(expect_result(sink, 0).status == 200);
  CHECK(rx.arrived() == 1);
}

TEST_CASE("webhook_client: connection refused", "[webhook_client]") {
  webhook_client client(test_options());
  result_sink sink;
  auto port = si::test::free_port();
  client.post(post_to("http://127.0.0.1:" + std::to_string(port) + "/"), sink.slot(0));
  auto r = expect_result(sink, 0);
  INFO(r.message);
  CHECK(r.error == webhook_error_kind::connect);
  CHECK(r.message.find("refused") != std::string::npos);
  CHECK(r.status == 0);
  CHECK(r.remote_address.empty());
}

TEST_CASE("webhook_client: statuses are reported and redirects not followed", "[webhook_client]") {
  std::string big(5000, 'e');
  for (std::size_t i = 0; i < big.size(); ++i) {
    big[i] = static_cast<char>('a' + i % 26);
  }
  receiver rx(false, [&](const http_request& req) {
    if (req.path == "/moved") {
      return http_response{302, {{"Location", "/elsewhere"}}, "moved"};
    }
    if (req.path == "/gone") {
      return http_response{410, {{"Content-Type", "text/plain"}}, "gone"};
    }
    if (req.path == "/error") {
      return http_response{500, {{"Content-Type", "text/plain"}}, big};
    }
    return http_response{204, {}, ""};
  });
  webhook_client client(test_options());
  result_sink sink;
  client.post(post_to(rx.url("/moved")), sink.slot(0));
  auto moved = expect_result(sink, 0);
  CHECK(moved.error == webhook_error_kind::none);
  CHECK(moved.status == 302);
  CHECK_FALSE(moved.delivered());
  CHECK(moved.body_prefix == "moved");
  CHECK(rx.arrived() == 1);  // /elsewhere was never asked for

  client.post(post_to(rx.url("/gone")), sink.slot(1));
  auto gone = expect_result(sink, 1);
  CHECK(gone.status == 410);
  CHECK(gone.body_prefix == "gone");

  client.post(post_to(rx.url("/error")), sink.slot(2));
  auto error = expect_result(sink, 2);
  CHECK(error.status == 500);
  CHECK(error.body_prefix.size() == si::net::webhook_body_prefix_limit);
  CHECK(error.body_prefix == big.substr(0, si::net::webhook_body_prefix_limit));
  CHECK_FALSE(error.body_truncated);
  CHECK(error.reused_connection);  // a non-2xx answer keeps the connection

  client.post(post_to(rx.url("/empty")), sink.slot(3));
  auto empty = expect_result(sink, 3);
  CHECK(empty.status == 204);
  CHECK(empty.delivered());
  CHECK(empty.body_prefix.empty());
  CHECK(rx.server().stats().connections_total == 1);
  CHECK(rx.arrived() == 4);
}

TEST_CASE("webhook_client: the response body read is bounded", "[webhook_client]") {
  receiver rx(false, [](const http_request&) {
    return http_response{200, {{"Content-Type", "text/plain"}}, std::string(100 * 1024, 'z')};
  });
  auto o = test_options();
  o.response_body_limit = 16 * 1024;
  webhook_client client(o);
  result_sink sink;
  client.post(post_to(rx.url()), sink.slot(0));
  auto r = expect_result(sink, 0);
  CHECK(r.status == 200);
  CHECK(r.body_truncated);
  CHECK(r.body_prefix == std::string(si::net::webhook_body_prefix_limit, 'z'));
  // The rest was not read, so the connection was closed rather than reused.
  client.post(post_to(rx.url()), sink.slot(1));
  auto next = expect_result(sink, 1);
  CHECK(next.status == 200);
  CHECK_FALSE(next.reused_connection);
  CHECK(client.stats().connections_opened == 2);
}

TEST_CASE("webhook_client: private addresses are blocked unless allowed", "[webhook_client]") {
  receiver rx;
  auto o = test_options();
  o.allow_private = false;
  o.resolver = [](const std::string& host, std::chrono::milliseconds) {
    if (host == "mixed.example") {
      return resolve_result{{*ip_address::parse("93.184.216.34"), *ip_address::parse("127.0.0.1")},
                            {}};
    }
    if (host == "nx.example") {
      return resolve_result{{}, "cannot resolve 'nx.example': Name or service not known"};
    }
    return resolve_result{{*ip_address::parse("127.0.0.1")}, {}};
  };
  webhook_client client(o);
  result_sink sink;
  std::string port = std::to_string(rx.port());
  client.post(post_to(rx.url()), sink.slot(0));
  client.post(post_to("http://hooks.example:" + port + "/"), sink.slot(1));
  client.post(post_to("http://mixed.example:" + port + "/"), sink.slot(2));
  client.post(post_to("http://169.254.169.254/latest/meta-data/"), sink.slot(3));
  client.post(post_to("http://[::ffff:127.0.0.1]:" + port + "/"), sink.slot(4));
  client.post(post_to("http://localhost:" + port + "/"), sink.slot(5));
  client.post(post_to("http://nx.example/"), sink.slot(6));
  client.post(post_to("http://0.0.0.0:" + port + "/"), sink.slot(7));  // reaches localhost
  CHECK(expect_result(sink, 7).error == webhook_error_kind::blocked);
  CHECK(expect_result(sink, 7).message.find("an unspecified address") != std::string::npos);
  for (std::size_t i = 0; i < 6; ++i) {
    auto r = expect_result(sink, i);
    INFO(i << ": " << r.message);
    CHECK(r.error == webhook_error_kind::blocked);
    CHECK(r.remote_address.empty());
  }
  CHECK(expect_result(sink, 1).message.find("resolves to 127.0.0.1") != std::string::npos);
  CHECK(expect_result(sink, 2).message.find("127.0.0.1") != std::string::npos);
  CHECK(expect_result(sink, 3).message.find("cloud metadata") != std::string::npos);
  auto nx = expect_result(sink, 6);
  CHECK(nx.error == webhook_error_kind::resolve);
  CHECK(nx.message.find("nx.example") != std::string::npos);
  CHECK(rx.arrived() == 0);
  CHECK(client.stats().blocked == 7);
  CHECK(client.stats().connections_opened == 0);
}

TEST_CASE("webhook_client: a name resolved by the client keeps its Host header",
          "[webhook_client]") {
  receiver rx;
  auto o = test_options();
  auto calls = std::make_shared<std::atomic<int>>(0);
  o.resolver = [calls](const std::string& host, std::chrono::milliseconds) {
    ++*calls;
    return resolve_result{{*ip_address::parse("127.0.0.1")}, {}};
  };
  webhook_client client(o);
  result_sink sink;
  std::string url = "http://hooks.example:" + std::to_string(rx.port()) + "/in";
  client.post(post_to(url), sink.slot(0));
  CHECK(expect_result(sink, 0).status == 200);
  client.post(post_to(url), sink.slot(1));
  CHECK(expect_result(sink, 1).reused_connection);
  REQUIRE(rx.arrived() == 2);
  CHECK(rx.requests()[0].header("Host") == "hooks.example:" + std::to_string(rx.port()));
  CHECK(*calls == 1);  // a kept-alive connection needs no new lookup
}

TEST_CASE("webhook_client: DNS rebinding after registration is caught at delivery",
          "[webhook_client]") {
  // The name answers a public address the first time (registration) and the receiver's
  // loopback address afterwards (delivery).
  receiver rx;
  auto calls = std::make_shared<std::atomic<int>>(0);
  si::net::resolver_fn rebinding = [calls](const std::string&, std::chrono::milliseconds) {
    const char* ip = (*calls)++ == 0 ? "93.184.216.34" : "127.0.0.1";
    return resolve_result{{*ip_address::parse(ip)}, {}};
  };
  std::string url = "http://rebind.example:" + std::to_string(rx.port()) + "/hook";
  auto registered = si::net::check_url(url, false, rebinding);
  REQUIRE(std::holds_alternative<si::net::vetted_url>(registered));

  auto o = test_options();
  o.allow_private = false;
  o.resolver = rebinding;
  webhook_client client(o);
  result_sink sink;
  client.post(post_to(url), sink.slot(0));
  auto r = expect_result(sink, 0);
  INFO(r.message);
  CHECK(r.error == webhook_error_kind::blocked);
  CHECK(r.message.find("127.0.0.1") != std::string::npos);
  CHECK(rx.arrived() == 0);
  CHECK(*calls == 2);
}

TEST_CASE("webhook_client: a hanging lookup times out and frees its slot", "[webhook_client]") {
  receiver rx;
  hanging_dns dns;
  auto o = test_options();
  o.max_in_flight = 1;
  o.resolver = dns.fn();
  webhook_client client(o);
  result_sink sink;
  client.post(post_to("http://hang.example/", "{}", 200ms), sink.slot(0));
  auto r = expect_result(sink, 0);
  CHECK(r.error == webhook_error_kind::timeout);
  CHECK(r.message.find("resolving 'hang.example'") != std::string::npos);
  // The lookup is still stuck, yet the only slot is free again.
  client.post(post_to(rx.url()), sink.slot(1));
  CHECK(expect_result(sink, 1).status == 200);
  CHECK(dns.s->entered == 1);
}

TEST_CASE("webhook_client: cancel_all ends queued, resolving and in-flight requests",
          "[webhook_client]") {
  receiver rx(true);
  hanging_dns dns;
  auto o = test_options();
  o.max_per_destination = 2;
  o.resolver = dns.fn();
  webhook_client client(o);
  result_sink sink;
  for (std::size_t i = 0; i < 4; ++i) {
    client.post(post_to(rx.url(), "{}", 4s), sink.slot(i));  // 2 in flight, 2 queued
  }
  client.post(post_to("http://hang.example/", "{}", 4s), sink.slot(4));
  REQUIRE(rx.wait_arrived(2));
  REQUIRE(wait_until([&] { return dns.s->entered == 1 && client.stats().queued == 2; }));
  auto before = std::chrono::steady_clock::now();
  client.cancel_all();
  REQUIRE(sink.wait_count(5, 2s));
  auto took = std::chrono::steady_clock::now() - before;
  CHECK(took < 1s);
  for (std::size_t i = 0; i < 5; ++i) {
    auto r = expect_result(sink, i);
    INFO(i << ": " << r.message);
    CHECK(r.error == webhook_error_kind::cancelled);
  }
  REQUIRE(wait_until([&] {
    auto s = client.stats();
    return s.in_flight == 0 && s.queued == 0 && s.connections_open == 0;
  }));
  CHECK(client.stats().cancelled == 5);
  CHECK(rx.arrived() == 2);
  // Still usable; and the server answering the cancelled requests changes nothing.
  rx.release_all();
  client.post(post_to(rx.url()), sink.slot(5));
  CHECK(expect_result(sink, 5).status == 200);
  for (std::size_t i = 0; i < 6; ++i) {
    CHECK(sink.calls(i) == 1);
  }
}

TEST_CASE("webhook_client: stop() cancels in-flight work; later posts complete at once",
          "[webhook_client]") {
  receiver rx(true);
  result_sink sink;
  webhook_client client(test_options());
  client.post(post_to(rx.url()), sink.slot(0));
  client.post(post_to(rx.url()), sink.slot(1));
  REQUIRE(rx.wait_arrived(2));
  auto before = std::chrono::steady_clock::now();
  client.stop();
  CHECK(std::chrono::steady_clock::now() - before < 1s);
  REQUIRE(sink.count() == 2);  // stop() returns after every completion ran
  CHECK(expect_result(sink, 0).error == webhook_error_kind::cancelled);
  CHECK(expect_result(sink, 1).error == webhook_error_kind::cancelled);
  CHECK(client.stats().connections_open == 0);
  client.post(post_to(rx.url()), sink.slot(2));
  REQUIRE(sink.count() == 3);
  CHECK(expect_result(sink, 2).error == webhook_error_kind::cancelled);
  CHECK(sink.thread_of(2) == std::this_thread::get_id());
  client.stop();  // idempotent
}

TEST_CASE("webhook_client: a connection the server closed while idle is not reused",
          "[webhook_client]") {
  si::net::http_server_options so;
  so.keep_alive_idle_timeout = 100ms;
  receiver rx(false, {}, {}, so);
  webhook_client client(test_options());
  result_sink sink;
  client.post(post_to(rx.url()), sink.slot(0));
  CHECK(expect_result(sink, 0).status == 200);
  REQUIRE(wait_until([&] { return rx.server().stats().connections_open == 0; }));
  client.post(post_to(rx.url()), sink.slot(1));
  auto r = expect_result(sink, 1);
  CHECK(r.status == 200);
  CHECK_FALSE(r.reused_connection);
  CHECK(client.stats().connections_opened == 2);
  CHECK(client.stats().stale_retries == 0);
}

TEST_CASE("webhook_client: a kept-alive connection closed under the request is resent once",
          "[webhook_client]") {
  constexpr const char* ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  // Connection 0 answers its first request, then closes on the second without answering.
  si::test::raw_server raw([&](std::size_t conn, std::size_t n, const std::string&) {
    return conn == 0 && n == 1 ? std::optional<std::string>() : std::optional<std::string>(ok);
  });
  webhook_client client(test_options());
  result_sink sink;
  std::string url = "http://127.0.0.1:" + std::to_string(raw.port()) + "/";
  client.post(post_to(url), sink.slot(0));
  CHECK(expect_result(sink, 0).status == 200);
  client.post(post_to(url), sink.slot(1));
  auto r = expect_result(sink, 1);
  INFO(r.message);
  CHECK(r.status == 200);
  CHECK_FALSE(r.reused_connection);
  CHECK(client.stats().stale_retries == 1);
  CHECK(raw.connections() == 2);
}

TEST_CASE("webhook_client: a fresh connection closed without an answer is not resent",
          "[webhook_client]") {
  si::test::raw_server raw(
      [](std::size_t, std::size_t, const std::string&) { return std::optional<std::string>(); });
  webhook_client client(test_options());
  result_sink sink;
  client.post(post_to("http://127.0.0.1:" + std::to_string(raw.port()) + "/"), sink.slot(0));
  auto r = expect_result(sink, 0);
  INFO(r.message);
  CHECK(r.error == webhook_error_kind::connection);
  CHECK(r.message.find("waiting for the response") != std::string::npos);
  CHECK(raw.connections() == 1);
  CHECK(client.stats().stale_retries == 0);
}

TEST_CASE("webhook_client: a response that is not HTTP is a protocol error", "[webhook_client]") {
  si::test::raw_server raw([](std::size_t, std::size_t, const std::string&) {
    return std::optional<std::string>("SSH-2.0-OpenSSH_9.2\r\n\r\n");
  });
  webhook_client client(test_options());
  result_sink sink;
  client.post(post_to("http://127.0.0.1:" + std::to_string(raw.port()) + "/"), sink.slot(0));
  auto r = expect_result(sink, 0);
  INFO(r.message);
  CHECK(r.error == webhook_error_kind::protocol);
}

TEST_CASE("webhook_client: idle connections close after idle_timeout", "[webhook_client]") {
  receiver rx;
  auto o = test_options();
  o.idle_timeout = 100ms;
  webhook_client client(o);
  result_sink sink;
  client.post(post_to(rx.url()), sink.slot(0));
  CHECK(expect_result(sink, 0).status == 200);
  REQUIRE(wait_until([&] {
    auto s = client.stats();
    return s.connections_open == 0 && s.connections_idle == 0;
  }));
  REQUIRE(wait_until([&] { return rx.server().stats().connections_open == 0; }));
}

TEST_CASE("webhook_client: invalid requests are refused without I/O", "[webhook_client]") {
  receiver rx;
  webhook_client client(test_options());
  result_sink sink;
  client.post(post_to("ftp://127.0.0.1/"), sink.slot(0));
  auto smuggle = post_to(rx.url());
  smuggle.headers = {{"X-Evil", "a\r\nX-Injected: 1"}};
  client.post(smuggle, sink.slot(1));
  auto framing = post_to(rx.url());
  framing.headers = {{"Content-Length", "0"}};
  client.post(framing, sink.slot(2));
  auto name = post_to(rx.url());
  name.headers = {{"Bad Name", "x"}};
  client.post(name, sink.slot(3));
  for (std::size_t i = 0; i < 4; ++i) {
    auto r = expect_result(sink, i);
    INFO(i << ": " << r.message);
    CHECK(r.error == webhook_error_kind::invalid_request);
    CHECK(sink.thread_of(i) != std::this_thread::get_id());
  }
  CHECK(expect_result(sink, 0).message.find("scheme 'ftp'") != std::string::npos);
  CHECK(expect_result(sink, 2).message.find("Content-Length") != std::string::npos);
  CHECK(rx.arrived() == 0);
}

TEST_CASE("webhook_client: throughput against a local receiver", "[.bench][webhook_client]") {
  si::config::logger("http_gateway")->set_level(spdlog::level::warn);  // no access log
  receiver rx;
  auto o = test_options();
  o.max_per_destination = 8;
  o.max_in_flight = 64;
  o.max_queued = 100'000;
  webhook_client client(o);
  result_sink sink;
  constexpr std::size_t total = 20'000;
  auto start = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < total; ++i) {
    client.post(post_to(rx.url(), std::string(512, 'p'), 30s), sink.slot(i));
  }
  REQUIRE(sink.wait_count(total, 60s));
  auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(client.stats().delivered == total);
  WARN(total << " POSTs in " << seconds << " s = " << static_cast<long>(total / seconds)
             << " req/s over " << rx.server().stats().connections_total << " connections");
}
