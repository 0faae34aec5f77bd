// RecyclingResource: size-class free lists over an upstream memory resource.
// Every upstream call happens before any of this object's state changes, so
// an upstream std::bad_alloc leaves the resource exactly as it was.

#include "arenakv/alloc/recycling_resource.h"

#include <algorithm>
#include <bit>
#include <cstdint>

#include "sanitizer.h"

namespace arenakv::alloc {

struct RecyclingResource::FreeBlock {
  FreeBlock* next;
};

// Lives at the start of each chunk; blocks are carved after it.
struct alignas(RecyclingResource::kMinBlockBytes) RecyclingResource::Chunk {
  Chunk* next;
  size_t bytes;
};

// Lives at the start of each large block's upstream allocation.
struct RecyclingResource::Large {
  Large* prev;
  Large* next;
  size_t total;  // bytes taken from upstream, header included
  size_t align;
};

namespace {

constexpr size_t kFirstChunkBytes = 4096;
constexpr size_t kMaxChunkBytes = 64 * 1024;

size_t AlignUp(size_t n, size_t align) { return (n + align - 1) & ~(align - 1); }

}  // namespace

RecyclingResource::RecyclingResource(std::pmr::memory_resource* upstream)
    : upstream_(upstream), next_chunk_bytes_(kFirstChunkBytes) {}

RecyclingResource::~RecyclingResource() {
  while (large_ != nullptr) {
    // A container that outlives the resource is the caller's bug; give the
    // memory back anyway so the upstream's accounting is right.
    Large* l = large_;
    large_ = l->next;
    upstream_->deallocate(l, l->total, l->align);
  }
  while (chunks_ != nullptr) {
    Chunk* c = chunks_;
    internal::Unpoison(c, c->bytes);
    chunks_ = c->next;
    upstream_->deallocate(c, c->bytes, alignof(Chunk));
  }
}

bool RecyclingResource::Pooled(size_t bytes, size_t align) {
  return bytes <= kMaxPooledBytes && align <= kMinBlockBytes;
}

int RecyclingResource::ClassOf(size_t bytes) {
  const size_t rounded = std::bit_ceil(std::max(bytes, kMinBlockBytes));
  return std::countr_zero(rounded) - std::countr_zero(kMinBlockBytes);
}

void* RecyclingResource::do_allocate(size_t bytes, size_t align) {
  if (Pooled(bytes, align)) return AllocateSmall(ClassOf(bytes));
  return AllocateLarge(bytes, align);
}

void RecyclingResource::do_deallocate(void* p, size_t bytes, size_t align) {
  if (p == nullptr) return;
  if (!Pooled(bytes, align)) {
    DeallocateLarge(p, bytes, align);
    return;
  }
  const int cls = ClassOf(bytes);
  auto* b = static_cast<FreeBlock*>(p);
  b->next = free_[cls];
  free_[cls] = b;
  internal::Poison(b, kMinBlockBytes << cls);
}

bool RecyclingResource::do_is_equal(const std::pmr::memory_resource& other) const noexcept {
  return this == &other;
}

void* RecyclingResource::AllocateSmall(int cls) {
  const size_t size = kMinBlockBytes << cls;
  if (FreeBlock* b = free_[cls]) {
    internal::Unpoison(b, size);
    free_[cls] = b->next;
    return b;
  }
  if (static_cast<size_t>(carve_end_ - carve_) < size) {
    const size_t chunk_bytes = std::max(next_chunk_bytes_, sizeof(Chunk) + size);
    void* mem = upstream_->allocate(chunk_bytes, alignof(Chunk));  // may throw: nothing changed
    // The old chunk's tail becomes free blocks of the largest classes that
    // fit (it is a multiple of kMinBlockBytes).
    while (static_cast<size_t>(carve_end_ - carve_) >= kMinBlockBytes) {
      const size_t rest = carve_end_ - carve_;
      const int c = std::min<int>(kClasses - 1, std::bit_width(rest / kMinBlockBytes) - 1);
      auto* b = reinterpret_cast<FreeBlock*>(carve_);
      internal::Unpoison(b, sizeof(FreeBlock));
      b->next = free_[c];
      internal::Poison(b, sizeof(FreeBlock));
      free_[c] = b;
      carve_ += kMinBlockBytes << c;
    }
    auto* chunk = static_cast<Chunk*>(mem);
    chunk->next = chunks_;
    chunk->bytes = chunk_bytes;
    chunks_ = chunk;
    carve_ = reinterpret_cast<char*>(chunk + 1);
    carve_end_ = static_cast<char*>(mem) + chunk_bytes;
    internal::Poison(carve_, carve_end_ - carve_);
    upstream_bytes_ += chunk_bytes;
    next_chunk_bytes_ = std::min(next_chunk_bytes_ * 2, kMaxChunkBytes);
  }
  void* p = carve_;
  carve_ += size;
  internal::Unpoison(p, size);
  return p;
}

void* RecyclingResource::AllocateLarge(size_t bytes, size_t align) {
  const size_t a = std::max(align, alignof(Large));
  const size_t header = AlignUp(sizeof(Large), a);
  void* mem = upstream_->allocate(header + bytes, a);  // may throw: nothing changed
  auto* l = static_cast<Large*>(mem);
  l->prev = nullptr;
  l->next = large_;
  l->total = header + bytes;
  l->align = a;
  if (large_ != nullptr) large_->prev = l;
  large_ = l;
  upstream_bytes_ += header + bytes;
  return static_cast<char*>(mem) + header;
}

void RecyclingResource::DeallocateLarge(void* p, size_t bytes, size_t align) {
  const size_t a = std::max(align, alignof(Large));
  const size_t header = AlignUp(sizeof(Large), a);
  auto* l = reinterpret_cast<Large*>(static_cast<char*>(p) - header);
  if (l->prev != nullptr) {
    l->prev->next = l->next;
  } else {
    large_ = l->next;
  }
  if (l->next != nullptr) l->next->prev = l->prev;
  (void)bytes;  // l->total says the same
  upstream_bytes_ -= l->total;
  upstream_->deallocate(l, l->total, l->align);
}

}  // namespace arenakv::alloc
