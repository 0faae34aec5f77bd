// PoolCore and ArenaCore: the internal state behind SegmentPool and Arena.
//
// Layout. The pool keeps a directory of entries; an entry is either a region
// (region_bytes of address space, aligned to max_class_bytes, cut into chunks
// of max_class_bytes, each chunk carved into segments of one size class) or a
// dedicated mapping (one oversized segment). Every segment start has a Slot in
// its entry's slot table, addressed by (entry, granule) where a granule is
// min_class_bytes. Entries and slot tables are never freed before the pool is
// destroyed, so a stale token can always be looked up safely and generations
// survive a region being unmapped and mapped again.
//
// Locks, in acquisition order: tree_mu (arena tree) -> an arena's own mutex
// (kShared arenas) -> mu (regions, dedicated mappings, trimming) -> class locks
// (SpinLock) in ascending class order. The hot path is inline (below): a
// segment reused from the thread's magazine takes no lock and no atomic
// read-modify-write, and one given back to it costs exactly one, the
// compare-and-swap that moves the generation on; past the magazine, a class
// lock is taken for a few dozen instructions.
//
// Thread safety: PoolCore methods are safe to call concurrently except where
// REQUIRES says otherwise. ArenaCore fields are documented one by one.
#ifndef ARENAKV_ALLOC_POOL_CORE_H_
#define ARENAKV_ALLOC_POOL_CORE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "arenakv/alloc/arena.h"
#include "arenakv/alloc/segment_pool.h"
#include "arenakv/alloc/spill_sink.h"
#include "arenakv/status.h"
#include "port/mutex.h"
#include "sanitizer.h"
#include "spin_lock.h"

namespace arenakv::alloc::internal {

// A link to a slot: (entry << 16 | granule) + 1, so that 0 means "none" and a
// zero-filled slot table is a valid empty one.
using Link = uint32_t;
constexpr Link kNoLink = 0;
constexpr int kMaxClasses = 32;
constexpr uint32_t kMaxEntries = 0xffff;  // entry 0xffff would overflow a Link

// Token layout: | pool tag:12 | entry:16 | granule:16 | generation:20 |.
constexpr int kGenBits = 20;
constexpr uint64_t kGenMask = (uint64_t{1} << kGenBits) - 1;
constexpr uint32_t kTagMask = 0xfff;
constexpr int kTagShift = 52;
// Magazines cache classes of at most 4 MiB from a smallest class of at least
// 4 KiB: at most 11 classes.
constexpr int kMaxMagazineClasses = 11;

enum Where : uint8_t {
  kInUse = 0,      // handed out (or never carved)
  kRetained = 1,   // free, pages still committed, on the class's retained list
  kReleased = 2,   // free, pages returned to the OS (or never touched)
  kInTransit = 3,  // being madvised by a trimmer; on no list
};

// Per-segment metadata. Lives in a zero-filled anonymous mapping; all-zero is
// "free, generation 0, unlinked".
struct Slot {
  // generation << 1 | live, the generation kGenBits wide (as in the token, so
  // a token alone says what the word of its live segment is). Made live
  // under the class lock (mu for dedicated entries) or by the magazine that
  // holds the free segment; made free by a compare-and-swap (or under the
  // class lock for an arena's close); read lock-free by Check() and Release().
  uint32_t word;
  // Id of the arena owning the segment (0: a raw pool segment). Atomic access.
  uint32_t owner;
  // Free-list links; guarded by the class lock.
  Link prev, next;
  // The owning arena's list of segments; guarded by that arena.
  Link owner_prev, owner_next;
  // Size class index; atomic access (written while carving).
  uint8_t cls;
  // Where (above); guarded by the class lock.
  uint8_t where;
  uint16_t unused;
};

constexpr uint32_t kLive = 1;
// The word of the live segment a token names, and the word that releasing it
// leaves behind (free, next generation).
inline uint32_t LiveWordOf(uint64_t token) {
  return static_cast<uint32_t>((token & kGenMask) << 1) | kLive;
}
inline uint32_t NextGenWord(uint32_t w) {
  return static_cast<uint32_t>((((w >> 1) + 1) & kGenMask) << 1);
}
inline uint64_t NextGenToken(uint64_t token) {
  return (token & ~kGenMask) | ((token + 1) & kGenMask);
}

// Slot fields written under one lock and read without it go through
// atomic_ref (relaxed loads and stores are plain moves on x86).
inline uint32_t LoadWord(const Slot* s, std::memory_order mo = std::memory_order_acquire) {
  return std::atomic_ref<uint32_t>(const_cast<uint32_t&>(s->word)).load(mo);
}
inline void StoreWord(Slot* s, uint32_t w) {
  std::atomic_ref<uint32_t>(s->word).store(w, std::memory_order_release);
}
inline bool CasWord(Slot* s, uint32_t expected, uint32_t desired) {
  return std::atomic_ref<uint32_t>(s->word).compare_exchange_strong(
      expected, desired, std::memory_order_acq_rel, std::memory_order_relaxed);
}
inline uint32_t LoadOwner(const Slot* s) {
  return std::atomic_ref<uint32_t>(const_cast<uint32_t&>(s->owner)).load(std::memory_order_relaxed);
}
inline void StoreOwner(Slot* s, uint32_t owner) {
  std::atomic_ref<uint32_t>(s->owner).store(owner, std::memory_order_relaxed);
}
inline uint8_t LoadClass(const Slot* s) {
  return std::atomic_ref<uint8_t>(const_cast<uint8_t&>(s->cls)).load(std::memory_order_relaxed);
}
inline void StoreClass(Slot* s, uint8_t c) {
  std::atomic_ref<uint8_t>(s->cls).store(c, std::memory_order_relaxed);
}

struct Entry {
  // Start of the mapping; null while the entry is unoccupied.
  std::atomic<char*> base{nullptr};
  // Mapping length (region_bytes, or the dedicated mapping's size).
  std::atomic<size_t> bytes{0};
  bool dedicated = false;  // fixed when the entry is created
  uint32_t index = 0;      // position in the directory
  Slot* slots = nullptr;   // granules_per_region slots (1 for dedicated)
  size_t slots_map_bytes = 0;
  std::unique_ptr<Slot> own_slot;  // a dedicated entry's one slot
  // Region bookkeeping, guarded by PoolCore::mu.
  size_t next_chunk = 0;            // chunks [0, next_chunk) are carved
  std::vector<int8_t> chunk_class;  // -1 while uncarved
  // Segments in use per chunk; guarded by the lock of the chunk's class.
  std::vector<uint32_t> chunk_in_use;
};

struct ArenaCore;
class PoolCore;

// A thread's private stock of free segments of one pool (per-thread cache).
// Reusing a segment from it takes no lock and no atomic read-modify-write.
// Its segments count as in use for the pool's lists and regions (so a region
// holding one is never unmapped under it) and as retained in PoolStats.
// Everything but `bins[c].n` is touched only by the owning thread, or under
// MagazineMutex() when the pool is destroyed or the thread exits.
struct Magazine {
  static constexpr int kBinCapacity = 16;
  // A cached free segment with everything a hand-out needs, so that reuse
  // reads no directory or slot table: the token it will carry (its slot's
  // word is free with that generation and no one else writes it while the
  // segment is here), its address and its slot.
  struct Cached {
    uint64_t token;
    char* data;
    Slot* slot;
  };
  PoolCore* pool = nullptr;
  uint64_t uid = 0;
  Magazine* prev = nullptr;  // the pool's list; guarded by MagazineMutex()
  Magazine* next = nullptr;
  bool orphan = false;  // the pool is gone; guarded by MagazineMutex()
  size_t bytes = 0;     // bytes cached; owner only
  struct Bin {
    std::atomic<uint32_t> n{0};  // written by the owner, read by Stats()
    Cached items[kBinCapacity];
  } bins[kMaxMagazineClasses];
};
port::Mutex* MagazineMutex();
// The thread's most recently used magazine (or null): plain thread-local
// storage with no initialiser, so the inline hot path reads it directly.
extern __thread Magazine* t_hot_magazine;

// Hidden: with -fPIC, default-visibility member functions could be
// interposed, which would forbid inlining them into the hot path.
class __attribute__((visibility("hidden"))) PoolCore {
 public:
  explicit PoolCore(const PoolOptions& options);
  ~PoolCore();
  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;

  Status Init();

  // Allocates a segment for arena `owner` (0: a raw pool segment).
  // `huge`: from the huge-page twin classes (PoolOptions::huge_pages_after_chunks).
  Status Allocate(size_t bytes, uint32_t owner, Segment* segment, bool huge = false) {
    if (!huge && TryAllocateFromMagazine(bytes, owner, segment)) return Status::OK();
    return AllocateSlow(bytes, owner, segment, huge);
  }
  // Releases a segment that `owner` holds. InvalidArgument when it is not
  // live, not of this pool, or held by someone else.
  Status Release(const Segment& segment, uint32_t owner) {
    if (TryReleaseToMagazine(segment, owner)) return Status::OK();
    return ReleaseSlow(segment, owner);
  }
  // The common cases of Allocate and Release, inline: a segment of a cached
  // class taken from, or given back to, this thread's magazine. They return
  // false, having changed nothing, for everything else (an empty or full
  // bin, another class, a closed pool, an invalid handle); the out-of-line
  // paths then do the work or name the error.
  inline bool TryAllocateFromMagazine(size_t bytes, uint32_t owner, Segment* segment);
  inline bool TryReleaseToMagazine(const Segment& segment, uint32_t owner);
  Status AllocateSlow(size_t bytes, uint32_t owner, Segment* segment, bool huge);
  Status ReleaseSlow(const Segment& segment, uint32_t owner);
  // OK when live and held by `owner` (any owner when check_owner is false).
  Status Check(const Segment& segment, uint32_t owner, bool check_owner) const;
  // Gives back every segment of an arena's owner list at once: one lock
  // round trip per size class instead of one per segment.
  // `recycle`: the list's segments may stay retained under the recycle
  // allowance (SetRecycleBytes).
  void ReleaseOwnedList(Link head, bool recycle = false);
  void SetRecycleBytes(size_t bytes);
  // Moves a live region segment of `owner` out to `sink` (Arena::Spill):
  // stores a copy, maps it over the segment, and stops counting the segment
  // as committed. *offset: where the sink keeps the copy.
  Status SpillSegment(const Segment& segment, uint32_t owner, SpillSink* sink, uint64_t* offset);
  // Releases a spilled segment: fresh anonymous memory is mapped back over
  // it, and it goes on its class's list of free segments whose pages are
  // with the OS. The caller tells the sink.
  Status ReleaseSpilled(const Segment& segment, uint32_t owner);
  // The segment an owner-list link names, live (its token and size), and
  // whether it is a dedicated mapping.
  Segment SegmentOfLink(Link link, bool* dedicated) const;

  size_t ClassFor(size_t bytes) const;
  // Bytes a request of `bytes` really takes (its class, or whole pages).
  size_t SegmentBytesFor(size_t bytes) const;

  Slot* SlotOf(Link link) const {
    Entry* e = EntryAt((link - 1) >> 16);
    return e == nullptr ? nullptr : e->slots + ((link - 1) & 0xffffu);
  }
  Slot* SlotOfToken(uint64_t token) const;
  static Link LinkOfToken(uint64_t token) {
    return static_cast<Link>((token >> kGenBits) & 0xffffffffu) + 1;
  }

  void SetReclaim(SegmentPool::ReclaimFn fn);
  void Trim();
  // SegmentPool::ReleaseThreadCache.
  void ReleaseThreadCache() { FlushMyMagazine(); }
  Status Close();
  bool closed() const { return closed_.load(std::memory_order_acquire); }
  bool closing() const;

  PoolStats Stats() const;
  std::string Report() const;
  std::string LeakReport() const;
  size_t InUseBytes() const;
  uint32_t NewArenaId() {
    uint32_t id;
    do {
      id = next_arena_id_.fetch_add(1, std::memory_order_relaxed);
    } while (id == 0);
    return id;
  }

  const PoolOptions& options() const { return opt_; }

  // Per-thread caches (magazine.cc).
  // Returns every segment of `m` to the pool's lists (owner thread, or under
  // MagazineMutex() for a thread that exits).
  void FlushMagazine(Magazine* m);
  // Detaches `m` from this pool's list; MagazineMutex() held.
  void DetachMagazineLocked(Magazine* m);
  // Segments of class `c` cached by all threads; MagazineMutex() held.
  size_t CachedSegmentsLocked(int c) const;
  uint64_t uid() const { return uid_; }

  // Arena tree; every field below it is guarded by tree_mu.
  mutable port::Mutex tree_mu;
  ArenaCore* roots GUARDED_BY(tree_mu) = nullptr;
  size_t open_arenas GUARDED_BY(tree_mu) = 0;
  bool closing_ GUARDED_BY(tree_mu) = false;

  // Process-wide registry links (guarded by the registry's mutex).
  PoolCore* registry_prev = nullptr;
  PoolCore* registry_next = nullptr;
  bool registered = false;

 private:
  struct alignas(64) ClassState {
    SpinLock mu;
    size_t bytes = 0;
    // retained * bytes, published for lock-free readers (the retain bound).
    std::atomic<size_t> retained_bytes{0};
    Link retained_head GUARDED_BY(mu) = kNoLink;
    Link retained_tail GUARDED_BY(mu) = kNoLink;
    Link released_head GUARDED_BY(mu) = kNoLink;
    size_t in_use GUARDED_BY(mu) = 0;
    size_t retained GUARDED_BY(mu) = 0;
    size_t released GUARDED_BY(mu) = 0;
    // The chunk being carved: its region entry, the granule of its next
    // segment and how many segments are left. A chunk's slots are written
    // a batch at a time, as its segments are first needed, so that a pool
    // using a few segments of a class touches a page of its slot table,
    // not the fourteen KiB of the whole chunk's slots (a thousand small
    // databases' pools each carve chunks of half a dozen classes).
    uint32_t carve_entry GUARDED_BY(mu) = 0;
    uint32_t carve_granule GUARDED_BY(mu) = 0;
    uint32_t carve_left GUARDED_BY(mu) = 0;
  };

  // Branch-free: or-ing in min-1 makes every request up to the smallest
  // class class 0 (and keeps the argument of clz non-zero).
  int ClassIndex(size_t bytes) const {
    return (64 - __builtin_clzll((bytes - 1) | (opt_.min_class_bytes - 1))) - min_shift_;
  }
  Entry* EntryAt(uint32_t index) const {
    if (index >= kMaxEntries) return nullptr;
    return dir_[index].load(std::memory_order_acquire);
  }
  char* SegmentAddress(Link link) const;
  uint64_t MakeToken(Link link, uint32_t gen) const;
  bool Validate(const Segment& segment, Entry** entry, Slot** slot, uint32_t* word) const;

  Magazine* MyMagazine();
  Magazine* AttachMagazine();
  bool MagazinePop(Magazine* m, int c, uint32_t owner, Segment* segment);
  // Takes the top of a non-empty bin.
  inline void MagazineTake(Magazine* m, int c, uint32_t owner, Segment* segment);
  bool MagazineRefill(Magazine* m, int c);
  void MagazineFlushBin(Magazine* m, int c, uint32_t count);
  void FlushMyMagazine();
  bool PopRetained(int c, uint32_t owner, Segment* segment);
  bool PopReleased(int c, uint32_t owner, Segment* segment);
  void TakeLocked(ClassState& cs, Link link, uint32_t owner, Segment* segment) REQUIRES(cs.mu);
  void PushFront(ClassState& cs, Link* head, Link* tail, Link link) REQUIRES(cs.mu);
  void Unlink(ClassState& cs, Link* head, Link* tail, Link link) REQUIRES(cs.mu);
  Status HandOut(const Segment& segment, bool fresh);
  void PutBackUntouched(const Segment& segment, int c);

  Status AllocateClass(int c, uint32_t owner, Segment* segment);
  Status AllocateDedicated(size_t bytes, uint32_t owner, Segment* segment);
  Status ReleaseDedicated(const Segment& segment, Entry* entry, Slot* slot, uint32_t owner);
  void ReleaseDedicatedLocked(Entry* entry, Slot* slot) REQUIRES(mu_);
  // ReleaseOwnedList's phases. A chain: segments of one class freed by the
  // walk, linked through their list links, to splice onto its retained list.
  struct OwnedChain {
    Link head;
    Link tail;
    Slot* tail_slot;
    size_t n;
  };
  void ProtectOwnedList(Link head);
  int PrimaryClassOf(Link head);
  // `pcs` is classes_[primary], whose lock the caller holds.
  Link FreeOwnedListLocked(ClassState& pcs, Link head, int primary, OwnedChain* chains)
      REQUIRES(pcs.mu);
  void SpliceRetainedLocked(ClassState& cs, const OwnedChain& ch) REQUIRES(cs.mu);
  void ReleaseDedicatedChain(Link head) EXCLUDES(mu_);
  // Reserves committed bytes against the budget, dropping retained segments
  // and calling the reclaim callback when needed. Sets *reused when the
  // reclaim pass freed a segment of class `c` that was taken instead.
  Status Reserve(size_t bytes, int c, uint32_t owner, Segment* reused);
  bool TryReserve(size_t bytes);
  void Unreserve(size_t bytes);
  // Committed bytes given back (to the OS, or no longer counted): off
  // committed_ and off the shared budget.
  void Uncommit(size_t bytes);
  // Bytes by which the shared budget (if any) is short for `bytes` more.
  size_t SharedOver(size_t bytes) const;

 public:
  // The SegmentPool this core is behind (set at construction): what the
  // shared budget's reclaim function is told is asking.
  const SegmentPool* facade = nullptr;
  Status Charge(size_t bytes);
  Status ChargeIfRoom(size_t bytes);
  void Uncharge(size_t bytes);

 private:
  // Makes free segments of class c: the next batch of the chunk being
  // carved, or of a new chunk.
  Status CarveChunk(int c);
  void CarveBatchLocked(ClassState& cs, int c) REQUIRES(mu_, cs.mu);
  Status MapRegionLocked(Entry** out) REQUIRES(mu_);
  Status NewEntryLocked(bool dedicated, uint32_t* index) REQUIRES(mu_);

  void MaybeShrinkRetained();
  // Returns retained segments' pages to the OS until retained <= target.
  void ShrinkRetainedLocked(size_t target) REQUIRES(mu_);
  void UnmapFreeRegionsLocked() REQUIRES(mu_);
  void UnmapAllLocked() REQUIRES(mu_);
  // Retained bytes over all classes (each class's count is exact; the sum
  // is a snapshot).
  size_t RetainedBytes() const;
  // Retained bytes kept before trimming: the pool's reserve and what the
  // recycle allowance holds.
  size_t RetainLimit() const {
    return opt_.retain_bytes + recycled_.load(std::memory_order_relaxed);
  }
  // The recycle allowance's share of retained bytes: credited by recycling
  // releases (up to the allowance), debited by reuse and by trimming.
  void CreditRecycled(size_t bytes);
  void DebitRecycled(size_t bytes);
  // Lowers the allowance's share to at most `most`.
  void ClampRecycled(size_t most);
  static void PublishRetained(ClassState& cs) REQUIRES(cs.mu) {
    cs.retained_bytes.store(cs.retained * cs.bytes, std::memory_order_relaxed);
  }
  void LockAllClasses() const;
  void UnlockAllClasses() const;
  size_t ReturnPages(char* p, size_t n);

  std::string LeakReportLocked() const REQUIRES(tree_mu);

  const PoolOptions opt_;
  uint32_t tag_ = 0;
  uint64_t uid_ = 0;
  // Classes [0, magazine_classes_) are cached per thread, up to
  // bin_capacity_[c] segments and magazine_bytes_ in all.
  int magazine_classes_ = 0;
  size_t magazine_max_class_bytes_ = 0;  // largest cached class; 0: none
  uint32_t bin_capacity_[kMaxMagazineClasses] = {};
  size_t magazine_bytes_ = 0;
  Magazine* magazines_ = nullptr;  // guarded by MagazineMutex()
  int min_shift_ = 0;
  int num_classes_ = 0;
  // Classes [num_classes_, total_classes_) are the huge-page twins of
  // [0, huge_class_offset_): same sizes, own chunks, never in magazines.
  int huge_class_offset_ = 0;
  int total_classes_ = 0;
  size_t granules_per_region_ = 0;
  size_t granules_per_chunk_ = 0;
  int chunk_shift_ = 0;
  size_t chunks_per_region_ = 0;

  // Directory of entries: kMaxEntries atomic pointers in one anonymous
  // mapping (only its touched pages are resident).
  std::atomic<Entry*>* dir_ = nullptr;
  size_t dir_map_bytes_ = 0;

  mutable ClassState classes_[kMaxClasses];

  mutable port::Mutex mu_;
  std::vector<std::unique_ptr<Entry>> entries_ GUARDED_BY(mu_);
  std::vector<uint32_t> free_region_entries_ GUARDED_BY(mu_);
  std::vector<uint32_t> free_dedicated_entries_ GUARDED_BY(mu_);
  std::vector<uint32_t> regions_with_space_ GUARDED_BY(mu_);
  // Chunks carved for each class and not yet unmapped (huge-page policy).
  size_t class_chunks_[kMaxClasses] GUARDED_BY(mu_) = {};
  SegmentPool::ReclaimFn reclaim_ GUARDED_BY(mu_);
  size_t dedicated_segments_ GUARDED_BY(mu_) = 0;

  std::atomic<bool> closed_{false};
  std::atomic<uint32_t> next_arena_id_{1};
  std::atomic<size_t> committed_{0};
  std::atomic<size_t> dedicated_{0};
  std::atomic<size_t> reserved_{0};
  std::atomic<size_t> high_water_{0};
  std::atomic<uint64_t> mmap_calls_{0};
  std::atomic<uint64_t> munmap_calls_{0};
  std::atomic<uint64_t> madvise_calls_{0};
  std::atomic<uint64_t> reclaim_calls_{0};
  std::atomic<uint64_t> limit_failures_{0};
  std::atomic<size_t> charged_{0};            // part of committed_ that is Charge()d
  std::atomic<size_t> recycle_allowance_{0};  // SetRecycleBytes
  std::atomic<size_t> recycled_{0};           // retained under it (<= the allowance)
  std::atomic<size_t> spilled_{0};            // in use, file-backed, not in committed_
};

// ---------------------------------------------------------------------------
// The inline hot path.

inline void PoolCore::MagazineTake(Magazine* m, int c, uint32_t owner, Segment* segment) {
  Magazine::Bin& bin = m->bins[c];
  const uint32_t n = bin.n.load(std::memory_order_relaxed) - 1;
  const Magazine::Cached x = bin.items[n];
  bin.n.store(n, std::memory_order_relaxed);
  const size_t bytes = opt_.min_class_bytes << c;
  m->bytes -= bytes;
  // Live first (a Check() from another thread may look), then the owner.
  StoreWord(x.slot, LiveWordOf(x.token));
  StoreOwner(x.slot, owner);
  segment->data = x.data;
  segment->size = bytes;
  segment->token = x.token;
  Unpoison(x.data, bytes);
}

inline bool PoolCore::TryAllocateFromMagazine(size_t bytes, uint32_t owner, Segment* segment) {
  // bytes - 1 wraps for 0, which the slow path rejects.
  if (bytes - 1 >= magazine_max_class_bytes_) return false;
  Magazine* m = t_hot_magazine;
  if (m == nullptr || m->uid != uid_) return false;
  const int c = ClassIndex(bytes);
  if (m->bins[c].n.load(std::memory_order_relaxed) == 0) return false;
  // A closed pool's magazines are discarded unread.
  if (closed()) return false;
  MagazineTake(m, c, owner, segment);
  return true;
}

inline bool PoolCore::TryReleaseToMagazine(const Segment& segment, uint32_t owner) {
  const uint64_t t = segment.token;
  if ((t >> kTagShift) != tag_) return false;
  Magazine* m = t_hot_magazine;
  if (m == nullptr || m->uid != uid_) return false;
  if (closed()) return false;
  Entry* e = EntryAt(static_cast<uint32_t>(t >> (kGenBits + 16)) & 0xffffu);
  const uint32_t g = static_cast<uint32_t>(t >> kGenBits) & 0xffffu;
  if (e == nullptr || e->dedicated || g >= granules_per_region_) return false;
  Slot* s = e->slots + g;
  const int c = LoadClass(s);
  if (c >= magazine_classes_) return false;
  // The handle must name this slot's segment exactly (address and size) and
  // be held by `owner`, all before anything changes.
  const size_t bytes = opt_.min_class_bytes << c;
  char* base = e->base.load(std::memory_order_acquire);
  if (base == nullptr || segment.data != base + (static_cast<size_t>(g) << min_shift_) ||
      segment.size != bytes || LoadOwner(s) != owner) {
    return false;
  }
  Magazine::Bin& bin = m->bins[c];
  const uint32_t n = bin.n.load(std::memory_order_relaxed);
  if (n == bin_capacity_[c] || m->bytes + bytes > magazine_bytes_) return false;
  // The one atomic read-modify-write: the slot goes from "live with the
  // token's generation" to "free, next generation". A second release of the
  // handle, racing or late, fails here and the slow path names it.
  if (!CasWord(s, LiveWordOf(t), NextGenWord(LiveWordOf(t)))) return false;
  StoreOwner(s, 0);
  Poison(segment.data, bytes);
  bin.items[n] = {NextGenToken(t), segment.data, s};
  bin.n.store(n + 1, std::memory_order_relaxed);
  m->bytes += bytes;
  return true;
}

// Process-wide accounting (pool_stats.cc).
void RegisterPool(PoolCore* pool);
void UnregisterPool(PoolCore* pool);
void AddMappedBytes(size_t bytes);
void SubMappedBytes(size_t bytes);

// An arena's state. Tree links are guarded by the pool's tree_mu; segment
// bookkeeping by `mu` for kShared arenas and by ownership for kConfined ones
// (see MaybeLock in arena.cc).
struct __attribute__((visibility("hidden"))) ArenaCore {
  std::shared_ptr<SegmentPool> pool_ref;
  PoolCore* pool = nullptr;
  ArenaOptions options;
  uint32_t id = 0;
  bool shared = false;

  ArenaCore* parent = nullptr;       // guarded by pool->tree_mu
  ArenaCore* first_child = nullptr;  // guarded by pool->tree_mu
  ArenaCore* prev = nullptr;         // siblings, or the pool's roots
  ArenaCore* next = nullptr;
  size_t children = 0;
  bool in_roots = false;

  std::atomic<bool> closed{false};
  // The next bump block's size: first_block_bytes, doubling up to
  // block_bytes (0 until the first block).
  std::atomic<size_t> next_block{0};
  port::Mutex mu;
  Link owned_head GUARDED_BY(mu) = kNoLink;
  // The bump block and `used` counter, in the Arena object (see arena.h);
  // "guarded" like the fields above: by mu for kShared, by ownership else.
  BumpWindow* bump = nullptr;
  // Segments moved out by Spill(): off the owner list, still held.
  struct Spilled {
    Segment segment;
    uint64_t offset;  // of the copy in `sink`
  };
  std::shared_ptr<SpillSink> sink GUARDED_BY(mu);
  std::vector<Spilled> spilled GUARDED_BY(mu);
  // Counters readable from any thread (Stats); written by the owner.
  // `bytes` counts the segments in memory, `spilled_bytes` the others.
  std::atomic<size_t> bytes{0};
  std::atomic<size_t> spilled_bytes{0};
  std::atomic<size_t> segments{0};
#if defined(ARENAKV_CHECKED)
  std::atomic<std::thread::id> owner_thread{};
#endif
};

// Closes `arena` and its descendants; defined in arena.cc.
void CloseArenaLocked(PoolCore* pool, ArenaCore* arena) REQUIRES(pool->tree_mu);

}  // namespace arenakv::alloc::internal

namespace arenakv::alloc {
// Both live in the pool's object heap when it has one (PoolOptions).
struct __attribute__((visibility("hidden"))) SegmentPool::Impl : internal::PoolCore, HeapObject {
  using internal::PoolCore::PoolCore;
};
struct __attribute__((visibility("hidden"))) Arena::Impl : internal::ArenaCore, HeapObject {};
}  // namespace arenakv::alloc

#endif  // ARENAKV_ALLOC_POOL_CORE_H_
