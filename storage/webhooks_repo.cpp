#include "storage/webhooks_repo.hpp"

#include <soci/soci.h>

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>
#include <utility>

namespace si::storage {

namespace {

bool is_postgres(soci::session& sql) {
  return sql.get_backend_name() == "postgresql";
}

/// A write transaction that takes the write lock up front on SQLite (BEGIN IMMEDIATE), so a
/// read-then-write sequence can neither interleave with another writer nor fail half-way
/// with SQLITE_BUSY on the upgrade; a plain transaction on PostgreSQL, where the statements
/// lock the rows they read (FOR UPDATE). Rolls back unless committed.
class write_transaction {
 public:
  explicit write_transaction(soci::session& sql) : sql_(sql), postgres_(is_postgres(sql)) {
    if (postgres_) {
      sql_.begin();
    } else {
      sql_ << "BEGIN IMMEDIATE";
    }
  }
  write_transaction(const write_transaction&) = delete;
  write_transaction& operator=(const write_transaction&) = delete;

  ~write_transaction() {
    if (done_) {
      return;
    }
    try {
      if (postgres_) {
        sql_.rollback();
      } else {
        sql_ << "ROLLBACK";
      }
    } catch (...) {
      // The error that brought us here is what the caller needs.
    }
  }

  void commit() {
    if (postgres_) {
      sql_.commit();
    } else {
      sql_ << "COMMIT";
    }
    done_ = true;
  }

 private:
  soci::session& sql_;
  bool postgres_;
  bool done_ = false;
};

/// At most `max_bytes` of `text` as valid UTF-8 without NUL bytes (PostgreSQL's TEXT refuses
/// both): invalid sequences and NULs become '?', and the cut falls on a character boundary.
std::string clean_text(std::string_view text, std::size_t max_bytes) {
  std::string out;
  out.reserve(std::min(text.size(), max_bytes));
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t len = 0;
    if (c == 0) {
      len = 0;
    } else if (c < 0x80) {
      len = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
    }
    bool valid = len > 0 && i + len <= text.size();
    for (std::size_t k = 1; valid && k < len; ++k) {
      valid = (static_cast<unsigned char>(text[i + k]) & 0xC0) == 0x80;
    }
    if (valid && len >= 3) {
      const auto c1 = static_cast<unsigned char>(text[i + 1]);
      // Overlong forms, UTF-16 surrogates and code points above U+10FFFF.
      valid = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0) && !(c == 0xF0 && c1 < 0x90)
              && !(c == 0xF4 && c1 >= 0x90);
    }
    const std::size_t take = valid ? len : 1;
    if (out.size() + take > max_bytes) {
      break;
    }
    if (valid) {
      out.append(text.substr(i, len));
    } else {
      out += '?';
    }
    i += take;
  }
  return out;
}

/// The longest error text stored per attempt.
constexpr std::size_t max_error_bytes = 2000;

nlohmann::json parse_json_or(const std::optional<std::string>& text, nlohmann::json fallback) {
  if (!text) {
    return fallback;
  }
  auto parsed = nlohmann::json::parse(*text, nullptr, false);
  return parsed.is_discarded() ? fallback : parsed;
}

/// The columns `webhook_json` reads, in order.
constexpr std::string_view webhook_columns =
    "id, url, event_types, filters, enabled, disabled_reason, disabled_at, created_at, "
    "updated_at";

nlohmann::json webhook_json(const soci::row& r) {
  nlohmann::json out = nlohmann::json::object();
  out["id"] = json_text(r, 0);
  out["url"] = json_text(r, 1);
  out["event_types"] = parse_json_or(row_text(r, 2), nlohmann::json::array());
  out["filters"] = parse_json_or(row_text(r, 3), nlohmann::json::object());
  out["enabled"] = row_int(r, 4).value_or(0) != 0;
  out["disabled_reason"] = json_text(r, 5);
  out["disabled_at"] = json_int(r, 6);
  out["created_at"] = json_int(r, 7);
  out["updated_at"] = json_int(r, 8);
  return out;
}

std::optional<nlohmann::json> find_webhook(soci::session& sql, const std::string& id) {
  std::optional<nlohmann::json> found;
  bound_query q;
  q.sql("SELECT ").sql(webhook_columns).sql(" FROM webhooks WHERE id = ").value(id);
  q.for_each_row(sql, [&](const soci::row& r) { found = webhook_json(r); });
  return found;
}

void insert_outbox(soci::session& sql, const std::string& event_id, std::string_view type,
                   const std::string& body, long long now_ms) {
  const std::string type_text(type);
  // Fanned out in this same statement sequence, so it is dispatched when it is written.
  sql << "INSERT INTO webhook_outbox (id, type, payload, created_at, dispatched_at) "
         "VALUES (:id, :type, :payload, :created_at, :dispatched_at)",
      soci::use(event_id), soci::use(type_text), soci::use(body), soci::use(now_ms),
      soci::use(now_ms);
}

/// Queues one pending delivery of `event_id` to `webhook_id`, due at `now_ms`.
long long insert_delivery(soci::session& sql, const std::string& webhook_id,
                          const std::string& event_id, std::string_view type, long long now_ms) {
  bound_query q;
  q.sql(
       "INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, status, attempts, "
       "next_attempt_at, created_at, updated_at) VALUES (")
      .value(webhook_id)
      .sql(", ")
      .value(event_id)
      .sql(", ")
      .value(std::string(type))
      .sql(", 'pending', 0, ")
      .value(now_ms)
      .sql(", ")
      .value(now_ms)
      .sql(", ")
      .value(now_ms)
      .sql(") ON CONFLICT (webhook_id, event_id) DO NOTHING");
  return q.execute(sql);
}

void check_event(std::string_view type, const nlohmann::json& data) {
  if (!domain::is_webhook_event_type(type)) {
    throw std::invalid_argument("unknown webhook event type '" + std::string(type.substr(0, 64))
                                + "'");
  }
  if (!data.is_object()) {
    throw std::invalid_argument("webhook event data must be a JSON object");
  }
}

std::optional<delivery_status> parse_status(std::string_view text) {
  if (text == "pending") {
    return delivery_status::pending;
  }
  if (text == "delivered") {
    return delivery_status::delivered;
  }
  if (text == "failed") {
    return delivery_status::failed;
  }
  return std::nullopt;
}

}  // namespace

// -- subscriptions -----------------------------------------------------------------------------

create_webhook_result create_webhook(soci::session& sql, const new_webhook& hook,
                                     const domain::secret_cipher* cipher, long long now_ms) {
  if (hook.url.empty()) {
    return field_error{"url", "url is required"};
  }
  auto types = domain::parse_event_types(hook.event_types);
  if (auto* error = std::get_if<std::string>(&types)) {
    return field_error{"event_types", *error};
  }
  auto filters = domain::parse_filters(hook.filters);
  if (auto* error = std::get_if<std::string>(&filters)) {
    return field_error{"filters", *error};
  }
  const std::string id = domain::new_webhook_id(now_ms);
  const std::string secret = domain::generate_webhook_secret();
  const std::string stored_secret = domain::store_webhook_secret(cipher, secret, id);
  const nlohmann::json types_json = std::get<std::vector<std::string>>(types);
  const std::string types_text = types_json.dump();
  const std::string filters_text = std::get<nlohmann::json>(filters).dump();
  const std::string url = hook.url;
  sql << "INSERT INTO webhooks (id, url, event_types, filters, secret, enabled, created_at, "
         "updated_at) VALUES (:id, :url, :types, :filters, :secret, 1, :created, :updated)",
      soci::use(id), soci::use(url), soci::use(types_text), soci::use(filters_text),
      soci::use(stored_secret), soci::use(now_ms), soci::use(now_ms);
  nlohmann::json out = nlohmann::json::object();
  out["id"] = id;
  out["url"] = url;
  out["event_types"] = types_json;
  out["filters"] = std::get<nlohmann::json>(filters);
  out["enabled"] = true;
  out["disabled_reason"] = nullptr;
  out["disabled_at"] = nullptr;
  out["secret"] = secret;
  out["created_at"] = now_ms;
  out["updated_at"] = now_ms;
  return out;
}

nlohmann::json list_webhooks(soci::session& sql, page_request page) {
  nlohmann::json items = nlohmann::json::array();
  bound_query q;
  q.sql("SELECT ").sql(webhook_columns).sql(" FROM webhooks ORDER BY created_at DESC, id DESC");
  append_page(q, page);
  q.for_each_row(sql, [&](const soci::row& r) { items.push_back(webhook_json(r)); });
  bound_query count;
  count.sql("SELECT COUNT(*) FROM webhooks");
  nlohmann::json out = nlohmann::json::object();
  out["webhooks"] = std::move(items);
  out["total"] = count.scalar_int(sql);
  return out;
}

std::optional<nlohmann::json> get_webhook(soci::session& sql, const std::string& id) {
  return find_webhook(sql, id);
}

bool delete_webhook(soci::session& sql, const std::string& id) {
  // Explicit deletes rather than relying on ON DELETE CASCADE alone: a SQLite connection
  // opened without foreign_keys=ON would otherwise leave orphans.
  write_transaction tx(sql);
  bound_query attempts;
  attempts
      .sql(
          "DELETE FROM webhook_attempts WHERE delivery_id IN "
          "(SELECT id FROM webhook_deliveries WHERE webhook_id = ")
      .value(id)
      .sql(")");
  attempts.execute(sql);
  bound_query deliveries;
  deliveries.sql("DELETE FROM webhook_deliveries WHERE webhook_id = ").value(id);
  deliveries.execute(sql);
  bound_query hook;
  hook.sql("DELETE FROM webhooks WHERE id = ").value(id);
  const long long removed = hook.execute(sql);
  tx.commit();
  return removed > 0;
}

bool set_webhook_enabled(soci::session& sql, const std::string& id, bool enabled,
                         const std::string& reason, long long now_ms) {
  bound_query q;
  if (enabled) {
    q.sql(
         "UPDATE webhooks SET enabled = 1, disabled_reason = NULL, disabled_at = NULL, "
         "updated_at = ")
        .value(now_ms);
  } else {
    q.sql("UPDATE webhooks SET enabled = 0, disabled_reason = ")
        .value(clean_text(reason, max_error_bytes))
        .sql(", disabled_at = ")
        .value(now_ms)
        .sql(", updated_at = ")
        .value(now_ms);
  }
  q.sql(" WHERE id = ").value(id);
  return q.execute(sql) > 0;
}

// -- the outbox --------------------------------------------------------------------------------

enqueued_event enqueue_event(soci::session& sql, std::string_view type, const nlohmann::json& data,
                             long long now_ms) {
  check_event(type, data);
  enqueued_event out;
  out.event_id = domain::new_event_id(now_ms);
  insert_outbox(sql, out.event_id, type, domain::delivery_body(type, now_ms, data), now_ms);

  // Candidates by a substring of the stored JSON array (LIKE's `_` may over-match, never
  // under-match), then the exact subscription and filter check here. Collected first so no
  // statement is open while the deliveries are inserted.
  std::vector<std::string> targets;
  bound_query q;
  q.sql("SELECT id, event_types, filters FROM webhooks WHERE enabled = 1 AND event_types LIKE ")
      .value("%" + nlohmann::json(std::string(type)).dump() + "%")
      .sql(" ORDER BY id");
  q.for_each_row(sql, [&](const soci::row& r) {
    const auto types = parse_json_or(row_text(r, 1), nlohmann::json::array());
    const auto filters = parse_json_or(row_text(r, 2), nlohmann::json());
    if (!types.is_array() || !filters.is_object()) {
      return;  // a row not written by create_webhook: it cannot be matched
    }
    const bool subscribed = std::any_of(types.begin(), types.end(), [&](const auto& t) {
      return t.is_string() && t.template get_ref<const std::string&>() == type;
    });
    if (subscribed && domain::filters_match(filters, data)) {
      targets.push_back(row_text(r, 0).value_or(""));
    }
  });
  for (const auto& webhook_id : targets) {
    out.deliveries += insert_delivery(sql, webhook_id, out.event_id, type, now_ms);
  }
  return out;
}

enqueued_event publish_event(soci::session& sql, std::string_view type, const nlohmann::json& data,
                             long long now_ms) {
  check_event(type, data);
  write_transaction tx(sql);
  auto out = enqueue_event(sql, type, data, now_ms);
  tx.commit();
  return out;
}

bool has_subscribers(soci::session& sql, std::string_view type) {
  // The same candidate filter as enqueue_event, then the exact check on the few rows found.
  bool found = false;
  std::string pattern = "%";
  pattern += nlohmann::json(std::string(type)).dump();
  pattern += '%';
  bound_query q;
  q.sql("SELECT event_types FROM webhooks WHERE enabled = 1 AND event_types LIKE ")
      .value(std::move(pattern));
  q.for_each_row(sql, [&](const soci::row& r) {
    const auto types = parse_json_or(row_text(r, 0), nlohmann::json::array());
    if (found || !types.is_array()) {
      return;
    }
    found = std::any_of(types.begin(), types.end(), [&](const auto& t) {
      return t.is_string() && t.template get_ref<const std::string&>() == type;
    });
  });
  return found;
}

std::optional<enqueued_event> enqueue_test_event(soci::session& sql, const std::string& webhook_id,
                                                 long long now_ms) {
  write_transaction tx(sql);
  if (!find_webhook(sql, webhook_id)) {
    return std::nullopt;
  }
  nlohmann::json data = nlohmann::json::object();
  data["webhook_id"] = webhook_id;
  data["message"] = "This is a test event from stellar-insights.";
  enqueued_event out;
  out.event_id = domain::new_event_id(now_ms);
  insert_outbox(sql, out.event_id, "test", domain::delivery_body("test", now_ms, data), now_ms);
  out.deliveries = insert_delivery(sql, webhook_id, out.event_id, "test", now_ms);
  tx.commit();
  return out;
}

// -- the delivery queue ------------------------------------------------------------------------

std::string_view to_string(delivery_status status) {
  switch (status) {
    case delivery_status::pending:
      return "pending";
    case delivery_status::delivered:
      return "delivered";
    case delivery_status::failed:
      return "failed";
  }
  return "pending";
}

std::vector<claimed_delivery> claim_due(soci::session& sql, long long now_ms, int limit,
                                        long long lease_ms, const domain::secret_cipher* cipher,
                                        const std::vector<std::string>& skip_webhooks) {
  if (lease_ms <= 0) {
    throw std::invalid_argument("claim_due needs a positive lease (lease_ms > 0)");
  }
  limit = std::clamp(limit, 1, max_claim_batch);
  const long long until = now_ms + lease_ms;
  const bool postgres = is_postgres(sql);

  write_transaction tx(sql);
  std::vector<claimed_delivery> candidates;
  std::vector<std::string> stored_secrets;
  bound_query q;
  q.sql(
       "SELECT d.id, d.webhook_id, w.url, w.secret, d.event_id, d.event_type, o.payload, "
       "d.attempts, d.created_at FROM webhook_deliveries d "
       "JOIN webhooks w ON w.id = d.webhook_id JOIN webhook_outbox o ON o.id = d.event_id "
       "WHERE d.status = 'pending' AND w.enabled = 1 AND d.next_attempt_at <= ")
      .value(now_ms)
      .sql(" AND (d.claimed_until IS NULL OR d.claimed_until <= ")
      .value(now_ms)
      .sql(")");
  if (!skip_webhooks.empty()) {
    q.sql(" AND d.webhook_id NOT IN (");
    for (std::size_t i = 0; i < skip_webhooks.size(); ++i) {
      q.sql(i == 0 ? "" : ", ").value(skip_webhooks[i]);
    }
    q.sql(")");
  }
  q.sql(" ORDER BY d.next_attempt_at, d.id LIMIT ").value(static_cast<long long>(limit));
  if (postgres) {
    // Only the delivery rows are locked (not the webhook or outbox rows they join), and rows
    // another dispatcher is claiming right now are skipped rather than waited for.
    q.sql(" FOR UPDATE OF d SKIP LOCKED");
  }
  q.for_each_row(sql, [&](const soci::row& r) {
    claimed_delivery d;
    d.delivery_id = row_int(r, 0).value_or(0);
    d.webhook_id = row_text(r, 1).value_or("");
    d.url = row_text(r, 2).value_or("");
    stored_secrets.push_back(row_text(r, 3).value_or(""));
    d.event_id = row_text(r, 4).value_or("");
    d.event_type = row_text(r, 5).value_or("");
    d.body = row_text(r, 6).value_or("");
    d.attempts = static_cast<int>(row_int(r, 7).value_or(0));
    d.created_at = row_int(r, 8).value_or(0);
    d.claimed_until = until;
    candidates.push_back(std::move(d));
  });

  // One UPDATE for the batch, re-checking "still pending and unclaimed" in the statement
  // itself. The candidates are locked (PostgreSQL: FOR UPDATE OF d; SQLite: the write lock of
  // BEGIN IMMEDIATE), so it claims them all; should it ever not, the rows that carry this
  // claim's token are read back and only those are returned.
  std::vector<bool> won(candidates.size(), true);
  if (!candidates.empty()) {
    auto in_list = [&](bound_query& q) {
      q.sql(" id IN (");
      for (std::size_t i = 0; i < candidates.size(); ++i) {
        q.sql(i == 0 ? "" : ", ").value(candidates[i].delivery_id);
      }
      q.sql(")");
    };
    bound_query claim;
    claim.sql("UPDATE webhook_deliveries SET claimed_until = ")
        .value(until)
        .sql(", updated_at = ")
        .value(now_ms)
        .sql(" WHERE status = 'pending' AND (claimed_until IS NULL OR claimed_until <= ")
        .value(now_ms)
        .sql(") AND");
    in_list(claim);
    if (claim.execute(sql) != static_cast<long long>(candidates.size())) {
      std::set<long long> mine;
      bound_query check;
      check.sql("SELECT id FROM webhook_deliveries WHERE claimed_until = ")
          .value(until)
          .sql(" AND");
      in_list(check);
      check.for_each_row(sql, [&](const soci::row& r) { mine.insert(row_int(r, 0).value_or(0)); });
      for (std::size_t i = 0; i < candidates.size(); ++i) {
        won[i] = mine.count(candidates[i].delivery_id) != 0;
      }
    }
  }

  std::vector<claimed_delivery> claimed;
  // A batch often holds many deliveries of one webhook: open each stored secret once.
  std::map<std::pair<std::string, std::string>, std::variant<std::string, std::string>> opened;
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    if (!won[i]) {
      continue;
    }
    auto& d = candidates[i];
    auto key = std::make_pair(d.webhook_id, stored_secrets[i]);
    auto it = opened.find(key);
    if (it == opened.end()) {
      std::variant<std::string, std::string> result;
      try {
        result.emplace<0>(domain::load_webhook_secret(cipher, stored_secrets[i], d.webhook_id));
      } catch (const domain::webhook_crypto_error& e) {
        result.emplace<1>(e.what());
      }
      it = opened.emplace(std::move(key), std::move(result)).first;
    }
    if (it->second.index() == 0) {
      d.secret = std::get<0>(it->second);
    } else {
      d.secret.clear();
      d.secret_error = std::get<1>(it->second);
    }
    claimed.push_back(std::move(d));
  }
  tx.commit();
  return claimed;
}

namespace {

/// record_attempt's work, inside the caller's write transaction.
std::optional<attempt_outcome> record_in_transaction(soci::session& sql,
                                                     const attempt_report& report,
                                                     const delivery_policy& policy,
                                                     const domain::unit_random& random) {
  std::optional<delivery_status> status;
  long long attempts = 0;
  std::optional<long long> claimed_until;
  long long created_at = 0;
  std::string webhook_id;
  bound_query read;
  read.sql(
          "SELECT status, attempts, claimed_until, created_at, webhook_id FROM "
          "webhook_deliveries WHERE id = ")
      .value(report.delivery_id);
  if (is_postgres(sql)) {
    read.sql(" FOR UPDATE");
  }
  bool found = false;
  read.for_each_row(sql, [&](const soci::row& r) {
    found = true;
    status = parse_status(row_text(r, 0).value_or(""));
    attempts = row_int(r, 1).value_or(0);
    claimed_until = row_int(r, 2);
    created_at = row_int(r, 3).value_or(0);
    webhook_id = row_text(r, 4).value_or("");
  });
  if (!found) {
    return std::nullopt;
  }
  if (!status) {
    throw std::runtime_error("webhook delivery " + std::to_string(report.delivery_id)
                             + " has an unknown status");
  }

  attempt_outcome out;
  out.attempt = static_cast<int>(attempts + 1);
  out.status = *status;
  out.held_claim = *status == delivery_status::pending && claimed_until
                   && *claimed_until == report.claimed_until;

  // The attempt row, whatever happens to the delivery.
  const int attempt = out.attempt;
  const int code = report.status_code.value_or(0);
  soci::indicator code_ind = report.status_code ? soci::i_ok : soci::i_null;
  const std::string error = report.error ? clean_text(*report.error, max_error_bytes) : "";
  soci::indicator error_ind = report.error ? soci::i_ok : soci::i_null;
  const long long delivery_id = report.delivery_id;
  const long long attempted_at = report.attempted_at;
  const long long duration = std::max(0LL, report.duration_ms);
  sql << "INSERT INTO webhook_attempts (delivery_id, attempt, attempted_at, status_code, error, "
         "duration_ms) VALUES (:delivery, :attempt, :at, :code, :error, :duration)",
      soci::use(delivery_id), soci::use(attempt), soci::use(attempted_at),
      soci::use(code, code_ind), soci::use(error, error_ind), soci::use(duration);

  const bool success = report.status_code && domain::is_delivery_success(*report.status_code);
  const bool gone = report.status_code && domain::disables_webhook(*report.status_code);
  bool clear_claim = false;
  if (*status == delivery_status::pending) {
    if (success) {
      out.status = delivery_status::delivered;
      clear_claim = true;
    } else if (gone) {
      out.status = delivery_status::failed;
      clear_claim = true;
    } else if (out.held_claim) {
      const bool too_many = out.attempt >= policy.max_attempts;
      const bool too_old = report.attempted_at - created_at > policy.max_age_ms;
      if (too_many || too_old) {
        out.status = delivery_status::failed;
      } else {
        out.next_attempt_at =
            report.attempted_at + domain::retry_delay_ms(policy.backoff, out.attempt, random);
      }
      clear_claim = true;
    }
  } else if (*status == delivery_status::failed && success) {
    // A late success (e.g. from a dispatcher whose lease had expired): the receiver has it.
    out.status = delivery_status::delivered;
  }

  bound_query update;
  update.sql("UPDATE webhook_deliveries SET attempts = ")
      .value(attempts + 1)
      .sql(", status = ")
      .value(std::string(to_string(out.status)));
  if (*status == delivery_status::pending) {
    // Terminal deliveries keep the last status/error that decided them.
    if (report.status_code) {
      update.sql(", last_status_code = ").value(static_cast<long long>(*report.status_code));
    } else {
      update.sql(", last_status_code = NULL");
    }
    if (report.error) {
      update.sql(", last_error = ").value(error);
    } else {
      update.sql(", last_error = NULL");
    }
  }
  if (out.next_attempt_at) {
    update.sql(", next_attempt_at = ").value(*out.next_attempt_at);
  }
  if (clear_claim) {
    update.sql(", claimed_until = NULL");
  }
  update.sql(", updated_at = ").value(report.attempted_at).sql(" WHERE id = ").value(delivery_id);
  update.execute(sql);

  if (gone) {
    bound_query disable;
    disable
        .sql(
            "UPDATE webhooks SET enabled = 0, disabled_reason = 'endpoint answered 410 Gone', "
            "disabled_at = ")
        .value(report.attempted_at)
        .sql(", updated_at = ")
        .value(report.attempted_at)
        .sql(" WHERE id = ")
        .value(webhook_id)
        .sql(" AND enabled = 1");
    out.webhook_disabled = disable.execute(sql) > 0;
  }
  return out;
}

}  // namespace

std::optional<attempt_outcome> record_attempt(soci::session& sql, const attempt_report& report,
                                              const delivery_policy& policy,
                                              const domain::unit_random& random) {
  write_transaction tx(sql);
  auto out = record_in_transaction(sql, report, policy, random);
  tx.commit();
  return out;
}

std::vector<std::optional<attempt_outcome>> record_attempts(
    soci::session& sql, const std::vector<attempt_report>& reports, const delivery_policy& policy,
    const domain::unit_random& random) {
  std::vector<std::optional<attempt_outcome>> out;
  if (reports.empty()) {
    return out;
  }
  out.reserve(reports.size());
  write_transaction tx(sql);
  for (const auto& report : reports) {
    out.push_back(record_in_transaction(sql, report, policy, random));
  }
  tx.commit();
  return out;
}

long long release_claims(soci::session& sql, const std::vector<long long>& ids, long long now_ms) {
  if (ids.empty()) {
    return 0;
  }
  write_transaction tx(sql);
  long long released = 0;
  for (const long long id : ids) {
    bound_query q;
    q.sql("UPDATE webhook_deliveries SET claimed_until = NULL, updated_at = ")
        .value(now_ms)
        .sql(" WHERE id = ")
        .value(id)
        .sql(" AND status = 'pending' AND claimed_until IS NOT NULL");
    released += q.execute(sql);
  }
  tx.commit();
  return released;
}

std::optional<nlohmann::json> deliveries_of(soci::session& sql, const std::string& webhook_id,
                                            page_request page) {
  if (!find_webhook(sql, webhook_id)) {
    return std::nullopt;
  }
  nlohmann::json items = nlohmann::json::array();
  std::vector<long long> ids;
  bound_query q;
  q.sql(
       "SELECT id, event_id, event_type, status, attempts, next_attempt_at, claimed_until, "
       "last_status_code, last_error, created_at, updated_at FROM webhook_deliveries "
       "WHERE webhook_id = ")
      .value(webhook_id)
      .sql(" ORDER BY created_at DESC, id DESC");
  append_page(q, page);
  q.for_each_row(sql, [&](const soci::row& r) {
    nlohmann::json d = nlohmann::json::object();
    d["id"] = json_int(r, 0);
    d["event_id"] = json_text(r, 1);
    d["event_type"] = json_text(r, 2);
    d["status"] = json_text(r, 3);
    d["attempts"] = json_int(r, 4);
    d["next_attempt_at"] = json_int(r, 5);
    d["claimed_until"] = json_int(r, 6);
    d["last_status_code"] = json_int(r, 7);
    d["last_error"] = json_text(r, 8);
    d["created_at"] = json_int(r, 9);
    d["updated_at"] = json_int(r, 10);
    d["attempt_log"] = nlohmann::json::array();
    ids.push_back(row_int(r, 0).value_or(0));
    items.push_back(std::move(d));
  });

  if (!ids.empty()) {
    bound_query a;
    a.sql(
        "SELECT delivery_id, attempt, attempted_at, status_code, error, duration_ms "
        "FROM webhook_attempts WHERE delivery_id IN (");
    for (std::size_t i = 0; i < ids.size(); ++i) {
      a.sql(i == 0 ? "" : ", ").value(ids[i]);
    }
    a.sql(") ORDER BY delivery_id, attempt");
    a.for_each_row(sql, [&](const soci::row& r) {
      const long long delivery = row_int(r, 0).value_or(0);
      const auto pos = std::find(ids.begin(), ids.end(), delivery);
      if (pos == ids.end()) {
        return;
      }
      nlohmann::json entry = nlohmann::json::object();
      entry["attempt"] = json_int(r, 1);
      entry["attempted_at"] = json_int(r, 2);
      entry["status_code"] = json_int(r, 3);
      entry["error"] = json_text(r, 4);
      entry["duration_ms"] = json_int(r, 5);
      items[static_cast<std::size_t>(pos - ids.begin())]["attempt_log"].push_back(std::move(entry));
    });
  }

  bound_query count;
  count.sql("SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = ").value(webhook_id);
  nlohmann::json out = nlohmann::json::object();
  out["webhook_id"] = webhook_id;
  out["deliveries"] = std::move(items);
  out["total"] = count.scalar_int(sql);
  return out;
}

webhook_delivery_stats delivery_stats(soci::session& sql, long long now_ms) {
  webhook_delivery_stats out;
  bound_query by_status;
  by_status.sql("SELECT status, COUNT(*) FROM webhook_deliveries GROUP BY status");
  by_status.for_each_row(sql, [&](const soci::row& r) {
    const auto status = parse_status(row_text(r, 0).value_or(""));
    const long long n = row_int(r, 1).value_or(0);
    if (status == delivery_status::pending) {
      out.pending = n;
    } else if (status == delivery_status::delivered) {
      out.delivered = n;
    } else if (status == delivery_status::failed) {
      out.failed = n;
    }
  });
  out.queue_depth = out.pending;

  bound_query in_flight;
  in_flight
      .sql(
          "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending' "
          "AND claimed_until > ")
      .value(now_ms);
  out.in_flight = in_flight.scalar_int(sql);

  bound_query due;
  due.sql(
         "SELECT COUNT(*) FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id "
         "WHERE d.status = 'pending' AND w.enabled = 1 AND d.next_attempt_at <= ")
      .value(now_ms)
      .sql(" AND (d.claimed_until IS NULL OR d.claimed_until <= ")
      .value(now_ms)
      .sql(")");
  out.due = due.scalar_int(sql);

  bound_query oldest;
  oldest.sql("SELECT MIN(created_at) FROM webhook_deliveries WHERE status = 'pending'");
  oldest.for_each_row(sql, [&](const soci::row& r) {
    if (const auto created = row_int(r, 0)) {
      out.oldest_pending_age_ms = std::max(0LL, now_ms - *created);
    }
  });
  return out;
}

webhook_delivery_stats pending_stats(soci::session& sql, long long now_ms) {
  webhook_delivery_stats out;
  // One range of the (status, created_at) index: O(pending), whatever the history holds.
  bound_query q;
  q.sql("SELECT COUNT(*), MIN(created_at) FROM webhook_deliveries WHERE status = 'pending'");
  q.for_each_row(sql, [&](const soci::row& r) {
    out.pending = row_int(r, 0).value_or(0);
    if (const auto created = row_int(r, 1)) {
      out.oldest_pending_age_ms = std::max(0LL, now_ms - *created);
    }
  });
  out.queue_depth = out.pending;
  return out;
}

nlohmann::json to_json(const webhook_delivery_stats& stats) {
  nlohmann::json out = nlohmann::json::object();
  out["pending"] = stats.pending;
  out["delivered"] = stats.delivered;
  out["failed"] = stats.failed;
  out["queue_depth"] = stats.queue_depth;
  out["in_flight"] = stats.in_flight;
  out["due"] = stats.due;
  out["oldest_pending_age_ms"] = stats.oldest_pending_age_ms
                                     ? nlohmann::json(*stats.oldest_pending_age_ms)
                                     : nlohmann::json(nullptr);
  return out;
}

}  // namespace si::storage
