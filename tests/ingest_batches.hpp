#pragma once
/// Generated ingest batches for the storage and webhook tests: the same chain of ledgers and
/// transactions, with each test shaping the operations it needs. Header-only, test code.

#include <string>

#include "domain/horizon.hpp"
#include "storage/ingest_repo.hpp"

namespace si::test {

/// A 64-hex-digit hash unique to `n`.
inline std::string fake_hash(long long n) {
  std::string h = std::to_string(n);
  return std::string(64 - h.size(), 'a') + h;
}

/// `ledgers` ledgers from `first`, closed 5 s apart (ledger l at `epoch_ms` + l * 5000), each
/// with `txs` transactions of `ops` operations, ids as Horizon's TOIDs; every tenth
/// transaction failed; `account` is every source and fee account. `shape(op, o)` fills in
/// operation `o` (1-based within its transaction) after its ids, transaction and source are
/// set. `cursor` gets the last paging token.
template <class Shape>
storage::ingest_batch generated_batch(long long first, int ledgers, int txs, int ops,
                                      long long epoch_ms, const std::string& account,
                                      std::string& cursor, Shape shape) {
  storage::ingest_batch b;
  for (long long l = first; l < first + ledgers; ++l) {
    domain::ledger led;
    led.sequence = l;
    led.hash = fake_hash(l);
    led.prev_hash = fake_hash(l - 1);
    led.closed_at_ms = epoch_ms + l * 5000;
    led.successful_transaction_count = txs;
    led.failed_transaction_count = 0;
    led.operation_count = txs * ops;
    led.tx_set_operation_count = txs * ops;
    led.base_fee = 100;
    led.protocol_version = 21;
    led.paging_token = std::to_string(l << 32);
    b.ledgers.push_back(led);
    for (int t = 1; t <= txs; ++t) {
      domain::transaction tx;
      const long long tx_id = (l << 32) | (static_cast<long long>(t) << 12);
      tx.hash = fake_hash(tx_id);
      tx.ledger = l;
      tx.created_at_ms = led.closed_at_ms;
      tx.source_account = account;
      tx.fee_account = account;
      tx.fee_charged = 100 * ops;
      tx.max_fee = 1000 * ops;
      tx.operation_count = ops;
      tx.successful = t % 10 != 0;
      tx.memo_type = "none";
      tx.paging_token = std::to_string(tx_id);
      tx.toid = tx_id;
      b.transactions.push_back(tx);
      for (int o = 1; o <= ops; ++o) {
        domain::operation op;
        op.id = tx_id | o;
        op.paging_token = std::to_string(op.id);
        op.transaction_hash = tx.hash;
        op.transaction_successful = tx.successful;
        op.source_account = account;
        op.created_at_ms = tx.created_at_ms;
        shape(op, o);
        b.operations.push_back(op);
        cursor = op.paging_token;
      }
    }
  }
  return b;
}

}  // namespace si::test
