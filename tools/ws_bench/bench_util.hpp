#pragma once
/// What ws-bench (tools/ws_bench) and ws-floor (tools/ws_floor), the two clients of
/// scripts/bench/ws.sh, share besides the wire format (ws_wire.hpp): their clocks, the reading
/// of the command line, the open-files limit, a connection's bytes not yet decoded, the
/// coordinator's wait for its client threads,
/// the latency statistics and main() itself (the JSON object on stdout; exit 1 when the run
/// could not complete, 2 for bad arguments). Each tool keeps its own options, messages and
/// JSON fields.

#include <sys/resource.h>
#include <sys/socket.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <initializer_list>
#include <iostream>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace si::wsbench {

inline constexpr double nan = std::numeric_limits<double>::quiet_NaN();

// ---------------------------------------------------------------------------------------
// Clocks

/// Clock `id` in milliseconds.
inline double clock_ms(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

/// CLOCK_MONOTONIC in milliseconds: every timestamp of both tools.
inline double now_ms() {
  return clock_ms(CLOCK_MONOTONIC);
}

/// This process's CPU time (all its threads) in milliseconds.
inline double cpu_ms() {
  return clock_ms(CLOCK_PROCESS_CPUTIME_ID);
}

// ---------------------------------------------------------------------------------------
// The command line

/// A bad command line: main() prints it and the usage text, and exits 2.
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// `text` as an integer in low..high, or a usage_error naming `name`.
inline unsigned parse_unsigned(std::string_view name, std::string_view text, unsigned low,
                               unsigned high) {
  unsigned value = 0;
  const auto* end = text.data() + text.size();
  auto r = std::from_chars(text.data(), end, value);
  if (text.empty() || r.ec != std::errc{} || r.ptr != end || value < low || value > high) {
    throw usage_error(std::string(name) + " must be an integer in " + std::to_string(low) + ".."
                      + std::to_string(high) + ", not '" + std::string(text) + "'");
  }
  return value;
}

/// "--name N": N into *field, an integer in low..high.
struct number_option {
  std::string_view name;
  unsigned* field;
  unsigned low;
  unsigned high;
};

/// Reads argv[1..argc) and returns the positional arguments (the words not starting with
/// "--"), in order. "--help" or "-h" prints `usage` on stdout and exits 0. Every other option
/// is offered first to `other(option, i)` (i: its index in argv), which returns true when it
/// took it (advancing i past a value it read); else it must be one of `numbers` and take a
/// value. A usage_error for an unknown option or a missing or bad value.
inline std::vector<std::string_view> parse_command_line(
    int argc, char** argv, std::string_view usage, std::initializer_list<number_option> numbers,
    const std::function<bool(std::string_view, int&)>& other = {}) {
  std::vector<std::string_view> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << usage;
      std::exit(0);
    }
    if (a.substr(0, 2) != "--") {
      positional.push_back(a);
      continue;
    }
    if (other && other(a, i)) {
      continue;
    }
    const auto* n = std::find_if(numbers.begin(), numbers.end(),
                                 [&](const number_option& n) { return n.name == a; });
    if (n == numbers.end()) {
      throw usage_error("unknown option " + std::string(a));
    }
    if (i + 1 >= argc) {
      throw usage_error(std::string(a) + " needs a value");
    }
    *n->field = parse_unsigned(a, argv[++i], n->low, n->high);
  }
  return positional;
}

// ---------------------------------------------------------------------------------------
// Setting up and running

/// The soft limit on open files, raised when lower to `want`: one descriptor per connection
/// and 64 to spare. `error`: 0, or setrlimit's errno (EINVAL: `want` is over `hard`).
struct fd_limit {
  rlim_t want;
  rlim_t hard;
  int error;
};
inline fd_limit raise_fd_limit(unsigned connections) {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  fd_limit l{rlim_t{connections} + 64, rl.rlim_max, 0};
  if (rl.rlim_cur < l.want) {
    rl.rlim_cur = l.want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
      l.error = errno;
    }
  }
  return l;
}

/// The outcome of a non-blocking connect() on `fd`, once it is writable: 0, or its errno.
inline int connect_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  return err;
}

/// The size of part `k` of `total` split into `parts` (the first total % parts get one more):
/// the clients of client thread k.
inline unsigned share_of(unsigned total, unsigned parts, unsigned k) {
  return total / parts + (k < total % parts ? 1 : 0);
}

/// The bytes to decode after a read of `data`: `data` itself or, when `pending` (`in` holds the
/// start of a frame left from the previous read), `in` with `data` appended.
inline std::string_view unread(std::string& in, bool pending, std::string_view data) {
  if (!pending) {
    return data;
  }
  in.append(data);
  return in;
}

/// After decoding `data` (what unread() returned) up to `used`: keeps data[used..] in `in` for
/// the next read, or empties `in` when everything was used. `pending` says whether `in` holds
/// bytes; a connection's state keeps it, its buffer kept apart (rarely used).
inline void keep_unread(std::string& in, bool& pending, std::string_view data, std::size_t used) {
  if (used == data.size()) {
    if (pending) {
      in.clear();
      pending = false;
    }
    return;
  }
  if (pending && data.data() == in.data()) {
    in.erase(0, used);
  } else {
    in.assign(data.substr(used));
  }
  pending = true;
}

/// What the client threads tell the coordinator: the tool's completion counters (a base of its
/// results, changed through report()) and the first fatal error of any thread.
struct progress {
  std::mutex mutex;
  std::condition_variable cv;
  std::string error;  ///< the first fatal error of any thread

  /// Runs `update` under the mutex and wakes the coordinator.
  void report(const std::function<void()>& update) {
    {
      std::lock_guard lock(mutex);
      update();
    }
    cv.notify_all();
  }

  /// Records `why` unless an error came first.
  void fail(std::string why) {
    report([&] {
      if (error.empty()) {
        error = std::move(why);
      }
    });
  }

  /// Waits until `done()` (checked under the mutex), an error or `seconds`; throws the error,
  /// or "timed out after N s: " and `what()` on timeout.
  void wait(unsigned seconds, const std::function<bool()>& done,
            const std::function<std::string()>& what) {
    std::unique_lock lock(mutex);
    if (!cv.wait_for(lock, std::chrono::seconds(seconds),
                     [&] { return done() || !error.empty(); })) {
      throw std::runtime_error("timed out after " + std::to_string(seconds) + " s: " + what());
    }
    if (!error.empty()) {
      throw std::runtime_error(error);
    }
  }
  void wait(unsigned seconds, const std::function<bool()>& done, const std::string& what) {
    wait(seconds, done, [&] { return what; });
  }
};

// ---------------------------------------------------------------------------------------
// Statistics (times are CLOCK_MONOTONIC ms; NaN: the event did not happen)

/// As tests/ws_e2e/lib.mjs: the value at rank ceil(p/100 * n) of the sorted values (NaN for
/// none).
inline double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) {
    return nan;
  }
  const auto rank = static_cast<long>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  const auto at = std::clamp(rank - 1, 0L, static_cast<long>(sorted.size()) - 1);
  return sorted[static_cast<std::size_t>(at)];
}

/// The times `at` less `origin`, sorted: one round's latencies.
inline std::vector<double> sorted_since(const std::vector<double>& at, double origin) {
  std::vector<double> v;
  v.reserve(at.size());
  for (double t : at) {
    v.push_back(t - origin);
  }
  std::sort(v.begin(), v.end());
  return v;
}

/// The first and last of the times that happened, less the origin, and how many did.
struct spread {
  double first = nan;
  double last = nan;
  std::size_t count = 0;
};
inline spread spread_since(const std::vector<double>& at, double origin) {
  spread s;
  for (double t : at) {
    if (std::isnan(t)) {
      continue;
    }
    ++s.count;
    s.first = std::isnan(s.first) ? t - origin : std::min(s.first, t - origin);
    s.last = std::isnan(s.last) ? t - origin : std::max(s.last, t - origin);
  }
  return s;
}

// ---------------------------------------------------------------------------------------
// main()

/// The main() of both tools: SIGPIPE ignored (a send to a closed socket is an error, not a
/// signal), the options read by `parse` (a usage_error: "NAME: reason" and `usage` on stderr,
/// exit 2), then `run`'s JSON object on stdout and exit 0, or "NAME: reason" on stderr and
/// exit 1.
template <class Options>
int run_main(const char* name, std::string_view usage, int argc, char** argv,
             Options (*parse)(int, char**), nlohmann::json (*run)(const Options&)) {
  std::signal(SIGPIPE, SIG_IGN);
  Options o;
  try {
    o = parse(argc, argv);
  } catch (const usage_error& e) {
    std::cerr << name << ": " << e.what() << "\n" << usage;
    return 2;
  }
  try {
    std::cout << run(o).dump() << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << name << ": " << e.what() << "\n";
    return 1;
  }
}

}  // namespace si::wsbench
