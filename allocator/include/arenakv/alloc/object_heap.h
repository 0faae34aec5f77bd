// ObjectHeap: memory for the long-lived objects of one owner (a database's
// pool, cache, tree, memtables, log writer and the database object itself),
// in anonymous mappings of the heap's own.
//
// Why not the C++ heap: the C library gives memory back to the OS only from
// the top of its heap, and keeps recently freed chunks in per-thread caches
// marked in use. A thousand databases opened together put their objects one
// above the other; once all are closed the heap is free but a few cached
// chunks of the last one sit at its top, and all of it stays resident. Here
// the mappings go back to the OS when the last object in them is freed,
// whatever the order of the closes.
//
// The heap counts its users: the creator's reference and one per block
// handed out. It destroys itself (unmapping everything, its own state
// included) when the count reaches zero, so a block may outlive the
// creator's reference. Small blocks are recycled by size class
// (RecyclingResource); blocks over a page get mappings of their own.
// Under AddressSanitizer free blocks are poisoned, and the mappings are
// root regions for the leak checker (they hold pointers into the C++ heap).
//
// HeapObject is the base of a class whose objects may live in one:
// `new (heap) T(...)` places an object there and `new T(...)` in the C++
// heap; `delete` (a std::unique_ptr's too) frees either, from a header kept
// before the object.
//
// Thread safety: Allocate, Deallocate, Ref and Unref from any thread.
#ifndef ARENAKV_ALLOC_OBJECT_HEAP_H_
#define ARENAKV_ALLOC_OBJECT_HEAP_H_

#include <cstddef>
#include <memory_resource>
#include <new>

namespace arenakv::alloc {

class ObjectHeap final : public std::pmr::memory_resource {
 public:
  // A heap holding one reference, the caller's; nullptr if the first
  // mapping fails.
  static ObjectHeap* Create();

  void Ref();
  // Drops a reference; the last one destroys the heap.
  void Unref();

  // Bytes mapped now (its own state included).
  size_t mapped_bytes() const;
  // Blocks handed out and not yet returned.
  size_t live_blocks() const;

  ObjectHeap(const ObjectHeap&) = delete;
  ObjectHeap& operator=(const ObjectHeap&) = delete;

 private:
  struct Rep;
  explicit ObjectHeap(Rep* rep) : rep_(rep) {}
  ~ObjectHeap() override = default;

  void* do_allocate(size_t bytes, size_t align) override;
  void do_deallocate(void* p, size_t bytes, size_t align) override;
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return this == &other;
  }
  void Destroy();

  Rep* const rep_;
};

// `heap` as a memory resource, the C++ heap's for none: for containers
// and control blocks of objects that live in it (or would).
inline std::pmr::memory_resource* ResourceOf(ObjectHeap* heap) {
  return heap != nullptr ? static_cast<std::pmr::memory_resource*>(heap)
                         : std::pmr::new_delete_resource();
}

class HeapObject {
 public:
  static void* operator new(size_t bytes, ObjectHeap* heap) {
    return Place(bytes, __STDCPP_DEFAULT_NEW_ALIGNMENT__, heap);
  }
  static void* operator new(size_t bytes, std::align_val_t align, ObjectHeap* heap) {
    return Place(bytes, static_cast<size_t>(align), heap);
  }
  static void* operator new(size_t bytes) {
    return Place(bytes, __STDCPP_DEFAULT_NEW_ALIGNMENT__, nullptr);
  }
  static void* operator new(size_t bytes, std::align_val_t align) {
    return Place(bytes, static_cast<size_t>(align), nullptr);
  }
  static void operator delete(void* p) { Free(p); }
  static void operator delete(void* p, std::align_val_t) { Free(p); }
  // Called when a constructor throws.
  static void operator delete(void* p, ObjectHeap*) { Free(p); }
  static void operator delete(void* p, std::align_val_t, ObjectHeap*) { Free(p); }

  // The heap `p` (an object of a class derived from this) lives in;
  // nullptr for the C++ heap.
  static ObjectHeap* HeapOf(const void* p);

 private:
  static void* Place(size_t bytes, size_t align, ObjectHeap* heap);
  static void Free(void* p);
};

}  // namespace arenakv::alloc

#endif  // ARENAKV_ALLOC_OBJECT_HEAP_H_
