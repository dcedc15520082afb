#pragma once
/// Names the calling thread, so that operators see what each thread is in `top -H`,
/// `ps -L`, `/proc/PID/task/*/comm`, perf and gdb (docs/operations.md, "Threads"). Without a
/// name a thread inherits its creator's: the io threads, started from an actor worker, would
/// show as CAF's "caf.multiplexer".

#include <cstddef>
#include <string_view>

namespace si::net {

/// Linux keeps at most 15 bytes of a thread's name: a longer name is cut to its first 15.
inline constexpr std::size_t max_thread_name = 15;

/// Sets the calling thread's name (cut to max_thread_name bytes). Best effort: a failure
/// changes nothing else, so it is ignored.
void name_this_thread(std::string_view name) noexcept;

}  // namespace si::net
