#include "storage/anchors_repo.hpp"

#include <soci/soci.h>

#include <algorithm>
#include <cctype>

#include "domain/asset.hpp"
#include "domain/strkey.hpp"

namespace si::storage {

namespace {

/// The status column as the API reports it: NULL while nothing has been measured (the stored
/// 'green' is then only the schema default, not a measurement).
constexpr std::string_view status_expression =
    "CASE WHEN reliability_score IS NULL AND total_transactions = 0 THEN NULL ELSE status END";

/// The anchor columns `anchor_json` reads, in order.
std::string anchor_columns() {
  return "id, name, stellar_account, home_domain, total_transactions, successful_transactions, "
         "failed_transactions, reliability_score, "
         + std::string(status_expression)
         + ", total_volume, avg_settlement_time_ms, created_at, updated_at";
}

nlohmann::json anchor_json(const soci::row& r) {
  return {
      {"id", json_int(r, 0)},
      {"name", json_text(r, 1)},
      {"stellar_account", json_text(r, 2)},
      {"home_domain", json_text(r, 3)},
      {"total_transactions", json_int(r, 4)},
      {"successful", json_int(r, 5)},
      {"failed", json_int(r, 6)},
      {"reliability_score", json_double(r, 7)},
      {"status", json_text(r, 8)},
      {"total_volume", json_double(r, 9)},
      {"avg_settlement_time_ms", json_int(r, 10)},
      {"created_at", json_int(r, 11)},
      {"updated_at", json_int(r, 12)},
  };
}

/// The anchor in `q` (a query selecting `anchor_columns()`) with its assets and metrics.
std::optional<nlohmann::json> anchor_detail(soci::session& sql, const bound_query& q,
                                            int history_limit) {
  std::optional<nlohmann::json> anchor;
  q.for_each_row(sql, [&](const soci::row& r) { anchor = anchor_json(r); });
  if (!anchor) {
    return std::nullopt;
  }
  const long long id = (*anchor)["id"].get<long long>();

  bound_query assets_q;
  assets_q
      .sql(
          "SELECT id, asset_code, asset_issuer, created_at FROM anchor_assets "
          "WHERE anchor_id = ")
      .value(id)
      .sql(" ORDER BY asset_code ASC, asset_issuer ASC, id ASC");
  auto assets = nlohmann::json::array();
  assets_q.for_each_row(sql, [&](const soci::row& r) {
    assets.push_back({{"id", json_int(r, 0)},
                      {"asset_code", json_text(r, 1)},
                      {"asset_issuer", json_text(r, 2)},
                      {"created_at", json_int(r, 3)}});
  });

  // The newest rows are picked in the inner query, then shown oldest first for charts.
  bound_query history_q;
  history_q
      .sql(
          "SELECT recorded_at, total_transactions, successful_transactions, "
          "failed_transactions, success_rate, volume, avg_settlement_time_ms, "
          "reliability_score, status FROM (SELECT * FROM anchor_metrics_history "
          "WHERE anchor_id = ")
      .value(id)
      .sql(" ORDER BY recorded_at DESC LIMIT ")
      .value(static_cast<long long>(std::clamp(history_limit, 1, max_anchor_history)))
      .sql(") AS h ORDER BY recorded_at ASC");
  auto history = nlohmann::json::array();
  history_q.for_each_row(sql, [&](const soci::row& r) {
    history.push_back({{"recorded_at", json_int(r, 0)},
                       {"total_transactions", json_int(r, 1)},
                       {"successful", json_int(r, 2)},
                       {"failed", json_int(r, 3)},
                       {"success_rate", json_double(r, 4)},
                       {"volume", json_double(r, 5)},
                       {"avg_settlement_time_ms", json_int(r, 6)},
                       {"reliability_score", json_double(r, 7)},
                       {"status", json_text(r, 8)}});
  });
  return nlohmann::json{{"anchor", std::move(*anchor)},
                        {"assets", std::move(assets)},
                        {"metrics_history", std::move(history)}};
}

/// Number of code points in `s`, or -1 when it is not valid UTF-8 (overlong forms and
/// surrogates included, as nlohmann::json would refuse to serialise them).
long long utf8_length(std::string_view s) {
  long long count = 0;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t extra = 0;
    unsigned char lo = 0x80;  // allowed range of the first continuation byte
    unsigned char hi = 0xbf;
    if (c < 0x80) {
      extra = 0;
    } else if (c >= 0xc2 && c <= 0xdf) {
      extra = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
      extra = 2;
      lo = c == 0xe0 ? 0xa0 : 0x80;
      hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
      extra = 3;
      lo = c == 0xf0 ? 0x90 : 0x80;
      hi = c == 0xf4 ? 0x8f : 0xbf;
    } else {
      return -1;
    }
    if (i + extra >= s.size()) {
      return -1;
    }
    for (std::size_t k = 1; k <= extra; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if (k == 1 ? (b < lo || b > hi) : (b & 0xc0) != 0x80) {
        return -1;
      }
    }
    i += extra + 1;
    ++count;
  }
  return count;
}

std::string trim(std::string_view s) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && is_space(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && is_space(s.back())) {
    s.remove_suffix(1);
  }
  return std::string(s);
}

std::optional<std::string> name_error(const std::string& name) {
  if (name.empty()) {
    return std::string("name is required");
  }
  const long long length = utf8_length(name);
  if (length < 0) {
    return std::string("name is not valid UTF-8");
  }
  if (length > 200) {
    return std::string("name is longer than 200 characters");
  }
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return std::string("name contains a control character");
    }
  }
  return std::nullopt;
}

/// What is wrong with `domain` as a DNS host name (letters, digits, '-', dot-separated labels
/// of 1..63, at least two labels, 253 at most), or nullopt.
std::optional<std::string> home_domain_error(const std::string& domain) {
  const std::string hint = " (a host name such as example.com, without scheme or path)";
  if (domain.empty() || domain.size() > 253) {
    return "home_domain must be 1..253 characters" + hint;
  }
  std::size_t labels = 0;
  std::size_t start = 0;
  while (start <= domain.size()) {
    const auto dot = domain.find('.', start);
    const auto end = dot == std::string::npos ? domain.size() : dot;
    const std::string_view label(domain.data() + start, end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return "home_domain is not a valid host name" + hint;
    }
    for (char c : label) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') {
        return "home_domain is not a valid host name" + hint;
      }
    }
    ++labels;
    if (dot == std::string::npos) {
      break;
    }
    start = dot + 1;
  }
  if (labels < 2) {
    return "home_domain needs at least two labels" + hint;
  }
  return std::nullopt;
}

}  // namespace

std::optional<anchor_sort> parse_anchor_sort(std::string_view text) {
  if (text == "reliability") {
    return anchor_sort::reliability;
  }
  if (text == "transactions") {
    return anchor_sort::transactions;
  }
  if (text == "name") {
    return anchor_sort::name;
  }
  return std::nullopt;
}

nlohmann::json list_anchors(soci::session& sql, const anchor_query& query) {
  const auto filter = [&](bound_query& q) {
    if (query.status) {
      q.sql(" WHERE ")
          .sql(status_expression)
          .sql(" = ")
          .value(std::string(to_string(*query.status)));
    }
  };
  bound_query count;
  count.sql("SELECT COUNT(*) FROM anchors");
  filter(count);

  bound_query page;
  page.sql("SELECT ").sql(anchor_columns()).sql(" FROM anchors");
  filter(page);
  switch (query.sort_by) {
    case anchor_sort::reliability:
      append_order(page, "reliability_score", query.order.value_or(sort_order::desc), "id ASC");
      break;
    case anchor_sort::transactions:
      append_order(page, "total_transactions", query.order.value_or(sort_order::desc), "id ASC");
      break;
    case anchor_sort::name:
      // Case-insensitive, then exact (so "abc" and "ABC" have a fixed order), then id.
      append_order(page, "LOWER(name)", query.order.value_or(sort_order::asc),
                   query.order.value_or(sort_order::asc) == sort_order::asc ? "name ASC, id ASC"
                                                                            : "name DESC, id ASC");
      break;
  }
  append_page(page, query.page);

  auto items = nlohmann::json::array();
  page.for_each_row(sql, [&](const soci::row& r) { items.push_back(anchor_json(r)); });
  return {{"anchors", std::move(items)}, {"total", count.scalar_int(sql)}};
}

std::optional<nlohmann::json> get_anchor(soci::session& sql, long long id, int history_limit) {
  bound_query q;
  q.sql("SELECT ").sql(anchor_columns()).sql(" FROM anchors WHERE id = ").value(id);
  return anchor_detail(sql, q, history_limit);
}

std::optional<nlohmann::json> get_anchor_by_account(soci::session& sql,
                                                    std::string_view stellar_account,
                                                    int history_limit) {
  bound_query q;
  q.sql("SELECT ")
      .sql(anchor_columns())
      .sql(" FROM anchors WHERE stellar_account = ")
      .value(std::string(stellar_account));
  return anchor_detail(sql, q, history_limit);
}

create_anchor_result create_anchor(soci::session& sql, const new_anchor& anchor, long long now_ms) {
  const std::string name = trim(anchor.name);
  if (auto error = name_error(name)) {
    return field_error{"name", *error};
  }
  if (anchor.stellar_account.empty()) {
    return field_error{"stellar_account", "stellar_account is required"};
  }
  if (auto error = domain::strkey_error(anchor.stellar_account, 'G')) {
    return field_error{"stellar_account", "stellar_account is not a valid account id: " + *error};
  }
  std::optional<std::string> home_domain;
  if (anchor.home_domain) {
    home_domain = *anchor.home_domain;
    std::transform(home_domain->begin(), home_domain->end(), home_domain->begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (auto error = home_domain_error(*home_domain)) {
      return field_error{"home_domain", *error};
    }
  }

  // ON CONFLICT DO NOTHING rather than check-then-insert: a concurrent create of the same
  // account inserts nothing here and is reported as the conflict it is.
  bound_query insert;
  insert
      .sql(
          "INSERT INTO anchors (name, stellar_account, home_domain, created_at, updated_at) "
          "VALUES (")
      .value(name)
      .sql(", ")
      .value(anchor.stellar_account)
      .sql(", ");
  if (home_domain) {
    insert.value(*home_domain);
  } else {
    insert.sql("NULL");
  }
  insert.sql(", ").value(now_ms).sql(", ").value(now_ms).sql(
      ") ON CONFLICT (stellar_account) DO NOTHING");
  if (insert.execute(sql) == 0) {
    return conflict_error{"an anchor with this stellar_account already exists"};
  }

  bound_query created;
  created.sql("SELECT ")
      .sql(anchor_columns())
      .sql(" FROM anchors WHERE stellar_account = ")
      .value(anchor.stellar_account);
  std::optional<nlohmann::json> out;
  created.for_each_row(sql, [&](const soci::row& r) { out = anchor_json(r); });
  if (!out) {
    // Deleted between our insert and this read: report what happened to the write.
    return conflict_error{"the anchor was removed while it was being created"};
  }
  return std::move(*out);
}

add_anchor_asset_result add_anchor_asset(soci::session& sql, long long anchor_id,
                                         const new_anchor_asset& asset, long long now_ms) {
  if (auto error = domain::asset_code_error(asset.asset_code)) {
    return field_error{"asset_code", *error};
  }
  if (asset.asset_issuer == domain::native_issuer) {
    return field_error{"asset_issuer", "lumens (native) are not issued by an anchor"};
  }
  if (auto error = domain::strkey_error(asset.asset_issuer, 'G')) {
    return field_error{"asset_issuer", "asset_issuer is not a valid account id: " + *error};
  }

  // An anchor deleted between this check and the insert makes the insert fail its foreign
  // key (an exception), never leaves a dangling asset.
  bound_query exists;
  exists.sql("SELECT COUNT(*) FROM anchors WHERE id = ").value(anchor_id);
  if (exists.scalar_int(sql) == 0) {
    return not_found_error{"no anchor with id " + std::to_string(anchor_id)};
  }
  bound_query insert;
  insert.sql("INSERT INTO anchor_assets (anchor_id, asset_code, asset_issuer, created_at) VALUES (")
      .value(anchor_id)
      .sql(", ")
      .value(asset.asset_code)
      .sql(", ")
      .value(asset.asset_issuer)
      .sql(", ")
      .value(now_ms)
      .sql(") ON CONFLICT (anchor_id, asset_code, asset_issuer) DO NOTHING");
  if (insert.execute(sql) == 0) {
    return conflict_error{"anchor " + std::to_string(anchor_id) + " already lists this asset"};
  }
  bound_query added;
  added
      .sql(
          "SELECT id, anchor_id, asset_code, asset_issuer, created_at FROM anchor_assets "
          "WHERE anchor_id = ")
      .value(anchor_id)
      .sql(" AND asset_code = ")
      .value(asset.asset_code)
      .sql(" AND asset_issuer = ")
      .value(asset.asset_issuer);
  nlohmann::json out;
  added.for_each_row(sql, [&](const soci::row& r) {
    out = {{"id", json_int(r, 0)},
           {"anchor_id", json_int(r, 1)},
           {"asset_code", json_text(r, 2)},
           {"asset_issuer", json_text(r, 3)},
           {"created_at", json_int(r, 4)}};
  });
  return out;
}

}  // namespace si::storage
