/// Fuzz target `json_body`: the body of a client write (api.md), as every write route of the
/// gateway reads it: `json_body` (415/400 unless a JSON object), then the fields of
/// `POST /api/v1/webhooks` (url under the SSRF syntax rules, event_types, filters, matched
/// against the body's own `data` as a dispatcher would match an event), `POST /anchors`
/// (name, stellar_account, home_domain), `POST /anchors/{id}/assets` (asset_code,
/// asset_issuer) and the test-only `POST /test/broadcast` (channels).
///
/// Invariants: every refusal is the API's JSON error body naming a field where it should; an
/// accepted URL re-parses to the same parts; accepted event types are known and distinct;
/// accepted filters are an object within the key limit that matches itself-shaped data;
/// accepted channels are in canonical form.

#include "tests/fuzz/fuzz_target.hpp"

#include "actors/http_gateway_request.hpp"
#include "actors/ws_protocol.hpp"
#include "domain/asset.hpp"
#include "domain/strkey.hpp"
#include "domain/webhook.hpp"
#include "net/address_policy.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>
#include <string>
#include <variant>

namespace {

using namespace si;

/// The answers a check gave (each must be a JSON error), for the invariants below.
struct answers {
  int count = 0;
  std::string last_field;
};

net::respond_fn recorder(const net::http_request& req, answers& out) {
  return [&req, &out](net::http_response res) {
    ++out.count;
    auto body = nlohmann::json::parse(res.body, nullptr, false);
    SI_FUZZ_CHECK(res.status >= 400 && res.status < 500, "a refused body is a 4xx");
    SI_FUZZ_CHECK(!body.is_discarded() && body.contains("error"), "JSON error: " + res.body);
    SI_FUZZ_CHECK(body["error"].value("request_id", "") == req.request_id, "request id");
    out.last_field = body["error"].value("field", "");
  };
}

void check_webhook_create(const nlohmann::json& body, const net::http_request& req) {
  answers a;
  auto respond = recorder(req, a);
  if (auto url = actors::string_field(body, "url", true, req, respond)) {
    auto parsed = net::parse_webhook_url(*url);
    if (auto* u = std::get_if<net::webhook_url>(&parsed)) {
      SI_FUZZ_CHECK(url->size() <= net::max_webhook_url_length, "URL length limit");
      SI_FUZZ_CHECK(u->port != 0 && !u->host.empty() && u->target.starts_with('/'),
                    "an accepted URL has a host, a port and a target");
      auto canonical = std::string(u->scheme()) + "://" + u->host_header() + u->target;
      auto again = net::parse_webhook_url(canonical);
      auto* same = std::get_if<net::webhook_url>(&again);
      SI_FUZZ_CHECK(
          same != nullptr && same->destination() == u->destination() && same->target == u->target,
          "an accepted URL re-parses the same: " + canonical);
    } else {
      SI_FUZZ_CHECK(!std::get<net::policy_error>(parsed).message.empty(), "refusals say why");
    }
  } else {
    SI_FUZZ_CHECK(a.count == 1 && a.last_field == "url", "a bad url is refused naming it");
  }
  auto types = domain::parse_event_types(body.value("event_types", nlohmann::json(nullptr)));
  if (auto* list = std::get_if<std::vector<std::string>>(&types)) {
    SI_FUZZ_CHECK(!list->empty(), "at least one event type");
    std::set<std::string> distinct(list->begin(), list->end());
    SI_FUZZ_CHECK(distinct.size() == list->size(), "event types are distinct");
    for (const auto& t : *list) {
      SI_FUZZ_CHECK(domain::is_webhook_event_type(t), "a known event type: " + t);
    }
  }
  auto filters = domain::parse_filters(body.value("filters", nlohmann::json(nullptr)));
  if (auto* f = std::get_if<nlohmann::json>(&filters)) {
    SI_FUZZ_CHECK(f->is_object() && f->size() <= domain::max_filter_keys, "filters object");
    SI_FUZZ_CHECK(domain::filters_match(*f, *f), "filters match an event carrying them");
    (void)domain::filters_match(*f, body.value("data", nlohmann::json(nullptr)));
  }
}

void check_anchor_create(const nlohmann::json& body, const net::http_request& req) {
  answers a;
  auto respond = recorder(req, a);
  for (const char* field : {"name", "stellar_account", "home_domain"}) {
    auto before = a.count;
    auto value =
        actors::string_field(body, field, std::string_view(field) != "home_domain", req, respond);
    SI_FUZZ_CHECK(value.has_value() || a.count == before || a.last_field == field,
                  std::string("a refusal names ") + field);
    if (value && std::string_view(field) == "stellar_account"
        && !domain::strkey_error(*value, 'G')) {
      SI_FUZZ_CHECK(domain::is_valid_account_id(*value), "strkey checks agree");
    }
  }
}

void check_anchor_asset(const nlohmann::json& body, const net::http_request& req) {
  answers a;
  auto respond = recorder(req, a);
  auto code = actors::string_field(body, "asset_code", true, req, respond);
  auto issuer = actors::string_field(body, "asset_issuer", true, req, respond);
  if (code && issuer) {
    auto made = domain::make_asset(*code, *issuer);
    if (auto* asset = std::get_if<domain::asset>(&made)) {
      SI_FUZZ_CHECK(asset->code == *code && asset->issuer == *issuer, "make_asset keeps both");
      SI_FUZZ_CHECK(asset->is_native() || !domain::asset_code_error(*code), "a valid code");
    }
  }
}

void check_broadcast(const nlohmann::json& body) {
  auto ch = body.find("channels");
  if (ch == body.end() || !ch->is_array()) {
    return;
  }
  for (const auto& v : *ch) {
    if (!v.is_string()) {
      continue;
    }
    if (auto name = actors::canonical_channel(v.get_ref<const std::string&>())) {
      SI_FUZZ_CHECK(actors::canonical_channel(*name) == name, "canonical channels are fixed");
    }
  }
}

}  // namespace

SI_FUZZ_TARGET(json_body) {
  net::http_request req;
  req.method = "POST";
  req.request_id = "fuzz-request";
  req.headers.emplace_back("Content-Type", "application/json; charset=utf-8");
  req.body.assign(reinterpret_cast<const char*>(data), size);
  answers a;
  auto body = actors::json_body(req, recorder(req, a));
  SI_FUZZ_CHECK(body.has_value() != (a.count == 1), "json_body answers exactly when it refuses");
  if (!body) {
    return;
  }
  SI_FUZZ_CHECK(body->is_object(), "json_body returns objects only");
  check_webhook_create(*body, req);
  check_anchor_create(*body, req);
  check_anchor_asset(*body, req);
  check_broadcast(*body);
}
