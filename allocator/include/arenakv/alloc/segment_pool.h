// SegmentPool: arena-scoped memory for arenakv, carved from large anonymous
// mmap regions into power-of-two size classes.
//
// A pool reserves address space in regions (mmap PROT_READ|PROT_WRITE,
// MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE), hands out segments of one size
// class each (default 4 KiB ... 2 MiB), and keeps a free list per class so a
// reused segment costs no system call. Requests above the largest class get a
// dedicated mapping, unmapped on release. Committed bytes are bounded by a
// budget: over it, the pool first drops retained free segments, then calls the
// reclaim callback (the page cache evicts), then fails with MemoryLimit.
// Freed segments are retained for reuse up to `retain_bytes`; beyond that
// their pages go back to the OS with madvise in batches, and a region whose
// segments are all free is unmapped. Close() unmaps everything.
//
// Thread safety: every method is safe to call concurrently. The reclaim
// callback is invoked without pool locks held, from the allocating thread.

#ifndef ARENAKV_ALLOC_SEGMENT_POOL_H_
#define ARENAKV_ALLOC_SEGMENT_POOL_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "arenakv/alloc/object_heap.h"
#include "arenakv/alloc/shared_budget.h"
#include "arenakv/alloc/stats.h"
#include "arenakv/status.h"

namespace arenakv::alloc {

struct PoolOptions {
  std::string name = "pool";
  // Smallest and largest size class; both powers of two, min >= 4096.
  size_t min_class_bytes = 4096;
  size_t max_class_bytes = size_t{2} << 20;
  // Address space reserved per region (a multiple of max_class_bytes).
  size_t region_bytes = size_t{64} << 20;
  // Hard limit on committed bytes (segments in use + retained free segments
  // + dedicated mappings). SIZE_MAX means unlimited.
  size_t budget_bytes = SIZE_MAX;
  // Free segments kept committed for fast reuse; beyond this, released
  // segments have their pages returned to the OS (in batches).
  size_t retain_bytes = size_t{32} << 20;
  // Use MADV_FREE instead of MADV_DONTNEED when returning pages.
  bool use_madv_free = false;
  // Prefault new segments with MADV_POPULATE_WRITE so that a failure to get
  // memory is a MemoryLimit error here rather than a fault at first touch.
  bool prefault = false;
  // mprotect released segments PROT_NONE until reuse: a stray access faults.
  bool quarantine = false;
  // A size class that already has this many chunks (of max_class_bytes)
  // carved gets the transparent-huge-page hint (MADV_HUGEPAGE) on each new
  // one. SIZE_MAX: never. Pays off when max_class_bytes is 2 MiB.
  size_t huge_pages_after_chunks = SIZE_MAX;
  // A budget shared with other pools (shared_budget.h), on top of
  // budget_bytes; none by default.
  std::shared_ptr<SharedBudget> shared_budget;
  // Where the pool, its arenas and the objects their owner places there
  // live (object_heap.h); none: the C++ heap. Not owned: the pool's own
  // block in it keeps it alive.
  ObjectHeap* object_heap = nullptr;
};

// A segment handed out by a pool. `token` identifies the slot and carries the
// generation the pool stamped at allocation: releasing it twice, releasing it
// into another pool, or using it after its arena closed is detected.
struct Segment {
  char* data = nullptr;
  size_t size = 0;
  uint64_t token = 0;

  bool valid() const { return data != nullptr; }
};

class Arena;

class SegmentPool : public HeapObject {
 public:
  // Returns the number of bytes it freed; called when the budget is hit.
  using ReclaimFn = std::function<size_t(size_t wanted_bytes)>;

  static Status Create(const PoolOptions& options, std::shared_ptr<SegmentPool>* pool);

  SegmentPool(const SegmentPool&) = delete;
  SegmentPool& operator=(const SegmentPool&) = delete;
  ~SegmentPool();  // Calls Close().

  // A segment of at least `bytes` (rounded up to its size class, or to whole
  // pages for a dedicated mapping). MemoryLimit when over budget, Closed after
  // Close(), InvalidArgument for 0 bytes.
  Status Allocate(size_t bytes, Segment* segment) {
    // Inline so that on the common path the caller's OK Status folds away.
    if (TryAllocateFast(bytes, segment)) return Status::OK();
    return AllocateSlow(bytes, segment);
  }
  // Gives a segment back. InvalidArgument for a double release or a segment
  // of another pool; the pool is left unchanged in that case.
  Status Release(const Segment& segment) {
    if (TryReleaseFast(segment)) return Status::OK();
    return ReleaseSlow(segment);
  }
  // Counts `bytes` of memory held elsewhere (small heap objects a user keeps:
  // iterators, snapshots, transactions) against the budget, as Allocate
  // would: MemoryLimit, after reclaiming, when they do not fit. Uncharge()
  // gives them back; every charge must be returned before Close().
  Status Charge(size_t bytes);
  // Charge() only if the bytes fit as things are: MemoryLimit rather than
  // reclaiming anything (or dropping retained segments) to make room. For
  // memory worth less than what a reclaim would take back.
  Status ChargeIfRoom(size_t bytes);
  void Uncharge(size_t bytes);

  // OK while `segment` is live in this pool; Closed otherwise (checked builds
  // call it on every access path that can afford it).
  Status Check(const Segment& segment) const;

  // The size class a request of `bytes` gets (0 for dedicated requests).
  size_t ClassFor(size_t bytes) const;

  void SetReclaimCallback(ReclaimFn fn);
  // Memory a writer is about to need again: the segments that arenas made
  // with ArenaOptions::recycle give back when they close stay retained, up
  // to `bytes` beyond retain_bytes, instead of going back to the OS (a
  // database's next memtable then grows into pages that are already
  // there, rather than faulting in and zeroing fresh ones). Segments other
  // arenas free never count towards it. 0, the default, turns it off and
  // trims what it kept; a budget under pressure drops those segments
  // first, as any retained one.
  void SetRecycleBytes(size_t bytes);
  // Returns every retained free segment's pages to the OS now and unmaps
  // regions that are entirely free.
  void Trim();
  // Gives the free segments the calling thread keeps cached for its own
  // reuse back to the pool, where any thread's allocation (or a budget's
  // reclaim) can take them. For a thread about to wait until another frees
  // memory: what it holds cached would otherwise sit idle, and count
  // against the budget, while the other runs short.
  void ReleaseThreadCache();

  // Closes every arena still open (they are named in the leak report, which is
  // also written to stderr), then unmaps all memory. Idempotent. Returns
  // InvalidArgument with the leak report when arenas or segments were still
  // outstanding.
  Status Close();
  bool closed() const;

  PoolStats Stats() const;
  // Human-readable multi-line report of Stats() and the open arenas.
  std::string Report() const;
  // Names of arenas still open ("" when none).
  std::string LeakReport() const;

  const PoolOptions& options() const { return options_; }
  // options().object_heap: where objects that live and die with the pool's
  // owner belong (nullptr: the C++ heap).
  ObjectHeap* object_heap() const { return options_.object_heap; }

 private:
  friend class Arena;
  struct Impl;
  explicit SegmentPool(const PoolOptions& options);

  // The thread's per-pool cache: true when it served the call (nothing
  // changed otherwise); the slow paths do everything else and name errors.
  bool TryAllocateFast(size_t bytes, Segment* segment);
  bool TryReleaseFast(const Segment& segment);
  Status AllocateSlow(size_t bytes, Segment* segment);
  Status ReleaseSlow(const Segment& segment);

  PoolOptions options_;
  std::unique_ptr<Impl> impl_;
};

// Human units: "1.5 MiB".
std::string FormatBytes(size_t bytes);

}  // namespace arenakv::alloc

#endif  // ARENAKV_ALLOC_SEGMENT_POOL_H_
