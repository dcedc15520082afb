// HTTPS tests of si::net::webhook_client: self-signed certificates made with the openssl
// CLI, a Beast TLS echo server on 127.0.0.1:0 (support.hpp: tls_receiver), certificate and
// host-name verification, SNI, keep-alive over TLS and a handshake that never completes.

#include <chrono>
#include <stdexcept>
#include <string>

#include <catch2/catch.hpp>

#include "net/webhook_client.hpp"
#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using si::net::webhook_client;
using si::net::webhook_client_options;
using si::net::webhook_error_kind;
using si::net::webhook_request;
using si::net::webhook_result;
using si::test::result_sink;

webhook_client_options tls_options(const std::string& ca_file) {
  webhook_client_options o;
  o.allow_private = true;
  o.default_timeout = 4s;
  o.ca_file = ca_file;
  return o;
}

webhook_request post_to(const std::string& url, std::string body = "hello") {
  webhook_request r;
  r.url = url;
  r.body = std::move(body);
  return r;
}

webhook_result expect_result(result_sink& sink, std::size_t index) {
  auto r = sink.wait(index);
  if (!r) {
    FAIL("no completion for request " << index << " within the wait limit");
  }
  return *r;
}

/// Certificates for the whole file: "good" (localhost, 127.0.0.1) and "wrong" (another name).
struct certs {
  certs() {
    // scripts/test installs the openssl CLI: a missing one is a broken setup, not a skip.
    ok = si::test::make_cert(dir.path, "good", "DNS:localhost,IP:127.0.0.1")
         && si::test::make_cert(dir.path, "wrong", "DNS:wrong.example");
  }
  std::string pem(const std::string& name) const {
    return (dir.path / (name + ".pem")).string();
  }
  std::string key(const std::string& name) const {
    return (dir.path / (name + ".key")).string();
  }
  si::test::temp_dir dir;
  bool ok = false;
};

}  // namespace

TEST_CASE("webhook_client: https with a trusted certificate, by IP and by name (SNI)",
          "[webhook_client][tls]") {
  certs c;
  REQUIRE(c.ok);
  si::test::tls_receiver rx(c.pem("good"), c.key("good"));
  webhook_client client(tls_options(c.pem("good")));
  result_sink sink;
  std::string port = std::to_string(rx.port());

  // By IP: three requests on one TLS connection; no SNI for an IP literal.
  for (std::size_t i = 0; i < 3; ++i) {
    client.post(post_to("https://127.0.0.1:" + port + "/hook", "hello " + std::to_string(i)),
                sink.slot(i));
    auto r = expect_result(sink, i);
    INFO(r.message);
    CHECK(r.status == 200);
    CHECK(r.body_prefix == "tls:hello " + std::to_string(i));
    CHECK(r.reused_connection == (i > 0));
  }
  CHECK(rx.connections() == 1);
  CHECK(client.stats().connections_opened == 1);
  CHECK(client.stats().connections_reused == 2);

  // By name: a second destination (own connection), host name verified, SNI sent.
  client.post(post_to("https://localhost:" + port + "/hook", "by name"), sink.slot(3));
  auto r = expect_result(sink, 3);
  INFO(r.message);
  CHECK(r.status == 200);
  CHECK(r.body_prefix == "tls:by name");
  CHECK(rx.connections() == 2);
  auto names = rx.server_names();
  REQUIRE(names.size() == 2);
  CHECK(names[0].empty());
  CHECK(names[1] == "localhost");
}

TEST_CASE("webhook_client: https verification failures are tls errors", "[webhook_client][tls]") {
  certs c;
  REQUIRE(c.ok);
  result_sink sink;

  SECTION("an untrusted (self-signed) certificate") {
    si::test::tls_receiver rx(c.pem("good"), c.key("good"));
    webhook_client client(tls_options(""));  // system CAs only
    client.post(post_to("https://127.0.0.1:" + std::to_string(rx.port()) + "/"), sink.slot(0));
    auto r = expect_result(sink, 0);
    INFO(r.message);
    CHECK(r.error == webhook_error_kind::tls);
    CHECK(r.message.find("certificate") != std::string::npos);
    CHECK(rx.requests() == 0);
  }
  SECTION("a trusted certificate for another host name") {
    si::test::tls_receiver rx(c.pem("wrong"), c.key("wrong"));
    webhook_client client(tls_options(c.pem("wrong")));
    client.post(post_to("https://localhost:" + std::to_string(rx.port()) + "/"), sink.slot(0));
    auto r = expect_result(sink, 0);
    INFO(r.message);
    CHECK(r.error == webhook_error_kind::tls);
    CHECK(rx.requests() == 0);
  }
  SECTION("https to a plain HTTP server") {
    si::test::receiver rx;
    webhook_client client(tls_options(c.pem("good")));
    client.post(post_to("https://127.0.0.1:" + std::to_string(rx.port()) + "/"), sink.slot(0));
    auto r = expect_result(sink, 0);
    INFO(r.message);
    CHECK(r.error == webhook_error_kind::tls);
    CHECK(rx.arrived() == 0);
  }
  SECTION("a missing ca_file throws") {
    CHECK_THROWS_AS(webhook_client(tls_options(c.pem("absent"))), std::runtime_error);
  }
}

TEST_CASE("webhook_client: a TLS handshake that never completes times out",
          "[webhook_client][tls]") {
  si::test::silent_listener listener;  // connects succeed, nothing is ever answered
  webhook_client client(tls_options(""));
  result_sink sink;
  auto req = post_to("https://127.0.0.1:" + std::to_string(listener.port()) + "/");
  req.timeout = 1000ms;  // ample for a loopback connect, so the handshake is what times out
  client.post(req, sink.slot(0));
  auto r = expect_result(sink, 0);
  INFO(r.message);
  CHECK(r.error == webhook_error_kind::timeout);
  CHECK(r.message.find("TLS handshake") != std::string::npos);
  CHECK(r.duration_ms >= 1000);
}
