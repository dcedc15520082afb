#include "actors/http_gateway.hpp"
#include "actors/test_hang.hpp"

#include "actors/http_gateway_routes.hpp"
#include "actors/ws_hub.hpp"
#include "config/logging.hpp"
#include "net/http_server.hpp"
#include "net/prometheus.hpp"
#include "net/router.hpp"
#include "storage/shutdown_reports.hpp"

#include <caf/actor_system.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include <nlohmann/json.hpp>

#include <soci/soci.h>

#include <thread>

namespace si::actors {

using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

void describe_http_metrics(net::metrics_registry& m) {
  m.describe_counter("si_http_requests_total", "HTTP requests answered, by route and status.");
  m.describe_histogram("si_http_request_duration_seconds",
                       "Time from a request's first byte to its response, by route.",
                       {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
  m.describe_gauge("si_http_in_flight_requests", "Requests read whose response is not written.");
  m.describe_gauge("si_http_open_connections", "Open HTTP connections.");
  m.describe_counter("si_cache_hits_total", "Cache lookups that found a value.");
  m.describe_counter("si_cache_misses_total", "Cache lookups that found nothing.");
  m.describe_counter("si_cache_invalidations_total", "Cache keys removed by invalidation.");
  m.describe_gauge("si_process_uptime_seconds", "Seconds since the server started.");
  // WebSocket transport counters (net/), mirrored by /metrics.
  m.describe_gauge("si_ws_transport_open_connections",
                   "WebSocket connections open in the transport (101 sent, not ended).");
  m.describe_counter("si_ws_transport_accepted_total", "WebSocket upgrades completed (101 sent).");
  m.describe_counter("si_ws_transport_upgrades_rejected_total",
                     "WebSocket upgrade requests answered with an error status.");
  m.describe_counter("si_ws_transport_messages_written_total",
                     "WebSocket messages written to clients.");
  m.describe_counter("si_ws_transport_messages_received_total",
                     "WebSocket text messages received from clients.");
  m.describe_counter("si_ws_transport_messages_dropped_total",
                     "WebSocket messages refused or discarded by send-queue overflows.");
  m.describe_counter("si_ws_transport_close_frames_written_total",
                     "Close frames the server wrote whole (the shutdown's 1001 included).");
  m.describe_counter("si_ws_transport_closes_total",
                     "WebSocket connections the transport closed itself, by reason.");
}

namespace {

struct gateway_state {
  static inline const char* name = "http_gateway";
  http_gateway_options opts;
  /// Shared: at the end of the drain it is handed to the ws_hub (see finish_drain).
  std::shared_ptr<net::http_server> server;
  net::router routes;
  steady::time_point started = steady::now();
  bool draining = false;
  bool cutting = false;
  bool replied = false;
  bool drain_requested = false;  ///< a drain request arrived (even one TEST_HANG_ON_DRAIN ignores)
  steady::time_point drain_started{};
  uint64_t cut = 0;
  uint64_t writes_refused = 0;
  std::optional<caf::typed_response_promise<std::string>> drain_promise;
  std::shared_ptr<spdlog::logger> log = config::logger("http_gateway");
  upstream up;

  /// Killed by the supervisor after a drain request but before its reply (timed_out or
  /// forced): ends the HTTP side as the drain's cut would, and hands the server to the ws_hub
  /// as finish_drain would. Before the server goes because its WebSockets are the hub's to
  /// close (server_shutdown, then 1001): dropping the server here would cut every one of them
  /// without a close frame. Outside a shutdown (a crash the supervisor restarts) the server is
  /// stopped with the state, so that the new gateway can bind the port again.
  ~gateway_state() {
    auto hub = opts.websocket ? opts.websocket->hub() : ws_hub_actor{};
    if (!drain_requested || replied || !server || !hub) {
      return;
    }
    server->close_acceptor();
    server->begin_drain();
    auto cut_now = server->cut_remaining();
    log->warn(
        "killed before its drain finished: cut {} connections; the ws_hub closes the "
        "WebSockets",
        cut_now);
    caf::anon_send<caf::message_priority::high>(hub, adopt_atom_v, server_lease{std::move(server)});
  }
};

using self_ptr = http_gateway_actor::stateful_pointer<gateway_state>;

double seconds_since(steady::time_point t) {
  return std::chrono::duration<double>(steady::now() - t).count();
}

std::string counts_json(gateway_state& st) {
  auto s = st.server ? st.server->stats() : net::http_server_stats{};
  return nlohmann::json{{"requests_total", s.requests_total},
                        {"served_during_drain", s.served_during_drain},
                        {"idle_closed", s.idle_closed_by_drain},
                        {"cut", st.cut},
                        {"writes_refused_during_drain", st.writes_refused},
                        {"from_backlog", s.from_backlog},
                        {"connections_total", s.connections_total}}
      .dump();
}

/// Counts one answered request by route, method and status, and its latency by route.
void count_request(net::metrics_registry& metrics, const std::string& route,
                   const std::string& method, int status, steady::time_point received) {
  metrics.counter_add("si_http_requests_total",
                      {{"route", route}, {"method", method}, {"status", std::to_string(status)}});
  metrics.histogram_observe("si_http_request_duration_seconds", {{"route", route}},
                            seconds_since(received));
}

/// Wraps `respond` so every answer is counted by route and status before it is sent.
net::respond_fn metered(self_ptr self, http_call& call, const std::string& route) {
  auto metrics = self->state.opts.metrics;
  auto received = call.request.received_at;
  auto method = call.request.method;
  auto inner = std::move(call.respond);
  return [metrics, received, method, route, inner](net::http_response r) {
    count_request(*metrics, route, method, r.status, received);
    inner(std::move(r));
  };
}

void finish_drain(self_ptr self) {
  auto& st = self->state;
  if (st.replied || !st.drain_promise) {
    return;
  }
  st.replied = true;
  auto counts = counts_json(st);
  auto hub = st.opts.websocket ? st.opts.websocket->hub() : ws_hub_actor{};
  if (hub) {
    // Hand the server to the ws_hub instead of stopping it: before the hub's drain because
    // stop() would drop every WebSocket still open, and the hub must close them itself
    // (server_shutdown, grace, 1001). The HTTP side is over (acceptor closed, connections
    // finished or cut), so WebSockets never delay this drain. High priority so that the
    // hub has it before its own drain request (sent at high priority once we report).
    caf::anon_send<caf::message_priority::high>(hub, adopt_atom_v,
                                                server_lease{std::move(st.server)});
  } else {
    // Join the io threads only now: no connection is left to serve.
    st.server->stop();
  }
  st.log->info("http drain finished in {} ms: {}",
               std::chrono::duration_cast<milliseconds>(steady::now() - st.drain_started).count(),
               counts);
  if (st.cut > 0) {
    st.drain_promise->deliver(make_error(errc::drain_incomplete, counts));
  } else {
    st.drain_promise->deliver(counts);
  }
  self->quit();
}

/// Drain after the optional delay: close the acceptor, then let connections finish.
void close_and_drain(self_ptr self) {
  auto& st = self->state;
  // close_acceptor before begin_drain because a connection accepted after begin_drain would
  // only be closed again; backlog connections are still served.
  auto taken = st.server->close_acceptor();
  st.server->begin_drain();
  st.log->info("acceptor closed ({} taken from the backlog); draining {} connections", taken,
               st.server->stats().connections_open);
  auto me = caf::actor_cast<caf::actor>(self);
  st.server->async_wait_drained([me] { caf::anon_send(me, drained_atom_v); });
  self->delayed_send(self, st.opts.graceful_timeout, cut_atom_v);
}

http_gateway_actor::behavior_type gateway_impl(self_ptr self, http_gateway_options opts) {
  auto& st = self->state;
  st.opts = std::move(opts);
  register_routes(st.routes, st.opts.test_routes);
  // Handles are read from the state at each use: the supervisor sends a new one when it
  // restarts the db or cache actor.
  auto timeout = st.opts.upstream_timeout;
  st.up.query = [self, timeout](db_task task, auto done) {
    self->request(self->state.opts.db, timeout, query_atom_v, std::move(task))
        .then([done](db_result& r) { done(std::move(r.value)); },
              [done](caf::error& err) { done(to_string(err)); });
  };
  st.up.cache_get = [self, timeout](std::string key, auto done) {
    self->request(self->state.opts.cache, timeout, get_atom_v, std::move(key))
        .then(
            [done](bool found, std::string& v) {
              done(found ? std::optional<std::string>{std::move(v)} : std::nullopt);
            },
            [done](caf::error&) { done(std::nullopt); });
  };
  st.up.cache_put = [self](std::string key, std::string value, milliseconds ttl) {
    // Fire and forget: nobody waits for the cache's acknowledgement.
    caf::anon_send(self->state.opts.cache, put_atom_v, std::move(key), std::move(value),
                   static_cast<int64_t>(ttl.count()));
  };
  st.up.remember = [self](const std::string& key, const std::string& route, const std::string& body,
                          const std::string& etag, milliseconds ttl) {
    if (self->state.opts.responses) {
      self->state.opts.responses->put(key, route, body, etag, ttl);
    }
  };
  st.up.cache_invalidate = [self](std::string pattern) {
    if (self->state.opts.responses) {
      self->state.opts.responses->invalidate(pattern);
    }
    caf::anon_send(self->state.opts.cache, invalidate_atom_v, std::move(pattern));
  };
  st.up.cache_stats = [self, timeout](auto done) {
    self->request(self->state.opts.cache, timeout, stats_atom_v)
        .then([done](std::string& s) { done(nlohmann::json::parse(s, nullptr, false)); },
              [done](caf::error&) { done(nullptr); });
  };
  st.up.checks = [self, timeout](auto done) {
    auto result = std::make_shared<nlohmann::json>(nlohmann::json::object());
    auto finish = [result, done] {
      if (result->size() == 2) {
        done(*result);
      }
    };
    self->request(self->state.opts.db, timeout, health_atom_v)
        .then(
            [result, finish](bool ok) {
              (*result)["db"] = ok ? "ok" : "fail";
              finish();
            },
            [result, finish](caf::error&) {
              (*result)["db"] = "fail";
              finish();
            });
    self->request(self->state.opts.cache, timeout, health_atom_v)
        .then(
            [result, finish](std::string& h) {
              (*result)["cache"] = h;
              finish();
            },
            [result, finish](caf::error&) {
              (*result)["cache"] = "degraded";
              finish();
            });
  };
  st.up.after = [self](milliseconds delay, std::function<void()> fn) {
    self->delayed_send(self, delay, respond_atom_v, deferred_fn{std::move(fn)});
  };
  st.up.ws_publish = [self, timeout](std::vector<std::string> channels, std::string text,
                                     auto done) {
    auto hub = self->state.opts.websocket ? self->state.opts.websocket->hub() : ws_hub_actor{};
    if (!hub) {
      done(std::nullopt);
      return;
    }
    self->request(hub, timeout, publish_atom_v, std::move(channels),
                  ws_payload{std::make_shared<const std::string>(std::move(text))})
        .then([done](uint64_t queued) { done(queued); },
              [done](caf::error&) { done(std::nullopt); });
  };
  auto me = caf::actor_cast<http_gateway_actor>(self);
  auto responses = st.opts.responses;
  auto metrics = st.opts.metrics;
  auto server_options = *st.opts.server;
  if (st.opts.websocket) {
    server_options.websocket.hook = st.opts.websocket->hook();
  }
  st.server = std::make_shared<net::http_server>(
      std::move(server_options),
      [me, responses, metrics](net::http_request req, net::respond_fn respond) {
        // Fast path on the io thread: a page the gateway served and cached moments ago.
        if (responses && (req.method == "GET" || req.method == "HEAD")) {
          if (auto hit = responses->find(page_key(req))) {
            auto r = cached_response(req, hit->body, hit->etag, hit->ttl, hit);
            count_request(*metrics, hit->route, req.method, r.status, req.received_at);
            respond(std::move(r));
            return;
          }
        }
        // Runs on an io thread: hand over to the actor; if it is gone the dropped respond_fn
        // answers 500 by itself.
        caf::anon_send(me, http_atom_v, http_call{std::move(req), std::move(respond)});
      });
  try {
    auto port = st.server->start();
    st.log->info("listening on {}:{}", st.opts.server->host, port);
    if (st.opts.on_listen) {
      st.opts.on_listen(port, "");
    }
  } catch (const std::exception& e) {
    st.log->error("cannot listen on {}:{}: {}", st.opts.server->host, st.opts.server->port,
                  e.what());
    if (st.opts.on_listen) {
      st.opts.on_listen(0, e.what());
    }
    self->quit(make_error(errc::unavailable, e.what()));
    return http_gateway_actor::behavior_type::make_empty_behavior();
  }
  return {
      [=](http_atom, http_call& call) {
        auto& st = self->state;
        auto m = st.routes.match(call.request.method, call.request.path);
        auto label = m.status == net::route_status::found ? m.pattern : std::string{"unmatched"};
        call.respond = metered(self, call, label);
        auto* server = st.server.get();
        route_context ctx{st.up,
                          *st.opts.metrics,
                          [server] { return server->stats(); },
                          st.opts.admin_token,
                          st.opts.cache_ttl,
                          st.draining,
                          st.started,
                          st.opts.responses ? st.opts.responses->hits() : 0,
                          st.opts.ingest,
                          st.opts.webhooks};
        if (st.draining && is_write(call.request.method) && m.status == net::route_status::found) {
          // Read-only degradation during drain: the client may retry on another instance.
          ++st.writes_refused;
          auto r = net::make_error_response(503, "SHUTTING_DOWN",
                                            "the server is shutting down; retry shortly",
                                            call.request.request_id);
          r.set_header("Retry-After", "1");
          call.respond(std::move(r));
          return;
        }
        handle_request(ctx, m, std::move(call.request), std::move(call.respond));
      },
      [=](respond_atom, deferred_fn& f) { f.fn(); },
      [=](caf::update_atom, const std::string& name, const caf::actor& handle) {
        if (name == "db") {
          self->state.opts.db = caf::actor_cast<db_actor>(handle);
        } else if (name == "cache") {
          self->state.opts.cache = caf::actor_cast<cache_actor>(handle);
        }
      },
      [=](status_atom) { return counts_json(self->state); },
      [=](drain_atom) -> caf::result<std::string> {
        auto& st = self->state;
        st.drain_requested = true;
        if (ignore_drain_for_test(st.opts.test_hang_on_drain, *st.log)) {
          return self->make_response_promise<std::string>();  // never delivered
        }
        if (st.drain_promise) {
          return make_error(errc::closing, "drain already in progress");
        }
        st.drain_promise = self->make_response_promise<std::string>();
        st.draining = true;  // /health/ready answers 503 from now on
        st.drain_started = steady::now();
        st.log->info("drain: readiness 503; serving reads for {} ms before closing the acceptor",
                     st.opts.drain_delay.count());
        if (st.opts.drain_delay.count() > 0) {
          self->delayed_send(self, st.opts.drain_delay, drain_step_atom_v);
        } else {
          close_and_drain(self);
        }
        return *st.drain_promise;
      },
      [=](drain_step_atom) { close_and_drain(self); },
      [=](drained_atom) { finish_drain(self); },
      [=](cut_atom) {
        auto& st = self->state;
        if (st.replied) {
          return;
        }
        st.cut = st.server->cut_remaining();
        st.log->warn("graceful timeout of {} ms passed: cut {} unfinished connections",
                     st.opts.graceful_timeout.count(), st.cut);
        // The drained callback fires once the cut sockets are closed.
      },
  };
}

}  // namespace

http_gateway_actor spawn_http_gateway(caf::actor_system& sys, http_gateway_options opts) {
  return sys.spawn(gateway_impl, std::move(opts));
}

}  // namespace si::actors
