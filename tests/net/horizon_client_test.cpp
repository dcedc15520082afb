// Tests of si::net::horizon_client against a local si::net::http_server on 127.0.0.1:0.
// Backoff, rate limit and breaker run on a fake clock whose sleep records the delays and
// advances the clock; only the I/O timeouts use real (short) time. Every wait is bounded.

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "net/horizon_client.hpp"
#include "net/http_server.hpp"
#include "tests/net/support.hpp"

namespace {

using namespace std::chrono_literals;
using si::net::horizon_client;
using si::net::horizon_client_options;
using si::net::horizon_error;
using si::net::horizon_error_kind;
using si::net::horizon_response;
using si::net::http_request;
using si::net::http_response;
using si::net::respond_fn;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

/// A clock that only moves when the client sleeps; records every sleep.
struct fake_time {
  std::mutex mutex;
  steady_clock::time_point now = steady_clock::time_point{} + 1000h;
  std::vector<milliseconds> sleeps;

  void advance(milliseconds d) {
    std::lock_guard<std::mutex> lock(mutex);
    now += d;
  }
  std::vector<milliseconds> recorded() {
    std::lock_guard<std::mutex> lock(mutex);
    return sleeps;
  }
};

/// Options on `port` with the fake clock; no rate limit unless a test sets one.
horizon_client_options options_for(std::uint16_t port, const std::shared_ptr<fake_time>& time,
                                   std::string prefix = {}) {
  horizon_client_options o;
  o.base_url = "http://127.0.0.1:" + std::to_string(port) + prefix;
  o.rate_limit_per_second = 0;
  o.jitter_seed = 42;
  o.now = [time] {
    std::lock_guard<std::mutex> lock(time->mutex);
    return time->now;
  };
  o.sleep = [time](milliseconds d) {
    std::lock_guard<std::mutex> lock(time->mutex);
    time->sleeps.push_back(d);
    time->now += d;
  };
  return o;
}

si::net::http_server_options server_options() {
  si::net::http_server_options o;
  o.host = "127.0.0.1";
  o.io_threads = 1;
  return o;
}

/// A server answering each request with `answer(n, request)` (n = 0-based request count).
struct scripted_server {
  using answer_fn = std::function<http_response(std::size_t, const http_request&)>;

  explicit scripted_server(answer_fn answer, si::net::http_server_options o = server_options())
      : answer_(std::move(answer)), server_(o, [this](http_request req, respond_fn respond) {
          std::size_t n = calls_++;
          {
            std::lock_guard<std::mutex> lock(mutex_);
            targets_.push_back(req.target);
            agents_.push_back(std::string(req.header("User-Agent").value_or("")));
          }
          respond(answer_(n, req));
        }) {
    port_ = server_.start();
  }

  std::uint16_t port() const {
    return port_;
  }
  std::size_t calls() const {
    return calls_;
  }
  std::vector<std::string> targets() {
    std::lock_guard<std::mutex> lock(mutex_);
    return targets_;
  }
  std::vector<std::string> agents() {
    std::lock_guard<std::mutex> lock(mutex_);
    return agents_;
  }
  si::net::http_server& server() {
    return server_;
  }

 private:
  answer_fn answer_;
  std::atomic<std::size_t> calls_{0};
  std::mutex mutex_;
  std::vector<std::string> targets_;
  std::vector<std::string> agents_;
  si::net::http_server server_;
  std::uint16_t port_ = 0;
};

http_response ok(std::string body = "{}") {
  return http_response{200, {{"Content-Type", "application/json"}}, std::move(body)};
}

horizon_response expect_response(const si::net::horizon_result& r) {
  if (auto* e = std::get_if<horizon_error>(&r)) {
    FAIL("expected a response, got " << si::net::to_string(e->kind) << ": " << e->message);
  }
  return std::get<horizon_response>(r);
}

horizon_error expect_error(const si::net::horizon_result& r) {
  if (std::holds_alternative<horizon_response>(r)) {
    FAIL("expected an error, got HTTP " << std::get<horizon_response>(r).status);
  }
  return std::get<horizon_error>(r);
}

/// A temporary directory, removed with its files.
struct temp_dir {
  temp_dir() {
    std::string templ = (std::filesystem::temp_directory_path() / "si-hc-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) {
      throw std::runtime_error("mkdtemp failed");
    }
    path = templ;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::filesystem::path path;
};

/// Writes a self-signed certificate and key for `san` into `dir`; false when openssl fails.
bool make_cert(const std::filesystem::path& dir, const std::string& name, const std::string& san) {
  std::string cmd =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
      " -days 2 -subj /CN=si-test -keyout '"
      + (dir / (name + ".key")).string() + "' -out '" + (dir / (name + ".pem")).string()
      + "' -addext 'subjectAltName=" + san + "' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

/// A port that was free a moment ago (bound to 127.0.0.1:0, then released).
std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  std::uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0
      && ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

/// `openssl s_server -www` as a child process on 127.0.0.1; killed by the destructor.
struct tls_server {
  tls_server(const std::filesystem::path& dir, const std::string& name) {
    port = free_port();
    std::string cert = (dir / (name + ".pem")).string();
    std::string key = (dir / (name + ".key")).string();
    std::string accept = "127.0.0.1:" + std::to_string(port);
    std::vector<std::string> args{"openssl", "s_server", "-quiet", "-www", "-accept",
                                  accept,    "-cert",    cert,     "-key", key};
    std::vector<char*> argv;
    for (auto& a : args) {
      argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    if (posix_spawnp(&pid, "openssl", &actions, nullptr, argv.data(), environ) != 0) {
      pid = -1;
    }
    posix_spawn_file_actions_destroy(&actions);
  }
  ~tls_server() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      int status = 0;
      ::waitpid(pid, &status, 0);
    }
  }
  /// Bounded wait until the server accepts connections.
  bool wait_listening() const {
    auto deadline = steady_clock::now() + si::test::wait_limit;
    while (pid > 0 && steady_clock::now() < deadline) {
      if (si::test::raw_client::try_connect(port) == 0) {
        return true;
      }
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  pid_t pid = -1;
  std::uint16_t port = 0;
};

}  // namespace

TEST_CASE("horizon_client: 200 round trip, prefix, absolute hrefs and keep-alive",
          "[horizon_client]") {
  scripted_server srv([](std::size_t, const http_request& req) { return ok(req.target); });
  auto time = std::make_shared<fake_time>();
  auto o = options_for(srv.port(), time, "/horizon/");
  o.user_agent = "si-test/1";
  horizon_client client(o);

  auto first = expect_response(client.get("/ledgers?limit=2&order=desc"));
  CHECK(first.status == 200);
  CHECK(first.body == "/horizon/ledgers?limit=2&order=desc");
  CHECK(first.header("content-type").value_or("") == "application/json");

  auto href = "http://127.0.0.1:" + std::to_string(srv.port()) + "/ledgers?cursor=12";
  auto second = expect_response(client.get(href));
  CHECK(second.body == "/ledgers?cursor=12");

  // Another host is refused before anything is sent.
  auto foreign = expect_error(client.get("https://example.com/ledgers"));
  CHECK(foreign.kind == horizon_error_kind::malformed);

  CHECK(srv.calls() == 2);
  CHECK(srv.agents() == std::vector<std::string>{"si-test/1", "si-test/1"});
  CHECK(srv.server().stats().connections_total == 1);
  CHECK(client.stats().connects == 1);
  CHECK(time->recorded().empty());
}

TEST_CASE("horizon_client: bad base_url throws", "[horizon_client]") {
  horizon_client_options o;
  o.base_url = "ftp://x";
  CHECK_THROWS_AS(horizon_client(o), std::invalid_argument);
  o.base_url = "http://host:99999/";
  CHECK_THROWS_AS(horizon_client(o), std::invalid_argument);
}

TEST_CASE("horizon_client: 5xx is retried with capped full-jitter backoff", "[horizon_client]") {
  scripted_server srv([](std::size_t n, const http_request&) {
    return n < 3 ? http_response{500, {}, "boom"} : ok("fine");
  });
  auto time = std::make_shared<fake_time>();
  horizon_client client(options_for(srv.port(), time));

  auto r = expect_response(client.get("/ledgers"));
  CHECK(r.body == "fine");
  CHECK(srv.calls() == 4);
  auto sleeps = time->recorded();
  REQUIRE(sleeps.size() == 3);
  CHECK(sleeps[0] <= 250ms);
  CHECK(sleeps[1] <= 500ms);
  CHECK(sleeps[2] <= 1000ms);
  CHECK(client.stats().retries == 3);
}

TEST_CASE("horizon_client: 5xx after max retries is an http_status error", "[horizon_client]") {
  scripted_server srv([](std::size_t, const http_request&) {
    return http_response{503, {}, "down"};
  });
  auto time = std::make_shared<fake_time>();
  auto o = options_for(srv.port(), time);
  o.max_retries = 2;
  o.breaker_threshold = 0;
  horizon_client client(o);

  auto e = expect_error(client.get("/ledgers"));
  CHECK(e.kind == horizon_error_kind::http_status);
  CHECK(e.status == 503);
  CHECK(e.body == "down");
  CHECK(srv.calls() == 3);
  CHECK(time->recorded().size() == 2);
}

TEST_CASE("horizon_client: 429 honours Retry-After, bounded by backoff_max", "[horizon_client]") {
  SECTION("Retry-After: 2 waits 2000 ms") {
    scripted_server srv([](std::size_t n, const http_request&) {
      return n == 0 ? http_response{429, {{"Retry-After", "2"}}, ""} : ok();
    });
    auto time = std::make_shared<fake_time>();
    horizon_client client(options_for(srv.port(), time));
    expect_response(client.get("/ledgers"));
    CHECK(time->recorded() == std::vector<milliseconds>{2000ms});
    CHECK(srv.calls() == 2);
  }
  SECTION("a huge Retry-After is cut to backoff_max") {
    scripted_server srv([](std::size_t n, const http_request&) {
      return n == 0 ? http_response{429, {{"Retry-After", "3600"}}, ""} : ok();
    });
    auto time = std::make_shared<fake_time>();
    auto o = options_for(srv.port(), time);
    o.backoff_max = 5s;
    horizon_client client(o);
    expect_response(client.get("/ledgers"));
    CHECK(time->recorded() == std::vector<milliseconds>{5000ms});
  }
}

TEST_CASE("horizon_client: 404 problem+json is surfaced and not retried", "[horizon_client]") {
  scripted_server srv([](std::size_t, const http_request&) {
    return http_response{404,
                         {{"Content-Type", "application/problem+json; charset=utf-8"}},
                         R"({"type":"https://stellar.org/horizon-errors/not_found",)"
                         R"("title":"Resource Missing","status":404,)"
                         R"("detail":"The resource at the url requested was not found."})"};
  });
  auto time = std::make_shared<fake_time>();
  horizon_client client(options_for(srv.port(), time));

  auto e = expect_error(client.get("/accounts/nope"));
  CHECK(e.kind == horizon_error_kind::http_status);
  CHECK(e.status == 404);
  CHECK(e.title == "Resource Missing");
  CHECK(e.detail == "The resource at the url requested was not found.");
  CHECK(e.problem_type == "https://stellar.org/horizon-errors/not_found");
  CHECK(srv.calls() == 1);
  CHECK(time->recorded().empty());
}

TEST_CASE("horizon_client: JSON error with only title/detail is surfaced", "[horizon_client]") {
  scripted_server srv([](std::size_t, const http_request&) {
    return http_response{400,
                         {{"Content-Type", "application/json"}},
                         R"({"title":"Bad Request","details":"cursor is invalid"})"};
  });
  auto time = std::make_shared<fake_time>();
  horizon_client client(options_for(srv.port(), time));
  auto e = expect_error(client.get("/ledgers?cursor=x"));
  CHECK(e.title == "Bad Request");
  CHECK(e.detail == "cursor is invalid");
  CHECK(srv.calls() == 1);
}

TEST_CASE("horizon_client: a server that never answers times out after the retries",
          "[horizon_client]") {
  si::test::held_requests held;  // outlives the server: the respond_fns are never called
  si::net::http_server server(server_options(), [&held](http_request req, respond_fn respond) {
    held.push(std::move(req), std::move(respond));
  });
  auto port = server.start();
  auto time = std::make_shared<fake_time>();
  auto o = options_for(port, time);
  o.request_timeout = 200ms;
  o.max_retries = 2;
  horizon_client client(o);

  auto started = steady_clock::now();
  auto e = expect_error(client.get("/ledgers"));
  auto took = steady_clock::now() - started;
  CHECK(e.kind == horizon_error_kind::timeout);
  CHECK(held.total() == 3);
  CHECK(time->recorded().size() == 2);
  CHECK(took >= 600ms);
  CHECK(took < 5s);
  server.stop();
}

TEST_CASE("horizon_client: circuit breaker opens, fails fast, then half-opens",
          "[horizon_client]") {
  std::atomic<bool> healthy{false};
  scripted_server srv([&healthy](std::size_t, const http_request&) {
    return healthy ? ok("back") : http_response{500, {}, ""};
  });
  auto time = std::make_shared<fake_time>();
  auto o = options_for(srv.port(), time);
  o.max_retries = 0;
  o.breaker_threshold = 3;
  o.breaker_cooldown = 30s;
  horizon_client client(o);

  for (int i = 0; i < 3; ++i) {
    CHECK(expect_error(client.get("/ledgers")).kind == horizon_error_kind::http_status);
  }
  CHECK(client.stats().breaker_open);
  CHECK(expect_error(client.get("/ledgers")).kind == horizon_error_kind::circuit_open);
  CHECK(srv.calls() == 3);

  time->advance(29s);
  CHECK(expect_error(client.get("/ledgers")).kind == horizon_error_kind::circuit_open);
  CHECK(srv.calls() == 3);

  // Half-open: one failing trial opens it again for a full cool-down.
  time->advance(1s);
  CHECK(expect_error(client.get("/ledgers")).kind == horizon_error_kind::http_status);
  CHECK(srv.calls() == 4);
  CHECK(expect_error(client.get("/ledgers")).kind == horizon_error_kind::circuit_open);

  healthy = true;
  time->advance(30s);
  CHECK(expect_response(client.get("/ledgers")).body == "back");
  CHECK(expect_response(client.get("/ledgers")).body == "back");
  CHECK(srv.calls() == 6);
  CHECK_FALSE(client.stats().breaker_open);
  CHECK(client.stats().breaker_opens == 2);
}

TEST_CASE("horizon_client: 4xx does not count towards the breaker", "[horizon_client]") {
  scripted_server srv([](std::size_t, const http_request&) { return http_response{404, {}, ""}; });
  auto time = std::make_shared<fake_time>();
  auto o = options_for(srv.port(), time);
  o.breaker_threshold = 2;
  horizon_client client(o);
  for (int i = 0; i < 4; ++i) {
    CHECK(expect_error(client.get("/x")).kind == horizon_error_kind::http_status);
  }
  CHECK(srv.calls() == 4);
}

TEST_CASE("horizon_client: the rate limiter spaces requests", "[horizon_client]") {
  scripted_server srv([](std::size_t, const http_request&) { return ok(); });
  auto time = std::make_shared<fake_time>();
  auto o = options_for(srv.port(), time);
  o.rate_limit_per_second = 2;
  o.rate_limit_burst = 1;
  horizon_client client(o);

  for (int i = 0; i < 3; ++i) {
    expect_response(client.get("/ledgers"));
  }
  CHECK(time->recorded() == std::vector<milliseconds>{500ms, 500ms});

  // After a quiet second the bucket is full again: no wait.
  time->advance(1s);
  expect_response(client.get("/ledgers"));
  CHECK(time->recorded().size() == 2);
}

TEST_CASE("horizon_client: cancel() aborts a hanging request promptly", "[horizon_client]") {
  si::test::held_requests held;
  si::net::http_server server(server_options(), [&held](http_request req, respond_fn respond) {
    held.push(std::move(req), std::move(respond));
  });
  auto port = server.start();
  auto time = std::make_shared<fake_time>();
  auto o = options_for(port, time);
  o.request_timeout = 30s;
  horizon_client client(o);

  auto started = steady_clock::now();
  auto pending = std::async(std::launch::async, [&client] { return client.get("/ledgers"); });
  REQUIRE(held.wait_for(1));  // the request reached the server
  client.cancel();
  REQUIRE(pending.wait_for(si::test::wait_limit) == std::future_status::ready);
  CHECK(steady_clock::now() - started < 5s);
  auto result = pending.get();
  CHECK(expect_error(result).kind == horizon_error_kind::cancelled);
  CHECK(client.cancelled());
  // Sticky: later calls fail at once without a request.
  CHECK(expect_error(client.get("/ledgers")).kind == horizon_error_kind::cancelled);
  CHECK(held.total() == 1);
  server.stop();
}

TEST_CASE("horizon_client: cancel() interrupts the real backoff sleep", "[horizon_client]") {
  scripted_server srv([](std::size_t, const http_request&) {
    return http_response{503, {{"Retry-After", "30"}}, ""};
  });
  horizon_client_options o;
  o.base_url = "http://127.0.0.1:" + std::to_string(srv.port());
  o.rate_limit_per_second = 0;
  horizon_client client(o);  // real clock and sleep

  auto pending = std::async(std::launch::async, [&client] { return client.get("/ledgers"); });
  // Bounded wait for the first attempt to be answered (the client then sleeps 30 s).
  auto deadline = steady_clock::now() + si::test::wait_limit;
  while (client.stats().retries == 0 && steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  REQUIRE(client.stats().retries == 1);
  client.cancel();
  REQUIRE(pending.wait_for(si::test::wait_limit) == std::future_status::ready);
  CHECK(expect_error(pending.get()).kind == horizon_error_kind::cancelled);
}

TEST_CASE("horizon_client: connection refused is a connect error", "[horizon_client]") {
  std::uint16_t port = 0;
  {
    scripted_server srv([](std::size_t, const http_request&) { return ok(); });
    port = srv.port();
  }  // stopped: nothing listens on the port any more
  auto time = std::make_shared<fake_time>();
  auto o = options_for(port, time);
  o.max_retries = 1;
  horizon_client client(o);
  auto e = expect_error(client.get("/ledgers"));
  CHECK(e.kind == horizon_error_kind::connect);
  CHECK(time->recorded().size() == 1);
}

TEST_CASE("horizon_client: reconnects when the server closed the kept-alive connection",
          "[horizon_client]") {
  auto so = server_options();
  so.keep_alive_idle_timeout = 50ms;
  so.close_linger_timeout = 50ms;
  scripted_server srv([](std::size_t, const http_request&) { return ok("hi"); }, so);
  auto time = std::make_shared<fake_time>();
  horizon_client client(options_for(srv.port(), time));

  expect_response(client.get("/a"));
  // Bounded wait for the server's idle timeout to close the connection.
  auto deadline = steady_clock::now() + si::test::wait_limit;
  while (srv.server().stats().connections_open != 0 && steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  REQUIRE(srv.server().stats().connections_open == 0);
  CHECK(expect_response(client.get("/b")).body == "hi");
  CHECK(client.stats().connects == 2);
  CHECK(client.stats().retries == 0);
  CHECK(time->recorded().empty());
}

TEST_CASE("horizon_client: https verifies the certificate and the host name", "[horizon_client]") {
  temp_dir dir;
  if (!make_cert(dir.path, "good", "DNS:localhost,IP:127.0.0.1")
      || !make_cert(dir.path, "wrong", "DNS:wrong.example")) {
    // scripts/test installs the openssl CLI: a missing one is a broken setup, not a skip.
    FAIL("could not create test certificates with the openssl CLI");
  }
  auto time = std::make_shared<fake_time>();
  tls_server good(dir.path, "good");
  REQUIRE(good.wait_listening());

  SECTION("an untrusted certificate fails verification") {
    auto o = options_for(0, time);
    o.base_url = "https://127.0.0.1:" + std::to_string(good.port);
    horizon_client client(o);
    auto e = expect_error(client.get("/"));
    CHECK(e.kind == horizon_error_kind::tls);
    CHECK(e.message.find("certificate") != std::string::npos);
    CHECK(time->recorded().empty());  // never retried
  }
  SECTION("trusted through ca_file: succeeds, by IP and by name (SNI)") {
    for (std::string host : {"127.0.0.1", "localhost"}) {
      auto o = options_for(0, time);
      o.base_url = "https://" + host + ":" + std::to_string(good.port);
      o.ca_file = (dir.path / "good.pem").string();
      horizon_client client(o);
      auto r = expect_response(client.get("/"));
      CHECK(r.status == 200);
      CHECK(r.body.find("s_server") != std::string::npos);
    }
  }
  SECTION("a trusted certificate for another host name fails") {
    tls_server wrong(dir.path, "wrong");
    REQUIRE(wrong.wait_listening());
    auto o = options_for(0, time);
    o.base_url = "https://127.0.0.1:" + std::to_string(wrong.port);
    o.ca_file = (dir.path / "wrong.pem").string();
    horizon_client client(o);
    CHECK(expect_error(client.get("/")).kind == horizon_error_kind::tls);
  }
  SECTION("a missing ca_file throws") {
    auto o = options_for(0, time);
    o.base_url = "https://127.0.0.1:" + std::to_string(good.port);
    o.ca_file = (dir.path / "absent.pem").string();
    CHECK_THROWS_AS(horizon_client(o), std::runtime_error);
  }
}
