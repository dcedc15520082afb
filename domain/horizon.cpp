#include "domain/horizon.hpp"

#include <algorithm>
#include <array>
#include <initializer_list>
#include <limits>
#include <utility>

#include <simdjson.h>

#include "domain/strkey.hpp"

namespace si::domain {

namespace {

using json = nlohmann::json;

constexpr int64_t int32_max = std::numeric_limits<int32_t>::max();
constexpr int64_t int64_max = std::numeric_limits<int64_t>::max();
constexpr int64_t uint32_max = std::numeric_limits<uint32_t>::max();

/// Writes `text` as a JSON string literal.
void append_json_string(std::string& out, std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20) {
      out += "\\u00";
      out.push_back(hex[u >> 4]);
      out.push_back(hex[u & 0xF]);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

/// Read-only views of one JSON value, the two sources the record parsers read: nlohmann
/// values handed over already decoded (parse_ledger(json), parse_page_json, problem bodies),
/// and simdjson's DOM for text (pages, single records, stream events: what the ingestor and
/// the schedulers read, where a DOM of maps and strings cost most of the ingest CPU). Both
/// views give the same answers: a duplicated key reads as its last occurrence (nlohmann's
/// rule), integers beyond int64 report as such, and the fuzz target `horizon` compares the
/// two on every input both decode.
class nl_view {
 public:
  explicit nl_view(const json& value) : value_(&value) {}

  bool is_object() const {
    return value_->is_object();
  }
  bool is_array() const {
    return value_->is_array();
  }
  bool is_string() const {
    return value_->is_string();
  }
  bool is_null() const {
    return value_->is_null();
  }
  bool is_boolean() const {
    return value_->is_boolean();
  }
  bool is_integer() const {
    return value_->is_number_integer();
  }
  bool is_fraction() const {
    return value_->is_number_float();
  }
  std::string_view type_name() const {
    return value_->type_name();
  }

  std::string_view str() const {
    return value_->get_ref<const std::string&>();
  }
  bool boolean() const {
    return value_->get<bool>();
  }
  /// An integer's value; nullopt when it is above int64's range.
  std::optional<int64_t> int64() const {
    if (value_->is_number_unsigned()
        && value_->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return std::nullopt;
    }
    return value_->get<int64_t>();
  }
  std::string dump() const {
    return value_->dump();
  }
  json to_json() const {
    return *value_;
  }

  std::optional<nl_view> find(std::string_view key) const {
    auto it = value_->find(key);
    if (it == value_->end()) {
      return std::nullopt;
    }
    return nl_view(*it);
  }

  /// Calls `f(index, element)` for each element of an array until it returns false.
  template <class F>
  void each_element(F&& f) const {
    std::size_t i = 0;
    for (const auto& element : *value_) {
      if (!f(i++, nl_view(element))) {
        return;
      }
    }
  }

  std::size_t size() const {
    return value_->size();
  }

  /// The object as JSON text without the fields named in `drop`.
  std::string text_without(std::initializer_list<std::string_view> drop) const {
    json copy = *value_;
    for (auto key : drop) {
      copy.erase(std::string(key));
    }
    return copy.dump();
  }

 private:
  const json* value_;
};

class sj_view {
 public:
  explicit sj_view(simdjson::dom::element value) : value_(value) {}

  bool is_object() const {
    return value_.type() == simdjson::dom::element_type::OBJECT;
  }
  bool is_array() const {
    return value_.type() == simdjson::dom::element_type::ARRAY;
  }
  bool is_string() const {
    return value_.type() == simdjson::dom::element_type::STRING;
  }
  bool is_null() const {
    return value_.type() == simdjson::dom::element_type::NULL_VALUE;
  }
  bool is_boolean() const {
    return value_.type() == simdjson::dom::element_type::BOOL;
  }
  bool is_integer() const {
    const auto type = value_.type();
    return type == simdjson::dom::element_type::INT64
           || type == simdjson::dom::element_type::UINT64;
  }
  bool is_fraction() const {
    return value_.type() == simdjson::dom::element_type::DOUBLE;
  }
  /// nlohmann's names, which error messages use.
  std::string_view type_name() const {
    switch (value_.type()) {
      case simdjson::dom::element_type::ARRAY:
        return "array";
      case simdjson::dom::element_type::OBJECT:
        return "object";
      case simdjson::dom::element_type::STRING:
        return "string";
      case simdjson::dom::element_type::BOOL:
        return "boolean";
      case simdjson::dom::element_type::NULL_VALUE:
        return "null";
      default:
        return "number";
    }
  }

  std::string_view str() const {
    return std::string_view(value_);
  }
  bool boolean() const {
    return bool(value_);
  }
  std::optional<int64_t> int64() const {
    if (value_.type() == simdjson::dom::element_type::UINT64) {
      return std::nullopt;  // simdjson types only integers above int64's range so
    }
    return int64_t(value_);
  }
  std::string dump() const {
    return simdjson::to_string(value_);
  }
  json to_json() const {
    return json::parse(dump());
  }

  std::optional<sj_view> find(std::string_view key) const {
    std::optional<sj_view> found;
    for (auto field : simdjson::dom::object(value_)) {
      if (field.key == key) {
        found = sj_view(field.value);  // the last occurrence wins, as in nlohmann
      }
    }
    return found;
  }

  template <class F>
  void each_element(F&& f) const {
    std::size_t i = 0;
    for (auto element : simdjson::dom::array(value_)) {
      if (!f(i++, sj_view(element))) {
        return;
      }
    }
  }

  std::size_t size() const {
    return simdjson::dom::array(value_).size();
  }

  /// The object as JSON text without the fields named in `drop`, in document order (key
  /// order is not significant: nlohmann's text is sorted); a repeated key is written once,
  /// with its last value.
  std::string text_without(std::initializer_list<std::string_view> drop) const {
    const auto object = simdjson::dom::object(value_);
    std::string out = "{";
    for (auto it = object.begin(); it != object.end(); ++it) {
      const std::string_view key = it.key();
      if (std::find(drop.begin(), drop.end(), key) != drop.end()) {
        continue;
      }
      auto later = it;
      bool repeated = false;
      for (++later; later != object.end() && !repeated; ++later) {
        repeated = later.key() == key;
      }
      if (repeated) {
        continue;  // the last occurrence is written
      }
      if (out.size() > 1) {
        out.push_back(',');
      }
      append_json_string(out, key);
      out.push_back(':');
      out += simdjson::to_string(it.value());
    }
    out.push_back('}');
    return out;
  }

 private:
  simdjson::dom::element value_;
};

/// The text of an id-like JSON value for error messages: a string as is, an integer in
/// decimal, anything else "".
template <class V>
std::string id_text(const V& object, std::string_view key) {
  if (!object.is_object()) {
    return {};
  }
  auto value = object.find(key);
  if (!value) {
    return {};
  }
  if (value->is_string()) {
    return std::string(value->str());
  }
  if (value->is_integer()) {
    return value->dump();
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
template <class V>
class reader {
 public:
  reader(V object, error_slot& slot, std::string prefix = {})
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
  std::optional<V> get(std::string_view field, bool required) {
    auto value = object_.find(field);
    if (!value || value->is_null()) {
      if (required) {
        fail(field, !value ? "is missing" : "is null");
      }
      return std::nullopt;
    }
    return value;
  }

  std::optional<std::string> opt_text(std::string_view field, bool required = false) {
    auto value = get(field, required);
    if (!value) {
      return std::nullopt;
    }
    if (!value->is_string()) {
      fail(field, "must be a string, not " + type_of(*value));
      return std::nullopt;
    }
    return std::string(value->str());
  }

  std::string text(std::string_view field) {
    return opt_text(field, true).value_or(std::string{});
  }

  std::optional<bool> opt_boolean(std::string_view field, bool required = false) {
    auto value = get(field, required);
    if (!value) {
      return std::nullopt;
    }
    if (!value->is_boolean()) {
      fail(field, "must be a boolean, not " + type_of(*value));
      return std::nullopt;
    }
    return value->boolean();
  }

  bool boolean(std::string_view field) {
    return opt_boolean(field, true).value_or(false);
  }

  /// A JSON integer in [low, high].
  std::optional<int64_t> opt_integer(std::string_view field, int64_t low, int64_t high,
                                     bool required = false) {
    auto value = get(field, required);
    if (!value) {
      return std::nullopt;
    }
    if (!value->is_integer()) {
      fail(field, "must be an integer, not " + type_of(*value));
      return std::nullopt;
    }
    const auto number = value->int64();
    if (!number) {  // above int64's range
      fail(field, "must be at most " + std::to_string(high));
      return std::nullopt;
    }
    return in_range(field, *number, low, high);
  }

  int64_t integer(std::string_view field, int64_t low, int64_t high) {
    return opt_integer(field, low, high, true).value_or(0);
  }

  /// An integer sent either as a JSON integer or as a decimal string (fees, counts and ids
  /// changed spelling across Horizon versions), in [low, high].
  std::optional<int64_t> opt_flexible_integer(std::string_view field, int64_t low, int64_t high,
                                              bool required = false) {
    auto value = get(field, required);
    if (!value) {
      return std::nullopt;
    }
    if (value->is_string()) {
      auto number = parse_decimal_int(value->str());
      if (auto* error = std::get_if<std::string>(&number)) {
        fail(field, "must be a decimal integer string: " + *error);
        return std::nullopt;
      }
      return in_range(field, std::get<int64_t>(number), low, high);
    }
    if (value->is_integer()) {
      return opt_integer(field, low, high, required);
    }
    fail(field, "must be an integer or a decimal integer string, not " + type_of(*value));
    return std::nullopt;
  }

  /// `text`, the value of `field`, as a decimal integer string (ids and paging tokens); 0
  /// and a failure when it is not one.
  int64_t decimal_value(std::string_view field, const std::string& text) {
    auto number = parse_decimal_int(text);
    if (auto* error = std::get_if<std::string>(&number)) {
      fail(field, "must be a decimal integer string: " + *error);
      return 0;
    }
    return std::get<int64_t>(number);
  }

  int64_t flexible_integer(std::string_view field, int64_t low, int64_t high) {
    return opt_flexible_integer(field, low, high, true).value_or(0);
  }

  /// A decimal amount string, in stroops.
  std::optional<int64_t> opt_stroops(std::string_view field, bool required = false) {
    auto value = get(field, required);
    if (!value) {
      return std::nullopt;
    }
    if (!value->is_string()) {
      fail(field, "must be a decimal string, not " + type_of(*value));
      return std::nullopt;
    }
    auto amount = parse_stroops(value->str());
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
    auto value = get(field, required);
    if (!value) {
      return std::nullopt;
    }
    if (!value->is_string()) {
      fail(field, "must be an ISO-8601 timestamp string, not " + type_of(*value));
      return std::nullopt;
    }
    auto ms = parse_timestamp_ms(value->str());
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
    auto value = get(field, required);
    if (!value) {
      return std::nullopt;
    }
    if (!value->is_object()) {
      fail(field, "must be an object, not " + type_of(*value));
      return std::nullopt;
    }
    return reader(*value, slot_, path(field) + ".");
  }

  /// The array in `field`; nullopt when absent (or, required, an error).
  std::optional<V> opt_array(std::string_view field, bool required = false) {
    auto value = get(field, required);
    if (value && !value->is_array()) {
      fail(field, "must be an array, not " + type_of(*value));
      return std::nullopt;
    }
    return value;
  }

  /// Calls `f(index, reader)` for each element of `array` (the array in `field`), each of
  /// which must be an object, until one fails.
  template <class F>
  void each_object(std::string_view field, const V& array, F&& f) {
    array.each_element([&](std::size_t index, V value) {
      if (failed()) {
        return false;
      }
      if (!value.is_object()) {
        fail(element_name(field, index), "must be an object, not " + type_of(value));
        return false;
      }
      reader item(value, slot_, path(element_name(field, index)) + ".");
      f(index, item);
      return !failed();
    });
  }

  std::string path(std::string_view field) const {
    return prefix_ + std::string(field);
  }

 private:
  static std::string element_name(std::string_view field, std::size_t index) {
    return std::string(field) + "[" + std::to_string(index) + "]";
  }

  static std::string type_of(const V& value) {
    if (value.is_integer()) {
      return "an integer";
    }
    if (value.is_fraction()) {
      return "a fractional number";
    }
    const std::string name(value.type_name());
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

  V object_;
  error_slot& slot_;
  std::string prefix_;
};

/// An error about the document as a whole (not one field).
parse_error whole_error(std::string record, std::string id, std::string problem) {
  return parse_error{{}, std::move(record), std::move(id), {}, std::move(problem)};
}

/// Starts a record parse: the slot, or an error when `record` is not an object.
template <class V>
std::optional<parse_error> check_object(const V& record, const error_slot& slot) {
  if (!record.is_object()) {
    return whole_error(slot.record, slot.id,
                       "must be a JSON object, not " + std::string(record.type_name()));
  }
  return std::nullopt;
}

/// Decodes JSON text with this thread's simdjson parser; the error (its reason) as text.
/// The view is valid until this thread decodes again.
std::variant<sj_view, std::string> decode(std::string_view text) {
  // One parser per thread keeps its buffers for the next page of similar size; one that grew
  // for an unusually large body is dropped before it is reused for a normal one.
  constexpr std::size_t keep_capacity = std::size_t{8} << 20;
  thread_local simdjson::dom::parser parser;
  if (parser.capacity() > keep_capacity && text.size() <= keep_capacity) {
    parser = simdjson::dom::parser();
  }
  auto root = parser.parse(text.data(), text.size(), true);
  if (root.error() != simdjson::SUCCESS) {
    return std::string("is not valid JSON: ") + simdjson::error_message(root.error());
  }
  return sj_view(root.value_unsafe());
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

namespace {

template <class V>
parsed<ledger> ledger_from(const V& record) {
  error_slot slot{"ledger", id_text(record, "sequence"), {}};
  if (slot.id.empty()) {
    slot.id = id_text(record, "hash");
  }
  if (auto error = check_object(record, slot)) {
    return *error;
  }
  reader<V> r(record, slot);
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

template <class V>
parsed<transaction> transaction_from(const V& record) {
  error_slot slot{"transaction", id_text(record, "hash"), {}};
  if (auto error = check_object(record, slot)) {
    return *error;
  }
  reader<V> r(record, slot);
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
  if (!r.failed()) {
    out.toid = r.decimal_value("paging_token", out.paging_token);
  }
  if (r.failed()) {
    return *slot.error;
  }
  return out;
}

template <class V>
parsed<operation> operation_from(const V& record) {
  error_slot slot{"operation", id_text(record, "id"), {}};
  if (auto error = check_object(record, slot)) {
    return *error;
  }
  reader<V> r(record, slot);
  operation out;
  if (auto id = r.opt_text("id", true)) {
    out.id = r.decimal_value("id", *id);
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
  out.details = record.text_without({"_links", "id", "paging_token", "transaction_hash",
                                     "transaction_successful", "type", "type_i", "source_account",
                                     "created_at"});
  return out;
}

template <class V>
parsed<liquidity_pool> liquidity_pool_from(const V& record) {
  error_slot slot{"liquidity pool", id_text(record, "id"), {}};
  if (auto error = check_object(record, slot)) {
    return *error;
  }
  reader<V> r(record, slot);
  liquidity_pool out;
  out.id = r.hex64("id");
  out.paging_token = r.text("paging_token");
  out.fee_bp = to_int32(r.integer("fee_bp", 0, 10000));
  out.type = r.text("type");
  out.total_shares = r.stroops("total_shares");
  out.total_trustlines = r.flexible_integer("total_trustlines", 0, int64_max);
  if (auto reserves = r.opt_array("reserves", true)) {
    r.each_object("reserves", *reserves, [&](std::size_t, reader<V>& item) {
      pool_reserve reserve;
      reserve.reserve_asset = item.asset_text("asset");
      reserve.amount = item.stroops("amount");
      out.reserves.push_back(std::move(reserve));
    });
  }
  out.last_modified_ledger = r.integer("last_modified_ledger", 0, uint32_max);
  out.last_modified_time_ms = r.opt_timestamp("last_modified_time");
  if (r.failed()) {
    return *slot.error;
  }
  return out;
}

template <class V>
parsed<trade> trade_from(const V& record) {
  error_slot slot{"trade", id_text(record, "id"), {}};
  if (auto error = check_object(record, slot)) {
    return *error;
  }
  reader<V> r(record, slot);
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

template <class V>
parsed<asset_stats> asset_stats_from(const V& record) {
  error_slot slot{"asset", {}, {}};
  const std::string code = id_text(record, "asset_code");
  const std::string issuer = id_text(record, "asset_issuer");
  slot.id =
      !code.empty() && !issuer.empty() ? code + ":" + issuer : id_text(record, "paging_token");
  if (auto error = check_object(record, slot)) {
    return *error;
  }
  reader<V> r(record, slot);
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

template <class V>
parsed<problem> problem_from(const V& body) {
  error_slot slot{"problem", {}, {}};
  if (auto error = check_object(body, slot)) {
    return *error;
  }
  reader<V> r(body, slot);
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
    out.extras = body.find("extras")->to_json();
    if (auto codes = extras->opt_object("result_codes")) {
      out.transaction_result_code = codes->opt_text("transaction");
      if (auto ops = codes->opt_array("operations")) {
        ops->each_element([&](std::size_t i, const V& code) {
          if (!code.is_string()) {
            codes->fail("operations[" + std::to_string(i) + "]", "must be a string");
            return false;
          }
          out.operation_result_codes.emplace_back(code.str());
          return true;
        });
      }
    }
  }
  if (r.failed()) {
    return *slot.error;
  }
  return out;
}

}  // namespace

// The record parsers on decoded nlohmann JSON: the same templates over the other view.
parsed<ledger> parse_ledger(const json& record) {
  return ledger_from(nl_view(record));
}

parsed<transaction> parse_transaction(const json& record) {
  return transaction_from(nl_view(record));
}

parsed<operation> parse_operation(const json& record) {
  return operation_from(nl_view(record));
}

parsed<liquidity_pool> parse_liquidity_pool(const json& record) {
  return liquidity_pool_from(nl_view(record));
}

parsed<trade> parse_trade(const json& record) {
  return trade_from(nl_view(record));
}

parsed<asset_stats> parse_asset_stats(const json& record) {
  return asset_stats_from(nl_view(record));
}

parsed<problem> parse_problem(const json& body) {
  return problem_from(nl_view(body));
}

namespace {

template <class T>
struct kind;

/// kind<T>: the names a record kind and its page have in errors, and its parser.
#define SI_HORIZON_KIND(T, NAME, PAGE)             \
  template <>                                      \
  struct kind<T> {                                 \
    static constexpr std::string_view name = NAME; \
    static constexpr std::string_view page = PAGE; \
    template <class V>                             \
    static parsed<T> parse(const V& j) {           \
      return T##_from(j);                          \
    }                                              \
  };

SI_HORIZON_KIND(ledger, "ledger", "ledgers page")
SI_HORIZON_KIND(transaction, "transaction", "transactions page")
SI_HORIZON_KIND(operation, "operation", "operations page")
SI_HORIZON_KIND(liquidity_pool, "liquidity pool", "liquidity pools page")
SI_HORIZON_KIND(trade, "trade", "trades page")
SI_HORIZON_KIND(asset_stats, "asset", "assets page")
#undef SI_HORIZON_KIND

template <>
struct kind<problem> {
  static constexpr std::string_view name = "problem";
  template <class V>
  static parsed<problem> parse(const V& j) {
    return problem_from(j);
  }
};

/// The JSON text of a string value unquoted; other text as is.
std::string unquote(const std::string& data) {
  auto decoded = decode(data);
  if (auto* value = std::get_if<sj_view>(&decoded); value != nullptr && value->is_string()) {
    return std::string(value->str());
  }
  return data;
}

}  // namespace

template <class T>
parsed<T> parse_record(std::string_view text) {
  auto decoded = decode(text);
  if (auto* error = std::get_if<std::string>(&decoded)) {
    return whole_error(std::string(kind<T>::name), {}, *error);
  }
  return kind<T>::parse(std::get<sj_view>(decoded));
}

namespace {

template <class T, class V>
parsed<page<T>> page_from(const V& body) {
  const std::string name(kind<T>::page);
  if (!body.is_object()) {
    return whole_error(name, {}, "must be a JSON object, not " + std::string(body.type_name()));
  }
  error_slot slot{name, {}, {}};
  reader<V> r(body, slot);
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
  std::optional<V> records;
  if (auto embedded = r.opt_object("_embedded", true)) {
    records = embedded->opt_array("records", true);
  }
  if (r.failed()) {
    return *slot.error;
  }
  out.records.reserve(records->size());
  std::optional<parse_error> failure;
  records->each_element([&](std::size_t i, const V& record) {
    auto item = kind<T>::parse(record);
    if (auto* error = std::get_if<parse_error>(&item)) {
      error->context = "record " + std::to_string(i);
      failure = std::move(*error);
      return false;
    }
    out.records.push_back(std::get<T>(std::move(item)));
    return true;
  });
  if (failure) {
    return *failure;
  }
  if (!out.records.empty()) {
    out.last_paging_token = out.records.back().paging_token;
  }
  return out;
}

}  // namespace

template <class T>
parsed<page<T>> parse_page_json(const json& body) {
  return page_from<T>(nl_view(body));
}

template <class T>
parsed<page<T>> parse_page(std::string_view text) {
  auto decoded = decode(text);
  if (auto* error = std::get_if<std::string>(&decoded)) {
    return whole_error(std::string(kind<T>::page), {}, *error);
  }
  return page_from<T>(std::get<sj_view>(decoded));
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
  auto record = kind<T>::parse(std::get<sj_view>(decoded));
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
