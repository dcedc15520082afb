#include "tools/horizon_sim/cache.hpp"

#include <algorithm>
#include <vector>

namespace si::sim {

ledger_cache::ledger_cache(const world& w, std::size_t budget_bytes)
    : world_(w),
      budget_(budget_bytes),
      budget_per_shard_(std::max<std::size_t>(budget_bytes / shard_count, 1)) {}

void ledger_cache::prewarm(uint32_t from, uint32_t to, const std::atomic<bool>& stop) {
  // Operations first: they are what ingestors and benchmarks page through most.
  for (ledger_part part : {ledger_part::operations, ledger_part::transactions}) {
    for (uint64_t seq = from; seq <= to; ++seq) {
      if (stop.load(std::memory_order_relaxed) || !has_room()) {
        return;
      }
      get(static_cast<uint32_t>(seq), part);
    }
  }
}

namespace {

uint64_t key_of(uint32_t seq, ledger_part part) {
  return uint64_t{seq} * 2 + static_cast<uint64_t>(part);
}

}  // namespace

std::shared_ptr<const ledger_data> ledger_cache::lookup(uint64_t key) {
  shard& s = shards_[(key >> 1) % shard_count];
  std::lock_guard lock(s.mutex);
  auto it = s.entries.find(key);
  if (it == s.entries.end()) {
    return nullptr;
  }
  it->second.last_use = tick_.fetch_add(1, std::memory_order_relaxed);
  return it->second.data;
}

std::shared_ptr<const ledger_data> ledger_cache::get(uint32_t seq, ledger_part part) {
  const uint64_t key = key_of(seq, part);
  if (auto hit = lookup(key)) {
    hits_.fetch_add(1, std::memory_order_relaxed);
    return hit;
  }
  misses_.fetch_add(1, std::memory_order_relaxed);
  return insert(key, generate_ledger(world_, seq, part));
}

std::shared_ptr<const ledger_data> ledger_cache::get_if_room(uint32_t seq, ledger_part part) {
  const uint64_t key = key_of(seq, part);
  if (auto hit = lookup(key)) {
    hits_.fetch_add(1, std::memory_order_relaxed);
    return hit;
  }
  misses_.fetch_add(1, std::memory_order_relaxed);
  auto made = generate_ledger(world_, seq, part);
  return has_room() ? insert(key, std::move(made)) : made;
}

std::shared_ptr<const ledger_data> ledger_cache::insert(uint64_t key,
                                                        std::shared_ptr<const ledger_data> made) {
  shard& s = shards_[(key >> 1) % shard_count];
  std::lock_guard lock(s.mutex);
  auto [it, inserted] = s.entries.try_emplace(key);
  if (inserted) {
    // Another thread may have made the same ledger meanwhile: identical, either copy does.
    it->second.data = std::move(made);
    const std::size_t bytes = it->second.data->memory();
    s.bytes += bytes;
    bytes_.fetch_add(bytes, std::memory_order_relaxed);
  }
  it->second.last_use = tick_.fetch_add(1, std::memory_order_relaxed);
  auto result = it->second.data;
  if (s.bytes > budget_per_shard_) {
    evict(s);
  }
  return result;
}

void ledger_cache::evict(shard& s) {
  // Drop the least recently used until the shard is at 3/4 of its budget.
  std::vector<std::pair<uint64_t, uint64_t>> order;
  order.reserve(s.entries.size());
  for (const auto& [key, e] : s.entries) {
    order.emplace_back(e.last_use, key);
  }
  std::sort(order.begin(), order.end());
  const std::size_t target = budget_per_shard_ / 4 * 3;
  for (const auto& [use, key] : order) {
    if (s.bytes <= target) {
      break;
    }
    auto it = s.entries.find(key);
    const std::size_t bytes = it->second.data->memory();
    s.bytes -= bytes;
    bytes_.fetch_sub(bytes, std::memory_order_relaxed);
    s.entries.erase(it);
    evictions_.fetch_add(1, std::memory_order_relaxed);
  }
}

cache_stats ledger_cache::stats() const {
  cache_stats out;
  out.hits = hits_.load(std::memory_order_relaxed);
  out.misses = misses_.load(std::memory_order_relaxed);
  out.evictions = evictions_.load(std::memory_order_relaxed);
  for (const auto& s : shards_) {
    std::lock_guard lock(s.mutex);
    out.bytes += s.bytes;
    out.ledgers += s.entries.size();
  }
  return out;
}

}  // namespace si::sim
