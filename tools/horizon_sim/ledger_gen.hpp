#pragma once
/// One ledger, generated from (seed, flags, sequence) alone and rendered once: the ledger
/// record, its transactions and its operations as ready JSON text, with an index of every
/// record (byte span, paging token, flags) so pages and streams are assembled from slices
/// of it without re-rendering, plus the ledger's ground-truth totals.

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tools/horizon_sim/world.hpp"

namespace si::sim {

/// record_span::flags bits.
inline constexpr uint8_t span_successful = 1;  ///< the (containing) transaction succeeded
inline constexpr uint8_t span_payment = 2;     ///< a payment-like operation (/payments)
inline constexpr uint8_t span_fee_bump = 4;    ///< a fee-bump transaction

/// Where one record sits in a blob. Records in a blob are separated by one ','.
struct record_span {
  uint32_t begin = 0;
  uint32_t end = 0;
  uint64_t token = 0;  ///< the paging token (TOID)
  uint8_t flags = 0;
  uint8_t type = 0;  ///< op_type for operations
};

/// Payment-like operations of one corridor (source asset -> destination asset).
struct payment_tally {
  asset_ref source = 0;
  asset_ref destination = 0;
  uint32_t successful = 0;
  uint32_t failed = 0;
};

/// Ground truth of one ledger.
struct ledger_totals {
  uint32_t transactions = 0;
  uint32_t successful_transactions = 0;
  uint32_t failed_transactions = 0;
  uint32_t fee_bump_transactions = 0;
  uint32_t operations = 0;             ///< every operation in the transaction set
  uint32_t successful_operations = 0;  ///< operations of successful transactions
  std::array<uint32_t, op_type_count> ops_by_type{};
  std::array<uint32_t, op_type_count> successful_ops_by_type{};
  std::vector<payment_tally> payments;
  int64_t fee_charged = 0;  ///< stroops
};

/// The independently generated parts of a ledger: a page of operations never pays for
/// rendering transactions, and the other way round.
enum class ledger_part : uint8_t {
  operations,    ///< the ledger record, its operations and its totals
  transactions,  ///< its transactions
};

/// A generated, rendered part of a ledger. Immutable once built; shared by every reader.
struct ledger_data {
  uint32_t sequence = 0;
  ledger_part part = ledger_part::operations;
  int64_t closed_at = 0;         ///< unix s
  std::string ledger_json;       ///< operations part
  std::string tx_blob;           ///< transactions part
  std::vector<record_span> txs;  ///< transactions part
  std::string op_blob;           ///< operations part
  std::vector<record_span> ops;  ///< operations part
  ledger_totals totals;          ///< operations part

  /// Bytes held (for the cache budget).
  std::size_t memory() const;
  /// The JSON of transaction `k` (0-based).
  std::string_view tx(std::size_t k) const {
    return std::string_view(tx_blob).substr(txs[k].begin, txs[k].end - txs[k].begin);
  }
  /// The JSON of operation `k` (0-based).
  std::string_view op(std::size_t k) const {
    return std::string_view(op_blob).substr(ops[k].begin, ops[k].end - ops[k].begin);
  }
};

/// TOID of ledger `seq`, transaction `tx` (1-based) and operation `op` (1-based, 0 for the
/// transaction itself).
constexpr uint64_t toid(uint64_t seq, uint64_t tx, uint64_t op) {
  return (seq << 32) | (tx << 12) | op;
}

/// Generates and renders `part` of ledger `seq`. Deterministic: depends only on the world.
std::shared_ptr<const ledger_data> generate_ledger(const world& w, uint32_t seq, ledger_part part);

}  // namespace si::sim
