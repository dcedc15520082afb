#pragma once
/// A small in-process cache of whole GET responses, read on the HTTP io threads so a hot
/// cached page is answered without an actor round trip. Filled and invalidated by the
/// gateway together with the cache actor; used only with the in-process cache backend
/// (with Redis, other instances' invalidations could not reach it).

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace si::actors {

/// Thread-safe map from `"api:" + request target` to a response body, with TTL and a
/// size bound (when full, an insert first drops expired entries, then everything).
class response_cache {
 public:
  struct entry {
    std::string route;  ///< route pattern, the metrics label
    std::string body;
    std::string etag;  ///< computed once at put, not per request
    std::chrono::milliseconds ttl;
    std::chrono::steady_clock::time_point expires;
  };

  explicit response_cache(std::size_t max_entries) : max_entries_(max_entries) {}

  /// The live entry for `key`, or nullptr.
  std::shared_ptr<const entry> find(const std::string& key) const;

  void put(const std::string& key, std::string route, std::string body, std::string etag,
           std::chrono::milliseconds ttl);

  /// Drops every key matching the glob `pattern`; returns how many.
  std::size_t invalidate(const std::string& pattern);

  std::size_t size() const;

  /// Lookups answered from this cache (they never reach the cache actor).
  uint64_t hits() const {
    return hits_.load(std::memory_order_relaxed);
  }

 private:
  mutable std::atomic<uint64_t> hits_{0};
  std::size_t max_entries_;
  mutable std::mutex mtx_;
  std::unordered_map<std::string, std::shared_ptr<const entry>> map_;
};

}  // namespace si::actors
