#include "actors/ws_hub.hpp"
#include "actors/test_hang.hpp"

#include "config/logging.hpp"
#include "net/http_server.hpp"
#include "net/prometheus.hpp"
#include "net/ws_fanout.hpp"
#include "net/router.hpp"
#include "storage/database.hpp"

#include <caf/actor_system.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <span>
#include <unordered_set>

namespace si::actors {

using std::chrono::milliseconds;

void describe_ws_metrics(net::metrics_registry& m) {
  m.describe_gauge("si_ws_connections", "Open WebSocket connections (the hub's count).");
  m.describe_counter("si_ws_messages_sent_total",
                     "Messages the hub queued to WebSocket clients, by kind (broadcast: channel "
                     "messages; control: connected, pong, confirmations, errors, shutdown).");
  m.describe_counter("si_ws_messages_dropped_total",
                     "Messages refused because the client's send queue was full.");
  m.describe_counter("si_ws_slow_client_closes_total",
                     "WebSocket clients closed because their send queue overflowed.");
  m.describe_counter("si_ws_rate_limit_closes_total",
                     "WebSocket clients closed for sending faster than WS_MESSAGE_RATE.");
  m.describe_counter("si_ws_upgrades_refused_total",
                     "WebSocket upgrades refused by the hub's admission, by reason.");
  m.describe_histogram("si_ws_fanout_seconds",
                       "Time the hub takes to queue one channel message for all its subscribers.",
                       {0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25});
  m.describe_counter("si_ws_published_total",
                     "Channel messages the broadcaster handed to the hub, by message type.");
  m.describe_counter("si_ws_payments_skipped_total",
                     "Payments not published as new_payment, by reason (catch_up: the batch was "
                     "behind the network tip; cap: over the per-batch limit).");
}

milliseconds ws_cut_after(milliseconds deadline) {
  return deadline - std::min(deadline / 5, milliseconds{500});
}

// ---------------------------------------------------------------------------------------
// ws_endpoint

namespace {

/// Constant time in the expected token's length: no early exit on the first differing byte.
bool token_matches(std::string_view given, const std::string& expected) {
  unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    diff |= static_cast<unsigned char>(expected[i] ^ (i < given.size() ? given[i] : 0));
  }
  return diff == 0;
}

}  // namespace

ws_endpoint::ws_endpoint(ws_endpoint_options options) : options_(std::move(options)) {}

net::ws_upgrade_hook ws_endpoint::hook() {
  return [self = shared_from_this()](const net::ws_upgrade_request& request) {
    return self->decide(request);
  };
}

net::ws_upgrade_decision ws_endpoint::refuse(int status, std::string_view code,
                                             std::string_view message, std::string_view reason,
                                             const net::ws_upgrade_request& request) {
  if (options_.metrics) {
    options_.metrics->counter_add("si_ws_upgrades_refused_total",
                                  {{"reason", std::string{reason}}});
  }
  auto d = net::ws_upgrade_decision::reject(status, code, message, request);
  if (status == 503) {
    d.rejection.set_header("Retry-After", "1");
  }
  return d;
}

net::ws_upgrade_decision ws_endpoint::decide(const net::ws_upgrade_request& request) {
  if (request.path != options_.path) {
    return net::ws_upgrade_decision::reject(404, "NOT_FOUND", "no WebSocket endpoint here",
                                            request);
  }
  // The token before the connection count because a refused client must not hold a slot.
  if (options_.auth_token && !options_.auth_token->empty()) {
    bool ok = false;
    if (auto query = net::parse_query(request.query)) {
      auto it = query->find("token");
      ok = it != query->end() && token_matches(it->second, *options_.auth_token);
    }
    if (!ok) {
      return refuse(401, "UNAUTHORIZED", "a valid token query parameter is required", "auth",
                    request);
    }
  }
  ws_hub_actor hub;
  {
    std::lock_guard lock(mutex_);
    if (!refusing_) {
      hub = hub_;
    }
  }
  if (!hub) {
    return refuse(503, "SERVICE_UNAVAILABLE", "the server is shutting down; retry shortly",
                  "draining", request);
  }
  if (open_.fetch_add(1) >= options_.max_connections) {
    open_.fetch_sub(1);
    return refuse(503, "TOO_MANY_CONNECTIONS",
                  "the server has no room for another WebSocket connection; retry later", "full",
                  request);
  }
  net::ws_handlers h;
  auto self = shared_from_this();
  h.on_open = [self, hub](const net::ws_connection_ptr& c) {
    {
      std::lock_guard lock(self->mutex_);
      self->live_.emplace(c->id(), c);
    }
    caf::anon_send(hub, ws_open_atom_v, c);
  };
  h.on_text = [hub](const net::ws_connection_ptr& c, std::string message) {
    caf::anon_send(hub, ws_text_atom_v, c, std::move(message));
  };
  h.on_closed = [self, hub](const net::ws_connection_ptr& c, uint16_t code, bool clean) {
    {
      std::lock_guard lock(self->mutex_);
      self->live_.erase(c->id());
    }
    // Released here, not by the hub: the count stays right whatever happens to the hub.
    self->open_.fetch_sub(1);
    caf::anon_send(hub, ws_closed_atom_v, c, code, clean);
  };
  return net::ws_upgrade_decision::accept(std::move(h));
}

std::vector<net::ws_connection_ptr> ws_endpoint::attach(ws_hub_actor hub) {
  std::vector<net::ws_connection_ptr> orphans;
  std::lock_guard lock(mutex_);
  // One lock for both: a connection opened after this reports to the new hub and is not an
  // orphan; one opened before reported to the old hub and is.
  hub_ = std::move(hub);
  refusing_ = false;
  orphans.reserve(live_.size());
  for (auto& [id, c] : live_) {
    orphans.push_back(c);
  }
  return orphans;
}

ws_hub_actor ws_endpoint::hub() const {
  std::lock_guard lock(mutex_);
  return hub_;
}

void ws_endpoint::refuse_new() {
  std::lock_guard lock(mutex_);
  refusing_ = true;
}

// ---------------------------------------------------------------------------------------
// ws_hub

namespace {

using clock_type = caf::actor_clock::clock_type;
using time_point = caf::actor_clock::time_point;

/// The subscribers of one channel. A broadcast walks them in one contiguous array (a
/// node-based map cost a cache miss per subscriber before the connection itself was touched);
/// the id index makes subscribe and unsubscribe O(1) (removal moves the last subscriber into
/// the gap: the order has no meaning).
class subscriber_set {
 public:
  void add(net::ws_connection* c) {
    if (index_.emplace(c->id(), conns_.size()).second) {
      conns_.push_back(c);
    }
  }

  void remove(uint64_t id) {
    auto it = index_.find(id);
    if (it == index_.end()) {
      return;
    }
    const auto pos = it->second;
    index_.erase(it);
    if (pos + 1 != conns_.size()) {
      conns_[pos] = conns_.back();
      index_[conns_[pos]->id()] = pos;
    }
    conns_.pop_back();
  }

  bool empty() const noexcept {
    return conns_.empty();
  }
  std::size_t size() const noexcept {
    return conns_.size();
  }
  const std::vector<net::ws_connection*>& connections() const noexcept {
    return conns_;
  }

 private:
  std::vector<net::ws_connection*> conns_;
  std::unordered_map<uint64_t, std::size_t> index_;  ///< id -> position in conns_
};

struct client {
  net::ws_connection_ptr conn;
  std::vector<std::string> channels;  ///< canonical names, sorted, unique
  double tokens = 0;                  ///< message-rate bucket
  time_point refilled{};
  bool rate_closed = false;  ///< closed by the hub for its message rate
};

struct hub_state {
  static inline const char* name = "ws_hub";
  ws_hub_options opts;
  milliseconds cut_after{0};
  std::unordered_map<uint64_t, client> clients;
  /// Every client's connection in one contiguous array, for the drain's batched calls: the
  /// map's nodes, scattered over the heap and untouched for the grace period, cost the close
  /// step a page fault in every few clients on a VM (docs/websocket-transport.md, "Close
  /// pass"). The pointers live as long as their entry in `clients`.
  subscriber_set everyone;
  /// Subscribers by channel; the pointers live as long as their entry in `clients`.
  std::unordered_map<std::string, subscriber_set> channels;
  // lifetime counters
  uint64_t opened = 0;
  uint64_t publishes = 0;
  uint64_t sent_broadcast = 0;
  uint64_t sent_control = 0;
  uint64_t dropped = 0;
  uint64_t slow_closes = 0;
  uint64_t rate_closes = 0;
  uint64_t orphans_closed = 0;
  // drain
  bool draining = false;
  bool closes_sent = false;
  bool replied = false;
  time_point drain_started{};
  uint64_t d_connections = 0;
  uint64_t d_notified = 0;
  uint64_t d_closed_cleanly = 0;
  uint64_t d_dropped = 0;
  ws_payload shutdown_message;
  std::optional<caf::typed_response_promise<std::string>> drain_promise;
  std::shared_ptr<net::http_server> server;  ///< handed over by the gateway at its drain's end
  std::shared_ptr<spdlog::logger> log = config::logger("ws_hub");
};

using self_ptr = ws_hub_actor::stateful_pointer<hub_state>;

int64_t ms_since(self_ptr self, time_point t) {
  return std::chrono::duration_cast<milliseconds>(self->clock().now() - t).count();
}

void count_sent(hub_state& st, const char* kind, uint64_t n) {
  if (n > 0 && st.opts.metrics) {
    st.opts.metrics->counter_add("si_ws_messages_sent_total", {{"kind", kind}},
                                 static_cast<double>(n));
  }
}

void set_gauge(hub_state& st) {
  if (st.opts.metrics) {
    st.opts.metrics->gauge_set("si_ws_connections", {}, static_cast<double>(st.clients.size()));
  }
}

/// A refused send: the transport closes the connection (overflow) — that client only.
void count_overflow(hub_state& st, const net::ws_connection& c) {
  ++st.dropped;
  ++st.slow_closes;
  st.log->info("websocket {} ({}): send queue full; the transport closes it", c.id(),
               c.remote_addr());
  if (st.opts.metrics) {
    st.opts.metrics->counter_add("si_ws_messages_dropped_total", {});
    st.opts.metrics->counter_add("si_ws_slow_client_closes_total", {});
  }
}

/// Sends one message of the hub's own (not a channel message) to one client.
net::ws_send_result send_control(hub_state& st, net::ws_connection& c, const nlohmann::json& m) {
  auto r = c.send(std::make_shared<const std::string>(m.dump()));
  if (r == net::ws_send_result::queued) {
    ++st.sent_control;
    count_sent(st, "control", 1);
  } else if (r == net::ws_send_result::overflow) {
    count_overflow(st, c);
  }
  return r;
}

void send_error(hub_state& st, net::ws_connection& c, std::string message) {
  send_control(st, c, {{"type", "error"}, {"message", std::move(message)}});
}

std::string counts_json(hub_state& st) {
  return nlohmann::json{{"connections", st.d_connections},
                        {"notified", st.d_notified},
                        {"closed_cleanly", st.d_closed_cleanly},
                        {"dropped", st.d_dropped},
                        {"messages_sent", st.sent_broadcast + st.sent_control},
                        {"slow_client_closes", st.slow_closes}}
      .dump();
}

void finish_drain(self_ptr self) {
  auto& st = self->state;
  if (st.replied || !st.drain_promise) {
    return;
  }
  st.replied = true;
  auto counts = counts_json(st);
  if (st.server) {
    // Stop the server after the hub's closes because stop() drops every WebSocket still
    // open; now nothing is left to drop (the HTTP side finished before the hand-over).
    st.server->stop();
    st.server.reset();
  }
  st.log->info("websocket drain finished in {} ms: {}", ms_since(self, st.drain_started), counts);
  st.drain_promise->deliver(counts);
  self->quit();
}

void subscribe(hub_state& st, client& cl, const std::vector<std::string>& names) {
  for (const auto& n : names) {
    auto at = std::lower_bound(cl.channels.begin(), cl.channels.end(), n);
    if (at == cl.channels.end() || *at != n) {
      cl.channels.insert(at, n);
      st.channels[n].add(cl.conn.get());
    }
  }
}

void unsubscribe(hub_state& st, client& cl, const std::vector<std::string>& names) {
  for (const auto& n : names) {
    auto at = std::lower_bound(cl.channels.begin(), cl.channels.end(), n);
    if (at == cl.channels.end() || *at != n) {
      continue;
    }
    cl.channels.erase(at);
    if (auto ch = st.channels.find(n); ch != st.channels.end()) {
      ch->second.remove(cl.conn->id());
      if (ch->second.empty()) {
        st.channels.erase(ch);
      }
    }
  }
}

/// subscribe / unsubscribe of valid channels (parse_ws_client_message checked each one);
/// past the channel limit nothing changes.
void on_subscription(hub_state& st, client& cl, const std::vector<std::string>& names, bool add) {
  if (add) {
    std::size_t after = cl.channels.size();
    for (const auto& n : names) {
      after += std::binary_search(cl.channels.begin(), cl.channels.end(), n) ? 0 : 1;
    }
    if (after > st.opts.max_channels) {
      send_error(st, *cl.conn,
                 "at most " + std::to_string(st.opts.max_channels) + " channels per connection");
      return;
    }
    subscribe(st, cl, names);
  } else {
    unsubscribe(st, cl, names);
  }
  send_control(st, *cl.conn,
               {{"type", "subscription_confirm"},
                {"channels", names},
                {"status", add ? "subscribed" : "unsubscribed"}});
}

/// Token bucket: `message_rate` tokens per second, holding at most `message_rate`.
bool take_token(self_ptr self, client& cl) {
  auto& st = self->state;
  auto now = self->clock().now();
  double rate = st.opts.message_rate;
  double elapsed = std::chrono::duration<double>(now - cl.refilled).count();
  cl.tokens = std::min(rate, cl.tokens + elapsed * rate);
  cl.refilled = now;
  if (cl.tokens < 1.0) {
    return false;
  }
  cl.tokens -= 1.0;
  return true;
}

void on_text(self_ptr self, const net::ws_connection_ptr& c, const std::string& text) {
  auto& st = self->state;
  auto it = st.clients.find(c->id());
  if (it == st.clients.end() || it->second.rate_closed) {
    return;  // closing: the transport already stopped delivering, these were in flight
  }
  auto& cl = it->second;
  if (!take_token(self, cl)) {
    cl.rate_closed = true;
    ++st.rate_closes;
    if (st.opts.metrics) {
      st.opts.metrics->counter_add("si_ws_rate_limit_closes_total", {});
    }
    st.log->info("websocket {} ({}): over {} messages per second; closing with 1008", c->id(),
                 c->remote_addr(), st.opts.message_rate);
    auto limit = std::to_string(st.opts.message_rate);
    send_error(st, *c, "rate limit exceeded: at most " + limit + " messages per second");
    c->close(net::ws_close::policy_violation, "rate limit exceeded");
    return;
  }
  auto m = parse_ws_client_message(text);
  switch (m.type) {
    case ws_client_message::kind::subscribe:
    case ws_client_message::kind::unsubscribe:
      on_subscription(st, cl, m.channels, m.type == ws_client_message::kind::subscribe);
      return;
    case ws_client_message::kind::ping: {
      auto stamp = std::move(m.timestamp);
      if (stamp.is_null()) {
        stamp = storage::unix_ms_now();  // no client timestamp: the server's time
      }
      send_control(st, *c, {{"type", "pong"}, {"timestamp", stamp}});
      return;
    }
    case ws_client_message::kind::invalid:
      send_error(st, *c, std::move(m.error));
      return;
  }
}

/// Every client's connection, for the drain's batched calls (which change no set).
std::span<net::ws_connection* const> all_connections(const hub_state& st) {
  return st.everyone.connections();
}

/// Drain, step 2 (the grace passed): the close frame 1001 to every client.
void send_closes(self_ptr self) {
  auto& st = self->state;
  if (st.closes_sent || st.replied) {
    return;
  }
  st.closes_sent = true;
  st.log->info("grace of {} ms over: closing {} connections with 1001", st.opts.grace.count(),
               st.clients.size());
  // One batched pass: each close frame goes out behind what is queued (server_shutdown).
  net::ws_close_all(all_connections(st), net::ws_close::going_away, "server shutting down");
}

/// Drain, step 3 (the hub's deadline): whoever has not answered is dropped.
void cut_remaining(self_ptr self) {
  auto& st = self->state;
  if (st.replied) {
    return;
  }
  if (!st.clients.empty()) {
    st.log->warn(
        "websocket deadline of {} ms passed: dropping {} connections without a close "
        "reply",
        st.cut_after.count(), st.clients.size());
    for (auto& [id, cl] : st.clients) {
      cl.conn->drop();
    }
    st.d_dropped += st.clients.size();
    st.clients.clear();
    st.everyone = {};
    st.channels.clear();
    set_gauge(st);
  }
  finish_drain(self);
}

/// Sends server_shutdown to one client (the drain's step 1); true when it was queued.
bool notify_shutdown(hub_state& st, client& cl) {
  auto r = cl.conn->send(st.shutdown_message);
  if (r == net::ws_send_result::queued) {
    ++st.sent_control;
    count_sent(st, "control", 1);
    return true;
  }
  if (r == net::ws_send_result::overflow) {
    count_overflow(st, *cl.conn);
  }
  return false;
}

ws_hub_actor::behavior_type hub_impl(self_ptr self, ws_hub_options opts) {
  auto& st = self->state;
  st.opts = std::move(opts);
  st.cut_after = ws_cut_after(st.opts.deadline);
  if (st.opts.grace + milliseconds{200} > st.cut_after) {
    st.log->warn(
        "SHUTDOWN_WS_GRACE_MS ({} ms) leaves less than 200 ms before the hub's "
        "deadline ({} ms of SHUTDOWN_WS_TIMEOUT): clients may be dropped at shutdown",
        st.opts.grace.count(), st.cut_after.count());
  }
  set_gauge(st);
  auto orphans = st.opts.endpoint->attach(caf::actor_cast<ws_hub_actor>(self));
  if (!orphans.empty()) {
    // Their subscriptions died with the previous hub: tell them to reconnect.
    st.orphans_closed = orphans.size();
    st.log->warn("closing {} connections of a previous hub with 1012", orphans.size());
    for (auto& c : orphans) {
      c->close(1012, "service restart");
    }
  }
  return {
      [=](ws_open_atom, const net::ws_connection_ptr& c) {
        auto& st = self->state;
        auto [it, fresh] = st.clients.try_emplace(c->id());
        if (!fresh) {
          return;
        }
        auto& cl = it->second;
        cl.conn = c;
        st.everyone.add(c.get());
        cl.tokens = st.opts.message_rate;
        cl.refilled = self->clock().now();
        ++st.opened;
        set_gauge(st);
        if (st.replied) {
          return;
        }
        if (st.draining) {
          // Opened while the drain runs (its upgrade was accepted just before): it gets the
          // same sequence, at the point the drain has reached.
          ++st.d_connections;
          if (!st.closes_sent) {
            st.d_notified += notify_shutdown(st, cl) ? 1 : 0;
          } else {
            c->close(net::ws_close::going_away, "server shutting down");
          }
          return;
        }
        send_control(st, *c, {{"type", "connected"}, {"connection_id", c->id()}});
      },
      [=](ws_text_atom, const net::ws_connection_ptr& c, const std::string& text) {
        if (!self->state.draining) {
          on_text(self, c, text);
        }
      },
      [=](ws_closed_atom, const net::ws_connection_ptr& c, uint16_t code, bool clean) {
        auto& st = self->state;
        auto it = st.clients.find(c->id());
        if (it == st.clients.end()) {
          return;  // never opened (handshake failed), an orphan, or dropped at the deadline
        }
        unsubscribe(st, it->second, std::vector<std::string>(it->second.channels));
        st.everyone.remove(c->id());
        st.clients.erase(it);
        set_gauge(st);
        if (st.draining && !st.replied) {
          if (clean) {
            ++st.d_closed_cleanly;
          } else {
            ++st.d_dropped;
            st.log->debug("websocket {} ended during the drain without a close handshake ({})",
                          c->id(), code);
          }
          if (st.clients.empty()) {
            finish_drain(self);
          }
        }
      },
      [=](publish_atom, const std::vector<std::string>& names,
          const ws_payload& payload) -> uint64_t {
        auto& st = self->state;
        if (st.draining || !payload) {
          return 0;  // clients were told the server is going away: no more channel traffic
        }
        ++st.publishes;
        auto started = std::chrono::steady_clock::now();
        std::vector<net::ws_connection*> merged;
        std::span<net::ws_connection* const> targets;
        if (names.size() == 1) {
          if (auto ch = st.channels.find(names.front()); ch != st.channels.end()) {
            targets = ch->second.connections();  // nothing below changes the set
          }
        } else {
          // A client subscribed to several of the channels gets the message once.
          std::unordered_set<uint64_t> seen;
          for (const auto& n : names) {
            auto ch = st.channels.find(n);
            if (ch == st.channels.end()) {
              continue;
            }
            for (auto* c : ch->second.connections()) {
              if (seen.insert(c->id()).second) {
                merged.push_back(c);
              }
            }
          }
          targets = merged;
        }
        // One batched call: the io threads are woken per chunk of connections, not per
        // connection, and start writing while the rest is being queued.
        auto r = net::ws_fanout(targets, payload);
        for (auto* c : r.overflowed) {
          count_overflow(st, *c);
        }
        const uint64_t queued = r.queued;
        st.sent_broadcast += queued;
        count_sent(st, "broadcast", queued);
        if (queued > 0 && st.opts.metrics) {
          st.opts.metrics->histogram_observe(
              "si_ws_fanout_seconds", {},
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
        }
        return queued;
      },
      [=](adopt_atom, server_lease& lease) {
        auto& st = self->state;
        if (st.server && st.server != lease.server) {
          st.server->stop();  // a previous gateway's server: nothing of it is still needed
        }
        st.server = std::move(lease.server);
      },
      [=](drain_atom) -> caf::result<std::string> {
        auto& st = self->state;
        if (ignore_drain_for_test(st.opts.test_hang_on_drain, *st.log)) {
          return self->make_response_promise<std::string>();  // never delivered
        }
        if (st.drain_promise) {
          return make_error(errc::closing, "drain already in progress");
        }
        st.drain_promise = self->make_response_promise<std::string>();
        st.draining = true;
        st.drain_started = self->clock().now();
        // Refuse upgrades before notifying because a connection admitted later would miss the
        // server_shutdown message (the gateway's closed acceptor already refuses most).
        st.opts.endpoint->refuse_new();
        st.shutdown_message = std::make_shared<const std::string>(nlohmann::json{
            {"type", "server_shutdown"},
            {"message", "the server is shutting down; reconnect shortly"},
            {"reconnect_after_ms", st.opts.reconnect_after.count()}}.dump());
        st.d_connections = st.clients.size();
        auto notified = net::ws_fanout(all_connections(st), st.shutdown_message);
        for (auto* c : notified.overflowed) {
          count_overflow(st, *c);
        }
        st.d_notified = notified.queued;
        st.sent_control += notified.queued;
        count_sent(st, "control", notified.queued);
        st.log->info(
            "drain: server_shutdown sent to {} of {} connections; close 1001 in {} ms, "
            "deadline {} ms",
            st.d_notified, st.d_connections, st.opts.grace.count(), st.cut_after.count());
        auto promise = *st.drain_promise;
        if (st.clients.empty()) {
          finish_drain(self);
          return promise;
        }
        // The close frames after the grace because clients need time to act on
        // server_shutdown (stop sending, plan the reconnect) before the socket goes. Both
        // timers count from the drain's start, not from the end of the notification pass.
        auto elapsed =
            std::chrono::duration_cast<milliseconds>(self->clock().now() - st.drain_started);
        auto close_at = std::min(st.opts.grace, st.cut_after);
        if (close_at <= elapsed) {
          send_closes(self);
        } else {
          self->delayed_send(self, close_at - elapsed, drain_step_atom_v);
        }
        self->delayed_send(self, std::max(st.cut_after - elapsed, milliseconds{0}), cut_atom_v);
        return promise;
      },
      [=](drain_step_atom) { send_closes(self); },
      [=](cut_atom) { cut_remaining(self); },
      [=](status_atom) {
        auto& st = self->state;
        std::size_t subscriptions = 0;
        for (auto& [name, subs] : st.channels) {
          subscriptions += subs.size();
        }
        return nlohmann::json{{"connections", st.clients.size()},
                              {"admitted", st.opts.endpoint->connections()},
                              {"channels", st.channels.size()},
                              {"subscriptions", subscriptions},
                              {"opened", st.opened},
                              {"publishes", st.publishes},
                              {"messages_sent", st.sent_broadcast + st.sent_control},
                              {"messages_dropped", st.dropped},
                              {"slow_client_closes", st.slow_closes},
                              {"rate_limit_closes", st.rate_closes},
                              {"orphans_closed", st.orphans_closed},
                              {"draining", st.draining}}
            .dump();
      },
  };
}

}  // namespace

ws_hub_actor spawn_ws_hub(caf::actor_system& sys, ws_hub_options opts) {
  return sys.spawn(hub_impl, std::move(opts));
}

}  // namespace si::actors
