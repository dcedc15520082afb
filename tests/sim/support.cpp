#include "tests/sim/support.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace si::test {

namespace {

using steady = std::chrono::steady_clock;

int remaining_ms(steady::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

/// Forks and execs horizon-sim with `args`; the child's stdout (and, if asked, stderr) go
/// to pipes. Returns the pid.
pid_t spawn(const std::vector<std::string>& args, int& out_fd, int* err_fd) {
  int out[2];
  int err[2] = {-1, -1};
  if (::pipe2(out, O_CLOEXEC) != 0 || (err_fd != nullptr && ::pipe2(err, O_CLOEXEC) != 0)) {
    throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  }
  std::vector<std::string> argv_text = {SI_HORIZON_SIM};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_text) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    if (err_fd != nullptr) {
      ::dup2(err[1], STDERR_FILENO);
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  out_fd = out[0];
  if (err_fd != nullptr) {
    ::close(err[1]);
    *err_fd = err[0];
  }
  return pid;
}

int open_pidfd(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

/// Waits (bounded) until `pid` exits and reaps it; the wait status, or nullopt on timeout.
std::optional<int> wait_exit(pid_t pid, int pidfd, steady::time_point deadline) {
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    const int ready = ::poll(&p, 1, remaining_ms(deadline));
    if (ready <= 0) {
      return std::nullopt;
    }
  }
  int status = 0;
  // With a pidfd the child has exited; without one (old kernel) this blocks, which only a
  // child that ignores SIGKILL could prolong.
  if (::waitpid(pid, &status, 0) != pid) {
    return std::nullopt;
  }
  return status;
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status);
  }
  if (WIFSIGNALED(status)) {
    return 128 + WTERMSIG(status);
  }
  return -1;
}

/// Reads `fd` until EOF or the deadline.
std::string drain(int fd, steady::time_point deadline) {
  std::string out;
  char buffer[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, remaining_ms(deadline)) <= 0) {
      break;
    }
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) {
      break;
    }
    out.append(buffer, static_cast<std::size_t>(n));
  }
  return out;
}

}  // namespace

sim_process::sim_process(std::vector<std::string> args) {
  args.insert(args.begin(), {"--port", "0"});
  pid_ = spawn(args, stdout_fd_, nullptr);
  pidfd_ = open_pidfd(pid_);
  const auto deadline = steady::now() + sim_wait;
  auto give_up = [this](const std::string& why) {
    ::kill(pid_, SIGKILL);
    wait_exit(pid_, pidfd_, steady::now() + sim_wait);
    if (pidfd_ >= 0) {
      ::close(pidfd_);
    }
    ::close(stdout_fd_);
    throw std::runtime_error(why);
  };
  std::string line;
  char c = 0;
  while (line.find('\n') == std::string::npos) {
    pollfd p{stdout_fd_, POLLIN, 0};
    if (::poll(&p, 1, remaining_ms(deadline)) <= 0 || ::read(stdout_fd_, &c, 1) != 1) {
      give_up("horizon-sim printed no listening line: '" + line + "'");
    }
    line.push_back(c);
  }
  line.pop_back();
  banner_ = line;
  const std::string prefix = "horizon-sim listening on 127.0.0.1:";
  if (!line.starts_with(prefix)) {
    give_up("unexpected first line: '" + line + "'");
  }
  port_ = static_cast<uint16_t>(std::stoi(line.substr(prefix.size())));
}

sim_process::~sim_process() {
  if (!reaped_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    wait_exit(pid_, pidfd_, steady::now() + sim_wait);
  }
  if (pidfd_ >= 0) {
    ::close(pidfd_);
  }
  if (stdout_fd_ >= 0) {
    ::close(stdout_fd_);
  }
}

std::string sim_process::base_url() const {
  return "http://127.0.0.1:" + std::to_string(port_);
}

int sim_process::stop(int signal, std::chrono::milliseconds limit) {
  if (reaped_) {
    return -1;
  }
  ::kill(pid_, signal);
  auto status = wait_exit(pid_, pidfd_, steady::now() + limit);
  if (!status) {
    ::kill(pid_, SIGKILL);
    wait_exit(pid_, pidfd_, steady::now() + sim_wait);
    reaped_ = true;
    return -1;
  }
  reaped_ = true;
  return exit_code_of(*status);
}

run_result run_sim(std::vector<std::string> args, std::chrono::milliseconds limit) {
  int out_fd = -1;
  int err_fd = -1;
  const pid_t pid = spawn(args, out_fd, &err_fd);
  const int pidfd = open_pidfd(pid);
  const auto deadline = steady::now() + limit;
  run_result result;
  result.out = drain(out_fd, deadline);
  result.err = drain(err_fd, deadline);
  auto status = wait_exit(pid, pidfd, deadline);
  if (!status) {
    ::kill(pid, SIGKILL);
    wait_exit(pid, pidfd, steady::now() + sim_wait);
  } else {
    result.exit_code = exit_code_of(*status);
  }
  ::close(out_fd);
  ::close(err_fd);
  if (pidfd >= 0) {
    ::close(pidfd);
  }
  return result;
}

net::horizon_client_options client_options(const sim_process& sim,
                                           std::chrono::milliseconds timeout) {
  net::horizon_client_options o;
  o.base_url = sim.base_url();
  o.request_timeout = timeout;
  o.connect_timeout = 2s;
  o.max_retries = 0;
  o.breaker_threshold = 0;
  o.rate_limit_per_second = 0;
  o.jitter_seed = 1;
  return o;
}

std::string get_body(net::horizon_client& client, std::string_view target) {
  auto result = client.get(target);
  if (auto* error = std::get_if<net::horizon_error>(&result)) {
    throw std::runtime_error("GET " + std::string(target) + " failed: " + error->message);
  }
  return std::get<net::horizon_response>(std::move(result)).body;
}

json get_json(net::horizon_client& client, std::string_view target) {
  return json::parse(get_body(client, target));
}

net::horizon_error get_error(net::horizon_client& client, std::string_view target) {
  auto result = client.get(target);
  if (auto* response = std::get_if<net::horizon_response>(&result)) {
    throw std::runtime_error("GET " + std::string(target) + " unexpectedly answered "
                             + std::to_string(response->status));
  }
  return std::get<net::horizon_error>(std::move(result));
}

int status_of(net::horizon_client& client, std::string_view target) {
  auto result = client.get(target);
  if (auto* response = std::get_if<net::horizon_response>(&result)) {
    return response->status;
  }
  return std::get<net::horizon_error>(result).status;
}

raw_reply http_call(uint16_t port, std::string_view method, std::string_view target,
                    std::string_view body) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    if (fd >= 0) {
      ::close(fd);
    }
    throw std::runtime_error(std::string("connect: ") + std::strerror(errno));
  }
  std::string request = std::string(method) + " " + std::string(target)
                        + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                        + "Content-Type: application/json\r\nContent-Length: "
                        + std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  const std::string reply = drain(fd, steady::now() + sim_wait);
  ::close(fd);
  raw_reply out;
  const auto end = reply.find("\r\n\r\n");
  if (end == std::string::npos || reply.size() < 12) {
    throw std::runtime_error("incomplete reply to " + std::string(method) + " "
                             + std::string(target));
  }
  out.head = reply.substr(0, end + 4);
  out.body = reply.substr(end + 4);
  out.status = std::stoi(reply.substr(9, 3));
  return out;
}

raw_reply post_fault(const sim_process& sim, const json& rule) {
  return http_call(sim.port(), "POST", "/_sim/fault", rule.dump());
}

std::string fixture_text(const std::string& name) {
  const auto path =
      std::filesystem::path(SI_SOURCE_DIR) / ".." / "shared" / "horizon-fixtures" / name;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw std::runtime_error("cannot open fixture " + path.string());
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

json fixture(const std::string& name) {
  return json::parse(fixture_text(name));
}

template <class T>
std::vector<json> walk(net::horizon_client& client, const std::string& first_target,
                       std::size_t max_pages) {
  std::vector<json> records;
  std::string target = first_target;
  for (std::size_t page = 0; page < max_pages; ++page) {
    const std::string body = get_body(client, target);
    auto parsed = parsed_ok(domain::parse_page<T>(body));
    if (parsed.records.empty()) {
      return records;
    }
    const json doc = json::parse(body);
    for (const auto& record : doc.at("_embedded").at("records")) {
      records.push_back(record);
    }
    if (parsed.next_href.empty()) {
      throw std::runtime_error("page without _links.next: " + target);
    }
    target = parsed.next_href;
  }
  throw std::runtime_error("walk did not end within the page bound: " + first_target);
}

template std::vector<json> walk<domain::ledger>(net::horizon_client&, const std::string&,
                                                std::size_t);
template std::vector<json> walk<domain::transaction>(net::horizon_client&, const std::string&,
                                                     std::size_t);
template std::vector<json> walk<domain::operation>(net::horizon_client&, const std::string&,
                                                   std::size_t);
template std::vector<json> walk<domain::liquidity_pool>(net::horizon_client&, const std::string&,
                                                        std::size_t);
template std::vector<json> walk<domain::trade>(net::horizon_client&, const std::string&,
                                               std::size_t);
template std::vector<json> walk<domain::asset_stats>(net::horizon_client&, const std::string&,
                                                     std::size_t);

namespace {

void collect_paths(const json& value, const std::string& prefix, std::set<std::string>& out) {
  if (value.is_object()) {
    for (const auto& [key, item] : value.items()) {
      const std::string path = prefix.empty() ? key : prefix + "." + key;
      out.insert(path);
      collect_paths(item, path, out);
    }
  } else if (value.is_array()) {
    for (const auto& item : value) {
      collect_paths(item, prefix + "[]", out);
    }
  }
}

void check_assets_and_strip(json& value) {
  if (value.is_array()) {
    for (auto& item : value) {
      check_assets_and_strip(item);
    }
    return;
  }
  if (!value.is_object()) {
    return;
  }
  std::vector<std::string> drop;
  for (const auto& [key, item] : value.items()) {
    if (key.ends_with("asset_type") && item.is_string()) {
      const std::string prefix = key.substr(0, key.size() - std::string("asset_type").size());
      const bool native = item.get<std::string>() == "native";
      const bool has_code = value.contains(prefix + "asset_code");
      const bool has_issuer = value.contains(prefix + "asset_issuer");
      if (native == has_code || native == has_issuer) {
        throw std::runtime_error("asset fields of '" + key
                                 + "' do not match its type: " + value.dump());
      }
      drop.push_back(prefix + "asset_code");
      drop.push_back(prefix + "asset_issuer");
    }
  }
  for (const auto& key : drop) {
    value.erase(key);
  }
  for (auto& [key, item] : value.items()) {
    check_assets_and_strip(item);
  }
}

void erase_path(json& value, std::string_view path) {
  const auto dot = path.find('.');
  if (!value.is_object()) {
    return;
  }
  const std::string head(path.substr(0, dot));
  if (dot == std::string_view::npos) {
    value.erase(head);
    return;
  }
  if (value.contains(head)) {
    erase_path(value[head], path.substr(dot + 1));
  }
}

}  // namespace

std::set<std::string> key_paths(const json& value) {
  std::set<std::string> out;
  collect_paths(value, "", out);
  return out;
}

json normalize(json value, const std::vector<std::string>& optional) {
  check_assets_and_strip(value);
  for (const auto& path : optional) {
    erase_path(value, path);
  }
  return value;
}

// --- sse_reader ---

sse_reader::sse_reader(uint16_t port, const std::string& target,
                       const std::vector<std::string>& extra_headers) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    throw std::runtime_error(std::string("connect: ") + std::strerror(errno));
  }
  std::string request = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port)
                        + "\r\nAccept: text/event-stream\r\n";
  for (const auto& h : extra_headers) {
    request += h + "\r\n";
  }
  request += "\r\n";
  if (::send(fd_, request.data(), request.size(), MSG_NOSIGNAL)
      != static_cast<ssize_t>(request.size())) {
    throw std::runtime_error("cannot send the stream request");
  }
  const auto deadline = steady::now() + sim_wait;
  std::string buffer;
  char chunk[4096];
  while (buffer.find("\r\n\r\n") == std::string::npos) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, remaining_ms(deadline)) <= 0) {
      throw std::runtime_error("no response head within the bound");
    }
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
      throw std::runtime_error("connection closed before the response head");
    }
    buffer.append(chunk, static_cast<std::size_t>(n));
  }
  const auto end = buffer.find("\r\n\r\n");
  head_ = buffer.substr(0, end + 4);
  status_ = std::stoi(head_.substr(head_.find(' ') + 1, 3));
  feed(std::string_view(buffer).substr(end + 4));
}

sse_reader::~sse_reader() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

void sse_reader::feed(std::string_view bytes) {
  raw_.append(bytes);
  // Chunked transfer coding: "<hex size>\r\n<data>\r\n" ... "0\r\n\r\n".
  for (;;) {
    const auto line_end = raw_.find("\r\n");
    if (line_end == std::string::npos) {
      return;
    }
    const std::size_t size = std::stoul(raw_.substr(0, line_end), nullptr, 16);
    if (size == 0) {
      if (raw_.size() >= line_end + 4) {
        ended_ = true;
        clean_end_ = true;
        raw_.clear();
      }
      return;
    }
    if (raw_.size() < line_end + 2 + size + 2) {
      return;
    }
    auto events = parser_.feed(std::string_view(raw_).substr(line_end + 2, size));
    events_.insert(events_.end(), events.begin(), events.end());
    raw_.erase(0, line_end + 2 + size + 2);
  }
}

bool sse_reader::read_until(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  const auto deadline = steady::now() + limit;
  char chunk[16384];
  while (!done() && !ended_) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, remaining_ms(deadline)) <= 0) {
      break;
    }
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
      ended_ = true;
      break;
    }
    feed(std::string_view(chunk, static_cast<std::size_t>(n)));
  }
  return done();
}

}  // namespace si::test
