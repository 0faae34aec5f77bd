// AddressSanitizer sees pooled memory: free, pooled and closed segments are
// poisoned, handed-out ones are not. Runs only in ASan builds.
#include <gtest/gtest.h>

#include "alloc/alloc_test_util.h"

#if defined(ARENAKV_TEST_ASAN)
#include <sanitizer/asan_interface.h>
#endif

namespace arenakv::alloc {
namespace {

using test::MakeArena;
using test::MakePool;

#if defined(ARENAKV_TEST_ASAN)

bool Poisoned(const void* p) { return __asan_address_is_poisoned(p) != 0; }

TEST(AsanPoisonTest, FreeSegmentsArePoisoned) {
  auto pool = MakePool();
  Segment s;
  ASSERT_OK(pool->Allocate(8192, &s));
  EXPECT_FALSE(Poisoned(s.data));
  EXPECT_FALSE(Poisoned(s.data + s.size - 1));
  // Never handed out yet: the rest of its chunk is poisoned already.
  EXPECT_TRUE(Poisoned(s.data + s.size));
  ASSERT_OK(pool->Release(s));
  EXPECT_TRUE(Poisoned(s.data));
  EXPECT_TRUE(Poisoned(s.data + s.size - 1));
  Segment t;
  ASSERT_OK(pool->Allocate(8192, &t));
  ASSERT_EQ(t.data, s.data);
  EXPECT_FALSE(Poisoned(t.data));
  ASSERT_OK(pool->Release(t));
}

TEST(AsanPoisonTest, ArenaBlocksAndClosedArenasArePoisoned) {
  auto pool = MakePool();
  auto arena = MakeArena(pool);
  void* p;
  ASSERT_OK(arena->Allocate(40, 8, &p));
  char* c = static_cast<char*>(p);
  EXPECT_FALSE(Poisoned(c));
  EXPECT_FALSE(Poisoned(c + 39));
  EXPECT_TRUE(Poisoned(c + 40));  // the unused rest of the block
  Segment s;
  ASSERT_OK(arena->AllocateSegment(4096, &s));
  EXPECT_FALSE(Poisoned(s.data));
  arena->Close();
  EXPECT_TRUE(Poisoned(c));
  EXPECT_TRUE(Poisoned(s.data));
}

// A segment of its own (above the largest class) goes back to the OS when
// released or when its pool closes: whatever poison lay on it must go too,
// or the next mapping at that address (anyone's) is reported on first use.
// A stale granule there failed the pool's own slot table at random.
TEST(AsanPoisonTest, UnmappedSegmentsLeaveNoPoisonBehind) {
  constexpr size_t kBig = 4 << 20;
  for (bool close_pool : {false, true}) {
    auto pool = MakePool();
    Segment s;
    ASSERT_OK(pool->Allocate(kBig, &s));
    char* const data = s.data;
    // As an arena leaves a block: its objects addressable, the rest not.
    __asan_poison_memory_region(data + 3, 4096);
    if (close_pool) {
      pool.reset();
    } else {
      ASSERT_OK(pool->Release(s));
    }
    EXPECT_EQ(__asan_region_is_poisoned(data, kBig), nullptr) << "close_pool " << close_pool;
  }
}

TEST(AsanPoisonDeathTest, TouchingAReleasedSegmentIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto pool = MakePool();
  Segment s;
  ASSERT_OK(pool->Allocate(4096, &s));
  ASSERT_OK(pool->Release(s));
  EXPECT_DEATH({ static_cast<volatile char*>(s.data)[10] = 1; }, "use-after-poison");
}

#else

TEST(AsanPoisonTest, OnlyInAddressSanitizerBuilds) {
  GTEST_SKIP() << "poisoning is checked in -DARENAKV_SANITIZE=address builds";
}

#endif

}  // namespace
}  // namespace arenakv::alloc
