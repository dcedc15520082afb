#include "tools/horizon_sim/catalog.hpp"

#include <cmath>
#include <numeric>

namespace si::sim {

using namespace std::string_view_literals;

namespace {

uint64_t trade_hash(const world& w, const pool_def& p, int64_t k) {
  return hash_of(w.seed(), tag::trade, p.index, static_cast<uint64_t>(k));
}

int64_t clamp_amount(long double v) {
  if (!(v >= 1.0L)) {
    return 1;
  }
  if (v > 9.0e17L) {
    return 900'000'000'000'000'000LL;
  }
  return static_cast<int64_t>(v);
}

void append_asset_fields(std::string& s, const world& w, std::string_view prefix, asset_ref ref) {
  s += ",\""sv;
  s += prefix;
  s += "asset_type\":\""sv;
  if (ref == 0) {
    s += "native\""sv;
    return;
  }
  const issued_asset& a = w.issued(ref);
  s += a.alphanum12 ? "credit_alphanum12\",\"" : "credit_alphanum4\",\"";
  s += prefix;
  s += "asset_code\":\""sv;
  s += a.code;
  s += "\",\""sv;
  s += prefix;
  s += "asset_issuer\":\""sv;
  s += a.issuer;
  s.push_back('"');
}

void append_quoted_amount(std::string& s, std::string_view key, int64_t stroops) {
  s += ",\""sv;
  s += key;
  s += "\":\""sv;
  append_amount(s, stroops);
  s.push_back('"');
}

}  // namespace

int64_t trade_ledger(const world& w, const pool_def& p, int64_t k) {
  const auto s = static_cast<int64_t>(p.trade_spacing);
  return k * s + 1 + static_cast<int64_t>(trade_hash(w, p, k) % static_cast<uint64_t>(s));
}

uint64_t trade_toid(const world& w, const pool_def& p, int64_t k) {
  const auto ledger = static_cast<uint64_t>(trade_ledger(w, p, k));
  const uint64_t op = 1 + (trade_hash(w, p, k) >> 20) % 3;
  return (ledger << 32) | ((uint64_t{p.index} + 1) << 12) | op;
}

int64_t first_trade_at_or_after(const world& w, const pool_def& p, int64_t ledger) {
  if (ledger < 1) {
    ledger = 1;
  }
  const int64_t k = (ledger - 1) / static_cast<int64_t>(p.trade_spacing);
  return trade_ledger(w, p, k) >= ledger ? k : k + 1;
}

int64_t last_trade_at_or_before(const world& w, const pool_def& p, int64_t ledger) {
  if (ledger < 1) {
    return -1;
  }
  const int64_t k = (ledger - 1) / static_cast<int64_t>(p.trade_spacing);
  return trade_ledger(w, p, k) <= ledger ? k : k - 1;
}

void render_trade(std::string& s, const world& w, const pool_def& p, int64_t k) {
  rng r(trade_hash(w, p, k) ^ 0x5bd1e995ULL);
  const int64_t ledger = trade_ledger(w, p, k);
  const uint64_t id = trade_toid(w, p, k);
  const uint64_t account = r.below(regular_accounts);
  const long double fraction = 0.00001L + 0.001L * static_cast<long double>(r.unit());
  const int64_t base_amount = clamp_amount(static_cast<long double>(p.reserve_a) * fraction);
  const int64_t counter_amount =
      clamp_amount(static_cast<long double>(base_amount) * static_cast<long double>(p.reserve_b)
                   / static_cast<long double>(p.reserve_a) * 0.997L);
  const int64_t divisor = std::gcd(base_amount, counter_amount);
  const std::string& b = w.base_url();

  std::string token;
  append_uint(token, id);
  token += "-0"sv;
  s += "{\"_links\":{\"self\":{\"href\":\"\"},\"base\":{\"href\":\""sv;
  s += b;
  s += "/accounts/"sv;
  w.append_account(s, account);
  s += "\"},\"counter\":{\"href\":\""sv;
  s += b;
  s += "/liquidity_pools/"sv;
  s += p.id;
  s += "\"},\"operation\":{\"href\":\""sv;
  s += b;
  s += "/operations/"sv;
  append_uint(s, id);
  s += "\"}},\"id\":\""sv;
  s += token;
  s += "\",\"paging_token\":\""sv;
  s += token;
  s += "\",\"ledger_close_time\":\""sv;
  append_time(s, w.close_time(ledger));
  s += "\",\"trade_type\":\"liquidity_pool\",\"liquidity_pool_fee_bp\":30,\"base_offer_id\":\""sv;
  // Horizon's synthetic offer id for a pool trade: 2^62 + the TOID.
  append_uint(s, (1ULL << 62) + id);
  s += "\",\"base_account\":\""sv;
  w.append_account(s, account);
  s.push_back('"');
  append_quoted_amount(s, "base_amount", base_amount);
  append_asset_fields(s, w, "base_", p.a);
  s += ",\"counter_liquidity_pool_id\":\""sv;
  s += p.id;
  s.push_back('"');
  append_quoted_amount(s, "counter_amount", counter_amount);
  append_asset_fields(s, w, "counter_", p.b);
  s += ",\"base_is_seller\":"sv;
  s += r.percent(50) ? "true" : "false";
  s += ",\"price\":{\"n\":\""sv;
  append_int(s, counter_amount / divisor);
  s += "\",\"d\":\""sv;
  append_int(s, base_amount / divisor);
  s += "\"}}"sv;
}

void render_pool(std::string& s, const world& w, const pool_def& p, uint32_t latest) {
  const std::string& b = w.base_url();
  int64_t modified = latest;
  const int64_t k = last_trade_at_or_before(w, p, latest);
  if (k >= 0) {
    modified = trade_ledger(w, p, k);
  }
  s += "{\"_links\":{\"self\":{\"href\":\""sv;
  s += b;
  s += "/liquidity_pools/"sv;
  s += p.id;
  s += "\"}"sv;
  for (const char* part : {"transactions", "operations"}) {
    s += ",\""sv;
    s += part;
    s += "\":{\"href\":\""sv;
    s += b;
    s += "/liquidity_pools/"sv;
    s += p.id;
    s.push_back('/');
    s += part;
    s += "{?cursor,limit,order}\",\"templated\":true}"sv;
  }
  s += "},\"id\":\""sv;
  s += p.id;
  s += "\",\"paging_token\":\""sv;
  s += p.id;
  s += "\",\"fee_bp\":30,\"type\":\"constant_product\",\"total_trustlines\":\""sv;
  append_int(s, p.trustlines);
  s.push_back('"');
  append_quoted_amount(s, "total_shares", p.total_shares);
  s += ",\"reserves\":[{\"asset\":\""sv;
  w.append_asset_text(s, p.a);
  s += "\",\"amount\":\""sv;
  append_amount(s, p.reserve_a);
  s += "\"},{\"asset\":\""sv;
  w.append_asset_text(s, p.b);
  s += "\",\"amount\":\""sv;
  append_amount(s, p.reserve_b);
  s += "\"}],\"last_modified_ledger\":"sv;
  append_int(s, modified);
  s += ",\"last_modified_time\":\""sv;
  append_time(s, w.close_time(modified));
  s += "\"}"sv;
}

std::string asset_paging_token(const world& w, asset_ref ref) {
  const issued_asset& a = w.issued(ref);
  return a.code + "_" + a.issuer + (a.alphanum12 ? "_credit_alphanum12" : "_credit_alphanum4");
}

void render_asset(std::string& s, const world& w, asset_ref ref) {
  const issued_asset& a = w.issued(ref);
  rng r(hash_of(w.seed(), tag::asset_stats, ref));
  s += "{\"_links\":{\"toml\":{\"href\":\""sv;
  s += a.toml_href;
  s += "\"}},\"asset_type\":\""sv;
  s += a.alphanum12 ? "credit_alphanum12" : "credit_alphanum4";
  s += "\",\"asset_code\":\""sv;
  s += a.code;
  s += "\",\"asset_issuer\":\""sv;
  s += a.issuer;
  s += "\",\"paging_token\":\""sv;
  s += asset_paging_token(w, ref);
  s += "\",\"num_claimable_balances\":"sv;
  const int64_t claimable = r.between(0, 500);
  append_int(s, claimable);
  s += ",\"num_liquidity_pools\":"sv;
  append_uint(s, w.pools_holding(ref));
  s += ",\"num_contracts\":"sv;
  const int64_t contracts = r.between(0, 30);
  append_int(s, contracts);
  s += ",\"accounts\":{\"authorized\":"sv;
  const int64_t holders = r.between(10, 1'000'000);
  append_int(s, holders);
  s += ",\"authorized_to_maintain_liabilities\":"sv;
  append_int(s, r.between(0, 20));
  s += ",\"unauthorized\":"sv;
  append_int(s, r.between(0, 5));
  s.push_back('}');
  append_quoted_amount(s, "claimable_balances_amount", claimable * r.between(1, 1000) * 10'000'000);
  append_quoted_amount(s, "liquidity_pools_amount", w.pool_amount(ref));
  append_quoted_amount(s, "contracts_amount", contracts * r.between(1, 100'000) * 10'000'000);
  s += ",\"balances\":{\"authorized\":\""sv;
  append_amount(s, r.between(holders, 1'000'000'000) * 10'000'000 + r.between(0, 9'999'999));
  s += "\",\"authorized_to_maintain_liabilities\":\""sv;
  append_amount(s, r.between(0, 1000) * 10'000'000);
  s += "\",\"unauthorized\":\""sv;
  append_amount(s, 0);
  s += "\"},\"flags\":{\"auth_required\":"sv;
  s += r.percent(10) ? "true" : "false";
  s += ",\"auth_revocable\":"sv;
  s += r.percent(40) ? "true" : "false";
  s += ",\"auth_immutable\":false,\"auth_clawback_enabled\":"sv;
  s += r.percent(15) ? "true" : "false";
  s += "}}"sv;
}

std::optional<std::pair<uint64_t, uint64_t>> parse_trade_cursor(std::string_view text) {
  const auto dash = text.find('-');
  uint64_t id = 0;
  uint64_t n = 0;
  if (!parse_uint(text.substr(0, dash), id)) {
    return std::nullopt;
  }
  if (dash != std::string_view::npos && !parse_uint(text.substr(dash + 1), n)) {
    return std::nullopt;
  }
  return std::make_pair(id, n);
}

}  // namespace si::sim
