#pragma once
/// A batch of whole ledgers as the ingestor commits it: TOID arithmetic and the consistency
/// checks that keep a truncated or partial Horizon answer from ever advancing the cursor.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "domain/horizon.hpp"

namespace si::domain {

/// The TOID (total order id) of ledger `sequence`, transaction `tx` (1-based; 0 = the
/// ledger itself) and operation `op` (1-based; 0 = the transaction itself). Horizon's paging
/// tokens of ledgers, transactions and operations are these numbers in decimal.
constexpr int64_t toid(int64_t sequence, int64_t tx = 0, int64_t op = 0) {
  return (sequence << 32) | (tx << 12) | op;
}

/// The ledger sequence a TOID belongs to.
constexpr int64_t toid_ledger(int64_t id) {
  return id >> 32;
}

/// The ledger a cursor leads to: the first ledger Horizon returns for `/ledgers?cursor=C`
/// in ascending order (records with paging_token > C). nullopt when `cursor` is not a
/// non-negative decimal int64.
std::optional<int64_t> next_ledger_after(const std::string& cursor);

/// The cursor that makes `/ledgers` start at ledger `sequence` (>= 1).
std::string cursor_before_ledger(int64_t sequence);

/// Checks that `ledgers` (ascending, consecutive, the first one `expected_first` when
/// given), `transactions` and `operations` are exactly the contents of those ledgers:
/// - every transaction belongs to one of the ledgers, none twice, and each ledger has as
///   many as its successful + failed counters say (when Horizon gives both);
/// - every operation belongs to a transaction of the batch (by hash and by TOID), none
///   twice, and each transaction has exactly `operation_count` operations;
/// Returns the first inconsistency in words, or nullopt when the batch is whole.
std::optional<std::string> check_batch(const std::vector<ledger>& ledgers,
                                       const std::vector<transaction>& transactions,
                                       const std::vector<operation>& operations,
                                       std::optional<int64_t> expected_first);

}  // namespace si::domain
