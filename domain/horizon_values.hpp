#pragma once
/// Exact parsing of the scalar spellings Horizon uses: decimal amounts (7 fractional digits,
/// held as int64 stroops) and ISO-8601 UTC timestamps (held as unix milliseconds).
///
/// Pure functions; no locale, no strptime, no floating point on the parse path.

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace si::domain {

/// Stroops per unit of any Stellar asset (1 XLM = 10^7 stroops).
inline constexpr int64_t stroops_per_unit = 10'000'000;

/// Parses a Horizon amount ("100.0000000", "0.0000001", "20", "922337203685.4775807") into
/// stroops, exactly. Accepted: one or more ASCII digits, optionally '.' and 1-7 digits. Refused
/// (with the reason as text): empty text, a sign ('-' or '+'), whitespace, exponents, more
/// than 7 fractional digits, a bare '.', and values above INT64_MAX stroops.
std::variant<int64_t, std::string> parse_stroops(std::string_view text);

/// Horizon's spelling of `stroops`: always 7 fractional digits ("39.0000000"); a negative
/// value gets a leading '-'. `parse_stroops(format_stroops(x)) == x` for every x >= 0.
std::string format_stroops(int64_t stroops);

/// `stroops` as units (XLM, USDC, ...) in double precision, for analytics only: exact up to
/// 2^53 stroops (about 900 million units), then rounded to the nearest double.
double stroops_to_units(int64_t stroops);

/// Parses an ISO-8601 / RFC 3339 UTC timestamp as Horizon writes it, "2024-01-01T00:00:00Z",
/// optionally with 1-3 fractional second digits ("…:00.250Z"), into unix milliseconds
/// (negative before 1970). Refused, with the reason: another layout, an offset other than 'Z',
/// month/day/hour/minute/second out of range (second 60 included), a day the month does not
/// have (leap years honoured), more than 3 fractional digits.
std::variant<int64_t, std::string> parse_timestamp_ms(std::string_view text);

/// Unix milliseconds as "YYYY-MM-DDTHH:MM:SSZ" (".mmmZ" when the milliseconds are not zero);
/// years 0-9999 only (outside, the result is unspecified).
std::string format_timestamp_ms(int64_t unix_ms);

/// Parses a non-negative decimal integer written as text ("100", "9223372036854775807"),
/// which Horizon uses for fees, counts and 64-bit ids. No sign, no spaces, no leading '+'.
std::variant<int64_t, std::string> parse_decimal_int(std::string_view text);

}  // namespace si::domain
