#include "domain/ledger_batch.hpp"

#include <charconv>
#include <map>
#include <set>
#include <unordered_map>

namespace si::domain {

std::optional<int64_t> next_ledger_after(const std::string& cursor) {
  int64_t value = 0;
  if (cursor.empty()) {
    return std::nullopt;
  }
  auto [end, ec] = std::from_chars(cursor.data(), cursor.data() + cursor.size(), value);
  if (ec != std::errc{} || end != cursor.data() + cursor.size() || value < 0) {
    return std::nullopt;
  }
  // Ledger L's own token is L<<32 and everything inside it is above that: the next record
  // of /ledgers after C is ledger (C >> 32) + 1 whatever the low bits of C are.
  return toid_ledger(value) + 1;
}

std::string cursor_before_ledger(int64_t sequence) {
  return std::to_string(toid(sequence) - 1);
}

std::optional<std::string> check_batch(const std::vector<ledger>& ledgers,
                                       const std::vector<transaction>& transactions,
                                       const std::vector<operation>& operations,
                                       std::optional<int64_t> expected_first) {
  if (ledgers.empty()) {
    if (!transactions.empty() || !operations.empty()) {
      return std::string("records without a ledger");
    }
    return std::nullopt;
  }
  if (expected_first && ledgers.front().sequence != *expected_first) {
    return "expected ledger " + std::to_string(*expected_first) + " next, Horizon returned "
           + std::to_string(ledgers.front().sequence) + " (a gap)";
  }
  std::map<int64_t, const ledger*> by_sequence;
  for (size_t i = 0; i < ledgers.size(); ++i) {
    const auto& l = ledgers[i];
    if (i > 0 && l.sequence != ledgers[i - 1].sequence + 1) {
      return "ledgers " + std::to_string(ledgers[i - 1].sequence) + " and "
             + std::to_string(l.sequence) + " are not consecutive";
    }
    by_sequence[l.sequence] = &l;
  }
  std::map<int64_t, int64_t> tx_per_ledger;
  std::unordered_map<std::string, const transaction*> by_hash;
  for (const auto& t : transactions) {
    if (by_sequence.count(t.ledger) == 0) {
      return "transaction " + t.hash + " is in ledger " + std::to_string(t.ledger)
             + ", outside the batch";
    }
    if (!by_hash.emplace(t.hash, &t).second) {
      return "transaction " + t.hash + " appears twice";
    }
    ++tx_per_ledger[t.ledger];
  }
  for (const auto& [sequence, l] : by_sequence) {
    if (!l->failed_transaction_count) {
      continue;  // Horizon never counted failed transactions for this ledger
    }
    int64_t expected = int64_t{l->successful_transaction_count} + *l->failed_transaction_count;
    if (tx_per_ledger[sequence] != expected) {
      return "ledger " + std::to_string(sequence) + " has "
             + std::to_string(tx_per_ledger[sequence]) + " transactions, its counters say "
             + std::to_string(expected);
    }
  }
  std::unordered_map<std::string, int64_t> ops_per_tx;
  std::set<int64_t> ids;
  for (const auto& o : operations) {
    auto t = by_hash.find(o.transaction_hash);
    if (t == by_hash.end()) {
      return "operation " + std::to_string(o.id) + " belongs to transaction " + o.transaction_hash
             + ", which is not in the batch";
    }
    if (toid_ledger(o.id) != t->second->ledger) {
      return "operation " + std::to_string(o.id) + " is not in its transaction's ledger "
             + std::to_string(t->second->ledger);
    }
    if (!ids.insert(o.id).second) {
      return "operation " + std::to_string(o.id) + " appears twice";
    }
    ++ops_per_tx[o.transaction_hash];
  }
  for (const auto& t : transactions) {
    auto n = ops_per_tx[t.hash];
    if (n != t.operation_count) {
      return "transaction " + t.hash + " has " + std::to_string(n)
             + " operations, its operation_count says " + std::to_string(t.operation_count);
    }
  }
  return std::nullopt;
}

}  // namespace si::domain
