// YieldPolicy: whether threads of one database that wait for each other
// (group commit's leader gathering its peers, synced writers waiting for
// their group) may wait by yielding the CPU, or should block.
//
// Yielding only pays while the cores are the database's. When other threads
// or processes keep them busy, a yield hands one of them a whole time slice
// (milliseconds), and a handful of waiters yielding turn each commit group
// into many slices; a blocking wait is then far faster, because the
// scheduler runs a woken thread promptly. A lone slow yield happens on an
// idle machine too (a kernel flush worker takes the core, say), so only
// several within a short window switch yielding off, and only for a while,
// after which it is tried again.
//
// Thread safety: thread-safe. The counts are updated with relaxed atomics
// and may race; they only steer a heuristic.
#ifndef ARENAKV_DB_YIELD_POLICY_H_
#define ARENAKV_DB_YIELD_POLICY_H_

#include <atomic>
#include <cstdint>

namespace arenakv {

class YieldPolicy {
 public:
  static constexpr int64_t kSlowYieldNs = 1'000'000;  // a time slice was given away
  static constexpr int64_t kWindowNs = 20'000'000;
  static constexpr uint32_t kSlowPerWindow = 3;
  static constexpr int64_t kQuietNs = 100'000'000;  // blocking only, then try again

  // Whether a waiter may yield at `now_ns` (any monotonic clock in ns).
  bool MayYield(int64_t now_ns) const {
    return now_ns >= no_yield_until_ns_.load(std::memory_order_relaxed);
  }

  // Reports a yield that began at `before_ns` and returned at `after_ns`.
  // Returns whether the waiter may go on yielding.
  bool Yielded(int64_t before_ns, int64_t after_ns);

  // The steady clock, in ns, for callers.
  static int64_t NowNs();

 private:
  std::atomic<int64_t> no_yield_until_ns_{0};
  std::atomic<int64_t> window_start_ns_{INT64_MIN / 2};
  std::atomic<uint32_t> slow_in_window_{0};
};

}  // namespace arenakv

#endif  // ARENAKV_DB_YIELD_POLICY_H_
