/// stellar-insights server entry point: configuration, the actor system, signals, exit code.

#include "actors/broadcaster.hpp"
#include "actors/cache.hpp"
#include "actors/db.hpp"
#include "actors/http_gateway.hpp"
#include "actors/ingestor.hpp"
#include "actors/root_supervisor.hpp"
#include "actors/shutdown_plan.hpp"
#include "actors/shutdown_summary.hpp"
#include "actors/sync_scheduler.hpp"
#include "actors/webhook_dispatcher.hpp"
#include "actors/ws_hub.hpp"
#include "config/logging.hpp"
#include "config/settings.hpp"
#include "net/http_server.hpp"
#include "net/prometheus.hpp"
#include "net/sd_notify.hpp"
#include "net/thread_name.hpp"
#include "storage/database.hpp"
#include "storage/shutdown_reports.hpp"
#include "storage/webhook_events.hpp"
#include "storage/webhooks_repo.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <soci/soci.h>
#include <spdlog/spdlog.h>

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <mutex>
#include <thread>

namespace {

using namespace si;
using steady = std::chrono::steady_clock;

int config_failure(const std::string& text) {
  std::cerr << "stellar-insights: configuration error: " << text << '\n';
  return actors::exit_code::config_error;
}

/// Kills the process if shutdown outlives SHUTDOWN_HARD_TIMEOUT, whatever is stuck.
class hard_deadline_watchdog {
 public:
  void arm(std::chrono::milliseconds limit) {
    thread_ = std::thread([this, limit] {
      net::name_this_thread("si-deadline");
      std::unique_lock<std::mutex> guard{mtx_};
      if (!cv_.wait_for(guard, limit, [this] { return disarmed_; })) {
        config::logger("main")->critical("hard shutdown deadline of {} ms exceeded; exiting now",
                                         limit.count());
        spdlog::shutdown();
        std::_Exit(actors::exit_code::hard_deadline);
      }
    });
  }
  ~hard_deadline_watchdog() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      disarmed_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) {
      thread_.join();
    }
  }

 private:
  std::mutex mtx_;
  std::condition_variable cv_;
  bool disarmed_ = false;
  std::thread thread_;
};

const char* signal_name(int sig) {
  return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "signal";
}

/// What a service manager should add to SHUTDOWN_HARD_TIMEOUT before it kills the process.
constexpr std::chrono::milliseconds stop_margin{5'000};

/// --print-shutdown-budget: the longest cascade the plan allows (its critical path), the hard
/// deadline that ends the process whatever happens, and the stop timeout a service manager
/// should grant: the hard deadline plus a margin (docs/operations.md).
nlohmann::json shutdown_budget(const config::settings& s, const actors::shutdown_plan& plan) {
  auto critical = actors::critical_path(plan);
  auto grace_ms = (s.shutdown_hard_timeout + stop_margin).count();
  nlohmann::json deadlines = nlohmann::json::object();
  nlohmann::json depends_on = nlohmann::json::object();
  for (const auto& e : plan) {
    deadlines[e.actor] = e.deadline.count();
    depends_on[e.actor] = e.depends_on;
  }
  nlohmann::json out{{"critical_path_ms", critical.count()},
                     {"hard_timeout_ms", s.shutdown_hard_timeout.count()},
                     {"critical_path_within_hard_timeout", critical < s.shutdown_hard_timeout},
                     {"drain_delay_ms", s.shutdown_drain_delay.count()},
                     {"margin_ms", stop_margin.count()},
                     {"recommended_grace_seconds", (grace_ms + 999) / 1000},
                     {"stop_waves", actors::stop_waves(plan)},
                     {"deadlines_ms", deadlines},
                     {"depends_on", depends_on}};
  if (critical >= s.shutdown_hard_timeout) {
    out["warning"] =
        "the critical path reaches SHUTDOWN_HARD_TIMEOUT: a shutdown in which every "
        "actor uses its whole deadline ends with exit code 4";
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  bool check_only = false;
  bool print_budget = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << config::help_text(argv[0]);
      return 0;
    }
    if (arg == "--version") {
      std::cout << "stellar-insights " << SI_VERSION << '\n';
      return 0;
    }
    if (arg == "--check-config") {
      check_only = true;
      continue;
    }
    if (arg == "--print-shutdown-budget") {
      print_budget = true;
      continue;
    }
    std::cerr << "stellar-insights: unknown argument '" << arg << "' (see --help)\n";
    return actors::exit_code::config_error;
  }
  if (check_only && print_budget) {
    std::cerr
        << "stellar-insights: --check-config and --print-shutdown-budget exclude each other\n";
    return actors::exit_code::config_error;
  }

  // -- configuration: env wins over .env; any invalid value stops start-up with code 2.
  auto env = config::read_process_env();
  auto dotenv = config::read_dotenv(config::dotenv_path(env));
  if (auto* err = std::get_if<config::config_error>(&dotenv)) {
    return config_failure(err->to_string());
  }
  auto loaded = config::load(env, std::get<config::env_map>(dotenv));
  if (auto* err = std::get_if<config::config_error>(&loaded)) {
    return config_failure(err->to_string());
  }
  auto s = std::get<config::settings>(std::move(loaded));
  auto url = storage::parse_database_url(s.database_url);
  if (auto* err = std::get_if<std::string>(&url)) {
    return config_failure("DATABASE_URL: " + *err);
  }
  auto db_url = std::get<storage::database_url>(url);
  db_url.sqlite_cache_kib = std::int64_t{s.sqlite_cache_mb} * 1024;
  if (s.redis_url) {
    if (auto err = storage::validate_redis_url(*s.redis_url); !err.empty()) {
      return config_failure("REDIS_URL: " + err);
    }
  }
  auto plan = actors::default_plan(s);
  if (auto err = actors::validate_plan(plan)) {
    return config_failure("shutdown plan: " + *err);
  }
  // WEBHOOK_SECRET_KEY seals webhook signing secrets at rest; an unusable key stops start-up.
  std::shared_ptr<const domain::secret_cipher> webhook_cipher;
  if (s.webhook_secret_key && !s.webhook_secret_key->empty()) {
    auto parsed = domain::secret_cipher::from_key_text(*s.webhook_secret_key);
    if (auto* err = std::get_if<std::string>(&parsed)) {
      // The text says what is accepted and never echoes the value.
      bool named = err->rfind("WEBHOOK_SECRET_KEY", 0) == 0;
      return config_failure(named ? *err : "WEBHOOK_SECRET_KEY: " + *err);
    }
    webhook_cipher = std::make_shared<const domain::secret_cipher>(
        std::get<domain::secret_cipher>(std::move(parsed)));
  }
  if (check_only) {
    std::cout << config::describe(s) << '\n';
    return 0;
  }
  if (print_budget) {
    std::cout << shutdown_budget(s, plan).dump(2) << '\n';
    return 0;
  }

  // Before any thread exists: SIGTERM/SIGINT are only ever read from the signalfd below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  config::init_logging(s);
  auto log = config::logger("main");
  for (const auto& name : config::unknown_names(std::get<config::env_map>(dotenv))) {
    log->warn("{} in {} is not a setting of this server (typo?)", name, config::dotenv_path(env));
  }
  auto t_start = steady::now();

  auto metrics = std::make_shared<net::metrics_registry>();
  actors::describe_http_metrics(*metrics);
  actors::describe_lifecycle_metrics(*metrics);
  actors::describe_ingest_metrics(*metrics);
  actors::describe_sync_metrics(*metrics);
  actors::describe_ws_metrics(*metrics);
  actors::describe_webhook_metrics(*metrics);

  // -- schema first: no actor starts against a database that is not migrated.
  try {
    auto sql = storage::open_session(db_url);
    auto version = storage::migrate(*sql, db_url.kind);
    log->info("database {} at schema version {}", db_url.redacted, version);
    auto last = storage::list_shutdown_reports(*sql, 1);
    if (!last.empty()) {
      actors::export_shutdown_metrics(*metrics, last.front());
    }
  } catch (const std::exception& e) {
    log->critical("cannot open or migrate the database: {}", e.what());
    return actors::exit_code::startup_failure;
  }

  // Declared before the actor system: it must still guard the system's destructor.
  hard_deadline_watchdog watchdog;
  caf::actor_system_config cfg;
  unsigned threads =
      s.actor_threads != 0 ? s.actor_threads : std::max(2u, std::thread::hardware_concurrency());
  cfg.set("scheduler.max-threads", static_cast<size_t>(threads));
  // CAF's work-stealing workers poll when idle: 100 quick attempts, then 500 more with
  // 50 us sleeps, then a condition-variable wait. The sleeping phase alone took ~19% of the
  // server's samples while ingesting and ~9% under HTTP load (perf, 2 cores): every short
  // idle gap re-entered it. Skip it: after the quick attempts an idle worker waits on its
  // condition variable (external work wakes it at once) and steals every
  // ACTOR_IDLE_STEAL_MS.
  cfg.set("work-stealing.moderate-poll-attempts", size_t{0});
  cfg.set("work-stealing.relaxed-sleep-duration", caf::timespan{s.actor_idle_steal});
  caf::actor_system sys{cfg};
  // The system's destructor would wait for every actor without a bound (design.md §6).
  sys.await_actors_before_shutdown(false);

  int done_fd = eventfd(0, EFD_CLOEXEC);
  std::atomic<int> final_code{actors::exit_code::unclean_shutdown};

  actors::summary_options sopts;
  for (const auto& e : plan) {
    sopts.expected_actors.push_back(e.actor);
  }
  sopts.report_path = s.shutdown_report_path;
  sopts.persist = [db_url](const nlohmann::json& report) {
    // The db actor has closed by now (it stops last): use a short-lived session of our own.
    auto sql = storage::open_session(db_url);
    storage::insert_shutdown_report(*sql, report);
  };
  sopts.on_complete = [&final_code, done_fd](int code, const nlohmann::json&) {
    final_code = code;
    uint64_t one = 1;
    [[maybe_unused]] auto n = write(done_fd, &one, sizeof one);
  };
  auto summary = actors::spawn_shutdown_summary(sys, std::move(sopts), true);

  actors::supervisor_options opts;
  opts.plan = plan;
  opts.summary = summary;
  opts.max_restarts = s.supervisor_max_restarts;
  opts.restart_window = s.supervisor_restart_window;
  opts.backoff_min = s.supervisor_backoff_min;
  opts.backoff_max = s.supervisor_backoff_max;
  opts.on_restart = [metrics](const std::string& name) {
    metrics->counter_add("si_actor_restarts_total", {{"actor", name}});
  };
  opts.children.push_back({"db", [&s, db_url](caf::actor_system& sys, const actors::directory&) {
                             actors::db_options o;
                             o.url = db_url;
                             o.pool_size = s.db_pool_size;
                             o.query_timeout = s.db_query_timeout;
                             o.queue_limit = s.db_queue_limit;
                             o.test_hang_on_drain = s.hangs_on_drain("db");
                             return caf::actor_cast<caf::actor>(actors::spawn_db(sys, o));
                           }});
  opts.children.push_back({"cache", [&s](caf::actor_system& sys, const actors::directory&) {
                             auto factory = [s]() -> std::unique_ptr<storage::cache_backend> {
                               if (!s.redis_url) {
                                 return storage::make_memory_cache(s.cache_max_entries);
                               }
                               storage::redis_options r;
                               r.url = *s.redis_url;
                               r.op_timeout = s.cache_op_timeout;
                               r.reconnect_min = s.redis_reconnect_min;
                               r.reconnect_max = s.redis_reconnect_max;
                               return storage::make_redis_cache(r);
                             };
                             return caf::actor_cast<caf::actor>(
                                 actors::spawn_cache(sys, factory, s.hangs_on_drain("cache")));
                           }});
  // One Horizon client per actor that reads Horizon (each with its own rate limit).
  auto horizon_options = [](const config::settings& s) {
    net::horizon_client_options c;
    c.base_url = s.horizon_url;
    c.request_timeout = s.horizon_timeout;
    c.connect_timeout = s.horizon_connect_timeout;
    c.max_retries = s.horizon_max_retries;
    c.rate_limit_per_second = s.horizon_rate_limit;
    c.rate_limit_burst = std::max(1.0, static_cast<double>(s.horizon_rate_limit));
    c.breaker_threshold = s.horizon_breaker_threshold;
    c.breaker_cooldown = s.horizon_breaker_cooldown;
    c.ca_file = s.horizon_ca_file.value_or("");
    return c;
  };
  // The bound of one multi-page Horizon read: every page at its worst (each retry timing
  // out after its longest backoff), capped at a day.
  auto fetch_deadline = [](const config::settings& s, unsigned pages) {
    auto per_request = (s.horizon_connect_timeout + s.horizon_timeout) * (s.horizon_max_retries + 1)
                       + std::chrono::milliseconds{30'000} * s.horizon_max_retries;
    return std::min<std::chrono::milliseconds>(per_request * pages, std::chrono::hours{24});
  };
  actors::fetch_options ingest_fetch;
  ingest_fetch.batch_ledgers = s.ingest_batch_ledgers;
  ingest_fetch.page_limit = s.ingest_page_limit;
  // Room for 10,000 operations per ledger in one batch.
  ingest_fetch.max_pages = 2 + 2 * s.ingest_batch_ledgers * (10'000 / s.ingest_page_limit + 1);
  // The gateway's whole-page cache, read on the io threads; the schedulers invalidate it
  // too. Only with the in-process cache: Redis is shared by instances whose invalidations
  // this process could not see.
  std::shared_ptr<actors::response_cache> responses;
  if (!s.redis_url) {
    responses = std::make_shared<actors::response_cache>(s.cache_max_entries);
  }
  // Rung by whoever commits webhook events (ingestor, schedulers, the gateway's test route)
  // so the dispatcher does not wait for its next poll.
  auto webhook_doorbell = std::make_shared<actors::webhook_doorbell>();
  std::shared_ptr<actors::ingest_progress> ingest_progress;
  if (s.ingest_enabled) {
    ingest_progress = std::make_shared<actors::ingest_progress>();
    opts.children.push_back(
        {"ingestor", [&s, metrics, ingest_progress, horizon_options, fetch_deadline, ingest_fetch,
                      webhook_doorbell](caf::actor_system& sys, const actors::directory& deps) {
           actors::ingestor_options o;
           o.db = caf::actor_cast<actors::db_actor>(deps.at("db"));
           o.client = horizon_options(s);
           o.fetch = ingest_fetch;
           o.fetch_timeout = fetch_deadline(s, ingest_fetch.max_pages);
           o.start_ledger = s.ingest_start_ledger;
           o.poll_interval = s.ingest_poll_interval;
           o.backoff_min = s.ingest_backoff_min;
           o.backoff_max = s.ingest_backoff_max;
           o.db_timeout = s.db_query_timeout + std::chrono::milliseconds{1'000};
           o.progress = ingest_progress;
           o.metrics = metrics;
           // payment.created in each page's own transaction (only when a webhook wants it).
           o.outbox = storage::enqueue_payment_events;
           o.on_commit = [webhook_doorbell](const actors::committed_batch& c) {
             if (c.events > 0) {
               webhook_doorbell->ring();
             }
           };
           // Down right now (restarting): the supervisor sends the new handle when it is back.
           auto b = deps.find("broadcaster");
           o.broadcaster = b == deps.end() ? caf::actor{} : b->second;
           o.test_hang_on_drain = s.hangs_on_drain("ingestor");
           return caf::actor_cast<caf::actor>(actors::spawn_ingestor(sys, std::move(o)));
         }});
  }
  if (s.sync_enabled) {
    struct job {
      const char* name;
      actors::sync_kind kind;
      std::chrono::milliseconds interval;
      unsigned max_items;
    };
    for (const job& j :
         {job{"sync_metrics", actors::sync_kind::metrics, s.sync_metrics_interval, 1},
          job{"sync_pools", actors::sync_kind::pools, s.sync_pools_interval, s.sync_pools_max},
          job{"sync_trustlines", actors::sync_kind::trustlines, s.sync_trustlines_interval,
              s.sync_assets_max}}) {
      opts.children.push_back(
          {j.name, [&s, j, metrics, horizon_options, fetch_deadline, responses, webhook_doorbell](
                       caf::actor_system& sys, const actors::directory& deps) {
             actors::sync_options o;
             o.kind = j.kind;
             o.db = caf::actor_cast<actors::db_actor>(deps.at("db"));
             o.cache = caf::actor_cast<actors::cache_actor>(deps.at("cache"));
             o.interval = j.interval;
             o.max_items = j.max_items;
             o.client = horizon_options(s);
             o.fetch.page_limit = 200;
             // Every item's page plus, for pools, a day of each pool's trades (50 pages).
             o.fetch.max_pages = 2 + o.max_items * (j.kind == actors::sync_kind::pools ? 51 : 1);
             o.fetch_timeout = fetch_deadline(s, o.fetch.max_pages);
             o.db_timeout = s.db_query_timeout + std::chrono::milliseconds{1'000};
             o.metrics = metrics;
             o.responses = responses;
             // Each event goes to the webhook outbox inside the run's transaction.
             o.on_event = [](soci::session& sql, const std::string& type,
                             const nlohmann::json& data) {
               storage::enqueue_event(sql, type, data, storage::unix_ms_now());
             };
             o.on_changes = [webhook_doorbell](const actors::sync_changes& c) {
               if (!c.events.empty()) {
                 webhook_doorbell->ring();
               }
             };
             auto b = deps.find("broadcaster");
             o.broadcaster = b == deps.end() ? caf::actor{} : b->second;
             o.test_hang_on_drain = s.hangs_on_drain(j.name);
             return caf::actor_cast<caf::actor>(actors::spawn_sync_scheduler(sys, std::move(o)));
           }});
    }
  }
  auto server_opts = std::make_shared<net::http_server_options>();
  server_opts->host = s.host;
  server_opts->port = s.port;
  server_opts->io_threads = s.http_threads;
  server_opts->read_header_timeout = s.http_read_header_timeout;
  server_opts->read_body_timeout = s.http_read_body_timeout;
  server_opts->write_timeout = s.http_write_timeout;
  server_opts->keep_alive_idle_timeout = s.http_idle_timeout;
  server_opts->header_limit = s.http_header_limit;
  server_opts->body_limit = s.http_body_limit;
  server_opts->max_connections = s.http_max_connections;
  server_opts->max_pipelined = s.http_max_pipelined;
  server_opts->drain_idle_window = s.shutdown_idle_window;
  // WebSocket transport limits; the gateway installs the hook of `ws` (the hub's admission).
  server_opts->websocket.max_message_size = s.ws_max_message_bytes;
  server_opts->websocket.idle_timeout = s.ws_idle_timeout;
  server_opts->websocket.max_queued_messages = s.ws_queue_limit;
  actors::ws_endpoint_options wso;
  wso.max_connections = s.ws_max_connections;
  wso.auth_token = s.ws_auth_token;
  wso.metrics = metrics;
  auto ws = std::make_shared<actors::ws_endpoint>(std::move(wso));
  opts.children.push_back(
      {"ws_hub", [&s, ws, metrics](caf::actor_system& sys, const actors::directory&) {
         actors::ws_hub_options o;
         o.endpoint = ws;
         o.metrics = metrics;
         o.message_rate = s.ws_message_rate;
         o.grace = s.shutdown_ws_grace;
         o.deadline = s.shutdown_ws_timeout;
         o.reconnect_after = s.ws_reconnect_after;
         o.test_hang_on_drain = s.hangs_on_drain("ws_hub");
         return caf::actor_cast<caf::actor>(actors::spawn_ws_hub(sys, o));
       }});
  opts.children.push_back(
      {"broadcaster",
       [&s, metrics, ingest_progress](caf::actor_system& sys, const actors::directory& deps) {
         actors::broadcaster_options o;
         auto dep = [&deps](const char* name) {
           auto i = deps.find(name);
           return i == deps.end() ? caf::actor{} : i->second;
         };
         o.hub = caf::actor_cast<actors::ws_hub_actor>(dep("ws_hub"));
         o.db = caf::actor_cast<actors::db_actor>(dep("db"));
         o.progress = ingest_progress;
         o.metrics = metrics;
         o.db_timeout = s.db_query_timeout + std::chrono::milliseconds{1'000};
         // One batch's payments fill at most half a client's queue (WS_QUEUE_LIMIT), so a
         // burst alone never closes a reader that keeps up.
         o.max_payments_per_batch = std::clamp<std::size_t>(s.ws_queue_limit / 2, 1, 100);
         o.test_hang_on_drain = s.hangs_on_drain("broadcaster");
         return caf::actor_cast<caf::actor>(actors::spawn_broadcaster(sys, std::move(o)));
       }});
  opts.children.push_back(
      {"webhook_dispatcher", [&s, metrics, webhook_cipher, webhook_doorbell](
                                 caf::actor_system& sys, const actors::directory& deps) {
         // One client per dispatcher (re)start: its pool and io thread go with the actor.
         net::webhook_client_options c;
         c.max_per_destination = s.webhook_per_destination;
         c.max_in_flight = s.webhook_concurrency;
         // The dispatcher itself keeps requests within both bounds: nothing waits in here.
         c.max_queued = 2 * static_cast<std::size_t>(s.webhook_concurrency) + 16;
         c.default_timeout = s.webhook_timeout;
         c.allow_private = s.webhook_allow_private;
         actors::webhook_dispatcher_options o;
         o.db = caf::actor_cast<actors::db_actor>(deps.at("db"));
         o.sender = actors::make_webhook_client_sender(std::move(c));
         o.cipher = webhook_cipher;
         o.policy.max_attempts = static_cast<int>(s.webhook_max_attempts);
         o.policy.max_age_ms = s.webhook_max_age.count();
         o.policy.backoff = {s.webhook_backoff_min.count(), s.webhook_backoff_max.count(),
                             domain::backoff_jitter::full};
         o.timeout = s.webhook_timeout;
         o.lease = s.webhook_lease;
         o.poll_interval = s.webhook_poll_interval;
         o.concurrency = s.webhook_concurrency;
         o.per_destination = s.webhook_per_destination;
         // Its plan deadline is SHUTDOWN_BACKGROUND_TIMEOUT: requests in flight get 3/4 of
         // it, the last records and the release of what is left 1/5, the report the rest.
         o.drain_timeout = s.shutdown_background_timeout * 3 / 4;
         o.drain_db_timeout = s.shutdown_background_timeout / 5;
         o.db_timeout = s.db_query_timeout + std::chrono::milliseconds{1'000};
         o.doorbell = webhook_doorbell;
         o.metrics = metrics;
         o.test_hang_on_drain = s.hangs_on_drain("webhook_dispatcher");
         return caf::actor_cast<caf::actor>(actors::spawn_webhook_dispatcher(sys, std::move(o)));
       }});
  auto webhook_api = std::make_shared<actors::webhook_api_options>();
  webhook_api->cipher = webhook_cipher;
  webhook_api->allow_private = s.webhook_allow_private;
  // The lookup runs inside a db request the gateway waits for at most HTTP_UPSTREAM_TIMEOUT.
  webhook_api->resolve_timeout = std::clamp<std::chrono::milliseconds>(
      s.http_upstream_timeout * 3 / 5, std::chrono::milliseconds{100},
      std::chrono::milliseconds{5'000});
  webhook_api->doorbell = webhook_doorbell;
  // The first listen attempt decides start-up: a port in use is exit 5 at once, not a
  // restart loop ending in exit 3.
  auto first_listen = std::make_shared<std::promise<std::pair<uint16_t, std::string>>>();
  auto first_listen_result = first_listen->get_future();
  auto listen_reported = std::make_shared<std::atomic<bool>>(false);
  opts.children.push_back(
      {"http_gateway",
       [&s, server_opts, metrics, first_listen, listen_reported, ingest_progress, responses, ws,
        webhook_api](caf::actor_system& sys, const actors::directory& deps) {
         actors::http_gateway_options g;
         g.server = server_opts;
         // A dependency that is down right now is an invalid handle: requests answer 503
         // until the supervisor sends the restarted one.
         auto dep = [&deps](const char* name) {
           auto i = deps.find(name);
           return i == deps.end() ? caf::actor{} : i->second;
         };
         g.db = caf::actor_cast<actors::db_actor>(dep("db"));
         g.cache = caf::actor_cast<actors::cache_actor>(dep("cache"));
         g.metrics = metrics;
         g.admin_token = s.admin_api_token;
         g.drain_delay = s.shutdown_drain_delay;
         g.graceful_timeout = s.shutdown_graceful_timeout;
         g.upstream_timeout = s.http_upstream_timeout;
         g.cache_ttl = s.cache_default_ttl;
         g.test_routes = s.http_test_routes;
         g.ingest = ingest_progress;
         g.on_listen = [first_listen, listen_reported](uint16_t port, const std::string& err) {
           if (!listen_reported->exchange(true)) {
             first_listen->set_value({port, err});
           }
         };
         g.responses = responses;
         g.websocket = ws;
         g.webhooks = webhook_api;
         g.test_hang_on_drain = s.hangs_on_drain("http_gateway");
         return caf::actor_cast<caf::actor>(actors::spawn_http_gateway(sys, std::move(g)));
       }});
  auto spawned = actors::spawn_root_supervisor(sys, std::move(opts));
  if (auto* err = std::get_if<std::string>(&spawned)) {
    log->critical("invalid supervision tree: {}", *err);
    return actors::exit_code::startup_failure;
  }
  auto supervisor = std::get<actors::root_supervisor_actor>(spawned);
  {
    // "ready" only once every child is spawned: the supervisor answers after its init.
    caf::scoped_actor self{sys};
    bool up = false;
    self->request(supervisor, std::chrono::seconds{10}, status_atom_v)
        .receive([&](std::string&) { up = true; },
                 [&](caf::error& err) {
                   log->critical("supervisor did not start: {}", to_string(err));
                 });
    if (!up) {
      return actors::exit_code::startup_failure;
    }
  }
  int sig_fd = signalfd(-1, &signals, SFD_CLOEXEC);
  int received = 0;
  if (first_listen_result.wait_for(std::chrono::seconds{10}) != std::future_status::ready
      || first_listen_result.get().first == 0) {
    log->critical("the HTTP server could not listen on {}:{}; stopping", s.host, s.port);
    caf::anon_send(supervisor, shutdown_atom_v, std::string{"startup failure: cannot listen"});
    pollfd done{done_fd, POLLIN, 0};
    poll(&done, 1, static_cast<int>(s.shutdown_hard_timeout.count()));
    spdlog::shutdown();
    return actors::exit_code::startup_failure;
  }
  log->info("ready: stellar-insights {} started in {} ms (pid {})", SI_VERSION,
            std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t_start).count(),
            getpid());
  // systemd Type=notify (docs/operations.md): ready only now, every actor up and listening.
  auto notifier = net::sd_notifier::from_environment();
  notifier.notify("READY=1\nSTATUS=serving on " + s.host + ":" + std::to_string(s.port) + " ("
                  + std::to_string(plan.size()) + " actors)\nMAINPID=" + std::to_string(getpid()));
  std::unique_ptr<net::sd_watchdog> liveness;
  if (auto timeout = notifier.watchdog_timeout(); timeout && notifier.enabled()) {
    // A ping proves the scheduler runs, the supervisor answers and so does the gateway (a
    // gateway being restarted has no handle and is the supervisor's business).
    liveness = std::make_unique<net::sd_watchdog>(
        notifier, *timeout, [&sys, supervisor](std::chrono::milliseconds limit) {
          caf::scoped_actor self{sys};
          auto until = steady::now() + limit;
          caf::actor gateway;
          bool ok = false;
          self->request(supervisor, limit, lookup_atom_v, std::string{"http_gateway"})
              .receive(
                  [&](caf::actor& a) {
                    ok = true;
                    gateway = std::move(a);
                  },
                  [](caf::error&) {});
          if (!ok || !gateway) {
            return ok;
          }
          auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - steady::now());
          ok = false;
          self->request(gateway, std::max(left, std::chrono::milliseconds{1}), status_atom_v)
              .receive([&](std::string&) { ok = true; }, [](caf::error&) {});
          return ok;
        });
  }

  // -- wait: the first signal starts the cascade, the second forces it; the summary ends it.
  for (;;) {
    pollfd fds[2] = {{sig_fd, POLLIN, 0}, {done_fd, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      log->critical("poll failed: {}", std::strerror(errno));
      break;
    }
    if (fds[1].revents & POLLIN) {
      // Consume the summary's signal: the read pairs with its write, so the summary thread's
      // write is over before done_fd is closed below (ThreadSanitizer flagged the close
      // racing the write when only poll() had seen it).
      uint64_t value = 0;
      [[maybe_unused]] auto n = read(done_fd, &value, sizeof value);
      break;
    }
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info{};
      if (read(sig_fd, &info, sizeof info) != sizeof info) {
        continue;
      }
      ++received;
      auto name = signal_name(static_cast<int>(info.ssi_signo));
      if (received == 1) {
        log->info("{} received: starting the shutdown cascade", name);
        watchdog.arm(s.shutdown_hard_timeout);
        caf::anon_send(supervisor, shutdown_atom_v, std::string{"signal "} + name);
        if (liveness) {
          liveness->stop();
        }
        // The manager waits for the hard deadline at least, whatever its TimeoutStopSec.
        auto extend = std::chrono::duration_cast<std::chrono::microseconds>(s.shutdown_hard_timeout
                                                                            + stop_margin);
        notifier.notify(std::string{"STOPPING=1\nSTATUS=stopping ("} + name
                        + "): shutdown cascade, hard deadline "
                        + std::to_string(s.shutdown_hard_timeout.count())
                        + " ms\nEXTEND_TIMEOUT_USEC=" + std::to_string(extend.count()));
      } else {
        log->warn("{} received again: forcing what is left", name);
        caf::anon_send(supervisor, force_atom_v);
      }
    }
  }
  int code = final_code.load();
  if (liveness) {
    liveness->stop();  // no probe or log line after this (it is joined at scope exit)
  }
  if (received == 0) {
    // The supervisor stopped everything on its own (restart intensity exceeded).
    notifier.notify("STOPPING=1\nSTATUS=stopped without a signal, exit code "
                    + std::to_string(code));
  }
  log->info("exiting with code {}", code);
  spdlog::shutdown();
  close(sig_fd);
  close(done_fd);
  return code;
}
