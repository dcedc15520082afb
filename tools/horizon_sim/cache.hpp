#pragma once
/// A bounded, sharded cache of rendered ledgers. A miss generates the ledger (outside any
/// lock: generation is deterministic, so two threads racing on one ledger build identical
/// data and either copy may win). Over budget, a shard drops its least recently used ledgers.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "tools/horizon_sim/ledger_gen.hpp"

namespace si::sim {

/// Counters of the cache (snapshot).
struct cache_stats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t evictions = 0;
  uint64_t bytes = 0;
  uint64_t ledgers = 0;
};

class ledger_cache {
 public:
  ledger_cache(const world& w, std::size_t budget_bytes);

  /// `part` of ledger `seq`, generated and kept on a miss.
  std::shared_ptr<const ledger_data> get(uint32_t seq, ledger_part part);

  /// `part` of ledger `seq`; on a miss it is generated and kept only while the cache holds
  /// less than 3/4 of its budget (bulk scans such as /_sim/truth warm an empty cache but
  /// never evict what pages are using).
  std::shared_ptr<const ledger_data> get_if_room(uint32_t seq, ledger_part part);

  cache_stats stats() const;

  /// Generates the operations parts of ledgers `from..to`, then their transactions parts,
  /// until `stop` is set or the cache holds 3/4 of its budget (so warming never evicts).
  void prewarm(uint32_t from, uint32_t to, const std::atomic<bool>& stop);

 private:
  struct entry {
    std::shared_ptr<const ledger_data> data;
    uint64_t last_use = 0;
  };
  struct shard {
    mutable std::mutex mutex;
    std::unordered_map<uint64_t, entry> entries;  // key: seq * 2 + part
    std::size_t bytes = 0;
  };
  static constexpr std::size_t shard_count = 16;

  std::shared_ptr<const ledger_data> lookup(uint64_t key);
  std::shared_ptr<const ledger_data> insert(uint64_t key, std::shared_ptr<const ledger_data> made);
  void evict(shard& s);
  bool has_room() const {
    return bytes_.load(std::memory_order_relaxed) < budget_ / 4 * 3;
  }

  const world& world_;
  std::size_t budget_;
  std::size_t budget_per_shard_;
  std::array<shard, shard_count> shards_;
  std::atomic<uint64_t> tick_{0};
  std::atomic<uint64_t> hits_{0};
  std::atomic<uint64_t> misses_{0};
  std::atomic<uint64_t> evictions_{0};
  std::atomic<std::size_t> bytes_{0};  // over all shards
};

}  // namespace si::sim
