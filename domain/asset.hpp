#pragma once
/// Stellar assets and payment corridors as the API names them: `CODE:ISSUER`, `XLM:native`
/// (also plain `native`), and corridor ids `SOURCE->DESTINATION`.

#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace si::domain {

/// The issuer spelling of the native asset (lumens) in ids: `XLM:native`.
inline constexpr std::string_view native_issuer = "native";
/// The code of the native asset in ids.
inline constexpr std::string_view native_code = "XLM";

/// An asset: lumens (`XLM`, issuer `native`) or a 1-12 character code and a G... issuer.
struct asset {
  std::string code;    ///< "XLM" for lumens; otherwise 1-12 ASCII letters and digits
  std::string issuer;  ///< "native" for lumens; otherwise a valid account id StrKey

  /// True for lumens.
  bool is_native() const {
    return issuer == native_issuer;
  }
  /// `CODE:ISSUER` (`XLM:native` for lumens): the form corridor ids and the database use.
  std::string id() const {
    return code + ":" + issuer;
  }
  /// Horizon's `asset_type`: `native`, `credit_alphanum4` or `credit_alphanum12`.
  std::string_view type() const;

  friend bool operator==(const asset&, const asset&) = default;
};

/// Lumens.
asset native_asset();

/// What is wrong with `code` as an issued asset's code (1-12 ASCII letters or digits), or
/// nullopt.
std::optional<std::string> asset_code_error(std::string_view code);

/// An asset from a separate code and issuer (as in `/trustlines/{code}/{issuer}`):
/// `XLM` + `native`, or a valid code and a valid account id StrKey. Error text otherwise.
std::variant<asset, std::string> make_asset(std::string_view code, std::string_view issuer);

/// Parses `CODE:ISSUER`, `XLM:native` or `native`. Error text otherwise (it says what was
/// wrong: the shape, the code, or the issuer's StrKey).
std::variant<asset, std::string> parse_asset(std::string_view text);

/// A payment corridor: payments sent in one asset and received in another (or the same).
struct corridor_key {
  asset source;
  asset destination;

  /// `SOURCE->DESTINATION`, each side as `asset::id()`: the corridor's primary key.
  std::string id() const {
    return source.id() + "->" + destination.id();
  }

  friend bool operator==(const corridor_key&, const corridor_key&) = default;
};

/// Parses `SOURCE->DESTINATION` where each side is accepted by `parse_asset`. Error text
/// otherwise, naming the side that is wrong.
std::variant<corridor_key, std::string> parse_corridor_id(std::string_view text);

}  // namespace si::domain
