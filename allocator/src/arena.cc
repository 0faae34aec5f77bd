// Arena: bump allocation and whole segments from a SegmentPool, nested
// lifetimes, and a std::pmr::memory_resource face.

#include "arenakv/alloc/arena.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <thread>

#include "pool_core.h"
#include "sanitizer.h"

namespace arenakv::alloc {
namespace internal {
namespace {

// Locks a kShared arena's mutex; a kConfined arena is used by one thread at a
// time, so its bookkeeping needs no lock. Declared as acquiring `mu` either
// way, so the analysis checks every access as "locked, or confined".
class SCOPED_CAPABILITY ArenaLock {
 public:
  explicit ArenaLock(ArenaCore* a) ACQUIRE(a->mu) NO_THREAD_SAFETY_ANALYSIS
      : mu_(a->shared ? &a->mu : nullptr) {
    if (mu_ != nullptr) mu_->Lock();
  }
  ~ArenaLock() RELEASE() NO_THREAD_SAFETY_ANALYSIS {
    if (mu_ != nullptr) mu_->Unlock();
  }
  ArenaLock(const ArenaLock&) = delete;
  ArenaLock& operator=(const ArenaLock&) = delete;

 private:
  port::Mutex* const mu_;
};

// Counters are written only by the owner (or under mu) and read by Stats()
// from anywhere: relaxed load + store, no read-modify-write on the hot path.
void Add(std::atomic<size_t>& c, size_t d) {
  c.store(c.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
}
void Sub(std::atomic<size_t>& c, size_t d) {
  c.store(c.load(std::memory_order_relaxed) - d, std::memory_order_relaxed);
}

void CheckOwnerThread(ArenaCore* a) {
#if defined(ARENAKV_CHECKED)
  if (a->shared) return;
  const std::thread::id me = std::this_thread::get_id();
  std::thread::id cur = a->owner_thread.load(std::memory_order_relaxed);
  if (cur == me) return;
  if (cur == std::thread::id() &&
      a->owner_thread.compare_exchange_strong(cur, me, std::memory_order_relaxed)) {
    return;
  }
  std::fprintf(stderr, "arenakv: confined arena '%s' used by a second thread without HandOff()\n",
               a->options.name.c_str());
  std::abort();
#else
  (void)a;
#endif
}

Status ClosedError(const ArenaCore* a) {
  return Status::Closed("arena '" + a->options.name + "' is closed");
}

void LinkOwned(ArenaCore* a, Link link) REQUIRES(a->mu) {
  Slot* s = a->pool->SlotOf(link);
  s->owner_prev = kNoLink;
  s->owner_next = a->owned_head;
  if (a->owned_head != kNoLink) a->pool->SlotOf(a->owned_head)->owner_prev = link;
  a->owned_head = link;
}

void UnlinkOwned(ArenaCore* a, Link link) REQUIRES(a->mu) {
  Slot* s = a->pool->SlotOf(link);
  if (s->owner_prev != kNoLink) {
    a->pool->SlotOf(s->owner_prev)->owner_next = s->owner_next;
  } else {
    a->owned_head = s->owner_next;
  }
  if (s->owner_next != kNoLink) a->pool->SlotOf(s->owner_next)->owner_prev = s->owner_prev;
  s->owner_prev = s->owner_next = kNoLink;
}

// Takes a segment for `a`. The arena lock is not held while the pool works:
// the pool may call the reclaim callback, which may release segments of this
// very arena.
// The size of the next bump block for a request of `need` bytes: the
// arena's growing block size, or more when the request needs it. Racing
// callers may both take one size; the sequence still only grows.
size_t NextBlockBytes(ArenaCore* a, size_t need) {
  const size_t most = a->options.block_bytes;
  size_t b = a->next_block.load(std::memory_order_relaxed);
  if (b == 0) {
    b = a->options.first_block_bytes != 0 ? std::min(a->options.first_block_bytes, most) : most;
  }
  a->next_block.store(std::min(b * 2, most), std::memory_order_relaxed);
  return std::max(b, need);
}

Status AllocateSegmentFor(ArenaCore* a, size_t bytes, Segment* segment) {
  const size_t size = a->pool->SegmentBytesFor(bytes);
  {
    ArenaLock l(a);
    if (a->closed.load(std::memory_order_relaxed)) return ClosedError(a);
    const size_t have = a->bytes.load(std::memory_order_relaxed);
    if (size > a->options.limit_bytes || have > a->options.limit_bytes - size) {
      return Status::MemoryLimit("arena '" + a->options.name + "': limit of " +
                                 FormatBytes(a->options.limit_bytes) + " reached (holding " +
                                 FormatBytes(have) + ", requested " + FormatBytes(size) + ")");
    }
    Add(a->bytes, size);  // held against the limit while the pool works
  }
  Segment s;
  Status st = a->pool->Allocate(bytes, a->id, &s, a->options.huge_pages);
  ArenaLock l(a);
  if (!st.ok()) {
    Sub(a->bytes, size);
    return st;
  }
  if (a->closed.load(std::memory_order_relaxed)) {
    Sub(a->bytes, size);
    a->pool->Release(s, a->id).IgnoreError();
    return ClosedError(a);
  }
  LinkOwned(a, PoolCore::LinkOfToken(s.token));
  Add(a->segments, 1);
  *segment = s;
  return Status::OK();
}

// Makes `block` the one bump allocation carves from (the rest of the old one
// is abandoned). Blocks are poisoned as a whole and unpoisoned object by
// object, so ASan sees overruns past an object into the unused rest.
void InstallBlock(ArenaCore* a, const Segment& block) REQUIRES(a->mu) {
  Poison(block.data, block.size);
  a->bump->cur = block.data;
  a->bump->end = block.data + block.size;
}

bool TryBump(ArenaCore* a, size_t bytes, size_t align, void** out) REQUIRES(a->mu) {
  BumpWindow* w = a->bump;
  if (w->cur == nullptr) return false;
  const uintptr_t p = (reinterpret_cast<uintptr_t>(w->cur) + align - 1) & ~(align - 1);
  const uintptr_t end = reinterpret_cast<uintptr_t>(w->end);
  if (p > end || bytes > end - p) return false;
  w->cur = reinterpret_cast<char*>(p + bytes);
  Add(w->used, bytes);
  Unpoison(reinterpret_cast<void*>(p), bytes);
  *out = reinterpret_cast<void*>(p);
  return true;
}

}  // namespace

void CloseArenaLocked(PoolCore* pool, ArenaCore* a) {
  pool->tree_mu.AssertHeld();
  if (a->closed.load(std::memory_order_acquire)) return;
  // Children first; closing detaches them (a child destroyed later finds no
  // parent to deregister from).
  while (ArenaCore* c = a->first_child) {
    CloseArenaLocked(pool, c);
    a->first_child = c->next;
    if (c->next != nullptr) c->next->prev = nullptr;
    c->parent = c->prev = c->next = nullptr;
    --a->children;
  }
  Link head;
  std::vector<ArenaCore::Spilled> spilled;
  std::shared_ptr<SpillSink> sink;
  {
    ArenaLock l(a);
    a->closed.store(true, std::memory_order_release);
    head = a->owned_head;
    a->owned_head = kNoLink;
    spilled.swap(a->spilled);
    sink = std::move(a->sink);
    a->bump->cur = a->bump->end = nullptr;
    a->bytes.store(0, std::memory_order_relaxed);
    a->spilled_bytes.store(0, std::memory_order_relaxed);
    a->bump->used.store(0, std::memory_order_relaxed);
    a->segments.store(0, std::memory_order_relaxed);
  }
  pool->ReleaseOwnedList(head, a->options.recycle);
  for (const ArenaCore::Spilled& sp : spilled) {
    if (pool->ReleaseSpilled(sp.segment, a->id).ok()) sink->Drop(sp.offset, sp.segment.size);
  }
  if (a->in_roots) {
    if (a->prev != nullptr) {
      a->prev->next = a->next;
    } else {
      pool->roots = a->next;
    }
    if (a->next != nullptr) a->next->prev = a->prev;
    a->prev = a->next = nullptr;
    a->in_roots = false;
  }
  --pool->open_arenas;
}

}  // namespace internal

using internal::ArenaCore;
using internal::ArenaLock;

Arena::Arena(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  impl_->bump = &bump_;
  // Checked and ASan builds keep every allocation out of line: the owner
  // check and per-object unpoisoning live there.
#if defined(ARENAKV_CHECKED) || defined(ARENAKV_ASAN)
  bump_.inline_ok = false;
#else
  bump_.inline_ok = !impl_->shared;
#endif
}

Arena::~Arena() {
  ArenaCore* a = impl_.get();
  internal::PoolCore* pool = a->pool;
  port::MutexLock l(&pool->tree_mu);
  internal::CloseArenaLocked(pool, a);
  if (ArenaCore* p = a->parent) {
    if (a->prev != nullptr) {
      a->prev->next = a->next;
    } else {
      p->first_child = a->next;
    }
    if (a->next != nullptr) a->next->prev = a->prev;
    --p->children;
    a->parent = a->prev = a->next = nullptr;
  }
}

static Status CheckOptions(const ArenaOptions& options) {
  if (options.block_bytes == 0) {
    return Status::InvalidArgument("arena '" + options.name + "': block_bytes must be > 0");
  }
  return Status::OK();
}

Status Arena::Create(std::shared_ptr<SegmentPool> pool, const ArenaOptions& options,
                     std::unique_ptr<Arena>* arena) {
  arena->reset();
  if (pool == nullptr) return Status::InvalidArgument("arena '" + options.name + "': no pool");
  Status s = CheckOptions(options);
  if (!s.ok()) return s;
  internal::PoolCore* core = pool->impl_.get();
  ObjectHeap* heap = pool->object_heap();
  auto impl = std::unique_ptr<Impl>(new (heap) Impl());
  impl->pool = core;
  impl->pool_ref = std::move(pool);
  impl->options = options;
  impl->id = core->NewArenaId();
  impl->shared = options.kind == ArenaKind::kShared;
  // The Arena object exists before the tree can see the arena: a pool Close()
  // reaches its bump window through it. Until linked it counts as closed, so
  // destroying it on failure (after the lock below is released) touches
  // nothing.
  ArenaCore* core_arena = impl.get();
  core_arena->closed.store(true, std::memory_order_relaxed);
  std::unique_ptr<Arena> made(new (heap) Arena(std::move(impl)));
  {
    port::MutexLock l(&core->tree_mu);
    if (core->closing_) {
      return Status::Closed("pool '" + core->options().name + "' is closed");
    }
    core_arena->closed.store(false, std::memory_order_relaxed);
    core_arena->in_roots = true;
    core_arena->next = core->roots;
    if (core->roots != nullptr) core->roots->prev = core_arena;
    core->roots = core_arena;
    ++core->open_arenas;
  }
  *arena = std::move(made);
  return Status::OK();
}

Status Arena::NewChild(const ArenaOptions& options, std::unique_ptr<Arena>* child) {
  child->reset();
  Status s = CheckOptions(options);
  if (!s.ok()) return s;
  ArenaCore* a = impl_.get();
  ObjectHeap* heap = a->pool_ref->object_heap();
  auto impl = std::unique_ptr<Impl>(new (heap) Impl());
  impl->pool = a->pool;
  impl->pool_ref = a->pool_ref;
  impl->options = options;
  impl->id = a->pool->NewArenaId();
  impl->shared = options.kind == ArenaKind::kShared;
  // As in Create(): made first, closed until linked.
  ArenaCore* core_child = impl.get();
  core_child->closed.store(true, std::memory_order_relaxed);
  std::unique_ptr<Arena> made(new (heap) Arena(std::move(impl)));
  {
    port::MutexLock l(&a->pool->tree_mu);
    if (a->closed.load(std::memory_order_acquire) || a->pool->closing_) {
      return internal::ClosedError(a);
    }
    core_child->closed.store(false, std::memory_order_relaxed);
    core_child->parent = a;
    core_child->next = a->first_child;
    if (a->first_child != nullptr) a->first_child->prev = core_child;
    a->first_child = core_child;
    ++a->children;
    ++a->pool->open_arenas;
  }
  *child = std::move(made);
  return Status::OK();
}

Status Arena::AllocateSlow(size_t bytes, size_t align, void** out) {
  ArenaCore* a = impl_.get();
  *out = nullptr;
  if (bytes == 0) bytes = 1;
  internal::CheckOwnerThread(a);
  if ((align & (align - 1)) == 0 && align - 1 < 4096) {
    // The hot path: a power-of-two alignment up to a page, room in the block.
    ArenaLock l(a);
    if (a->closed.load(std::memory_order_relaxed)) return internal::ClosedError(a);
    if (internal::TryBump(a, bytes, align, out)) return Status::OK();
  } else if (align == 0 || (align & (align - 1)) != 0 ||
             align > a->pool->options().max_class_bytes) {
    return Status::InvalidArgument("arena '" + a->options.name + "': bad alignment");
  }
  if (bytes > a->options.block_bytes / 4 || align > 4096) {
    // Large objects get a segment of their own (segments are aligned to their
    // size class, so a large alignment is a large enough segment).
    Segment seg;
    Status s = internal::AllocateSegmentFor(a, bytes < align ? align : bytes, &seg);
    if (!s.ok()) return s;
    ArenaLock l(a);
    internal::Add(a->bump->used, bytes);
    *out = seg.data;
    return Status::OK();
  }
  Segment block;
  Status s = internal::AllocateSegmentFor(a, internal::NextBlockBytes(a, bytes + align), &block);
  if (!s.ok()) return s;
  ArenaLock l(a);
  if (a->closed.load(std::memory_order_relaxed)) return internal::ClosedError(a);
  internal::InstallBlock(a, block);
  if (!internal::TryBump(a, bytes, align, out)) {
    return Status::InvalidArgument("arena '" + a->options.name + "': object larger than block");
  }
  return Status::OK();
}

Status Arena::Reserve(size_t bytes) {
  ArenaCore* a = impl_.get();
  internal::CheckOwnerThread(a);
  {
    ArenaLock l(a);
    if (a->closed.load(std::memory_order_relaxed)) return internal::ClosedError(a);
    const internal::BumpWindow* w = a->bump;
    if (w->cur != nullptr && static_cast<size_t>(w->end - w->cur) >= bytes) return Status::OK();
  }
  Segment block;
  Status s = internal::AllocateSegmentFor(a, internal::NextBlockBytes(a, bytes), &block);
  if (!s.ok()) return s;
  ArenaLock l(a);
  if (a->closed.load(std::memory_order_relaxed)) return internal::ClosedError(a);
  internal::InstallBlock(a, block);
  return Status::OK();
}

Status Arena::AllocateSegment(size_t bytes, Segment* segment) {
  ArenaCore* a = impl_.get();
  *segment = Segment();
  if (bytes == 0) return Status::InvalidArgument("arena '" + a->options.name + "': 0 bytes");
  internal::CheckOwnerThread(a);
  return internal::AllocateSegmentFor(a, bytes, segment);
}

Status Arena::ReleaseSegment(const Segment& segment) {
  ArenaCore* a = impl_.get();
  internal::CheckOwnerThread(a);
  ArenaLock l(a);
  if (a->closed.load(std::memory_order_relaxed)) return internal::ClosedError(a);
  for (auto it = a->spilled.begin(); it != a->spilled.end(); ++it) {
    if (it->segment.token != segment.token) continue;
    const ArenaCore::Spilled sp = *it;
    Status s = a->pool->ReleaseSpilled(sp.segment, a->id);
    if (!s.ok()) return s;
    a->spilled.erase(it);
    a->sink->Drop(sp.offset, sp.segment.size);
    internal::Sub(a->spilled_bytes, sp.segment.size);
    internal::Sub(a->segments, 1);
    return Status::OK();
  }
  Status s = a->pool->Check(segment, a->id, true);
  if (!s.ok()) {
    if (a->pool->closed()) return s;
    return Status::InvalidArgument("arena '" + a->options.name +
                                   "' does not own this segment (released already, or another "
                                   "arena's)");
  }
  internal::UnlinkOwned(a, internal::PoolCore::LinkOfToken(segment.token));
  s = a->pool->Release(segment, a->id);
  if (!s.ok()) return s;
  internal::Sub(a->bytes, segment.size);
  internal::Sub(a->segments, 1);
  return Status::OK();
}

Status Arena::Check(const Segment& segment) const {
  const ArenaCore* a = impl_.get();
  if (a->closed.load(std::memory_order_acquire)) return internal::ClosedError(a);
  return a->pool->Check(segment, a->id, true);
}

Status Arena::Spill(const std::shared_ptr<SpillSink>& sink) {
  ArenaCore* a = impl_.get();
  internal::CheckOwnerThread(a);
  if (sink == nullptr) return Status::InvalidArgument("arena '" + a->options.name + "': no sink");
  ArenaLock l(a);
  if (a->closed.load(std::memory_order_relaxed)) return internal::ClosedError(a);
  if (a->sink != nullptr && a->sink != sink) {
    return Status::InvalidArgument("arena '" + a->options.name + "' spills to another sink");
  }
  a->sink = sink;
  // The block becomes read-only: bump allocation must not carve from it.
  a->bump->cur = a->bump->end = nullptr;
  std::vector<Segment> segments;
  for (internal::Link link = a->owned_head; link != internal::kNoLink;
       link = a->pool->SlotOf(link)->owner_next) {
    bool dedicated;
    Segment seg = a->pool->SegmentOfLink(link, &dedicated);
    if (!dedicated) segments.push_back(seg);
  }
  // In address order, so that neighbours in memory are neighbours in the
  // sink too and their mappings merge into one.
  std::sort(segments.begin(), segments.end(),
            [](const Segment& x, const Segment& y) { return x.data < y.data; });
  for (const Segment& seg : segments) {
    uint64_t offset;
    Status s = a->pool->SpillSegment(seg, a->id, sink.get(), &offset);
    if (!s.ok()) return s;
    internal::UnlinkOwned(a, internal::PoolCore::LinkOfToken(seg.token));
    a->spilled.push_back({seg, offset});
    internal::Sub(a->bytes, seg.size);
    internal::Add(a->spilled_bytes, seg.size);
  }
  return Status::OK();
}

void Arena::HandOff() {
#if defined(ARENAKV_CHECKED)
  impl_->owner_thread.store(std::thread::id(), std::memory_order_relaxed);
#endif
}

void Arena::Close() {
  ArenaCore* a = impl_.get();
  port::MutexLock l(&a->pool->tree_mu);
  internal::CloseArenaLocked(a->pool, a);
}

bool Arena::closed() const { return impl_->closed.load(std::memory_order_acquire); }

static ArenaStats StatsOf(const ArenaCore* a) {
  ArenaStats st;
  st.name = a->options.name;
  st.bytes = a->bytes.load(std::memory_order_relaxed);
  st.spilled_bytes = a->spilled_bytes.load(std::memory_order_relaxed);
  st.used_bytes = a->bump->used.load(std::memory_order_relaxed);
  st.segments = a->segments.load(std::memory_order_relaxed);
  st.limit_bytes = a->options.limit_bytes;
  st.children = a->children;
  st.closed = a->closed.load(std::memory_order_acquire);
  return st;
}

static void CollectTree(const ArenaCore* a, std::vector<ArenaStats>* out) {
  out->push_back(StatsOf(a));
  for (const ArenaCore* c = a->first_child; c != nullptr; c = c->next) CollectTree(c, out);
}

ArenaStats Arena::Stats() const {
  port::MutexLock l(&impl_->pool->tree_mu);
  return StatsOf(impl_.get());
}

std::vector<ArenaStats> Arena::TreeStats() const {
  std::vector<ArenaStats> out;
  port::MutexLock l(&impl_->pool->tree_mu);
  CollectTree(impl_.get(), &out);
  return out;
}

const std::string& Arena::name() const { return impl_->options.name; }

size_t Arena::bytes() const { return impl_->bytes.load(std::memory_order_relaxed); }

SegmentPool* Arena::pool() const { return impl_->pool_ref.get(); }

void* Arena::do_allocate(size_t bytes, size_t align) {
  void* p;
  Status s = Allocate(bytes, align, &p);
  if (!s.ok()) throw std::bad_alloc();
  return p;
}

void Arena::do_deallocate(void*, size_t, size_t) {}

bool Arena::do_is_equal(const std::pmr::memory_resource& other) const noexcept {
  return this == &other;
}

}  // namespace arenakv::alloc
