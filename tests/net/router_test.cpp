// Unit tests of the router (path parameters, 404/405 + Allow) and query parsing.

#include "net/router.hpp"

#include <catch2/catch.hpp>

using namespace si::net;

TEST_CASE("router matches literals, parameters, and prefers literals", "[router]") {
  router r;
  r.add("GET", "/api/v1/pools", 1);
  r.add("GET", "/api/v1/pools/stats", 2);
  r.add("GET", "/api/v1/pools/{id}", 3);
  r.add("GET", "/api/v1/pools/{id}/snapshots", 4);
  r.add("POST", "/api/v1/anchors", 5);
  r.add("GET", "/api/v1/anchors", 6);

  auto m = r.match("GET", "/api/v1/pools/stats");
  REQUIRE(m.status == route_status::found);
  CHECK(m.route_id == 2);
  m = r.match("GET", "/api/v1/pools/abc%20def/snapshots");
  REQUIRE(m.status == route_status::found);
  CHECK(m.route_id == 4);
  CHECK(m.params.at("id") == "abc def");
  CHECK(m.pattern == "/api/v1/pools/{id}/snapshots");
  CHECK(r.match("GET", "/api/v1/pools/").route_id == 1);  // trailing slash
  CHECK(r.match("HEAD", "/api/v1/pools").route_id == 1);  // HEAD falls back to GET
  CHECK(r.match("POST", "/api/v1/anchors").route_id == 5);
}

TEST_CASE("router answers 404, 405 with Allow, and bad paths", "[router]") {
  router r;
  r.add("GET", "/health", 1);
  r.add("POST", "/things", 2);
  r.add("GET", "/things", 3);
  CHECK(r.match("GET", "/nope").status == route_status::not_found);
  CHECK(r.match("GET", "/health/extra").status == route_status::not_found);
  auto m = r.match("DELETE", "/things");
  REQUIRE(m.status == route_status::method_not_allowed);
  CHECK(m.allow == "GET, HEAD, POST");
  CHECK(r.match("POST", "/health").allow == "GET, HEAD");
  CHECK(r.match("GET", "health").status == route_status::bad_path);
  r.add("GET", "/items/{id}", 4);
  CHECK(r.match("GET", "/items/%zz").status == route_status::bad_path);
  CHECK(r.match("GET", "/items/%00").status == route_status::bad_path);
  CHECK(r.match("GET", "/items//").status == route_status::not_found);
}

TEST_CASE("query strings decode and reject malformed escapes", "[router]") {
  auto q = parse_query("a=1&b=x%20y&c=p+q&&d&a=2");
  REQUIRE(q.has_value());
  CHECK(q->at("a") == "2");  // last wins
  CHECK(q->at("b") == "x y");
  CHECK(q->at("c") == "p q");
  CHECK(q->at("d").empty());
  CHECK_FALSE(parse_query("a=%4").has_value());
  CHECK_FALSE(parse_query("a=%g1").has_value());
  CHECK(parse_query("")->empty());
  CHECK(url_decode("a+b", false).value() == "a+b");
  CHECK(url_decode("%2F%3a", false).value() == "/:");
}
