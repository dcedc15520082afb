#pragma once
/// The REST routes of `http_gateway` (api.md): request validation, read-through caching,
/// ETags and JSON shaping. Handlers run on the gateway actor's thread and reach the cache
/// and database only through `upstream`, so this file holds no actor code.

#include "actors/db.hpp"
#include "actors/http_gateway_request.hpp"  // register_routes, is_write, request checks
#include "actors/ingestor.hpp"
#include "net/http_types.hpp"
#include "net/router.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace si::net {
class metrics_registry;
struct http_server_stats;
}  // namespace si::net

namespace si::actors {

struct webhook_api_options;

/// Asynchronous access to the gateway's dependencies. Every callback runs later on the
/// gateway's thread, exactly once.
struct upstream {
  /// Runs a task on the db actor: the JSON it returned, or an error text.
  std::function<void(db_task, std::function<void(std::variant<nlohmann::json, std::string>)>)>
      query;
  /// A cached value, or nullopt on miss (a cache failure is a miss).
  std::function<void(std::string, std::function<void(std::optional<std::string>)>)> cache_get;
  std::function<void(std::string key, std::string value, std::chrono::milliseconds ttl)> cache_put;
  std::function<void(std::string pattern)> cache_invalidate;
  /// Keeps a served page for the io threads' fast path (no-op when that is disabled).
  std::function<void(const std::string& key, const std::string& route, const std::string& body,
                     const std::string& etag, std::chrono::milliseconds ttl)>
      remember;
  /// The cache actor's stats JSON (null when unavailable).
  std::function<void(std::function<void(nlohmann::json)>)> cache_stats;
  /// {db: "ok"|"fail", cache: "ok"|"degraded"}.
  std::function<void(std::function<void(nlohmann::json)>)> checks;
  /// Calls `fn` after `delay` (test-only slow route).
  std::function<void(std::chrono::milliseconds delay, std::function<void()> fn)> after;
  /// Hands one message to the ws_hub for `channels` (test-only broadcast route): how many
  /// connections it was queued for, or nullopt when the hub is unavailable.
  std::function<void(std::vector<std::string> channels, std::string text,
                     std::function<void(std::optional<uint64_t>)>)>
      ws_publish;
};

/// What a handler may know about the gateway.
struct route_context {
  upstream& up;
  net::metrics_registry& metrics;
  std::function<net::http_server_stats()> server_stats;
  const std::optional<std::string>& admin_token;
  std::chrono::milliseconds cache_ttl;
  bool draining;
  std::chrono::steady_clock::time_point started;
  /// Hits of the io-thread page cache, counted as cache hits in stats and metrics.
  uint64_t page_hits = 0;
  /// The ingestor's progress (null when ingestion is disabled).
  std::shared_ptr<ingest_progress> ingest;
  /// What /api/v1/webhooks needs besides the database (null: those routes answer 503).
  std::shared_ptr<const webhook_api_options> webhooks;
};

/// Answers one request whose route was matched (or not: 404/405/400 come from here too).
void handle_request(route_context& ctx, const net::route_match& match, net::http_request req,
                    net::respond_fn respond);

/// A JSON response with Content-Type application/json.
net::http_response json_response(int status, const nlohmann::json& body);

/// 200 with ETag and Cache-Control, or 304 when the client already has this body.
/// `etag` is etag_of(body), passed in so hot paths compute it once per body, not per request.
/// With `body_owner` (what keeps `body` alive, e.g. a response_cache entry) the response
/// shares the bytes instead of copying them.
net::http_response cached_response(const net::http_request& req, const std::string& body,
                                   const std::string& etag, std::chrono::milliseconds ttl,
                                   std::shared_ptr<const void> body_owner = nullptr);

/// The cache key of a GET: `"api:" + path + "?" + query`.
std::string page_key(const net::http_request& req);

/// Strong ETag of a body (FNV-1a 64, quoted hex).
std::string etag_of(const std::string& body);

/// Constant-time check of `Authorization: Bearer <token>`.
bool bearer_matches(const net::http_request& req, const std::string& token);

}  // namespace si::actors
