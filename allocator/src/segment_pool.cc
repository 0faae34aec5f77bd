// SegmentPool: regions, size classes, free lists, budget and giving memory
// back. See pool_core.h for the layout and the lock order.

#include "arenakv/alloc/segment_pool.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "pool_core.h"
#include "sanitizer.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace arenakv::alloc {
namespace internal {
namespace {

std::atomic<uint32_t> g_next_tag{1};
std::atomic<uint64_t> g_next_uid{1};

Link MakeLink(uint32_t entry, uint32_t granule) { return ((entry << 16) | granule) + 1; }
uint32_t EntryOf(Link link) { return (link - 1) >> 16; }
uint32_t GranuleOf(Link link) { return (link - 1) & 0xffffu; }

bool IsPowerOfTwo(size_t v) { return v != 0 && (v & (v - 1)) == 0; }
int Log2(size_t v) { return 63 - __builtin_clzll(v); }

size_t PageSize() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

void* MapAnonymous(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

Status MapFailure(const std::string& pool, const char* what, size_t bytes, int err) {
  return Status::MemoryLimit("pool '" + pool + "': " + what + " of " + FormatBytes(bytes) +
                             " failed: " + std::strerror(err));
}

}  // namespace

PoolCore::PoolCore(const PoolOptions& options) : opt_(options) {}

PoolCore::~PoolCore() {
  if (dir_ != nullptr) Close().IgnoreError();
  {
    port::MutexLock l(MagazineMutex());
    while (magazines_ != nullptr) DetachMagazineLocked(magazines_);
  }
  port::MutexLock l(&mu_);
  for (auto& e : entries_) {
    if (e != nullptr && !e->dedicated && e->slots != nullptr) munmap(e->slots, e->slots_map_bytes);
  }
  entries_.clear();
  if (dir_ != nullptr) munmap(static_cast<void*>(dir_), dir_map_bytes_);
}

Status PoolCore::Init() {
  const size_t page = PageSize();
  if (!IsPowerOfTwo(opt_.min_class_bytes) || opt_.min_class_bytes < 4096 ||
      opt_.min_class_bytes < page) {
    return Status::InvalidArgument("pool '" + opt_.name +
                                   "': min_class_bytes must be a power of two >= 4096");
  }
  if (!IsPowerOfTwo(opt_.max_class_bytes) || opt_.max_class_bytes < opt_.min_class_bytes) {
    return Status::InvalidArgument("pool '" + opt_.name +
                                   "': max_class_bytes must be a power of two >= min_class_bytes");
  }
  min_shift_ = Log2(opt_.min_class_bytes);
  num_classes_ = Log2(opt_.max_class_bytes) - min_shift_ + 1;
  if (num_classes_ > kMaxClasses) {
    return Status::InvalidArgument("pool '" + opt_.name + "': too many size classes");
  }
  if (opt_.region_bytes == 0 || opt_.region_bytes % opt_.max_class_bytes != 0 ||
      opt_.region_bytes / opt_.min_class_bytes > 65536) {
    return Status::InvalidArgument(
        "pool '" + opt_.name +
        "': region_bytes must be a multiple of max_class_bytes and at most 65536 min classes");
  }
  granules_per_region_ = opt_.region_bytes >> min_shift_;
  granules_per_chunk_ = opt_.max_class_bytes >> min_shift_;
  chunk_shift_ = Log2(granules_per_chunk_);
  chunks_per_region_ = opt_.region_bytes / opt_.max_class_bytes;
  for (int c = 0; c < num_classes_; ++c) classes_[c].bytes = opt_.min_class_bytes << c;
  // The huge-page twins: the same sizes, carved from their own chunks, so
  // that huge pages never back memory of arenas that did not ask for them.
  huge_class_offset_ = 2 * num_classes_ <= kMaxClasses ? num_classes_ : 0;
  total_classes_ = num_classes_ + huge_class_offset_;
  for (int c = num_classes_; c < total_classes_; ++c) {
    classes_[c].bytes = classes_[c - num_classes_].bytes;
  }

  // Per-thread caches: small classes, a bounded number of bytes per thread.
  // Off in quarantine mode, where every release must be protected at once.
  magazine_bytes_ = std::min(opt_.retain_bytes / 4, size_t{4} << 20);
  if (!opt_.quarantine) {
    for (int c = 0;
         c < num_classes_ && c < kMaxMagazineClasses && classes_[c].bytes <= magazine_bytes_; ++c) {
      bin_capacity_[c] = static_cast<uint32_t>(
          std::clamp<size_t>((size_t{128} << 10) / classes_[c].bytes, 1, Magazine::kBinCapacity));
      magazine_classes_ = c + 1;
      magazine_max_class_bytes_ = classes_[c].bytes;
    }
  }
  uid_ = g_next_uid.fetch_add(1, std::memory_order_relaxed);

  uint32_t tag;
  do {
    tag = g_next_tag.fetch_add(1, std::memory_order_relaxed) & kTagMask;
  } while (tag == 0);
  tag_ = tag;

  dir_map_bytes_ = (kMaxEntries * sizeof(std::atomic<Entry*>) + page - 1) / page * page;
  void* dir = MapAnonymous(dir_map_bytes_);
  if (dir == nullptr) return MapFailure(opt_.name, "directory mapping", dir_map_bytes_, errno);
  mmap_calls_.fetch_add(1, std::memory_order_relaxed);
  // A zero-filled mapping is an array of null atomic pointers.
  dir_ = static_cast<std::atomic<Entry*>*>(dir);
  RegisterPool(this);
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Lookup and validation

size_t PoolCore::ClassFor(size_t bytes) const {
  if (bytes > opt_.max_class_bytes) return 0;
  return classes_[ClassIndex(bytes)].bytes;
}

size_t PoolCore::SegmentBytesFor(size_t bytes) const {
  if (bytes <= opt_.max_class_bytes) return classes_[ClassIndex(bytes)].bytes;
  const size_t page = PageSize();
  if (bytes > SIZE_MAX - page) return SIZE_MAX;
  return (bytes + page - 1) / page * page;
}

Slot* PoolCore::SlotOfToken(uint64_t token) const {
  if (((token >> 52) & kTagMask) != tag_) return nullptr;
  Link link = LinkOfToken(token);
  Entry* e = EntryAt(EntryOf(link));
  if (e == nullptr) return nullptr;
  uint32_t g = GranuleOf(link);
  if (e->dedicated ? g != 0 : g >= granules_per_region_) return nullptr;
  return e->slots + g;
}

char* PoolCore::SegmentAddress(Link link) const {
  Entry* e = EntryAt(EntryOf(link));
  return e->base.load(std::memory_order_acquire) +
         (static_cast<size_t>(GranuleOf(link)) << min_shift_);
}

uint64_t PoolCore::MakeToken(Link link, uint32_t gen) const {
  return (uint64_t{tag_} << kTagShift) | (uint64_t{link - 1} << kGenBits) | (gen & kGenMask);
}

bool PoolCore::Validate(const Segment& segment, Entry** entry, Slot** slot, uint32_t* word) const {
  const uint64_t t = segment.token;
  if (((t >> 52) & kTagMask) != tag_) return false;
  const Link link = LinkOfToken(t);
  Entry* e = EntryAt(EntryOf(link));
  if (e == nullptr) return false;
  const uint32_t g = GranuleOf(link);
  if (e->dedicated ? g != 0 : g >= granules_per_region_) return false;
  Slot* s = e->slots + g;
  const uint32_t w = LoadWord(s);
  if ((w & kLive) == 0 || ((w >> 1) & kGenMask) != (t & kGenMask)) return false;
  char* base = e->base.load(std::memory_order_acquire);
  if (base == nullptr) return false;
  if (e->dedicated) {
    if (segment.data != base || segment.size != e->bytes.load(std::memory_order_relaxed)) {
      return false;
    }
  } else {
    const uint8_t c = LoadClass(s);
    if (c >= total_classes_ || segment.data != base + (static_cast<size_t>(g) << min_shift_) ||
        segment.size != classes_[c].bytes) {
      return false;
    }
  }
  *entry = e;
  *slot = s;
  *word = w;
  return true;
}

Status PoolCore::Check(const Segment& segment, uint32_t owner, bool check_owner) const {
  if (closed()) return Status::Closed("pool '" + opt_.name + "' is closed");
  Entry* e;
  Slot* s;
  uint32_t w;
  if (!Validate(segment, &e, &s, &w)) {
    return Status::Closed("pool '" + opt_.name + "': segment is not live (released or stale)");
  }
  if (check_owner && LoadOwner(s) != owner) {
    return Status::Closed("pool '" + opt_.name + "': segment is not owned by this arena");
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Free lists

void PoolCore::PushFront(ClassState& cs, Link* head, Link* tail, Link link) {
  cs.mu.AssertHeld();
  Slot* s = SlotOf(link);
  s->prev = kNoLink;
  s->next = *head;
  if (*head != kNoLink) {
    SlotOf(*head)->prev = link;
  } else if (tail != nullptr) {
    *tail = link;
  }
  *head = link;
}

void PoolCore::Unlink(ClassState& cs, Link* head, Link* tail, Link link) {
  cs.mu.AssertHeld();
  Slot* s = SlotOf(link);
  if (s->prev != kNoLink) {
    SlotOf(s->prev)->next = s->next;
  } else {
    *head = s->next;
  }
  if (s->next != kNoLink) {
    SlotOf(s->next)->prev = s->prev;
  } else if (tail != nullptr) {
    *tail = s->prev;
  }
  s->prev = s->next = kNoLink;
}

void PoolCore::TakeLocked(ClassState& cs, Link link, uint32_t owner, Segment* segment) {
  Entry* e = EntryAt(EntryOf(link));
  const uint32_t g = GranuleOf(link);
  Slot* s = e->slots + g;
  s->where = kInUse;
  const uint32_t w = LoadWord(s, std::memory_order_relaxed) | kLive;
  StoreWord(s, w);
  StoreOwner(s, owner);
  ++cs.in_use;
  ++e->chunk_in_use[g >> chunk_shift_];
  segment->data = e->base.load(std::memory_order_relaxed) + (static_cast<size_t>(g) << min_shift_);
  segment->size = cs.bytes;
  segment->token = MakeToken(link, w >> 1);
}

bool PoolCore::PopRetained(int c, uint32_t owner, Segment* segment) {
  ClassState& cs = classes_[c];
  {
    SpinLockGuard l(&cs.mu);
    const Link link = cs.retained_head;
    if (link == kNoLink) return false;
    Unlink(cs, &cs.retained_head, &cs.retained_tail, link);
    --cs.retained;
    PublishRetained(cs);
    TakeLocked(cs, link, owner, segment);
  }
  DebitRecycled(cs.bytes);
  return true;
}

void PoolCore::CreditRecycled(size_t bytes) {
  const size_t allowance = recycle_allowance_.load(std::memory_order_relaxed);
  size_t cur = recycled_.load(std::memory_order_relaxed);
  while (cur < allowance && !recycled_.compare_exchange_weak(cur, std::min(allowance, cur + bytes),
                                                             std::memory_order_relaxed)) {
  }
}

void PoolCore::DebitRecycled(size_t bytes) {
  size_t cur = recycled_.load(std::memory_order_relaxed);
  while (cur != 0 && !recycled_.compare_exchange_weak(cur, cur - std::min(cur, bytes),
                                                      std::memory_order_relaxed)) {
  }
}

void PoolCore::ClampRecycled(size_t most) {
  size_t cur = recycled_.load(std::memory_order_relaxed);
  while (cur > most && !recycled_.compare_exchange_weak(cur, most, std::memory_order_relaxed)) {
  }
}

void PoolCore::SetRecycleBytes(size_t bytes) {
  recycle_allowance_.store(bytes, std::memory_order_relaxed);
  ClampRecycled(bytes);
  if (RetainedBytes() > RetainLimit()) MaybeShrinkRetained();
}

bool PoolCore::PopReleased(int c, uint32_t owner, Segment* segment) {
  ClassState& cs = classes_[c];
  SpinLockGuard l(&cs.mu);
  const Link link = cs.released_head;
  if (link == kNoLink) return false;
  Unlink(cs, &cs.released_head, nullptr, link);
  --cs.released;
  TakeLocked(cs, link, owner, segment);
  return true;
}

// ---------------------------------------------------------------------------
// Allocation

Status PoolCore::AllocateSlow(size_t bytes, uint32_t owner, Segment* segment, bool huge) {
  *segment = Segment();
  if (closed()) return Status::Closed("pool '" + opt_.name + "' is closed");
  if (bytes == 0) return Status::InvalidArgument("pool '" + opt_.name + "': 0-byte segment");
  if (bytes > opt_.max_class_bytes) return AllocateDedicated(bytes, owner, segment);
  return AllocateClass(ClassIndex(bytes) + (huge ? huge_class_offset_ : 0), owner, segment);
}

Status PoolCore::HandOut(const Segment& segment, bool fresh) {
  if (opt_.quarantine && mprotect(segment.data, segment.size, PROT_READ | PROT_WRITE) != 0) {
    return MapFailure(opt_.name, "mprotect", segment.size, errno);
  }
  Unpoison(segment.data, segment.size);
  if (fresh && opt_.prefault) {
    madvise_calls_.fetch_add(1, std::memory_order_relaxed);
    if (madvise(segment.data, segment.size, MADV_POPULATE_WRITE) != 0) {
      const int err = errno;
      // EINVAL: a kernel without MADV_POPULATE_WRITE; memory faults in lazily.
      if (err != EINVAL) return MapFailure(opt_.name, "prefault", segment.size, err);
    }
  }
  return Status::OK();
}

Status PoolCore::AllocateClass(int c, uint32_t owner, Segment* segment) {
  if (c < magazine_classes_) {
    Magazine* m = MyMagazine();
    if (m != nullptr && MagazinePop(m, c, owner, segment)) return Status::OK();
  }
  if (PopRetained(c, owner, segment)) {
    Status s = HandOut(*segment, false);
    if (!s.ok()) {
      Release(*segment, owner).IgnoreError();
      *segment = Segment();
    }
    return s;
  }
  const size_t bytes = classes_[c].bytes;
  Segment reused;
  Status s = Reserve(bytes, c, owner, &reused);
  if (!s.ok()) return s;
  bool fresh = true;
  if (reused.valid()) {
    *segment = reused;
    fresh = false;
  } else {
    while (!PopReleased(c, owner, segment)) {
      s = CarveChunk(c);
      if (!s.ok()) {
        Unreserve(bytes);
        return s;
      }
    }
  }
  s = HandOut(*segment, fresh);
  if (!s.ok()) {
    // Back on the retained list: it stays committed, as it was reserved.
    Release(*segment, owner).IgnoreError();
    *segment = Segment();
    if (s.IsMemoryLimit()) limit_failures_.fetch_add(1, std::memory_order_relaxed);
  }
  return s;
}

bool PoolCore::TryReserve(size_t bytes) {
  size_t cur = committed_.load(std::memory_order_relaxed);
  do {
    if (bytes > opt_.budget_bytes || cur > opt_.budget_bytes - bytes) return false;
  } while (!committed_.compare_exchange_weak(cur, cur + bytes, std::memory_order_relaxed));
  if (opt_.shared_budget != nullptr && !opt_.shared_budget->TryTake(bytes)) {
    committed_.fetch_sub(bytes, std::memory_order_relaxed);
    return false;
  }
  const size_t now = cur + bytes;
  size_t hw = high_water_.load(std::memory_order_relaxed);
  while (now > hw && !high_water_.compare_exchange_weak(hw, now, std::memory_order_relaxed)) {
  }
  return true;
}

void PoolCore::Unreserve(size_t bytes) { Uncommit(bytes); }

void PoolCore::Uncommit(size_t bytes) {
  committed_.fetch_sub(bytes, std::memory_order_relaxed);
  if (opt_.shared_budget != nullptr) opt_.shared_budget->Give(bytes);
}

Status PoolCore::Charge(size_t bytes) {
  if (closed()) return Status::Closed("pool '" + opt_.name + "' is closed");
  Status s = Reserve(bytes, -1, 0, nullptr);
  if (s.ok()) charged_.fetch_add(bytes, std::memory_order_relaxed);
  return s;
}

Status PoolCore::ChargeIfRoom(size_t bytes) {
  if (closed()) return Status::Closed("pool '" + opt_.name + "' is closed");
  if (!TryReserve(bytes)) {
    return Status::MemoryLimit("pool '" + opt_.name + "': no room for " + std::to_string(bytes) +
                               " bytes without reclaiming");
  }
  charged_.fetch_add(bytes, std::memory_order_relaxed);
  return Status::OK();
}

void PoolCore::Uncharge(size_t bytes) {
  charged_.fetch_sub(bytes, std::memory_order_relaxed);
  Unreserve(bytes);
}

size_t PoolCore::SharedOver(size_t bytes) const {
  const SharedBudget* b = opt_.shared_budget.get();
  return b == nullptr ? 0 : b->Over(bytes);
}

Status PoolCore::Reserve(size_t bytes, int c, uint32_t owner, Segment* reused) {
  if (TryReserve(bytes)) return Status::OK();
  auto drop_retained = [&] {
    FlushMyMagazine();
    // Only as much as the request needs: the rest stays useful for reuse.
    port::MutexLock l(&mu_);
    const size_t committed = committed_.load(std::memory_order_relaxed);
    const size_t over =
        std::max(committed + bytes > opt_.budget_bytes ? committed + bytes - opt_.budget_bytes : 0,
                 SharedOver(bytes));
    const size_t retained = RetainedBytes();
    ShrinkRetainedLocked(retained > over ? retained - over : 0);
  };
  drop_retained();
  if (TryReserve(bytes)) return Status::OK();

  SegmentPool::ReclaimFn fn;
  {
    port::MutexLock l(&mu_);
    fn = reclaim_;
  }
  // The pool's own budget short: its own callback (the shared budget's
  // reclaim below chooses among every member, coldest first).
  const size_t committed_now = committed_.load(std::memory_order_relaxed);
  if (fn && (opt_.shared_budget == nullptr || committed_now + bytes > opt_.budget_bytes)) {
    reclaim_calls_.fetch_add(1, std::memory_order_relaxed);
    const size_t committed = committed_.load(std::memory_order_relaxed);
    const size_t wanted =
        committed + bytes > opt_.budget_bytes ? committed + bytes - opt_.budget_bytes : bytes;
    fn(wanted);  // No pool lock held: it may release segments re-entrantly.
    if (c >= 0 && reused != nullptr && PopRetained(c, owner, reused)) return Status::OK();
    if (TryReserve(bytes)) return Status::OK();
    drop_retained();
    if (TryReserve(bytes)) return Status::OK();
  }
  if (const size_t over = SharedOver(bytes); over > 0) {
    // The shared budget is what is full: its owner frees memory wherever it
    // is coldest, in any member pool (this one last).
    reclaim_calls_.fetch_add(1, std::memory_order_relaxed);
    opt_.shared_budget->Reclaim(over, facade);
    if (c >= 0 && reused != nullptr && PopRetained(c, owner, reused)) return Status::OK();
    if (TryReserve(bytes)) return Status::OK();
    drop_retained();
    if (TryReserve(bytes)) return Status::OK();
    limit_failures_.fetch_add(1, std::memory_order_relaxed);
    return Status::MemoryLimit("pool '" + opt_.name + "': shared memory budget of " +
                               FormatBytes(opt_.shared_budget->capacity()) + " exceeded (in use " +
                               FormatBytes(opt_.shared_budget->used()) + ", requested " +
                               FormatBytes(bytes) + ")");
  }
  limit_failures_.fetch_add(1, std::memory_order_relaxed);
  return Status::MemoryLimit("pool '" + opt_.name + "': budget of " +
                             FormatBytes(opt_.budget_bytes) + " exceeded (committed " +
                             FormatBytes(committed_.load(std::memory_order_relaxed)) +
                             ", requested " + FormatBytes(bytes) + ")");
}

Status PoolCore::NewEntryLocked(bool dedicated, uint32_t* index) {
  std::vector<uint32_t>& free_list = dedicated ? free_dedicated_entries_ : free_region_entries_;
  if (!free_list.empty()) {
    *index = free_list.back();
    free_list.pop_back();
    return Status::OK();
  }
  if (entries_.size() >= kMaxEntries) {
    return Status::MemoryLimit("pool '" + opt_.name + "': too many regions and mappings");
  }
  auto e = std::make_unique<Entry>();
  e->dedicated = dedicated;
  e->index = static_cast<uint32_t>(entries_.size());
  if (dedicated) {
    e->slots_map_bytes = 0;
    e->slots = nullptr;
  } else {
    const size_t page = PageSize();
    e->slots_map_bytes = (granules_per_region_ * sizeof(Slot) + page - 1) / page * page;
    void* p = MapAnonymous(e->slots_map_bytes);
    if (p == nullptr) return MapFailure(opt_.name, "slot table", e->slots_map_bytes, errno);
    mmap_calls_.fetch_add(1, std::memory_order_relaxed);
    e->slots = static_cast<Slot*>(p);  // zero-filled: every slot free, generation 0
    e->chunk_class.assign(chunks_per_region_, -1);
    e->chunk_in_use.assign(chunks_per_region_, 0);
  }
  *index = static_cast<uint32_t>(entries_.size());
  entries_.push_back(std::move(e));
  return Status::OK();
}

Status PoolCore::MapRegionLocked(Entry** out) {
  uint32_t index;
  Status s = NewEntryLocked(false, &index);
  if (!s.ok()) return s;
  Entry* e = entries_[index].get();
  // Over-map by one chunk and trim so every chunk (and so every segment) is
  // aligned to its own size.
  const size_t len = opt_.region_bytes + opt_.max_class_bytes;
  char* p = static_cast<char*>(MapAnonymous(len));
  mmap_calls_.fetch_add(1, std::memory_order_relaxed);
  if (p == nullptr) {
    const int err = errno;
    free_region_entries_.push_back(index);
    return MapFailure(opt_.name, "region mapping", len, err);
  }
  const uintptr_t mask = opt_.max_class_bytes - 1;
  char* base = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(p) + mask) & ~mask);
  const size_t head = base - p;
  const size_t tail = len - head - opt_.region_bytes;
  if (head > 0) {
    munmap(p, head);
    munmap_calls_.fetch_add(1, std::memory_order_relaxed);
  }
  if (tail > 0) {
    munmap(base + opt_.region_bytes, tail);
    munmap_calls_.fetch_add(1, std::memory_order_relaxed);
  }
  e->bytes.store(opt_.region_bytes, std::memory_order_relaxed);
  e->next_chunk = 0;
  std::fill(e->chunk_class.begin(), e->chunk_class.end(), -1);
  std::fill(e->chunk_in_use.begin(), e->chunk_in_use.end(), 0);
  e->base.store(base, std::memory_order_release);
  if (dir_[index].load(std::memory_order_relaxed) == nullptr) {
    dir_[index].store(e, std::memory_order_release);
  }
  reserved_.fetch_add(opt_.region_bytes, std::memory_order_relaxed);
  AddMappedBytes(opt_.region_bytes);
  regions_with_space_.push_back(index);
  *out = e;
  return Status::OK();
}

Status PoolCore::CarveChunk(int c) {
  port::MutexLock l(&mu_);
  if (closed()) return Status::Closed("pool '" + opt_.name + "' is closed");
  ClassState& cs = classes_[c];
  {
    // Another thread may have carved while this one waited for mu_.
    SpinLockGuard cl(&cs.mu);
    if (cs.released_head != kNoLink) return Status::OK();
    if (cs.carve_left > 0) {
      CarveBatchLocked(cs, c);
      return Status::OK();
    }
  }
  if (regions_with_space_.empty()) {
    Entry* unused;
    Status s = MapRegionLocked(&unused);
    if (!s.ok()) return s;
  }
  const uint32_t index = regions_with_space_.back();
  Entry* e = entries_[index].get();
  const size_t chunk = e->next_chunk++;
  if (e->next_chunk == chunks_per_region_) regions_with_space_.pop_back();
  e->chunk_class[chunk] = static_cast<int8_t>(c);
  // A huge class (an arena that asked for huge pages: it fills its segments
  // densely and reads them at random) that already spans a few chunks gets
  // the transparent-huge-page hint on its new ones: one TLB entry per chunk
  // instead of 512. Below that it keeps 4 KiB pages, because a huge page is
  // resident whole as soon as one byte of it is touched; so at most one
  // partly used chunk per large huge class is resident beyond what is in
  // use. A hint only: the kernel may ignore it.
  if (++class_chunks_[c] > opt_.huge_pages_after_chunks && c >= num_classes_) {
    madvise(e->base.load(std::memory_order_relaxed) + chunk * opt_.max_class_bytes,
            opt_.max_class_bytes, MADV_HUGEPAGE);
  }
  Poison(e->base.load(std::memory_order_relaxed) + chunk * opt_.max_class_bytes,
         opt_.max_class_bytes);
  SpinLockGuard cl(&cs.mu);
  cs.carve_entry = index;
  cs.carve_granule = static_cast<uint32_t>(chunk * granules_per_chunk_);
  cs.carve_left = static_cast<uint32_t>(opt_.max_class_bytes / cs.bytes);
  CarveBatchLocked(cs, c);
  return Status::OK();
}

void PoolCore::CarveBatchLocked(ClassState& cs, int c) {
  // About a thousand bytes of slots a batch: 32 segments of the smallest
  // class, one of a class of 128 KiB and up.
  const uint32_t stride = static_cast<uint32_t>(cs.bytes >> min_shift_);
  const uint32_t n = std::min(cs.carve_left, std::max<uint32_t>(1, 32 / stride));
  Entry* e = entries_[cs.carve_entry].get();
  // Pushed in reverse so the lowest address is handed out first.
  for (uint32_t k = n; k-- > 0;) {
    const uint32_t g = cs.carve_granule + k * stride;
    const Link link = MakeLink(cs.carve_entry, g);
    Slot* s = e->slots + g;
    StoreClass(s, static_cast<uint8_t>(c));
    s->where = kReleased;
    PushFront(cs, &cs.released_head, nullptr, link);
  }
  cs.carve_granule += n * stride;
  cs.carve_left -= n;
  cs.released += n;
}

Status PoolCore::AllocateDedicated(size_t bytes, uint32_t owner, Segment* segment) {
  const size_t size = SegmentBytesFor(bytes);
  if (size == SIZE_MAX) return Status::InvalidArgument("pool '" + opt_.name + "': size overflow");
  Status s = Reserve(size, -1, owner, nullptr);
  if (!s.ok()) return s;
  {
    port::MutexLock l(&mu_);
    if (closed()) {
      Unreserve(size);
      return Status::Closed("pool '" + opt_.name + "' is closed");
    }
    uint32_t index;
    s = NewEntryLocked(true, &index);
    if (!s.ok()) {
      Unreserve(size);
      return s;
    }
    void* p = MapAnonymous(size);
    mmap_calls_.fetch_add(1, std::memory_order_relaxed);
    if (p == nullptr) {
      const int err = errno;
      free_dedicated_entries_.push_back(index);
      Unreserve(size);
      limit_failures_.fetch_add(1, std::memory_order_relaxed);
      return MapFailure(opt_.name, "dedicated mapping", size, err);
    }
    Entry* e = entries_[index].get();
    if (e->slots == nullptr) {
      // One slot, kept with the entry for as long as the pool lives.
      e->slots_map_bytes = 0;
      static_assert(std::is_trivially_copyable_v<Slot>);
      e->own_slot = std::make_unique<Slot>();
      std::memset(e->own_slot.get(), 0, sizeof(Slot));
      e->slots = e->own_slot.get();
    }
    e->bytes.store(size, std::memory_order_relaxed);
    e->base.store(static_cast<char*>(p), std::memory_order_release);
    if (dir_[index].load(std::memory_order_relaxed) == nullptr) {
      dir_[index].store(e, std::memory_order_release);
    }
    Slot* slot = e->slots;
    const uint32_t w = LoadWord(slot, std::memory_order_relaxed) | kLive;
    StoreWord(slot, w);
    StoreOwner(slot, owner);
    dedicated_.fetch_add(size, std::memory_order_relaxed);
    reserved_.fetch_add(size, std::memory_order_relaxed);
    AddMappedBytes(size);
    ++dedicated_segments_;
    segment->data = static_cast<char*>(p);
    segment->size = size;
    segment->token = MakeToken(MakeLink(index, 0), w >> 1);
  }
  if (opt_.prefault) {
    madvise_calls_.fetch_add(1, std::memory_order_relaxed);
    if (madvise(segment->data, size, MADV_POPULATE_WRITE) != 0 && errno != EINVAL) {
      const int err = errno;
      Release(*segment, owner).IgnoreError();
      *segment = Segment();
      limit_failures_.fetch_add(1, std::memory_order_relaxed);
      return MapFailure(opt_.name, "prefault", size, err);
    }
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Release

Status PoolCore::ReleaseSlow(const Segment& segment, uint32_t owner) {
  if (closed()) return Status::Closed("pool '" + opt_.name + "' is closed");
  Entry* e;
  Slot* s;
  uint32_t w;
  if (!Validate(segment, &e, &s, &w)) {
    if (((segment.token >> 52) & kTagMask) != tag_) {
      return Status::InvalidArgument("pool '" + opt_.name + "': segment of another pool");
    }
    return Status::InvalidArgument("pool '" + opt_.name +
                                   "': segment is not live (double release or stale handle)");
  }
  if (LoadOwner(s) != owner) {
    return Status::InvalidArgument(
        "pool '" + opt_.name + "': " +
        (owner == 0 ? "segment belongs to an arena; release it through the arena"
                    : "segment is not owned by this arena"));
  }
  if (e->dedicated) return ReleaseDedicated(segment, e, s, owner);

  const int c = LoadClass(s);
  ClassState& cs = classes_[c];
  const Link link = LinkOfToken(segment.token);
  if (c < magazine_classes_) {
    Magazine* m = MyMagazine();
    if (m != nullptr && m->bytes + cs.bytes <= magazine_bytes_) {
      // The generation moves on before anything else: a racing second
      // release of the same handle fails here.
      if (!CasWord(s, w, NextGenWord(w))) {
        return Status::InvalidArgument("pool '" + opt_.name + "': double release");
      }
      StoreOwner(s, 0);
      Poison(segment.data, segment.size);
      Magazine::Bin& bin = m->bins[c];
      bool flushed = false;
      if (bin.n.load(std::memory_order_relaxed) == bin_capacity_[c]) {
        MagazineFlushBin(m, c, (bin_capacity_[c] + 1) / 2);
        flushed = true;
      }
      const uint32_t n = bin.n.load(std::memory_order_relaxed);
      bin.items[n] = {NextGenToken(segment.token), segment.data, s};
      bin.n.store(n + 1, std::memory_order_relaxed);
      m->bytes += cs.bytes;
      if (flushed && RetainedBytes() > RetainLimit()) MaybeShrinkRetained();
      return Status::OK();
    }
  }
  // Poison and protect before the segment is visible on a free list: after
  // that another thread may take it and unpoison it.
  if (opt_.quarantine) mprotect(segment.data, segment.size, PROT_NONE);
  Poison(segment.data, segment.size);
  {
    SpinLockGuard l(&cs.mu);
    if (!CasWord(s, w, NextGenWord(w))) {
      return Status::InvalidArgument("pool '" + opt_.name + "': double release");
    }
    StoreOwner(s, 0);
    s->where = kRetained;
    PushFront(cs, &cs.retained_head, &cs.retained_tail, link);
    --cs.in_use;
    ++cs.retained;
    PublishRetained(cs);
    --e->chunk_in_use[GranuleOf(link) >> chunk_shift_];
  }
  if (RetainedBytes() > RetainLimit()) MaybeShrinkRetained();
  return Status::OK();
}

Status PoolCore::ReleaseDedicated(const Segment& segment, Entry* entry, Slot* slot,
                                  uint32_t owner) {
  port::MutexLock l(&mu_);
  const uint32_t w = LoadWord(slot, std::memory_order_relaxed);
  if ((w & kLive) == 0 || ((w >> 1) & kGenMask) != (segment.token & kGenMask) ||
      LoadOwner(slot) != owner) {
    return Status::InvalidArgument("pool '" + opt_.name + "': double release");
  }
  ReleaseDedicatedLocked(entry, slot);
  return Status::OK();
}

void PoolCore::ReleaseDedicatedLocked(Entry* entry, Slot* slot) {
  StoreWord(slot, NextGenWord(LoadWord(slot, std::memory_order_relaxed)));
  StoreOwner(slot, 0);
  const size_t size = entry->bytes.load(std::memory_order_relaxed);
  char* base = entry->base.load(std::memory_order_relaxed);
  entry->base.store(nullptr, std::memory_order_release);
  Unpoison(base, size);  // the address range may be reused by anyone
  munmap(base, size);
  munmap_calls_.fetch_add(1, std::memory_order_relaxed);
  dedicated_.fetch_sub(size, std::memory_order_relaxed);
  Uncommit(size);
  reserved_.fetch_sub(size, std::memory_order_relaxed);
  SubMappedBytes(size);
  --dedicated_segments_;
  free_dedicated_entries_.push_back(entry->index);
}

// One walk of the owner list does everything for the class of the first
// region segment (in practice most of an arena: its blocks, or a page
// cache's frames) under that class's lock, appending each segment to a chain
// that is spliced onto the retained list in O(1) at the end. Segments of
// other classes get their generation bump on the walk and the rest (list
// state, chunk count) under their own lock afterwards; dedicated mappings are
// chained through their owner links and released under mu_ last, since mu_
// comes before the class locks. Owner links are left as they are: they mean
// nothing in a free slot and LinkOwned() sets both on reuse.
void PoolCore::ReleaseOwnedList(Link head, bool recycle) {
  if (closed() || head == kNoLink) return;
  if (opt_.quarantine) ProtectOwnedList(head);
  OwnedChain chains[kMaxClasses] = {};
  const int primary = PrimaryClassOf(head);
  Link dedicated_head = kNoLink;
  {
    ClassState& pcs = classes_[primary];
    SpinLockGuard l(&pcs.mu);
    dedicated_head = FreeOwnedListLocked(pcs, head, primary, chains);
    if (chains[primary].n > 0) SpliceRetainedLocked(pcs, chains[primary]);
  }
  size_t total = chains[primary].n;
  size_t bytes = chains[primary].n * classes_[primary].bytes;
  for (int c = 0; c < total_classes_; ++c) {
    OwnedChain& ch = chains[c];
    if (c == primary || ch.n == 0) continue;
    total += ch.n;
    bytes += ch.n * classes_[c].bytes;
    ClassState& cs = classes_[c];
    SpinLockGuard l(&cs.mu);
    for (Link link = ch.head; link != kNoLink;) {
      Entry* e = EntryAt(EntryOf(link));
      Slot* s = e->slots + GranuleOf(link);
      s->where = kRetained;
      --e->chunk_in_use[GranuleOf(link) >> chunk_shift_];
      link = s->next;
    }
    SpliceRetainedLocked(cs, ch);
  }
  if (dedicated_head != kNoLink) ReleaseDedicatedChain(dedicated_head);
  if (recycle && bytes > 0) CreditRecycled(bytes);
  if (total > 0 && RetainedBytes() > RetainLimit()) MaybeShrinkRetained();
}

// Quarantine: every live region segment of the list is protected before the
// walk makes any of them free, so that no system call is made per segment
// under a spin lock.
void PoolCore::ProtectOwnedList(Link head) {
  for (Link link = head; link != kNoLink;) {
    Slot* s = SlotOf(link);
    Entry* e = EntryAt(EntryOf(link));
    if (!e->dedicated && (LoadWord(s, std::memory_order_relaxed) & kLive)) {
      mprotect(e->base.load(std::memory_order_relaxed) +
                   (static_cast<size_t>(GranuleOf(link)) << min_shift_),
               classes_[LoadClass(s)].bytes, PROT_NONE);
    }
    link = s->owner_next;
  }
}

// The class of the list's first region segment (0 when there is none; its
// lock is then taken for nothing).
int PoolCore::PrimaryClassOf(Link head) {
  for (Link link = head; link != kNoLink;) {
    Slot* s = SlotOf(link);
    if (!EntryAt(EntryOf(link))->dedicated) return LoadClass(s);
    link = s->owner_next;
  }
  return 0;
}

// The walk: each live region segment gets its generation bump and goes on
// its class's chain (those of `primary` also leave the in-use count of their
// chunk); dedicated ones are chained through their owner links, returned.
// The directory entry, its slot table, base and chunk counts are looked up
// once per run of segments of one region, not per segment.
Link PoolCore::FreeOwnedListLocked(ClassState& pcs, Link head, int primary, OwnedChain* chains) {
  (void)pcs;  // held: the primary class's lock
  auto append = [](OwnedChain& ch, Link link, Slot* s) {
    s->prev = ch.tail;
    if (ch.tail_slot != nullptr) {
      ch.tail_slot->next = link;
    } else {
      ch.head = link;
    }
    ch.tail = link;
    ch.tail_slot = s;
    ++ch.n;
  };
  Link dedicated_head = kNoLink;
  uint32_t cur = kMaxEntries;  // no entry
  Entry* e = nullptr;
  Slot* slots = nullptr;
  char* base = nullptr;
  uint32_t* chunk_in_use = nullptr;
  for (Link link = head; link != kNoLink;) {
    const uint32_t index = EntryOf(link);
    if (index != cur) {
      cur = index;
      e = EntryAt(index);
      slots = e->slots;
      base = e->base.load(std::memory_order_relaxed);
      chunk_in_use = e->chunk_in_use.data();
    }
    const uint32_t g = GranuleOf(link);
    Slot* s = slots + g;
    const Link next = s->owner_next;
    if (e->dedicated) {
      s->owner_next = dedicated_head;
      dedicated_head = link;
      link = next;
      continue;
    }
    const uint32_t w = LoadWord(s, std::memory_order_relaxed);
    if (w & kLive) {
      const int c = LoadClass(s);
      Poison(base + (static_cast<size_t>(g) << min_shift_), classes_[c].bytes);
      StoreWord(s, NextGenWord(w));
      StoreOwner(s, 0);
      if (c == primary) {
        s->where = kRetained;
        --chunk_in_use[g >> chunk_shift_];
      }
      append(chains[c], link, s);
    }
    link = next;
  }
  return dedicated_head;
}

// Puts a chain at the head of its class's retained list.
void PoolCore::SpliceRetainedLocked(ClassState& cs, const OwnedChain& ch) {
  ch.tail_slot->next = cs.retained_head;
  if (cs.retained_head != kNoLink) {
    SlotOf(cs.retained_head)->prev = ch.tail;
  } else {
    cs.retained_tail = ch.tail;
  }
  cs.retained_head = ch.head;
  cs.in_use -= ch.n;
  cs.retained += ch.n;
  PublishRetained(cs);
}

void PoolCore::ReleaseDedicatedChain(Link head) {
  port::MutexLock l(&mu_);
  for (Link link = head; link != kNoLink;) {
    Slot* s = SlotOf(link);
    const Link next = s->owner_next;
    if (LoadWord(s, std::memory_order_relaxed) & kLive) {
      ReleaseDedicatedLocked(EntryAt(EntryOf(link)), s);
    }
    link = next;
  }
}

// ---------------------------------------------------------------------------
// Spilling

Segment PoolCore::SegmentOfLink(Link link, bool* dedicated) const {
  Entry* e = EntryAt(EntryOf(link));
  Slot* s = e->slots + GranuleOf(link);
  *dedicated = e->dedicated;
  Segment seg;
  seg.data = e->dedicated ? e->base.load(std::memory_order_acquire) : SegmentAddress(link);
  seg.size = e->dedicated ? e->bytes.load(std::memory_order_relaxed) : classes_[LoadClass(s)].bytes;
  seg.token = MakeToken(link, (LoadWord(s) >> 1) & kGenMask);
  return seg;
}

Status PoolCore::SpillSegment(const Segment& segment, uint32_t owner, SpillSink* sink,
                              uint64_t* offset) {
  Status s = Check(segment, owner, /*check_owner=*/true);
  if (!s.ok()) return s;
  if (EntryAt(EntryOf(LinkOfToken(segment.token)))->dedicated) {
    return Status::InvalidArgument("pool '" + opt_.name + "': a dedicated mapping is not spilled");
  }
  // The copy includes the arena's unused (poisoned) parts.
  PoisonedRanges poisoned(segment.data, segment.size);
  s = sink->Store(segment.data, segment.size, offset);
  if (!s.ok()) return s;
  {
    IgnoreWritesForTsan same_bytes;
    s = sink->MapOver(segment.data, segment.size, *offset);
  }
  if (!s.ok()) {
    sink->Drop(*offset, segment.size);
    return s;
  }
  mmap_calls_.fetch_add(1, std::memory_order_relaxed);
  spilled_.fetch_add(segment.size, std::memory_order_relaxed);
  Uncommit(segment.size);
  return Status::OK();
}

Status PoolCore::ReleaseSpilled(const Segment& segment, uint32_t owner) {
  if (closed()) return Status::Closed("pool '" + opt_.name + "' is closed");
  Entry* e;
  Slot* s;
  uint32_t w;
  if (!Validate(segment, &e, &s, &w) || LoadOwner(s) != owner || e->dedicated) {
    return Status::InvalidArgument("pool '" + opt_.name + "': not a live spilled segment");
  }
  // Fresh zero pages, committed only when touched: the state of a free
  // segment whose pages went back to the OS.
  void* p = mmap(segment.data, segment.size, opt_.quarantine ? PROT_NONE : PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
  mmap_calls_.fetch_add(1, std::memory_order_relaxed);
  if (p == MAP_FAILED) {
    // Left live and owned: the address range is lost until the pool closes.
    return MapFailure(opt_.name, "remap of a spilled segment", segment.size, errno);
  }
  Poison(segment.data, segment.size);
  spilled_.fetch_sub(segment.size, std::memory_order_relaxed);
  const Link link = LinkOfToken(segment.token);
  ClassState& cs = classes_[LoadClass(s)];
  SpinLockGuard l(&cs.mu);
  if (!CasWord(s, w, NextGenWord(w))) {
    return Status::InvalidArgument("pool '" + opt_.name + "': double release");
  }
  StoreOwner(s, 0);
  s->where = kReleased;
  PushFront(cs, &cs.released_head, nullptr, link);
  --cs.in_use;
  ++cs.released;
  --e->chunk_in_use[GranuleOf(link) >> chunk_shift_];
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Giving memory back

size_t PoolCore::ReturnPages(char* p, size_t n) {
  madvise_calls_.fetch_add(1, std::memory_order_relaxed);
  if (opt_.use_madv_free) {
    if (madvise(p, n, MADV_FREE) == 0) return n;
    madvise_calls_.fetch_add(1, std::memory_order_relaxed);
  }
  madvise(p, n, MADV_DONTNEED);
  return n;
}

void PoolCore::MaybeShrinkRetained() {
  // One trimmer at a time; the others carry on (the bound is rechecked on
  // the next release).
  if (!mu_.TryLock()) return;
  if (RetainedBytes() > RetainLimit()) {
    // Whole free regions go first, with one munmap each: when an arena as big
    // as a page cache closes, that returns everything without touching the
    // pages one madvise range at a time.
    UnmapFreeRegionsLocked();
    // Trim an eighth of the reserve below the bound so the next batch is not
    // one release away.
    if (RetainedBytes() > RetainLimit()) {
      ShrinkRetainedLocked(RetainLimit() - opt_.retain_bytes / 8);
    }
  }
  mu_.Unlock();
}

void PoolCore::ShrinkRetainedLocked(size_t target) {
  const size_t cur = RetainedBytes();
  if (cur <= target) return;
  const size_t need = cur - target;
  struct Victim {
    int c;
    char* data;
    Link link;
  };
  std::vector<Victim> victims;
  size_t got = 0;
  // Largest classes first (fewest calls per byte); within a class the tail of
  // the retained list, i.e. the segment released longest ago.
  for (int c = total_classes_ - 1; c >= 0 && got < need; --c) {
    ClassState& cs = classes_[c];
    SpinLockGuard l(&cs.mu);
    while (got < need && cs.retained_tail != kNoLink) {
      const Link link = cs.retained_tail;
      Unlink(cs, &cs.retained_head, &cs.retained_tail, link);
      SlotOf(link)->where = kInTransit;
      --cs.retained;
      got += cs.bytes;
      victims.push_back({c, SegmentAddress(link), link});
    }
    PublishRetained(cs);
  }
  if (victims.empty()) return;
  std::sort(victims.begin(), victims.end(), [](const Victim& a, const Victim& b) {
    return a.c != b.c ? a.c < b.c : a.data < b.data;
  });
  // Adjacent segments go back in one call.
  for (size_t i = 0; i < victims.size();) {
    const size_t bytes = classes_[victims[i].c].bytes;
    char* start = victims[i].data;
    char* end = start + bytes;
    size_t j = i + 1;
    while (j < victims.size() && victims[j].c == victims[i].c && victims[j].data == end) {
      end += bytes;
      ++j;
    }
    ReturnPages(start, end - start);
    i = j;
  }
  Uncommit(got);
  for (size_t i = 0; i < victims.size();) {
    const int c = victims[i].c;
    ClassState& cs = classes_[c];
    SpinLockGuard l(&cs.mu);
    for (; i < victims.size() && victims[i].c == c; ++i) {
      SlotOf(victims[i].link)->where = kReleased;
      PushFront(cs, &cs.released_head, nullptr, victims[i].link);
      ++cs.released;
    }
  }
  ClampRecycled(RetainedBytes());  // a trim leaves no more than is retained
}

size_t PoolCore::RetainedBytes() const {
  size_t total = 0;
  for (int c = 0; c < total_classes_; ++c) {
    total += classes_[c].retained_bytes.load(std::memory_order_relaxed);
  }
  return total;
}

void PoolCore::LockAllClasses() const NO_THREAD_SAFETY_ANALYSIS {
  for (int c = 0; c < total_classes_; ++c) classes_[c].mu.Lock();
}

void PoolCore::UnlockAllClasses() const NO_THREAD_SAFETY_ANALYSIS {
  for (int c = total_classes_; c-- > 0;) classes_[c].mu.Unlock();
}

void PoolCore::UnmapFreeRegionsLocked() {
  // Every class lock: a region is free only if no chunk of any class in it
  // has a segment in use, and none may be taken while it is unmapped.
  LockAllClasses();
  size_t freed_retained = 0;
  for (uint32_t index = 0; index < entries_.size(); ++index) {
    Entry* e = entries_[index].get();
    char* base = e->base.load(std::memory_order_relaxed);
    if (e->dedicated || base == nullptr) continue;
    bool free = true;
    for (size_t ch = 0; ch < e->next_chunk && free; ++ch) {
      classes_[e->chunk_class[ch]].mu.AssertHeld();
      free = e->chunk_in_use[ch] == 0;
    }
    if (!free) continue;
    for (size_t ch = 0; ch < e->next_chunk; ++ch) {
      ClassState& cs = classes_[e->chunk_class[ch]];
      cs.mu.AssertHeld();
      const size_t stride = cs.bytes >> min_shift_;
      for (size_t g = ch * granules_per_chunk_; g < (ch + 1) * granules_per_chunk_; g += stride) {
        const Link link = MakeLink(index, static_cast<uint32_t>(g));
        Slot* s = e->slots + g;
        if (s->where == kRetained) {
          Unlink(cs, &cs.retained_head, &cs.retained_tail, link);
          --cs.retained;
          PublishRetained(cs);
          freed_retained += cs.bytes;
        } else if (s->where == kReleased) {
          Unlink(cs, &cs.released_head, nullptr, link);
          --cs.released;
        }
        s->where = kInUse;
      }
      --class_chunks_[e->chunk_class[ch]];
      e->chunk_class[ch] = -1;
    }
    e->next_chunk = 0;
    for (int c = 0; c < total_classes_; ++c) {
      ClassState& cs = classes_[c];
      cs.mu.AssertHeld();
      if (cs.carve_left > 0 && cs.carve_entry == index) cs.carve_left = 0;
    }
    e->base.store(nullptr, std::memory_order_release);
    Unpoison(base, opt_.region_bytes);  // the address range may be reused by anyone
    munmap(base, opt_.region_bytes);
    munmap_calls_.fetch_add(1, std::memory_order_relaxed);
    reserved_.fetch_sub(opt_.region_bytes, std::memory_order_relaxed);
    SubMappedBytes(opt_.region_bytes);
    regions_with_space_.erase(
        std::remove(regions_with_space_.begin(), regions_with_space_.end(), index),
        regions_with_space_.end());
    free_region_entries_.push_back(index);
  }
  UnlockAllClasses();
  if (freed_retained > 0) Uncommit(freed_retained);
  ClampRecycled(RetainedBytes());  // a trim leaves no more than is retained
}

void PoolCore::Trim() {
  FlushMyMagazine();
  port::MutexLock l(&mu_);
  if (closed()) return;
  ShrinkRetainedLocked(0);
  UnmapFreeRegionsLocked();
}

void PoolCore::SetReclaim(SegmentPool::ReclaimFn fn) {
  port::MutexLock l(&mu_);
  reclaim_ = std::move(fn);
}

// ---------------------------------------------------------------------------
// Close

bool PoolCore::closing() const {
  port::MutexLock l(&tree_mu);
  return closing_;
}

void PoolCore::UnmapAllLocked() {
  LockAllClasses();
  for (uint32_t index = 0; index < entries_.size(); ++index) {
    Entry* e = entries_[index].get();
    char* base = e->base.load(std::memory_order_relaxed);
    if (base == nullptr) continue;
    const size_t n = e->bytes.load(std::memory_order_relaxed);
    e->base.store(nullptr, std::memory_order_release);
    Unpoison(base, n);  // the address range may be reused by anyone
    if (!e->dedicated) {
      for (size_t ch = 0; ch < e->next_chunk; ++ch) --class_chunks_[e->chunk_class[ch]];
      e->next_chunk = 0;
      std::fill(e->chunk_class.begin(), e->chunk_class.end(), -1);
      std::fill(e->chunk_in_use.begin(), e->chunk_in_use.end(), 0);
    } else {
      Slot* s = e->slots;
      StoreWord(s, NextGenWord(LoadWord(s, std::memory_order_relaxed)));
    }
    munmap(base, n);
    munmap_calls_.fetch_add(1, std::memory_order_relaxed);
    SubMappedBytes(n);
  }
  for (int c = 0; c < total_classes_; ++c) {
    ClassState& cs = classes_[c];
    cs.mu.AssertHeld();
    cs.retained_head = cs.retained_tail = cs.released_head = kNoLink;
    cs.in_use = cs.retained = cs.released = 0;
    cs.carve_left = 0;
    PublishRetained(cs);
  }
  UnlockAllClasses();
  regions_with_space_.clear();
  dedicated_segments_ = 0;
  Uncommit(committed_.load(std::memory_order_relaxed));
  dedicated_.store(0, std::memory_order_relaxed);
  reserved_.store(0, std::memory_order_relaxed);
}

Status PoolCore::Close() {
  std::string report;
  {
    port::MutexLock t(&tree_mu);
    if (closing_) return Status::OK();
    closing_ = true;
    report = LeakReportLocked();
    // Invalidate first, unmap second: every arena is closed (and so unusable)
    // before any of its memory goes away.
    while (roots != nullptr) CloseArenaLocked(this, roots);
  }
  size_t segments = 0;
  size_t bytes = 0;
  FlushMyMagazine();
  {
    port::MutexLock ml(MagazineMutex());
    for (int c = 0; c < total_classes_; ++c) {
      const size_t cached = CachedSegmentsLocked(c);
      SpinLockGuard l(&classes_[c].mu);
      const size_t n = classes_[c].in_use > cached ? classes_[c].in_use - cached : 0;
      segments += n;
      bytes += n * classes_[c].bytes;
    }
  }
  {
    port::MutexLock l(&mu_);
    segments += dedicated_segments_;
    bytes += dedicated_.load(std::memory_order_relaxed);
    closed_.store(true, std::memory_order_release);
    UnmapAllLocked();
  }
  if (segments > 0) {
    if (!report.empty()) report += "; ";
    report += "pool '" + opt_.name + "' closed with " + std::to_string(segments) + " segment(s) (" +
              FormatBytes(bytes) + ") still in use";
  }
  UnregisterPool(this);
  if (!report.empty()) {
    std::fprintf(stderr, "arenakv: leak report: %s\n", report.c_str());
    return Status::InvalidArgument(report);
  }
  return Status::OK();
}

}  // namespace internal

// ---------------------------------------------------------------------------
// SegmentPool: the public face.

SegmentPool::SegmentPool(const PoolOptions& options)
    : options_(options), impl_(new (options.object_heap) Impl(options)) {
  impl_->facade = this;
}

SegmentPool::~SegmentPool() { impl_->Close().IgnoreError(); }

Status SegmentPool::Create(const PoolOptions& options, std::shared_ptr<SegmentPool>* pool) {
  pool->reset();
  // The pool and its reference count in the object heap, when it has one.
  std::shared_ptr<SegmentPool> p(
      new (options.object_heap) SegmentPool(options), std::default_delete<SegmentPool>(),
      std::pmr::polymorphic_allocator<SegmentPool>(ResourceOf(options.object_heap)));
  Status s = p->impl_->Init();
  if (!s.ok()) return s;
  *pool = std::move(p);
  return Status::OK();
}

bool SegmentPool::TryAllocateFast(size_t bytes, Segment* segment) {
  return impl_->TryAllocateFromMagazine(bytes, 0, segment);
}

bool SegmentPool::TryReleaseFast(const Segment& segment) {
  return impl_->TryReleaseToMagazine(segment, 0);
}

Status SegmentPool::AllocateSlow(size_t bytes, Segment* segment) {
  return impl_->AllocateSlow(bytes, 0, segment, false);
}

Status SegmentPool::ReleaseSlow(const Segment& segment) { return impl_->ReleaseSlow(segment, 0); }

Status SegmentPool::Check(const Segment& segment) const { return impl_->Check(segment, 0, false); }

size_t SegmentPool::ClassFor(size_t bytes) const { return impl_->ClassFor(bytes); }

void SegmentPool::SetReclaimCallback(ReclaimFn fn) { impl_->SetReclaim(std::move(fn)); }

void SegmentPool::Trim() { impl_->Trim(); }

void SegmentPool::SetRecycleBytes(size_t bytes) { impl_->SetRecycleBytes(bytes); }

void SegmentPool::ReleaseThreadCache() { impl_->ReleaseThreadCache(); }

Status SegmentPool::Charge(size_t bytes) { return impl_->Charge(bytes); }
Status SegmentPool::ChargeIfRoom(size_t bytes) { return impl_->ChargeIfRoom(bytes); }

void SegmentPool::Uncharge(size_t bytes) { impl_->Uncharge(bytes); }

Status SegmentPool::Close() { return impl_->Close(); }

bool SegmentPool::closed() const { return impl_->closed(); }

PoolStats SegmentPool::Stats() const { return impl_->Stats(); }

std::string SegmentPool::Report() const { return impl_->Report(); }

std::string SegmentPool::LeakReport() const { return impl_->LeakReport(); }

}  // namespace arenakv::alloc
