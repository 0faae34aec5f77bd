// PageCache: decoded B+tree pages held in segments of the database's cache
// arena, bounded by a byte capacity and looked up by page address.
//
// Sixteen shards, each a mutex, an intrusive chained hash index whose bucket
// array is an arena segment (no allocation per entry), and a CLOCK ring.
// Lookup pins a frame (the pin count is raised under the shard lock, so the
// evictor, which also holds it, never frees a pinned frame); a PageRef unpins
// when it goes away. New frames are allocated outside every shard lock, so the
// pool's reclaim callback (which calls Evict) can never deadlock with us.
// Between checkpoints every cached page is clean: eviction just drops it.
// When everything is pinned, a new frame takes the cache over capacity for a
// while (counted in overflows).
//
// Close() forgets every frame at once without releasing them one by one; the
// owner closes the arena, which returns all of them to the pool in one pass.
//
// Thread safety: all methods may be called concurrently, except Close(),
// which requires that no PageRef is alive and no other call is running.
#ifndef ARENAKV_TREE_PAGE_CACHE_H_
#define ARENAKV_TREE_PAGE_CACHE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "arenakv/alloc/arena.h"
#include "arenakv/db.h"
#include "arenakv/status.h"
#include "port/mutex.h"

namespace arenakv::tree {

// One cached page. The fields a lookup touches (address, chain link, pins,
// data pointer) share the first cache line.
struct alignas(64) Frame {
  uint64_t address = 0;
  Frame* hash_next = nullptr;
  alloc::Segment segment;
  std::atomic<uint32_t> pins{0};
  uint32_t bytes = 0;       // image bytes used in the segment
  bool referenced = false;  // CLOCK bit; guarded by the shard lock
  bool indexed = false;     // reachable through the hash index
  bool in_ring = false;
  uint8_t shard = 0;
  uint64_t checksum = 0;  // ImageChecksum of the image, for re-verification
  Frame* ring_prev = nullptr;
  Frame* ring_next = nullptr;

  char* data() const { return segment.data; }
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

class PageCache {
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

  // A private frame of at least `bytes` for the caller to fill (evicting to
  // make room first). The returned ref frees it unless it is published.
  Status NewFrame(size_t bytes, PageRef* ref);
  // Publishes a private frame under `address` (bytes = image size) and pins
  // it in *ref. If another thread published that address first, the private
  // frame is freed and *ref pins the existing one.
  void Insert(uint64_t address, uint32_t bytes, PageRef* ref);

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
  size_t capacity() const { return capacity_; }
  // Frames created while over capacity because nothing could be evicted.
  uint64_t overflows() const { return overflows_.load(std::memory_order_relaxed); }

 private:
  friend class PageRef;
  struct alignas(64) Shard {  // own cache lines: no false sharing between shard locks
    port::Mutex mu;
    Frame** buckets GUARDED_BY(mu) = nullptr;
    size_t nbuckets GUARDED_BY(mu) = 0;
    alloc::Segment bucket_segment GUARDED_BY(mu);
    size_t pages GUARDED_BY(mu) = 0;
    size_t ring_size GUARDED_BY(mu) = 0;
    Frame* hand GUARDED_BY(mu) = nullptr;  // CLOCK hand; the ring is circular
    uint64_t hits GUARDED_BY(mu) = 0;
    uint64_t misses GUARDED_BY(mu) = 0;
    uint64_t evictions GUARDED_BY(mu) = 0;
  };

  PageCache(alloc::Arena* arena, size_t capacity);
  Status Init();
  static uint64_t Hash(uint64_t address) { return address * 0x9E3779B97F4A7C15ULL; }
  Shard& ShardFor(uint64_t hash);
  Frame* FindLocked(Shard& s, uint64_t address, uint64_t hash) REQUIRES(s.mu);
  // Unlinks and frees an unpinned frame; returns its segment bytes.
  size_t DropLocked(Shard& s, Frame* f) REQUIRES(s.mu);
  size_t EvictFromShard(Shard& s, size_t wanted);
  void EvictToFit(size_t bytes);
  void MaybeGrow(Shard& s);
  Status AllocFrameStruct(Frame** f);
  void FreeFrameStruct(Frame* f);
  void ReleasePrivate(Frame* f);

  alloc::Arena* const arena_;
  const size_t capacity_;
  std::unique_ptr<Shard[]> shards_;
  std::atomic<size_t> used_bytes_{0};
  std::atomic<uint64_t> overflows_{0};
  std::atomic<uint32_t> evict_cursor_{0};
  std::atomic<bool> closed_{false};

  port::Mutex free_mu_;
  Frame* free_frames_ GUARDED_BY(free_mu_) = nullptr;  // linked through hash_next
};

}  // namespace arenakv::tree

#endif  // ARENAKV_TREE_PAGE_CACHE_H_
