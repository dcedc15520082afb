#include <catch2/catch.hpp>

#include "storage/cache_backend.hpp"
#include "support.hpp"

using namespace si::storage;
using namespace std::chrono_literals;
using si::test::fake_clock;

TEST_CASE("memory cache expires entries lazily by the injected clock", "[memory]") {
  fake_clock clock;
  auto cache = make_memory_cache(100, clock.fn());
  CHECK(std::string(cache->name()) == "memory");
  CHECK(cache->healthy());

  cache->set("k", "v", 100ms);
  CHECK(cache->get("k") == "v");
  clock.advance(99ms);
  CHECK(cache->get("k") == "v");
  CHECK(cache->stats().entries == 1);
  clock.advance(1ms);
  CHECK(cache->get("k") == std::nullopt);
  CHECK(cache->stats().entries == 0);  // purged on the access that found it expired

  // Re-setting renews the TTL.
  cache->set("r", "1", 50ms);
  clock.advance(40ms);
  cache->set("r", "2", 50ms);
  clock.advance(40ms);
  CHECK(cache->get("r") == "2");

  // A TTL of zero or less stores nothing.
  cache->set("z", "v", 0ms);
  cache->set("n", "v", -5ms);
  CHECK(cache->get("z") == std::nullopt);
  CHECK(cache->get("n") == std::nullopt);

  const auto s = cache->stats();
  CHECK(s.hits == 3);
  CHECK(s.misses == 3);
  CHECK(s.sets == 3);
  CHECK(s.errors == 0);
}

TEST_CASE("memory cache evicts the least recently used entry past its bound", "[memory]") {
  fake_clock clock;
  auto cache = make_memory_cache(3, clock.fn());
  cache->set("a", "1", 1h);
  cache->set("b", "2", 1h);
  cache->set("c", "3", 1h);
  CHECK(cache->get("a") == "1");  // a is now the most recent; b the least
  cache->set("d", "4", 1h);
  CHECK(cache->stats().evictions == 1);
  CHECK(cache->stats().entries == 3);
  CHECK(cache->get("b") == std::nullopt);
  CHECK(cache->get("a") == "1");
  CHECK(cache->get("c") == "3");
  CHECK(cache->get("d") == "4");

  // Overwriting a present key never evicts; it refreshes recency.
  cache->set("a", "1b", 1h);
  CHECK(cache->stats().evictions == 1);
  cache->set("e", "5", 1h);  // evicts c, the least recent now
  CHECK(cache->stats().evictions == 2);
  CHECK(cache->get("c") == std::nullopt);
  CHECK(cache->get("a") == "1b");

  // An expired tail entry makes room without counting as an eviction.
  auto small = make_memory_cache(1, clock.fn());
  small->set("old", "x", 10ms);
  clock.advance(10ms);
  small->set("new", "y", 10ms);
  CHECK(small->stats().evictions == 0);
  CHECK(small->stats().entries == 1);
  CHECK(small->get("new") == "y");
}

TEST_CASE("memory cache invalidates by glob and counts removed keys", "[memory]") {
  fake_clock clock;
  auto cache = make_memory_cache(1000, clock.fn());
  for (const char* key : {"corridors:list:a", "corridors:list:b", "corridors:detail:x", "anchors:1",
                          "anchors:22", "pools:stats"}) {
    cache->set(key, "v", 1h);
  }
  CHECK(cache->invalidate("nothing:*") == 0);
  CHECK(cache->invalidate("corridors:list:*") == 2);
  CHECK(cache->get("corridors:detail:x") == "v");
  CHECK(cache->invalidate("anchors:?") == 1);
  CHECK(cache->get("anchors:22") == "v");

  // Expired keys are purged but not counted, as Redis would not see them either.
  cache->set("short:1", "v", 5ms);
  clock.advance(5ms);
  CHECK(cache->invalidate("short:*") == 0);
  CHECK(cache->invalidate("*") == 3);
  CHECK(cache->stats().entries == 0);
  CHECK(cache->stats().invalidations == 6);
}

TEST_CASE("a closed memory cache misses and stores nothing", "[memory]") {
  auto cache = make_memory_cache(10);  // default (steady) clock
  cache->set("k", "v", 1h);
  CHECK(cache->get("k") == "v");
  cache->close();
  CHECK_FALSE(cache->healthy());
  CHECK(cache->get("k") == std::nullopt);
  cache->set("k", "v", 1h);
  CHECK(cache->get("k") == std::nullopt);
  CHECK(cache->invalidate("*") == 0);
  const auto s = cache->stats();
  CHECK(s.hits == 1);
  CHECK(s.misses == 2);
  CHECK(s.sets == 1);
}
