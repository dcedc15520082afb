#pragma once
/// One fuzz target per parser facing untrusted input (docs/testing.md, "Fuzzing"). A target
/// is `SI_FUZZ_TARGET(name) { ...bytes in `data`, `size`... }`; it must not crash, leak, hang
/// or trip a sanitizer on any input, and checks the parser's own invariants with
/// SI_FUZZ_CHECK.
///
/// Built two ways from the same source:
/// - with SI_FUZZ_LIBFUZZER (clang, `-DSI_FUZZ=ON`): the body is LLVMFuzzerTestOneInput,
///   one executable per target (`fuzz_<name>`), driven by scripts/fuzz;
/// - otherwise (the normal build): the body registers itself under `name`, and
///   `test_fuzz_replay` (replay_main.cpp) runs it over tests/fuzz/corpus/<name>/, so every
///   input ever added there (seeds and reproducers of fixed defects) stays a regression test.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace si::fuzz {

using target_fn = void (*)(const std::uint8_t* data, std::size_t size);

/// Registers a target for the replay driver (static initialisation; not used by libFuzzer).
bool register_target(std::string_view name, target_fn fn);

/// The registered targets by name, in registration order (the replay driver's list).
const std::vector<std::pair<std::string, target_fn>>& registered_targets();

/// The input being replayed, named in check_failed's report ("" under libFuzzer, which
/// names its own crash artifact).
void set_current_input(std::string path);

/// Reports a broken invariant of target input and aborts (libFuzzer then saves the input as
/// a crash artifact; the replay driver has already printed the file's path).
[[noreturn]] void check_failed(const char* expr, const char* file, int line, std::string_view what);

}  // namespace si::fuzz

/// An invariant of the parser under test: on failure, names it and aborts.
#define SI_FUZZ_CHECK(cond, what)                                  \
  do {                                                             \
    if (!(cond)) {                                                 \
      ::si::fuzz::check_failed(#cond, __FILE__, __LINE__, (what)); \
    }                                                              \
  } while (false)

#ifdef SI_FUZZ_LIBFUZZER
#define SI_FUZZ_TARGET(name)                                                          \
  static void si_fuzz_body_##name(const std::uint8_t* data, std::size_t size);        \
  extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { \
    si_fuzz_body_##name(data, size);                                                  \
    return 0;                                                                         \
  }                                                                                   \
  static void si_fuzz_body_##name(const std::uint8_t* data, std::size_t size)
#else
#define SI_FUZZ_TARGET(name)                                                   \
  static void si_fuzz_body_##name(const std::uint8_t* data, std::size_t size); \
  [[maybe_unused]] static const bool si_fuzz_registered_##name =               \
      ::si::fuzz::register_target(#name, &si_fuzz_body_##name);                \
  static void si_fuzz_body_##name(const std::uint8_t* data, std::size_t size)
#endif
