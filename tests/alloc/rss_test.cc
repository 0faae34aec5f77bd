// Memory really goes back: the process's resident set returns to its
// baseline when arenas and their pool close, cycle after cycle.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "alloc/alloc_test_util.h"
#include "test_util.h"

namespace arenakv::alloc {
namespace {

using arenakv::test::ResidentBytes;
using test::MakeArena;
using test::MakePool;

constexpr size_t kMiB = 1024 * 1024;

// Touches `total` bytes through four arenas: whole segments of mixed sizes,
// bump-allocated objects, and a few dedicated mappings.
void FillThroughArenas(const std::shared_ptr<SegmentPool>& pool, size_t total,
                       std::vector<std::unique_ptr<Arena>>* arenas) {
  for (int i = 0; i < 4; ++i) {
    ArenaOptions o;
    o.name = "fill-" + std::to_string(i);
    arenas->push_back(MakeArena(pool, o));
  }
  size_t done = 0;
  for (int i = 0; done < total; ++i) {
    Arena* a = (*arenas)[i % 4].get();
    if (i % 50 == 0) {
      Segment s;
      ASSERT_OK(a->AllocateSegment(3 * kMiB, &s));
      std::memset(s.data, i, s.size);
      done += s.size;
    } else if (i % 3 == 0) {
      void* p;
      ASSERT_OK(a->Allocate(4000, 16, &p));
      std::memset(p, i, 4000);
      done += 4000;
    } else {
      Segment s;
      ASSERT_OK(a->AllocateSegment(size_t{4096} << (i % 6), &s));
      std::memset(s.data, i, s.size);
      done += s.size;
    }
  }
}

class RssTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (test::kSanitized) {
      // Sanitizer shadow memory for the touched range stays resident.
      GTEST_SKIP() << "RSS is not meaningful under sanitizers";
    }
  }
};

TEST_F(RssTest, ClosingArenasAndPoolReturnsResidentMemory) {
  const ProcessPoolStats pbase = GetProcessPoolStats();
  const size_t baseline = ResidentBytes();
  ASSERT_GT(baseline, 0u);
  size_t after_first = 0;
  for (int cycle = 0; cycle < 20; ++cycle) {
    auto pool = MakePool();
    std::vector<std::unique_ptr<Arena>> arenas;
    // The full 256 MiB on the first and the last cycle; smaller cycles in
    // between keep the test short while still catching growth.
    const bool full = cycle == 0 || cycle == 19;
    FillThroughArenas(pool, full ? 256 * kMiB : 32 * kMiB, &arenas);
    if (full) {
      EXPECT_GE(ResidentBytes(), baseline + 240 * kMiB);
      EXPECT_GE(pool->Stats().in_use_bytes, 256 * kMiB);
    }
    for (auto& a : arenas) a->Close();
    EXPECT_OK(pool->Close());
    arenas.clear();
    pool.reset();
    const size_t rss = ResidentBytes();
    EXPECT_LE(rss, baseline + kMiB)
        << "cycle " << cycle << ": resident " << rss << " vs " << baseline;
    if (cycle == 0) after_first = rss;
    const ProcessPoolStats p = GetProcessPoolStats();
    EXPECT_EQ(p.mapped_bytes, pbase.mapped_bytes);
    EXPECT_EQ(p.live_pools, pbase.live_pools);
    EXPECT_EQ(p.in_use_bytes, pbase.in_use_bytes);
  }
  // No growth across cycles.
  EXPECT_LE(ResidentBytes(), after_first + kMiB);
}

TEST_F(RssTest, LivePoolKeepsOnlyTheRetainedBoundAndTrimReturnsIt) {
  PoolOptions o;
  o.retain_bytes = 16 * kMiB;
  auto pool = MakePool(o);
  const size_t baseline = ResidentBytes();
  auto arena = MakeArena(pool);
  std::vector<Segment> segs;
  for (int i = 0; i < 1024; ++i) {
    Segment s;
    ASSERT_OK(arena->AllocateSegment(64 * 1024, &s));
    std::memset(s.data, 1, s.size);
    segs.push_back(s);
  }
  EXPECT_GE(ResidentBytes(), baseline + 60 * kMiB);
  for (const Segment& s : segs) ASSERT_OK(arena->ReleaseSegment(s));
  // The pool is still open and keeps at most retain_bytes committed.
  EXPECT_LE(pool->Stats().retained_bytes, o.retain_bytes);
  EXPECT_LE(ResidentBytes(), baseline + o.retain_bytes + kMiB);
  pool->Trim();
  EXPECT_EQ(pool->Stats().committed_bytes, 0u);
  EXPECT_EQ(pool->Stats().reserved_bytes, 0u);
  EXPECT_LE(ResidentBytes(), baseline + kMiB);
}

// A small database's pool holds a few segments of many classes. Each class
// takes a 2 MiB chunk of address space, whose slots (one per 4 KiB granule,
// in the pool's slot table) used to be written all at once: 14 KiB of the
// table resident per class, whatever the pool used. Now a chunk's slots are
// written a batch at a time, as its segments are first needed.
TEST_F(RssTest, AFewSegmentsOfManyClassesTouchLittleOfTheSlotTable) {
  constexpr int kPools = 100;
  constexpr size_t kClasses = 7;  // 4 KiB to 256 KiB
  std::vector<std::shared_ptr<SegmentPool>> pools;
  std::vector<std::vector<Segment>> held(kPools);
  const size_t baseline = ResidentBytes();
  size_t touched = 0;
  for (int p = 0; p < kPools; ++p) {
    pools.push_back(MakePool());
    for (size_t c = 0; c < kClasses; ++c) {
      Segment s;
      ASSERT_OK(pools.back()->Allocate(size_t{4096} << c, &s));
      std::memset(s.data, 1, 4096);  // one page of each
      touched += 4096;
      held[p].push_back(s);
    }
  }
  const size_t grown = ResidentBytes() - baseline;
  // The pages used, a page or two of slots per class and the pool's own
  // state; 14 KiB of slots a class came to about 130 KiB a pool.
  EXPECT_LE(grown / kPools, touched / kPools + 64 * 1024)
      << grown / kPools / 1024 << " KiB resident per pool, " << touched / kPools / 1024
      << " KiB of it in segments";
  for (int p = 0; p < kPools; ++p) {
    for (const Segment& s : held[p]) ASSERT_OK(pools[p]->Release(s));
    EXPECT_EQ(pools[p]->Stats().in_use_bytes, 0u);
    ASSERT_OK(pools[p]->Close());
  }
  pools.clear();
  EXPECT_EQ(GetProcessPoolStats().mapped_bytes, 0u);
}

}  // namespace
}  // namespace arenakv::alloc
