#pragma once
/// Horizon JSON records parsed into plain models: ledgers, transactions, operations,
/// liquidity pools, trades, asset stats, problem+json errors, `_embedded.records` pages and
/// event-stream events. Pure code (no I/O, no actors).
///
/// Nothing here throws on bad input: every parse returns `parsed<T>`, either the model or a
/// `parse_error` naming the record kind, its id when known, the field and the problem, e.g.
/// `operation 12345: field 'amount' must be a decimal string: has 8 fractional digits`.
/// A value is never guessed: a required field that is missing, null or of another type is an
/// error, and so is an amount, timestamp, hash, account id or asset that does not validate.
/// Unknown fields are ignored (Horizon adds fields over time). See docs/domain.md.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "domain/asset.hpp"
#include "domain/horizon_sse.hpp"
#include "domain/horizon_values.hpp"

namespace si::domain {

/// Why a Horizon document could not be turned into a model.
struct parse_error {
  std::string context;  ///< where in a larger document ("record 2", "stream event 123"), or ""
  std::string record;   ///< the record kind: "ledger", "operation", "ledgers page", ...
  std::string id;       ///< the record's id when it could be read, else ""
  std::string field;    ///< the field path ("amount", "reserves[1].asset"), "" for the whole
  std::string problem;  ///< what is wrong ("must be a decimal string: is negative")

  /// `[context: ]record[ id]: [field 'f' ]problem`, e.g.
  /// `record 2: operation 12345: field 'amount' must be a decimal string: is negative`.
  std::string message() const;
};

/// Either the model or the reason it could not be built.
template <class T>
using parsed = std::variant<T, parse_error>;

/// A ledger (`/ledgers`).
struct ledger {
  int64_t sequence = 0;      ///< 1 .. 2^32-1
  std::string hash;          ///< 64 lower-case hex digits
  std::string prev_hash;     ///< 64 lower-case hex digits
  int64_t closed_at_ms = 0;  ///< unix ms
  int32_t successful_transaction_count = 0;
  std::optional<int32_t> failed_transaction_count;  ///< null for ledgers Horizon never counted
  int32_t operation_count = 0;                      ///< operations of successful transactions
  std::optional<int32_t> tx_set_operation_count;    ///< all operations; absent before protocol 11
  int64_t base_fee = 0;                             ///< `base_fee_in_stroops`
  int32_t protocol_version = 0;
  std::string paging_token;
};

/// A transaction (`/transactions`), fee-bump aware.
struct transaction {
  std::string hash;  ///< for a fee bump: the outer (fee-bump) hash, which operations reference
  int64_t ledger = 0;
  int64_t created_at_ms = 0;
  std::string source_account;  ///< G... (the inner transaction's source for a fee bump)
  std::string fee_account;     ///< G... who paid the fee (the fee source for a fee bump)
  int64_t fee_charged = 0;     ///< stroops
  int64_t max_fee = 0;         ///< stroops (the outer bid for a fee bump)
  int32_t operation_count = 0;
  bool successful = false;
  std::optional<std::string> inner_transaction_hash;  ///< set exactly when it is a fee bump
  std::optional<int64_t> inner_max_fee;               ///< the inner transaction's max_fee
  std::string memo_type;                              ///< none, text, id, hash, return
  std::optional<std::string> memo;  ///< as Horizon gives it (text; id in decimal; base64)
  std::string paging_token;
  int64_t toid = 0;  ///< the paging token's value: ordered like ledgers, the storage key

  /// True for a fee-bump transaction.
  bool is_fee_bump() const {
    return inner_transaction_hash.has_value();
  }
};

/// What a payment-like operation moved: payment, path_payment_strict_send,
/// path_payment_strict_receive, create_account and account_merge.
struct payment_effect {
  std::string from;         ///< G... (create_account: funder; account_merge: the merged account)
  std::string to;           ///< G... (create_account: the new account; account_merge: `into`)
  asset source_asset;       ///< what left `from` (native for create_account/account_merge)
  asset destination_asset;  ///< what reached `to` (same as source_asset unless a path payment)
  /// Stroops of source_asset sent; nullopt for account_merge (only its effects tell). For a
  /// failed path payment Horizon reports 0.
  std::optional<int64_t> source_amount;
  /// Stroops of destination_asset received; nullopt for account_merge.
  std::optional<int64_t> amount;
};

/// An operation (`/operations`, `/payments`).
struct operation {
  int64_t id = 0;  ///< the TOID, sent by Horizon as a decimal string
  std::string paging_token;
  std::string transaction_hash;
  bool transaction_successful = false;
  std::string type;  ///< Horizon's name ("payment", "manage_sell_offer", ...)
  int32_t type_i = 0;
  std::string source_account;  ///< G... (the muxed M... form is left in `details`)
  int64_t created_at_ms = 0;
  std::optional<payment_effect> payment;  ///< set for the payment-like types only
  /// Every other field of the record (all but `_links` and the ones above) as a JSON
  /// object's text, stored as is (key order is not significant).
  std::string details = "{}";
};

/// True for the types whose `operation::payment` is filled in.
bool is_payment_like(std::string_view operation_type);

/// One asset amount held by a pool.
struct pool_reserve {
  asset reserve_asset;
  int64_t amount = 0;  ///< stroops
};

/// A liquidity pool (`/liquidity_pools`).
struct liquidity_pool {
  std::string id;  ///< 64 lower-case hex digits
  std::string paging_token;
  int32_t fee_bp = 0;
  std::string type;  ///< "constant_product"
  int64_t total_shares = 0;
  int64_t total_trustlines = 0;
  std::vector<pool_reserve> reserves;
  int64_t last_modified_ledger = 0;
  std::optional<int64_t> last_modified_time_ms;  ///< unix ms; Horizon may send null
};

/// A trade (`/trades`, `/liquidity_pools/{id}/trades`).
struct trade {
  std::string id;  ///< "<toid>-<n>"
  std::string paging_token;
  int64_t ledger_close_time_ms = 0;
  std::string trade_type;  ///< "orderbook" or "liquidity_pool"
  asset base_asset;
  int64_t base_amount = 0;  ///< stroops
  asset counter_asset;
  int64_t counter_amount = 0;  ///< stroops
  bool base_is_seller = false;
  std::optional<std::string> base_account;     ///< absent when the base side is a pool
  std::optional<std::string> counter_account;  ///< absent when the counter side is a pool
  std::optional<std::string> base_liquidity_pool_id;
  std::optional<std::string> counter_liquidity_pool_id;
  std::optional<int32_t> liquidity_pool_fee_bp;
  int64_t price_n = 0;  ///< price of the base asset in counter units: price_n / price_d
  int64_t price_d = 1;

  /// The pool on either side, if the trade involved one.
  std::optional<std::string> liquidity_pool_id() const {
    return base_liquidity_pool_id ? base_liquidity_pool_id : counter_liquidity_pool_id;
  }
};

/// Trustline counts by authorization state (`accounts` of an asset record).
struct asset_accounts {
  int64_t authorized = 0;
  int64_t authorized_to_maintain_liabilities = 0;
  int64_t unauthorized = 0;
};

/// Balances by authorization state (`balances` of an asset record), in stroops.
struct asset_balances {
  int64_t authorized = 0;
  int64_t authorized_to_maintain_liabilities = 0;
  int64_t unauthorized = 0;
};

/// The issuer's flags on an asset.
struct asset_flags {
  bool auth_required = false;
  bool auth_revocable = false;
  bool auth_immutable = false;
  bool auth_clawback_enabled = false;
};

/// Statistics of one issued asset (`/assets`).
struct asset_stats {
  asset stats_asset;  ///< never native
  std::string paging_token;
  /// Authorized trustlines: `accounts.authorized`, else the legacy `num_accounts`.
  int64_t num_accounts = 0;
  /// Stroops held on authorized trustlines: `balances.authorized`, else the legacy `amount`.
  int64_t amount = 0;
  std::optional<asset_accounts> accounts;      ///< when the record has `accounts`
  std::optional<asset_balances> balances;      ///< when the record has `balances`
  std::optional<int64_t> legacy_num_accounts;  ///< the deprecated `num_accounts`, if sent
  std::optional<int64_t> legacy_amount;        ///< the deprecated `amount` (stroops), if sent
  int64_t num_claimable_balances = 0;
  int64_t num_liquidity_pools = 0;
  std::optional<int64_t> num_contracts;
  std::optional<int64_t> claimable_balances_amount;  ///< stroops
  std::optional<int64_t> liquidity_pools_amount;     ///< stroops
  std::optional<int64_t> contracts_amount;           ///< stroops
  asset_flags flags;
};

/// An application/problem+json error body.
struct problem {
  std::string type;  ///< "https://stellar.org/horizon-errors/not_found"
  std::string title;
  int32_t status = 0;
  std::string detail;  ///< `detail`, or `details` (old docs spelling), or ""
  std::optional<std::string> instance;
  std::optional<std::string> transaction_result_code;  ///< extras.result_codes.transaction
  std::vector<std::string> operation_result_codes;     ///< extras.result_codes.operations
  nlohmann::json extras;                               ///< as sent; null when absent

  /// The last path segment of `type` ("not_found", "rate_limit_exceeded").
  std::string_view type_name() const;
};

/// A parsed `_embedded.records` page.
template <class T>
struct page {
  std::vector<T> records;
  std::string self_href;  ///< `_links.self.href`, or "" when absent
  std::string next_href;  ///< `_links.next.href`, or "" when absent
  /// The `cursor` query parameter of next_href (%-decoded), or "" when there is none.
  std::string next_cursor;
  /// The paging_token of the last record, or "" for an empty page. The cursor an ingestor
  /// stores after committing the page.
  std::string last_paging_token;
};

/// The `cursor` query parameter of a Horizon link, %-decoded; "" when it has none.
std::string cursor_of(std::string_view href);

// --- single records, from decoded JSON or from text ---

parsed<ledger> parse_ledger(const nlohmann::json& record);
parsed<transaction> parse_transaction(const nlohmann::json& record);
parsed<operation> parse_operation(const nlohmann::json& record);
parsed<liquidity_pool> parse_liquidity_pool(const nlohmann::json& record);
parsed<trade> parse_trade(const nlohmann::json& record);
parsed<asset_stats> parse_asset_stats(const nlohmann::json& record);
parsed<problem> parse_problem(const nlohmann::json& body);

/// Parses `text` as JSON, then as one record of kind T (one of the models above, or
/// `problem`). Invalid or truncated JSON is a `parse_error` whose problem starts with
/// "is not valid JSON".
template <class T>
parsed<T> parse_record(std::string_view text);

/// Parses a `_embedded.records` page of T. Any record that fails fails the whole page, with
/// the record's error and `context` "record N" (0-based), so a cursor never moves past it.
template <class T>
parsed<page<T>> parse_page(std::string_view text);

/// Same, from decoded JSON (a distinct name: a std::string would silently convert to a JSON
/// string value).
template <class T>
parsed<page<T>> parse_page_json(const nlohmann::json& body);

/// What a Horizon stream event carries.
enum class stream_event_kind {
  open,    ///< the `event: open` / `data: "hello"` prelude
  close,   ///< the `event: close` / `data: "byebye"` goodbye
  error,   ///< `event: error`; the message is in `text`
  record,  ///< a JSON record, in `record`
};

/// One stream event made sense of.
template <class T>
struct stream_item {
  stream_event_kind kind = stream_event_kind::record;
  std::string id;           ///< the event id (Horizon: the record's paging_token)
  std::string text;         ///< open/close/error: the data, unquoted if a JSON string
  std::optional<T> record;  ///< set exactly when kind == record
};

/// Interprets an SSE event from a Horizon stream of T records: the hello/byebye prelude and
/// goodbye and `event: error` are recognised by name or by their data; anything else must
/// be a JSON object that parses as T. Errors have context "stream event <id>".
template <class T>
parsed<stream_item<T>> parse_stream_event(const sse_event& event);

}  // namespace si::domain
