#include "tools/horizon_sim/control.hpp"

#include <nlohmann/json.hpp>

namespace si::sim {

namespace {

constexpr std::array<std::string_view, endpoint_count> endpoint_names = {
    "/",
    "/ledgers",
    "/ledgers/{seq}",
    "/ledgers/{seq}/transactions",
    "/ledgers/{seq}/operations",
    "/ledgers/{seq}/payments",
    "/transactions",
    "/transactions/{hash}",
    "/transactions/{hash}/operations",
    "/operations",
    "/operations/{id}",
    "/payments",
    "/liquidity_pools",
    "/liquidity_pools/{id}",
    "/liquidity_pools/{id}/trades",
    "/assets",
    "/_sim",
    "unknown",
};

}  // namespace

chain::chain(const world& w, ledger_cache& cache)
    : cache_(cache),
      start_(w.config().start_ledger),
      last_allowed_(w.config().close_ms == 0 ? w.config().start_ledger + w.config().ledgers - 1
                    : w.config().max_ledgers != 0
                        ? w.config().start_ledger + w.config().max_ledgers - 1
                        : 0x7fffffffU),
      latest_(w.config().start_ledger + w.config().ledgers - 1) {}

bool chain::can_grow() const {
  return latest() < last_allowed_;
}

bool chain::close_next() {
  const uint32_t current = latest();
  if (current >= last_allowed_) {
    return false;
  }
  // Before publishing, because a reader that sees the new tip must find it complete (and
  // should not have to generate it).
  cache_.get(current + 1, ledger_part::operations);
  cache_.get(current + 1, ledger_part::transactions);
  latest_.store(current + 1, std::memory_order_release);
  return true;
}

void fault_queue::add(fault_spec spec) {
  std::lock_guard lock(mutex_);
  rules_.push_back(std::move(spec));
}

std::size_t fault_queue::clear() {
  std::lock_guard lock(mutex_);
  const std::size_t n = rules_.size();
  rules_.clear();
  return n;
}

std::optional<fault_spec> fault_queue::take(std::string_view path) {
  std::lock_guard lock(mutex_);
  for (auto it = rules_.begin(); it != rules_.end(); ++it) {
    if (path.starts_with(it->path)) {
      fault_spec used = *it;
      used.count = 1;
      if (--it->count == 0) {
        rules_.erase(it);
      }
      return used;
    }
  }
  return std::nullopt;
}

std::vector<fault_spec> fault_queue::pending() const {
  std::lock_guard lock(mutex_);
  return {rules_.begin(), rules_.end()};
}

std::string_view to_string(endpoint e) {
  return endpoint_names[static_cast<std::size_t>(e)];
}

void sim_stats::served(endpoint e, int status, uint64_t records, uint64_t bytes) {
  const auto i = static_cast<std::size_t>(e);
  requests_[i].fetch_add(1, std::memory_order_relaxed);
  records_[i].fetch_add(records, std::memory_order_relaxed);
  bytes_[i].fetch_add(bytes, std::memory_order_relaxed);
  const auto cls = static_cast<std::size_t>(status / 100);
  if (cls < status_classes_.size()) {
    status_classes_[cls].fetch_add(1, std::memory_order_relaxed);
  }
}

void sim_stats::streamed(endpoint e, uint64_t records, uint64_t bytes) {
  const auto i = static_cast<std::size_t>(e);
  records_[i].fetch_add(records, std::memory_order_relaxed);
  bytes_[i].fetch_add(bytes, std::memory_order_relaxed);
}

void sim_stats::fault(fault_kind kind) {
  faults_[static_cast<std::size_t>(kind)].fetch_add(1, std::memory_order_relaxed);
}

void sim_stats::stream_opened() {
  streams_open_.fetch_add(1, std::memory_order_relaxed);
  streams_opened_.fetch_add(1, std::memory_order_relaxed);
}

void sim_stats::stream_closed() {
  streams_open_.fetch_sub(1, std::memory_order_relaxed);
}

std::string sim_stats::to_json(const cache_stats& cache, std::size_t faults_pending) const {
  nlohmann::json requests = nlohmann::json::object();
  nlohmann::json records = nlohmann::json::object();
  nlohmann::json bytes = nlohmann::json::object();
  uint64_t total_requests = 0;
  uint64_t total_bytes = 0;
  for (std::size_t i = 0; i < endpoint_count; ++i) {
    const uint64_t n = requests_[i].load(std::memory_order_relaxed);
    if (n == 0) {
      continue;
    }
    const std::string name(endpoint_names[i]);
    requests[name] = n;
    records[name] = records_[i].load(std::memory_order_relaxed);
    bytes[name] = bytes_[i].load(std::memory_order_relaxed);
    total_requests += n;
    total_bytes += bytes_[i].load(std::memory_order_relaxed);
  }
  nlohmann::json faults = nlohmann::json::object();
  uint64_t total_faults = 0;
  for (std::size_t i = 0; i < fault_kind_count; ++i) {
    const uint64_t n = faults_[i].load(std::memory_order_relaxed);
    faults[std::string(to_string(static_cast<fault_kind>(i)))] = n;
    total_faults += n;
  }
  nlohmann::json status = nlohmann::json::object();
  for (std::size_t i = 1; i < status_classes_.size(); ++i) {
    status[std::to_string(i) + "xx"] = status_classes_[i].load(std::memory_order_relaxed);
  }
  nlohmann::json doc = {
      {"requests_total", total_requests},
      {"bytes_total", total_bytes},
      {"requests", requests},
      {"records", records},
      {"bytes", bytes},
      {"status", status},
      {"faults_injected", faults},
      {"faults_injected_total", total_faults},
      {"faults_pending", faults_pending},
      {"streams",
       {{"open", streams_open_.load(std::memory_order_relaxed)},
        {"opened", streams_opened_.load(std::memory_order_relaxed)}}},
      {"cache",
       {{"hits", cache.hits},
        {"misses", cache.misses},
        {"evictions", cache.evictions},
        {"ledgers", cache.ledgers},
        {"bytes", cache.bytes}}},
  };
  return doc.dump();
}

}  // namespace si::sim
