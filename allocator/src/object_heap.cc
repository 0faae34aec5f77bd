// ObjectHeap: chunks carved in 32-byte steps, a free list per step, and a
// mapping of its own for each block over kMaxSmallBytes. The heap's state
// lives at the start of its first mapping, so a heap leaves nothing behind
// in any other allocator once its last block is freed.
#include "arenakv/alloc/object_heap.h"

#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

#include "port/thread_annotations.h"
#include "sanitizer.h"
#include "spin_lock.h"

#if defined(ARENAKV_ASAN)
#include <sanitizer/lsan_interface.h>
#endif

namespace arenakv::alloc {

namespace {

constexpr size_t kPageBytes = 4096;
constexpr size_t kStepBytes = 32;
constexpr size_t kMaxSmallBytes = 4096;
constexpr size_t kSteps = kMaxSmallBytes / kStepBytes;
// The first mapping holds the heap's state and the first blocks: an idle
// database's objects fit in it (its pages are resident only once touched).
constexpr size_t kFirstMapBytes = 32 * 1024;
constexpr size_t kMaxChunkBytes = 64 * 1024;

size_t RoundUp(size_t n, size_t to) { return (n + to - 1) / to * to; }

void* MapPages(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
#if defined(ARENAKV_ASAN)
  __lsan_register_root_region(p, bytes);
#endif
  return p;
}

void UnmapPages(void* p, size_t bytes) {
#if defined(ARENAKV_ASAN)
  internal::Unpoison(p, bytes);
  __lsan_unregister_root_region(p, bytes);
#endif
  munmap(p, bytes);
}

struct FreeBlock {
  FreeBlock* next;
};

// Lives at the start of each chunk after the first mapping.
struct Chunk {
  Chunk* next;
  size_t bytes;
};

}  // namespace

struct ObjectHeap::Rep {
  internal::SpinLock mu;
  size_t refs GUARDED_BY(mu) = 1;
  size_t live_blocks GUARDED_BY(mu) = 0;
  size_t mapped_bytes GUARDED_BY(mu) = kFirstMapBytes;
  std::array<FreeBlock*, kSteps> free GUARDED_BY(mu) = {};
  char* carve GUARDED_BY(mu) = nullptr;
  char* carve_end GUARDED_BY(mu) = nullptr;
  Chunk* chunks GUARDED_BY(mu) = nullptr;  // mapped after the first
  size_t next_chunk_bytes GUARDED_BY(mu) = 16 * 1024;

  void* AllocateSmall(size_t bytes) REQUIRES(mu);
  void DeallocateSmall(void* p, size_t bytes) REQUIRES(mu);
};

ObjectHeap* ObjectHeap::Create() {
  void* mem = MapPages(kFirstMapBytes);
  if (mem == nullptr) return nullptr;
  static_assert(alignof(Rep) <= 64 && alignof(ObjectHeap) <= 64 && sizeof(ObjectHeap) <= 64);
  char* at = static_cast<char*>(mem);
  auto* rep = new (at + 64) Rep();
  auto* heap = new (at) ObjectHeap(rep);
  internal::SpinLockGuard l(&rep->mu);
  rep->carve = at + RoundUp(64 + sizeof(Rep), kStepBytes);
  rep->carve_end = at + kFirstMapBytes;
  internal::Poison(rep->carve, rep->carve_end - rep->carve);
  return heap;
}

void ObjectHeap::Ref() {
  internal::SpinLockGuard l(&rep_->mu);
  ++rep_->refs;
}

void ObjectHeap::Unref() {
  bool last;
  {
    internal::SpinLockGuard l(&rep_->mu);
    last = --rep_->refs == 0;
  }
  if (last) Destroy();
}

size_t ObjectHeap::mapped_bytes() const {
  internal::SpinLockGuard l(&rep_->mu);
  return rep_->mapped_bytes;
}

size_t ObjectHeap::live_blocks() const {
  internal::SpinLockGuard l(&rep_->mu);
  return rep_->live_blocks;
}

void* ObjectHeap::Rep::AllocateSmall(size_t bytes) {
  const size_t step = (bytes + kStepBytes - 1) / kStepBytes - 1;
  const size_t size = (step + 1) * kStepBytes;
  if (FreeBlock* b = free[step]) {
    internal::Unpoison(b, size);
    free[step] = b->next;
    return b;
  }
  if (static_cast<size_t>(carve_end - carve) < size) {
    // The rest of the old chunk is left unused: at most one block's worth.
    const size_t chunk_bytes = next_chunk_bytes;
    void* mem = MapPages(chunk_bytes);
    if (mem == nullptr) return nullptr;
    auto* c = static_cast<Chunk*>(mem);
    c->next = chunks;
    c->bytes = chunk_bytes;
    chunks = c;
    mapped_bytes += chunk_bytes;
    carve = static_cast<char*>(mem) + RoundUp(sizeof(Chunk), kStepBytes);
    carve_end = static_cast<char*>(mem) + chunk_bytes;
    internal::Poison(carve, carve_end - carve);
    next_chunk_bytes = std::min(2 * next_chunk_bytes, kMaxChunkBytes);
  }
  void* p = carve;
  carve += size;
  internal::Unpoison(p, size);
  return p;
}

void ObjectHeap::Rep::DeallocateSmall(void* p, size_t bytes) {
  const size_t step = (bytes + kStepBytes - 1) / kStepBytes - 1;
  auto* b = static_cast<FreeBlock*>(p);
  b->next = free[step];
  free[step] = b;
  internal::Poison(b, (step + 1) * kStepBytes);
}

void* ObjectHeap::do_allocate(size_t bytes, size_t align) {
  if (bytes == 0) bytes = 1;
  void* p;
  if (bytes <= kMaxSmallBytes && align <= kStepBytes) {
    internal::SpinLockGuard l(&rep_->mu);
    p = rep_->AllocateSmall(bytes);
    if (p != nullptr) {
      ++rep_->refs;
      ++rep_->live_blocks;
    }
  } else {
    if (align > kPageBytes) throw std::bad_alloc();
    const size_t mapped = RoundUp(bytes, kPageBytes);
    p = MapPages(mapped);
    if (p != nullptr) {
      internal::SpinLockGuard l(&rep_->mu);
      ++rep_->refs;
      ++rep_->live_blocks;
      rep_->mapped_bytes += mapped;
    }
  }
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void ObjectHeap::do_deallocate(void* p, size_t bytes, size_t align) {
  if (p == nullptr) return;
  if (bytes == 0) bytes = 1;
  bool last;
  if (bytes <= kMaxSmallBytes && align <= kStepBytes) {
    internal::SpinLockGuard l(&rep_->mu);
    rep_->DeallocateSmall(p, bytes);
    --rep_->live_blocks;
    last = --rep_->refs == 0;
  } else {
    const size_t mapped = RoundUp(bytes, kPageBytes);
    UnmapPages(p, mapped);
    internal::SpinLockGuard l(&rep_->mu);
    rep_->mapped_bytes -= mapped;
    --rep_->live_blocks;
    last = --rep_->refs == 0;
  }
  if (last) Destroy();
}

void ObjectHeap::Destroy() {
  Chunk* c;
  {
    internal::SpinLockGuard l(&rep_->mu);
    c = rep_->chunks;
  }
  while (c != nullptr) {
    Chunk* next = c->next;
    UnmapPages(c, c->bytes);
    c = next;
  }
  void* first = this;
  rep_->~Rep();
  this->~ObjectHeap();
  UnmapPages(first, kFirstMapBytes);
}

namespace {

// Kept just below an object placed by HeapObject.
struct PlacedHeader {
  ObjectHeap* heap;
  uint32_t total;   // bytes taken, header and padding included
  uint32_t offset;  // from the start of those bytes to the object
};
static_assert(sizeof(PlacedHeader) == 16);

}  // namespace

void* HeapObject::Place(size_t bytes, size_t align, ObjectHeap* heap) {
  align = std::max<size_t>(align, alignof(PlacedHeader));
  const size_t total = bytes + std::max(sizeof(PlacedHeader), align);
  if (total > UINT32_MAX) throw std::bad_alloc();
  char* raw = static_cast<char*>(heap != nullptr ? heap->allocate(total, alignof(PlacedHeader))
                                                 : ::operator new(total));
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw) + sizeof(PlacedHeader);
  char* object = reinterpret_cast<char*>(RoundUp(start, align));
  PlacedHeader h{heap, static_cast<uint32_t>(total), static_cast<uint32_t>(object - raw)};
  std::memcpy(object - sizeof(h), &h, sizeof(h));
  return object;
}

void HeapObject::Free(void* p) {
  if (p == nullptr) return;
  PlacedHeader h;
  std::memcpy(&h, static_cast<char*>(p) - sizeof(h), sizeof(h));
  char* raw = static_cast<char*>(p) - h.offset;
  if (h.heap != nullptr) {
    h.heap->deallocate(raw, h.total, alignof(PlacedHeader));
  } else {
    ::operator delete(raw);
  }
}

ObjectHeap* HeapObject::HeapOf(const void* p) {
  PlacedHeader h;
  std::memcpy(&h, static_cast<const char*>(p) - sizeof(h), sizeof(h));
  return h.heap;
}

}  // namespace arenakv::alloc
