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
