#include "net/sd_notify.hpp"

#include "config/logging.hpp"
#include "net/thread_name.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <thread>

namespace si::net {

namespace {

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string{} : std::string{v};
}

/// Plain decimal digits only (no sign, no spaces), fitting in 64 bits.
std::optional<std::uint64_t> parse_decimal(const std::string& text) {
  if (text.empty() || text.size() > 20) {
    return std::nullopt;
  }
  std::uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    auto digit = static_cast<std::uint64_t>(c - '0');
    if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) {
      return std::nullopt;
    }
    value = value * 10 + digit;
  }
  return value;
}

}  // namespace

struct sd_notifier::impl {
  std::string socket_text;
  sockaddr_un addr{};
  socklen_t addr_len = 0;
  int fd = -1;
  // Why notifications cannot be sent (set at construction, logged at the first notify:
  // logging is not configured yet when the notifier is built).
  std::string problem;
  std::atomic<bool> warned{false};

  std::optional<std::chrono::microseconds> watchdog;
  std::string watchdog_problem;
  std::atomic<bool> watchdog_warned{false};

  ~impl() {
    if (fd >= 0) {
      close(fd);
    }
  }

  void warn_once(const std::string& text) {
    if (!warned.exchange(true)) {
      config::logger("main")->warn("sd_notify: {}; service notifications are not sent", text);
    }
  }
};

sd_notifier sd_notifier::from_environment() {
  return sd_notifier{env_or_empty("NOTIFY_SOCKET"), env_or_empty("WATCHDOG_USEC"),
                     env_or_empty("WATCHDOG_PID")};
}

sd_notifier::sd_notifier(std::string socket, std::string watchdog_usec, std::string watchdog_pid)
    : impl_(std::make_unique<impl>()) {
  auto& m = *impl_;
  m.socket_text = std::move(socket);
  if (!m.socket_text.empty()) {
    m.addr.sun_family = AF_UNIX;
    const bool abstract = m.socket_text.front() == '@';
    // A path needs its terminating NUL inside sun_path; an abstract name its leading NUL.
    const std::size_t room = sizeof(m.addr.sun_path) - 1;
    if (!abstract && m.socket_text.front() != '/') {
      m.problem = "NOTIFY_SOCKET '" + m.socket_text
                  + "' is neither an absolute path nor an abstract socket (@name)";
    } else if (m.socket_text.size() > room || (abstract && m.socket_text.size() < 2)) {
      m.problem = "NOTIFY_SOCKET '" + m.socket_text + "' is not a usable unix socket address";
    } else {
      std::memcpy(m.addr.sun_path, m.socket_text.data(), m.socket_text.size());
      if (abstract) {
        m.addr.sun_path[0] = '\0';  // the name is the bytes after the NUL, without a final NUL
        m.addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + m.socket_text.size());
      } else {
        m.addr_len =
            static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + m.socket_text.size() + 1);
      }
      m.fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      if (m.fd < 0) {
        m.problem = std::string{"cannot create a datagram socket: "} + std::strerror(errno);
      }
    }
  }
  if (!watchdog_usec.empty()) {
    auto usec = parse_decimal(watchdog_usec);
    auto pid =
        watchdog_pid.empty() ? std::optional<std::uint64_t>{getpid()} : parse_decimal(watchdog_pid);
    if (!usec || *usec == 0 || *usec > std::numeric_limits<std::int64_t>::max()) {
      m.watchdog_problem = "WATCHDOG_USEC '" + watchdog_usec + "' is not a positive number";
    } else if (!pid) {
      m.watchdog_problem = "WATCHDOG_PID '" + watchdog_pid + "' is not a process id";
    } else if (*pid == static_cast<std::uint64_t>(getpid())) {
      m.watchdog = std::chrono::microseconds{static_cast<std::int64_t>(*usec)};
    }
    // Another process's watchdog (WATCHDOG_PID names it) is silently not ours.
  }
}

sd_notifier::sd_notifier(sd_notifier&&) noexcept = default;
sd_notifier& sd_notifier::operator=(sd_notifier&&) noexcept = default;
sd_notifier::~sd_notifier() = default;

bool sd_notifier::enabled() const noexcept {
  return impl_ && impl_->fd >= 0;
}

bool sd_notifier::notify(std::string_view message) {
  if (!impl_ || impl_->socket_text.empty()) {
    return false;
  }
  auto& m = *impl_;
  if (m.fd < 0) {
    m.warn_once(m.problem);
    return false;
  }
  auto sent = ::sendto(m.fd, message.data(), message.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
                       reinterpret_cast<const sockaddr*>(&m.addr), m.addr_len);
  if (sent < 0 || static_cast<std::size_t>(sent) != message.size()) {
    m.warn_once("sending to NOTIFY_SOCKET '" + m.socket_text
                + "' failed: " + (sent < 0 ? std::strerror(errno) : "short write"));
    return false;
  }
  return true;
}

std::optional<std::chrono::microseconds> sd_notifier::watchdog_timeout() const noexcept {
  if (!impl_) {
    return std::nullopt;
  }
  if (!impl_->watchdog_problem.empty() && !impl_->watchdog_warned.exchange(true)) {
    config::logger("main")->warn("sd_notify: {}; no watchdog pings", impl_->watchdog_problem);
  }
  return impl_->watchdog;
}

struct sd_watchdog::impl {
  sd_notifier& notifier;
  std::chrono::milliseconds interval;
  std::chrono::milliseconds limit;
  probe_fn probe;
  std::mutex mtx;
  std::condition_variable cv;
  bool stopped = false;
  std::atomic<std::uint64_t> pings{0};
  std::atomic<std::uint64_t> failed{0};
  std::thread thread;

  impl(sd_notifier& n, std::chrono::microseconds timeout, probe_fn p)
      : notifier(n),
        interval(std::max<std::chrono::milliseconds>(
            std::chrono::duration_cast<std::chrono::milliseconds>(timeout / 2),
            std::chrono::milliseconds{1})),
        limit(std::max<std::chrono::milliseconds>(
            std::chrono::duration_cast<std::chrono::milliseconds>(timeout / 4),
            std::chrono::milliseconds{1})),
        probe(std::move(p)) {}

  void run() {
    auto log = config::logger("main");
    std::unique_lock<std::mutex> guard{mtx};
    while (!stopped) {
      guard.unlock();
      auto started = std::chrono::steady_clock::now();
      bool alive = probe(limit);
      guard.lock();
      if (stopped) {
        break;
      }
      if (alive) {
        if (notifier.notify("WATCHDOG=1")) {
          ++pings;
        }
      } else {
        ++failed;
        log->warn(
            "watchdog: liveness probe got no answer within {} ms; not pinging the service "
            "manager",
            limit.count());
      }
      cv.wait_until(guard, started + interval, [this] { return stopped; });
    }
  }
};

sd_watchdog::sd_watchdog(sd_notifier& notifier, std::chrono::microseconds timeout, probe_fn probe)
    : impl_(std::make_unique<impl>(notifier, timeout, std::move(probe))) {
  config::logger("main")->info(
      "watchdog: pinging the service manager every {} ms while the "
      "liveness probe answers within {} ms",
      impl_->interval.count(), impl_->limit.count());
  impl_->thread = std::thread([this] {
    name_this_thread("si-sd-watchdog");
    impl_->run();
  });
}

sd_watchdog::~sd_watchdog() {
  stop();
  if (impl_->thread.joinable()) {
    impl_->thread.join();
  }
}

void sd_watchdog::stop() {
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    impl_->stopped = true;
  }
  impl_->cv.notify_all();
}

std::uint64_t sd_watchdog::pings() const noexcept {
  return impl_->pings.load();
}

std::uint64_t sd_watchdog::failed_probes() const noexcept {
  return impl_->failed.load();
}

}  // namespace si::net
