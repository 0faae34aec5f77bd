// PageCache: decoded B+tree pages held in segments of the database's cache
// arena, bounded by a byte capacity and looked up by page address.
//
// Sixteen shards, each a mutex, an intrusive chained hash index whose bucket
// array is an arena segment (no allocation per entry), and a CLOCK ring.
//
// Two ways to read a frame:
//  - Lookup pins it (the pin count is raised under the shard lock, so the
//    evictor, which also holds it, never frees a pinned frame); a PageRef
//    unpins when it goes away. For anything that holds a page for long
//    (iterators, checkpoints).
//  - Peek, inside an epoch::ReadSection, takes no lock and writes nothing
//    shared: the chains are walked with acquire loads. For short read paths
//    (a point read's descent). A peeked frame stays readable until the
//    section ends because nothing a reader might hold is released at once:
//    the evictor unlinks a frame (and an outgrown bucket array), tags it with
//    epoch::Retire() and releases it only when epoch::SafeTag() passes the
//    tag. A Peek may miss a frame that a concurrent bucket-array growth is
//    moving; the caller then takes the Lookup path, which never misses.
//
// New frames are allocated outside every shard lock, so the pool's reclaim
// callback (which calls Evict) can never deadlock with us. Between
// checkpoints every cached page is clean: eviction just drops it. When
// everything is pinned, a new frame takes the cache over capacity for a while
// (counted in overflows); so do retired frames while a reader may still use
// them (counted in used bytes until they go).
//
// Close() forgets every frame at once without releasing them one by one; the
// owner closes the arena, which returns all of them to the pool in one pass.
//
// Thread safety: all methods may be called concurrently, except Close(),
// which requires that no PageRef is alive, no section is peeking and no other
// call is running. Evict may wait for readers' sections to end: it must not
// be called from inside a section.
#ifndef ARENAKV_TREE_PAGE_CACHE_H_
#define ARENAKV_TREE_PAGE_CACHE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "arenakv/alloc/arena.h"
#include "arenakv/alloc/object_heap.h"
#include "arenakv/db.h"
#include "arenakv/status.h"
#include "port/mutex.h"
#include "tree/leaf_head_table.h"

namespace arenakv::tree {

struct Frame;

// What an internal page's frame remembers about one child: the frame a
// descent last found for it, and where that frame's image was (its address
// in the low 48 bits, its entry count, saturated, in the high 16). The image
// word only lets a descent start loading the child's header and search array
// while it checks the frame, instead of after: a stale word costs a useless
// prefetch, nothing else, since it is never dereferenced.
struct ChildHint {
  static constexpr uint64_t kPointerMask = (uint64_t{1} << 48) - 1;
  std::atomic<const Frame*> frame{nullptr};
  std::atomic<uint64_t> image{0};
};

// One cached page. The fields a lookup touches (address, chain link, data
// pointer, pins) share the first cache line.
struct alignas(64) Frame {
  // Written before the frame is published; a peeking reader loads it without
  // the shard lock. Stable until the frame is released after its epoch.
  std::atomic<uint64_t> address{0};
  std::atomic<Frame*> hash_next{nullptr};
  alloc::Segment segment;
  std::atomic<uint32_t> pins{0};
  uint32_t bytes = 0;  // image bytes used in the segment
  // The image's entry count, so a reader can prefetch the page's search
  // array together with its header. 0 = unknown (readers fill it in).
  mutable std::atomic<uint32_t> entries{0};
  mutable std::atomic<bool> referenced{false};  // CLOCK bit; readers set it without the lock
  // True while the frame is reachable through the hash index (set before it
  // is published, cleared before it is unlinked): a reader that reaches the
  // frame by a child hint rather than the index checks it, with the address.
  std::atomic<bool> live{false};
  bool indexed = false;  // reachable through the hash index; guarded by the shard lock
  bool in_ring = false;
  bool counted = true;  // its segment counts in used bytes (false: an old bucket array)
  uint8_t shard = 0;
  uint64_t checksum = 0;  // ImageChecksum of the image, for re-verification
  uint64_t retire_tag = 0;
  Frame* ring_prev = nullptr;
  Frame* ring_next = nullptr;  // also links the retired list
  // Internal pages only: one slot per child, the frame a descent last found
  // for that child, so the next descent can skip the hash lookup (PeekChild).
  // A hint is only a guess, checked against `live` and `address`; it lives
  // in its own segment, set before the frame is published.
  ChildHint* child_hints = nullptr;
  uint32_t child_hint_count = 0;
  alloc::Segment hint_segment;

  char* data() const { return segment.data; }
  // Bytes of cache memory the frame holds.
  size_t held_bytes() const { return segment.size + hint_segment.size; }
};

class PageCache;

// A pinned frame. Move-only; unpins (or, for a private frame, frees) on reset.
class PageRef {
 public:
  PageRef() = default;
  PageRef(PageRef&& o) noexcept : frame_(o.frame_), cache_(o.cache_) { o.frame_ = nullptr; }
  PageRef& operator=(PageRef&& o) noexcept {
    if (this != &o) {
      Reset();
      frame_ = o.frame_;
      cache_ = o.cache_;
      o.frame_ = nullptr;
    }
    return *this;
  }
  PageRef(const PageRef&) = delete;
  PageRef& operator=(const PageRef&) = delete;
  ~PageRef() { Reset(); }

  void Reset();
  explicit operator bool() const { return frame_ != nullptr; }
  Frame* frame() const { return frame_; }
  const char* data() const { return frame_->segment.data; }
  uint32_t bytes() const { return frame_->bytes; }
  uint64_t address() const { return frame_->address; }

 private:
  friend class PageCache;
  Frame* frame_ = nullptr;
  PageCache* cache_ = nullptr;  // set for private (unpublished) frames only
};

class PageCache : public alloc::HeapObject {
 public:
  static constexpr int kShards = 16;

  // `arena` (not owned, kShared) supplies frames and the index; it must
  // outlive the cache or be closed after Close().
  static Status Create(alloc::Arena* arena, size_t capacity_bytes,
                       std::unique_ptr<PageCache>* cache);
  ~PageCache();
  PageCache(const PageCache&) = delete;
  PageCache& operator=(const PageCache&) = delete;

  // Pins the frame cached for `address`; false (a miss) if there is none.
  bool Lookup(uint64_t address, PageRef* ref);
  // Inside an active epoch::ReadSection: the frame cached for `address`, or
  // nullptr (none, or not found by a walk racing a bucket-array growth). No
  // pin: the frame's image stays valid until the section ends.
  const Frame* Peek(uint64_t address) const;
  // Peek for child `index` (at `address`) of the internal page in `parent`,
  // itself peeked in the same section: through the parent's child hint when
  // it still names that page's frame, else through the index (and the hint
  // is updated). *prefetched: the image's header and search array are
  // already being loaded (the hint knew where they are).
  const Frame* PeekChild(const Frame* parent, uint32_t index, uint64_t address,
                         bool* prefetched) const;
  // Hits served by Peek (added to the stats in batches, once per read), and
  // a miss Peek found that its read then served from disk.
  void AddPeekHits(uint64_t n);
  void AddPeekMiss();

  // A private frame of at least `bytes` for the caller to fill (evicting to
  // make room first). The returned ref frees it unless it is published.
  Status NewFrame(size_t bytes, PageRef* ref);
  // Publishes a private frame under `address` (bytes = image size) and pins
  // it in *ref. If another thread published that address first, the private
  // frame is freed and *ref pins the existing one.
  void Insert(uint64_t address, uint32_t bytes, PageRef* ref);

  // Whether a leaf that a point read missed should be read whole and cached
  // (true), or answered from the block that holds the key and left out. While
  // the cache has room every leaf goes in. Once it is full a leaf goes in on
  // its second miss within the window an admission table remembers (two
  // slots per page the cache holds, its memory from the arena, taken at the
  // first full miss): a leaf met once does not push out one met twice.
  bool AdmitLeaf(uint64_t address, size_t page_bytes);
  // A count that moves with every cached point read and block read (cheap:
  // no lock), for a shared budget's choice of whom to reclaim from.
  uint64_t Activity() const;
  // A miss AdmitLeaf kept out, answered from one block (for the stats).
  void AddBlockRead() { block_reads_.fetch_add(1, std::memory_order_relaxed); }
  // Heads of leaves kept out (LeafHeadTable), in digest form (LeafDigest),
  // so that a miss of one reads its block alone. FindLeafHead copies the
  // digest of `address` into out (room for LeafHeadTable::kMaxHeadBytes)
  // and sets *bytes; false if none is kept. MakeLeafHeadTable makes the
  // table once, sized for a tree of `tree_bytes` stored bytes, up to half
  // of the capacity (three quarters for a tree over four times the
  // capacity; pages are evicted to make room); false if there is none (too
  // small a cache, no memory, or taken by Evict). The size stays: a tree
  // that grows tenfold afterwards keeps fewer of its heads. It allocates:
  // not under a lock a reclaim may need. KeepLeafHead keeps the digest of
  // a checked head. Erase forgets the head too. Evict takes the table,
  // after every page it can, when the pages do not free what it was asked;
  // it is not made again until the cache is reopened.
  bool MakeLeafHeadTable(uint64_t tree_bytes);
  void KeepLeafHead(uint64_t address, std::string_view head);
  bool FindLeafHead(uint64_t address, char* out, size_t* bytes) const;
  // Starts loading the lines FindLeafHead(address) will read, while the
  // caller does other work. Outside read sections: it only computes an
  // address and issues prefetches, never reading the table (which may be
  // gone: a prefetch of freed memory does nothing).
  void PrefetchLeafHead(uint64_t address) const {
    const auto* table = reinterpret_cast<const char*>(heads_.load(std::memory_order_relaxed));
    if (table == nullptr) return;
    const char* set = LeafHeadTable::SetAddress(
        table + kHeadTableOffset, head_sets_.load(std::memory_order_relaxed), address);
    for (size_t line = 0; line < LeafHeadTable::BytesFor(1); line += 64) {
      __builtin_prefetch(set + line);
    }
  }

  // Frees unpinned frames (CLOCK order) until `wanted_bytes` are freed or
  // nothing more can go; returns the bytes freed.
  size_t Evict(size_t wanted_bytes);
  // Forgets `address` (its extent was freed): the frame is dropped now, or
  // when its last pin goes if it is pinned.
  void Erase(uint64_t address);
  // Drops every unpinned frame, one by one (tests, trimming).
  void Clear();
  // Forgets every frame at once; the arena's close releases their memory.
  void Close();

  CacheStats Stats() const;
  // Bytes of frames held now (cheap: one load).
  size_t used_bytes() const { return used_bytes_.load(std::memory_order_relaxed); }
  size_t capacity() const { return capacity_; }
  // Whether `bytes` more fit without evicting: under the cache's capacity
  // and, for a database under a shared budget, in the budget with a 32nd
  // of it to spare. Bytes another database would have to give up (its
  // pages evicted and returned to the OS, these faulted in anew) are no
  // room for a page read once. A full budget's reclaim frees a little
  // more than it is asked (1 MiB), and without the margin every reclaim's
  // surplus went to pages read once.
  bool HasRoom(size_t bytes) const {
    return used_bytes_.load(std::memory_order_relaxed) + bytes <= capacity_ &&
           (shared_ == nullptr || shared_->Over(bytes + shared_->capacity() / 32) == 0);
  }
  // Frames created while over capacity because nothing could be evicted.
  uint64_t overflows() const { return overflows_.load(std::memory_order_relaxed); }

 private:
  friend class PageRef;
  struct alignas(64) Shard {  // own cache lines: no false sharing between shard locks
    port::Mutex mu;
    // The bucket array (a segment of atomic<Frame*> heads, 64-byte aligned)
    // with log2 of its size in the low 6 bits; 0 once closed. Written under
    // mu; peeking readers load it without the lock.
    std::atomic<uintptr_t> table{0};
    alloc::Segment bucket_segment GUARDED_BY(mu);
    size_t pages GUARDED_BY(mu) = 0;
    size_t ring_size GUARDED_BY(mu) = 0;
    Frame* hand GUARDED_BY(mu) = nullptr;  // CLOCK hand; the ring is circular
    uint64_t hits GUARDED_BY(mu) = 0;
    uint64_t misses GUARDED_BY(mu) = 0;
    uint64_t evictions GUARDED_BY(mu) = 0;
  };
  struct alignas(64) HitCounter {
    std::atomic<uint64_t> n{0};
    std::atomic<uint64_t> misses{0};
  };
  static constexpr int kHitCounters = 16;
  // AdmitLeaf remembers the last misses of one page in this many that the
  // cache holds (at least 64). A larger window admitted leaves met twice by
  // chance, each a whole-leaf decode and an eviction: with 3M keys and a
  // 32 MiB cache, 1/16 of it read 14% faster under uniform keys and 20%
  // faster under Zipf 0.99 (fewer misses: hot leaves stay) than a window
  // of one slot per page.
  static constexpr size_t kAdmissionWindowShare = 16;

  // A list of unlinked frames waiting for readers' sections to end.
  struct RetiredList {
    Frame* head = nullptr;
    Frame* tail = nullptr;
    void Append(Frame* f) {
      f->ring_next = nullptr;
      (tail == nullptr ? head : tail->ring_next) = f;
      tail = f;
    }
  };

  PageCache(alloc::Arena* arena, size_t capacity);
  Status Init();
  static uint64_t Hash(uint64_t address) { return address * 0x9E3779B97F4A7C15ULL; }
  static std::atomic<Frame*>* Heads(uintptr_t table) {
    return reinterpret_cast<std::atomic<Frame*>*>(table & ~uintptr_t{63});
  }
  static size_t BucketMask(uintptr_t table) { return (size_t{1} << (table & 63)) - 1; }
  static std::atomic<Frame*>* BucketFor(uintptr_t table, uint64_t hash) {
    return &Heads(table)[(hash >> 20) & BucketMask(table)];
  }
  Shard& ShardFor(uint64_t hash) const;
  Frame* FindLocked(Shard& s, uint64_t address, uint64_t hash) REQUIRES(s.mu);
  void UnindexLocked(Shard& s, Frame* f) REQUIRES(s.mu);
  // Unlinks an unpinned frame from the index and the ring and adds it to
  // *batch (to be retired); returns its segment bytes.
  size_t DropLocked(Shard& s, Frame* f, RetiredList* batch) REQUIRES(s.mu);
  size_t EvictFromShard(Shard& s, size_t wanted, RetiredList* batch);
  // Sweeps until `wanted` bytes are retired; returns the bytes retired.
  size_t Sweep(size_t wanted, RetiredList* batch);
  // Tags a batch of unlinked frames and queues it.
  void Retire(RetiredList* batch);
  // Releases retired frames no reader can hold any more; returns their bytes.
  size_t Reclaim();
  void EvictToFit(size_t bytes);
  void MaybeGrow(Shard& s);
  // Gives a shard still on the shared empty table its first bucket array
  // (nothing, short of memory: the frame then stays private).
  void InstallFirstTable(Shard& s);
  Status AllocFrameStruct(Frame** f);
  void FreeFrameStruct(Frame* f);
  void ReleaseFrame(Frame* f);
  // Gives a private frame holding an internal page its child-hint array
  // (none if memory is short: descents then use the index).
  void AttachChildHints(Frame* f, uint32_t bytes);
  // A ChildHint's image word for `f`.
  static uint64_t ImageWord(const Frame* f);
  void ReleasePrivate(Frame* f);

  alloc::Arena* const arena_;
  const size_t capacity_;
  alloc::SharedBudget* const shared_;  // the pool's, or null
  mutable Shard shards_[kShards];      // ShardFor() hands out a shard to lock from const methods
  std::atomic<size_t> used_bytes_{0};
  std::atomic<size_t> retired_bytes_{0};  // part of used_bytes_ waiting for its epoch
  std::atomic<uint64_t> overflows_{0};
  std::atomic<uint32_t> evict_cursor_{0};
  std::atomic<bool> closed_{false};
  HitCounter peek_hits_[kHitCounters];

  port::Mutex retired_mu_;
  RetiredList retired_ GUARDED_BY(retired_mu_);  // in tag order

  // AdmitLeaf's table: addresses missed once, direct-mapped. Races between
  // readers only cost a wrong admission decision, never a wrong read.
  port::Mutex admission_mu_;  // creates the table once
  std::atomic<std::atomic<uint64_t>*> admission_{nullptr};
  size_t admission_mask_ = 0;  // written once, before admission_ is published
  bool admission_failed_ GUARDED_BY(admission_mu_) = false;
  std::atomic<uint64_t> block_reads_{0};
  // KeepLeafHead's table: the object at the start of its frame's segment
  // (the slots follow), published once; readers use it inside read
  // sections, Erase and Clear under heads_mu_, so that a reclaim can
  // detach it and retire its frame like a page's.
  static constexpr size_t kHeadTableOffset = 64;
  static_assert(sizeof(LeafHeadTable) <= kHeadTableOffset);
  size_t DetachLeafHeadTable(RetiredList* batch);
  port::Mutex heads_mu_;
  Frame* head_frame_ GUARDED_BY(heads_mu_) = nullptr;
  std::atomic<LeafHeadTable*> heads_{nullptr};
  // The table's set count, for PrefetchLeafHead only (the slots follow
  // the table object, at kHeadTableOffset).
  std::atomic<size_t> head_sets_{0};
  std::atomic<size_t> head_table_bytes_{0};
  std::atomic<bool> heads_off_{false};  // none to be made any more

  port::Mutex free_mu_;
  Frame* free_frames_ GUARDED_BY(free_mu_) = nullptr;  // linked through ring_next
  // Frame structs the next chunk carves (AllocFrameStruct); a race between
  // two carving threads only sizes a chunk differently.
  std::atomic<size_t> next_frame_chunk_;
};

}  // namespace arenakv::tree

#endif  // ARENAKV_TREE_PAGE_CACHE_H_
