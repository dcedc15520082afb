#pragma once
/// TEST_HANG_ON_DRAIN (test-only, never in production): an actor named there behaves like a
/// subsystem stuck in its drain while everything else goes on, so the supervisor's deadline
/// must report it timed_out and kill it (tests/actors/hang_on_drain_test.cpp,
/// scripts/chaos/timeouts.sh).

#include <spdlog/logger.h>

namespace si::actors {

/// True when `enabled` (after logging that the drain request is ignored): the caller then
/// answers the drain with a response promise it never delivers.
inline bool ignore_drain_for_test(bool enabled, spdlog::logger& log) {
  if (enabled) {
    log.warn("TEST_HANG_ON_DRAIN: ignoring the drain request");
  }
  return enabled;
}

}  // namespace si::actors
