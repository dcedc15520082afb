#pragma once
/// The simulator's moving parts besides data: the chain tip (and its growth), the queue of
/// injected faults, and the counters behind /_sim/stats.

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tools/horizon_sim/cache.hpp"
#include "tools/horizon_sim/options.hpp"

namespace si::sim {

/// The visible chain: ledgers start..latest. A ledger becomes visible only after it and all
/// its records are generated, by one atomic store of `latest`, so a reader that loads
/// `latest` once per request sees whole ledgers only.
class chain {
 public:
  chain(const world& w, ledger_cache& cache);

  uint32_t start() const {
    return start_;
  }
  uint32_t latest() const {
    return latest_.load(std::memory_order_acquire);
  }
  /// True while another ledger may still be appended.
  bool can_grow() const;
  /// Generates the next ledger, then publishes it; false (and nothing changes) at the cap.
  bool close_next();

 private:
  ledger_cache& cache_;
  uint32_t start_;
  uint32_t last_allowed_;
  std::atomic<uint32_t> latest_;
};

/// Injected faults, consumed in the order they were added.
class fault_queue {
 public:
  void add(fault_spec spec);
  /// Removes every rule; returns how many there were.
  std::size_t clear();
  /// The first rule whose path prefixes `path`, with one of its uses consumed.
  std::optional<fault_spec> take(std::string_view path);
  /// The rules still pending (count = uses left).
  std::vector<fault_spec> pending() const;

 private:
  mutable std::mutex mutex_;
  std::deque<fault_spec> rules_;
};

/// What a request was for (the keys of /_sim/stats).
enum class endpoint : uint8_t {
  root,
  ledgers,
  ledger,
  ledger_transactions,
  ledger_operations,
  ledger_payments,
  transactions,
  transaction,
  transaction_operations,
  operations,
  operation,
  payments,
  liquidity_pools,
  liquidity_pool,
  liquidity_pool_trades,
  assets,
  sim,
  unknown,
};
inline constexpr std::size_t endpoint_count = 18;

/// "/ledgers/{seq}", ...
std::string_view to_string(endpoint e);

/// Counters behind /_sim/stats; lock-free.
class sim_stats {
 public:
  /// One request answered (or one stream event batch sent) for `e`.
  void served(endpoint e, int status, uint64_t records, uint64_t bytes);
  /// Records or bytes sent on an open stream (not a new request).
  void streamed(endpoint e, uint64_t records, uint64_t bytes);
  void fault(fault_kind kind);
  void stream_opened();
  void stream_closed();
  /// The /_sim/stats document.
  std::string to_json(const cache_stats& cache, std::size_t faults_pending) const;

 private:
  using counters = std::array<std::atomic<uint64_t>, endpoint_count>;
  counters requests_{};
  counters records_{};
  counters bytes_{};
  std::array<std::atomic<uint64_t>, fault_kind_count> faults_{};
  std::array<std::atomic<uint64_t>, 6> status_classes_{};  // 1xx..5xx by first digit
  std::atomic<uint64_t> streams_open_{0};
  std::atomic<uint64_t> streams_opened_{0};
};

}  // namespace si::sim
