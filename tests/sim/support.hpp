#pragma once
/// Test support for the Horizon simulator: the binary as a child process (bounded start-up
/// and shutdown), a client with retries off, fixture access, JSON key-set comparison, and a
/// raw loopback reader of Horizon event streams (chunked HTTP + SSE framing).

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "domain/horizon.hpp"
#include "net/horizon_client.hpp"

namespace si::test {

using namespace std::chrono_literals;
using nlohmann::json;

/// Bound on start-up, shutdown and any single wait in these tests.
inline constexpr std::chrono::milliseconds sim_wait = 10s;

/// A fixed close time for the start ledger, so runs are byte-identical.
inline constexpr std::string_view fixed_base_time = "1700000000";

/// A horizon-sim child process listening on 127.0.0.1 (port chosen by the simulator).
class sim_process {
 public:
  /// Starts the simulator with `args` (plus --port 0) and waits, bounded, for its listening
  /// line. Throws std::runtime_error when it does not come.
  explicit sim_process(std::vector<std::string> args);
  sim_process(const sim_process&) = delete;
  sim_process& operator=(const sim_process&) = delete;
  /// Kills (SIGKILL) and reaps the child if it still runs.
  ~sim_process();

  uint16_t port() const {
    return port_;
  }
  pid_t pid() const {
    return pid_;
  }
  /// "http://127.0.0.1:<port>".
  std::string base_url() const;
  /// The listening line as printed.
  const std::string& banner() const {
    return banner_;
  }

  /// Sends `signal` and waits (bounded) for the exit; the exit code, or -1 when the child did
  /// not exit in time (it is then killed), or 128+n when a signal n ended it.
  int stop(int signal, std::chrono::milliseconds limit = sim_wait);

 private:
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int stdout_fd_ = -1;
  uint16_t port_ = 0;
  std::string banner_;
  bool reaped_ = false;
};

/// What a simulator run that ends by itself printed and returned.
struct run_result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

/// Runs horizon-sim with `args` until it exits (bounded; killed after `limit`).
run_result run_sim(std::vector<std::string> args, std::chrono::milliseconds limit = sim_wait);

/// Options for a client of `sim`: no retries, no rate limit, no breaker.
net::horizon_client_options client_options(const sim_process& sim,
                                           std::chrono::milliseconds timeout = 5s);

/// GET `target`, which must answer 2xx; the body.
std::string get_body(net::horizon_client& client, std::string_view target);
/// GET `target` and decode it as JSON (must answer 2xx).
json get_json(net::horizon_client& client, std::string_view target);
/// GET `target`, which must fail; the error.
net::horizon_error get_error(net::horizon_client& client, std::string_view target);
/// The HTTP status of `target` (2xx or the error's status; 0 for transport errors).
int status_of(net::horizon_client& client, std::string_view target);

/// A raw HTTP/1.1 exchange (Connection: close), for methods the client lacks.
struct raw_reply {
  int status = 0;
  std::string head;
  std::string body;
};
raw_reply http_call(uint16_t port, std::string_view method, std::string_view target,
                    std::string_view body = {});

/// POSTs a fault rule (JSON) to /_sim/fault; REQUIREs 200 in the caller via the status.
raw_reply post_fault(const sim_process& sim, const json& rule);

/// A fixture of /work/shared/horizon-fixtures, as text or decoded.
std::string fixture_text(const std::string& name);
json fixture(const std::string& name);

/// The model in `result`, or a test failure naming the parse error.
template <class T>
T parsed_ok(domain::parsed<T> result) {
  if (auto* error = std::get_if<domain::parse_error>(&result)) {
    throw std::runtime_error("unexpected parse error: " + error->message());
  }
  return std::get<T>(std::move(result));
}

/// Every record of a collection, following `_links.next` from `first_target` until a page
/// comes back empty (bounded by `max_pages`). Each page must parse as a page of T.
template <class T>
std::vector<json> walk(net::horizon_client& client, const std::string& first_target,
                       std::size_t max_pages = 10'000);

/// The dotted key paths of `value` ("a", "a.b", "list[].c"), recursively through objects
/// and arrays of objects, after `normalize`.
std::set<std::string> key_paths(const json& value);

/// Drops `*asset_code` / `*asset_issuer` keys (their presence depends on the asset being
/// native) after checking they are present exactly when the sibling `*asset_type` is not
/// "native"; then drops the dotted `optional` paths. Throws when the asset rule is broken.
json normalize(json value, const std::vector<std::string>& optional = {});

/// The parts of an event stream read so far.
class sse_reader {
 public:
  /// Connects to 127.0.0.1:port and sends GET `target` with Accept: text/event-stream and
  /// `extra_headers` (each "Name: value"); reads the response head (bounded).
  sse_reader(uint16_t port, const std::string& target,
             const std::vector<std::string>& extra_headers = {});
  sse_reader(const sse_reader&) = delete;
  sse_reader& operator=(const sse_reader&) = delete;
  ~sse_reader();

  int status() const {
    return status_;
  }
  const std::string& head() const {
    return head_;
  }
  /// Every complete event so far.
  const std::vector<domain::sse_event>& events() const {
    return events_;
  }
  /// True once the server ended the stream (terminating chunk or connection closed).
  bool ended() const {
    return ended_;
  }
  /// True when the end was the chunked terminator (a clean end of the response).
  bool ended_cleanly() const {
    return clean_end_;
  }

  /// Reads until `done()` holds, the stream ends, or `limit` passes; returns done().
  bool read_until(const std::function<bool()>& done, std::chrono::milliseconds limit = sim_wait);

 private:
  void feed(std::string_view bytes);

  int fd_ = -1;
  int status_ = 0;
  std::string head_;
  std::string raw_;  // bytes of the chunked body not yet decoded
  bool ended_ = false;
  bool clean_end_ = false;
  domain::sse_parser parser_;
  std::vector<domain::sse_event> events_;
};

}  // namespace si::test
