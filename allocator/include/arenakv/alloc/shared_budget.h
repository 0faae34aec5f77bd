// SharedBudget: one limit on committed bytes that several SegmentPools draw
// from (PoolOptions::shared_budget), each keeping its own arenas, segments
// and accounting, so that closing one pool gives its bytes back at once.
//
// A pool takes from the budget every byte it commits or charges and gives
// back every byte it returns to the OS; its own budget_bytes still applies
// on top. When the shared budget is full, the pool calls the reclaim
// function its owner set here (which frees memory in any member pool, the
// asking one included), then retries once before failing with MemoryLimit.
//
// Thread safety: every method may be called concurrently. The reclaim
// function is called without any pool lock held.
#ifndef ARENAKV_ALLOC_SHARED_BUDGET_H_
#define ARENAKV_ALLOC_SHARED_BUDGET_H_

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>

namespace arenakv::alloc {

class SegmentPool;

class SharedBudget {
 public:
  // Frees at least `wanted` bytes if it can (any member, coldest first);
  // returns the bytes it freed. `asking` is the pool that needs them.
  using ReclaimFn = std::function<size_t(size_t wanted, const SegmentPool* asking)>;

  explicit SharedBudget(size_t capacity_bytes) : capacity_(capacity_bytes) {}
  SharedBudget(const SharedBudget&) = delete;
  SharedBudget& operator=(const SharedBudget&) = delete;

  size_t capacity() const { return capacity_; }
  size_t used() const { return used_.load(std::memory_order_relaxed); }
  size_t high_water() const { return high_water_.load(std::memory_order_relaxed); }

  // Takes `bytes` when they fit; false (nothing taken) when they do not.
  bool TryTake(size_t bytes);
  void Give(size_t bytes) { used_.fetch_sub(bytes, std::memory_order_relaxed); }

  void SetReclaim(ReclaimFn fn);
  // Calls the reclaim function (0 when none is set).
  size_t Reclaim(size_t wanted, const SegmentPool* asking);

 private:
  const size_t capacity_;
  std::atomic<size_t> used_{0};
  std::atomic<size_t> high_water_{0};
  std::mutex mu_;  // guards reclaim_ (a public header: no port annotations)
  std::shared_ptr<ReclaimFn> reclaim_;
};

}  // namespace arenakv::alloc

#endif  // ARENAKV_ALLOC_SHARED_BUDGET_H_
