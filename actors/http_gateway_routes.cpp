#include "actors/http_gateway_routes.hpp"

#include "actors/webhook_dispatcher.hpp"
#include "actors/ws_hub.hpp"

#include "domain/asset.hpp"
#include "domain/strkey.hpp"
#include "net/http_server.hpp"
#include "net/prometheus.hpp"
#include "storage/anchors_repo.hpp"
#include "storage/database.hpp"
#include "storage/corridors_repo.hpp"
#include "storage/ingestion_repo.hpp"
#include "storage/pools_repo.hpp"
#include "storage/shutdown_reports.hpp"
#include "storage/trustlines_repo.hpp"
#include "storage/webhooks_repo.hpp"

#include <soci/soci.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>

namespace si::actors {

using std::chrono::milliseconds;

namespace {

/// The ingestion stream the ingestor records its cursor and state under.
constexpr std::string_view ingestion_stream = "horizon";

net::http_response error(const net::http_request& req, int status, std::string_view code,
                         std::string_view message) {
  return net::make_error_response(status, code, message, req.request_id);
}

/// A repository's "maybe found" as JSON: null means 404 to serve_cached.
nlohmann::json or_null(std::optional<nlohmann::json> v) {
  return v ? std::move(*v) : nlohmann::json(nullptr);
}

/// 401/403 for a request that needs the admin token, or nullopt when it may proceed.
std::optional<net::http_response> check_auth(const route_context& ctx, const net::http_request& req,
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

/// Read-through: the cache under `key`, else `task` on the db (null result → 404), stored
/// in the cache for the TTL.
void serve_cached(route_context& ctx, net::http_request req, net::respond_fn respond,
                  std::string key, db_task task, std::string not_found, std::string route) {
  auto* up = &ctx.up;
  auto ttl = ctx.cache_ttl;
  up->cache_get(key, [=, req = std::move(req),
                      task = std::move(task)](std::optional<std::string> hit) mutable {
    if (hit) {
      auto tag = etag_of(*hit);
      up->remember(page_key(req), route, *hit, tag, ttl);
      respond(cached_response(req, *hit, tag, ttl));
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
      auto tag = etag_of(body);
      up->cache_put(key, body, ttl);
      up->remember(page_key(req), route, body, tag, ttl);
      respond(cached_response(req, body, tag, ttl));
    });
  });
}

/// Turns a repository write outcome into JSON the gateway can map to a status.
template <class Variant>
nlohmann::json write_outcome(Variant&& result) {
  return std::visit(
      [](auto&& v) -> nlohmann::json {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, nlohmann::json>) {
          return {{"ok", v}};
        } else if constexpr (std::is_same_v<T, storage::field_error>) {
          return {{"field_error", {{"field", v.field}, {"message", v.message}}}};
        } else if constexpr (std::is_same_v<T, storage::not_found_error>) {
          return {{"not_found", v.message}};
        } else {
          return {{"conflict", v.message}};
        }
      },
      std::forward<Variant>(result));
}

/// Runs a write on the db and answers 201/404/409/422; invalidates `pattern` on success.
void run_write(route_context& ctx, net::http_request req, net::respond_fn respond, db_task task,
               std::string pattern) {
  auto* up = &ctx.up;
  up->query(std::move(task), [=](std::variant<nlohmann::json, std::string> result) {
    if (auto* err = std::get_if<std::string>(&result)) {
      return respond(upstream_error(req, *err));
    }
    auto& j = std::get<nlohmann::json>(result);
    if (j.contains("ok")) {
      up->cache_invalidate(pattern);  // before answering: a client's next read sees it
      return respond(json_response(201, j["ok"]));
    }
    if (j.contains("field_error")) {
      auto field = j["field_error"]["field"].get<std::string>();
      return respond(
          field_error_response(req, 422, "VALIDATION_FAILED", field,
                               field + " " + j["field_error"]["message"].get<std::string>()));
    }
    if (j.contains("not_found")) {
      return respond(error(req, 404, "NOT_FOUND", j["not_found"].get<std::string>()));
    }
    respond(error(req, 409, "CONFLICT", j.value("conflict", std::string{"conflict"})));
  });
}

/// The cache key of a GET: path plus canonical query.
std::string cache_key(const net::http_request& req, const query_reader& q) {
  return "api:" + req.path + "?" + q.canonical();
}

/// /api/v1/webhooks (api.md, Webhooks). Every route needs the admin token, reads included:
/// subscriptions hold URLs (often with credentials in them) and delivery logs.
void handle_webhooks(route_context& ctx, const net::route_match& match, net::http_request req,
                     net::respond_fn respond) {
  query_reader q{req};
  storage::page_request page;
  if (match.route_id == r_webhooks_list || match.route_id == r_webhook_deliveries) {
    page = q.page();
  }
  if (auto bad = q.finish(req)) {
    return respond(std::move(*bad));
  }
  if (auto denied =
          check_auth(ctx, req, is_write(req.method) ? "WRITES_DISABLED" : "ADMIN_DISABLED")) {
    return respond(std::move(*denied));
  }
  if (!ctx.webhooks) {
    return respond(error(req, 503, "UNAVAILABLE", "webhooks are not available on this server"));
  }
  std::string id;
  if (match.route_id != r_webhooks_list && match.route_id != r_webhook_create) {
    id = match.params.at("id");
    if (!is_webhook_id(id)) {
      return respond(error(req, 400, "INVALID_WEBHOOK_ID",
                           "webhook id must be 'wh_' followed by 26 base32 characters"));
    }
  }
  // Answers `status` with the task's JSON, 404 when it returned null.
  auto answer = [req, respond](int status, std::string not_found) {
    return [req, respond, status, not_found](std::variant<nlohmann::json, std::string> result) {
      if (auto* err = std::get_if<std::string>(&result)) {
        return respond(upstream_error(req, *err));
      }
      auto& j = std::get<nlohmann::json>(result);
      if (j.is_null()) {
        return respond(error(req, 404, "NOT_FOUND", not_found));
      }
      if (status == 204) {
        net::http_response r;
        r.status = 204;
        return respond(std::move(r));
      }
      respond(json_response(status, j));
    };
  };
  auto api = ctx.webhooks;
  switch (match.route_id) {
    case r_webhook_create: {
      auto body = json_body(req, respond);
      if (!body) {
        return;
      }
      auto url = string_field(*body, "url", true, req, respond);
      if (!url) {
        return;
      }
      // The syntax here; the DNS answer on a db worker below (it blocks).
      auto parsed = net::parse_webhook_url(*url);
      if (auto* e = std::get_if<net::policy_error>(&parsed)) {
        return respond(
            field_error_response(req, 422, "VALIDATION_FAILED", "url", "url " + e->message));
      }
      auto types_field = body->value("event_types", nlohmann::json(nullptr));
      if (types_field.is_null()) {
        return respond(field_error_response(req, 422, "VALIDATION_FAILED", "event_types",
                                            "event_types is required"));
      }
      auto types = domain::parse_event_types(types_field);
      if (auto* e = std::get_if<std::string>(&types)) {
        return respond(field_error_response(req, 422, "VALIDATION_FAILED", "event_types", *e));
      }
      auto filters = domain::parse_filters(body->value("filters", nlohmann::json(nullptr)));
      if (auto* e = std::get_if<std::string>(&filters)) {
        return respond(field_error_response(req, 422, "VALIDATION_FAILED", "filters", *e));
      }
      storage::new_webhook hook{*url, nlohmann::json(std::get<std::vector<std::string>>(types)),
                                std::get<nlohmann::json>(filters)};
      auto now = storage::unix_ms_now();
      db_task task{
          "webhooks.create", [api, hook, now](soci::session& sql) -> nlohmann::json {
            // Bounded by resolve_timeout; no transaction is open meanwhile.
            auto checked =
                net::check_url(hook.url, api->allow_private, api->resolver, api->resolve_timeout);
            if (auto* e = std::get_if<net::policy_error>(&checked)) {
              return {{"field_error", {{"field", "url"}, {"message", e->message}}}};
            }
            return write_outcome(storage::create_webhook(sql, hook, api->cipher.get(), now));
          }};
      run_write(ctx, std::move(req), std::move(respond), std::move(task), "api:/api/v1/webhooks*");
      return;
    }
    case r_webhooks_list:
      ctx.up.query(
          db_task{"webhooks.list",
                  [page](soci::session& sql) { return storage::list_webhooks(sql, page); }},
          answer(200, ""));
      return;
    case r_webhook_get:
      ctx.up.query(
          db_task{"webhooks.get",
                  [id](soci::session& sql) { return or_null(storage::get_webhook(sql, id)); }},
          answer(200, "no webhook " + id));
      return;
    case r_webhook_deliveries:
      ctx.up.query(db_task{"webhooks.deliveries",
                           [id, page](soci::session& sql) {
                             return or_null(storage::deliveries_of(sql, id, page));
                           }},
                   answer(200, "no webhook " + id));
      return;
    case r_webhook_delete:
      ctx.up.query(db_task{"webhooks.delete",
                           [id](soci::session& sql) {
                             return storage::delete_webhook(sql, id) ? nlohmann::json(true)
                                                                     : nlohmann::json(nullptr);
                           }},
                   answer(204, "no webhook " + id));
      return;
    case r_webhook_test: {
      auto now = storage::unix_ms_now();
      auto done = answer(202, "no webhook " + id);
      ctx.up.query(db_task{"webhooks.test",
                           [id, now](soci::session& sql) -> nlohmann::json {
                             auto e = storage::enqueue_test_event(sql, id, now);
                             if (!e) {
                               return nullptr;
                             }
                             return {{"webhook_id", id},
                                     {"event_id", e->event_id},
                                     {"type", "test"},
                                     {"deliveries", e->deliveries}};
                           }},
                   [done, api](std::variant<nlohmann::json, std::string> result) {
                     // After the commit because the dispatcher must find the event.
                     if (auto* j = std::get_if<nlohmann::json>(&result);
                         j && j->is_object() && api->doorbell) {
                       api->doorbell->ring();
                     }
                     done(std::move(result));
                   });
      return;
    }
    default:
      respond(error(req, 500, "INTERNAL_ERROR", "route without a handler"));
  }
}

void handle_analytics(route_context& ctx, const net::route_match& match, net::http_request req,
                      net::respond_fn respond) {
  query_reader q{req};
  auto param = [&](const char* name) { return match.params.at(name); };
  auto finish_or_answer = [&]() {
    if (auto bad = q.finish(req)) {
      respond(std::move(*bad));
      return false;
    }
    return true;
  };
  auto cached = [&](std::string not_found, std::function<nlohmann::json(soci::session&)> fn,
                    const char* label) {
    auto key = cache_key(req, q);
    serve_cached(ctx, std::move(req), std::move(respond), std::move(key),
                 db_task{label, std::move(fn)}, std::move(not_found), match.pattern);
  };
  auto period = [&]() -> std::optional<storage::corridor_period> {
    auto p = q.one_of("period", "", {"24h", "7d", "30d"});
    return p.empty() ? std::nullopt : storage::parse_corridor_period(p);
  };
  switch (match.route_id) {
    case r_ingestion_status: {
      if (!finish_or_answer()) {
        return;
      }
      std::optional<long long> latest;
      if (ctx.ingest && ctx.ingest->network_latest() > 0) {
        latest = ctx.ingest->network_latest();
      }
      db_task task{"ingestion.status", [latest](soci::session& sql) {
                     return storage::ingestion_status(sql, ingestion_stream, latest);
                   }};
      ctx.up.query(std::move(task), [req, respond](auto result) {
        if (auto* err = std::get_if<std::string>(&result)) {
          return respond(upstream_error(req, *err));
        }
        respond(json_response(200, std::get<nlohmann::json>(result)));
      });
      return;
    }
    case r_corridors: {
      storage::corridor_query cq;
      cq.asset_code = q.text("asset_code");
      if (cq.asset_code) {
        if (auto e = domain::asset_code_error(*cq.asset_code)) {
          q.reject("asset_code", *e);
        }
      }
      cq.success_rate_min = q.number("success_rate_min", 0, 100);
      cq.success_rate_max = q.number("success_rate_max", 0, 100);
      cq.volume_min = q.number("volume_min", 0, 1e18);
      cq.volume_max = q.number("volume_max", 0, 1e18);
      cq.period = period();
      cq.sort_by = *storage::parse_corridor_sort(
          q.one_of("sort_by", "volume", {"success_rate", "volume", "attempts"}));
      cq.order = q.order();
      cq.page = q.page();
      cq.now_ms = storage::unix_ms_now();
      if (!finish_or_answer()) {
        return;
      }
      cached(
          "", [cq](soci::session& sql) { return storage::list_corridors(sql, cq); },
          "corridors.list");
      return;
    }
    case r_corridor: {
      auto parsed = domain::parse_corridor_id(param("id"));
      if (auto* e = std::get_if<std::string>(&parsed)) {
        return respond(error(req, 400, "INVALID_CORRIDOR_ID", *e));
      }
      storage::corridor_detail_query dq;
      dq.id = std::get<domain::corridor_key>(parsed).id();
      dq.period = period();
      dq.now_ms = storage::unix_ms_now();
      if (!finish_or_answer()) {
        return;
      }
      cached(
          "no corridor " + dq.id,
          [dq](soci::session& sql) { return or_null(storage::get_corridor(sql, dq)); },
          "corridors.get");
      return;
    }
    case r_anchors: {
      storage::anchor_query aq;
      auto status = q.one_of("status", "", {"green", "yellow", "red"});
      if (!status.empty()) {
        aq.status = storage::parse_anchor_status(status);
      }
      aq.sort_by = *storage::parse_anchor_sort(
          q.one_of("sort_by", "reliability", {"reliability", "transactions", "name"}));
      aq.order = q.order();
      aq.page = q.page();
      if (!finish_or_answer()) {
        return;
      }
      cached(
          "", [aq](soci::session& sql) { return storage::list_anchors(sql, aq); }, "anchors.list");
      return;
    }
    case r_anchor: {
      const auto& raw = param("id");
      auto parsed_id = positive_id(raw);
      if (!parsed_id) {
        return respond(
            error(req, 400, "INVALID_ANCHOR_ID", "anchor id must be a positive integer"));
      }
      auto id = *parsed_id;
      auto history = q.integer("history_limit", storage::default_anchor_history, 1,
                               storage::max_anchor_history);
      if (!finish_or_answer()) {
        return;
      }
      cached(
          "no anchor " + raw,
          [id, history](soci::session& sql) {
            return or_null(storage::get_anchor(sql, id, static_cast<int>(history)));
          },
          "anchors.get");
      return;
    }
    case r_anchor_by_account: {
      auto account = param("account");
      if (auto e = domain::strkey_error(account, 'G')) {
        return respond(error(req, 400, "INVALID_ACCOUNT_ID", "account " + *e));
      }
      auto history = q.integer("history_limit", storage::default_anchor_history, 1,
                               storage::max_anchor_history);
      if (!finish_or_answer()) {
        return;
      }
      cached(
          "no anchor with account " + account,
          [account, history](soci::session& sql) {
            return or_null(storage::get_anchor_by_account(sql, account, static_cast<int>(history)));
          },
          "anchors.by_account");
      return;
    }
    case r_anchor_create: {
      if (!finish_or_answer()) {
        return;
      }
      if (auto denied = check_auth(ctx, req, "WRITES_DISABLED")) {
        return respond(std::move(*denied));
      }
      auto body = json_body(req, respond);
      if (!body) {
        return;
      }
      storage::new_anchor a;
      auto name = string_field(*body, "name", true, req, respond);
      if (!name) {
        return;
      }
      auto account = string_field(*body, "stellar_account", true, req, respond);
      if (!account) {
        return;
      }
      if (body->contains("home_domain") && !(*body)["home_domain"].is_null()) {
        a.home_domain = string_field(*body, "home_domain", false, req, respond);
        if (!a.home_domain) {
          return;
        }
      }
      a.name = *name;
      a.stellar_account = *account;
      auto now = storage::unix_ms_now();
      run_write(ctx, std::move(req), std::move(respond),
                db_task{"anchors.create",
                        [a, now](soci::session& sql) {
                          return write_outcome(storage::create_anchor(sql, a, now));
                        }},
                "api:/api/v1/anchors*");
      return;
    }
    case r_anchor_add_asset: {
      const auto& raw = param("id");
      auto parsed_id = positive_id(raw);
      if (!parsed_id) {
        return respond(
            error(req, 400, "INVALID_ANCHOR_ID", "anchor id must be a positive integer"));
      }
      auto id = *parsed_id;
      if (!finish_or_answer()) {
        return;
      }
      if (auto denied = check_auth(ctx, req, "WRITES_DISABLED")) {
        return respond(std::move(*denied));
      }
      auto body = json_body(req, respond);
      if (!body) {
        return;
      }
      auto code = string_field(*body, "asset_code", true, req, respond);
      if (!code) {
        return;
      }
      auto issuer = string_field(*body, "asset_issuer", true, req, respond);
      if (!issuer) {
        return;
      }
      storage::new_anchor_asset asset{*code, *issuer};
      auto now = storage::unix_ms_now();
      run_write(ctx, std::move(req), std::move(respond),
                db_task{"anchors.add_asset",
                        [id, asset, now](soci::session& sql) {
                          return write_outcome(storage::add_anchor_asset(sql, id, asset, now));
                        }},
                "api:/api/v1/anchors*");
      return;
    }
    case r_pools: {
      storage::pool_query pq;
      pq.sort_by =
          *storage::parse_pool_sort(q.one_of("sort_by", "tvl", {"tvl", "volume", "fees", "apy"}));
      pq.order = q.order();
      pq.page = q.page();
      if (!finish_or_answer()) {
        return;
      }
      cached(
          "", [pq](soci::session& sql) { return storage::list_pools(sql, pq); }, "pools.list");
      return;
    }
    case r_pool_stats:
      if (!finish_or_answer()) {
        return;
      }
      cached(
          "", [](soci::session& sql) { return storage::pool_stats(sql); }, "pools.stats");
      return;
    case r_pool:
    case r_pool_snapshots: {
      auto id = param("pool_id");
      if (!is_pool_id(id)) {
        return respond(
            error(req, 400, "INVALID_POOL_ID", "pool id must be 64 lower-case hex characters"));
      }
      if (match.route_id == r_pool) {
        if (!finish_or_answer()) {
          return;
        }
        cached(
            "no pool " + id,
            [id](soci::session& sql) { return or_null(storage::get_pool(sql, id)); }, "pools.get");
        return;
      }
      auto page = q.page();
      if (!finish_or_answer()) {
        return;
      }
      cached(
          "no pool " + id,
          [id, page](soci::session& sql) {
            return or_null(storage::list_pool_snapshots(sql, id, page));
          },
          "pools.snapshots");
      return;
    }
    case r_trust_stats:
      if (!finish_or_answer()) {
        return;
      }
      cached(
          "", [](soci::session& sql) { return storage::trustline_stats(sql); }, "trustlines.stats");
      return;
    case r_trust_rankings: {
      storage::trustline_ranking_query tq;
      tq.sort_by =
          *storage::parse_trustline_sort(q.one_of("sort_by", "accounts", {"accounts", "supply"}));
      tq.order = q.order();
      tq.page = q.page();
      if (!finish_or_answer()) {
        return;
      }
      cached(
          "", [tq](soci::session& sql) { return storage::trustline_rankings(sql, tq); },
          "trustlines.rankings");
      return;
    }
    case r_trust_history: {
      auto parsed = domain::make_asset(param("code"), param("issuer"));
      if (auto* e = std::get_if<std::string>(&parsed)) {
        return respond(error(req, 400, "INVALID_ASSET", *e));
      }
      auto a = std::get<domain::asset>(parsed);
      auto page = q.page();
      if (!finish_or_answer()) {
        return;
      }
      cached(
          "no trustline history for " + a.id(),
          [a, page](soci::session& sql) {
            return or_null(storage::trustline_history(sql, a.code, a.issuer, page));
          },
          "trustlines.history");
      return;
    }
    default:
      respond(error(req, 500, "INTERNAL_ERROR", "route without a handler"));
  }
}

/// Cache stats including the io-thread page cache's hits (both are served from cache).
nlohmann::json with_page_hits(nlohmann::json stats, uint64_t page_hits) {
  if (!stats.is_object()) {
    return stats;
  }
  auto hits = stats.value("hits", uint64_t{0}) + page_hits;
  auto misses = stats.value("misses", uint64_t{0});
  stats["hits"] = hits;
  stats["page_cache_hits"] = page_hits;
  stats["hit_rate_percent"] =
      hits + misses == 0 ? 0.0 : 100.0 * static_cast<double>(hits) / (hits + misses);
  return stats;
}

void handle_metrics(route_context& ctx, net::http_request req, net::respond_fn respond) {
  auto* metrics = &ctx.metrics;
  auto stats = ctx.server_stats();
  auto started = ctx.started;
  auto page_hits = ctx.page_hits;
  ctx.up.cache_stats([=](nlohmann::json cache) {
    cache = with_page_hits(std::move(cache), page_hits);
    metrics->gauge_set("si_http_in_flight_requests", {}, static_cast<double>(stats.in_flight));
    metrics->gauge_set("si_http_open_connections", {}, static_cast<double>(stats.connections_open));
    metrics->gauge_set(
        "si_process_uptime_seconds", {},
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    if (cache.is_object()) {
      const auto backend = cache.value("backend", std::string("unknown"));
      for (const auto* field : {"hits", "misses", "invalidations"}) {
        metrics->counter_set("si_cache_" + std::string(field) + "_total", {{"backend", backend}},
                             cache.value(field, 0.0));
      }
    }
    auto d = [](uint64_t v) { return static_cast<double>(v); };
    metrics->gauge_set("si_ws_transport_open_connections", {}, d(stats.ws_open));
    metrics->counter_set("si_ws_transport_accepted_total", {}, d(stats.ws_accepted));
    metrics->counter_set("si_ws_transport_upgrades_rejected_total", {},
                         d(stats.ws_upgrades_rejected));
    metrics->counter_set("si_ws_transport_messages_written_total", {}, d(stats.ws_messages_sent));
    metrics->counter_set("si_ws_transport_messages_received_total", {},
                         d(stats.ws_messages_received));
    metrics->counter_set("si_ws_transport_messages_dropped_total", {},
                         d(stats.ws_messages_dropped));
    metrics->counter_set("si_ws_transport_close_frames_written_total", {},
                         d(stats.ws_close_frames_sent));
    metrics->counter_set("si_ws_transport_closes_total", {{"reason", "overflow"}},
                         d(stats.ws_overflow_closes));
    metrics->counter_set("si_ws_transport_closes_total", {{"reason", "oversize"}},
                         d(stats.ws_oversize_closes));
    metrics->counter_set("si_ws_transport_closes_total", {{"reason", "binary"}},
                         d(stats.ws_binary_closes));
    metrics->counter_set("si_ws_transport_closes_total", {{"reason", "timeout"}},
                         d(stats.ws_timed_out));
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

net::http_response cached_response(const net::http_request& req, const std::string& body,
                                   const std::string& tag, milliseconds ttl,
                                   std::shared_ptr<const void> body_owner) {
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
  if (req.method != "HEAD") {
    if (body_owner) {
      r.shared_owner = std::move(body_owner);  // no copy of the page per request
      r.shared_body = body;
    } else {
      r.body = body;
    }
  }
  r.set_header("Content-Type", "application/json");
  r.set_header("ETag", tag);
  r.set_header("Cache-Control", cc);
  return r;
}

std::string page_key(const net::http_request& req) {
  return "api:" + req.path + "?" + req.query;
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
      ctx.up.checks([respond, ingest = ctx.ingest](nlohmann::json checks) {
        // The ingestor's state (catching_up, tailing, backoff, ...) is shown, not required:
        // the API still answers from what is stored while Horizon is unreachable.
        checks["ingestor"] = ingest ? ingest->state() : std::string{"disabled"};
        // A degraded cache costs speed, not correctness: still ready. The database is not.
        bool ready = checks.value("db", "") == "ok";
        respond(json_response(ready ? 200 : 503,
                              {{"status", ready ? "ready" : "not_ready"}, {"checks", checks}}));
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
      ctx.up.cache_stats([req, respond, hits = ctx.page_hits](nlohmann::json stats) {
        stats = with_page_hits(std::move(stats), hits);
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
      db_task task{
          "shutdown_reports.list", [limit](soci::session& sql) {
            return nlohmann::json(storage::list_shutdown_reports(sql, static_cast<int>(limit)));
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
      ctx.up.after(milliseconds{ms}, [respond, ms] {
        respond(json_response(200, {{"slept_ms", ms}}));
      });
      return;
    }
    case r_test_broadcast: {
      // Test-only (HTTP_TEST_ROUTES): one `test_broadcast` message to the subscribers of
      // `channels`, for the WebSocket end-to-end test and bench. Body {channels, data?}.
      if (auto bad = q.finish(req)) {
        return respond(std::move(*bad));
      }
      auto body = json_body(req, respond);
      if (!body) {
        return;
      }
      auto ch = body->find("channels");
      std::vector<std::string> channels;
      if (ch != body->end() && ch->is_array()) {
        for (const auto& v : *ch) {
          auto name =
              v.is_string() ? canonical_channel(v.get_ref<const std::string&>()) : std::nullopt;
          if (!name) {
            channels.clear();
            break;
          }
          channels.push_back(std::move(*name));
        }
      }
      if (channels.empty()) {
        return respond(field_error_response(req, 422, "VALIDATION_FAILED", "channels",
                                            "channels must be a non-empty array of channels"));
      }
      auto data = body->value("data", nlohmann::json(nullptr));
      auto text = nlohmann::json{{"type", "test_broadcast"},
                                 {"timestamp", storage::unix_ms_now()},
                                 {"data", std::move(data)}}
                      .dump();
      ctx.up.ws_publish(
          channels, std::move(text), [req, respond, channels](std::optional<uint64_t> queued) {
            if (!queued) {
              return respond(
                  error(req, 503, "SERVICE_UNAVAILABLE", "the WebSocket hub is not available"));
            }
            respond(json_response(200, {{"channels", channels}, {"queued", *queued}}));
          });
      return;
    }
    case r_webhooks_list:
    case r_webhook_create:
    case r_webhook_get:
    case r_webhook_delete:
    case r_webhook_deliveries:
    case r_webhook_test:
      handle_webhooks(ctx, match, std::move(req), std::move(respond));
      return;
    default:
      handle_analytics(ctx, match, std::move(req), std::move(respond));
      return;
  }
}

}  // namespace si::actors
