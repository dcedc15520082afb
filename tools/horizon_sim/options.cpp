#include "tools/horizon_sim/options.hpp"

#include <array>
#include <charconv>
#include <functional>
#include <limits>
#include <map>

namespace si::sim {

namespace {

constexpr std::array<std::string_view, fault_kind_count> fault_names = {
    "latency",   "status_500", "status_503", "status_429",
    "truncated", "malformed",  "bad_record", "reset",
};

template <class T>
bool parse_number(std::string_view text, T& out, T low, T high) {
  T value{};
  const auto* end = text.data() + text.size();
  auto result = std::from_chars(text.data(), end, value);
  if (text.empty() || result.ec != std::errc{} || result.ptr != end || value < low
      || value > high) {
    return false;
  }
  out = value;
  return true;
}

}  // namespace

std::string_view to_string(fault_kind kind) {
  return fault_names[static_cast<std::size_t>(kind)];
}

std::optional<fault_kind> fault_kind_from(std::string_view name) {
  for (std::size_t i = 0; i < fault_names.size(); ++i) {
    if (fault_names[i] == name) {
      return static_cast<fault_kind>(i);
    }
  }
  return std::nullopt;
}

std::optional<fault_spec> parse_fault_flag(std::string_view text, std::string& error) {
  fault_spec spec;
  const auto first = text.find(':');
  if (first == std::string_view::npos) {
    error = "--fault wants kind:count[:path], not '" + std::string(text) + "'";
    return std::nullopt;
  }
  auto kind = fault_kind_from(text.substr(0, first));
  if (!kind) {
    error = "--fault: unknown kind '" + std::string(text.substr(0, first))
            + "' (latency, status_500, status_503, status_429, truncated, malformed, "
              "bad_record, reset)";
    return std::nullopt;
  }
  spec.kind = *kind;
  std::string_view rest = text.substr(first + 1);
  const auto second = rest.find(':');
  const std::string_view count = rest.substr(0, second);
  if (!parse_number<uint32_t>(count, spec.count, 1, 1'000'000)) {
    error = "--fault: count must be 1..1000000, not '" + std::string(count) + "'";
    return std::nullopt;
  }
  if (second != std::string_view::npos) {
    spec.path = std::string(rest.substr(second + 1));
    if (spec.path.empty() || spec.path.front() != '/') {
      error = "--fault: path must start with '/', not '" + spec.path + "'";
      return std::nullopt;
    }
  }
  return spec;
}

std::string help_text() {
  return R"(horizon-sim: a deterministic Stellar Horizon simulator (stellar-insights project tool)

Serves generated ledgers, transactions, operations, payments, liquidity pools, pool trades
and asset statistics shaped exactly like Horizon's JSON, pages and event streams, plus
ground truth and fault injection under /_sim/. See docs/horizon-sim.md.

Usage: horizon-sim [flags]         (each flag also accepts --flag=value)

  --host ADDR            listen address (default 127.0.0.1)
  --port N               listen port; 0 picks a free one (default 0). Once listening,
                         prints exactly one line "horizon-sim listening on HOST:PORT"
  --port-file FILE       also write the port to FILE (atomically: temp file + rename)
  --public-url URL       base of every _links href (default http://HOST:PORT), e.g. the
                         address of a proxy in front of the simulator
  --threads N            I/O threads (default 2)
  --seed N               data seed; same seed and flags give the same bytes (default 1)
  --start-ledger N       sequence of the first ledger (default 1000)
  --ledgers N            ledgers that exist at start (default 100)
  --close-ms N           append one ledger every N ms; 0 = static chain (default 0)
  --max-ledgers N        the chain never holds more than N ledgers in total; 0 = no cap
                         (default 0)
  --tx-per-ledger N      average transactions per ledger, varied per ledger, about 1 in 10
                         ledgers empty (default 10)
  --ops-per-tx N         average operations per transaction, 1..2N-1 (default 3)
  --failed-percent N     share of failed transactions (default 10)
  --fee-bump-percent N   share of fee-bump transactions (default 5)
  --pools N              liquidity pools (default 20)
  --assets N             issued assets, besides XLM (default 30)
  --base-time UNIX_S     close time of the start ledger; ledgers close 5 s apart
                         (default: now - ledgers*5, so the initial tip is about now;
                         pass it for byte-identical output across runs)
  --cache-mb N           memory for rendered ledgers, used as ledgers are generated; least
                         recently used ones are dropped past it (default 2048)
  --prewarm 0|1          1: render the initial chain on a background thread after start-up,
                         up to 3/4 of the cache, so the first pages are served from memory
                         (default 1)
  --fault KIND:COUNT[:PATH]
                         inject a fault into the next COUNT requests whose path starts with
                         PATH (repeatable). KIND: latency, status_500, status_503,
                         status_429, truncated, malformed, bad_record, reset
  --help                 this text

Horizon endpoints (GET): /  /ledgers  /ledgers/{seq}  /ledgers/{seq}/transactions
  /ledgers/{seq}/operations  /ledgers/{seq}/payments  /transactions  /transactions/{hash}
  /transactions/{hash}/operations  /operations  /operations/{id}  /payments
  /liquidity_pools  /liquidity_pools/{id}  /liquidity_pools/{id}/trades  /assets
  Query: cursor, order=asc|desc, limit=1..200 (default 10), include_failed=true|false.
  Accept: text/event-stream streams /ledgers, /transactions, /operations and /payments.
Control (not Horizon): GET /_sim/info  GET /_sim/truth?from=A&to=B  GET /_sim/stats
  POST /_sim/fault {"kind","count","path","latency_ms","retry_after_s"}  GET|DELETE /_sim/fault

Exit: 0 after SIGTERM/SIGINT, 2 on a bad flag, 1 when the port cannot be bound.
)";
}

parse_outcome parse_options(int argc, const char* const* argv) {
  parse_outcome out;
  options& o = out.parsed;
  auto fail = [&out](std::string message) {
    out.what = parse_outcome::action::error;
    out.message = std::move(message);
    return out;
  };

  using setter = std::function<bool(std::string_view, std::string&)>;
  auto u32 = [](uint32_t& field, uint32_t low, uint32_t high) {
    return setter([&field, low, high](std::string_view v, std::string& error) {
      if (!parse_number<uint32_t>(v, field, low, high)) {
        error = "must be an integer in " + std::to_string(low) + ".." + std::to_string(high);
        return false;
      }
      return true;
    });
  };
  const std::map<std::string, setter, std::less<>> flags = {
      {"--host",
       [&o](std::string_view v, std::string& error) {
         if (v.empty()) {
           error = "must not be empty";
           return false;
         }
         o.host = std::string(v);
         return true;
       }},
      {"--port",
       [&o](std::string_view v, std::string& error) {
         if (!parse_number<uint16_t>(v, o.port, 0, 65535)) {
           error = "must be 0..65535";
           return false;
         }
         return true;
       }},
      {"--port-file",
       [&o](std::string_view v, std::string& error) {
         if (v.empty()) {
           error = "must not be empty";
           return false;
         }
         o.port_file = std::string(v);
         return true;
       }},
      {"--public-url",
       [&o](std::string_view v, std::string& error) {
         if (!(v.starts_with("http://") || v.starts_with("https://")) || v.size() < 9) {
           error = "must be an http:// or https:// URL";
           return false;
         }
         o.public_url = std::string(v);
         while (!o.public_url.empty() && o.public_url.back() == '/') {
           o.public_url.pop_back();
         }
         return true;
       }},
      {"--threads", u32(o.threads, 1, 64)},
      {"--seed",
       [&o](std::string_view v, std::string& error) {
         if (!parse_number<uint64_t>(v, o.seed, 0, std::numeric_limits<uint64_t>::max())) {
           error = "must be an unsigned 64-bit integer";
           return false;
         }
         return true;
       }},
      {"--start-ledger", u32(o.start_ledger, 2, 1'000'000'000)},
      {"--ledgers", u32(o.ledgers, 1, 100'000'000)},
      {"--close-ms", u32(o.close_ms, 0, 3'600'000)},
      {"--max-ledgers", u32(o.max_ledgers, 0, 1'000'000'000)},
      {"--tx-per-ledger", u32(o.tx_per_ledger, 0, 1000)},
      {"--ops-per-tx", u32(o.ops_per_tx, 1, 50)},
      {"--failed-percent", u32(o.failed_percent, 0, 100)},
      {"--fee-bump-percent", u32(o.fee_bump_percent, 0, 100)},
      {"--pools", u32(o.pools, 0, 1000)},
      {"--assets", u32(o.assets, 1, 200)},
      {"--cache-mb", u32(o.cache_mb, 16, 1'048'576)},
      {"--prewarm", u32(o.prewarm, 0, 1)},
      {"--base-time",
       [&o](std::string_view v, std::string& error) {
         int64_t t = 0;
         if (!parse_number<int64_t>(v, t, 0, 253'402'300'799 / 2)) {
           error = "must be unix seconds in 0..126701150399";
           return false;
         }
         o.base_time = t;
         return true;
       }},
      {"--fault",
       [&o](std::string_view v, std::string& error) {
         auto spec = parse_fault_flag(v, error);
         if (!spec) {
           return false;
         }
         o.faults.push_back(std::move(*spec));
         return true;
       }},
  };

  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      out.what = parse_outcome::action::help;
      return out;
    }
    std::string_view name = arg;
    std::optional<std::string_view> value;
    if (const auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    auto it = flags.find(name);
    if (it == flags.end()) {
      return fail("unknown flag '" + std::string(name) + "' (see --help)");
    }
    if (!value) {
      if (i + 1 >= argc) {
        return fail(std::string(name) + " needs a value");
      }
      value = argv[++i];
    }
    std::string error;
    if (!it->second(*value, error)) {
      return fail(std::string(name) + " " + error);
    }
  }

  const uint64_t pairs = static_cast<uint64_t>(o.assets + 1) * o.assets / 2;
  if (o.pools > pairs) {
    return fail("--pools " + std::to_string(o.pools) + " exceeds the " + std::to_string(pairs)
                + " distinct asset pairs of --assets " + std::to_string(o.assets));
  }
  if (o.max_ledgers != 0 && o.max_ledgers < o.ledgers) {
    return fail("--max-ledgers must be 0 or at least --ledgers");
  }
  // TOIDs keep the ledger in the top 31 bits; a growing chain without a cap stops there.
  const uint64_t chain = o.max_ledgers != 0 ? o.max_ledgers : o.ledgers;
  if (static_cast<uint64_t>(o.start_ledger) + chain - 1 > 0x7fffffffULL) {
    return fail("--start-ledger plus the chain length must stay below 2^31");
  }
  return out;
}

}  // namespace si::sim
