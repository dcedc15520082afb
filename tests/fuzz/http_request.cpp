/// Fuzz target `http_request`: the bytes a client sends on a connection, read the way
/// net/http_server.cpp reads them (Beast's request parser with the server's header and body
/// limits, the header first and then the body, pipelined requests one after the other until
/// one ends the connection), turned into the net::http_request the gateway gets, routed by
/// the gateway's route table and checked by the request checks that need nothing but the
/// request (actors/http_gateway_request.hpp: query parameters, path ids, JSON bodies).
///
/// Invariants: a complete request keeps its target (path + query), its body is within the
/// limit, a route match is consistent (405 lists other methods only, parameters are
/// non-empty), a valid path id round-trips through its canonical form, and every error the
/// server or a handler answers is the API's JSON error body with the request's id.

#include "tests/fuzz/fuzz_target.hpp"

#include "actors/http_gateway_request.hpp"
#include "domain/asset.hpp"
#include "domain/strkey.hpp"
#include "net/http_server.hpp"
#include "net/router.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <climits>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace {

namespace http = boost::beast::http;
using namespace si;

const net::router& gateway_routes() {
  static const net::router routes = [] {
    net::router r;
    actors::register_routes(r, true);  // the test-only routes too: they parse bodies
    return r;
  }();
  return routes;
}

/// An error answer must be `{"error":{"code","message","request_id"}}` with a 4xx/5xx status.
void check_error(const net::http_response& res, const std::string& request_id) {
  SI_FUZZ_CHECK(res.status >= 400 && res.status <= 599, "an error answer has an error status");
  auto body = nlohmann::json::parse(res.body, nullptr, false);
  SI_FUZZ_CHECK(!body.is_discarded(), "an error body is valid JSON: " + res.body);
  SI_FUZZ_CHECK(body.contains("error") && body["error"].is_object(), "error object: " + res.body);
  const auto& e = body["error"];
  SI_FUZZ_CHECK(e.contains("code") && e["code"].is_string(), "error.code: " + res.body);
  SI_FUZZ_CHECK(e.contains("message") && e["message"].is_string(), "error.message: " + res.body);
  SI_FUZZ_CHECK(e.value("request_id", std::string{}) == request_id, "request_id: " + res.body);
}

/// What one read from the connection produced.
struct read_result {
  std::optional<net::http_request> request;  ///< a complete request for the handler
  int server_status = 0;                     ///< 400/413/431: the server answers itself and closes
  bool upgrade = false;                      ///< a WebSocket upgrade: the server's hook takes it
  bool ended = false;  ///< the client's bytes ended mid-request (or before one): closed
};

read_result server_answer(int status) {
  read_result r;
  r.server_status = status;
  return r;
}

read_result no_request(bool upgrade) {
  read_result r;
  r.upgrade = upgrade;
  r.ended = !upgrade;
  return r;
}

/// Reads one request from `input` (consumed as Beast consumes it) with the server's limits.
read_result read_one(std::string_view& input, const net::http_server_options& limits) {
  http::request_parser<http::string_body> parser;
  parser.header_limit(
      static_cast<std::uint32_t>(std::min<std::size_t>(limits.header_limit, UINT32_MAX)));
  parser.body_limit(limits.body_limit);
  boost::beast::error_code ec;
  while (!parser.is_done()) {
    if (input.empty()) {
      parser.put_eof(ec);  // the connection ends here
      if (!ec && parser.is_done()) {
        break;
      }
      return no_request(false);
    }
    auto used = parser.put(boost::asio::buffer(input.data(), input.size()), ec);
    input.remove_prefix(used);
    if (ec == http::error::need_more) {
      if (used == 0) {
        input = {};  // all of it was offered: nothing more will come
      }
      ec = {};
      continue;
    }
    if (ec == http::error::header_limit) {
      return server_answer(431);
    }
    if (ec == http::error::body_limit) {
      return server_answer(413);
    }
    if (ec) {
      return server_answer(400);
    }
  }
  auto& msg = parser.get();
  if (boost::beast::websocket::is_upgrade(msg)) {
    return no_request(true);
  }
  net::http_request req;
  req.target = std::string(msg.target());
  net::split_target(req.target, req.path, req.query);
  req.method = std::string(msg.method_string());
  req.version = msg.version() == 10 ? 10 : 11;
  req.keep_alive = msg.keep_alive();
  auto given_id = msg["X-Request-ID"];
  req.request_id = net::sane_request_id({given_id.data(), given_id.size()})
                       ? std::string(given_id.data(), given_id.size())
                       : std::string("generated-id");
  for (auto field = msg.begin(); field != msg.end(); ++field) {
    req.headers.emplace_back(field->name_string(), field->value());
  }
  req.body = std::move(msg.body());
  SI_FUZZ_CHECK(req.body.size() <= limits.body_limit, "the body is within body_limit");
  if (req.target.starts_with('/')) {
    auto q = req.target.find('?');
    SI_FUZZ_CHECK(req.path == req.target.substr(0, q), "origin-form path: " + req.target);
    SI_FUZZ_CHECK(q == std::string::npos || req.query == req.target.substr(q + 1),
                  "origin-form query: " + req.target);
  }
  read_result r;
  r.request = std::move(req);
  return r;
}

void check_match(const net::http_request& req, const net::route_match& m) {
  switch (m.status) {
    case net::route_status::found: {
      SI_FUZZ_CHECK(m.route_id >= actors::r_health && m.route_id <= actors::r_webhook_test,
                    "a known route id");
      auto braces = std::count(m.pattern.begin(), m.pattern.end(), '{');
      SI_FUZZ_CHECK(static_cast<long>(m.params.size()) == braces, "one value per {param}");
      for (const auto& [name, value] : m.params) {
        SI_FUZZ_CHECK(!value.empty() && value.find('\0') == std::string::npos,
                      "parameter " + name + " is non-empty without NUL");
      }
      return;
    }
    case net::route_status::method_not_allowed: {
      SI_FUZZ_CHECK(!m.allow.empty(), "405 names the allowed methods");
      std::string_view allow = m.allow;
      while (!allow.empty()) {
        auto comma = allow.find(", ");
        auto method = allow.substr(0, comma);
        SI_FUZZ_CHECK(method != req.method, "405 does not allow the method it refused");
        allow = comma == std::string_view::npos ? std::string_view{} : allow.substr(comma + 2);
      }
      return;
    }
    case net::route_status::not_found:
    case net::route_status::bad_path:
      return;
  }
}

/// A valid path id re-parses from its canonical spelling to the same value.
void check_path_ids(const net::route_match& m) {
  auto param = [&](const char* name) { return m.params.at(name); };
  switch (m.route_id) {
    case actors::r_corridor: {
      auto parsed = domain::parse_corridor_id(param("id"));
      if (auto* key = std::get_if<domain::corridor_key>(&parsed)) {
        auto again = domain::parse_corridor_id(key->id());
        auto* same = std::get_if<domain::corridor_key>(&again);
        SI_FUZZ_CHECK(same != nullptr && *same == *key, "corridor id round-trips: " + key->id());
      }
      return;
    }
    case actors::r_anchor:
    case actors::r_anchor_add_asset: {
      auto id = actors::positive_id(param("id"));
      SI_FUZZ_CHECK(!id || *id > 0, "anchor ids are positive");
      return;
    }
    case actors::r_anchor_by_account: {
      const auto account = param("account");
      if (!domain::strkey_error(account, 'G')) {
        auto raw = domain::decode_strkey(account, 'G');
        SI_FUZZ_CHECK(raw && raw->size() == 32, "a valid account id decodes to 32 bytes");
        std::array<std::uint8_t, 32> key{};
        std::copy(raw->begin(), raw->end(), key.begin());
        SI_FUZZ_CHECK(domain::encode_account_id(key) == account, "account id round-trips");
      }
      return;
    }
    case actors::r_pool:
    case actors::r_pool_snapshots:
      SI_FUZZ_CHECK(!actors::is_pool_id(param("pool_id")) || param("pool_id").size() == 64,
                    "pool ids are 64 characters");
      return;
    case actors::r_trust_history: {
      auto parsed = domain::make_asset(param("code"), param("issuer"));
      if (auto* a = std::get_if<domain::asset>(&parsed)) {
        auto again = domain::parse_asset(a->id());
        auto* same = std::get_if<domain::asset>(&again);
        SI_FUZZ_CHECK(same != nullptr && *same == *a, "asset round-trips: " + a->id());
      }
      return;
    }
    case actors::r_webhook_get:
    case actors::r_webhook_delete:
    case actors::r_webhook_deliveries:
    case actors::r_webhook_test:
      SI_FUZZ_CHECK(!actors::is_webhook_id(param("id")) || param("id").starts_with("wh_"),
                    "webhook ids start with wh_");
      return;
    default:
      return;
  }
}

/// Reads every parameter of the query with the reader the handlers use, each by the kind of
/// value api.md gives it, then finishes (an unknown name or a bad value is a 400).
void check_query(const net::http_request& req) {
  actors::query_reader q{req};
  auto parsed = net::parse_query(req.query);
  if (parsed) {
    for (const auto& [name, value] : *parsed) {
      if (name == "limit" || name == "offset") {
        auto page = q.page();
        SI_FUZZ_CHECK(page.limit >= 1 && page.limit <= si::storage::max_page_limit,
                      "limit within 1..200");
        SI_FUZZ_CHECK(page.offset >= 0, "offset is not negative");
      } else if (name == "order") {
        q.order();
      } else if (name == "sort_by" || name == "status" || name == "period") {
        q.one_of(
            name, "",
            {"volume", "success_rate", "attempts", "reliability", "tvl", "green", "24h", "7d"});
      } else if (name.ends_with("_min") || name.ends_with("_max")) {
        auto x = q.number(name, 0, 1e18);
        SI_FUZZ_CHECK(!x || (*x >= 0 && *x <= 1e18), "numbers stay within their bounds");
      } else if (name == "history_limit" || name == "ms") {
        auto x = q.integer(name, 1, 1, 600'000);
        SI_FUZZ_CHECK(x >= 1 && x <= 600'000, "integers stay within their bounds");
      } else if (name == "asset_code") {
        if (auto e = domain::asset_code_error(q.text(name).value_or(""))) {
          q.reject(name, *e);
        }
      }
    }
    (void)q.canonical();
  }
  if (auto bad = q.finish(req)) {
    check_error(*bad, req.request_id);
    SI_FUZZ_CHECK(bad->status == 400, "a bad query is a 400");
  } else {
    SI_FUZZ_CHECK(parsed.has_value(), "a malformed query string is refused");
  }
}

void handle(const net::http_request& req) {
  auto match = gateway_routes().match(req.method, req.path);
  check_match(req, match);
  switch (match.status) {
    case net::route_status::not_found:
      check_error(
          net::make_error_response(404, "NOT_FOUND", "no route for " + req.path, req.request_id),
          req.request_id);
      return;
    case net::route_status::bad_path:
    case net::route_status::method_not_allowed:
      return;
    case net::route_status::found:
      break;
  }
  check_path_ids(match);
  check_query(req);
  if (actors::is_write(req.method)) {
    auto respond = [&](net::http_response res) { check_error(res, req.request_id); };
    if (auto body = actors::json_body(req, respond)) {
      SI_FUZZ_CHECK(body->is_object(), "json_body returns objects only");
    }
  }
}

}  // namespace

SI_FUZZ_TARGET(http_request) {
  static const net::http_server_options limits;  // the production defaults
  std::string_view input(reinterpret_cast<const char*>(data), size);
  for (std::size_t n = 0; n < limits.max_pipelined && !input.empty(); ++n) {
    auto r = read_one(input, limits);
    if (r.server_status != 0) {
      check_error(net::make_error_response(r.server_status, "BAD_REQUEST", "malformed request",
                                           "generated-id"),
                  "generated-id");
      return;  // the server closes after its own error answer
    }
    if (!r.request) {
      return;  // ended, or an upgrade: no more HTTP on this connection
    }
    handle(*r.request);
    if (!r.request->keep_alive) {
      return;
    }
  }
}
