// Unit tests of the Prometheus registry's text exposition.

#include "net/prometheus.hpp"

#include <catch2/catch.hpp>

using namespace si::net;

TEST_CASE("registry renders counters, gauges and cumulative histograms", "[prometheus]") {
  metrics_registry m;
  m.describe_counter("t_requests_total", "Requests.\nSecond line");
  m.describe_gauge("t_in_flight", "In flight.");
  m.describe_histogram("t_seconds", "Latency.", {0.1, 0.5, 1});
  m.counter_add("t_requests_total", {{"route", "/a"}, {"status", "200"}});
  m.counter_add("t_requests_total", {{"route", "/a"}, {"status", "200"}}, 2);
  m.counter_add("t_requests_total", {{"route", "x\"y\\z\n"}, {"status", "404"}});
  m.gauge_set("t_in_flight", {}, 3);
  m.gauge_add("t_in_flight", {}, -1);
  m.histogram_observe("t_seconds", {{"route", "/a"}}, 0.05);
  m.histogram_observe("t_seconds", {{"route", "/a"}}, 0.7);
  m.histogram_observe("t_seconds", {{"route", "/a"}}, 5);
  auto text = m.render();
  CHECK(text.find("# HELP t_requests_total Requests.\\nSecond line\n") != std::string::npos);
  CHECK(text.find("# TYPE t_requests_total counter\n") != std::string::npos);
  CHECK(text.find("t_requests_total{route=\"/a\",status=\"200\"} 3\n") != std::string::npos);
  CHECK(text.find("t_requests_total{route=\"x\\\"y\\\\z\\n\",status=\"404\"} 1\n")
        != std::string::npos);
  CHECK(text.find("t_in_flight 2\n") != std::string::npos);
  CHECK(text.find("t_seconds_bucket{route=\"/a\",le=\"0.1\"} 1\n") != std::string::npos);
  CHECK(text.find("t_seconds_bucket{route=\"/a\",le=\"0.5\"} 1\n") != std::string::npos);
  CHECK(text.find("t_seconds_bucket{route=\"/a\",le=\"1\"} 2\n") != std::string::npos);
  CHECK(text.find("t_seconds_bucket{route=\"/a\",le=\"+Inf\"} 3\n") != std::string::npos);
  CHECK(text.find("t_seconds_count{route=\"/a\"} 3\n") != std::string::npos);
  CHECK(text.find("t_seconds_sum{route=\"/a\"} 5.75\n") != std::string::npos);
  CHECK(m.value("t_requests_total", {{"route", "/a"}, {"status", "200"}}) == 3);
  m.counter_set("t_requests_total", {{"route", "/b"}, {"status", "200"}}, 42);
  CHECK(m.value("t_requests_total", {{"route", "/b"}, {"status", "200"}}) == 42);
  m.clear("t_requests_total");
  CHECK(m.value("t_requests_total", {{"route", "/a"}, {"status", "200"}}) == 0);
}
