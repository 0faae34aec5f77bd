// PageCache: sharded CLOCK cache of page frames in arena segments, with
// lock-free peeks protected by read epochs.
#include "tree/page_cache.h"

#include <algorithm>
#include <bit>
#include <memory>
#include <type_traits>

#include "tree/page_format.h"
#include "tree/read_epoch.h"
#include "util/sync_point.h"

namespace arenakv::tree {

namespace {
constexpr size_t kInitialBuckets = 512;  // per shard; one 4 KiB segment
// Frame structs carved per arena allocation: the first chunk small (an idle
// database with data caches a page or two), each next one twice as large.
constexpr size_t kFirstFrameChunk = 8;
constexpr size_t kFrameChunk = 64;
// A peek gives up (and the caller takes the locked path) after this many
// frames of one chain: chains are short; a long walk means a growth is
// moving frames under it.
constexpr int kMaxPeekSteps = 32;
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
    : arena_(arena),
      capacity_(capacity),
      shared_(arena->pool()->options().shared_budget.get()),
      next_frame_chunk_(kFirstFrameChunk) {}

PageCache::~PageCache() { Close(); }

Status PageCache::Create(alloc::Arena* arena, size_t capacity_bytes,
                         std::unique_ptr<PageCache>* cache) {
  std::unique_ptr<PageCache> c(new (arena->pool()->object_heap()) PageCache(arena, capacity_bytes));
  Status s = c->Init();
  if (!s.ok()) return s;
  *cache = std::move(c);
  return Status::OK();
}

namespace {

// A bucket array in `seg`: all heads null, packed with log2 of its size.
uintptr_t MakeTable(const alloc::Segment& seg) {
  size_t n = std::bit_floor(seg.size / sizeof(std::atomic<Frame*>));
  auto* heads = reinterpret_cast<std::atomic<Frame*>*>(seg.data);
  for (size_t b = 0; b < n; ++b) std::construct_at(&heads[b], nullptr);
  return reinterpret_cast<uintptr_t>(seg.data) | static_cast<uintptr_t>(std::countr_zero(n));
}

}  // namespace

// The table of a shard nothing was inserted into yet: one bucket, empty and
// never written (Insert installs a real table first). A database that has
// read nothing holds no bucket array: sixteen of them were 64 KiB of every
// idle database.
namespace {
alignas(64) std::atomic<Frame*> g_empty_heads[1] = {nullptr};
uintptr_t EmptyTable() { return reinterpret_cast<uintptr_t>(&g_empty_heads[0]); }
}  // namespace

Status PageCache::Init() {
  for (int i = 0; i < kShards; ++i) {
    Shard& s = shards_[i];
    port::MutexLock l(&s.mu);
    s.table.store(EmptyTable(), std::memory_order_release);
  }
  return Status::OK();
}

void PageCache::InstallFirstTable(Shard& s) {
  alloc::Segment seg;
  if (!arena_->AllocateSegment(kInitialBuckets * sizeof(Frame*), &seg).ok()) return;
  bool installed = false;
  if ((reinterpret_cast<uintptr_t>(seg.data) & 63) == 0) {  // MakeTable packs the low bits
    port::MutexLock l(&s.mu);
    if (s.table.load(std::memory_order_relaxed) == EmptyTable()) {
      s.bucket_segment = seg;
      s.table.store(MakeTable(seg), std::memory_order_release);
      installed = true;
    }
  }
  if (!installed) arena_->ReleaseSegment(seg).IgnoreError();
}

PageCache::Shard& PageCache::ShardFor(uint64_t hash) const { return shards_[hash >> 60]; }

Frame* PageCache::FindLocked(Shard& s, uint64_t address, uint64_t hash) {
  uintptr_t t = s.table.load(std::memory_order_relaxed);
  Frame* f = BucketFor(t, hash)->load(std::memory_order_relaxed);
  while (f != nullptr && f->address.load(std::memory_order_relaxed) != address) {
    f = f->hash_next.load(std::memory_order_relaxed);
  }
  return f;
}

bool PageCache::Lookup(uint64_t address, PageRef* ref) {
  ref->Reset();
  uint64_t h = Hash(address);
  Shard& s = ShardFor(h);
  port::MutexLock l(&s.mu);
  if (s.table.load(std::memory_order_relaxed) == 0) return false;  // closed
  Frame* f = FindLocked(s, address, h);
  if (f == nullptr) {
    ++s.misses;
    return false;
  }
  f->pins.fetch_add(1, std::memory_order_relaxed);
  f->referenced.store(true, std::memory_order_relaxed);
  ++s.hits;
  ref->frame_ = f;
  return true;
}

const Frame* PageCache::Peek(uint64_t address) const {
  uint64_t h = Hash(address);
  uintptr_t t = ShardFor(h).table.load(std::memory_order_acquire);
  if (t == 0) return nullptr;  // closed
  Frame* f = BucketFor(t, h)->load(std::memory_order_acquire);
  for (int steps = 0; f != nullptr && steps < kMaxPeekSteps; ++steps) {
    if (f->address.load(std::memory_order_relaxed) == address) {
      // Only a first touch since the hand passed writes the frame's line.
      if (!f->referenced.load(std::memory_order_relaxed)) {
        f->referenced.store(true, std::memory_order_relaxed);
      }
      return f;
    }
    f = f->hash_next.load(std::memory_order_acquire);
  }
  return nullptr;
}

void PageCache::AddPeekHits(uint64_t n) {
  // Spread over a few lines by thread so that readers do not share one.
  unsigned slot = static_cast<unsigned>(epoch::internal::t_slot) % kHitCounters;
  peek_hits_[slot].n.fetch_add(n, std::memory_order_relaxed);
}

void PageCache::AddPeekMiss() {
  unsigned slot = static_cast<unsigned>(epoch::internal::t_slot) % kHitCounters;
  peek_hits_[slot].misses.fetch_add(1, std::memory_order_relaxed);
}

namespace {

// Makes a recycled frame new again field by field, atomics with atomic
// stores: a reader following a stale child hint may load `live` and
// `address` at any time, so the frame is never re-constructed. `live` is
// already false (cleared when the frame left the index).
void ResetFrame(Frame* f) {
  static_assert(std::is_trivially_destructible_v<Frame>);
  f->address.store(0, std::memory_order_relaxed);
  f->hash_next.store(nullptr, std::memory_order_relaxed);
  f->segment = alloc::Segment();
  f->pins.store(0, std::memory_order_relaxed);
  f->bytes = 0;
  f->entries.store(0, std::memory_order_relaxed);
  f->referenced.store(false, std::memory_order_relaxed);
  f->live.store(false, std::memory_order_relaxed);
  f->indexed = false;
  f->in_ring = false;
  f->counted = true;
  f->shard = 0;
  f->checksum = 0;
  f->retire_tag = 0;
  f->ring_prev = nullptr;
  f->ring_next = nullptr;
  f->child_hints = nullptr;
  f->child_hint_count = 0;
  f->hint_segment = alloc::Segment();
}

}  // namespace

Status PageCache::AllocFrameStruct(Frame** out) {
  {
    port::MutexLock l(&free_mu_);
    if (free_frames_ != nullptr) {
      Frame* f = free_frames_;
      free_frames_ = f->ring_next;
      ResetFrame(f);
      *out = f;
      return Status::OK();
    }
  }
  // Carve a chunk outside every lock: the arena may call the pool's reclaim
  // callback, which evicts.
  const size_t n = next_frame_chunk_.load(std::memory_order_relaxed);
  void* mem = nullptr;
  Status s = arena_->Allocate(sizeof(Frame) * n, alignof(Frame), &mem);
  if (!s.ok()) return s;
  next_frame_chunk_.store(std::min(n * 2, kFrameChunk), std::memory_order_relaxed);
  Frame* chunk = static_cast<Frame*>(mem);
  port::MutexLock l(&free_mu_);
  for (size_t i = 1; i < n; ++i) {
    Frame* f = std::construct_at(&chunk[i]);
    f->ring_next = free_frames_;
    free_frames_ = f;
  }
  *out = std::construct_at(&chunk[0]);
  return Status::OK();
}

void PageCache::FreeFrameStruct(Frame* f) {
  // Not destroyed: a stale child hint may still lead a reader here, to load
  // `live` and `address` (see ResetFrame).
  port::MutexLock l(&free_mu_);
  f->ring_next = free_frames_;
  free_frames_ = f;
}

void PageCache::ReleaseFrame(Frame* f) {
  if (f->counted) used_bytes_.fetch_sub(f->held_bytes(), std::memory_order_relaxed);
  arena_->ReleaseSegment(f->segment).IgnoreError();
  if (f->hint_segment.valid()) arena_->ReleaseSegment(f->hint_segment).IgnoreError();
  FreeFrameStruct(f);
}

void PageCache::AttachChildHints(Frame* f, uint32_t bytes) {
  if (bytes < kImageHeaderBytes) return;
  const PageView v(f->data());
  // Only what is certainly an internal page's image (the cache also holds
  // images it does not interpret): its type, and a count its size can hold.
  if (v.type() != PageType::kInternal || v.count() == 0 ||
      v.count() > (bytes - kImageHeaderBytes) / kSlotBytes) {
    return;
  }
  alloc::Segment seg;
  if (!arena_->AllocateSegment(size_t{v.count()} * sizeof(ChildHint), &seg).ok()) return;
  auto* hints = reinterpret_cast<ChildHint*>(seg.data);
  for (uint32_t i = 0; i < v.count(); ++i) std::construct_at(&hints[i]);
  f->hint_segment = seg;
  f->child_hints = hints;
  f->child_hint_count = v.count();
  used_bytes_.fetch_add(seg.size, std::memory_order_relaxed);
}

const Frame* PageCache::PeekChild(const Frame* parent, uint32_t index, uint64_t address,
                                  bool* prefetched) const {
  *prefetched = false;
  if (parent->child_hints == nullptr || index >= parent->child_hint_count) return Peek(address);
  ChildHint& hint = parent->child_hints[index];
  const Frame* f = hint.frame.load(std::memory_order_acquire);
  // Overlap the miss on the child's image with the miss on its frame.
  const uint64_t image = hint.image.load(std::memory_order_relaxed);
  PageView::PrefetchAt(reinterpret_cast<const char*>(image & ChildHint::kPointerMask),
                       static_cast<uint32_t>(image >> 48));
  // Live (acquire), then the address: a live frame with this address holds
  // this page's image, readable until the section ends, whichever frame
  // incarnation the hint was taken from.
  if (f != nullptr && f->live.load(std::memory_order_acquire) &&
      f->address.load(std::memory_order_relaxed) == address) {
    if (!f->referenced.load(std::memory_order_relaxed)) {
      f->referenced.store(true, std::memory_order_relaxed);
    }
    *prefetched = image != 0 && image == ImageWord(f);
    return f;
  }
  f = Peek(address);
  if (f != nullptr) {
    hint.image.store(ImageWord(f), std::memory_order_relaxed);
    hint.frame.store(f, std::memory_order_release);
  }
  return f;
}

uint64_t PageCache::ImageWord(const Frame* f) {
  if (f->child_hints != nullptr) return 0;  // internal: not prefetched (see BTree::GetCached)
  const uint64_t count = std::min<uint64_t>(f->entries.load(std::memory_order_relaxed), 0xFFFF);
  return (reinterpret_cast<uintptr_t>(f->data()) & ChildHint::kPointerMask) | (count << 48);
}

void PageCache::EvictToFit(size_t bytes) {
  size_t used = used_bytes_.load(std::memory_order_relaxed);
  if (used + bytes <= capacity_) return;
  Reclaim();  // frames retired earlier whose readers have gone
  used = used_bytes_.load(std::memory_order_relaxed);
  // Frames still waiting for a reader are as good as gone: evict for the rest.
  size_t pending = retired_bytes_.load(std::memory_order_relaxed);
  size_t live = used > pending ? used - pending : 0;
  if (live + bytes <= capacity_) return;
  size_t want = live + bytes - capacity_;
  RetiredList batch;
  size_t freed = Sweep(want, &batch);
  Retire(&batch);
  Reclaim();
  if (freed < want) overflows_.fetch_add(1, std::memory_order_relaxed);
}

Status PageCache::NewFrame(size_t bytes, PageRef* ref) {
  ref->Reset();
  if (closed_.load(std::memory_order_acquire)) return Status::Closed("page cache is closed");
  size_t class_bytes = arena_->pool()->ClassFor(bytes);
  EvictToFit(class_bytes != 0 ? class_bytes : bytes);
  alloc::Segment seg;
  Status s = arena_->AllocateSegment(bytes, &seg);
  if (s.IsMemoryLimit() && !epoch::InSection()) {
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

uint64_t PageCache::Activity() const {
  uint64_t n = block_reads_.load(std::memory_order_relaxed);
  for (const HitCounter& c : peek_hits_) n += c.n.load(std::memory_order_relaxed);
  return n;
}

bool PageCache::AdmitLeaf(uint64_t address, size_t page_bytes) {
  if (HasRoom(page_bytes)) return true;
  std::atomic<uint64_t>* table = admission_.load(std::memory_order_acquire);
  if (table == nullptr) {
    port::MutexLock l(&admission_mu_);
    table = admission_.load(std::memory_order_relaxed);
    if (table == nullptr) {
      if (admission_failed_ || closed_.load(std::memory_order_acquire)) return true;
      const size_t slots =
          std::bit_ceil(std::max<size_t>(64, capacity_ / page_bytes / kAdmissionWindowShare));
      alloc::Segment seg;
      if (!arena_->AllocateSegment(slots * sizeof(uint64_t), &seg).ok()) {
        admission_failed_ = true;  // no table: admit everything, as before it existed
        return true;
      }
      table = reinterpret_cast<std::atomic<uint64_t>*>(seg.data);
      for (size_t i = 0; i < slots; ++i) std::construct_at(&table[i], 0);
      admission_mask_ = slots - 1;
      admission_.store(table, std::memory_order_release);
    }
  }
  // Two ways per set, the newer first: two leaves that share a set and
  // miss by turns still find themselves there.
  const size_t set = (Hash(address) >> 24) & admission_mask_ & ~size_t{1};
  std::atomic<uint64_t>& newer = table[set];
  std::atomic<uint64_t>& older = table[set + 1];
  const uint64_t first = newer.load(std::memory_order_relaxed);
  if (first == address) {
    newer.store(0, std::memory_order_relaxed);
    return true;
  }
  if (older.load(std::memory_order_relaxed) == address) {
    older.store(0, std::memory_order_relaxed);
    return true;
  }
  older.store(first, std::memory_order_relaxed);
  newer.store(address, std::memory_order_relaxed);
  return false;
}

bool PageCache::FindLeafHead(uint64_t address, char* out, size_t* bytes) const {
  epoch::ReadSection section;  // DetachLeafHeadTable waits for it before the table goes
  if (!section.active()) return false;
  const LeafHeadTable* table = heads_.load(std::memory_order_acquire);
  return table != nullptr && table->Find(address, out, bytes);
}

bool PageCache::MakeLeafHeadTable(uint64_t tree_bytes) {
  if (heads_.load(std::memory_order_acquire) != nullptr) return true;
  if (heads_off_.load(std::memory_order_relaxed)) return false;  // no lock on every miss
  if (closed_.load(std::memory_order_acquire)) return false;
  // A head saves a miss one read of the file for about a thirtieth of its
  // leaf's stored bytes: worth more, byte for byte, than a whole leaf, so
  // the table may take up to half of the cache. A byte of it per 12 stored
  // (a slot per 3.75 KiB, over two per leaf of 8-9 KiB) keeps about nine
  // heads in ten; more would only take room from the leaves. When the tree
  // is over four times the cache, a leaf it holds answers under a quarter
  // of the reads of its keys and a head answers all of them: a byte per 8
  // stored (19 heads in 20), up to three quarters of the cache (3M keys,
  // 32 MiB cache: 1.45 -> 1.36 us a read through the mapping; at 1M keys,
  // twice the cache, the larger table was 4% slower).
  const bool large = tree_bytes / 4 > capacity_;
  const uint64_t most = large ? capacity_ / 4 * 3 : capacity_ / 2;
  const uint64_t wanted = std::min<uint64_t>(most, tree_bytes / (large ? 8 : 12));
  size_t sets = static_cast<size_t>(wanted / LeafHeadTable::BytesFor(1));
  // The table object leads its segment, so that both go at once.
  size_t bytes = kHeadTableOffset + LeafHeadTable::BytesFor(sets);
  // A small cache's table comes from a size class, which may be well
  // above what was asked: fewer sets rather than a class over `most`.
  while (sets >= 4 && arena_->pool()->ClassFor(bytes) > most) {
    sets -= sets / 4;
    bytes = kHeadTableOffset + LeafHeadTable::BytesFor(sets);
  }
  // Outside heads_mu_: making room and allocating may reclaim, and a
  // reclaim may take this cache's table (DetachLeafHeadTable).
  if (sets >= 4) EvictToFit(bytes);  // leaves make room
  Frame* f = nullptr;
  if (sets < 4 || !AllocFrameStruct(&f).ok()) {
    heads_off_.store(true, std::memory_order_relaxed);
    return false;
  }
  if (!arena_->AllocateSegment(bytes, &f->segment).ok()) {
    // Until the database is opened again every miss reads its leaf's head
    // (trying again at every miss would cost more than the heads save).
    FreeFrameStruct(f);
    heads_off_.store(true, std::memory_order_relaxed);
    return false;
  }
  port::MutexLock l(&heads_mu_);
  if (heads_.load(std::memory_order_relaxed) != nullptr || heads_off_.load() || closed_.load()) {
    f->counted = false;  // never added to used_bytes_
    ReleaseFrame(f);     // another read made one first, or a reclaim took it
    return heads_.load(std::memory_order_relaxed) != nullptr;
  }
  used_bytes_.fetch_add(f->held_bytes(), std::memory_order_relaxed);
  head_table_bytes_.store(f->held_bytes(), std::memory_order_relaxed);
  head_frame_ = f;
  LeafHeadTable* table = std::construct_at(reinterpret_cast<LeafHeadTable*>(f->data()),
                                           f->data() + kHeadTableOffset, sets);
  head_sets_.store(sets, std::memory_order_relaxed);
  heads_.store(table, std::memory_order_release);
  EvictToFit(0);  // the segment's size class may be above what was asked
  return true;
}

void PageCache::KeepLeafHead(uint64_t address, std::string_view head) {
  epoch::ReadSection section;
  if (!section.active()) return;
  if (LeafHeadTable* table = heads_.load(std::memory_order_acquire)) table->Insert(address, head);
}

size_t PageCache::DetachLeafHeadTable(RetiredList* batch) {
  Frame* f;
  {
    port::MutexLock l(&heads_mu_);
    heads_off_.store(true, std::memory_order_relaxed);  // not made again under this pressure
    f = head_frame_;
    if (f == nullptr) return 0;
    head_frame_ = nullptr;
    heads_.store(nullptr, std::memory_order_release);
    head_table_bytes_.store(0, std::memory_order_relaxed);
  }
  // Readers inside a section may still copy from it: it goes with the
  // batch, once their sections end.
  batch->Append(f);
  return f->held_bytes();
}

void PageCache::ReleasePrivate(Frame* f) {
  if (closed_.load(std::memory_order_acquire)) return;  // the arena reclaims it
  ReleaseFrame(f);                                      // never published: no reader can hold it
}

void PageCache::Insert(uint64_t address, uint32_t bytes, PageRef* ref) {
  Frame* f = ref->frame_;
  // Outside every lock (the allocation may make the pool reclaim).
  if (f->child_hints == nullptr) AttachChildHints(f, bytes);
  uint64_t h = Hash(address);
  Shard& s = ShardFor(h);
  // Outside every lock too: the shard's first page brings its table.
  if (s.table.load(std::memory_order_acquire) == EmptyTable()) InstallFirstTable(s);
  {
    port::MutexLock l(&s.mu);
    uintptr_t t = s.table.load(std::memory_order_relaxed);
    if (t == 0 || t == EmptyTable()) return;  // closed, or no memory: stays private
    Frame* existing = FindLocked(s, address, h);
    if (existing != nullptr) {
      existing->pins.fetch_add(1, std::memory_order_relaxed);
      existing->referenced.store(true, std::memory_order_relaxed);
      ref->frame_ = existing;
      ref->cache_ = nullptr;
    } else {
      f->address.store(address, std::memory_order_relaxed);
      // Release: a reader that finds the frame live through a child hint
      // also sees its address, image and hints.
      f->live.store(true, std::memory_order_release);
      f->bytes = bytes;
      f->shard = static_cast<uint8_t>(&s - shards_);
      f->pins.store(1, std::memory_order_relaxed);
      f->referenced.store(true, std::memory_order_relaxed);
      f->indexed = true;
      std::atomic<Frame*>* bucket = BucketFor(t, h);
      f->hash_next.store(bucket->load(std::memory_order_relaxed), std::memory_order_relaxed);
      // Publishes the frame (and its image) to peeking readers.
      bucket->store(f, std::memory_order_release);
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
    uintptr_t t = s.table.load(std::memory_order_relaxed);
    if (t == 0 || t == EmptyTable() || s.pages <= (BucketMask(t) + 1) / 2) return;
    want = (BucketMask(t) + 1) * 2;
  }
  alloc::Segment seg;
  if (!arena_->AllocateSegment(want * sizeof(Frame*), &seg).ok()) return;  // longer chains
  // The old array may still be read by a peeking reader: it is retired like
  // a frame, carried by a frame struct taken now (outside the shard lock).
  Frame* carrier = nullptr;
  if (!AllocFrameStruct(&carrier).ok()) {
    arena_->ReleaseSegment(seg).IgnoreError();
    return;
  }
  bool grown = false;
  {
    port::MutexLock l(&s.mu);
    uintptr_t t = s.table.load(std::memory_order_relaxed);
    if (t != 0 && t != EmptyTable() && BucketMask(t) + 1 < want) {
      uintptr_t nt = MakeTable(seg);
      // Frames move to their new chains one by one. A reader walking an old
      // chain may be led into a new one and miss its frame (it then takes
      // the locked path), but every link it follows leads to a live or
      // retired frame, and every chain ends.
      for (size_t b = 0; b <= BucketMask(t); ++b) {
        Frame* f = Heads(t)[b].load(std::memory_order_relaxed);
        while (f != nullptr) {
          Frame* next = f->hash_next.load(std::memory_order_relaxed);
          std::atomic<Frame*>* dst =
              BucketFor(nt, Hash(f->address.load(std::memory_order_relaxed)));
          f->hash_next.store(dst->load(std::memory_order_relaxed), std::memory_order_release);
          dst->store(f, std::memory_order_relaxed);
          f = next;
        }
      }
      s.table.store(nt, std::memory_order_release);
      carrier->segment = s.bucket_segment;
      s.bucket_segment = seg;
      grown = true;
    }
  }
  if (!grown) {
    arena_->ReleaseSegment(seg).IgnoreError();  // never published
    FreeFrameStruct(carrier);
    return;
  }
  carrier->counted = false;
  RetiredList batch{carrier, carrier};
  Retire(&batch);
  Reclaim();
}

void PageCache::UnindexLocked(Shard& s, Frame* f) {
  // Before the unlink: once a reader can no longer find the frame through
  // the index it must not find it through a child hint either (the retire
  // that follows orders this store before the frame is released).
  f->live.store(false, std::memory_order_release);
  uintptr_t t = s.table.load(std::memory_order_relaxed);
  std::atomic<Frame*>* p = BucketFor(t, Hash(f->address.load(std::memory_order_relaxed)));
  Frame* cur = p->load(std::memory_order_relaxed);
  while (cur != f) {
    p = &cur->hash_next;
    cur = p->load(std::memory_order_relaxed);
  }
  // f keeps its own link: a reader standing on it still reaches the rest.
  p->store(f->hash_next.load(std::memory_order_relaxed), std::memory_order_release);
  f->indexed = false;
  --s.pages;
}

size_t PageCache::DropLocked(Shard& s, Frame* f, RetiredList* batch) {
  if (f->indexed) UnindexLocked(s, f);
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
  batch->Append(f);
  return f->held_bytes();
}

size_t PageCache::EvictFromShard(Shard& s, size_t wanted, RetiredList* batch) {
  port::MutexLock l(&s.mu);
  size_t freed = 0;
  // Two sweeps at most: the first clears reference bits.
  size_t steps = 2 * s.ring_size;
  while (freed < wanted && s.hand != nullptr && steps-- > 0) {
    Frame* f = s.hand;
    s.hand = f->ring_next;
    if (f->pins.load(std::memory_order_acquire) != 0) continue;
    if (f->referenced.load(std::memory_order_relaxed) && f->indexed) {
      f->referenced.store(false, std::memory_order_relaxed);
      continue;
    }
    freed += DropLocked(s, f, batch);
    ++s.evictions;
  }
  return freed;
}

size_t PageCache::Sweep(size_t wanted, RetiredList* batch) {
  size_t freed = 0;
  uint32_t start = evict_cursor_.fetch_add(1, std::memory_order_relaxed);
  // Spread the work: a first pass asks each shard for its share, then the
  // rest is taken wherever it can be found.
  size_t share = wanted / kShards + 1;
  for (int pass = 0; pass < 2 && freed < wanted; ++pass) {
    for (int i = 0; i < kShards && freed < wanted; ++i) {
      Shard& s = shards_[(start + i) % kShards];
      freed += EvictFromShard(s, pass == 0 ? share : wanted - freed, batch);
    }
  }
  return freed;
}

void PageCache::Retire(RetiredList* batch) {
  if (batch->head == nullptr) return;
  size_t bytes = 0;
  for (Frame* f = batch->head; f != nullptr; f = f->ring_next) {
    if (f->counted) bytes += f->held_bytes();
  }
  retired_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  port::MutexLock l(&retired_mu_);
  // Tagged under the lock: the list stays in tag order.
  const uint64_t tag = epoch::Retire();
  for (Frame* f = batch->head; f != nullptr; f = f->ring_next) f->retire_tag = tag;
  if (retired_.tail == nullptr) {
    retired_.head = batch->head;
  } else {
    retired_.tail->ring_next = batch->head;
  }
  retired_.tail = batch->tail;
  *batch = RetiredList();
}

size_t PageCache::Reclaim() {
  if (closed_.load(std::memory_order_acquire)) return 0;
  Frame* done = nullptr;
  {
    port::MutexLock l(&retired_mu_);
    if (retired_.head == nullptr) return 0;
    const uint64_t safe = epoch::SafeTag();
    Frame* last = nullptr;
    for (Frame* f = retired_.head; f != nullptr && f->retire_tag <= safe; f = f->ring_next) {
      last = f;
    }
    if (last == nullptr) return 0;
    done = retired_.head;
    retired_.head = last->ring_next;
    if (retired_.head == nullptr) retired_.tail = nullptr;
    last->ring_next = nullptr;
  }
  size_t bytes = 0;
  while (done != nullptr) {
    Frame* next = done->ring_next;
    if (done->counted) bytes += done->held_bytes();
    ReleaseFrame(done);
    done = next;
  }
  retired_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  return bytes;
}

size_t PageCache::Evict(size_t wanted_bytes) {
  if (closed_.load(std::memory_order_acquire)) return 0;
  size_t freed = Reclaim();
  if (freed >= wanted_bytes) return freed;
  RetiredList batch;
  size_t retired = Sweep(wanted_bytes - freed, &batch);
  // Pages first; the table of leaf heads only when they do not suffice:
  // a database the budget takes everything from keeps no table either.
  if (freed + retired < wanted_bytes) retired += DetachLeafHeadTable(&batch);
  Retire(&batch);
  freed += Reclaim();
  if (freed < wanted_bytes && !epoch::InSection()) {
    // Whatever readers still use goes as soon as their sections end (they
    // are short: one point read's descent).
    uint64_t tag;
    {
      port::MutexLock l(&retired_mu_);
      tag = retired_.tail != nullptr ? retired_.tail->retire_tag : 0;
    }
    if (tag != 0) {
      TEST_SYNC_POINT_CALLBACK("PageCache::Evict:WaitForReaders", &tag);
      epoch::WaitUntilSafe(tag);
      freed += Reclaim();
    }
  }
  return freed;
}

void PageCache::Erase(uint64_t address) {
  {
    // The lock keeps the table from being detached under the erase (a
    // checkpoint's thread, outside read sections).
    port::MutexLock l(&heads_mu_);
    if (LeafHeadTable* heads = heads_.load(std::memory_order_relaxed)) heads->Erase(address);
  }
  uint64_t h = Hash(address);
  Shard& s = ShardFor(h);
  RetiredList batch;
  {
    port::MutexLock l(&s.mu);
    if (s.table.load(std::memory_order_relaxed) == 0) return;
    Frame* f = FindLocked(s, address, h);
    if (f == nullptr) return;
    if (f->pins.load(std::memory_order_acquire) == 0) {
      DropLocked(s, f, &batch);
    } else {
      // Pinned: unindex now; the CLOCK hand drops it once the pins are gone.
      UnindexLocked(s, f);
    }
  }
  if (batch.head != nullptr) {
    Retire(&batch);
    Reclaim();
  }
}

void PageCache::Clear() {
  {
    port::MutexLock l(&heads_mu_);
    if (LeafHeadTable* heads = heads_.load(std::memory_order_relaxed)) heads->Clear();
  }
  RetiredList batch;
  for (int i = 0; i < kShards; ++i) EvictFromShard(shards_[i], SIZE_MAX, &batch);
  Retire(&batch);
  Reclaim();
  if (!epoch::InSection()) {
    uint64_t tag;
    {
      port::MutexLock l(&retired_mu_);
      tag = retired_.tail != nullptr ? retired_.tail->retire_tag : 0;
    }
    if (tag != 0) {
      epoch::WaitUntilSafe(tag);
      Reclaim();
    }
  }
}

void PageCache::Close() {
  if (closed_.exchange(true)) return;
  admission_.store(nullptr, std::memory_order_relaxed);  // its segment goes with the arena
  {
    port::MutexLock l(&heads_mu_);
    heads_.store(nullptr, std::memory_order_relaxed);  // so does the head table's
    head_frame_ = nullptr;
    head_table_bytes_.store(0, std::memory_order_relaxed);
  }
  for (int i = 0; i < kShards; ++i) {
    Shard& s = shards_[i];
    port::MutexLock l(&s.mu);
    s.table.store(0, std::memory_order_release);
    s.hand = nullptr;
    s.pages = 0;
    s.ring_size = 0;
  }
  used_bytes_.store(0, std::memory_order_relaxed);
  retired_bytes_.store(0, std::memory_order_relaxed);
  {
    port::MutexLock l(&retired_mu_);
    retired_ = RetiredList();
  }
  port::MutexLock l(&free_mu_);
  free_frames_ = nullptr;
}

CacheStats PageCache::Stats() const {
  CacheStats st;
  st.capacity_bytes = capacity_;
  st.used_bytes = used_bytes_.load(std::memory_order_relaxed);
  st.block_reads = block_reads_.load(std::memory_order_relaxed);
  st.leaf_head_bytes = head_table_bytes_.load(std::memory_order_relaxed);
  for (const HitCounter& c : peek_hits_) {
    st.hits += c.n.load(std::memory_order_relaxed);
    st.misses += c.misses.load(std::memory_order_relaxed);
  }
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
