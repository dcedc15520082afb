#pragma once
/// A small thread-safe metrics registry rendering the Prometheus text exposition format.

#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace si::net {

/// Label pairs of one sample, in the order they are rendered.
using metric_labels = std::vector<std::pair<std::string, std::string>>;

/// Counters, gauges and histograms by family name. Every family must be described before
/// use (an undescribed family is a programming error and is ignored in release builds).
class metrics_registry {
 public:
  void describe_counter(const std::string& name, const std::string& help);
  void describe_gauge(const std::string& name, const std::string& help);
  /// `bounds` are the upper bounds of the buckets, ascending; +Inf is implied.
  void describe_histogram(const std::string& name, const std::string& help,
                          std::vector<double> bounds);

  void counter_add(const std::string& name, const metric_labels& labels, double v = 1.0);
  /// Mirrors a counter kept elsewhere (it must only grow within this process).
  void counter_set(const std::string& name, const metric_labels& labels, double v);
  void gauge_set(const std::string& name, const metric_labels& labels, double v);
  void gauge_add(const std::string& name, const metric_labels& labels, double v);
  void histogram_observe(const std::string& name, const metric_labels& labels, double v);
  /// Drops every sample of a family (for gauges rebuilt from a snapshot).
  void clear(const std::string& name);

  /// The whole registry in text format 0.0.4, families in name order.
  std::string render() const;

  /// Current value of a counter or gauge sample (0 when absent); for tests and reports.
  double value(const std::string& name, const metric_labels& labels) const;

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
    std::map<std::string, double> values;              // rendered labels → value
    std::map<std::string, histogram_data> histograms;  // rendered labels → data
  };
  family* find(const std::string& name, const char* type);
  mutable std::mutex mtx_;
  std::map<std::string, family> families_;
};

/// `{a="x",b="y"}` with values escaped as the format requires ("" for no labels).
std::string render_labels(const metric_labels& labels);

}  // namespace si::net
