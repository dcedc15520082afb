#pragma once
/// Ingestion progress for `GET /api/v1/ingestion/status`: the cursor the ingestor commits
/// with its data (`ingestion_cursor`) and the state it reports (`ingestion_state`).

#include <optional>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace soci {
class session;
}

namespace si::storage {

/// `{name, last_ledger, cursor, ledgers_behind, last_error, last_error_at, state,
/// cursor_updated_at, state_updated_at}` for the ingestion stream `name`:
/// - `last_ledger`, `cursor`, `cursor_updated_at` from `ingestion_cursor` (null before the
///   first commit);
/// - `ledgers_behind` = `network_latest_ledger - last_ledger` (at least 0) when both are
///   known, else null;
/// - `state`, `state_updated_at`, `last_error_at` from `ingestion_state`; `state` is
///   `not_started` when neither table has a row for `name`, null when only the cursor does;
/// - `last_error` from `ingestion_state`, else the cursor row's `last_error`.
nlohmann::json ingestion_status(soci::session& sql, std::string_view name,
                                std::optional<long long> network_latest_ledger);

/// Records the ingestor's state (e.g. `starting`, `streaming`, `catching_up`, `backoff`,
/// `stopped`) for stream `name` at `now_ms`. With `error` it also becomes `last_error`
/// (timestamped); without, the previous error is kept for operators to see. Throws
/// std::invalid_argument for an empty name or state.
void record_ingestion_state(soci::session& sql, std::string_view name, std::string_view state,
                            std::optional<std::string_view> error, long long now_ms);

}  // namespace si::storage
