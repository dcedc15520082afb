#include "storage/database.hpp"
#include "storage/percent_decode.hpp"

#include <chrono>

#include <libpq-fe.h>
#include <poll.h>
#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>
#include <soci/sqlite3/soci-sqlite3.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <stdexcept>
#include <system_error>
#include <utility>
#include <vector>

namespace si::storage {

namespace {

constexpr const char* allowed_forms =
    "expected sqlite://relative/path.db, sqlite:///absolute/path.db, sqlite::memory: or "
    "postgresql://user:password@host:port/dbname?param=value (postgres:// also accepted)";

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

/// A libpq conninfo value: bare when safe, else single-quoted with `\` and `'` escaped.
std::string conninfo_value(const std::string& v) {
  const bool bare = !v.empty() && v.find_first_of(" \t\n\r'\\=") == std::string::npos;
  if (bare) {
    return v;
  }
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') {
      out.push_back('\\');
    }
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

bool valid_keyword(const std::string& k) {
  return !k.empty() && std::all_of(k.begin(), k.end(), [](unsigned char c) {
    return std::islower(c) || c == '_' || std::isdigit(c);
  });
}

std::variant<database_url, std::string> parse_sqlite(const std::string& url, std::string_view rest,
                                                     bool memory) {
  database_url out;
  out.kind = backend::sqlite;
  out.redacted = url;
  if (memory) {
    out.sqlite_path = ":memory:";
    out.connect_string = ":memory:";
    return out;
  }
  if (rest.empty()) {
    return std::string("DATABASE_URL 'sqlite://' has no file path; ") + allowed_forms;
  }
  if (rest == ":memory:") {
    out.sqlite_path = ":memory:";
    out.connect_string = ":memory:";
    return out;
  }
  if (rest.find('?') != std::string_view::npos) {
    return std::string("DATABASE_URL: sqlite URLs take no query parameters ('?' in '")
           + std::string(rest) + "')";
  }
  // SOCI's sqlite3 backend reads `key=value` pairs as soon as the string holds a '='; a
  // path without one is taken verbatim as the file name (spaces included).
  if (rest.find('=') != std::string_view::npos) {
    return std::string("DATABASE_URL: sqlite file path must not contain '=' (got '")
           + std::string(rest) + "')";
  }
  if (rest.back() == '/') {
    return std::string("DATABASE_URL: sqlite path '") + std::string(rest)
           + "' names a directory, not a file";
  }
  out.sqlite_path = std::string(rest);
  out.connect_string = out.sqlite_path;
  return out;
}

std::variant<database_url, std::string> parse_postgres(const std::string& scheme,
                                                       std::string_view rest) {
  std::string_view authority = rest;
  std::string_view path;
  std::string_view query;
  if (const auto q = authority.find('?'); q != std::string_view::npos) {
    query = authority.substr(q + 1);
    authority = authority.substr(0, q);
  }
  if (const auto s = authority.find('/'); s != std::string_view::npos) {
    path = authority.substr(s + 1);
    authority = authority.substr(0, s);
  }
  std::string user;
  std::string password;
  bool has_password = false;
  std::string_view hostport = authority;
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    hostport = authority.substr(at + 1);
    std::string_view raw_user = userinfo;
    if (const auto colon = userinfo.find(':'); colon != std::string_view::npos) {
      raw_user = userinfo.substr(0, colon);
      if (!percent_decode(userinfo.substr(colon + 1), password)) {
        return std::string("DATABASE_URL: malformed %-escape in the password");
      }
      has_password = true;
    }
    if (!percent_decode(raw_user, user)) {
      return std::string("DATABASE_URL: malformed %-escape in the user name");
    }
  }
  std::string_view raw_host = hostport;
  std::string_view raw_port;
  bool port_given = false;
  if (!hostport.empty() && hostport.front() == '[') {
    const auto close = hostport.find(']');
    if (close == std::string_view::npos) {
      return std::string("DATABASE_URL: unterminated '[' in the IPv6 host");
    }
    raw_host = hostport.substr(1, close - 1);
    std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return std::string("DATABASE_URL: unexpected text after the IPv6 host");
      }
      raw_port = after.substr(1);
      port_given = true;
    }
  } else if (const auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
    raw_host = hostport.substr(0, colon);
    raw_port = hostport.substr(colon + 1);
    port_given = true;
  }
  if (raw_host.find(',') != std::string_view::npos) {
    return std::string("DATABASE_URL: multiple hosts are not supported");
  }
  std::string host;
  if (!percent_decode(raw_host, host)) {
    return std::string("DATABASE_URL: malformed %-escape in the host");
  }
  std::string port;
  if (port_given) {
    const bool digits = !raw_port.empty() && raw_port.size() <= 5
                        && std::all_of(raw_port.begin(), raw_port.end(),
                                       [](unsigned char c) { return std::isdigit(c); });
    const long value = digits ? std::stol(std::string(raw_port)) : 0;
    if (!digits || value < 1 || value > 65535) {
      return std::string(
          "DATABASE_URL: port must be a number in 1..65535 (a password with '/', '@' or "
          "':' must be %-encoded)");
    }
    port = std::to_string(value);
  }
  std::string dbname;
  if (!percent_decode(path, dbname)) {
    return std::string("DATABASE_URL: malformed %-escape in the database name");
  }
  if (dbname.find('/') != std::string::npos) {
    return std::string(
        "DATABASE_URL: database name must not contain '/' (a password with '/' must be "
        "%-encoded)");
  }

  std::vector<std::pair<std::string, std::string>> params;
  if (!host.empty()) {
    params.emplace_back("host", host);
  }
  if (!port.empty()) {
    params.emplace_back("port", port);
  }
  if (!dbname.empty()) {
    params.emplace_back("dbname", dbname);
  }
  if (!user.empty()) {
    params.emplace_back("user", user);
  }
  if (has_password) {
    params.emplace_back("password", password);
  }
  bool has_connect_timeout = false;
  std::string redacted_query;
  while (!query.empty()) {
    const auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) {
      continue;
    }
    const auto eq = pair.find('=');
    if (eq == std::string_view::npos) {
      return "DATABASE_URL: query parameter '" + std::string(pair) + "' has no '=value'";
    }
    std::string key;
    std::string value;
    if (!percent_decode(pair.substr(0, eq), key) || !percent_decode(pair.substr(eq + 1), value)) {
      return "DATABASE_URL: malformed %-escape in query parameter '"
             + std::string(pair.substr(0, eq)) + "'";
    }
    if (!valid_keyword(key)) {
      return "DATABASE_URL: '" + key + "' is not a libpq connection parameter name";
    }
    has_connect_timeout = has_connect_timeout || key == "connect_timeout";
    redacted_query += redacted_query.empty() ? "?" : "&";
    redacted_query += key == "password" ? std::string("password=***") : std::string(pair);
    params.emplace_back(std::move(key), std::move(value));
  }
  // A bounded connect: libpq would otherwise wait forever on an unanswering host.
  if (!has_connect_timeout) {
    params.emplace_back("connect_timeout", "10");
  }

  database_url out;
  out.kind = backend::postgresql;
  for (const auto& [key, value] : params) {
    if (!out.connect_string.empty()) {
      out.connect_string += ' ';
    }
    out.connect_string += key + "=" + conninfo_value(value);
  }
  out.redacted = scheme + "://";
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    out.redacted += std::string(userinfo.substr(0, userinfo.find(':')));
    out.redacted += has_password ? ":***@" : "@";
  }
  out.redacted += std::string(hostport);
  if (!path.empty()) {
    out.redacted += "/" + std::string(path);
  }
  out.redacted += redacted_query;
  return out;
}

}  // namespace

std::variant<database_url, std::string> parse_database_url(const std::string& url) {
  if (url.empty()) {
    return std::string("DATABASE_URL is empty; ") + allowed_forms;
  }
  if (lower(url) == "sqlite::memory:") {
    return parse_sqlite(url, {}, true);
  }
  const auto sep = url.find("://");
  if (sep == std::string::npos) {
    // Echo the text only when it cannot carry credentials.
    const std::string shown = url.find('@') == std::string::npos ? " '" + url + "'" : "";
    return "DATABASE_URL" + shown + " is not a URL; " + allowed_forms;
  }
  const std::string scheme = lower(std::string_view(url).substr(0, sep));
  const std::string_view rest = std::string_view(url).substr(sep + 3);
  if (scheme == "sqlite") {
    return parse_sqlite(url, rest, false);
  }
  if (scheme == "postgresql" || scheme == "postgres") {
    return parse_postgres(scheme, rest);
  }
  return "DATABASE_URL scheme '" + scheme + "' is not supported; " + allowed_forms;
}

namespace {

/// Replaces every occurrence of `secret` in `text` by "***" (libpq may echo parameters).
std::string scrub(std::string text, const std::string& secret) {
  if (secret.size() < 3) {
    return text;
  }
  for (auto pos = text.find(secret); pos != std::string::npos; pos = text.find(secret, pos)) {
    text.replace(pos, secret.size(), "***");
    pos += 3;
  }
  return text;
}

std::string password_of(const database_url& url) {
  // Recover the password from the conninfo string for scrubbing error messages.
  const std::string key = "password=";
  auto pos = url.connect_string.find(key);
  if (pos == std::string::npos || url.kind != backend::postgresql) {
    return {};
  }
  pos += key.size();
  std::string out;
  if (pos < url.connect_string.size() && url.connect_string[pos] == '\'') {
    for (++pos; pos < url.connect_string.size() && url.connect_string[pos] != '\''; ++pos) {
      if (url.connect_string[pos] == '\\' && pos + 1 < url.connect_string.size()) {
        ++pos;
      }
      out.push_back(url.connect_string[pos]);
    }
  } else {
    const auto end = url.connect_string.find(' ', pos);
    out = url.connect_string.substr(pos, end == std::string::npos ? end : end - pos);
  }
  return out;
}

void configure_sqlite(soci::session& sql, const database_url& url) {
  // busy_timeout first: the journal_mode switch itself may have to wait for a writer.
  sql << "PRAGMA busy_timeout=5000";
  std::string mode;
  sql << "PRAGMA journal_mode=WAL", soci::into(mode);
  if (url.sqlite_path != ":memory:" && lower(mode) != "wal") {
    throw std::runtime_error("journal_mode=WAL refused (got '" + mode + "')");
  }
  sql << "PRAGMA foreign_keys=ON";
  sql << "PRAGMA synchronous=NORMAL";
  // SQLite's default cache (2 MiB) is far smaller than the index pages one ingest batch
  // dirties (8 indexes on operations, several keyed by hashes and accounts): it spilled them
  // to the WAL mid-transaction and read them back (~11 page writes per operation, strace).
  sql << "PRAGMA cache_size=-" << url.sqlite_cache_kib;
}

}  // namespace

std::unique_ptr<soci::session> open_session(const database_url& url) {
  try {
    if (url.kind == backend::sqlite) {
      if (url.sqlite_path != ":memory:") {
        const auto parent = std::filesystem::path(url.sqlite_path).parent_path();
        if (!parent.empty()) {
          std::error_code ec;
          std::filesystem::create_directories(parent, ec);
          if (ec) {
            throw std::runtime_error("cannot create directory '" + parent.string()
                                     + "': " + ec.message());
          }
        }
      }
      auto sql = std::make_unique<soci::session>(soci::sqlite3, url.connect_string);
      configure_sqlite(*sql, url);
      return sql;
    }
    return std::make_unique<soci::session>(soci::postgresql, url.connect_string);
  } catch (const std::exception& e) {
    std::string cause = scrub(e.what(), password_of(url));
    while (!cause.empty() && (cause.back() == '\n' || cause.back() == ' ')) {
      cause.pop_back();
    }
    throw std::runtime_error("cannot open database " + url.redacted + ": " + cause);
  }
}

bool ping(soci::session& sql) noexcept {
  try {
    int one = 0;
    sql << "SELECT 1", soci::into(one);
    return one == 1;
  } catch (...) {
    return false;
  }
}

bool session_alive(soci::session& sql) noexcept {
  try {
    if (backend_of(sql) != backend::postgresql) {
      return true;
    }
    // backend_of checked the backend's name (SOCI does not export its typeinfo).
    auto* pg = static_cast<soci::postgresql_session_backend*>(sql.get_backend());
    if (pg == nullptr || pg->conn_ == nullptr || PQstatus(pg->conn_) != CONNECTION_OK) {
      return false;
    }
    pollfd p{PQsocket(pg->conn_), POLLIN, 0};
    return p.fd >= 0 && ::poll(&p, 1, 0) == 0;
  } catch (...) {
    return false;
  }
}

backend backend_of(soci::session& sql) {
  return sql.get_backend_name() == "postgresql" ? backend::postgresql : backend::sqlite;
}

long long unix_ms_now() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace si::storage
