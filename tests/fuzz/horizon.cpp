/// Fuzz target `horizon`: a Horizon response body (what the ingestor and the schedulers fetch
/// from a Horizon they do not control) through every parser of domain/: the pages of
/// ledgers, transactions, operations/payments, liquidity pools, trades and assets, each
/// single record kind, problem+json errors, the event stream (SSE framing fed whole and in
/// two chunks, then each event as a stream item), the scalar spellings (amounts, timestamps,
/// decimal ints), and check_batch over whatever pages parsed (a JSON array of a ledgers, a
/// transactions and an operations page is checked as one batch).
///
/// Invariants: a parsed page has one model per record and its cursor is the last record's
/// paging token; parsed values respect their documented ranges and round-trip through
/// their Horizon spelling; SSE framing does not depend on where the chunks split.

#include "tests/fuzz/fuzz_target.hpp"

#include "domain/horizon.hpp"
#include "domain/horizon_sse.hpp"
#include "domain/horizon_values.hpp"
#include "domain/ledger_batch.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace {

using namespace si::domain;

bool is_lower_hex64(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

/// A value the parser accepted re-parses from Horizon's spelling of it.
void check_stroops(int64_t stroops) {
  SI_FUZZ_CHECK(stroops >= 0, "amounts are not negative");
  auto again = parse_stroops(format_stroops(stroops));
  SI_FUZZ_CHECK(std::get_if<int64_t>(&again) && std::get<int64_t>(again) == stroops,
                "amount round-trips: " + format_stroops(stroops));
}

void check_timestamp(int64_t ms) {
  // format_timestamp_ms is specified for years 0-9999 only; the parser reads 4-digit years.
  auto again = parse_timestamp_ms(format_timestamp_ms(ms));
  SI_FUZZ_CHECK(std::get_if<int64_t>(&again) && std::get<int64_t>(again) == ms,
                "timestamp round-trips: " + format_timestamp_ms(ms));
}

void check_model(const ledger& l) {
  SI_FUZZ_CHECK(l.sequence >= 1 && l.sequence <= 0xFFFFFFFFLL, "ledger sequence range");
  SI_FUZZ_CHECK(is_lower_hex64(l.hash) && is_lower_hex64(l.prev_hash), "ledger hashes");
  check_timestamp(l.closed_at_ms);
}

void check_model(const transaction& t) {
  SI_FUZZ_CHECK(t.is_fee_bump() == t.inner_transaction_hash.has_value(), "fee bump flag");
  check_timestamp(t.created_at_ms);
  check_stroops(t.fee_charged);
  check_stroops(t.max_fee);
}

void check_model(const operation& o) {
  SI_FUZZ_CHECK(o.payment.has_value() == is_payment_like(o.type), "payment-like types only");
  check_timestamp(o.created_at_ms);
  if (o.payment) {
    for (const auto& amount : {o.payment->amount, o.payment->source_amount}) {
      if (amount) {
        check_stroops(*amount);
      }
    }
  }
}

void check_model(const liquidity_pool& p) {
  SI_FUZZ_CHECK(is_lower_hex64(p.id), "pool id");
  for (const auto& r : p.reserves) {
    check_stroops(r.amount);
  }
}

void check_model(const trade& t) {
  SI_FUZZ_CHECK(t.price_d != 0, "a trade price has a non-zero denominator");
  check_stroops(t.base_amount);
  check_stroops(t.counter_amount);
  check_timestamp(t.ledger_close_time_ms);
}

void check_model(const asset_stats& a) {
  SI_FUZZ_CHECK(!a.stats_asset.is_native(), "asset stats are for issued assets");
  check_stroops(a.amount);
}

void check_model(const problem& p) {
  (void)p.type_name();
}

/// Pages are parsed from text with simdjson and from decoded JSON with nlohmann, through the
/// same record parsers: both must agree (same error, or the same records) on any text both
/// decode. (simdjson refuses a few documents nlohmann takes, e.g. integers beyond 64 bits.)
std::string details_of(const operation& o) {
  return nlohmann::json::parse(o.details).dump();
}
template <class T>
std::string details_of(const T&) {
  return {};
}

template <class T, class Parsed>
void check_same_page(std::string_view text, const Parsed& from_json) {
  auto from_text = parse_page<T>(text);
  if (auto* e = std::get_if<parse_error>(&from_text);
      e != nullptr && e->problem.starts_with("is not valid JSON")) {
    return;
  }
  SI_FUZZ_CHECK(from_text.index() == from_json.index(), "text and JSON pages agree on success");
  if (auto* e = std::get_if<parse_error>(&from_text)) {
    SI_FUZZ_CHECK(e->message() == std::get<parse_error>(from_json).message(),
                  "text and JSON pages fail alike: " + e->message() + " | "
                      + std::get<parse_error>(from_json).message());
    return;
  }
  const auto& a = std::get<page<T>>(from_text);
  const auto& b = std::get<page<T>>(from_json);
  SI_FUZZ_CHECK(a.records.size() == b.records.size() && a.self_href == b.self_href
                    && a.next_href == b.next_href && a.last_paging_token == b.last_paging_token,
                "text and JSON pages have the same records and links");
  for (std::size_t i = 0; i < a.records.size(); ++i) {
    SI_FUZZ_CHECK(a.records[i].paging_token == b.records[i].paging_token
                      && details_of(a.records[i]) == details_of(b.records[i]),
                  "text and JSON records agree");
  }
}

/// The page parsed from decoded JSON, checked; with `text` (what `body` was decoded from),
/// also compared with the page parsed from the text.
template <class T>
std::optional<page<T>> check_page(const nlohmann::json& body,
                                  std::optional<std::string_view> text = std::nullopt) {
  auto parsed = parse_page_json<T>(body);
  if (text) {
    check_same_page<T>(*text, parsed);
  }
  if (auto* e = std::get_if<parse_error>(&parsed)) {
    SI_FUZZ_CHECK(!e->message().empty(), "a parse error says what is wrong");
    return std::nullopt;
  }
  auto& p = std::get<page<T>>(parsed);
  const auto& records = body["_embedded"]["records"];
  SI_FUZZ_CHECK(records.is_array() && records.size() == p.records.size(), "one model a record");
  SI_FUZZ_CHECK(
      p.last_paging_token == (p.records.empty() ? std::string{} : p.records.back().paging_token),
      "the page's cursor is its last record's paging token");
  for (const auto& r : p.records) {
    check_model(r);
  }
  return std::move(p);
}

template <class T>
void check_record(const nlohmann::json& body, parsed<T> (*parse)(const nlohmann::json&)) {
  auto parsed = parse(body);
  if (auto* model = std::get_if<T>(&parsed)) {
    check_model(*model);
  }
}

template <class T>
void check_stream_events(const std::vector<sse_event>& events) {
  for (const auto& event : events) {
    auto item = parse_stream_event<T>(event);
    if (auto* i = std::get_if<stream_item<T>>(&item)) {
      SI_FUZZ_CHECK(i->record.has_value() == (i->kind == stream_event_kind::record),
                    "a stream item has a record exactly when it is one");
      if (i->record) {
        check_model(*i->record);
      }
    }
  }
}

bool same_events(const std::vector<sse_event>& a, const std::vector<sse_event>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
    return x.id == y.id && x.has_own_id == y.has_own_id && x.event == y.event && x.data == y.data
           && x.retry_ms == y.retry_ms;
  });
}

void check_sse(std::string_view text) {
  auto whole = parse_sse(text);
  // The same bytes in two chunks, split where the first byte says: one stream either way.
  auto split = text.empty() ? 0 : static_cast<unsigned char>(text[0]) % (text.size() + 1);
  sse_parser chunked;
  auto events = chunked.feed(text.substr(0, split));
  auto rest = chunked.feed(text.substr(split));
  events.insert(events.end(), rest.begin(), rest.end());
  auto unterminated = chunked.finish();
  SI_FUZZ_CHECK(same_events(whole.events, events), "SSE framing ignores chunk boundaries");
  SI_FUZZ_CHECK(unterminated.has_value() == whole.unterminated.has_value()
                    && (!unterminated || same_events({*unterminated}, {*whole.unterminated})),
                "the same unterminated event");
  SI_FUZZ_CHECK(chunked.last_event_id() == whole.last_event_id, "same last event id");
  SI_FUZZ_CHECK(chunked.retry_ms() == whole.retry_ms, "same retry");
  check_stream_events<ledger>(whole.events);
  check_stream_events<operation>(whole.events);
  check_stream_events<transaction>(whole.events);
}

void check_scalars(std::string_view text) {
  auto amount = parse_stroops(text);
  if (auto* v = std::get_if<int64_t>(&amount)) {
    check_stroops(*v);
  }
  auto ts = parse_timestamp_ms(text);
  if (auto* v = std::get_if<int64_t>(&ts)) {
    check_timestamp(*v);
  }
  auto n = parse_decimal_int(text);
  if (auto* v = std::get_if<int64_t>(&n)) {
    SI_FUZZ_CHECK(*v >= 0, "decimal ints are not negative");
    SI_FUZZ_CHECK(parse_decimal_int(std::to_string(*v)) == n, "decimal int round-trips");
  }
  (void)cursor_of(text);
  if (auto next = next_ledger_after(std::string(text))) {
    SI_FUZZ_CHECK(*next >= 0, "a cursor leads to a ledger");
  }
}

/// A JSON array [ledgers page, transactions page, operations page] is one batch.
void check_batch_of(const nlohmann::json& body) {
  if (!body.is_array() || body.size() != 3) {
    return;
  }
  auto ledgers = check_page<ledger>(body[0]);
  auto transactions = check_page<transaction>(body[1]);
  auto operations = check_page<operation>(body[2]);
  if (ledgers && transactions && operations) {
    std::optional<int64_t> first;
    if (!ledgers->records.empty()) {
      first = ledgers->records.front().sequence;
    }
    (void)check_batch(ledgers->records, transactions->records, operations->records, first);
  }
}

}  // namespace

SI_FUZZ_TARGET(horizon) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  check_scalars(text);
  check_sse(text);
  auto body = nlohmann::json::parse(text, nullptr, false);
  if (body.is_discarded()) {
    auto as_record = parse_record<ledger>(text);
    SI_FUZZ_CHECK(std::holds_alternative<parse_error>(as_record), "invalid JSON is an error");
    return;
  }
  auto ledgers = check_page<ledger>(body, text);
  auto transactions = check_page<transaction>(body, text);
  auto operations = check_page<operation>(body, text);
  check_page<liquidity_pool>(body, text);
  check_page<trade>(body, text);
  check_page<asset_stats>(body, text);
  // A single page of ledgers, transactions or operations is a (partial) batch too.
  (void)check_batch(ledgers ? ledgers->records : std::vector<ledger>{},
                    transactions ? transactions->records : std::vector<transaction>{},
                    operations ? operations->records : std::vector<operation>{}, std::nullopt);
  check_record<ledger>(body, &parse_ledger);
  check_record<transaction>(body, &parse_transaction);
  check_record<operation>(body, &parse_operation);
  check_record<liquidity_pool>(body, &parse_liquidity_pool);
  check_record<trade>(body, &parse_trade);
  check_record<asset_stats>(body, &parse_asset_stats);
  check_record<problem>(body, &parse_problem);
  check_batch_of(body);
}
