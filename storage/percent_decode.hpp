#pragma once
/// Percent-decoding of URL parts (DATABASE_URL and REDIS_URL user, password, host, path).

#include <string>
#include <string_view>

namespace si::storage {

/// Decodes `%XX` escapes of `in` into `out`; false on a malformed escape.
bool percent_decode(std::string_view in, std::string& out);

}  // namespace si::storage
