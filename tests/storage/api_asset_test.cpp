#include <catch2/catch.hpp>

#include <string>

#include "domain/asset.hpp"

using namespace si::domain;

namespace {

constexpr const char* usdc_issuer = "GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN";
constexpr const char* velo_issuer = "GDM4RQUQQUVSKQA7S6EM7XBZP3FCGH4Q7CL6TABQ7B2BEJ5ERARM2M5M";

asset parsed(std::string_view text) {
  auto result = parse_asset(text);
  if (auto* error = std::get_if<std::string>(&result)) {
    FAIL("parse_asset(" << text << ") failed: " << *error);
  }
  return std::get<asset>(result);
}

std::string error_of(std::string_view text) {
  auto result = parse_asset(text);
  REQUIRE(std::holds_alternative<std::string>(result));
  return std::get<std::string>(result);
}

}  // namespace

TEST_CASE("assets parse from CODE:ISSUER, XLM:native and native", "[asset]") {
  const auto usdc = parsed(std::string("USDC:") + usdc_issuer);
  CHECK(usdc.code == "USDC");
  CHECK(usdc.issuer == usdc_issuer);
  CHECK_FALSE(usdc.is_native());
  CHECK(usdc.id() == std::string("USDC:") + usdc_issuer);
  CHECK(usdc.type() == "credit_alphanum4");

  const auto long_code = parsed(std::string("GOLDBANK001:") + velo_issuer);
  CHECK(long_code.type() == "credit_alphanum12");
  CHECK(parsed(std::string("A:") + velo_issuer).code == "A");
  CHECK(parsed(std::string("abcdefABCDEF:") + velo_issuer).code == "abcdefABCDEF");
  CHECK(parsed(std::string("yXLM:") + velo_issuer).type() == "credit_alphanum4");

  const auto xlm = parsed("XLM:native");
  CHECK(xlm.is_native());
  CHECK(xlm == native_asset());
  CHECK(xlm.id() == "XLM:native");
  CHECK(xlm.type() == "native");
  CHECK(parsed("native") == native_asset());
  // An issued asset may be called XLM; it is not lumens.
  const auto fake = parsed(std::string("XLM:") + usdc_issuer);
  CHECK_FALSE(fake.is_native());
  CHECK(fake.type() == "credit_alphanum4");
}

TEST_CASE("malformed assets are refused with a reason", "[asset]") {
  CHECK_THAT(error_of(""), Catch::Contains("no ':'"));
  CHECK_THAT(error_of("USDC"), Catch::Contains("no ':'"));
  CHECK_THAT(error_of("XLM"), Catch::Contains("XLM:native or native"));
  CHECK_THAT(error_of("Native"), Catch::Contains("no ':'"));
  CHECK_THAT(error_of(std::string(":") + usdc_issuer), Catch::Contains("asset code is empty"));
  CHECK_THAT(error_of(std::string("ABCDEFGHIJKLM:") + usdc_issuer),
             Catch::Contains("longer than 12"));
  CHECK_THAT(error_of(std::string("US-D:") + usdc_issuer), Catch::Contains("letters and digits"));
  CHECK_THAT(error_of(std::string("USD C:") + usdc_issuer), Catch::Contains("letters and digits"));
  CHECK_THAT(error_of(std::string("US\xc3\xa9:") + usdc_issuer),
             Catch::Contains("letters and digits"));
  CHECK_THAT(error_of("USDC:"), Catch::Contains("issuer is not a valid account id"));
  CHECK_THAT(error_of("USDC:native"), Catch::Contains("only XLM"));
  CHECK_THAT(error_of("XLM:Native"), Catch::Contains("must be 56 characters"));
  CHECK_THAT(error_of(std::string("USDC:") + usdc_issuer + ":x"),
             Catch::Contains("more than one ':'"));

  std::string bad_checksum = std::string("USDC:") + usdc_issuer;
  bad_checksum.back() = bad_checksum.back() == 'N' ? 'M' : 'N';
  CHECK_THAT(error_of(bad_checksum), Catch::Contains("checksum mismatch"));

  // A seed in the issuer position is refused (and not echoed).
  const std::string seed = "SBU2RRGLXH3E5CQHTD3ODLDF2BWDCYUSSBLLZ5GNW7JXHDIYKXZWHOKR";
  const auto seed_error = error_of("USDC:" + seed);
  CHECK_THAT(seed_error, Catch::Contains("must start with 'G'"));
  CHECK(seed_error.find(seed) == std::string::npos);
}

TEST_CASE("make_asset checks a separate code and issuer", "[asset]") {
  auto ok = make_asset("USDC", usdc_issuer);
  REQUIRE(std::holds_alternative<asset>(ok));
  CHECK(std::get<asset>(ok).id() == std::string("USDC:") + usdc_issuer);
  auto xlm = make_asset("XLM", "native");
  REQUIRE(std::holds_alternative<asset>(xlm));
  CHECK(std::get<asset>(xlm).is_native());
  CHECK(std::holds_alternative<std::string>(make_asset("USDC", "native")));
  CHECK(std::holds_alternative<std::string>(make_asset("", usdc_issuer)));
  CHECK(std::holds_alternative<std::string>(make_asset("USDC", "GABC")));
  CHECK_FALSE(asset_code_error("AQUA").has_value());
  CHECK(asset_code_error("").has_value());
  CHECK(asset_code_error("TOOLONGCODE13").has_value());
}

TEST_CASE("corridor ids parse into two assets", "[asset]") {
  const std::string usdc = std::string("USDC:") + usdc_issuer;
  auto key = parse_corridor_id(usdc + "->XLM:native");
  REQUIRE(std::holds_alternative<corridor_key>(key));
  const auto& corridor = std::get<corridor_key>(key);
  CHECK(corridor.source.code == "USDC");
  CHECK(corridor.destination.is_native());
  CHECK(corridor.id() == usdc + "->XLM:native");

  // `native` is accepted and canonicalised to XLM:native.
  auto short_form = parse_corridor_id("native->" + usdc);
  REQUIRE(std::holds_alternative<corridor_key>(short_form));
  CHECK(std::get<corridor_key>(short_form).id() == "XLM:native->" + usdc);

  // The same asset on both sides is a corridor too (plain payments).
  CHECK(std::holds_alternative<corridor_key>(parse_corridor_id(usdc + "->" + usdc)));

  const auto error = [](const std::string& text) {
    auto result = parse_corridor_id(text);
    REQUIRE(std::holds_alternative<std::string>(result));
    return std::get<std::string>(result);
  };
  CHECK_THAT(error(usdc), Catch::Contains("SOURCE->DESTINATION"));
  CHECK_THAT(error(usdc + "-XLM:native"), Catch::Contains("SOURCE->DESTINATION"));
  CHECK_THAT(error(usdc + "->XLM:native->" + usdc), Catch::Contains("more than one '->'"));
  CHECK_THAT(error("->XLM:native"), Catch::StartsWith("source asset: "));
  CHECK_THAT(error(usdc + "->"), Catch::StartsWith("destination asset: "));
  CHECK_THAT(error("USDC:GBAD->XLM:native"), Catch::StartsWith("source asset: "));
  CHECK_THAT(error(usdc + "->EURC:native"), Catch::Contains("only XLM"));
}
