#pragma once
/// Database connections (SOCI, sqlite3 or postgresql) and versioned schema migrations.

#include <memory>
#include <cstdint>
#include <string>
#include <variant>

namespace soci {
class session;
}

namespace si::storage {

/// Which SOCI backend a DATABASE_URL selects.
enum class backend { sqlite, postgresql };

/// A parsed DATABASE_URL.
struct database_url {
  backend kind = backend::sqlite;
  std::string connect_string;  ///< what soci::session::open takes (backend-specific)
  std::string sqlite_path;     ///< file path for sqlite ("" for postgresql)
  std::string redacted;        ///< the URL with any password replaced by "***", for logs
  /// SQLite page cache per connection in KiB (PRAGMA cache_size; SQLITE_CACHE_MB).
  std::int64_t sqlite_cache_kib = 64 * 1024;
};

/// Parses `sqlite://relative/path.db`, `sqlite:///abs/path.db`, `sqlite::memory:`,
/// `postgresql://user:pass@host:port/db?opts` (also `postgres://`). Error text says what is
/// allowed.
std::variant<database_url, std::string> parse_database_url(const std::string& url);

/// Opens one session. SQLite: creates the parent directory, WAL journal mode,
/// busy_timeout, foreign_keys=ON. Throws std::runtime_error with a clear message on failure.
std::unique_ptr<soci::session> open_session(const database_url& url);

/// Applies every migration newer than the stored version, each in its own transaction,
/// recording it in `schema_migrations`. Idempotent. Returns the schema version afterwards.
int migrate(soci::session& sql, backend kind);

/// The same, stopping after migration `version` (a test of one migration starts from the
/// schema just before it). Returns the schema version afterwards.
int migrate_to(soci::session& sql, backend kind, int version);

/// The highest applied migration version (0 on an empty database).
int schema_version(soci::session& sql);

/// The number of migrations this build knows (the version `migrate` brings a database to).
int latest_schema_version();

/// The backend of an open session (the db actor hands tasks a session, not its URL).
backend backend_of(soci::session& sql);

/// Wall-clock now in Unix milliseconds: the timestamp unit of every table.
long long unix_ms_now();

/// Cheap liveness probe ("SELECT 1"); false when the connection is unusable.
bool ping(soci::session& sql) noexcept;

/// Whether an idle session is still open, known without a round trip: false once the server
/// has closed it (a PostgreSQL restart or `pg_terminate_backend` sends FATAL and closes; a
/// crash closes). Between queries the server sends nothing (no LISTEN is used), so a
/// readable or hung-up socket is its goodbye. SQLite sessions are always open.
bool session_alive(soci::session& sql) noexcept;

}  // namespace si::storage
