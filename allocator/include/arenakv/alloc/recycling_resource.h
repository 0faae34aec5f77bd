// RecyclingResource: a std::pmr::memory_resource that keeps freed small
// blocks on per-size free lists and hands them out again, over an upstream
// resource (an Arena, whose deallocate frees nothing, or the write path's
// pool resource).
//
// It exists instead of std::pmr::unsynchronized_pool_resource because the
// latter, in the libstdc++ this project builds with (GCC 12), is not
// exception safe: when its upstream throws std::bad_alloc while it grows its
// own chunk list, it swallows the exception and then dereferences an empty
// list (a crash on the allocation that hit the memory budget). Here an
// upstream failure propagates before any state changes, so the resource stays
// usable and the next allocation may succeed once memory is available again.
//
// Blocks up to kMaxPooledBytes are rounded up to a power of two and carved
// from chunks taken upstream; larger ones go straight to upstream and back on
// deallocate. Everything still held is returned upstream on destruction.
// Under AddressSanitizer a block on a free list is poisoned.
//
// Thread safety: none; one thread at a time (guard it with the owner's lock).
#ifndef ARENAKV_ALLOC_RECYCLING_RESOURCE_H_
#define ARENAKV_ALLOC_RECYCLING_RESOURCE_H_

#include <array>
#include <cstddef>
#include <memory_resource>

namespace arenakv::alloc {

class RecyclingResource final : public std::pmr::memory_resource {
 public:
  static constexpr size_t kMinBlockBytes = 16;
  static constexpr size_t kMaxPooledBytes = 4096;

  explicit RecyclingResource(std::pmr::memory_resource* upstream);
  ~RecyclingResource() override;
  RecyclingResource(const RecyclingResource&) = delete;
  RecyclingResource& operator=(const RecyclingResource&) = delete;

  std::pmr::memory_resource* upstream() const { return upstream_; }
  // Bytes currently taken from upstream (chunks and large blocks).
  size_t upstream_bytes() const { return upstream_bytes_; }

 private:
  static constexpr int kClasses = 9;  // 16, 32, ..., 4096
  struct FreeBlock;
  struct Chunk;
  struct Large;

  void* do_allocate(size_t bytes, size_t align) override;
  void do_deallocate(void* p, size_t bytes, size_t align) override;
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override;

  static bool Pooled(size_t bytes, size_t align);
  static int ClassOf(size_t bytes);
  void* AllocateSmall(int cls);
  void* AllocateLarge(size_t bytes, size_t align);
  void DeallocateLarge(void* p, size_t bytes, size_t align);

  std::pmr::memory_resource* const upstream_;
  std::array<FreeBlock*, kClasses> free_{};
  Chunk* chunks_ = nullptr;  // newest first; carving happens in the newest
  char* carve_ = nullptr;    // unused rest of the newest chunk
  char* carve_end_ = nullptr;
  size_t next_chunk_bytes_;
  Large* large_ = nullptr;  // large blocks not yet deallocated
  size_t upstream_bytes_ = 0;
};

}  // namespace arenakv::alloc

#endif  // ARENAKV_ALLOC_RECYCLING_RESOURCE_H_
