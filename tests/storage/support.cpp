#include "support.hpp"

#include <catch2/catch.hpp>
#include <hiredis/hiredis.h>
#include <soci/soci.h>

#include <arpa/inet.h>
#include <csignal>
#include <cstring>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <spawn.h>
#include <sstream>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace si::test {

std::string require_env(const char* name, const char* purpose) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    FAIL(name << " is not set: " << purpose);
  }
  return value;
}

// -- temp_dir --------------------------------------------------------------------------------

temp_dir::temp_dir() {
  std::string tmpl = "/tmp/si-storage-test.XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    FAIL("mkdtemp failed: " << std::strerror(errno));
  }
  path_ = tmpl;
}

temp_dir::~temp_dir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

// -- fake_clock ------------------------------------------------------------------------------

fake_clock::fake_clock()
    : now_(std::make_shared<std::chrono::steady_clock::time_point>(
        std::chrono::steady_clock::time_point{} + std::chrono::hours(1))) {}

storage::cache_clock fake_clock::fn() const {
  auto now = now_;
  return [now] { return *now; };
}

void fake_clock::advance(std::chrono::milliseconds d) {
  *now_ += d;
}

// -- pg_schema -------------------------------------------------------------------------------

pg_schema::pg_schema() {
  const std::string raw = require_env(
      "SI_TEST_POSTGRES_URL",
      "the [postgres] tests need a postgresql:// URL to a database they may create schemas "
      "in, e.g. postgresql://postgres@127.0.0.1:5432/si_test");
  auto parsed = storage::parse_database_url(raw);
  if (auto* error = std::get_if<std::string>(&parsed)) {
    FAIL("SI_TEST_POSTGRES_URL is invalid: " << *error);
  }
  url_ = std::get<storage::database_url>(parsed);
  if (url_.kind != storage::backend::postgresql) {
    FAIL("SI_TEST_POSTGRES_URL must be a postgresql:// URL, got " << url_.redacted);
  }
  static int counter = 0;
  const auto stamp = std::chrono::system_clock::now().time_since_epoch().count();
  name_ = "si_test_" + std::to_string(getpid()) + "_" + std::to_string(++counter) + "_"
          + std::to_string(stamp % 1'000'000'000);
  auto admin = storage::open_session(url_);
  *admin << "CREATE SCHEMA " + name_;
}

pg_schema::~pg_schema() {
  try {
    auto admin = storage::open_session(url_);
    *admin << "SET client_min_messages TO warning";  // no NOTICE per dropped table
    *admin << "DROP SCHEMA IF EXISTS " + name_ + " CASCADE";
  } catch (...) {
    // Best effort: a leftover schema has a unique name and harms no later run.
  }
}

std::unique_ptr<soci::session> pg_schema::open() const {
  auto sql = storage::open_session(url_);
  *sql << "SET search_path TO " + name_;
  return sql;
}

// -- schema introspection --------------------------------------------------------------------

std::map<std::string, std::vector<std::string>> describe_tables(soci::session& sql) {
  std::map<std::string, std::vector<std::string>> out;
  if (sql.get_backend_name() == "postgresql") {
    std::vector<std::string> tables(2000);
    std::vector<std::string> columns(2000);
    sql << "SELECT table_name, column_name FROM information_schema.columns "
           "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position",
        soci::into(tables), soci::into(columns);
    REQUIRE(tables.size() < 2000);
    for (std::size_t i = 0; i < tables.size(); ++i) {
      out[tables[i]].push_back(columns[i]);
    }
    return out;
  }
  std::vector<std::string> tables(500);
  sql << "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
      soci::into(tables);
  REQUIRE(tables.size() < 500);
  for (const auto& table : tables) {
    std::vector<std::string> columns(500);
    sql << "SELECT name FROM pragma_table_info(:t) ORDER BY cid", soci::use(table),
        soci::into(columns);
    out[table] = columns;
  }
  return out;
}

std::set<std::string> named_indexes(soci::session& sql) {
  std::vector<std::string> names(1000);
  if (sql.get_backend_name() == "postgresql") {
    sql << "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()",
        soci::into(names);
  } else {
    sql << "SELECT name FROM sqlite_master WHERE type = 'index'", soci::into(names);
  }
  std::set<std::string> out;
  for (const auto& n : names) {
    if (n.size() > 4 && n.compare(n.size() - 4, 4, "_idx") == 0) {
      out.insert(n);
    }
  }
  return out;
}

void exercise_schema(soci::session& sql) {
  int count = 0;
  // Ledgers: an upsert on the natural key leaves one row with the newest values.
  for (int round = 0; round < 2; ++round) {
    const std::string hash = "hash-" + std::to_string(round);
    sql << "INSERT INTO ledgers (sequence, hash, closed_at, operation_count, ingested_at) "
           "VALUES (100, :hash, 1700000000000, 5, 1) "
           "ON CONFLICT (sequence) DO UPDATE SET hash = excluded.hash",
        soci::use(hash);
  }
  std::string hash;
  sql << "SELECT COUNT(*) FROM ledgers", soci::into(count);
  sql << "SELECT hash FROM ledgers WHERE sequence = 100", soci::into(hash);
  CHECK(count == 1);
  CHECK(hash == "hash-1");

  // Corridor buckets accumulate through their unique (corridor_id, bucket_start).
  for (int round = 0; round < 3; ++round) {
    sql << "INSERT INTO corridor_buckets (corridor_id, bucket_start, attempts, successful, "
           "failed, volume) VALUES ('USDC:GA->XLM:native', 3600000, 2, 1, 1, 10.5) "
           "ON CONFLICT (corridor_id, bucket_start) DO UPDATE SET "
           "attempts = corridor_buckets.attempts + excluded.attempts, "
           "volume = corridor_buckets.volume + excluded.volume";
  }
  long long attempts = 0;
  double volume = 0;
  sql << "SELECT attempts, volume FROM corridor_buckets WHERE corridor_id = "
         "'USDC:GA->XLM:native'",
      soci::into(attempts), soci::into(volume);
  CHECK(attempts == 6);
  CHECK(volume == Approx(31.5));

  // Auto ids grow; anchors are unique per account.
  sql << "INSERT INTO anchors (name, stellar_account, created_at, updated_at) "
         "VALUES ('a', 'GAAA', 1, 1)";
  sql << "INSERT INTO anchors (name, stellar_account, created_at, updated_at) "
         "VALUES ('b', 'GBBB', 1, 1)";
  std::vector<long long> ids(10);
  sql << "SELECT id FROM anchors ORDER BY id", soci::into(ids);
  REQUIRE(ids.size() == 2);
  CHECK(ids[0] < ids[1]);
  CHECK_THROWS(sql << "INSERT INTO anchors (name, stellar_account, created_at, updated_at) "
                      "VALUES ('dup', 'GAAA', 1, 1)");
  CHECK_THROWS(sql << "INSERT INTO anchors (name, stellar_account, status, created_at, "
                      "updated_at) VALUES ('c', 'GCCC', 'purple', 1, 1)");
  const long long anchor_id = ids[0];
  sql << "INSERT INTO anchor_assets (anchor_id, asset_code, asset_issuer, created_at) "
         "VALUES (:id, 'USDC', 'GISSUER', 1)",
      soci::use(anchor_id);

  // Webhook deliveries: one per (webhook, event); deleting the webhook cascades.
  sql << "INSERT INTO webhooks (id, url, event_types, filters, secret, created_at, updated_at) "
         "VALUES ('wh_1', 'https://example.com/h', '[\"test\"]', '{}', 'whsec_x', 1, 1)";
  sql << "INSERT INTO webhook_outbox (id, type, payload, created_at) "
         "VALUES ('evt_1', 'test', '{}', 1)";
  for (int round = 0; round < 2; ++round) {
    sql << "INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, next_attempt_at, "
           "created_at, updated_at) VALUES ('wh_1', 'evt_1', 'test', 1, 1, 1) "
           "ON CONFLICT (webhook_id, event_id) DO NOTHING";
  }
  sql << "SELECT COUNT(*) FROM webhook_deliveries", soci::into(count);
  CHECK(count == 1);
  long long delivery_id = 0;
  sql << "SELECT id FROM webhook_deliveries", soci::into(delivery_id);
  sql << "INSERT INTO webhook_attempts (delivery_id, attempt, attempted_at, status_code) "
         "VALUES (:id, 1, 2, 500)",
      soci::use(delivery_id);
  CHECK_THROWS(sql << "UPDATE webhook_deliveries SET status = 'lost'");
  // A delivery for an unknown webhook is refused (foreign keys are on).
  CHECK_THROWS(sql << "INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, "
                      "next_attempt_at, created_at, updated_at) "
                      "VALUES ('wh_missing', 'evt_1', 'test', 1, 1, 1)");
  sql << "DELETE FROM webhooks WHERE id = 'wh_1'";
  sql << "SELECT COUNT(*) FROM webhook_deliveries", soci::into(count);
  CHECK(count == 0);
  sql << "SELECT COUNT(*) FROM webhook_attempts", soci::into(count);
  CHECK(count == 0);
  sql << "DELETE FROM anchors WHERE id = :id", soci::use(anchor_id);
  sql << "SELECT COUNT(*) FROM anchor_assets", soci::into(count);
  CHECK(count == 0);

  // Nullable figures stay NULL (no synthetic numbers).
  sql << "INSERT INTO liquidity_pools (pool_id, fee_bp, type, reserves, last_synced_at) "
         "VALUES ('pool1', 30, 'constant_product', '[]', 1)";
  double apy = -1;
  soci::indicator apy_ind = soci::i_ok;
  sql << "SELECT apy FROM liquidity_pools WHERE pool_id = 'pool1'", soci::into(apy, apy_ind);
  CHECK(apy_ind == soci::i_null);
}

// -- redis helpers ---------------------------------------------------------------------------

uint16_t free_loopback_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  close(fd);
  return ntohs(addr.sin_port);
}

bool redis_answers(uint16_t port, std::chrono::milliseconds timeout, const std::string& password) {
  const timeval tv{static_cast<time_t>(timeout.count() / 1000),
                   static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port, tv);
  if (c == nullptr) {
    return false;
  }
  bool ok = c->err == 0 && redisSetTimeout(c, tv) == REDIS_OK;
  if (ok && !password.empty()) {
    auto* r = static_cast<redisReply*>(redisCommand(c, "AUTH %s", password.c_str()));
    ok = r != nullptr && r->type == REDIS_REPLY_STATUS;
    if (r != nullptr) {
      freeReplyObject(r);
    }
  }
  if (ok) {
    auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
    ok = r != nullptr && r->type == REDIS_REPLY_STATUS && std::string(r->str) == "PONG";
    if (r != nullptr) {
      freeReplyObject(r);
    }
  }
  redisFree(c);
  return ok;
}

redis_process::redis_process(uint16_t port, std::vector<std::string> extra_args)
    : port_(port), extra_args_(std::move(extra_args)) {
  for (std::size_t i = 0; i + 1 < extra_args_.size(); ++i) {
    if (extra_args_[i] == "--requirepass") {
      password_ = extra_args_[i + 1];
    }
  }
}

redis_process::~redis_process() {
  kill_hard();
}

void redis_process::start() {
  REQUIRE(pid_ < 0);
  std::vector<std::string> args{
      "redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",
      "--save",       "",       "--appendonly",        "no",     "--dir",
      dir_.path()};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  const std::string log = dir_.path() + "/redis.log";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  const int rc = posix_spawnp(&pid_, "redis-server", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    pid_ = -1;
    FAIL("cannot start redis-server (is it on PATH?): " << std::strerror(rc));
  }
  // Bounded polling until the child answers: it needs a moment to bind its port.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      std::ifstream in(log);
      std::stringstream text;
      text << in.rdbuf();
      FAIL("redis-server exited at start-up:\n" << text.str());
    }
    if (redis_answers(port_, std::chrono::milliseconds(200), password_)) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  FAIL("redis-server on port " << port_ << " did not answer PING within 15 s");
}

void redis_process::kill_hard() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
}

void redis_process::pause() {
  REQUIRE(pid_ > 0);
  REQUIRE(kill(pid_, SIGSTOP) == 0);
  // Wait (bounded by the kernel, no polling loop) until the stop has taken effect.
  int status = 0;
  REQUIRE(waitpid(pid_, &status, WUNTRACED) == pid_);
  REQUIRE(WIFSTOPPED(status));
}

void redis_process::resume() {
  REQUIRE(pid_ > 0);
  REQUIRE(kill(pid_, SIGCONT) == 0);
}

std::string redis_process::url() const {
  return "redis://127.0.0.1:" + std::to_string(port_);
}

}  // namespace si::test
