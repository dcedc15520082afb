#include "net/horizon_client.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <random>
#include <stdexcept>
#include <utility>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "domain/horizon.hpp"

namespace si::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

std::string_view to_string(horizon_error_kind kind) noexcept {
  switch (kind) {
    case horizon_error_kind::timeout:
      return "timeout";
    case horizon_error_kind::connect:
      return "connect";
    case horizon_error_kind::tls:
      return "tls";
    case horizon_error_kind::http_status:
      return "http_status";
    case horizon_error_kind::circuit_open:
      return "circuit_open";
    case horizon_error_kind::cancelled:
      return "cancelled";
    case horizon_error_kind::malformed:
      return "malformed";
  }
  return "unknown";
}

namespace {

/// The parts of an http(s) URL the client needs.
struct url_parts {
  bool https = false;
  std::string host;  ///< without IPv6 brackets
  std::uint16_t port = 0;
  std::string rest;  ///< path and query after the authority ("" or starting with '/' or '?')
};

bool starts_with_icase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

std::optional<url_parts> parse_url(std::string_view url) {
  url_parts out;
  if (starts_with_icase(url, "https://")) {
    out.https = true;
    url.remove_prefix(8);
  } else if (starts_with_icase(url, "http://")) {
    url.remove_prefix(7);
  } else {
    return std::nullopt;
  }
  std::size_t end = url.find_first_of("/?#");
  std::string_view authority = url.substr(0, end);
  out.rest = end == std::string_view::npos ? std::string() : std::string(url.substr(end));
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    std::size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return std::nullopt;
    }
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return std::nullopt;
      }
      port_text = after.substr(1);
    }
  } else {
    std::size_t colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
    }
  }
  if (out.host.empty() || out.host.find('@') != std::string::npos) {
    return std::nullopt;
  }
  out.port = out.https ? 443 : 80;
  if (!port_text.empty()) {
    unsigned value = 0;
    for (char c : port_text) {
      if (!std::isdigit(static_cast<unsigned char>(c)) || port_text.size() > 5) {
        return std::nullopt;
      }
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value == 0 || value > 65535) {
      return std::nullopt;
    }
    out.port = static_cast<std::uint16_t>(value);
  }
  return out;
}

/// True when `s` is safe as a request-target (no controls, no spaces).
bool clean_target(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u != 0x7f;
  });
}

/// Retry-After as delta-seconds in ms (HTTP-dates are ignored); 0 when absent or invalid.
std::int64_t parse_retry_after(const header_list& headers) {
  auto value = find_header(headers, "Retry-After");
  if (!value) {
    return 0;
  }
  std::string_view v = *value;
  while (!v.empty() && v.front() == ' ') {
    v.remove_prefix(1);
  }
  while (!v.empty() && v.back() == ' ') {
    v.remove_suffix(1);
  }
  if (v.empty() || v.size() > 9) {
    return 0;
  }
  std::int64_t seconds = 0;
  for (char c : v) {
    if (!std::isdigit(static_cast<unsigned char>(c))) {
      return 0;
    }
    seconds = seconds * 10 + (c - '0');
  }
  return seconds * 1000;
}

/// Fills type/title/detail of `error` from a problem+json (or JSON with title/detail) body.
void fill_problem(horizon_error& error, const header_list& headers) {
  auto type = find_header(headers, "Content-Type");
  if (!type || type->find("json") == std::string_view::npos) {
    return;
  }
  auto body = nlohmann::json::parse(error.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    return;
  }
  auto parsed = domain::parse_problem(body);
  if (auto* p = std::get_if<domain::problem>(&parsed)) {
    error.problem_type = p->type;
    error.title = p->title;
    error.detail = p->detail;
    return;
  }
  auto text = [&](const char* key) -> std::string {
    auto it = body.find(key);
    return it != body.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  error.problem_type = text("type");
  error.title = text("title");
  error.detail = text("detail");
  if (error.detail.empty()) {
    error.detail = text("details");
  }
}

horizon_error make_error(horizon_error_kind kind, std::string message) {
  horizon_error e;
  e.kind = kind;
  e.message = std::move(message);
  return e;
}

}  // namespace

namespace detail {

/// The client's state; get() runs the io_context on the caller's thread.
class horizon_client_core {
 public:
  explicit horizon_client_core(horizon_client_options options)
      : options_(std::move(options)), resolver_(ioc_) {
    auto url = parse_url(options_.base_url);
    if (!url || url->rest.find_first_of("?#") != std::string::npos) {
      throw std::invalid_argument("horizon_client: bad base_url '" + options_.base_url + "'");
    }
    url_ = std::move(*url);
    prefix_ = url_.rest;
    while (!prefix_.empty() && prefix_.back() == '/') {
      prefix_.pop_back();
    }
    bool default_port = url_.port == (url_.https ? 443 : 80);
    bool v6 = url_.host.find(':') != std::string::npos;
    host_header_ = v6 ? "[" + url_.host + "]" : url_.host;
    if (!default_port) {
      host_header_ += ":" + std::to_string(url_.port);
    }
    beast::error_code ec;
    asio::ip::make_address(url_.host, ec);
    host_is_ip_ = !ec;
    if (url_.https) {
      ssl_ctx_.emplace(ssl::context::tls_client);
      ssl_ctx_->set_verify_mode(ssl::verify_peer);
      if (!options_.ca_file.empty()) {
        ssl_ctx_->load_verify_file(options_.ca_file, ec);
        if (ec) {
          throw std::runtime_error("horizon_client: cannot load ca_file '" + options_.ca_file
                                   + "': " + ec.message());
        }
      } else {
        ssl_ctx_->set_default_verify_paths(ec);
      }
    }
    if (!options_.now) {
      options_.now = [] { return steady_clock::now(); };
    }
    std::uint64_t seed = options_.jitter_seed;
    if (seed == 0) {
      seed = (static_cast<std::uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
    }
    rng_.seed(seed);
    tokens_ = std::max(1.0, options_.rate_limit_burst);
    last_refill_ = options_.now();
  }

  ~horizon_client_core() {
    close_connection();
  }

  horizon_result get(std::string_view target, const header_list& extra) {
    std::lock_guard<std::mutex> get_lock(get_mutex_);
    bump([](auto& s) { ++s.requests; });
    if (cancelled_) {
      return cancelled_error();
    }
    auto request_target = make_target(target);
    if (!request_target) {
      return make_error(horizon_error_kind::malformed,
                        "bad request target '" + std::string(target) + "'");
    }
    std::string last_message;
    for (unsigned attempt = 0;; ++attempt) {
      if (!breaker_allows()) {
        auto e = make_error(horizon_error_kind::circuit_open, "circuit breaker open");
        if (!last_message.empty()) {
          e.message += " (last failure: " + last_message + ")";
        }
        return e;
      }
      if (!take_token() || cancelled_) {
        return cancelled_error();
      }
      attempt_outcome out = attempt_once(*request_target, extra);
      if (cancelled_) {
        close_connection();
        return cancelled_error();
      }
      breaker_record(out.breaker_failure);
      if (!out.retryable || attempt >= options_.max_retries) {
        return std::move(out.result);
      }
      if (auto* e = std::get_if<horizon_error>(&out.result)) {
        last_message = e->message;
      }
      milliseconds delay = out.retry_after_ms > 0
                               ? std::min(milliseconds(out.retry_after_ms), options_.backoff_max)
                               : jitter(attempt);
      bump([](auto& s) { ++s.retries; });
      sleep(delay);
      if (cancelled_) {
        return cancelled_error();
      }
    }
  }

  void cancel() {
    {
      std::lock_guard<std::mutex> lock(sleep_mutex_);
      cancelled_ = true;
    }
    sleep_cv_.notify_all();
    // Runs on the get() thread inside its io_context run, so it never races the streams.
    asio::post(ioc_, [this] { abort_io(); });
  }

  bool cancelled() const noexcept {
    return cancelled_;
  }

  horizon_client_stats stats() const {
    std::lock_guard<std::mutex> lock(stats_mutex_);
    return stats_;
  }

 private:
  struct attempt_outcome {
    horizon_result result;
    bool retryable = false;
    bool breaker_failure = false;
    std::int64_t retry_after_ms = 0;
  };

  enum class breaker_state { closed, open, half_open };

  template <class F>
  void bump(F f) {
    std::lock_guard<std::mutex> lock(stats_mutex_);
    f(stats_);
  }

  static horizon_error cancelled_error() {
    return make_error(horizon_error_kind::cancelled, "request cancelled");
  }

  static attempt_outcome failure(horizon_error_kind kind, std::string message, bool retryable) {
    attempt_outcome out{make_error(kind, std::move(message))};
    out.retryable = retryable;
    out.breaker_failure = true;
    return out;
  }

  std::optional<std::string> make_target(std::string_view target) const {
    std::string out;
    if (starts_with_icase(target, "http://") || starts_with_icase(target, "https://")) {
      auto url = parse_url(target);
      if (!url || url->https != url_.https || !iequals(url->host, url_.host)
          || url->port != url_.port) {
        return std::nullopt;
      }
      out = url->rest;
      if (out.empty() || out.front() != '/') {
        out.insert(0, "/");
      }
    } else {
      out = prefix_;
      if (target.empty() || target.front() != '/') {
        out += '/';
      }
      out += target;
    }
    if (auto hash = out.find('#'); hash != std::string::npos) {
      out.erase(hash);
    }
    if (!clean_target(out)) {
      return std::nullopt;
    }
    return out;
  }

  // --- backoff, rate limit, breaker (on the injectable clock) ---

  milliseconds jitter(unsigned retry) {
    std::int64_t cap = options_.backoff_min.count();
    for (unsigned i = 0; i < retry && cap < options_.backoff_max.count(); ++i) {
      cap *= 2;
    }
    cap = std::max<std::int64_t>(0, std::min(cap, options_.backoff_max.count()));
    std::uniform_int_distribution<std::int64_t> dist(0, cap);
    return milliseconds(dist(rng_));
  }

  void sleep(milliseconds delay) {
    if (options_.sleep) {
      options_.sleep(delay);
      return;
    }
    std::unique_lock<std::mutex> lock(sleep_mutex_);
    sleep_cv_.wait_for(lock, delay, [this] { return cancelled_.load(); });
  }

  /// Takes one token, sleeping for the debt first; false when cancelled meanwhile.
  bool take_token() {
    double rate = options_.rate_limit_per_second;
    if (rate <= 0) {
      return true;
    }
    auto now = options_.now();
    double elapsed = std::chrono::duration<double>(now - last_refill_).count();
    last_refill_ = now;
    double burst = std::max(1.0, options_.rate_limit_burst);
    tokens_ = std::min(burst, tokens_ + std::max(0.0, elapsed) * rate);
    tokens_ -= 1.0;
    if (tokens_ < 0) {
      auto wait = static_cast<std::int64_t>(std::ceil(-tokens_ / rate * 1000.0 - 1e-6));
      sleep(milliseconds(wait));
    }
    return !cancelled_;
  }

  bool breaker_allows() {
    if (options_.breaker_threshold == 0 || breaker_ == breaker_state::closed) {
      return true;
    }
    if (breaker_ == breaker_state::open && options_.now() >= open_until_) {
      breaker_ = breaker_state::half_open;  // one trial: get() calls are serialised
    }
    return breaker_ == breaker_state::half_open;
  }

  void breaker_record(bool failed) {
    if (options_.breaker_threshold == 0) {
      return;
    }
    if (!failed) {
      failures_ = 0;
      breaker_ = breaker_state::closed;
    } else if (breaker_ == breaker_state::half_open || ++failures_ >= options_.breaker_threshold) {
      breaker_ = breaker_state::open;
      open_until_ = options_.now() + options_.breaker_cooldown;
      bump([](auto& s) { ++s.breaker_opens; });
    }
    bump([this](auto& s) { s.breaker_open = breaker_ == breaker_state::open; });
  }

  // --- I/O on the caller's thread ---

  /// Runs the io_context until `done` or `deadline`. On the deadline aborts the I/O, waits
  /// for the aborted handlers and returns false.
  bool run_until(const bool& done, steady_clock::time_point deadline) {
    ioc_.restart();
    while (!done) {
      if (ioc_.run_one_until(deadline) == 0 && !done && steady_clock::now() >= deadline) {
        abort_io();
        ioc_.restart();
        while (!done && ioc_.run_one() > 0) {
        }
        return false;
      }
    }
    return true;
  }

  beast::tcp_stream* lowest() {
    if (tls_) {
      return &beast::get_lowest_layer(*tls_);
    }
    return plain_.get();
  }

  /// Closes the socket so pending operations complete with an error (the get() thread only).
  void abort_io() {
    resolver_.cancel();
    if (auto* s = lowest()) {
      beast::error_code ec;
      s->socket().close(ec);
    }
  }

  void close_connection() {
    abort_io();
    plain_.reset();
    tls_.reset();
    buffer_.clear();
    connected_ = false;
  }

  std::optional<attempt_outcome> connect() {
    close_connection();
    auto deadline = steady_clock::now() + options_.connect_timeout;
    bool done = false;
    beast::error_code ec;
    tcp::resolver::results_type endpoints;
    resolver_.async_resolve(url_.host, std::to_string(url_.port),
                            [&](beast::error_code e, tcp::resolver::results_type r) {
                              ec = e;
                              endpoints = std::move(r);
                              done = true;
                            });
    std::string where = url_.host + ":" + std::to_string(url_.port);
    if (!run_until(done, deadline)) {
      return failure(horizon_error_kind::timeout, "timeout resolving " + url_.host, true);
    }
    if (cancelled_) {
      return attempt_outcome{cancelled_error()};
    }
    if (ec) {
      return failure(horizon_error_kind::connect, "resolve " + url_.host + ": " + ec.message(),
                     true);
    }
    if (url_.https) {
      tls_ = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(ioc_, *ssl_ctx_);
    } else {
      plain_ = std::make_unique<beast::tcp_stream>(ioc_);
    }
    done = false;
    lowest()->async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) {
      ec = e;
      done = true;
    });
    if (!run_until(done, deadline)) {
      close_connection();
      return failure(horizon_error_kind::timeout, "connect timeout to " + where, true);
    }
    if (!cancelled_ && ec) {
      close_connection();
      return failure(horizon_error_kind::connect, "connect " + where + ": " + ec.message(), true);
    }
    if (!cancelled_ && tls_) {
      if (!host_is_ip_ && !SSL_set_tlsext_host_name(tls_->native_handle(), url_.host.c_str())) {
        close_connection();
        return failure(horizon_error_kind::tls, "cannot set SNI host name", false);
      }
      tls_->set_verify_mode(ssl::verify_peer);
      tls_->set_verify_callback(ssl::host_name_verification(url_.host));
      done = false;
      tls_->async_handshake(ssl::stream_base::client, [&](beast::error_code e) {
        ec = e;
        done = true;
      });
      if (!run_until(done, deadline)) {
        close_connection();
        return failure(horizon_error_kind::timeout, "TLS handshake timeout with " + where, true);
      }
      if (!cancelled_ && ec) {
        std::string message = "TLS handshake with " + where + ": " + ec.message();
        long verify = SSL_get_verify_result(tls_->native_handle());
        if (verify != X509_V_OK) {
          message += std::string(" (certificate: ") + X509_verify_cert_error_string(verify) + ")";
        }
        close_connection();
        return failure(horizon_error_kind::tls, std::move(message), false);
      }
    }
    if (cancelled_) {
      return attempt_outcome{cancelled_error()};
    }
    connected_ = true;
    bump([](auto& s) { ++s.connects; });
    return std::nullopt;
  }

  template <class Stream>
  void start_exchange(Stream& stream, http::request<http::empty_body>& request,
                      http::response_parser<http::string_body>& parser, beast::error_code& ec,
                      bool& done) {
    http::async_write(stream, request, [&](beast::error_code e, std::size_t) {
      if (e) {
        ec = e;
        done = true;
        return;
      }
      http::async_read(stream, buffer_, parser, [&](beast::error_code e2, std::size_t) {
        ec = e2;
        done = true;
      });
    });
  }

  attempt_outcome attempt_once(const std::string& target, const header_list& extra) {
    bump([](auto& s) { ++s.attempts; });
    for (int pass = 0;; ++pass) {
      bool reused = connected_;
      if (!connected_) {
        if (auto failed = connect()) {
          return std::move(*failed);
        }
      }
      http::request<http::empty_body> request{http::verb::get, target, 11};
      request.set(http::field::host, host_header_);
      request.set(http::field::user_agent, options_.user_agent);
      request.set(http::field::accept, "application/hal+json, application/json");
      for (const auto& [name, value] : extra) {
        request.set(name, value);
      }
      http::response_parser<http::string_body> parser;
      parser.header_limit(64 * 1024);
      // Beast reads at most the buffer's free capacity per receive (512 bytes minimum), and
      // the parser moves the body out as it goes, so an unreserved buffer stayed ~0.5 KiB:
      // ~4 receives and 4 epoll waits per ingested operation (strace). With room for 64 KiB
      // a page of 200 operations takes a handful of receives.
      buffer_.reserve(read_buffer_bytes);
      parser.body_limit(options_.body_limit);
      beast::error_code ec;
      bool done = false;
      if (tls_) {
        start_exchange(*tls_, request, parser, ec, done);
      } else {
        start_exchange(*plain_, request, parser, ec, done);
      }
      bool in_time = run_until(done, steady_clock::now() + options_.request_timeout);
      if (cancelled_) {
        close_connection();
        return attempt_outcome{cancelled_error()};
      }
      if (!in_time) {
        close_connection();
        return failure(horizon_error_kind::timeout,
                       "no response to GET " + target + " within "
                           + std::to_string(options_.request_timeout.count()) + " ms",
                       true);
      }
      if (ec == ssl::error::stream_truncated && parser.is_header_done() && !parser.is_done()) {
        beast::error_code eof_ec;
        parser.put_eof(eof_ec);  // body delimited by EOF and the peer skipped close_notify
        if (!eof_ec && parser.is_done()) {
          ec = {};
        }
      }
      if (ec) {
        close_connection();
        if (reused && pass == 0 && !parser.got_some()) {
          bump([](auto& s) { ++s.reconnects; });  // the server closed the kept-alive socket
          continue;
        }
        if (ec == http::error::body_limit || ec == http::error::header_limit
            || (ec.category() == http::make_error_code(http::error::end_of_stream).category()
                && ec != http::error::partial_message && ec != http::error::end_of_stream)) {
          return failure(horizon_error_kind::malformed,
                         "bad response to GET " + target + ": " + ec.message(), false);
        }
        return failure(horizon_error_kind::connect,
                       "connection lost during GET " + target + ": " + ec.message(), true);
      }
      auto message = parser.release();
      if (!message.keep_alive()) {
        close_connection();
      }
      return classify(std::move(message));
    }
  }

  attempt_outcome classify(http::response<http::string_body> message) {
    horizon_response response;
    response.status = static_cast<int>(message.result_int());
    for (const auto& field : message) {
      response.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    response.body = std::move(message.body());
    int status = response.status;
    if (status >= 200 && status < 400) {
      return attempt_outcome{std::move(response)};
    }
    horizon_error error =
        make_error(horizon_error_kind::http_status, "HTTP " + std::to_string(status));
    error.status = status;
    if (status == 429 || status == 503) {
      error.retry_after_ms = parse_retry_after(response.headers);
    }
    error.body = std::move(response.body);
    fill_problem(error, response.headers);
    if (!error.title.empty()) {
      error.message += ": " + error.title;
    }
    if (!error.detail.empty()) {
      error.message += " - " + error.detail;
    }
    attempt_outcome out{error};
    out.retry_after_ms = error.retry_after_ms;
    out.retryable = status == 429 || status >= 500;
    out.breaker_failure = out.retryable;
    return out;
  }

  horizon_client_options options_;
  url_parts url_;
  std::string prefix_;
  std::string host_header_;
  bool host_is_ip_ = false;

  // Declared before the streams: they must be destroyed first.
  asio::io_context ioc_;
  std::optional<ssl::context> ssl_ctx_;
  tcp::resolver resolver_;
  std::unique_ptr<beast::tcp_stream> plain_;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls_;
  static constexpr std::size_t read_buffer_bytes = 64 * 1024;
  beast::flat_buffer buffer_;
  bool connected_ = false;

  std::mutex get_mutex_;
  std::atomic<bool> cancelled_{false};
  std::mutex sleep_mutex_;
  std::condition_variable sleep_cv_;

  std::mt19937_64 rng_;
  double tokens_ = 0;
  steady_clock::time_point last_refill_;
  breaker_state breaker_ = breaker_state::closed;
  unsigned failures_ = 0;
  steady_clock::time_point open_until_;

  mutable std::mutex stats_mutex_;
  horizon_client_stats stats_;
};

}  // namespace detail

horizon_client::horizon_client(horizon_client_options options)
    : core_(std::make_unique<detail::horizon_client_core>(std::move(options))) {}

horizon_client::~horizon_client() = default;

horizon_result horizon_client::get(std::string_view target, const header_list& extra_headers) {
  return core_->get(target, extra_headers);
}

void horizon_client::cancel() {
  core_->cancel();
}

bool horizon_client::cancelled() const noexcept {
  return core_->cancelled();
}

horizon_client_stats horizon_client::stats() const {
  return core_->stats();
}

}  // namespace si::net
