// SegmentPool: size classes, reuse, budget, giving memory back, validation.
#include "arenakv/alloc/segment_pool.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "alloc/alloc_test_util.h"
#include "test_util.h"

namespace arenakv::alloc {
namespace {

using test::ExpectAccountingConsistent;
using test::MakePool;

constexpr size_t kKiB = 1024;
constexpr size_t kMiB = 1024 * 1024;

TEST(SegmentPoolTest, RejectsBadOptions) {
  std::shared_ptr<SegmentPool> pool;
  PoolOptions o;
  o.min_class_bytes = 3000;
  EXPECT_TRUE(SegmentPool::Create(o, &pool).IsInvalidArgument());
  o = PoolOptions();
  o.max_class_bytes = 3 * kMiB;
  EXPECT_TRUE(SegmentPool::Create(o, &pool).IsInvalidArgument());
  o = PoolOptions();
  o.region_bytes = 3 * kMiB;  // not a multiple of 2 MiB
  EXPECT_TRUE(SegmentPool::Create(o, &pool).IsInvalidArgument());
  EXPECT_EQ(pool, nullptr);
}

TEST(SegmentPoolTest, SizeClassRounding) {
  auto pool = MakePool();
  EXPECT_EQ(pool->ClassFor(1), 4 * kKiB);
  EXPECT_EQ(pool->ClassFor(4 * kKiB), 4 * kKiB);
  EXPECT_EQ(pool->ClassFor(4 * kKiB + 1), 8 * kKiB);
  EXPECT_EQ(pool->ClassFor(100 * kKiB), 128 * kKiB);
  EXPECT_EQ(pool->ClassFor(2 * kMiB), 2 * kMiB);
  EXPECT_EQ(pool->ClassFor(2 * kMiB + 1), 0u);

  for (size_t bytes : {size_t{1}, 4 * kKiB, 5000ul, 64 * kKiB + 1, 2 * kMiB}) {
    Segment seg;
    ASSERT_OK(pool->Allocate(bytes, &seg));
    EXPECT_EQ(seg.size, pool->ClassFor(bytes));
    // Segments are aligned to their size class.
    EXPECT_EQ(reinterpret_cast<uintptr_t>(seg.data) % seg.size, 0u);
    std::memset(seg.data, 0xab, seg.size);
    ASSERT_OK(pool->Release(seg));
  }
  Segment big;
  ASSERT_OK(pool->Allocate(2 * kMiB + 1, &big));
  EXPECT_EQ(big.size, 2 * kMiB + 4 * kKiB);  // whole pages
  ASSERT_OK(pool->Release(big));
  Segment none;
  EXPECT_TRUE(pool->Allocate(0, &none).IsInvalidArgument());
  EXPECT_FALSE(none.valid());
  EXPECT_OK(pool->Close());
}

TEST(SegmentPoolTest, ReuseCostsNoSystemCall) {
  auto pool = MakePool();
  Segment seg;
  ASSERT_OK(pool->Allocate(16 * kKiB, &seg));
  ASSERT_OK(pool->Release(seg));
  const PoolStats before = pool->Stats();
  for (int i = 0; i < 10000; ++i) {
    Segment s;
    ASSERT_OK(pool->Allocate(16 * kKiB, &s));
    EXPECT_EQ(s.data, seg.data);  // the retained segment comes back
    s.data[0] = 1;
    ASSERT_OK(pool->Release(s));
  }
  const PoolStats after = pool->Stats();
  EXPECT_EQ(after.mmap_calls, before.mmap_calls);
  EXPECT_EQ(after.munmap_calls, before.munmap_calls);
  EXPECT_EQ(after.madvise_calls, before.madvise_calls);
  EXPECT_EQ(after.retained_bytes, 16 * kKiB);
  ExpectAccountingConsistent(*pool);
}

TEST(SegmentPoolTest, SegmentsAreDisjointAndKeepTheirContents) {
  auto pool = MakePool();
  std::vector<Segment> segs;
  const size_t sizes[] = {4 * kKiB, 8 * kKiB, 64 * kKiB, 512 * kKiB, 2 * kMiB, 3 * kMiB};
  for (int i = 0; i < 120; ++i) {
    Segment s;
    ASSERT_OK(pool->Allocate(sizes[i % 6], &s));
    std::memset(s.data, i, s.size);
    segs.push_back(s);
  }
  std::set<std::pair<uintptr_t, uintptr_t>> ranges;
  for (size_t i = 0; i < segs.size(); ++i) {
    const Segment& s = segs[i];
    for (size_t off = 0; off < s.size; off += 4096) ASSERT_EQ(s.data[off], static_cast<char>(i));
    uintptr_t b = reinterpret_cast<uintptr_t>(s.data);
    auto it = ranges.lower_bound({b, 0});
    if (it != ranges.end()) {
      EXPECT_GE(it->first, b + s.size);
    }
    if (it != ranges.begin()) {
      EXPECT_LE(std::prev(it)->second, b);
    }
    ranges.insert({b, b + s.size});
  }
  PoolStats st = pool->Stats();
  EXPECT_EQ(st.dedicated_bytes, 20 * 3 * kMiB);
  ExpectAccountingConsistent(*pool);
  for (const Segment& s : segs) ASSERT_OK(pool->Release(s));
  EXPECT_EQ(pool->Stats().in_use_bytes, 0u);
  EXPECT_OK(pool->Close());
}

TEST(SegmentPoolTest, DoubleReleaseAndForeignSegmentsLeavePoolUnchanged) {
  auto a = MakePool();
  auto b = MakePool();
  Segment s1, s2, d;
  ASSERT_OK(a->Allocate(4096, &s1));
  ASSERT_OK(a->Allocate(4096, &s2));
  ASSERT_OK(a->Allocate(4 * kMiB, &d));
  ASSERT_OK(a->Release(s1));
  const PoolStats before = a->Stats();

  Status st = a->Release(s1);
  EXPECT_TRUE(st.IsInvalidArgument()) << st.ToString();
  st = b->Release(s2);
  EXPECT_TRUE(st.IsInvalidArgument()) << st.ToString();
  EXPECT_NE(st.message().find("another pool"), std::string::npos) << st.ToString();
  Segment forged = s2;
  forged.token ^= 1;  // wrong generation
  EXPECT_TRUE(a->Release(forged).IsInvalidArgument());
  forged = s2;
  forged.data += 4096;  // wrong address
  EXPECT_TRUE(a->Release(forged).IsInvalidArgument());

  const PoolStats after = a->Stats();
  EXPECT_EQ(after.in_use_bytes, before.in_use_bytes);
  EXPECT_EQ(after.retained_bytes, before.retained_bytes);
  EXPECT_EQ(after.committed_bytes, before.committed_bytes);
  EXPECT_EQ(b->Stats().in_use_bytes, 0u);

  // The slot comes back with a new generation: the old handle stays dead.
  Segment again;
  ASSERT_OK(a->Allocate(4096, &again));
  EXPECT_EQ(again.data, s1.data);
  EXPECT_NE(again.token, s1.token);
  EXPECT_OK(a->Check(again));
  EXPECT_TRUE(a->Check(s1).IsClosed());
  EXPECT_TRUE(a->Release(s1).IsInvalidArgument());
  ASSERT_OK(a->Release(again));
  ASSERT_OK(a->Release(s2));
  ASSERT_OK(a->Release(d));
  EXPECT_TRUE(a->Release(d).IsInvalidArgument());
  ExpectAccountingConsistent(*a);
}

TEST(SegmentPoolTest, UseAfterCloseIsClosed) {
  auto pool = MakePool();
  Segment s;
  ASSERT_OK(pool->Allocate(8192, &s));
  EXPECT_OK(pool->Check(s));
  testing::internal::CaptureStderr();
  Status st = pool->Close();
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(st.IsInvalidArgument()) << st.ToString();
  EXPECT_NE(st.message().find("1 segment(s)"), std::string::npos) << st.ToString();
  EXPECT_NE(err.find("still in use"), std::string::npos) << err;
  EXPECT_TRUE(pool->closed());
  EXPECT_TRUE(pool->Check(s).IsClosed());
  EXPECT_TRUE(pool->Release(s).IsClosed());
  Segment t;
  EXPECT_TRUE(pool->Allocate(4096, &t).IsClosed());
  EXPECT_OK(pool->Close());  // idempotent
  EXPECT_EQ(pool->Stats().reserved_bytes, 0u);
}

TEST(SegmentPoolTest, BudgetDropsRetainedBeforeCallingReclaim) {
  PoolOptions o;
  o.budget_bytes = 256 * kKiB;
  auto pool = MakePool(o);
  int calls = 0;
  pool->SetReclaimCallback([&](size_t) {
    ++calls;
    return size_t{0};
  });
  std::vector<Segment> segs(64);
  for (auto& s : segs) ASSERT_OK(pool->Allocate(4096, &s));
  for (int i = 0; i < 32; ++i) ASSERT_OK(pool->Release(segs[i]));
  EXPECT_EQ(pool->Stats().retained_bytes, 128 * kKiB);
  // Another class: the retained 4 KiB segments are given back to make room.
  Segment big;
  ASSERT_OK(pool->Allocate(64 * kKiB, &big));
  EXPECT_EQ(calls, 0);
  const PoolStats st = pool->Stats();
  EXPECT_EQ(st.reclaim_calls, 0u);
  EXPECT_LE(st.committed_bytes, o.budget_bytes);
  EXPECT_EQ(st.retained_bytes, 64 * kKiB);
  ExpectAccountingConsistent(*pool);
}

// Free segments a thread keeps cached count against the budget, and only
// that thread reuses them; ReleaseThreadCache hands them to the pool, so
// another thread's allocation that needs the room succeeds.
TEST(SegmentPoolTest, ReleasedThreadCacheServesOtherThreads) {
  PoolOptions o;
  o.budget_bytes = 256 * kKiB;
  o.retain_bytes = 2 << 20;  // as a database's pool: a thread cache of small classes
  auto pool = MakePool(o);
  std::vector<Segment> segs(32);
  for (auto& s : segs) ASSERT_OK(pool->Allocate(4096, &s));
  // 128 KiB of 4 KiB segments freed on this thread: its cache holds them.
  for (auto& s : segs) ASSERT_OK(pool->Release(s));
  EXPECT_EQ(pool->Stats().committed_bytes, 128 * kKiB);

  auto other_allocates = [&](size_t bytes) {
    Status result;
    std::thread t([&] {
      Segment big;
      result = pool->Allocate(bytes, &big);
      if (result.ok()) result = pool->Release(big);
      pool->ReleaseThreadCache();
    });
    t.join();
    return result;
  };
  // Another class, 192 KiB: it fits only if the cached 128 KiB goes.
  Status s = other_allocates(192 * kKiB);
  EXPECT_TRUE(s.IsMemoryLimit()) << s.ToString();
  pool->ReleaseThreadCache();
  ASSERT_OK(other_allocates(192 * kKiB));
  EXPECT_LE(pool->Stats().high_water_bytes, o.budget_bytes);
  ExpectAccountingConsistent(*pool);
}

// Charges count memory held outside the pool against its budget: allocations
// and charges share it, retained segments are dropped to make room for a
// charge, and an uncharge gives the room back.
TEST(SegmentPoolTest, ChargesShareTheBudgetWithSegments) {
  PoolOptions o;
  o.budget_bytes = 256 * kKiB;
  auto pool = MakePool(o);
  std::vector<Segment> segs(48);
  for (auto& s : segs) ASSERT_OK(pool->Allocate(4096, &s));
  for (int i = 0; i < 16; ++i) ASSERT_OK(pool->Release(segs[i]));
  EXPECT_EQ(pool->Stats().retained_bytes, 64 * kKiB);
  // 128 KiB in use + 64 retained: a 100 KiB charge drops retained segments.
  Status st = pool->Charge(100 * kKiB);
  ASSERT_TRUE(st.ok()) << st.ToString();
  PoolStats ps = pool->Stats();
  EXPECT_EQ(ps.charged_bytes, 100 * kKiB);
  EXPECT_LE(ps.committed_bytes + ps.charged_bytes, o.budget_bytes);
  EXPECT_LT(ps.retained_bytes, 64 * kKiB);
  ExpectAccountingConsistent(*pool);
  // The budget is now nearly full: charges and segments alike are refused.
  st = pool->Charge(64 * kKiB);
  EXPECT_TRUE(st.IsMemoryLimit()) << st.ToString();
  Segment big;
  st = pool->Allocate(64 * kKiB, &big);
  EXPECT_TRUE(st.IsMemoryLimit()) << st.ToString();
  EXPECT_EQ(pool->Stats().charged_bytes, 100 * kKiB);
  pool->Uncharge(100 * kKiB);
  EXPECT_EQ(pool->Stats().charged_bytes, 0u);
  st = pool->Allocate(64 * kKiB, &big);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_OK(pool->Release(big));
  for (int i = 16; i < 48; ++i) ASSERT_OK(pool->Release(segs[i]));
  ExpectAccountingConsistent(*pool);
}

TEST(SegmentPoolTest, BudgetCallsReclaimThenFailsWithMemoryLimit) {
  PoolOptions o;
  o.budget_bytes = 256 * kKiB;
  auto pool = MakePool(o);
  std::vector<Segment> held(64);
  for (auto& s : held) ASSERT_OK(pool->Allocate(4096, &s));
  size_t asked = 0;
  pool->SetReclaimCallback([&](size_t wanted) {
    asked = wanted;
    // Re-entrant: releases into the pool from inside the callback.
    for (int i = 0; i < 2 && !held.empty(); ++i) {
      EXPECT_OK(pool->Release(held.back()));
      held.pop_back();
    }
    return size_t{8192};
  });
  Segment s;
  ASSERT_OK(pool->Allocate(8192, &s));
  EXPECT_EQ(asked, 8192u);
  EXPECT_EQ(pool->Stats().reclaim_calls, 1u);
  EXPECT_LE(pool->Stats().committed_bytes, o.budget_bytes);

  pool->SetReclaimCallback([&](size_t) { return size_t{0}; });
  Segment t;
  Status st = pool->Allocate(8192, &t);
  EXPECT_TRUE(st.IsMemoryLimit()) << st.ToString();
  EXPECT_FALSE(t.valid());
  Segment d;
  EXPECT_TRUE(pool->Allocate(8 * kMiB, &d).IsMemoryLimit());
  const PoolStats after = pool->Stats();
  EXPECT_EQ(after.limit_failures, 2u);
  EXPECT_EQ(after.reclaim_calls, 3u);
  EXPECT_LE(after.high_water_bytes, o.budget_bytes);
  ExpectAccountingConsistent(*pool);
}

TEST(SegmentPoolTest, DedicatedMappingIsUnmappedOnRelease) {
  const ProcessPoolStats base = GetProcessPoolStats();
  auto pool = MakePool();
  const PoolStats before = pool->Stats();
  Segment d;
  ASSERT_OK(pool->Allocate(5 * kMiB + 1, &d));
  EXPECT_EQ(pool->ClassFor(d.size), 0u);
  std::memset(d.data, 1, d.size);
  PoolStats st = pool->Stats();
  EXPECT_EQ(st.dedicated_bytes, d.size);
  EXPECT_EQ(st.mmap_calls, before.mmap_calls + 1);
  EXPECT_EQ(GetProcessPoolStats().mapped_bytes, base.mapped_bytes + d.size);
  ASSERT_OK(pool->Release(d));
  st = pool->Stats();
  EXPECT_EQ(st.dedicated_bytes, 0u);
  EXPECT_EQ(st.committed_bytes, 0u);
  EXPECT_EQ(st.munmap_calls, before.munmap_calls + 1);
  EXPECT_EQ(GetProcessPoolStats().mapped_bytes, base.mapped_bytes);
}

TEST(SegmentPoolTest, RetainBoundWithBatchedMadvise) {
  PoolOptions o;
  o.retain_bytes = 1 * kMiB;
  auto pool = MakePool(o);
  std::vector<Segment> segs(1024);
  for (auto& s : segs) {
    ASSERT_OK(pool->Allocate(4096, &s));
    s.data[0] = 1;
  }
  const uint64_t madvise_before = pool->Stats().madvise_calls;
  for (auto& s : segs) ASSERT_OK(pool->Release(s));
  const PoolStats st = pool->Stats();
  // The shared lists keep at most retain_bytes; this thread's magazine may
  // hold up to a quarter of it on top.
  EXPECT_LE(st.retained_bytes, o.retain_bytes + o.retain_bytes / 4);
  EXPECT_GE(st.retained_bytes, o.retain_bytes / 2);
  // 3 MiB went back to the OS in a handful of calls, not one per segment.
  EXPECT_GT(st.madvise_calls, madvise_before);
  EXPECT_LT(st.madvise_calls - madvise_before, 64u);
  EXPECT_EQ(st.committed_bytes, st.retained_bytes);
  ExpectAccountingConsistent(*pool);
}

// Closing an arena as large as a page cache gives its regions back with one
// munmap each, not with an madvise per free range first (that made closing a
// database with 320 MiB cached take ~400 ms).
TEST(SegmentPoolTest, ClosingABigArenaUnmapsWholeRegionsWithoutMadvise) {
  PoolOptions o;
  o.retain_bytes = 1 * kMiB;
  o.region_bytes = 8 * kMiB;
  auto pool = MakePool(o);
  auto arena = test::MakeArena(pool, {.name = "cache", .kind = ArenaKind::kShared});
  for (int i = 0; i < 2048; ++i) {  // 32 MiB in 16 KiB frames
    Segment s;
    ASSERT_OK(arena->AllocateSegment(16 * 1024, &s));
    std::memset(s.data, 1, s.size);
  }
  const PoolStats before = pool->Stats();
  arena->Close();
  const PoolStats after = pool->Stats();
  EXPECT_EQ(after.madvise_calls, before.madvise_calls);
  EXPECT_GE(after.munmap_calls, before.munmap_calls + 3);
  EXPECT_LE(after.committed_bytes, o.retain_bytes + o.retain_bytes / 4);
  ExpectAccountingConsistent(*pool);
  EXPECT_OK(pool->Close());
}

// A database's next memtable grows into the segments of the one a
// checkpoint retired (SetRecycleBytes): arenas made with `recycle` leave
// their segments retained within the allowance; reuse draws it down, and no
// other arena's segments are ever kept by it.
TEST(SegmentPoolTest, RecyclingArenasKeepTheirSegmentsWithinTheAllowance) {
  PoolOptions o;
  o.retain_bytes = 1 * kMiB;
  o.region_bytes = 8 * kMiB;
  auto pool = MakePool(o);
  pool->SetRecycleBytes(16 * kMiB);
  auto fill = [&](Arena* arena, int segments) {
    for (int i = 0; i < segments; ++i) {
      Segment s;
      ASSERT_OK(arena->AllocateSegment(256 * kKiB, &s));
      std::memset(s.data, 1, s.size);
    }
  };
  const ArenaOptions recycling{.name = "memtable-1", .kind = ArenaKind::kShared, .recycle = true};
  auto first = test::MakeArena(pool, recycling);
  ASSERT_NO_FATAL_FAILURE(fill(first.get(), 32));  // 8 MiB
  first->Close();
  PoolStats st = pool->Stats();
  EXPECT_EQ(st.recycled_bytes, 8 * kMiB);
  EXPECT_GE(st.retained_bytes, 8 * kMiB);
  ExpectAccountingConsistent(*pool);

  // The next one takes them: no new memory mapped, the allowance drawn down.
  const size_t mmaps = st.mmap_calls;
  auto second =
      test::MakeArena(pool, {.name = "memtable-2", .kind = ArenaKind::kShared, .recycle = true});
  ASSERT_NO_FATAL_FAILURE(fill(second.get(), 16));  // 4 MiB
  st = pool->Stats();
  EXPECT_EQ(st.mmap_calls, mmaps);
  EXPECT_EQ(st.recycled_bytes, 4 * kMiB);
  second->Close();
  EXPECT_EQ(pool->Stats().recycled_bytes, 8 * kMiB);

  // An arena that does not recycle (a transaction's) may use them, but what
  // it frees goes back to the OS beyond the pool's own reserve.
  auto txn = test::MakeArena(pool, {.name = "txn", .kind = ArenaKind::kShared});
  ASSERT_NO_FATAL_FAILURE(fill(txn.get(), 48));  // 12 MiB
  EXPECT_EQ(pool->Stats().recycled_bytes, 0u);
  txn->Close();
  st = pool->Stats();
  EXPECT_EQ(st.recycled_bytes, 0u);
  EXPECT_LE(st.retained_bytes, o.retain_bytes + o.retain_bytes / 4);
  ExpectAccountingConsistent(*pool);

  // More than the allowance: the rest goes back. Then switching it off
  // gives back what it held.
  auto big = test::MakeArena(pool, recycling);
  ASSERT_NO_FATAL_FAILURE(fill(big.get(), 96));  // 24 MiB
  big->Close();
  st = pool->Stats();
  EXPECT_LE(st.recycled_bytes, 16 * kMiB);
  EXPECT_LE(st.retained_bytes, 16 * kMiB + o.retain_bytes + o.retain_bytes / 4);
  pool->SetRecycleBytes(0);
  st = pool->Stats();
  EXPECT_EQ(st.recycled_bytes, 0u);
  EXPECT_LE(st.retained_bytes, o.retain_bytes + o.retain_bytes / 4);
  ExpectAccountingConsistent(*pool);
  EXPECT_OK(pool->Close());
}

// Segments kept for recycling are retained like any other: a budget under
// pressure drops them before it calls reclaim or fails.
TEST(SegmentPoolTest, BudgetDropsRecycledSegmentsFirst) {
  PoolOptions o;
  o.retain_bytes = 1 * kMiB;
  o.region_bytes = 8 * kMiB;
  o.budget_bytes = 12 * kMiB;
  auto pool = MakePool(o);
  int calls = 0;
  pool->SetReclaimCallback([&](size_t) {
    ++calls;
    return size_t{0};
  });
  pool->SetRecycleBytes(8 * kMiB);
  auto memtable = test::MakeArena(
      pool,
      {.name = "memtable", .kind = ArenaKind::kShared, .block_bytes = 256 * kKiB, .recycle = true});
  for (int i = 0; i < 32; ++i) {
    Segment s;
    ASSERT_OK(memtable->AllocateSegment(256 * kKiB, &s));
  }
  memtable->Close();
  ASSERT_EQ(pool->Stats().recycled_bytes, 8 * kMiB);
  // 10 MiB of another class: only room once the recycled segments go.
  auto cache = test::MakeArena(pool, {.name = "cache", .kind = ArenaKind::kShared});
  for (int i = 0; i < 10; ++i) {
    Segment s;
    ASSERT_OK(cache->AllocateSegment(1 * kMiB, &s));
  }
  const PoolStats st = pool->Stats();
  EXPECT_EQ(calls, 0);
  EXPECT_LE(st.committed_bytes, o.budget_bytes);
  EXPECT_LE(st.recycled_bytes, st.retained_bytes);
  ExpectAccountingConsistent(*pool);
  cache->Close();
  EXPECT_OK(pool->Close());
}

TEST(SegmentPoolTest, TrimUnmapsFreeRegions) {
  const ProcessPoolStats base = GetProcessPoolStats();
  PoolOptions o;
  o.region_bytes = 4 * kMiB;
  auto pool = MakePool(o);
  EXPECT_EQ(GetProcessPoolStats().live_pools, base.live_pools + 1);
  std::vector<Segment> segs(6);
  for (auto& s : segs) ASSERT_OK(pool->Allocate(1 * kMiB, &s));
  EXPECT_EQ(pool->Stats().reserved_bytes, 8 * kMiB);
  EXPECT_EQ(GetProcessPoolStats().mapped_bytes, base.mapped_bytes + 8 * kMiB);
  // One segment keeps the first region alive.
  for (size_t i = 1; i < segs.size(); ++i) ASSERT_OK(pool->Release(segs[i]));
  pool->Trim();
  PoolStats st = pool->Stats();
  EXPECT_EQ(st.reserved_bytes, 4 * kMiB);
  EXPECT_EQ(st.retained_bytes, 0u);
  EXPECT_EQ(st.committed_bytes, 1 * kMiB);
  ASSERT_OK(pool->Release(segs[0]));
  pool->Trim();
  st = pool->Stats();
  EXPECT_EQ(st.reserved_bytes, 0u);
  EXPECT_EQ(GetProcessPoolStats().mapped_bytes, base.mapped_bytes);
  // The pool still works after its regions went away.
  Segment again;
  ASSERT_OK(pool->Allocate(4096, &again));
  EXPECT_FALSE(pool->Check(segs[0]).ok());
  ASSERT_OK(pool->Release(again));
  EXPECT_OK(pool->Close());
  EXPECT_EQ(GetProcessPoolStats().mapped_bytes, base.mapped_bytes);
  EXPECT_EQ(GetProcessPoolStats().live_pools, base.live_pools);
}

TEST(SegmentPoolTest, PrefaultCommitsPagesUpFront) {
  PoolOptions o;
  o.prefault = true;
  auto pool = MakePool(o);
  const size_t rss = arenakv::test::ResidentBytes();
  Segment s;
  ASSERT_OK(pool->Allocate(2 * kMiB, &s));
  EXPECT_GE(arenakv::test::ResidentBytes(), rss + kMiB);  // untouched, yet resident
  ASSERT_OK(pool->Release(s));
  Segment d;
  ASSERT_OK(pool->Allocate(3 * kMiB, &d));
  ASSERT_OK(pool->Release(d));
}

TEST(SegmentPoolTest, MadvFreeOptionStillBoundsRetained) {
  PoolOptions o;
  o.use_madv_free = true;
  o.retain_bytes = 0;
  auto pool = MakePool(o);
  Segment s;
  ASSERT_OK(pool->Allocate(64 * kKiB, &s));
  std::memset(s.data, 7, s.size);
  ASSERT_OK(pool->Release(s));
  EXPECT_EQ(pool->Stats().retained_bytes, 0u);
  EXPECT_EQ(pool->Stats().committed_bytes, 0u);
}

#if !defined(ARENAKV_TEST_TSAN)
TEST(SegmentPoolDeathTest, QuarantineFaultsOnStrayAccess) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  PoolOptions o;
  o.quarantine = true;
  auto pool = MakePool(o);
  Segment s;
  ASSERT_OK(pool->Allocate(4096, &s));
  s.data[0] = 1;
  ASSERT_OK(pool->Release(s));
  EXPECT_DEATH({ static_cast<volatile char*>(s.data)[0] = 2; }, "");
  // Reuse lifts the protection.
  Segment t;
  ASSERT_OK(pool->Allocate(4096, &t));
  EXPECT_EQ(t.data, s.data);
  t.data[0] = 3;
  ASSERT_OK(pool->Release(t));
}
#endif

TEST(SegmentPoolTest, ReportAndFormatBytes) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(kMiB), "1.0 MiB");
  EXPECT_EQ(FormatBytes(size_t{3} << 30), "3.0 GiB");
  PoolOptions o;
  o.name = "report-pool";
  auto pool = MakePool(o);
  Segment s;
  ASSERT_OK(pool->Allocate(8192, &s));
  const std::string r = pool->Report();
  EXPECT_NE(r.find("report-pool"), std::string::npos) << r;
  EXPECT_NE(r.find("class 8.0 KiB: 1 in use"), std::string::npos) << r;
  const PoolStats st = pool->Stats();
  EXPECT_EQ(st.name, "report-pool");
  EXPECT_EQ(st.classes.size(), 10u);
  EXPECT_EQ(st.classes[1].class_bytes, 8192u);
  EXPECT_EQ(st.classes[1].in_use_segments, 1u);
  EXPECT_GT(st.classes[1].free_segments, 0u);
  EXPECT_EQ(st.reserved_bytes, o.region_bytes);
  ASSERT_OK(pool->Release(s));
}

}  // namespace
}  // namespace arenakv::alloc
