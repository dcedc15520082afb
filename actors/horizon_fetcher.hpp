#pragma once
/// `horizon_fetcher`: a detached actor that reads whole ledgers (with every transaction and
/// operation, failed ones included) from Horizon for the ingestor. Its blocking Horizon
/// client never runs on CAF's scheduler threads; the ingestor cancels it on shutdown.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <vector>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/atoms.hpp"
#include "net/horizon_client.hpp"
#include "storage/ingest_repo.hpp"

namespace si::actors {

/// How much one fetch reads.
struct fetch_options {
  unsigned batch_ledgers = 10;  ///< INGEST_BATCH_LEDGERS: ledgers per batch
  unsigned page_limit = 200;    ///< INGEST_PAGE_LIMIT: records per Horizon page
  unsigned max_pages = 10'000;  ///< bound on the pages of one batch (a runaway guard)
};

/// Whole ledgers read from Horizon, ready for storage::commit_page.
struct fetched_batch {
  std::shared_ptr<storage::ingest_batch> batch;
  std::string new_cursor;      ///< the last ledger's paging token ("" when no ledger)
  int64_t first_ledger = 0;    ///< 0 when no ledger
  int64_t last_ledger = 0;     ///< 0 when no ledger
  int64_t network_latest = 0;  ///< newest ledger Horizon has, when asked for (else 0)
  unsigned pages = 0;          ///< Horizon requests made
  bool caught_up = false;      ///< fewer ledgers than asked for: the tip was reached
};

/// Why a fetch produced no batch. Nothing of it may be committed.
struct fetch_failure {
  /// "timeout", "connect", "tls", "http_status", "circuit_open", "cancelled" (from the
  /// Horizon client), "malformed" (a page that does not parse) or "inconsistent" (pages that
  /// parse but are not whole ledgers: a gap, a missing or duplicated record).
  std::string kind;
  std::string message;
  int64_t retry_after_ms = 0;  ///< Horizon's Retry-After, else 0
};

/// What a fetch request answers.
struct fetch_outcome {
  std::variant<fetched_batch, fetch_failure> value;
};

/// GETs one Horizon target (a path with query) and returns the response or the error.
using horizon_get = std::function<net::horizon_result(const std::string& target)>;

/// Reads the ledgers after `cursor` (at most opts.batch_ledgers) and everything in them:
/// `/ledgers`, then `/transactions` and `/operations` with include_failed=true from the
/// first ledger's token, page by page, until the batch's last ledger is complete. The
/// result is checked with domain::check_batch; `expected_first` (the ledger the cursor
/// leads to, when the cursor was committed) turns a skipped ledger into an error.
std::variant<fetched_batch, fetch_failure> fetch_ledger_batch(const horizon_get& get,
                                                              const std::string& cursor,
                                                              std::optional<int64_t> expected_first,
                                                              const fetch_options& opts);

/// The newest ledger Horizon has (`/ledgers?order=desc&limit=1`).
std::variant<int64_t, fetch_failure> fetch_latest_ledger(const horizon_get& get);

/// What a pool or trustline sync reads from Horizon.
struct sync_data {
  std::vector<domain::liquidity_pool> pools;
  /// Trades of each pool since `since_ms` (newest first), for every pool read.
  std::map<std::string, std::vector<domain::trade>> trades_by_pool;
  std::vector<domain::asset_stats> assets;
  unsigned pages = 0;
};

/// Pages `/liquidity_pools` (at most `max_pools`) and, for each pool, its trades
/// (`/liquidity_pools/{id}/trades`, newest first) back to `since_ms`.
std::variant<sync_data, fetch_failure> fetch_pools(const horizon_get& get, unsigned max_pools,
                                                   unsigned page_limit, int64_t since_ms,
                                                   unsigned max_pages);

/// Pages `/assets` (at most `max_assets`).
std::variant<sync_data, fetch_failure> fetch_assets(const horizon_get& get, unsigned max_assets,
                                                    unsigned page_limit, unsigned max_pages);

/// What a sync fetch answers.
struct sync_outcome {
  std::variant<sync_data, fetch_failure> value;
};

}  // namespace si::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(si::actors::fetch_outcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(si::actors::sync_outcome)

namespace si::actors {

/// Messages: `fetch_atom, cursor, expected_first (0 = none), want_latest` → fetch_outcome
/// (want_latest also fills network_latest); `latest_atom` → fetch_outcome whose batch only
/// carries network_latest. The client is shared with the ingestor, which calls cancel().
/// `sync_atom, "pools"|"assets", max, since_ms` → sync_outcome (see fetch_pools/fetch_assets).
using horizon_fetcher_actor = caf::typed_actor<
    caf::replies_to<fetch_atom, std::string, int64_t, bool>::with<fetch_outcome>,
    caf::replies_to<latest_atom>::with<fetch_outcome>,
    caf::replies_to<sync_atom, std::string, uint32_t, int64_t>::with<sync_outcome>>;

/// Spawns the detached fetcher over `client`.
horizon_fetcher_actor spawn_horizon_fetcher(caf::actor_system& sys,
                                            std::shared_ptr<net::horizon_client> client,
                                            fetch_options opts);

}  // namespace si::actors
