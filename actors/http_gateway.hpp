#pragma once
/// `http_gateway`: owns the HTTP server (net/), routes every request, answers through the
/// cache and db actors, and drains without losing a request (design.md §3).

#include "actors/atoms.hpp"
#include "actors/cache.hpp"
#include "actors/db.hpp"
#include "actors/response_cache.hpp"
#include "net/http_types.hpp"

#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace si::net {
class metrics_registry;
struct http_server_options;
}  // namespace si::net

namespace si::actors {
class ingest_progress;
class ws_endpoint;
struct webhook_api_options;

/// One request handed from an io thread to the gateway, with the way back.
struct http_call {
  net::http_request request;
  net::respond_fn respond;
};

/// Work the gateway scheduled for itself (a delayed answer).
struct deferred_fn {
  std::function<void()> fn;
};

}  // namespace si::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(si::actors::http_call)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(si::actors::deferred_fn)

namespace si::actors {

/// Messages: `http_atom, call` (from the server's io threads); `drain_atom` → the HTTP drain,
/// then the counts JSON (or `errc::drain_incomplete` with the counts when requests had to
/// be cut at SHUTDOWN_GRACEFUL_TIMEOUT); `status_atom` → JSON of the server counters;
/// `update_atom, name, handle` → use the restarted "db" or "cache" actor from now on.
/// The rest are the gateway's own timers. With `websocket` set, the drain does not stop the
/// server: it hands it to the ws_hub (`adopt_atom`), which stops it once its own WebSocket
/// drain is over (docs/websocket.md "Shutdown").
using http_gateway_actor =
    caf::typed_actor<caf::reacts_to<http_atom, http_call>,
                     caf::replies_to<drain_atom>::with<std::string>,
                     caf::replies_to<status_atom>::with<std::string>,
                     caf::reacts_to<drain_step_atom>, caf::reacts_to<drained_atom>,
                     caf::reacts_to<cut_atom>, caf::reacts_to<respond_atom, deferred_fn>,
                     caf::reacts_to<caf::update_atom, std::string, caf::actor>>;

/// Everything the gateway needs; the server options come from config (HTTP_*).
struct http_gateway_options {
  std::shared_ptr<net::http_server_options> server;
  db_actor db;
  cache_actor cache;
  std::shared_ptr<net::metrics_registry> metrics;
  std::optional<std::string> admin_token;              ///< ADMIN_API_TOKEN; unset → writes 403
  std::chrono::milliseconds drain_delay{0};            ///< SHUTDOWN_DRAIN_DELAY
  std::chrono::milliseconds graceful_timeout{30'000};  ///< SHUTDOWN_GRACEFUL_TIMEOUT
  std::chrono::milliseconds upstream_timeout{5'000};   ///< HTTP_UPSTREAM_TIMEOUT_MS
  std::chrono::milliseconds cache_ttl{60'000};         ///< CACHE_DEFAULT_TTL
  bool test_routes = false;                            ///< HTTP_TEST_ROUTES
  /// Whole-page cache read on the io threads (nullptr: every request goes to the actor).
  std::shared_ptr<response_cache> responses;
  /// The ingestor's progress for readiness and /api/v1/ingestion/status (null: disabled).
  std::shared_ptr<ingest_progress> ingest;
  /// Called on every (re)start with the bound port, or with 0 and the reason when the
  /// listener could not be opened (main uses the first call to fail fast at start-up).
  std::function<void(uint16_t port, const std::string& error)> on_listen;
  /// `/ws`: the upgrade hook to install and the hub to hand the server to at the end of the
  /// drain (null: WebSocket off, the drain stops the server itself).
  std::shared_ptr<ws_endpoint> websocket;
  /// /api/v1/webhooks: secrets' cipher, SSRF setting, the dispatcher's doorbell (null: 503).
  std::shared_ptr<const webhook_api_options> webhooks;
  /// TEST_HANG_ON_DRAIN: ignore the drain request (tests of timed_out and hard deadline).
  bool test_hang_on_drain = false;
};

/// Spawns the gateway; it binds and starts serving in its init. A bind failure makes the
/// actor exit with an error (the supervisor then restarts it with backoff).
http_gateway_actor spawn_http_gateway(caf::actor_system& sys, http_gateway_options opts);

/// Describes every metric family the gateway writes (call once per registry).
void describe_http_metrics(net::metrics_registry& m);

}  // namespace si::actors
