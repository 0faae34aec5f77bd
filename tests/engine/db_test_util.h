// Helpers for the suites that open whole databases: Status assertions and
// the check that a closed database left no pool and no mapping behind.
//
// Thread safety: test code; ExpectPoolsReleased reads process-wide counters.
#ifndef ARENAKV_TESTS_ENGINE_DB_TEST_UTIL_H_
#define ARENAKV_TESTS_ENGINE_DB_TEST_UTIL_H_

#include <gtest/gtest.h>

#include "arenakv/alloc/segment_pool.h"
#include "arenakv/status.h"

#define ASSERT_OK(expr)                                     \
  do {                                                      \
    const ::arenakv::Status _s = (expr);                    \
    ASSERT_TRUE(_s.ok()) << #expr << ": " << _s.ToString(); \
  } while (0)
#define EXPECT_OK(expr)                                     \
  do {                                                      \
    const ::arenakv::Status _s = (expr);                    \
    EXPECT_TRUE(_s.ok()) << #expr << ": " << _s.ToString(); \
  } while (0)

namespace arenakv::test {

// The proof that a closed database left nothing mapped behind: every pool
// in the process is gone and no byte is mapped.
inline void ExpectPoolsReleased() {
  const alloc::ProcessPoolStats stats = alloc::GetProcessPoolStats();
  EXPECT_EQ(stats.mapped_bytes, 0u) << "memory still mapped after Close()";
  EXPECT_EQ(stats.live_pools, 0u) << "a pool is still alive after Close()";
}

}  // namespace arenakv::test

#endif  // ARENAKV_TESTS_ENGINE_DB_TEST_UTIL_H_
