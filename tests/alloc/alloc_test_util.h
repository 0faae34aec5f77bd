// Helpers for the allocator tests: sanitizer detection and small pool setups.
#ifndef ARENAKV_TESTS_ALLOC_ALLOC_TEST_UTIL_H_
#define ARENAKV_TESTS_ALLOC_ALLOC_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <memory>

#include "arenakv/alloc/arena.h"
#include "arenakv/alloc/segment_pool.h"
#include "test_util.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENAKV_TEST_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define ARENAKV_TEST_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(ARENAKV_TEST_ASAN)
#define ARENAKV_TEST_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) && !defined(ARENAKV_TEST_TSAN)
#define ARENAKV_TEST_TSAN 1
#endif

namespace arenakv::alloc::test {

constexpr bool kSanitized =
#if defined(ARENAKV_TEST_ASAN) || defined(ARENAKV_TEST_TSAN)
    true;
#else
    false;
#endif

inline std::shared_ptr<SegmentPool> MakePool(PoolOptions options = PoolOptions()) {
  std::shared_ptr<SegmentPool> pool;
  Status s = SegmentPool::Create(options, &pool);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return pool;
}

inline std::unique_ptr<Arena> MakeArena(const std::shared_ptr<SegmentPool>& pool,
                                        ArenaOptions options = ArenaOptions()) {
  std::unique_ptr<Arena> arena;
  Status s = Arena::Create(pool, options, &arena);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return arena;
}

// committed == in use - spilled + retained (+ dedicated, which in_use
// already counts).
inline void ExpectAccountingConsistent(const SegmentPool& pool) {
  PoolStats st = pool.Stats();
  EXPECT_EQ(st.committed_bytes, st.in_use_bytes - st.spilled_bytes + st.retained_bytes)
      << pool.Report();
  size_t in_use = st.dedicated_bytes;
  for (const ClassStats& c : st.classes) in_use += c.in_use_segments * c.class_bytes;
  EXPECT_EQ(st.in_use_bytes, in_use);
  EXPECT_LE(st.committed_bytes, st.high_water_bytes);
}

}  // namespace arenakv::alloc::test

#endif  // ARENAKV_TESTS_ALLOC_ALLOC_TEST_UTIL_H_
