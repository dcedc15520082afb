#include <catch2/catch.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include "config/settings.hpp"

using namespace si::config;
namespace fs = std::filesystem;

namespace {

/// A uniquely named file in the temp directory, removed at scope exit.
class temp_file {
 public:
  explicit temp_file(const std::string& content) {
    static std::atomic<int> counter{0};
    path_ = (fs::temp_directory_path()
             / ("si_dotenv_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++)
                + ".env"))
                .string();
    std::ofstream out(path_, std::ios::binary);
    out << content;
  }
  ~temp_file() {
    std::error_code ec;
    fs::remove(path_, ec);
  }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;

  const std::string& path() const {
    return path_;
  }

 private:
  std::string path_;
};

env_map parse_ok(const std::string& content) {
  temp_file file(content);
  auto result = read_dotenv(file.path());
  if (auto* err = std::get_if<config_error>(&result)) {
    FAIL("unexpected error: " << err->to_string());
  }
  return std::get<env_map>(result);
}

config_error parse_err(const std::string& content, std::string* path = nullptr) {
  temp_file file(content);
  if (path != nullptr) {
    *path = file.path();
  }
  auto result = read_dotenv(file.path());
  if (!std::holds_alternative<config_error>(result)) {
    FAIL("expected an error for: " << content);
  }
  return std::get<config_error>(result);
}

}  // namespace

TEST_CASE(".env: plain pairs, export, comments and blank lines", "[config][dotenv]") {
  auto m = parse_ok(
      "# a comment\n"
      "\n"
      "PORT=9000\n"
      "   \t\n"
      "export HOST=127.0.0.1\n"
      "export\tLOG_LEVEL=debug\n"
      "  DB_POOL_SIZE = 8  \n"
      "    # indented comment\n"
      "EMPTY=\n"
      "URL=postgres://db/si?a=b&c=d\n");
  CHECK(m.size() == 6);
  CHECK(m.at("PORT") == "9000");
  CHECK(m.at("HOST") == "127.0.0.1");
  CHECK(m.at("LOG_LEVEL") == "debug");
  CHECK(m.at("DB_POOL_SIZE") == "8");
  CHECK(m.at("EMPTY") == "");
  CHECK(m.at("URL") == "postgres://db/si?a=b&c=d");
}

TEST_CASE(".env: comments after unquoted values", "[config][dotenv]") {
  auto m = parse_ok(
      "A=value # trailing comment\n"
      "B=val#ue\n"
      "C=#not-a-comment\n"
      "D= # only a comment\n"
      "E=two words\t# tab before hash\n");
  CHECK(m.at("A") == "value");
  CHECK(m.at("B") == "val#ue");
  CHECK(m.at("C") == "#not-a-comment");
  CHECK(m.at("D") == "");
  CHECK(m.at("E") == "two words");
}

TEST_CASE(".env: quoted values", "[config][dotenv]") {
  auto m = parse_ok(
      "SINGLE='literal \\n # not a comment \"x\"'\n"
      "DOUBLE=\"line1\\nline2 \\\"quoted\\\" back\\\\slash \\t tab\"\n"
      "UNKNOWN_ESCAPE=\"a\\qb\"\n"
      "SPACES=\"  padded  \"\n"
      "AFTER='v' # comment after quotes\n"
      "EMPTY_SINGLE=''\n"
      "EMPTY_DOUBLE=\"\"\n"
      "HASH=\"a #b\"\n"
      "EQUALS='a=b'\n");
  CHECK(m.at("SINGLE") == "literal \\n # not a comment \"x\"");
  CHECK(m.at("DOUBLE") == "line1\nline2 \"quoted\" back\\slash \t tab");
  CHECK(m.at("UNKNOWN_ESCAPE") == "a\\qb");
  CHECK(m.at("SPACES") == "  padded  ");
  CHECK(m.at("AFTER") == "v");
  CHECK(m.at("EMPTY_SINGLE") == "");
  CHECK(m.at("EMPTY_DOUBLE") == "");
  CHECK(m.at("HASH") == "a #b");
  CHECK(m.at("EQUALS") == "a=b");
}

TEST_CASE(".env: CRLF line ends, a byte order mark, last key wins", "[config][dotenv]") {
  auto m = parse_ok("\xEF\xBB\xBFPORT=1\r\nPORT=2\r\nHOST='h'\r\nNO_NEWLINE_AT_END=x");
  CHECK(m.at("PORT") == "2");
  CHECK(m.at("HOST") == "h");
  CHECK(m.at("NO_NEWLINE_AT_END") == "x");
  CHECK(m.size() == 3);
}

TEST_CASE(".env: a missing file is an empty map", "[config][dotenv]") {
  auto path = (fs::temp_directory_path() / "si_dotenv_test_does_not_exist.env").string();
  REQUIRE_FALSE(fs::exists(path));
  auto result = read_dotenv(path);
  REQUIRE(std::holds_alternative<env_map>(result));
  CHECK(std::get<env_map>(result).empty());
}

TEST_CASE(".env: a directory is an error", "[config][dotenv]") {
  auto result = read_dotenv(fs::temp_directory_path().string());
  REQUIRE(std::holds_alternative<config_error>(result));
  CHECK(std::get<config_error>(result).variable == "DOTENV_PATH");
}

TEST_CASE(".env: malformed lines name the file and line number", "[config][dotenv]") {
  std::string path;
  SECTION("a line without '='") {
    auto err = parse_err("# header\nPORT=1\nthis line is wrong\nHOST=x\n", &path);
    CHECK(err.variable == "DOTENV_PATH");
    CHECK(err.message == path + ":3: expected KEY=value");
  }
  SECTION("invalid keys") {
    for (const char* line : {"1ABC=x", "MY-KEY=x", "=x", "MY KEY=x", "export =x"}) {
      INFO(line);
      auto err = parse_err(std::string("OK=1\n") + line + "\n", &path);
      CHECK(err.variable == "DOTENV_PATH");
      CHECK(err.message.rfind(path + ":2: invalid variable name", 0) == 0);
    }
  }
  SECTION("unterminated quotes") {
    auto single = parse_err("A='open\n", &path);
    CHECK(single.message == path + ":1: unterminated single quote in the value of A");
    auto dbl = parse_err("\n\nB=\"open \\\"\n", &path);
    CHECK(dbl.message == path + ":3: unterminated double quote in the value of B");
  }
  SECTION("text after a closing quote") {
    auto err = parse_err("A='x' y\n", &path);
    CHECK(err.message == path + ":1: unexpected text after the closing quote in the value of A");
  }
}

TEST_CASE(".env feeds load(), and the environment still wins", "[config][dotenv]") {
  temp_file file(
      "PORT=7000\n"
      "LOG_FORMAT=json\n"
      "SHUTDOWN_DB_TIMEOUT=\"2.5\"\n"
      "ADMIN_API_TOKEN='tok en'\n");
  auto dotenv = read_dotenv(file.path());
  REQUIRE(std::holds_alternative<env_map>(dotenv));
  auto result = load({{"PORT", "9000"}}, std::get<env_map>(dotenv));
  REQUIRE(std::holds_alternative<settings>(result));
  const auto& s = std::get<settings>(result);
  CHECK(s.port == 9000);
  CHECK(s.log_fmt == log_format::json);
  CHECK(s.shutdown_db_timeout == std::chrono::milliseconds{2500});
  CHECK(s.admin_api_token == std::optional<std::string>{"tok en"});
}
