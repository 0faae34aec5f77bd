// Arena: bump allocation, whole segments, limits, nesting, close, pmr.
#include "arenakv/alloc/arena.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory_resource>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "alloc/alloc_test_util.h"
#include "arenakv/alloc/recycling_resource.h"

namespace arenakv::alloc {
namespace {

using test::ExpectAccountingConsistent;
using test::MakeArena;
using test::MakePool;

constexpr size_t kKiB = 1024;
constexpr size_t kMiB = 1024 * 1024;

ArenaOptions Named(const std::string& name, ArenaKind kind = ArenaKind::kConfined) {
  ArenaOptions o;
  o.name = name;
  o.kind = kind;
  return o;
}

TEST(ArenaTest, BumpAllocationIsAlignedAndDisjoint) {
  auto pool = MakePool();
  auto arena = MakeArena(pool);
  std::vector<std::pair<char*, size_t>> objs;
  for (int i = 0; i < 5000; ++i) {
    const size_t bytes = 1 + (i * 37) % 300;
    const size_t align = size_t{1} << (i % 7);
    void* p;
    ASSERT_OK(arena->Allocate(bytes, align, &p));
    ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u);
    std::memset(p, i & 0xff, bytes);
    objs.push_back({static_cast<char*>(p), bytes});
  }
  for (size_t i = 0; i < objs.size(); ++i) {
    for (size_t j = 0; j < objs[i].second; ++j) ASSERT_EQ(objs[i].first[j], static_cast<char>(i));
  }
  ArenaStats st = arena->Stats();
  EXPECT_GT(st.used_bytes, 0u);
  EXPECT_EQ(st.bytes, st.segments * ArenaOptions().block_bytes);
  EXPECT_EQ(pool->Stats().in_use_bytes, st.bytes);
  void* p;
  EXPECT_TRUE(arena->Allocate(8, 3, &p).IsInvalidArgument());
  EXPECT_TRUE(arena->Allocate(8, 0, &p).IsInvalidArgument());
  // Large alignments are served by a segment aligned to its size class.
  ASSERT_OK(arena->Allocate(100, 64 * kKiB, &p));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % (64 * kKiB), 0u);
  arena->Close();
  EXPECT_EQ(pool->Stats().in_use_bytes, 0u);
}

// The VmFlags line of the /proc/self/smaps entry that contains `p`.
std::string VmFlagsOf(const void* p) {
  std::ifstream in("/proc/self/smaps");
  std::string line;
  bool inside = false;
  const auto addr = reinterpret_cast<uintptr_t>(p);
  while (std::getline(in, line)) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(' ') > line.find('-')) {
      inside = addr >= lo && addr < hi;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      return line;
    }
  }
  return "";
}

bool HasHugeHint(const void* p) {
  const std::string flags = VmFlagsOf(p);
  return flags.find(" hg") != std::string::npos;
}

// Arenas that ask for huge pages get segments from their own chunks; once a
// class spans more than huge_pages_after_chunks chunks its new chunks carry
// MADV_HUGEPAGE, and memory of other arenas never does. Accounting and
// per-class stats cover both kinds, and everything goes back on close.
TEST(ArenaTest, HugePageArenasUseTheirOwnChunks) {
  PoolOptions po;
  po.huge_pages_after_chunks = 1;
  auto pool = MakePool(po);
  ArenaOptions huge = Named("huge", ArenaKind::kShared);
  huge.huge_pages = true;
  auto big = MakeArena(pool, huge);
  auto plain = MakeArena(pool, Named("plain", ArenaKind::kShared));
  const size_t chunk = po.max_class_bytes;
  std::vector<Segment> huge_segs, plain_segs;
  for (int i = 0; i < 4 * static_cast<int>(chunk / (16 * kKiB)); ++i) {
    Segment a, b;
    ASSERT_OK(big->AllocateSegment(16 * kKiB, &a));
    ASSERT_OK(plain->AllocateSegment(16 * kKiB, &b));
    std::memset(a.data, 1, a.size);
    std::memset(b.data, 2, b.size);
    huge_segs.push_back(a);
    plain_segs.push_back(b);
  }
  auto chunk_of = [&](const Segment& s) { return reinterpret_cast<uintptr_t>(s.data) / chunk; };
  std::set<uintptr_t> huge_chunks, plain_chunks;
  for (const Segment& s : huge_segs) huge_chunks.insert(chunk_of(s));
  for (const Segment& s : plain_segs) plain_chunks.insert(chunk_of(s));
  for (uintptr_t c : huge_chunks) EXPECT_EQ(plain_chunks.count(c), 0u) << "a shared chunk";
  EXPECT_EQ(huge_chunks.size(), 4u);
  // The first chunk of the class stays without the hint, the later ones get
  // it (where the kernel has transparent huge pages at all).
  EXPECT_FALSE(HasHugeHint(huge_segs.front().data)) << VmFlagsOf(huge_segs.front().data);
  if (std::ifstream("/sys/kernel/mm/transparent_hugepage/enabled").good()) {
    EXPECT_TRUE(HasHugeHint(huge_segs.back().data)) << VmFlagsOf(huge_segs.back().data);
  }
  for (const Segment& s : plain_segs) {
    ASSERT_FALSE(HasHugeHint(s.data)) << VmFlagsOf(s.data);
  }
  PoolStats st = pool->Stats();
  size_t in_use_16k = 0;
  for (const ClassStats& c : st.classes) {
    if (c.class_bytes == 16 * kKiB) in_use_16k = c.in_use_segments;
  }
  EXPECT_EQ(in_use_16k, huge_segs.size() + plain_segs.size());
  ExpectAccountingConsistent(*pool);
  for (const Segment& s : huge_segs) ASSERT_OK(big->ReleaseSegment(s));
  ExpectAccountingConsistent(*pool);
  big->Close();
  plain->Close();
  EXPECT_EQ(pool->Stats().in_use_bytes, 0u);
}

TEST(ArenaTest, LargeObjectsGetTheirOwnSegment) {
  auto pool = MakePool();
  ArenaOptions o;
  o.block_bytes = 64 * kKiB;
  auto arena = MakeArena(pool, o);
  void* small;
  ASSERT_OK(arena->Allocate(100, 8, &small));
  void* big;
  ASSERT_OK(arena->Allocate(200 * kKiB, 8, &big));
  std::memset(big, 1, 200 * kKiB);
  void* small2;
  ASSERT_OK(arena->Allocate(100, 8, &small2));
  // The block keeps serving small objects after the big one.
  EXPECT_EQ(static_cast<char*>(small2), static_cast<char*>(small) + 104);
  ArenaStats st = arena->Stats();
  EXPECT_EQ(st.segments, 2u);
  EXPECT_EQ(st.bytes, 64 * kKiB + 256 * kKiB);
  void* huge;
  ASSERT_OK(arena->Allocate(3 * kMiB, 16, &huge));
  EXPECT_EQ(pool->Stats().dedicated_bytes, 3 * kMiB);
  arena->Close();
  EXPECT_EQ(pool->Stats().dedicated_bytes, 0u);
  EXPECT_EQ(pool->Stats().in_use_bytes, 0u);
}

// Blocks start at first_block_bytes and double up to block_bytes; an
// object larger than the current block size still gets a block that holds it.
TEST(ArenaTest, BlocksGrowFromTheFirstBlockSize) {
  auto pool = MakePool();
  ArenaOptions o;
  o.block_bytes = 64 * kKiB;
  o.first_block_bytes = 4 * kKiB;
  auto arena = MakeArena(pool, o);
  void* p;
  ASSERT_OK(arena->Allocate(100, 8, &p));
  EXPECT_EQ(arena->Stats().bytes, 4 * kKiB);
  // Filling them with 4000-byte objects takes blocks of 8, 16, 32, 64 and
  // 64 KiB after the first.
  std::vector<size_t> blocks = {4 * kKiB};
  size_t bytes = arena->Stats().bytes;
  for (int i = 0; i < 60; ++i) {
    ASSERT_OK(arena->Allocate(4000, 8, &p));
    const size_t now = arena->Stats().bytes;
    if (now != bytes) blocks.push_back(now - bytes);
    bytes = now;
  }
  ASSERT_GE(blocks.size(), 6u);
  EXPECT_EQ(std::vector<size_t>(blocks.begin(), blocks.begin() + 6),
            (std::vector<size_t>{4 * kKiB, 8 * kKiB, 16 * kKiB, 32 * kKiB, 64 * kKiB, 64 * kKiB}));
  arena->Close();
  // A first block too small for the first object: the block fits the object.
  auto fresh = MakeArena(pool, o);
  ASSERT_OK(fresh->Allocate(10 * kKiB, 8, &p));  // under block_bytes / 4
  std::memset(p, 1, 10 * kKiB);
  EXPECT_GE(fresh->Stats().bytes, 10 * kKiB);
  fresh->Close();
  EXPECT_EQ(pool->Stats().in_use_bytes, 0u);
}

TEST(ArenaTest, PmrContainersLiveAndDieWithTheArena) {
  auto pool = MakePool();
  auto arena = MakeArena(pool);
  {
    std::pmr::vector<std::pmr::string> v(arena.get());
    for (int i = 0; i < 10000; ++i) v.emplace_back("value number " + std::to_string(i));
    EXPECT_EQ(v[1234], "value number 1234");
    RecyclingResource recycler(arena.get());
    std::pmr::deque<int> d(&recycler);
    for (int i = 0; i < 100000; ++i) d.push_back(i);
    EXPECT_EQ(d[99999], 99999);
  }
  EXPECT_GT(arena->Stats().used_bytes, 10000 * sizeof(std::pmr::string));
  EXPECT_GT(pool->Stats().in_use_bytes, 0u);
  arena->Close();
  EXPECT_EQ(pool->Stats().in_use_bytes, 0u);
  // pmr requires an exception; engine code catches it at its boundary.
  std::pmr::vector<int> after(arena.get());
  EXPECT_THROW(after.resize(10), std::bad_alloc);
}

TEST(ArenaTest, LimitGivesMemoryLimit) {
  auto pool = MakePool();
  ArenaOptions o;
  o.limit_bytes = 256 * kKiB;
  o.block_bytes = 64 * kKiB;
  auto arena = MakeArena(pool, o);
  Segment s;
  ASSERT_OK(arena->AllocateSegment(128 * kKiB, &s));
  void* p;
  for (int i = 0; i < 2; ++i) ASSERT_OK(arena->Allocate(60 * kKiB / 4, 8, &p));
  Segment t;
  Status st = arena->AllocateSegment(128 * kKiB, &t);
  EXPECT_TRUE(st.IsMemoryLimit()) << st.ToString();
  int ok = 0;
  for (int i = 0; i < 100; ++i) {
    st = arena->Allocate(1000, 8, &p);
    if (!st.ok()) break;
    ++ok;
  }
  EXPECT_TRUE(st.IsMemoryLimit()) << st.ToString();
  EXPECT_LE(arena->Stats().bytes, o.limit_bytes);
  // Giving a segment back makes room again.
  ASSERT_OK(arena->ReleaseSegment(s));
  ASSERT_OK(arena->AllocateSegment(128 * kKiB, &t));
  std::pmr::vector<char> v(arena.get());
  EXPECT_THROW(v.resize(1 * kMiB), std::bad_alloc);
}

TEST(ArenaTest, SegmentsReleaseAndOwnership) {
  auto pool = MakePool();
  auto a = MakeArena(pool, Named("a"));
  auto b = MakeArena(pool, Named("b"));
  std::vector<Segment> segs(100);
  for (auto& s : segs) ASSERT_OK(a->AllocateSegment(4096, &s));
  EXPECT_EQ(a->Stats().segments, 100u);
  // Release from the middle, the ends, in any order: O(1) each.
  for (size_t i = 0; i < segs.size(); i += 3) ASSERT_OK(a->ReleaseSegment(segs[i]));
  EXPECT_EQ(a->Stats().segments, 66u);
  EXPECT_TRUE(a->ReleaseSegment(segs[0]).IsInvalidArgument());  // twice
  EXPECT_TRUE(b->ReleaseSegment(segs[1]).IsInvalidArgument());  // not b's
  EXPECT_TRUE(b->Check(segs[1]).IsClosed());
  EXPECT_OK(a->Check(segs[1]));
  EXPECT_TRUE(a->Check(segs[0]).IsClosed());
  // A raw pool release of an arena segment would corrupt the arena: refused.
  EXPECT_TRUE(pool->Release(segs[1]).IsInvalidArgument());
  EXPECT_EQ(a->Stats().segments, 66u);
  EXPECT_EQ(a->Stats().bytes, 66 * 4096u);
  ExpectAccountingConsistent(*pool);
  a->Close();
  EXPECT_TRUE(a->Check(segs[1]).IsClosed());
  EXPECT_TRUE(pool->Check(segs[1]).IsClosed());
  EXPECT_TRUE(a->ReleaseSegment(segs[1]).IsClosed());
  Segment s;
  EXPECT_TRUE(a->AllocateSegment(4096, &s).IsClosed());
  void* p;
  EXPECT_TRUE(a->Allocate(16, 8, &p).IsClosed());
  EXPECT_EQ(pool->Stats().in_use_bytes, 0u);
}

TEST(ArenaTest, CloseIsIdempotentAndReturnsEverything) {
  auto pool = MakePool();
  auto arena = MakeArena(pool);
  Segment s;
  for (int i = 0; i < 1000; ++i) ASSERT_OK(arena->AllocateSegment(4096 << (i % 4), &s));
  EXPECT_EQ(arena->Stats().segments, 1000u);
  arena->Close();
  EXPECT_TRUE(arena->closed());
  arena->Close();
  EXPECT_EQ(arena->Stats().segments, 0u);
  EXPECT_EQ(arena->Stats().bytes, 0u);
  const PoolStats st = pool->Stats();
  EXPECT_EQ(st.in_use_bytes, 0u);
  EXPECT_EQ(st.open_arenas, 0u);
  ExpectAccountingConsistent(*pool);
  arena.reset();
  EXPECT_OK(pool->Close());
}

TEST(ArenaTest, ClosingAParentClosesChildrenFirst) {
  auto pool = MakePool();
  auto db = MakeArena(pool, Named("db", ArenaKind::kShared));
  std::unique_ptr<Arena> txn1, txn2, nested;
  ASSERT_OK(db->NewChild(Named("txn1"), &txn1));
  ASSERT_OK(db->NewChild(Named("txn2"), &txn2));
  ASSERT_OK(txn1->NewChild(Named("nested"), &nested));
  Segment s;
  ASSERT_OK(db->AllocateSegment(4096, &s));
  ASSERT_OK(txn1->AllocateSegment(8192, &s));
  ASSERT_OK(txn2->AllocateSegment(8192, &s));
  ASSERT_OK(nested->AllocateSegment(16384, &s));
  EXPECT_EQ(pool->Stats().open_arenas, 4u);
  EXPECT_EQ(db->Stats().children, 2u);

  const std::vector<ArenaStats> tree = db->TreeStats();
  ASSERT_EQ(tree.size(), 4u);
  EXPECT_EQ(tree[0].name, "db");
  std::vector<std::string> names;
  for (const auto& t : tree) names.push_back(t.name);
  // Depth first: nested comes right after its parent.
  auto it = std::find(names.begin(), names.end(), "txn1");
  ASSERT_NE(it, names.end());
  EXPECT_EQ(*(it + 1), "nested");

  // A child destroyed before its parent deregisters itself.
  txn2.reset();
  EXPECT_EQ(db->Stats().children, 1u);
  EXPECT_EQ(pool->Stats().open_arenas, 3u);

  db->Close();
  EXPECT_TRUE(txn1->closed());
  EXPECT_TRUE(nested->closed());
  EXPECT_EQ(pool->Stats().open_arenas, 0u);
  EXPECT_EQ(pool->Stats().in_use_bytes, 0u);
  std::unique_ptr<Arena> late;
  EXPECT_TRUE(db->NewChild(Named("late"), &late).IsClosed());
  // Children destroyed after the parent (and the parent before them).
  db.reset();
  txn1.reset();
  nested.reset();
  EXPECT_OK(pool->Close());
}

TEST(ArenaTest, ChildClosedAloneStaysUntilDestroyed) {
  auto pool = MakePool();
  auto parent = MakeArena(pool, Named("parent"));
  std::unique_ptr<Arena> child;
  ASSERT_OK(parent->NewChild(Named("child"), &child));
  Segment s;
  ASSERT_OK(child->AllocateSegment(4096, &s));
  child->Close();
  EXPECT_EQ(pool->Stats().in_use_bytes, 0u);
  EXPECT_FALSE(parent->closed());
  EXPECT_EQ(parent->Stats().children, 1u);
  child.reset();
  EXPECT_EQ(parent->Stats().children, 0u);
}

TEST(ArenaTest, PoolCloseClosesOpenArenasAndNamesThem) {
  auto pool = MakePool();
  auto clean = MakeArena(pool, Named("clean"));
  clean->Close();
  auto leaky = MakeArena(pool, Named("leaky-arena"));
  std::unique_ptr<Arena> child;
  ASSERT_OK(leaky->NewChild(Named("leaky-child"), &child));
  void* p;
  ASSERT_OK(child->Allocate(100, 8, &p));
  const std::string leaks = pool->LeakReport();
  EXPECT_NE(leaks.find("leaky-arena"), std::string::npos) << leaks;
  EXPECT_NE(leaks.find("leaky-child"), std::string::npos) << leaks;
  EXPECT_EQ(leaks.find("'clean'"), std::string::npos) << leaks;

  testing::internal::CaptureStderr();
  Status st = pool->Close();
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(st.IsInvalidArgument());
  EXPECT_NE(st.message().find("leaky-arena"), std::string::npos) << st.ToString();
  EXPECT_NE(err.find("leaky-arena"), std::string::npos) << err;
  EXPECT_TRUE(leaky->closed());
  EXPECT_TRUE(child->closed());
  EXPECT_TRUE(child->Allocate(100, 8, &p).IsClosed());
  Segment s;
  EXPECT_TRUE(leaky->AllocateSegment(4096, &s).IsClosed());
  std::unique_ptr<Arena> after;
  EXPECT_TRUE(Arena::Create(pool, ArenaOptions(), &after).IsClosed());
  EXPECT_EQ(pool->LeakReport(), "");
  EXPECT_EQ(pool->Stats().reserved_bytes, 0u);
}

TEST(ArenaTest, ReclaimCallbackMayReleaseArenaSegments) {
  PoolOptions po;
  po.budget_bytes = 1 * kMiB;
  po.retain_bytes = 0;
  auto pool = MakePool(po);
  auto cache = MakeArena(pool, Named("cache", ArenaKind::kShared));
  std::deque<Segment> frames;
  pool->SetReclaimCallback([&](size_t wanted) {
    size_t freed = 0;
    while (freed < wanted && !frames.empty()) {
      EXPECT_OK(cache->ReleaseSegment(frames.front()));
      freed += frames.front().size;
      frames.pop_front();
    }
    return freed;
  });
  // Four times the budget goes through: the oldest frames are evicted.
  for (int i = 0; i < 64; ++i) {
    Segment s;
    Status st = cache->AllocateSegment(64 * kKiB, &s);
    ASSERT_TRUE(st.ok()) << i << " " << st.ToString();
    std::memset(s.data, i, s.size);
    frames.push_back(s);
  }
  const PoolStats st = pool->Stats();
  EXPECT_GT(st.reclaim_calls, 0u);
  EXPECT_LE(st.high_water_bytes, po.budget_bytes);
  EXPECT_EQ(st.limit_failures, 0u);
  EXPECT_EQ(cache->Stats().segments, frames.size());
  for (const Segment& s : frames) EXPECT_OK(cache->Check(s));
}

#if defined(ARENAKV_CHECKED) && !defined(ARENAKV_TEST_TSAN)
TEST(ArenaDeathTest, ConfinedArenaUsedBySecondThreadAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto pool = MakePool();
  auto arena = MakeArena(pool, Named("confined"));
  void* p;
  ASSERT_OK(arena->Allocate(8, 8, &p));
  EXPECT_DEATH(
      {
        std::thread t([&] { (void)arena->Allocate(8, 8, &p); });
        t.join();
      },
      "confined arena 'confined'");
  // A hand-off lets the next thread take over.
  arena->HandOff();
  std::thread t([&] { EXPECT_OK(arena->Allocate(8, 8, &p)); });
  t.join();
}
#endif

}  // namespace
}  // namespace arenakv::alloc
