#pragma once
/// Redis-compatible glob matching, shared by the cache backends so both agree on patterns.

#include <string>
#include <string_view>

namespace si::storage {

/// True when `text` matches `pattern` with Redis `MATCH`/`KEYS` semantics: `*` any run,
/// `?` one character, `[abc]`, `[a-z]`, `[^a]` classes, and `\` escaping the next character.
bool glob_match(std::string_view pattern, std::string_view text) noexcept;

/// `literal` with every glob-special character (`*?[]\^`) escaped by `\`, so that it matches
/// only itself; used to put a key prefix in front of a caller's pattern.
std::string glob_escape(std::string_view literal);

}  // namespace si::storage
