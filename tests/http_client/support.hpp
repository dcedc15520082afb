#pragma once
/// Test support for the webhook transport: receivers on 127.0.0.1:0 (an si::net::http_server
/// that can hold requests and measures concurrency, a scripted raw TCP server, a TLS echo
/// server, a listener that never accepts), certificates from the openssl CLI, and bounded
/// waits on completions. Every wait is bounded by wait_limit.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "net/http_server.hpp"
#include "net/http_types.hpp"
#include "net/webhook_client.hpp"

namespace si::test {

using namespace std::chrono_literals;

/// Bound on every wait in these tests: a bug fails a test instead of hanging it.
inline constexpr std::chrono::milliseconds wait_limit = 5s;

/// Polls `condition` until it holds or `limit` passes (for counters that have no event).
bool wait_until(const std::function<bool()>& condition,
                std::chrono::milliseconds limit = wait_limit);

/// Collects webhook results by index; completions may run on any thread.
class result_sink {
 public:
  /// A completion storing its result under `index`.
  net::webhook_completion slot(std::size_t index);
  /// Waits until `count` results arrived; false after `limit`.
  bool wait_count(std::size_t count, std::chrono::milliseconds limit = wait_limit);
  /// Waits for the result of `index`; nothing after `limit`.
  std::optional<net::webhook_result> wait(std::size_t index,
                                          std::chrono::milliseconds limit = wait_limit);
  std::size_t count() const;
  /// How many times completion `index` was called (exactly once is the contract).
  std::size_t calls(std::size_t index) const;
  /// The thread each result arrived on.
  std::thread::id thread_of(std::size_t index) const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::map<std::size_t, net::webhook_result> results_;
  std::map<std::size_t, std::size_t> calls_;
  std::map<std::size_t, std::thread::id> threads_;
};

/// Requests in progress at a set of receivers (arrived, not yet answered) and the maximum.
struct concurrency_meter {
  std::atomic<int> current{0};
  std::atomic<int> max{0};
  void enter();
  void leave();
};

/// An si::net::http_server on 127.0.0.1:0 that records every request and either answers
/// at once with `answer` or holds it until the test releases it.
class receiver {
 public:
  using answer_fn = std::function<net::http_response(const net::http_request&)>;

  /// `hold` = keep every request until release_one()/release_all().
  explicit receiver(bool hold = false, answer_fn answer = {},
                    std::shared_ptr<concurrency_meter> meter = {},
                    net::http_server_options options = {});
  ~receiver();

  std::uint16_t port() const {
    return port_;
  }
  std::string url(const std::string& path = "/hook") const;
  /// Waits until `n` requests arrived in total.
  bool wait_arrived(std::size_t n, std::chrono::milliseconds limit = wait_limit);
  std::size_t arrived() const;
  std::vector<net::http_request> requests() const;
  /// Answers the oldest held request with `answer` (or 200 "ok"); false when none is held.
  bool release_one();
  /// Answers every held request and switches to answering at once.
  void release_all();
  /// From now on holds (true) or answers at once (false) new requests.
  void set_hold(bool hold);
  concurrency_meter& meter() {
    return *meter_;
  }
  net::http_server& server() {
    return *server_;
  }

 private:
  net::http_response make_answer(const net::http_request& req);

  answer_fn answer_;
  std::shared_ptr<concurrency_meter> meter_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool hold_;
  std::vector<net::http_request> requests_;
  std::deque<std::pair<net::http_request, net::respond_fn>> held_;
  std::unique_ptr<net::http_server> server_;
  std::uint16_t port_ = 0;
};

/// A blocking TCP server on 127.0.0.1:0, one connection at a time on its own thread. For
/// each request read (header + Content-Length body) `script(connection, request_on_conn,
/// raw_request)` gives the bytes to write, or nothing to close the connection unanswered.
class raw_server {
 public:
  using script_fn =
      std::function<std::optional<std::string>(std::size_t, std::size_t, const std::string&)>;
  explicit raw_server(script_fn script);
  ~raw_server();
  std::uint16_t port() const {
    return port_;
  }
  std::size_t connections() const {
    return connections_;
  }

 private:
  void run();
  script_fn script_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> connections_{0};
  std::thread thread_;
};

/// A socket listening on 127.0.0.1:0 that never accepts: connects succeed (kernel
/// backlog), nothing is ever answered.
class silent_listener {
 public:
  silent_listener();
  ~silent_listener();
  std::uint16_t port() const {
    return port_;
  }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

/// A port that was free a moment ago (bound to 127.0.0.1:0, then released).
std::uint16_t free_port();

/// A temporary directory, removed with its files.
struct temp_dir {
  temp_dir();
  ~temp_dir();
  std::filesystem::path path;
};

/// Writes `<name>.pem` and `<name>.key` (self-signed, EC P-256) for `san` into `dir` with
/// the openssl CLI; false when that fails.
bool make_cert(const std::filesystem::path& dir, const std::string& name, const std::string& san);

/// An HTTPS/1.1 echo server (Beast + Asio SSL) on 127.0.0.1:0 with the given certificate:
/// answers every request 200 with body "tls:" + request body, keeps connections alive, and
/// records connections and the SNI names clients sent.
class tls_receiver {
 public:
  tls_receiver(const std::filesystem::path& cert, const std::filesystem::path& key);
  ~tls_receiver();
  std::uint16_t port() const;
  std::size_t connections() const;
  std::size_t requests() const;
  std::vector<std::string> server_names() const;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace si::test
