#include <catch2/catch.hpp>
#include <soci/soci.h>

#include <stdexcept>

#include "storage/cache_backend.hpp"
#include "storage/database.hpp"
#include "storage/glob.hpp"

using namespace si::storage;

namespace {

database_url parse_ok(const std::string& url) {
  auto parsed = parse_database_url(url);
  if (auto* error = std::get_if<std::string>(&parsed)) {
    FAIL("parse_database_url(" << url << ") failed: " << *error);
  }
  return std::get<database_url>(parsed);
}

std::string parse_error(const std::string& url) {
  auto parsed = parse_database_url(url);
  if (std::holds_alternative<database_url>(parsed)) {
    FAIL("parse_database_url(" << url << ") unexpectedly succeeded");
  }
  return std::get<std::string>(parsed);
}

}  // namespace

TEST_CASE("sqlite URLs select files or memory", "[storage]") {
  auto rel = parse_ok("sqlite://data/stellar-insights.db");
  CHECK(rel.kind == backend::sqlite);
  CHECK(rel.sqlite_path == "data/stellar-insights.db");
  CHECK(rel.connect_string == "data/stellar-insights.db");
  CHECK(rel.redacted == "sqlite://data/stellar-insights.db");

  auto abs = parse_ok("sqlite:///var/lib/si/x.db");
  CHECK(abs.sqlite_path == "/var/lib/si/x.db");

  auto spaced = parse_ok("sqlite:///tmp/my dir/x.db");
  CHECK(spaced.sqlite_path == "/tmp/my dir/x.db");

  for (const char* memory : {"sqlite::memory:", "sqlite://:memory:", "SQLITE::MEMORY:"}) {
    auto m = parse_ok(memory);
    CHECK(m.kind == backend::sqlite);
    CHECK(m.sqlite_path == ":memory:");
  }
}

TEST_CASE("bad database URLs are refused with a reason", "[storage]") {
  CHECK_THAT(parse_error(""), Catch::Contains("empty"));
  CHECK_THAT(parse_error("data/x.db"), Catch::Contains("'data/x.db' is not a URL"));
  const auto leaky = parse_error("postgresql:/si:hunter2@h/db");
  CHECK_THAT(leaky, Catch::Contains("not a URL"));
  CHECK(leaky.find("hunter2") == std::string::npos);
  const auto bad_escape = parse_error("postgresql://h/db?password=hunter2%zz");
  CHECK_THAT(bad_escape, Catch::Contains("'password'"));
  CHECK(bad_escape.find("hunter2") == std::string::npos);
  CHECK_THAT(parse_error("mysql://u@h/db"), Catch::Contains("'mysql' is not supported"));
  CHECK_THAT(parse_error("sqlite://"), Catch::Contains("no file path"));
  CHECK_THAT(parse_error("sqlite://data/"), Catch::Contains("directory"));
  CHECK_THAT(parse_error("sqlite://a=b.db"), Catch::Contains("'='"));
  CHECK_THAT(parse_error("sqlite://x.db?mode=ro"), Catch::Contains("query"));
  CHECK_THAT(parse_error("postgresql://h:99999/db"), Catch::Contains("port"));
  CHECK_THAT(parse_error("postgresql://h:0/db"), Catch::Contains("1..65535"));
  CHECK_THAT(parse_error("postgresql://h:abc/db"), Catch::Contains("port"));
  CHECK_THAT(parse_error("postgresql://h:/db"), Catch::Contains("port"));
  CHECK_THAT(parse_error("postgresql://u:p%zz@h/db"), Catch::Contains("%-escape"));
  CHECK_THAT(parse_error("postgresql://h/db?sslmode"), Catch::Contains("no '=value'"));
  CHECK_THAT(parse_error("postgresql://h/db?SSL Mode=x"), Catch::Contains("parameter name"));
  CHECK_THAT(parse_error("postgresql://h1,h2/db"), Catch::Contains("multiple hosts"));
  CHECK_THAT(parse_error("postgresql://h/a/b"), Catch::Contains("'/'"));
  // Every error says what would have been accepted.
  CHECK_THAT(parse_error("redis://h"), Catch::Contains("postgresql://"));
}

TEST_CASE("postgresql URLs become libpq conninfo strings", "[storage]") {
  auto full = parse_ok("postgresql://si:s3cret@db.example:5433/insights?sslmode=require");
  CHECK(full.kind == backend::postgresql);
  CHECK(full.sqlite_path.empty());
  CHECK(full.connect_string ==
        "host=db.example port=5433 dbname=insights user=si password=s3cret sslmode=require "
        "connect_timeout=10");
  CHECK(full.redacted == "postgresql://si:***@db.example:5433/insights?sslmode=require");

  auto alias = parse_ok("postgres://si@localhost/insights");
  CHECK(alias.kind == backend::postgresql);
  CHECK(alias.connect_string == "host=localhost dbname=insights user=si connect_timeout=10");
  CHECK(alias.redacted == "postgres://si@localhost/insights");

  // Percent-escapes are decoded; values with spaces or quotes are quoted for libpq.
  auto escaped = parse_ok("postgresql://user%40corp:p%40ss%20w'rd@[::1]:6000/my%20db");
  CHECK(escaped.connect_string ==
        "host=::1 port=6000 dbname='my db' user=user@corp password='p@ss w\\'rd' "
        "connect_timeout=10");
  CHECK(escaped.redacted == "postgresql://user%40corp:***@[::1]:6000/my%20db");

  // A password given as a query parameter is redacted too; a given timeout is kept.
  auto query = parse_ok("postgresql://h/db?password=hunter2&connect_timeout=3&application_name=si");
  CHECK(query.connect_string
        == "host=h dbname=db password=hunter2 connect_timeout=3 application_name=si");
  CHECK(query.redacted == "postgresql://h/db?password=***&connect_timeout=3&application_name=si");
  CHECK(query.redacted.find("hunter2") == std::string::npos);

  // Nothing but the scheme: libpq defaults (socket, user name) apply.
  auto bare = parse_ok("postgresql://");
  CHECK(bare.connect_string == "connect_timeout=10");
}

TEST_CASE("a failed connection names the redacted URL and the cause", "[storage]") {
  // Port 1 on loopback: refused at once, no server needed.
  auto url = parse_ok("postgresql://si:topsecret@127.0.0.1:1/db?connect_timeout=2");
  try {
    open_session(url);
    FAIL("open_session succeeded against a closed port");
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    CHECK_THAT(what, Catch::StartsWith("cannot open database postgresql://si:***@127.0.0.1:1/db"));
    CHECK_THAT(what, Catch::Contains("onnect"));
    CHECK(what.find("topsecret") == std::string::npos);
  }

  auto bad_file = parse_ok("sqlite:///dev/null/sub/x.db");
  CHECK_THROWS_WITH(open_session(bad_file),
                    Catch::StartsWith("cannot open database sqlite:///dev/null/sub/x.db: "));
}

TEST_CASE("redis URLs are validated", "[storage]") {
  for (const char* good :
       {"redis://localhost", "redis://127.0.0.1:6379", "redis://h:1/0", "redis://:p%40ss@h:6380/15",
        "redis://default:pw@[::1]:6379/2", "REDIS://h/"}) {
    INFO(good);
    CHECK(validate_redis_url(good).empty());
  }
  CHECK_THAT(validate_redis_url(""), Catch::Contains("not a URL"));
  CHECK_THAT(validate_redis_url("http://h"), Catch::Contains("'http' is not supported"));
  CHECK_THAT(validate_redis_url("rediss://h"), Catch::Contains("TLS"));
  CHECK_THAT(validate_redis_url("redis://"), Catch::Contains("no host"));
  CHECK_THAT(validate_redis_url("redis://h:0"), Catch::Contains("1..65535"));
  CHECK_THAT(validate_redis_url("redis://h:70000"), Catch::Contains("1..65535"));
  CHECK_THAT(validate_redis_url("redis://h:"), Catch::Contains("port"));
  CHECK_THAT(validate_redis_url("redis://[::1]:"), Catch::Contains("port"));
  CHECK_THAT(validate_redis_url("redis://h/x"), Catch::Contains("database"));
  CHECK_THAT(validate_redis_url("redis://h/-1"), Catch::Contains("database"));
  CHECK_THAT(validate_redis_url("redis://secret@h"), Catch::Contains("':'"));
  CHECK_THAT(validate_redis_url("redis://user:@h"), Catch::Contains("password"));
  CHECK_THAT(validate_redis_url("redis://h?db=1"), Catch::Contains("no query"));
  CHECK_THAT(validate_redis_url("redis://[::1"), Catch::Contains("IPv6"));

  redis_options bad;
  bad.url = "redis://h:abc";
  CHECK_THROWS_AS(make_redis_cache(bad), std::invalid_argument);
}

TEST_CASE("glob patterns follow Redis MATCH semantics", "[storage]") {
  CHECK(glob_match("*", ""));
  CHECK(glob_match("*", "anything"));
  CHECK(glob_match("corridors:*", "corridors:list:a"));
  CHECK_FALSE(glob_match("corridors:*", "anchors:1"));
  CHECK(glob_match("a?c", "abc"));
  CHECK_FALSE(glob_match("a?c", "ac"));
  CHECK_FALSE(glob_match("a?c", "abbc"));
  CHECK(glob_match("*:detail:*", "corridors:detail:x"));
  CHECK(glob_match("a*b*c", "axxbyyc"));
  CHECK_FALSE(glob_match("a*b*c", "axxbyy"));
  CHECK(glob_match("k[0-2]", "k1"));
  CHECK_FALSE(glob_match("k[0-2]", "k3"));
  CHECK(glob_match("k[^0-2]", "k3"));
  CHECK(glob_match("k[ab]x", "kbx"));
  CHECK(glob_match("a\\*b", "a*b"));
  CHECK_FALSE(glob_match("a\\*b", "axb"));
  CHECK(glob_match("**x", "x"));

  const std::string prefix = "si:[v1]*?:";
  CHECK(glob_escape(prefix) == "si:\\[v1\\]\\*\\?:");
  CHECK(glob_match(glob_escape(prefix) + "*", "si:[v1]*?:key"));
  CHECK_FALSE(glob_match(glob_escape(prefix) + "*", "si:v*?:key"));
  CHECK_FALSE(glob_match(prefix + "*", "si:[v1]*?:key"));  // unescaped, '[' is a class
}
