#include "actors/cache.hpp"
#include "actors/test_hang.hpp"

#include "config/logging.hpp"

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <tuple>

namespace si::actors {

std::string cache_stats_json(const char* backend, const storage::cache_stats& s) {
  auto lookups = s.hits + s.misses;
  double rate = lookups == 0 ? 0.0 : 100.0 * static_cast<double>(s.hits) / lookups;
  return nlohmann::json{{"backend", backend},
                        {"hits", s.hits},
                        {"misses", s.misses},
                        {"sets", s.sets},
                        {"invalidations", s.invalidations},
                        {"errors", s.errors},
                        {"evictions", s.evictions},
                        {"entries", s.entries},
                        {"hit_rate_percent", rate}}
      .dump();
}

namespace {

struct cache_state {
  static inline const char* name = "cache";
  std::unique_ptr<storage::cache_backend> backend;
  bool closed = false;
  std::shared_ptr<spdlog::logger> log = config::logger("cache");
};

cache_actor::behavior_type cache_impl(cache_actor::stateful_pointer<cache_state> self,
                                      cache_backend_factory make_backend, bool test_hang_on_drain) {
  auto& st = self->state;
  st.backend = make_backend();
  st.log->info("cache backend: {}", st.backend->name());
  // The backend closes with the state (its unique_ptr); an attach_functor must not touch
  // the state, which CAF destroys before it runs attachables.
  return {
      [=](get_atom, const std::string& key) -> std::tuple<bool, std::string> {
        auto& st = self->state;
        if (st.closed) {
          return {false, std::string{}};
        }
        auto v = st.backend->get(key);
        return {v.has_value(), v ? std::move(*v) : std::string{}};
      },
      [=](put_atom, const std::string& key, const std::string& value, int64_t ttl_ms) {
        auto& st = self->state;
        if (!st.closed && ttl_ms > 0) {
          st.backend->set(key, value, std::chrono::milliseconds{ttl_ms});
        }
        return true;
      },
      [=](invalidate_atom, const std::string& pattern) -> uint64_t {
        auto& st = self->state;
        return st.closed ? 0 : st.backend->invalidate(pattern);
      },
      [=](stats_atom) {
        auto& st = self->state;
        return cache_stats_json(st.backend->name(), st.backend->stats());
      },
      [=](health_atom) -> std::string {
        auto& st = self->state;
        return !st.closed && st.backend->healthy() ? "ok" : "degraded";
      },
      [=](drain_atom) -> caf::result<std::string> {
        auto& st = self->state;
        if (ignore_drain_for_test(test_hang_on_drain, *st.log)) {
          return self->make_response_promise<std::string>();  // never delivered
        }
        auto stats = cache_stats_json(st.backend->name(), st.backend->stats());
        st.log->info("cache closing: {}", stats);
        st.backend->close();
        st.closed = true;
        self->quit();
        return stats;
      },
  };
}

}  // namespace

cache_actor spawn_cache(caf::actor_system& sys, cache_backend_factory make_backend,
                        bool test_hang_on_drain) {
  return sys.spawn<caf::detached>(cache_impl, std::move(make_backend), test_hang_on_drain);
}

}  // namespace si::actors
