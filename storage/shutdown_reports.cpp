#include "storage/shutdown_reports.hpp"

#include "storage/database.hpp"

#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>

namespace si::storage {

long long insert_shutdown_report(soci::session& sql, const nlohmann::json& report) {
  if (!report.is_object()) {
    throw std::invalid_argument("a shutdown report must be a JSON object");
  }
  // The indexed columns are copies of the report's own fields, for queries without parsing.
  int exit_code = 0;
  soci::indicator exit_ind = soci::i_null;
  if (auto it = report.find("exit_code"); it != report.end() && it->is_number_integer()) {
    exit_code = it->get<int>();
    exit_ind = soci::i_ok;
  }
  std::string outcome;
  soci::indicator outcome_ind = soci::i_null;
  if (auto it = report.find("outcome"); it != report.end() && it->is_string()) {
    outcome = it->get<std::string>();
    outcome_ind = soci::i_ok;
  } else if (auto ok = report.find("all_ok"); ok != report.end() && ok->is_boolean()) {
    outcome = ok->get<bool>() ? "ok" : "unclean";
    outcome_ind = soci::i_ok;
  }
  const long long created_at = unix_ms_now();
  const std::string text = report.dump();
  long long id = 0;
  if (sql.get_backend_name() == "postgresql") {
    sql << "INSERT INTO shutdown_reports (created_at, exit_code, outcome, report) "
           "VALUES (:created_at, :exit_code, :outcome, :report) RETURNING id",
        soci::use(created_at), soci::use(exit_code, exit_ind), soci::use(outcome, outcome_ind),
        soci::use(text), soci::into(id);
  } else {
    sql << "INSERT INTO shutdown_reports (created_at, exit_code, outcome, report) "
           "VALUES (:created_at, :exit_code, :outcome, :report)",
        soci::use(created_at), soci::use(exit_code, exit_ind), soci::use(outcome, outcome_ind),
        soci::use(text);
    sql << "SELECT last_insert_rowid()", soci::into(id);
  }
  return id;
}

std::vector<nlohmann::json> list_shutdown_reports(soci::session& sql, int limit) {
  const int n = std::clamp(limit, 1, 200);
  long long id = 0;
  std::string text;
  soci::statement st =
      (sql.prepare << "SELECT id, report FROM shutdown_reports ORDER BY id DESC LIMIT :n",
       soci::use(n), soci::into(id), soci::into(text));
  st.execute();
  std::vector<nlohmann::json> out;
  while (st.fetch()) {
    auto report = nlohmann::json::parse(text, nullptr, false);
    if (!report.is_object()) {
      // A row written by hand or truncated: show it rather than hide it or fail the list.
      report = nlohmann::json{{"invalid_report", text}};
    }
    report["id"] = id;
    out.push_back(std::move(report));
  }
  return out;
}

}  // namespace si::storage
