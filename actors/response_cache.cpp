#include "actors/response_cache.hpp"

#include "storage/glob.hpp"

namespace si::actors {

std::shared_ptr<const response_cache::entry> response_cache::find(const std::string& key) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = map_.find(key);
  if (i == map_.end() || i->second->expires <= std::chrono::steady_clock::now()) {
    return nullptr;
  }
  hits_.fetch_add(1, std::memory_order_relaxed);
  return i->second;
}

void response_cache::put(const std::string& key, std::string route, std::string body,
                         std::string etag, std::chrono::milliseconds ttl) {
  auto now = std::chrono::steady_clock::now();
  auto e = std::make_shared<const entry>(
      entry{std::move(route), std::move(body), std::move(etag), ttl, now + ttl});
  std::lock_guard<std::mutex> guard{mtx_};
  if (map_.size() >= max_entries_ && map_.count(key) == 0) {
    for (auto i = map_.begin(); i != map_.end();) {
      i = i->second->expires <= now ? map_.erase(i) : std::next(i);
    }
    if (map_.size() >= max_entries_) {
      map_.clear();  // still full: start over rather than grow without bound
    }
  }
  map_[key] = std::move(e);
}

std::size_t response_cache::invalidate(const std::string& pattern) {
  std::lock_guard<std::mutex> guard{mtx_};
  std::size_t n = 0;
  for (auto i = map_.begin(); i != map_.end();) {
    if (storage::glob_match(pattern, i->first)) {
      i = map_.erase(i);
      ++n;
    } else {
      ++i;
    }
  }
  return n;
}

std::size_t response_cache::size() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return map_.size();
}

}  // namespace si::actors
