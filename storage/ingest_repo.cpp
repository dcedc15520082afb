#include "storage/ingest_repo.hpp"

#include <soci/soci.h>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>

#include "domain/horizon_values.hpp"

namespace si::storage {

namespace {

/// How a column's value travels.
enum class col_type { integer, real, text };

/// A multi-row `INSERT ... VALUES (...), (...) ON CONFLICT (...) DO NOTHING` written in
/// chunks of `chunk_rows`: each chunk is one statement execution (one round trip on
/// PostgreSQL). The full-chunk statement is prepared once and re-executed with new values;
/// the last, partial chunk gets its own statement. Values live in per-slot buffers the
/// statements are bound to.
class bulk_insert {
 public:
  bulk_insert(soci::session& sql, std::string table, std::vector<std::string> columns,
              std::vector<col_type> types, std::string conflict_key, std::size_t chunk_rows)
      : sql_(sql),
        table_(std::move(table)),
        columns_(std::move(columns)),
        types_(std::move(types)),
        conflict_key_(std::move(conflict_key)),
        chunk_rows_(chunk_rows),
        ints_(chunk_rows * types_.size()),
        reals_(chunk_rows * types_.size()),
        texts_(chunk_rows * types_.size()),
        inds_(chunk_rows * types_.size(), soci::i_ok) {}

  void set_int(std::size_t col, std::optional<long long> v) {
    const std::size_t s = slot(col);
    ints_[s] = v.value_or(0);
    inds_[s] = v ? soci::i_ok : soci::i_null;
  }
  void set_real(std::size_t col, std::optional<double> v) {
    const std::size_t s = slot(col);
    reals_[s] = v.value_or(0.0);
    inds_[s] = v ? soci::i_ok : soci::i_null;
  }
  /// An empty `v` is written as NULL.
  void set_text(std::size_t col, std::string_view v) {
    const std::size_t s = slot(col);
    texts_[s].assign(v);
    inds_[s] = v.empty() ? soci::i_null : soci::i_ok;
  }
  void set_opt_text(std::size_t col, const std::optional<std::string>& v) {
    set_text(col, v ? std::string_view(*v) : std::string_view());
  }

  /// Ends the current row; executes the chunk when it is full.
  void end_row() {
    ++rows_;
    if (rows_ == chunk_rows_) {
      if (!full_) {
        full_ = prepare(chunk_rows_);
      }
      run(*full_);
    }
  }

  /// Writes the rows not yet written; returns how many rows were inserted in all.
  long long finish() {
    if (rows_ > 0) {
      auto partial = prepare(rows_);
      run(partial);
    }
    return inserted_;
  }

 private:
  std::size_t slot(std::size_t col) const {
    return rows_ * types_.size() + col;
  }

  soci::statement prepare(std::size_t rows) {
    std::string text = "INSERT INTO " + table_ + " (";
    for (std::size_t c = 0; c < columns_.size(); ++c) {
      text += (c == 0 ? "" : ", ") + columns_[c];
    }
    text += ") VALUES ";
    soci::statement st(sql_);
    // SQLite gets anonymous `?` placeholders: with thousands of named ones (`:v123`) in one
    // statement, resolving names is quadratic and dominated the commit (seen in perf).
    // SOCI's PostgreSQL backend needs names (it rewrites them to $n).
    const bool anonymous = sql_.get_backend_name() == "sqlite3";
    std::size_t n = 0;
    for (std::size_t r = 0; r < rows; ++r) {
      text += r == 0 ? "(" : ", (";
      for (std::size_t c = 0; c < types_.size(); ++c) {
        text += c == 0 ? "" : ", ";
        text += anonymous ? std::string("?") : ":v" + std::to_string(n);
        ++n;
        const std::size_t s = r * types_.size() + c;
        switch (types_[c]) {
          case col_type::integer:
            st.exchange(soci::use(ints_[s], inds_[s]));
            break;
          case col_type::real:
            st.exchange(soci::use(reals_[s], inds_[s]));
            break;
          case col_type::text:
            st.exchange(soci::use(texts_[s], inds_[s]));
            break;
        }
      }
      text += ")";
    }
    text += " ON CONFLICT (" + conflict_key_ + ") DO NOTHING";
    st.alloc();
    st.prepare(text);
    st.define_and_bind();
    return st;
  }

  void run(soci::statement& st) {
    st.execute(true);
    inserted_ += st.get_affected_rows();
    rows_ = 0;
  }

  soci::session& sql_;
  std::string table_;
  std::vector<std::string> columns_;
  std::vector<col_type> types_;
  std::string conflict_key_;
  std::size_t chunk_rows_;
  std::vector<long long> ints_;
  std::vector<double> reals_;
  std::vector<std::string> texts_;
  std::vector<soci::indicator> inds_;
  std::optional<soci::statement> full_;
  std::size_t rows_ = 0;
  long long inserted_ = 0;
};

/// Rows per statement: ~3,600 bound values for operations, well under both backends' limits.
constexpr std::size_t chunk_rows = 200;

std::optional<long long> parse_int64(std::string_view text) {
  long long v = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || ptr != end) {
    return std::nullopt;
  }
  return v;
}

long long write_ledgers(soci::session& sql, const std::vector<domain::ledger>& ledgers,
                        long long now_ms) {
  using enum col_type;
  bulk_insert ins(
      sql, "ledgers",
      {"sequence", "hash", "prev_hash", "closed_at", "successful_transaction_count",
       "failed_transaction_count", "operation_count", "tx_set_operation_count",
       "base_fee_in_stroops", "protocol_version", "ingested_at"},
      {integer, text, text, integer, integer, integer, integer, integer, integer, integer, integer},
      "sequence", chunk_rows);
  for (const auto& l : ledgers) {
    ins.set_int(0, l.sequence);
    ins.set_text(1, l.hash);
    ins.set_text(2, l.prev_hash);
    ins.set_int(3, l.closed_at_ms);
    ins.set_int(4, l.successful_transaction_count);
    ins.set_int(5, l.failed_transaction_count.value_or(0));
    ins.set_int(6, l.operation_count);
    ins.set_int(7, l.tx_set_operation_count ? std::optional<long long>(*l.tx_set_operation_count)
                                            : std::nullopt);
    ins.set_int(8, l.base_fee);
    ins.set_int(9, l.protocol_version);
    ins.set_int(10, now_ms);
    ins.end_row();
  }
  return ins.finish();
}

long long write_transactions(soci::session& sql, const std::vector<domain::transaction>& txs) {
  using enum col_type;
  bulk_insert ins(sql, "transactions",
                  {"id", "hash", "ledger", "paging_token", "source_account", "fee_account",
                   "fee_charged", "max_fee", "successful", "fee_bump", "inner_hash",
                   "operation_count", "memo_type", "memo", "created_at"},
                  {integer, text, integer, text, text, text, integer, integer, integer, integer,
                   text, integer, text, text, integer},
                  "id", chunk_rows);
  for (const auto& t : txs) {
    ins.set_int(0, t.toid);
    ins.set_text(1, t.hash);
    ins.set_int(2, t.ledger);
    ins.set_text(3, t.paging_token);
    ins.set_text(4, t.source_account);
    ins.set_text(5, t.fee_account);
    ins.set_int(6, t.fee_charged);
    ins.set_int(7, t.max_fee);
    ins.set_int(8, t.successful ? 1 : 0);
    ins.set_int(9, t.is_fee_bump() ? 1 : 0);
    ins.set_opt_text(10, t.inner_transaction_hash);
    ins.set_int(11, t.operation_count);
    ins.set_text(12, t.memo_type);
    ins.set_opt_text(13, t.memo);
    ins.set_int(14, t.created_at_ms);
    ins.end_row();
  }
  return ins.finish();
}

std::optional<double> units(const std::optional<int64_t>& stroops) {
  if (!stroops) {
    return std::nullopt;
  }
  return domain::stroops_to_units(*stroops);
}

long long write_operations(soci::session& sql, const std::vector<domain::operation>& ops) {
  using enum col_type;
  bulk_insert ins(sql, "operations",
                  {"id", "paging_token", "transaction_hash", "ledger", "application_order", "type",
                   "source_account", "successful", "created_at", "from_account", "to_account",
                   "source_asset_code", "source_asset_issuer", "destination_asset_code",
                   "destination_asset_issuer", "amount", "source_amount", "details"},
                  {integer, text, text, integer, integer, text, text, integer, integer, text, text,
                   text, text, text, text, real, real, text},
                  "id", chunk_rows);
  for (const auto& o : ops) {
    ins.set_int(0, o.id);
    ins.set_text(1, o.paging_token);
    ins.set_text(2, o.transaction_hash);
    ins.set_int(3, o.id >> 32);    // TOID: ledger sequence in the high 32 bits
    ins.set_int(4, o.id & 0xFFF);  // TOID: operation index (1-based) in the low 12 bits
    ins.set_text(5, o.type);
    ins.set_text(6, o.source_account);
    ins.set_int(7, o.transaction_successful ? 1 : 0);
    ins.set_int(8, o.created_at_ms);
    if (o.payment) {
      const auto& p = *o.payment;
      ins.set_text(9, p.from);
      ins.set_text(10, p.to);
      ins.set_text(11, p.source_asset.code);
      ins.set_text(12, p.source_asset.issuer);
      ins.set_text(13, p.destination_asset.code);
      ins.set_text(14, p.destination_asset.issuer);
      ins.set_real(15, units(p.amount));
      ins.set_real(16, units(p.source_amount));
    } else {
      for (std::size_t c = 9; c <= 14; ++c) {
        ins.set_text(c, std::string_view());
      }
      ins.set_real(15, std::nullopt);
      ins.set_real(16, std::nullopt);
    }
    ins.set_text(17, o.details);
    ins.end_row();
  }
  return ins.finish();
}

/// The page's transaction. On SQLite it takes the write lock up front (BEGIN IMMEDIATE, which
/// waits out busy_timeout for other writers): a deferred transaction that reads first (the
/// commit hook does) would otherwise fail with SQLITE_BUSY when it upgrades to write after
/// another writer (e.g. the webhook dispatcher) committed. On PostgreSQL a transaction that
/// first takes an advisory lock on the stream: replicas ingesting the same stream into one
/// database (every replica of a Deployment does, and a rolling update overlaps two) then
/// commit a batch one after the other, so the second one's hook sees the first one's rows
/// and queues no second payment.created for them (READ COMMITTED alone let both see none).
/// Rolls back unless committed (which also releases the lock).
class page_transaction {
 public:
  page_transaction(soci::session& sql, backend kind, const std::string& stream)
      : sql_(sql), sqlite_(kind == backend::sqlite) {
    if (sqlite_) {
      sql_ << "BEGIN IMMEDIATE";
    } else {
      sql_.begin();
      const std::string key = "si.ingest:" + stream;
      sql_ << "SELECT pg_advisory_xact_lock(hashtext(:key))", soci::use(key);
    }
  }
  page_transaction(const page_transaction&) = delete;
  page_transaction& operator=(const page_transaction&) = delete;

  ~page_transaction() {
    if (done_) {
      return;
    }
    try {
      if (sqlite_) {
        sql_ << "ROLLBACK";
      } else {
        sql_.rollback();
      }
    } catch (...) {
      // The error that brought us here is what the caller needs.
    }
  }

  void commit() {
    if (sqlite_) {
      sql_ << "COMMIT";
    } else {
      sql_.commit();
    }
    done_ = true;
  }

 private:
  soci::session& sql_;
  bool sqlite_;
  bool done_ = false;
};

/// Moves the cursor of `stream` to `new_cursor` unless the stored one is already >= it.
void advance_cursor(soci::session& sql, backend kind, const std::string& stream,
                    const std::string& new_cursor, long long new_value, long long last_ledger,
                    long long now_ms) {
  std::string stored;
  soci::indicator stored_ind = soci::i_null;
  std::string query = "SELECT cursor FROM ingestion_cursor WHERE name = :name";
  if (kind == backend::postgresql) {
    query += " FOR UPDATE";
  }
  sql << query, soci::into(stored, stored_ind), soci::use(stream);
  if (!sql.got_data()) {
    sql << "INSERT INTO ingestion_cursor (name, cursor, last_ledger, updated_at) "
           "VALUES (:name, :cursor, :last_ledger, :now)",
        soci::use(stream), soci::use(new_cursor), soci::use(last_ledger), soci::use(now_ms);
    return;
  }
  if (stored_ind == soci::i_ok) {
    if (auto old = parse_int64(stored); old && *old >= new_value) {
      return;  // never backwards (and an equal cursor changes nothing)
    }
  }
  sql << "UPDATE ingestion_cursor SET cursor = :cursor, last_ledger = :last_ledger, "
         "updated_at = :now WHERE name = :name",
      soci::use(new_cursor), soci::use(last_ledger), soci::use(now_ms), soci::use(stream);
}

}  // namespace

commit_result commit_page(soci::session& sql, backend kind, const ingest_batch& batch,
                          const std::string& stream, const std::string& new_cursor,
                          long long last_ledger, long long now_ms, const commit_hook& hook) {
  const std::string context = "ingest commit of stream '" + stream + "' to cursor '" + new_cursor
                              + "' failed (rolled back): ";
  if (stream.empty()) {
    throw std::runtime_error(context + "empty stream name");
  }
  const auto cursor_value = parse_int64(new_cursor);
  if (!cursor_value) {
    throw std::runtime_error(context + "cursor is not a decimal int64 paging token");
  }
  commit_result result;
  try {
    page_transaction tr(sql, kind, stream);
    if (hook) {
      // Before the rows because the hook must see which records are already stored.
      result.events_written = hook(sql, batch, now_ms);
    }
    result.ledgers_written = write_ledgers(sql, batch.ledgers, now_ms);
    result.transactions_written = write_transactions(sql, batch.transactions);
    result.operations_written = write_operations(sql, batch.operations);
    advance_cursor(sql, kind, stream, new_cursor, *cursor_value, last_ledger, now_ms);
    tr.commit();
  } catch (const std::exception& e) {
    throw std::runtime_error(context + e.what());
  }
  return result;
}

std::optional<std::pair<std::string, long long>> read_cursor(soci::session& sql,
                                                             const std::string& stream) {
  std::string cursor;
  long long last_ledger = 0;
  soci::indicator ledger_ind = soci::i_null;
  sql << "SELECT cursor, last_ledger FROM ingestion_cursor WHERE name = :name", soci::into(cursor),
      soci::into(last_ledger, ledger_ind), soci::use(stream);
  if (!sql.got_data()) {
    return std::nullopt;
  }
  return std::make_pair(cursor, ledger_ind == soci::i_ok ? last_ledger : 0LL);
}

}  // namespace si::storage
