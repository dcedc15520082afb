#include "storage/trustlines_repo.hpp"

#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <string>

namespace si::storage {

std::optional<trustline_sort> parse_trustline_sort(std::string_view text) {
  if (text == "accounts") {
    return trustline_sort::accounts;
  }
  if (text == "supply") {
    return trustline_sort::supply;
  }
  return std::nullopt;
}

nlohmann::json trustline_stats(soci::session& sql) {
  // An asset reports authorization when both of its counts are known.
  bound_query q;
  q.sql(
      "SELECT COUNT(*), CAST(SUM(num_accounts) AS BIGINT), "
      "CAST(SUM(CASE WHEN authorized_accounts IS NOT NULL AND unauthorized_accounts IS NOT "
      "NULL THEN authorized_accounts END) AS BIGINT), "
      "CAST(SUM(CASE WHEN authorized_accounts IS NOT NULL AND unauthorized_accounts IS NOT "
      "NULL THEN unauthorized_accounts END) AS BIGINT), "
      "SUM(CASE WHEN authorized_accounts IS NOT NULL AND unauthorized_accounts IS NOT NULL "
      "THEN 1 ELSE 0 END), MAX(updated_at) FROM trustline_stats");
  nlohmann::json out;
  q.for_each_row(sql, [&](const soci::row& r) {
    const long long assets = row_int(r, 0).value_or(0);
    out = {
        {"total_assets", assets},
        // SUM over no rows is NULL; with no asset there are, truthfully, no trustlines.
        {"total_trustlines", row_int(r, 1).value_or(0)},
        {"authorized_trustlines", json_int(r, 2)},
        {"unauthorized_trustlines", json_int(r, 3)},
        {"assets_reporting_authorization", row_int(r, 4).value_or(0)},
        {"last_updated", json_int(r, 5)},
    };
  });
  return out;
}

nlohmann::json trustline_rankings(soci::session& sql, const trustline_ranking_query& query) {
  const auto order = query.order.value_or(sort_order::desc);
  const auto page = clamp_page(query.page);
  bound_query q;
  q.sql(
      "SELECT asset_code, asset_issuer, num_accounts, authorized_accounts, "
      "unauthorized_accounts, amount, num_claimable_balances, num_liquidity_pools, "
      "updated_at FROM trustline_stats");
  append_order(q, query.sort_by == trustline_sort::supply ? "amount" : "num_accounts", order,
               "asset_code ASC, asset_issuer ASC");
  append_page(q, page);
  auto items = nlohmann::json::array();
  long long rank = page.offset;
  q.for_each_row(sql, [&](const soci::row& r) {
    items.push_back({
        {"rank", ++rank},
        {"asset_code", json_text(r, 0)},
        {"asset_issuer", json_text(r, 1)},
        {"num_accounts", json_int(r, 2)},
        {"authorized_accounts", json_int(r, 3)},
        {"unauthorized_accounts", json_int(r, 4)},
        {"supply", json_double(r, 5)},
        {"num_claimable_balances", json_int(r, 6)},
        {"num_liquidity_pools", json_int(r, 7)},
        {"updated_at", json_int(r, 8)},
    });
  });
  bound_query count;
  count.sql("SELECT COUNT(*) FROM trustline_stats");
  return {{"rankings", std::move(items)}, {"total", count.scalar_int(sql)}};
}

std::optional<nlohmann::json> trustline_history(soci::session& sql, std::string_view code,
                                                std::string_view issuer, page_request page) {
  const std::string c(code);
  const std::string i(issuer);
  bound_query count;
  count.sql("SELECT COUNT(*) FROM trustline_snapshots WHERE asset_code = ")
      .value(c)
      .sql(" AND asset_issuer = ")
      .value(i);
  const long long total = count.scalar_int(sql);
  if (total == 0) {
    bound_query known;
    known.sql("SELECT COUNT(*) FROM trustline_stats WHERE asset_code = ")
        .value(c)
        .sql(" AND asset_issuer = ")
        .value(i);
    if (known.scalar_int(sql) == 0) {
      return std::nullopt;
    }
  }
  bound_query q;
  q.sql("SELECT snapshot_at, num_accounts, amount FROM trustline_snapshots WHERE asset_code = ")
      .value(c)
      .sql(" AND asset_issuer = ")
      .value(i)
      .sql(" ORDER BY snapshot_at DESC");
  append_page(q, page);
  auto items = nlohmann::json::array();
  q.for_each_row(sql, [&](const soci::row& r) {
    items.push_back({
        {"snapshot_at", json_int(r, 0)},
        {"num_accounts", json_int(r, 1)},
        {"supply", json_double(r, 2)},
    });
  });
  return nlohmann::json{
      {"asset_code", c}, {"asset_issuer", i}, {"history", std::move(items)}, {"total", total}};
}

}  // namespace si::storage
