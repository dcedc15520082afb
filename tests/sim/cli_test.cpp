// The command line, the process contract (listening line, port file, signals, exit codes) and
// determinism: same seed and flags give the same bytes, in any request order.

#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/sim/support.hpp"

using namespace si;
using namespace si::test;

TEST_CASE("--help documents the flags; bad flags exit 2 naming the problem", "[sim][cli]") {
  const auto help = run_sim({"--help"});
  CHECK(help.exit_code == 0);
  for (const char* flag : {"--host",
                           "--port",
                           "--port-file",
                           "--threads",
                           "--seed",
                           "--start-ledger",
                           "--ledgers",
                           "--close-ms",
                           "--max-ledgers",
                           "--tx-per-ledger",
                           "--ops-per-tx",
                           "--failed-percent",
                           "--fee-bump-percent",
                           "--pools",
                           "--assets",
                           "--base-time",
                           "--fault",
                           "--public-url",
                           "--cache-mb",
                           "--prewarm",
                           "/_sim/truth"}) {
    INFO(flag);
    CHECK(help.out.find(flag) != std::string::npos);
  }
  for (const auto& [args, mention] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--bogus"}, "--bogus"},
           {{"--ledgers", "0"}, "--ledgers"},
           {{"--ledgers"}, "needs a value"},
           {{"--failed-percent", "101"}, "--failed-percent"},
           {{"--assets", "2", "--pools", "4"}, "--pools"},
           {{"--ledgers", "10", "--max-ledgers", "5"}, "--max-ledgers"},
           {{"--fault", "explode:1"}, "unknown kind"},
           {{"--fault", "reset:0"}, "count"},
           {{"--port", "70000"}, "--port"},
       }) {
    INFO(mention);
    const auto run = run_sim(args);
    CHECK(run.exit_code == 2);
    CHECK(run.err.find(mention) != std::string::npos);
    CHECK(run.out.empty());
  }
}

TEST_CASE("the listening line, --port-file, signals and a taken port", "[sim][cli]") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("horizon-sim-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto port_file = dir / "port";
  {
    sim_process sim({"--ledgers", "3", "--port-file", port_file.string()});
    CHECK(sim.banner() == "horizon-sim listening on 127.0.0.1:" + std::to_string(sim.port()));
    std::ifstream in(port_file);
    std::string text;
    std::getline(in, text);
    CHECK(text == std::to_string(sim.port()));
    // Only the port file itself is left (the temporary was renamed).
    CHECK(std::distance(std::filesystem::directory_iterator(dir),
                        std::filesystem::directory_iterator())
          == 1);

    const auto taken = run_sim({"--port", std::to_string(sim.port()), "--ledgers", "3"});
    CHECK(taken.exit_code == 1);
    CHECK(taken.err.find("cannot listen") != std::string::npos);

    CHECK(sim.stop(SIGTERM) == 0);
  }
  {
    sim_process sim({"--ledgers", "3", "--threads", "1"});
    CHECK(sim.stop(SIGINT) == 0);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("same seed and flags give the same bytes in any order; another seed differs",
          "[sim][cli]") {
  const std::vector<std::string> common = {"--ledgers",    "12",
                                           "--base-time",  std::string(fixed_base_time),
                                           "--public-url", "http://horizon.test"};
  auto with_seed = [&](const std::string& seed) {
    auto args = common;
    args.insert(args.end(), {"--seed", seed});
    return args;
  };
  sim_process a(with_seed("42"));
  sim_process b(with_seed("42"));
  sim_process c(with_seed("43"));
  net::horizon_client ca(client_options(a));
  net::horizon_client cb(client_options(b));
  net::horizon_client cc(client_options(c));

  const json page = get_json(ca, "/transactions?limit=3&include_failed=true");
  const std::string hash = page["_embedded"]["records"][2]["hash"];
  const json info = get_json(ca, "/_sim/info");
  const std::string pool = info["pools"][0];
  std::vector<std::string> targets = {
      "/ledgers?limit=200",
      "/ledgers/1007",
      "/transactions?limit=200&include_failed=true",
      "/transactions/" + hash,
      "/operations?limit=200&include_failed=true&cursor=" + std::to_string(1005ULL << 32),
      "/operations?limit=200&order=desc",
      "/payments?limit=100",
      "/liquidity_pools?limit=200",
      "/liquidity_pools/" + pool + "/trades?limit=200",
      "/assets?limit=200",
      "/_sim/truth",
  };
  std::vector<std::string> first;
  for (const auto& t : targets) {
    first.push_back(get_body(ca, t));
  }
  // The twin serves the same bytes although it is asked in the opposite order (its ledgers
  // are generated in another order).
  std::vector<std::string> second(targets.size());
  for (std::size_t i = targets.size(); i-- > 0;) {
    second[i] = get_body(cb, targets[i]);
  }
  for (std::size_t i = 0; i < targets.size(); ++i) {
    INFO(targets[i]);
    CHECK(first[i] == second[i]);
    if (!targets[i].starts_with("/_sim")) {
      CHECK(first[i].find("http://horizon.test/") != std::string::npos);
    }
  }
  CHECK(get_body(cc, "/operations?limit=200") != get_body(ca, "/operations?limit=200"));
  CHECK(get_json(cc, "/_sim/info")["pools"] != info["pools"]);
}
