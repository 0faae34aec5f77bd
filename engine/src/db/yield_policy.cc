#include "db/yield_policy.h"

#include <chrono>

namespace arenakv {

bool YieldPolicy::Yielded(int64_t before_ns, int64_t after_ns) {
  if (after_ns - before_ns < kSlowYieldNs) return true;
  if (after_ns - window_start_ns_.load(std::memory_order_relaxed) > kWindowNs) {
    window_start_ns_.store(after_ns, std::memory_order_relaxed);
    slow_in_window_.store(0, std::memory_order_relaxed);
  }
  if (slow_in_window_.fetch_add(1, std::memory_order_relaxed) + 1 < kSlowPerWindow) return true;
  no_yield_until_ns_.store(after_ns + kQuietNs, std::memory_order_relaxed);
  return false;
}

int64_t YieldPolicy::NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace arenakv
