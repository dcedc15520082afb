#pragma once
/// A `text/event-stream` (Server-Sent Events) parser following the WHATWG HTML rules, fed
/// in chunks as they arrive. It only frames events; `horizon.hpp` turns their data into
/// Horizon models (`parse_stream_event`).
///
/// Horizon frames a stream as `retry: 1000` / `event: open` / `data: "hello"`, then one
/// `id: <paging_token>` + `data: <one-line JSON>` per record, and ends with
/// `event: close` / `data: "byebye"`; errors come as `event: error`.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace si::domain {

/// One dispatched event.
struct sse_event {
  /// The `id:` of this event, or the last one seen earlier in the stream (as the spec says);
  /// empty when none was ever given.
  std::string id;
  /// True when this event's own block carried an `id:` line.
  bool has_own_id = false;
  /// The `event:` field; "message" when the block has none.
  std::string event = "message";
  /// The `data:` lines joined with '\n' (no trailing newline).
  std::string data;
  /// The `retry:` value (ms) if this event's block carried a valid one.
  std::optional<int64_t> retry_ms;
};

/// Incremental SSE framing. Lines end with LF, CRLF or CR (a CR at the end of one chunk
/// and an LF at the start of the next are one line end). Comment lines (`:` first) are
/// skipped, unknown fields are ignored, a line without ':' is a field with an empty value,
/// one space after the ':' is dropped, a leading UTF-8 BOM is dropped, a block with no
/// `data:` dispatches nothing, `retry:` with anything but digits is ignored, an `id:` with
/// a NUL is ignored.
class sse_parser {
 public:
  /// Consumes `chunk`; returns the events whose closing blank line it completed, in order.
  std::vector<sse_event> feed(std::string_view chunk);

  /// The end of the stream. The spec discards an event with no closing blank line; this
  /// returns it instead (nullopt when there is none), so the caller decides. A server that
  /// died mid-event leaves truncated data here: an ingestor should drop it, a reader of a
  /// complete capture may keep it. `last_event_id` and `retry_ms` survive, so the parser can
  /// carry on as the stream resumed after a reconnect.
  std::optional<sse_event> finish();

  /// The last `id:` seen: what a reconnect sends as `Last-Event-ID` (or as Horizon's cursor).
  const std::string& last_event_id() const {
    return last_event_id_;
  }
  /// The last valid `retry:` value (ms) seen in the stream.
  std::optional<int64_t> retry_ms() const {
    return retry_ms_;
  }

 private:
  void process_line(std::string_view line, std::vector<sse_event>& out);
  void dispatch(std::vector<sse_event>& out);

  std::string line_;      // the unfinished line carried over from the previous chunk
  bool skip_lf_ = false;  // the previous chunk ended with CR: an LF first is its pair
  bool started_ = false;  // the BOM check happened
  bool block_started_ = false;
  bool block_has_id_ = false;
  bool block_has_data_ = false;
  std::string data_;
  std::string event_;
  std::optional<int64_t> block_retry_;
  std::string last_event_id_;
  std::optional<int64_t> retry_ms_;
};

/// The result of parsing a whole event-stream text (a capture or a test fixture).
struct sse_stream {
  std::vector<sse_event> events;          ///< every event ended by a blank line
  std::optional<sse_event> unterminated;  ///< the event left open at the end, if any
  std::string last_event_id;              ///< as `sse_parser::last_event_id`
  std::optional<int64_t> retry_ms;        ///< as `sse_parser::retry_ms`
};

/// Feeds `text` to a fresh `sse_parser` and finishes it.
sse_stream parse_sse(std::string_view text);

}  // namespace si::domain
