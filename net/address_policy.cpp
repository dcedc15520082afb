#include "net/address_policy.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "net/thread_name.hpp"

namespace si::net {

// --- addresses ---

std::optional<ip_address> ip_address::parse(std::string_view text) {
  if (text.empty() || text.size() > 64) {
    return std::nullopt;
  }
  std::string s(text);
  ip_address out;
  if (s.find(':') == std::string::npos) {
    if (::inet_pton(AF_INET, s.c_str(), out.bytes.data()) != 1) {
      return std::nullopt;
    }
    return out;
  }
  out.v6 = true;
  if (::inet_pton(AF_INET6, s.c_str(), out.bytes.data()) != 1) {
    return std::nullopt;
  }
  return out;
}

std::string ip_address::to_string() const {
  char buffer[INET6_ADDRSTRLEN] = {};
  if (::inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buffer, sizeof buffer) == nullptr) {
    return "?";
  }
  return buffer;
}

std::string_view to_string(address_class c) noexcept {
  switch (c) {
    case address_class::global:
      return "public";
    case address_class::unspecified:
      return "unspecified";
    case address_class::loopback:
      return "loopback";
    case address_class::private_use:
      return "private";
    case address_class::link_local:
      return "link-local";
    case address_class::cloud_metadata:
      return "cloud metadata";
    case address_class::shared_cgnat:
      return "carrier-grade NAT";
    case address_class::multicast:
      return "multicast";
    case address_class::broadcast:
      return "broadcast";
    case address_class::reserved:
      return "reserved";
    case address_class::documentation:
      return "documentation";
    case address_class::special_purpose:
      return "special-purpose";
  }
  return "unknown";
}

namespace {

using std::chrono::milliseconds;

constexpr std::uint32_t v4(unsigned a, unsigned b, unsigned c, unsigned d) {
  return (a << 24) | (b << 16) | (c << 8) | d;
}

/// True when `ip` lies in `base`/`bits`.
constexpr bool in_v4(std::uint32_t ip, std::uint32_t base, unsigned bits) {
  std::uint32_t mask = bits == 0 ? 0 : ~std::uint32_t{0} << (32 - bits);
  return (ip & mask) == (base & mask);
}

address_class classify_v4(std::uint32_t ip) noexcept {
  // Exact metadata endpoints first: most of them sit inside a wider class below.
  // AWS/GCP/Azure/OpenStack IMDS, AWS ECS task metadata, Alibaba, Azure wireserver, Oracle.
  static constexpr std::uint32_t metadata[] = {v4(169, 254, 169, 254), v4(169, 254, 170, 2),
                                               v4(100, 100, 100, 200), v4(168, 63, 129, 16),
                                               v4(192, 0, 0, 192)};
  for (std::uint32_t m : metadata) {
    if (ip == m) {
      return address_class::cloud_metadata;
    }
  }
  if (ip == v4(255, 255, 255, 255)) {
    return address_class::broadcast;
  }
  if (in_v4(ip, v4(0, 0, 0, 0), 8)) {
    return address_class::unspecified;
  }
  if (in_v4(ip, v4(127, 0, 0, 0), 8)) {
    return address_class::loopback;
  }
  if (in_v4(ip, v4(10, 0, 0, 0), 8) || in_v4(ip, v4(172, 16, 0, 0), 12)
      || in_v4(ip, v4(192, 168, 0, 0), 16)) {
    return address_class::private_use;
  }
  if (in_v4(ip, v4(169, 254, 0, 0), 16)) {
    return address_class::link_local;
  }
  if (in_v4(ip, v4(100, 64, 0, 0), 10)) {
    return address_class::shared_cgnat;
  }
  if (in_v4(ip, v4(192, 0, 2, 0), 24) || in_v4(ip, v4(198, 51, 100, 0), 24)
      || in_v4(ip, v4(203, 0, 113, 0), 24)) {
    return address_class::documentation;
  }
  if (in_v4(ip, v4(192, 0, 0, 0), 24) || in_v4(ip, v4(192, 88, 99, 0), 24)
      || in_v4(ip, v4(198, 18, 0, 0), 15)) {
    return address_class::special_purpose;
  }
  if (in_v4(ip, v4(224, 0, 0, 0), 4)) {
    return address_class::multicast;
  }
  if (in_v4(ip, v4(240, 0, 0, 0), 4)) {
    return address_class::reserved;
  }
  return address_class::global;
}

std::uint32_t read_v4(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8)
         | std::uint32_t{p[3]};
}

/// True when bytes [from, to) of `b` are all zero.
bool zeros(const std::array<std::uint8_t, 16>& b, std::size_t from, std::size_t to) {
  return std::all_of(b.begin() + static_cast<std::ptrdiff_t>(from),
                     b.begin() + static_cast<std::ptrdiff_t>(to),
                     [](std::uint8_t x) { return x == 0; });
}

address_class classify_v6(const std::array<std::uint8_t, 16>& b) noexcept {
  if (zeros(b, 0, 16)) {
    return address_class::unspecified;
  }
  if (zeros(b, 0, 15) && b[15] == 1) {
    return address_class::loopback;
  }
  // IPv4-mapped ::ffff:a.b.c.d
  if (zeros(b, 0, 10) && b[10] == 0xff && b[11] == 0xff) {
    return classify_v4(read_v4(&b[12]));
  }
  // SIIT IPv4-translated ::ffff:0:a.b.c.d
  if (zeros(b, 0, 8) && b[8] == 0xff && b[9] == 0xff && b[10] == 0 && b[11] == 0) {
    return classify_v4(read_v4(&b[12]));
  }
  // IPv4-compatible ::a.b.c.d (deprecated; :: and ::1 handled above)
  if (zeros(b, 0, 12)) {
    return classify_v4(read_v4(&b[12]));
  }
  // NAT64 well-known prefix 64:ff9b::/96
  if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && zeros(b, 4, 12)) {
    return classify_v4(read_v4(&b[12]));
  }
  // NAT64 local-use 64:ff9b:1::/48: translates to whatever the operator chose
  if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && b[4] == 0x00
      && b[5] == 0x01) {
    return address_class::special_purpose;
  }
  // Discard-only 100::/64
  if (b[0] == 0x01 && b[1] == 0x00 && zeros(b, 2, 8)) {
    return address_class::special_purpose;
  }
  // 6to4 2002:a.b.c.d::/48 carries an IPv4 address
  if (b[0] == 0x20 && b[1] == 0x02) {
    return classify_v4(read_v4(&b[2]));
  }
  // Documentation 2001:db8::/32 and 3fff::/20
  if ((b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
      || (b[0] == 0x3f && b[1] == 0xff && (b[2] & 0xf0) == 0x00)) {
    return address_class::documentation;
  }
  // IETF protocol assignments 2001::/23 (Teredo 2001::/32, ORCHID, AMT, ...)
  if (b[0] == 0x20 && b[1] == 0x01 && (b[2] & 0xfe) == 0x00) {
    return address_class::special_purpose;
  }
  // AWS IMDS over IPv6, inside fc00::/7
  static constexpr std::array<std::uint8_t, 16> aws_metadata{
      0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54};
  if (b == aws_metadata) {
    return address_class::cloud_metadata;
  }
  if ((b[0] & 0xfe) == 0xfc) {
    return address_class::private_use;  // unique local fc00::/7
  }
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) {
    return address_class::link_local;  // fe80::/10
  }
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) {
    return address_class::private_use;  // deprecated site-local fec0::/10
  }
  if (b[0] == 0xff) {
    return address_class::multicast;
  }
  if ((b[0] & 0xe0) == 0x20) {
    return address_class::global;  // global unicast 2000::/3
  }
  return address_class::reserved;
}

// --- URL parsing ---

policy_error bad_url(std::string message) {
  return policy_error{policy_error_kind::bad_url, std::move(message)};
}

bool starts_with_icase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) {
    return false;
  }
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
    if (c != prefix[i]) {
      return false;
    }
  }
  return true;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

/// Validates a DNS host name (already lower-case); an error message, or "" when it is fine.
std::string check_dns_name(std::string_view host) {
  std::string_view name = host;
  if (!name.empty() && name.back() == '.') {
    name.remove_suffix(1);  // a fully qualified name
  }
  if (name.empty()) {
    return "empty host";
  }
  if (name.size() > 253) {
    return "host name longer than 253 characters";
  }
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t dot = name.find('.', start);
    std::size_t end = dot == std::string_view::npos ? name.size() : dot;
    std::size_t length = end - start;
    if (length == 0) {
      return "empty label in host '" + std::string(host) + "'";
    }
    if (length > 63) {
      return "label longer than 63 characters in host '" + std::string(host) + "'";
    }
    for (std::size_t i = start; i < end; ++i) {
      char c = name[i];
      bool ok = (c >= 'a' && c <= 'z') || is_digit(c) || c == '-' || c == '_';
      if (!ok) {
        return "character '" + std::string(1, c) + "' not allowed in host '" + std::string(host)
               + "'";
      }
    }
    if (dot == std::string_view::npos) {
      break;
    }
    start = dot + 1;
  }
  return {};
}

/// True when the last label of `name` looks numeric: resolvers would read the name as an
/// IPv4 address in some shorthand ("127.1", "2130706433", "0x7f.0.0.1").
bool numeric_looking(std::string_view name) {
  if (!name.empty() && name.back() == '.') {
    name.remove_suffix(1);
  }
  std::size_t dot = name.rfind('.');
  std::string_view last = dot == std::string_view::npos ? name : name.substr(dot + 1);
  if (last.empty()) {
    return false;
  }
  if (last.size() >= 2 && last[0] == '0' && last[1] == 'x') {
    return true;
  }
  return std::all_of(last.begin(), last.end(), is_digit);
}

}  // namespace

address_class classify(const ip_address& address) noexcept {
  if (!address.v6) {
    return classify_v4(read_v4(address.bytes.data()));
  }
  return classify_v6(address.bytes);
}

bool is_public(const ip_address& address) noexcept {
  return classify(address) == address_class::global;
}

std::string webhook_url::host_header() const {
  bool v6 = host.find(':') != std::string::npos;
  std::string out = v6 ? "[" + host + "]" : host;
  if (port != (https ? 443 : 80)) {
    out += ":" + std::to_string(port);
  }
  return out;
}

std::string webhook_url::destination() const {
  bool v6 = host.find(':') != std::string::npos;
  std::string out(scheme());
  out += "://";
  out += v6 ? "[" + host + "]" : host;
  out += ":" + std::to_string(port);
  return out;
}

std::variant<webhook_url, policy_error> parse_webhook_url(std::string_view url) {
  if (url.empty()) {
    return bad_url("empty URL");
  }
  if (url.size() > max_webhook_url_length) {
    return bad_url("URL longer than " + std::to_string(max_webhook_url_length) + " characters");
  }
  for (std::size_t i = 0; i < url.size(); ++i) {
    auto c = static_cast<unsigned char>(url[i]);
    if (c <= 0x20 || c == 0x7f) {
      return bad_url("whitespace or control character at position " + std::to_string(i));
    }
    if (c >= 0x80) {
      return bad_url("non-ASCII character at position " + std::to_string(i)
                     + " (use the punycode host name and percent-encoding)");
    }
  }
  webhook_url out;
  std::string_view rest = url;
  if (starts_with_icase(rest, "https://")) {
    out.https = true;
    rest.remove_prefix(8);
  } else if (starts_with_icase(rest, "http://")) {
    rest.remove_prefix(7);
  } else {
    std::size_t colon = url.find(':');
    if (colon == std::string_view::npos) {
      return bad_url("not an absolute URL (expected http:// or https://)");
    }
    std::string_view scheme = url.substr(0, colon);
    if ((scheme.size() == 4 && starts_with_icase(scheme, "http"))
        || (scheme.size() == 5 && starts_with_icase(scheme, "https"))) {
      return bad_url("expected '//' after '" + std::string(scheme) + ":'");
    }
    return bad_url("scheme '" + std::string(scheme) + "' not allowed (only http and https)");
  }
  std::size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  std::string_view tail = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (authority.find('@') != std::string_view::npos) {
    return bad_url("userinfo (user:password@) is not allowed in a webhook URL");
  }
  if (authority.find('\\') != std::string_view::npos) {
    return bad_url("backslash not allowed in the host part");
  }
  std::string_view host;
  std::string_view port_text;
  bool has_port = false;
  bool bracketed = false;
  if (!authority.empty() && authority.front() == '[') {
    std::size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return bad_url("unterminated '[' in host");
    }
    bracketed = true;
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return bad_url("unexpected characters after ']' in host");
      }
      has_port = true;
      port_text = after.substr(1);
    }
  } else {
    std::size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      has_port = true;
      port_text = authority.substr(colon + 1);
    }
  }
  if (host.empty()) {
    return bad_url("empty host");
  }
  out.port = out.https ? 443 : 80;
  if (has_port) {
    if (port_text.empty()) {
      return bad_url("empty port after ':'");
    }
    if (port_text.size() > 5 || !std::all_of(port_text.begin(), port_text.end(), is_digit)) {
      return bad_url("bad port '" + std::string(port_text) + "'");
    }
    unsigned value = 0;
    for (char c : port_text) {
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value == 0 || value > 65535) {
      return bad_url("port " + std::string(port_text) + " out of range 1..65535");
    }
    out.port = static_cast<std::uint16_t>(value);
  }
  std::string lowered(host);
  for (auto& c : lowered) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  if (bracketed) {
    if (lowered.find('%') != std::string::npos) {
      return bad_url("IPv6 zone ids are not allowed");
    }
    auto ip = ip_address::parse(lowered);
    if (!ip || !ip->v6) {
      return bad_url("bad IPv6 address '" + lowered + "'");
    }
    out.host_is_ip = true;
  } else if (lowered.find(':') != std::string::npos) {
    return bad_url("IPv6 address must be in brackets");
  } else if (numeric_looking(lowered)) {
    auto ip = ip_address::parse(lowered);
    if (!ip) {
      return bad_url("numeric host '" + lowered + "' is not a dotted-quad IPv4 address");
    }
    out.host_is_ip = true;
  } else if (auto problem = check_dns_name(lowered); !problem.empty()) {
    return bad_url(std::move(problem));
  }
  out.host = std::move(lowered);
  std::size_t hash = tail.find('#');
  if (hash != std::string_view::npos) {
    tail = tail.substr(0, hash);
  }
  out.target = std::string(tail);
  if (out.target.empty() || out.target.front() != '/') {
    out.target.insert(0, "/");
  }
  return out;
}

// --- resolution ---

namespace detail {

namespace {
std::atomic<std::size_t> pending_lookups{0};
}  // namespace

bool run_detached_lookup(std::function<void()> work) {
  if (pending_lookups.fetch_add(1) >= max_pending_lookups) {
    pending_lookups.fetch_sub(1);
    return false;
  }
  try {
    std::thread([work = std::move(work)] {
      name_this_thread("si-dns-lookup");
      try {
        work();
      } catch (...) {  // a resolver that throws must not terminate the process
      }
      pending_lookups.fetch_sub(1);
    }).detach();
  } catch (const std::system_error&) {
    pending_lookups.fetch_sub(1);
    return false;
  }
  return true;
}

resolve_result getaddrinfo_blocking(const std::string& host) {
  resolve_result out;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  addrinfo* list = nullptr;
  int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &list);
  if (rc != 0) {
    out.error = std::string("cannot resolve '") + host + "': " + ::gai_strerror(rc);
    return out;
  }
  for (addrinfo* a = list; a != nullptr; a = a->ai_next) {
    ip_address ip;
    if (a->ai_family == AF_INET) {
      const auto* sa = reinterpret_cast<const sockaddr_in*>(a->ai_addr);
      std::memcpy(ip.bytes.data(), &sa->sin_addr, 4);
    } else if (a->ai_family == AF_INET6) {
      const auto* sa = reinterpret_cast<const sockaddr_in6*>(a->ai_addr);
      ip.v6 = true;
      std::memcpy(ip.bytes.data(), &sa->sin6_addr, 16);
    } else {
      continue;
    }
    if (std::find(out.addresses.begin(), out.addresses.end(), ip) == out.addresses.end()) {
      out.addresses.push_back(ip);
    }
  }
  ::freeaddrinfo(list);
  if (out.addresses.empty()) {
    out.error = "'" + host + "' has no IPv4 or IPv6 address";
  }
  return out;
}

}  // namespace detail

resolve_result system_resolve(const std::string& host, milliseconds timeout) {
  if (auto ip = ip_address::parse(host)) {
    return resolve_result{{*ip}, {}};
  }
  struct shared_state {
    std::mutex mutex;
    std::condition_variable cv;
    std::optional<resolve_result> result;
  };
  auto state = std::make_shared<shared_state>();
  bool started = detail::run_detached_lookup([state, host] {
    auto r = detail::getaddrinfo_blocking(host);
    {
      std::lock_guard<std::mutex> lock(state->mutex);
      state->result = std::move(r);
    }
    state->cv.notify_all();
  });
  if (!started) {
    return resolve_result{{}, "too many DNS lookups in progress"};
  }
  std::unique_lock<std::mutex> lock(state->mutex);
  if (!state->cv.wait_for(lock, timeout, [&] { return state->result.has_value(); })) {
    return resolve_result{
        {},
        "DNS lookup of '" + host + "' timed out after " + std::to_string(timeout.count()) + " ms"};
  }
  return std::move(*state->result);
}

std::optional<policy_error> vet_addresses(const webhook_url& url,
                                          const std::vector<ip_address>& addresses,
                                          bool allow_private) {
  if (addresses.empty()) {
    return policy_error{policy_error_kind::resolve_failed, "'" + url.host + "' has no address"};
  }
  if (allow_private) {
    return std::nullopt;
  }
  for (const auto& ip : addresses) {
    address_class c = classify(ip);
    if (c != address_class::global) {
      std::string message = url.host_is_ip
                                ? ip.to_string() + " is"
                                : "'" + url.host + "' resolves to " + ip.to_string() + ", which is";
      std::string name(to_string(c));
      message +=
          std::string(name.front() == 'u' ? " an " : " a ") + name + " address, not a public one";
      return policy_error{policy_error_kind::not_public, std::move(message)};
    }
  }
  return std::nullopt;
}

std::variant<vetted_url, policy_error> check_url(std::string_view url, bool allow_private,
                                                 const resolver_fn& resolver,
                                                 milliseconds timeout) {
  auto parsed = parse_webhook_url(url);
  if (auto* e = std::get_if<policy_error>(&parsed)) {
    return std::move(*e);
  }
  vetted_url out{std::move(std::get<webhook_url>(parsed)), {}};
  if (out.url.host_is_ip) {
    out.addresses.push_back(*ip_address::parse(out.url.host));
  } else {
    resolve_result r =
        resolver ? resolver(out.url.host, timeout) : system_resolve(out.url.host, timeout);
    if (!r.error.empty() || r.addresses.empty()) {
      return policy_error{policy_error_kind::resolve_failed,
                          r.error.empty() ? "'" + out.url.host + "' has no address" : r.error};
    }
    out.addresses = std::move(r.addresses);
  }
  if (auto refused = vet_addresses(out.url, out.addresses, allow_private)) {
    return std::move(*refused);
  }
  return out;
}

}  // namespace si::net
