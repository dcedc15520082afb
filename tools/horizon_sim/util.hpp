#pragma once
/// Small building blocks of the Horizon simulator: keyed 64-bit hashing (and the inverse of
/// the mixer, for hashes that must be looked up), a deterministic PRNG, and the exact text
/// spellings Horizon uses (7-decimal amounts, RFC 3339 times, lower-case hex, base64) as
/// appends to a std::string, so records are built without temporaries.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace si::sim {

/// The splitmix64 finalizer: a bijection on 64-bit words with good avalanche.
constexpr uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

/// The inverse of mix64: unmix64(mix64(x)) == x.
uint64_t unmix64(uint64_t x);

/// What a hash is for; part of every derivation so different kinds never collide.
enum class tag : uint64_t {
  ledger_hash = 1,
  ledger_plan,
  tx_plan,
  op_plan,
  tx_hash,
  inner_hash,
  account,
  anchor,
  pool,
  pool_plan,
  trade,
  asset_stats,
  asset_value,
  filler,
  hash_key,
};

/// A keyed hash of (seed, kind, a, b).
constexpr uint64_t hash_of(uint64_t seed, tag kind, uint64_t a, uint64_t b = 0) {
  uint64_t h = mix64(seed ^ 0x9e3779b97f4a7c15ULL);
  h = mix64(h ^ static_cast<uint64_t>(kind));
  h = mix64(h ^ a);
  h = mix64(h ^ (b * 0xd1b54a32d192ed03ULL + 0x632be59bd9b4e019ULL));
  return h;
}

/// Four 64-bit words: 32 bytes, printed as 64 hex digits (a hash or a pool id).
using words4 = std::array<uint64_t, 4>;

/// Four words from hash_of(seed, kind, a, 0..3).
words4 hash_words(uint64_t seed, tag kind, uint64_t a);

/// A small deterministic generator (splitmix64); the same seed gives the same sequence.
class rng {
 public:
  explicit rng(uint64_t seed) : state_(seed) {}

  uint64_t next() {
    state_ += 0x9e3779b97f4a7c15ULL;
    return mix64(state_);
  }
  /// Uniform in [0, n) (n > 0; a tiny modulo bias is irrelevant here).
  uint64_t below(uint64_t n) {
    return next() % n;
  }
  /// Uniform in [low, high].
  int64_t between(int64_t low, int64_t high) {
    return low + static_cast<int64_t>(below(static_cast<uint64_t>(high - low) + 1));
  }
  /// True with probability percent/100.
  bool percent(uint32_t percent) {
    return below(100) < percent;
  }
  /// Uniform in [0, 1).
  double unit() {
    return static_cast<double>(next() >> 11) * 0x1.0p-53;
  }

 private:
  uint64_t state_;
};

/// Appends `value` in decimal.
void append_uint(std::string& out, uint64_t value);
void append_int(std::string& out, int64_t value);

/// Appends a stroop amount as Horizon spells it: "39.0000000" (7 fractional digits).
void append_amount(std::string& out, int64_t stroops);

/// Appends unix seconds as "2024-07-05T00:33:24Z".
void append_time(std::string& out, int64_t unix_s);

/// Appends the 64 lower-case hex digits of `words` (big-endian words, in order).
void append_hex(std::string& out, const words4& words);

/// The 32 bytes of `words` (big-endian words, in order).
std::array<uint8_t, 32> to_bytes(const words4& words);

/// Appends the base64 (RFC 4648, padded) of `data`.
void append_base64(std::string& out, std::string_view data);

/// Appends base64 of `size` pseudo-random bytes drawn from `source` (XDR stand-ins).
void append_base64_filler(std::string& out, rng& source, std::size_t size);

/// Appends `text` escaped for inside a JSON string the way Go's encoder does (", \, control
/// characters, and <, >, & as \u003c, \u003e, \u0026).
void append_json_escaped(std::string& out, std::string_view text);

/// Appends `text` %-encoded for a URL query value (unreserved characters stay).
void append_query_escaped(std::string& out, std::string_view text);

/// `text` with %XX sequences decoded and '+' as a space (query-string rules).
std::string query_decode(std::string_view text);

/// Parses a non-negative decimal integer (no sign, no spaces, at most 19 digits) that fits
/// in int64; false otherwise.
bool parse_uint(std::string_view text, uint64_t& value);

}  // namespace si::sim
