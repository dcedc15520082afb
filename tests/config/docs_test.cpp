#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>

#include "config/settings.hpp"

using namespace si::config;

namespace {

const std::string docs_path = std::string(SI_SOURCE_DIR) + "/docs/configuration.md";
const std::string begin_marker = "<!-- settings-table:begin (generated from config/settings.cpp";
const std::string end_marker = "<!-- settings-table:end -->";

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

/// The table between the markers, or "" when a marker is missing.
std::string embedded_table(const std::string& doc) {
  auto begin = doc.find(begin_marker);
  auto end = doc.find(end_marker);
  if (begin == std::string::npos || end == std::string::npos || end < begin) {
    return {};
  }
  begin = doc.find('\n', begin);
  return doc.substr(begin + 1, end - begin - 1);
}

}  // namespace

TEST_CASE("docs/configuration.md embeds the settings table from the code", "[config][docs]") {
  auto doc = read_all(docs_path);
  REQUIRE_FALSE(doc.empty());
  INFO("regenerate with: test_config \"[.write-docs]\"");
  CHECK(embedded_table(doc) == settings_markdown_table());
}

TEST_CASE("the markdown table has one row per documented setting", "[config][docs]") {
  auto table = settings_markdown_table();
  std::istringstream lines(table);
  std::string line;
  std::size_t rows = 0;
  while (std::getline(lines, line)) {
    ++rows;
    // Four cells: five unescaped '|' per row.
    std::size_t bars = 0;
    for (std::size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '|' && (i == 0 || line[i - 1] != '\\')) {
        ++bars;
      }
    }
    INFO(line);
    CHECK(bars == 5);
  }
  CHECK(rows == documented_settings().size() + 2);
  for (const auto& d : documented_settings()) {
    CHECK(table.find("| `" + d.name + "` |") != std::string::npos);
  }
}

// Hidden: run `test_config "[.write-docs]"` to rewrite the table in docs/configuration.md.
TEST_CASE("write the settings table into docs/configuration.md", "[.write-docs]") {
  auto doc = read_all(docs_path);
  auto begin = doc.find(begin_marker);
  auto end = doc.find(end_marker);
  REQUIRE(begin != std::string::npos);
  REQUIRE(end != std::string::npos);
  auto after_begin = doc.find('\n', begin) + 1;
  doc.replace(after_begin, end - after_begin, settings_markdown_table());
  std::ofstream out(docs_path, std::ios::binary | std::ios::trunc);
  out << doc;
  REQUIRE(out.good());
}
