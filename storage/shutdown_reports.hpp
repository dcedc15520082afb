#pragma once
/// Repository of persisted shutdown reports (table `shutdown_reports`).

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace soci {
class session;
}

namespace si::storage {

/// Stores one report (the JSON the shutdown summary produces). Returns its row id.
long long insert_shutdown_report(soci::session& sql, const nlohmann::json& report);

/// Newest first, at most `limit` (1..200) reports, each as stored plus `"id"`.
std::vector<nlohmann::json> list_shutdown_reports(soci::session& sql, int limit);

}  // namespace si::storage
