// Read epochs: sections nest, a retired tag becomes safe only once every
// section that was open when it was retired has ended, and threads get their
// own slots.
#include "tree/read_epoch.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "sync_point_util.h"

namespace arenakv::tree::epoch {
namespace {

TEST(ReadEpochTest, SectionsNest) {
  EXPECT_FALSE(InSection());
  {
    ReadSection outer;
    ASSERT_TRUE(outer.active());
    EXPECT_TRUE(InSection());
    {
      ReadSection inner;
      EXPECT_TRUE(inner.active());
    }
    EXPECT_TRUE(InSection());  // the inner one ending does not end the outer
    uint64_t tag = Retire();
    EXPECT_LT(SafeTag(), tag);  // our own open section holds it back
  }
  EXPECT_FALSE(InSection());
  uint64_t tag = Retire();
  EXPECT_GE(SafeTag(), tag);
}

TEST(ReadEpochTest, TagWaitsForSectionsOpenWhenRetired) {
  std::atomic<int> stage{0};
  std::thread reader([&] {
    ReadSection s;
    EXPECT_TRUE(s.active());
    stage.store(1);
    while (stage.load() != 2) std::this_thread::yield();
  });
  while (stage.load() != 1) std::this_thread::yield();
  const uint64_t tag = Retire();
  for (int i = 0; i < 100; ++i) EXPECT_LT(SafeTag(), tag);
  // The waiter must find the tag held back time after time, never return.
  std::atomic<bool> waited{false};
  std::atomic<int> held_back{0};
  test::Notifier notifier;
  test::SyncPointScope scope;
  SyncPoint::Get()->SetCallBack("ReadEpoch::WaitUntilSafe:NotYetSafe", [&](void* arg) {
    if (*static_cast<uint64_t*>(arg) == tag) held_back.fetch_add(1);
    notifier.Notify();
  });
  SyncPoint::Get()->EnableProcessing();
  std::thread waiter([&] {
    WaitUntilSafe(tag);
    waited.store(true);
    notifier.Notify();
  });
  notifier.WaitUntil([&] { return held_back.load() >= 100 || waited.load(); });
  EXPECT_FALSE(waited.load());
  EXPECT_GE(held_back.load(), 100);
  stage.store(2);
  reader.join();
  waiter.join();
  EXPECT_TRUE(waited.load());
  EXPECT_GE(SafeTag(), tag);
}

TEST(ReadEpochTest, SectionOpenedAfterRetireDoesNotHoldItBack) {
  const uint64_t tag = Retire();
  std::atomic<int> stage{0};
  std::thread late([&] {
    ReadSection s;
    stage.store(1);
    while (stage.load() != 2) std::this_thread::yield();
  });
  while (stage.load() != 1) std::this_thread::yield();
  EXPECT_GE(SafeTag(), tag);
  const uint64_t later = Retire();
  EXPECT_LT(SafeTag(), later);  // but it holds back what is retired during it
  stage.store(2);
  late.join();
  EXPECT_GE(SafeTag(), later);
}

TEST(ReadEpochTest, ManyThreadsEachGetASlotAndGiveItBack) {
  // More threads over time than there are slots: slots come back at exit.
  for (int round = 0; round < 4; ++round) {
    std::vector<std::thread> threads;
    std::atomic<int> active{0};
    for (int t = 0; t < kMaxSlots / 2; ++t) {
      threads.emplace_back([&] {
        ReadSection s;
        if (s.active()) active.fetch_add(1);
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(active.load(), kMaxSlots / 2);
  }
  EXPECT_GE(SafeTag(), Retire());
}

}  // namespace
}  // namespace arenakv::tree::epoch
