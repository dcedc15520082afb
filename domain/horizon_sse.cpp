#include "domain/horizon_sse.hpp"

namespace si::domain {

namespace {

constexpr std::string_view utf8_bom = "\xEF\xBB\xBF";

}  // namespace

std::vector<sse_event> sse_parser::feed(std::string_view chunk) {
  std::vector<sse_event> out;
  if (!started_) {
    // The BOM may arrive split over chunks: wait until 3 bytes are known.
    line_.append(chunk);
    if (line_.size() < utf8_bom.size() && std::string_view(utf8_bom).starts_with(line_)) {
      return out;
    }
    started_ = true;
    std::string pending;
    pending.swap(line_);
    std::string_view rest = pending;
    if (rest.starts_with(utf8_bom)) {
      rest.remove_prefix(utf8_bom.size());
    }
    return feed(rest);
  }
  std::size_t start = 0;
  for (std::size_t i = 0; i < chunk.size(); ++i) {
    const char c = chunk[i];
    if (skip_lf_) {
      skip_lf_ = false;
      if (c == '\n') {
        start = i + 1;
        continue;
      }
    }
    if (c != '\n' && c != '\r') {
      continue;
    }
    if (line_.empty()) {
      process_line(chunk.substr(start, i - start), out);
    } else {
      line_.append(chunk.substr(start, i - start));
      process_line(line_, out);
      line_.clear();
    }
    skip_lf_ = c == '\r';
    start = i + 1;
  }
  line_.append(chunk.substr(start));
  return out;
}

std::optional<sse_event> sse_parser::finish() {
  std::vector<sse_event> out;
  if (!line_.empty()) {
    std::string last;
    last.swap(line_);
    process_line(last, out);
  }
  // The spec's end-of-stream rule drops the open block; hand it back instead.
  dispatch(out);
  std::optional<sse_event> result;
  if (!out.empty()) {
    result = std::move(out.back());
  }
  skip_lf_ = false;
  started_ = false;
  return result;
}

void sse_parser::process_line(std::string_view line, std::vector<sse_event>& out) {
  if (line.empty()) {
    dispatch(out);
    return;
  }
  if (line.front() == ':') {
    return;  // a comment (Horizon sends none, proxies may send keep-alives)
  }
  std::string_view field = line;
  std::string_view value;
  if (const auto colon = line.find(':'); colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') {
      value.remove_prefix(1);
    }
  }
  block_started_ = true;
  if (field == "data") {
    if (block_has_data_) {
      data_.push_back('\n');
    }
    data_.append(value);
    block_has_data_ = true;
  } else if (field == "event") {
    event_.assign(value);
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) {
      last_event_id_.assign(value);
      block_has_id_ = true;
    }
  } else if (field == "retry") {
    // At most 18 digits always fit in int64; a longer value is not read at all (reading it
    // first overflowed, which is undefined behaviour).
    bool digits = !value.empty() && value.size() <= 18;
    int64_t ms = 0;
    for (std::size_t i = 0; digits && i < value.size(); ++i) {
      const char c = value[i];
      if (c < '0' || c > '9') {
        digits = false;
        break;
      }
      ms = ms * 10 + (c - '0');
    }
    if (digits) {
      retry_ms_ = ms;
      block_retry_ = ms;
    }
  }
}

void sse_parser::dispatch(std::vector<sse_event>& out) {
  if (block_started_ && block_has_data_) {
    sse_event event;
    event.id = last_event_id_;
    event.has_own_id = block_has_id_;
    if (!event_.empty()) {
      event.event = event_;
    }
    event.data = std::move(data_);
    event.retry_ms = block_retry_;
    out.push_back(std::move(event));
  }
  block_started_ = false;
  block_has_id_ = false;
  block_has_data_ = false;
  data_.clear();
  event_.clear();
  block_retry_.reset();
}

sse_stream parse_sse(std::string_view text) {
  sse_parser parser;
  sse_stream stream;
  stream.events = parser.feed(text);
  stream.unterminated = parser.finish();
  stream.last_event_id = parser.last_event_id();
  stream.retry_ms = parser.retry_ms();
  return stream;
}

}  // namespace si::domain
