#include "actors/http_gateway_routes.hpp"

#include "net/http_server.hpp"
#include "net/prometheus.hpp"
#include "storage/shutdown_reports.hpp"

#include <soci/soci.h>

#include <cstdio>
#include <set>

namespace si::actors {

using std::chrono::milliseconds;

namespace {

enum route_id : int {
  r_health,
  r_ready,
  r_metrics,
  r_cache_stats,
  r_shutdown_reports,
  r_test_slow,
};

net::http_response error(const net::http_request& req, int status, std::string_view code,
                         std::string_view message) {
  return net::make_error_response(status, code, message, req.request_id);
}

/// Reads and validates query parameters; the first problem wins and names the field.
class query_reader {
public:
  explicit query_reader(const net::http_request& req) {
    auto parsed = net::parse_query(req.query);
    if (!parsed) {
      error_ = "query string has a malformed percent-escape";
      field_ = "query";
    } else {
      params_ = std::move(*parsed);
    }
  }

  /// An integer in [lo, hi], `def` when absent.
  int64_t integer(const std::string& name, int64_t def, int64_t lo, int64_t hi) {
    auto v = raw(name);
    if (!v) {
      return def;
    }
    char* end = nullptr;
    errno = 0;
    long long x = std::strtoll(v->c_str(), &end, 10);
    if (v->empty() || *end != '\0' || errno != 0 || x < lo || x > hi) {
      fail(name, "must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi) +
                   ", got '" + *v + "'");
      return def;
    }
    return x;
  }

  /// One of `allowed`, `def` when absent.
  std::string one_of(const std::string& name, const std::string& def,
                     const std::vector<std::string>& allowed) {
    auto v = raw(name);
    if (!v) {
      return def;
    }
    for (const auto& a : allowed) {
      if (*v == a) {
        return a;
      }
    }
    std::string list;
    for (const auto& a : allowed) {
      list += (list.empty() ? "" : "|") + a;
    }
    fail(name, "must be one of " + list + ", got '" + *v + "'");
    return def;
  }

  /// Call after reading every known parameter: an unknown one is an error too.
  std::optional<net::http_response> finish(const net::http_request& req) {
    if (error_.empty()) {
      for (const auto& [k, v] : params_) {
        if (used_.count(k) == 0) {
          fail(k, "is not a parameter of this endpoint");
          break;
        }
      }
    }
    if (error_.empty()) {
      return std::nullopt;
    }
    auto r = error(req, 400, "INVALID_PARAMETER", field_ + " " + error_);
    auto body = nlohmann::json::parse(r.body);
    body["error"]["field"] = field_;
    r.body = body.dump();
    return r;
  }

private:
  std::optional<std::string> raw(const std::string& name) {
    used_.insert(name);
    auto i = params_.find(name);
    return i == params_.end() ? std::nullopt : std::optional<std::string>{i->second};
  }
  void fail(const std::string& field, std::string message) {
    if (error_.empty()) {
      field_ = field;
      error_ = std::move(message);
    }
  }
  net::query_params params_;
  std::set<std::string> used_;
  std::string field_;
  std::string error_;
};

/// 401/403 for a request that needs the admin token, or nullopt when it may proceed.
std::optional<net::http_response> check_auth(const route_context& ctx,
                                             const net::http_request& req,
                                             std::string_view disabled_code) {
  if (!ctx.admin_token) {
    return error(req, 403, disabled_code, "no ADMIN_API_TOKEN is configured on this server");
  }
  if (!bearer_matches(req, *ctx.admin_token)) {
    auto r = error(req, 401, "UNAUTHORIZED", "a valid 'Authorization: Bearer <token>' is required");
    r.set_header("WWW-Authenticate", "Bearer");
    return r;
  }
  return std::nullopt;
}

net::http_response upstream_error(const net::http_request& req, const std::string& why) {
  auto r = error(req, 503, "UNAVAILABLE", "a dependency did not answer: " + why);
  r.set_header("Retry-After", "1");
  return r;
}

/// 200 with ETag and Cache-Control, or 304 when the client already has this body.
net::http_response cached_response(const net::http_request& req, const std::string& body,
                                   milliseconds ttl) {
  auto tag = etag_of(body);
  auto cc = "public, max-age=" + std::to_string(ttl.count() / 1000);
  if (auto inm = req.header("If-None-Match")) {
    if (*inm == "*" || inm->find(tag) != std::string_view::npos) {
      net::http_response r;
      r.status = 304;
      r.set_header("ETag", tag);
      r.set_header("Cache-Control", cc);
      return r;
    }
  }
  net::http_response r;
  r.status = 200;
  r.body = req.method == "HEAD" ? std::string{} : body;
  r.set_header("Content-Type", "application/json");
  r.set_header("ETag", tag);
  r.set_header("Cache-Control", cc);
  return r;
}

/// Read-through: the cache under `key`, else `task` on the db (null result → 404), stored
/// in the cache for the TTL.
void serve_cached(route_context& ctx, net::http_request req, net::respond_fn respond,
                  std::string key, db_task task, std::string not_found) {
  auto* up = &ctx.up;
  auto ttl = ctx.cache_ttl;
  up->cache_get(key, [=, req = std::move(req), task = std::move(task)](
                       std::optional<std::string> hit) mutable {
    if (hit) {
      respond(cached_response(req, *hit, ttl));
      return;
    }
    up->query(std::move(task), [=](std::variant<nlohmann::json, std::string> result) {
      if (auto* err = std::get_if<std::string>(&result)) {
        respond(upstream_error(req, *err));
        return;
      }
      auto& j = std::get<nlohmann::json>(result);
      if (j.is_null()) {
        respond(error(req, 404, "NOT_FOUND", not_found));
        return;
      }
      auto body = j.dump();
      up->cache_put(key, body, ttl);
      respond(cached_response(req, body, ttl));
    });
  });
}

void handle_metrics(route_context& ctx, net::http_request req, net::respond_fn respond) {
  auto* metrics = &ctx.metrics;
  auto stats = ctx.server_stats();
  auto started = ctx.started;
  ctx.up.cache_stats([=](nlohmann::json cache) {
    metrics->gauge_set("si_http_in_flight_requests", {}, static_cast<double>(stats.in_flight));
    metrics->gauge_set("si_http_open_connections", {},
                       static_cast<double>(stats.connections_open));
    metrics->gauge_set(
      "si_process_uptime_seconds", {},
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    if (cache.is_object()) {
      net::metric_labels b{{"backend", cache.value("backend", "unknown")}};
      metrics->counter_set("si_cache_hits_total", b, cache.value("hits", 0.0));
      metrics->counter_set("si_cache_misses_total", b, cache.value("misses", 0.0));
      metrics->counter_set("si_cache_invalidations_total", b, cache.value("invalidations", 0.0));
    }
    net::http_response r;
    r.body = metrics->render();
    r.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    respond(std::move(r));
  });
}

}  // namespace

net::http_response json_response(int status, const nlohmann::json& body) {
  net::http_response r;
  r.status = status;
  r.body = body.dump();
  r.set_header("Content-Type", "application/json");
  return r;
}

std::string etag_of(const std::string& body) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : body) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[24];
  std::snprintf(buf, sizeof buf, "\"%016llx\"", static_cast<unsigned long long>(h));
  return buf;
}

bool bearer_matches(const net::http_request& req, const std::string& token) {
  auto auth = req.header("Authorization");
  constexpr std::string_view prefix = "Bearer ";
  if (!auth || auth->size() < prefix.size() || !net::iequals(auth->substr(0, 7), prefix)) {
    return false;
  }
  auto given = auth->substr(prefix.size());
  // Constant time in the token's length: no early exit on the first differing byte.
  unsigned char diff = given.size() == token.size() ? 0 : 1;
  for (size_t i = 0; i < token.size(); ++i) {
    diff |= static_cast<unsigned char>(token[i] ^ (i < given.size() ? given[i] : 0));
  }
  return diff == 0;
}

bool is_write(const std::string& method) {
  return method == "POST" || method == "PUT" || method == "PATCH" || method == "DELETE";
}

void register_routes(net::router& r, bool test_routes) {
  r.add("GET", "/health", r_health);
  r.add("GET", "/health/ready", r_ready);
  r.add("GET", "/metrics", r_metrics);
  r.add("GET", "/api/v1/cache/stats", r_cache_stats);
  r.add("GET", "/api/v1/admin/shutdown-reports", r_shutdown_reports);
  if (test_routes) {
    r.add("GET", "/api/v1/test/slow", r_test_slow);
  }
}

void handle_request(route_context& ctx, const net::route_match& match, net::http_request req,
                    net::respond_fn respond) {
  switch (match.status) {
    case net::route_status::not_found:
      respond(error(req, 404, "NOT_FOUND", "no route for " + req.path));
      return;
    case net::route_status::bad_path:
      respond(error(req, 400, "BAD_PATH", "the path is malformed"));
      return;
    case net::route_status::method_not_allowed: {
      auto r = error(req, 405, "METHOD_NOT_ALLOWED", req.method + " is not allowed here");
      r.set_header("Allow", match.allow);
      respond(std::move(r));
      return;
    }
    case net::route_status::found:
      break;
  }
  query_reader q{req};
  switch (match.route_id) {
    case r_health: {
      if (auto bad = q.finish(req)) {
        return respond(std::move(*bad));
      }
      auto up = std::chrono::duration<double>(std::chrono::steady_clock::now() - ctx.started);
      respond(json_response(
        200, {{"status", "ok"}, {"version", SI_VERSION}, {"uptime_seconds", up.count()}}));
      return;
    }
    case r_ready: {
      if (auto bad = q.finish(req)) {
        return respond(std::move(*bad));
      }
      if (ctx.draining) {
        respond(json_response(503, {{"status", "draining"}}));
        return;
      }
      ctx.up.checks([respond](nlohmann::json checks) {
        // A degraded cache costs speed, not correctness: still ready. The database is not.
        bool ready = checks.value("db", "") == "ok";
        respond(json_response(ready ? 200 : 503, {{"status", ready ? "ready" : "not_ready"},
                                                  {"checks", checks}}));
      });
      return;
    }
    case r_metrics:
      if (auto bad = q.finish(req)) {
        return respond(std::move(*bad));
      }
      handle_metrics(ctx, std::move(req), std::move(respond));
      return;
    case r_cache_stats: {
      if (auto bad = q.finish(req)) {
        return respond(std::move(*bad));
      }
      ctx.up.cache_stats([req, respond](nlohmann::json stats) {
        if (!stats.is_object()) {
          respond(upstream_error(req, "cache stats unavailable"));
          return;
        }
        respond(json_response(200, stats));
      });
      return;
    }
    case r_shutdown_reports: {
      auto limit = q.integer("limit", 20, 1, 200);
      if (auto bad = q.finish(req)) {
        return respond(std::move(*bad));
      }
      if (auto denied = check_auth(ctx, req, "ADMIN_DISABLED")) {
        return respond(std::move(*denied));
      }
      db_task task{"shutdown_reports.list", [limit](soci::session& sql) {
                     return nlohmann::json(
                       storage::list_shutdown_reports(sql, static_cast<int>(limit)));
                   }};
      ctx.up.query(std::move(task), [req, respond](auto result) {
        if (auto* err = std::get_if<std::string>(&result)) {
          return respond(upstream_error(req, *err));
        }
        auto& rows = std::get<nlohmann::json>(result);
        respond(json_response(200, {{"reports", rows}, {"total", rows.size()}}));
      });
      return;
    }
    case r_test_slow: {
      auto ms = q.integer("ms", 1000, 0, 600'000);
      if (auto bad = q.finish(req)) {
        return respond(std::move(*bad));
      }
      ctx.up.after(milliseconds{ms},
                   [respond, ms] { respond(json_response(200, {{"slept_ms", ms}})); });
      return;
    }
    default:
      respond(error(req, 500, "INTERNAL_ERROR", "route without a handler"));
      return;
  }
}

}  // namespace si::actors
