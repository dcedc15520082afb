#include "net/webhook_client.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <limits>
#include <list>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "config/logging.hpp"
#include "net/thread_name.hpp"

namespace si::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

std::string_view to_string(webhook_error_kind kind) noexcept {
  switch (kind) {
    case webhook_error_kind::none:
      return "none";
    case webhook_error_kind::invalid_request:
      return "invalid_request";
    case webhook_error_kind::blocked:
      return "blocked";
    case webhook_error_kind::resolve:
      return "resolve";
    case webhook_error_kind::connect:
      return "connect";
    case webhook_error_kind::tls:
      return "tls";
    case webhook_error_kind::timeout:
      return "timeout";
    case webhook_error_kind::connection:
      return "connection";
    case webhook_error_kind::protocol:
      return "protocol";
    case webhook_error_kind::overloaded:
      return "overloaded";
    case webhook_error_kind::cancelled:
      return "cancelled";
  }
  return "unknown";
}

namespace {

/// RFC 9110 token characters (header names).
bool is_token(std::string_view s) {
  static constexpr std::string_view extra = "!#$%&'*+-.^_`|~";
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || extra.find(c) != std::string_view::npos;
  });
}

/// Header fields the client frames itself; a request may not set them.
bool client_owned_header(std::string_view name) {
  static constexpr std::string_view owned[] = {
      "host", "content-length", "transfer-encoding", "connection", "keep-alive",
      "te",   "trailer",        "upgrade",           "expect",     "proxy-connection"};
  return std::any_of(std::begin(owned), std::end(owned),
                     [&](std::string_view o) { return iequals(o, name); });
}

/// An error message for a request header, or "" when every field is acceptable.
std::string check_headers(const header_list& headers) {
  for (const auto& [name, value] : headers) {
    if (!is_token(name)) {
      return "bad header name '" + name + "'";
    }
    if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      return "header '" + name + "' has a CR, LF or NUL in its value";
    }
    if (client_owned_header(name)) {
      return "header '" + name + "' is set by the client";
    }
  }
  return {};
}

/// Errors that mean "the server closed the kept-alive connection before answering".
bool is_stale_error(const error_code& ec) {
  return ec == asio::error::eof || ec == asio::error::connection_reset
         || ec == asio::error::broken_pipe || ec == http::error::end_of_stream
         || ec == ssl::error::stream_truncated;
}

/// Beast HTTP parse errors (the response is not valid HTTP), as opposed to I/O errors.
bool is_parse_error(const error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_method).category()
         && ec != http::error::end_of_stream && ec != http::error::partial_message
         && ec != http::error::need_more && ec != http::error::need_buffer;
}

webhook_result failure(webhook_error_kind kind, std::string message) {
  webhook_result r;
  r.error = kind;
  r.message = std::move(message);
  return r;
}

std::string endpoint_text(const tcp::endpoint& ep) {
  auto address = ep.address();
  std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  return host + ":" + std::to_string(ep.port());
}

}  // namespace

namespace detail {

using strand_t = asio::strand<asio::io_context::executor_type>;

class connection;
struct destination;

/// Where a job is; changed on the scheduler strand only.
enum class job_phase {
  queued,         ///< waiting in its destination's queue
  resolving,      ///< holds a slot; the host name lookup is running
  on_connection,  ///< holds a slot; a connection runs it (connect, TLS, HTTP)
  finished,       ///< slot released (or never taken)
};

/// One post(): the request, its completion and its bookkeeping.
struct job {
  webhook_request request;
  webhook_completion completion;
  webhook_url url;
  steady::time_point posted;
  steady::time_point deadline;
  milliseconds timeout{0};
  /// Set by whoever calls the completion (exactly once), on any client thread.
  std::atomic<bool> completed{false};

  // --- scheduler strand only ---
  job_phase phase = job_phase::queued;
  std::uint64_t id = 0;  ///< arrival order; also the key of resolving jobs
  destination* dest = nullptr;
  std::list<std::shared_ptr<job>>::iterator queue_pos;
  std::shared_ptr<connection> conn;
  std::optional<asio::steady_timer> timer;
  bool resent = false;  ///< the single resend after a stale kept-alive connection was used
};

/// The pool and queue of one scheme + host + port (scheduler strand only).
struct destination {
  std::string key;
  std::size_t active = 0;                         ///< slots held (resolving or on a connection)
  std::list<std::shared_ptr<job>> waiting;        ///< FIFO
  std::vector<std::shared_ptr<connection>> idle;  ///< oldest first; reuse takes the newest
  std::optional<std::uint64_t> ready_id;          ///< its entry in the core's ready set
};

/// Lets lookup helper threads post back only while the core is alive.
struct lookup_sink {
  std::mutex mutex;
  webhook_client_core* core = nullptr;
};

class webhook_client_core {
 public:
  explicit webhook_client_core(webhook_client_options options);
  ~webhook_client_core();

  void post(webhook_request request, webhook_completion completion);
  void cancel_all();
  void stop();
  webhook_client_stats stats() const;

  // --- used by connections ---

  /// Calls the job's completion unless someone already did; true when this call did.
  bool complete(job& j, webhook_result result);
  void on_finished(std::shared_ptr<job> j, std::shared_ptr<connection> c, bool reusable);
  void on_stale(std::shared_ptr<job> j, std::shared_ptr<connection> c);

  // Declared before the io_context: connections destroyed with its pending handlers still
  // count in open_ and use ssl_ctx_.
  const webhook_client_options options_;
  std::shared_ptr<spdlog::logger> log_;
  ssl::context ssl_ctx_{ssl::context::tls_client};

  std::atomic<std::uint64_t> in_flight_{0};
  std::atomic<std::uint64_t> queued_{0};
  std::atomic<std::uint64_t> open_{0};
  std::atomic<std::uint64_t> idle_count_{0};
  std::atomic<std::uint64_t> opened_{0};
  std::atomic<std::uint64_t> reused_{0};
  std::atomic<std::uint64_t> requests_{0};
  std::atomic<std::uint64_t> completed_{0};
  std::atomic<std::uint64_t> delivered_{0};
  std::atomic<std::uint64_t> overloaded_{0};
  std::atomic<std::uint64_t> blocked_{0};
  std::atomic<std::uint64_t> timeouts_{0};
  std::atomic<std::uint64_t> cancelled_{0};
  std::atomic<std::uint64_t> stale_retries_{0};

  asio::io_context ioc_;
  strand_t sched_;

 private:
  // --- scheduler strand ---
  void on_post(std::shared_ptr<job> j);
  void start(const std::shared_ptr<job>& j);
  void begin_lookup(const std::shared_ptr<job>& j);
  void on_resolved(std::uint64_t id, resolve_result r);
  void on_deadline(const std::shared_ptr<job>& j);
  void release_slot(const std::shared_ptr<job>& j);
  void update_ready(destination& d);
  void dispatch();
  void maybe_erase(destination& d);
  void park_idle(destination& d, std::shared_ptr<connection> c);
  void arm_idle_sweep();
  void on_idle_sweep();
  void cancel_everything(bool stopping);
  void close_connection(const std::shared_ptr<connection>& c);

  /// Completes `j` on a client thread (not inline in the caller of post()).
  void complete_later(std::shared_ptr<job> j, webhook_result result);

  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
  std::mutex threads_mutex_;
  std::condition_variable threads_cv_;
  std::size_t running_ = 0;

  std::mutex lifecycle_mutex_;
  bool stopped_ = false;  ///< stop() began: post() completes inline with `cancelled`
  std::shared_ptr<lookup_sink> sink_ = std::make_shared<lookup_sink>();

  // --- scheduler strand only ---
  bool stopping_ = false;
  std::uint64_t next_id_ = 0;
  std::unordered_map<std::string, std::unique_ptr<destination>> destinations_;
  /// Destinations with waiting jobs and a free per-destination slot, by their oldest job.
  std::set<std::pair<std::uint64_t, destination*>> ready_;
  std::unordered_map<std::uint64_t, std::shared_ptr<job>> resolving_;
  std::vector<std::shared_ptr<job>> active_;  ///< jobs holding a slot (unordered)
  asio::steady_timer idle_timer_;
  bool idle_timer_armed_ = false;
};

/// One client connection (plain or TLS) on its own strand. Its I/O members are touched on
/// its strand only; `dest`/`idle_since` belong to the scheduler strand.
class connection : public std::enable_shared_from_this<connection> {
 public:
  connection(webhook_client_core& core, const webhook_url& url)
      : core_(core),
        strand_(asio::make_strand(core.ioc_)),
        https_(url.https),
        host_(url.host),
        host_is_ip_(url.host_is_ip) {
    ++core_.open_;
  }
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;
  ~connection() {
    --core_.open_;
  }

  const strand_t& strand() const {
    return strand_;
  }

  /// Connects to the vetted endpoints (TLS handshake for https), then runs `j`.
  void start_connect(std::shared_ptr<job> j, std::vector<tcp::endpoint> endpoints) {
    take(std::move(j), false);
    phase_ = phase::connecting;
    target_.clear();
    for (std::size_t i = 0; i < endpoints.size() && i < 4; ++i) {
      target_ += (i == 0 ? "" : ", ") + endpoint_text(endpoints[i]);
    }
    if (endpoints.size() > 4) {
      target_ += " (+" + std::to_string(endpoints.size() - 4) + " more)";
    }
    if (https_) {
      tls_.emplace(strand_, core_.ssl_ctx_);
    } else {
      plain_.emplace(strand_);
    }
    lowest().async_connect(endpoints,
                           [self = shared_from_this()](error_code ec, const tcp::endpoint& ep) {
                             self->on_connect(ec, ep);
                           });
  }

  /// Runs `j` on this already established, kept-alive connection.
  void start_request(std::shared_ptr<job> j) {
    take(std::move(j), true);
    send();
  }

  /// Ends `j`'s I/O (socket closed) with `kind` when this connection still runs it.
  void abort(const job* j, webhook_error_kind kind, std::string message) {
    if (job_.get() != j || !job_) {
      return;
    }
    abort_kind_ = kind;
    abort_message_ = std::move(message);
    shut();
  }

  /// Closes the socket (any pending operation completes with operation_aborted).
  void shut() {
    if (plain_ || tls_) {
      error_code ec;
      lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
      lowest().socket().close(ec);
    }
  }

  /// For an idle connection, on the scheduler strand (no operation is pending): true when
  /// nothing was received since the last response (no EOF, no stray bytes).
  bool looks_alive() {
    if (!(plain_ || tls_) || buffer_.size() != 0 || !lowest().socket().is_open()) {
      return false;
    }
    char c = 0;
    auto n = ::recv(lowest().socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  // --- scheduler strand only ---
  destination* dest = nullptr;
  steady::time_point idle_since;

 private:
  enum class phase { idle, connecting, tls, writing, reading_header, reading_body };

  beast::tcp_stream& lowest() {
    return tls_ ? beast::get_lowest_layer(*tls_) : *plain_;
  }

  template <class F>
  void with_stream(F&& f) {
    if (tls_) {
      f(*tls_);
    } else {
      f(*plain_);
    }
  }

  void take(std::shared_ptr<job> j, bool reused) {
    job_ = std::move(j);
    reused_ = reused;
    abort_kind_.reset();
    abort_message_.clear();
  }

  std::string phase_text() const {
    switch (phase_) {
      case phase::connecting:
        return "connecting to " + target_;
      case phase::tls:
        return "TLS handshake with " + remote_;
      case phase::writing:
        return "sending the request to " + remote_;
      case phase::reading_header:
        return "waiting for the response from " + remote_;
      case phase::reading_body:
        return "reading the response body from " + remote_;
      case phase::idle:
        break;
    }
    return "idle";
  }

  void on_connect(error_code ec, const tcp::endpoint& ep) {
    if (ec) {
      fail(ec);
      return;
    }
    remote_ = endpoint_text(ep);
    error_code ignored;
    lowest().socket().set_option(tcp::no_delay(true), ignored);
    if (!tls_) {
      ++core_.opened_;
      send();
      return;
    }
    phase_ = phase::tls;
    if (!host_is_ip_ && !SSL_set_tlsext_host_name(tls_->native_handle(), host_.c_str())) {
      finish_with(failure(webhook_error_kind::tls, "cannot set the SNI host name"), false);
      return;
    }
    tls_->set_verify_mode(ssl::verify_peer);
    tls_->set_verify_callback(ssl::host_name_verification(host_));
    tls_->async_handshake(ssl::stream_base::client,
                          [self = shared_from_this()](error_code e) { self->on_handshake(e); });
  }

  void on_handshake(error_code ec) {
    if (ec) {
      fail(ec);
      return;
    }
    ++core_.opened_;
    send();
  }

  void send() {
    phase_ = phase::writing;
    const job& j = *job_;
    request_.emplace(http::verb::post, j.url.target, 11);
    request_->set(http::field::host, j.url.host_header());
    bool has_agent = false;
    bool has_type = false;
    for (const auto& [name, value] : j.request.headers) {
      has_agent = has_agent || iequals(name, "User-Agent");
      has_type = has_type || iequals(name, "Content-Type");
      request_->insert(name, value);
    }
    if (!has_agent) {
      request_->set(http::field::user_agent, core_.options_.user_agent);
    }
    if (!has_type) {
      request_->set(http::field::content_type, "application/json");
    }
    request_->body() = j.request.body;
    request_->keep_alive(true);
    request_->prepare_payload();
    with_stream([this](auto& stream) {
      http::async_write(stream, *request_, [self = shared_from_this()](error_code ec, std::size_t) {
        self->on_write(ec);
      });
    });
  }

  void on_write(error_code ec) {
    request_.reset();
    if (ec) {
      fail(ec);
      return;
    }
    interim_ = 0;
    read_header();
  }

  void read_header() {
    phase_ = phase::reading_header;
    parser_.emplace();
    parser_->header_limit(
        static_cast<std::uint32_t>(std::min<std::size_t>(core_.options_.header_limit, UINT32_MAX)));
    // Counted in read_body against response_body_limit. Not boost::none: Beast 1.74
    // compares `len > body_limit_` with the optional, and anything is greater than none.
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    with_stream([this](auto& stream) {
      http::async_read_header(
          stream, buffer_, *parser_,
          [self = shared_from_this()](error_code ec, std::size_t) { self->on_header(ec); });
    });
  }

  void on_header(error_code ec) {
    if (ec) {
      fail(ec);
      return;
    }
    int status = static_cast<int>(parser_->get().result_int());
    if (status >= 100 && status < 200 && status != 101 && ++interim_ <= 8) {
      read_header();  // an interim response (100 Continue, 103 Early Hints): skip it
      return;
    }
    body_prefix_.clear();
    body_read_ = 0;
    read_body();
  }

  void read_body() {
    if (parser_->is_done()) {
      finish_response(false);
      return;
    }
    phase_ = phase::reading_body;
    std::size_t room = core_.options_.response_body_limit + 1 - body_read_;
    parser_->get().body().data = chunk_.data();
    parser_->get().body().size = std::min(chunk_.size(), room);
    with_stream([this](auto& stream) {
      http::async_read(
          stream, buffer_, *parser_,
          [self = shared_from_this()](error_code ec, std::size_t) { self->on_body(ec); });
    });
  }

  void on_body(error_code ec) {
    std::size_t asked =
        std::min(chunk_.size(), core_.options_.response_body_limit + 1 - body_read_);
    std::size_t got = asked - parser_->get().body().size;
    if (body_prefix_.size() < webhook_body_prefix_limit) {
      body_prefix_.append(chunk_.data(),
                          std::min(got, webhook_body_prefix_limit - body_prefix_.size()));
    }
    body_read_ += got;
    if (ec == http::error::need_buffer) {
      ec = {};
    }
    if (ec == ssl::error::stream_truncated && parser_->is_header_done() && !parser_->is_done()) {
      error_code eof_ec;
      parser_->put_eof(eof_ec);  // body delimited by EOF and the peer skipped close_notify
      if (!eof_ec && parser_->is_done()) {
        ec = {};
      }
    }
    if (ec) {
      fail(ec);
      return;
    }
    if (body_read_ > core_.options_.response_body_limit) {
      finish_response(true);
      return;
    }
    read_body();
  }

  void finish_response(bool truncated) {
    webhook_result r;
    r.status = static_cast<int>(parser_->get().result_int());
    r.body_prefix = std::move(body_prefix_);
    r.body_truncated = truncated;
    bool reusable = !truncated && !abort_kind_ && parser_->is_done() && parser_->get().keep_alive()
                    && r.status != 101 && buffer_.size() == 0;
    finish_with(std::move(r), reusable);
  }

  /// Maps an I/O error of the current phase to a result (or a stale-connection resend).
  void fail(error_code ec) {
    if (abort_kind_) {
      finish_with(failure(*abort_kind_, abort_message_ + " (" + phase_text() + ")"), false);
      return;
    }
    bool nothing_back = phase_ == phase::writing
                        || (phase_ == phase::reading_header && parser_ && !parser_->got_some());
    if (reused_ && nothing_back && is_stale_error(ec) && !job_->resent) {
      // The server closed the idle connection as we reused it: resend once on a new one.
      shut();
      phase_ = phase::idle;
      parser_.reset();
      core_.on_stale(std::move(job_), shared_from_this());
      return;
    }
    std::string what = phase_text() + ": " + ec.message();
    switch (phase_) {
      case phase::connecting:
        finish_with(failure(webhook_error_kind::connect, std::move(what)), false);
        return;
      case phase::tls: {
        long verify = SSL_get_verify_result(tls_->native_handle());
        if (verify != X509_V_OK) {
          what += std::string(" (certificate: ") + X509_verify_cert_error_string(verify) + ")";
        }
        finish_with(failure(webhook_error_kind::tls, std::move(what)), false);
        return;
      }
      default:
        break;
    }
    if (ec == http::error::header_limit) {
      finish_with(
          failure(webhook_error_kind::protocol, "response header larger than "
                                                    + std::to_string(core_.options_.header_limit)
                                                    + " bytes from " + remote_),
          false);
      return;
    }
    auto kind = is_parse_error(ec) ? webhook_error_kind::protocol : webhook_error_kind::connection;
    finish_with(failure(kind, std::move(what)), false);
  }

  /// Completes the job with `r` and hands the job and this connection back.
  void finish_with(webhook_result r, bool reusable) {
    r.reused_connection = reused_;
    r.remote_address = remote_;
    if (!reusable) {
      shut();
    }
    phase_ = phase::idle;
    parser_.reset();
    request_.reset();
    auto j = std::move(job_);
    // Hand back before the completion runs because a post() made from the completion
    // should find this connection idle in the pool.
    core_.on_finished(j, shared_from_this(), reusable);
    core_.complete(*j, std::move(r));
  }

  webhook_client_core& core_;
  strand_t strand_;
  const bool https_;
  const std::string host_;
  const bool host_is_ip_;
  std::optional<beast::tcp_stream> plain_;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls_;
  beast::flat_buffer buffer_;
  std::optional<http::request<http::string_body>> request_;
  std::optional<http::response_parser<http::buffer_body>> parser_;
  std::array<char, 8 * 1024> chunk_{};
  std::string body_prefix_;
  std::size_t body_read_ = 0;
  unsigned interim_ = 0;

  std::shared_ptr<job> job_;
  bool reused_ = false;
  phase phase_ = phase::idle;
  std::string target_;  ///< what connecting goes to (for messages)
  std::string remote_;  ///< "ip:port" once connected
  std::optional<webhook_error_kind> abort_kind_;
  std::string abort_message_;
};

// --- core ---

webhook_client_core::webhook_client_core(webhook_client_options options)
    : options_([&] {
        options.io_threads = std::max(1u, options.io_threads);
        options.max_per_destination = std::max<std::size_t>(1, options.max_per_destination);
        options.max_in_flight = std::max<std::size_t>(1, options.max_in_flight);
        if (options.default_timeout.count() <= 0) {
          options.default_timeout = milliseconds(10'000);
        }
        return std::move(options);
      }()),
      log_(si::config::logger("webhook_dispatcher")),
      sched_(asio::make_strand(ioc_)),
      work_(asio::make_work_guard(ioc_)),
      idle_timer_(sched_) {
  ssl_ctx_.set_verify_mode(ssl::verify_peer);
  SSL_CTX_set_min_proto_version(ssl_ctx_.native_handle(), TLS1_2_VERSION);
  error_code ec;
  if (!options_.ca_file.empty()) {
    ssl_ctx_.load_verify_file(options_.ca_file, ec);
    if (ec) {
      throw std::runtime_error("webhook_client: cannot load ca_file '" + options_.ca_file
                               + "': " + ec.message());
    }
  } else {
    ssl_ctx_.set_default_verify_paths(ec);
  }
  sink_->core = this;
  running_ = options_.io_threads;
  for (unsigned i = 0; i < options_.io_threads; ++i) {
    threads_.emplace_back([this] {
      name_this_thread("si-webhook-io");
      for (;;) {
        try {
          ioc_.run();
          break;
        } catch (const std::exception& e) {
          log_->error("webhook client io thread: {}", e.what());
        }
      }
      {
        std::lock_guard<std::mutex> lock(threads_mutex_);
        --running_;
      }
      threads_cv_.notify_all();
    });
  }
}

webhook_client_core::~webhook_client_core() {
  stop();
}

void webhook_client_core::post(webhook_request request, webhook_completion completion) {
  ++requests_;
  auto j = std::make_shared<job>();
  j->posted = steady::now();
  j->timeout = request.timeout.count() > 0 ? request.timeout : options_.default_timeout;
  j->deadline = j->posted + j->timeout;
  j->completion = std::move(completion);
  std::optional<webhook_result> invalid;
  auto parsed = parse_webhook_url(request.url);
  if (auto* e = std::get_if<policy_error>(&parsed)) {
    invalid = failure(webhook_error_kind::invalid_request, "bad URL: " + e->message);
  } else if (auto problem = check_headers(request.headers); !problem.empty()) {
    invalid = failure(webhook_error_kind::invalid_request, std::move(problem));
  } else {
    j->url = std::move(std::get<webhook_url>(parsed));
  }
  j->request = std::move(request);
  std::unique_lock<std::mutex> lock(lifecycle_mutex_);
  if (stopped_) {
    lock.unlock();
    complete(*j, failure(webhook_error_kind::cancelled, "webhook client stopped"));
    return;
  }
  if (invalid) {
    complete_later(std::move(j), std::move(*invalid));
    return;
  }
  asio::post(sched_, [this, j = std::move(j)]() mutable { on_post(std::move(j)); });
}

void webhook_client_core::complete_later(std::shared_ptr<job> j, webhook_result result) {
  asio::post(ioc_, [this, j = std::move(j), r = std::move(result)]() mutable {
    complete(*j, std::move(r));
  });
}

bool webhook_client_core::complete(job& j, webhook_result result) {
  if (j.completed.exchange(true)) {
    return false;
  }
  result.duration_ms = std::chrono::duration_cast<milliseconds>(steady::now() - j.posted).count();
  switch (result.error) {
    case webhook_error_kind::none:
      if (result.delivered()) {
        ++delivered_;
      }
      break;
    case webhook_error_kind::overloaded:
      ++overloaded_;
      break;
    case webhook_error_kind::blocked:
      ++blocked_;
      break;
    case webhook_error_kind::timeout:
      ++timeouts_;
      break;
    case webhook_error_kind::cancelled:
      ++cancelled_;
      break;
    default:
      break;
  }
  if (result.error != webhook_error_kind::none) {
    // Outcomes are the dispatcher's to judge and log; shutdown cancellations are expected.
    // The destination only: a URL's path or query may carry the receiver's token.
    log_->debug("POST {}: {}: {}", j.url.host.empty() ? "(invalid URL)" : j.url.destination(),
                to_string(result.error), result.message);
  }
  auto completion = std::move(j.completion);
  ++completed_;
  if (completion) {
    try {
      completion(std::move(result));
    } catch (const std::exception& e) {
      log_->error("webhook completion threw: {}", e.what());
    } catch (...) {
      log_->error("webhook completion threw a non-standard exception");
    }
  }
  return true;
}

void webhook_client_core::on_post(std::shared_ptr<job> j) {
  j->id = ++next_id_;
  if (stopping_) {
    complete(*j, failure(webhook_error_kind::cancelled, "webhook client stopped"));
    return;
  }
  std::string key = j->url.destination();
  auto& slot = destinations_[key];
  if (!slot) {
    slot = std::make_unique<destination>();
    slot->key = key;
  }
  destination& d = *slot;
  j->dest = &d;
  bool free_slot = in_flight_ < options_.max_in_flight && d.active < options_.max_per_destination;
  if (!free_slot && queued_ >= options_.max_queued) {
    j->phase = job_phase::finished;
    complete(*j,
             failure(webhook_error_kind::overloaded,
                     "queue full (" + std::to_string(options_.max_queued) + " requests waiting)"));
    maybe_erase(d);
    return;
  }
  j->timer.emplace(sched_);
  j->timer->expires_at(j->deadline);
  j->timer->async_wait([this, j](error_code ec) {
    if (!ec) {
      on_deadline(j);
    }
  });
  if (free_slot) {
    start(j);
    return;
  }
  j->phase = job_phase::queued;
  d.waiting.push_back(j);
  j->queue_pos = std::prev(d.waiting.end());
  ++queued_;
  update_ready(d);
}

void webhook_client_core::start(const std::shared_ptr<job>& j) {
  destination& d = *j->dest;
  ++d.active;
  ++in_flight_;
  active_.push_back(j);
  while (!d.idle.empty()) {
    auto c = std::move(d.idle.back());
    d.idle.pop_back();
    --idle_count_;
    if (c->looks_alive()) {
      j->phase = job_phase::on_connection;
      j->conn = c;
      ++reused_;
      asio::post(c->strand(), [c, j] { c->start_request(j); });
      return;
    }
    close_connection(c);  // closed by the server while idle
  }
  begin_lookup(j);
}

void webhook_client_core::begin_lookup(const std::shared_ptr<job>& j) {
  j->phase = job_phase::resolving;
  resolving_[j->id] = j;
  std::uint64_t id = j->id;
  if (j->url.host_is_ip) {
    resolve_result r{{*ip_address::parse(j->url.host)}, {}};
    // Posted, not called: start() must never release a slot re-entrantly.
    asio::post(sched_, [this, id, r = std::move(r)]() mutable { on_resolved(id, std::move(r)); });
    return;
  }
  auto left = std::chrono::duration_cast<milliseconds>(j->deadline - steady::now());
  left = std::max(left, milliseconds(1));
  bool started = detail::run_detached_lookup([sink = sink_, resolver = options_.resolver,
                                              host = j->url.host, left, id] {
    resolve_result r;
    try {
      r = resolver ? resolver(host, left) : detail::getaddrinfo_blocking(host);
    } catch (const std::exception& e) {
      r = resolve_result{{}, std::string("resolver failed: ") + e.what()};
    }
    std::lock_guard<std::mutex> lock(sink->mutex);
    if (sink->core != nullptr) {
      auto* core = sink->core;
      asio::post(core->sched_,
                 [core, id, r = std::move(r)]() mutable { core->on_resolved(id, std::move(r)); });
    }
  });
  if (!started) {
    resolve_result r{{}, "too many DNS lookups in progress"};
    asio::post(sched_, [this, id, r = std::move(r)]() mutable { on_resolved(id, std::move(r)); });
  }
}

void webhook_client_core::on_resolved(std::uint64_t id, resolve_result r) {
  auto it = resolving_.find(id);
  if (it == resolving_.end()) {
    return;  // timed out or cancelled while resolving: the slot is already released
  }
  auto j = std::move(it->second);
  resolving_.erase(it);
  if (!r.error.empty() || r.addresses.empty()) {
    complete(*j, failure(webhook_error_kind::resolve,
                         r.error.empty() ? "'" + j->url.host + "' has no address" : r.error));
    release_slot(j);
    return;
  }
  // The addresses vetted here are exactly the ones connected to (no second lookup).
  if (auto refused = vet_addresses(j->url, r.addresses, options_.allow_private)) {
    auto kind = refused->kind == policy_error_kind::not_public ? webhook_error_kind::blocked
                                                               : webhook_error_kind::resolve;
    complete(*j, failure(kind, refused->message));
    release_slot(j);
    return;
  }
  std::vector<tcp::endpoint> endpoints;
  for (const auto& ip : r.addresses) {
    asio::ip::address address;
    if (ip.v6) {
      asio::ip::address_v6::bytes_type b;
      std::copy(ip.bytes.begin(), ip.bytes.end(), b.begin());
      address = asio::ip::address_v6(b);
    } else {
      asio::ip::address_v4::bytes_type b;
      std::copy(ip.bytes.begin(), ip.bytes.begin() + 4, b.begin());
      address = asio::ip::address_v4(b);
    }
    endpoints.emplace_back(address, j->url.port);
  }
  auto c = std::make_shared<connection>(*this, j->url);
  c->dest = j->dest;
  j->conn = c;
  j->phase = job_phase::on_connection;
  asio::post(c->strand(), [c, j, endpoints = std::move(endpoints)]() mutable {
    c->start_connect(j, std::move(endpoints));
  });
}

void webhook_client_core::on_deadline(const std::shared_ptr<job>& j) {
  std::string message = "no result within " + std::to_string(j->timeout.count()) + " ms";
  switch (j->phase) {
    case job_phase::queued: {
      destination& d = *j->dest;
      d.waiting.erase(j->queue_pos);
      --queued_;
      j->phase = job_phase::finished;
      update_ready(d);
      complete(*j, failure(webhook_error_kind::timeout, message + " (waiting in the queue)"));
      maybe_erase(d);
      return;
    }
    case job_phase::resolving:
      resolving_.erase(j->id);
      complete(
          *j, failure(webhook_error_kind::timeout, message + " (resolving '" + j->url.host + "')"));
      release_slot(j);  // an abandoned lookup must not pin the slot
      return;
    case job_phase::on_connection: {
      auto c = j->conn;
      asio::post(c->strand(), [c, j, message = std::move(message)]() mutable {
        c->abort(j.get(), webhook_error_kind::timeout, std::move(message));
      });
      return;
    }
    case job_phase::finished:
      return;
  }
}

void webhook_client_core::on_finished(std::shared_ptr<job> j, std::shared_ptr<connection> c,
                                      bool reusable) {
  asio::post(sched_, [this, j = std::move(j), c = std::move(c), reusable]() mutable {
    destination& d = *j->dest;
    if (reusable && !stopping_ && idle_count_ < options_.max_idle_connections) {
      park_idle(d, std::move(c));
    } else {
      close_connection(c);
    }
    release_slot(j);
  });
}

void webhook_client_core::on_stale(std::shared_ptr<job> j, std::shared_ptr<connection> c) {
  asio::post(sched_, [this, j = std::move(j), c = std::move(c)]() mutable {
    close_connection(c);
    ++stale_retries_;
    j->conn.reset();
    if (j->completed || stopping_) {
      complete(*j, failure(webhook_error_kind::cancelled, "webhook client stopped"));
      release_slot(j);
      return;
    }
    if (steady::now() >= j->deadline) {
      // The deadline timer fired while the connection still had the job: it will not fire
      // again, so the resend would run unbounded.
      complete(*j, failure(webhook_error_kind::timeout,
                           "no result within " + std::to_string(j->timeout.count())
                               + " ms (the kept-alive connection was closed by the server)"));
      release_slot(j);
      return;
    }
    j->resent = true;
    begin_lookup(j);  // keeps the slot
  });
}

void webhook_client_core::release_slot(const std::shared_ptr<job>& j) {
  if (j->phase == job_phase::finished) {
    return;
  }
  j->phase = job_phase::finished;
  j->conn.reset();
  if (j->timer) {
    j->timer->cancel();
  }
  auto it = std::find(active_.begin(), active_.end(), j);
  if (it != active_.end()) {
    *it = std::move(active_.back());
    active_.pop_back();
  }
  destination& d = *j->dest;
  --d.active;
  --in_flight_;
  update_ready(d);
  dispatch();
  maybe_erase(d);
}

void webhook_client_core::update_ready(destination& d) {
  if (d.ready_id) {
    ready_.erase({*d.ready_id, &d});
    d.ready_id.reset();
  }
  if (!d.waiting.empty() && d.active < options_.max_per_destination) {
    std::uint64_t id = d.waiting.front()->id;
    ready_.emplace(id, &d);
    d.ready_id = id;
  }
}

void webhook_client_core::dispatch() {
  while (in_flight_ < options_.max_in_flight && !ready_.empty()) {
    destination* d = ready_.begin()->second;
    ready_.erase(ready_.begin());
    d->ready_id.reset();
    auto j = std::move(d->waiting.front());
    d->waiting.pop_front();
    --queued_;
    start(j);
    update_ready(*d);
  }
}

void webhook_client_core::maybe_erase(destination& d) {
  if (d.active == 0 && d.waiting.empty() && d.idle.empty()) {
    destinations_.erase(d.key);
  }
}

void webhook_client_core::park_idle(destination& d, std::shared_ptr<connection> c) {
  c->idle_since = steady::now();
  d.idle.push_back(std::move(c));
  ++idle_count_;
  arm_idle_sweep();
}

void webhook_client_core::arm_idle_sweep() {
  if (idle_timer_armed_ || idle_count_ == 0) {
    return;
  }
  auto earliest = steady::time_point::max();
  for (const auto& [key, d] : destinations_) {
    if (!d->idle.empty()) {
      earliest = std::min(earliest, d->idle.front()->idle_since);
    }
  }
  idle_timer_armed_ = true;
  idle_timer_.expires_at(earliest + options_.idle_timeout);
  idle_timer_.async_wait([this](error_code ec) {
    idle_timer_armed_ = false;
    if (!ec && !stopping_) {
      on_idle_sweep();
    }
  });
}

void webhook_client_core::on_idle_sweep() {
  auto now = steady::now();
  for (auto it = destinations_.begin(); it != destinations_.end();) {
    destination& d = *it->second;
    auto keep = std::find_if(d.idle.begin(), d.idle.end(), [&](const auto& c) {
      return c->idle_since + options_.idle_timeout > now;
    });
    for (auto c = d.idle.begin(); c != keep; ++c) {
      close_connection(*c);
      --idle_count_;
    }
    d.idle.erase(d.idle.begin(), keep);
    ++it;
    if (d.active == 0 && d.waiting.empty() && d.idle.empty()) {
      destinations_.erase(d.key);
    }
  }
  arm_idle_sweep();
}

void webhook_client_core::close_connection(const std::shared_ptr<connection>& c) {
  asio::post(c->strand(), [c] { c->shut(); });
}

void webhook_client_core::cancel_everything(bool stopping) {
  const char* why = stopping ? "webhook client stopped" : "cancelled by cancel_all()";
  for (auto& [key, d] : destinations_) {
    for (auto& j : d->waiting) {
      j->phase = job_phase::finished;
      j->timer->cancel();
      complete(*j, failure(webhook_error_kind::cancelled, why));
    }
    queued_ -= d->waiting.size();
    d->waiting.clear();
    d->ready_id.reset();
  }
  ready_.clear();
  auto active = active_;  // release_slot edits active_
  for (auto& j : active) {
    if (j->phase == job_phase::resolving) {
      resolving_.erase(j->id);
      complete(*j, failure(webhook_error_kind::cancelled, why));
      release_slot(j);
    } else if (j->phase == job_phase::on_connection) {
      // Completed now; the connection hands the slot back once its socket is closed.
      complete(*j, failure(webhook_error_kind::cancelled, why));
      auto c = j->conn;
      asio::post(c->strand(),
                 [c, j, why] { c->abort(j.get(), webhook_error_kind::cancelled, why); });
    }
  }
  if (stopping) {
    idle_timer_.cancel();
    for (auto& [key, d] : destinations_) {
      for (auto& c : d->idle) {
        close_connection(c);
      }
      idle_count_ -= d->idle.size();
      d->idle.clear();
    }
  }
  for (auto it = destinations_.begin(); it != destinations_.end();) {
    destination& d = *it->second;
    ++it;
    maybe_erase(d);
  }
}

void webhook_client_core::cancel_all() {
  asio::post(sched_, [this] { cancel_everything(false); });
}

void webhook_client_core::stop() {
  {
    std::lock_guard<std::mutex> lock(lifecycle_mutex_);
    if (stopped_) {
      return;
    }
    for (const auto& t : threads_) {
      if (t.get_id() == std::this_thread::get_id()) {
        throw std::logic_error("webhook_client::stop() called on a client thread");
      }
    }
    stopped_ = true;  // before the cancel below because posts after it would find no thread
  }
  auto started = steady::now();
  log_->debug("webhook client stopping: {} in flight, {} queued", in_flight_.load(),
              queued_.load());
  asio::post(sched_, [this] {
    stopping_ = true;
    cancel_everything(true);
  });
  {
    // Before the io threads end because a late lookup must not post into a dead context.
    std::lock_guard<std::mutex> lock(sink_->mutex);
    sink_->core = nullptr;
  }
  work_.reset();
  bool drained;
  {
    std::unique_lock<std::mutex> lock(threads_mutex_);
    drained = threads_cv_.wait_for(lock, options_.stop_timeout, [this] { return running_ == 0; });
  }
  if (!drained) {
    log_->warn("webhook client: io threads still busy after {} ms; stopping them",
               options_.stop_timeout.count());
    ioc_.stop();
  }
  for (auto& t : threads_) {
    t.join();
  }
  if (!drained) {
    // Handlers the stopped context did not run: run them here so every completion is called.
    ioc_.restart();
    for (int i = 0; i < 64 && ioc_.poll() > 0; ++i) {
    }
  }
  // Normally every completion has run by now; call any left (complete() is once-only) and
  // drop the state while the io_context still exists.
  for (auto& j : active_) {
    complete(*j, failure(webhook_error_kind::cancelled, "webhook client stopped"));
  }
  for (auto& [key, d] : destinations_) {
    for (auto& j : d->waiting) {
      complete(*j, failure(webhook_error_kind::cancelled, "webhook client stopped"));
    }
  }
  active_.clear();
  resolving_.clear();
  ready_.clear();
  destinations_.clear();
  log_->debug("webhook client stopped in {} ms",
              std::chrono::duration_cast<milliseconds>(steady::now() - started).count());
}

webhook_client_stats webhook_client_core::stats() const {
  webhook_client_stats s;
  s.in_flight = in_flight_;
  s.queued = queued_;
  s.connections_open = open_;
  s.connections_idle = idle_count_;
  s.connections_opened = opened_;
  s.connections_reused = reused_;
  s.requests = requests_;
  s.completed = completed_;
  s.delivered = delivered_;
  s.overloaded = overloaded_;
  s.blocked = blocked_;
  s.timeouts = timeouts_;
  s.cancelled = cancelled_;
  s.stale_retries = stale_retries_;
  return s;
}

}  // namespace detail

webhook_client::webhook_client(webhook_client_options options)
    : core_(std::make_unique<detail::webhook_client_core>(std::move(options))) {}

webhook_client::~webhook_client() {
  core_->stop();
}

void webhook_client::post(webhook_request request, webhook_completion completion) {
  core_->post(std::move(request), std::move(completion));
}

void webhook_client::cancel_all() {
  core_->cancel_all();
}

void webhook_client::stop() {
  core_->stop();
}

webhook_client_stats webhook_client::stats() const {
  return core_->stats();
}

}  // namespace si::net
