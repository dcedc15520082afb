#include "tools/horizon_sim/world.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>
#include <tuple>

#include "tools/horizon_sim/strkey.hpp"

namespace si::sim {

namespace {

constexpr std::array<op_type_info, op_type_count> op_type_table = {{
    {"create_account", 0, 6, true},
    {"payment", 1, 28, true},
    {"path_payment_strict_receive", 2, 9, true},
    {"manage_sell_offer", 3, 12, false},
    {"set_options", 5, 5, false},
    {"change_trust", 6, 8, false},
    {"account_merge", 8, 2, true},
    {"manage_buy_offer", 12, 7, false},
    {"path_payment_strict_send", 13, 9, true},
    {"liquidity_pool_deposit", 22, 5, false},
    {"liquidity_pool_withdraw", 23, 4, false},
}};

/// Codes of the issued assets, in creation order; past the list, codes are synthesised.
constexpr std::array<std::string_view, 40> known_codes = {
    "USDC",  "EURC", "BTC",  "yXLM", "ARST",   "ETH",   "AQUA",  "yUSDC",
    "SHX",   "BRL",  "NGNT", "MOBI", "EURT",   "XRP",   "TFT",   "GOLDBANK001",
    "BTCLN", "LSP",  "VELO", "TZS",  "KES",    "MXN",   "ZAR",   "JPY",
    "CNY",   "GBP",  "SLT",  "RMT",  "SSLX",   "USDT",  "XLMG",  "PHP",
    "IDR",   "INR",  "COP",  "VND",  "LOBSTR", "SOLAR", "DOGET", "AQUARIUSCOIN",
};

/// Rough XLM values of the well-known codes (others get a seeded value).
double known_value(std::string_view code) {
  if (code == "USDC" || code == "yUSDC" || code == "USDT") {
    return 10.0;
  }
  if (code == "EURC" || code == "EURT") {
    return 11.0;
  }
  if (code == "BTC" || code == "BTCLN") {
    return 600'000.0;
  }
  if (code == "ETH") {
    return 30'000.0;
  }
  if (code == "yXLM" || code == "XLMG") {
    return 1.0;
  }
  if (code == "ARST") {
    return 0.01;
  }
  return 0.0;
}

/// Stellar's canonical asset order: native < alphanum4 < alphanum12, then code, then issuer.
auto asset_order_key(const world& w, asset_ref ref) {
  if (ref == 0) {
    return std::make_tuple(0, std::string(), std::string());
  }
  const auto& a = w.issued(ref);
  return std::make_tuple(a.alphanum12 ? 2 : 1, a.code, a.issuer);
}

int64_t clamp_stroops(long double v) {
  if (!(v >= 1.0L)) {
    return 1;
  }
  if (v > 9.0e17L) {
    return 900'000'000'000'000'000LL;
  }
  return static_cast<int64_t>(v);
}

}  // namespace

const std::array<op_type_info, op_type_count>& op_types() {
  return op_type_table;
}

world::world(const options& config, std::string base_url)
    : config_(config), base_url_(std::move(base_url)) {
  const std::string& b = base_url_;
  operation_links_ = {
      "{\"_links\":{\"self\":{\"href\":\"" + b + "/operations/",
      "\"},\"transaction\":{\"href\":\"" + b + "/transactions/",
      "\"},\"effects\":{\"href\":\"" + b + "/operations/",
      "/effects\"},\"succeeds\":{\"href\":\"" + b + "/effects?order=desc\\u0026cursor=",
      "\"},\"precedes\":{\"href\":\"" + b + "/effects?order=asc\\u0026cursor=",
      "\"}},\"id\":\"",
  };
  if (config_.base_time) {
    base_time_ = *config_.base_time;
  } else {
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    base_time_ = now - static_cast<int64_t>(config_.ledgers) * ledger_seconds;
  }
  regular_ids_.reserve(regular_accounts);
  for (uint64_t i = 0; i < regular_accounts; ++i) {
    regular_ids_.push_back(encode_account(account_key(i)));
  }
  const uint32_t anchors = std::clamp<uint32_t>((config_.assets + 4) / 5, 2, 12);
  for (uint32_t k = 0; k < anchors; ++k) {
    anchor_ids_.push_back(encode_account(account_key(anchor_base + k)));
  }
  build_assets();
  build_pools();
}

std::array<uint8_t, 32> world::account_key(uint64_t account) const {
  const tag kind =
      account >= anchor_base && account < anchor_base + 4096 ? tag::anchor : tag::account;
  return to_bytes(hash_words(config_.seed, kind, account));
}

void world::append_account(std::string& out, uint64_t account) const {
  if (account < regular_accounts) {
    out += regular_ids_[account];
  } else if (account >= anchor_base && account < anchor_base + anchor_ids_.size()) {
    out += anchor_ids_[account - anchor_base];
  } else {
    out += encode_account(account_key(account));
  }
}

void world::build_assets() {
  for (uint32_t k = 0; k < config_.assets; ++k) {
    issued_asset a;
    if (k < known_codes.size()) {
      a.code = std::string(known_codes[k]);
    } else {
      // T40, T42 ... (alphanum4) and TOKEN41, TOKEN43 ... (alphanum12).
      a.code = (k % 2 == 0 ? "T" : "TOKEN") + std::to_string(k);
    }
    a.alphanum12 = a.code.size() > 4;
    a.anchor = k % static_cast<uint32_t>(anchor_ids_.size());
    a.issuer = anchor_ids_[a.anchor];
    a.value_xlm = known_value(a.code);
    if (a.value_xlm == 0.0) {
      rng r(hash_of(config_.seed, tag::asset_value, k));
      a.value_xlm = std::pow(10.0, -2.0 + 5.0 * r.unit());
    }
    a.toml_href = "https://anchor-" + std::to_string(a.anchor + 1)
                  + ".horizon-sim.example/.well-known/stellar.toml";
    assets_.push_back(std::move(a));
  }
  for (std::size_t k = 1; k <= assets_.size(); ++k) {
    assets_by_code_.push_back(static_cast<asset_ref>(k));
  }
  std::sort(assets_by_code_.begin(), assets_by_code_.end(), [this](asset_ref x, asset_ref y) {
    return std::tie(issued(x).code, issued(x).issuer) < std::tie(issued(y).code, issued(y).issuer);
  });
}

void world::build_pools() {
  const auto n = static_cast<uint32_t>(assets_.size() + 1);
  std::set<std::pair<asset_ref, asset_ref>> used;
  for (uint32_t k = 0; k < config_.pools; ++k) {
    rng r(hash_of(config_.seed, tag::pool_plan, k));
    asset_ref a = 0;
    asset_ref b = 0;
    bool found = false;
    // Random distinct pairs first (most pools hold XLM or a dollar), then the first free one.
    for (int attempt = 0; attempt < 64 && !found; ++attempt) {
      a = static_cast<asset_ref>(r.percent(50) ? 0 : r.below(n));
      b = static_cast<asset_ref>(r.below(n));
      if (a == b) {
        continue;
      }
      if (asset_order_key(*this, b) < asset_order_key(*this, a)) {
        std::swap(a, b);
      }
      found = used.count({a, b}) == 0;
    }
    for (asset_ref x = 0; x < n && !found; ++x) {
      for (asset_ref y = static_cast<asset_ref>(x + 1); y < n && !found; ++y) {
        a = x;
        b = y;
        if (asset_order_key(*this, b) < asset_order_key(*this, a)) {
          std::swap(a, b);
        }
        found = used.count({a, b}) == 0;
      }
    }
    used.insert({a, b});
    pool_def p;
    p.index = k;
    append_hex(p.id, hash_words(config_.seed, tag::pool, k));
    p.a = a;
    p.b = b;
    const long double units_a = std::pow(10.0L, 2.0L + 5.0L * static_cast<long double>(r.unit()));
    p.reserve_a = clamp_stroops(units_a * 1e7L);
    p.reserve_b =
        clamp_stroops(static_cast<long double>(p.reserve_a) * value_xlm(a) / value_xlm(b));
    p.total_shares = clamp_stroops(
        std::sqrt(static_cast<long double>(p.reserve_a) * static_cast<long double>(p.reserve_b)));
    p.trustlines = r.between(1, 5000);
    p.trade_spacing = static_cast<uint32_t>(r.between(20, 420));
    pools_.push_back(std::move(p));
  }
  std::sort(pools_.begin(), pools_.end(),
            [](const pool_def& x, const pool_def& y) { return x.id < y.id; });
  for (std::size_t i = 0; i < pools_.size(); ++i) {
    pool_by_id_.emplace(pools_[i].id, i);
  }
}

const pool_def* world::find_pool(std::string_view id) const {
  auto it = pool_by_id_.find(std::string(id));
  return it == pool_by_id_.end() ? nullptr : &pools_[it->second];
}

uint32_t world::pools_holding(asset_ref ref) const {
  uint32_t n = 0;
  for (const auto& p : pools_) {
    n += (p.a == ref || p.b == ref) ? 1 : 0;
  }
  return n;
}

int64_t world::pool_amount(asset_ref ref) const {
  int64_t total = 0;
  for (const auto& p : pools_) {
    total += p.a == ref ? p.reserve_a : 0;
    total += p.b == ref ? p.reserve_b : 0;
  }
  return total;
}

void world::append_asset_text(std::string& out, asset_ref ref) const {
  if (ref == 0) {
    out += "native";
    return;
  }
  out += issued(ref).code;
  out.push_back(':');
  out += issued(ref).issuer;
}

std::string world::asset_id(asset_ref ref) const {
  if (ref == 0) {
    return "XLM:native";
  }
  return issued(ref).code + ":" + issued(ref).issuer;
}

words4 world::keyed_hash(uint64_t toid, tag kind) const {
  const uint64_t k1 = hash_of(config_.seed, tag::hash_key, static_cast<uint64_t>(kind), 1);
  const uint64_t k2 = hash_of(config_.seed, tag::hash_key, static_cast<uint64_t>(kind), 2);
  return {mix64(toid ^ k1) ^ k2, hash_of(config_.seed, kind, toid, 1),
          hash_of(config_.seed, kind, toid, 2), hash_of(config_.seed, kind, toid, 3)};
}

std::optional<uint64_t> world::toid_of_hash(std::string_view hex, bool& inner) const {
  if (hex.size() != 64) {
    return std::nullopt;
  }
  uint64_t first = 0;
  for (std::size_t i = 0; i < 16; ++i) {
    const char c = hex[i];
    int v = -1;
    if (c >= '0' && c <= '9') {
      v = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      v = c - 'a' + 10;
    }
    if (v < 0) {
      return std::nullopt;
    }
    first = (first << 4) | static_cast<uint64_t>(v);
  }
  for (tag kind : {tag::tx_hash, tag::inner_hash}) {
    const uint64_t k1 = hash_of(config_.seed, tag::hash_key, static_cast<uint64_t>(kind), 1);
    const uint64_t k2 = hash_of(config_.seed, tag::hash_key, static_cast<uint64_t>(kind), 2);
    const uint64_t toid = unmix64(first ^ k2) ^ k1;
    std::string expected;
    append_hex(expected, keyed_hash(toid, kind));
    if (expected == hex) {
      inner = kind == tag::inner_hash;
      return toid;
    }
  }
  return std::nullopt;
}

}  // namespace si::sim
