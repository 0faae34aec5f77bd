// Arena: a set of segments taken from a SegmentPool that live and die
// together. Small objects are bump-allocated from the arena's blocks; pages
// take whole segments. Closing an arena returns everything to the pool at
// once, in O(number of segments), after closing its children first. The
// destructor closes. An arena is also a std::pmr::memory_resource so that
// std::pmr containers can live in it (their memory dies with the arena).
//
// Thread safety: a kConfined arena belongs to one thread at a time (checked
// in checked builds) and takes no locks on the hot path, which is inline
// here; a kShared arena may be used from any number of threads. Close(), NewChild() and Stats() are
// safe to call from any thread for both kinds, and closing a parent while a
// child is used by another thread is the caller's race to prevent.

#ifndef ARENAKV_ALLOC_ARENA_H_
#define ARENAKV_ALLOC_ARENA_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <memory_resource>
#include <string>
#include <vector>

#include "arenakv/alloc/segment_pool.h"
#include "arenakv/alloc/spill_sink.h"
#include "arenakv/alloc/stats.h"
#include "arenakv/status.h"

namespace arenakv::alloc {

enum class ArenaKind { kConfined, kShared };

struct ArenaOptions {
  std::string name = "arena";
  ArenaKind kind = ArenaKind::kConfined;
  // Byte limit for this arena (its segments, including bump blocks). Going
  // over returns MemoryLimit; SIZE_MAX means no limit beyond the pool's.
  size_t limit_bytes = SIZE_MAX;
  // Size of the segments bump allocation carves small objects from.
  size_t block_bytes = size_t{64} << 10;
  // The first block's size (0: block_bytes); each next one doubles, up to
  // block_bytes. An arena that may stay nearly empty (a new database's
  // memtable) then costs a small block, not a full one.
  size_t first_block_bytes = 0;
  // Segments from the pool's huge-page classes (see
  // PoolOptions::huge_pages_after_chunks): for arenas that fill their
  // segments densely and read them at random, such as a page cache. Not
  // inherited by children.
  bool huge_pages = false;
  // When it closes, its segments may stay in the pool for the next arena
  // of its kind, within the pool's recycle allowance
  // (SegmentPool::SetRecycleBytes). Not inherited by children.
  bool recycle = false;
};

namespace internal {
// The block an arena bump-allocates small objects from, [cur, end), kept in
// the Arena object itself so that a confined arena's Allocate() is a pointer
// bump inline in the caller. Both are null while there is no block (and once
// closed). A confined arena's owner thread reads and writes them; a shared
// arena's under its mutex; Close() clears them. `used` is written the same
// way and read by Stats() from any thread (relaxed: plain moves).
struct BumpWindow {
  char* cur = nullptr;
  char* end = nullptr;
  std::atomic<size_t> used{0};
  // Set for confined arenas outside checked and sanitizer builds, whose
  // every allocation must pass through the owner check or ASan unpoisoning.
  bool inline_ok = false;
};
}  // namespace internal

class Arena final : public std::pmr::memory_resource, public HeapObject {
 public:
  static Status Create(std::shared_ptr<SegmentPool> pool, const ArenaOptions& options,
                       std::unique_ptr<Arena>* arena);

  ~Arena() override;  // Closes (children first) and detaches from its parent.
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // A child arena; closing this arena closes the child first. The child may
  // be destroyed before or after the parent.
  Status NewChild(const ArenaOptions& options, std::unique_ptr<Arena>* child);

  // Bump allocation; `align` is a power of two <= 4096.
  Status Allocate(size_t bytes, size_t align, void** out) {
    // Inline: on a confined arena with room in its block this is a pointer
    // bump, and the caller's OK Status folds away.
    if (TryBumpInline(bytes, align, out)) return Status::OK();
    return AllocateSlow(bytes, align, out);
  }

  // Makes sure bump allocations totalling at most `bytes` (counting each
  // one's alignment padding) cannot fail: if the current block has less room
  // left, a new block of at least `bytes` is taken now and the rest of the
  // old one is abandoned. For callers that must not fail half-way through a
  // sequence of allocations (a memtable applying a logged commit).
  // MemoryLimit or Closed leave the arena as it was.
  Status Reserve(size_t bytes);

  // A whole segment of at least `bytes`, owned by this arena.
  Status AllocateSegment(size_t bytes, Segment* segment);
  // Gives one segment back to the pool before the arena closes (e.g. a page
  // cache evicting a frame). InvalidArgument if the arena does not own it.
  Status ReleaseSegment(const Segment& segment);
  // OK while the segment is owned by this open arena; Closed otherwise.
  Status Check(const Segment& segment) const;

  // kConfined only: the current owner thread is done with the arena; the next
  // thread to use it becomes its owner. Checked builds abort when a second
  // thread uses a confined arena without a hand-off. A no-op for kShared.
  void HandOff();

  // Moves the arena's memory out to `sink` (see spill_sink.h), for an arena
  // no one writes into any more: a memtable that readers still hold after
  // its checkpoint. Its contents stay where they are, readable; its
  // segments stop counting against the budget (bytes() drops, spilled bytes
  // grow) and go back to the pool when the arena closes. A later
  // allocation takes a new segment. Dedicated mappings (objects over the
  // largest size class) stay in memory. On an error, what was spilled stays
  // spilled and the rest in memory. Children are not spilled. A kConfined
  // arena must not be allocating meanwhile. InvalidArgument for a second
  // sink.
  Status Spill(const std::shared_ptr<SpillSink>& sink);

  // Returns every segment to the pool, children first. Idempotent.
  void Close();
  bool closed() const;

  ArenaStats Stats() const;
  // Stats().bytes (segment bytes held in memory), without taking the pool's tree lock:
  // cheap enough for a hot path.
  size_t bytes() const;
  // Stats of this arena and all its descendants, depth first.
  std::vector<ArenaStats> TreeStats() const;
  const std::string& name() const;
  SegmentPool* pool() const;

 private:
  friend class SegmentPool;
  struct Impl;
  explicit Arena(std::unique_ptr<Impl> impl);
  // Allocate() past the confined fast path: shared arenas, checked builds, a
  // full block, large objects and alignments, errors.
  Status AllocateSlow(size_t bytes, size_t align, void** out);
  bool TryBumpInline(size_t bytes, size_t align, void** out) {
    if (!bump_.inline_ok) return false;
    const uintptr_t cur = reinterpret_cast<uintptr_t>(bump_.cur);
    const uintptr_t end = reinterpret_cast<uintptr_t>(bump_.end);
    const uintptr_t p = (cur + align - 1) & ~(align - 1);
    // align - 1 < 4096 with a power of two rejects 0 and large alignments;
    // no block (cur == end == 0) leaves no room for bytes > 0.
    if (bytes == 0 || (align & (align - 1)) != 0 || align - 1 >= 4096 || p > end ||
        bytes > end - p) {
      return false;
    }
    bump_.cur = reinterpret_cast<char*>(p + bytes);
    bump_.used.store(bump_.used.load(std::memory_order_relaxed) + bytes, std::memory_order_relaxed);
    *out = reinterpret_cast<void*>(p);
    return true;
  }

  // std::pmr::memory_resource. Deallocation is a no-op: memory is returned
  // when the arena closes. Allocation failure throws std::bad_alloc, as the
  // pmr contract requires; the engine catches it at its API boundary.
  void* do_allocate(size_t bytes, size_t align) override;
  void do_deallocate(void* p, size_t bytes, size_t align) override;
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override;

  internal::BumpWindow bump_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace arenakv::alloc

#endif  // ARENAKV_ALLOC_ARENA_H_
