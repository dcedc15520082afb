#pragma once
/// Horizon's HTTP API over the generated chain, without sockets: a request goes in; out comes
/// a response (status, headers, and a body made of slices of cached ledgers plus a little
/// owned text, so a 200-record page is assembled without copying records) or a stream to
/// start. Also the /_sim/ control endpoints.

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "tools/horizon_sim/cache.hpp"
#include "tools/horizon_sim/control.hpp"
#include "tools/horizon_sim/world.hpp"

namespace si::sim {

/// The parts of an HTTP request the API looks at.
struct request_view {
  std::string_view method;
  std::string_view path;   ///< up to '?', not decoded
  std::string_view query;  ///< after '?', not decoded
  std::string_view body;
  bool event_stream = false;       ///< the Accept header names text/event-stream
  std::string_view last_event_id;  ///< the Last-Event-ID header, if any
};

/// A response whose body is a sequence of slices.
struct response {
  int status = 200;
  std::string content_type = "application/hal+json; charset=utf-8";
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::string_view> pieces;                  ///< the body, in order
  std::deque<std::string> owned;                         ///< text some pieces point into
  std::vector<std::shared_ptr<const ledger_data>> keep;  ///< ledgers pieces point into
  std::size_t size = 0;                                  ///< body bytes
  uint32_t records = 0;
  endpoint ep = endpoint::unknown;
  /// A field every record of this response must have (for the bad_record fault).
  std::string_view required_field;

  /// Appends owned text to the body.
  void add(std::string text);
  /// Appends a slice that stays valid as long as `keep`/`owned` or static storage does.
  void add_view(std::string_view view);
  /// The body as one string.
  std::string flatten() const;
};

/// What a stream sends.
enum class stream_kind : uint8_t { ledgers, transactions, operations, payments };

/// A stream to start (the request asked for text/event-stream on a streamable endpoint).
struct stream_request {
  stream_kind kind = stream_kind::operations;
  endpoint ep = endpoint::operations;
  uint64_t after = 0;  ///< send records whose paging token is greater
  bool include_failed = false;
  uint32_t limit = 0;  ///< close (with "byebye") after this many records; 0 = never
};

/// The API. Thread-safe: every member may be called from any io thread.
class api {
 public:
  api(const world& w, ledger_cache& cache, chain& c, sim_stats& stats, fault_queue& faults);

  /// Answers one request.
  std::variant<response, stream_request> handle(const request_view& req);

  /// Appends to `out` the SSE events (`id:` + `data:`) of up to `max_events` records of
  /// `stream` with a paging token above `after`, up to the current tip, and advances `after`
  /// past what was scanned. Returns the number of events.
  std::size_t stream_events(const stream_request& stream, uint64_t& after, std::size_t max_events,
                            std::string& out);

  /// The endpoint a path names (for counting requests that a fault answered).
  static endpoint endpoint_of(std::string_view path);

  /// The problem+json answers of the status faults.
  static response server_error();
  static response service_unavailable(uint32_t retry_after_s);
  static response rate_limited(uint32_t retry_after_s);

 private:
  friend class request_context;

  const world& world_;
  ledger_cache& cache_;
  chain& chain_;
  sim_stats& stats_;
  fault_queue& faults_;
  std::atomic<uint64_t> problem_counter_{0};
};

}  // namespace si::sim
