#pragma once
/// Method + path routing with `{param}` segments, 404/405 (+Allow) decisions, and query-string
/// parsing. Pure string code: no I/O, no Boost.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace si::net {

/// Percent-decodes `s` ('+' stays '+' in paths; `plus_as_space` for query strings).
/// Returns nullopt on a malformed escape or a decoded NUL.
std::optional<std::string> url_decode(std::string_view s, bool plus_as_space);

/// Query parameters by name (the last value wins when a name repeats).
using query_params = std::map<std::string, std::string>;

/// Parses `a=1&b=x%20y`; nullopt when an escape is malformed.
std::optional<query_params> parse_query(std::string_view query);

/// What the router decided for one request.
enum class route_status { found, not_found, method_not_allowed, bad_path };

/// Result of matching: the route id and pattern (the metrics label), decoded parameters, or
/// the methods the path allows (for 405's Allow header).
struct route_match {
  route_status status = route_status::not_found;
  int route_id = -1;
  std::string pattern;
  std::map<std::string, std::string> params;
  std::string allow;  ///< "GET, HEAD" for method_not_allowed
};

/// Routes `METHOD /literal/{param}/...` patterns to integer ids. HEAD falls back to GET.
/// Literal segments win over parameters at the same position.
class router {
 public:
  /// Adds a route; `pattern` starts with '/', `{name}` matches one non-empty segment.
  void add(std::string method, std::string pattern, int route_id);

  /// Matches a raw (percent-encoded) path.
  route_match match(std::string_view method, std::string_view path) const;

 private:
  struct route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;
    int id;
  };
  std::vector<route> routes_;
};

}  // namespace si::net
