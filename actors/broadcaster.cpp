#include "actors/broadcaster.hpp"
#include "actors/test_hang.hpp"

#include "config/logging.hpp"
#include "domain/horizon_values.hpp"
#include "net/prometheus.hpp"
#include "storage/anchors_repo.hpp"
#include "storage/corridors_repo.hpp"
#include "storage/database.hpp"
#include "storage/pools_repo.hpp"

#include <caf/actor_system.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <algorithm>
#include <unordered_map>

namespace si::actors {

channel_message make_channel_message(std::vector<std::string> channels, std::string type,
                                     int64_t now_ms, const nlohmann::json& data) {
  auto text = nlohmann::json{{"type", type}, {"timestamp", now_ms}, {"data", data}}.dump();
  return {std::move(channels), std::move(type), std::move(text)};
}

namespace {

nlohmann::json stroops_or_null(const std::optional<int64_t>& stroops) {
  return stroops ? nlohmann::json(domain::format_stroops(*stroops)) : nlohmann::json(nullptr);
}

/// `new_payment`'s data: the operation as ingested (amounts exact, in Horizon's spelling).
nlohmann::json payment_json(const domain::operation& op) {
  const auto& p = *op.payment;
  return {
      {"id", std::to_string(op.id)},  // a TOID passes 2^53: a string, as Horizon sends it
      {"type", op.type},
      {"transaction_hash", op.transaction_hash},
      {"ledger", op.id >> 32},
      {"created_at", op.created_at_ms},
      {"from", p.from},
      {"to", p.to},
      {"source_asset", p.source_asset.id()},
      {"destination_asset", p.destination_asset.id()},
      {"source_amount", stroops_or_null(p.source_amount)},
      {"amount", stroops_or_null(p.amount)},
      {"corridor_id", domain::corridor_key{p.source_asset, p.destination_asset}.id()},
  };
}

}  // namespace

payment_selection select_payments(const committed_batch& batch, int64_t network_latest,
                                  int64_t tip_window, std::size_t max, int64_t now_ms) {
  payment_selection out;
  if (!batch.batch) {
    return out;
  }
  std::vector<const domain::operation*> ops;
  for (const auto& op : batch.batch->operations) {
    if (op.transaction_successful && op.payment) {
      ops.push_back(&op);
    }
  }
  if (network_latest > 0 && network_latest - batch.last_ledger > tip_window) {
    out.skipped_catch_up = ops.size();
    return out;
  }
  if (ops.size() > max) {
    out.skipped_cap = ops.size() - max;
    ops.erase(ops.begin(), ops.begin() + static_cast<std::ptrdiff_t>(out.skipped_cap));
  }
  for (const auto* op : ops) {
    out.messages.push_back(
        make_channel_message({"payments"}, "new_payment", now_ms, payment_json(*op)));
  }
  return out;
}

std::optional<channel_message> alert_message(const storage::sync_event& event, int64_t now_ms) {
  std::vector<std::string> channels{"alerts"};
  if (event.type == storage::event_corridor_health_degraded) {
    if (auto id = event.data.find("corridor_id"); id != event.data.end() && id->is_string()) {
      channels.push_back("corridor:" + id->get<std::string>());
    }
  } else if (event.type != storage::event_anchor_status_changed
             && event.type != storage::event_pool_liquidity_dropped) {
    return std::nullopt;
  }
  return make_channel_message(std::move(channels), "health_alert", now_ms,
                              {{"event", event.type}, {"details", event.data}});
}

namespace {

struct broadcaster_state {
  static inline const char* name = "broadcaster";
  broadcaster_options opts;
  uint64_t batches = 0;
  uint64_t sync_runs = 0;
  uint64_t published = 0;
  uint64_t payments_published = 0;
  uint64_t skipped_catch_up = 0;
  uint64_t skipped_cap = 0;
  uint64_t updates_unchanged = 0;
  uint64_t lookups_failed = 0;
  uint64_t lookups_in_flight = 0;
  uint64_t lookups_abandoned = 0;
  bool draining = false;
  /// Figures last published per pool / anchor ("pool:<id>", "anchor:<id>"), without the
  /// field every run rewrites: a run that changed nothing publishes nothing.
  std::unordered_map<std::string, std::string> last_sent;
  std::shared_ptr<spdlog::logger> log = config::logger("broadcaster");
};

using self_ptr = broadcaster_actor::stateful_pointer<broadcaster_state>;

int64_t now_ms(const broadcaster_options& o) {
  return o.now_ms ? o.now_ms() : storage::unix_ms_now();
}

void publish(self_ptr self, channel_message m) {
  auto& st = self->state;
  ++st.published;
  if (st.opts.metrics) {
    st.opts.metrics->counter_add("si_ws_published_total", {{"type", m.type}});
  }
  caf::anon_send(st.opts.hub, publish_atom_v, std::move(m.channels),
                 ws_payload{std::make_shared<const std::string>(std::move(m.text))});
}

std::string counts_json(broadcaster_state& st) {
  return nlohmann::json{{"batches", st.batches},
                        {"sync_runs", st.sync_runs},
                        {"published", st.published},
                        {"payments_published", st.payments_published},
                        {"payments_skipped_catch_up", st.skipped_catch_up},
                        {"payments_skipped_cap", st.skipped_cap},
                        {"updates_unchanged", st.updates_unchanged},
                        {"lookups_failed", st.lookups_failed},
                        {"lookups_abandoned", st.lookups_abandoned}}
      .dump();
}

/// True when `item` differs from what was last published under `key` (ignoring `volatile_field`).
bool changed_since_last(broadcaster_state& st, const std::string& key, const nlohmann::json& item,
                        const char* volatile_field) {
  auto figures = item;
  figures.erase(volatile_field);
  auto text = figures.dump();
  auto& last = st.last_sent[key];
  if (last == text) {
    ++st.updates_unchanged;
    return false;
  }
  last = std::move(text);
  return true;
}

/// Publishes the rows a sync run's lookup returned.
void publish_updates(self_ptr self, const nlohmann::json& rows) {
  auto& st = self->state;
  auto now = now_ms(st.opts);
  for (const auto& c : rows.value("corridors", nlohmann::json::array())) {
    auto id = c.value("id", std::string{});
    publish(self, make_channel_message({"corridors", "corridor:" + id}, "corridor_update", now, c));
  }
  for (const auto& a : rows.value("anchors", nlohmann::json::array())) {
    auto key = "anchor:" + a.value("id", nlohmann::json(nullptr)).dump();
    if (changed_since_last(st, key, a, "updated_at")) {
      publish(self, make_channel_message({"anchors"}, "anchor_update", now, a));
    }
  }
  for (const auto& p : rows.value("pools", nlohmann::json::array())) {
    auto key = "pool:" + p.value("pool_id", std::string{});
    if (changed_since_last(st, key, p, "last_synced_at")) {
      publish(self, make_channel_message({"pools"}, "pool_update", now, p));
    }
  }
}

/// The ids of a summary list, at most `max`.
std::vector<std::string> first_ids(const nlohmann::json& summary, const char* field,
                                   std::size_t max) {
  std::vector<std::string> ids;
  auto it = summary.find(field);
  if (it == summary.end() || !it->is_array()) {
    return ids;
  }
  for (const auto& v : *it) {
    if (ids.size() == max) {
      break;
    }
    if (v.is_string()) {
      ids.push_back(v.get<std::string>());
    }
  }
  return ids;
}

/// Reads back what a sync run changed, then publishes it.
void look_up(self_ptr self, const sync_changes& changes) {
  auto& st = self->state;
  auto max = st.opts.max_updates_per_run;
  db_task task;
  if (changes.kind == sync_kind::metrics) {
    // Every metrics run recomputes every anchor: read them all (up to the cap) and publish
    // the ones whose figures moved.
    auto corridors = first_ids(changes.summary, "changed_corridor_ids", max);
    task = {"broadcast.metrics", [corridors, max](soci::session& sql) -> nlohmann::json {
              auto anchors = nlohmann::json::array();
              storage::anchor_query q;
              q.page.limit = storage::max_page_limit;
              for (long long offset = 0; anchors.size() < max;) {
                q.page.offset = offset;
                auto page = storage::list_anchors(sql, q);
                const auto& items = page.at("anchors");
                for (const auto& a : items) {
                  if (anchors.size() < max) {
                    anchors.push_back(a);
                  }
                }
                offset += static_cast<long long>(items.size());
                if (items.empty() || offset >= page.value("total", 0LL)) {
                  break;
                }
              }
              return {{"corridors", storage::corridors_by_id(sql, corridors)},
                      {"anchors", std::move(anchors)}};
            }};
  } else if (changes.kind == sync_kind::pools) {
    auto ids = first_ids(changes.summary, "updated_pool_ids", max);
    if (ids.empty()) {
      return;
    }
    task = {"broadcast.pools", [ids](soci::session& sql) -> nlohmann::json {
              auto pools = nlohmann::json::array();
              for (const auto& id : ids) {
                if (auto p = storage::get_pool(sql, id)) {
                  pools.push_back(std::move(*p));
                }
              }
              return {{"pools", std::move(pools)}};
            }};
  } else {
    return;  // trustlines: no channel carries them
  }
  if (!st.opts.db) {
    ++st.lookups_failed;
    return;
  }
  ++st.lookups_in_flight;
  self->request(st.opts.db, st.opts.db_timeout, query_atom_v, std::move(task))
      .then(
          [self](db_result& r) {
            auto& st = self->state;
            --st.lookups_in_flight;
            publish_updates(self, r.value);
          },
          [self](caf::error& err) {
            auto& st = self->state;
            --st.lookups_in_flight;
            ++st.lookups_failed;
            st.log->warn("could not read the changed rows back: {}", to_string(err));
          });
}

broadcaster_actor::behavior_type broadcaster_impl(self_ptr self, broadcaster_options opts) {
  self->state.opts = std::move(opts);
  return {
      [=](publish_atom, const committed_batch& batch) {
        auto& st = self->state;
        if (st.draining) {
          return;
        }
        ++st.batches;
        auto latest = st.opts.progress ? st.opts.progress->network_latest() : 0;
        auto sel = select_payments(batch, latest, st.opts.tip_window,
                                   st.opts.max_payments_per_batch, now_ms(st.opts));
        st.skipped_catch_up += sel.skipped_catch_up;
        st.skipped_cap += sel.skipped_cap;
        st.payments_published += sel.messages.size();
        if (auto& m = st.opts.metrics) {
          if (sel.skipped_catch_up > 0) {
            m->counter_add("si_ws_payments_skipped_total", {{"reason", "catch_up"}},
                           static_cast<double>(sel.skipped_catch_up));
          }
          if (sel.skipped_cap > 0) {
            m->counter_add("si_ws_payments_skipped_total", {{"reason", "cap"}},
                           static_cast<double>(sel.skipped_cap));
          }
        }
        for (auto& msg : sel.messages) {
          publish(self, std::move(msg));
        }
      },
      [=](publish_atom, const sync_changes& changes) {
        auto& st = self->state;
        if (st.draining) {
          return;
        }
        ++st.sync_runs;
        auto now = now_ms(st.opts);
        for (const auto& e : changes.events) {
          if (auto alert = alert_message(e, now)) {
            publish(self, std::move(*alert));
          }
        }
        look_up(self, changes);
      },
      [=](drain_atom) -> caf::result<std::string> {
        auto& st = self->state;
        if (ignore_drain_for_test(st.opts.test_hang_on_drain, *st.log)) {
          return self->make_response_promise<std::string>();  // never delivered
        }
        // Lookups in flight are abandoned: their updates would reach clients that are being
        // told the server is going away (the hub drains right after this actor).
        st.draining = true;
        st.lookups_abandoned = st.lookups_in_flight;
        auto counts = counts_json(st);
        st.log->info("drained: {}", counts);
        self->quit();
        return counts;
      },
      [=](status_atom) { return counts_json(self->state); },
      [=](caf::update_atom, const std::string& name, const caf::actor& handle) {
        if (name == "ws_hub") {
          self->state.opts.hub = caf::actor_cast<ws_hub_actor>(handle);
        } else if (name == "db") {
          self->state.opts.db = caf::actor_cast<db_actor>(handle);
        }
      },
  };
}

}  // namespace

broadcaster_actor spawn_broadcaster(caf::actor_system& sys, broadcaster_options opts) {
  return sys.spawn(broadcaster_impl, std::move(opts));
}

}  // namespace si::actors
