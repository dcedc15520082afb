#include "actors/http_gateway_request.hpp"

#include <algorithm>
#include <cctype>

namespace si::actors {

namespace {

net::http_response error(const net::http_request& req, int status, std::string_view code,
                         std::string_view message) {
  return net::make_error_response(status, code, message, req.request_id);
}

}  // namespace

net::http_response field_error_response(const net::http_request& req, int status,
                                        std::string_view code, const std::string& field,
                                        const std::string& message) {
  auto r = error(req, status, code, message);
  auto body = nlohmann::json::parse(r.body);
  body["error"]["field"] = field;
  // A field may be a query parameter's name as the client spelled it: replace invalid UTF-8
  // instead of throwing (an exception here escaped the gateway actor's handler).
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

std::optional<long long> positive_id(const std::string& raw) {
  char* end = nullptr;
  errno = 0;
  long long id = std::strtoll(raw.c_str(), &end, 10);
  if (raw.empty() || *end != '\0' || errno != 0 || id <= 0) {
    return std::nullopt;
  }
  return id;
}

bool is_pool_id(const std::string& id) {
  if (id.size() != 64) {
    return false;
  }
  for (char c : id) {
    if (!std::isxdigit(static_cast<unsigned char>(c))
        || std::isupper(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

bool is_webhook_id(const std::string& id) {
  if (id.size() != 29 || id.compare(0, 3, "wh_") != 0) {
    return false;
  }
  return std::all_of(id.begin() + 3, id.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z'); });
}

std::optional<nlohmann::json> json_body(const net::http_request& req,
                                        const net::respond_fn& respond) {
  auto ct = req.header("Content-Type");
  if (!ct || !net::iequals(ct->substr(0, std::min<size_t>(ct->size(), 16)), "application/json")) {
    respond(error(req, 415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json"));
    return std::nullopt;
  }
  auto body = nlohmann::json::parse(req.body, nullptr, false);
  if (body.is_discarded()) {
    respond(error(req, 400, "INVALID_JSON", "the request body is not valid JSON"));
    return std::nullopt;
  }
  if (!body.is_object()) {
    respond(error(req, 400, "INVALID_JSON", "the request body must be a JSON object"));
    return std::nullopt;
  }
  return body;
}

std::optional<std::string> string_field(const nlohmann::json& body, const std::string& name,
                                        bool required, const net::http_request& req,
                                        const net::respond_fn& respond) {
  auto i = body.find(name);
  if (i == body.end() || i->is_null()) {
    if (required) {
      respond(field_error_response(req, 422, "VALIDATION_FAILED", name, name + " is required"));
    }
    return std::nullopt;
  }
  if (!i->is_string()) {
    respond(field_error_response(req, 422, "VALIDATION_FAILED", name, name + " must be a string"));
    return std::nullopt;
  }
  return i->get<std::string>();
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
  r.add("GET", "/api/v1/ingestion/status", r_ingestion_status);
  r.add("GET", "/api/v1/corridors", r_corridors);
  r.add("GET", "/api/v1/corridors/{id}", r_corridor);
  r.add("GET", "/api/v1/anchors", r_anchors);
  r.add("POST", "/api/v1/anchors", r_anchor_create);
  r.add("GET", "/api/v1/anchors/{id}", r_anchor);
  r.add("GET", "/api/v1/anchors/account/{account}", r_anchor_by_account);
  r.add("POST", "/api/v1/anchors/{id}/assets", r_anchor_add_asset);
  r.add("GET", "/api/v1/liquidity-pools", r_pools);
  r.add("GET", "/api/v1/liquidity-pools/stats", r_pool_stats);
  r.add("GET", "/api/v1/liquidity-pools/{pool_id}", r_pool);
  r.add("GET", "/api/v1/liquidity-pools/{pool_id}/snapshots", r_pool_snapshots);
  r.add("GET", "/api/v1/trustlines/stats", r_trust_stats);
  r.add("GET", "/api/v1/trustlines/rankings", r_trust_rankings);
  r.add("GET", "/api/v1/trustlines/{code}/{issuer}/history", r_trust_history);
  r.add("GET", "/api/v1/webhooks", r_webhooks_list);
  r.add("POST", "/api/v1/webhooks", r_webhook_create);
  r.add("GET", "/api/v1/webhooks/{id}", r_webhook_get);
  r.add("DELETE", "/api/v1/webhooks/{id}", r_webhook_delete);
  r.add("GET", "/api/v1/webhooks/{id}/deliveries", r_webhook_deliveries);
  r.add("POST", "/api/v1/webhooks/{id}/test", r_webhook_test);
  if (test_routes) {
    r.add("GET", "/api/v1/test/slow", r_test_slow);
    r.add("POST", "/api/v1/test/broadcast", r_test_broadcast);
  }
}

}  // namespace si::actors
