#pragma once
/// One cache interface, two backends: in-process (TTL + size bound) and Redis (hiredis).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace si::storage {

/// Counters every backend keeps; reported by /api/v1/cache/stats and at shutdown.
struct cache_stats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t sets = 0;
  uint64_t invalidations = 0;  ///< keys removed by invalidate()
  uint64_t errors = 0;         ///< backend failures turned into misses/no-ops
  uint64_t evictions = 0;      ///< entries dropped by the size bound (memory)
  uint64_t entries = 0;        ///< current size where cheaply known (memory), else 0
};

/// A cache. Never throws to callers: a backend failure is a miss (get) or a no-op (set).
/// Not thread-safe: owned and driven by the cache actor only.
class cache_backend {
 public:
  virtual ~cache_backend() = default;
  /// The value, or nullopt on miss, expiry or backend failure.
  virtual std::optional<std::string> get(const std::string& key) = 0;
  /// Stores with a TTL (> 0).
  virtual void set(const std::string& key, const std::string& value,
                   std::chrono::milliseconds ttl) = 0;
  /// Removes every key matching a glob pattern (`*`, `?`); Redis uses SCAN, never KEYS.
  /// Returns how many keys were removed.
  virtual uint64_t invalidate(const std::string& pattern) = 0;
  /// "memory" or "redis".
  virtual const char* name() const = 0;
  /// True when the backend works now (memory: always; redis: connected and answering).
  virtual bool healthy() = 0;
  virtual cache_stats stats() const = 0;
  /// Releases connections; later calls are misses/no-ops.
  virtual void close() = 0;
};

/// Clock used for TTLs; injectable so tests control time.
using cache_clock = std::function<std::chrono::steady_clock::time_point()>;

/// In-process backend: LRU eviction past `max_entries`, lazy TTL expiry.
std::unique_ptr<cache_backend> make_memory_cache(std::size_t max_entries, cache_clock clock = {});

/// Options of the Redis backend.
struct redis_options {
  std::string url;                                 ///< redis://[:password@]host:port[/db]
  std::chrono::milliseconds op_timeout{250};       ///< connect and command timeout
  std::chrono::milliseconds reconnect_min{100};    ///< first reconnect backoff
  std::chrono::milliseconds reconnect_max{5'000};  ///< backoff cap
  std::string key_prefix = "si:";                  ///< namespace for every key
  cache_clock clock;                               ///< for backoff timing; default steady
};

/// Redis backend. Connects lazily; while Redis is down every call is a miss/no-op and
/// reconnect attempts follow exponential backoff (min..max).
std::unique_ptr<cache_backend> make_redis_cache(const redis_options& options);

/// Validates a redis:// URL; empty string when fine, else what is wrong.
std::string validate_redis_url(const std::string& url);

}  // namespace si::storage
