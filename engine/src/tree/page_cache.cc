// PageCache: sharded CLOCK cache of page frames in arena segments.
#include "tree/page_cache.h"

#include <memory>

namespace arenakv::tree {

namespace {
constexpr size_t kInitialBuckets = 512;  // per shard; one 4 KiB segment
constexpr size_t kFrameChunk = 64;       // frame structs carved per arena allocation
}  // namespace

void PageRef::Reset() {
  if (frame_ == nullptr) return;
  if (cache_ != nullptr) {
    cache_->ReleasePrivate(frame_);
  } else {
    // Release: our reads of the page happen before an evictor's acquire load.
    frame_->pins.fetch_sub(1, std::memory_order_release);
  }
  frame_ = nullptr;
  cache_ = nullptr;
}

PageCache::PageCache(alloc::Arena* arena, size_t capacity)
    : arena_(arena), capacity_(capacity), shards_(std::make_unique<Shard[]>(kShards)) {}

PageCache::~PageCache() { Close(); }

Status PageCache::Create(alloc::Arena* arena, size_t capacity_bytes,
                         std::unique_ptr<PageCache>* cache) {
  std::unique_ptr<PageCache> c(new PageCache(arena, capacity_bytes));
  Status s = c->Init();
  if (!s.ok()) return s;
  *cache = std::move(c);
  return Status::OK();
}

Status PageCache::Init() {
  for (int i = 0; i < kShards; ++i) {
    Shard& s = shards_[i];
    alloc::Segment seg;
    Status st = arena_->AllocateSegment(kInitialBuckets * sizeof(Frame*), &seg);
    if (!st.ok()) return st;
    port::MutexLock l(&s.mu);
    s.bucket_segment = seg;
    s.nbuckets = seg.size / sizeof(Frame*);
    s.buckets = reinterpret_cast<Frame**>(seg.data);
    for (size_t b = 0; b < s.nbuckets; ++b) s.buckets[b] = nullptr;
  }
  return Status::OK();
}

PageCache::Shard& PageCache::ShardFor(uint64_t hash) { return shards_[hash >> 60]; }

Frame* PageCache::FindLocked(Shard& s, uint64_t address, uint64_t hash) {
  Frame* f = s.buckets[(hash >> 20) & (s.nbuckets - 1)];
  while (f != nullptr && f->address != address) f = f->hash_next;
  return f;
}

bool PageCache::Lookup(uint64_t address, PageRef* ref) {
  ref->Reset();
  uint64_t h = Hash(address);
  Shard& s = ShardFor(h);
  port::MutexLock l(&s.mu);
  if (s.buckets == nullptr) return false;  // closed
  Frame* f = FindLocked(s, address, h);
  if (f == nullptr) {
    ++s.misses;
    return false;
  }
  f->pins.fetch_add(1, std::memory_order_relaxed);
  f->referenced = true;
  ++s.hits;
  ref->frame_ = f;
  return true;
}

Status PageCache::AllocFrameStruct(Frame** out) {
  {
    port::MutexLock l(&free_mu_);
    if (free_frames_ != nullptr) {
      *out = free_frames_;
      free_frames_ = free_frames_->hash_next;
      std::construct_at(*out);
      return Status::OK();
    }
  }
  // Carve a chunk outside every lock: the arena may call the pool's reclaim
  // callback, which evicts.
  void* mem = nullptr;
  Status s = arena_->Allocate(sizeof(Frame) * kFrameChunk, alignof(Frame), &mem);
  if (!s.ok()) return s;
  Frame* chunk = static_cast<Frame*>(mem);
  port::MutexLock l(&free_mu_);
  for (size_t i = 1; i < kFrameChunk; ++i) {
    chunk[i].hash_next = free_frames_;
    free_frames_ = &chunk[i];
  }
  *out = std::construct_at(&chunk[0]);
  return Status::OK();
}

void PageCache::FreeFrameStruct(Frame* f) {
  std::destroy_at(f);
  port::MutexLock l(&free_mu_);
  f->hash_next = free_frames_;
  free_frames_ = f;
}

void PageCache::EvictToFit(size_t bytes) {
  size_t used = used_bytes_.load(std::memory_order_relaxed);
  if (used + bytes <= capacity_) return;
  size_t want = used + bytes - capacity_;
  size_t freed = Evict(want);
  if (freed < want) overflows_.fetch_add(1, std::memory_order_relaxed);
}

Status PageCache::NewFrame(size_t bytes, PageRef* ref) {
  ref->Reset();
  if (closed_.load(std::memory_order_acquire)) return Status::Closed("page cache is closed");
  size_t class_bytes = arena_->pool()->ClassFor(bytes);
  EvictToFit(class_bytes != 0 ? class_bytes : bytes);
  alloc::Segment seg;
  Status s = arena_->AllocateSegment(bytes, &seg);
  if (s.IsMemoryLimit()) {
    // Over the budget: give back what we can and try once more.
    Evict(bytes * 4);
    s = arena_->AllocateSegment(bytes, &seg);
  }
  if (!s.ok()) return s;
  Frame* f = nullptr;
  s = AllocFrameStruct(&f);
  if (!s.ok()) {
    arena_->ReleaseSegment(seg).IgnoreError();
    return s;
  }
  f->segment = seg;
  used_bytes_.fetch_add(seg.size, std::memory_order_relaxed);
  ref->frame_ = f;
  ref->cache_ = this;
  return Status::OK();
}

void PageCache::ReleasePrivate(Frame* f) {
  if (closed_.load(std::memory_order_acquire)) return;  // the arena reclaims it
  used_bytes_.fetch_sub(f->segment.size, std::memory_order_relaxed);
  arena_->ReleaseSegment(f->segment).IgnoreError();
  FreeFrameStruct(f);
}

void PageCache::Insert(uint64_t address, uint32_t bytes, PageRef* ref) {
  Frame* f = ref->frame_;
  uint64_t h = Hash(address);
  Shard& s = ShardFor(h);
  {
    port::MutexLock l(&s.mu);
    if (s.buckets == nullptr) return;  // closed: stays private
    Frame* existing = FindLocked(s, address, h);
    if (existing != nullptr) {
      existing->pins.fetch_add(1, std::memory_order_relaxed);
      existing->referenced = true;
      ref->frame_ = existing;
      ref->cache_ = nullptr;
    } else {
      f->address = address;
      f->bytes = bytes;
      f->shard = static_cast<uint8_t>(&s - shards_.get());
      f->pins.store(1, std::memory_order_relaxed);
      f->referenced = true;
      f->indexed = true;
      Frame** bucket = &s.buckets[(h >> 20) & (s.nbuckets - 1)];
      f->hash_next = *bucket;
      *bucket = f;
      // Insert just behind the hand: the newest frame is the last one examined.
      if (s.hand == nullptr) {
        f->ring_prev = f->ring_next = f;
        s.hand = f;
      } else {
        f->ring_next = s.hand;
        f->ring_prev = s.hand->ring_prev;
        f->ring_prev->ring_next = f;
        s.hand->ring_prev = f;
      }
      f->in_ring = true;
      ++s.pages;
      ++s.ring_size;
      ref->cache_ = nullptr;
      f = nullptr;
    }
  }
  if (f != nullptr) {
    ReleasePrivate(f);
  } else {
    MaybeGrow(s);
  }
}

void PageCache::MaybeGrow(Shard& s) {
  size_t want;
  {
    port::MutexLock l(&s.mu);
    if (s.pages <= s.nbuckets / 2) return;  // short chains: a hit is ~one frame visit
    want = s.nbuckets * 2;
  }
  alloc::Segment seg;
  if (!arena_->AllocateSegment(want * sizeof(Frame*), &seg).ok()) return;  // longer chains
  alloc::Segment old;
  {
    port::MutexLock l(&s.mu);
    if (s.buckets == nullptr || s.nbuckets >= want) {
      old = seg;
    } else {
      Frame** nb = reinterpret_cast<Frame**>(seg.data);
      size_t n = seg.size / sizeof(Frame*);
      for (size_t b = 0; b < n; ++b) nb[b] = nullptr;
      for (size_t b = 0; b < s.nbuckets; ++b) {
        Frame* f = s.buckets[b];
        while (f != nullptr) {
          Frame* next = f->hash_next;
          Frame** dst = &nb[(Hash(f->address) >> 20) & (n - 1)];
          f->hash_next = *dst;
          *dst = f;
          f = next;
        }
      }
      old = s.bucket_segment;
      s.bucket_segment = seg;
      s.buckets = nb;
      s.nbuckets = n;
    }
  }
  if (!closed_.load(std::memory_order_acquire)) arena_->ReleaseSegment(old).IgnoreError();
}

size_t PageCache::DropLocked(Shard& s, Frame* f) {
  if (f->indexed) {
    uint64_t h = Hash(f->address);
    Frame** p = &s.buckets[(h >> 20) & (s.nbuckets - 1)];
    while (*p != f) p = &(*p)->hash_next;
    *p = f->hash_next;
    f->indexed = false;
    --s.pages;
  }
  if (f->in_ring) {
    if (f->ring_next == f) {
      s.hand = nullptr;
    } else {
      f->ring_prev->ring_next = f->ring_next;
      f->ring_next->ring_prev = f->ring_prev;
      if (s.hand == f) s.hand = f->ring_next;
    }
    f->in_ring = false;
    --s.ring_size;
  }
  size_t bytes = f->segment.size;
  used_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  arena_->ReleaseSegment(f->segment).IgnoreError();
  FreeFrameStruct(f);
  return bytes;
}

size_t PageCache::EvictFromShard(Shard& s, size_t wanted) {
  port::MutexLock l(&s.mu);
  size_t freed = 0;
  // Two sweeps at most: the first clears reference bits.
  size_t steps = 2 * s.ring_size;
  while (freed < wanted && s.hand != nullptr && steps-- > 0) {
    Frame* f = s.hand;
    s.hand = f->ring_next;
    if (f->pins.load(std::memory_order_acquire) != 0) continue;
    if (f->referenced && f->indexed) {
      f->referenced = false;
      continue;
    }
    freed += DropLocked(s, f);
    ++s.evictions;
  }
  return freed;
}

size_t PageCache::Evict(size_t wanted_bytes) {
  if (closed_.load(std::memory_order_acquire)) return 0;
  size_t freed = 0;
  uint32_t start = evict_cursor_.fetch_add(1, std::memory_order_relaxed);
  // Spread the work: a first pass asks each shard for its share, then the
  // rest is taken wherever it can be found.
  size_t share = wanted_bytes / kShards + 1;
  for (int pass = 0; pass < 2 && freed < wanted_bytes; ++pass) {
    for (int i = 0; i < kShards && freed < wanted_bytes; ++i) {
      Shard& s = shards_[(start + i) % kShards];
      freed += EvictFromShard(s, pass == 0 ? share : wanted_bytes - freed);
    }
  }
  return freed;
}

void PageCache::Erase(uint64_t address) {
  uint64_t h = Hash(address);
  Shard& s = ShardFor(h);
  port::MutexLock l(&s.mu);
  if (s.buckets == nullptr) return;
  Frame* f = FindLocked(s, address, h);
  if (f == nullptr) return;
  if (f->pins.load(std::memory_order_acquire) == 0) {
    DropLocked(s, f);
    return;
  }
  // Pinned: unindex now; the CLOCK hand frees it once the pins are gone.
  Frame** p = &s.buckets[(h >> 20) & (s.nbuckets - 1)];
  while (*p != f) p = &(*p)->hash_next;
  *p = f->hash_next;
  f->indexed = false;
  --s.pages;
}

void PageCache::Clear() {
  for (int i = 0; i < kShards; ++i) EvictFromShard(shards_[i], SIZE_MAX);
}

void PageCache::Close() {
  if (closed_.exchange(true)) return;
  for (int i = 0; i < kShards; ++i) {
    Shard& s = shards_[i];
    port::MutexLock l(&s.mu);
    s.buckets = nullptr;
    s.nbuckets = 0;
    s.hand = nullptr;
    s.pages = 0;
    s.ring_size = 0;
  }
  used_bytes_.store(0, std::memory_order_relaxed);
  port::MutexLock l(&free_mu_);
  free_frames_ = nullptr;
}

CacheStats PageCache::Stats() const {
  CacheStats st;
  st.capacity_bytes = capacity_;
  st.used_bytes = used_bytes_.load(std::memory_order_relaxed);
  for (int i = 0; i < kShards; ++i) {
    Shard& s = shards_[i];
    port::MutexLock l(&s.mu);
    st.pages += s.pages;
    st.hits += s.hits;
    st.misses += s.misses;
    st.evictions += s.evictions;
    if (Frame* f = s.hand) {
      do {
        if (f->indexed && f->pins.load(std::memory_order_relaxed) != 0) ++st.pinned_pages;
        f = f->ring_next;
      } while (f != s.hand);
    }
  }
  return st;
}

}  // namespace arenakv::tree
