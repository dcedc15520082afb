#pragma once
/// systemd's service notification protocol (sd_notify(3)), written here instead of linking
/// libsystemd: a notification is one datagram of `KEY=value` lines sent to the unix socket
/// named by NOTIFY_SOCKET, and containers have no libsystemd to link. The watchdog pinger
/// sends `WATCHDOG=1` only while a caller-supplied probe proves the process alive.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace si::net {

/// Sends notifications (`READY=1`, `STOPPING=1`, `STATUS=...`, `WATCHDOG=1`, ...) to the
/// service manager. NOTIFY_SOCKET is an absolute path or an abstract socket written `@name`;
/// without it every call is a no-op. A send never blocks (non-blocking datagram socket); the
/// first failure is logged (logger "main") and every failure is otherwise ignored, so the
/// server runs the same with or without a service manager. Thread-safe.
class sd_notifier {
 public:
  /// From the process environment: NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID.
  static sd_notifier from_environment();

  /// `socket` as NOTIFY_SOCKET holds it (empty = disabled); `watchdog_usec` and
  /// `watchdog_pid` as WATCHDOG_USEC and WATCHDOG_PID hold them (empty = unset).
  explicit sd_notifier(std::string socket, std::string watchdog_usec = {},
                       std::string watchdog_pid = {});
  sd_notifier(sd_notifier&&) noexcept;
  sd_notifier& operator=(sd_notifier&&) noexcept;
  sd_notifier(const sd_notifier&) = delete;
  sd_notifier& operator=(const sd_notifier&) = delete;
  ~sd_notifier();

  /// True when NOTIFY_SOCKET names a socket this process can address.
  bool enabled() const noexcept;

  /// Sends `message` (newline-separated assignments) as one datagram. True when the kernel
  /// took it; false when disabled or on any error (logged once).
  bool notify(std::string_view message);

  /// The watchdog timeout the service manager asked for (WATCHDOG_USEC > 0, and WATCHDOG_PID
  /// unset or this process), or nullopt. An unparsable value is logged once and ignored.
  std::optional<std::chrono::microseconds> watchdog_timeout() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Sends `WATCHDOG=1` every half watchdog timeout, but only after `probe(limit)` answered
/// true within `limit` (a quarter of the timeout): a wedged process stops pinging and the
/// service manager restarts it. Runs on its own thread from construction until `stop()` or
/// destruction. `stop()` returns at once; the destructor waits for a probe in flight.
class sd_watchdog {
 public:
  using probe_fn = std::function<bool(std::chrono::milliseconds limit)>;

  /// `notifier` must outlive the pinger.
  sd_watchdog(sd_notifier& notifier, std::chrono::microseconds timeout, probe_fn probe);
  sd_watchdog(const sd_watchdog&) = delete;
  sd_watchdog& operator=(const sd_watchdog&) = delete;
  ~sd_watchdog();

  /// No more probes or pings after the one in flight (idempotent, does not block).
  void stop();

  /// Pings sent and probes that failed so far.
  std::uint64_t pings() const noexcept;
  std::uint64_t failed_probes() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace si::net
