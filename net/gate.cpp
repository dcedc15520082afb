#include "net/gate.hpp"

#include <cassert>
#include <utility>

namespace si::net {

gate::hold::hold(hold&& other) noexcept : gate_(std::exchange(other.gate_, nullptr)) {}

gate::hold& gate::hold::operator=(hold&& other) noexcept {
  if (this != &other) {
    release();
    gate_ = std::exchange(other.gate_, nullptr);
  }
  return *this;
}

gate::hold::~hold() {
  release();
}

void gate::hold::release() noexcept {
  if (gate* g = std::exchange(gate_, nullptr)) {
    g->leave();
  }
}

gate::~gate() {
  assert(count() == 0 && "gate destroyed while work is still inside");
}

std::optional<gate::hold> gate::enter() {
  std::lock_guard lock(mutex_);
  if (closed_.load(std::memory_order_relaxed)) {
    return std::nullopt;
  }
  count_.fetch_add(1, std::memory_order_acq_rel);
  return hold(this);
}

void gate::close() {
  std::vector<std::function<void()>> ready;
  {
    std::lock_guard lock(mutex_);
    if (closed_.exchange(true, std::memory_order_acq_rel)) {
      return;
    }
    if (count_.load(std::memory_order_acquire) == 0) {
      ready.swap(drained_callbacks_);
    }
  }
  for (auto& callback : ready) {
    callback();
  }
}

void gate::on_drained(std::function<void()> callback) {
  {
    std::lock_guard lock(mutex_);
    if (!closed_.load(std::memory_order_relaxed) || count_.load(std::memory_order_acquire) > 0) {
      drained_callbacks_.push_back(std::move(callback));
      return;
    }
  }
  callback();
}

void gate::leave() noexcept {
  std::vector<std::function<void()>> ready;
  {
    std::lock_guard lock(mutex_);
    const auto before = count_.fetch_sub(1, std::memory_order_acq_rel);
    assert(before > 0 && "gate hold released twice");
    if (before == 1 && closed_.load(std::memory_order_relaxed)) {
      ready.swap(drained_callbacks_);
    }
  }
  for (auto& callback : ready) {
    callback();
  }
}

}  // namespace si::net
