/// `test_fuzz_replay [corpus_root] [target...]`: runs every registered fuzz target over each
/// file of `<corpus_root>/<target>/` (default: tests/fuzz/corpus of the source tree), so the
/// seeds and every reproducer of a fixed defect are a regression test of the normal build
/// (ctest `fuzz_replay`). A broken invariant, an exception escaping a target or a crash
/// fails it, naming the file; a target without any corpus file fails too, since it would
/// test nothing. Prints one line per target: `fuzz_replay <target>: N inputs ok`.

#include "tests/fuzz/fuzz_target.hpp"

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#ifndef SI_SOURCE_DIR
#define SI_SOURCE_DIR "."
#endif

namespace fs = std::filesystem;

namespace {

/// The file being replayed, for the crash handler (set before each input).
std::string crash_note;

/// A crash inside a target (SIGSEGV, an abort from a failed assert): name the file, then die
/// of the same signal so the test still fails.
extern "C" void on_crash(int sig) {
  (void)!write(2, crash_note.data(), crash_note.size());
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

}  // namespace

int main(int argc, char** argv) {
  fs::path root = argc > 1 ? fs::path(argv[1]) : fs::path(SI_SOURCE_DIR) / "tests/fuzz/corpus";
  std::vector<std::string> only(argv + std::min(argc, 2), argv + argc);
  for (int sig : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL}) {
    std::signal(sig, on_crash);
  }
  const auto& targets = si::fuzz::registered_targets();
  int failures = 0;
  for (const auto& name : only) {
    auto known =
        std::any_of(targets.begin(), targets.end(), [&](const auto& t) { return t.first == name; });
    if (!known) {
      std::fprintf(stderr, "fuzz_replay: unknown target '%s'\n", name.c_str());
      ++failures;
    }
  }
  for (const auto& [name, fn] : targets) {
    if (!only.empty() && std::find(only.begin(), only.end(), name) == only.end()) {
      continue;
    }
    auto dir = root / name;
    std::vector<fs::path> files;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->is_regular_file()) {
        files.push_back(it->path());
      }
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) {
      std::fprintf(stderr, "fuzz_replay %s: no corpus files in %s\n", name.c_str(), dir.c_str());
      ++failures;
      continue;
    }
    int bad = 0;
    for (const auto& file : files) {
      std::ifstream in(file, std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      si::fuzz::set_current_input(file.string());
      crash_note = "fuzz_replay " + name + ": crashed on " + file.string() + "\n";
      try {
        fn(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
      } catch (const std::exception& e) {
        // libFuzzer reports an escaping exception as a crash; so does the replay.
        std::fprintf(stderr, "fuzz_replay %s: %s: exception escaped the target: %s\n", name.c_str(),
                     file.c_str(), e.what());
        ++bad;
      }
    }
    si::fuzz::set_current_input("");
    if (bad == 0) {
      std::printf("fuzz_replay %s: %zu inputs ok\n", name.c_str(), files.size());
    }
    failures += bad;
  }
  return failures == 0 ? 0 : 1;
}
