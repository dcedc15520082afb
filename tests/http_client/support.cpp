#include "support.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <stdexcept>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <openssl/ssl.h>

namespace si::test {

namespace {

/// A socket bound to 127.0.0.1:0 and listening; its port in `port`.
int listen_loopback(std::uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw std::runtime_error("socket failed");
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 64) != 0
      || ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("bind/listen on 127.0.0.1:0 failed");
  }
  port = ntohs(addr.sin_port);
  return fd;
}

/// Waits up to `ms` for `fd` to become readable; true when it did.
bool readable(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  int r = ::poll(&p, 1, ms);
  return r > 0;
}

}  // namespace

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// --- result_sink ---

net::webhook_completion result_sink::slot(std::size_t index) {
  return [this, index](net::webhook_result r) {
    // Notified under the lock: a test may destroy the sink as soon as it saw the result.
    std::lock_guard<std::mutex> lock(mutex_);
    results_[index] = std::move(r);
    ++calls_[index];
    threads_[index] = std::this_thread::get_id();
    cv_.notify_all();
  };
}

bool result_sink::wait_count(std::size_t count, std::chrono::milliseconds limit) {
  std::unique_lock<std::mutex> lock(mutex_);
  return cv_.wait_for(lock, limit, [&] { return results_.size() >= count; });
}

std::optional<net::webhook_result> result_sink::wait(std::size_t index,
                                                     std::chrono::milliseconds limit) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!cv_.wait_for(lock, limit, [&] { return results_.count(index) != 0; })) {
    return std::nullopt;
  }
  return results_[index];
}

std::size_t result_sink::count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return results_.size();
}

std::size_t result_sink::calls(std::size_t index) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = calls_.find(index);
  return it == calls_.end() ? 0 : it->second;
}

std::thread::id result_sink::thread_of(std::size_t index) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = threads_.find(index);
  return it == threads_.end() ? std::thread::id() : it->second;
}

// --- concurrency_meter ---

void concurrency_meter::enter() {
  int now = ++current;
  int seen = max.load();
  while (now > seen && !max.compare_exchange_weak(seen, now)) {
  }
}

void concurrency_meter::leave() {
  --current;
}

// --- receiver ---

receiver::receiver(bool hold, answer_fn answer, std::shared_ptr<concurrency_meter> meter,
                   net::http_server_options options)
    : answer_(std::move(answer)),
      meter_(meter ? std::move(meter) : std::make_shared<concurrency_meter>()),
      hold_(hold) {
  options.host = "127.0.0.1";
  options.port = 0;
  if (options.io_threads == 0) {
    options.io_threads = 2;
  }
  server_ = std::make_unique<net::http_server>(
      options, [this](net::http_request req, net::respond_fn respond) {
        meter_->enter();
        std::unique_lock<std::mutex> lock(mutex_);
        requests_.push_back(req);
        if (hold_) {
          held_.emplace_back(std::move(req), std::move(respond));
          lock.unlock();
          cv_.notify_all();
          return;
        }
        lock.unlock();
        cv_.notify_all();
        auto response = make_answer(req);
        meter_->leave();
        respond(std::move(response));
      });
  port_ = server_->start();
}

receiver::~receiver() {
  server_->stop();
  std::lock_guard<std::mutex> lock(mutex_);
  held_.clear();
}

std::string receiver::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

net::http_response receiver::make_answer(const net::http_request& req) {
  if (answer_) {
    return answer_(req);
  }
  return net::http_response{200, {{"Content-Type", "text/plain"}}, "ok"};
}

bool receiver::wait_arrived(std::size_t n, std::chrono::milliseconds limit) {
  std::unique_lock<std::mutex> lock(mutex_);
  return cv_.wait_for(lock, limit, [&] { return requests_.size() >= n; });
}

std::size_t receiver::arrived() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return requests_.size();
}

std::vector<net::http_request> receiver::requests() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return requests_;
}

bool receiver::release_one() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (held_.empty()) {
    return false;
  }
  auto [req, respond] = std::move(held_.front());
  held_.pop_front();
  lock.unlock();
  auto response = make_answer(req);
  meter_->leave();
  respond(std::move(response));
  return true;
}

void receiver::set_hold(bool hold) {
  std::lock_guard<std::mutex> lock(mutex_);
  hold_ = hold;
}

void receiver::release_all() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    hold_ = false;
  }
  while (release_one()) {
  }
}

// --- raw_server ---

raw_server::raw_server(script_fn script) : script_(std::move(script)) {
  listen_fd_ = listen_loopback(port_);
  thread_ = std::thread([this] { run(); });
}

raw_server::~raw_server() {
  stop_ = true;
  thread_.join();
  ::close(listen_fd_);
}

void raw_server::run() {
  while (!stop_) {
    if (!readable(listen_fd_, 20)) {
      continue;
    }
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      continue;
    }
    std::size_t conn = connections_++;
    std::string buffer;
    for (std::size_t n = 0; !stop_; ++n) {
      // One request: header, then a Content-Length body.
      std::size_t end;
      bool closed = false;
      std::size_t need = std::string::npos;
      while (!stop_) {
        end = buffer.find("\r\n\r\n");
        if (end != std::string::npos && need == std::string::npos) {
          need = end + 4;
          std::string lower = buffer.substr(0, end);
          for (auto& c : lower) {
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          }
          auto cl = lower.find("content-length:");
          if (cl != std::string::npos) {
            need += std::strtoul(lower.c_str() + cl + 15, nullptr, 10);
          }
        }
        if (need != std::string::npos && buffer.size() >= need) {
          break;
        }
        if (!readable(fd, 20)) {
          continue;
        }
        char chunk[4096];
        auto got = ::recv(fd, chunk, sizeof chunk, 0);
        if (got <= 0) {
          closed = true;
          break;
        }
        buffer.append(chunk, static_cast<std::size_t>(got));
      }
      if (closed || stop_) {
        break;
      }
      std::string request = buffer.substr(0, need);
      buffer.erase(0, need);
      auto reply = script_(conn, n, request);
      if (!reply) {
        break;
      }
      std::string_view out = *reply;
      while (!out.empty()) {
        auto sent = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
        if (sent <= 0) {
          break;
        }
        out.remove_prefix(static_cast<std::size_t>(sent));
      }
      if (reply->find("Connection: close") != std::string::npos) {
        break;
      }
    }
    ::close(fd);
  }
}

// --- silent_listener ---

silent_listener::silent_listener() {
  fd_ = listen_loopback(port_);
}

silent_listener::~silent_listener() {
  ::close(fd_);
}

std::uint16_t free_port() {
  std::uint16_t port = 0;
  int fd = listen_loopback(port);
  ::close(fd);
  return port;
}

// --- certificates ---

temp_dir::temp_dir() {
  std::string templ = (std::filesystem::temp_directory_path() / "si-whc-XXXXXX").string();
  if (::mkdtemp(templ.data()) == nullptr) {
    throw std::runtime_error("mkdtemp failed");
  }
  path = templ;
}

temp_dir::~temp_dir() {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

bool make_cert(const std::filesystem::path& dir, const std::string& name, const std::string& san) {
  std::string cmd =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
      " -days 2 -subj /CN=si-test -keyout '"
      + (dir / (name + ".key")).string() + "' -out '" + (dir / (name + ".pem")).string()
      + "' -addext 'subjectAltName=" + san + "' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

// --- tls_receiver ---

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct tls_receiver::impl {
  asio::ssl::context ctx{asio::ssl::context::tls_server};  // outlives the sessions
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::uint16_t port = 0;
  std::thread thread;
  std::atomic<std::size_t> connections{0};
  std::atomic<std::size_t> requests{0};
  mutable std::mutex mutex;
  std::vector<std::string> names;

  struct session : std::enable_shared_from_this<session> {
    session(impl& owner, tcp::socket socket) : owner(owner), stream(std::move(socket), owner.ctx) {}

    void start() {
      stream.async_handshake(
          asio::ssl::stream_base::server, [self = shared_from_this()](beast::error_code ec) {
            if (ec) {
              return;
            }
            const char* sni =
                SSL_get_servername(self->stream.native_handle(), TLSEXT_NAMETYPE_host_name);
            {
              std::lock_guard<std::mutex> lock(self->owner.mutex);
              self->owner.names.push_back(sni ? sni : "");
            }
            self->read();
          });
    }

    void read() {
      request = {};
      http::async_read(stream, buffer, request,
                       [self = shared_from_this()](beast::error_code ec, std::size_t) {
                         if (ec) {
                           return;
                         }
                         ++self->owner.requests;
                         self->response = {};
                         self->response.result(http::status::ok);
                         self->response.version(11);
                         self->response.set(http::field::content_type, "text/plain");
                         self->response.body() = "tls:" + self->request.body();
                         self->response.keep_alive(self->request.keep_alive());
                         self->response.prepare_payload();
                         http::async_write(self->stream, self->response,
                                           [self](beast::error_code e, std::size_t) {
                                             if (!e && self->request.keep_alive()) {
                                               self->read();
                                             }
                                           });
                       });
    }

    impl& owner;
    beast::ssl_stream<tcp::socket> stream;
    beast::flat_buffer buffer;
    http::request<http::string_body> request;
    http::response<http::string_body> response;
  };

  void accept() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec) {
        return;
      }
      ++connections;
      std::make_shared<session>(*this, std::move(socket))->start();
      accept();
    });
  }
};

tls_receiver::tls_receiver(const std::filesystem::path& cert, const std::filesystem::path& key)
    : impl_(std::make_unique<impl>()) {
  impl_->ctx.use_certificate_chain_file(cert.string());
  impl_->ctx.use_private_key_file(key.string(), asio::ssl::context::pem);
  tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(ep.protocol());
  impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
  impl_->acceptor.bind(ep);
  impl_->acceptor.listen();
  impl_->port = impl_->acceptor.local_endpoint().port();
  impl_->accept();
  impl_->thread = std::thread([this] { impl_->ioc.run(); });
}

tls_receiver::~tls_receiver() {
  impl_->ioc.stop();
  impl_->thread.join();
}

std::uint16_t tls_receiver::port() const {
  return impl_->port;
}

std::size_t tls_receiver::connections() const {
  return impl_->connections;
}

std::size_t tls_receiver::requests() const {
  return impl_->requests;
}

std::vector<std::string> tls_receiver::server_names() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->names;
}

}  // namespace si::test
