#pragma once
/// The simulator's command line: every flag, its default, validation, and `--help`.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace si::sim {

/// The kinds of injected faults (`--fault`, `POST /_sim/fault`).
enum class fault_kind {
  latency,     ///< answer normally after latency_ms
  status_500,  ///< 500 problem+json
  status_503,  ///< 503 problem+json with Retry-After
  status_429,  ///< 429 problem+json with Retry-After
  truncated,   ///< Content-Length larger than the bytes sent, then close
  malformed,   ///< 200 with syntactically invalid JSON
  bad_record,  ///< 200 with valid JSON where one record misses a required field
  reset,       ///< close with RST (SO_LINGER 0) without answering
};

inline constexpr std::size_t fault_kind_count = 8;

/// "latency", "status_500", ...
std::string_view to_string(fault_kind kind);

/// The kind named `name`, if any.
std::optional<fault_kind> fault_kind_from(std::string_view name);

/// One fault rule: the next `count` requests whose path starts with `path` get `kind`.
struct fault_spec {
  fault_kind kind = fault_kind::status_500;
  uint32_t count = 1;
  std::string path;  ///< prefix of the request path; "" matches every Horizon path
  uint32_t latency_ms = 200;
  uint32_t retry_after_s = 1;
};

/// Parses `kind:count[:path]`; the error text otherwise.
std::optional<fault_spec> parse_fault_flag(std::string_view text, std::string& error);

/// Everything the command line sets.
struct options {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string port_file;
  std::string public_url;  ///< base of every href; "" = http://host:port
  uint32_t threads = 2;
  uint64_t seed = 1;
  uint32_t start_ledger = 1000;
  uint32_t ledgers = 100;
  uint32_t close_ms = 0;
  uint32_t max_ledgers = 0;
  uint32_t tx_per_ledger = 10;
  uint32_t ops_per_tx = 3;
  uint32_t failed_percent = 10;
  uint32_t fee_bump_percent = 5;
  uint32_t pools = 20;
  uint32_t assets = 30;
  std::optional<int64_t> base_time;  ///< unix s of the start ledger; default now - ledgers*5
  uint32_t cache_mb = 2048;
  uint32_t prewarm = 1;  ///< 1: render the initial chain in the background after start-up
  std::vector<fault_spec> faults;
};

/// What parse_options decided.
struct parse_outcome {
  enum class action { run, help, error } what = action::run;
  options parsed;
  std::string message;  ///< the error (for `error`)
};

/// Parses argv (argv[0] skipped).
parse_outcome parse_options(int argc, const char* const* argv);

/// The `--help` text.
std::string help_text();

}  // namespace si::sim
