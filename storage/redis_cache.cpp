#include "storage/cache_backend.hpp"
#include "storage/percent_decode.hpp"
#include "storage/glob.hpp"

#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <ctime>
#include <pthread.h>
#include <stdexcept>
#include <variant>
#include <vector>

namespace si::storage {

namespace {

using std::chrono::milliseconds;

/// Where and how to connect, from a redis:// URL.
struct redis_endpoint {
  std::string host;
  int port = 6379;
  std::string user;      ///< ACL user (Redis 6+); empty = default user
  std::string password;  ///< empty = no AUTH
  long db = 0;           ///< SELECT when not 0
};

bool all_digits(std::string_view s) {
  return !s.empty()
         && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

constexpr const char* redis_form = "expected redis://[[user]:password@]host[:port][/db]";

std::variant<redis_endpoint, std::string> parse_redis_url(const std::string& url) {
  const auto sep = url.find("://");
  if (sep == std::string::npos) {
    const std::string shown = url.find('@') == std::string::npos ? " '" + url + "'" : "";
    return "REDIS_URL" + shown + " is not a URL; " + redis_form;
  }
  std::string scheme = url.substr(0, sep);
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (scheme == "rediss") {
    return std::string("REDIS_URL: TLS (rediss://) is not supported; ") + redis_form;
  }
  if (scheme != "redis") {
    return "REDIS_URL scheme '" + scheme + "' is not supported; " + redis_form;
  }
  std::string_view rest = std::string_view(url).substr(sep + 3);
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return std::string("REDIS_URL takes no query or fragment; ") + redis_form;
  }
  std::string_view path;
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    path = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
  }
  redis_endpoint ep;
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      return std::string(
          "REDIS_URL: credentials need a ':' before the password "
          "(redis://:password@host or redis://user:password@host)");
    }
    if (!percent_decode(userinfo.substr(0, colon), ep.user)
        || !percent_decode(userinfo.substr(colon + 1), ep.password)) {
      return std::string("REDIS_URL: malformed %-escape in the credentials");
    }
    if (!ep.user.empty() && ep.password.empty()) {
      return std::string("REDIS_URL: a user name needs a password");
    }
  }
  std::string_view host = rest;
  std::string_view port;
  bool port_given = false;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) {
      return std::string("REDIS_URL: unterminated '[' in the IPv6 host");
    }
    host = rest.substr(1, close - 1);
    const std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return std::string("REDIS_URL: unexpected text after the IPv6 host");
      }
      port = after.substr(1);
      port_given = true;
    }
  } else if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    port_given = true;
  }
  if (host.empty()) {
    return std::string("REDIS_URL has no host; ") + redis_form;
  }
  ep.host = std::string(host);
  if (port_given) {
    const long value = all_digits(port) && port.size() <= 5 ? std::stol(std::string(port)) : 0;
    if (value < 1 || value > 65535) {
      return std::string(
          "REDIS_URL: port must be a number in 1..65535 (a password with "
          "'/', '@' or ':' must be %-encoded)");
    }
    ep.port = static_cast<int>(value);
  }
  if (!path.empty()) {
    if (!all_digits(path) || path.size() > 9) {
      return std::string(
          "REDIS_URL: database must be a non-negative number (a password with "
          "'/' must be %-encoded)");
    }
    ep.db = std::stol(std::string(path));
  }
  return ep;
}

/// Blocks SIGPIPE on this thread for the guard's lifetime and swallows one it raised, so a
/// write to a socket the server closed is an EPIPE error, never a process kill.
class sigpipe_guard {
 public:
  sigpipe_guard() {
    sigemptyset(&pipe_set_);
    sigaddset(&pipe_set_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_set_, &old_mask_);
  }
  ~sigpipe_guard() {
    if (!was_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        const timespec zero{0, 0};
        sigtimedwait(&pipe_set_, nullptr, &zero);
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
  }
  sigpipe_guard(const sigpipe_guard&) = delete;
  sigpipe_guard& operator=(const sigpipe_guard&) = delete;

 private:
  sigset_t pipe_set_;
  sigset_t old_mask_;
  bool was_pending_ = false;
};

struct reply_deleter {
  void operator()(redisReply* r) const {
    freeReplyObject(r);
  }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

timeval to_timeval(milliseconds ms) {
  const auto total = std::max<long long>(ms.count(), 1);
  return timeval{static_cast<time_t>(total / 1000),
                 static_cast<suseconds_t>((total % 1000) * 1000)};
}

std::shared_ptr<spdlog::logger> cache_logger() {
  auto log = spdlog::get("cache");
  return log ? log : spdlog::default_logger();
}

class redis_cache final : public cache_backend {
 public:
  redis_cache(const redis_options& options, redis_endpoint endpoint)
      : options_(options),
        endpoint_(std::move(endpoint)),
        prefix_pattern_(glob_escape(options.key_prefix)),
        clock_(options.clock) {
    if (!clock_) {
      clock_ = [] { return std::chrono::steady_clock::now(); };
    }
    options_.reconnect_min = std::max(options_.reconnect_min, milliseconds(1));
    options_.reconnect_max = std::max(options_.reconnect_max, options_.reconnect_min);
    backoff_ = options_.reconnect_min;
  }

  ~redis_cache() override {
    disconnect();
  }

  std::optional<std::string> get(const std::string& key) override {
    if (!ensure_connected()) {
      ++stats_.misses;
      return std::nullopt;
    }
    auto reply = command({"GET", options_.key_prefix + key});
    if (reply && reply->type == REDIS_REPLY_STRING) {
      ++stats_.hits;
      return std::string(reply->str, reply->len);
    }
    if (reply && reply->type != REDIS_REPLY_NIL) {
      fail("GET", reply.get());
    }
    ++stats_.misses;
    return std::nullopt;
  }

  void set(const std::string& key, const std::string& value, milliseconds ttl) override {
    if (ttl <= milliseconds::zero() || !ensure_connected()) {
      return;
    }
    auto reply =
        command({"SET", options_.key_prefix + key, value, "PX", std::to_string(ttl.count())});
    if (!reply) {
      return;
    }
    if (reply->type != REDIS_REPLY_STATUS) {
      fail("SET", reply.get());
      return;
    }
    ++stats_.sets;
  }

  uint64_t invalidate(const std::string& pattern) override {
    if (!ensure_connected()) {
      return 0;
    }
    const std::string match = prefix_pattern_ + pattern;
    uint64_t removed = 0;
    std::string cursor = "0";
    do {
      auto page = command({"SCAN", cursor, "MATCH", match, "COUNT", "500"});
      if (!page) {
        break;
      }
      if (page->type != REDIS_REPLY_ARRAY || page->elements != 2
          || page->element[0]->type != REDIS_REPLY_STRING
          || page->element[1]->type != REDIS_REPLY_ARRAY) {
        fail("SCAN", page.get());
        break;
      }
      cursor.assign(page->element[0]->str, page->element[0]->len);
      std::vector<std::string> batch;
      const redisReply* keys = page->element[1];
      batch.reserve(keys->elements + 1);
      batch.emplace_back(use_unlink_ ? "UNLINK" : "DEL");
      for (std::size_t i = 0; i < keys->elements; ++i) {
        if (keys->element[i]->type == REDIS_REPLY_STRING) {
          batch.emplace_back(keys->element[i]->str, keys->element[i]->len);
        }
      }
      if (batch.size() > 1) {
        const auto deleted = delete_keys(batch);
        if (!deleted) {
          break;
        }
        removed += *deleted;
      }
    } while (cursor != "0");
    stats_.invalidations += removed;
    return removed;
  }

  const char* name() const override {
    return "redis";
  }

  bool healthy() override {
    if (!ensure_connected()) {
      return false;
    }
    auto reply = command({"PING"});
    if (!reply) {
      return false;
    }
    if (reply->type != REDIS_REPLY_STATUS) {
      fail("PING", reply.get());
      return false;
    }
    return true;
  }

  cache_stats stats() const override {
    return stats_;
  }

  void close() override {
    closed_ = true;
    disconnect();
  }

 private:
  /// True when a connection is up, possibly after connecting now. Never touches the network
  /// inside the backoff window.
  bool ensure_connected() {
    if (closed_) {
      return false;
    }
    if (ctx_ != nullptr) {
      return true;
    }
    if (clock_() < next_attempt_) {
      return false;
    }
    std::string error;
    if (!connect(error)) {
      disconnect();
      ++stats_.errors;
      schedule_reconnect();
      cache_logger()->debug("redis {}:{} unreachable: {}; next attempt in {} ms", endpoint_.host,
                            endpoint_.port, error, last_delay_.count());
      return false;
    }
    backoff_ = options_.reconnect_min;
    cache_logger()->info("redis connected to {}:{} db={}", endpoint_.host, endpoint_.port,
                         endpoint_.db);
    return true;
  }

  bool connect(std::string& error) {
    const sigpipe_guard guard;
    const timeval tv = to_timeval(options_.op_timeout);
    ctx_ = redisConnectWithTimeout(endpoint_.host.c_str(), endpoint_.port, tv);
    if (ctx_ == nullptr) {
      error = "cannot allocate a redis context";
      return false;
    }
    if (ctx_->err != 0) {
      error = ctx_->errstr;
      return false;
    }
    if (redisSetTimeout(ctx_, tv) != REDIS_OK) {
      error = "cannot set the socket timeout";
      return false;
    }
    if (!endpoint_.password.empty()) {
      std::vector<std::string> auth{"AUTH"};
      if (!endpoint_.user.empty()) {
        auth.push_back(endpoint_.user);
      }
      auth.push_back(endpoint_.password);
      if (!expect_ok(auth, error)) {
        error = "AUTH failed: " + error;
        return false;
      }
    }
    if (endpoint_.db != 0 && !expect_ok({"SELECT", std::to_string(endpoint_.db)}, error)) {
      error = "SELECT failed: " + error;
      return false;
    }
    return true;
  }

  /// Runs a handshake command on the fresh connection; no failure accounting (connect does).
  bool expect_ok(const std::vector<std::string>& argv, std::string& error) {
    reply_ptr reply = raw_command(argv);
    if (!reply) {
      error = ctx_->err != 0 ? ctx_->errstr : "no reply";
      return false;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
      error.assign(reply->str, reply->len);
      return false;
    }
    return true;
  }

  reply_ptr raw_command(const std::vector<std::string>& argv) {
    const sigpipe_guard guard;
    std::vector<const char*> args;
    std::vector<size_t> lens;
    args.reserve(argv.size());
    lens.reserve(argv.size());
    for (const auto& a : argv) {
      args.push_back(a.data());
      lens.push_back(a.size());
    }
    void* r = redisCommandArgv(ctx_, static_cast<int>(args.size()), args.data(), lens.data());
    return reply_ptr(static_cast<redisReply*>(r));
  }

  /// Runs a command on the live connection. An I/O failure (timeout, EOF, reset) drops the
  /// connection and yields nullptr; an error reply is handed back for the caller to judge.
  reply_ptr command(const std::vector<std::string>& argv) {
    reply_ptr reply = raw_command(argv);
    if (!reply) {
      fail(argv.front().c_str(), nullptr);
    }
    return reply;
  }

  /// Deletes one batch (argv[0] is UNLINK or DEL); falls back to DEL on servers before 4.0.
  std::optional<uint64_t> delete_keys(std::vector<std::string>& argv) {
    auto reply = command(argv);
    if (!reply) {
      return std::nullopt;
    }
    if (reply->type == REDIS_REPLY_ERROR && use_unlink_
        && std::string_view(reply->str, reply->len).find("unknown command")
               != std::string_view::npos) {
      use_unlink_ = false;
      argv.front() = "DEL";
      return delete_keys(argv);
    }
    if (reply->type != REDIS_REPLY_INTEGER) {
      fail(argv.front().c_str(), reply.get());
      return std::nullopt;
    }
    return static_cast<uint64_t>(std::max<long long>(reply->integer, 0));
  }

  /// Counts a failure, drops the connection and opens a backoff window.
  void fail(const char* what, const redisReply* reply) {
    std::string error;
    if (reply != nullptr && reply->type == REDIS_REPLY_ERROR) {
      error.assign(reply->str, reply->len);
    } else if (reply != nullptr) {
      error = "unexpected reply type " + std::to_string(reply->type);
    } else if (ctx_ != nullptr && ctx_->err != 0) {
      error = ctx_->errstr;
    } else {
      error = "no reply";
    }
    disconnect();
    ++stats_.errors;
    schedule_reconnect();
    cache_logger()->warn("redis {} failed: {}; connection dropped, next attempt in {} ms", what,
                         error, last_delay_.count());
  }

  void schedule_reconnect() {
    last_delay_ = backoff_;
    next_attempt_ = clock_() + backoff_;
    backoff_ = std::min(backoff_ * 2, options_.reconnect_max);
  }

  void disconnect() {
    if (ctx_ != nullptr) {
      redisFree(ctx_);
      ctx_ = nullptr;
    }
  }

  redis_options options_;
  redis_endpoint endpoint_;
  std::string prefix_pattern_;  ///< key prefix with glob characters escaped
  cache_clock clock_;
  redisContext* ctx_ = nullptr;
  std::chrono::steady_clock::time_point next_attempt_{};
  milliseconds backoff_{};
  milliseconds last_delay_{};
  bool use_unlink_ = true;
  bool closed_ = false;
  cache_stats stats_;
};

}  // namespace

std::string validate_redis_url(const std::string& url) {
  auto parsed = parse_redis_url(url);
  if (auto* error = std::get_if<std::string>(&parsed)) {
    return *error;
  }
  return {};
}

std::unique_ptr<cache_backend> make_redis_cache(const redis_options& options) {
  auto parsed = parse_redis_url(options.url);
  if (auto* error = std::get_if<std::string>(&parsed)) {
    throw std::invalid_argument(*error);
  }
  return std::make_unique<redis_cache>(options, std::get<redis_endpoint>(std::move(parsed)));
}

}  // namespace si::storage
