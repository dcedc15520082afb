#include "domain/horizon.hpp"

#include <array>
#include <limits>
#include <utility>

#include "domain/strkey.hpp"

namespace si::domain {

namespace {

using json = nlohmann::json;

constexpr int64_t int32_max = std::numeric_limits<int32_t>::max();
constexpr int64_t int64_max = std::numeric_limits<int64_t>::max();
constexpr int64_t uint32_max = std::numeric_limits<uint32_t>::max();

/// The text of an id-like JSON value for error messages: a string as is, an integer in
/// decimal, anything else "".
std::string id_text(const json& object, std::string_view key) {
  if (!object.is_object()) {
    return {};
  }
  auto it = object.find(key);
  if (it == object.end()) {
    return {};
  }
  if (it->is_string()) {
    return it->get<std::string>();
  }
  if (it->is_number_integer()) {
    return it->dump();
  }
  return {};
}

bool is_lower_hex64(std::string_view text) {
  if (text.size() != 64) {
    return false;
  }
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

/// The first error of one record's parse, shared by the readers of its nested objects.
struct error_slot {
  std::string record;
  std::string id;
  std::optional<parse_error> error;
};

/// Typed, non-throwing access to the fields of one JSON object. The first failure is kept in
/// the shared slot; later reads return defaults, and the caller checks `failed()` at the end.
class reader {
 public:
  reader(const json& object, error_slot& slot, std::string prefix = {})
      : object_(object), slot_(slot), prefix_(std::move(prefix)) {}

  bool failed() const {
    return slot_.error.has_value();
  }

  /// Records a problem with `field` (unless an earlier one is already recorded).
  void fail(std::string_view field, std::string problem) {
    if (!slot_.error) {
      slot_.error = parse_error{{}, slot_.record, slot_.id, path(field), std::move(problem)};
    }
  }

  /// The value of `field`, or nullptr when it is absent or null (then, if `required`, a
  /// "is missing" failure is recorded).
  const json* get(std::string_view field, bool required) {
    auto it = object_.find(field);
    if (it == object_.end() || it->is_null()) {
      if (required) {
        fail(field, it == object_.end() ? "is missing" : "is null");
      }
      return nullptr;
    }
    return &*it;
  }

  std::optional<std::string> opt_text(std::string_view field, bool required = false) {
    const json* value = get(field, required);
    if (value == nullptr) {
      return std::nullopt;
    }
    if (!value->is_string()) {
      fail(field, "must be a string, not " + type_of(*value));
      return std::nullopt;
    }
    return value->get<std::string>();
  }

  std::string text(std::string_view field) {
    return opt_text(field, true).value_or(std::string{});
  }

  std::optional<bool> opt_boolean(std::string_view field, bool required = false) {
    const json* value = get(field, required);
    if (value == nullptr) {
      return std::nullopt;
    }
    if (!value->is_boolean()) {
      fail(field, "must be a boolean, not " + type_of(*value));
      return std::nullopt;
    }
    return value->get<bool>();
  }

  bool boolean(std::string_view field) {
    return opt_boolean(field, true).value_or(false);
  }

  /// A JSON integer in [low, high].
  std::optional<int64_t> opt_integer(std::string_view field, int64_t low, int64_t high,
                                     bool required = false) {
    const json* value = get(field, required);
    if (value == nullptr) {
      return std::nullopt;
    }
    if (!value->is_number_integer()) {
      fail(field, "must be an integer, not " + type_of(*value));
      return std::nullopt;
    }
    if (value->is_number_unsigned() && value->get<uint64_t>() > static_cast<uint64_t>(high)) {
      fail(field, "must be at most " + std::to_string(high));
      return std::nullopt;
    }
    const auto number = value->get<int64_t>();
    return in_range(field, number, low, high);
  }

  int64_t integer(std::string_view field, int64_t low, int64_t high) {
    return opt_integer(field, low, high, true).value_or(0);
  }

  /// An integer sent either as a JSON integer or as a decimal string (fees, counts and ids
  /// changed spelling across Horizon versions), in [low, high].
  std::optional<int64_t> opt_flexible_integer(std::string_view field, int64_t low, int64_t high,
                                              bool required = false) {
    const json* value = get(field, required);
    if (value == nullptr) {
      return std::nullopt;
    }
    if (value->is_string()) {
      auto number = parse_decimal_int(value->get_ref<const std::string&>());
      if (auto* error = std::get_if<std::string>(&number)) {
        fail(field, "must be a decimal integer string: " + *error);
        return std::nullopt;
      }
      return in_range(field, std::get<int64_t>(number), low, high);
    }
    if (value->is_number_integer()) {
      return opt_integer(field, low, high, required);
    }
    fail(field, "must be an integer or a decimal integer string, not " + type_of(*value));
    return std::nullopt;
  }

  int64_t flexible_integer(std::string_view field, int64_t low, int64_t high) {
    return opt_flexible_integer(field, low, high, true).value_or(0);
  }

  /// A decimal amount string, in stroops.
  std::optional<int64_t> opt_stroops(std::string_view field, bool required = false) {
    const json* value = get(field, required);
    if (value == nullptr) {
      return std::nullopt;
    }
    if (!value->is_string()) {
      fail(field, "must be a decimal string, not " + type_of(*value));
      return std::nullopt;
    }
    auto amount = parse_stroops(value->get_ref<const std::string&>());
    if (auto* error = std::get_if<std::string>(&amount)) {
      fail(field, "must be a decimal string: " + *error);
      return std::nullopt;
    }
    return std::get<int64_t>(amount);
  }

  int64_t stroops(std::string_view field) {
    return opt_stroops(field, true).value_or(0);
  }

  /// An ISO-8601 UTC timestamp, in unix ms.
  std::optional<int64_t> opt_timestamp(std::string_view field, bool required = false) {
    const json* value = get(field, required);
    if (value == nullptr) {
      return std::nullopt;
    }
    if (!value->is_string()) {
      fail(field, "must be an ISO-8601 timestamp string, not " + type_of(*value));
      return std::nullopt;
    }
    auto ms = parse_timestamp_ms(value->get_ref<const std::string&>());
    if (auto* error = std::get_if<std::string>(&ms)) {
      fail(field, "must be an ISO-8601 timestamp: " + *error);
      return std::nullopt;
    }
    return std::get<int64_t>(ms);
  }

  int64_t timestamp(std::string_view field) {
    return opt_timestamp(field, true).value_or(0);
  }

  /// 64 lower-case hex digits (a hash or a liquidity pool id).
  std::optional<std::string> opt_hex64(std::string_view field, bool required = false) {
    auto value = opt_text(field, required);
    if (value && !is_lower_hex64(*value)) {
      fail(field, "must be 64 lower-case hex digits");
      return std::nullopt;
    }
    return value;
  }

  std::string hex64(std::string_view field) {
    return opt_hex64(field, true).value_or(std::string{});
  }

  /// A `G...` account id.
  std::optional<std::string> opt_account(std::string_view field, bool required = false) {
    auto value = opt_text(field, required);
    if (value) {
      if (auto error = strkey_error(*value, 'G')) {
        fail(field, "must be a G... account id: " + *error);
        return std::nullopt;
      }
    }
    return value;
  }

  std::string account(std::string_view field) {
    return opt_account(field, true).value_or(std::string{});
  }

  /// The `<prefix>asset_type` / `<prefix>asset_code` / `<prefix>asset_issuer` triple.
  asset asset_triple(std::string_view prefix) {
    const std::string type_field = std::string(prefix) + "asset_type";
    const std::string code_field = std::string(prefix) + "asset_code";
    const std::string issuer_field = std::string(prefix) + "asset_issuer";
    const std::string type = text(type_field);
    if (failed()) {
      return {};
    }
    if (type == "native") {
      return native_asset();
    }
    if (type != "credit_alphanum4" && type != "credit_alphanum12") {
      fail(type_field, "must be native, credit_alphanum4 or credit_alphanum12, not '" + type + "'");
      return {};
    }
    const std::string code = text(code_field);
    const std::string issuer = text(issuer_field);
    if (failed()) {
      return {};
    }
    if (auto error = asset_code_error(code)) {
      fail(code_field, "must be an asset code: " + *error);
      return {};
    }
    const bool short_code = code.size() <= 4;
    if (short_code != (type == "credit_alphanum4")) {
      fail(code_field, "has " + std::to_string(code.size()) + " characters, which " + type
                           + " does not allow (alphanum4: 1-4, alphanum12: 5-12)");
      return {};
    }
    if (auto error = strkey_error(issuer, 'G')) {
      fail(issuer_field, "must be a G... account id: " + *error);
      return {};
    }
    return asset{code, issuer};
  }

  /// An asset written as `native` or `CODE:ISSUER` (pool reserves).
  asset asset_text(std::string_view field) {
    const std::string value = text(field);
    if (failed()) {
      return {};
    }
    auto parsed_asset = parse_asset(value);
    if (auto* error = std::get_if<std::string>(&parsed_asset)) {
      fail(field, "must be native or CODE:ISSUER: " + *error);
      return {};
    }
    return std::get<asset>(std::move(parsed_asset));
  }

  /// A reader of the object in `field`; nullopt when it is absent (or, required, an error).
  std::optional<reader> opt_object(std::string_view field, bool required = false) {
    const json* value = get(field, required);
    if (value == nullptr) {
      return std::nullopt;
    }
    if (!value->is_object()) {
      fail(field, "must be an object, not " + type_of(*value));
      return std::nullopt;
    }
    return reader(*value, slot_, path(field) + ".");
  }

  /// The array in `field`; nullptr when absent (or, required, an error).
  const json* opt_array(std::string_view field, bool required = false) {
    const json* value = get(field, required);
    if (value != nullptr && !value->is_array()) {
      fail(field, "must be an array, not " + type_of(*value));
      return nullptr;
    }
    return value;
  }

  /// A reader of element `index` of the array in `field`, which must be an object.
  std::optional<reader> element(std::string_view field, const json& array, std::size_t index) {
    const std::string name = std::string(field) + "[" + std::to_string(index) + "]";
    const json& value = array[index];
    if (!value.is_object()) {
      fail(name, "must be an object, not " + type_of(value));
      return std::nullopt;
    }
    return reader(value, slot_, path(name) + ".");
  }

  std::string path(std::string_view field) const {
    return prefix_ + std::string(field);
  }

 private:
  static std::string type_of(const json& value) {
    if (value.is_number_integer()) {
      return "an integer";
    }
    if (value.is_number_float()) {
      return "a fractional number";
    }
    const std::string name = value.type_name();
    return (name == "object" || name == "array" ? "an " : "a ") + name;
  }

  std::optional<int64_t> in_range(std::string_view field, int64_t number, int64_t low,
                                  int64_t high) {
    if (number < low || number > high) {
      fail(field, "must be between " + std::to_string(low) + " and " + std::to_string(high)
                      + ", not " + std::to_string(number));
      return std::nullopt;
    }
    return number;
  }

  const json& object_;
  error_slot& slot_;
  std::string prefix_;
};

/// An error about the document as a whole (not one field).
parse_error whole_error(std::string record, std::string id, std::string problem) {
  return parse_error{{}, std::move(record), std::move(id), {}, std::move(problem)};
}

/// Starts a record parse: the slot, or an error when `record` is not an object.
std::optional<parse_error> check_object(const json& record, const error_slot& slot) {
  if (!record.is_object()) {
    return whole_error(slot.record, slot.id,
                       std::string("must be a JSON object, not ") + record.type_name());
  }
  return std::nullopt;
}

/// Decodes JSON text; the error (position and reason) as text.
std::variant<json, std::string> decode(std::string_view text) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    std::string what = e.what();
    // Drop nlohmann's "[json.exception.parse_error.101] " tag.
    if (!what.empty() && what.front() == '[') {
      if (auto end = what.find("] "); end != std::string::npos) {
        what.erase(0, end + 2);
      }
    }
    return "is not valid JSON: " + what;
  }
}

int32_t to_int32(int64_t v) {
  return static_cast<int32_t>(v);
}

constexpr std::array payment_like_types = {
    std::string_view("payment"),
    std::string_view("path_payment_strict_send"),
    std::string_view("path_payment_strict_receive"),
    std::string_view("create_account"),
    std::string_view("account_merge"),
};

template <class T>
struct kind;

template <>
struct kind<ledger> {
  static constexpr std::string_view name = "ledger";
  static constexpr std::string_view page = "ledgers page";
  static parsed<ledger> parse(const json& j) {
    return parse_ledger(j);
  }
};
template <>
struct kind<transaction> {
  static constexpr std::string_view name = "transaction";
  static constexpr std::string_view page = "transactions page";
  static parsed<transaction> parse(const json& j) {
    return parse_transaction(j);
  }
};
template <>
struct kind<operation> {
  static constexpr std::string_view name = "operation";
  static constexpr std::string_view page = "operations page";
  static parsed<operation> parse(const json& j) {
    return parse_operation(j);
  }
};
template <>
struct kind<liquidity_pool> {
  static constexpr std::string_view name = "liquidity pool";
  static constexpr std::string_view page = "liquidity pools page";
  static parsed<liquidity_pool> parse(const json& j) {
    return parse_liquidity_pool(j);
  }
};
template <>
struct kind<trade> {
  static constexpr std::string_view name = "trade";
  static constexpr std::string_view page = "trades page";
  static parsed<trade> parse(const json& j) {
    return parse_trade(j);
  }
};
template <>
struct kind<asset_stats> {
  static constexpr std::string_view name = "asset";
  static constexpr std::string_view page = "assets page";
  static parsed<asset_stats> parse(const json& j) {
    return parse_asset_stats(j);
  }
};
template <>
struct kind<problem> {
  static constexpr std::string_view name = "problem";
  static parsed<problem> parse(const json& j) {
    return parse_problem(j);
  }
};

/// The JSON text of a string value unquoted; other text as is.
std::string unquote(const std::string& data) {
  auto decoded = decode(data);
  if (auto* value = std::get_if<json>(&decoded); value != nullptr && value->is_string()) {
    return value->get<std::string>();
  }
  return data;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

std::string percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      const int high = hex_value(text[i + 1]);
      const int low = hex_value(text[i + 2]);
      if (high >= 0 && low >= 0) {
        out.push_back(static_cast<char>(high * 16 + low));
        i += 2;
        continue;
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

}  // namespace

std::string parse_error::message() const {
  std::string out;
  if (!context.empty()) {
    out += context + ": ";
  }
  out += record;
  if (!id.empty()) {
    out += " " + id;
  }
  out += ": ";
  if (!field.empty()) {
    out += "field '" + field + "' ";
  }
  return out + problem;
}

bool is_payment_like(std::string_view operation_type) {
  for (auto type : payment_like_types) {
    if (type == operation_type) {
      return true;
    }
  }
  return false;
}

std::string_view problem::type_name() const {
  std::string_view view = type;
  const auto slash = view.rfind('/');
  return slash == std::string_view::npos ? view : view.substr(slash + 1);
}

std::string cursor_of(std::string_view href) {
  const auto question = href.find('?');
  if (question == std::string_view::npos) {
    return {};
  }
  std::string_view query = href.substr(question + 1);
  if (const auto hash = query.find('#'); hash != std::string_view::npos) {
    query = query.substr(0, hash);
  }
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    if (pair.starts_with("cursor=")) {
      return percent_decode(pair.substr(7));
    }
    if (amp == std::string_view::npos) {
      break;
    }
    query.remove_prefix(amp + 1);
  }
  return {};
}

parsed<ledger> parse_ledger(const json& record) {
  error_slot slot{"ledger", id_text(record, "sequence"), {}};
  if (slot.id.empty()) {
    slot.id = id_text(record, "hash");
  }
  if (auto error = check_object(record, slot)) {
    return *error;
  }
  reader r(record, slot);
  ledger out;
  out.sequence = r.integer("sequence", 1, uint32_max);
  out.hash = r.hex64("hash");
  out.prev_hash = r.hex64("prev_hash");
  out.closed_at_ms = r.timestamp("closed_at");
  out.successful_transaction_count =
      to_int32(r.integer("successful_transaction_count", 0, int32_max));
  if (auto v = r.opt_integer("failed_transaction_count", 0, int32_max)) {
    out.failed_transaction_count = to_int32(*v);
  }
  out.operation_count = to_int32(r.integer("operation_count", 0, int32_max));
  if (auto v = r.opt_integer("tx_set_operation_count", 0, int32_max)) {
    out.tx_set_operation_count = to_int32(*v);
  }
  out.base_fee = r.integer("base_fee_in_stroops", 0, int64_max);
  out.protocol_version = to_int32(r.integer("protocol_version", 0, int32_max));
  out.paging_token = r.text("paging_token");
  if (r.failed()) {
    return *slot.error;
  }
  return out;
}

parsed<transaction> parse_transaction(const json& record) {
  error_slot slot{"transaction", id_text(record, "hash"), {}};
  if (auto error = check_object(record, slot)) {
    return *error;
  }
  reader r(record, slot);
  transaction out;
  out.hash = r.hex64("hash");
  out.ledger = r.integer("ledger", 1, uint32_max);
  out.created_at_ms = r.timestamp("created_at");
  out.source_account = r.account("source_account");
  out.fee_account = r.account("fee_account");
  out.fee_charged = r.flexible_integer("fee_charged", 0, int64_max);
  out.max_fee = r.flexible_integer("max_fee", 0, int64_max);
  out.operation_count = to_int32(r.integer("operation_count", 0, int32_max));
  out.successful = r.boolean("successful");
  if (auto inner = r.opt_object("inner_transaction")) {
    out.inner_transaction_hash = inner->hex64("hash");
    out.inner_max_fee = inner->opt_flexible_integer("max_fee", 0, int64_max);
  }
  out.memo_type = r.text("memo_type");
  out.memo = r.opt_text("memo");
  out.paging_token = r.text("paging_token");
  if (r.failed()) {
    return *slot.error;
  }
  return out;
}

parsed<operation> parse_operation(const json& record) {
  error_slot slot{"operation", id_text(record, "id"), {}};
  if (auto error = check_object(record, slot)) {
    return *error;
  }
  reader r(record, slot);
  operation out;
  if (auto id = r.opt_text("id", true)) {
    auto number = parse_decimal_int(*id);
    if (auto* error = std::get_if<std::string>(&number)) {
      r.fail("id", "must be a decimal integer string: " + *error);
    } else {
      out.id = std::get<int64_t>(number);
    }
  }
  out.paging_token = r.text("paging_token");
  out.transaction_hash = r.hex64("transaction_hash");
  out.transaction_successful = r.boolean("transaction_successful");
  out.type = r.text("type");
  out.type_i = to_int32(r.integer("type_i", 0, int32_max));
  out.source_account = r.account("source_account");
  out.created_at_ms = r.timestamp("created_at");
  if (r.failed()) {
    return *slot.error;
  }

  payment_effect effect;
  if (out.type == "payment") {
    effect.from = r.account("from");
    effect.to = r.account("to");
    effect.destination_asset = r.asset_triple("");
    effect.source_asset = effect.destination_asset;
    effect.amount = r.stroops("amount");
    effect.source_amount = effect.amount;
  } else if (out.type == "path_payment_strict_send" || out.type == "path_payment_strict_receive") {
    effect.from = r.account("from");
    effect.to = r.account("to");
    effect.source_asset = r.asset_triple("source_");
    effect.destination_asset = r.asset_triple("");
    effect.source_amount = r.stroops("source_amount");
    effect.amount = r.stroops("amount");
  } else if (out.type == "create_account") {
    effect.from = r.account("funder");
    effect.to = r.account("account");
    effect.source_asset = native_asset();
    effect.destination_asset = native_asset();
    effect.amount = r.stroops("starting_balance");
    effect.source_amount = effect.amount;
  } else if (out.type == "account_merge") {
    effect.from = r.account("account");
    effect.to = r.account("into");
    effect.source_asset = native_asset();
    effect.destination_asset = native_asset();
  }
  if (r.failed()) {
    return *slot.error;
  }
  if (is_payment_like(out.type)) {
    out.payment = std::move(effect);
  }
  out.details = record;
  for (const char* key :
       {"_links", "id", "paging_token", "transaction_hash", "transaction_successful", "type",
        "type_i", "source_account", "created_at"}) {
    out.details.erase(key);
  }
  return out;
}

parsed<liquidity_pool> parse_liquidity_pool(const json& record) {
  error_slot slot{"liquidity pool", id_text(record, "id"), {}};
  if (auto error = check_object(record, slot)) {
    return *error;
  }
  reader r(record, slot);
  liquidity_pool out;
  out.id = r.hex64("id");
  out.paging_token = r.text("paging_token");
  out.fee_bp = to_int32(r.integer("fee_bp", 0, 10000));
  out.type = r.text("type");
  out.total_shares = r.stroops("total_shares");
  out.total_trustlines = r.flexible_integer("total_trustlines", 0, int64_max);
  if (const json* reserves = r.opt_array("reserves", true)) {
    for (std::size_t i = 0; i < reserves->size() && !r.failed(); ++i) {
      if (auto item = r.element("reserves", *reserves, i)) {
        pool_reserve reserve;
        reserve.reserve_asset = item->asset_text("asset");
        reserve.amount = item->stroops("amount");
        out.reserves.push_back(std::move(reserve));
      }
    }
  }
  out.last_modified_ledger = r.integer("last_modified_ledger", 0, uint32_max);
  out.last_modified_time_ms = r.opt_timestamp("last_modified_time");
  if (r.failed()) {
    return *slot.error;
  }
  return out;
}

parsed<trade> parse_trade(const json& record) {
  error_slot slot{"trade", id_text(record, "id"), {}};
  if (auto error = check_object(record, slot)) {
    return *error;
  }
  reader r(record, slot);
  trade out;
  out.id = r.text("id");
  out.paging_token = r.text("paging_token");
  out.ledger_close_time_ms = r.timestamp("ledger_close_time");
  out.trade_type = r.text("trade_type");
  out.base_asset = r.asset_triple("base_");
  out.base_amount = r.stroops("base_amount");
  out.counter_asset = r.asset_triple("counter_");
  out.counter_amount = r.stroops("counter_amount");
  out.base_is_seller = r.boolean("base_is_seller");
  out.base_account = r.opt_account("base_account");
  out.counter_account = r.opt_account("counter_account");
  out.base_liquidity_pool_id = r.opt_hex64("base_liquidity_pool_id");
  out.counter_liquidity_pool_id = r.opt_hex64("counter_liquidity_pool_id");
  if (auto fee = r.opt_integer("liquidity_pool_fee_bp", 0, 10000)) {
    out.liquidity_pool_fee_bp = to_int32(*fee);
  }
  if (auto price = r.opt_object("price", true)) {
    out.price_n = price->flexible_integer("n", 0, int64_max);
    out.price_d = price->flexible_integer("d", 1, int64_max);
  }
  if (r.failed()) {
    return *slot.error;
  }
  if (!out.base_account && !out.base_liquidity_pool_id) {
    r.fail("base_account", "is missing (nor is there a 'base_liquidity_pool_id')");
  } else if (!out.counter_account && !out.counter_liquidity_pool_id) {
    r.fail("counter_account", "is missing (nor is there a 'counter_liquidity_pool_id')");
  } else if (out.trade_type == "liquidity_pool" && !out.liquidity_pool_id()) {
    r.fail("base_liquidity_pool_id",
           "or 'counter_liquidity_pool_id' is required in a liquidity_pool trade");
  }
  if (r.failed()) {
    return *slot.error;
  }
  return out;
}

parsed<asset_stats> parse_asset_stats(const json& record) {
  error_slot slot{"asset", {}, {}};
  const std::string code = id_text(record, "asset_code");
  const std::string issuer = id_text(record, "asset_issuer");
  slot.id =
      !code.empty() && !issuer.empty() ? code + ":" + issuer : id_text(record, "paging_token");
  if (auto error = check_object(record, slot)) {
    return *error;
  }
  reader r(record, slot);
  asset_stats out;
  out.stats_asset = r.asset_triple("");
  if (!r.failed() && out.stats_asset.is_native()) {
    r.fail("asset_type", "must be credit_alphanum4 or credit_alphanum12 in an asset record");
  }
  out.paging_token = r.text("paging_token");
  if (auto accounts = r.opt_object("accounts")) {
    asset_accounts a;
    a.authorized = accounts->integer("authorized", 0, int64_max);
    a.authorized_to_maintain_liabilities =
        accounts->integer("authorized_to_maintain_liabilities", 0, int64_max);
    a.unauthorized = accounts->integer("unauthorized", 0, int64_max);
    out.accounts = a;
  }
  if (auto balances = r.opt_object("balances")) {
    asset_balances b;
    b.authorized = balances->stroops("authorized");
    b.authorized_to_maintain_liabilities = balances->stroops("authorized_to_maintain_liabilities");
    b.unauthorized = balances->stroops("unauthorized");
    out.balances = b;
  }
  out.legacy_num_accounts = r.opt_integer("num_accounts", 0, int64_max);
  out.legacy_amount = r.opt_stroops("amount");
  if (!r.failed()) {
    if (out.accounts) {
      out.num_accounts = out.accounts->authorized;
    } else if (out.legacy_num_accounts) {
      out.num_accounts = *out.legacy_num_accounts;
    } else {
      r.fail("accounts", "is missing (nor is the legacy 'num_accounts' there)");
    }
    if (out.balances) {
      out.amount = out.balances->authorized;
    } else if (out.legacy_amount) {
      out.amount = *out.legacy_amount;
    } else {
      r.fail("balances", "is missing (nor is the legacy 'amount' there)");
    }
  }
  out.num_claimable_balances = r.integer("num_claimable_balances", 0, int64_max);
  out.num_liquidity_pools = r.integer("num_liquidity_pools", 0, int64_max);
  out.num_contracts = r.opt_integer("num_contracts", 0, int64_max);
  out.claimable_balances_amount = r.opt_stroops("claimable_balances_amount");
  out.liquidity_pools_amount = r.opt_stroops("liquidity_pools_amount");
  out.contracts_amount = r.opt_stroops("contracts_amount");
  if (auto flags = r.opt_object("flags", true)) {
    out.flags.auth_required = flags->boolean("auth_required");
    out.flags.auth_revocable = flags->boolean("auth_revocable");
    out.flags.auth_immutable = flags->boolean("auth_immutable");
    out.flags.auth_clawback_enabled = flags->boolean("auth_clawback_enabled");
  }
  if (r.failed()) {
    return *slot.error;
  }
  return out;
}

parsed<problem> parse_problem(const json& body) {
  error_slot slot{"problem", {}, {}};
  if (auto error = check_object(body, slot)) {
    return *error;
  }
  reader r(body, slot);
  problem out;
  out.type = r.text("type");
  out.title = r.text("title");
  out.status = to_int32(r.integer("status", 100, 599));
  // The old docs' 429 example spells it "details"; Horizon itself sends "detail".
  if (auto detail = r.opt_text("detail")) {
    out.detail = *detail;
  } else if (auto details = r.opt_text("details")) {
    out.detail = *details;
  }
  out.instance = r.opt_text("instance");
  if (auto extras = r.opt_object("extras")) {
    out.extras = body.at("extras");
    if (auto codes = extras->opt_object("result_codes")) {
      out.transaction_result_code = codes->opt_text("transaction");
      if (const json* ops = codes->opt_array("operations")) {
        for (std::size_t i = 0; i < ops->size(); ++i) {
          const json& code = (*ops)[i];
          if (!code.is_string()) {
            codes->fail("operations[" + std::to_string(i) + "]", "must be a string");
            break;
          }
          out.operation_result_codes.push_back(code.get<std::string>());
        }
      }
    }
  }
  if (r.failed()) {
    return *slot.error;
  }
  return out;
}

template <class T>
parsed<T> parse_record(std::string_view text) {
  auto decoded = decode(text);
  if (auto* error = std::get_if<std::string>(&decoded)) {
    return whole_error(std::string(kind<T>::name), {}, *error);
  }
  return kind<T>::parse(std::get<json>(decoded));
}

template <class T>
parsed<page<T>> parse_page_json(const json& body) {
  const std::string name(kind<T>::page);
  if (!body.is_object()) {
    return whole_error(name, {}, std::string("must be a JSON object, not ") + body.type_name());
  }
  error_slot slot{name, {}, {}};
  reader r(body, slot);
  page<T> out;
  if (auto links = r.opt_object("_links")) {
    if (auto self = links->opt_object("self")) {
      out.self_href = self->opt_text("href").value_or(std::string{});
    }
    if (auto next = links->opt_object("next")) {
      out.next_href = next->opt_text("href").value_or(std::string{});
      out.next_cursor = cursor_of(out.next_href);
    }
  }
  const json* records = nullptr;
  if (auto embedded = r.opt_object("_embedded", true)) {
    records = embedded->opt_array("records", true);
  }
  if (r.failed()) {
    return *slot.error;
  }
  out.records.reserve(records->size());
  for (std::size_t i = 0; i < records->size(); ++i) {
    auto item = kind<T>::parse((*records)[i]);
    if (auto* error = std::get_if<parse_error>(&item)) {
      error->context = "record " + std::to_string(i);
      return *error;
    }
    out.records.push_back(std::get<T>(std::move(item)));
  }
  if (!out.records.empty()) {
    out.last_paging_token = out.records.back().paging_token;
  }
  return out;
}

template <class T>
parsed<page<T>> parse_page(std::string_view text) {
  auto decoded = decode(text);
  if (auto* error = std::get_if<std::string>(&decoded)) {
    return whole_error(std::string(kind<T>::page), {}, *error);
  }
  return parse_page_json<T>(std::get<json>(decoded));
}

template <class T>
parsed<stream_item<T>> parse_stream_event(const sse_event& event) {
  stream_item<T> out;
  out.id = event.id;
  const std::string context = "stream event" + (event.id.empty() ? "" : " " + event.id);
  if (event.event == "open" || (event.event == "message" && event.data == "\"hello\"")) {
    out.kind = stream_event_kind::open;
    out.text = unquote(event.data);
    return out;
  }
  if (event.event == "close" || (event.event == "message" && event.data == "\"byebye\"")) {
    out.kind = stream_event_kind::close;
    out.text = unquote(event.data);
    return out;
  }
  if (event.event == "error") {
    out.kind = stream_event_kind::error;
    out.text = unquote(event.data);
    return out;
  }
  if (event.event != "message") {
    return parse_error{context,
                       std::string(kind<T>::name),
                       {},
                       {},
                       "has the unknown event type '" + event.event + "'"};
  }
  auto decoded = decode(event.data);
  if (auto* error = std::get_if<std::string>(&decoded)) {
    return parse_error{context, std::string(kind<T>::name), {}, {}, "data " + *error};
  }
  auto record = kind<T>::parse(std::get<json>(decoded));
  if (auto* error = std::get_if<parse_error>(&record)) {
    error->context = context;
    return *error;
  }
  out.kind = stream_event_kind::record;
  out.record = std::get<T>(std::move(record));
  return out;
}

#define SI_HORIZON_INSTANTIATE(T)                           \
  template parsed<T> parse_record<T>(std::string_view);     \
  template parsed<page<T>> parse_page<T>(std::string_view); \
  template parsed<page<T>> parse_page_json<T>(const json&); \
  template parsed<stream_item<T>> parse_stream_event<T>(const sse_event&);

SI_HORIZON_INSTANTIATE(ledger)
SI_HORIZON_INSTANTIATE(transaction)
SI_HORIZON_INSTANTIATE(operation)
SI_HORIZON_INSTANTIATE(liquidity_pool)
SI_HORIZON_INSTANTIATE(trade)
SI_HORIZON_INSTANTIATE(asset_stats)
template parsed<problem> parse_record<problem>(std::string_view);

#undef SI_HORIZON_INSTANTIATE

}  // namespace si::domain
