#pragma once
/// Helpers of the sync tests: a migrated database per test (a temp SQLite file, or a private
/// PostgreSQL schema in SI_TEST_POSTGRES_URL's database), Horizon fixtures, operation
/// builders that go through the real ingestion write path, and small row readers.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "domain/horizon.hpp"
#include "storage/database.hpp"
#include "storage/sync_repo.hpp"

namespace soci {
class session;
}

namespace si::sync_test {

/// A freshly migrated database owned by one test, removed on destruction.
class test_db {
 public:
  /// A SQLite file in a new temp directory.
  static std::unique_ptr<test_db> sqlite();
  /// A new schema in the PostgreSQL database SI_TEST_POSTGRES_URL names (FAILs when unset).
  static std::unique_ptr<test_db> postgres();

  ~test_db();
  test_db(const test_db&) = delete;
  test_db& operator=(const test_db&) = delete;

  soci::session& sql() {
    return *session_;
  }
  storage::backend kind() const {
    return kind_;
  }

 private:
  test_db() = default;

  storage::backend kind_ = storage::backend::sqlite;
  std::unique_ptr<soci::session> session_;
  std::string temp_dir_;         ///< sqlite: the directory to remove
  storage::database_url admin_;  ///< postgresql: where to drop the schema from
  std::string schema_;           ///< postgresql: the private schema
};

/// Parses `/work/shared/horizon-fixtures/<name>` as a page of T; FAILs if it does not parse.
template <class T>
domain::page<T> fixture_page(const std::string& name);

/// Valid account ids (StrKeys) used as senders, receivers, issuers and anchors.
inline const std::string account_a = "GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7";
inline const std::string account_b = "GBRPYHIL2CI3FNQ4BXLFMNDLFJUNPU2HY3ZMFSHONUCEOASW7QC7OX2H";
inline const std::string usdc_issuer = "GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN";
inline const std::string eurc_issuer = "GDM4RQUQQUVSKQA7S6EM7XBZP3FCGH4Q7CL6TABQ7B2BEJ5ERARM2M5M";

domain::asset usdc();
domain::asset eurc();

/// One payment-like operation to ingest.
struct op_spec {
  int64_t created_at_ms = 0;
  domain::asset source;
  domain::asset destination;
  std::optional<int64_t> amount_stroops;  ///< destination amount; nullopt for account_merge
  bool successful = true;
  std::string type = "payment";
  std::string from = account_a;
  std::string to = account_b;
};

/// Builds operations from specs (ids unique across calls) and writes them with
/// `storage::commit_page`, the ingestor's write path. A spec with type "manage_sell_offer"
/// becomes an operation without payment fields.
void ingest(soci::session& sql, storage::backend kind, const std::vector<op_spec>& specs);

/// `n` identical specs.
std::vector<op_spec> repeat(const op_spec& spec, int n);

/// Appends `b` to `a`.
void append(std::vector<op_spec>& a, const std::vector<op_spec>& b);

/// COUNT(*) of a table.
int64_t count_rows(soci::session& sql, const std::string& table);

/// The corridor_buckets rows as `{corridor_id, bucket_start, attempts, successful, failed,
/// volume}` objects, ordered by id then start.
nlohmann::json buckets(soci::session& sql);

/// Everything a run can write, as JSON (for "nothing changed" comparisons).
nlohmann::json dump_sync_tables(soci::session& sql);

/// Records every event handed to the callback and writes a webhook_outbox row for it in the
/// run's transaction (as the real caller will).
struct event_log {
  std::vector<storage::sync_event> seen;
  storage::sync_event_fn fn();
};

/// A callback that throws on the first event, after writing an outbox row.
storage::sync_event_fn throwing_callback();

}  // namespace si::sync_test

/// Two Catch2 cases running `body(test_db&)` on a fresh SQLite file (`[sqlite]`) and on a
/// private PostgreSQL schema (`[postgres]`).
#define SI_SYNC_BOTH_BACKENDS(name, body)             \
  TEST_CASE(name " (sqlite)", "[sync][sqlite]") {     \
    auto db = si::sync_test::test_db::sqlite();       \
    body(*db);                                        \
  }                                                   \
  TEST_CASE(name " (postgres)", "[sync][postgres]") { \
    auto db = si::sync_test::test_db::postgres();     \
    body(*db);                                        \
  }
