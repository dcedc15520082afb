#pragma once
/// Typed, validated settings of the server, read from the environment and an optional `.env`.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace si::config {

using std::chrono::milliseconds;

/// Output format of every log line.
enum class log_format { text, json };

/// Every setting the server reads. Defaults here are the documented defaults.
struct settings {
  // -- network
  std::string host = "0.0.0.0";  ///< HOST
  uint16_t port = 8080;          ///< PORT
  unsigned http_threads = 0;     ///< HTTP_THREADS (0 = core count)
  unsigned actor_threads = 0;    ///< ACTOR_THREADS (0 = core count)
  /// ACTOR_IDLE_STEAL_MS: how often an idle scheduler worker looks for work to steal.
  std::chrono::milliseconds actor_idle_steal{1};

  // -- HTTP server (net/) and gateway
  milliseconds http_read_header_timeout{10'000};  ///< HTTP_READ_HEADER_TIMEOUT=10 (s)
  milliseconds http_read_body_timeout{30'000};    ///< HTTP_READ_BODY_TIMEOUT=30 (s)
  milliseconds http_write_timeout{30'000};        ///< HTTP_WRITE_TIMEOUT=30 (s)
  milliseconds http_idle_timeout{60'000};         ///< HTTP_IDLE_TIMEOUT=60 (s)
  std::size_t http_header_limit = 16 * 1024;      ///< HTTP_HEADER_LIMIT=16384 (bytes)
  std::size_t http_body_limit = 1024 * 1024;      ///< HTTP_BODY_LIMIT=1048576 (bytes)
  std::size_t http_max_connections = 10'000;      ///< HTTP_MAX_CONNECTIONS=10000
  std::size_t http_max_pipelined = 16;            ///< HTTP_MAX_PIPELINED=16
  milliseconds http_upstream_timeout{5'000};      ///< HTTP_UPSTREAM_TIMEOUT_MS=5000
  milliseconds shutdown_idle_window{250};         ///< SHUTDOWN_IDLE_WINDOW_MS=250
  bool http_test_routes = false;                  ///< HTTP_TEST_ROUTES=false
  /// TEST_HANG_ON_DRAIN: actors of the shutdown plan that ignore their drain (tests of
  /// timed_out and of the hard deadline). Never in production.
  std::vector<std::string> test_hang_on_drain;
  /// True when TEST_HANG_ON_DRAIN names `actor`.
  bool hangs_on_drain(const std::string& actor) const;

  // -- dependencies
  std::string database_url = "sqlite://data/stellar-insights.db";  ///< DATABASE_URL
  std::optional<std::string> redis_url;                     ///< REDIS_URL (unset: in-process cache)
  std::string horizon_url = "https://horizon.stellar.org";  ///< HORIZON_URL
  std::optional<std::string> admin_api_token;               ///< ADMIN_API_TOKEN
  std::optional<std::string> horizon_ca_file;               ///< HORIZON_CA_FILE
  milliseconds horizon_timeout{10'000};                     ///< HORIZON_TIMEOUT_MS=10000
  milliseconds horizon_connect_timeout{5'000};              ///< HORIZON_CONNECT_TIMEOUT_MS=5000
  unsigned horizon_max_retries = 3;                         ///< HORIZON_MAX_RETRIES=3
  unsigned horizon_rate_limit = 10;                         ///< HORIZON_RATE_LIMIT=10 (0 = none)
  unsigned horizon_breaker_threshold = 5;                   ///< HORIZON_BREAKER_THRESHOLD=5
  milliseconds horizon_breaker_cooldown{30'000};            ///< HORIZON_BREAKER_COOLDOWN_MS

  // -- ingestion
  bool ingest_enabled = true;                ///< INGEST_ENABLED=true
  std::int64_t ingest_start_ledger = 0;      ///< INGEST_START_LEDGER (0 = latest)
  unsigned ingest_batch_ledgers = 10;        ///< INGEST_BATCH_LEDGERS=10 (1..200)
  unsigned ingest_page_limit = 200;          ///< INGEST_PAGE_LIMIT=200 (1..200)
  milliseconds ingest_poll_interval{1'000};  ///< INGEST_POLL_INTERVAL_MS=1000
  milliseconds ingest_backoff_min{1'000};    ///< INGEST_BACKOFF_MIN_MS=1000
  milliseconds ingest_backoff_max{60'000};   ///< INGEST_BACKOFF_MAX_MS=60000

  // -- sync schedulers
  bool sync_enabled = true;                        ///< SYNC_ENABLED=true
  milliseconds sync_metrics_interval{300'000};     ///< SYNC_METRICS_INTERVAL=300 (s)
  milliseconds sync_pools_interval{300'000};       ///< SYNC_POOLS_INTERVAL=300 (s)
  milliseconds sync_trustlines_interval{900'000};  ///< SYNC_TRUSTLINES_INTERVAL=900 (s)
  unsigned sync_pools_max = 200;                   ///< SYNC_POOLS_MAX=200
  unsigned sync_assets_max = 2'000;                ///< SYNC_ASSETS_MAX=2000

  // -- logging
  /// LOG_LEVEL trace|debug|info|warn|error|critical|off (stored lowercase)
  std::string log_level = "info";
  log_format log_fmt = log_format::text;  ///< LOG_FORMAT text|json

  // -- shutdown (seconds in the environment, fractions allowed: "0.5")
  milliseconds shutdown_graceful_timeout{30'000};    ///< SHUTDOWN_GRACEFUL_TIMEOUT=30
  milliseconds shutdown_background_timeout{10'000};  ///< SHUTDOWN_BACKGROUND_TIMEOUT=10
  milliseconds shutdown_db_timeout{5'000};           ///< SHUTDOWN_DB_TIMEOUT=5
  milliseconds shutdown_cache_timeout{5'000};        ///< SHUTDOWN_CACHE_TIMEOUT=5
  milliseconds shutdown_ws_grace{500};               ///< SHUTDOWN_WS_GRACE_MS=500 (milliseconds)
  milliseconds shutdown_ws_timeout{5'000};           ///< SHUTDOWN_WS_TIMEOUT=5
  milliseconds shutdown_drain_delay{0};              ///< SHUTDOWN_DRAIN_DELAY=0
  milliseconds shutdown_hard_timeout{60'000};        ///< SHUTDOWN_HARD_TIMEOUT=60
  std::optional<std::string> shutdown_report_path;   ///< SHUTDOWN_REPORT_PATH

  // -- WebSocket hub
  std::size_t ws_max_connections = 10'000;    ///< WS_MAX_CONNECTIONS=10000
  std::size_t ws_max_message_bytes = 65'536;  ///< WS_MAX_MESSAGE_BYTES=65536
  unsigned ws_message_rate = 20;              ///< WS_MESSAGE_RATE=20 (per second)
  milliseconds ws_idle_timeout{60'000};       ///< WS_IDLE_TIMEOUT=60 (s)
  std::size_t ws_queue_limit = 256;           ///< WS_QUEUE_LIMIT=256 (messages)
  std::optional<std::string> ws_auth_token;   ///< WS_AUTH_TOKEN (unset: no token)
  milliseconds ws_reconnect_after{1'000};     ///< WS_RECONNECT_AFTER_MS=1000

  // -- webhooks
  std::optional<std::string> webhook_secret_key;  ///< WEBHOOK_SECRET_KEY (unset: clear text)
  bool webhook_allow_private = false;             ///< WEBHOOK_ALLOW_PRIVATE=false
  milliseconds webhook_timeout{10'000};           ///< WEBHOOK_TIMEOUT_MS=10000
  unsigned webhook_max_attempts = 8;              ///< WEBHOOK_MAX_ATTEMPTS=8
  milliseconds webhook_max_age{86'400'000};       ///< WEBHOOK_MAX_AGE=86400 (s)
  milliseconds webhook_backoff_min{5'000};        ///< WEBHOOK_BACKOFF_MIN_MS=5000
  milliseconds webhook_backoff_max{3'600'000};    ///< WEBHOOK_BACKOFF_MAX_MS=3600000
  unsigned webhook_concurrency = 64;              ///< WEBHOOK_CONCURRENCY=64
  unsigned webhook_per_destination = 4;           ///< WEBHOOK_PER_DESTINATION=4
  milliseconds webhook_poll_interval{500};        ///< WEBHOOK_POLL_INTERVAL_MS=500
  milliseconds webhook_lease{60'000};             ///< WEBHOOK_LEASE_MS=60000

  // -- supervision
  unsigned supervisor_max_restarts = 5;            ///< SUPERVISOR_MAX_RESTARTS=5
  milliseconds supervisor_restart_window{60'000};  ///< SUPERVISOR_RESTART_WINDOW=60 (s)
  milliseconds supervisor_backoff_min{100};        ///< SUPERVISOR_BACKOFF_MIN_MS=100
  milliseconds supervisor_backoff_max{5'000};      ///< SUPERVISOR_BACKOFF_MAX_MS=5000

  // -- database
  unsigned db_pool_size = 4;              ///< DB_POOL_SIZE=4 (1..64)
  unsigned sqlite_cache_mb = 64;          ///< SQLITE_CACHE_MB=64 (1..4096)
  milliseconds db_query_timeout{10'000};  ///< DB_QUERY_TIMEOUT=10 (s)
  std::size_t db_queue_limit = 10'000;    ///< DB_QUEUE_LIMIT=10000 (1..1000000)

  // -- cache
  std::size_t cache_max_entries = 10'000;   ///< CACHE_MAX_ENTRIES=10000
  milliseconds cache_default_ttl{60'000};   ///< CACHE_DEFAULT_TTL=60 (s)
  milliseconds cache_op_timeout{250};       ///< CACHE_OP_TIMEOUT_MS=250
  milliseconds redis_reconnect_min{100};    ///< REDIS_RECONNECT_MIN_MS=100
  milliseconds redis_reconnect_max{5'000};  ///< REDIS_RECONNECT_MAX_MS=5000
};

/// The actors TEST_HANG_ON_DRAIN may name: every actor of the shutdown plan
/// (actors/shutdown_plan.cpp; tests/actors/hang_on_drain_test.cpp keeps the two equal).
const std::vector<std::string>& hang_on_drain_actors();

/// A configuration error: the variable at fault and what is allowed.
struct config_error {
  std::string variable;  ///< e.g. "SHUTDOWN_DB_TIMEOUT"
  /// e.g. "must be a number of seconds >= 0 (fractions allowed, e.g. 0.5), ..., got 'abc'"
  std::string message;
  /// "SHUTDOWN_DB_TIMEOUT: must be ..." — what start-up prints before exiting with code 2.
  std::string to_string() const;
};

/// Where the values come from: the process environment and the `.env` file's pairs.
using env_map = std::map<std::string, std::string>;

/// Reads the process environment (only names this program knows, plus DOTENV_PATH).
env_map read_process_env();

/// The `.env` file to read: `DOTENV_PATH` from `env` when set and non-empty, else ".env".
std::string dotenv_path(const env_map& env);

/// Names in `vars` that are neither a known setting nor DOTENV_PATH (e.g. typos in `.env`),
/// sorted; start-up may warn about them.
std::vector<std::string> unknown_names(const env_map& vars);

/// Parses a `.env` file: `KEY=value`, `export KEY=value`, `#` comments, blank lines,
/// single- or double-quoted values (double quotes honour \n \" \\). Missing file → empty map.
/// A malformed line is an error naming the file and line number.
std::variant<env_map, config_error> read_dotenv(const std::string& path);

/// Builds settings from `env` layered over `dotenv` (env wins). Returns the first error.
std::variant<settings, config_error> load(const env_map& env, const env_map& dotenv);

/// One documented setting, for `--help` and docs.
struct setting_doc {
  std::string name;
  std::string default_value;  ///< as written in the environment; "" = unset
  std::string description;
  std::string allowed;  ///< allowed values, e.g. "an integer from 1 to 65535"
};

/// Every setting the server reads, in --help order.
const std::vector<setting_doc>& documented_settings();

/// The text printed by `--help`.
std::string help_text(const std::string& program);

/// The Markdown table of every setting (name, default, meaning, allowed values) that
/// docs/configuration.md embeds; a test keeps the two identical.
std::string settings_markdown_table();

/// A JSON rendering of the effective settings with secrets redacted (for --check-config).
std::string describe(const settings& s);

}  // namespace si::config
