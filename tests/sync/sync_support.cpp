#include "sync_support.hpp"

#include <catch2/catch.hpp>
#include <soci/soci.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <unistd.h>

#include "storage/api_queries.hpp"
#include "storage/ingest_repo.hpp"

namespace si::sync_test {

// -- test_db ---------------------------------------------------------------------------------

std::unique_ptr<test_db> test_db::sqlite() {
  std::unique_ptr<test_db> db(new test_db());
  std::string tmpl = "/tmp/si-sync-test.XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    FAIL("mkdtemp failed: " << std::strerror(errno));
  }
  db->temp_dir_ = tmpl;
  db->kind_ = storage::backend::sqlite;
  auto url = storage::parse_database_url("sqlite://" + tmpl + "/sync.db");
  REQUIRE(std::holds_alternative<storage::database_url>(url));
  db->session_ = storage::open_session(std::get<storage::database_url>(url));
  REQUIRE(storage::migrate(*db->session_, db->kind_) == storage::latest_schema_version());
  return db;
}

std::unique_ptr<test_db> test_db::postgres() {
  const char* raw = std::getenv("SI_TEST_POSTGRES_URL");
  if (raw == nullptr || *raw == '\0') {
    FAIL(
        "SI_TEST_POSTGRES_URL is not set: the [postgres] sync tests need a postgresql:// URL "
        "to a database they may create schemas in");
  }
  auto url = storage::parse_database_url(raw);
  if (auto* error = std::get_if<std::string>(&url)) {
    FAIL("SI_TEST_POSTGRES_URL is invalid: " << *error);
  }
  std::unique_ptr<test_db> db(new test_db());
  db->kind_ = storage::backend::postgresql;
  db->admin_ = std::get<storage::database_url>(url);
  REQUIRE(db->admin_.kind == storage::backend::postgresql);
  static std::atomic<int> counter{0};
  const auto stamp = std::chrono::system_clock::now().time_since_epoch().count();
  db->schema_ = "si_sync_" + std::to_string(getpid()) + "_" + std::to_string(++counter) + "_"
                + std::to_string(stamp % 1'000'000'000);
  {
    auto admin = storage::open_session(db->admin_);
    *admin << "CREATE SCHEMA " + db->schema_;
  }
  db->session_ = storage::open_session(db->admin_);
  *db->session_ << "SET search_path TO " + db->schema_;
  REQUIRE(storage::migrate(*db->session_, db->kind_) == storage::latest_schema_version());
  return db;
}

test_db::~test_db() {
  session_.reset();
  if (!temp_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(temp_dir_, ec);
  }
  if (!schema_.empty()) {
    try {
      auto admin = storage::open_session(admin_);
      *admin << "SET client_min_messages TO warning";
      *admin << "DROP SCHEMA IF EXISTS " + schema_ + " CASCADE";
    } catch (...) {
      // A leftover schema has a unique name and disturbs no later run.
    }
  }
}

// -- fixtures --------------------------------------------------------------------------------

template <class T>
domain::page<T> fixture_page(const std::string& name) {
  const auto path =
      std::filesystem::path(SI_SOURCE_DIR) / ".." / "shared" / "horizon-fixtures" / name;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    FAIL("cannot open fixture " << path.string());
  }
  std::ostringstream text;
  text << in.rdbuf();
  auto result = domain::parse_page<T>(text.str());
  if (auto* error = std::get_if<domain::parse_error>(&result)) {
    FAIL("fixture " << name << " does not parse: " << error->message());
  }
  return std::get<domain::page<T>>(std::move(result));
}

template domain::page<domain::liquidity_pool> fixture_page(const std::string&);
template domain::page<domain::trade> fixture_page(const std::string&);
template domain::page<domain::asset_stats> fixture_page(const std::string&);

domain::asset usdc() {
  return {"USDC", usdc_issuer};
}

domain::asset eurc() {
  return {"EURC", eurc_issuer};
}

// -- operations ------------------------------------------------------------------------------

void ingest(soci::session& sql, storage::backend kind, const std::vector<op_spec>& specs) {
  static int64_t next_ledger = 1000;
  storage::ingest_batch batch;
  int64_t last_id = 0;
  for (const auto& s : specs) {
    domain::operation op;
    op.id = (next_ledger++ << 32) | (1 << 12) | 1;  // TOID: ledger, transaction 1, operation 1
    op.paging_token = std::to_string(op.id);
    const std::string digits = std::to_string(op.id);
    op.transaction_hash = std::string(64 - digits.size(), 'a') + digits;
    op.transaction_successful = s.successful;
    op.type = s.type;
    op.source_account = s.from;
    op.created_at_ms = s.created_at_ms;
    if (domain::is_payment_like(s.type)) {
      domain::payment_effect p;
      p.from = s.from;
      p.to = s.to;
      p.source_asset = s.source;
      p.destination_asset = s.destination;
      p.amount = s.amount_stroops;
      p.source_amount = s.amount_stroops;
      op.payment = p;
    }
    batch.operations.push_back(op);
    last_id = op.id;
  }
  if (batch.operations.empty()) {
    return;
  }
  const auto written = storage::commit_page(sql, kind, batch, "sync-test", std::to_string(last_id),
                                            last_id >> 32, 1);
  REQUIRE(written.operations_written == static_cast<long long>(specs.size()));
}

std::vector<op_spec> repeat(const op_spec& spec, int n) {
  return std::vector<op_spec>(static_cast<std::size_t>(n), spec);
}

void append(std::vector<op_spec>& a, const std::vector<op_spec>& b) {
  a.insert(a.end(), b.begin(), b.end());
}

// -- readers ---------------------------------------------------------------------------------

int64_t count_rows(soci::session& sql, const std::string& table) {
  storage::bound_query q;
  q.sql("SELECT COUNT(*) FROM " + table);
  return q.scalar_int(sql);
}

namespace {

/// Every row of `query` as an array of arrays (numbers, strings, nulls).
nlohmann::json rows(soci::session& sql, const std::string& query) {
  auto out = nlohmann::json::array();
  storage::bound_query q;
  q.sql(query);
  q.for_each_row(sql, [&](const soci::row& r) {
    auto row = nlohmann::json::array();
    for (std::size_t i = 0; i < r.size(); ++i) {
      row.push_back(storage::json_text(r, i));
    }
    out.push_back(std::move(row));
  });
  return out;
}

}  // namespace

nlohmann::json buckets(soci::session& sql) {
  auto out = nlohmann::json::array();
  storage::bound_query q;
  q.sql(
      "SELECT corridor_id, bucket_start, attempts, successful, failed, volume "
      "FROM corridor_buckets ORDER BY corridor_id, bucket_start");
  q.for_each_row(sql, [&](const soci::row& r) {
    out.push_back({{"corridor_id", storage::json_text(r, 0)},
                   {"bucket_start", storage::json_int(r, 1)},
                   {"attempts", storage::json_int(r, 2)},
                   {"successful", storage::json_int(r, 3)},
                   {"failed", storage::json_int(r, 4)},
                   {"volume", storage::json_double(r, 5)}});
  });
  return out;
}

nlohmann::json dump_sync_tables(soci::session& sql) {
  return {
      {"corridor_buckets", rows(sql, "SELECT * FROM corridor_buckets ORDER BY 1, 2")},
      {"corridors", rows(sql, "SELECT * FROM corridors ORDER BY id")},
      {"corridor_health", rows(sql, "SELECT * FROM corridor_health ORDER BY corridor_id")},
      {"anchors", rows(sql, "SELECT * FROM anchors ORDER BY id")},
      {"anchor_metrics_history",
       rows(sql, "SELECT * FROM anchor_metrics_history ORDER BY anchor_id, recorded_at")},
      {"liquidity_pools", rows(sql, "SELECT * FROM liquidity_pools ORDER BY pool_id")},
      {"liquidity_pool_snapshots",
       rows(sql, "SELECT * FROM liquidity_pool_snapshots ORDER BY pool_id, snapshot_at")},
      {"assets", rows(sql, "SELECT * FROM assets ORDER BY asset_code, asset_issuer")},
      {"trustline_stats",
       rows(sql, "SELECT * FROM trustline_stats ORDER BY asset_code, asset_issuer")},
      {"trustline_snapshots",
       rows(sql, "SELECT * FROM trustline_snapshots ORDER BY asset_code, asset_issuer, 3")},
      {"sync_runs", rows(sql, "SELECT * FROM sync_runs ORDER BY name")},
      {"webhook_outbox", rows(sql, "SELECT * FROM webhook_outbox ORDER BY id")},
  };
}

// -- callbacks -------------------------------------------------------------------------------

namespace {

void write_outbox(soci::session& sql, const std::string& type, const nlohmann::json& data) {
  static int64_t next_id = 0;
  const std::string id = "evt_sync_" + std::to_string(++next_id);
  const std::string payload = data.dump();
  sql << "INSERT INTO webhook_outbox (id, type, payload, created_at) "
         "VALUES (:id, :type, :payload, 1)",
      soci::use(id), soci::use(type), soci::use(payload);
}

}  // namespace

storage::sync_event_fn event_log::fn() {
  return [this](soci::session& sql, const std::string& type, const nlohmann::json& data) {
    write_outbox(sql, type, data);
    seen.push_back({type, data});
  };
}

storage::sync_event_fn throwing_callback() {
  return [](soci::session& sql, const std::string& type, const nlohmann::json& data) {
    write_outbox(sql, type, data);
    throw std::runtime_error("outbox unavailable");
  };
}

}  // namespace si::sync_test
