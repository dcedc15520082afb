#include "tests/fuzz/fuzz_target.hpp"

#include <cstdio>
#include <cstdlib>

namespace si::fuzz {

namespace {

std::vector<std::pair<std::string, target_fn>>& registry() {
  static std::vector<std::pair<std::string, target_fn>> targets;
  return targets;
}

std::string& current_input() {
  static std::string path;
  return path;
}

}  // namespace

bool register_target(std::string_view name, target_fn fn) {
  registry().emplace_back(std::string(name), fn);
  return true;
}

const std::vector<std::pair<std::string, target_fn>>& registered_targets() {
  return registry();
}

void set_current_input(std::string path) {
  current_input() = std::move(path);
}

void check_failed(const char* expr, const char* file, int line, std::string_view what) {
  std::fprintf(stderr, "fuzz invariant broken at %s:%d: %s (%.*s)%s%s\n", file, line, expr,
               static_cast<int>(what.size()), what.data(),
               current_input().empty() ? "" : "; input: ", current_input().c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace si::fuzz
