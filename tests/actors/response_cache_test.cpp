// Unit tests of the gateway's io-thread page cache.

#include "actors/response_cache.hpp"

#include <catch2/catch.hpp>

using namespace si::actors;
using namespace std::chrono_literals;

TEST_CASE("response cache stores, expires by TTL, and invalidates by glob", "[response_cache]") {
  response_cache c{100};
  c.put("api:/api/v1/anchors?", "/api/v1/anchors", "[1]", "\"e\"", 60s);
  c.put("api:/api/v1/anchors/1?", "/api/v1/anchors/{id}", "{}", "\"e\"", 60s);
  c.put("api:/api/v1/corridors?limit=5", "/api/v1/corridors", "[]", "\"e\"", 60s);
  c.put("api:/gone?", "/gone", "x", "\"e\"", 0ms);  // already expired
  REQUIRE(c.find("api:/api/v1/anchors?"));
  CHECK(c.find("api:/api/v1/anchors?")->body == "[1]");
  CHECK(c.find("api:/api/v1/anchors?")->route == "/api/v1/anchors");
  CHECK_FALSE(c.find("api:/gone?"));
  CHECK_FALSE(c.find("api:/missing?"));
  CHECK(c.invalidate("api:/api/v1/anchors*") == 2);
  CHECK_FALSE(c.find("api:/api/v1/anchors?"));
  CHECK(c.find("api:/api/v1/corridors?limit=5"));
}

TEST_CASE("response cache stays within its size bound", "[response_cache]") {
  response_cache c{3};
  for (int i = 0; i < 10; ++i) {
    c.put("k" + std::to_string(i), "r", "b", "\"e\"", 60s);
    CHECK(c.size() <= 3);
  }
  CHECK(c.find("k9"));
}
