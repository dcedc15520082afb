#include "storage/corridors_repo.hpp"

#include <nlohmann/json.hpp>
#include <soci/soci.h>

namespace si::storage {

namespace {

/// The columns every corridor source yields, in this order, under these names.
constexpr std::string_view corridor_columns =
    "t.id, t.source_asset_code, t.source_asset_issuer, t.destination_asset_code, "
    "t.destination_asset_issuer, t.success_rate, t.total_attempts, t.successful, t.failed, "
    "t.volume, t.last_updated";

/// Success rate in percent from two integer expressions, NULL without attempts.
std::string rate_expression(std::string_view successful, std::string_view attempts) {
  return "CASE WHEN " + std::string(attempts) + " > 0 THEN CAST(100.0 * " + std::string(successful)
         + " AS DOUBLE PRECISION) / " + std::string(attempts) + " END";
}

/// Appends `(<corridor source>) AS t`: the `corridors` table itself (lifetime figures) or,
/// with a period, each corridor joined to the sums of its buckets in the window. With
/// `keep_inactive` a corridor without buckets in the window stays, with zero figures.
void append_source(bound_query& q, std::optional<corridor_period> period, long long now_ms,
                   const std::optional<std::string>& only_id, bool keep_inactive) {
  if (!period) {
    // The rate is recomputed from the counts rather than read from the stored column, so
    // that both kinds of figures share one definition (and one unit, percent).
    q.sql(
         "(SELECT id, source_asset_code, source_asset_issuer, destination_asset_code, "
         "destination_asset_issuer, ")
        .sql(rate_expression("successful", "total_attempts"))
        .sql(
            " AS success_rate, total_attempts, successful, failed, volume, last_updated "
            "FROM corridors");
    if (only_id) {
      q.sql(" WHERE id = ").value(*only_id);
    }
    q.sql(") AS t");
    return;
  }
  const long long from = now_ms - period_ms(*period);
  q.sql(
       "(SELECT c.id, c.source_asset_code, c.source_asset_issuer, c.destination_asset_code, "
       "c.destination_asset_issuer, ")
      .sql(rate_expression("COALESCE(b.successful, 0)", "COALESCE(b.attempts, 0)"))
      .sql(
          " AS success_rate, COALESCE(b.attempts, 0) AS total_attempts, "
          "COALESCE(b.successful, 0) AS successful, COALESCE(b.failed, 0) AS failed, "
          "COALESCE(b.volume, 0) AS volume, c.last_updated FROM corridors c ")
      .sql(keep_inactive ? "LEFT JOIN" : "JOIN")
      .sql(
          " (SELECT corridor_id, CAST(SUM(attempts) AS BIGINT) AS attempts, "
          "CAST(SUM(successful) AS BIGINT) AS successful, CAST(SUM(failed) AS BIGINT) AS failed, "
          "CAST(SUM(volume) AS DOUBLE PRECISION) AS volume FROM corridor_buckets "
          "WHERE bucket_start >= ")
      .value(from)
      .sql(" AND bucket_start < ")
      .value(now_ms);
  if (only_id) {
    q.sql(" AND corridor_id = ").value(*only_id);
  }
  q.sql(" GROUP BY corridor_id) b ON b.corridor_id = c.id");
  if (only_id) {
    q.sql(" WHERE c.id = ").value(*only_id);
  }
  q.sql(") AS t");
}

/// Appends ` WHERE ...` for the query's filters (always a valid clause).
void append_filters(bound_query& q, const corridor_query& query) {
  q.sql(" WHERE 1 = 1");
  if (query.asset_code) {
    q.sql(" AND (t.source_asset_code = ")
        .value(*query.asset_code)
        .sql(" OR t.destination_asset_code = ")
        .value(*query.asset_code)
        .sql(")");
  }
  if (query.success_rate_min) {
    q.sql(" AND t.success_rate >= ").value(*query.success_rate_min);
  }
  if (query.success_rate_max) {
    q.sql(" AND t.success_rate <= ").value(*query.success_rate_max);
  }
  if (query.volume_min) {
    q.sql(" AND t.volume >= ").value(*query.volume_min);
  }
  if (query.volume_max) {
    q.sql(" AND t.volume <= ").value(*query.volume_max);
  }
}

std::string_view sort_column(corridor_sort sort) {
  switch (sort) {
    case corridor_sort::success_rate:
      return "t.success_rate";
    case corridor_sort::attempts:
      return "t.total_attempts";
    case corridor_sort::volume:
      break;
  }
  return "t.volume";
}

std::string asset_id(const soci::row& r, std::size_t code, std::size_t issuer) {
  return row_text(r, code).value_or("") + ":" + row_text(r, issuer).value_or("");
}

/// One corridor object from a row laid out as `corridor_columns`.
nlohmann::json corridor_json(const soci::row& r) {
  return {
      {"id", json_text(r, 0)},
      {"source_asset", asset_id(r, 1, 2)},
      {"destination_asset", asset_id(r, 3, 4)},
      {"success_rate", json_double(r, 5)},
      {"total_attempts", json_int(r, 6)},
      {"successful", json_int(r, 7)},
      {"failed", json_int(r, 8)},
      {"volume", json_double(r, 9)},
      {"last_updated", json_int(r, 10)},
  };
}

}  // namespace

std::optional<corridor_period> parse_corridor_period(std::string_view text) {
  if (text == "24h") {
    return corridor_period::h24;
  }
  if (text == "7d") {
    return corridor_period::d7;
  }
  if (text == "30d") {
    return corridor_period::d30;
  }
  return std::nullopt;
}

std::string_view to_string(corridor_period period) {
  switch (period) {
    case corridor_period::h24:
      return "24h";
    case corridor_period::d7:
      return "7d";
    case corridor_period::d30:
      break;
  }
  return "30d";
}

long long period_ms(corridor_period period) {
  constexpr long long hour = 3'600'000;
  switch (period) {
    case corridor_period::h24:
      return 24 * hour;
    case corridor_period::d7:
      return 7 * 24 * hour;
    case corridor_period::d30:
      break;
  }
  return 30 * 24 * hour;
}

std::optional<corridor_sort> parse_corridor_sort(std::string_view text) {
  if (text == "success_rate") {
    return corridor_sort::success_rate;
  }
  if (text == "volume") {
    return corridor_sort::volume;
  }
  if (text == "attempts") {
    return corridor_sort::attempts;
  }
  return std::nullopt;
}

nlohmann::json list_corridors(soci::session& sql, const corridor_query& query) {
  bound_query count;
  count.sql("SELECT COUNT(*) FROM ");
  append_source(count, query.period, query.now_ms, std::nullopt, false);
  append_filters(count, query);

  bound_query page;
  page.sql("SELECT ").sql(corridor_columns).sql(" FROM ");
  append_source(page, query.period, query.now_ms, std::nullopt, false);
  append_filters(page, query);
  append_order(page, sort_column(query.sort_by), query.order.value_or(sort_order::desc),
               "t.id ASC");
  append_page(page, query.page);

  auto items = nlohmann::json::array();
  page.for_each_row(sql, [&](const soci::row& r) { items.push_back(corridor_json(r)); });
  return {{"corridors", std::move(items)}, {"total", count.scalar_int(sql)}};
}

std::optional<nlohmann::json> get_corridor(soci::session& sql, const corridor_detail_query& query) {
  bound_query one;
  one.sql("SELECT ").sql(corridor_columns).sql(" FROM ");
  append_source(one, query.period, query.now_ms, query.id, true);
  std::optional<nlohmann::json> corridor;
  one.for_each_row(sql, [&](const soci::row& r) { corridor = corridor_json(r); });
  if (!corridor) {
    return std::nullopt;
  }

  bound_query buckets;
  buckets.sql("SELECT bucket_start, attempts, successful, failed, ")
      .sql(rate_expression("successful", "attempts"))
      .sql(", volume FROM corridor_buckets WHERE corridor_id = ")
      .value(query.id);
  if (query.period) {
    buckets.sql(" AND bucket_start >= ")
        .value(query.now_ms - period_ms(*query.period))
        .sql(" AND bucket_start < ")
        .value(query.now_ms);
  }
  buckets.sql(" ORDER BY bucket_start ASC");
  auto history = nlohmann::json::array();
  buckets.for_each_row(sql, [&](const soci::row& r) {
    history.push_back({
        {"bucket_start", json_int(r, 0)},
        {"attempts", json_int(r, 1)},
        {"successful", json_int(r, 2)},
        {"failed", json_int(r, 3)},
        {"success_rate", json_double(r, 4)},
        {"volume", json_double(r, 5)},
    });
  });
  return nlohmann::json{{"corridor", std::move(*corridor)}, {"history", std::move(history)}};
}

nlohmann::json corridors_by_id(soci::session& sql, const std::vector<std::string>& ids) {
  auto items = nlohmann::json::array();
  for (const auto& id : ids) {
    bound_query one;
    one.sql("SELECT ").sql(corridor_columns).sql(" FROM ");
    append_source(one, std::nullopt, 0, id, false);
    one.for_each_row(sql, [&](const soci::row& r) { items.push_back(corridor_json(r)); });
  }
  return items;
}

}  // namespace si::storage
