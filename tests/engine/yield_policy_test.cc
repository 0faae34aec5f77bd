// YieldPolicy with made-up clock readings: slow yields switch yielding off
// only when several come close together, and only for a while.
#include "db/yield_policy.h"

#include <gtest/gtest.h>

namespace arenakv {
namespace {

constexpr int64_t kUs = 1000;
constexpr int64_t kMs = 1000 * kUs;

TEST(YieldPolicyTest, QuickYieldsNeverStopYielding) {
  YieldPolicy p;
  int64_t t = 5 * kMs;
  for (int i = 0; i < 100000; ++i) {
    ASSERT_TRUE(p.MayYield(t));
    ASSERT_TRUE(p.Yielded(t, t + 900 * kUs));  // just under a slow one
    t += 901 * kUs;
  }
}

TEST(YieldPolicyTest, ASlowYieldNowAndThenIsTolerated) {
  YieldPolicy p;
  int64_t t = 5 * kMs;
  for (int i = 0; i < 1000; ++i) {
    // Two slow yields in every window, never the third.
    for (uint32_t j = 0; j + 1 < YieldPolicy::kSlowPerWindow; ++j) {
      ASSERT_TRUE(p.Yielded(t, t + 3 * kMs)) << i;
      t += 3 * kMs;
    }
    t += YieldPolicy::kWindowNs;
    ASSERT_TRUE(p.MayYield(t)) << i;
  }
}

TEST(YieldPolicyTest, SlowYieldsCloseTogetherBlockForAWhile) {
  YieldPolicy p;
  int64_t t = 5 * kMs;
  EXPECT_TRUE(p.Yielded(t, t + 3 * kMs));
  t += 3 * kMs;
  EXPECT_TRUE(p.Yielded(t, t + 3 * kMs));
  t += 3 * kMs;
  EXPECT_FALSE(p.Yielded(t, t + 3 * kMs));  // the third within the window
  t += 3 * kMs;
  EXPECT_FALSE(p.MayYield(t));
  EXPECT_FALSE(p.MayYield(t + YieldPolicy::kQuietNs - 1));
  EXPECT_TRUE(p.MayYield(t + YieldPolicy::kQuietNs));
  // Afterwards one slow yield alone does not switch yielding off again.
  t += YieldPolicy::kQuietNs;
  EXPECT_TRUE(p.Yielded(t, t + 3 * kMs));
  EXPECT_TRUE(p.MayYield(t + 3 * kMs));
}

TEST(YieldPolicyTest, ManyQuickYieldsBetweenSlowOnesStillCount) {
  // Waiters on a busy machine also see quick yields (to their own peers):
  // they do not reset the count of slow ones.
  YieldPolicy p;
  int64_t t = 5 * kMs;
  bool may = true;
  for (uint32_t slow = 0; slow < YieldPolicy::kSlowPerWindow; ++slow) {
    for (int i = 0; i < 50; ++i, t += 10 * kUs) ASSERT_TRUE(p.Yielded(t, t + 5 * kUs));
    may = p.Yielded(t, t + 2 * kMs);
    t += 2 * kMs;
  }
  EXPECT_FALSE(may);
  EXPECT_FALSE(p.MayYield(t));
}

}  // namespace
}  // namespace arenakv
