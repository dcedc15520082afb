#include "storage/sync_repo.hpp"

#include <soci/soci.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>
#include <utility>

#include "domain/horizon_values.hpp"
#include "storage/api_queries.hpp"

namespace si::storage {

namespace {

/// PostgreSQL advisory lock keys, one per run: two instances never run the same sync at once
/// (SQLite's BEGIN IMMEDIATE serialises every writer anyway).
constexpr long long metrics_lock_key = 5349101;
constexpr long long pools_lock_key = 5349102;
constexpr long long trustlines_lock_key = 5349103;

/// One write transaction. SQLite: `BEGIN IMMEDIATE` takes the write lock up front, so reads
/// followed by writes never fail with a stale snapshot while the ingestor commits. PostgreSQL:
/// BEGIN plus a transaction-scoped advisory lock per run. Rolls back unless committed.
class write_transaction {
 public:
  write_transaction(soci::session& sql, backend kind, long long lock_key) : sql_(sql), kind_(kind) {
    if (kind_ == backend::sqlite) {
      sql_ << "BEGIN IMMEDIATE";
      open_ = true;
      return;
    }
    sql_.begin();
    open_ = true;
    try {
      sql_ << "SELECT pg_advisory_xact_lock(:key)", soci::use(lock_key);
    } catch (...) {
      rollback_quietly();  // the destructor does not run for a constructor that throws
      throw;
    }
  }
  write_transaction(const write_transaction&) = delete;
  write_transaction& operator=(const write_transaction&) = delete;

  ~write_transaction() {
    rollback_quietly();
  }

  void commit() {
    if (kind_ == backend::sqlite) {
      sql_ << "COMMIT";
    } else {
      sql_.commit();
    }
    open_ = false;
  }

 private:
  void rollback_quietly() noexcept {
    if (!open_) {
      return;
    }
    open_ = false;
    try {
      if (kind_ == backend::sqlite) {
        sql_ << "ROLLBACK";
      } else {
        sql_.rollback();
      }
    } catch (...) {
      // The error that abandoned the transaction is the one to report.
    }
  }

  soci::session& sql_;
  backend kind_;
  bool open_ = false;
};

/// A nullable value bound with an indicator; must outlive the statement it is bound to.
template <class T>
struct nullable {
  explicit nullable(const std::optional<T>& v)
      : value(v.value_or(T{})), ind(v ? soci::i_ok : soci::i_null) {}
  T value;
  soci::indicator ind;
};

/// Milliseconds since `start` on the steady clock.
int64_t elapsed_ms(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now()
                                                               - start)
      .count();
}

/// Upserts the `sync_runs` row of a run that is about to commit.
void record_success(soci::session& sql, std::string_view name, int64_t now_ms,
                    std::chrono::steady_clock::time_point started) {
  record_run(sql, std::string(name), now_ms, "ok", std::nullopt, elapsed_ms(started));
}

/// Hands an event to the callback (inside the transaction) and keeps it for the result.
void emit(soci::session& sql, const sync_event_fn& on_event, std::vector<sync_event>& events,
          std::string_view type, nlohmann::json data) {
  events.push_back({std::string(type), std::move(data)});
  if (on_event) {
    on_event(sql, events.back().type, events.back().data);
  }
}

/// Two figures computed from the same rows may differ in the last bits when a database sums
/// them in another order; that is not a change.
bool same_figure(double a, double b) {
  return std::fabs(a - b) <= 1e-9 * std::max({1.0, std::fabs(a), std::fabs(b)});
}

/// ` type IN ('payment', ...)` for the payment-like operation types (trusted constants).
std::string payment_type_filter(std::string_view column) {
  std::string out = std::string(column) + " IN (";
  bool first = true;
  for (auto type : domain::corridor_operation_types) {
    out += (first ? "'" : ", '") + std::string(type) + "'";
    first = false;
  }
  return out + ")";
}

// --- corridors ------------------------------------------------------------------------------

/// Lifetime figures of one corridor.
struct corridor_totals {
  int64_t attempts = 0;
  int64_t successful = 0;
  int64_t failed = 0;
  double volume = 0;
};

bool same_totals(const corridor_totals& a, const corridor_totals& b) {
  return a.attempts == b.attempts && a.successful == b.successful && a.failed == b.failed
         && same_figure(a.volume, b.volume);
}

/// The corridors rows as stored, by id.
std::map<std::string, corridor_totals> read_corridors(soci::session& sql) {
  std::map<std::string, corridor_totals> out;
  bound_query q;
  q.sql("SELECT id, total_attempts, successful, failed, volume FROM corridors");
  q.for_each_row(sql, [&](const soci::row& r) {
    out[row_text(r, 0).value_or("")] = {row_int(r, 1).value_or(0), row_int(r, 2).value_or(0),
                                        row_int(r, 3).value_or(0), row_double(r, 4).value_or(0)};
  });
  return out;
}

/// Deletes and rebuilds the hourly buckets from `floor_ms` on; returns {deleted, written}.
std::pair<int64_t, int64_t> rebuild_buckets(soci::session& sql, int64_t floor_ms) {
  bound_query del;
  del.sql("DELETE FROM corridor_buckets WHERE bucket_start >= ")
      .value(static_cast<long long>(floor_ms));
  const int64_t deleted = del.execute(sql);

  // Integer division floors for the non-negative timestamps Stellar has (2015 onwards); the
  // bucket expression is repeated in GROUP BY because PostgreSQL matches it textually.
  const std::string hour = std::to_string(domain::hour_ms);
  const std::string bucket = "(created_at / " + hour + ") * " + hour;
  const std::string corridor_id =
      "source_asset_code || ':' || source_asset_issuer || '->' || destination_asset_code || "
      "':' || destination_asset_issuer";
  bound_query ins;
  ins.sql(
         "INSERT INTO corridor_buckets (corridor_id, bucket_start, attempts, successful, failed, "
         "volume) SELECT ")
      .sql(corridor_id)
      .sql(", ")
      .sql(bucket)
      .sql(
          ", COUNT(*), SUM(CASE WHEN successful = 1 THEN 1 ELSE 0 END), "
          "SUM(CASE WHEN successful = 1 THEN 0 ELSE 1 END), "
          "COALESCE(SUM(CASE WHEN successful = 1 THEN amount END), 0) FROM operations WHERE "
          "created_at >= ")
      .value(static_cast<long long>(floor_ms))
      .sql(" AND ")
      .sql(payment_type_filter("type"))
      .sql(
          " AND source_asset_code IS NOT NULL AND source_asset_issuer IS NOT NULL AND "
          "destination_asset_code IS NOT NULL AND destination_asset_issuer IS NOT NULL "
          "GROUP BY ")
      .sql(corridor_id)
      .sql(", ")
      .sql(bucket);
  const int64_t written = ins.execute(sql);
  return {deleted, written};
}

/// Splits `CODE:ISSUER->CODE:ISSUER` into its four parts; false when it has another shape.
bool split_corridor_id(const std::string& id, std::string& src_code, std::string& src_issuer,
                       std::string& dst_code, std::string& dst_issuer) {
  const auto arrow = id.find("->");
  if (arrow == std::string::npos) {
    return false;
  }
  const std::string src = id.substr(0, arrow);
  const std::string dst = id.substr(arrow + 2);
  const auto a = src.find(':');
  const auto b = dst.find(':');
  if (a == std::string::npos || b == std::string::npos) {
    return false;
  }
  src_code = src.substr(0, a);
  src_issuer = src.substr(a + 1);
  dst_code = dst.substr(0, b);
  dst_issuer = dst.substr(b + 1);
  return true;
}

/// Re-sums every corridor from its buckets and writes the new or changed ones.
void update_corridors(soci::session& sql, int64_t now_ms, metrics_sync_result& result) {
  const auto before = read_corridors(sql);
  std::map<std::string, corridor_totals> after;
  bound_query q;
  q.sql(
      "SELECT corridor_id, CAST(SUM(attempts) AS BIGINT), CAST(SUM(successful) AS BIGINT), "
      "CAST(SUM(failed) AS BIGINT), CAST(SUM(volume) AS DOUBLE PRECISION) "
      "FROM corridor_buckets GROUP BY corridor_id");
  q.for_each_row(sql, [&](const soci::row& r) {
    after[row_text(r, 0).value_or("")] = {row_int(r, 1).value_or(0), row_int(r, 2).value_or(0),
                                          row_int(r, 3).value_or(0), row_double(r, 4).value_or(0)};
  });
  for (const auto& [id, totals] : after) {
    const auto old = before.find(id);
    if (old != before.end() && same_totals(old->second, totals)) {
      continue;
    }
    std::string src_code;
    std::string src_issuer;
    std::string dst_code;
    std::string dst_issuer;
    if (!split_corridor_id(id, src_code, src_issuer, dst_code, dst_issuer)) {
      continue;  // not built by this sync (buckets are keyed by the ids it writes)
    }
    std::string corridor = id;
    long long attempts = totals.attempts;
    long long successful = totals.successful;
    long long failed = totals.failed;
    double volume = totals.volume;
    long long updated = now_ms;
    nullable<double> rate(domain::success_rate(totals.successful, totals.attempts));
    sql << "INSERT INTO corridors (id, source_asset_code, source_asset_issuer, "
           "destination_asset_code, destination_asset_issuer, success_rate, total_attempts, "
           "successful, failed, volume, last_updated) VALUES (:id, :sc, :si, :dc, :di, :rate, "
           ":a, :s, :f, :v, :u) ON CONFLICT (id) DO UPDATE SET "
           "success_rate = excluded.success_rate, total_attempts = excluded.total_attempts, "
           "successful = excluded.successful, failed = excluded.failed, "
           "volume = excluded.volume, last_updated = excluded.last_updated",
        soci::use(corridor), soci::use(src_code), soci::use(src_issuer), soci::use(dst_code),
        soci::use(dst_issuer), soci::use(rate.value, rate.ind), soci::use(attempts),
        soci::use(successful), soci::use(failed), soci::use(volume), soci::use(updated);
    result.changed_corridor_ids.push_back(id);
    ++result.corridors_written;
  }
}

/// A stored health baseline.
struct health_state {
  domain::corridor_health health = domain::corridor_health::healthy;
  double success_rate = 0;
  int64_t evaluated_at = 0;
};

/// Compares each corridor's trailing-window health with its baseline; emits and stores.
void evaluate_health(soci::session& sql, int64_t now_ms, const metrics_sync_params& params,
                     const sync_event_fn& on_event, metrics_sync_result& result) {
  std::map<std::string, health_state> baseline;
  bound_query states;
  states.sql("SELECT corridor_id, health, success_rate, evaluated_at FROM corridor_health");
  states.for_each_row(sql, [&](const soci::row& r) {
    if (auto h = domain::parse_corridor_health(row_text(r, 1).value_or(""))) {
      baseline[row_text(r, 0).value_or("")] = {*h, row_double(r, 2).value_or(0),
                                               row_int(r, 3).value_or(0)};
    }
  });

  const int64_t window_start = now_ms - params.health_window_ms;
  std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> windows;
  bound_query q;
  q.sql(
       "SELECT corridor_id, CAST(SUM(attempts) AS BIGINT), CAST(SUM(successful) AS BIGINT) "
       "FROM corridor_buckets WHERE bucket_start >= ")
      .value(static_cast<long long>(window_start))
      .sql(" AND bucket_start < ")
      .value(static_cast<long long>(now_ms))
      .sql(" GROUP BY corridor_id ORDER BY corridor_id");
  q.for_each_row(sql, [&](const soci::row& r) {
    windows.push_back(
        {row_text(r, 0).value_or(""), {row_int(r, 1).value_or(0), row_int(r, 2).value_or(0)}});
  });

  for (const auto& [id, figures] : windows) {
    const auto [attempts, successful] = figures;
    const auto health = domain::classify_corridor(successful, attempts, params.health);
    if (!health) {
      continue;  // too few attempts: the baseline stays as it was
    }
    ++result.corridors_evaluated;
    const double rate = *domain::success_rate(successful, attempts);
    const auto old = baseline.find(id);
    if (old != baseline.end() && domain::health_degraded(old->second.health, *health)) {
      emit(sql, on_event, result.events, event_corridor_health_degraded,
           {{"corridor_id", id},
            {"previous_health", domain::to_string(old->second.health)},
            {"current_health", domain::to_string(*health)},
            {"previous_success_rate", old->second.success_rate},
            {"current_success_rate", rate},
            {"previous_evaluated_at", old->second.evaluated_at},
            {"attempts", attempts},
            {"successful", successful},
            {"window_ms", params.health_window_ms},
            {"window_start", window_start},
            {"window_end", now_ms}});
    }
    std::string corridor = id;
    std::string health_text(domain::to_string(*health));
    double stored_rate = rate;
    long long stored_attempts = attempts;
    long long window_ms = params.health_window_ms;
    long long evaluated_at = now_ms;
    sql << "INSERT INTO corridor_health (corridor_id, health, success_rate, attempts, "
           "window_ms, evaluated_at) VALUES (:id, :h, :r, :a, :w, :e) "
           "ON CONFLICT (corridor_id) DO UPDATE SET health = excluded.health, "
           "success_rate = excluded.success_rate, attempts = excluded.attempts, "
           "window_ms = excluded.window_ms, evaluated_at = excluded.evaluated_at",
        soci::use(corridor), soci::use(health_text), soci::use(stored_rate),
        soci::use(stored_attempts), soci::use(window_ms), soci::use(evaluated_at);
  }
}

// --- anchors --------------------------------------------------------------------------------

/// An anchor as stored before this run.
struct anchor_row {
  int64_t id = 0;
  std::string account;
  std::string status;
  bool has_score = false;
  int64_t total = 0;
  bool measured = false;  ///< some earlier run measured a status (history row with a status)
};

/// The status the API shows for a row (anchors_repo: NULL while nothing is measured).
std::optional<std::string> visible_status(bool has_score, int64_t total,
                                          const std::string& status) {
  if (!has_score && total == 0) {
    return std::nullopt;
  }
  return status;
}

void update_anchors(soci::session& sql, int64_t now_ms, const metrics_sync_params& params,
                    const sync_event_fn& on_event, metrics_sync_result& result) {
  std::vector<anchor_row> anchors;
  bound_query list;
  list.sql(
      "SELECT a.id, a.stellar_account, a.status, a.reliability_score, a.total_transactions, "
      "(SELECT COUNT(*) FROM anchor_metrics_history h WHERE h.anchor_id = a.id AND "
      "h.status IS NOT NULL) FROM anchors a ORDER BY a.id");
  list.for_each_row(sql, [&](const soci::row& r) {
    anchors.push_back({row_int(r, 0).value_or(0), row_text(r, 1).value_or(""),
                       row_text(r, 2).value_or("green"), row_double(r, 3).has_value(),
                       row_int(r, 4).value_or(0), row_int(r, 5).value_or(0) > 0});
  });

  const int64_t from = now_ms - params.anchor_window_ms;
  for (const auto& a : anchors) {
    bound_query agg;
    agg.sql(
           "SELECT COUNT(*), SUM(CASE WHEN o.successful = 1 THEN 1 ELSE 0 END), "
           "CAST(SUM(CASE WHEN o.successful = 1 THEN o.amount END) AS DOUBLE PRECISION) "
           "FROM operations o WHERE o.created_at >= ")
        .value(static_cast<long long>(from))
        .sql(" AND o.created_at < ")
        .value(static_cast<long long>(now_ms))
        .sql(" AND ")
        .sql(payment_type_filter("o.type"))
        .sql(" AND (o.from_account = ")
        .value(a.account)
        .sql(" OR o.to_account = ")
        .value(a.account)
        .sql(" OR EXISTS (SELECT 1 FROM anchor_assets aa WHERE aa.anchor_id = ")
        .value(static_cast<long long>(a.id))
        .sql(
            " AND ((aa.asset_code = o.source_asset_code AND aa.asset_issuer = "
            "o.source_asset_issuer) OR (aa.asset_code = o.destination_asset_code AND "
            "aa.asset_issuer = o.destination_asset_issuer))))");
    int64_t total = 0;
    int64_t successful = 0;
    double volume = 0;
    agg.for_each_row(sql, [&](const soci::row& r) {
      total = row_int(r, 0).value_or(0);
      successful = row_int(r, 1).value_or(0);
      volume = row_double(r, 2).value_or(0);
    });
    const auto rel = domain::assess_anchor(successful, total, params.reliability);
    const std::string new_status =
        rel.status ? std::string(domain::to_string(*rel.status)) : a.status;

    if (a.measured && rel.status && new_status != a.status) {
      emit(sql, on_event, result.events, event_anchor_status_changed,
           {{"anchor_id", a.id},
            {"stellar_account", a.account},
            {"old_status", a.status},
            {"new_status", new_status},
            {"success_rate", *rel.success_rate},
            {"reliability_score", *rel.score},
            {"total_transactions", total},
            {"window_ms", params.anchor_window_ms},
            {"window_start", from},
            {"window_end", now_ms}});
    }
    if (visible_status(a.has_score, a.total, a.status)
        != visible_status(rel.score.has_value(), total, new_status)) {
      result.status_changed_anchor_ids.push_back(a.id);
    }

    long long id = a.id;
    long long total_v = total;
    long long successful_v = successful;
    long long failed_v = total - successful;
    long long now_v = now_ms;
    std::string status_v = new_status;
    nullable<double> score(rel.score);
    sql << "UPDATE anchors SET total_transactions = :t, successful_transactions = :s, "
           "failed_transactions = :f, total_volume = :v, avg_settlement_time_ms = NULL, "
           "reliability_score = :score, status = :status, updated_at = :now WHERE id = :id",
        soci::use(total_v), soci::use(successful_v), soci::use(failed_v), soci::use(volume),
        soci::use(score.value, score.ind), soci::use(status_v), soci::use(now_v), soci::use(id);

    nullable<double> rate(rel.success_rate);
    nullable<std::string> measured_status(rel.status ? std::optional<std::string>(new_status)
                                                     : std::nullopt);
    sql << "INSERT INTO anchor_metrics_history (anchor_id, recorded_at, total_transactions, "
           "successful_transactions, failed_transactions, success_rate, volume, "
           "avg_settlement_time_ms, reliability_score, status) VALUES (:id, :at, :t, :s, :f, "
           ":rate, :v, NULL, :score, :status) ON CONFLICT (anchor_id, recorded_at) DO UPDATE "
           "SET total_transactions = excluded.total_transactions, "
           "successful_transactions = excluded.successful_transactions, "
           "failed_transactions = excluded.failed_transactions, "
           "success_rate = excluded.success_rate, volume = excluded.volume, "
           "avg_settlement_time_ms = NULL, reliability_score = excluded.reliability_score, "
           "status = excluded.status",
        soci::use(id), soci::use(now_v), soci::use(total_v), soci::use(successful_v),
        soci::use(failed_v), soci::use(rate.value, rate.ind), soci::use(volume),
        soci::use(score.value, score.ind), soci::use(measured_status.value, measured_status.ind);
    ++result.anchors_updated;
    ++result.anchor_history_rows;
  }
}

// --- pools ----------------------------------------------------------------------------------

/// Horizon's spelling of a reserve asset: `native` or `CODE:ISSUER`.
std::string horizon_asset(const domain::asset& a) {
  return a.is_native() ? std::string(domain::native_issuer) : a.id();
}

/// The reserves as the API shows them: `[{asset, amount}]` with Horizon's strings.
std::string reserves_text(const domain::liquidity_pool& pool) {
  auto out = nlohmann::json::array();
  for (const auto& r : pool.reserves) {
    out.push_back(
        {{"asset", horizon_asset(r.reserve_asset)}, {"amount", domain::format_stroops(r.amount)}});
  }
  return out.dump();
}

/// The first reserve's amount in stored reserves text, in units; nullopt when unreadable.
std::optional<double> stored_reserve_a(const std::string& text) {
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_array() || j.empty() || !j[0].is_object() || !j[0].contains("amount")
      || !j[0]["amount"].is_string()) {
    return std::nullopt;
  }
  const auto stroops = domain::parse_stroops(j[0]["amount"].get<std::string>());
  if (const auto* v = std::get_if<int64_t>(&stroops)) {
    return domain::stroops_to_units(*v);
  }
  return std::nullopt;
}

nlohmann::json optional_json(const std::optional<double>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

}  // namespace

metrics_sync_result run_metrics_sync(soci::session& sql, backend kind, int64_t now_ms,
                                     int64_t window_start_ms, const metrics_sync_params& params,
                                     const sync_event_fn& on_event) {
  const auto started = std::chrono::steady_clock::now();
  metrics_sync_result result;
  write_transaction tx(sql, kind, metrics_lock_key);
  const auto [deleted, written] = rebuild_buckets(sql, domain::hour_floor(window_start_ms));
  result.buckets_deleted = deleted;
  result.buckets_written = written;
  update_corridors(sql, now_ms, result);
  evaluate_health(sql, now_ms, params, on_event, result);
  update_anchors(sql, now_ms, params, on_event, result);
  record_success(sql, metrics_run_name, now_ms, started);
  tx.commit();

  if (!result.changed_corridor_ids.empty()) {
    result.invalidate_prefixes.emplace_back(corridors_cache_prefix);
  }
  if (result.anchors_updated > 0) {
    result.invalidate_prefixes.emplace_back(anchors_cache_prefix);
  }
  return result;
}

pool_sync_result run_pool_sync(
    soci::session& sql, backend kind, int64_t now_ms,
    const std::vector<domain::liquidity_pool>& pools,
    const std::map<std::string, std::vector<domain::trade>>& trades_by_pool,
    const pool_sync_params& params, const sync_event_fn& on_event) {
  const auto started = std::chrono::steady_clock::now();
  pool_sync_result result;
  std::set<std::string> seen;
  write_transaction tx(sql, kind, pools_lock_key);
  for (const auto& pool : pools) {
    const auto trades = trades_by_pool.find(pool.id);
    const auto figures = domain::analyse_pool(
        pool, trades == trades_by_pool.end() ? nullptr : &trades->second, now_ms);

    std::string id = pool.id;
    double previous_shares = 0;
    std::string previous_reserves;
    soci::indicator reserves_ind = soci::i_null;
    sql << "SELECT total_shares, reserves FROM liquidity_pools WHERE pool_id = :id",
        soci::into(previous_shares), soci::into(previous_reserves, reserves_ind), soci::use(id);
    const bool known = sql.got_data();

    const double shares = domain::stroops_to_units(pool.total_shares);
    const auto reserve_a = domain::reserve_a_units(pool);
    if (known
        && domain::liquidity_dropped(previous_shares, shares, params.liquidity_drop_percent)) {
      emit(sql, on_event, result.events, event_pool_liquidity_dropped,
           {{"pool_id", pool.id},
            {"previous_total_shares", previous_shares},
            {"current_total_shares", shares},
            {"previous_reserve_a",
             optional_json(reserves_ind == soci::i_ok ? stored_reserve_a(previous_reserves)
                                                      : std::nullopt)},
            {"current_reserve_a", optional_json(reserve_a)},
            {"drop_percent", *domain::drop_percent(previous_shares, shares)},
            {"threshold_percent", params.liquidity_drop_percent}});
    }

    int fee_bp = pool.fee_bp;
    std::string type = pool.type;
    std::string reserves = reserves_text(pool);
    long long trustlines = pool.total_trustlines;
    long long now_v = now_ms;
    nullable<double> tvl(figures.tvl);
    nullable<double> volume(figures.volume_24h);
    nullable<double> fees(figures.fees_24h);
    nullable<double> apy(figures.apy);
    sql << "INSERT INTO liquidity_pools (pool_id, fee_bp, type, reserves, total_shares, "
           "total_trustlines, tvl, volume_24h, fees_24h, apy, last_synced_at) VALUES (:id, "
           ":fee, :type, :reserves, :shares, :trustlines, :tvl, :volume, :fees, :apy, :now) "
           "ON CONFLICT (pool_id) DO UPDATE SET fee_bp = excluded.fee_bp, type = excluded.type, "
           "reserves = excluded.reserves, total_shares = excluded.total_shares, "
           "total_trustlines = excluded.total_trustlines, tvl = excluded.tvl, "
           "volume_24h = excluded.volume_24h, fees_24h = excluded.fees_24h, "
           "apy = excluded.apy, last_synced_at = excluded.last_synced_at",
        soci::use(id), soci::use(fee_bp), soci::use(type), soci::use(reserves), soci::use(shares),
        soci::use(trustlines), soci::use(tvl.value, tvl.ind), soci::use(volume.value, volume.ind),
        soci::use(fees.value, fees.ind), soci::use(apy.value, apy.ind), soci::use(now_v);
    sql << "INSERT INTO liquidity_pool_snapshots (pool_id, snapshot_at, reserves, "
           "total_shares, total_trustlines, tvl, volume_24h, fees_24h, apy) VALUES (:id, :at, "
           ":reserves, :shares, :trustlines, :tvl, :volume, :fees, :apy) "
           "ON CONFLICT (pool_id, snapshot_at) DO UPDATE SET reserves = excluded.reserves, "
           "total_shares = excluded.total_shares, total_trustlines = excluded.total_trustlines, "
           "tvl = excluded.tvl, volume_24h = excluded.volume_24h, "
           "fees_24h = excluded.fees_24h, apy = excluded.apy",
        soci::use(id), soci::use(now_v), soci::use(reserves), soci::use(shares),
        soci::use(trustlines), soci::use(tvl.value, tvl.ind), soci::use(volume.value, volume.ind),
        soci::use(fees.value, fees.ind), soci::use(apy.value, apy.ind);
    ++result.pools_upserted;
    ++result.snapshots_written;
    if (seen.insert(pool.id).second) {
      result.updated_pool_ids.push_back(pool.id);
    }
  }
  record_success(sql, pools_run_name, now_ms, started);
  tx.commit();
  if (result.pools_upserted > 0) {
    result.invalidate_prefixes.emplace_back(pools_cache_prefix);
  }
  return result;
}

trustline_sync_result run_trustline_sync(soci::session& sql, backend kind, int64_t now_ms,
                                         const std::vector<domain::asset_stats>& assets,
                                         const sync_event_fn& on_event) {
  const auto started = std::chrono::steady_clock::now();
  trustline_sync_result result;
  std::set<std::string> seen;
  write_transaction tx(sql, kind, trustlines_lock_key);
  for (const auto& stats : assets) {
    const auto f = domain::trustline_figures_of(stats);
    std::string code = stats.stats_asset.code;
    std::string issuer = stats.stats_asset.issuer;
    std::string type(stats.stats_asset.type());
    long long accounts = f.num_accounts;
    double amount = f.amount;
    long long claimable = f.num_claimable_balances;
    long long pools = f.num_liquidity_pools;
    int auth_required = stats.flags.auth_required ? 1 : 0;
    int auth_revocable = stats.flags.auth_revocable ? 1 : 0;
    int auth_immutable = stats.flags.auth_immutable ? 1 : 0;
    int auth_clawback = stats.flags.auth_clawback_enabled ? 1 : 0;
    long long now_v = now_ms;
    nullable<int64_t> authorized(f.authorized_accounts);
    nullable<int64_t> unauthorized(f.unauthorized_accounts);
    long long authorized_v = authorized.value;
    long long unauthorized_v = unauthorized.value;

    sql << "INSERT INTO assets (asset_code, asset_issuer, asset_type, num_accounts, amount, "
           "num_claimable_balances, num_liquidity_pools, auth_required, auth_revocable, "
           "auth_immutable, auth_clawback_enabled, last_synced_at) VALUES (:c, :i, :t, :n, :a, "
           ":cb, :lp, :ar, :arv, :ai, :ac, :now) ON CONFLICT (asset_code, asset_issuer) DO "
           "UPDATE SET asset_type = excluded.asset_type, num_accounts = excluded.num_accounts, "
           "amount = excluded.amount, num_claimable_balances = excluded.num_claimable_balances, "
           "num_liquidity_pools = excluded.num_liquidity_pools, "
           "auth_required = excluded.auth_required, auth_revocable = excluded.auth_revocable, "
           "auth_immutable = excluded.auth_immutable, "
           "auth_clawback_enabled = excluded.auth_clawback_enabled, "
           "last_synced_at = excluded.last_synced_at",
        soci::use(code), soci::use(issuer), soci::use(type), soci::use(accounts), soci::use(amount),
        soci::use(claimable), soci::use(pools), soci::use(auth_required), soci::use(auth_revocable),
        soci::use(auth_immutable), soci::use(auth_clawback), soci::use(now_v);
    sql << "INSERT INTO trustline_stats (asset_code, asset_issuer, num_accounts, "
           "authorized_accounts, unauthorized_accounts, amount, num_claimable_balances, "
           "num_liquidity_pools, updated_at) VALUES (:c, :i, :n, :au, :un, :a, :cb, :lp, :now) "
           "ON CONFLICT (asset_code, asset_issuer) DO UPDATE SET "
           "num_accounts = excluded.num_accounts, "
           "authorized_accounts = excluded.authorized_accounts, "
           "unauthorized_accounts = excluded.unauthorized_accounts, amount = excluded.amount, "
           "num_claimable_balances = excluded.num_claimable_balances, "
           "num_liquidity_pools = excluded.num_liquidity_pools, updated_at = excluded.updated_at",
        soci::use(code), soci::use(issuer), soci::use(accounts),
        soci::use(authorized_v, authorized.ind), soci::use(unauthorized_v, unauthorized.ind),
        soci::use(amount), soci::use(claimable), soci::use(pools), soci::use(now_v);
    sql << "INSERT INTO trustline_snapshots (asset_code, asset_issuer, snapshot_at, "
           "num_accounts, amount) VALUES (:c, :i, :at, :n, :a) "
           "ON CONFLICT (asset_code, asset_issuer, snapshot_at) DO UPDATE SET "
           "num_accounts = excluded.num_accounts, amount = excluded.amount",
        soci::use(code), soci::use(issuer), soci::use(now_v), soci::use(accounts),
        soci::use(amount);
    ++result.assets_upserted;
    ++result.snapshots_written;
    if (seen.insert(stats.stats_asset.id()).second) {
      result.updated_assets.push_back(stats.stats_asset.id());
    }
  }
  (void)on_event;  // no trustline event exists in the contract (see the header)
  record_success(sql, trustlines_run_name, now_ms, started);
  tx.commit();
  if (result.assets_upserted > 0) {
    result.invalidate_prefixes.emplace_back(trustlines_cache_prefix);
  }
  return result;
}

std::optional<sync_run> read_last_run(soci::session& sql, const std::string& name) {
  bound_query q;
  q.sql(
       "SELECT name, last_run_at, last_status, last_error, last_duration_ms FROM sync_runs "
       "WHERE name = ")
      .value(name);
  std::optional<sync_run> out;
  q.for_each_row(sql, [&](const soci::row& r) {
    out = sync_run{row_text(r, 0).value_or(""), row_int(r, 1), row_text(r, 2), row_text(r, 3),
                   row_int(r, 4)};
  });
  return out;
}

void record_run(soci::session& sql, const std::string& name, int64_t started_ms,
                const std::string& status, const std::optional<std::string>& error,
                int64_t duration_ms) {
  long long started = started_ms;
  long long duration = duration_ms;
  nullable<std::string> err(error);
  sql << "INSERT INTO sync_runs (name, last_run_at, last_status, last_error, last_duration_ms) "
         "VALUES (:name, :at, :status, :error, :duration) ON CONFLICT (name) DO UPDATE SET "
         "last_run_at = excluded.last_run_at, last_status = excluded.last_status, "
         "last_error = excluded.last_error, last_duration_ms = excluded.last_duration_ms",
      soci::use(name), soci::use(started), soci::use(status), soci::use(err.value, err.ind),
      soci::use(duration);
}

}  // namespace si::storage
