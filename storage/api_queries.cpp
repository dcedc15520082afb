#include "storage/api_queries.hpp"

#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <stdexcept>

namespace si::storage {

namespace {

long long parse_int(const std::string& text) {
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno == 0 && end != text.c_str() && *end == '\0') {
    return v;
  }
  // NUMERIC results may come back as "12.0"; accept an integral value written that way.
  const double d = std::strtod(text.c_str(), &end);
  if (end != text.c_str() && *end == '\0' && d == static_cast<double>(static_cast<long long>(d))) {
    return static_cast<long long>(d);
  }
  throw std::runtime_error("column value '" + text + "' is not an integer");
}

double parse_double(const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end != '\0') {
    throw std::runtime_error("column value '" + text + "' is not a number");
  }
  return v;
}

}  // namespace

std::optional<sort_order> parse_sort_order(std::string_view text) {
  if (text == "asc") {
    return sort_order::asc;
  }
  if (text == "desc") {
    return sort_order::desc;
  }
  return std::nullopt;
}

// -- bound_query -----------------------------------------------------------------------------

bound_query& bound_query::sql(std::string_view text) {
  text_.append(text);
  return *this;
}

bound_query& bound_query::value(long long v) {
  values_.emplace_back(v);
  text_ += ":p" + std::to_string(values_.size());
  return *this;
}

bound_query& bound_query::value(double v) {
  values_.emplace_back(v);
  text_ += ":p" + std::to_string(values_.size());
  return *this;
}

bound_query& bound_query::value(std::string v) {
  values_.emplace_back(std::move(v));
  text_ += ":p" + std::to_string(values_.size());
  return *this;
}

void bound_query::bind(soci::statement& st) const {
  for (const auto& v : values_) {
    if (const auto* i = std::get_if<long long>(&v)) {
      st.exchange(soci::use(*i));
    } else if (const auto* d = std::get_if<double>(&v)) {
      st.exchange(soci::use(*d));
    } else {
      st.exchange(soci::use(std::get<std::string>(v)));
    }
  }
}

void bound_query::for_each_row(soci::session& sql,
                               const std::function<void(const soci::row&)>& on_row) const {
  soci::row r;
  soci::statement st(sql);
  st.exchange(soci::into(r));
  bind(st);
  st.alloc();
  st.prepare(text_);
  st.define_and_bind();
  st.execute(false);
  while (st.fetch()) {
    on_row(r);
  }
}

long long bound_query::scalar_int(soci::session& sql) const {
  long long out = 0;
  soci::indicator ind = soci::i_null;
  soci::statement st(sql);
  st.exchange(soci::into(out, ind));
  bind(st);
  st.alloc();
  st.prepare(text_);
  st.define_and_bind();
  if (!st.execute(true) || ind != soci::i_ok) {
    return 0;
  }
  return out;
}

long long bound_query::execute(soci::session& sql) const {
  soci::statement st(sql);
  bind(st);
  st.alloc();
  st.prepare(text_);
  st.define_and_bind();
  st.execute(true);
  return st.get_affected_rows();
}

// -- row access ------------------------------------------------------------------------------

std::optional<long long> row_int(const soci::row& r, std::size_t i) {
  if (r.get_indicator(i) == soci::i_null) {
    return std::nullopt;
  }
  switch (r.get_properties(i).get_data_type()) {
    case soci::dt_integer:
      return r.get<int>(i);
    case soci::dt_long_long:
      return r.get<long long>(i);
    case soci::dt_unsigned_long_long:
      return static_cast<long long>(r.get<unsigned long long>(i));
    case soci::dt_double:
      return static_cast<long long>(r.get<double>(i));
    default:
      return parse_int(r.get<std::string>(i));
  }
}

std::optional<double> row_double(const soci::row& r, std::size_t i) {
  if (r.get_indicator(i) == soci::i_null) {
    return std::nullopt;
  }
  switch (r.get_properties(i).get_data_type()) {
    case soci::dt_integer:
      return static_cast<double>(r.get<int>(i));
    case soci::dt_long_long:
      return static_cast<double>(r.get<long long>(i));
    case soci::dt_unsigned_long_long:
      return static_cast<double>(r.get<unsigned long long>(i));
    case soci::dt_double:
      return r.get<double>(i);
    default:
      return parse_double(r.get<std::string>(i));
  }
}

std::optional<std::string> row_text(const soci::row& r, std::size_t i) {
  if (r.get_indicator(i) == soci::i_null) {
    return std::nullopt;
  }
  switch (r.get_properties(i).get_data_type()) {
    case soci::dt_integer:
      return std::to_string(r.get<int>(i));
    case soci::dt_long_long:
      return std::to_string(r.get<long long>(i));
    case soci::dt_unsigned_long_long:
      return std::to_string(r.get<unsigned long long>(i));
    case soci::dt_double:
      return nlohmann::json(r.get<double>(i)).dump();
    default:
      return r.get<std::string>(i);
  }
}

nlohmann::json json_int(const soci::row& r, std::size_t i) {
  const auto v = row_int(r, i);
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

nlohmann::json json_double(const soci::row& r, std::size_t i) {
  const auto v = row_double(r, i);
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

nlohmann::json json_text(const soci::row& r, std::size_t i) {
  auto v = row_text(r, i);
  return v ? nlohmann::json(std::move(*v)) : nlohmann::json(nullptr);
}

// -- paging and order ------------------------------------------------------------------------

page_request clamp_page(page_request page) {
  page.limit = std::clamp(page.limit, 1, max_page_limit);
  page.offset = std::max(page.offset, 0LL);
  return page;
}

void append_page(bound_query& q, page_request page) {
  const auto p = clamp_page(page);
  q.sql(" LIMIT ").value(static_cast<long long>(p.limit)).sql(" OFFSET ").value(p.offset);
}

void append_order(bound_query& q, std::string_view column, sort_order order,
                  std::string_view tiebreak) {
  // SQLite sorts NULL first, PostgreSQL last (ascending); the CASE term makes both put NULL
  // last in either direction without relying on NULLS LAST.
  q.sql(" ORDER BY CASE WHEN ")
      .sql(column)
      .sql(" IS NULL THEN 1 ELSE 0 END, ")
      .sql(column)
      .sql(order == sort_order::asc ? " ASC" : " DESC");
  if (!tiebreak.empty()) {
    q.sql(", ").sql(tiebreak);
  }
}

}  // namespace si::storage
