#include <catch2/catch.hpp>
#include <soci/soci.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "domain/horizon.hpp"
#include "storage/database.hpp"
#include "storage/ingest_repo.hpp"
#include "support.hpp"
#include "tests/ingest_batches.hpp"

using namespace si::storage;
namespace domain = si::domain;

namespace {

const std::filesystem::path fixture_dir =
    std::filesystem::path(SI_SOURCE_DIR) / ".." / "shared" / "horizon-fixtures";

template <class T>
domain::page<T> fixture_page(const std::string& name) {
  const auto path = fixture_dir / name;
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

long long count(soci::session& sql, const std::string& table) {
  long long n = 0;
  sql << "SELECT COUNT(*) FROM " + table, soci::into(n);
  return n;
}

struct table_counts {
  long long ledgers = 0;
  long long transactions = 0;
  long long operations = 0;
  friend bool operator==(const table_counts&, const table_counts&) = default;
};

table_counts counts(soci::session& sql) {
  return {count(sql, "ledgers"), count(sql, "transactions"), count(sql, "operations")};
}

constexpr const char* account_a = "GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7";
constexpr const char* account_b = "GBRPYHIL2CI3FNQ4BXLFMNDLFJUNPU2HY3ZMFSHONUCEOASW7QC7OX2H";

/// `ledgers` ledgers from `first_ledger`, each with `txs` transactions of `ops` operations;
/// every other operation is a payment. Returns the batch; `cursor` gets the last paging token.
ingest_batch generated(long long first_ledger, int ledgers, int txs, int ops, std::string& cursor) {
  return si::test::generated_batch(
      first_ledger, ledgers, txs, ops, 1'700'000'000'000, account_a, cursor,
      [](domain::operation& op, int o) {
        if (o % 2 == 1) {
          op.type = "payment";
          op.type_i = 1;
          domain::payment_effect p;
          p.from = account_a;
          p.to = account_b;
          p.source_asset = domain::native_asset();
          p.destination_asset = domain::native_asset();
          p.amount = 12'345'678;
          p.source_amount = 12'345'678;
          op.payment = p;
          op.details = R"({"amount":"1.2345678","asset_type":"native"})";
        } else {
          op.type = "set_options";
          op.type_i = 5;
          op.details =
              nlohmann::json{{"home_domain", "example.com"}, {"note", "quote \" and \\ slash"}}
                  .dump();
        }
      });
}

void check_fixtures(soci::session& sql, backend kind) {
  ingest_batch b;
  b.ledgers = fixture_page<domain::ledger>("ledgers_page.json").records;
  b.transactions = fixture_page<domain::transaction>("transactions_page.json").records;
  const auto ops = fixture_page<domain::operation>("operations_page.json");
  b.operations = ops.records;
  REQUIRE(!b.ledgers.empty());
  REQUIRE(!b.transactions.empty());
  REQUIRE(!b.operations.empty());
  REQUIRE(!ops.last_paging_token.empty());

  CHECK(!read_cursor(sql, "operations"));
  const auto r = commit_page(sql, kind, b, "operations", ops.last_paging_token, 3, 1000);
  CHECK(r.ledgers_written == static_cast<long long>(b.ledgers.size()));
  CHECK(r.transactions_written == static_cast<long long>(b.transactions.size()));
  CHECK(r.operations_written == static_cast<long long>(b.operations.size()));
  const table_counts after{static_cast<long long>(b.ledgers.size()),
                           static_cast<long long>(b.transactions.size()),
                           static_cast<long long>(b.operations.size())};
  CHECK(counts(sql) == after);
  auto cursor = read_cursor(sql, "operations");
  REQUIRE(cursor);
  CHECK(cursor->first == ops.last_paging_token);
  CHECK(cursor->second == 3);

  // The payment's essentials landed in their columns; the record's JSON in details.
  for (const auto& op : b.operations) {
    if (op.type != "payment") {
      continue;
    }
    REQUIRE(op.payment);
    std::string from;
    std::string to;
    std::string code;
    std::string details;
    double amount = 0;
    long long ledger = 0;
    const long long id = op.id;
    sql << "SELECT from_account, to_account, destination_asset_code, amount, details, ledger "
           "FROM operations WHERE id = :id",
        soci::into(from), soci::into(to), soci::into(code), soci::into(amount), soci::into(details),
        soci::into(ledger), soci::use(id);
    CHECK(from == op.payment->from);
    CHECK(to == op.payment->to);
    CHECK(code == op.payment->destination_asset.code);
    CHECK(amount == Approx(static_cast<double>(*op.payment->amount) / 1e7));
    CHECK(details == op.details);
    CHECK(ledger == (op.id >> 32));
  }

  // Re-committing the same page (a crash between commit and ack) changes nothing.
  const auto again = commit_page(sql, kind, b, "operations", ops.last_paging_token, 3, 2000);
  CHECK(again.ledgers_written == 0);
  CHECK(again.transactions_written == 0);
  CHECK(again.operations_written == 0);
  CHECK(counts(sql) == after);
  long long updated_at = 0;
  sql << "SELECT updated_at FROM ingestion_cursor WHERE name = 'operations'",
      soci::into(updated_at);
  CHECK(updated_at == 1000);
}

void check_generated(soci::session& sql, backend kind) {
  std::string cursor;
  const auto b = generated(1000, 20, 25, 10, cursor);  // 5,000 operations
  REQUIRE(b.operations.size() == 5000);
  const auto r = commit_page(sql, kind, b, "gen", cursor, 1019, 10);
  CHECK(r.ledgers_written == 20);
  CHECK(r.transactions_written == 500);
  CHECK(r.operations_written == 5000);
  CHECK(counts(sql) == table_counts{20, 500, 5000});
  CHECK(read_cursor(sql, "gen") == std::make_pair(cursor, 1019LL));
  long long payments = 0;
  sql << "SELECT COUNT(*) FROM operations WHERE type = 'payment' AND amount IS NOT NULL "
         "AND source_asset_issuer = 'native'",
      soci::into(payments);
  CHECK(payments == 2500);

  const auto again = commit_page(sql, kind, b, "gen", cursor, 1019, 20);
  CHECK(again.ledgers_written == 0);
  CHECK(again.transactions_written == 0);
  CHECK(again.operations_written == 0);
  CHECK(counts(sql) == table_counts{20, 500, 5000});

  // A partly overlapping page writes only the new rows.
  std::string cursor2;
  const auto next = generated(1015, 10, 25, 10, cursor2);
  const auto r2 = commit_page(sql, kind, next, "gen", cursor2, 1024, 30);
  CHECK(r2.ledgers_written == 5);
  CHECK(r2.transactions_written == 125);
  CHECK(r2.operations_written == 1250);
  CHECK(counts(sql) == table_counts{25, 625, 6250});
  CHECK(read_cursor(sql, "gen") == std::make_pair(cursor2, 1024LL));
}

void check_rollback(soci::session& sql, backend kind) {
  std::string cursor;
  const auto first = generated(10, 2, 5, 4, cursor);
  commit_page(sql, kind, first, "ops", cursor, 11, 1);
  const table_counts before = counts(sql);
  const auto stored = read_cursor(sql, "ops");
  REQUIRE(stored);

  // 2,400 operations: several chunks are written before the bad last row fails.
  std::string bad_cursor;
  auto bad = generated(100, 12, 20, 10, bad_cursor);
  bad.operations.back().transaction_hash.clear();  // NOT NULL refuses it
  try {
    commit_page(sql, kind, bad, "ops", bad_cursor, 111, 2);
    FAIL("a batch with an invalid operation was committed");
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    CHECK(what.find("'ops'") != std::string::npos);
    CHECK(what.find(bad_cursor) != std::string::npos);
  }
  CHECK(counts(sql) == before);
  CHECK(read_cursor(sql, "ops") == stored);

  // The session is usable afterwards and the same page, fixed, commits in full.
  bad.operations.back().transaction_hash = bad.transactions.back().hash;
  const auto r = commit_page(sql, kind, bad, "ops", bad_cursor, 111, 3);
  CHECK(r.operations_written == 2400);
  CHECK(read_cursor(sql, "ops") == std::make_pair(bad_cursor, 111LL));

  // A cursor that is not a paging token is refused before anything is written.
  std::string c3;
  const auto more = generated(500, 1, 1, 1, c3);
  const table_counts mid = counts(sql);
  CHECK_THROWS_AS(commit_page(sql, kind, more, "ops", "12-3", 500, 4), std::runtime_error);
  CHECK(counts(sql) == mid);
  CHECK(read_cursor(sql, "ops") == std::make_pair(bad_cursor, 111LL));
}

void check_monotonic(soci::session& sql, backend kind) {
  const ingest_batch empty;
  commit_page(sql, kind, empty, "s", "100", 7, 1);
  CHECK(read_cursor(sql, "s") == std::make_pair(std::string("100"), 7LL));
  // "99" < "100" as integers though not as text: kept; the page's rows are still written.
  std::string c;
  const auto b = generated(42, 1, 2, 3, c);
  const auto r = commit_page(sql, kind, b, "s", "99", 6, 2);
  CHECK(r.operations_written == 6);
  CHECK(read_cursor(sql, "s") == std::make_pair(std::string("100"), 7LL));
  commit_page(sql, kind, empty, "s", "100", 9, 3);
  CHECK(read_cursor(sql, "s") == std::make_pair(std::string("100"), 7LL));
  commit_page(sql, kind, empty, "s", "1000", 9, 4);
  CHECK(read_cursor(sql, "s") == std::make_pair(std::string("1000"), 9LL));
  // Streams are independent.
  commit_page(sql, kind, empty, "t", "5", 1, 5);
  CHECK(read_cursor(sql, "t") == std::make_pair(std::string("5"), 1LL));
  CHECK(read_cursor(sql, "s") == std::make_pair(std::string("1000"), 9LL));
}

void report_speed(soci::session& sql, backend kind, const char* name) {
  std::string cursor;
  const auto b = generated(5000, 40, 50, 10, cursor);  // 20,000 operations
  REQUIRE(b.operations.size() == 20000);
  const auto start = std::chrono::steady_clock::now();
  const auto r = commit_page(sql, kind, b, "bench", cursor, 5039, 1);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(r.operations_written == 20000);
  WARN("commit_page on " << name << ": 20000 operations (+2000 transactions, 40 ledgers) in " << s
                         << " s = " << static_cast<long long>(20000 / s)
                         << " ops/s (informational)");
}

/// A database at schema version 4 holding one transaction, migrated to the latest: migration 5
/// re-keys transactions by TOID with the rows kept, and drops the indexes no query reads.
void check_migration_5(soci::session& sql, backend kind) {
  REQUIRE(migrate_to(sql, kind, 4) == 4);
  const std::string hash(64, 'c');
  const std::string source = account_a;
  sql << "INSERT INTO transactions (hash, ledger, paging_token, source_account, fee_charged, "
         "successful, operation_count, created_at) VALUES (:h, 7, '30064775168', :a, 100, 1, 2, "
         "1000)",
      soci::use(hash), soci::use(source);
  const auto before = si::test::named_indexes(sql);
  CHECK(before.count("operations_from_idx") == 1);
  CHECK(before.count("operations_corridor_idx") == 1);

  REQUIRE(migrate(sql, kind) == latest_schema_version());
  long long id = 0;
  long long ledger = 0;
  std::string stored_hash;
  sql << "SELECT id, hash, ledger FROM transactions", soci::into(id), soci::into(stored_hash),
      soci::into(ledger);
  CHECK(id == 30064775168LL);
  CHECK(stored_hash == hash);
  CHECK(ledger == 7);
  const auto after = si::test::named_indexes(sql);
  for (const char* dropped :
       {"operations_transaction_idx", "operations_from_idx", "operations_to_idx",
        "operations_corridor_idx", "operations_ledger_idx", "transactions_source_idx",
        "transactions_ledger_idx"}) {
    INFO(dropped);
    CHECK(after.count(dropped) == 0);
  }
  for (const char* kept : {"operations_created_at_idx", "operations_type_created_idx",
                           "transactions_created_at_idx", "ledgers_closed_at_idx"}) {
    INFO(kept);
    CHECK(after.count(kept) == 1);
  }
  // A batch over the migrated row ((7 << 32) | (1 << 12)): it is not written twice.
  std::string cursor;
  const auto b = generated(7, 1, 3, 2, cursor);
  REQUIRE(b.transactions.front().toid == 30064775168LL);
  const auto r = commit_page(sql, kind, b, "ops", cursor, 7, 1);
  CHECK(r.transactions_written == 2);
  CHECK(r.operations_written == 6);
}

std::unique_ptr<soci::session> sqlite_db(const si::test::temp_dir& dir) {
  auto url = parse_database_url("sqlite://" + dir.path() + "/ingest.db");
  auto sql = open_session(std::get<database_url>(url));
  REQUIRE(migrate(*sql, backend::sqlite) == latest_schema_version());
  return sql;
}

std::unique_ptr<soci::session> pg_db(const si::test::pg_schema& schema) {
  auto sql = schema.open();
  REQUIRE(migrate(*sql, backend::postgresql) == latest_schema_version());
  return sql;
}

}  // namespace

TEST_CASE("ingest: fixture pages commit once, re-commit is a no-op (sqlite)", "[ingest][sqlite]") {
  si::test::temp_dir dir;
  auto sql = sqlite_db(dir);
  check_fixtures(*sql, backend::sqlite);
}

TEST_CASE("ingest: generated pages, idempotent overlap (sqlite)", "[ingest][sqlite]") {
  si::test::temp_dir dir;
  auto sql = sqlite_db(dir);
  check_generated(*sql, backend::sqlite);
}

TEST_CASE("ingest: a failure mid-batch rolls back rows and cursor (sqlite)", "[ingest][sqlite]") {
  si::test::temp_dir dir;
  auto sql = sqlite_db(dir);
  check_rollback(*sql, backend::sqlite);
}

TEST_CASE("ingest: the cursor never moves backwards (sqlite)", "[ingest][sqlite]") {
  si::test::temp_dir dir;
  auto sql = sqlite_db(dir);
  check_monotonic(*sql, backend::sqlite);
}

TEST_CASE("ingest: rough commit speed (sqlite, informational)", "[ingest][sqlite]") {
  si::test::temp_dir dir;
  auto sql = sqlite_db(dir);
  report_speed(*sql, backend::sqlite, "sqlite");
}

TEST_CASE("ingest: fixture pages commit once, re-commit is a no-op (postgres)",
          "[ingest][postgres]") {
  si::test::pg_schema schema;
  auto sql = pg_db(schema);
  check_fixtures(*sql, backend::postgresql);
}

TEST_CASE("ingest: generated pages, idempotent overlap (postgres)", "[ingest][postgres]") {
  si::test::pg_schema schema;
  auto sql = pg_db(schema);
  check_generated(*sql, backend::postgresql);
}

TEST_CASE("ingest: a failure mid-batch rolls back rows and cursor (postgres)",
          "[ingest][postgres]") {
  si::test::pg_schema schema;
  auto sql = pg_db(schema);
  check_rollback(*sql, backend::postgresql);
}

TEST_CASE("ingest: migration 5 keeps stored transactions (sqlite)", "[ingest][sqlite]") {
  si::test::temp_dir dir;
  auto url = parse_database_url("sqlite://" + dir.path() + "/old.db");
  auto sql = open_session(std::get<database_url>(url));
  check_migration_5(*sql, backend::sqlite);
}

TEST_CASE("ingest: migration 5 keeps stored transactions (postgres)", "[ingest][postgres]") {
  si::test::pg_schema schema;
  auto sql = schema.open();
  check_migration_5(*sql, backend::postgresql);
}

TEST_CASE("ingest: the cursor never moves backwards (postgres)", "[ingest][postgres]") {
  si::test::pg_schema schema;
  auto sql = pg_db(schema);
  check_monotonic(*sql, backend::postgresql);
}

TEST_CASE("ingest: rough commit speed (postgres, informational)", "[ingest][postgres]") {
  si::test::pg_schema schema;
  auto sql = pg_db(schema);
  report_speed(*sql, backend::postgresql, "postgresql");
}

TEST_CASE("ingest: two replicas committing one batch at once queue its events once (postgres)",
          "[ingest][postgres]") {
  // Replicas of one deployment ingest the same stream into one database. The hook (the
  // webhook outbox in the server) queues an event per operation not stored yet; under READ
  // COMMITTED both transactions would see none stored and queue every event twice. The
  // stream's advisory lock makes the second commit wait for the first, then see its rows.
  si::test::pg_schema schema;
  auto first = pg_db(schema);
  auto second = schema.open();
  auto watcher = schema.open();
  std::string cursor;
  const auto b = generated(2000, 2, 5, 4, cursor);
  const auto new_operations = [](soci::session& sql, const ingest_batch& batch, long long) {
    long long fresh = 0;
    for (const auto& op : batch.operations) {
      long long n = 0;
      const long long id = op.id;
      sql << "SELECT COUNT(*) FROM operations WHERE id = :id", soci::use(id), soci::into(n);
      fresh += n == 0 ? 1 : 0;
    }
    return fresh;
  };
  std::mutex m;
  std::condition_variable cv;
  bool first_in_hook = false;
  bool release_first = false;
  commit_result r1;
  commit_result r2;
  std::thread t1([&] {
    r1 = commit_page(*first, backend::postgresql, b, "ops", cursor, 2001, 1,
                     [&](soci::session& sql, const ingest_batch& batch, long long now) {
                       const auto n = new_operations(sql, batch, now);
                       std::unique_lock lock(m);
                       first_in_hook = true;
                       cv.notify_all();
                       cv.wait(lock, [&] { return release_first; });
                       return n;
                     });
  });
  {
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return first_in_hook; });
  }
  std::thread t2([&] {
    r2 = commit_page(*second, backend::postgresql, b, "ops", cursor, 2001, 2, new_operations);
  });
  // The second commit must be waiting for the stream's advisory lock (bounded poll of the
  // server's own view; without the lock it would run its hook and finish instead).
  bool waiting = false;
  for (int i = 0; i < 1000 && !waiting; ++i) {
    long long n = 0;
    *watcher << "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND wait_event = 'advisory'",
        soci::into(n);
    waiting = n > 0;
    if (!waiting) {
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
  }
  {
    std::lock_guard lock(m);
    release_first = true;
  }
  cv.notify_all();
  t1.join();
  t2.join();
  CHECK(waiting);
  CHECK(r1.events_written == static_cast<long long>(b.operations.size()));
  CHECK(r2.events_written == 0);
  CHECK(r1.operations_written == static_cast<long long>(b.operations.size()));
  CHECK(r2.operations_written == 0);
  CHECK(read_cursor(*watcher, "ops") == std::make_pair(cursor, 2001LL));
}
