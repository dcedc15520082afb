#pragma once
/// A small thread-safe metrics registry rendering the Prometheus text exposition format.

#include <initializer_list>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace si::net {

/// Label pairs of one sample, in the order they are rendered; a braced list at the call
/// (`{{"route", r}, {"status", "200"}}`), whose strings only need to outlive the call. No
/// allocation: a sample that exists is updated without building a vector or a key string.
using metric_labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

/// Counters, gauges and histograms by family name. Every family must be described before
/// use (an undescribed family is a programming error and is ignored in release builds).
class metrics_registry {
 public:
  void describe_counter(const std::string& name, const std::string& help);
  void describe_gauge(const std::string& name, const std::string& help);
  /// `bounds` are the upper bounds of the buckets, ascending; +Inf is implied.
  void describe_histogram(const std::string& name, const std::string& help,
                          std::vector<double> bounds);

  void counter_add(std::string_view name, metric_labels labels, double v = 1.0);
  /// Mirrors a counter kept elsewhere (it must only grow within this process).
  void counter_set(std::string_view name, metric_labels labels, double v);
  void gauge_set(std::string_view name, metric_labels labels, double v);
  void gauge_add(std::string_view name, metric_labels labels, double v);
  void histogram_observe(std::string_view name, metric_labels labels, double v);
  /// Drops every sample of a family (for gauges rebuilt from a snapshot).
  void clear(const std::string& name);

  /// The whole registry in text format 0.0.4, families in name order.
  std::string render() const;

  /// Current value of a counter or gauge sample (0 when absent); for tests and reports.
  double value(std::string_view name, metric_labels labels) const;

 private:
  struct histogram_data {
    std::vector<uint64_t> buckets;  // per bound, non-cumulative
    uint64_t count = 0;
    double sum = 0;
  };
  struct family {
    std::string type;
    std::string help;
    std::vector<double> bounds;
    std::map<std::string, double, std::less<>> values;              // rendered labels → value
    std::map<std::string, histogram_data, std::less<>> histograms;  // rendered labels → data
  };
  family* find(std::string_view name, const char* type);
  /// The sample `key` of counter/gauge family `name` (created at 0), or null.
  double* sample(std::string_view name, const char* type, std::string_view key);
  mutable std::mutex mtx_;
  std::map<std::string, family, std::less<>> families_;
};

/// `{a="x",b="y"}` with values escaped as the format requires ("" for no labels).
std::string render_labels(metric_labels labels);

}  // namespace si::net
