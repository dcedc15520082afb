#pragma once
/// The SSRF policy of outbound webhooks: strict http(s) URL parsing, classification of IPv4
/// and IPv6 addresses (loopback, private, link-local, cloud metadata, ...) and a URL check
/// that resolves the host and refuses it when any of its addresses is not public. No Boost.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace si::net {

/// An IPv4 or IPv6 address in network byte order.
struct ip_address {
  bool v6 = false;
  /// IPv4 uses bytes 0..3 (the rest stay zero); IPv6 uses all 16.
  std::array<std::uint8_t, 16> bytes{};

  /// Parses the canonical text forms only: a dotted quad without leading zeros, or IPv6
  /// (with an optional embedded dotted quad) without brackets or zone id.
  static std::optional<ip_address> parse(std::string_view text);

  /// `a.b.c.d` or the RFC 5952 IPv6 form (inet_ntop).
  std::string to_string() const;

  friend bool operator==(const ip_address&, const ip_address&) = default;
};

/// What kind of address an IP is; everything except `global` is refused for webhooks.
enum class address_class {
  global,           ///< public unicast: the only class webhooks are delivered to
  unspecified,      ///< 0.0.0.0/8, ::
  loopback,         ///< 127.0.0.0/8, ::1
  private_use,      ///< 10/8, 172.16/12, 192.168/16, fc00::/7, fec0::/10 (site-local)
  link_local,       ///< 169.254/16, fe80::/10
  cloud_metadata,   ///< instance metadata endpoints (169.254.169.254, fd00:ec2::254, ...)
  shared_cgnat,     ///< 100.64.0.0/10 (carrier-grade NAT)
  multicast,        ///< 224/4, ff00::/8
  broadcast,        ///< 255.255.255.255
  reserved,         ///< 240/4; IPv6 outside 2000::/3 and the ranges above
  documentation,    ///< 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20
  special_purpose,  ///< 192.0.0/24, 192.88.99/24, 198.18/15, 100::/64, 2001::/23, 64:ff9b:1::/48
};

/// A short English name of `c` ("loopback", "private", "cloud metadata", ...).
std::string_view to_string(address_class c) noexcept;

/// The class of `address`. IPv4 embedded in IPv6 (IPv4-mapped ::ffff:0:0/96, IPv4-compatible
/// ::/96, SIIT ::ffff:0:0:0/96, NAT64 64:ff9b::/96 and 6to4 2002::/16) is classified by the
/// IPv4 address it carries.
address_class classify(const ip_address& address) noexcept;

/// True when `address` is public unicast (`classify` gives `global`).
bool is_public(const ip_address& address) noexcept;

/// The parts of a webhook URL the transport needs.
struct webhook_url {
  bool https = false;
  /// Lower-case DNS name, dotted-quad IPv4, or IPv6 without brackets.
  std::string host;
  std::uint16_t port = 0;  ///< explicit, or 80 / 443 by scheme
  std::string target;      ///< path and query, "/" when empty; the fragment is dropped
  bool host_is_ip = false;

  /// "http" or "https".
  std::string_view scheme() const noexcept {
    return https ? "https" : "http";
  }
  /// The Host header value: host (IPv6 in brackets) plus `:port` unless it is the default.
  std::string host_header() const;
  /// `scheme://host:port` (IPv6 in brackets): the key of the connection pool.
  std::string destination() const;
};

/// Why a URL was refused.
enum class policy_error_kind {
  bad_url,         ///< not an acceptable http(s) URL
  resolve_failed,  ///< the host name did not resolve (or not in time)
  not_public,      ///< the host is, or resolves to, an address that is not public
};

/// A refusal with a message naming the offending part ("userinfo is not allowed", ...).
struct policy_error {
  policy_error_kind kind = policy_error_kind::bad_url;
  std::string message;
};

/// Longest URL accepted.
inline constexpr std::size_t max_webhook_url_length = 2048;

/// Parses `url` under the webhook rules: scheme http or https (any case), then `//`; no
/// userinfo; a host that is a DNS name (letters, digits, `-`, `_`, dots; labels 1..63,
/// at most 253 characters), a dotted-quad IPv4 or a bracketed IPv6 without zone id; a
/// numeric-looking host that is not a canonical dotted quad ("2130706433", "0x7f.1",
/// "127.1") is refused; optional port 1..65535; path and query are kept, the fragment is
/// dropped. Whitespace, control and non-ASCII characters anywhere, and URLs longer than
/// max_webhook_url_length, are refused.
std::variant<webhook_url, policy_error> parse_webhook_url(std::string_view url);

/// The addresses a host name resolved to, or why it did not.
struct resolve_result {
  std::vector<ip_address> addresses;  ///< empty on failure
  std::string error;                  ///< "" on success
};

/// Resolves a host name; must return within about `timeout`. Tests inject fakes.
using resolver_fn =
    std::function<resolve_result(const std::string& host, std::chrono::milliseconds timeout)>;

/// Lookups running at once on helper threads (system_resolve, webhook_client); past it a
/// lookup fails at once with "too many DNS lookups in progress".
inline constexpr std::size_t max_pending_lookups = 64;

/// getaddrinfo (any family, TCP) on a detached helper thread, waited for at most `timeout`;
/// a lookup that takes longer is abandoned (its thread finishes on its own). IP literals
/// are answered without a lookup. Addresses come deduplicated, in resolver order.
resolve_result system_resolve(const std::string& host, std::chrono::milliseconds timeout);

/// Refuses `addresses` of `url.host` when any of them is not public (unless
/// `allow_private`) or when there are none; nothing when all pass.
std::optional<policy_error> vet_addresses(const webhook_url& url,
                                          const std::vector<ip_address>& addresses,
                                          bool allow_private);

/// A URL that passed check_url, with the addresses it was vetted for.
struct vetted_url {
  webhook_url url;
  std::vector<ip_address> addresses;  ///< connect only to these (with url.port)
};

/// Parses `url`, resolves its host (an IP literal is used as is; `resolver` empty =
/// system_resolve, bounded by `timeout`) and refuses it when ANY address is not public,
/// unless `allow_private`. Blocks up to about `timeout`: call it off the actor threads.
/// Used when a webhook is registered; webhook_client repeats the check per connection.
std::variant<vetted_url, policy_error> check_url(
    std::string_view url, bool allow_private, const resolver_fn& resolver = {},
    std::chrono::milliseconds timeout = std::chrono::milliseconds(5'000));

namespace detail {

/// getaddrinfo without a bound: for helper threads only (webhook_client's lookups).
resolve_result getaddrinfo_blocking(const std::string& host);

/// Runs `work` on a detached helper thread counted against max_pending_lookups; false (and
/// `work` not run) when that many are already running or no thread could be started.
bool run_detached_lookup(std::function<void()> work);

}  // namespace detail

}  // namespace si::net
