// The inline hot paths: a pool segment taken from and given back to the
// thread's magazine, and a confined arena's inline pointer bump. Each keeps
// the checks of the out-of-line paths (double and foreign release, address,
// size and owner of the handle, closed pools and arenas), which these tests
// drive through the fast paths on purpose: the magazine is warmed first, so
// the releases and allocations below are served by it.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "alloc/alloc_test_util.h"

namespace arenakv::alloc {
namespace {

using test::ExpectAccountingConsistent;
using test::MakeArena;
using test::MakePool;

constexpr size_t kKiB = 1024;

// Attaches the calling thread's magazine for `pool` and fills its 4 KiB bin.
void WarmMagazine(SegmentPool& pool) {
  Segment s;
  ASSERT_OK(pool.Allocate(4 * kKiB, &s));
  ASSERT_OK(pool.Release(s));
}

void ExpectSameStats(const PoolStats& a, const PoolStats& b) {
  EXPECT_EQ(a.in_use_bytes, b.in_use_bytes);
  EXPECT_EQ(a.retained_bytes, b.retained_bytes);
  EXPECT_EQ(a.committed_bytes, b.committed_bytes);
}

TEST(FastPathTest, GenerationsStayConsistentThroughTheWrap) {
  // One slot recycled through the magazine 2^20 + 3 times: the generation
  // (20 bits in both the token and the slot) wraps, and every cycle's handle
  // must still release exactly once and be dead afterwards.
  auto pool = MakePool();
  WarmMagazine(*pool);
  Segment prev;
  ASSERT_OK(pool->Allocate(4 * kKiB, &prev));
  ASSERT_OK(pool->Release(prev));
  const int cycles = (1 << 20) + 3;
  for (int i = 0; i < cycles; ++i) {
    Segment s;
    ASSERT_OK(pool->Allocate(4 * kKiB, &s));
    ASSERT_EQ(s.data, prev.data);  // LIFO: the same slot every time
    ASSERT_NE(s.token, prev.token);
    s.data[0] = static_cast<char>(i);
    const bool probe = i % 4096 == 0 || i > (1 << 20) - 4;
    if (probe) {
      ASSERT_OK(pool->Check(s));
      ASSERT_TRUE(pool->Check(prev).IsClosed());
      ASSERT_TRUE(pool->Release(prev).IsInvalidArgument());
    }
    ASSERT_TRUE(pool->Release(s).ok()) << "cycle " << i;
    if (probe) {
      ASSERT_TRUE(pool->Release(s).IsInvalidArgument()) << "cycle " << i;
    }
    prev = s;
  }
  EXPECT_EQ(pool->Stats().in_use_bytes, 0u);
  ExpectAccountingConsistent(*pool);
}

TEST(FastPathTest, BadHandlesAreRejectedAndLeaveThePoolUnchanged) {
  auto pool = MakePool();
  auto other = MakePool();
  WarmMagazine(*pool);
  WarmMagazine(*other);
  auto arena = MakeArena(pool);
  Segment s, owned, foreign;
  ASSERT_OK(pool->Allocate(4 * kKiB, &s));
  ASSERT_OK(arena->AllocateSegment(4 * kKiB, &owned));
  ASSERT_OK(other->Allocate(4 * kKiB, &foreign));
  // The magazine consulted inline is the thread's most recently used one.
  WarmMagazine(*pool);
  const PoolStats before = pool->Stats();

  Segment bad = s;
  bad.size = 8 * kKiB;  // wrong size
  EXPECT_TRUE(pool->Release(bad).IsInvalidArgument());
  bad = s;
  bad.data += 64;  // wrong address
  EXPECT_TRUE(pool->Release(bad).IsInvalidArgument());
  bad = s;
  bad.token += 1;  // a generation that is not live
  EXPECT_TRUE(pool->Release(bad).IsInvalidArgument());
  Status st = pool->Release(foreign);
  EXPECT_TRUE(st.IsInvalidArgument());
  EXPECT_NE(st.message().find("another pool"), std::string::npos) << st.ToString();
  st = pool->Release(owned);  // an arena's segment must go back through the arena
  EXPECT_TRUE(st.IsInvalidArgument());
  EXPECT_NE(st.message().find("arena"), std::string::npos) << st.ToString();

  ExpectSameStats(pool->Stats(), before);
  EXPECT_OK(pool->Check(s));
  EXPECT_OK(arena->Check(owned));
  EXPECT_OK(other->Check(foreign));

  ASSERT_OK(pool->Release(s));
  st = pool->Release(s);
  EXPECT_TRUE(st.IsInvalidArgument());
  EXPECT_NE(st.message().find("not live"), std::string::npos) << st.ToString();
  ASSERT_OK(arena->ReleaseSegment(owned));
  EXPECT_TRUE(arena->ReleaseSegment(owned).IsInvalidArgument());
  ASSERT_OK(other->Release(foreign));
  Segment z;
  EXPECT_TRUE(pool->Allocate(0, &z).IsInvalidArgument());
  EXPECT_FALSE(z.valid());
  arena->Close();
  EXPECT_EQ(pool->Stats().in_use_bytes, 0u);
  ExpectAccountingConsistent(*pool);
}

TEST(FastPathTest, CrossThreadRacingReleasesHandOutEachSegmentOnce) {
  // Two threads with warm magazines race to release the same 64 handles; each
  // handle succeeds exactly once, and after the threads flush at exit no
  // segment is handed out twice.
  auto pool = MakePool();
  constexpr int kSegments = 64;
  const int rounds = test::kSanitized ? 20 : 100;
  for (int round = 0; round < rounds; ++round) {
    std::vector<Segment> segs(kSegments);
    for (Segment& s : segs) ASSERT_OK(pool->Allocate(4 * kKiB, &s));
    std::atomic<int> ok{0};
    std::atomic<int> ready{0};
    auto releaser = [&] {
      WarmMagazine(*pool);
      ready.fetch_add(1);
      while (ready.load() < 2) std::this_thread::yield();
      for (const Segment& s : segs) ok.fetch_add(pool->Release(s).ok() ? 1 : 0);
    };
    std::thread a(releaser), b(releaser);
    a.join();
    b.join();
    ASSERT_EQ(ok.load(), kSegments);
    ASSERT_EQ(pool->Stats().in_use_bytes, 0u);
    std::vector<Segment> again(2 * kSegments);
    std::set<char*> seen;
    for (Segment& s : again) {
      ASSERT_OK(pool->Allocate(4 * kKiB, &s));
      ASSERT_TRUE(seen.insert(s.data).second) << "segment handed out twice";
    }
    for (const Segment& s : again) ASSERT_OK(pool->Release(s));
  }
  ExpectAccountingConsistent(*pool);
}

TEST(FastPathTest, ClosedPoolDoesNotServeFromTheMagazine) {
  auto pool = MakePool();
  WarmMagazine(*pool);
  Segment s;
  ASSERT_OK(pool->Allocate(4 * kKiB, &s));
  ASSERT_OK(pool->Release(s));  // now cached by this thread
  ASSERT_OK(pool->Close());
  Segment t;
  EXPECT_TRUE(pool->Allocate(4 * kKiB, &t).IsClosed());
  EXPECT_FALSE(t.valid());
  EXPECT_TRUE(pool->Release(s).IsClosed());
  // A new pool (new magazine) on the same thread works as usual.
  auto next = MakePool();
  ASSERT_OK(next->Allocate(4 * kKiB, &t));
  ASSERT_OK(next->Release(t));
  EXPECT_OK(next->Close());
}

TEST(FastPathTest, InlineBumpKeepsTheArenaContract) {
  auto pool = MakePool();
  auto arena = MakeArena(pool);
  size_t expect_used = 0;
  std::set<void*> seen;
  for (int i = 0; i < 20000; ++i) {
    const size_t bytes = i % 97;  // includes 0, counted as 1
    const size_t align = size_t{1} << (i % 8);
    void* p;
    ASSERT_OK(arena->Allocate(bytes, align, &p));
    ASSERT_NE(p, nullptr);
    ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u);
    ASSERT_TRUE(seen.insert(p).second);
    std::memset(p, 0x5a, bytes);
    expect_used += bytes == 0 ? 1 : bytes;
  }
  EXPECT_EQ(arena->Stats().used_bytes, expect_used);
  void* p = nullptr;
  EXPECT_TRUE(arena->Allocate(8, 0, &p).IsInvalidArgument());
  EXPECT_TRUE(arena->Allocate(8, 24, &p).IsInvalidArgument());
  ASSERT_OK(arena->Allocate(8, 8192, &p));  // own segment
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 8192, 0u);
  arena->Close();
  EXPECT_TRUE(arena->Allocate(8, 8, &p).IsClosed());
  EXPECT_EQ(arena->Stats().used_bytes, 0u);
  EXPECT_EQ(pool->Stats().in_use_bytes, 0u);

  // Closing the pool closes a confined arena that still has room in its
  // block: its next allocation is Closed, not a bump into unmapped memory.
  auto live = MakeArena(pool);
  ASSERT_OK(live->Allocate(16, 8, &p));
  testing::internal::CaptureStderr();
  EXPECT_FALSE(pool->Close().ok());  // the open arena is reported
  testing::internal::GetCapturedStderr();
  EXPECT_TRUE(live->Allocate(16, 8, &p).IsClosed());
  EXPECT_TRUE(live->closed());
}

TEST(FastPathTest, ArenasCreatedOnAClosedPoolOrParentAreClosedErrors) {
  auto pool = MakePool();
  auto parent = MakeArena(pool);
  parent->Close();
  std::unique_ptr<Arena> child;
  EXPECT_TRUE(parent->NewChild(ArenaOptions(), &child).IsClosed());
  EXPECT_EQ(child, nullptr);
  EXPECT_EQ(pool->Stats().open_arenas, 0u);
  parent.reset();
  ASSERT_OK(pool->Close());
  std::unique_ptr<Arena> arena;
  EXPECT_TRUE(Arena::Create(pool, ArenaOptions(), &arena).IsClosed());
  EXPECT_EQ(arena, nullptr);
  EXPECT_EQ(pool->Stats().open_arenas, 0u);
}

}  // namespace
}  // namespace arenakv::alloc
