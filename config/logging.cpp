#include "config/logging.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>
#include <ostream>

#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/dist_sink.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace si::config {

namespace {

/// Name of the logger behind spdlog's default logger (`spdlog::info(...)`).
constexpr const char* default_logger_name = "main";

void append(spdlog::memory_buf_t& dest, std::string_view text) {
  dest.append(text.data(), text.data() + text.size());
}

/// "2026-11-25T14:00:00.123Z" (UTC, millisecond precision).
void append_timestamp(spdlog::memory_buf_t& dest, spdlog::log_clock::time_point time) {
  using namespace std::chrono;
  auto since_epoch = duration_cast<milliseconds>(time.time_since_epoch()).count();
  auto secs = static_cast<std::time_t>(since_epoch / 1000);
  auto millis = static_cast<int>(since_epoch % 1000);
  if (millis < 0) {
    millis += 1000;
    secs -= 1;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  auto n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  append(dest, std::string_view(buf, static_cast<std::size_t>(n)));
}

/// The LOG_LEVEL spelling of a level ("warn", not spdlog's "warning").
std::string_view level_name(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "critical";
    default:
      return "off";
  }
}

/// Length of the valid UTF-8 sequence starting at `s[i]` (a byte >= 0x80); 0 if invalid.
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  auto byte = [&s](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  auto lead = byte(i);
  std::size_t len = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    len = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    len = 3;
    lo = lead == 0xE0 ? 0xA0 : 0x80;  // no overlong encodings
    hi = lead == 0xED ? 0x9F : 0xBF;  // no UTF-16 surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    len = 4;
    lo = lead == 0xF0 ? 0x90 : 0x80;  // no overlong encodings
    hi = lead == 0xF4 ? 0x8F : 0xBF;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  if (i + len > s.size() || byte(i + 1) < lo || byte(i + 1) > hi) {
    return 0;
  }
  for (std::size_t k = 2; k < len; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) {
      return 0;
    }
  }
  return len;
}

/// Appends `text` as a JSON string literal; invalid UTF-8 becomes U+FFFD.
void append_json_string(spdlog::memory_buf_t& dest, std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  dest.push_back('"');
  std::size_t i = 0;
  while (i < text.size()) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      auto len = utf8_sequence_length(text, i);
      if (len == 0) {
        append(dest, "\xEF\xBF\xBD");
        ++i;
      } else {
        append(dest, text.substr(i, len));
        i += len;
      }
      continue;
    }
    ++i;
    if (c == '"') {
      append(dest, "\\\"");
    } else if (c == '\\') {
      append(dest, "\\\\");
    } else if (c == '\n') {
      append(dest, "\\n");
    } else if (c == '\r') {
      append(dest, "\\r");
    } else if (c == '\t') {
      append(dest, "\\t");
    } else if (c == '\b') {
      append(dest, "\\b");
    } else if (c == '\f') {
      append(dest, "\\f");
    } else if (c < 0x20) {
      char esc[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
      append(dest, std::string_view(esc, sizeof esc));
    } else {
      dest.push_back(static_cast<char>(c));
    }
  }
  dest.push_back('"');
}

/// Formats one log line in the LOG_FORMAT chosen at start-up.
class line_formatter final : public spdlog::formatter {
 public:
  explicit line_formatter(log_format format) : format_(format) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string_view name(msg.logger_name.data(), msg.logger_name.size());
    std::string_view text(msg.payload.data(), msg.payload.size());
    if (format_ == log_format::json) {
      append(dest, "{\"ts\":\"");
      append_timestamp(dest, msg.time);
      append(dest, "\",\"level\":\"");
      append(dest, level_name(msg.level));
      append(dest, "\",\"logger\":");
      append_json_string(dest, name);
      append(dest, ",\"msg\":");
      append_json_string(dest, text);
      append(dest, "}\n");
    } else {
      append_timestamp(dest, msg.time);
      dest.push_back(' ');
      append(dest, level_name(msg.level));
      append(dest, " [");
      append(dest, name);
      append(dest, "] ");
      append(dest, text);
      dest.push_back('\n');
    }
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<line_formatter>(format_);
  }

 private:
  log_format format_;
};

/// Every subsystem logger and the one sink they all write to.
struct logger_registry {
  std::mutex mutex;
  std::map<std::string, std::shared_ptr<spdlog::logger>> loggers;
  /// Forwards to the current destination; swapping it redirects every logger at once.
  std::shared_ptr<spdlog::sinks::dist_sink_mt> sink;
  spdlog::level::level_enum level = spdlog::level::info;

  logger_registry() : sink(std::make_shared<spdlog::sinks::dist_sink_mt>()) {
    auto target = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    target->set_formatter(make_formatter(log_format::text));
    sink->set_sinks({target});
  }
};

logger_registry& registry() {
  static logger_registry r;
  return r;
}

}  // namespace

spdlog::level::level_enum to_spdlog_level(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  static const std::map<std::string, spdlog::level::level_enum, std::less<>> levels{
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},
      {"info", spdlog::level::info},   {"warn", spdlog::level::warn},
      {"error", spdlog::level::err},   {"critical", spdlog::level::critical},
      {"off", spdlog::level::off}};
  auto i = levels.find(lower);
  return i == levels.end() ? spdlog::level::info : i->second;
}

std::unique_ptr<spdlog::formatter> make_formatter(log_format format) {
  return std::make_unique<line_formatter>(format);
}

void init_logging(const settings& s, spdlog::sink_ptr sink) {
  sink->set_formatter(make_formatter(s.log_fmt));
  auto& r = registry();
  {
    std::lock_guard<std::mutex> guard(r.mutex);
    r.level = to_spdlog_level(s.log_level);
    // Swapping under the dist sink's lock: a line being written finishes on the old sink.
    r.sink->set_sinks({std::move(sink)});
    for (auto& [name, log] : r.loggers) {
      log->set_level(r.level);
    }
  }
  spdlog::set_default_logger(logger(default_logger_name));
}

void init_logging(const settings& s, std::ostream& out) {
  init_logging(s, std::make_shared<spdlog::sinks::ostream_sink_mt>(out, true));
}

void init_logging(const settings& s) {
  init_logging(s, std::make_shared<spdlog::sinks::stderr_sink_mt>());
}

std::shared_ptr<spdlog::logger> logger(const std::string& subsystem) {
  auto& r = registry();
  std::lock_guard<std::mutex> guard(r.mutex);
  auto i = r.loggers.find(subsystem);
  if (i != r.loggers.end()) {
    return i->second;
  }
  auto log = std::make_shared<spdlog::logger>(subsystem, r.sink);
  log->set_level(r.level);
  r.loggers.emplace(subsystem, log);
  return log;
}

}  // namespace si::config
