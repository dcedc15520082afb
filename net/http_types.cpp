#include "net/http_types.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace si::net {

namespace {

char ascii_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) {
      return false;
    }
  }
  return true;
}

std::optional<std::string_view> find_header(const header_list& headers, std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (iequals(key, name)) {
      return std::string_view(value);
    }
  }
  return std::nullopt;
}

void http_response::set_header(std::string_view name, std::string value) {
  std::erase_if(headers, [&](const auto& field) { return iequals(field.first, name); });
  headers.emplace_back(std::string(name), std::move(value));
}

bool sane_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) {
    return false;
  }
  return std::all_of(id.begin(), id.end(), [](char c) { return c >= 0x21 && c <= 0x7e; });
}

void split_target(const std::string& target, std::string& path, std::string& query) {
  std::string origin = target;
  if (auto scheme = origin.find("://"); !origin.starts_with('/') && scheme != origin.npos) {
    auto rest = origin.find_first_of("/?", scheme + 3);
    origin = rest == origin.npos ? "/" : (origin[rest] == '?' ? "/" : "") + origin.substr(rest);
  }
  auto q = origin.find('?');
  path = origin.substr(0, q);
  query = q == origin.npos ? std::string() : origin.substr(q + 1);
}

http_response make_error_response(int status, std::string_view code, std::string_view message,
                                  std::string_view request_id) {
  nlohmann::json body = {
      {"error", {{"code", code}, {"message", message}, {"request_id", request_id}}}};
  http_response res;
  res.status = status;
  res.headers.emplace_back("Content-Type", "application/json");
  // Replace invalid UTF-8 (a message may quote client input) instead of throwing.
  res.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return res;
}

}  // namespace si::net
