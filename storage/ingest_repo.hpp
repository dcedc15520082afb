#pragma once
/// The ingestion write path: one page of Horizon records (ledgers, transactions,
/// operations) and the cursor it advances, committed in one database transaction with
/// idempotent writes (design.md §4). Called by the ingestor on a db worker.

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "domain/horizon.hpp"
#include "storage/database.hpp"

namespace soci {
class session;
}

namespace si::storage {

/// The records of one page to ingest (any of the vectors may be empty).
struct ingest_batch {
  std::vector<domain::ledger> ledgers;
  std::vector<domain::transaction> transactions;
  std::vector<domain::operation> operations;
};

/// Rows newly inserted by `commit_page`. Rows already present (same natural key) are left
/// as they are and not counted, so re-committing a page yields all zeros.
struct commit_result {
  long long ledgers_written = 0;
  long long transactions_written = 0;
  long long operations_written = 0;
  long long events_written = 0;  ///< what the commit hook reported (webhook outbox events)
};

/// Extra writes that must commit or roll back with a page, e.g. its webhook outbox events
/// (design.md §4). `commit_page` calls it inside its transaction BEFORE the page's rows are
/// written, so the hook can still tell new records from ones already stored (a page written
/// again after a crash must not yield its events twice). Returns how many events it wrote;
/// throwing rolls the whole page back.
using commit_hook =
    std::function<long long(soci::session& sql, const ingest_batch& batch, long long now_ms)>;

/// Writes `batch` and advances `ingestion_cursor(stream)` to `new_cursor` / `last_ledger`
/// in ONE transaction (`sql` must not be inside one already).
/// - Idempotent: inserts skip rows whose natural key exists (ledger sequence, transaction
///   hash, operation id); existing rows are never changed.
/// - The cursor never moves backwards: `new_cursor` must be a decimal int64 (a Horizon
///   paging token); when the stored cursor is an integer >= `new_cursor`, the cursor row
///   (cursor, last_ledger, updated_at) is kept as is. A stored cursor that is not an
///   integer is replaced.
/// - Operations: `ledger` and `application_order` (the operation's 1-based index in its
///   transaction) come from the TOID `id`; payment essentials go to from/to, asset and
///   amount columns (amounts in asset units as doubles); the rest of the record is stored
///   as JSON text in `details`. A required text field that is empty is written as NULL, so
///   the schema's NOT NULL constraints refuse it.
/// - `hook` (optional) runs first inside the same transaction (see commit_hook); an empty
///   hook costs nothing.
/// On any failure everything is rolled back (rows, events and cursor) and std::runtime_error
/// is thrown naming the stream, the cursor and the cause.
commit_result commit_page(soci::session& sql, backend kind, const ingest_batch& batch,
                          const std::string& stream, const std::string& new_cursor,
                          long long last_ledger, long long now_ms, const commit_hook& hook = {});

/// The stored `{cursor, last_ledger}` of `stream` (last_ledger 0 when NULL); nullopt before
/// the first commit.
std::optional<std::pair<std::string, long long>> read_cursor(soci::session& sql,
                                                             const std::string& stream);

}  // namespace si::storage
