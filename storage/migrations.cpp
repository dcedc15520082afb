#include "storage/database.hpp"
#include "storage/migrations.hpp"

#include <soci/soci.h>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string_view>
#include <utility>

namespace si::storage {

namespace {

/// `{{AUTO_ID}}` marks an auto-increment primary key; each backend spells it its own way.
constexpr std::string_view auto_id_marker = "{{AUTO_ID}}";
/// `{{INT64_KEY}}` marks a 64-bit primary key the application assigns: SQLite's INTEGER
/// PRIMARY KEY (64-bit, the table's own rowid, so no separate index) or PostgreSQL's BIGINT.
constexpr std::string_view int64_key_marker = "{{INT64_KEY}}";

/// Every migration this build knows, oldest first. Append only: an applied migration is
/// never edited (a fix is a new migration). Timestamps are BIGINT unix milliseconds; booleans
/// are INTEGER 0/1; JSON documents are TEXT; amounts used in aggregates are DOUBLE PRECISION.
const std::vector<migration>& all_migrations() {
  static const std::vector<migration> list = {
      {1,
       "initial_schema",
       {
           // -- ledgers and what they contain (ingestor) --------------------------------
           R"(CREATE TABLE ledgers (
  sequence BIGINT PRIMARY KEY,
  hash TEXT NOT NULL UNIQUE,
  prev_hash TEXT,
  closed_at BIGINT NOT NULL,
  successful_transaction_count INTEGER NOT NULL DEFAULT 0,
  failed_transaction_count INTEGER NOT NULL DEFAULT 0,
  operation_count INTEGER NOT NULL DEFAULT 0,
  tx_set_operation_count INTEGER,
  base_fee_in_stroops BIGINT,
  base_reserve_in_stroops BIGINT,
  protocol_version INTEGER,
  ingested_at BIGINT NOT NULL))",
           "CREATE INDEX ledgers_closed_at_idx ON ledgers (closed_at)",

           R"(CREATE TABLE transactions (
  hash TEXT PRIMARY KEY,
  ledger BIGINT NOT NULL,
  paging_token TEXT,
  source_account TEXT NOT NULL,
  fee_account TEXT,
  fee_charged BIGINT NOT NULL,
  max_fee BIGINT,
  successful INTEGER NOT NULL,
  fee_bump INTEGER NOT NULL DEFAULT 0,
  inner_hash TEXT,
  operation_count INTEGER NOT NULL,
  memo_type TEXT,
  memo TEXT,
  created_at BIGINT NOT NULL))",
           "CREATE INDEX transactions_ledger_idx ON transactions (ledger)",
           "CREATE INDEX transactions_source_idx ON transactions (source_account, created_at)",
           "CREATE INDEX transactions_created_at_idx ON transactions (created_at)",

           R"(CREATE TABLE operations (
  id BIGINT PRIMARY KEY,
  paging_token TEXT,
  transaction_hash TEXT NOT NULL,
  ledger BIGINT NOT NULL,
  application_order INTEGER,
  type TEXT NOT NULL,
  source_account TEXT NOT NULL,
  successful INTEGER NOT NULL,
  created_at BIGINT NOT NULL,
  from_account TEXT,
  to_account TEXT,
  source_asset_code TEXT,
  source_asset_issuer TEXT,
  destination_asset_code TEXT,
  destination_asset_issuer TEXT,
  amount DOUBLE PRECISION,
  source_amount DOUBLE PRECISION,
  details TEXT NOT NULL DEFAULT '{}'))",
           "CREATE INDEX operations_transaction_idx ON operations (transaction_hash)",
           "CREATE INDEX operations_ledger_idx ON operations (ledger)",
           "CREATE INDEX operations_type_created_idx ON operations (type, created_at)",
           "CREATE INDEX operations_from_idx ON operations (from_account, created_at)",
           "CREATE INDEX operations_to_idx ON operations (to_account, created_at)",
           R"(CREATE INDEX operations_corridor_idx ON operations (source_asset_code,
  source_asset_issuer, destination_asset_code, destination_asset_issuer, created_at))",
           "CREATE INDEX operations_created_at_idx ON operations (created_at)",

           // -- payment corridors (derived from operations) -------------------------------
           R"(CREATE TABLE corridors (
  id TEXT PRIMARY KEY,
  source_asset_code TEXT NOT NULL,
  source_asset_issuer TEXT NOT NULL,
  destination_asset_code TEXT NOT NULL,
  destination_asset_issuer TEXT NOT NULL,
  success_rate DOUBLE PRECISION,
  total_attempts BIGINT NOT NULL DEFAULT 0,
  successful BIGINT NOT NULL DEFAULT 0,
  failed BIGINT NOT NULL DEFAULT 0,
  volume DOUBLE PRECISION NOT NULL DEFAULT 0,
  last_updated BIGINT NOT NULL,
  UNIQUE (source_asset_code, source_asset_issuer, destination_asset_code,
          destination_asset_issuer)))",
           "CREATE INDEX corridors_success_rate_idx ON corridors (success_rate)",
           "CREATE INDEX corridors_volume_idx ON corridors (volume)",
           "CREATE INDEX corridors_attempts_idx ON corridors (total_attempts)",
           "CREATE INDEX corridors_destination_idx ON corridors (destination_asset_code)",

           R"(CREATE TABLE corridor_buckets (
  corridor_id TEXT NOT NULL,
  bucket_start BIGINT NOT NULL,
  attempts BIGINT NOT NULL DEFAULT 0,
  successful BIGINT NOT NULL DEFAULT 0,
  failed BIGINT NOT NULL DEFAULT 0,
  volume DOUBLE PRECISION NOT NULL DEFAULT 0,
  PRIMARY KEY (corridor_id, bucket_start)))",
           "CREATE INDEX corridor_buckets_start_idx ON corridor_buckets (bucket_start)",

           // -- anchors (admin-created, metrics derived) ----------------------------------
           R"(CREATE TABLE anchors (
  id {{AUTO_ID}},
  name TEXT NOT NULL,
  stellar_account TEXT NOT NULL UNIQUE,
  home_domain TEXT,
  status TEXT NOT NULL DEFAULT 'green'
    CHECK (status IN ('green', 'yellow', 'red')),
  total_transactions BIGINT NOT NULL DEFAULT 0,
  successful_transactions BIGINT NOT NULL DEFAULT 0,
  failed_transactions BIGINT NOT NULL DEFAULT 0,
  total_volume DOUBLE PRECISION NOT NULL DEFAULT 0,
  avg_settlement_time_ms BIGINT,
  reliability_score DOUBLE PRECISION,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL))",
           "CREATE INDEX anchors_status_idx ON anchors (status)",
           "CREATE INDEX anchors_reliability_idx ON anchors (reliability_score)",

           R"(CREATE TABLE anchor_assets (
  id {{AUTO_ID}},
  anchor_id BIGINT NOT NULL REFERENCES anchors (id) ON DELETE CASCADE,
  asset_code TEXT NOT NULL,
  asset_issuer TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  UNIQUE (anchor_id, asset_code, asset_issuer)))",
           "CREATE INDEX anchor_assets_asset_idx ON anchor_assets (asset_code, asset_issuer)",

           R"(CREATE TABLE anchor_metrics_history (
  id {{AUTO_ID}},
  anchor_id BIGINT NOT NULL REFERENCES anchors (id) ON DELETE CASCADE,
  recorded_at BIGINT NOT NULL,
  total_transactions BIGINT NOT NULL DEFAULT 0,
  successful_transactions BIGINT NOT NULL DEFAULT 0,
  failed_transactions BIGINT NOT NULL DEFAULT 0,
  success_rate DOUBLE PRECISION,
  volume DOUBLE PRECISION,
  avg_settlement_time_ms BIGINT,
  reliability_score DOUBLE PRECISION,
  status TEXT,
  UNIQUE (anchor_id, recorded_at)))",

           // -- assets, pools, trustlines (sync schedulers) -------------------------------
           R"(CREATE TABLE assets (
  asset_code TEXT NOT NULL,
  asset_issuer TEXT NOT NULL,
  asset_type TEXT NOT NULL,
  num_accounts BIGINT NOT NULL DEFAULT 0,
  amount DOUBLE PRECISION NOT NULL DEFAULT 0,
  num_claimable_balances BIGINT,
  num_liquidity_pools BIGINT,
  auth_required INTEGER NOT NULL DEFAULT 0,
  auth_revocable INTEGER NOT NULL DEFAULT 0,
  auth_immutable INTEGER NOT NULL DEFAULT 0,
  auth_clawback_enabled INTEGER NOT NULL DEFAULT 0,
  home_domain TEXT,
  last_synced_at BIGINT NOT NULL,
  PRIMARY KEY (asset_code, asset_issuer)))",
           "CREATE INDEX assets_num_accounts_idx ON assets (num_accounts)",

           R"(CREATE TABLE liquidity_pools (
  pool_id TEXT PRIMARY KEY,
  fee_bp INTEGER NOT NULL,
  type TEXT NOT NULL,
  reserves TEXT NOT NULL DEFAULT '[]',
  total_shares DOUBLE PRECISION NOT NULL DEFAULT 0,
  total_trustlines BIGINT NOT NULL DEFAULT 0,
  tvl DOUBLE PRECISION,
  volume_24h DOUBLE PRECISION,
  fees_24h DOUBLE PRECISION,
  apy DOUBLE PRECISION,
  last_synced_at BIGINT NOT NULL))",
           "CREATE INDEX liquidity_pools_tvl_idx ON liquidity_pools (tvl)",
           "CREATE INDEX liquidity_pools_volume_idx ON liquidity_pools (volume_24h)",
           "CREATE INDEX liquidity_pools_fees_idx ON liquidity_pools (fees_24h)",
           "CREATE INDEX liquidity_pools_apy_idx ON liquidity_pools (apy)",

           R"(CREATE TABLE liquidity_pool_snapshots (
  pool_id TEXT NOT NULL,
  snapshot_at BIGINT NOT NULL,
  reserves TEXT NOT NULL DEFAULT '[]',
  total_shares DOUBLE PRECISION NOT NULL DEFAULT 0,
  total_trustlines BIGINT NOT NULL DEFAULT 0,
  tvl DOUBLE PRECISION,
  volume_24h DOUBLE PRECISION,
  fees_24h DOUBLE PRECISION,
  apy DOUBLE PRECISION,
  PRIMARY KEY (pool_id, snapshot_at)))",

           R"(CREATE TABLE trustline_stats (
  asset_code TEXT NOT NULL,
  asset_issuer TEXT NOT NULL,
  num_accounts BIGINT NOT NULL DEFAULT 0,
  authorized_accounts BIGINT,
  unauthorized_accounts BIGINT,
  amount DOUBLE PRECISION NOT NULL DEFAULT 0,
  num_claimable_balances BIGINT,
  num_liquidity_pools BIGINT,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (asset_code, asset_issuer)))",
           "CREATE INDEX trustline_stats_accounts_idx ON trustline_stats (num_accounts)",
           "CREATE INDEX trustline_stats_amount_idx ON trustline_stats (amount)",

           R"(CREATE TABLE trustline_snapshots (
  asset_code TEXT NOT NULL,
  asset_issuer TEXT NOT NULL,
  snapshot_at BIGINT NOT NULL,
  num_accounts BIGINT NOT NULL DEFAULT 0,
  amount DOUBLE PRECISION NOT NULL DEFAULT 0,
  PRIMARY KEY (asset_code, asset_issuer, snapshot_at)))",

           // -- progress bookkeeping -------------------------------------------------------
           R"(CREATE TABLE ingestion_cursor (
  name TEXT PRIMARY KEY,
  cursor TEXT NOT NULL,
  last_ledger BIGINT,
  last_error TEXT,
  updated_at BIGINT NOT NULL))",

           R"(CREATE TABLE sync_runs (
  name TEXT PRIMARY KEY,
  last_run_at BIGINT,
  last_status TEXT,
  last_error TEXT,
  last_duration_ms BIGINT))",

           // -- webhooks: subscriptions, transactional outbox, deliveries ------------------
           R"(CREATE TABLE webhooks (
  id TEXT PRIMARY KEY,
  url TEXT NOT NULL,
  event_types TEXT NOT NULL DEFAULT '[]',
  filters TEXT NOT NULL DEFAULT '{}',
  secret TEXT NOT NULL,
  enabled INTEGER NOT NULL DEFAULT 1,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL))",

           R"(CREATE TABLE webhook_outbox (
  id TEXT PRIMARY KEY,
  type TEXT NOT NULL,
  payload TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  dispatched_at BIGINT))",
           R"(CREATE INDEX webhook_outbox_pending_idx ON webhook_outbox (dispatched_at,
  created_at))",

           R"(CREATE TABLE webhook_deliveries (
  id {{AUTO_ID}},
  webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
  event_id TEXT NOT NULL,
  event_type TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at BIGINT NOT NULL,
  claimed_until BIGINT,
  last_status_code INTEGER,
  last_error TEXT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  UNIQUE (webhook_id, event_id)))",
           R"(CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (status,
  next_attempt_at))",
           R"(CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id,
  created_at))",

           R"(CREATE TABLE webhook_attempts (
  id {{AUTO_ID}},
  delivery_id BIGINT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
  attempt INTEGER NOT NULL,
  attempted_at BIGINT NOT NULL,
  status_code INTEGER,
  error TEXT,
  duration_ms BIGINT,
  UNIQUE (delivery_id, attempt)))",

           // -- operations -----------------------------------------------------------------
           R"(CREATE TABLE shutdown_reports (
  id {{AUTO_ID}},
  created_at BIGINT NOT NULL,
  exit_code INTEGER,
  outcome TEXT,
  report TEXT NOT NULL))",
           "CREATE INDEX shutdown_reports_created_idx ON shutdown_reports (created_at)",
       }},
      {2,
       "ingestion_state",
       {
           // What the ingestor reports about itself (starting, streaming, backoff, ...) and
           // its latest error, per stream. Separate from ingestion_cursor, whose row only
           // exists once data was committed and moves with that data: a state change or an
           // error before the first commit still has a place to go.
           R"(CREATE TABLE ingestion_state (
  name TEXT PRIMARY KEY,
  state TEXT NOT NULL,
  last_error TEXT,
  last_error_at BIGINT,
  updated_at BIGINT NOT NULL))",
       }},
      {3,
       "webhook_disabled_reason",
       {
           // Why and when a webhook stopped receiving deliveries (e.g. its endpoint answered
           // 410 Gone); both NULL while enabled. The index serves the queue statistics
           // (oldest pending delivery) without scanning delivered history.
           "ALTER TABLE webhooks ADD COLUMN disabled_reason TEXT",
           "ALTER TABLE webhooks ADD COLUMN disabled_at BIGINT",
           R"(CREATE INDEX webhook_deliveries_status_created_idx ON webhook_deliveries (status,
  created_at))",
       }},
      {4,
       "corridor_health",
       {
           // The last known health of each corridor (metrics sync): the baseline the next
           // evaluation is compared with, so `corridor.health_degraded` fires once per
           // crossing. Only evaluations with enough attempts are stored (docs/analytics.md).
           R"(CREATE TABLE corridor_health (
  corridor_id TEXT PRIMARY KEY,
  health TEXT NOT NULL CHECK (health IN ('healthy', 'degraded', 'critical')),
  success_rate DOUBLE PRECISION NOT NULL,
  attempts BIGINT NOT NULL,
  window_ms BIGINT NOT NULL,
  evaluated_at BIGINT NOT NULL))",
       }},
      {5,
       "ingest_write_path",
       {
           // Ingestion wrote ~7 pages per operation, most of them for indexes no query reads,
           // four of them keyed by hashes and accounts so that each insert lands on a random
           // leaf page. The API serves no per-account, per-transaction or per-asset operation
           // lists; the anchor aggregate's OR of accounts and anchor assets is planned on
           // created_at; a ledger's rows are a range of the TOID key (sequence << 32), so
           // the ledger indexes repeated the key. Add one back with the query that needs it.
           "DROP INDEX IF EXISTS operations_transaction_idx",
           "DROP INDEX IF EXISTS operations_from_idx",
           "DROP INDEX IF EXISTS operations_to_idx",
           "DROP INDEX IF EXISTS operations_corridor_idx",
           "DROP INDEX IF EXISTS operations_ledger_idx",
           "DROP INDEX IF EXISTS transactions_source_idx",
           // Transactions were keyed by their hash: half of the pages a batch dirtied were
           // leaves of that random index. They are keyed by their TOID (the paging token,
           // ordered like ledgers) instead; the hash stays a column (nothing looks it up).
           R"(CREATE TABLE transactions_v5 (
  id {{INT64_KEY}},
  hash TEXT NOT NULL,
  ledger BIGINT NOT NULL,
  paging_token TEXT,
  source_account TEXT NOT NULL,
  fee_account TEXT,
  fee_charged BIGINT NOT NULL,
  max_fee BIGINT,
  successful INTEGER NOT NULL,
  fee_bump INTEGER NOT NULL DEFAULT 0,
  inner_hash TEXT,
  operation_count INTEGER NOT NULL,
  memo_type TEXT,
  memo TEXT,
  created_at BIGINT NOT NULL))",
           R"(INSERT INTO transactions_v5 (id, hash, ledger, paging_token, source_account,
  fee_account, fee_charged, max_fee, successful, fee_bump, inner_hash, operation_count,
  memo_type, memo, created_at)
  SELECT CAST(paging_token AS BIGINT), hash, ledger, paging_token, source_account, fee_account,
  fee_charged, max_fee, successful, fee_bump, inner_hash, operation_count, memo_type, memo,
  created_at FROM transactions)",
           "DROP TABLE transactions",
           "ALTER TABLE transactions_v5 RENAME TO transactions",
           "CREATE INDEX transactions_created_at_idx ON transactions (created_at)",
       }},
  };
  return list;
}

bool migrations_table_exists(soci::session& sql) {
  int count = 0;
  if (sql.get_backend_name() == "postgresql") {
    sql << "SELECT COUNT(*) FROM information_schema.tables "
           "WHERE table_schema = current_schema() AND table_name = 'schema_migrations'",
        soci::into(count);
  } else {
    sql << "SELECT COUNT(*) FROM sqlite_master "
           "WHERE type = 'table' AND name = 'schema_migrations'",
        soci::into(count);
  }
  return count > 0;
}

int read_version(soci::session& sql) {
  int version = 0;
  soci::indicator ind = soci::i_null;
  sql << "SELECT MAX(version) FROM schema_migrations", soci::into(version, ind);
  return ind == soci::i_ok ? version : 0;
}

/// Opens a write transaction that serialises concurrent migrators: SQLite takes the write
/// lock at BEGIN (IMMEDIATE); PostgreSQL takes a transaction-scoped advisory lock.
void begin_exclusive(soci::session& sql, backend kind) {
  if (kind == backend::sqlite) {
    sql << "BEGIN IMMEDIATE";
  } else {
    sql.begin();
    sql << "SELECT pg_advisory_xact_lock(5349001)";
  }
}

void commit(soci::session& sql, backend kind) {
  if (kind == backend::sqlite) {
    sql << "COMMIT";
  } else {
    sql.commit();
  }
}

void rollback_quietly(soci::session& sql, backend kind) noexcept {
  try {
    if (kind == backend::sqlite) {
      sql << "ROLLBACK";
    } else {
      sql.rollback();
    }
  } catch (...) {
    // The original error is what the caller needs; a failed rollback adds nothing.
  }
}

}  // namespace

const std::vector<migration>& migrations() {
  return all_migrations();
}

std::string render_statement(const std::string& statement, backend kind) {
  const bool sqlite = kind == backend::sqlite;
  std::string out = statement;
  for (const auto& [marker, text] :
       {std::pair{auto_id_marker, std::string_view(sqlite ? "INTEGER PRIMARY KEY AUTOINCREMENT"
                                                          : "BIGSERIAL PRIMARY KEY")},
        std::pair{int64_key_marker,
                  std::string_view(sqlite ? "INTEGER PRIMARY KEY" : "BIGINT PRIMARY KEY")}}) {
    for (auto pos = out.find(marker); pos != std::string::npos;
         pos = out.find(marker, pos + text.size())) {
      out.replace(pos, marker.size(), text);
    }
  }
  return out;
}

int latest_schema_version() {
  return all_migrations().empty() ? 0 : all_migrations().back().version;
}

int schema_version(soci::session& sql) {
  if (!migrations_table_exists(sql)) {
    return 0;
  }
  return read_version(sql);
}

int migrate(soci::session& sql, backend kind) {
  return migrate_to(sql, kind, latest_schema_version());
}

int migrate_to(soci::session& sql, backend kind, int target) {
  // The bookkeeping table first, in its own locked transaction so that two processes
  // starting together do not race on CREATE TABLE.
  begin_exclusive(sql, kind);
  try {
    // Checked first rather than IF NOT EXISTS alone: PostgreSQL would log a NOTICE each run.
    if (!migrations_table_exists(sql)) {
      sql << "CREATE TABLE IF NOT EXISTS schema_migrations ("
             "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";
    }
    commit(sql, kind);
  } catch (const std::exception& e) {
    rollback_quietly(sql, kind);
    throw std::runtime_error(std::string("cannot create schema_migrations: ") + e.what());
  }

  for (const auto& m : all_migrations()) {
    if (m.version > target) {
      break;
    }
    if (read_version(sql) >= m.version) {
      continue;
    }
    begin_exclusive(sql, kind);
    try {
      // Re-read under the lock: another process may have applied it meanwhile.
      if (read_version(sql) >= m.version) {
        commit(sql, kind);
        continue;
      }
      for (const auto& statement : m.statements) {
        sql << render_statement(statement, kind);
      }
      const int version = m.version;
      const std::string name = m.name;
      const long long applied_at = unix_ms_now();
      sql << "INSERT INTO schema_migrations (version, name, applied_at) "
             "VALUES (:version, :name, :applied_at)",
          soci::use(version), soci::use(name), soci::use(applied_at);
      commit(sql, kind);
    } catch (const std::exception& e) {
      rollback_quietly(sql, kind);
      throw std::runtime_error("migration " + std::to_string(m.version) + " (" + m.name
                               + ") failed: " + e.what());
    }
  }
  return read_version(sql);
}

}  // namespace si::storage
