// Per-thread segment caches ("magazines"). The pool's shared lists cost a
// lock round trip per operation; a thread that allocates and releases
// segments of a pool over and over instead recycles them from its own
// magazine, and moves them to and from the shared lists in batches of half a
// bin under one lock. The take and give-back themselves are inline in
// pool_core.h; this file attaches magazines, refills and flushes them.
//
// Bounds: a bin holds at most bin_capacity_[c] segments and a magazine at
// most magazine_bytes_ (a quarter of retain_bytes, capped at 4 MiB); a
// thread keeps magazines for its four most recently used pools. Trim() and a
// budget shortfall flush the calling thread's magazine; a thread's magazines
// are flushed when it exits. Pool Close() unmaps regardless: a magazine of a
// closed pool is discarded unread.

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <memory>

#include "pool_core.h"
#include "sanitizer.h"

namespace arenakv::alloc::internal {

// The most recently used magazine. It always points into t_cache.mags (or is
// null).
__thread Magazine* t_hot_magazine = nullptr;

namespace {

constexpr int kMagazinesPerThread = 4;
// Set once the thread's cache is destroyed: a pool used from a later
// thread-exit destructor works without a magazine.
thread_local bool t_cache_gone = false;

struct ThreadCache {
  std::unique_ptr<Magazine> mags[kMagazinesPerThread];

  ~ThreadCache() {
    t_hot_magazine = nullptr;
    t_cache_gone = true;
    for (auto& m : mags) {
      if (m == nullptr) continue;
      port::MutexLock l(MagazineMutex());
      if (!m->orphan) {
        m->pool->FlushMagazine(m.get());
        m->pool->DetachMagazineLocked(m.get());
      }
    }
  }
};

thread_local ThreadCache t_cache;

}  // namespace

port::Mutex* MagazineMutex() {
  static port::Mutex mu;
  return &mu;
}

void PoolCore::DetachMagazineLocked(Magazine* m) {
  if (m->prev != nullptr) {
    m->prev->next = m->next;
  } else {
    magazines_ = m->next;
  }
  if (m->next != nullptr) m->next->prev = m->prev;
  m->prev = m->next = nullptr;
  m->orphan = true;
}

size_t PoolCore::CachedSegmentsLocked(int c) const {
  size_t n = 0;
  if (c >= magazine_classes_) return 0;
  for (const Magazine* m = magazines_; m != nullptr; m = m->next) {
    n += m->bins[c].n.load(std::memory_order_relaxed);
  }
  return n;
}

Magazine* PoolCore::MyMagazine() {
  Magazine* hot = t_hot_magazine;
  if (hot != nullptr && hot->pool == this && hot->uid == uid_) return hot;
  return AttachMagazine();
}

Magazine* PoolCore::AttachMagazine() {
  if (magazine_classes_ == 0 || t_cache_gone) return nullptr;
  ThreadCache& tc = t_cache;
  Magazine* first = tc.mags[0].get();
  if (first != nullptr && first->pool == this && first->uid == uid_) {
    t_hot_magazine = first;
    return first;
  }
  for (int i = 1; i < kMagazinesPerThread; ++i) {
    Magazine* m = tc.mags[i].get();
    if (m != nullptr && m->pool == this && m->uid == uid_) {
      std::swap(tc.mags[i], tc.mags[0]);
      t_hot_magazine = m;
      return m;
    }
  }
  if (closed()) return nullptr;
  auto fresh = std::make_unique<Magazine>();
  fresh->pool = this;
  fresh->uid = uid_;
  std::unique_ptr<Magazine> evicted = std::move(tc.mags[kMagazinesPerThread - 1]);
  {
    port::MutexLock l(MagazineMutex());
    if (evicted != nullptr && !evicted->orphan) {
      evicted->pool->FlushMagazine(evicted.get());
      evicted->pool->DetachMagazineLocked(evicted.get());
    }
    fresh->next = magazines_;
    if (magazines_ != nullptr) magazines_->prev = fresh.get();
    magazines_ = fresh.get();
  }
  for (int i = kMagazinesPerThread - 1; i > 0; --i) tc.mags[i] = std::move(tc.mags[i - 1]);
  tc.mags[0] = std::move(fresh);
  t_hot_magazine = tc.mags[0].get();
  return t_hot_magazine;
}

bool PoolCore::MagazinePop(Magazine* m, int c, uint32_t owner, Segment* segment) {
  if (m->bins[c].n.load(std::memory_order_relaxed) == 0 && !MagazineRefill(m, c)) return false;
  MagazineTake(m, c, owner, segment);
  return true;
}

bool PoolCore::MagazineRefill(Magazine* m, int c) {
  ClassState& cs = classes_[c];
  Magazine::Bin& bin = m->bins[c];
  uint32_t want = (bin_capacity_[c] + 1) / 2;
  if (m->bytes + want * cs.bytes > magazine_bytes_) {
    want =
        static_cast<uint32_t>((magazine_bytes_ - std::min(m->bytes, magazine_bytes_)) / cs.bytes);
  }
  if (want == 0) return false;
  uint32_t n = 0;
  {
    SpinLockGuard l(&cs.mu);
    while (n < want && cs.retained_head != kNoLink) {
      const Link link = cs.retained_head;
      Unlink(cs, &cs.retained_head, &cs.retained_tail, link);
      Entry* e = EntryAt((link - 1) >> 16);
      const uint32_t g = (link - 1) & 0xffffu;
      Slot* s = e->slots + g;
      s->where = kInUse;
      ++e->chunk_in_use[g >> chunk_shift_];
      --cs.retained;
      ++cs.in_use;  // cached segments count as in use for the lists
      bin.items[n++] = {
          MakeToken(link, LoadWord(s, std::memory_order_relaxed) >> 1),
          e->base.load(std::memory_order_relaxed) + (static_cast<size_t>(g) << min_shift_), s};
    }
    PublishRetained(cs);
  }
  if (n == 0) return false;
  DebitRecycled(n * cs.bytes);
  bin.n.store(n, std::memory_order_relaxed);
  m->bytes += n * cs.bytes;
  return true;
}

void PoolCore::MagazineFlushBin(Magazine* m, int c, uint32_t count) {
  ClassState& cs = classes_[c];
  Magazine::Bin& bin = m->bins[c];
  const uint32_t n = bin.n.load(std::memory_order_relaxed);
  if (count > n) count = n;
  if (count == 0) return;
  if (!closed()) {
    SpinLockGuard l(&cs.mu);
    // The oldest (bottom of the bin) go back; the hottest stay.
    for (uint32_t i = 0; i < count; ++i) {
      const Link link = LinkOfToken(bin.items[i].token);
      Entry* e = EntryAt((link - 1) >> 16);
      bin.items[i].slot->where = kRetained;
      --e->chunk_in_use[((link - 1) & 0xffffu) >> chunk_shift_];
      PushFront(cs, &cs.retained_head, &cs.retained_tail, link);
      ++cs.retained;
      --cs.in_use;
    }
    PublishRetained(cs);
  }
  for (uint32_t i = count; i < n; ++i) bin.items[i - count] = bin.items[i];
  bin.n.store(n - count, std::memory_order_relaxed);
  m->bytes -= count * cs.bytes;
}

void PoolCore::FlushMagazine(Magazine* m) {
  for (int c = 0; c < magazine_classes_; ++c) {
    MagazineFlushBin(m, c, m->bins[c].n.load(std::memory_order_relaxed));
  }
  if (!closed() && RetainedBytes() > opt_.retain_bytes) MaybeShrinkRetained();
}

void PoolCore::FlushMyMagazine() {
  // A thread's magazine for this pool is always its hot one or in t_cache.
  if (t_cache_gone) return;
  Magazine* hot = t_hot_magazine;
  if (hot != nullptr && hot->pool == this && hot->uid == uid_) {
    FlushMagazine(hot);
    return;
  }
  if (hot == nullptr) return;  // no magazine attached on this thread at all
  for (auto& m : t_cache.mags) {
    if (m != nullptr && m->pool == this && m->uid == uid_) FlushMagazine(m.get());
  }
}

}  // namespace arenakv::alloc::internal
