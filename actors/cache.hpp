#pragma once
/// `cache`: the cache actor. Owns one `storage::cache_backend` (in-process or Redis) on its
/// own thread (detached), so a slow Redis never blocks CAF's scheduler.

#include "actors/atoms.hpp"
#include "storage/cache_backend.hpp"

#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <memory>
#include <string>

namespace si::actors {

/// Messages: `get_atom, key` → (found, value); `put_atom, key, value, ttl_ms` → true;
/// `invalidate_atom, glob` → removed count; `stats_atom` → JSON `{backend, hits, misses,
/// invalidations, hit_rate_percent, ...}`; `health_atom` → "ok" | "degraded";
/// `drain_atom` → log stats, close the backend, reply the stats and quit.
/// A backend failure is a miss or a no-op, never an error to the caller.
using cache_actor =
    caf::typed_actor<caf::replies_to<get_atom, std::string>::with<bool, std::string>,
                     caf::replies_to<put_atom, std::string, std::string, int64_t>::with<bool>,
                     caf::replies_to<invalidate_atom, std::string>::with<uint64_t>,
                     caf::replies_to<stats_atom>::with<std::string>,
                     caf::replies_to<health_atom>::with<std::string>,
                     caf::replies_to<drain_atom>::with<std::string>>;

/// Builds the backend inside the actor's thread; returns nullptr only on a programming error.
using cache_backend_factory = std::function<std::unique_ptr<storage::cache_backend>()>;

/// Spawns the cache actor (detached) around the backend the factory makes.
/// `test_hang_on_drain` (TEST_HANG_ON_DRAIN) makes it ignore the drain request.
cache_actor spawn_cache(caf::actor_system& sys, cache_backend_factory make_backend,
                        bool test_hang_on_drain = false);

/// The JSON served by /api/v1/cache/stats for these counters.
std::string cache_stats_json(const char* backend, const storage::cache_stats& s);

}  // namespace si::actors
