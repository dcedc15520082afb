#include "config/settings.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <sstream>
#include <string_view>
#include <system_error>

#include <nlohmann/json.hpp>

#ifndef SI_VERSION
#define SI_VERSION "unknown"
#endif

namespace si::config {

namespace {

using json = nlohmann::ordered_json;

/// Upper bound of every duration setting: one day.
constexpr std::int64_t max_duration_ms = 86'400'000;
constexpr std::int64_t max_duration_s = max_duration_ms / 1000;

constexpr const char* dotenv_variable = "DOTENV_PATH";

/// "http_gateway, cache, ...": the names TEST_HANG_ON_DRAIN accepts, for its allowed text.
std::string hang_on_drain_names() {
  std::string joined;
  for (const auto& n : hang_on_drain_actors()) {
    joined += (joined.empty() ? "" : ", ") + n;
  }
  return joined;
}

// -- small text helpers -------------------------------------------------------------------

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && is_space(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool all_digits(std::string_view s) {
  return !s.empty()
         && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

/// Parses a plain decimal integer: digits only (no sign, no spaces, no trailing junk).
std::optional<std::uint64_t> parse_uint(std::string_view s) {
  if (!all_digits(s)) {
    return std::nullopt;
  }
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc{} || end != s.data() + s.size()) {
    return std::nullopt;
  }
  return value;
}

/// Parses "30", "0.5" or "1.25" seconds into milliseconds, rounded to the nearest
/// millisecond; nullopt when malformed or above one day.
std::optional<std::int64_t> parse_seconds(std::string_view s) {
  auto dot = s.find('.');
  auto whole_text = s.substr(0, dot);
  auto whole = parse_uint(whole_text);
  if (!whole || *whole > static_cast<std::uint64_t>(max_duration_s)) {
    return std::nullopt;
  }
  auto ms = static_cast<std::int64_t>(*whole) * 1000;
  if (dot != std::string_view::npos) {
    auto frac = s.substr(dot + 1);
    if (!all_digits(frac)) {
      return std::nullopt;
    }
    std::int64_t scale = 100;
    for (std::size_t i = 0; i < frac.size() && i < 3; ++i) {
      ms += (frac[i] - '0') * scale;
      scale /= 10;
    }
    if (frac.size() > 3 && frac[3] >= '5') {
      ms += 1;
    }
  }
  if (ms > max_duration_ms) {
    return std::nullopt;
  }
  return ms;
}

/// Renders milliseconds as seconds for describe(): 30 or 0.5.
json seconds_json(milliseconds ms) {
  if (ms.count() % 1000 == 0) {
    return ms.count() / 1000;
  }
  return static_cast<double>(ms.count()) / 1000.0;
}

/// Quotes a bad value for an error message: control characters escaped, long values cut.
std::string quote(std::string_view value) {
  constexpr std::size_t max_shown = 80;
  std::string out = "'";
  for (std::size_t i = 0; i < value.size() && i < max_shown; ++i) {
    auto c = static_cast<unsigned char>(value[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (value.size() > max_shown) {
    out += "...";
  }
  out += "'";
  return out;
}

/// Replaces the password of a `scheme://user:password@host/...` URL (and a libpq
/// `password=` query parameter) with "***". With `whole_userinfo`, a user-info without ':'
/// is redacted too (Redis clients read `redis://secret@host` as a password).
std::string redact_url(std::string_view url, bool whole_userinfo) {
  std::string out(url);
  auto scheme_end = out.find("://");
  if (scheme_end != std::string::npos) {
    auto start = scheme_end + 3;
    auto at = out.rfind('@');
    if (at != std::string::npos && at >= start) {
      auto colon = out.find(':', start);
      if (colon != std::string::npos && colon < at) {
        out.replace(colon + 1, at - colon - 1, "***");
      } else if (whole_userinfo && at > start) {
        out.replace(start, at - start, "***");
      }
    }
  }
  auto query = out.find('?');
  if (query != std::string::npos) {
    static constexpr std::string_view key = "password=";
    auto pos = query + 1;
    while (pos < out.size()) {
      auto end = out.find('&', pos);
      if (end == std::string::npos) {
        end = out.size();
      }
      if (std::string_view(out).substr(pos, key.size()) == key) {
        out.replace(pos + key.size(), end - pos - key.size(), "***");
        end = pos + key.size() + 3;
      }
      pos = end + 1;
    }
  }
  return out;
}

/// True for `http://host...` / `https://host...` with a non-empty host and no spaces.
bool valid_http_url(std::string_view url) {
  std::string_view rest;
  if (starts_with(url, "http://")) {
    rest = url.substr(7);
  } else if (starts_with(url, "https://")) {
    rest = url.substr(8);
  } else {
    return false;
  }
  if (std::any_of(url.begin(), url.end(), [](char c) { return is_space(c); })) {
    return false;
  }
  auto authority = rest.substr(0, rest.find_first_of("/?#"));
  auto at = authority.rfind('@');
  if (at != std::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  std::string_view host = authority;
  if (starts_with(host, "[")) {
    auto close = host.find(']');
    if (close == std::string_view::npos || close == 1) {
      return false;
    }
    host = host.substr(1, close - 1);
    authority.remove_prefix(close + 1);
  } else {
    host = host.substr(0, host.find(':'));
    authority.remove_prefix(host.size());
  }
  if (host.empty()) {
    return false;
  }
  if (!authority.empty()) {
    // What is left is ":port".
    if (authority.front() != ':') {
      return false;
    }
    auto port = parse_uint(authority.substr(1));
    if (!port || *port < 1 || *port > 65535) {
      return false;
    }
  }
  return true;
}

// -- the settings table --------------------------------------------------------------------

/// Stores a textual value into settings; false when the value is not allowed.
using parse_fn = std::function<bool(settings&, std::string_view)>;
/// Renders the effective value for describe() (secrets redacted).
using render_fn = std::function<json(const settings&)>;

/// How one kind of value is validated, stored and shown.
struct value_kind {
  std::string allowed;
  parse_fn parse;
  render_fn render;
};

/// One row of the table that drives load(), documentation and describe().
struct setting_def {
  std::string name;
  std::string default_text;
  std::string description;
  value_kind kind;
};

template <class T>
value_kind integer(T settings::*member, std::uint64_t lo, std::uint64_t hi, std::string note = {}) {
  auto allowed = "an integer from " + std::to_string(lo) + " to " + std::to_string(hi) + note;
  return {allowed,
          [member, lo, hi](settings& s, std::string_view text) {
            auto v = parse_uint(text);
            if (!v || *v < lo || *v > hi) {
              return false;
            }
            s.*member = static_cast<T>(*v);
            return true;
          },
          [member](const settings& s) { return json(s.*member); }};
}

value_kind seconds(milliseconds settings::*member, bool positive) {
  auto allowed = std::string("a number of seconds ") + (positive ? "> 0" : ">= 0")
                 + " (fractions allowed, e.g. 0.5), at most " + std::to_string(max_duration_s);
  return {allowed,
          [member, positive](settings& s, std::string_view text) {
            auto ms = parse_seconds(text);
            if (!ms || (positive && *ms == 0)) {
              return false;
            }
            s.*member = milliseconds{*ms};
            return true;
          },
          [member](const settings& s) { return seconds_json(s.*member); }};
}

value_kind millis(milliseconds settings::*member, std::int64_t lo, std::int64_t hi) {
  auto allowed =
      "an integer number of milliseconds from " + std::to_string(lo) + " to " + std::to_string(hi);
  return {allowed,
          [member, lo, hi](settings& s, std::string_view text) {
            auto v = parse_uint(text);
            if (!v || *v < static_cast<std::uint64_t>(lo) || *v > static_cast<std::uint64_t>(hi)) {
              return false;
            }
            s.*member = milliseconds{static_cast<std::int64_t>(*v)};
            return true;
          },
          [member](const settings& s) { return json((s.*member).count()); }};
}

/// true/1 or false/0.
value_kind boolean(bool settings::*member) {
  return {"true or false",
          [member](settings& s, std::string_view v) {
            if (v == "true" || v == "1") {
              s.*member = true;
              return true;
            }
            if (v == "false" || v == "0") {
              s.*member = false;
              return true;
            }
            return false;
          },
          [member](const settings& s) { return json(s.*member); }};
}

/// An optional text: empty means unset.
value_kind optional_text(std::optional<std::string> settings::*member, std::string allowed,
                         std::function<bool(std::string_view)> valid, render_fn render) {
  return {std::move(allowed),
          [member, valid](settings& s, std::string_view text) {
            if (text.empty()) {
              s.*member = std::nullopt;
              return true;
            }
            if (valid && !valid(text)) {
              return false;
            }
            s.*member = std::string(text);
            return true;
          },
          std::move(render)};
}

const std::vector<std::string_view>& log_levels() {
  static const std::vector<std::string_view> levels{"trace", "debug",    "info", "warn",
                                                    "error", "critical", "off"};
  return levels;
}

value_kind log_level_kind() {
  return {"one of trace, debug, info, warn, error, critical, off (case-insensitive)",
          [](settings& s, std::string_view text) {
            auto level = lowercase(text);
            const auto& all = log_levels();
            if (std::find(all.begin(), all.end(), level) == all.end()) {
              return false;
            }
            s.log_level = level;
            return true;
          },
          [](const settings& s) { return json(s.log_level); }};
}

value_kind log_format_kind() {
  return {"text or json (case-insensitive)",
          [](settings& s, std::string_view text) {
            auto fmt = lowercase(text);
            if (fmt == "text") {
              s.log_fmt = log_format::text;
            } else if (fmt == "json") {
              s.log_fmt = log_format::json;
            } else {
              return false;
            }
            return true;
          },
          [](const settings& s) { return json(s.log_fmt == log_format::json ? "json" : "text"); }};
}

value_kind host_kind() {
  return {"a non-empty host name or IP address without spaces",
          [](settings& s, std::string_view text) {
            if (text.empty()
                || std::any_of(text.begin(), text.end(), [](char c) { return is_space(c); })) {
              return false;
            }
            s.host = std::string(text);
            return true;
          },
          [](const settings& s) { return json(s.host); }};
}

value_kind database_url_kind() {
  return {
      "a URL starting with sqlite:// (then a file path), sqlite::memory:, postgresql:// "
      "or postgres://",
      [](settings& s, std::string_view text) {
        bool ok = (starts_with(text, "sqlite://") && text.size() > 9)
                  || starts_with(text, "sqlite::memory:") || starts_with(text, "postgresql://")
                  || starts_with(text, "postgres://");
        if (!ok) {
          return false;
        }
        s.database_url = std::string(text);
        return true;
      },
      [](const settings& s) { return json(redact_url(s.database_url, false)); }};
}

value_kind horizon_url_kind() {
  return {"an http:// or https:// URL with a host",
          [](settings& s, std::string_view text) {
            if (!valid_http_url(text)) {
              return false;
            }
            s.horizon_url = std::string(text);
            return true;
          },
          [](const settings& s) { return json(redact_url(s.horizon_url, false)); }};
}

json optional_json(const std::optional<std::string>& v) {
  return v ? json(*v) : json(nullptr);
}

std::vector<setting_def> make_table() {
  using s = settings;
  std::vector<setting_def> t;
  auto add = [&t](std::string name, std::string def, std::string description, value_kind k) {
    t.push_back({std::move(name), std::move(def), std::move(description), std::move(k)});
  };
  // -- network
  add("HOST", "0.0.0.0", "Address the HTTP and WebSocket server listens on.", host_kind());
  add("PORT", "8080", "TCP port of the HTTP and WebSocket server.", integer(&s::port, 1, 65535));
  add("HTTP_THREADS", "0", "Threads running the HTTP/WebSocket I/O loop.",
      integer(&s::http_threads, 0, 256, " (0 = number of CPU cores)"));
  add("ACTOR_THREADS", "0", "Worker threads of the actor scheduler.",
      integer(&s::actor_threads, 0, 256, " (0 = number of CPU cores)"));
  add("ACTOR_IDLE_STEAL_MS", "1",
      "Milliseconds an idle worker of the actor scheduler waits before it looks for work to "
      "steal from a busy worker. Idle workers wait on a condition variable that new work "
      "wakes at once; CAF's own default (sleeps of 50 microseconds between polls) costs "
      "about a fifth of a core in context switches on a small machine.",
      millis(&s::actor_idle_steal, 1, 1000));
  add("HTTP_READ_HEADER_TIMEOUT", "10",
      "Seconds a client has to send a request's header (slow clients are cut).",
      seconds(&s::http_read_header_timeout, true));
  add("HTTP_READ_BODY_TIMEOUT", "30", "Seconds a client has to send a request's body.",
      seconds(&s::http_read_body_timeout, true));
  add("HTTP_WRITE_TIMEOUT", "30", "Seconds a client has to read one response.",
      seconds(&s::http_write_timeout, true));
  add("HTTP_IDLE_TIMEOUT", "60", "Seconds a keep-alive connection may stay idle.",
      seconds(&s::http_idle_timeout, true));
  add("HTTP_HEADER_LIMIT", "16384", "Largest request line plus header in bytes (beyond: 431).",
      integer(&s::http_header_limit, 1024, 1'048'576));
  add("HTTP_BODY_LIMIT", "1048576", "Largest request body in bytes (beyond: 413).",
      integer(&s::http_body_limit, 0, 1'073'741'824));
  add("HTTP_MAX_CONNECTIONS", "10000",
      "Connections served at once; one more is answered 503 and closed.",
      integer(&s::http_max_connections, 1, 1'000'000));
  add("HTTP_MAX_PIPELINED", "16",
      "Requests read ahead on one connection while earlier ones await their response.",
      integer(&s::http_max_pipelined, 1, 1024));
  add("HTTP_UPSTREAM_TIMEOUT_MS", "5000",
      "Milliseconds a request handler waits for the database or cache before answering 503.",
      millis(&s::http_upstream_timeout, 1, 600'000));
  add("SHUTDOWN_IDLE_WINDOW_MS", "250",
      "During drain, milliseconds an idle keep-alive connection is kept for a request "
      "already on the wire before it is closed.",
      millis(&s::shutdown_idle_window, 0, 60'000));
  add("HTTP_TEST_ROUTES", "false",
      "Enables test-only routes (GET /api/v1/test/slow?ms=N). Never in production.",
      boolean(&s::http_test_routes));
  add("TEST_HANG_ON_DRAIN", "",
      "Test-only: comma-separated actors of the shutdown plan that ignore their drain (log a "
      "warning, keep running) so that the cascade's timed_out path and "
      "SHUTDOWN_HARD_TIMEOUT can be tested. Never in production.",
      {"empty, or a comma-separated list of: " + hang_on_drain_names(),
       [](settings& st, std::string_view v) {
         st.test_hang_on_drain.clear();
         size_t i = 0;
         while (i < v.size()) {
           auto j = v.find(',', i);
           if (j == std::string_view::npos) {
             j = v.size();
           }
           auto name = v.substr(i, j - i);
           const auto& known = hang_on_drain_actors();
           if (std::find(known.begin(), known.end(), name) == known.end()) {
             return false;
           }
           st.test_hang_on_drain.emplace_back(name);
           i = j + 1;
         }
         return !v.empty() ? !st.test_hang_on_drain.empty() && v.back() != ',' : true;
       },
       [](const settings& st) {
         std::string joined;
         for (const auto& n : st.test_hang_on_drain) {
           joined += (joined.empty() ? "" : ",") + n;
         }
         return json(joined);
       }});
  // -- dependencies
  add("DATABASE_URL", "sqlite://data/stellar-insights.db",
      "Database to use: an SQLite file, an in-memory SQLite database or PostgreSQL. "
      "A password in it is never printed.",
      database_url_kind());
  add("REDIS_URL", "",
      "Redis server of the shared cache; unset or empty = in-process cache. "
      "A password in it is never printed.",
      optional_text(
          &s::redis_url, "empty, or a URL starting with redis:// (then a host)",
          [](std::string_view v) { return starts_with(v, "redis://") && v.size() > 8; },
          [](const settings& st) {
            return st.redis_url ? json(redact_url(*st.redis_url, true)) : json(nullptr);
          }));
  add("HORIZON_URL", "https://horizon.stellar.org",
      "Base URL of the Stellar Horizon server data is ingested from.", horizon_url_kind());
  add("HORIZON_CA_FILE", "",
      "PEM file of the CAs trusted for an https HORIZON_URL; unset or empty = the system's CAs.",
      optional_text(&s::horizon_ca_file, "a file path; empty = unset", nullptr,
                    [](const settings& st) { return optional_json(st.horizon_ca_file); }));
  add("HORIZON_TIMEOUT_MS", "10000",
      "Milliseconds one Horizon request may take, from sending it to the end of its response.",
      millis(&s::horizon_timeout, 1, 600'000));
  add("HORIZON_CONNECT_TIMEOUT_MS", "5000",
      "Milliseconds to resolve, connect and (https) complete the TLS handshake with Horizon.",
      millis(&s::horizon_connect_timeout, 1, 600'000));
  add("HORIZON_MAX_RETRIES", "3",
      "Retries of one Horizon request after a timeout, a lost connection, a 5xx or a 429 "
      "(with exponential backoff and jitter; Retry-After is honoured).",
      integer(&s::horizon_max_retries, 0, 100));
  add("HORIZON_RATE_LIMIT", "10",
      "Horizon requests per second at most (public Horizon limits each client).",
      integer(&s::horizon_rate_limit, 0, 100'000, " (0 = unlimited)"));
  add("HORIZON_BREAKER_THRESHOLD", "5",
      "Consecutive failed Horizon requests that open the circuit breaker.",
      integer(&s::horizon_breaker_threshold, 0, 1000, " (0 = no breaker)"));
  add("HORIZON_BREAKER_COOLDOWN_MS", "30000",
      "Milliseconds an open circuit breaker fails fast before it lets one trial through.",
      millis(&s::horizon_breaker_cooldown, 0, max_duration_ms));
  // -- ingestion
  add("INGEST_ENABLED", "true", "Whether the ingestor follows the network from HORIZON_URL.",
      boolean(&s::ingest_enabled));
  add("INGEST_START_LEDGER", "latest",
      "Where ingestion starts when the database has no cursor yet: a ledger sequence, or "
      "latest (the newest closed ledger). A stored cursor always wins.",
      {"latest, or a ledger sequence from 1 to 4294967295",
       [](settings& st, std::string_view v) {
         if (v == "latest") {
           st.ingest_start_ledger = 0;
           return true;
         }
         auto n = parse_uint(v);
         if (!n || *n < 1 || *n > 4'294'967'295ULL) {
           return false;
         }
         st.ingest_start_ledger = static_cast<std::int64_t>(*n);
         return true;
       },
       [](const settings& st) {
         return st.ingest_start_ledger == 0 ? json("latest") : json(st.ingest_start_ledger);
       }});
  add("INGEST_BATCH_LEDGERS", "10",
      "Ledgers committed together, with all their transactions and operations, in one "
      "database transaction.",
      integer(&s::ingest_batch_ledgers, 1, 200));
  add("INGEST_PAGE_LIMIT", "200", "Records per Horizon page requested by the ingestor.",
      integer(&s::ingest_page_limit, 1, 200));
  add("INGEST_POLL_INTERVAL_MS", "1000",
      "Milliseconds between polls for new ledgers once ingestion has caught up.",
      millis(&s::ingest_poll_interval, 1, max_duration_ms));
  add("INGEST_BACKOFF_MIN_MS", "1000",
      "Delay in milliseconds before retrying a failed page (Horizon error, malformed data, "
      "database error); it doubles up to INGEST_BACKOFF_MAX_MS.",
      millis(&s::ingest_backoff_min, 1, max_duration_ms));
  add("INGEST_BACKOFF_MAX_MS", "60000", "Upper bound in milliseconds of the ingestion retry delay.",
      millis(&s::ingest_backoff_max, 1, max_duration_ms));
  // -- sync schedulers
  add("SYNC_ENABLED", "true", "Whether the metrics, liquidity pool and trustline schedulers run.",
      boolean(&s::sync_enabled));
  add("SYNC_METRICS_INTERVAL", "300",
      "Seconds between metrics runs (corridor buckets and anchor aggregates from ingested "
      "operations).",
      seconds(&s::sync_metrics_interval, true));
  add("SYNC_POOLS_INTERVAL", "300", "Seconds between liquidity pool runs.",
      seconds(&s::sync_pools_interval, true));
  add("SYNC_TRUSTLINES_INTERVAL", "900", "Seconds between trustline (asset statistics) runs.",
      seconds(&s::sync_trustlines_interval, true));
  add("SYNC_POOLS_MAX", "200",
      "Liquidity pools a pool run reads from Horizon (with each one's trades of the last 24 h).",
      integer(&s::sync_pools_max, 1, 100'000));
  add("SYNC_ASSETS_MAX", "2000", "Assets a trustline run reads from Horizon.",
      integer(&s::sync_assets_max, 1, 1'000'000));
  add("ADMIN_API_TOKEN", "",
      "Bearer token that write endpoints require; unset or empty = writes answer 403 "
      "WRITES_DISABLED. Never printed.",
      optional_text(
          &s::admin_api_token, "any text; empty = unset", nullptr,
          [](const settings& st) { return st.admin_api_token ? json("***") : json(nullptr); }));
  // -- logging
  add("LOG_LEVEL", "info", "Lowest level of log lines written to stderr.", log_level_kind());
  add("LOG_FORMAT", "text",
      "Log line format: text = one readable line, json = one JSON object per line "
      "(ts, level, logger, msg).",
      log_format_kind());
  // -- shutdown
  add("SHUTDOWN_GRACEFUL_TIMEOUT", "30",
      "Seconds the HTTP server has to finish in-flight requests once shutdown starts; what is "
      "left is then cut.",
      seconds(&s::shutdown_graceful_timeout, false));
  add("SHUTDOWN_BACKGROUND_TIMEOUT", "10",
      "Seconds each background actor (ingestion, sync, webhooks, broadcasting) has to drain.",
      seconds(&s::shutdown_background_timeout, false));
  add("SHUTDOWN_DB_TIMEOUT", "5",
      "Seconds the database actor has to finish its work and close its connections.",
      seconds(&s::shutdown_db_timeout, false));
  add("SHUTDOWN_CACHE_TIMEOUT", "5",
      "Seconds the cache actor has to finish its work and close its connection.",
      seconds(&s::shutdown_cache_timeout, false));
  add("SHUTDOWN_WS_GRACE_MS", "500",
      "Milliseconds between the server_shutdown message and the close frame 1001 sent to "
      "WebSocket clients.",
      millis(&s::shutdown_ws_grace, 0, max_duration_ms));
  add("SHUTDOWN_WS_TIMEOUT", "5", "Seconds the WebSocket hub has to close every connection.",
      seconds(&s::shutdown_ws_timeout, false));
  add("SHUTDOWN_DRAIN_DELAY", "0",
      "Seconds to keep serving reads while /health/ready answers 503, before the listener "
      "closes (lets load balancers notice).",
      seconds(&s::shutdown_drain_delay, false));
  add("SHUTDOWN_HARD_TIMEOUT", "60",
      "Overall deadline in seconds of the whole shutdown; past it the process exits anyway. "
      "Must be greater than SHUTDOWN_GRACEFUL_TIMEOUT.",
      seconds(&s::shutdown_hard_timeout, true));
  add("SHUTDOWN_REPORT_PATH", "",
      "File the JSON shutdown report is written to; unset or empty = no file.",
      optional_text(&s::shutdown_report_path, "a file path; empty = unset", nullptr,
                    [](const settings& st) { return optional_json(st.shutdown_report_path); }));
  // -- WebSocket hub
  add("WS_MAX_CONNECTIONS", "10000",
      "WebSocket connections served at once; one more upgrade is answered 503.",
      integer(&s::ws_max_connections, 1, 1'000'000));
  add("WS_MAX_MESSAGE_BYTES", "65536",
      "Largest message a WebSocket client may send, in bytes (beyond: error, then close 1009).",
      integer(&s::ws_max_message_bytes, 64, 16'777'216));
  add("WS_MESSAGE_RATE", "20",
      "Messages per second a WebSocket client may send (beyond: error, then close 1008).",
      integer(&s::ws_message_rate, 1, 100'000));
  add("WS_IDLE_TIMEOUT", "60",
      "Seconds a WebSocket client may stay silent (protocol pings are sent meanwhile).",
      seconds(&s::ws_idle_timeout, true));
  add("WS_QUEUE_LIMIT", "256",
      "Messages queued for one WebSocket client; a client that falls further behind is "
      "closed (1008) so it cannot hold up the others.",
      integer(&s::ws_queue_limit, 1, 1'000'000));
  add("WS_AUTH_TOKEN", "",
      "Token WebSocket clients must pass as ?token=...; unset or empty = no token. Never "
      "printed.",
      optional_text(&s::ws_auth_token, "any text; empty = unset", nullptr, [](const settings& st) {
        return st.ws_auth_token ? json("***") : json(nullptr);
      }));
  add("WS_RECONNECT_AFTER_MS", "1000",
      "reconnect_after_ms advertised to WebSocket clients in the server_shutdown message.",
      millis(&s::ws_reconnect_after, 0, max_duration_ms));
  // -- webhooks
  add("WEBHOOK_SECRET_KEY", "",
      "Key that encrypts webhook signing secrets at rest (32 bytes as base64 or 64 hex "
      "digits); unset or empty = secrets stored as given. Never printed.",
      optional_text(
          &s::webhook_secret_key, "empty, or 32 bytes as base64 or 64 hex digits",
          [](std::string_view v) {
            auto hex = v.size() == 64 && std::all_of(v.begin(), v.end(), [](unsigned char c) {
                         return std::isxdigit(c) != 0;
                       });
            auto b64 = (v.size() == 44 && v.back() == '=') || v.size() == 43;
            return hex || b64;
          },
          [](const settings& st) { return st.webhook_secret_key ? json("***") : json(nullptr); }));
  add("WEBHOOK_ALLOW_PRIVATE", "false",
      "Allows webhook URLs that resolve to private, loopback or link-local addresses (tests "
      "only; refused by default to prevent SSRF).",
      boolean(&s::webhook_allow_private));
  add("WEBHOOK_TIMEOUT_MS", "10000",
      "Milliseconds one webhook delivery attempt may take (connect, TLS, send, response).",
      millis(&s::webhook_timeout, 1, 600'000));
  add("WEBHOOK_MAX_ATTEMPTS", "8",
      "Delivery attempts of one event to one webhook before it is dead-lettered (failed).",
      integer(&s::webhook_max_attempts, 1, 100));
  add("WEBHOOK_MAX_AGE", "86400",
      "Seconds after which an undelivered event is dead-lettered whatever its attempts.",
      seconds(&s::webhook_max_age, true));
  add("WEBHOOK_BACKOFF_MIN_MS", "5000",
      "Delay in milliseconds before the first retry of a failed delivery; it doubles (with "
      "jitter) up to WEBHOOK_BACKOFF_MAX_MS.",
      millis(&s::webhook_backoff_min, 1, max_duration_ms));
  add("WEBHOOK_BACKOFF_MAX_MS", "3600000", "Upper bound in milliseconds of the retry delay.",
      millis(&s::webhook_backoff_max, 1, max_duration_ms));
  add("WEBHOOK_CONCURRENCY", "64", "Webhook deliveries in flight at once, all destinations.",
      integer(&s::webhook_concurrency, 1, 10'000));
  add("WEBHOOK_PER_DESTINATION", "4", "Webhook deliveries in flight at once to one host:port.",
      integer(&s::webhook_per_destination, 1, 1'000));
  add("WEBHOOK_POLL_INTERVAL_MS", "500",
      "Milliseconds between looks for due deliveries when the dispatcher is idle (new events "
      "also wake it at once).",
      millis(&s::webhook_poll_interval, 1, max_duration_ms));
  add("WEBHOOK_LEASE_MS", "60000",
      "Milliseconds a claimed delivery stays reserved for this process; after a crash it is "
      "claimable again once the lease ends. Must exceed WEBHOOK_TIMEOUT_MS.",
      millis(&s::webhook_lease, 1, max_duration_ms));
  // -- supervision
  add("SUPERVISOR_MAX_RESTARTS", "5",
      "Restarts allowed per child within SUPERVISOR_RESTART_WINDOW; one more starts an orderly "
      "shutdown with a non-zero exit.",
      integer(&s::supervisor_max_restarts, 0, 1000));
  add("SUPERVISOR_RESTART_WINDOW", "60", "Seconds of the window restarts are counted in.",
      seconds(&s::supervisor_restart_window, false));
  add("SUPERVISOR_BACKOFF_MIN_MS", "100",
      "Delay in milliseconds before the first restart of a child; it doubles with each "
      "restart. Must not exceed SUPERVISOR_BACKOFF_MAX_MS.",
      millis(&s::supervisor_backoff_min, 0, max_duration_ms));
  add("SUPERVISOR_BACKOFF_MAX_MS", "5000", "Upper bound in milliseconds of the restart delay.",
      millis(&s::supervisor_backoff_max, 0, max_duration_ms));
  // -- database
  add("DB_POOL_SIZE", "4", "Database connections, each used by one blocking worker.",
      integer(&s::db_pool_size, 1, 64));
  add("SQLITE_CACHE_MB", "64",
      "SQLite page cache of each database connection, in MiB (PRAGMA cache_size); a cache "
      "smaller than the index pages an ingest batch touches spills them to the WAL "
      "mid-transaction. Ignored with PostgreSQL.",
      integer(&s::sqlite_cache_mb, 1, 4096));
  add("DB_QUERY_TIMEOUT", "10", "Seconds a database query may take before it fails.",
      seconds(&s::db_query_timeout, false));
  add("DB_QUEUE_LIMIT", "10000",
      "Queries waiting for a pool worker beyond which new ones are refused (overloaded).",
      integer(&s::db_queue_limit, 1, 1'000'000));
  // -- cache
  add("CACHE_MAX_ENTRIES", "10000", "Maximum number of entries in the in-process cache.",
      integer(&s::cache_max_entries, 1, 100'000'000));
  add("CACHE_DEFAULT_TTL", "60",
      "Seconds a cached response lives unless its endpoint sets another lifetime.",
      seconds(&s::cache_default_ttl, false));
  add("CACHE_OP_TIMEOUT_MS", "250",
      "Milliseconds a cache operation may take; a slower one counts as a miss.",
      millis(&s::cache_op_timeout, 1, 60'000));
  add("REDIS_RECONNECT_MIN_MS", "100",
      "Delay in milliseconds before the first attempt to reconnect to Redis; it grows up to "
      "REDIS_RECONNECT_MAX_MS.",
      millis(&s::redis_reconnect_min, 0, max_duration_ms));
  add("REDIS_RECONNECT_MAX_MS", "5000", "Upper bound in milliseconds of the Redis reconnect delay.",
      millis(&s::redis_reconnect_max, 0, max_duration_ms));
  return t;
}

const std::vector<setting_def>& table() {
  static const std::vector<setting_def> t = make_table();
  return t;
}

bool known_name(std::string_view name) {
  const auto& t = table();
  return name == dotenv_variable
         || std::any_of(t.begin(), t.end(), [name](const auto& d) { return d.name == name; });
}

config_error bad_value(const setting_def& def, std::string_view value) {
  auto shown = def.name == "DATABASE_URL" || def.name == "REDIS_URL" || def.name == "HORIZON_URL"
                   ? redact_url(value, def.name == "REDIS_URL")
                   : std::string(value);
  return {def.name, "must be " + def.kind.allowed + ", got " + quote(shown)};
}

// -- .env parsing ---------------------------------------------------------------------------

bool valid_key(std::string_view key) {
  if (key.empty() || std::isdigit(static_cast<unsigned char>(key.front())) != 0) {
    return false;
  }
  return std::all_of(key.begin(), key.end(),
                     [](unsigned char c) { return std::isalnum(c) != 0 || c == '_'; });
}

/// True when `rest` (what follows a closing quote) is only spaces or a `#` comment.
bool only_comment(std::string_view rest) {
  rest = trim(rest);
  return rest.empty() || rest.front() == '#';
}

/// The value of a `.env` line, or why it could not be read.
struct dotenv_value {
  std::string value;
  std::string error;  ///< empty on success
};

/// The character a double-quoted `\x` escape stands for; 0 when `x` is not an escape.
char unescape(char x) {
  if (x == 'n') {
    return '\n';
  }
  if (x == 'r') {
    return '\r';
  }
  if (x == 't') {
    return '\t';
  }
  if (x == '"' || x == '\\') {
    return x;
  }
  return 0;
}

/// Parses the value part of a `.env` line (everything after the first '=').
dotenv_value parse_dotenv_value(std::string_view raw) {
  auto v = trim(raw);
  if (!v.empty() && v.front() == '\'') {
    auto close = v.find('\'', 1);
    if (close == std::string_view::npos) {
      return {{}, "unterminated single quote"};
    }
    if (!only_comment(v.substr(close + 1))) {
      return {{}, "unexpected text after the closing quote"};
    }
    return {std::string(v.substr(1, close - 1)), {}};
  }
  if (!v.empty() && v.front() == '"') {
    std::string out;
    for (std::size_t i = 1; i < v.size(); ++i) {
      char c = v[i];
      if (c == '"') {
        if (!only_comment(v.substr(i + 1))) {
          return {{}, "unexpected text after the closing quote"};
        }
        return {std::move(out), {}};
      }
      if (c == '\\' && i + 1 < v.size()) {
        if (char e = unescape(v[i + 1]); e != 0) {
          out += e;
          ++i;
          continue;
        }
      }
      out += c;
    }
    return {{}, "unterminated double quote"};
  }
  // Unquoted: a '#' preceded by whitespace starts a comment.
  for (std::size_t i = 1; i < raw.size(); ++i) {
    if (raw[i] == '#' && is_space(raw[i - 1])) {
      raw = raw.substr(0, i);
      break;
    }
  }
  return {std::string(trim(raw)), {}};
}

// -- help text ------------------------------------------------------------------------------

/// Appends `text` word-wrapped to `width` columns, each line starting with `indent`.
void wrap(std::string& out, std::string_view text, std::size_t indent, std::size_t width) {
  std::string line(indent, ' ');
  bool empty = true;
  std::istringstream words{std::string(text)};
  std::string word;
  while (words >> word) {
    if (!empty && line.size() + 1 + word.size() > width) {
      out += line + "\n";
      line.assign(indent, ' ');
      empty = true;
    }
    if (!empty) {
      line += ' ';
    }
    line += word;
    empty = false;
  }
  if (!empty) {
    out += line + "\n";
  }
}

std::string markdown_cell(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '|') {
      out += "\\|";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

// -- public API -----------------------------------------------------------------------------

std::string config_error::to_string() const {
  return variable + ": " + message;
}

env_map read_process_env() {
  env_map out;
  auto take = [&out](const std::string& name) {
    if (const char* v = std::getenv(name.c_str()); v != nullptr) {
      out[name] = v;
    }
  };
  for (const auto& def : table()) {
    take(def.name);
  }
  take(dotenv_variable);
  return out;
}

std::string dotenv_path(const env_map& env) {
  auto i = env.find(dotenv_variable);
  if (i == env.end() || i->second.empty()) {
    return ".env";
  }
  return i->second;
}

std::vector<std::string> unknown_names(const env_map& vars) {
  std::vector<std::string> out;
  for (const auto& [name, value] : vars) {
    if (!known_name(name)) {
      out.push_back(name);
    }
  }
  return out;
}

std::variant<env_map, config_error> read_dotenv(const std::string& path) {
  std::error_code ec;
  auto status = std::filesystem::status(path, ec);
  if (status.type() == std::filesystem::file_type::not_found) {
    return env_map{};
  }
  if (ec || std::filesystem::is_directory(status)) {
    return config_error{dotenv_variable, "cannot read '" + path + "': "
                                             + (ec ? ec.message() : std::string("is a directory"))};
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return config_error{dotenv_variable, "cannot read '" + path + "': " + std::strerror(errno)};
  }
  env_map out;
  std::string line;
  std::size_t number = 0;
  auto fail = [&path, &number](const std::string& what) {
    return config_error{dotenv_variable, path + ":" + std::to_string(number) + ": " + what};
  };
  while (std::getline(in, line)) {
    ++number;
    std::string_view text = line;
    if (number == 1 && starts_with(text, "\xEF\xBB\xBF")) {
      text.remove_prefix(3);  // UTF-8 byte order mark
    }
    text = trim(text);
    if (text.empty() || text.front() == '#') {
      continue;
    }
    if (starts_with(text, "export") && text.size() > 6 && is_space(text[6])) {
      text = trim(text.substr(6));
    }
    auto eq = text.find('=');
    if (eq == std::string_view::npos) {
      return fail("expected KEY=value");
    }
    auto key = trim(text.substr(0, eq));
    if (!valid_key(key)) {
      return fail("invalid variable name " + quote(key)
                  + " (letters, digits and '_', not starting with a digit)");
    }
    auto value = parse_dotenv_value(text.substr(eq + 1));
    if (!value.error.empty()) {
      return fail(value.error + " in the value of " + std::string(key));
    }
    out[std::string(key)] = std::move(value.value);
  }
  if (in.bad()) {
    return config_error{dotenv_variable, "cannot read '" + path + "'"};
  }
  return out;
}

std::variant<settings, config_error> load(const env_map& env, const env_map& dotenv) {
  settings s;
  env_map effective;  // the text each setting was read from, for cross-field messages
  for (const auto& def : table()) {
    std::string text = def.default_text;
    if (auto i = env.find(def.name); i != env.end()) {
      text = i->second;
    } else if (auto j = dotenv.find(def.name); j != dotenv.end()) {
      text = j->second;
    }
    if (!def.kind.parse(s, text)) {
      return bad_value(def, text);
    }
    effective[def.name] = text;
  }
  // Cross-field rules; each error names the setting to change.
  if (s.shutdown_hard_timeout <= s.shutdown_graceful_timeout) {
    return config_error{"SHUTDOWN_HARD_TIMEOUT", "must be greater than SHUTDOWN_GRACEFUL_TIMEOUT ("
                                                     + effective["SHUTDOWN_GRACEFUL_TIMEOUT"]
                                                     + " s), got "
                                                     + quote(effective["SHUTDOWN_HARD_TIMEOUT"])};
  }
  if (s.supervisor_backoff_min > s.supervisor_backoff_max) {
    return config_error{"SUPERVISOR_BACKOFF_MIN_MS",
                        "must be <= SUPERVISOR_BACKOFF_MAX_MS ("
                            + effective["SUPERVISOR_BACKOFF_MAX_MS"] + " ms), got "
                            + quote(effective["SUPERVISOR_BACKOFF_MIN_MS"])};
  }
  if (s.ingest_backoff_min > s.ingest_backoff_max) {
    return config_error{"INGEST_BACKOFF_MIN_MS",
                        "must be <= INGEST_BACKOFF_MAX_MS (" + effective["INGEST_BACKOFF_MAX_MS"]
                            + " ms), got " + quote(effective["INGEST_BACKOFF_MIN_MS"])};
  }
  if (s.webhook_backoff_min > s.webhook_backoff_max) {
    return config_error{"WEBHOOK_BACKOFF_MIN_MS",
                        "must be <= WEBHOOK_BACKOFF_MAX_MS (" + effective["WEBHOOK_BACKOFF_MAX_MS"]
                            + " ms), got " + quote(effective["WEBHOOK_BACKOFF_MIN_MS"])};
  }
  if (s.webhook_lease <= s.webhook_timeout) {
    return config_error{"WEBHOOK_LEASE_MS", "must be greater than WEBHOOK_TIMEOUT_MS ("
                                                + effective["WEBHOOK_TIMEOUT_MS"] + " ms), got "
                                                + quote(effective["WEBHOOK_LEASE_MS"])};
  }
  if (s.redis_reconnect_min > s.redis_reconnect_max) {
    return config_error{"REDIS_RECONNECT_MIN_MS",
                        "must be <= REDIS_RECONNECT_MAX_MS (" + effective["REDIS_RECONNECT_MAX_MS"]
                            + " ms), got " + quote(effective["REDIS_RECONNECT_MIN_MS"])};
  }
  return s;
}

const std::vector<std::string>& hang_on_drain_actors() {
  // In the order of the plan's table (actors/shutdown_plan.cpp).
  static const std::vector<std::string> names{
      "http_gateway",       "ws_hub",   "broadcaster",  "cache",      "db",
      "webhook_dispatcher", "ingestor", "sync_metrics", "sync_pools", "sync_trustlines"};
  return names;
}

bool settings::hangs_on_drain(const std::string& actor) const {
  return std::find(test_hang_on_drain.begin(), test_hang_on_drain.end(), actor)
         != test_hang_on_drain.end();
}

const std::vector<setting_doc>& documented_settings() {
  static const std::vector<setting_doc> docs = [] {
    std::vector<setting_doc> out;
    for (const auto& def : table()) {
      out.push_back({def.name, def.default_text, def.description, def.kind.allowed});
    }
    return out;
  }();
  return docs;
}

std::string help_text(const std::string& program) {
  constexpr std::size_t width = 80;
  std::string out;
  out +=
      "Usage: " + program + " [--help | --version | --check-config | --print-shutdown-budget]\n\n";
  out += "stellar-insights " SI_VERSION " - Stellar network analytics server.\n\n";
  out += "Options:\n";
  out += "  --help          Print this help and exit.\n";
  out += "  --version       Print the version and exit.\n";
  out +=
      "  --check-config  Validate the configuration, print the effective settings as\n"
      "                  JSON (secrets shown as \"***\") and exit: 0 if valid, 2 if not.\n";
  out +=
      "  --print-shutdown-budget\n"
      "                  Print as JSON the shutdown plan's critical path, the hard deadline\n"
      "                  and the stop timeout a service manager should allow; start\n"
      "                  nothing; exit 0 (2 if the configuration is invalid).\n\n";
  out += "Configuration:\n";
  wrap(out,
       "Settings are read from the environment and from a .env file (KEY=value lines; its "
       "path is DOTENV_PATH, default .env; a missing file is ignored). The environment wins "
       "over the file. An invalid value stops start-up with a message naming the variable "
       "(exit code 2). Durations in seconds accept fractions (0.5); *_MS settings are whole "
       "milliseconds.",
       2, width);
  out += "\nSettings:\n";
  for (const auto& def : table()) {
    out += "  " + def.name + " (default: "
           + (def.default_text.empty() ? std::string("unset") : def.default_text) + ")\n";
    wrap(out, def.description, 6, width);
    wrap(out, "Allowed: " + def.kind.allowed + ".", 6, width);
  }
  return out;
}

std::string settings_markdown_table() {
  std::string out = "| Setting | Default | Meaning | Allowed values |\n";
  out += "|---|---|---|---|\n";
  for (const auto& def : table()) {
    auto def_text = def.default_text.empty() ? std::string("unset")
                                             : "`" + markdown_cell(def.default_text) + "`";
    out += "| `" + def.name + "` | " + def_text + " | " + markdown_cell(def.description) + " | "
           + markdown_cell(def.kind.allowed) + " |\n";
  }
  return out;
}

std::string describe(const settings& s) {
  json out = json::object();
  for (const auto& def : table()) {
    out[def.name] = def.kind.render(s);
  }
  return out.dump(2);
}

}  // namespace si::config
