#include "net/prometheus.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdio>

namespace si::net {

namespace {

/// Appends `v` escaped as the text format requires: backslash and line feed always, the
/// double quote too inside a label value (`quotes`), not in HELP text.
void append_escaped(std::string& out, std::string_view v, bool quotes) {
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quotes && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

std::string escape_help(const std::string& v) {
  std::string out;
  append_escaped(out, v, false);
  return out;
}

std::string format_value(double v) {
  if (std::isinf(v)) {
    return v > 0 ? "+Inf" : "-Inf";
  }
  if (std::isnan(v)) {
    return "NaN";
  }
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.9g", v);
  }
  return buf;
}

/// Inserts `le` into rendered labels `{...}`.
std::string with_le(const std::string& rendered, const std::string& le) {
  if (rendered.empty()) {
    return "{le=\"" + le + "\"}";
  }
  return rendered.substr(0, rendered.size() - 1) + ",le=\"" + le + "\"}";
}

/// Appends `labels` rendered as render_labels does.
void append_labels(std::string& out, metric_labels labels) {
  if (labels.size() == 0) {
    return;
  }
  out += '{';
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) {
      out += ',';
    }
    first = false;
    out += name;
    out += "=\"";
    append_escaped(out, value, true);
    out += '"';
  }
  out += '}';
}

/// The rendered key of `labels` in a per-thread buffer (no allocation once it has grown);
/// valid until the next call on this thread.
std::string_view key_of(metric_labels labels) {
  thread_local std::string buffer;
  buffer.clear();
  append_labels(buffer, labels);
  return buffer;
}

/// map[key] without building a std::string when the key is present.
template <typename Map>
typename Map::mapped_type& at_key(Map& map, std::string_view key) {
  auto i = map.find(key);
  if (i == map.end()) {
    i = map.emplace(std::string(key), typename Map::mapped_type{}).first;
  }
  return i->second;
}

}  // namespace

std::string render_labels(metric_labels labels) {
  std::string out;
  append_labels(out, labels);
  return out;
}

void metrics_registry::describe_counter(const std::string& name, const std::string& help) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto& f = families_[name];
  f.type = "counter";
  f.help = help;
}

void metrics_registry::describe_gauge(const std::string& name, const std::string& help) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto& f = families_[name];
  f.type = "gauge";
  f.help = help;
}

void metrics_registry::describe_histogram(const std::string& name, const std::string& help,
                                          std::vector<double> bounds) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto& f = families_[name];
  f.type = "histogram";
  f.help = help;
  std::sort(bounds.begin(), bounds.end());
  f.bounds = std::move(bounds);
}

metrics_registry::family* metrics_registry::find(std::string_view name, const char* type) {
  auto i = families_.find(name);
  if (i == families_.end() || i->second.type != type) {
    assert(!"metric family used before it was described");
    return nullptr;
  }
  return &i->second;
}

double* metrics_registry::sample(std::string_view name, const char* type, std::string_view key) {
  auto* f = find(name, type);
  return f == nullptr ? nullptr : &at_key(f->values, key);
}

void metrics_registry::counter_add(std::string_view name, metric_labels labels, double v) {
  const auto key = key_of(labels);
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto* x = sample(name, "counter", key)) {
    *x += v;
  }
}

void metrics_registry::counter_set(std::string_view name, metric_labels labels, double v) {
  const auto key = key_of(labels);
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto* x = sample(name, "counter", key)) {
    *x = v;
  }
}

void metrics_registry::gauge_set(std::string_view name, metric_labels labels, double v) {
  const auto key = key_of(labels);
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto* x = sample(name, "gauge", key)) {
    *x = v;
  }
}

void metrics_registry::gauge_add(std::string_view name, metric_labels labels, double v) {
  const auto key = key_of(labels);
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto* x = sample(name, "gauge", key)) {
    *x += v;
  }
}

void metrics_registry::histogram_observe(std::string_view name, metric_labels labels, double v) {
  const auto key = key_of(labels);
  std::lock_guard<std::mutex> guard{mtx_};
  auto* f = find(name, "histogram");
  if (f == nullptr) {
    return;
  }
  auto& h = at_key(f->histograms, key);
  if (h.buckets.empty()) {
    h.buckets.assign(f->bounds.size(), 0);
  }
  auto i = std::lower_bound(f->bounds.begin(), f->bounds.end(), v) - f->bounds.begin();
  if (static_cast<size_t>(i) < h.buckets.size()) {
    ++h.buckets[i];
  }
  ++h.count;
  h.sum += v;
}

void metrics_registry::clear(const std::string& name) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = families_.find(name);
  if (i != families_.end()) {
    i->second.values.clear();
    i->second.histograms.clear();
  }
}

double metrics_registry::value(std::string_view name, metric_labels labels) const {
  const auto key = key_of(labels);
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = families_.find(name);
  if (i == families_.end()) {
    return 0;
  }
  auto j = i->second.values.find(key);
  return j == i->second.values.end() ? 0 : j->second;
}

std::string metrics_registry::render() const {
  std::lock_guard<std::mutex> guard{mtx_};
  std::string out;
  for (const auto& [name, f] : families_) {
    out += "# HELP " + name + " " + escape_help(f.help) + "\n";
    out += "# TYPE " + name + " " + f.type + "\n";
    if (f.type == "histogram") {
      for (const auto& [labels, h] : f.histograms) {
        uint64_t cumulative = 0;
        for (size_t i = 0; i < f.bounds.size(); ++i) {
          cumulative += h.buckets[i];
          out += name + "_bucket" + with_le(labels, format_value(f.bounds[i])) + " "
                 + std::to_string(cumulative) + "\n";
        }
        out += name + "_bucket" + with_le(labels, "+Inf") + " " + std::to_string(h.count) + "\n";
        out += name + "_sum" + labels + " " + format_value(h.sum) + "\n";
        out += name + "_count" + labels + " " + std::to_string(h.count) + "\n";
      }
      continue;
    }
    for (const auto& [labels, v] : f.values) {
      out += name + labels + " " + format_value(v) + "\n";
    }
  }
  return out;
}

}  // namespace si::net
