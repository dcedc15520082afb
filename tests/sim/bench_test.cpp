// The simulator's serve rate for 200-operation pages (hidden: run `test_sim "[.bench]"`).
// Keep-alive loopback connections, each walking distinct pages of a warm chain with a
// minimal raw HTTP client, so the client costs little next to the server.
// Knobs: SIM_BENCH_SECONDS (5), SIM_BENCH_CONNECTIONS (2), SIM_BENCH_THREADS (1, the
// simulator's io threads), SIM_BENCH_CACHE_MB (1024; 16 makes nearly every page a miss, so
// it measures generation as well).

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "tests/sim/support.hpp"

using namespace si;
using namespace si::test;

namespace {

int env_int(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::atoi(value) : fallback;
}

struct bench_totals {
  std::atomic<uint64_t> pages{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> failures{0};
};

/// Requests `targets` round-robin on one keep-alive connection until `deadline`.
void bench_connection(uint16_t port, const std::vector<std::string>& targets, std::size_t offset,
                      std::chrono::steady_clock::time_point deadline, bench_totals& totals) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    totals.failures += 1;
    ::close(fd);
    return;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::vector<char> buffer(1 << 20);
  for (std::size_t i = offset; std::chrono::steady_clock::now() < deadline; ++i) {
    const std::string request =
        "GET " + targets[i % targets.size()] + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) < 0) {
      totals.failures += 1;
      break;
    }
    std::size_t have = 0;
    std::size_t need = 0;  // head + body, once the head is complete
    while (need == 0 || have < need) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 5000) <= 0) {
        totals.failures += 1;
        ::close(fd);
        return;
      }
      const ssize_t n = ::recv(fd, buffer.data() + have, buffer.size() - have, 0);
      if (n <= 0) {
        totals.failures += 1;
        ::close(fd);
        return;
      }
      have += static_cast<std::size_t>(n);
      if (need == 0) {
        const std::string_view text(buffer.data(), have);
        const auto end = text.find("\r\n\r\n");
        if (end != std::string_view::npos) {
          const auto at = text.find("Content-Length: ");
          if (text.substr(9, 3) != "200" || at == std::string_view::npos || at > end) {
            totals.failures += 1;
            ::close(fd);
            return;
          }
          need = end + 4 + std::stoul(std::string(text.substr(at + 16, 12)));
          if (need > buffer.size()) {
            buffer.resize(need);
          }
        }
      }
    }
    totals.pages += 1;
    totals.bytes += have;
  }
  ::close(fd);
}

}  // namespace

TEST_CASE("serve rate of 200-operation pages", "[.bench][sim]") {
  const int seconds = env_int("SIM_BENCH_SECONDS", 5);
  const int connections = env_int("SIM_BENCH_CONNECTIONS", 2);
  const int threads = env_int("SIM_BENCH_THREADS", 1);
  const int cache_mb = env_int("SIM_BENCH_CACHE_MB", 1024);
  sim_process sim({"--threads", std::to_string(threads), "--ledgers", "3000", "--tx-per-ledger",
                   "20", "--ops-per-tx", "4", "--cache-mb", std::to_string(cache_mb), "--base-time",
                   std::string(fixed_base_time)});

  // One walk collects every page's target and warms the simulator's ledger cache.
  net::horizon_client client(client_options(sim, 30s));
  std::vector<std::string> targets = {"/operations?limit=200"};
  for (int page = 0; page < 100'000; ++page) {
    const json doc = get_json(client, targets.back());
    if (doc["_embedded"]["records"].size() < 200) {
      targets.pop_back();
      break;
    }
    const std::string next = doc["_links"]["next"]["href"];
    targets.push_back(next.substr(sim.base_url().size()));
  }
  REQUIRE(targets.size() > 100);

  bench_totals totals;
  const auto started = std::chrono::steady_clock::now();
  const auto deadline = started + std::chrono::seconds(seconds);
  std::vector<std::thread> pool;
  for (int c = 0; c < connections; ++c) {
    pool.emplace_back(bench_connection, sim.port(), std::cref(targets),
                      targets.size() * static_cast<std::size_t>(c) / connections, deadline,
                      std::ref(totals));
  }
  for (auto& t : pool) {
    t.join();
  }
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const double pages = static_cast<double>(totals.pages.load());
  std::cout << "horizon-sim bench: " << connections << " connections, " << threads
            << " io thread(s), " << targets.size() << " distinct pages: " << pages / elapsed
            << " pages/s of 200 operations, " << totals.bytes.load() / elapsed / 1e6 << " MB/s, "
            << totals.bytes.load() / std::max(1.0, pages) << " bytes/page\n";
  CHECK(totals.failures.load() == 0);
  CHECK(totals.pages.load() > 0);
}
