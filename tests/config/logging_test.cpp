#include <catch2/catch.hpp>

#include <chrono>
#include <ctime>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "config/logging.hpp"
#include "config/settings.hpp"

using namespace si::config;
using nlohmann::json;

namespace {

/// Sends log output to a string for one test, then back to stderr at the defaults.
class captured_logs {
 public:
  explicit captured_logs(const std::string& level = "info", log_format format = log_format::json) {
    reinit(level, format);
  }
  ~captured_logs() {
    init_logging(settings{});
  }
  captured_logs(const captured_logs&) = delete;
  captured_logs& operator=(const captured_logs&) = delete;

  void reinit(const std::string& level, log_format format) {
    settings s;
    s.log_level = level;
    s.log_fmt = format;
    init_logging(s, out_);
  }

  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    std::istringstream in(out_.str());
    std::string line;
    while (std::getline(in, line)) {
      out.push_back(line);
    }
    return out;
  }

  std::string text() const {
    return out_.str();
  }

 private:
  std::ostringstream out_;
};

/// Seconds between a "2026-11-25T14:00:00.123Z" stamp and now.
double seconds_from_now(const std::string& ts) {
  std::tm tm{};
  int millis = 0;
  REQUIRE(std::sscanf(ts.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon,
                      &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &millis)
          == 7);
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  auto stamp = static_cast<double>(timegm(&tm)) + millis / 1000.0;
  auto now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  return now - stamp;
}

const std::regex ts_regex{R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)"};

}  // namespace

TEST_CASE("json logs: one object per line with ts, level, logger, msg", "[config][logging]") {
  captured_logs logs;
  const std::string tricky = "say \"hi\"\nsecond line\t\\ end \x01 {\"not\":\"json\"} \xC3\xA9";
  logger("db")->info(tricky);
  logger("cache")->warn("plain");
  logger("http_gateway")->error("n={} s={}", 42, "x");

  auto lines = logs.lines();
  REQUIRE(lines.size() == 3);
  auto first = json::parse(lines[0]);
  CHECK(first.size() == 4);
  CHECK(first.at("level") == "info");
  CHECK(first.at("logger") == "db");
  CHECK(first.at("msg") == tricky);
  auto ts = first.at("ts").get<std::string>();
  CHECK(std::regex_match(ts, ts_regex));
  auto age = seconds_from_now(ts);
  CHECK(age >= -1.0);
  CHECK(age < 300.0);
  // The key order is part of the contract.
  CHECK(lines[0].rfind("{\"ts\":\"", 0) == 0);
  CHECK(lines[0].find("\",\"level\":\"info\",\"logger\":\"db\",\"msg\":\"") != std::string::npos);

  auto second = json::parse(lines[1]);
  CHECK(second.at("level") == "warn");
  CHECK(second.at("logger") == "cache");
  CHECK(second.at("msg") == "plain");

  auto third = json::parse(lines[2]);
  CHECK(third.at("level") == "error");
  CHECK(third.at("msg") == "n=42 s=x");
}

TEST_CASE("json logs: invalid UTF-8 still gives valid JSON", "[config][logging]") {
  captured_logs logs;
  logger("db")->info(std::string("bad \xFF byte, cut \xE2\x82, surrogate \xED\xA0\x80 ok"));
  auto lines = logs.lines();
  REQUIRE(lines.size() == 1);
  auto line = json::parse(lines[0]);  // throws on invalid UTF-8
  CHECK(line.at("msg").get<std::string>().rfind("bad \xEF\xBF\xBD byte", 0) == 0);
  CHECK(line.at("msg").get<std::string>().find(" ok") != std::string::npos);
}

TEST_CASE("text logs: a readable line", "[config][logging]") {
  captured_logs logs("info", log_format::text);
  logger("db")->info("hello world");
  logger("db")->critical("boom");
  auto lines = logs.lines();
  REQUIRE(lines.size() == 2);
  static const std::regex line_regex{
      R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z info \[db\] hello world)"};
  CHECK(std::regex_match(lines[0], line_regex));
  CHECK(lines[1].find(" critical [db] boom") != std::string::npos);
}

TEST_CASE("log level filters, and applies to loggers created before init", "[config][logging]") {
  auto early = logger("config_test_early");
  captured_logs logs("warn");
  auto late = logger("config_test_late");
  early->info("hidden");
  late->info("hidden");
  early->warn("shown early");
  late->error("shown late");
  auto lines = logs.lines();
  REQUIRE(lines.size() == 2);
  CHECK(json::parse(lines[0]).at("msg") == "shown early");
  CHECK(json::parse(lines[0]).at("logger") == "config_test_early");
  CHECK(json::parse(lines[1]).at("level") == "error");

  SECTION("re-initialising changes level and format of existing loggers") {
    logs.reinit("DEBUG", log_format::text);
    early->debug("now visible");
    auto after = logs.lines();
    REQUIRE(after.size() == 3);
    CHECK(after[2].find(" debug [config_test_early] now visible") != std::string::npos);
    CHECK(after[2].front() != '{');
  }
  SECTION("off silences everything") {
    logs.reinit("off", log_format::json);
    early->critical("silenced");
    late->critical("silenced");
    CHECK(logs.lines().size() == 2);
  }
}

TEST_CASE("spdlog's default logger follows the configuration", "[config][logging]") {
  captured_logs logs;
  spdlog::info("via default");
  auto lines = logs.lines();
  REQUIRE(lines.size() == 1);
  CHECK(json::parse(lines[0]).at("logger") == "main");
  CHECK(json::parse(lines[0]).at("msg") == "via default");
}

TEST_CASE("logger() returns one shared logger per subsystem, thread-safely", "[config][logging]") {
  captured_logs logs;
  CHECK(logger("db") == logger("db"));
  CHECK(logger("db") != logger("cache"));
  CHECK(logger("ws_hub")->name() == "ws_hub");

  constexpr int threads = 4;
  constexpr int per_thread = 50;
  std::vector<std::shared_ptr<spdlog::logger>> seen(threads);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([t, &seen] {
      seen[t] = logger("config_test_concurrent");
      for (int i = 0; i < per_thread; ++i) {
        logger("config_test_t" + std::to_string(t))->info("thread {} line {}", t, i);
      }
    });
  }
  for (auto& w : workers) {
    w.join();
  }
  for (const auto& l : seen) {
    CHECK(l == seen.front());
  }
  auto lines = logs.lines();
  REQUIRE(lines.size() == threads * per_thread);
  for (const auto& line : lines) {
    auto j = json::parse(line);  // every line is whole, none interleaved
    CHECK(j.at("msg").get<std::string>().rfind("thread ", 0) == 0);
  }
}

TEST_CASE("to_spdlog_level maps LOG_LEVEL names", "[config][logging]") {
  CHECK(to_spdlog_level("trace") == spdlog::level::trace);
  CHECK(to_spdlog_level("debug") == spdlog::level::debug);
  CHECK(to_spdlog_level("INFO") == spdlog::level::info);
  CHECK(to_spdlog_level("warn") == spdlog::level::warn);
  CHECK(to_spdlog_level("error") == spdlog::level::err);
  CHECK(to_spdlog_level("Critical") == spdlog::level::critical);
  CHECK(to_spdlog_level("off") == spdlog::level::off);
  CHECK(to_spdlog_level("bogus") == spdlog::level::info);
}
