#include "storage/cache_backend.hpp"
#include "storage/glob.hpp"

#include <algorithm>
#include <list>
#include <unordered_map>

namespace si::storage {

namespace {

/// LRU list (front = most recently used) indexed by key; expiry checked on access.
class memory_cache final : public cache_backend {
 public:
  memory_cache(std::size_t max_entries, cache_clock clock)
      : max_entries_(std::max<std::size_t>(max_entries, 1)), clock_(std::move(clock)) {
    if (!clock_) {
      clock_ = [] { return std::chrono::steady_clock::now(); };
    }
  }

  std::optional<std::string> get(const std::string& key) override {
    auto it = index_.find(key);
    if (closed_ || it == index_.end()) {
      ++stats_.misses;
      return std::nullopt;
    }
    if (expired(*it->second)) {
      erase(it);
      ++stats_.misses;
      return std::nullopt;
    }
    entries_.splice(entries_.begin(), entries_, it->second);
    ++stats_.hits;
    return it->second->value;
  }

  void set(const std::string& key, const std::string& value,
           std::chrono::milliseconds ttl) override {
    if (closed_ || ttl <= std::chrono::milliseconds::zero()) {
      return;
    }
    const auto expires_at = clock_() + ttl;
    if (auto it = index_.find(key); it != index_.end()) {
      it->second->value = value;
      it->second->expires_at = expires_at;
      entries_.splice(entries_.begin(), entries_, it->second);
    } else {
      entries_.push_front(entry{key, value, expires_at});
      index_.emplace(key, entries_.begin());
      while (index_.size() > max_entries_) {
        // The least recently used entry goes; an already expired one is no real eviction.
        auto victim = std::prev(entries_.end());
        if (!expired(*victim)) {
          ++stats_.evictions;
        }
        erase(index_.find(victim->key));
      }
    }
    ++stats_.sets;
  }

  uint64_t invalidate(const std::string& pattern) override {
    uint64_t removed = 0;
    for (auto it = index_.begin(); it != index_.end();) {
      if (!glob_match(pattern, it->first)) {
        ++it;
        continue;
      }
      // Expired keys are purged too, but only live ones count (as with Redis).
      if (!expired(*it->second)) {
        ++removed;
      }
      entries_.erase(it->second);
      it = index_.erase(it);
    }
    stats_.invalidations += removed;
    return removed;
  }

  const char* name() const override {
    return "memory";
  }

  bool healthy() override {
    return !closed_;
  }

  cache_stats stats() const override {
    cache_stats out = stats_;
    out.entries = index_.size();
    return out;
  }

  void close() override {
    closed_ = true;
    index_.clear();
    entries_.clear();
  }

 private:
  struct entry {
    std::string key;
    std::string value;
    std::chrono::steady_clock::time_point expires_at;
  };
  using entry_list = std::list<entry>;

  bool expired(const entry& e) const {
    return clock_() >= e.expires_at;
  }

  void erase(std::unordered_map<std::string, entry_list::iterator>::iterator it) {
    entries_.erase(it->second);
    index_.erase(it);
  }

  std::size_t max_entries_;
  cache_clock clock_;
  entry_list entries_;
  std::unordered_map<std::string, entry_list::iterator> index_;
  cache_stats stats_;
  bool closed_ = false;
};

}  // namespace

std::unique_ptr<cache_backend> make_memory_cache(std::size_t max_entries, cache_clock clock) {
  return std::make_unique<memory_cache>(max_entries, std::move(clock));
}

}  // namespace si::storage
