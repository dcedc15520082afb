#include "domain/asset.hpp"

#include "domain/strkey.hpp"

namespace si::domain {

namespace {

constexpr std::string_view asset_forms = "expected CODE:ISSUER, XLM:native or native";

bool is_ascii_alnum(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

}  // namespace

std::string_view asset::type() const {
  if (is_native()) {
    return "native";
  }
  return code.size() <= 4 ? "credit_alphanum4" : "credit_alphanum12";
}

asset native_asset() {
  return asset{std::string(native_code), std::string(native_issuer)};
}

std::optional<std::string> asset_code_error(std::string_view code) {
  if (code.empty()) {
    return std::string("asset code is empty");
  }
  if (code.size() > 12) {
    return "asset code is longer than 12 characters (" + std::to_string(code.size()) + ")";
  }
  for (char c : code) {
    if (!is_ascii_alnum(c)) {
      return std::string("asset code may contain only ASCII letters and digits");
    }
  }
  return std::nullopt;
}

std::variant<asset, std::string> make_asset(std::string_view code, std::string_view issuer) {
  if (issuer == native_issuer) {
    if (code != native_code) {
      return std::string("only XLM can have the issuer 'native'");
    }
    return native_asset();
  }
  if (auto error = asset_code_error(code)) {
    return *error;
  }
  if (auto error = strkey_error(issuer, 'G')) {
    return "asset issuer is not a valid account id: " + *error;
  }
  return asset{std::string(code), std::string(issuer)};
}

std::variant<asset, std::string> parse_asset(std::string_view text) {
  if (text == native_issuer) {
    return native_asset();
  }
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) {
    return "asset has no ':'; " + std::string(asset_forms);
  }
  if (text.find(':', colon + 1) != std::string_view::npos) {
    return "asset has more than one ':'; " + std::string(asset_forms);
  }
  return make_asset(text.substr(0, colon), text.substr(colon + 1));
}

std::variant<corridor_key, std::string> parse_corridor_id(std::string_view text) {
  constexpr std::string_view arrow = "->";
  const auto pos = text.find(arrow);
  if (pos == std::string_view::npos) {
    return std::string(
        "corridor id must be SOURCE->DESTINATION, each CODE:ISSUER or "
        "XLM:native");
  }
  if (text.find(arrow, pos + arrow.size()) != std::string_view::npos) {
    return std::string("corridor id has more than one '->'");
  }
  auto source = parse_asset(text.substr(0, pos));
  if (auto* error = std::get_if<std::string>(&source)) {
    return "source asset: " + *error;
  }
  auto destination = parse_asset(text.substr(pos + arrow.size()));
  if (auto* error = std::get_if<std::string>(&destination)) {
    return "destination asset: " + *error;
  }
  return corridor_key{std::get<asset>(std::move(source)), std::get<asset>(std::move(destination))};
}

}  // namespace si::domain
