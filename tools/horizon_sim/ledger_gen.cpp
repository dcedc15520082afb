#include "tools/horizon_sim/ledger_gen.hpp"

#include <charconv>
#include <cmath>
#include <limits>

#include "tools/horizon_sim/strkey.hpp"

namespace si::sim {

using namespace std::string_view_literals;

namespace {

constexpr int64_t base_fee = 100;
constexpr int64_t max_int64_stroops = std::numeric_limits<int64_t>::max();
constexpr int64_t int32_max = std::numeric_limits<int32_t>::max();
/// Accounts 0..fee_sponsors-1 pay the fees of fee-bump transactions.
constexpr uint64_t fee_sponsors = 64;

constexpr int64_t pow10_table[] = {1LL,
                                   10LL,
                                   100LL,
                                   1'000LL,
                                   10'000LL,
                                   100'000LL,
                                   1'000'000LL,
                                   10'000'000LL,
                                   100'000'000LL,
                                   1'000'000'000LL,
                                   10'000'000'000LL,
                                   100'000'000'000LL,
                                   1'000'000'000'000LL,
                                   10'000'000'000'000LL,
                                   100'000'000'000'000LL};

/// A price as Stellar stores it: n/d with both in int32 range and d a power of ten, so the
/// 7-decimal text is exact.
struct price {
  int64_t n = 1;
  int64_t d = 1;
};

price make_price(long double value) {
  for (int e = 7; e >= 0; --e) {
    const long double n = std::round(value * static_cast<long double>(pow10_table[e]));
    if (n >= 1.0L && n <= static_cast<long double>(int32_max)) {
      return {static_cast<int64_t>(n), pow10_table[e]};
    }
    if (n < 1.0L) {
      return {1, pow10_table[7]};
    }
  }
  return {int32_max, 1};
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

/// 1 stroop .. 10^6 units, spread over the orders of magnitude; a third are whole units.
int64_t random_amount(rng& r) {
  const auto e = static_cast<std::size_t>(r.below(7));
  int64_t amount = 1 + static_cast<int64_t>(r.below(static_cast<uint64_t>(pow10_table[e + 7])));
  if (r.percent(33) && amount >= 10'000'000) {
    amount -= amount % 10'000'000;
  }
  return amount;
}

/// `amount` of `from` in units of `to`, at the assets' XLM values.
int64_t convert(const world& w, int64_t amount, asset_ref from, asset_ref to, long double factor) {
  return clamp_amount(static_cast<long double>(amount) * w.value_xlm(from) / w.value_xlm(to)
                      * factor);
}

asset_ref pick_asset(rng& r, const world& w, bool allow_native) {
  if (allow_native && r.percent(30)) {
    return 0;
  }
  return static_cast<asset_ref>(1 + r.below(w.issued_count()));
}

asset_ref pick_other(rng& r, const world& w, asset_ref avoid) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    const asset_ref a = pick_asset(r, w, true);
    if (a != avoid) {
      return a;
    }
  }
  return static_cast<asset_ref>((avoid + 1) % (w.issued_count() + 1));
}

uint64_t other_account(rng& r, uint64_t not_this) {
  const uint64_t a = r.below(regular_accounts);
  return a == not_this ? (a + 1) % regular_accounts : a;
}

/// Appends JSON fields (each with its leading comma) to one record.
struct writer {
  std::string& s;
  const world& w;

  void key(std::string_view k) {
    s += ",\""sv;
    s += k;
    s += "\":"sv;
  }
  void str(std::string_view k, std::string_view v) {
    key(k);
    s.push_back('"');
    s += v;
    s.push_back('"');
  }
  void amount(std::string_view k, int64_t stroops) {
    key(k);
    s.push_back('"');
    append_amount(s, stroops);
    s.push_back('"');
  }
  void integer(std::string_view k, int64_t v) {
    key(k);
    append_int(s, v);
  }
  void uint_text(std::string_view k, uint64_t v) {
    key(k);
    s.push_back('"');
    append_uint(s, v);
    s.push_back('"');
  }
  void boolean(std::string_view k, bool v) {
    key(k);
    s += v ? "true" : "false";
  }
  void account(std::string_view k, uint64_t a) {
    key(k);
    s.push_back('"');
    w.append_account(s, a);
    s.push_back('"');
  }
  /// `<prefix>asset_type` and, unless native, `<prefix>asset_code` / `<prefix>asset_issuer`.
  void asset(std::string_view prefix, asset_ref ref) {
    s += ",\""sv;
    s += prefix;
    s += "asset_type\":\""sv;
    if (ref == 0) {
      s += "native\""sv;
      return;
    }
    const issued_asset& a = w.issued(ref);
    s += a.alphanum12 ? "credit_alphanum12\"" : "credit_alphanum4\"";
    s += ",\""sv;
    s += prefix;
    s += "asset_code\":\""sv;
    s += a.code;
    s += "\",\""sv;
    s += prefix;
    s += "asset_issuer\":\""sv;
    s += a.issuer;
    s.push_back('"');
  }
  void path(const asset_ref* refs, std::size_t count) {
    key("path");
    s.push_back('[');
    for (std::size_t i = 0; i < count; ++i) {
      if (i > 0) {
        s.push_back(',');
      }
      const std::size_t mark = s.size();
      asset("", refs[i]);
      s[mark] = '{';  // the field writer's leading comma opens the object
      s.push_back('}');
    }
    s.push_back(']');
  }
  void reserves(std::string_view k, asset_ref a, int64_t amount_a, asset_ref b, int64_t amount_b) {
    key(k);
    s += "[{\"asset\":\""sv;
    w.append_asset_text(s, a);
    s += "\",\"amount\":\""sv;
    append_amount(s, amount_a);
    s += "\"},{\"asset\":\""sv;
    w.append_asset_text(s, b);
    s += "\",\"amount\":\""sv;
    append_amount(s, amount_b);
    s += "\"}]"sv;
  }
  void price_text(std::string_view k, price p) {
    amount(k, p.n * (10'000'000 / p.d));
  }
  void price_r(std::string_view k, price p) {
    key(k);
    s += "{\"n\":"sv;
    append_int(s, p.n);
    s += ",\"d\":"sv;
    append_int(s, p.d);
    s.push_back('}');
  }
};

/// What the operations of one transaction share.
struct tx_context {
  uint32_t seq = 0;
  uint64_t tx_toid = 0;
  std::string_view hash_hex;
  std::string_view created_at;
  bool successful = true;
  uint64_t source = 0;
};

op_type pick_type(rng& r, const world& w) {
  static const uint32_t total = [] {
    uint32_t sum = 0;
    for (const auto& t : op_types()) {
      sum += t.weight;
    }
    return sum;
  }();
  auto x = static_cast<uint32_t>(r.below(total));
  for (std::size_t i = 0; i < op_type_count; ++i) {
    if (x < op_types()[i].weight) {
      const auto type = static_cast<op_type>(i);
      const bool pool_op =
          type == op_type::liquidity_pool_deposit || type == op_type::liquidity_pool_withdraw;
      return pool_op && w.pools().empty() ? op_type::payment : type;
    }
    x -= op_types()[i].weight;
  }
  return op_type::payment;
}

void tally(ledger_totals& totals, asset_ref source, asset_ref destination, bool successful) {
  for (auto& t : totals.payments) {
    if (t.source == source && t.destination == destination) {
      (successful ? t.successful : t.failed) += 1;
      return;
    }
  }
  totals.payments.push_back({source, destination, successful ? 1U : 0U, successful ? 0U : 1U});
}

/// Renders operation `j` (1-based) of a transaction into `s`; returns its type.
op_type render_op(std::string& s, const world& w, const tx_context& tx, uint32_t j,
                  ledger_totals& totals) {
  const uint64_t id = tx.tx_toid | j;
  rng r(hash_of(w.seed(), tag::op_plan, id));
  const op_type type = pick_type(r, w);
  const op_type_info& info = op_types()[static_cast<std::size_t>(type)];
  const uint64_t source = r.percent(85) ? tx.source : r.below(regular_accounts);
  const bool muxed = r.percent(5);
  char id_text[24];
  const auto id_end = std::to_chars(id_text, id_text + sizeof id_text, id).ptr;
  const std::string_view id_view(id_text, static_cast<std::size_t>(id_end - id_text));

  // The links, from fragments that already hold the base URL (fewer, longer appends).
  const auto& f = w.operation_links();
  s += f[0];
  s += id_view;
  s += f[1];
  s += tx.hash_hex;
  s += f[2];
  s += id_view;
  s += f[3];
  s += id_view;
  s += f[4];
  s += id_view;
  s += f[5];
  s += id_view;
  s.push_back('"');
  writer out{s, w};
  out.str("paging_token", id_view);
  out.boolean("transaction_successful", tx.successful);
  out.account("source_account", source);
  if (muxed) {
    const uint64_t mux_id = r.below(100'000'000);
    out.str("source_account_muxed", encode_muxed(w.account_key(source), mux_id));
    out.uint_text("source_account_muxed_id", mux_id);
  }
  out.str("type", info.name);
  out.integer("type_i", info.type_i);
  out.str("created_at", tx.created_at);
  out.str("transaction_hash", tx.hash_hex);

  const bool ok = tx.successful;
  switch (type) {
    case op_type::payment: {
      const asset_ref a = pick_asset(r, w, true);
      out.asset("", a);
      out.account("from", source);
      out.account("to", other_account(r, source));
      out.amount("amount", random_amount(r));
      tally(totals, a, a, ok);
      break;
    }
    case op_type::path_payment_strict_send:
    case op_type::path_payment_strict_receive: {
      const asset_ref src = pick_asset(r, w, true);
      const asset_ref dst = pick_other(r, w, src);
      asset_ref hops[2] = {0, 0};
      std::size_t hop_count = 0;
      const auto wanted = static_cast<std::size_t>(r.below(3));
      for (std::size_t h = 0; h < wanted; ++h) {
        const asset_ref hop = pick_asset(r, w, true);
        if (hop != src && hop != dst && (hop_count == 0 || hops[0] != hop)) {
          hops[hop_count++] = hop;
        }
      }
      out.asset("", dst);
      out.account("from", source);
      out.account("to", r.percent(20) ? source : other_account(r, source));
      if (type == op_type::path_payment_strict_send) {
        const int64_t sent = random_amount(r);
        const int64_t received = convert(w, sent, src, dst, 0.998L);
        // A failed strict send delivered nothing: Horizon reports amount 0.
        out.amount("amount", ok ? received : 0);
        out.path(hops, hop_count);
        out.amount("source_amount", sent);
        out.amount("destination_min", clamp_amount(static_cast<long double>(received) * 0.99L));
      } else {
        const int64_t received = random_amount(r);
        const int64_t needed = convert(w, received, dst, src, 1.002L);
        out.amount("amount", received);
        out.path(hops, hop_count);
        // A failed strict receive spent nothing: Horizon reports source_amount 0.
        out.amount("source_amount", ok ? needed : 0);
        out.amount("source_max", clamp_amount(static_cast<long double>(needed) * 1.01L));
      }
      out.asset("source_", src);
      tally(totals, src, dst, ok);
      break;
    }
    case op_type::create_account: {
      out.amount("starting_balance", r.between(1, 10'000) * 10'000'000);
      out.account("funder", source);
      out.account("account", new_account_bit | id);
      tally(totals, 0, 0, ok);
      break;
    }
    case op_type::account_merge: {
      out.account("account", source);
      out.account("into", other_account(r, source));
      tally(totals, 0, 0, ok);
      break;
    }
    case op_type::change_trust: {
      const asset_ref a = pick_asset(r, w, false);
      if (r.percent(30)) {
        // Horizon puts the sponsor before the asset.
        out.account("sponsor", other_account(r, source));
      }
      out.asset("", a);
      out.amount("limit", r.percent(50) ? max_int64_stroops : random_amount(r) * 100);
      out.account("trustee", anchor_base + w.issued(a).anchor);
      out.account("trustor", source);
      break;
    }
    case op_type::manage_sell_offer:
    case op_type::manage_buy_offer: {
      const asset_ref selling = pick_asset(r, w, true);
      const asset_ref buying = pick_other(r, w, selling);
      const long double rate = static_cast<long double>(w.value_xlm(selling))
                               / static_cast<long double>(w.value_xlm(buying))
                               * (0.95L + 0.1L * static_cast<long double>(r.unit()));
      const price p = make_price(type == op_type::manage_sell_offer ? rate : 1.0L / rate);
      out.amount("amount", random_amount(r));
      out.price_text("price", p);
      out.price_r("price_r", p);
      out.asset("buying_", buying);
      out.asset("selling_", selling);
      if (r.percent(60)) {
        out.str("offer_id", "0");
      } else {
        out.uint_text("offer_id", 1'000'000'000ULL + r.below(1'000'000'000ULL));
      }
      break;
    }
    case op_type::set_options: {
      out.integer("master_key_weight", r.between(1, 255));
      break;
    }
    case op_type::liquidity_pool_deposit: {
      const pool_def& p = w.pools()[r.below(w.pools().size())];
      const long double fraction = 0.0001L + 0.01L * static_cast<long double>(r.unit());
      const int64_t max_a = clamp_amount(static_cast<long double>(p.reserve_a) * fraction);
      const int64_t max_b = clamp_amount(static_cast<long double>(p.reserve_b) * fraction);
      const long double spot =
          static_cast<long double>(p.reserve_a) / static_cast<long double>(p.reserve_b);
      const int64_t dep_a = ok ? clamp_amount(static_cast<long double>(max_a) * 0.98L) : 0;
      const int64_t dep_b = ok ? clamp_amount(static_cast<long double>(max_b) * 0.98L) : 0;
      out.str("liquidity_pool_id", p.id);
      out.reserves("reserves_max", p.a, max_a, p.b, max_b);
      const price low = make_price(spot * 0.95L);
      const price high = make_price(spot * 1.05L);
      out.price_text("min_price", low);
      out.price_r("min_price_r", low);
      out.price_text("max_price", high);
      out.price_r("max_price_r", high);
      out.reserves("reserves_deposited", p.a, dep_a, p.b, dep_b);
      out.amount("shares_received", ok ? clamp_amount(std::sqrt(static_cast<long double>(dep_a)
                                                                * static_cast<long double>(dep_b)))
                                       : 0);
      break;
    }
    case op_type::liquidity_pool_withdraw: {
      const pool_def& p = w.pools()[r.below(w.pools().size())];
      const long double fraction = 0.0001L + 0.01L * static_cast<long double>(r.unit());
      const int64_t shares = clamp_amount(static_cast<long double>(p.total_shares) * fraction);
      const int64_t got_a = clamp_amount(static_cast<long double>(p.reserve_a) * fraction);
      const int64_t got_b = clamp_amount(static_cast<long double>(p.reserve_b) * fraction);
      out.str("liquidity_pool_id", p.id);
      out.reserves("reserves_min", p.a, clamp_amount(static_cast<long double>(got_a) * 0.99L), p.b,
                   clamp_amount(static_cast<long double>(got_b) * 0.99L));
      out.amount("shares", shares);
      out.reserves("reserves_received", p.a, ok ? got_a : 0, p.b, ok ? got_b : 0);
      break;
    }
  }
  s.push_back('}');
  return type;
}

void append_signatures(std::string& s, rng& filler, uint64_t count) {
  s.push_back('[');
  for (uint64_t k = 0; k < count; ++k) {
    if (k > 0) {
      s.push_back(',');
    }
    s.push_back('"');
    append_base64_filler(s, filler, 64);
    s.push_back('"');
  }
  s.push_back(']');
}

/// Transactions in a ledger: none in about 1 ledger of 10, otherwise uniform in 1..m with
/// m chosen so the mean is the requested average.
uint32_t transaction_count(rng& r, uint32_t average) {
  if (average == 0 || r.below(10) == 0) {
    return 0;
  }
  const auto m = static_cast<uint64_t>(std::max(1.0, std::round(20.0 * average / 9.0 - 1.0)));
  return static_cast<uint32_t>(1 + r.below(m));
}

/// Every transaction-level draw of one transaction, made in one fixed order, so the
/// transactions part and the operations part of a ledger can be rendered independently.
struct tx_plan {
  uint32_t index = 0;
  uint64_t toid = 0;
  bool successful = true;
  bool fee_bump = false;
  uint32_t op_count = 1;
  uint64_t source = 0;
  uint64_t fee_account = 0;
  bool has_memo = false;
  bool has_valid_before = false;
  uint64_t signature_count = 1;
  uint64_t inner_signature_count = 1;
  int64_t fee_charged = 0;
  int64_t max_fee = 0;
  int64_t inner_max_fee = 0;
  uint64_t sequence = 0;
  int64_t valid_before = 0;
  std::string hash_hex;
};

tx_plan plan_transaction(const world& w, uint32_t seq, uint32_t i) {
  const options& o = w.config();
  tx_plan p;
  p.index = i;
  p.toid = toid(seq, i, 0);
  rng r(hash_of(w.seed(), tag::tx_plan, p.toid));
  p.successful = !r.percent(o.failed_percent);
  p.fee_bump = r.percent(o.fee_bump_percent);
  p.op_count = static_cast<uint32_t>(1 + r.below(2ULL * o.ops_per_tx - 1));
  p.source = r.below(regular_accounts);
  p.fee_account = p.source;
  if (p.fee_bump) {
    p.fee_account = r.below(fee_sponsors);
    if (p.fee_account == p.source) {
      p.fee_account = (p.fee_account + 1) % fee_sponsors;
    }
  }
  p.has_memo = r.percent(15);
  p.has_valid_before = r.percent(60);
  p.signature_count = 1 + r.below(2);
  p.inner_signature_count = 1 + r.below(2);
  p.fee_charged = base_fee * (p.op_count + (p.fee_bump ? 1 : 0));
  p.max_fee = p.fee_charged * static_cast<int64_t>(1 + r.below(20));
  p.inner_max_fee = base_fee * p.op_count * static_cast<int64_t>(1 + r.below(5));
  p.sequence = ((p.source + 1) << 44) | (static_cast<uint64_t>(seq) << 12) | i;
  p.valid_before = w.close_time(seq) + 30 + static_cast<int64_t>(r.below(300));
  append_hex(p.hash_hex, w.tx_hash(p.toid));
  return p;
}

/// Appends the JSON of the planned transaction to the transactions part.
void render_transaction(ledger_data& out, const world& w, uint32_t seq, const tx_plan& p,
                        std::string_view created_at) {
  rng filler(hash_of(w.seed(), tag::filler, p.toid));
  std::string& s = out.tx_blob;
  if (!out.txs.empty()) {
    s.push_back(',');
  }
  record_span span;
  span.begin = static_cast<uint32_t>(s.size());
  span.token = p.toid;
  span.flags =
      static_cast<uint8_t>((p.successful ? span_successful : 0) | (p.fee_bump ? span_fee_bump : 0));
  const std::string& b = w.base_url();
  s.push_back('{');
  if (p.has_memo) {
    std::string memo = "sim " + std::to_string(seq) + "/" + std::to_string(p.index);
    s += "\"memo\":\""sv;
    s += memo;
    s += "\",\"memo_bytes\":\""sv;
    append_base64(s, memo);
    s += "\","sv;
  }
  char token_text[24];
  const auto token_end = std::to_chars(token_text, token_text + sizeof token_text, p.toid).ptr;
  const std::string_view token(token_text, static_cast<std::size_t>(token_end - token_text));
  s += "\"_links\":{\"self\":{\"href\":\""sv;
  s += b;
  s += "/transactions/"sv;
  s += p.hash_hex;
  s += "\"},\"account\":{\"href\":\""sv;
  s += b;
  s += "/accounts/"sv;
  w.append_account(s, p.source);
  s += "\"},\"ledger\":{\"href\":\""sv;
  s += b;
  s += "/ledgers/"sv;
  append_uint(s, seq);
  s += "\"},\"operations\":{\"href\":\""sv;
  s += b;
  s += "/transactions/"sv;
  s += p.hash_hex;
  s += "/operations{?cursor,limit,order}\",\"templated\":true},\"effects\":{\"href\":\""sv;
  s += b;
  s += "/transactions/"sv;
  s += p.hash_hex;
  s += "/effects{?cursor,limit,order}\",\"templated\":true},\"precedes\":{\"href\":\""sv;
  s += b;
  s += "/transactions?order=asc\\u0026cursor="sv;
  s += token;
  s += "\"},\"succeeds\":{\"href\":\""sv;
  s += b;
  s += "/transactions?order=desc\\u0026cursor="sv;
  s += token;
  s += "\"},\"transaction\":{\"href\":\""sv;
  s += b;
  s += "/transactions/"sv;
  s += p.hash_hex;
  s += "\"}},\"id\":\""sv;
  s += p.hash_hex;
  s += "\""sv;
  writer out_tx{s, w};
  out_tx.str("paging_token", token);
  out_tx.boolean("successful", p.successful);
  out_tx.str("hash", p.hash_hex);
  out_tx.integer("ledger", seq);
  out_tx.str("created_at", created_at);
  out_tx.account("source_account", p.source);
  out_tx.uint_text("source_account_sequence", p.sequence);
  out_tx.account("fee_account", p.fee_account);
  out_tx.uint_text("fee_charged", static_cast<uint64_t>(p.fee_charged));
  out_tx.uint_text("max_fee", static_cast<uint64_t>(p.max_fee));
  out_tx.integer("operation_count", p.op_count);
  out_tx.key("envelope_xdr");
  s.push_back('"');
  append_base64_filler(s, filler, 120 + 64 * p.op_count + (p.fee_bump ? 80 : 0));
  s += "\""sv;
  out_tx.key("result_xdr");
  s.push_back('"');
  append_base64_filler(s, filler, 28 + 8 * p.op_count);
  s += "\""sv;
  out_tx.key("result_meta_xdr");
  s.push_back('"');
  append_base64_filler(s, filler, 200 + 120 * p.op_count);
  s += "\""sv;
  out_tx.key("fee_meta_xdr");
  s.push_back('"');
  append_base64_filler(s, filler, 168);
  s += "\""sv;
  out_tx.str("memo_type", p.has_memo ? "text" : "none");
  out_tx.key("signatures");
  const std::size_t signatures_begin = s.size();
  append_signatures(s, filler, p.signature_count);
  const std::string outer_signatures = s.substr(signatures_begin);
  out_tx.str("valid_after", "1970-01-01T00:00:00Z");
  if (p.has_valid_before) {
    std::string before_text;
    append_time(before_text, p.valid_before);
    out_tx.str("valid_before", before_text);
  }
  s += ",\"preconditions\":{\"timebounds\":{\"min_time\":\"0\""sv;
  if (p.has_valid_before) {
    s += ",\"max_time\":\""sv;
    append_int(s, p.valid_before);
    s.push_back('"');
  }
  s += "}}"sv;
  if (p.fee_bump) {
    s += ",\"fee_bump_transaction\":{\"hash\":\""sv;
    s += p.hash_hex;
    s += "\",\"signatures\":"sv;
    s += outer_signatures;
    s += "},\"inner_transaction\":{\"hash\":\""sv;
    append_hex(s, w.inner_hash(p.toid));
    s += "\",\"signatures\":"sv;
    append_signatures(s, filler, p.inner_signature_count);
    s += ",\"max_fee\":\""sv;
    append_int(s, p.inner_max_fee);
    s += "\"}"sv;
  }
  s.push_back('}');
  span.end = static_cast<uint32_t>(s.size());
  out.txs.push_back(span);
}

/// Appends the operations of the planned transaction to the operations part and counts the
/// transaction and its operations in the ledger's totals.
void render_operations(ledger_data& out, const world& w, uint32_t seq, const tx_plan& p,
                       std::string_view created_at) {
  ledger_totals& totals = out.totals;
  totals.transactions += 1;
  (p.successful ? totals.successful_transactions : totals.failed_transactions) += 1;
  totals.fee_bump_transactions += p.fee_bump ? 1 : 0;
  totals.fee_charged += p.fee_charged;

  tx_context tx;
  tx.seq = seq;
  tx.tx_toid = p.toid;
  tx.hash_hex = p.hash_hex;
  tx.created_at = created_at;
  tx.successful = p.successful;
  tx.source = p.source;
  std::string& ops = out.op_blob;
  for (uint32_t j = 1; j <= p.op_count; ++j) {
    if (!out.ops.empty()) {
      ops.push_back(',');
    }
    record_span op_span;
    op_span.begin = static_cast<uint32_t>(ops.size());
    op_span.token = p.toid | j;
    const op_type type = render_op(ops, w, tx, j, totals);
    op_span.end = static_cast<uint32_t>(ops.size());
    const auto type_index = static_cast<std::size_t>(type);
    op_span.type = static_cast<uint8_t>(type_index);
    op_span.flags =
        static_cast<uint8_t>((p.successful ? span_successful : 0)
                             | (op_types()[type_index].payment_like ? span_payment : 0));
    out.ops.push_back(op_span);
    totals.operations += 1;
    totals.ops_by_type[type_index] += 1;
    if (p.successful) {
      totals.successful_operations += 1;
      totals.successful_ops_by_type[type_index] += 1;
    }
  }
}

void render_ledger(ledger_data& out, const world& w, std::string_view created_at) {
  const uint32_t seq = out.sequence;
  const ledger_totals& t = out.totals;
  rng filler(hash_of(w.seed(), tag::filler, toid(seq, 0, 0)));
  const std::string& b = w.base_url();
  std::string hash;
  append_hex(hash, w.ledger_hash(seq));
  std::string& s = out.ledger_json;
  s.reserve(1600 + 5 * b.size());
  s += "{\"_links\":{\"self\":{\"href\":\""sv;
  s += b;
  s += "/ledgers/"sv;
  append_uint(s, seq);
  s += "\"}"sv;
  for (const char* part : {"transactions", "operations", "payments", "effects"}) {
    s += ",\""sv;
    s += part;
    s += "\":{\"href\":\""sv;
    s += b;
    s += "/ledgers/"sv;
    append_uint(s, seq);
    s.push_back('/');
    s += part;
    s += "{?cursor,limit,order}\",\"templated\":true}"sv;
  }
  s += "},\"id\":\""sv;
  s += hash;
  s += "\""sv;
  writer out_l{s, w};
  out_l.uint_text("paging_token", toid(seq, 0, 0));
  out_l.str("hash", hash);
  out_l.key("prev_hash");
  s.push_back('"');
  append_hex(s, w.ledger_hash(static_cast<int64_t>(seq) - 1));
  s.push_back('"');
  out_l.integer("sequence", seq);
  out_l.integer("successful_transaction_count", t.successful_transactions);
  out_l.integer("failed_transaction_count", t.failed_transactions);
  out_l.integer("operation_count", t.successful_operations);
  out_l.integer("tx_set_operation_count", t.operations);
  out_l.str("closed_at", created_at);
  out_l.amount("total_coins", 1'054'439'020'873'472'865LL);
  out_l.amount("fee_pool", 47'610'684'157'944LL + t.fee_charged);
  out_l.integer("base_fee_in_stroops", base_fee);
  out_l.integer("base_reserve_in_stroops", 5'000'000);
  out_l.integer("max_tx_set_size", 1000);
  out_l.integer("protocol_version", 21);
  out_l.key("header_xdr");
  s.push_back('"');
  append_base64_filler(s, filler, 336);
  s += "\"}"sv;
}

}  // namespace

std::size_t ledger_data::memory() const {
  return sizeof(*this) + ledger_json.capacity() + tx_blob.capacity() + op_blob.capacity()
         + txs.capacity() * sizeof(record_span) + ops.capacity() * sizeof(record_span)
         + totals.payments.capacity() * sizeof(payment_tally);
}

std::shared_ptr<const ledger_data> generate_ledger(const world& w, uint32_t seq, ledger_part part) {
  auto out = std::make_shared<ledger_data>();
  out->sequence = seq;
  out->part = part;
  out->closed_at = w.close_time(seq);
  std::string created_at;
  append_time(created_at, out->closed_at);
  rng r(hash_of(w.seed(), tag::ledger_plan, seq));
  const uint32_t count = transaction_count(r, w.config().tx_per_ledger);
  const std::size_t ops = static_cast<std::size_t>(count) * w.config().ops_per_tx;
  // Sized for the average record, so a blob is rarely copied while it grows.
  if (part == ledger_part::transactions) {
    out->tx_blob.reserve(static_cast<std::size_t>(count) * 1800 + ops * 500);
    out->txs.reserve(count);
  } else {
    out->op_blob.reserve(ops * 1300);
    out->ops.reserve(ops * 2);
  }
  for (uint32_t i = 1; i <= count; ++i) {
    const tx_plan plan = plan_transaction(w, seq, i);
    if (part == ledger_part::transactions) {
      render_transaction(*out, w, seq, plan, created_at);
    } else {
      render_operations(*out, w, seq, plan, created_at);
    }
  }
  if (part == ledger_part::operations) {
    render_ledger(*out, w, created_at);
  }
  return out;
}

}  // namespace si::sim
