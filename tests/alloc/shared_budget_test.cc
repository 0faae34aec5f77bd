// SharedBudget: pools drawing from one budget; what each commits is taken
// from it and what each gives back to the OS is returned; the owner's
// reclaim runs when it is full, and the pool asking is named.
#include "arenakv/alloc/shared_budget.h"

#include <gtest/gtest.h>

#include <vector>

#include "alloc/alloc_test_util.h"
#include "arenakv/alloc/segment_pool.h"
#include "test_util.h"

namespace arenakv::alloc {
namespace {

using test::ExpectAccountingConsistent;
using test::MakePool;

constexpr size_t kMiB = 1024 * 1024;

PoolOptions Member(const std::shared_ptr<SharedBudget>& budget) {
  PoolOptions o;
  o.shared_budget = budget;
  o.retain_bytes = 0;  // what is released goes back at once
  return o;
}

TEST(SharedBudgetTest, CommittedBytesOfEveryPoolAreTakenAndGivenBack) {
  auto budget = std::make_shared<SharedBudget>(16 * kMiB);
  auto a = MakePool(Member(budget));
  auto b = MakePool(Member(budget));
  std::vector<Segment> sa(3), sb(2);
  for (Segment& s : sa) ASSERT_OK(a->Allocate(kMiB, &s));
  for (Segment& s : sb) ASSERT_OK(b->Allocate(kMiB, &s));
  EXPECT_EQ(budget->used(), a->Stats().committed_bytes + b->Stats().committed_bytes);
  EXPECT_EQ(budget->used(), 5 * kMiB);
  for (const Segment& s : sa) ASSERT_OK(a->Release(s));
  a->Trim();
  EXPECT_EQ(budget->used(), 2 * kMiB);
  ASSERT_OK(b->Charge(kMiB));
  EXPECT_EQ(budget->used(), 3 * kMiB);
  b->Uncharge(kMiB);
  for (const Segment& s : sb) ASSERT_OK(b->Release(s));
  ExpectAccountingConsistent(*a);
  ExpectAccountingConsistent(*b);
  ASSERT_OK(a->Close());
  ASSERT_OK(b->Close());
  EXPECT_EQ(budget->used(), 0u);  // closing gives back what was still retained
  EXPECT_EQ(budget->high_water(), 5 * kMiB);
}

TEST(SharedBudgetTest, FullBudgetCallsTheReclaimNamingTheAskingPool) {
  auto budget = std::make_shared<SharedBudget>(8 * kMiB);
  auto a = MakePool(Member(budget));
  auto b = MakePool(Member(budget));
  // What allocations outside a ReleaseScope may take.
  const size_t usable = budget->capacity() - budget->reserve_bytes();
  std::vector<Segment> held;
  while ((held.size() + 1) * kMiB <= usable) {
    Segment s;
    ASSERT_OK(a->Allocate(kMiB, &s));
    held.push_back(s);
  }
  ASSERT_GE(held.size(), 4u);
  const SegmentPool* asked_by = nullptr;
  size_t asked_for = 0;
  budget->SetReclaim([&](size_t wanted, const SegmentPool* asking) {
    asked_by = asking;
    asked_for = wanted;
    // Frees two of a's segments: a keeps nothing retained, so the budget
    // gets them back at once.
    size_t freed = 0;
    for (int i = 0; i < 2 && !held.empty(); ++i) {
      EXPECT_OK(a->Release(held.back()));
      held.pop_back();
      freed += kMiB;
    }
    a->Trim();
    return freed;
  });
  Segment s;
  ASSERT_OK(b->Allocate(kMiB, &s));
  EXPECT_EQ(asked_by, b.get());
  EXPECT_EQ(asked_for, (held.size() + 2 + 1) * kMiB - usable);  // two freed since
  EXPECT_LE(budget->used(), usable);
  // Nothing left to free: MemoryLimit naming the shared budget, nothing taken.
  budget->SetReclaim([](size_t, const SegmentPool*) { return size_t{0}; });
  const size_t used = budget->used();
  Segment t1, t2;
  ASSERT_OK(b->Allocate(kMiB, &t1));  // the second freed segment
  Status st = b->Allocate(kMiB, &t2);
  EXPECT_TRUE(st.IsMemoryLimit()) << st.ToString();
  EXPECT_NE(st.ToString().find("shared memory budget"), std::string::npos) << st.ToString();
  EXPECT_EQ(budget->used(), used + kMiB);
  ASSERT_OK(b->Release(s));
  ASSERT_OK(b->Release(t1));
  for (const Segment& h : held) ASSERT_OK(a->Release(h));
  ASSERT_OK(a->Close());
  ASSERT_OK(b->Close());
  EXPECT_EQ(budget->used(), 0u);
}

// The last reserve_bytes() are for work that frees memory: a thread in a
// ReleaseScope may take them, others stop short of them.
TEST(SharedBudgetTest, TheReserveIsForReleaseScopes) {
  SharedBudget budget(16 * kMiB);
  ASSERT_GT(budget.reserve_bytes(), 0u);
  const size_t usable = budget.capacity() - budget.reserve_bytes();
  ASSERT_TRUE(budget.TryTake(usable));
  EXPECT_FALSE(budget.TryTake(1));
  EXPECT_EQ(budget.Over(1), 1u);
  {
    SharedBudget::ReleaseScope release;
    EXPECT_EQ(budget.Over(budget.reserve_bytes()), 0u);
    EXPECT_TRUE(budget.TryTake(budget.reserve_bytes() / 2));
    {
      SharedBudget::ReleaseScope nested;
      EXPECT_TRUE(budget.TryTake(budget.reserve_bytes() / 2));
    }
    EXPECT_FALSE(budget.TryTake(budget.reserve_bytes()));  // the capacity binds
    EXPECT_EQ(budget.used(), usable + budget.reserve_bytes() / 2 * 2);
  }
  EXPECT_FALSE(budget.TryTake(1));  // the scope has ended
  budget.Give(budget.used());
  EXPECT_EQ(budget.used(), 0u);
  EXPECT_LE(budget.high_water(), budget.capacity());
}

// The pool's own budget still binds below the shared one, and its own
// reclaim callback serves it.
TEST(SharedBudgetTest, APoolsOwnBudgetStillApplies) {
  auto budget = std::make_shared<SharedBudget>(64 * kMiB);
  PoolOptions o = Member(budget);
  o.budget_bytes = 2 * kMiB;
  auto a = MakePool(o);
  int own_calls = 0;
  a->SetReclaimCallback([&](size_t) {
    ++own_calls;
    return size_t{0};
  });
  Segment s1, s2, s3;
  ASSERT_OK(a->Allocate(kMiB, &s1));
  ASSERT_OK(a->Allocate(kMiB, &s2));
  Status st = a->Allocate(kMiB, &s3);
  EXPECT_TRUE(st.IsMemoryLimit()) << st.ToString();
  EXPECT_EQ(own_calls, 1);
  EXPECT_EQ(budget->used(), 2 * kMiB);
  ASSERT_OK(a->Release(s1));
  ASSERT_OK(a->Release(s2));
  ASSERT_OK(a->Close());
  EXPECT_EQ(budget->used(), 0u);
}

}  // namespace
}  // namespace arenakv::alloc
