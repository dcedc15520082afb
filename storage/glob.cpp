#include "storage/glob.hpp"

namespace si::storage {

namespace {

/// Matches one character class starting just after `[`; advances `p` past the closing `]`.
/// An unterminated class takes the rest of the pattern as its members (as Redis does).
bool match_class(std::string_view pattern, std::size_t& p, char c) noexcept {
  bool negate = false;
  if (p < pattern.size() && pattern[p] == '^') {
    negate = true;
    ++p;
  }
  bool matched = false;
  while (p < pattern.size() && pattern[p] != ']') {
    if (pattern[p] == '\\' && p + 1 < pattern.size()) {
      ++p;
      matched = matched || pattern[p] == c;
      ++p;
    } else if (p + 2 < pattern.size() && pattern[p + 1] == '-' && pattern[p + 2] != ']') {
      char lo = pattern[p];
      char hi = pattern[p + 2];
      if (lo > hi) {
        std::swap(lo, hi);
      }
      matched = matched || (c >= lo && c <= hi);
      p += 3;
    } else {
      matched = matched || pattern[p] == c;
      ++p;
    }
  }
  if (p < pattern.size()) {
    ++p;  // the closing ']'
  }
  return negate ? !matched : matched;
}

}  // namespace

bool glob_match(std::string_view pattern, std::string_view text) noexcept {
  // Iterative matcher with single-star backtracking: linear memory, no recursion.
  std::size_t p = 0;
  std::size_t t = 0;
  std::size_t star_p = std::string_view::npos;
  std::size_t star_t = 0;
  while (t < text.size()) {
    if (p < pattern.size()) {
      const char pc = pattern[p];
      if (pc == '*') {
        star_p = ++p;
        star_t = t;
        continue;
      }
      if (pc == '?') {
        ++p;
        ++t;
        continue;
      }
      if (pc == '[') {
        std::size_t q = p + 1;
        if (match_class(pattern, q, text[t])) {
          p = q;
          ++t;
          continue;
        }
      } else if (pc == '\\' && p + 1 < pattern.size()) {
        if (pattern[p + 1] == text[t]) {
          p += 2;
          ++t;
          continue;
        }
      } else if (pc == text[t]) {
        ++p;
        ++t;
        continue;
      }
    }
    if (star_p == std::string_view::npos) {
      return false;
    }
    // Let the last star swallow one more character and retry from there.
    p = star_p;
    t = ++star_t;
  }
  while (p < pattern.size() && pattern[p] == '*') {
    ++p;
  }
  return p == pattern.size();
}

std::string glob_escape(std::string_view literal) {
  std::string out;
  out.reserve(literal.size());
  for (char c : literal) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\' || c == '^') {
      out.push_back('\\');
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace si::storage
