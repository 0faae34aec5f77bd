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
// The last reserve_bytes() of the capacity are kept for the work that
// frees memory (a ReleaseScope on its thread): checkpointing a memtable
// takes a little memory (the next memtable, pages to write) before it gives
// much back, and with every byte held by memtables no checkpoint could
// start and nothing could ever be freed. The kernel keeps its reserves for
// its reclaim the same way.
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

  explicit SharedBudget(size_t capacity_bytes);
  SharedBudget(const SharedBudget&) = delete;
  SharedBudget& operator=(const SharedBudget&) = delete;

  size_t capacity() const { return capacity_; }
  size_t reserve_bytes() const { return reserve_; }
  size_t used() const { return used_.load(std::memory_order_relaxed); }
  size_t high_water() const { return high_water_.load(std::memory_order_relaxed); }

  // While one is alive on a thread, that thread's allocations free memory
  // (a checkpoint for the budget) and may use the reserve. Nests.
  class ReleaseScope {
   public:
    ReleaseScope();
    ~ReleaseScope();
    ReleaseScope(const ReleaseScope&) = delete;
    ReleaseScope& operator=(const ReleaseScope&) = delete;
    // Whether the calling thread is inside one.
    static bool Active();
  };

  // Takes `bytes` when they fit under this thread's limit (the capacity in
  // a ReleaseScope, the capacity less the reserve elsewhere); false
  // (nothing taken) when they do not.
  bool TryTake(size_t bytes);
  // By how much `bytes` more would pass this thread's limit (0: they fit).
  size_t Over(size_t bytes) const;
  void Give(size_t bytes) { used_.fetch_sub(bytes, std::memory_order_relaxed); }

  void SetReclaim(ReclaimFn fn);
  // Calls the reclaim function (0 when none is set).
  size_t Reclaim(size_t wanted, const SegmentPool* asking);

 private:
  size_t Limit() const;  // this thread's

  const size_t capacity_;
  const size_t reserve_;
  std::atomic<size_t> used_{0};
  std::atomic<size_t> high_water_{0};
  std::mutex mu_;  // guards reclaim_ (a public header: no port annotations)
  std::shared_ptr<ReclaimFn> reclaim_;
};

}  // namespace arenakv::alloc

#endif  // ARENAKV_ALLOC_SHARED_BUDGET_H_
