// PoolResource: a std::pmr::memory_resource that takes each allocation
// straight from a SegmentPool and gives it back on deallocate.
//
// For the write path's scratch buffers (a Put's batch, the commit leader's
// group batch, key list and WAL record buffer), which are allocated and freed
// on every commit. An Arena never frees (its deallocate is a no-op), so
// taking them from the database arena grew it by every byte committed until
// Close(); from the pool they are reused, or returned to the OS beyond the
// pool's retained reserve, and still count against the database's budget.
// Allocations are whole segments (4 KiB and up): put a pool resource or a
// monotonic buffer on top for small objects.
//
// Thread safety: thread-safe (the pool is). The pool must outlive it and
// every allocation must be returned before the pool closes.
#ifndef ARENAKV_DB_POOL_RESOURCE_H_
#define ARENAKV_DB_POOL_RESOURCE_H_

#include <cstring>
#include <memory_resource>
#include <new>

#include "arenakv/alloc/segment_pool.h"

namespace arenakv {

class PoolResource final : public std::pmr::memory_resource {
 public:
  explicit PoolResource(alloc::SegmentPool* pool) : pool_(pool) {}

 private:
  // The segment's handle is kept just below the pointer handed out.
  static size_t HeaderBytes(size_t align) {
    return (sizeof(alloc::Segment) + align - 1) & ~(align - 1);
  }

  void* do_allocate(size_t bytes, size_t align) override {
    if (align > 4096) throw std::bad_alloc();  // segments are page-aligned
    const size_t header = HeaderBytes(align);
    alloc::Segment seg;
    if (!pool_->Allocate(bytes + header, &seg).ok()) throw std::bad_alloc();
    char* p = seg.data + header;
    std::memcpy(p - sizeof(seg), &seg, sizeof(seg));
    return p;
  }

  void do_deallocate(void* p, size_t, size_t) override {
    alloc::Segment seg;
    std::memcpy(&seg, static_cast<char*>(p) - sizeof(seg), sizeof(seg));
    pool_->Release(seg).IgnoreError();
  }

  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return this == &other;
  }

  alloc::SegmentPool* const pool_;
};

}  // namespace arenakv

#endif  // ARENAKV_DB_POOL_RESOURCE_H_
