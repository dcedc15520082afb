#pragma once
/// A gate: an RAII counter of in-flight work that can be closed to new work and tells when
/// the last piece of work has left (Seastar's `gate`, userver's drain counters).

#include <atomic>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

namespace si::net {

/// Counts in-flight work. `enter()` hands out a `hold` token per unit of work; the token's
/// destruction ends that work. After `close()` no new work may enter, and every callback
/// registered with `on_drained` runs once the count reaches zero. Thread-safe: every member
/// may be called from any thread. The destructor asserts that no hold is left.
class gate {
 public:
  /// Proof of one unit of work inside the gate; move-only; leaves the gate when destroyed
  /// or `release()`d. Must not outlive its gate.
  class hold {
   public:
    hold() = default;
    hold(hold&& other) noexcept;
    hold& operator=(hold&& other) noexcept;
    hold(const hold&) = delete;
    hold& operator=(const hold&) = delete;
    ~hold();

    /// Leaves the gate now (idempotent); the token becomes empty.
    void release() noexcept;

    /// True while the token still counts in its gate.
    explicit operator bool() const noexcept {
      return gate_ != nullptr;
    }

   private:
    friend class gate;
    explicit hold(gate* g) noexcept : gate_(g) {}
    gate* gate_ = nullptr;
  };

  gate() = default;
  gate(const gate&) = delete;
  gate& operator=(const gate&) = delete;
  /// Asserts (debug builds) that no hold is left.
  ~gate();

  /// A token for one unit of work, or nothing once the gate is closed.
  std::optional<hold> enter();

  /// Refuses new work from now on (idempotent). If nothing is inside, the drained
  /// callbacks run before close returns, on the calling thread.
  void close();

  /// True once `close()` was called.
  bool closed() const noexcept {
    return closed_.load(std::memory_order_acquire);
  }

  /// Units of work inside the gate right now.
  std::size_t count() const noexcept {
    return count_.load(std::memory_order_acquire);
  }

  /// Runs `callback` once when the gate is closed and empty: at once on the calling thread
  /// if that is already so, else on the thread that releases the last hold (or calls
  /// `close()`). Callbacks run without the gate's lock held and must not throw.
  void on_drained(std::function<void()> callback);

 private:
  void leave() noexcept;

  mutable std::mutex mutex_;
  std::atomic<std::size_t> count_{0};
  std::atomic<bool> closed_{false};
  std::vector<std::function<void()>> drained_callbacks_;
};

}  // namespace si::net
