#pragma once
/// One spdlog logger per subsystem, all writing through one shared sink in the configured
/// level and format (LOG_LEVEL, LOG_FORMAT).

#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>

#include <spdlog/common.h>
#include <spdlog/logger.h>

#include "config/settings.hpp"

namespace si::config {

/// Sets level and format of every subsystem logger, existing and future, and sends their
/// output to stderr. Also makes spdlog's default logger (`spdlog::info(...)`) follow suit.
/// Safe to call again (e.g. after reloading settings); thread-safe.
void init_logging(const settings& s);

/// As above, but log lines go to `out`, which must outlive the next init_logging call
/// (tests: a std::ostringstream). Lines are flushed as they are written.
void init_logging(const settings& s, std::ostream& out);

/// As above, with any spdlog sink as the destination; its formatter is replaced.
void init_logging(const settings& s, spdlog::sink_ptr sink);

/// The logger of `subsystem` (e.g. "db", "cache", "http_gateway"), created on first use and
/// shared afterwards; thread-safe. Before init_logging it writes text at level info to stderr.
std::shared_ptr<spdlog::logger> logger(const std::string& subsystem);

/// The spdlog level for a LOG_LEVEL name (trace|debug|info|warn|error|critical|off, any
/// case); spdlog::level::info for anything else (settings::load rejects other names).
spdlog::level::level_enum to_spdlog_level(std::string_view name);

/// The formatter behind LOG_FORMAT: text gives `2026-11-25T14:00:00.123Z info [db] message`,
/// json gives `{"ts":"2026-11-25T14:00:00.123Z","level":"info","logger":"db","msg":"..."}`
/// (one object per line, strings JSON-escaped, invalid UTF-8 replaced by U+FFFD).
std::unique_ptr<spdlog::formatter> make_formatter(log_format format);

}  // namespace si::config
