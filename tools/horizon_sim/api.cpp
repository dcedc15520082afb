#include "tools/horizon_sim/api.hpp"

#include <algorithm>
#include <limits>
#include <map>
#include <optional>
#include <tuple>

#include <nlohmann/json.hpp>

#include "tools/horizon_sim/catalog.hpp"

namespace si::sim {

namespace {

using ojson = nlohmann::ordered_json;

constexpr std::string_view problem_content_type = "application/problem+json; charset=utf-8";
constexpr std::string_view plain_json = "application/json; charset=utf-8";
constexpr std::string_view network_passphrase = "Standalone Network ; February 2017";
constexpr uint64_t no_bound = std::numeric_limits<uint64_t>::max();
constexpr uint32_t max_limit = 200;

response json_response(int status, std::string body, std::string_view content_type) {
  response r;
  r.status = status;
  r.content_type = std::string(content_type);
  r.add(std::move(body));
  return r;
}

response problem(int status, const ojson& body) {
  return json_response(status, body.dump(), problem_content_type);
}

response bad_request(std::string_view field, std::string_view reason) {
  ojson body = {{"type", "https://stellar.org/horizon-errors/bad_request"},
                {"title", "Bad Request"},
                {"status", 400},
                {"detail", "The request you sent was invalid in some way"},
                {"extras", {{"invalid_field", field}, {"reason", reason}}}};
  return problem(400, body);
}

/// Query parameters, %-decoded, in request order (the first of a repeated name wins).
struct query_params {
  std::vector<std::pair<std::string, std::string>> items;

  const std::string* get(std::string_view name) const {
    for (const auto& [key, value] : items) {
      if (key == name) {
        return &value;
      }
    }
    return nullptr;
  }
};

query_params parse_query(std::string_view query) {
  query_params out;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    if (!pair.empty()) {
      const auto eq = pair.find('=');
      out.items.emplace_back(
          query_decode(pair.substr(0, eq)),
          eq == std::string_view::npos ? std::string() : query_decode(pair.substr(eq + 1)));
    }
    if (amp == std::string_view::npos) {
      break;
    }
    query.remove_prefix(amp + 1);
  }
  return out;
}

/// Go's strconv.ParseBool, which Horizon uses for include_failed.
std::optional<bool> parse_go_bool(std::string_view v) {
  if (v == "1" || v == "t" || v == "T" || v == "true" || v == "TRUE" || v == "True") {
    return true;
  }
  if (v == "0" || v == "f" || v == "F" || v == "false" || v == "FALSE" || v == "False") {
    return false;
  }
  return std::nullopt;
}

/// The paging parameters of a collection request.
struct page_params {
  std::string cursor;  ///< as given ("" when absent)
  bool desc = false;
  bool order_given = false;
  uint32_t limit = 10;
  bool limit_given = false;
  bool include_failed = false;
  /// Parameters echoed in the page links besides cursor/limit/order.
  std::vector<std::pair<std::string, std::string>> preserved;
};

/// The page parameters, or a 400 in `error`.
std::optional<page_params> read_page(const query_params& q, response& error) {
  page_params p;
  if (const auto* cursor = q.get("cursor")) {
    p.cursor = *cursor;
  }
  if (const auto* order = q.get("order"); order != nullptr && !order->empty()) {
    if (*order == "desc") {
      p.desc = true;
    } else if (*order != "asc") {
      error = bad_request("order", "order: invalid value; must be \"asc\" or \"desc\"");
      return std::nullopt;
    }
    p.order_given = true;
  }
  if (const auto* limit = q.get("limit"); limit != nullptr && !limit->empty()) {
    uint64_t v = 0;
    if (!parse_uint(*limit, v)) {
      error = bad_request("limit", "unparseable value");
      return std::nullopt;
    }
    if (v < 1 || v > max_limit) {
      error = bad_request("limit", "limit must be between 1 and 200");
      return std::nullopt;
    }
    p.limit = static_cast<uint32_t>(v);
    p.limit_given = true;
  }
  if (const auto* failed = q.get("include_failed"); failed != nullptr && !failed->empty()) {
    auto value = parse_go_bool(*failed);
    if (!value) {
      error = bad_request("include_failed", "unparseable value");
      return std::nullopt;
    }
    p.include_failed = *value;
    p.preserved.emplace_back("include_failed", *failed);
  }
  return p;
}

/// `<base><path>?<params>` with the params sorted by name as Go's url.Values.Encode does,
/// and '&' written \u0026 as Go's JSON encoder does.
std::string page_href(const world& w, std::string_view path, const page_params& p,
                      std::string_view cursor, bool desc) {
  std::vector<std::pair<std::string_view, std::string_view>> params;
  for (const auto& [key, value] : p.preserved) {
    params.emplace_back(key, value);
  }
  const std::string limit = std::to_string(p.limit);
  params.emplace_back("cursor", cursor);
  params.emplace_back("limit", limit);
  params.emplace_back("order", desc ? "desc" : "asc");
  std::stable_sort(params.begin(), params.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string out = w.base_url();
  out += path;
  out.push_back('?');
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (i > 0) {
      out += "\\u0026";
    }
    append_query_escaped(out, params[i].first);
    out.push_back('=');
    append_query_escaped(out, params[i].second);
  }
  return out;
}

/// Records chosen for a page or a stream batch.
struct page_records {
  std::vector<std::string_view> views;
  std::vector<uint64_t> tokens;    ///< numeric paging tokens (TOID records)
  std::vector<std::string> texts;  ///< textual paging tokens (pools, trades, assets)
  std::vector<std::shared_ptr<const ledger_data>> keep;
  std::deque<std::string> owned;

  std::size_t size() const {
    return views.size();
  }
  void add(std::string_view view, uint64_t token) {
    views.push_back(view);
    tokens.push_back(token);
  }
  void add_text(std::string text, std::string token) {
    owned.push_back(std::move(text));
    views.push_back(owned.back());
    texts.push_back(std::move(token));
  }
  std::string token(std::size_t i) const {
    return i < tokens.size() ? std::to_string(tokens[i]) : texts[i];
  }
};

response make_page(const world& w, endpoint ep, std::string_view path, const page_params& p,
                   page_records records, std::string_view required_field) {
  response r;
  r.ep = ep;
  r.required_field = required_field;
  r.owned = std::move(records.owned);  // deque move: the views stay valid
  r.keep = std::move(records.keep);
  const bool empty = records.views.empty();
  std::string head = "{\"_links\":{\"self\":{\"href\":\"";
  head += page_href(w, path, p, p.cursor, p.desc);
  head += "\"},\"next\":{\"href\":\"";
  head += page_href(w, path, p, empty ? p.cursor : records.token(records.size() - 1), p.desc);
  head += "\"},\"prev\":{\"href\":\"";
  head += page_href(w, path, p, empty ? p.cursor : records.token(0), !p.desc);
  head += "\"}},\"_embedded\":{\"records\":[";
  r.add(std::move(head));
  bool first = true;
  for (std::string_view v : records.views) {
    if (first) {
      r.add_view(v);
      first = false;
      continue;
    }
    std::string_view& last = r.pieces.back();
    // Neighbours in one ledger blob are one ',' apart: send them as one slice.
    if (last.data() + last.size() + 1 == v.data() && last.data()[last.size()] == ',') {
      last = std::string_view(last.data(), last.size() + 1 + v.size());
      r.size += 1 + v.size();
    } else {
      r.add_view(",");
      r.add_view(v);
    }
  }
  r.add_view("]}}");
  r.records = static_cast<uint32_t>(records.size());
  return r;
}

/// Which records of a ledger a TOID query reads.
enum class record_set : uint8_t { transactions, operations, payments };

struct toid_query {
  record_set set = record_set::operations;
  bool desc = false;
  uint64_t bound = 0;  ///< exclusive: asc wants tokens above it, desc below it
  uint32_t limit = 10;
  int64_t lo = 0;  ///< ledger range, inclusive
  int64_t hi = 0;
  uint64_t token_min = 0;  ///< token window, inclusive
  uint64_t token_max = no_bound;
  bool include_failed = false;
};

bool wanted(const toid_query& q, const record_span& span) {
  if (span.token < q.token_min || span.token > q.token_max) {
    return false;
  }
  if (!q.include_failed && (span.flags & span_successful) == 0) {
    return false;
  }
  return q.set != record_set::payments || (span.flags & span_payment) != 0;
}

void collect(ledger_cache& cache, const toid_query& q, page_records& out) {
  if (q.lo > q.hi || q.limit == 0) {
    return;
  }
  auto scan = [&](int64_t seq, bool& done) {
    auto ld = cache.get(static_cast<uint32_t>(seq), q.set == record_set::transactions
                                                        ? ledger_part::transactions
                                                        : ledger_part::operations);
    const auto& spans = q.set == record_set::transactions ? ld->txs : ld->ops;
    const std::string& blob = q.set == record_set::transactions ? ld->tx_blob : ld->op_blob;
    const std::size_t before = out.size();
    if (!q.desc) {
      auto it = std::partition_point(spans.begin(), spans.end(),
                                     [&](const record_span& s) { return s.token <= q.bound; });
      for (; it != spans.end() && out.size() < q.limit; ++it) {
        if (wanted(q, *it)) {
          out.add(std::string_view(blob).substr(it->begin, it->end - it->begin), it->token);
        }
      }
    } else {
      auto it = std::partition_point(spans.begin(), spans.end(),
                                     [&](const record_span& s) { return s.token < q.bound; });
      while (it != spans.begin() && out.size() < q.limit) {
        --it;
        if (wanted(q, *it)) {
          out.add(std::string_view(blob).substr(it->begin, it->end - it->begin), it->token);
        }
      }
    }
    if (out.size() > before) {
      out.keep.push_back(std::move(ld));
    }
    done = out.size() >= q.limit;
  };
  bool done = false;
  if (!q.desc) {
    for (int64_t seq = std::max<int64_t>(q.lo, static_cast<int64_t>(q.bound >> 32));
         seq <= q.hi && !done; ++seq) {
      scan(seq, done);
    }
  } else if (q.bound > 0) {
    for (int64_t seq = std::min<int64_t>(q.hi, static_cast<int64_t>((q.bound - 1) >> 32));
         seq >= q.lo && !done; --seq) {
      scan(seq, done);
    }
  }
}

/// The exclusive TOID bound of a cursor, or a 400/410 in `error`.
std::optional<uint64_t> toid_bound(const page_params& p, uint32_t start, uint32_t latest,
                                   response& error) {
  if (p.cursor.empty()) {
    return p.desc ? no_bound : 0;
  }
  if (p.cursor == "now") {
    return p.desc ? toid(latest + 1ULL, 0, 0) : toid(latest + 1ULL, 0, 0) - 1;
  }
  uint64_t value = 0;
  if (!parse_uint(p.cursor, value)) {
    error = bad_request("cursor", "unparseable value");
    return std::nullopt;
  }
  if (p.desc && value <= toid(start, 0, 0)) {
    // Horizon refuses a descending cursor at or before its oldest ledger.
    ojson body = {
        {"type", "https://stellar.org/horizon-errors/before_history"},
        {"title", "Data Requested Is Before Recorded History"},
        {"status", 410},
        {"detail",
         "This horizon instance is configured to only track a portion of the stellar network's "
         "latest history. This request is asking for results prior to the recorded history "
         "known to this horizon instance."}};
    error = problem(410, body);
    return std::nullopt;
  }
  return value;
}

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> parts;
  if (path.starts_with('/')) {
    path.remove_prefix(1);
  }
  while (!path.empty()) {
    const auto slash = path.find('/');
    parts.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) {
      break;
    }
    path.remove_prefix(slash + 1);
    if (path.empty()) {
      parts.emplace_back();  // a trailing '/' is a distinct (unknown) path
    }
  }
  return parts;
}

std::string_view required_field_of(record_set set) {
  switch (set) {
    case record_set::transactions:
      return "hash";
    case record_set::operations:
    case record_set::payments:
      return "type";
  }
  return "id";
}

}  // namespace

void response::add(std::string text) {
  owned.push_back(std::move(text));
  pieces.push_back(owned.back());
  size += owned.back().size();
}

void response::add_view(std::string_view view) {
  pieces.push_back(view);
  size += view.size();
}

std::string response::flatten() const {
  std::string out;
  out.reserve(size);
  for (std::string_view piece : pieces) {
    out += piece;
  }
  return out;
}

response api::server_error() {
  ojson body = {{"type", "https://stellar.org/horizon-errors/server_error"},
                {"title", "Internal Server Error"},
                {"status", 500},
                {"detail",
                 "An error occurred while processing this request.  This is usually due to a "
                 "bug within the server software.  Trying this request again may succeed if the "
                 "bug is transient, otherwise please report this issue to the issue tracker at: "
                 "https://github.com/stellar/go/issues. Please include this response in your "
                 "issue."}};
  return problem(500, body);
}

response api::service_unavailable(uint32_t retry_after_s) {
  ojson body = {{"type", "https://stellar.org/horizon-errors/service_unavailable"},
                {"title", "Service Unavailable"},
                {"status", 503},
                {"detail", "The request cannot be serviced at this time."}};
  response r = problem(503, body);
  r.headers.emplace_back("Retry-After", std::to_string(retry_after_s));
  return r;
}

response api::rate_limited(uint32_t retry_after_s) {
  ojson body = {{"type", "https://stellar.org/horizon-errors/rate_limit_exceeded"},
                {"title", "Rate Limit Exceeded"},
                {"status", 429},
                {"detail",
                 "The rate limit for the requesting IP address is over its alloted limit.  The "
                 "allowed limit and requests left per time period are communicated to clients "
                 "via the http response headers 'X-RateLimit-*' headers."}};
  response r = problem(429, body);
  r.headers.emplace_back("Retry-After", std::to_string(retry_after_s));
  r.headers.emplace_back("X-RateLimit-Limit", "3600");
  r.headers.emplace_back("X-RateLimit-Remaining", "0");
  r.headers.emplace_back("X-RateLimit-Reset", std::to_string(retry_after_s));
  return r;
}

/// Everything one request needs; answers it.
class request_context {
 public:
  request_context(api& a, const request_view& req)
      : api_(a),
        w_(a.world_),
        req_(req),
        query_(parse_query(req.query)),
        start_(a.chain_.start()),
        latest_(a.chain_.latest()) {}

  std::variant<response, stream_request> run();

 private:
  response not_found();
  response method_not_allowed();
  response not_acceptable();
  response root();
  response ledgers(const page_params& p);
  response ledger(int64_t seq);
  response toid_page(endpoint ep, std::string path, const page_params& p, toid_query q);
  response transaction(std::string_view hash);
  response operation(std::string_view id);
  response pools(const page_params& p);
  response pool(const pool_def& p);
  response trades(const pool_def& pool, const page_params& p);
  response assets(const page_params& p);
  response sim(std::string_view what);
  response truth();
  response fault_control();
  std::variant<response, stream_request> stream(endpoint ep, stream_kind kind,
                                                const page_params& p);
  /// Ledger `seq` parsed from a path segment when it is within the visible chain.
  std::optional<int64_t> visible_ledger(std::string_view segment) const;

  api& api_;
  const world& w_;
  const request_view& req_;
  query_params query_;
  uint32_t start_;
  uint32_t latest_;
};

response request_context::not_found() {
  ojson body = {
      {"type", "https://stellar.org/horizon-errors/not_found"},
      {"title", "Resource Missing"},
      {"status", 404},
      {"detail",
       "The resource at the url requested was not found.  This is usually occurs for one of two "
       "reasons:  The url requested is not valid, or no data in our database could be found "
       "with the parameters provided."},
      {"instance", "horizon-sim/" + std::to_string(api_.problem_counter_.fetch_add(1) + 1)}};
  return problem(404, body);
}

response request_context::method_not_allowed() {
  ojson body = {
      {"type", "https://stellar.org/horizon-errors/method_not_allowed"},
      {"title", "Method Not Allowed"},
      {"status", 405},
      {"detail", "This resource does not support the method " + std::string(req_.method) + "."}};
  return problem(405, body);
}

response request_context::not_acceptable() {
  ojson body = {{"type", "https://stellar.org/horizon-errors/not_acceptable"},
                {"title", "An acceptable response content-type could not be provided for this"},
                {"status", 406},
                {"detail",
                 "The Accept header of your request could not be satisfied by this resource; it "
                 "does not stream (text/event-stream)."}};
  return problem(406, body);
}

std::optional<int64_t> request_context::visible_ledger(std::string_view segment) const {
  uint64_t seq = 0;
  if (!parse_uint(segment, seq) || seq < start_ || seq > latest_) {
    return std::nullopt;
  }
  return static_cast<int64_t>(seq);
}

std::variant<response, stream_request> request_context::run() {
  const auto parts = split_path(req_.path);
  const std::size_t n = parts.size();
  if (n >= 1 && parts[0] == "_sim") {
    response r = sim(n == 2 ? parts[1] : std::string_view("?"));
    r.ep = endpoint::sim;
    return r;
  }
  if (req_.method != "GET") {
    return method_not_allowed();
  }
  if (n == 0) {
    if (req_.event_stream) {
      return not_acceptable();
    }
    return root();
  }
  const bool streamable = n == 1
                          && (parts[0] == "ledgers" || parts[0] == "transactions"
                              || parts[0] == "operations" || parts[0] == "payments");
  const bool is_collection =
      (n == 1
       && (parts[0] == "ledgers" || parts[0] == "transactions" || parts[0] == "operations"
           || parts[0] == "payments" || parts[0] == "liquidity_pools" || parts[0] == "assets"))
      || (n == 3
          && (parts[0] == "ledgers" || parts[0] == "transactions"
              || parts[0] == "liquidity_pools"));
  if (req_.event_stream && !streamable) {
    return not_acceptable();
  }
  response error;
  std::optional<page_params> p;
  if (is_collection) {
    p = read_page(query_, error);
    if (!p) {
      return error;
    }
  }
  if (streamable && req_.event_stream) {
    const stream_kind kind = parts[0] == "ledgers"        ? stream_kind::ledgers
                             : parts[0] == "transactions" ? stream_kind::transactions
                             : parts[0] == "operations"   ? stream_kind::operations
                                                          : stream_kind::payments;
    const endpoint ep = parts[0] == "ledgers"        ? endpoint::ledgers
                        : parts[0] == "transactions" ? endpoint::transactions
                        : parts[0] == "operations"   ? endpoint::operations
                                                     : endpoint::payments;
    return stream(ep, kind, *p);
  }

  const std::string_view top = parts[0];
  if (top == "ledgers") {
    if (n == 1) {
      return ledgers(*p);
    }
    auto seq = visible_ledger(parts[1]);
    if (!seq) {
      return not_found();
    }
    if (n == 2) {
      return ledger(*seq);
    }
    if (n == 3) {
      toid_query q;
      q.lo = *seq;
      q.hi = *seq;
      std::string path = "/ledgers/" + std::to_string(*seq) + "/" + std::string(parts[2]);
      if (parts[2] == "transactions") {
        q.set = record_set::transactions;
        return toid_page(endpoint::ledger_transactions, path, *p, q);
      }
      if (parts[2] == "operations") {
        q.set = record_set::operations;
        return toid_page(endpoint::ledger_operations, path, *p, q);
      }
      if (parts[2] == "payments") {
        q.set = record_set::payments;
        return toid_page(endpoint::ledger_payments, path, *p, q);
      }
    }
    return not_found();
  }
  if (top == "transactions") {
    if (n == 1) {
      toid_query q;
      q.set = record_set::transactions;
      q.lo = start_;
      q.hi = latest_;
      return toid_page(endpoint::transactions, "/transactions", *p, q);
    }
    if (n == 2) {
      return transaction(parts[1]);
    }
    if (n == 3 && parts[2] == "operations") {
      bool inner = false;
      auto id = w_.toid_of_hash(parts[1], inner);
      if (!id || (*id >> 32) < start_ || (*id >> 32) > latest_) {
        return not_found();
      }
      auto ld = api_.cache_.get(static_cast<uint32_t>(*id >> 32), ledger_part::transactions);
      const bool exists = std::any_of(ld->txs.begin(), ld->txs.end(),
                                      [&](const record_span& s) { return s.token == *id; });
      if (!exists) {
        return not_found();
      }
      toid_query q;
      q.set = record_set::operations;
      q.lo = static_cast<int64_t>(*id >> 32);
      q.hi = q.lo;
      q.token_min = *id + 1;
      q.token_max = *id + 4095;
      q.include_failed = true;  // a transaction's own operations, whatever its outcome
      std::string hash;
      append_hex(hash, w_.tx_hash(*id));
      return toid_page(endpoint::transaction_operations, "/transactions/" + hash + "/operations",
                       *p, q);
    }
    return not_found();
  }
  if (top == "operations" || top == "payments") {
    if (n == 1) {
      toid_query q;
      q.set = top == "operations" ? record_set::operations : record_set::payments;
      q.lo = start_;
      q.hi = latest_;
      return toid_page(top == "operations" ? endpoint::operations : endpoint::payments,
                       "/" + std::string(top), *p, q);
    }
    if (n == 2 && top == "operations") {
      return operation(parts[1]);
    }
    return not_found();
  }
  if (top == "liquidity_pools") {
    if (n == 1) {
      return pools(*p);
    }
    const pool_def* pool_found = w_.find_pool(parts[1]);
    if (pool_found == nullptr) {
      if (parts[1].size() != 64
          || parts[1].find_first_not_of("0123456789abcdef") != std::string_view::npos) {
        return bad_request("liquidity_pool_id", "invalid liquidity pool id");
      }
      return not_found();
    }
    if (n == 2) {
      return pool(*pool_found);
    }
    if (n == 3 && parts[2] == "trades") {
      return trades(*pool_found, *p);
    }
    return not_found();
  }
  if (top == "assets" && n == 1) {
    return assets(*p);
  }
  return not_found();
}

response request_context::root() {
  const std::string& b = w_.base_url();
  std::string s = "{\"_links\":{";
  const std::pair<std::string_view, std::string_view> links[] = {
      {"account", "/accounts/{account_id}"},
      {"accounts", "/accounts{?signer,sponsor,asset,liquidity_pool,cursor,limit,order}"},
      {"account_transactions", "/accounts/{account_id}/transactions{?cursor,limit,order}"},
      {"assets", "/assets{?asset_code,asset_issuer,cursor,limit,order}"},
      {"effects", "/effects{?cursor,limit,order}"},
      {"fee_stats", "/fee_stats"},
      {"ledger", "/ledgers/{sequence}"},
      {"ledgers", "/ledgers{?cursor,limit,order}"},
      {"liquidity_pools", "/liquidity_pools{?reserves,account,cursor,limit,order}"},
      {"operation", "/operations/{id}"},
      {"operations", "/operations{?cursor,limit,order,include_failed}"},
      {"payments", "/payments{?cursor,limit,order,include_failed}"},
      {"self", "/"},
      {"trades",
       "/trades{?base_asset_type,base_asset_code,base_asset_issuer,counter_asset_type,"
       "counter_asset_code,counter_asset_issuer}"},
      {"transaction", "/transactions/{hash}"},
      {"transactions", "/transactions{?cursor,limit,order}"},
  };
  bool first = true;
  for (const auto& [name, path] : links) {
    if (!first) {
      s.push_back(',');
    }
    first = false;
    s += "\"";
    s += name;
    s += "\":{\"href\":\"";
    s += b;
    s += path;
    s += "\"";
    if (path.find('{') != std::string_view::npos) {
      s += ",\"templated\":true";
    }
    s += "}";
  }
  s += "},\"horizon_version\":\"horizon-sim-1.0\",\"core_version\":\"stellar-core (horizon-sim)\"";
  s += ",\"ingest_latest_ledger\":";
  append_uint(s, latest_);
  s += ",\"history_latest_ledger\":";
  append_uint(s, latest_);
  s += ",\"history_latest_ledger_closed_at\":\"";
  append_time(s, w_.close_time(latest_));
  s += "\",\"history_elder_ledger\":";
  append_uint(s, start_);
  s += ",\"core_latest_ledger\":";
  append_uint(s, latest_);
  s += ",\"network_passphrase\":\"";
  s += network_passphrase;
  s += "\",\"current_protocol_version\":21,\"supported_protocol_version\":21,"
       "\"core_supported_protocol_version\":21}";
  response r = json_response(200, std::move(s), "application/hal+json; charset=utf-8");
  r.ep = endpoint::root;
  r.required_field = "history_latest_ledger";
  return r;
}

response request_context::ledgers(const page_params& p) {
  response error;
  auto bound = toid_bound(p, start_, latest_, error);
  if (!bound) {
    return error;
  }
  page_records records;
  if (!p.desc) {
    for (int64_t seq = std::max<int64_t>(start_, static_cast<int64_t>((*bound >> 32) + 1));
         seq <= latest_ && records.size() < p.limit; ++seq) {
      auto ld = api_.cache_.get(static_cast<uint32_t>(seq), ledger_part::operations);
      records.add(ld->ledger_json, toid(static_cast<uint64_t>(seq), 0, 0));
      records.keep.push_back(std::move(ld));
    }
  } else if (*bound > 0) {
    for (int64_t seq = std::min<int64_t>(latest_, static_cast<int64_t>((*bound - 1) >> 32));
         seq >= start_ && records.size() < p.limit; --seq) {
      auto ld = api_.cache_.get(static_cast<uint32_t>(seq), ledger_part::operations);
      records.add(ld->ledger_json, toid(static_cast<uint64_t>(seq), 0, 0));
      records.keep.push_back(std::move(ld));
    }
  }
  return make_page(w_, endpoint::ledgers, "/ledgers", p, std::move(records), "sequence");
}

response request_context::ledger(int64_t seq) {
  auto ld = api_.cache_.get(static_cast<uint32_t>(seq), ledger_part::operations);
  response r;
  r.ep = endpoint::ledger;
  r.required_field = "sequence";
  r.add_view(ld->ledger_json);
  r.keep.push_back(std::move(ld));
  r.records = 1;
  return r;
}

response request_context::toid_page(endpoint ep, std::string path, const page_params& p,
                                    toid_query q) {
  response error;
  auto bound = toid_bound(p, start_, latest_, error);
  if (!bound) {
    return error;
  }
  q.desc = p.desc;
  q.bound = *bound;
  q.limit = p.limit;
  q.include_failed = q.include_failed || p.include_failed;
  page_records records;
  collect(api_.cache_, q, records);
  return make_page(w_, ep, path, p, std::move(records), required_field_of(q.set));
}

response request_context::transaction(std::string_view hash) {
  bool inner = false;
  auto id = w_.toid_of_hash(hash, inner);
  if (!id || (*id >> 32) < start_ || (*id >> 32) > latest_) {
    return not_found();
  }
  auto ld = api_.cache_.get(static_cast<uint32_t>(*id >> 32), ledger_part::transactions);
  auto it = std::partition_point(ld->txs.begin(), ld->txs.end(),
                                 [&](const record_span& s) { return s.token < *id; });
  if (it == ld->txs.end() || it->token != *id || (inner && (it->flags & span_fee_bump) == 0)) {
    return not_found();
  }
  response r;
  r.ep = endpoint::transaction;
  r.required_field = "hash";
  r.add_view(ld->tx(static_cast<std::size_t>(it - ld->txs.begin())));
  r.keep.push_back(std::move(ld));
  r.records = 1;
  return r;
}

response request_context::operation(std::string_view text) {
  uint64_t id = 0;
  if (!parse_uint(text, id)) {
    return bad_request("id", "unparseable value");
  }
  if ((id >> 32) < start_ || (id >> 32) > latest_) {
    return not_found();
  }
  auto ld = api_.cache_.get(static_cast<uint32_t>(id >> 32), ledger_part::operations);
  auto it = std::partition_point(ld->ops.begin(), ld->ops.end(),
                                 [&](const record_span& s) { return s.token < id; });
  if (it == ld->ops.end() || it->token != id) {
    return not_found();
  }
  response r;
  r.ep = endpoint::operation;
  r.required_field = "type";
  r.add_view(ld->op(static_cast<std::size_t>(it - ld->ops.begin())));
  r.keep.push_back(std::move(ld));
  r.records = 1;
  return r;
}

response request_context::pools(const page_params& p) {
  const auto& all = w_.pools();
  page_records records;
  if (!p.desc) {
    auto it =
        p.cursor.empty()
            ? all.begin()
            : std::upper_bound(all.begin(), all.end(), p.cursor,
                               [](const std::string& c, const pool_def& x) { return c < x.id; });
    for (; it != all.end() && records.size() < p.limit; ++it) {
      std::string text;
      render_pool(text, w_, *it, latest_);
      records.add_text(std::move(text), it->id);
    }
  } else {
    auto it =
        p.cursor.empty()
            ? all.end()
            : std::lower_bound(all.begin(), all.end(), p.cursor,
                               [](const pool_def& x, const std::string& c) { return x.id < c; });
    while (it != all.begin() && records.size() < p.limit) {
      --it;
      std::string text;
      render_pool(text, w_, *it, latest_);
      records.add_text(std::move(text), it->id);
    }
  }
  return make_page(w_, endpoint::liquidity_pools, "/liquidity_pools", p, std::move(records),
                   "reserves");
}

response request_context::pool(const pool_def& p) {
  std::string text;
  render_pool(text, w_, p, latest_);
  response r = json_response(200, std::move(text), "application/hal+json; charset=utf-8");
  r.ep = endpoint::liquidity_pool;
  r.required_field = "reserves";
  r.records = 1;
  return r;
}

response request_context::trades(const pool_def& pool, const page_params& p) {
  const int64_t hi_ledger = latest_;
  const int64_t lo_ledger = std::max<int64_t>(1, hi_ledger - trade_window_ledgers + 1);
  const int64_t k_lo = first_trade_at_or_after(w_, pool, lo_ledger);
  const int64_t k_hi = last_trade_at_or_before(w_, pool, hi_ledger);
  std::optional<std::pair<uint64_t, uint64_t>> cursor;
  if (!p.cursor.empty() && p.cursor != "now") {
    cursor = parse_trade_cursor(p.cursor);
    if (!cursor) {
      return bad_request("cursor", "unparseable value");
    }
  }
  page_records records;
  auto add = [&](int64_t k) {
    std::string text;
    render_trade(text, w_, pool, k);
    std::string token = std::to_string(trade_toid(w_, pool, k)) + "-0";
    records.add_text(std::move(text), std::move(token));
  };
  if (!p.desc) {
    int64_t k = k_lo;
    if (p.cursor == "now") {
      k = k_hi + 1;
    } else if (cursor) {
      k = std::max(k_lo,
                   first_trade_at_or_after(w_, pool, static_cast<int64_t>(cursor->first >> 32)));
      // At most a step or two: one trade per ledger, compare within the cursor's ledger.
      for (int step = 0; step < 4 && k <= k_hi && trade_toid(w_, pool, k) <= cursor->first;
           ++step) {
        ++k;
      }
    }
    for (; k <= k_hi && records.size() < p.limit; ++k) {
      add(k);
    }
  } else {
    int64_t k = k_hi;
    if (cursor) {
      k = std::min(k_hi,
                   last_trade_at_or_before(w_, pool, static_cast<int64_t>(cursor->first >> 32)));
      for (int step = 0; step < 4 && k >= k_lo; ++step) {
        const uint64_t t = trade_toid(w_, pool, k);
        if (t < cursor->first || (t == cursor->first && cursor->second > 0)) {
          break;
        }
        --k;
      }
    }
    for (; k >= k_lo && records.size() < p.limit; --k) {
      add(k);
    }
  }
  return make_page(w_, endpoint::liquidity_pool_trades, "/liquidity_pools/" + pool.id + "/trades",
                   p, std::move(records), "price");
}

response request_context::assets(const page_params& base) {
  page_params p = base;
  const std::string* code = query_.get("asset_code");
  const std::string* issuer = query_.get("asset_issuer");
  if (code != nullptr && !code->empty()) {
    p.preserved.emplace_back("asset_code", *code);
  }
  if (issuer != nullptr && !issuer->empty()) {
    p.preserved.emplace_back("asset_issuer", *issuer);
  }
  std::optional<std::pair<std::string, std::string>> cursor;
  if (!p.cursor.empty()) {
    const auto first = p.cursor.find('_');
    const auto second = first == std::string::npos ? first : p.cursor.find('_', first + 1);
    if (second == std::string::npos) {
      return bad_request("cursor", "unparseable value");
    }
    cursor.emplace(p.cursor.substr(0, first), p.cursor.substr(first + 1, second - first - 1));
  }
  auto key = [this](asset_ref ref) { return std::tie(w_.issued(ref).code, w_.issued(ref).issuer); };
  auto selected = [&](asset_ref ref) {
    if (code != nullptr && !code->empty() && w_.issued(ref).code != *code) {
      return false;
    }
    if (issuer != nullptr && !issuer->empty() && w_.issued(ref).issuer != *issuer) {
      return false;
    }
    if (cursor) {
      const auto c = std::tie(cursor->first, cursor->second);
      return p.desc ? key(ref) < c : c < key(ref);
    }
    return true;
  };
  page_records records;
  const auto& order = w_.assets_by_code();
  auto visit = [&](asset_ref ref) {
    if (records.size() < p.limit && selected(ref)) {
      std::string text;
      render_asset(text, w_, ref);
      records.add_text(std::move(text), asset_paging_token(w_, ref));
    }
  };
  if (!p.desc) {
    std::for_each(order.begin(), order.end(), visit);
  } else {
    std::for_each(order.rbegin(), order.rend(), visit);
  }
  return make_page(w_, endpoint::assets, "/assets", p, std::move(records), "asset_type");
}

std::variant<response, stream_request> request_context::stream(endpoint ep, stream_kind kind,
                                                               const page_params& p) {
  if (p.desc) {
    return bad_request("order", "streaming requires order=asc");
  }
  page_params q = p;
  if (!req_.last_event_id.empty()) {
    q.cursor = std::string(req_.last_event_id);  // as Horizon: Last-Event-ID wins
  }
  response error;
  auto bound = toid_bound(q, start_, latest_, error);
  if (!bound) {
    return error;
  }
  stream_request s;
  s.kind = kind;
  s.ep = ep;
  s.after = *bound;
  s.include_failed = p.include_failed;
  s.limit = p.limit_given ? p.limit : 0;
  return s;
}

response request_context::sim(std::string_view what) {
  if (what == "fault") {
    return fault_control();
  }
  if (req_.method != "GET") {
    return method_not_allowed();
  }
  if (what == "info") {
    ojson assets = ojson::array();
    for (std::size_t k = 1; k <= w_.issued_count(); ++k) {
      const auto& a = w_.issued(static_cast<asset_ref>(k));
      assets.push_back({{"code", a.code},
                        {"issuer", a.issuer},
                        {"type", a.alphanum12 ? "credit_alphanum12" : "credit_alphanum4"},
                        {"toml", a.toml_href}});
    }
    ojson pools = ojson::array();
    ojson pool_details = ojson::array();
    for (const auto& p : w_.pools()) {
      pools.push_back(p.id);
      pool_details.push_back({{"id", p.id},
                              {"reserve_a", w_.asset_id(p.a)},
                              {"reserve_b", w_.asset_id(p.b)},
                              {"trade_spacing_ledgers", p.trade_spacing}});
    }
    const options& o = w_.config();
    ojson doc = {{"start_ledger", start_},
                 {"latest_ledger", latest_},
                 {"latest_closed_at", w_.close_time(latest_)},
                 {"growing", api_.chain_.can_grow() && o.close_ms > 0},
                 {"seed", o.seed},
                 {"base_time", w_.base_time()},
                 {"ledger_seconds", ledger_seconds},
                 {"close_ms", o.close_ms},
                 {"max_ledgers", o.max_ledgers},
                 {"tx_per_ledger", o.tx_per_ledger},
                 {"ops_per_tx", o.ops_per_tx},
                 {"failed_percent", o.failed_percent},
                 {"fee_bump_percent", o.fee_bump_percent},
                 {"base_url", w_.base_url()},
                 {"network_passphrase", network_passphrase},
                 {"assets", assets},
                 {"anchors", w_.anchors()},
                 {"pools", pools},
                 {"pool_details", pool_details}};
    return json_response(200, doc.dump(), plain_json);
  }
  if (what == "truth") {
    return truth();
  }
  if (what == "stats") {
    return json_response(
        200, api_.stats_.to_json(api_.cache_.stats(), api_.faults_.pending().size()), plain_json);
  }
  return not_found();
}

response request_context::truth() {
  int64_t from = start_;
  int64_t to = latest_;
  for (auto [name, target] : {std::pair<const char*, int64_t*>{"from", &from}, {"to", &to}}) {
    const std::string* text = query_.get(name);
    if (text == nullptr || text->empty()) {
      continue;
    }
    uint64_t v = 0;
    if (!parse_uint(*text, v) || v < start_ || v > latest_) {
      return bad_request(name, "must be a ledger sequence in " + std::to_string(start_) + ".."
                                   + std::to_string(latest_));
    }
    *target = static_cast<int64_t>(v);
  }
  if (from > to) {
    return bad_request("from", "must not be greater than 'to'");
  }
  ledger_totals sum;
  std::map<std::pair<asset_ref, asset_ref>, std::pair<uint64_t, uint64_t>> corridors;
  uint64_t transactions = 0, successful = 0, failed = 0, fee_bumps = 0, operations = 0,
           successful_operations = 0, empty = 0;
  int64_t fees = 0;
  std::array<uint64_t, op_type_count> by_type{}, successful_by_type{};
  for (int64_t seq = from; seq <= to; ++seq) {
    auto ld = api_.cache_.get_if_room(static_cast<uint32_t>(seq), ledger_part::operations);
    const ledger_totals& t = ld->totals;
    transactions += t.transactions;
    successful += t.successful_transactions;
    failed += t.failed_transactions;
    fee_bumps += t.fee_bump_transactions;
    operations += t.operations;
    successful_operations += t.successful_operations;
    empty += t.transactions == 0 ? 1 : 0;
    fees += t.fee_charged;
    for (std::size_t i = 0; i < op_type_count; ++i) {
      by_type[i] += t.ops_by_type[i];
      successful_by_type[i] += t.successful_ops_by_type[i];
    }
    for (const auto& pay : t.payments) {
      auto& c = corridors[{pay.source, pay.destination}];
      c.first += pay.successful;
      c.second += pay.failed;
    }
  }
  ojson types = ojson::object();
  ojson successful_types = ojson::object();
  uint64_t payment_ops = 0;
  uint64_t successful_payment_ops = 0;
  for (std::size_t i = 0; i < op_type_count; ++i) {
    types[std::string(op_types()[i].name)] = by_type[i];
    successful_types[std::string(op_types()[i].name)] = successful_by_type[i];
    if (op_types()[i].payment_like) {
      payment_ops += by_type[i];
      successful_payment_ops += successful_by_type[i];
    }
  }
  ojson payments = ojson::object();
  for (const auto& [key, counts] : corridors) {
    payments[w_.asset_id(key.first) + "->" + w_.asset_id(key.second)] = {
        {"attempts", counts.first + counts.second},
        {"successful", counts.first},
        {"failed", counts.second}};
  }
  ojson doc = {{"from", from},
               {"to", to},
               {"ledgers", to - from + 1},
               {"empty_ledgers", empty},
               {"transactions", transactions},
               {"successful_transactions", successful},
               {"failed_transactions", failed},
               {"fee_bump_transactions", fee_bumps},
               {"operations", operations},
               {"successful_operations", successful_operations},
               {"payment_operations", payment_ops},
               {"successful_payment_operations", successful_payment_ops},
               {"fee_charged_stroops", fees},
               {"operations_by_type", types},
               {"successful_operations_by_type", successful_types},
               {"payments", payments}};
  return json_response(200, doc.dump(), plain_json);
}

response request_context::fault_control() {
  auto listing = [this]() {
    ojson pending = ojson::array();
    for (const auto& f : api_.faults_.pending()) {
      pending.push_back({{"kind", to_string(f.kind)},
                         {"count", f.count},
                         {"path", f.path},
                         {"latency_ms", f.latency_ms},
                         {"retry_after_s", f.retry_after_s}});
    }
    return pending;
  };
  if (req_.method == "GET") {
    return json_response(200, ojson{{"pending", listing()}}.dump(), plain_json);
  }
  if (req_.method == "DELETE") {
    const std::size_t cleared = api_.faults_.clear();
    return json_response(200, ojson{{"cleared", cleared}}.dump(), plain_json);
  }
  if (req_.method != "POST") {
    return method_not_allowed();
  }
  const auto body = ojson::parse(req_.body.begin(), req_.body.end(), nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    return bad_request("body", "must be a JSON object");
  }
  fault_spec spec;
  auto kind_it = body.find("kind");
  if (kind_it == body.end() || !kind_it->is_string()) {
    return bad_request("kind", "is required (a string)");
  }
  auto kind = fault_kind_from(kind_it->get<std::string>());
  if (!kind) {
    return bad_request("kind",
                       "must be latency, status_500, status_503, status_429, truncated, "
                       "malformed, bad_record or reset");
  }
  spec.kind = *kind;
  struct numeric {
    const char* name;
    uint32_t* target;
    uint32_t low;
    uint32_t high;
  };
  for (const numeric& field : {numeric{"count", &spec.count, 1, 1'000'000},
                               numeric{"latency_ms", &spec.latency_ms, 0, 60'000},
                               numeric{"retry_after_s", &spec.retry_after_s, 0, 3600}}) {
    auto it = body.find(field.name);
    if (it == body.end()) {
      continue;
    }
    if (!it->is_number_integer() || it->get<int64_t>() < field.low
        || it->get<int64_t>() > field.high) {
      return bad_request(field.name, "must be an integer in " + std::to_string(field.low) + ".."
                                         + std::to_string(field.high));
    }
    *field.target = it->get<uint32_t>();
  }
  if (auto it = body.find("path"); it != body.end()) {
    if (!it->is_string() || (!it->get<std::string>().empty() && it->get<std::string>()[0] != '/')) {
      return bad_request("path", "must be a string starting with '/'");
    }
    spec.path = it->get<std::string>();
  }
  api_.faults_.add(spec);
  return json_response(200, ojson{{"pending", listing()}}.dump(), plain_json);
}

endpoint api::endpoint_of(std::string_view path) {
  const auto parts = split_path(path);
  const std::size_t n = parts.size();
  if (n == 0) {
    return endpoint::root;
  }
  const std::string_view top = parts[0];
  if (top == "_sim") {
    return endpoint::sim;
  }
  if (top == "ledgers") {
    if (n == 3) {
      return parts[2] == "transactions" ? endpoint::ledger_transactions
             : parts[2] == "operations" ? endpoint::ledger_operations
             : parts[2] == "payments"   ? endpoint::ledger_payments
                                        : endpoint::unknown;
    }
    return n == 1 ? endpoint::ledgers : n == 2 ? endpoint::ledger : endpoint::unknown;
  }
  if (top == "transactions") {
    return n == 1                               ? endpoint::transactions
           : n == 2                             ? endpoint::transaction
           : n == 3 && parts[2] == "operations" ? endpoint::transaction_operations
                                                : endpoint::unknown;
  }
  if (top == "operations") {
    return n == 1 ? endpoint::operations : n == 2 ? endpoint::operation : endpoint::unknown;
  }
  if (top == "payments" && n == 1) {
    return endpoint::payments;
  }
  if (top == "liquidity_pools") {
    return n == 1                           ? endpoint::liquidity_pools
           : n == 2                         ? endpoint::liquidity_pool
           : n == 3 && parts[2] == "trades" ? endpoint::liquidity_pool_trades
                                            : endpoint::unknown;
  }
  return top == "assets" && n == 1 ? endpoint::assets : endpoint::unknown;
}

api::api(const world& w, ledger_cache& cache, chain& c, sim_stats& stats, fault_queue& faults)
    : world_(w), cache_(cache), chain_(c), stats_(stats), faults_(faults) {}

std::variant<response, stream_request> api::handle(const request_view& req) {
  request_context context(*this, req);
  return context.run();
}

std::size_t api::stream_events(const stream_request& stream, uint64_t& after,
                               std::size_t max_events, std::string& out) {
  const uint32_t latest = chain_.latest();
  const uint32_t start = chain_.start();
  std::size_t events = 0;
  if (stream.kind == stream_kind::ledgers) {
    for (int64_t seq = std::max<int64_t>(start, static_cast<int64_t>((after >> 32) + 1));
         seq <= latest && events < max_events; ++seq) {
      auto ld = cache_.get(static_cast<uint32_t>(seq), ledger_part::operations);
      after = toid(static_cast<uint64_t>(seq), 0, 0);
      out += "id: ";
      append_uint(out, after);
      out += "\ndata: ";
      out += ld->ledger_json;
      out += "\n\n";
      ++events;
    }
    return events;
  }
  toid_query q;
  q.set = stream.kind == stream_kind::transactions ? record_set::transactions
          : stream.kind == stream_kind::operations ? record_set::operations
                                                   : record_set::payments;
  q.bound = after;
  q.limit = static_cast<uint32_t>(max_events);
  q.lo = start;
  q.hi = latest;
  q.include_failed = stream.include_failed;
  page_records records;
  collect(cache_, q, records);
  for (std::size_t i = 0; i < records.size(); ++i) {
    out += "id: ";
    append_uint(out, records.tokens[i]);
    out += "\ndata: ";
    out += records.views[i];
    out += "\n\n";
  }
  events = records.size();
  if (events > 0) {
    after = records.tokens.back();
  }
  if (events < max_events) {
    // Everything up to the tip was scanned; the next scan starts after it.
    after = std::max(after, toid(latest + 1ULL, 0, 0) - 1);
  }
  return events;
}

}  // namespace si::sim
