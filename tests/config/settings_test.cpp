#include <catch2/catch.hpp>

#include <cstdlib>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/settings.hpp"

using namespace si::config;
using std::chrono::milliseconds;

namespace {

settings load_ok(const env_map& env, const env_map& dotenv = {}) {
  auto result = load(env, dotenv);
  if (auto* err = std::get_if<config_error>(&result)) {
    FAIL("unexpected config error: " << err->to_string());
  }
  return std::get<settings>(result);
}

config_error load_err(const env_map& env, const env_map& dotenv = {}) {
  auto result = load(env, dotenv);
  if (!std::holds_alternative<config_error>(result)) {
    FAIL("expected a config error, got settings: " << describe(std::get<settings>(result)));
  }
  return std::get<config_error>(result);
}

/// Sets an environment variable for one scope, restoring the previous state afterwards.
class scoped_env {
 public:
  scoped_env(std::string name, const char* value) : name_(std::move(name)) {
    if (const char* old = std::getenv(name_.c_str()); old != nullptr) {
      old_ = old;
    }
    if (value != nullptr) {
      ::setenv(name_.c_str(), value, 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  ~scoped_env() {
    if (old_) {
      ::setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  scoped_env(const scoped_env&) = delete;
  scoped_env& operator=(const scoped_env&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

}  // namespace

TEST_CASE("defaults: no variables gives the documented defaults", "[config]") {
  auto s = load_ok({});
  CHECK(s.host == "0.0.0.0");
  CHECK(s.port == 8080);
  CHECK(s.http_threads == 0);
  CHECK(s.actor_threads == 0);
  CHECK(s.database_url == "sqlite://data/stellar-insights.db");
  CHECK_FALSE(s.redis_url.has_value());
  CHECK(s.horizon_url == "https://horizon.stellar.org");
  CHECK_FALSE(s.admin_api_token.has_value());
  CHECK(s.log_level == "info");
  CHECK(s.log_fmt == log_format::text);
  CHECK(s.shutdown_graceful_timeout == milliseconds{30'000});
  CHECK(s.shutdown_background_timeout == milliseconds{10'000});
  CHECK(s.shutdown_db_timeout == milliseconds{5'000});
  CHECK(s.shutdown_cache_timeout == milliseconds{5'000});
  CHECK(s.shutdown_ws_grace == milliseconds{500});
  CHECK(s.shutdown_ws_timeout == milliseconds{5'000});
  CHECK(s.shutdown_drain_delay == milliseconds{0});
  CHECK(s.shutdown_hard_timeout == milliseconds{60'000});
  CHECK_FALSE(s.shutdown_report_path.has_value());
  CHECK(s.supervisor_max_restarts == 5);
  CHECK(s.supervisor_restart_window == milliseconds{60'000});
  CHECK(s.supervisor_backoff_min == milliseconds{100});
  CHECK(s.supervisor_backoff_max == milliseconds{5'000});
  CHECK(s.db_pool_size == 4);
  CHECK(s.db_query_timeout == milliseconds{10'000});
  CHECK(s.cache_max_entries == 10'000);
  CHECK(s.cache_default_ttl == milliseconds{60'000});
  CHECK(s.cache_op_timeout == milliseconds{250});
  CHECK(s.redis_reconnect_min == milliseconds{100});
  CHECK(s.redis_reconnect_max == milliseconds{5'000});
}

TEST_CASE("defaults: the table's default texts equal the struct's defaults", "[config]") {
  // describe() renders every setting, so equal renderings mean equal values.
  CHECK(describe(load_ok({})) == describe(settings{}));
}

TEST_CASE("precedence: the environment wins over .env, .env over defaults", "[config]") {
  SECTION("env beats dotenv") {
    auto s = load_ok({{"PORT", "9000"}}, {{"PORT", "7000"}});
    CHECK(s.port == 9000);
  }
  SECTION("dotenv beats the default") {
    auto s = load_ok({}, {{"PORT", "7000"}, {"LOG_LEVEL", "debug"}});
    CHECK(s.port == 7000);
    CHECK(s.log_level == "debug");
  }
  SECTION("both sources contribute different variables") {
    auto s = load_ok({{"HOST", "127.0.0.1"}}, {{"DB_POOL_SIZE", "8"}});
    CHECK(s.host == "127.0.0.1");
    CHECK(s.db_pool_size == 8);
  }
  SECTION("a valid env value hides an invalid dotenv value") {
    auto s = load_ok({{"PORT", "9000"}}, {{"PORT", "nope"}});
    CHECK(s.port == 9000);
  }
  SECTION("an invalid dotenv value is reported like an env value") {
    auto err = load_err({}, {{"PORT", "nope"}});
    CHECK(err.variable == "PORT");
  }
  SECTION("an empty env value overrides dotenv (and empty means unset for optionals)") {
    auto s = load_ok({{"REDIS_URL", ""}}, {{"REDIS_URL", "redis://cache:6379"}});
    CHECK_FALSE(s.redis_url.has_value());
  }
}

TEST_CASE("valid values are typed and converted", "[config]") {
  SECTION("seconds accept fractions and become milliseconds") {
    auto s = load_ok({{"SHUTDOWN_DB_TIMEOUT", "0.5"},
                      {"SHUTDOWN_CACHE_TIMEOUT", "1.25"},
                      {"SHUTDOWN_DRAIN_DELAY", "0"},
                      {"SHUTDOWN_WS_TIMEOUT", "2.0004"},
                      {"SHUTDOWN_BACKGROUND_TIMEOUT", "0.0005"},
                      {"SHUTDOWN_HARD_TIMEOUT", "86400"},
                      {"SUPERVISOR_RESTART_WINDOW", "007"},
                      {"DB_QUERY_TIMEOUT", "3.000"},
                      {"CACHE_DEFAULT_TTL", "86399.999"}});
    CHECK(s.shutdown_db_timeout == milliseconds{500});
    CHECK(s.shutdown_cache_timeout == milliseconds{1250});
    CHECK(s.shutdown_drain_delay == milliseconds{0});
    CHECK(s.shutdown_ws_timeout == milliseconds{2000});
    CHECK(s.shutdown_background_timeout == milliseconds{1});  // rounded to nearest ms
    CHECK(s.shutdown_hard_timeout == milliseconds{86'400'000});
    CHECK(s.supervisor_restart_window == milliseconds{7000});
    CHECK(s.db_query_timeout == milliseconds{3000});
    CHECK(s.cache_default_ttl == milliseconds{86'399'999});
  }
  SECTION("integers and milliseconds at their bounds") {
    auto s = load_ok({{"PORT", "65535"},
                      {"HTTP_THREADS", "256"},
                      {"ACTOR_THREADS", "1"},
                      {"DB_POOL_SIZE", "64"},
                      {"CACHE_MAX_ENTRIES", "100000000"},
                      {"SUPERVISOR_MAX_RESTARTS", "0"},
                      {"CACHE_OP_TIMEOUT_MS", "60000"},
                      {"SHUTDOWN_WS_GRACE_MS", "0"},
                      {"SUPERVISOR_BACKOFF_MIN_MS", "0"},
                      {"SUPERVISOR_BACKOFF_MAX_MS", "86400000"},
                      {"REDIS_RECONNECT_MIN_MS", "250"},
                      {"REDIS_RECONNECT_MAX_MS", "250"}});
    CHECK(s.port == 65535);
    CHECK(s.http_threads == 256);
    CHECK(s.actor_threads == 1);
    CHECK(s.db_pool_size == 64);
    CHECK(s.cache_max_entries == 100'000'000);
    CHECK(s.supervisor_max_restarts == 0);
    CHECK(s.cache_op_timeout == milliseconds{60'000});
    CHECK(s.shutdown_ws_grace == milliseconds{0});
    CHECK(s.supervisor_backoff_min == milliseconds{0});
    CHECK(s.supervisor_backoff_max == milliseconds{86'400'000});
    CHECK(s.redis_reconnect_min == milliseconds{250});
    CHECK(s.redis_reconnect_max == milliseconds{250});
    CHECK(load_ok({{"PORT", "1"}}).port == 1);
  }
  SECTION("log level and format are case-insensitive, level stored lowercase") {
    auto s = load_ok({{"LOG_LEVEL", "WARN"}, {"LOG_FORMAT", "Json"}});
    CHECK(s.log_level == "warn");
    CHECK(s.log_fmt == log_format::json);
    for (const char* level : {"trace", "debug", "info", "warn", "error", "critical", "off"}) {
      CHECK(load_ok({{"LOG_LEVEL", level}}).log_level == level);
    }
    CHECK(load_ok({{"LOG_FORMAT", "text"}}).log_fmt == log_format::text);
  }
  SECTION("URLs") {
    for (const char* url : {"sqlite://data/x.db", "sqlite:///abs/path.db",
                            "sqlite::memory:", "postgresql://u:p@db:5432/si", "postgres://db/si"}) {
      CHECK(load_ok({{"DATABASE_URL", url}}).database_url == url);
    }
    for (const char* url : {"http://localhost:8000", "https://horizon-testnet.stellar.org/",
                            "https://[::1]:8443/horizon", "http://10.0.0.1"}) {
      CHECK(load_ok({{"HORIZON_URL", url}}).horizon_url == url);
    }
    auto s = load_ok({{"REDIS_URL", "redis://:pw@cache:6379/0"}});
    REQUIRE(s.redis_url.has_value());
    CHECK(*s.redis_url == "redis://:pw@cache:6379/0");
  }
  SECTION("optional texts: empty is unset") {
    auto unset = load_ok({{"ADMIN_API_TOKEN", ""}, {"SHUTDOWN_REPORT_PATH", ""}});
    CHECK_FALSE(unset.admin_api_token.has_value());
    CHECK_FALSE(unset.shutdown_report_path.has_value());
    auto set = load_ok({{"ADMIN_API_TOKEN", "s3cret"}, {"SHUTDOWN_REPORT_PATH", "/tmp/r.json"}});
    CHECK(set.admin_api_token == std::optional<std::string>{"s3cret"});
    CHECK(set.shutdown_report_path == std::optional<std::string>{"/tmp/r.json"});
  }
}

namespace {

/// At least one bad value for every setting that can be invalid.
const std::vector<std::pair<std::string, std::vector<std::string>>>& bad_values() {
  static const std::vector<std::pair<std::string, std::vector<std::string>>> v{
      {"HOST", {"", "my host", " 0.0.0.0"}},
      {"PORT",
       {"0", "65536", "80a", "-1", " 80", "abc", "8080.0", "+80", "", "99999999999999999999999"}},
      {"HTTP_THREADS", {"257", "-1", "x", "1.5"}},
      {"ACTOR_THREADS", {"257", "two", ""}},
      {"ACTOR_IDLE_STEAL_MS", {"0", "1001", "0.5", "-1", ""}},
      {"SQLITE_CACHE_MB", {"0", "4097", "1.5", "64M", ""}},
      {"DATABASE_URL", {"mysql://u@h/db", "", "sqlite://", "data.db", "SQLITE://x.db"}},
      {"REDIS_URL", {"http://localhost", "redis://", "localhost:6379"}},
      {"HORIZON_URL",
       {"ftp://x", "https://", "horizon.stellar.org", "http://:80", "https://host:99999",
        "https://ho st", ""}},
      {"LOG_LEVEL", {"verbose", "", "warning"}},
      {"LOG_FORMAT", {"xml", "", "logfmt"}},
      {"SHUTDOWN_GRACEFUL_TIMEOUT", {"abc", "-1", "1e3", "0.5s", ""}},
      {"SHUTDOWN_BACKGROUND_TIMEOUT", {"86400.5", ".5", "1.", "nan"}},
      {"SHUTDOWN_DB_TIMEOUT", {"abc", "inf", " 5", "5 "}},
      {"SHUTDOWN_CACHE_TIMEOUT", {"-0.5", "86401", "1,5"}},
      {"SHUTDOWN_WS_GRACE_MS", {"0.5", "-1", "86400001", "x"}},
      {"SHUTDOWN_WS_TIMEOUT", {"ten", "1..2"}},
      {"SHUTDOWN_DRAIN_DELAY", {"-2", "0x10"}},
      {"SHUTDOWN_HARD_TIMEOUT", {"0", "0.0", "0.0004", "abc", "100000"}},
      {"SUPERVISOR_MAX_RESTARTS", {"1001", "-1", "many"}},
      {"SUPERVISOR_RESTART_WINDOW", {"1m", "-60"}},
      {"SUPERVISOR_BACKOFF_MIN_MS", {"1.5", "x", "86400001"}},
      {"SUPERVISOR_BACKOFF_MAX_MS", {"-5", "5s"}},
      {"DB_POOL_SIZE", {"0", "65", "four"}},
      {"DB_QUEUE_LIMIT", {"0", "1000001", "lots"}},
      {"HTTP_READ_HEADER_TIMEOUT", {"0", "abc"}},
      {"HTTP_HEADER_LIMIT", {"10", "2000000"}},
      {"HTTP_BODY_LIMIT", {"x", "-1"}},
      {"HTTP_MAX_CONNECTIONS", {"0"}},
      {"HTTP_MAX_PIPELINED", {"0", "1025"}},
      {"HTTP_UPSTREAM_TIMEOUT_MS", {"0", "1s"}},
      {"SHUTDOWN_IDLE_WINDOW_MS", {"60001", "x"}},
      {"HTTP_TEST_ROUTES", {"yes", "TRUE", ""}},
      {"TEST_HANG_ON_DRAIN", {"gateway", "db,", ",db", "db,,cache", "DB"}},
      {"HTTP_READ_BODY_TIMEOUT", {"0"}},
      {"HTTP_WRITE_TIMEOUT", {"0"}},
      {"HTTP_IDLE_TIMEOUT", {"0"}},
      {"DB_QUERY_TIMEOUT", {"10s", "-10"}},
      {"CACHE_MAX_ENTRIES", {"0", "100000001", "1e4"}},
      {"CACHE_DEFAULT_TTL", {"forever", "99999"}},
      {"CACHE_OP_TIMEOUT_MS", {"0", "60001", "0.5"}},
      {"REDIS_RECONNECT_MIN_MS", {"x", "-5"}},
      {"REDIS_RECONNECT_MAX_MS", {"1e3", "86400001"}},
      {"HORIZON_TIMEOUT_MS", {"0", "10s", "600001"}},
      {"HORIZON_CONNECT_TIMEOUT_MS", {"0", "-1"}},
      {"HORIZON_MAX_RETRIES", {"101", "three"}},
      {"HORIZON_RATE_LIMIT", {"1.5", "-1", "100001"}},
      {"HORIZON_BREAKER_THRESHOLD", {"1001", "x"}},
      {"HORIZON_BREAKER_COOLDOWN_MS", {"30s", "86400001"}},
      {"INGEST_ENABLED", {"yes", "", "TRUE"}},
      {"INGEST_START_LEDGER", {"0", "4294967296", "Latest", "-5", "", "12a"}},
      {"INGEST_BATCH_LEDGERS", {"0", "201"}},
      {"INGEST_PAGE_LIMIT", {"0", "201", "max"}},
      {"INGEST_POLL_INTERVAL_MS", {"0", "1s"}},
      {"INGEST_BACKOFF_MIN_MS", {"0", "x"}},
      {"INGEST_BACKOFF_MAX_MS", {"0", "86400001"}},
      {"SYNC_ENABLED", {"no", "2"}},
      {"SYNC_METRICS_INTERVAL", {"0", "5m"}},
      {"SYNC_POOLS_INTERVAL", {"0", "-300"}},
      {"SYNC_TRUSTLINES_INTERVAL", {"0", "x"}},
      {"SYNC_POOLS_MAX", {"0", "100001"}},
      {"SYNC_ASSETS_MAX", {"0", "1000001"}},
      {"WS_MAX_CONNECTIONS", {"0", "lots"}},
      {"WS_MAX_MESSAGE_BYTES", {"63", "16777217"}},
      {"WS_MESSAGE_RATE", {"0", "1.5"}},
      {"WS_IDLE_TIMEOUT", {"0", "1m"}},
      {"WS_QUEUE_LIMIT", {"0", "x"}},
      {"WS_RECONNECT_AFTER_MS", {"-1", "1s"}},
      {"WEBHOOK_SECRET_KEY", {"short", "zz" + std::string(62, '0'), std::string(44, 'A')}},
      {"WEBHOOK_ALLOW_PRIVATE", {"yes", "on"}},
      {"WEBHOOK_TIMEOUT_MS", {"0", "600001"}},
      {"WEBHOOK_MAX_ATTEMPTS", {"0", "101"}},
      {"WEBHOOK_MAX_AGE", {"0", "1d"}},
      {"WEBHOOK_BACKOFF_MIN_MS", {"0", "x"}},
      {"WEBHOOK_BACKOFF_MAX_MS", {"0", "86400001"}},
      {"WEBHOOK_CONCURRENCY", {"0", "10001"}},
      {"WEBHOOK_PER_DESTINATION", {"0", "1001"}},
      {"WEBHOOK_POLL_INTERVAL_MS", {"0", "1s"}},
      {"WEBHOOK_LEASE_MS", {"0", "1m"}},
  };
  return v;
}

}  // namespace

TEST_CASE("invalid values: the error names the variable and quotes the value", "[config]") {
  for (const auto& [name, values] : bad_values()) {
    for (const auto& value : values) {
      INFO(name << "='" << value << "'");
      auto err = load_err({{name, value}});
      CHECK(err.variable == name);
      CHECK(err.message.rfind("must be ", 0) == 0);
      CHECK(err.message.find("got '" + value + "'") != std::string::npos);
      CHECK(err.to_string() == name + ": " + err.message);
    }
  }
}

TEST_CASE("invalid values: every setting that can be invalid is covered", "[config]") {
  std::set<std::string> covered;
  for (const auto& [name, values] : bad_values()) {
    covered.insert(name);
  }
  // Only these accept any text (empty = unset).
  const std::set<std::string> free_text{"ADMIN_API_TOKEN", "SHUTDOWN_REPORT_PATH",
                                        "HORIZON_CA_FILE", "WS_AUTH_TOKEN"};
  for (const auto& doc : documented_settings()) {
    INFO(doc.name);
    CHECK((covered.count(doc.name) + free_text.count(doc.name)) == 1);
  }
  CHECK(covered.size() + free_text.size() == documented_settings().size());
}

TEST_CASE("invalid values: messages say what is allowed", "[config]") {
  CHECK(load_err({{"SHUTDOWN_DB_TIMEOUT", "abc"}}).to_string() ==
        "SHUTDOWN_DB_TIMEOUT: must be a number of seconds >= 0 (fractions allowed, e.g. 0.5), "
        "at most 86400, got 'abc'");
  CHECK(load_err({{"PORT", "0"}}).to_string()
        == "PORT: must be an integer from 1 to 65535, got '0'");
  CHECK(load_err({{"SHUTDOWN_HARD_TIMEOUT", "0"}}).message.find("> 0") != std::string::npos);
  CHECK(load_err({{"DB_POOL_SIZE", "65"}}).message.find("from 1 to 64") != std::string::npos);
  CHECK(load_err({{"LOG_LEVEL", "loud"}})
            .message.find("trace, debug, info, warn, error, "
                          "critical, off")
        != std::string::npos);
  CHECK(load_err({{"LOG_FORMAT", "xml"}}).message.find("text or json") != std::string::npos);
  CHECK(load_err({{"CACHE_OP_TIMEOUT_MS", "0"}}).message.find("from 1 to 60000")
        != std::string::npos);
}

TEST_CASE("invalid values: quoted safely, URL passwords redacted", "[config]") {
  SECTION("control characters are escaped") {
    auto err = load_err({{"HOST", "a\nb"}});
    CHECK(err.message.find("got 'a\\nb'") != std::string::npos);
    CHECK(err.message.find('\n') == std::string::npos);
  }
  SECTION("very long values are cut") {
    auto err = load_err({{"PORT", std::string(500, '9')}});
    CHECK(err.message.size() < 200);
    CHECK(err.message.find("...'") != std::string::npos);
  }
  SECTION("a bad DATABASE_URL does not leak its password") {
    auto err = load_err({{"DATABASE_URL", "mysql://admin:hunter2@db/si"}});
    CHECK(err.variable == "DATABASE_URL");
    CHECK(err.message.find("hunter2") == std::string::npos);
    CHECK(err.message.find("mysql://admin:***@db/si") != std::string::npos);
  }
  SECTION("a bad REDIS_URL does not leak its password") {
    auto err = load_err({{"REDIS_URL", "rediss://:hunter2@cache:6380"}});
    CHECK(err.message.find("hunter2") == std::string::npos);
  }
}

TEST_CASE("cross-field checks", "[config]") {
  SECTION("SHUTDOWN_HARD_TIMEOUT must exceed SHUTDOWN_GRACEFUL_TIMEOUT") {
    auto equal = load_err({{"SHUTDOWN_HARD_TIMEOUT", "30"}});
    CHECK(equal.variable == "SHUTDOWN_HARD_TIMEOUT");
    CHECK(equal.message.find("SHUTDOWN_GRACEFUL_TIMEOUT") != std::string::npos);
    CHECK(equal.message.find("got '30'") != std::string::npos);
    auto below = load_err({{"SHUTDOWN_HARD_TIMEOUT", "20"}});
    CHECK(below.variable == "SHUTDOWN_HARD_TIMEOUT");
    // Raising the graceful timeout past the default hard timeout also names the hard one.
    auto graceful = load_err({{"SHUTDOWN_GRACEFUL_TIMEOUT", "90"}});
    CHECK(graceful.variable == "SHUTDOWN_HARD_TIMEOUT");
    CHECK(graceful.message.find("(90 s)") != std::string::npos);
    // Fractions compare exactly.
    auto ok = load_ok({{"SHUTDOWN_HARD_TIMEOUT", "30.001"}});
    CHECK(ok.shutdown_hard_timeout == milliseconds{30'001});
    // The sources mix: graceful from .env, hard from env (which hides the .env one).
    CHECK(load_err({{"SHUTDOWN_HARD_TIMEOUT", "10"}},
                   {{"SHUTDOWN_GRACEFUL_TIMEOUT", "15"}, {"SHUTDOWN_HARD_TIMEOUT", "99"}})
              .variable
          == "SHUTDOWN_HARD_TIMEOUT");
    CHECK(load_ok({{"SHUTDOWN_HARD_TIMEOUT", "10"}}, {{"SHUTDOWN_GRACEFUL_TIMEOUT", "5"}})
              .shutdown_hard_timeout
          == milliseconds{10'000});
  }
  SECTION("SUPERVISOR_BACKOFF_MIN_MS <= SUPERVISOR_BACKOFF_MAX_MS") {
    auto err = load_err({{"SUPERVISOR_BACKOFF_MIN_MS", "6000"}});
    CHECK(err.variable == "SUPERVISOR_BACKOFF_MIN_MS");
    CHECK(err.message.find("SUPERVISOR_BACKOFF_MAX_MS (5000 ms)") != std::string::npos);
    CHECK(err.message.find("got '6000'") != std::string::npos);
    auto lowered_max = load_err({{"SUPERVISOR_BACKOFF_MAX_MS", "50"}});
    CHECK(lowered_max.variable == "SUPERVISOR_BACKOFF_MIN_MS");
    auto s = load_ok({{"SUPERVISOR_BACKOFF_MIN_MS", "5000"}});
    CHECK(s.supervisor_backoff_min == s.supervisor_backoff_max);
  }
  SECTION("REDIS_RECONNECT_MIN_MS <= REDIS_RECONNECT_MAX_MS") {
    auto err = load_err({{"REDIS_RECONNECT_MIN_MS", "5001"}});
    CHECK(err.variable == "REDIS_RECONNECT_MIN_MS");
    CHECK(err.message.find("REDIS_RECONNECT_MAX_MS") != std::string::npos);
    auto lowered_max = load_err({}, {{"REDIS_RECONNECT_MAX_MS", "99"}});
    CHECK(lowered_max.variable == "REDIS_RECONNECT_MIN_MS");
    CHECK(load_ok({{"REDIS_RECONNECT_MIN_MS", "0"}, {"REDIS_RECONNECT_MAX_MS", "0"}})
              .redis_reconnect_max
          == milliseconds{0});
  }
  SECTION("INGEST_BACKOFF_MIN_MS <= INGEST_BACKOFF_MAX_MS") {
    auto err = load_err({{"INGEST_BACKOFF_MIN_MS", "60001"}});
    CHECK(err.variable == "INGEST_BACKOFF_MIN_MS");
    CHECK(err.message.find("INGEST_BACKOFF_MAX_MS (60000 ms)") != std::string::npos);
    CHECK(load_err({{"INGEST_BACKOFF_MAX_MS", "999"}}).variable == "INGEST_BACKOFF_MIN_MS");
    CHECK(load_ok({{"INGEST_BACKOFF_MAX_MS", "1000"}}).ingest_backoff_max == milliseconds{1000});
  }
  SECTION("INGEST_START_LEDGER: latest or a sequence") {
    CHECK(load_ok({}).ingest_start_ledger == 0);
    CHECK(load_ok({{"INGEST_START_LEDGER", "latest"}}).ingest_start_ledger == 0);
    CHECK(load_ok({{"INGEST_START_LEDGER", "1"}}).ingest_start_ledger == 1);
    CHECK(load_ok({{"INGEST_START_LEDGER", "4294967295"}}).ingest_start_ledger == 4294967295LL);
  }
  SECTION("WEBHOOK_LEASE_MS > WEBHOOK_TIMEOUT_MS, backoff min <= max") {
    auto err = load_err({{"WEBHOOK_LEASE_MS", "10000"}});
    CHECK(err.variable == "WEBHOOK_LEASE_MS");
    CHECK(err.message.find("WEBHOOK_TIMEOUT_MS (10000 ms)") != std::string::npos);
    CHECK(load_ok({{"WEBHOOK_LEASE_MS", "10001"}}).webhook_lease == milliseconds{10'001});
    CHECK(load_err({{"WEBHOOK_BACKOFF_MIN_MS", "3600001"}}).variable == "WEBHOOK_BACKOFF_MIN_MS");
    CHECK(load_ok({{"WEBHOOK_SECRET_KEY", std::string(64, 'a')}}).webhook_secret_key);
    CHECK(load_ok({{"WEBHOOK_SECRET_KEY", std::string(43, 'A') + "="}}).webhook_secret_key);
  }
  SECTION("a per-field error comes before a cross-field one") {
    auto err = load_err({{"SHUTDOWN_HARD_TIMEOUT", "1"}, {"PORT", "x"}});
    CHECK(err.variable == "PORT");
  }
}

TEST_CASE("read_process_env reads only known names plus DOTENV_PATH", "[config]") {
  scoped_env port("PORT", "12345");
  scoped_env dotenv("DOTENV_PATH", "/tmp/some.env");
  scoped_env unrelated("SI_CONFIG_TEST_UNRELATED", "x");
  scoped_env unset("LOG_FORMAT", nullptr);
  auto env = read_process_env();
  CHECK(env.at("PORT") == "12345");
  CHECK(env.at("DOTENV_PATH") == "/tmp/some.env");
  CHECK(env.count("SI_CONFIG_TEST_UNRELATED") == 0);
  CHECK(env.count("LOG_FORMAT") == 0);
  CHECK(env.count("PATH") == 0);
  CHECK(unknown_names(env).empty());
  CHECK(load_ok(env).port == 12345);
}

TEST_CASE("dotenv_path and unknown_names", "[config]") {
  CHECK(dotenv_path({}) == ".env");
  CHECK(dotenv_path({{"DOTENV_PATH", ""}}) == ".env");
  CHECK(dotenv_path({{"DOTENV_PATH", "/etc/si.env"}}) == "/etc/si.env");
  auto unknown =
      unknown_names({{"PORT", "1"}, {"PROT", "2"}, {"DOTENV_PATH", "x"}, {"LOG_LEVELS", "info"}});
  CHECK(unknown == std::vector<std::string>{"LOG_LEVELS", "PROT"});
}

TEST_CASE("describe renders every setting and redacts secrets", "[config]") {
  auto s = load_ok({{"ADMIN_API_TOKEN", "tok-hunter2"},
                    {"DATABASE_URL", "postgresql://si:pg-hunter2@db:5432/si?sslmode=require"},
                    {"REDIS_URL", "redis://default:redis-hunter2@cache:6379/0"},
                    {"SHUTDOWN_DB_TIMEOUT", "0.5"},
                    {"LOG_FORMAT", "json"}});
  auto text = describe(s);
  CHECK(text.find("hunter2") == std::string::npos);
  auto j = nlohmann::json::parse(text);
  CHECK(j.at("ADMIN_API_TOKEN") == "***");
  CHECK(j.at("DATABASE_URL") == "postgresql://si:***@db:5432/si?sslmode=require");
  CHECK(j.at("REDIS_URL") == "redis://default:***@cache:6379/0");
  CHECK(j.at("SHUTDOWN_DB_TIMEOUT") == 0.5);
  CHECK(j.at("SHUTDOWN_GRACEFUL_TIMEOUT") == 30);
  CHECK(j.at("SHUTDOWN_WS_GRACE_MS") == 500);
  CHECK(j.at("PORT") == 8080);
  CHECK(j.at("LOG_FORMAT") == "json");
  CHECK(j.at("SHUTDOWN_REPORT_PATH").is_null());
  CHECK(j.size() == documented_settings().size());
  for (const auto& doc : documented_settings()) {
    CHECK(j.contains(doc.name));
  }

  SECTION("other password spellings") {
    auto other = load_ok({{"DATABASE_URL", "postgres://db/si?user=si&password=q-hunter2&x=1"},
                          {"REDIS_URL", "redis://r-hunter2@cache:6379"}});
    auto out = describe(other);
    CHECK(out.find("hunter2") == std::string::npos);
    auto o = nlohmann::json::parse(out);
    CHECK(o.at("DATABASE_URL") == "postgres://db/si?user=si&password=***&x=1");
    CHECK(o.at("REDIS_URL") == "redis://***@cache:6379");
    CHECK(o.at("ADMIN_API_TOKEN").is_null());
  }
  SECTION("unsecret values round-trip through load") {
    auto plain = load_ok({{"SHUTDOWN_DB_TIMEOUT", "0.25"},
                          {"PORT", "81"},
                          {"LOG_LEVEL", "DEBUG"},
                          {"SHUTDOWN_REPORT_PATH", "/tmp/x.json"}});
    auto rendered = nlohmann::json::parse(describe(plain));
    env_map env;
    for (const auto& [key, value] : rendered.items()) {
      if (value.is_null()) {
        env[key] = "";
      } else if (value.is_string()) {
        env[key] = value.get<std::string>();
      } else {
        env[key] = value.dump();
      }
    }
    CHECK(describe(load_ok(env)) == describe(plain));
  }
}

TEST_CASE("help text lists options and every documented setting", "[config]") {
  auto help = help_text("stellar-insights");
  CHECK(help.rfind("Usage: stellar-insights", 0) == 0);
  for (const char* option : {"--help", "--version", "--check-config", "DOTENV_PATH"}) {
    CHECK(help.find(option) != std::string::npos);
  }
  REQUIRE(documented_settings().size() == 83);
  for (const auto& doc : documented_settings()) {
    INFO(doc.name);
    auto default_text = doc.default_value.empty() ? std::string("unset") : doc.default_value;
    CHECK(help.find("  " + doc.name + " (default: " + default_text + ")\n") != std::string::npos);
    CHECK_FALSE(doc.description.empty());
    CHECK_FALSE(doc.allowed.empty());
    // The first word of the description is there (descriptions are word-wrapped).
    CHECK(help.find(doc.description.substr(0, doc.description.find(' '))) != std::string::npos);
  }
  std::istringstream lines(help);
  std::string line;
  while (std::getline(lines, line)) {
    INFO(line);
    CHECK(line.size() <= 100);
  }
}

TEST_CASE("documented_settings are unique and in a stable order", "[config]") {
  std::set<std::string> names;
  for (const auto& doc : documented_settings()) {
    CHECK(names.insert(doc.name).second);
  }
  CHECK(documented_settings().front().name == "HOST");
  CHECK(documented_settings().back().name == "REDIS_RECONNECT_MAX_MS");
}
