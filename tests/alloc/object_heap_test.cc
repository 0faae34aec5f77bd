// ObjectHeap: blocks recycled by size, large blocks mapped one by one, the
// heap unmapped (its own state included) when its last user lets go, and
// HeapObject placing objects in a heap or in the C++ heap.
#include "arenakv/alloc/object_heap.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "alloc/alloc_test_util.h"

#if defined(ARENAKV_TEST_ASAN)
#include <sanitizer/asan_interface.h>
#endif

namespace arenakv::alloc {
namespace {

// Whether the page holding `p` is mapped (mincore fails with ENOMEM if not).
bool Mapped(const void* p) {
  const uintptr_t page = reinterpret_cast<uintptr_t>(p) & ~uintptr_t{4095};
  unsigned char vec = 0;
  return mincore(reinterpret_cast<void*>(page), 4096, &vec) == 0;
}

TEST(ObjectHeapTest, RecyclesBlocksOfASize) {
  ObjectHeap* heap = ObjectHeap::Create();
  ASSERT_NE(heap, nullptr);
  const size_t mapped = heap->mapped_bytes();
  void* a = heap->allocate(200, 16);
  std::memset(a, 0xab, 200);
  heap->deallocate(a, 200, 16);
  // Sizes in the same 32-byte step share a free list.
  for (int i = 0; i < 10000; ++i) {
    void* b = heap->allocate(193 + i % 32, 16);
    EXPECT_EQ(b, a);
    heap->deallocate(b, 193 + i % 32, 16);
  }
  EXPECT_EQ(heap->mapped_bytes(), mapped);
  EXPECT_EQ(heap->live_blocks(), 0u);
  heap->Unref();
}

TEST(ObjectHeapTest, GrowsByChunksAndLargeBlocksByMappings) {
  ObjectHeap* heap = ObjectHeap::Create();
  ASSERT_NE(heap, nullptr);
  const size_t first = heap->mapped_bytes();
  std::vector<void*> small;
  for (int i = 0; i < 200; ++i) {  // 200 KiB: well past the first mapping
    small.push_back(heap->allocate(1024, 16));
    std::memset(small.back(), i, 1024);
  }
  EXPECT_GT(heap->mapped_bytes(), first + 150 * 1024);
  void* large = heap->allocate(100000, 64);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(large) % 4096, 0u);
  const size_t with_large = heap->mapped_bytes();
  heap->deallocate(large, 100000, 64);
  EXPECT_EQ(heap->mapped_bytes(), with_large - 25 * 4096);  // its own pages, gone
  EXPECT_FALSE(Mapped(large));
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(static_cast<unsigned char*>(small[i])[1023], static_cast<unsigned char>(i));
    heap->deallocate(small[i], 1024, 16);
  }
  EXPECT_EQ(heap->live_blocks(), 0u);
  heap->Unref();
}

TEST(ObjectHeapTest, TheLastUserUnmapsIt) {
  ObjectHeap* heap = ObjectHeap::Create();
  ASSERT_NE(heap, nullptr);
  void* block = heap->allocate(64, 16);
  std::vector<void*> grown;
  for (int i = 0; i < 64; ++i) grown.push_back(heap->allocate(4000, 16));  // more chunks
  for (void* p : grown) heap->deallocate(p, 4000, 16);
  heap->Unref();  // the creator lets go first: the block keeps it
  EXPECT_TRUE(Mapped(heap));
  EXPECT_EQ(heap->live_blocks(), 1u);
  heap->deallocate(block, 64, 16);
  EXPECT_FALSE(Mapped(heap));
  EXPECT_FALSE(Mapped(block));
  EXPECT_FALSE(Mapped(grown.back()));
}

struct alignas(64) Aligned : HeapObject {
  explicit Aligned(int v) : value(v) {}
  int value;
  char pad[300];
};

struct Throws : HeapObject {
  Throws() { throw std::runtime_error("constructor failed"); }
  char pad[100];
};

struct Base : HeapObject {
  virtual ~Base() = default;
};
struct Derived : Base {
  std::vector<int> v = std::vector<int>(100, 7);
  char pad[500];
};

TEST(ObjectHeapTest, HeapObjectsLiveWhereTheyArePlaced) {
  ObjectHeap* heap = ObjectHeap::Create();
  ASSERT_NE(heap, nullptr);
  auto in_heap = std::unique_ptr<Aligned>(new (heap) Aligned(7));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(in_heap.get()) % 64, 0u);
  EXPECT_EQ(HeapObject::HeapOf(in_heap.get()), heap);
  EXPECT_EQ(in_heap->value, 7);
  auto in_cpp_heap = std::make_unique<Aligned>(8);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(in_cpp_heap.get()) % 64, 0u);
  EXPECT_EQ(HeapObject::HeapOf(in_cpp_heap.get()), nullptr);
  // Deleted through a base with a virtual destructor: the derived size.
  std::unique_ptr<Base> derived(new (heap) Derived());
  EXPECT_EQ(heap->live_blocks(), 2u);
  derived.reset();
  in_heap.reset();
  EXPECT_EQ(heap->live_blocks(), 0u);
  // A constructor that throws gives its block back.
  EXPECT_THROW(std::unique_ptr<Throws>(new (heap) Throws()), std::runtime_error);
  EXPECT_EQ(heap->live_blocks(), 0u);
  heap->Unref();
}

TEST(ObjectHeapTest, ConcurrentUsersAndTheLastUnref) {
  ObjectHeap* heap = ObjectHeap::Create();
  ASSERT_NE(heap, nullptr);
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    heap->Ref();  // each thread's own reference
    threads.emplace_back([heap, t, seed] {
      std::mt19937 rng(seed + t);
      std::vector<std::pair<void*, size_t>> held;
      for (int i = 0; i < 20000; ++i) {
        if (held.empty() || rng() % 2 == 0) {
          const size_t n = 1 + rng() % (rng() % 16 == 0 ? 20000 : 600);
          void* p = heap->allocate(n, 16);
          std::memset(p, t, n);
          held.emplace_back(p, n);
        } else {
          const size_t at = rng() % held.size();
          auto [p, n] = held[at];
          EXPECT_EQ(static_cast<unsigned char*>(p)[n - 1], static_cast<unsigned char>(t));
          heap->deallocate(p, n, 16);
          held[at] = held.back();
          held.pop_back();
        }
      }
      for (auto [p, n] : held) heap->deallocate(p, n, 16);
      heap->Unref();
    });
  }
  heap->Unref();  // the creator's: the threads' references keep it
  for (auto& th : threads) th.join();
  EXPECT_FALSE(Mapped(heap));
}

#if defined(ARENAKV_TEST_ASAN)
TEST(ObjectHeapTest, FreeBlocksArePoisoned) {
  ObjectHeap* heap = ObjectHeap::Create();
  ASSERT_NE(heap, nullptr);
  char* p = static_cast<char*>(heap->allocate(100, 16));
  EXPECT_FALSE(__asan_address_is_poisoned(p));
  EXPECT_FALSE(__asan_address_is_poisoned(p + 99));
  EXPECT_TRUE(__asan_address_is_poisoned(p + 128));  // not handed out yet
  heap->deallocate(p, 100, 16);
  EXPECT_TRUE(__asan_address_is_poisoned(p));
  heap->Unref();
}
#endif

}  // namespace
}  // namespace arenakv::alloc
