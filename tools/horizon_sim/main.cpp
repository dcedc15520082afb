/// horizon-sim: a deterministic Horizon simulator for tests, benchmarks, chaos scripts and
/// `scripts/run --demo`. See docs/horizon-sim.md and `horizon-sim --help`.

#include <atomic>
#include <csignal>
#include <cstdio>
#include <exception>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include <unistd.h>

#include "tools/horizon_sim/api.hpp"
#include "tools/horizon_sim/cache.hpp"
#include "tools/horizon_sim/control.hpp"
#include "tools/horizon_sim/options.hpp"
#include "tools/horizon_sim/server.hpp"
#include "tools/horizon_sim/world.hpp"

namespace {

/// Writes `port` to `path` via a temporary file and rename, so a reader never sees half.
bool write_port_file(const std::string& path, uint16_t port) {
  const std::string temp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(temp, std::ios::trunc);
    if (!out) {
      return false;
    }
    out << port << '\n';
    out.flush();
    if (!out) {
      return false;
    }
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    std::remove(temp.c_str());
    return false;
  }
  return true;
}

/// Renders the initial chain on its own thread (ledger_cache::prewarm) while it lives.
class background_warmer {
 public:
  background_warmer(bool enabled, si::sim::ledger_cache& cache, uint32_t from, uint32_t to) {
    if (enabled) {
      thread_ = std::thread([this, &cache, from, to] { cache.prewarm(from, to, stop_); });
    }
  }
  background_warmer(const background_warmer&) = delete;
  background_warmer& operator=(const background_warmer&) = delete;
  ~background_warmer() {
    stop_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
  using namespace si::sim;
  auto parsed = parse_options(argc, argv);
  if (parsed.what == parse_outcome::action::help) {
    std::cout << help_text();
    return 0;
  }
  if (parsed.what == parse_outcome::action::error) {
    std::cerr << "horizon-sim: " << parsed.message << '\n';
    return 2;
  }
  const options& o = parsed.parsed;
  std::signal(SIGPIPE, SIG_IGN);

  // What the server's sessions use is declared first, so it outlives the server (members
  // and locals are destroyed in reverse order): sessions still held by the io_context end
  // when the server is destroyed, and may touch the statistics then.
  sim_stats stats;
  fault_queue faults;
  for (const auto& f : o.faults) {
    faults.add(f);
  }
  std::unique_ptr<world> w;
  std::unique_ptr<ledger_cache> cache;
  std::unique_ptr<chain> c;
  std::unique_ptr<api> a;
  std::unique_ptr<http_server> server;
  try {
    server = std::make_unique<http_server>(o.host, o.port, o.threads);
  } catch (const std::exception& e) {
    std::cerr << "horizon-sim: cannot listen on " << o.host << ':' << o.port << ": " << e.what()
              << '\n';
    return 1;
  }
  try {
    const uint16_t port = server->port();
    // The hrefs need the bound port, so the data is built after the bind.
    const std::string base_url =
        o.public_url.empty()
            ? "http://" + (o.host.find(':') != std::string::npos ? "[" + o.host + "]" : o.host)
                  + ":" + std::to_string(port)
            : o.public_url;
    w = std::make_unique<world>(o, base_url);
    cache = std::make_unique<ledger_cache>(*w, static_cast<std::size_t>(o.cache_mb) << 20);
    c = std::make_unique<chain>(*w, *cache);
    a = std::make_unique<api>(*w, *cache, *c, stats, faults);
    if (!o.port_file.empty() && !write_port_file(o.port_file, port)) {
      std::cerr << "horizon-sim: cannot write --port-file " << o.port_file << '\n';
      return 1;
    }
    std::cout << "horizon-sim listening on " << o.host << ':' << port << std::endl;
    // After the listening line, because warming must not delay start-up; stopped and joined
    // before the cache it fills is destroyed.
    background_warmer warmer(o.prewarm != 0, *cache, c->start(), c->latest());
    server->run(*a, *c, stats, faults, o.close_ms);
  } catch (const std::exception& e) {
    std::cerr << "horizon-sim: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
