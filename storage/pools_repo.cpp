#include "storage/pools_repo.hpp"

#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <string>

namespace si::storage {

namespace {

constexpr std::string_view pool_columns =
    "pool_id, type, fee_bp, reserves, total_shares, total_trustlines, tvl, volume_24h, "
    "fees_24h, apy, last_synced_at";

/// The stored reserves text as JSON: the array as written, or null when it is not one.
nlohmann::json reserves_json(const soci::row& r, std::size_t i) {
  const auto text = row_text(r, i);
  if (!text) {
    return nullptr;
  }
  auto parsed = nlohmann::json::parse(*text, nullptr, false);
  if (!parsed.is_array()) {
    return nullptr;
  }
  return parsed;
}

nlohmann::json pool_json(const soci::row& r) {
  return {
      {"pool_id", json_text(r, 0)},        {"type", json_text(r, 1)},
      {"fee_bp", json_int(r, 2)},          {"reserves", reserves_json(r, 3)},
      {"total_shares", json_double(r, 4)}, {"total_trustlines", json_int(r, 5)},
      {"tvl", json_double(r, 6)},          {"volume_24h", json_double(r, 7)},
      {"fees_24h", json_double(r, 8)},     {"apy", json_double(r, 9)},
      {"last_synced_at", json_int(r, 10)},
  };
}

std::string_view sort_column(pool_sort sort) {
  switch (sort) {
    case pool_sort::volume:
      return "volume_24h";
    case pool_sort::fees:
      return "fees_24h";
    case pool_sort::apy:
      return "apy";
    case pool_sort::tvl:
      break;
  }
  return "tvl";
}

}  // namespace

std::optional<pool_sort> parse_pool_sort(std::string_view text) {
  if (text == "tvl") {
    return pool_sort::tvl;
  }
  if (text == "volume") {
    return pool_sort::volume;
  }
  if (text == "fees") {
    return pool_sort::fees;
  }
  if (text == "apy") {
    return pool_sort::apy;
  }
  return std::nullopt;
}

nlohmann::json list_pools(soci::session& sql, const pool_query& query) {
  bound_query page;
  page.sql("SELECT ").sql(pool_columns).sql(" FROM liquidity_pools");
  append_order(page, sort_column(query.sort_by), query.order.value_or(sort_order::desc),
               "pool_id ASC");
  append_page(page, query.page);
  auto items = nlohmann::json::array();
  page.for_each_row(sql, [&](const soci::row& r) { items.push_back(pool_json(r)); });

  bound_query count;
  count.sql("SELECT COUNT(*) FROM liquidity_pools");
  return {{"pools", std::move(items)}, {"total", count.scalar_int(sql)}};
}

std::optional<nlohmann::json> get_pool(soci::session& sql, std::string_view pool_id) {
  bound_query q;
  q.sql("SELECT ")
      .sql(pool_columns)
      .sql(" FROM liquidity_pools WHERE pool_id = ")
      .value(std::string(pool_id));
  std::optional<nlohmann::json> out;
  q.for_each_row(sql, [&](const soci::row& r) { out = pool_json(r); });
  return out;
}

std::optional<nlohmann::json> list_pool_snapshots(soci::session& sql, std::string_view pool_id,
                                                  page_request page) {
  const std::string id(pool_id);
  bound_query count;
  count.sql("SELECT COUNT(*) FROM liquidity_pool_snapshots WHERE pool_id = ").value(id);
  const long long total = count.scalar_int(sql);
  if (total == 0) {
    bound_query known;
    known.sql("SELECT COUNT(*) FROM liquidity_pools WHERE pool_id = ").value(id);
    if (known.scalar_int(sql) == 0) {
      return std::nullopt;
    }
  }

  bound_query q;
  q.sql(
       "SELECT snapshot_at, reserves, total_shares, total_trustlines, tvl, volume_24h, "
       "fees_24h, apy FROM liquidity_pool_snapshots WHERE pool_id = ")
      .value(id)
      .sql(" ORDER BY snapshot_at DESC");
  append_page(q, page);
  auto items = nlohmann::json::array();
  q.for_each_row(sql, [&](const soci::row& r) {
    items.push_back({
        {"snapshot_at", json_int(r, 0)},
        {"reserves", reserves_json(r, 1)},
        {"total_shares", json_double(r, 2)},
        {"total_trustlines", json_int(r, 3)},
        {"tvl", json_double(r, 4)},
        {"volume_24h", json_double(r, 5)},
        {"fees_24h", json_double(r, 6)},
        {"apy", json_double(r, 7)},
    });
  });
  return nlohmann::json{{"pool_id", id}, {"snapshots", std::move(items)}, {"total", total}};
}

nlohmann::json pool_stats(soci::session& sql) {
  // SUM/AVG skip NULLs and yield NULL over no value; COUNT(column) counts the reporters.
  bound_query q;
  q.sql(
      "SELECT COUNT(*), CAST(SUM(tvl) AS DOUBLE PRECISION), COUNT(tvl), "
      "CAST(SUM(volume_24h) AS DOUBLE PRECISION), COUNT(volume_24h), "
      "CAST(SUM(fees_24h) AS DOUBLE PRECISION), COUNT(fees_24h), "
      "CAST(AVG(apy) AS DOUBLE PRECISION), COUNT(apy), MAX(last_synced_at) "
      "FROM liquidity_pools");
  nlohmann::json out;
  q.for_each_row(sql, [&](const soci::row& r) {
    out = {
        {"total_pools", json_int(r, 0)},       {"total_tvl", json_double(r, 1)},
        {"pools_with_tvl", json_int(r, 2)},    {"total_volume_24h", json_double(r, 3)},
        {"pools_with_volume", json_int(r, 4)}, {"total_fees_24h", json_double(r, 5)},
        {"pools_with_fees", json_int(r, 6)},   {"avg_apy", json_double(r, 7)},
        {"pools_with_apy", json_int(r, 8)},    {"last_synced_at", json_int(r, 9)},
    };
  });
  return out;
}

}  // namespace si::storage
