#include "net/router.hpp"

#include <algorithm>
#include <set>

namespace si::net {

namespace {

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

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  size_t i = 1;  // skip the leading '/'
  while (i <= path.size()) {
    auto j = path.find('/', i);
    if (j == std::string_view::npos) {
      j = path.size();
    }
    out.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  // "/a/b/" and "/a/b" are the same resource; "/" alone is one empty segment.
  if (out.size() > 1 && out.back().empty()) {
    out.pop_back();
  }
  return out;
}

bool is_param(const std::string& seg) {
  return seg.size() > 2 && seg.front() == '{' && seg.back() == '}';
}

}  // namespace

std::optional<std::string> url_decode(std::string_view s, bool plus_as_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) {
        return std::nullopt;  // '%' needs two hex digits after it
      }
      int hi = hex_value(s[i + 1]);
      int lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) {
        return std::nullopt;
      }
      char decoded = static_cast<char>(hi * 16 + lo);
      if (decoded == '\0') {
        return std::nullopt;
      }
      out.push_back(decoded);
      i += 2;
    } else if (c == '+' && plus_as_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::optional<query_params> parse_query(std::string_view query) {
  query_params params;
  size_t i = 0;
  while (i < query.size()) {
    auto j = query.find('&', i);
    if (j == std::string_view::npos) {
      j = query.size();
    }
    auto pair = query.substr(i, j - i);
    i = j + 1;
    if (pair.empty()) {
      continue;
    }
    auto eq = pair.find('=');
    auto key = url_decode(pair.substr(0, eq), true);
    auto value =
        url_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1), true);
    if (!key || !value) {
      return std::nullopt;
    }
    params[*key] = *value;
  }
  return params;
}

void router::add(std::string method, std::string pattern, int route_id) {
  route r{std::move(method), pattern, {}, route_id};
  for (auto seg : split_path(pattern)) {
    r.segments.emplace_back(seg);
  }
  routes_.push_back(std::move(r));
}

route_match router::match(std::string_view method, std::string_view path) const {
  route_match result;
  if (path.empty() || path.front() != '/') {
    result.status = route_status::bad_path;
    return result;
  }
  auto segs = split_path(path);
  // Best match per route: count literal matches so literals beat parameters.
  const route* best = nullptr;
  int best_literals = -1;
  std::map<std::string, std::string> best_params;
  std::set<std::string> allowed;
  bool decode_failed = false;
  for (const auto& r : routes_) {
    if (r.segments.size() != segs.size()) {
      continue;
    }
    std::map<std::string, std::string> params;
    int literals = 0;
    bool ok = true;
    for (size_t i = 0; i < segs.size() && ok; ++i) {
      const auto& want = r.segments[i];
      if (is_param(want)) {
        if (segs[i].empty()) {
          ok = false;
          break;
        }
        auto decoded = url_decode(segs[i], false);
        if (!decoded) {
          decode_failed = true;
          ok = false;
          break;
        }
        params[want.substr(1, want.size() - 2)] = std::move(*decoded);
      } else if (want == segs[i]) {
        ++literals;
      } else {
        ok = false;
      }
    }
    if (!ok) {
      continue;
    }
    allowed.insert(r.method);
    bool method_ok = r.method == method || (method == "HEAD" && r.method == "GET");
    if (method_ok && literals > best_literals) {
      best = &r;
      best_literals = literals;
      best_params = std::move(params);
    }
  }
  if (best != nullptr) {
    result.status = route_status::found;
    result.route_id = best->id;
    result.pattern = best->pattern;
    result.params = std::move(best_params);
    return result;
  }
  if (!allowed.empty()) {
    if (allowed.count("GET") != 0) {
      allowed.insert("HEAD");
    }
    result.status = route_status::method_not_allowed;
    for (const auto& m : allowed) {
      result.allow += (result.allow.empty() ? "" : ", ") + m;
    }
    return result;
  }
  result.status = decode_failed ? route_status::bad_path : route_status::not_found;
  return result;
}

}  // namespace si::net
