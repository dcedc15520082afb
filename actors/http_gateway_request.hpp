#pragma once
/// The request checks of `http_gateway`'s routes that need nothing but the request: the route
/// table (api.md), query parameters, path ids and JSON write bodies. Pure code (no CAF, no
/// database): the handlers in http_gateway_routes.cpp call it, and so does the fuzzer
/// (tests/fuzz/http_request.cpp, tests/fuzz/json_body.cpp).

#include "net/http_types.hpp"
#include "net/router.hpp"
#include "storage/api_queries.hpp"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace si::actors {

/// The gateway's routes (the id register_routes gives each pattern).
enum route_id : int {
  r_health,
  r_ready,
  r_metrics,
  r_cache_stats,
  r_shutdown_reports,
  r_test_slow,
  r_test_broadcast,
  r_ingestion_status,
  r_corridors,
  r_corridor,
  r_anchors,
  r_anchor,
  r_anchor_by_account,
  r_anchor_create,
  r_anchor_add_asset,
  r_pools,
  r_pool_stats,
  r_pool,
  r_pool_snapshots,
  r_trust_stats,
  r_trust_rankings,
  r_trust_history,
  r_webhooks_list,
  r_webhook_create,
  r_webhook_get,
  r_webhook_delete,
  r_webhook_deliveries,
  r_webhook_test,
};

/// Adds every route of api.md (and the test-only ones when enabled) to `r`.
void register_routes(net::router& r, bool test_routes);

/// True for methods that change state (refused with 503 during drain).
bool is_write(const std::string& method);

/// An error that names the request field at fault (`error.field`).
net::http_response field_error_response(const net::http_request& req, int status,
                                        std::string_view code, const std::string& field,
                                        const std::string& message);

/// A positive integer path parameter (anchor ids), nullopt otherwise.
std::optional<long long> positive_id(const std::string& raw);

/// 64 lower-case hex characters (a liquidity pool id).
bool is_pool_id(const std::string& id);

/// `wh_` + 26 upper-case Crockford base32 characters (domain::new_webhook_id).
bool is_webhook_id(const std::string& id);

/// The JSON object body of a write, or nullopt after answering 415/400 itself.
std::optional<nlohmann::json> json_body(const net::http_request& req,
                                        const net::respond_fn& respond);

/// A required string field of a write body, or nullopt after answering 422 itself.
std::optional<std::string> string_field(const nlohmann::json& body, const std::string& name,
                                        bool required, const net::http_request& req,
                                        const net::respond_fn& respond);

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
      fail(name, "must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi)
                     + ", got '" + *v + "'");
      return def;
    }
    return x;
  }

  /// A finite number in [lo, hi], nullopt when absent.
  std::optional<double> number(const std::string& name, double lo, double hi) {
    auto v = raw(name);
    if (!v) {
      return std::nullopt;
    }
    char* end = nullptr;
    double x = std::strtod(v->c_str(), &end);
    if (v->empty() || *end != '\0' || !std::isfinite(x) || x < lo || x > hi) {
      fail(name, "must be a number from " + std::to_string(lo) + " to " + std::to_string(hi)
                     + ", got '" + *v + "'");
      return std::nullopt;
    }
    return x;
  }

  /// Free text, nullopt when absent.
  std::optional<std::string> text(const std::string& name) {
    return raw(name);
  }

  /// Records a validation problem found by the caller.
  void reject(const std::string& field, std::string message) {
    fail(field, std::move(message));
  }

  /// `limit` (1..200, default 50) and `offset` (>= 0).
  storage::page_request page() {
    storage::page_request p;
    p.limit =
        static_cast<int>(integer("limit", storage::default_page_limit, 1, storage::max_page_limit));
    p.offset = integer("offset", 0, 0, std::numeric_limits<int32_t>::max());
    return p;
  }

  /// `order=asc|desc`, nullopt when absent.
  std::optional<storage::sort_order> order() {
    auto o = one_of("order", "", {"asc", "desc"});
    return o.empty() ? std::nullopt : storage::parse_sort_order(o);
  }

  /// The parameters in canonical (sorted) form, for cache keys.
  std::string canonical() const {
    std::string out;
    for (const auto& [k, v] : params_) {
      out += (out.empty() ? "" : "&") + k + "=" + v;
    }
    return out;
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
    return field_error_response(req, 400, "INVALID_PARAMETER", field_, field_ + " " + error_);
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

}  // namespace si::actors
