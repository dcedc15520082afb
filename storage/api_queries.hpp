#pragma once
/// Shared pieces of the REST API repositories (corridors, anchors, pools, trustlines,
/// ingestion): paging, sort order, write outcomes, and a SQL builder whose user-supplied
/// values only ever travel as bound parameters.

#include <cstddef>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json_fwd.hpp>

namespace soci {
class session;
class statement;
class row;
}  // namespace soci

namespace si::storage {

/// The largest page a list returns (`limit` is clamped to 1..max_page_limit).
inline constexpr int max_page_limit = 200;
/// The page size when the client names none.
inline constexpr int default_page_limit = 50;

/// Ascending or descending.
enum class sort_order { asc, desc };

/// Parses `asc` / `desc` (exact, lower case); nullopt otherwise.
std::optional<sort_order> parse_sort_order(std::string_view text);

/// `limit` and `offset` of a list request. Repositories clamp `limit` to 1..200 and a
/// negative `offset` to 0, so a bad value never reaches SQL.
struct page_request {
  int limit = default_page_limit;
  long long offset = 0;
};

/// A write refused because an input field is invalid (HTTP 400/422 naming `field`).
struct field_error {
  std::string field;
  std::string message;
};

/// A write refused because the row it needs does not exist (HTTP 404).
struct not_found_error {
  std::string message;
};

/// A write refused because it duplicates an existing row (HTTP 409).
struct conflict_error {
  std::string message;
};

/// SQL text plus the values bound to its placeholders, in order. Text added with `sql()` is
/// trusted (constants and whitelisted column names only); every user-supplied value goes
/// through `value()`, which appends a placeholder (`:p1`, `:p2`, ...) and binds it.
class bound_query {
 public:
  /// Appends trusted SQL text.
  bound_query& sql(std::string_view text);
  /// Appends a placeholder bound to `v`.
  bound_query& value(long long v);
  bound_query& value(double v);
  bound_query& value(std::string v);

  /// The SQL text with placeholders.
  const std::string& text() const {
    return text_;
  }
  /// How many values are bound.
  std::size_t size() const {
    return values_.size();
  }

  /// Runs the query and calls `on_row` for each result row (in order).
  void for_each_row(soci::session& sql, const std::function<void(const soci::row&)>& on_row) const;
  /// Runs a query returning one integer (e.g. `SELECT COUNT(*) ...`); 0 when it yields NULL.
  long long scalar_int(soci::session& sql) const;
  /// Runs a statement without results (INSERT/UPDATE/DELETE); returns the affected rows.
  long long execute(soci::session& sql) const;

 private:
  void bind(soci::statement& st) const;

  std::string text_;
  /// A deque so that bound references stay valid while values are appended.
  std::deque<std::variant<long long, double, std::string>> values_;
};

/// Column `i` of `r` as an integer whatever numeric type the backend reported; nullopt for
/// NULL. Throws std::runtime_error for text that is not a number.
std::optional<long long> row_int(const soci::row& r, std::size_t i);
/// Column `i` of `r` as a double; nullopt for NULL.
std::optional<double> row_double(const soci::row& r, std::size_t i);
/// Column `i` of `r` as text; nullopt for NULL.
std::optional<std::string> row_text(const soci::row& r, std::size_t i);

/// Column `i` as a JSON integer, or JSON null for NULL.
nlohmann::json json_int(const soci::row& r, std::size_t i);
/// Column `i` as a JSON number, or JSON null for NULL.
nlohmann::json json_double(const soci::row& r, std::size_t i);
/// Column `i` as a JSON string, or JSON null for NULL.
nlohmann::json json_text(const soci::row& r, std::size_t i);

/// `page` with `limit` clamped to 1..max_page_limit and `offset` to at least 0.
page_request clamp_page(page_request page);

/// Appends ` LIMIT :pN OFFSET :pM` for `page` (already clamped or not; it clamps).
void append_page(bound_query& q, page_request page);

/// Appends an ORDER BY term for `column` in `order`, NULLs last in both directions (the same
/// on SQLite and PostgreSQL), followed by `tiebreak` (e.g. "id ASC") for stable paging.
/// `column` and `tiebreak` must be whitelisted SQL, never user input.
void append_order(bound_query& q, std::string_view column, sort_order order,
                  std::string_view tiebreak);

}  // namespace si::storage
