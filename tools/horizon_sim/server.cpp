#include "tools/horizon_sim/server.hpp"

#include <array>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <chrono>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace si::sim {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using namespace std::chrono_literals;

namespace {

constexpr auto idle_timeout = 120s;        // a keep-alive connection with no request
constexpr auto write_timeout = 30s;        // one write to a slow or dead client
constexpr auto keep_alive_every = 15s;     // comment line on an idle stream
constexpr auto shutdown_deadline = 2s;     // after SIGTERM, cut what is left
constexpr std::size_t stream_batch = 200;  // records per stream write
constexpr std::string_view hello_event = "retry: 1000\nevent: open\ndata: \"hello\"\n\n";
constexpr std::string_view goodbye_event = "retry: 10\nevent: close\ndata: \"byebye\"\n\n";

std::string_view reason_of(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 410:
      return "Gone";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

void append_chunk(std::string& out, std::string_view data) {
  char size[20];
  const int n = std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  out.append(size, static_cast<std::size_t>(n));
  out += data;
  out += "\r\n";
}

/// `body` with one record broken: its required field removed (or, for an empty page, the
/// records array itself removed). Valid JSON, not a valid Horizon document.
std::string break_one_record(const std::string& body, std::string_view field) {
  auto doc = nlohmann::ordered_json::parse(body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return "{}";
  }
  auto embedded = doc.find("_embedded");
  if (embedded != doc.end() && embedded->is_object() && embedded->contains("records")) {
    auto& records = (*embedded)["records"];
    if (records.is_array() && !records.empty()) {
      records[records.size() / 2].erase(std::string(field));
    } else {
      embedded->erase("records");
    }
  } else {
    doc.erase(std::string(field));
  }
  return doc.dump();
}

}  // namespace

class session;

/// Server state shared by all sessions.
class http_server::impl {
 public:
  impl(const std::string& host, uint16_t port, uint32_t threads)
      : threads_(threads),
        ioc_(static_cast<int>(threads)),
        acceptor_(ioc_),
        signals_(ioc_),
        clock_(ioc_),
        deadline_(ioc_),
        accept_retry_(ioc_) {
    const tcp::endpoint at(asio::ip::make_address(host), port);
    acceptor_.open(at.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(at);
    acceptor_.listen(asio::socket_base::max_listen_connections);
    // Now, not in run(): asio queues a signal that arrives before the wait starts, so a
    // SIGTERM sent right after the listening line is printed still stops us cleanly.
    signals_.add(SIGINT);
    signals_.add(SIGTERM);
  }

  ~impl() {
    // Sessions the io_context still holds end while it is destroyed: nothing to stop then.
    destroying_ = true;
  }

  uint16_t port() const {
    return acceptor_.local_endpoint().port();
  }

  void run(api& a, chain& c, sim_stats& stats, fault_queue& faults, uint32_t close_ms);

  // --- used by sessions ---
  api* api_ = nullptr;
  chain* chain_ = nullptr;
  sim_stats* stats_ = nullptr;
  fault_queue* faults_ = nullptr;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> destroying_{false};

  void add_stream(uint64_t id);
  void session_ended(uint64_t id);

 private:
  void accept();
  void schedule_close();
  void stop();

  // Declared before ioc_: handlers destroyed with the io_context may still end sessions.
  std::mutex mutex_;
  std::unordered_map<uint64_t, std::weak_ptr<session>> sessions_;
  std::vector<uint64_t> streams_;
  uint64_t next_id_ = 0;

  uint32_t threads_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  asio::signal_set signals_;
  asio::steady_timer clock_;
  asio::steady_timer deadline_;
  asio::steady_timer accept_retry_;
  uint32_t close_ms_ = 0;
  uint64_t closed_ = 0;
  std::chrono::steady_clock::time_point clock_start_;
};

/// One connection: requests in order, one at a time; or, once it asked for a stream, the
/// stream until either side ends it.
class session : public std::enable_shared_from_this<session> {
 public:
  session(tcp::socket socket, http_server::impl& server, uint64_t id)
      : stream_(std::move(socket)), server_(server), id_(id), timer_(stream_.get_executor()) {}

  ~session() {
    if (streaming_) {
      server_.stats_->stream_closed();
    }
    server_.session_ended(id_);
  }

  void start() {
    error_code ignored;
    stream_.socket().set_option(tcp::no_delay(true), ignored);
    read_request();
  }

  /// Posted onto the strand at shutdown.
  void stop() {
    stopping_ = true;
    if (state_ == state::reading) {
      close();
    } else if (state_ == state::stream_waiting || state_ == state::delaying) {
      timer_.cancel();
    }
  }

  /// Posted onto the strand when a ledger closed.
  void wake() {
    if (state_ == state::stream_waiting) {
      timer_.cancel();
    }
  }

  asio::any_io_executor executor() {
    return stream_.get_executor();
  }

 private:
  enum class state { reading, handling, delaying, writing, stream_writing, stream_waiting, done };

  void read_request() {
    if (stopping_) {
      close();
      return;
    }
    state_ = state::reading;
    parser_.emplace();
    parser_->body_limit(1 << 20);
    stream_.expires_after(idle_timeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(error_code ec) {
    if (ec) {
      close();
      return;
    }
    state_ = state::handling;
    const auto& req = parser_->get();
    target_ = std::string(req.target());
    // An absolute-form target: keep path and query only.
    if (target_.starts_with("http://") || target_.starts_with("https://")) {
      const auto slash = target_.find('/', target_.find("//") + 2);
      target_ = slash == std::string::npos ? "/" : target_.substr(slash);
    }
    const auto question = target_.find('?');
    view_ = request_view{};
    method_ = std::string(req.method_string());
    view_.method = method_;
    view_.path = std::string_view(target_).substr(0, question);
    view_.query = question == std::string::npos ? std::string_view()
                                                : std::string_view(target_).substr(question + 1);
    view_.body = req.body();
    const auto accept = req[http::field::accept];
    view_.event_stream = accept.find("text/event-stream") != beast::string_view::npos;
    last_event_id_ = std::string(req["Last-Event-ID"]);
    view_.last_event_id = last_event_id_;
    keep_alive_ = req.keep_alive();

    fault_.reset();
    if (!view_.path.starts_with("/_sim")) {
      fault_ = server_.faults_->take(view_.path);
    }
    if (fault_) {
      server_.stats_->fault(fault_->kind);
      switch (fault_->kind) {
        case fault_kind::latency:
          state_ = state::delaying;
          timer_.expires_after(std::chrono::milliseconds(fault_->latency_ms));
          timer_.async_wait([self = shared_from_this()](error_code) {
            if (self->stopping_) {
              self->close();
              return;
            }
            self->fault_.reset();
            self->process();
          });
          return;
        case fault_kind::status_500:
          respond(faulted(api::server_error()));
          return;
        case fault_kind::status_503:
          respond(faulted(api::service_unavailable(fault_->retry_after_s)));
          return;
        case fault_kind::status_429:
          respond(faulted(api::rate_limited(fault_->retry_after_s)));
          return;
        case fault_kind::reset:
          server_.stats_->served(api::endpoint_of(view_.path), 0, 0, 0);
          reset();
          return;
        case fault_kind::truncated:
        case fault_kind::malformed:
        case fault_kind::bad_record:
          break;  // applied to the real answer below
      }
    }
    process();
  }

  /// `r` counted under the endpoint the request named.
  response faulted(response r) const {
    r.ep = api::endpoint_of(view_.path);
    return r;
  }

  void process() {
    auto result = server_.api_->handle(view_);
    if (auto* s = std::get_if<stream_request>(&result)) {
      start_stream(*s);
      return;
    }
    respond(std::move(std::get<response>(result)));
  }

  void respond(response r) {
    std::optional<std::size_t> cut;
    if (fault_ && r.status == 200) {
      if (fault_->kind == fault_kind::malformed) {
        std::string body = r.flatten();
        body.resize(std::max<std::size_t>(1, body.size() / 2));
        body += "!}";
        replace_body(r, std::move(body));
      } else if (fault_->kind == fault_kind::bad_record) {
        replace_body(r, break_one_record(r.flatten(), r.required_field));
      }
    }
    if (fault_ && fault_->kind == fault_kind::truncated) {
      cut = r.size / 2;
    }
    head_.clear();
    head_ += "HTTP/1.1 ";
    head_ += std::to_string(r.status);
    head_.push_back(' ');
    head_ += reason_of(r.status);
    head_ += "\r\nServer: horizon-sim\r\nContent-Type: ";
    head_ += r.content_type;
    head_ += "\r\n";
    for (const auto& [name, value] : r.headers) {
      head_ += name;
      head_ += ": ";
      head_ += value;
      head_ += "\r\n";
    }
    head_ += "Content-Length: ";
    head_ += std::to_string(r.size);
    head_ += "\r\n";
    const bool close_after = !keep_alive_ || stopping_ || cut.has_value();
    if (close_after) {
      head_ += "Connection: close\r\n";
    }
    head_ += "\r\n";
    buffers_.clear();
    buffers_.emplace_back(head_.data(), head_.size());
    std::size_t budget = cut.value_or(r.size);
    for (std::string_view piece : r.pieces) {
      if (budget == 0) {
        break;
      }
      const std::size_t n = std::min(budget, piece.size());
      buffers_.emplace_back(piece.data(), n);
      budget -= n;
    }
    server_.stats_->served(r.ep, r.status, r.records, r.size);
    body_ = std::move(r);  // owns what buffers_ point into until the write completes
    state_ = state::writing;
    stream_.expires_after(write_timeout);
    asio::async_write(stream_, buffers_,
                      [self = shared_from_this(), close_after](error_code ec, std::size_t) {
                        self->body_ = response{};
                        if (ec || close_after || self->stopping_) {
                          self->close();
                          return;
                        }
                        self->read_request();
                      });
  }

  static void replace_body(response& r, std::string body) {
    r.pieces.clear();
    r.owned.clear();
    r.keep.clear();
    r.size = 0;
    r.add(std::move(body));
  }

  // --- streams ---

  void start_stream(const stream_request& s) {
    streaming_ = true;
    stream_request_ = s;
    after_ = s.after;
    server_.stats_->stream_opened();
    server_.stats_->served(s.ep, 200, 0, 0);
    server_.add_stream(id_);
    std::string out =
        "HTTP/1.1 200 OK\r\nServer: horizon-sim\r\nContent-Type: text/event-stream; "
        "charset=utf-8\r\nCache-Control: no-cache\r\nConnection: keep-alive\r\n"
        "Access-Control-Allow-Origin: *\r\nTransfer-Encoding: chunked\r\n\r\n";
    append_chunk(out, hello_event);
    if (fault_) {
      // One damaged event, then the connection ends.
      std::string events;
      uint64_t after = after_;
      server_.api_->stream_events(stream_request_, after, 1, events);
      std::string damaged;
      if (fault_->kind == fault_kind::truncated) {
        damaged =
            events.empty() ? "id: 1\ndata: {\"_links\":" : events.substr(0, events.size() / 2);
        char size[20];
        const int n = std::snprintf(size, sizeof size, "%zx\r\n", damaged.size() + 64);
        out.append(size, static_cast<std::size_t>(n));
        out += damaged;  // the chunk promises more than is sent
      } else {
        const auto data = events.find("data: ");
        std::string record = data == std::string::npos
                                 ? std::string("{}")
                                 : events.substr(data + 6, events.size() - data - 8);
        const std::string broken = fault_->kind == fault_kind::malformed
                                       ? record.substr(0, record.size() / 2) + "!}"
                                       : break_one_record(record, stream_field());
        damaged = "id: " + std::to_string(after) + "\ndata: " + broken + "\n\n";
        append_chunk(out, damaged);
        out += "0\r\n\r\n";
      }
      write_stream(std::move(out), true);
      return;
    }
    write_stream(std::move(out), false);
    watch_peer();
  }

  std::string_view stream_field() const {
    switch (stream_request_.kind) {
      case stream_kind::ledgers:
        return "sequence";
      case stream_kind::transactions:
        return "hash";
      case stream_kind::operations:
      case stream_kind::payments:
        return "type";
    }
    return "id";
  }

  void write_stream(std::string data, bool last) {
    chunk_ = std::move(data);
    state_ = state::stream_writing;
    server_.stats_->streamed(stream_request_.ep, 0, chunk_.size());
    stream_.expires_after(write_timeout);
    asio::async_write(stream_, asio::buffer(chunk_),
                      [self = shared_from_this(), last](error_code ec, std::size_t) {
                        if (ec || last) {
                          self->close();
                          return;
                        }
                        self->pump();
                      });
  }

  /// Notices the client of a stream hanging up while the stream is idle, instead of at the
  /// next write (which may be a keep-alive comment many seconds away).
  void watch_peer() {
    stream_.socket().async_wait(tcp::socket::wait_read, [self = shared_from_this()](error_code ec) {
      if (ec || self->state_ == state::done) {
        return;
      }
      error_code read_ec;
      const std::size_t pending = self->stream_.socket().available(read_ec);
      if (read_ec || pending == 0) {
        self->close();  // end of stream: the client is gone
        return;
      }
      // A client has nothing to say on a stream: drop what it sent.
      std::array<char, 512> sink;
      self->stream_.socket().read_some(asio::buffer(sink.data(), std::min(pending, sink.size())),
                                       read_ec);
      if (read_ec) {
        self->close();
        return;
      }
      self->watch_peer();
    });
  }

  void pump() {
    if (state_ == state::done) {
      return;
    }
    if (stopping_) {
      std::string out;
      append_chunk(out, goodbye_event);
      out += "0\r\n\r\n";
      write_stream(std::move(out), true);
      return;
    }
    std::size_t room = stream_batch;
    if (stream_request_.limit > 0) {
      room = std::min<std::size_t>(room, stream_request_.limit - sent_);
    }
    std::string events;
    const std::size_t n = server_.api_->stream_events(stream_request_, after_, room, events);
    sent_ += static_cast<uint32_t>(n);
    server_.stats_->streamed(stream_request_.ep, n, 0);
    const bool finished = stream_request_.limit > 0 && sent_ >= stream_request_.limit;
    if (finished) {
      // Horizon closes a stream whose limit is reached with the goodbye event.
      events += goodbye_event;
      std::string out;
      append_chunk(out, events);
      out += "0\r\n\r\n";
      write_stream(std::move(out), true);
      return;
    }
    if (n > 0) {
      std::string out;
      append_chunk(out, events);
      write_stream(std::move(out), false);
      return;
    }
    state_ = state::stream_waiting;
    timer_.expires_after(keep_alive_every);
    timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec && !self->stopping_ && self->state_ != state::done) {
        std::string out;
        append_chunk(out, ": keep-alive\n\n");
        self->write_stream(std::move(out), false);
        return;
      }
      self->pump();  // woken by a closed ledger or by shutdown
    });
  }

  void close() {
    if (state_ == state::done) {
      return;
    }
    state_ = state::done;
    error_code ignored;
    timer_.cancel();
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
  }

  void reset() {
    state_ = state::done;
    error_code ignored;
    stream_.socket().set_option(asio::socket_base::linger(true, 0), ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  http_server::impl& server_;
  uint64_t id_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  state state_ = state::reading;
  bool stopping_ = false;
  bool keep_alive_ = true;
  std::string target_;
  std::string method_;
  std::string last_event_id_;
  request_view view_;
  std::optional<fault_spec> fault_;
  std::string head_;
  response body_;
  std::vector<asio::const_buffer> buffers_;
  bool streaming_ = false;
  stream_request stream_request_;
  uint64_t after_ = 0;
  uint32_t sent_ = 0;
  std::string chunk_;
};

void http_server::impl::add_stream(uint64_t id) {
  std::lock_guard lock(mutex_);
  streams_.push_back(id);
}

void http_server::impl::session_ended(uint64_t id) {
  bool last = false;
  {
    std::lock_guard lock(mutex_);
    sessions_.erase(id);
    std::erase(streams_, id);
    last = sessions_.empty();
  }
  if (last && stopping_ && !destroying_) {
    ioc_.stop();  // every connection is gone: no need to wait for the deadline
  }
}

void http_server::impl::accept() {
  acceptor_.async_accept(asio::make_strand(ioc_), [this](error_code ec, tcp::socket socket) {
    if (stopping_) {
      return;
    }
    if (ec) {
      // Out of descriptors or similar: try again shortly instead of spinning.
      accept_retry_.expires_after(50ms);
      accept_retry_.async_wait([this](error_code wait_ec) {
        if (!wait_ec && !stopping_) {
          accept();
        }
      });
      return;
    }
    std::shared_ptr<session> s;
    {
      std::lock_guard lock(mutex_);
      const uint64_t id = ++next_id_;
      s = std::make_shared<session>(std::move(socket), *this, id);
      sessions_.emplace(id, s);
    }
    s->start();
    accept();
  });
}

void http_server::impl::schedule_close() {
  clock_.expires_at(clock_start_ + std::chrono::milliseconds(close_ms_) * (closed_ + 1));
  clock_.async_wait([this](error_code ec) {
    if (ec || stopping_) {
      return;
    }
    if (!chain_->close_next()) {
      return;
    }
    ++closed_;
    // After the tip moved, because a woken stream reads the tip.
    std::vector<std::shared_ptr<session>> targets;
    {
      std::lock_guard lock(mutex_);
      for (uint64_t id : streams_) {
        auto it = sessions_.find(id);
        if (it != sessions_.end()) {
          if (auto s = it->second.lock()) {
            targets.push_back(std::move(s));
          }
        }
      }
    }
    for (auto& s : targets) {
      asio::post(s->executor(), [s] { s->wake(); });
    }
    if (chain_->can_grow()) {
      schedule_close();
    }
  });
}

void http_server::impl::stop() {
  if (stopping_.exchange(true)) {
    return;
  }
  error_code ignored;
  acceptor_.close(ignored);
  signals_.cancel(ignored);
  clock_.cancel();
  accept_retry_.cancel();
  std::vector<std::shared_ptr<session>> live;
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, weak] : sessions_) {
      if (auto s = weak.lock()) {
        live.push_back(std::move(s));
      }
    }
  }
  if (live.empty()) {
    ioc_.stop();
    return;
  }
  for (auto& s : live) {
    asio::post(s->executor(), [s] { s->stop(); });
  }
  deadline_.expires_after(shutdown_deadline);
  deadline_.async_wait([this](error_code ec) {
    if (!ec) {
      ioc_.stop();
    }
  });
}

void http_server::impl::run(api& a, chain& c, sim_stats& stats, fault_queue& faults,
                            uint32_t close_ms) {
  api_ = &a;
  chain_ = &c;
  stats_ = &stats;
  faults_ = &faults;
  close_ms_ = close_ms;
  signals_.async_wait([this](error_code ec, int) {
    if (!ec) {
      stop();
    }
  });
  accept();
  if (close_ms_ > 0 && chain_->can_grow()) {
    clock_start_ = std::chrono::steady_clock::now();
    schedule_close();
  }
  std::vector<std::thread> pool;
  for (uint32_t i = 1; i < threads_; ++i) {
    pool.emplace_back([this] { ioc_.run(); });
  }
  ioc_.run();
  for (auto& t : pool) {
    t.join();
  }
}

http_server::http_server(const std::string& host, uint16_t port, uint32_t threads)
    : impl_(std::make_unique<impl>(host, port, threads)) {}

http_server::~http_server() = default;

uint16_t http_server::port() const {
  return impl_->port();
}

void http_server::run(api& a, chain& c, sim_stats& stats, fault_queue& faults, uint32_t close_ms) {
  impl_->run(a, c, stats, faults, close_ms);
}

}  // namespace si::sim
