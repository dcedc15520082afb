#include <catch2/catch.hpp>

#include <pthread.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/logging.hpp"
#include "config/settings.hpp"
#include "net/http_server.hpp"
#include "net/thread_name.hpp"
#include "support.hpp"

using namespace si::test;
using nlohmann::json;
using si::net::http_request;
using si::net::http_response;
using si::net::http_server;
using si::net::http_server_options;
using si::net::respond_fn;
using steady = std::chrono::steady_clock;

namespace {

/// The calling thread's name (at most 15 bytes on Linux).
std::string current_thread_name() {
  std::array<char, si::net::max_thread_name + 1> name{};
  pthread_getname_np(pthread_self(), name.data(), name.size());
  return name.data();
}

http_server_options test_options() {
  http_server_options o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.io_threads = 2;
  return o;
}

/// A server whose handler routes on the path, for the tests below:
/// /hello answers at once; /hold... is held in `held` until the test answers it; /thread
/// answers from a new std::thread; /echo describes the request; /throw throws; /drop drops
/// its respond_fn; /twice answers twice; /nocontent answers 204; /badheader sets unsafe
/// headers; /id returns the request id the handler saw; /shared answers with `shared_page`'s
/// bytes without copying them (http_response::shared_owner); /big answers `big_page`
/// (16 MiB, more than loopback's socket buffers take at once); /threadname answers the
/// name of the thread the handler ran on.
class test_server {
 public:
  explicit test_server(http_server_options o = test_options())
      : server_(
          std::make_unique<http_server>(std::move(o), [this](http_request req, respond_fn respond) {
            handle(std::move(req), std::move(respond));
          })) {
    port_ = server_->start();
  }

  ~test_server() {
    join_threads();
    server_->stop();
  }

  http_server& server() {
    return *server_;
  }
  std::uint16_t port() const {
    return port_;
  }
  void join_threads() {
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(threads_mutex_);
      threads.swap(threads_);
    }
    for (auto& t : threads) {
      t.join();
    }
  }

  held_requests held;
  std::shared_ptr<const std::string> shared_page =
      std::make_shared<const std::string>(std::string(100'000, 'x') + "end");
  std::shared_ptr<const std::string> big_page = [] {
    std::string page(16 * 1024 * 1024, '\0');
    for (std::size_t i = 0; i < page.size(); ++i) {
      page[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);  // a misplaced chunk shows
    }
    return std::make_shared<const std::string>(std::move(page));
  }();

 private:
  void handle(http_request req, respond_fn respond) {
    const auto& p = req.path;
    if (p == "/hello") {
      respond(http_response{200, {{"Content-Type", "text/plain"}, {"X-Handler", "yes"}}, "hello"});
    } else if (p == "/shared") {
      http_response r{200, {}, "ignored: the shared bytes are sent"};
      auto page = shared_page;
      r.shared_body = *page;
      r.shared_owner = std::move(page);
      respond(std::move(r));
    } else if (p == "/big") {
      http_response r;
      auto page = big_page;
      r.shared_body = *page;
      r.shared_owner = std::move(page);
      respond(std::move(r));
    } else if (p.rfind("/hold", 0) == 0) {
      held.push(std::move(req), std::move(respond));
    } else if (p == "/threadname") {
      respond(http_response{200, {}, current_thread_name()});
    } else if (p == "/thread") {
      std::lock_guard lock(threads_mutex_);
      threads_.emplace_back([respond = std::move(respond)] {
        respond(http_response{200, {}, "from thread"});
      });
    } else if (p == "/echo") {
      respond(http_response{200,
                            {},
                            "method=" + req.method + " len=" + std::to_string(req.body.size())
                                + " query=" + req.query});
    } else if (p == "/throw") {
      throw std::runtime_error("boom");
    } else if (p == "/drop") {
      return;
    } else if (p == "/twice") {
      respond(http_response{200, {}, "first"});
      respond(http_response{500, {}, "second"});
    } else if (p == "/nocontent") {
      respond(http_response{204, {}, "ignored"});
    } else if (p == "/badheader") {
      respond(http_response{200,
                            {{"X-Evil", "a\r\nSet-Cookie: stolen=1"},
                             {"Bad Name", "x"},
                             {"Content-Length", "999"},
                             {"Connection", "close"},
                             {"X-Request-ID", "spoofed"},
                             {"X-Fine", "kept"}},
                            "ok"});
    } else if (p == "/id") {
      respond(http_response{200, {}, req.request_id});
    } else {
      respond(si::net::make_error_response(404, "NOT_FOUND", "no route", req.request_id));
    }
  }

  std::mutex threads_mutex_;
  std::vector<std::thread> threads_;
  std::unique_ptr<http_server> server_;
  std::uint16_t port_ = 0;
};

json error_of(const parsed_response& r) {
  auto body = json::parse(r.body);
  REQUIRE(body.contains("error"));
  return body["error"];
}

std::string post_request(std::string_view path, std::string_view body,
                         std::string_view extra = {}) {
  std::string r = "POST ";
  r += path;
  r += " HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  r += extra;
  r += "\r\n";
  r += body;
  return r;
}

}  // namespace

TEST_CASE("GET round trip echoes a sane X-Request-ID and generates one otherwise", "[net][http]") {
  test_server ts;
  raw_client c(ts.port());

  REQUIRE(c.send(get_request("/hello", "X-Request-ID: abc-123\r\n")));
  auto r = c.read_response();
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "hello");
  CHECK(r->header("X-Request-ID") == "abc-123");
  CHECK(r->header("Content-Length") == "5");
  CHECK(r->header("Content-Type") == "text/plain");
  CHECK(r->header("X-Handler") == "yes");
  CHECK(r->header("Server") == "stellar-insights");
  CHECK_FALSE(r->closes());

  // No id: one is generated, and the handler saw the same one.
  REQUIRE(c.send(get_request("/id")));
  auto g1 = c.read_response();
  REQUIRE(g1);
  REQUIRE(g1->header("X-Request-ID"));
  const std::string id1(*g1->header("X-Request-ID"));
  CHECK_FALSE(id1.empty());
  CHECK(g1->body == id1);

  // Too long (129 chars) or with a space: replaced by a generated, unique id.
  const std::string too_long(129, 'x');
  REQUIRE(c.send(get_request("/id", "X-Request-ID: " + too_long + "\r\n")));
  auto g2 = c.read_response();
  REQUIRE(g2);
  const std::string id2(g2->header("X-Request-ID").value_or(""));
  CHECK(id2 != too_long);
  CHECK_FALSE(id2.empty());
  CHECK(id2 != id1);

  REQUIRE(c.send(get_request("/id", "X-Request-ID: has space\r\n")));
  auto g3 = c.read_response();
  REQUIRE(g3);
  CHECK(g3->header("X-Request-ID") != "has space");
  CHECK(g3->header("X-Request-ID") != id2);

  // Exactly 128 printable characters is echoed.
  const std::string longest(128, 'y');
  REQUIRE(c.send(get_request("/hello", "X-Request-ID: " + longest + "\r\n")));
  auto g4 = c.read_response();
  REQUIRE(g4);
  CHECK(g4->header("X-Request-ID") == longest);

  // Unknown routes get the handler's JSON error; the server still adds the framing.
  REQUIRE(c.send(get_request("/nowhere?x=1")));
  auto nf = c.read_response();
  REQUIRE(nf);
  CHECK(nf->status == 404);
  auto err = error_of(*nf);
  CHECK(err["code"] == "NOT_FOUND");
  CHECK(err["request_id"] == std::string(nf->header("X-Request-ID").value_or("?")));
}

TEST_CASE("a shared body is sent as is, to many clients, and released after", "[net][http]") {
  std::weak_ptr<const std::string> page;
  {
    test_server ts;
    page = ts.shared_page;
    raw_client a(ts.port());
    raw_client b(ts.port());
    for (int i = 0; i < 2; ++i) {
      REQUIRE(a.send(get_request("/shared")));
      REQUIRE(b.send(get_request("/shared")));
      auto ra = a.read_response();
      auto rb = b.read_response();
      REQUIRE(ra);
      REQUIRE(rb);
      CHECK(ra->body == *ts.shared_page);
      CHECK(rb->body == *ts.shared_page);
      CHECK(ra->header("Content-Length") == std::to_string(ts.shared_page->size()));
    }
    REQUIRE(a.send("HEAD /shared HTTP/1.1\r\nHost: t\r\n\r\n"));
    auto head = a.read_response(true);
    REQUIRE(head);
    CHECK(head->header("Content-Length") == std::to_string(ts.shared_page->size()));
    CHECK(head->body.empty());
    ts.shared_page.reset();
  }
  CHECK(page.expired());  // no response kept the bytes alive
}

TEST_CASE("keep-alive serves several requests on one connection", "[net][http]") {
  test_server ts;
  raw_client c(ts.port());
  for (int i = 0; i < 3; ++i) {
    REQUIRE(c.send(get_request("/echo?i=" + std::to_string(i))));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "method=GET len=0 query=i=" + std::to_string(i));
    CHECK_FALSE(r->closes());
  }
  auto s = ts.server().stats();
  CHECK(s.connections_total == 1);
  CHECK(s.connections_open == 1);
  CHECK(s.requests_total == 3);

  // Empty lines between requests are ignored (RFC 9112 §2.2), whether they arrive with the
  // request or on their own.
  REQUIRE(c.send("\r\n" + get_request("/echo?after=crlf")));
  auto crlf = c.read_response();
  REQUIRE(crlf);
  CHECK(crlf->body == "method=GET len=0 query=after=crlf");

  // Absolute-form targets are reduced to path and query.
  REQUIRE(c.send("GET http://example.com/echo?abs=1 HTTP/1.1\r\nHost: example.com\r\n\r\n"));
  auto absolute = c.read_response();
  REQUIRE(absolute);
  CHECK(absolute->body == "method=GET len=0 query=abs=1");
  REQUIRE(c.send("GET http://example.com?only=query HTTP/1.1\r\nHost: example.com\r\n\r\n"));
  auto bare = c.read_response();
  REQUIRE(bare);
  CHECK(bare->status == 404);  // path "/" is not a route of the test handler
}

TEST_CASE("Connection: close and HTTP/1.0 end the connection after the response", "[net][http]") {
  test_server ts;
  {
    raw_client c(ts.port());
    // A request pipelined after the closing one is not read.
    REQUIRE(c.send(get_request("/hello", "Connection: close\r\n") + get_request("/hello")));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->closes());
    CHECK(c.wait_closed());
  }
  {
    raw_client c(ts.port());
    REQUIRE(c.send("GET /hello HTTP/1.0\r\n\r\n"));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "hello");
    CHECK(r->closes());
    CHECK(c.wait_closed());
  }
  {
    // HTTP/1.0 with keep-alive stays open and says so.
    raw_client c(ts.port());
    REQUIRE(c.send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->header("Connection") == "keep-alive");
    REQUIRE(c.send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    CHECK(c.read_response());
  }
}

TEST_CASE("pipelined requests are answered in order even when answered out of order",
          "[net][http]") {
  test_server ts;
  raw_client c(ts.port());
  REQUIRE(c.send(get_request("/hold/first") + get_request("/hold/second")));
  REQUIRE(ts.held.wait_for(2));
  auto [first_req, first_respond] = ts.held.pop();
  auto [second_req, second_respond] = ts.held.pop();
  CHECK(first_req.path == "/hold/first");
  CHECK(second_req.path == "/hold/second");
  CHECK(first_req.connection_id == second_req.connection_id);

  // The second is answered first, from another thread: nothing may be sent yet.
  std::thread([respond = second_respond] { respond(http_response{200, {}, "second"}); }).join();
  CHECK_FALSE(c.read_response(false, std::chrono::milliseconds(100)));

  std::thread([respond = first_respond] { respond(http_response{200, {}, "first"}); }).join();
  auto r1 = c.read_response();
  auto r2 = c.read_response();
  REQUIRE(r1);
  REQUIRE(r2);
  CHECK(r1->body == "first");
  CHECK(r2->body == "second");
  CHECK(r1->header("X-Request-ID") != r2->header("X-Request-ID"));
  CHECK_FALSE(r2->closes());
}

TEST_CASE("a burst of pipelined requests answered at once is served in order", "[net][http]") {
  // Answers given inside the handler are written at once, and the next buffered request is
  // resumed from the strand (not by recursion): 500 requests in one segment, all answered.
  test_server ts;
  raw_client c(ts.port());
  std::string burst;
  for (int i = 0; i < 500; ++i) {
    burst += get_request("/echo?n=" + std::to_string(i));
  }
  REQUIRE(c.send(burst));
  for (int i = 0; i < 500; ++i) {
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->body == "method=GET len=0 query=n=" + std::to_string(i));
  }
  REQUIRE(c.send(get_request("/hello")));
  auto r = c.read_response();
  REQUIRE(r);
  CHECK(r->body == "hello");
}

TEST_CASE("a response larger than the socket buffers is written whole, then the next",
          "[net][http]") {
  // The kernel takes part of 16 MiB at once; the rest is written asynchronously while the
  // client reads, and the pipelined request behind it is answered after it.
  test_server ts;
  raw_client c(ts.port());
  REQUIRE(c.send(get_request("/big") + get_request("/hello")));
  auto big = c.read_response();
  REQUIRE(big);
  CHECK(big->status == 200);
  CHECK(big->header("Content-Length") == std::to_string(ts.big_page->size()));
  CHECK(big->body.size() == ts.big_page->size());
  CHECK(big->body == *ts.big_page);
  auto hello = c.read_response();
  REQUIRE(hello);
  CHECK(hello->body == "hello");
  CHECK(ts.server().stats().timed_out == 0);
}

TEST_CASE("a client that stops reading a response is cut at write_timeout", "[net][http]") {
  auto o = test_options();
  o.write_timeout = std::chrono::milliseconds(200);
  test_server ts(o);
  auto& server = ts.server();
  raw_client c(ts.port());
  const auto t0 = steady::now();
  REQUIRE(c.send(get_request("/big")));  // ...and never reads
  // The drain's callback is the event: it fires once the stuck connection is gone.
  server.close_acceptor();
  server.begin_drain();
  // Shared: the io thread may still be inside set() when wait() returns.
  auto drained = std::make_shared<event>();
  server.async_wait_drained([drained] { drained->set(); });
  REQUIRE(drained->wait());
  CHECK(steady::now() - t0 >= o.write_timeout);
  auto s = server.stats();
  CHECK(s.timed_out == 1);
  CHECK(s.cut == 0);
  CHECK(s.in_flight == 0);
  // What the kernel had taken arrives, then the close: never a whole response.
  CHECK_FALSE(c.read_response());
}

TEST_CASE("max_pipelined bounds the requests read ahead on a connection", "[net][http]") {
  auto o = test_options();
  o.max_pipelined = 1;
  test_server ts(o);
  raw_client c(ts.port());
  REQUIRE(c.send(get_request("/hold/1") + get_request("/hold/2") + get_request("/hold/3")));
  for (int i = 1; i <= 3; ++i) {
    REQUIRE(ts.held.wait_for(static_cast<std::size_t>(i)));
    // The next request is only read once this one is answered.
    CHECK(ts.held.total() == static_cast<std::size_t>(i));
    auto [req, respond] = ts.held.pop();
    CHECK(req.path == "/hold/" + std::to_string(i));
    respond(http_response{200, {}, std::to_string(i)});
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->body == std::to_string(i));
  }
}

TEST_CASE("a handler may answer from another thread", "[net][http]") {
  test_server ts;
  raw_client c(ts.port());
  for (int i = 0; i < 3; ++i) {
    REQUIRE(c.send(get_request("/thread")));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "from thread");
  }
}

TEST_CASE("the io threads are named si-http-io; a thread name is cut to 15 bytes", "[net][http]") {
  test_server ts;
  raw_client c(ts.port());
  REQUIRE(c.send(get_request("/threadname")));
  auto r = c.read_response();
  REQUIRE(r);
  CHECK(r->body == "si-http-io");

  std::string seen;
  std::thread t([&seen] {
    si::net::name_this_thread("0123456789abcdefXYZ");
    seen = current_thread_name();
  });
  t.join();
  CHECK(seen == "0123456789abcde");
  CHECK(seen.size() == si::net::max_thread_name);
}

TEST_CASE("respond_fn misuse: throw -> 500, dropped -> 500, twice -> first wins", "[net][http]") {
  test_server ts;
  raw_client c(ts.port());

  REQUIRE(c.send(get_request("/throw")));
  auto thrown = c.read_response();
  REQUIRE(thrown);
  CHECK(thrown->status == 500);
  CHECK(error_of(*thrown)["code"] == "INTERNAL_ERROR");

  REQUIRE(c.send(get_request("/drop")));
  auto dropped = c.read_response();
  REQUIRE(dropped);
  CHECK(dropped->status == 500);
  CHECK(error_of(*dropped)["request_id"] == std::string(*dropped->header("X-Request-ID")));

  REQUIRE(c.send(get_request("/twice")));
  auto twice = c.read_response();
  REQUIRE(twice);
  CHECK(twice->status == 200);
  CHECK(twice->body == "first");

  // The connection is still in step: the ignored second answer did not leak into this one.
  REQUIRE(c.send(get_request("/hello")));
  auto next = c.read_response();
  REQUIRE(next);
  CHECK(next->body == "hello");
}

TEST_CASE("the server owns framing headers and drops unsafe ones", "[net][http]") {
  test_server ts;
  raw_client c(ts.port());
  REQUIRE(c.send(get_request("/badheader", "X-Request-ID: mine\r\n")));
  auto r = c.read_response();
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "ok");
  CHECK(r->header("Content-Length") == "2");
  CHECK(r->header("X-Request-ID") == "mine");
  CHECK_FALSE(r->header("X-Evil"));
  CHECK_FALSE(r->header("Set-Cookie"));
  CHECK_FALSE(r->header("Bad Name"));
  CHECK_FALSE(r->closes());
  CHECK(r->header("X-Fine") == "kept");
  REQUIRE(c.send(get_request("/hello")));
  CHECK(c.read_response());
}

TEST_CASE("HEAD gets Content-Length without a body; 204 gets neither", "[net][http]") {
  test_server ts;
  raw_client c(ts.port());
  REQUIRE(c.send("HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto head = c.read_response(true);
  REQUIRE(head);
  CHECK(head->status == 200);
  CHECK(head->header("Content-Length") == "5");

  REQUIRE(c.send(get_request("/nocontent")));
  auto none = c.read_response();
  REQUIRE(none);
  CHECK(none->status == 204);
  CHECK_FALSE(none->header("Content-Length"));

  // No stray body bytes were sent: the next response parses cleanly.
  REQUIRE(c.send(get_request("/hello")));
  auto next = c.read_response();
  REQUIRE(next);
  CHECK(next->status == 200);
  CHECK(next->body == "hello");
}

TEST_CASE("request bodies: Content-Length, chunked and Expect: 100-continue", "[net][http]") {
  test_server ts;
  raw_client c(ts.port());
  REQUIRE(c.send(post_request("/echo", std::string(1000, 'b'))));
  auto r = c.read_response();
  REQUIRE(r);
  CHECK(r->body == "method=POST len=1000 query=");

  REQUIRE(
      c.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
             "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
  auto chunked = c.read_response();
  REQUIRE(chunked);
  CHECK(chunked->body == "method=POST len=5 query=");

  REQUIRE(
      c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
             "Expect: 100-continue\r\n\r\n"));
  auto interim = c.read_response();
  REQUIRE(interim);
  CHECK(interim->status == 100);
  REQUIRE(c.send("hello"));
  auto final_response = c.read_response();
  REQUIRE(final_response);
  CHECK(final_response->status == 200);
  CHECK(final_response->body == "method=POST len=5 query=");
}

TEST_CASE("a malformed request line gets 400 JSON and a close; others are still served",
          "[net][http]") {
  test_server ts;
  raw_client bad(ts.port());
  REQUIRE(bad.send("this is not http\r\n\r\n"));
  auto r = bad.read_response();
  REQUIRE(r);
  CHECK(r->status == 400);
  CHECK(r->header("Content-Type") == "application/json");
  CHECK(r->closes());
  auto err = error_of(*r);
  CHECK(err["code"] == "BAD_REQUEST");
  CHECK_FALSE(err["message"].get<std::string>().empty());
  CHECK(err["request_id"] == std::string(r->header("X-Request-ID").value_or("?")));
  CHECK(bad.wait_closed());

  raw_client good(ts.port());
  REQUIRE(good.send(get_request("/hello")));
  auto ok = good.read_response();
  REQUIRE(ok);
  CHECK(ok->status == 200);
  CHECK(ts.server().stats().bad_requests == 1);
}

TEST_CASE("an oversized header gets 431 HEADERS_TOO_LARGE", "[net][http]") {
  test_server ts;  // header_limit: 16 KiB
  raw_client c(ts.port());
  REQUIRE(c.send(get_request("/hello", "X-Big: " + std::string(20 * 1024, 'a') + "\r\n")));
  auto r = c.read_response();
  REQUIRE(r);
  CHECK(r->status == 431);
  CHECK(error_of(*r)["code"] == "HEADERS_TOO_LARGE");
  CHECK(r->closes());
  CHECK(c.wait_closed());

  // Just under the limit is fine.
  raw_client fine(ts.port());
  REQUIRE(fine.send(get_request("/hello", "X-Big: " + std::string(15 * 1024, 'a') + "\r\n")));
  auto ok = fine.read_response();
  REQUIRE(ok);
  CHECK(ok->status == 200);
}

TEST_CASE("an oversized body gets 413 PAYLOAD_TOO_LARGE", "[net][http]") {
  auto o = test_options();
  o.body_limit = 1024;
  test_server ts(o);
  {
    raw_client c(ts.port());
    REQUIRE(c.send(post_request("/echo", std::string(2048, 'x'), "X-Request-ID: big-1\r\n")));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 413);
    auto err = error_of(*r);
    CHECK(err["code"] == "PAYLOAD_TOO_LARGE");
    CHECK(err["request_id"] == "big-1");
    CHECK(r->closes());
    CHECK(c.wait_closed());
  }
  {
    // Chunked: caught while the body streams in.
    raw_client c(ts.port());
    std::string chunk(800, 'y');
    REQUIRE(
        c.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
               "320\r\n"
               + chunk + "\r\n320\r\n" + chunk + "\r\n0\r\n\r\n"));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 413);
    CHECK(r->closes());
  }
  CHECK(ts.server().stats().bad_requests == 2);
}

TEST_CASE("slowloris: a header trickling past read_header_timeout is cut", "[net][http]") {
  auto o = test_options();
  o.read_header_timeout = std::chrono::milliseconds(200);
  test_server ts(o);
  const auto t0 = steady::now();
  raw_client c(ts.port());
  REQUIRE(c.send("GET /hello HTTP/1.1\r\nHost: x\r\n"));  // ...and never the end
  CHECK(c.wait_closed());
  CHECK(steady::now() - t0 >= o.read_header_timeout);

  // The same on a keep-alive connection's second request.
  raw_client k(ts.port());
  REQUIRE(k.send(get_request("/hello")));
  REQUIRE(k.read_response());
  const auto t1 = steady::now();
  REQUIRE(k.send("GET /hello HTTP/1.1\r\nX-Slow: "));
  CHECK(k.wait_closed());
  CHECK(steady::now() - t1 >= o.read_header_timeout);
  // (stats().timed_out is not checked here: tcp_stream closes the socket before the read
  // completion that counts it runs.)
}

TEST_CASE("idle connections are closed: keep-alive idle timeout, and a silent new one",
          "[net][http]") {
  auto o = test_options();
  o.keep_alive_idle_timeout = std::chrono::milliseconds(200);
  o.read_header_timeout = std::chrono::milliseconds(300);
  test_server ts(o);

  raw_client c(ts.port());
  // Before sending: the idle timer starts when the response's write completes, which may
  // be after the client has read it but is never before the request was sent.
  const auto t0 = steady::now();
  REQUIRE(c.send(get_request("/hello")));
  REQUIRE(c.read_response());
  CHECK(c.wait_closed());
  CHECK(steady::now() - t0 >= o.keep_alive_idle_timeout);

  const auto t1 = steady::now();
  raw_client silent(ts.port());
  CHECK(silent.wait_closed());
  CHECK(steady::now() - t1 >= o.read_header_timeout);
  CHECK(ts.server().stats().timed_out == 2);  // counted before the FIN is sent
}

TEST_CASE("beyond max_connections a connection is answered 503 and closed", "[net][http]") {
  auto o = test_options();
  o.max_connections = 1;
  test_server ts(o);
  raw_client first(ts.port());
  REQUIRE(first.send(get_request("/hello")));
  REQUIRE(first.read_response());  // accepted and counted

  raw_client second(ts.port());
  auto r = second.read_response();
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(error_of(*r)["code"] == "SERVICE_UNAVAILABLE");
  CHECK(r->header("Retry-After") == "1");
  CHECK(r->closes());
  CHECK(second.wait_closed());

  auto s = ts.server().stats();
  CHECK(s.refused_over_limit == 1);
  CHECK(s.connections_open == 1);
  CHECK(s.connections_total == 1);

  REQUIRE(first.send(get_request("/hello")));
  auto again = first.read_response();
  REQUIRE(again);
  CHECK(again->status == 200);
}

TEST_CASE("drain: refuse new, finish in-flight with Connection: close, close idle, cut rest",
          "[net][http][drain]") {
  auto o = test_options();
  o.drain_idle_window = std::chrono::milliseconds(1000);
  test_server ts(o);
  auto& server = ts.server();
  const auto port = ts.port();

  raw_client busy(port);  // a request in flight when the drain begins
  REQUIRE(busy.send(get_request("/hold/busy")));
  REQUIRE(ts.held.wait_for(1));
  raw_client stuck(port);  // a request whose handler never answers
  REQUIRE(stuck.send(get_request("/hold/stuck")));
  REQUIRE(ts.held.wait_for(2));
  raw_client idle(port);  // idle in keep-alive: closed after the window
  REQUIRE(idle.send(get_request("/hello")));
  REQUIRE(idle.read_response());
  raw_client late(port);  // idle in keep-alive, then sends a request right at drain start
  REQUIRE(late.send(get_request("/hello")));
  REQUIRE(late.read_response());
  raw_client partial(port);  // in the middle of sending a request
  REQUIRE(partial.send(get_request("/hello")));
  REQUIRE(partial.read_response());  // (so it is surely accepted before close_acceptor)
  REQUIRE(partial.send("GET /echo?partial HTTP/1.1\r\nHost: t\r\n"));

  CHECK(server.close_acceptor() == 0);
  CHECK(raw_client::try_connect(port) == ECONNREFUSED);
  CHECK_FALSE(server.stats().accepting);

  auto drained = std::make_shared<event>();
  const auto t0 = steady::now();
  server.begin_drain();
  server.async_wait_drained([drained] { drained->set(); });

  REQUIRE(late.send(get_request("/hello")));
  auto late_response = late.read_response();
  REQUIRE(late_response);
  CHECK(late_response->status == 200);
  CHECK(late_response->closes());
  CHECK(late.wait_closed());

  REQUIRE(partial.send("\r\n"));
  auto partial_response = partial.read_response();
  REQUIRE(partial_response);
  CHECK(partial_response->status == 200);
  CHECK(partial_response->body == "method=GET len=0 query=partial");
  CHECK(partial_response->closes());
  CHECK(partial.wait_closed());

  {
    auto [req, respond] = ts.held.pop();
    REQUIRE(req.path == "/hold/busy");
    respond(http_response{200, {}, "done"});
  }
  auto busy_response = busy.read_response();
  REQUIRE(busy_response);
  CHECK(busy_response->status == 200);
  CHECK(busy_response->body == "done");
  CHECK(busy_response->closes());
  CHECK(busy.wait_closed());

  CHECK(idle.wait_closed());
  CHECK(steady::now() - t0 >= o.drain_idle_window);

  CHECK_FALSE(drained->is_set());  // `stuck` is still open
  auto s = server.stats();
  CHECK(s.draining);
  CHECK(s.served_during_drain == 3);
  CHECK(s.idle_closed_by_drain == 1);
  CHECK(s.in_flight == 1);

  CHECK(server.cut_remaining() == 1);
  CHECK(stuck.wait_closed());
  CHECK(drained->wait());
  s = server.stats();
  CHECK(s.cut == 1);
  CHECK(s.connections_open == 0);
  CHECK(s.in_flight == 0);
  CHECK(s.requests_total == 6);

  // The handler answering after the cut is harmless.
  auto [req, respond] = ts.held.pop();
  CHECK(req.path == "/hold/stuck");
  respond(http_response{200, {}, "too late"});
  CHECK(server.cut_remaining() == 0);
}

TEST_CASE("close_acceptor serves connections already waiting in the backlog",
          "[net][http][drain]") {
  // One io thread, blocked by a handler: a connection made meanwhile stays in the kernel
  // backlog (nobody runs the accept), so close_acceptor() must take it from there.
  auto o = test_options();
  o.io_threads = 1;
  event release;
  event blocking;
  http_server server(o, [&](http_request req, respond_fn respond) {
    if (req.path == "/block") {
      blocking.set();
      release.wait();  // deliberately blocks the only io thread (test only)
    }
    respond(http_response{200, {}, req.path});
  });
  const auto port = server.start();
  raw_client blocker(port);
  REQUIRE(blocker.send(get_request("/block")));
  REQUIRE(blocking.wait());
  raw_client waiting(port);  // handshake done by the kernel; not accepted yet
  REQUIRE(waiting.send(get_request("/queued")));

  CHECK(server.close_acceptor() == 1);
  CHECK(server.stats().from_backlog == 1);
  CHECK(raw_client::try_connect(port) == ECONNREFUSED);
  release.set();

  auto r = waiting.read_response();
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "/queued");
  auto b = blocker.read_response();
  REQUIRE(b);
  CHECK(b->body == "/block");
}

TEST_CASE("drain with no connection: async_wait_drained fires at once", "[net][http][drain]") {
  test_server ts;
  ts.server().close_acceptor();
  CHECK(ts.server().close_acceptor() == 0);  // idempotent
  ts.server().begin_drain();
  event drained;
  ts.server().async_wait_drained([&] { drained.set(); });
  CHECK(drained.is_set());
}

TEST_CASE("a respond_fn outliving the server is harmless; stop is idempotent", "[net][http]") {
  respond_fn kept;
  {
    held_requests held;
    http_server server(test_options(), [&](http_request req, respond_fn respond) {
      held.push(std::move(req), std::move(respond));
    });
    raw_client c(server.start());
    REQUIRE(c.send(get_request("/x")));
    REQUIRE(held.wait_for(1));
    kept = held.pop().second;
    server.stop();
    server.stop();
    kept(http_response{200, {}, "after stop"});  // dropped
  }
  kept(http_response{200, {}, "after destruction"});  // ignored (called twice) and harmless
  kept = nullptr;
}

TEST_CASE("one access-log line per request", "[net][http]") {
  std::ostringstream out;
  si::config::settings settings;
  settings.log_level = "info";
  si::config::init_logging(settings, out);
  {
    test_server ts;
    raw_client c(ts.port());
    REQUIRE(c.send(get_request("/hello?q=1", "X-Request-ID: log-me\r\n")));
    REQUIRE(c.read_response());
    REQUIRE(c.send(get_request("/nowhere")));
    REQUIRE(c.read_response());
    // A response reaches the client before its write completion (which logs) runs; the
    // next response is only written after that completion.
    REQUIRE(c.send(get_request("/hello")));
    REQUIRE(c.read_response());
    ts.server().stop();  // joins the io threads: the lines are complete
  }
  const auto text = out.str();
  si::config::init_logging(si::config::settings{});
  CHECK(text.find("[http_gateway] GET /hello 200 ") != std::string::npos);
  CHECK(text.find("request_id=log-me remote=127.0.0.1:") != std::string::npos);
  CHECK(text.find("GET /nowhere 404 ") != std::string::npos);
}
