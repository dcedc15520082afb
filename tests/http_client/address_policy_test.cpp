// Tests of net/address_policy: address classification tables (every refused range, both
// sides of each boundary, IPv4 embedded in IPv6), URL parsing and its error messages, and
// check_url with fake resolvers and with the real `localhost`.

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "net/address_policy.hpp"

namespace {

using si::net::address_class;
using si::net::check_url;
using si::net::ip_address;
using si::net::parse_webhook_url;
using si::net::policy_error;
using si::net::policy_error_kind;
using si::net::resolve_result;
using si::net::vetted_url;
using si::net::webhook_url;

address_class class_of(const std::string& text) {
  auto ip = ip_address::parse(text);
  if (!ip) {
    FAIL("not an IP address: " << text);
  }
  return si::net::classify(*ip);
}

webhook_url parse_ok(const std::string& url) {
  auto r = parse_webhook_url(url);
  if (auto* e = std::get_if<policy_error>(&r)) {
    FAIL("expected '" << url << "' to parse, got: " << e->message);
  }
  return std::get<webhook_url>(r);
}

std::string parse_error(const std::string& url) {
  auto r = parse_webhook_url(url);
  if (std::holds_alternative<webhook_url>(r)) {
    FAIL("expected '" << url << "' to be refused");
  }
  auto e = std::get<policy_error>(r);
  CHECK(e.kind == policy_error_kind::bad_url);
  return e.message;
}

/// A resolver answering from a table and counting its calls.
struct fake_dns {
  std::map<std::string, resolve_result> answers;
  std::shared_ptr<std::atomic<int>> calls = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<std::atomic<long>> last_timeout = std::make_shared<std::atomic<long>>(0);

  void add(const std::string& host, const std::vector<std::string>& ips) {
    resolve_result r;
    for (const auto& text : ips) {
      r.addresses.push_back(*ip_address::parse(text));
    }
    answers[host] = r;
  }

  si::net::resolver_fn fn() const {
    return [answers = answers, calls = calls, last = last_timeout](
               const std::string& host, std::chrono::milliseconds timeout) {
      ++*calls;
      *last = static_cast<long>(timeout.count());
      auto it = answers.find(host);
      if (it == answers.end()) {
        return resolve_result{{}, "cannot resolve '" + host + "': Name or service not known"};
      }
      return it->second;
    };
  }
};

}  // namespace

TEST_CASE("address_policy: ip_address parses canonical forms only", "[address_policy]") {
  CHECK(ip_address::parse("192.0.2.1").has_value());
  CHECK(ip_address::parse("2001:db8::1").has_value());
  CHECK(ip_address::parse("::ffff:1.2.3.4").has_value());
  CHECK(ip_address::parse("::ffff:1.2.3.4")->v6);
  CHECK(ip_address::parse("1.2.3.4")->to_string() == "1.2.3.4");
  CHECK(ip_address::parse("2001:DB8:0:0::1")->to_string() == "2001:db8::1");
  for (const char* bad :
       {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "0x7f.0.0.1", "2130706433", "127.1",
        "1.2.3.4 ", "[::1]", "fe80::1%eth0", "::g", "example.com"}) {
    INFO(bad);
    CHECK_FALSE(ip_address::parse(bad).has_value());
  }
}

TEST_CASE("address_policy: public addresses, including both sides of every boundary",
          "[address_policy]") {
  for (const char* ip : {"8.8.8.8",
                         "1.1.1.1",
                         "93.184.216.34",
                         "1.0.0.0",
                         "9.255.255.255",
                         "11.0.0.0",
                         "100.63.255.255",
                         "100.128.0.0",
                         "126.255.255.255",
                         "128.0.0.0",
                         "169.253.255.255",
                         "169.255.0.0",
                         "172.15.255.255",
                         "172.32.0.0",
                         "192.0.1.255",
                         "192.0.3.0",
                         "192.88.98.255",
                         "192.88.100.0",
                         "192.167.255.255",
                         "192.169.0.0",
                         "198.17.255.255",
                         "198.20.0.0",
                         "198.51.99.255",
                         "198.51.101.0",
                         "203.0.112.255",
                         "203.0.114.0",
                         "223.255.255.255",
                         "168.63.129.15",
                         "169.254.169.255" /* link-local, see below */,
                         "2606:4700:4700::1111",
                         "2001:4860:4860::8888",
                         "2001:200::1",
                         "2001:db7:ffff::1",
                         "2001:db9::1",
                         "3ffe::1",
                         "3fff:1000::1",
                         "2000::1",
                         "3fff:fff:ffff::1" /* doc */,
                         "::ffff:8.8.8.8",
                         "::8.8.8.8",
                         "::ffff:0:8.8.8.8",
                         "64:ff9b::808:808",
                         "2002:808:808::1"}) {
    INFO(ip);
    auto c = class_of(ip);
    std::string s(ip);
    if (s == "169.254.169.255") {
      CHECK(c == address_class::link_local);  // neighbour of the metadata address
    } else if (s == "3fff:fff:ffff::1") {
      CHECK(c == address_class::documentation);  // last of 3fff::/20
    } else {
      CHECK(c == address_class::global);
      CHECK(si::net::is_public(*ip_address::parse(ip)));
    }
  }
}

TEST_CASE("address_policy: every refused range is classified", "[address_policy]") {
  const std::vector<std::pair<address_class, std::vector<const char*>>> table = {
      {address_class::unspecified,
       {"0.0.0.0", "0.1.2.3", "0.255.255.255", "::", "::ffff:0.0.0.0", "::0.0.0.2"}},
      {address_class::loopback,
       {"127.0.0.0", "127.0.0.1", "127.255.255.255", "::1", "::ffff:127.0.0.1", "::ffff:7f00:1",
        "::127.0.0.2", "::ffff:0:127.0.0.1", "64:ff9b::7f00:1", "64:ff9b::127.0.0.1",
        "2002:7f00:1::1"}},
      {address_class::private_use,
       {"10.0.0.0", "10.255.255.255", "172.16.0.0", "172.31.255.255", "192.168.0.0",
        "192.168.255.255", "fc00::", "fd12:3456::1", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fec0::1", "feff::1", "::ffff:10.0.0.1", "::ffff:192.168.1.1", "::ffff:172.16.0.1",
        "64:ff9b::a00:1", "2002:c0a8:101::1"}},
      {address_class::link_local,
       {"169.254.0.0", "169.254.0.1", "169.254.169.253", "169.254.255.255", "fe80::", "fe80::1",
        "febf:ffff::1", "::ffff:169.254.1.1"}},
      {address_class::cloud_metadata,
       {"169.254.169.254", "169.254.170.2", "100.100.100.200", "168.63.129.16", "192.0.0.192",
        "fd00:ec2::254", "::ffff:169.254.169.254", "::ffff:a9fe:a9fe", "64:ff9b::a9fe:a9fe",
        "::169.254.169.254", "2002:a9fe:a9fe::1"}},
      {address_class::shared_cgnat,
       {"100.64.0.0", "100.64.0.1", "100.127.255.255", "::ffff:100.64.0.1"}},
      {address_class::multicast,
       {"224.0.0.0", "224.0.0.1", "239.255.255.255", "ff00::", "ff02::1", "ff0e::1",
        "::ffff:224.0.0.1"}},
      {address_class::broadcast, {"255.255.255.255", "::ffff:255.255.255.255"}},
      {address_class::reserved,
       {"240.0.0.0", "250.1.2.3", "255.255.255.254", "::2:0:0", "1::1", "4000::1", "8000::1",
        "e000::1", "fe00::1"}},
      {address_class::documentation,
       {"192.0.2.0", "192.0.2.255", "198.51.100.0", "198.51.100.255", "203.0.113.0",
        "203.0.113.255", "2001:db8::", "2001:db8:ffff:ffff::1", "3fff::", "3fff::1",
        "::ffff:192.0.2.1"}},
      {address_class::special_purpose,
       {"192.0.0.0", "192.0.0.8", "192.0.0.255", "192.88.99.0", "192.88.99.255", "198.18.0.0",
        "198.19.255.255", "100::", "100::ffff:ffff:ffff:ffff", "2001::", "2001:0:4136::1",
        "2001:1ff:ffff::1", "64:ff9b:1::1", "64:ff9b:1:ffff::1"}},
  };
  for (const auto& [expected, ips] : table) {
    for (const char* ip : ips) {
      INFO(ip << " expected " << si::net::to_string(expected));
      CHECK(class_of(ip) == expected);
      CHECK_FALSE(si::net::is_public(*ip_address::parse(ip)));
    }
  }
  CHECK(si::net::to_string(address_class::cloud_metadata) == "cloud metadata");
  CHECK(si::net::to_string(address_class::global) == "public");
}

TEST_CASE("address_policy: webhook URLs that parse", "[address_policy]") {
  auto u = parse_ok("https://example.com/hook");
  CHECK(u.https);
  CHECK(u.host == "example.com");
  CHECK(u.port == 443);
  CHECK(u.target == "/hook");
  CHECK_FALSE(u.host_is_ip);
  CHECK(u.host_header() == "example.com");
  CHECK(u.destination() == "https://example.com:443");

  u = parse_ok("http://Example.COM");
  CHECK_FALSE(u.https);
  CHECK(u.host == "example.com");
  CHECK(u.port == 80);
  CHECK(u.target == "/");

  u = parse_ok("HTTPS://hooks.example.com:8443/a/b?x=1&y=%20#fragment");
  CHECK(u.https);
  CHECK(u.port == 8443);
  CHECK(u.target == "/a/b?x=1&y=%20");
  CHECK(u.host_header() == "hooks.example.com:8443");

  CHECK(parse_ok("http://example.com?q=1").target == "/?q=1");
  CHECK(parse_ok("http://example.com#frag").target == "/");
  CHECK(parse_ok("http://example.com:443/").host_header() == "example.com:443");
  CHECK(parse_ok("https://hooks.example.com./x").host == "hooks.example.com.");
  CHECK(parse_ok("http://under_score-1.example.com/").host == "under_score-1.example.com");
  CHECK(parse_ok("http://xn--mnchen-3ya.de/").host == "xn--mnchen-3ya.de");

  u = parse_ok("http://[2001:DB8::1]:8080/x");
  CHECK(u.host == "2001:db8::1");
  CHECK(u.host_is_ip);
  CHECK(u.port == 8080);
  CHECK(u.host_header() == "[2001:db8::1]:8080");
  CHECK(u.destination() == "http://[2001:db8::1]:8080");

  u = parse_ok("http://93.184.216.34/");
  CHECK(u.host_is_ip);
  CHECK(u.host == "93.184.216.34");
  CHECK(parse_ok("http://example.com:65535/").port == 65535);
  CHECK(parse_ok("http://example.com:1/").port == 1);
}

TEST_CASE("address_policy: refused webhook URLs say why", "[address_policy]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "empty URL"},
      {"ftp://example.com/", "scheme 'ftp' not allowed"},
      {"file:///etc/passwd", "scheme 'file' not allowed"},
      {"gopher://127.0.0.1:6379/_INFO", "scheme 'gopher' not allowed"},
      {"javascript:alert(1)", "scheme 'javascript' not allowed"},
      {"example.com/hook", "not an absolute URL"},
      {"http:/example.com", "expected '//' after 'http:'"},
      {"https:example.com", "expected '//' after 'https:'"},
      {"http://user:pass@example.com/", "userinfo"},
      {"http://user@example.com/", "userinfo"},
      {"http://example.com@127.0.0.1/", "userinfo"},
      {"http://example.com\\@evil.com/", "userinfo"},
      {"http://evil.com\\.example.com/", "backslash"},
      {"http:///path", "empty host"},
      {"http://:80/", "empty host"},
      {"http://?x", "empty host"},
      {"http://example.com:0/", "out of range"},
      {"http://example.com:65536/", "out of range"},
      {"http://example.com:99999/", "out of range"},
      {"http://example.com:123456/", "bad port"},
      {"http://example.com:8a/", "bad port"},
      {"http://example.com:-1/", "bad port"},
      {"http://example.com:/", "empty port"},
      {"http://exa mple.com/", "whitespace or control character at position 10"},
      {"http://example.com/a b", "whitespace"},
      {"http://example.com/\t", "whitespace or control"},
      {"http://example.com/\x7f", "control"},
      {"http://example.com/\r\nX-Injected: 1", "control"},
      {"http://ex\xc3\xa4mple.com/", "non-ASCII character at position 9"},
      {"http://example.com/\xe2\x82\xac", "non-ASCII"},
      {"http://[fe80::1%25eth0]/", "zone"},
      {"http://[::1/", "unterminated"},
      {"http://[127.0.0.1]/", "bad IPv6 address"},
      {"http://[::1]x/", "unexpected characters after ']'"},
      {"http://2130706433/", "numeric host '2130706433'"},
      {"http://0x7f.0.0.1/", "numeric host"},
      {"http://0x7f000001/", "numeric host"},
      {"http://127.1/", "numeric host"},
      {"http://0177.0.0.1/", "numeric host"},
      {"http://1.2.3.4.5/", "numeric host"},
      {"http://exa$mple.com/", "character '$' not allowed"},
      {"http://%65xample.com/", "character '%' not allowed"},
      {"http://a..b.example.com/", "empty label"},
      {"http://.example.com/", "empty label"},
      {"http://" + std::string(64, 'a') + ".com/", "longer than 63"},
      {"http://" + std::string(250, 'a').insert(60, ".").insert(120, ".").insert(180, ".")
           + ".com/",
       "longer than 253"},
      {"http://example.com/" + std::string(2048, 'a'), "longer than 2048"},
  };
  for (const auto& [url, expected] : cases) {
    INFO(url);
    std::string message = parse_error(url);
    INFO(message);
    CHECK(message.find(expected) != std::string::npos);
  }
}

TEST_CASE("address_policy: check_url with a fake resolver", "[address_policy]") {
  fake_dns dns;
  dns.add("public.example", {"93.184.216.34", "2606:2800:220:1::1"});
  dns.add("rebind.example", {"127.0.0.1"});
  dns.add("mixed.example", {"93.184.216.34", "10.0.0.1"});
  dns.add("mapped.example", {"::ffff:169.254.169.254"});
  dns.add("empty.example", {});
  auto resolver = dns.fn();

  SECTION("a public name passes with the addresses it was vetted for") {
    auto r = check_url("https://public.example/hook", false, resolver, std::chrono::seconds(3));
    REQUIRE(std::holds_alternative<vetted_url>(r));
    auto& v = std::get<vetted_url>(r);
    CHECK(v.url.host == "public.example");
    CHECK(v.url.port == 443);
    REQUIRE(v.addresses.size() == 2);
    CHECK(v.addresses[0].to_string() == "93.184.216.34");
    CHECK(v.addresses[1].to_string() == "2606:2800:220:1::1");
    CHECK(*dns.last_timeout == 3000);  // the bound is handed to the resolver
  }
  SECTION("a public-looking name resolving to 127.0.0.1 is refused") {
    auto r = check_url("https://rebind.example/hook", false, resolver);
    REQUIRE(std::holds_alternative<policy_error>(r));
    auto& e = std::get<policy_error>(r);
    CHECK(e.kind == policy_error_kind::not_public);
    CHECK(e.message.find("rebind.example") != std::string::npos);
    CHECK(e.message.find("127.0.0.1") != std::string::npos);
    CHECK(e.message.find("loopback") != std::string::npos);
  }
  SECTION("allow_private accepts it") {
    auto r = check_url("https://rebind.example/hook", true, resolver);
    REQUIRE(std::holds_alternative<vetted_url>(r));
    CHECK(std::get<vetted_url>(r).addresses.at(0).to_string() == "127.0.0.1");
  }
  SECTION("mixed public and private answers are refused") {
    auto r = check_url("http://mixed.example/", false, resolver);
    REQUIRE(std::holds_alternative<policy_error>(r));
    auto& e = std::get<policy_error>(r);
    CHECK(e.kind == policy_error_kind::not_public);
    CHECK(e.message.find("10.0.0.1") != std::string::npos);
    CHECK(e.message.find("private") != std::string::npos);
  }
  SECTION("an IPv4-mapped metadata address is refused") {
    auto r = check_url("http://mapped.example/", false, resolver);
    REQUIRE(std::holds_alternative<policy_error>(r));
    CHECK(std::get<policy_error>(r).message.find("cloud metadata") != std::string::npos);
  }
  SECTION("lookup failures and empty answers are resolve_failed") {
    auto r = check_url("http://nowhere.example/", false, resolver);
    REQUIRE(std::holds_alternative<policy_error>(r));
    CHECK(std::get<policy_error>(r).kind == policy_error_kind::resolve_failed);
    CHECK(std::get<policy_error>(r).message.find("nowhere.example") != std::string::npos);
    r = check_url("http://empty.example/", true, resolver);
    REQUIRE(std::holds_alternative<policy_error>(r));
    CHECK(std::get<policy_error>(r).kind == policy_error_kind::resolve_failed);
  }
  SECTION("IP literals are vetted without a lookup") {
    auto r = check_url("http://169.254.169.254/latest/meta-data/", false, resolver);
    REQUIRE(std::holds_alternative<policy_error>(r));
    CHECK(std::get<policy_error>(r).kind == policy_error_kind::not_public);
    CHECK(std::get<policy_error>(r).message.find("cloud metadata") != std::string::npos);
    r = check_url("http://[::ffff:127.0.0.1]:8080/", false, resolver);
    REQUIRE(std::holds_alternative<policy_error>(r));
    CHECK(std::get<policy_error>(r).message.find("loopback") != std::string::npos);
    r = check_url("http://[2606:4700:4700::1111]/", false, resolver);
    REQUIRE(std::holds_alternative<vetted_url>(r));
    CHECK(*dns.calls == 0);
  }
  SECTION("a bad URL is refused before any lookup") {
    auto r = check_url("http://user@public.example/", false, resolver);
    REQUIRE(std::holds_alternative<policy_error>(r));
    CHECK(std::get<policy_error>(r).kind == policy_error_kind::bad_url);
    CHECK(*dns.calls == 0);
  }
}

TEST_CASE("address_policy: check_url with the real resolver and localhost", "[address_policy]") {
  auto refused = check_url("http://localhost:8080/hook", false);
  REQUIRE(std::holds_alternative<policy_error>(refused));
  CHECK(std::get<policy_error>(refused).kind == policy_error_kind::not_public);
  CHECK(std::get<policy_error>(refused).message.find("loopback") != std::string::npos);

  auto allowed = check_url("http://localhost:8080/hook", true);
  REQUIRE(std::holds_alternative<vetted_url>(allowed));
  auto& v = std::get<vetted_url>(allowed);
  REQUIRE_FALSE(v.addresses.empty());
  for (const auto& ip : v.addresses) {
    INFO(ip.to_string());
    CHECK(si::net::classify(ip) == address_class::loopback);
  }

  auto literal = si::net::system_resolve("127.0.0.1", std::chrono::milliseconds(1));
  CHECK(literal.error.empty());
  REQUIRE(literal.addresses.size() == 1);
  CHECK(literal.addresses[0].to_string() == "127.0.0.1");
}

TEST_CASE("address_policy: vet_addresses refuses an empty answer and names the address",
          "[address_policy]") {
  auto url = parse_ok("http://hooks.example/");
  auto e = si::net::vet_addresses(url, {}, true);
  REQUIRE(e.has_value());
  CHECK(e->kind == policy_error_kind::resolve_failed);
  auto ok = si::net::vet_addresses(url, {*ip_address::parse("93.184.216.34")}, false);
  CHECK_FALSE(ok.has_value());
  auto bad = si::net::vet_addresses(
      url, {*ip_address::parse("93.184.216.34"), *ip_address::parse("fd00:ec2::254")}, false);
  REQUIRE(bad.has_value());
  CHECK(bad->kind == policy_error_kind::not_public);
  CHECK(bad->message.find("fd00:ec2::254") != std::string::npos);
}
