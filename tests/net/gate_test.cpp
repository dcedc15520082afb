#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "net/gate.hpp"

using si::net::gate;

TEST_CASE("gate counts holds and releases them with RAII", "[net][gate]") {
  gate g;
  REQUIRE(g.count() == 0);
  {
    auto a = g.enter();
    REQUIRE(a);
    REQUIRE(*a);
    auto b = g.enter();
    REQUIRE(g.count() == 2);
    gate::hold moved = std::move(*b);
    REQUIRE_FALSE(*b);
    REQUIRE(g.count() == 2);
    moved.release();
    REQUIRE_FALSE(moved);
    REQUIRE(g.count() == 1);
    moved.release();  // idempotent
    REQUIRE(g.count() == 1);
  }
  REQUIRE(g.count() == 0);
}

TEST_CASE("a closed gate refuses new work and fires on_drained when empty", "[net][gate]") {
  gate g;
  int fired = 0;
  auto h = g.enter();
  g.on_drained([&] { ++fired; });
  REQUIRE(fired == 0);  // not closed yet
  g.close();
  REQUIRE(g.closed());
  REQUIRE(fired == 0);  // one hold left
  REQUIRE_FALSE(g.enter());
  h->release();
  REQUIRE(fired == 1);
  g.close();  // idempotent: no second firing
  REQUIRE(fired == 1);
  g.on_drained([&] { fired += 10; });  // already drained: runs at once
  REQUIRE(fired == 11);
}

TEST_CASE("closing an empty gate fires the callbacks registered before", "[net][gate]") {
  gate g;
  int fired = 0;
  g.on_drained([&] { ++fired; });
  g.on_drained([&] { ++fired; });
  g.close();
  REQUIRE(fired == 2);
}

TEST_CASE("move-assigning a hold releases the one it replaces", "[net][gate]") {
  gate g;
  auto a = g.enter();
  auto b = g.enter();
  REQUIRE(g.count() == 2);
  *a = std::move(*b);
  REQUIRE(g.count() == 1);
  REQUIRE(*a);
  a->release();
  REQUIRE(g.count() == 0);
}

TEST_CASE("gate is consistent under concurrent enter/leave and close", "[net][gate]") {
  gate g;
  std::atomic<int> fired{0};
  std::atomic<long> entered{0};
  g.on_drained([&] { ++fired; });
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    // Each thread works until the gate refuses it.
    threads.emplace_back([&] {
      while (auto h = g.enter()) {
        ++entered;
      }
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (entered.load() < 10'000 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  const long before_close = entered.load();
  g.close();
  for (auto& t : threads) {
    t.join();
  }
  REQUIRE(before_close >= 10'000);
  REQUIRE(g.count() == 0);
  REQUIRE(fired.load() == 1);
}
