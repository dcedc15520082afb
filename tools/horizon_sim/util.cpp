#include "tools/horizon_sim/util.hpp"

#include <charconv>
#include <limits>

namespace si::sim {

namespace {

/// The multiplicative inverse of an odd `a` modulo 2^64 (Newton's iteration).
constexpr uint64_t inverse_odd(uint64_t a) {
  uint64_t x = a;  // correct to 3 bits for any odd a
  for (int i = 0; i < 6; ++i) {
    x *= 2 - a * x;
  }
  return x;
}

/// The inverse of `x ^= x >> shift` (shift >= 22, so three terms reach every bit).
constexpr uint64_t unshift_xor(uint64_t y, int shift) {
  uint64_t x = y;
  for (int i = 0; i < 3; ++i) {
    x = y ^ (x >> shift);
  }
  return x;
}

constexpr uint64_t inv_c1 = inverse_odd(0xbf58476d1ce4e5b9ULL);
constexpr uint64_t inv_c2 = inverse_odd(0x94d049bb133111ebULL);
static_assert(inv_c1 * 0xbf58476d1ce4e5b9ULL == 1);
static_assert(inv_c2 * 0x94d049bb133111ebULL == 1);

constexpr char hex_digits[] = "0123456789abcdef";
constexpr char upper_hex_digits[] = "0123456789ABCDEF";
constexpr char base64_digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2 ? 1 : 0;
}

void append_2(std::string& out, unsigned v) {
  out.push_back(static_cast<char>('0' + v / 10));
  out.push_back(static_cast<char>('0' + v % 10));
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

}  // namespace

uint64_t unmix64(uint64_t x) {
  x = unshift_xor(x, 31);
  x *= inv_c2;
  x = unshift_xor(x, 27);
  x *= inv_c1;
  x = unshift_xor(x, 30);
  return x;
}

words4 hash_words(uint64_t seed, tag kind, uint64_t a) {
  return {hash_of(seed, kind, a, 0), hash_of(seed, kind, a, 1), hash_of(seed, kind, a, 2),
          hash_of(seed, kind, a, 3)};
}

void append_uint(std::string& out, uint64_t value) {
  char buffer[24];
  auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, result.ptr);
}

void append_int(std::string& out, int64_t value) {
  char buffer[24];
  auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, result.ptr);
}

void append_amount(std::string& out, int64_t stroops) {
  uint64_t magnitude = static_cast<uint64_t>(stroops);
  if (stroops < 0) {
    out.push_back('-');
    magnitude = 0 - magnitude;
  }
  append_uint(out, magnitude / 10'000'000);
  char fraction[8];
  uint64_t rest = magnitude % 10'000'000;
  fraction[0] = '.';
  for (int i = 7; i >= 1; --i) {
    fraction[i] = static_cast<char>('0' + rest % 10);
    rest /= 10;
  }
  out.append(fraction, 8);
}

void append_time(std::string& out, int64_t unix_s) {
  int64_t days = unix_s / 86400;
  int64_t seconds = unix_s % 86400;
  if (seconds < 0) {
    seconds += 86400;
    --days;
  }
  int64_t year = 0;
  unsigned month = 0;
  unsigned day = 0;
  civil_from_days(days, year, month, day);
  char y[4];
  auto yv = static_cast<unsigned>(year < 0 ? 0 : (year > 9999 ? 9999 : year));
  for (int i = 3; i >= 0; --i) {
    y[i] = static_cast<char>('0' + yv % 10);
    yv /= 10;
  }
  out.append(y, 4);
  out.push_back('-');
  append_2(out, month);
  out.push_back('-');
  append_2(out, day);
  out.push_back('T');
  append_2(out, static_cast<unsigned>(seconds / 3600));
  out.push_back(':');
  append_2(out, static_cast<unsigned>(seconds / 60 % 60));
  out.push_back(':');
  append_2(out, static_cast<unsigned>(seconds % 60));
  out.push_back('Z');
}

void append_hex(std::string& out, const words4& words) {
  char text[64];
  for (std::size_t w = 0; w < 4; ++w) {
    for (int i = 0; i < 16; ++i) {
      text[w * 16 + static_cast<std::size_t>(i)] = hex_digits[(words[w] >> (60 - 4 * i)) & 0xf];
    }
  }
  out.append(text, 64);
}

std::array<uint8_t, 32> to_bytes(const words4& words) {
  std::array<uint8_t, 32> bytes{};
  for (std::size_t w = 0; w < 4; ++w) {
    for (std::size_t i = 0; i < 8; ++i) {
      bytes[w * 8 + i] = static_cast<uint8_t>(words[w] >> (56 - 8 * i));
    }
  }
  return bytes;
}

void append_base64(std::string& out, std::string_view data) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(data.data());
  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const uint32_t v = (uint32_t{bytes[i]} << 16) | (uint32_t{bytes[i + 1]} << 8) | bytes[i + 2];
    const char quad[4] = {base64_digits[v >> 18], base64_digits[(v >> 12) & 63],
                          base64_digits[(v >> 6) & 63], base64_digits[v & 63]};
    out.append(quad, 4);
  }
  const std::size_t rest = data.size() - i;
  if (rest == 1) {
    const uint32_t v = uint32_t{bytes[i]} << 16;
    const char quad[4] = {base64_digits[v >> 18], base64_digits[(v >> 12) & 63], '=', '='};
    out.append(quad, 4);
  } else if (rest == 2) {
    const uint32_t v = (uint32_t{bytes[i]} << 16) | (uint32_t{bytes[i + 1]} << 8);
    const char quad[4] = {base64_digits[v >> 18], base64_digits[(v >> 12) & 63],
                          base64_digits[(v >> 6) & 63], '='};
    out.append(quad, 4);
  }
}

void append_base64_filler(std::string& out, rng& source, std::size_t size) {
  // Whole 3-byte groups are any 4 digits: 10 digits (60 random bits) per draw, written in
  // place; the tail (1 or 2 bytes) goes through the exact encoder for canonical padding.
  const std::size_t groups = size / 3;
  const std::size_t at = out.size();
  out.resize(at + groups * 4);
  char* p = out.data() + at;
  std::size_t left = groups * 4;
  while (left > 0) {
    uint64_t bits = source.next();
    const std::size_t n = left < 10 ? left : 10;
    for (std::size_t i = 0; i < n; ++i) {
      *p++ = base64_digits[bits & 63];
      bits >>= 6;
    }
    left -= n;
  }
  const std::size_t rest = size - groups * 3;
  if (rest > 0) {
    const uint64_t last = source.next();
    char tail[2] = {static_cast<char>(last & 0xff), static_cast<char>((last >> 8) & 0xff)};
    append_base64(out, std::string_view(tail, rest));
  }
}

void append_json_escaped(std::string& out, std::string_view text) {
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20 || c == '<' || c == '>' || c == '&') {
      out += "\\u00";
      out.push_back(hex_digits[u >> 4]);
      out.push_back(hex_digits[u & 0xf]);
    } else {
      out.push_back(c);
    }
  }
}

void append_query_escaped(std::string& out, std::string_view text) {
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    const bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                            || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'
                            || c == '~';
    if (unreserved) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(upper_hex_digits[u >> 4]);
      out.push_back(upper_hex_digits[u & 0xf]);
    }
  }
}

std::string query_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%' && i + 2 < text.size()) {
      const int high = hex_value(text[i + 1]);
      const int low = hex_value(text[i + 2]);
      if (high >= 0 && low >= 0) {
        out.push_back(static_cast<char>(high * 16 + low));
        i += 2;
      } else {
        out.push_back(c);
      }
    } else {
      out.push_back(c);
    }
  }
  return out;
}

bool parse_uint(std::string_view text, uint64_t& value) {
  if (text.empty() || text.size() > 19) {
    return false;
  }
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return false;
    }
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return false;
  }
  value = v;
  return true;
}

}  // namespace si::sim
