#include "domain/horizon_values.hpp"

#include <limits>

namespace si::domain {

namespace {

constexpr int64_t int64_max = std::numeric_limits<int64_t>::max();

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

/// The civil date of a day count since 1970-01-01 (inverse of days_from_civil).
void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = static_cast<int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0);
}

bool is_leap(int64_t y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

unsigned days_in_month(int64_t y, unsigned m) {
  static constexpr unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/// Reads exactly `count` digits at `pos` of `text` into `out`; false when any is not a digit.
bool read_digits(std::string_view text, std::size_t pos, std::size_t count, unsigned& out) {
  if (pos + count > text.size()) {
    return false;
  }
  out = 0;
  for (std::size_t i = pos; i < pos + count; ++i) {
    if (!is_digit(text[i])) {
      return false;
    }
    out = out * 10 + static_cast<unsigned>(text[i] - '0');
  }
  return true;
}

std::string two_digits(unsigned v) {
  return std::string{static_cast<char>('0' + v / 10), static_cast<char>('0' + v % 10)};
}

}  // namespace

std::variant<int64_t, std::string> parse_decimal_int(std::string_view text) {
  if (text.empty()) {
    return std::string("is empty");
  }
  if (text[0] == '-' || text[0] == '+') {
    return std::string("has a sign (a non-negative integer is expected)");
  }
  int64_t value = 0;
  for (char c : text) {
    if (!is_digit(c)) {
      return std::string("contains a character that is not a digit");
    }
    const int digit = c - '0';
    if (value > (int64_max - digit) / 10) {
      return std::string("does not fit in a signed 64-bit integer");
    }
    value = value * 10 + digit;
  }
  return value;
}

std::variant<int64_t, std::string> parse_stroops(std::string_view text) {
  if (text.empty()) {
    return std::string("is empty");
  }
  if (text[0] == '-') {
    return std::string("is negative");
  }
  if (text[0] == '+') {
    return std::string("has a '+' sign");
  }
  const auto dot = text.find('.');
  const std::string_view whole = text.substr(0, dot);
  const std::string_view fraction =
      dot == std::string_view::npos ? std::string_view{} : text.substr(dot + 1);
  if (whole.empty()) {
    return std::string("has no digit before '.'");
  }
  if (dot != std::string_view::npos && fraction.empty()) {
    return std::string("has no digit after '.'");
  }
  for (std::string_view part : {whole, fraction}) {
    for (char c : part) {
      if (!is_digit(c)) {
        return std::string("contains a character that is not a digit or one '.'");
      }
    }
  }
  if (fraction.size() > 7) {
    return "has " + std::to_string(fraction.size())
           + " fractional digits (at most 7: amounts are whole stroops)";
  }
  // whole * 10^7 + fraction * 10^(7 - digits), all checked against INT64_MAX.
  constexpr int64_t max_whole = int64_max / stroops_per_unit;
  int64_t units = 0;
  for (char c : whole) {
    units = units * 10 + (c - '0');
    if (units > max_whole) {
      return std::string("is too large (the maximum is 922337203685.4775807)");
    }
  }
  int64_t frac = 0;
  for (std::size_t i = 0; i < 7; ++i) {
    frac = frac * 10 + (i < fraction.size() ? fraction[i] - '0' : 0);
  }
  if (units == max_whole && frac > int64_max % stroops_per_unit) {
    return std::string("is too large (the maximum is 922337203685.4775807)");
  }
  return units * stroops_per_unit + frac;
}

std::string format_stroops(int64_t stroops) {
  // Work in unsigned so INT64_MIN has a magnitude.
  const bool negative = stroops < 0;
  const uint64_t magnitude =
      negative ? uint64_t{0} - static_cast<uint64_t>(stroops) : static_cast<uint64_t>(stroops);
  std::string fraction = std::to_string(magnitude % stroops_per_unit);
  fraction.insert(0, 7 - fraction.size(), '0');
  return (negative ? "-" : "") + std::to_string(magnitude / stroops_per_unit) + "." + fraction;
}

double stroops_to_units(int64_t stroops) {
  // Split so the whole part is exact and only the final addition rounds.
  const int64_t whole = stroops / stroops_per_unit;
  const int64_t fraction = stroops % stroops_per_unit;
  return static_cast<double>(whole)
         + static_cast<double>(fraction) / static_cast<double>(stroops_per_unit);
}

std::variant<int64_t, std::string> parse_timestamp_ms(std::string_view text) {
  constexpr std::string_view layout = "expected YYYY-MM-DDTHH:MM:SSZ";
  unsigned year = 0;
  unsigned month = 0;
  unsigned day = 0;
  unsigned hour = 0;
  unsigned minute = 0;
  unsigned second = 0;
  if (text.size() < 20 || !read_digits(text, 0, 4, year) || text[4] != '-'
      || !read_digits(text, 5, 2, month) || text[7] != '-' || !read_digits(text, 8, 2, day)
      || text[10] != 'T' || !read_digits(text, 11, 2, hour) || text[13] != ':'
      || !read_digits(text, 14, 2, minute) || text[16] != ':'
      || !read_digits(text, 17, 2, second)) {
    return std::string(layout);
  }
  std::size_t pos = 19;
  unsigned millis = 0;
  if (text[pos] == '.') {
    ++pos;
    std::size_t digits = 0;
    while (pos < text.size() && is_digit(text[pos])) {
      ++digits;
      if (digits > 3) {
        return std::string("has more than 3 fractional second digits");
      }
      millis = millis * 10 + static_cast<unsigned>(text[pos] - '0');
      ++pos;
    }
    if (digits == 0) {
      return std::string("has no digit after the '.' of the seconds");
    }
    for (std::size_t i = digits; i < 3; ++i) {
      millis *= 10;
    }
  }
  if (pos >= text.size() || text[pos] != 'Z') {
    return "is not UTC with a 'Z' suffix; " + std::string(layout);
  }
  if (pos + 1 != text.size()) {
    return "has text after the 'Z'; " + std::string(layout);
  }
  if (month < 1 || month > 12) {
    return "has month " + std::to_string(month) + " (1-12)";
  }
  if (day < 1 || day > days_in_month(year, month)) {
    return "has day " + std::to_string(day) + ", which month " + std::to_string(month) + " of "
           + std::to_string(year) + " does not have";
  }
  if (hour > 23) {
    return "has hour " + std::to_string(hour) + " (0-23)";
  }
  if (minute > 59) {
    return "has minute " + std::to_string(minute) + " (0-59)";
  }
  if (second > 59) {
    return "has second " + std::to_string(second) + " (0-59)";
  }
  const int64_t days = days_from_civil(year, month, day);
  const int64_t seconds = days * 86400 + hour * 3600 + minute * 60 + second;
  return seconds * 1000 + millis;
}

std::string format_timestamp_ms(int64_t unix_ms) {
  int64_t seconds = unix_ms / 1000;
  int64_t millis = unix_ms % 1000;
  if (millis < 0) {
    millis += 1000;
    seconds -= 1;
  }
  int64_t days = seconds / 86400;
  int64_t rest = seconds % 86400;
  if (rest < 0) {
    rest += 86400;
    days -= 1;
  }
  int64_t year = 0;
  unsigned month = 0;
  unsigned day = 0;
  civil_from_days(days, year, month, day);
  std::string year_text = std::to_string(year);
  year_text.insert(0, year_text.size() < 4 ? 4 - year_text.size() : 0, '0');
  std::string out = year_text + "-" + two_digits(month) + "-" + two_digits(day) + "T"
                    + two_digits(static_cast<unsigned>(rest / 3600)) + ":"
                    + two_digits(static_cast<unsigned>(rest / 60 % 60)) + ":"
                    + two_digits(static_cast<unsigned>(rest % 60));
  if (millis != 0) {
    std::string ms = std::to_string(millis);
    ms.insert(0, 3 - ms.size(), '0');
    out += "." + ms;
  }
  return out + "Z";
}

}  // namespace si::domain
