#include "storage/ingestion_repo.hpp"

#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "storage/api_queries.hpp"

namespace si::storage {

nlohmann::json ingestion_status(soci::session& sql, std::string_view name,
                                std::optional<long long> network_latest_ledger) {
  const std::string stream(name);
  nlohmann::json out{
      {"name", stream},
      {"last_ledger", nullptr},
      {"cursor", nullptr},
      {"ledgers_behind", nullptr},
      {"last_error", nullptr},
      {"last_error_at", nullptr},
      {"state", nullptr},
      {"cursor_updated_at", nullptr},
      {"state_updated_at", nullptr},
  };

  bool has_cursor = false;
  nlohmann::json cursor_error = nullptr;
  bound_query cursor_q;
  cursor_q
      .sql(
          "SELECT last_ledger, cursor, last_error, updated_at FROM ingestion_cursor "
          "WHERE name = ")
      .value(stream);
  cursor_q.for_each_row(sql, [&](const soci::row& r) {
    has_cursor = true;
    out["last_ledger"] = json_int(r, 0);
    out["cursor"] = json_text(r, 1);
    cursor_error = json_text(r, 2);
    out["cursor_updated_at"] = json_int(r, 3);
  });

  bool has_state = false;
  bound_query state_q;
  state_q
      .sql(
          "SELECT state, last_error, last_error_at, updated_at FROM ingestion_state "
          "WHERE name = ")
      .value(stream);
  state_q.for_each_row(sql, [&](const soci::row& r) {
    has_state = true;
    out["state"] = json_text(r, 0);
    out["last_error"] = json_text(r, 1);
    out["last_error_at"] = json_int(r, 2);
    out["state_updated_at"] = json_int(r, 3);
  });

  if (out["last_error"].is_null()) {
    out["last_error"] = cursor_error;
  }
  if (!has_cursor && !has_state) {
    out["state"] = "not_started";
  }
  if (network_latest_ledger && out["last_ledger"].is_number_integer()) {
    const long long behind = *network_latest_ledger - out["last_ledger"].get<long long>();
    out["ledgers_behind"] = std::max(behind, 0LL);
  }
  return out;
}

void record_ingestion_state(soci::session& sql, std::string_view name, std::string_view state,
                            std::optional<std::string_view> error, long long now_ms) {
  if (name.empty() || state.empty()) {
    throw std::invalid_argument("record_ingestion_state needs a stream name and a state");
  }
  bound_query q;
  q.sql(
       "INSERT INTO ingestion_state (name, state, last_error, last_error_at, updated_at) "
       "VALUES (")
      .value(std::string(name))
      .sql(", ")
      .value(std::string(state))
      .sql(", ");
  if (error) {
    q.value(std::string(*error)).sql(", ").value(now_ms);
  } else {
    q.sql("NULL, NULL");
  }
  q.sql(", ").value(now_ms).sql(
      ") ON CONFLICT (name) DO UPDATE SET state = excluded.state, "
      "updated_at = excluded.updated_at");
  if (error) {
    q.sql(", last_error = excluded.last_error, last_error_at = excluded.last_error_at");
  }
  q.execute(sql);
}

}  // namespace si::storage
