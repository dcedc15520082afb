#pragma once
/// `ws_hub`: owns the WebSocket connections of `/ws` (api.md, docs/websocket.md): admission
/// (the upgrade hook the gateway installs), the client protocol (subscribe, unsubscribe,
/// ping, errors, a per-connection message rate), channel fan-out with one shared buffer per
/// message, and the WebSocket part of the shutdown (server_shutdown, grace, close 1001).

#include "actors/atoms.hpp"
#include "actors/ws_protocol.hpp"  // canonical_channel, parse_ws_client_message
#include "net/ws_connection.hpp"

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace si::net {
class http_server;
class metrics_registry;
}  // namespace si::net

namespace si::actors {

/// One message for any number of connections: built once, never changed, never copied.
using ws_payload = std::shared_ptr<const std::string>;

/// The HTTP server, handed from the gateway to the hub at the end of the HTTP drain so that
/// its final stop() (which drops every WebSocket still open) runs after the hub has closed
/// its connections.
struct server_lease {
  std::shared_ptr<net::http_server> server;
};

}  // namespace si::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(si::net::ws_connection_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(si::actors::ws_payload)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(si::actors::server_lease)

namespace si::actors {

/// Messages:
/// - `ws_open_atom | ws_text_atom | ws_closed_atom, connection, ...` from the transport's
///   callbacks (io threads, through ws_endpoint);
/// - `publish_atom, channels, payload` → sends `payload` once to every connection subscribed
///   to any of `channels`; replies how many connections it was queued for;
/// - `adopt_atom, lease` → keep the HTTP server until the hub's drain is over;
/// - `drain_atom` → the shutdown sequence, then `{connections, notified, closed_cleanly,
///   dropped, ...}` and quit; `status_atom` → JSON of connections, channels and counters.
/// `drain_step_atom` (end of the grace) and `cut_atom` (deadline) are the hub's own timers.
using ws_hub_actor = caf::typed_actor<
    caf::reacts_to<ws_open_atom, net::ws_connection_ptr>,
    caf::reacts_to<ws_text_atom, net::ws_connection_ptr, std::string>,
    caf::reacts_to<ws_closed_atom, net::ws_connection_ptr, uint16_t, bool>,
    caf::replies_to<publish_atom, std::vector<std::string>, ws_payload>::with<uint64_t>,
    caf::reacts_to<adopt_atom, server_lease>, caf::replies_to<drain_atom>::with<std::string>,
    caf::replies_to<status_atom>::with<std::string>, caf::reacts_to<drain_step_atom>,
    caf::reacts_to<cut_atom>>;

/// Admission settings of `/ws` (WS_MAX_CONNECTIONS, WS_AUTH_TOKEN).
struct ws_endpoint_options {
  std::size_t max_connections = 10'000;
  std::optional<std::string> auth_token;  ///< unset or empty: no token required
  std::string path = "/ws";
  /// Counts refused upgrades (si_ws_upgrades_refused_total{reason}); may be null.
  std::shared_ptr<net::metrics_registry> metrics;
};

/// What the upgrade hook (on the server's io threads) and the hub share; outlives restarts of
/// both the gateway and the hub (main owns it). Thread-safe.
///
/// The hook decides at once: 404 for another path, 503 `SERVICE_UNAVAILABLE` while the hub
/// is draining or absent, 503 `TOO_MANY_CONNECTIONS` past max_connections (an atomic count
/// reserved in the hook and released in on_closed, which the transport calls exactly once
/// per accepted upgrade), 401 `UNAUTHORIZED` on a missing or wrong `token` (constant-time
/// compare). Accepted connections forward on_open / on_text / on_closed to the hub that was
/// attached when they were accepted.
class ws_endpoint : public std::enable_shared_from_this<ws_endpoint> {
 public:
  explicit ws_endpoint(ws_endpoint_options options);
  ws_endpoint(const ws_endpoint&) = delete;
  ws_endpoint& operator=(const ws_endpoint&) = delete;

  /// The hook to install in http_server_options::websocket.hook (holds this endpoint).
  net::ws_upgrade_hook hook();

  /// The decision for one upgrade request (what hook() calls).
  net::ws_upgrade_decision decide(const net::ws_upgrade_request& request);

  /// A (re)started hub takes over: from now on accepted connections report to `hub`, and
  /// new upgrades are admitted again. Returns the connections still open from before (their
  /// events went to a hub that is gone), for the new hub to close.
  std::vector<net::ws_connection_ptr> attach(ws_hub_actor hub);

  /// The attached hub (invalid before the first attach).
  ws_hub_actor hub() const;

  /// From now on upgrades are answered 503 (the hub is draining).
  void refuse_new();

  /// Connections admitted and not yet closed (reserved by the hook, released by on_closed).
  std::size_t connections() const noexcept {
    return open_.load();
  }
  const ws_endpoint_options& options() const noexcept {
    return options_;
  }

 private:
  net::ws_upgrade_decision refuse(int status, std::string_view code, std::string_view message,
                                  std::string_view reason, const net::ws_upgrade_request& request);

  const ws_endpoint_options options_;
  std::atomic<std::size_t> open_{0};
  mutable std::mutex mutex_;
  ws_hub_actor hub_;      ///< guarded by mutex_
  bool refusing_ = true;  ///< guarded by mutex_; false once a hub is attached
  /// Open connections (on_open seen, on_closed not yet), guarded by mutex_: a restarted hub
  /// closes those its predecessor knew.
  std::unordered_map<uint64_t, net::ws_connection_ptr> live_;
};

/// Settings of the hub (from config: WS_*, SHUTDOWN_WS_*).
struct ws_hub_options {
  std::shared_ptr<ws_endpoint> endpoint;
  std::shared_ptr<net::metrics_registry> metrics;  ///< may be null
  unsigned message_rate = 20;            ///< WS_MESSAGE_RATE: client messages per second (burst)
  std::size_t max_channels = 100;        ///< channels one connection may subscribe to
  std::chrono::milliseconds grace{500};  ///< SHUTDOWN_WS_GRACE_MS: server_shutdown → 1001
  /// SHUTDOWN_WS_TIMEOUT (the plan's deadline): the hub drops what is left a margin before it
  /// (a fifth of it, at most 500 ms) so that its report still arrives in time.
  std::chrono::milliseconds deadline{5'000};
  std::chrono::milliseconds reconnect_after{1'000};  ///< WS_RECONNECT_AFTER_MS, advertised
  /// TEST_HANG_ON_DRAIN: ignore the drain request (tests of timed_out and hard deadline).
  bool test_hang_on_drain = false;
};

/// Spawns the hub; it attaches itself to the endpoint in its init.
ws_hub_actor spawn_ws_hub(caf::actor_system& sys, ws_hub_options opts);

/// Describes the metric families of the hub and the broadcaster (call once per registry;
/// the transport counters the gateway mirrors are in describe_http_metrics).
void describe_ws_metrics(net::metrics_registry& m);

/// When the hub stops waiting for close replies: `deadline` less a fifth of it, at most
/// 500 ms.
std::chrono::milliseconds ws_cut_after(std::chrono::milliseconds deadline);

}  // namespace si::actors
