// Concurrency: many threads allocating and releasing, trimming and closing
// arenas at once. Every segment carries its owner's stamp, so a segment
// handed out twice is caught. Clean under ThreadSanitizer.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "alloc/alloc_test_util.h"
#include "test_util.h"

namespace arenakv::alloc {
namespace {

using test::ExpectAccountingConsistent;
using test::MakeArena;
using test::MakePool;

// Iterations per thread: 1M in optimized builds, fewer under sanitizers.
int Iterations(int full) { return test::kSanitized ? full / 20 : full; }

void Stamp(const Segment& s, uint64_t v) {
  std::memcpy(s.data, &v, sizeof(v));
  std::memcpy(s.data + s.size - sizeof(v), &v, sizeof(v));
}
bool HasStamp(const Segment& s, uint64_t v) {
  uint64_t a, b;
  std::memcpy(&a, s.data, sizeof(a));
  std::memcpy(&b, s.data + s.size - sizeof(b), sizeof(b));
  return a == v && b == v;
}

TEST(ConcurrencyTest, FourThreadsMixedSizes) {
  const uint64_t seed = arenakv::test::TestSeed();
  PoolOptions o;
  o.retain_bytes = 4 << 20;  // small, so trimming runs concurrently too
  auto pool = MakePool(o);
  const int iters = Iterations(1000000);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed + t);
      constexpr int kWindow = 16;
      Segment live[kWindow] = {};
      uint64_t stamps[kWindow] = {};
      for (int i = 0; i < iters; ++i) {
        const int k = static_cast<int>(rng() % kWindow);
        if (live[k].valid()) {
          if (!HasStamp(live[k], stamps[k])) failures.fetch_add(1);
          if (!pool->Release(live[k]).ok()) failures.fetch_add(1);
          live[k] = Segment();
        } else {
          const size_t bytes = size_t{4096} << (rng() % 5);  // 4 KiB .. 64 KiB
          if (!pool->Allocate(bytes - rng() % 100, &live[k]).ok()) {
            failures.fetch_add(1);
            continue;
          }
          stamps[k] = (uint64_t{static_cast<uint32_t>(t)} << 32) | static_cast<uint32_t>(i);
          Stamp(live[k], stamps[k]);
        }
      }
      for (int k = 0; k < kWindow; ++k) {
        if (live[k].valid()) {
          if (!HasStamp(live[k], stamps[k]) || !pool->Release(live[k]).ok()) {
            failures.fetch_add(1);
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  const PoolStats st = pool->Stats();
  EXPECT_EQ(st.in_use_bytes, 0u);
  EXPECT_LE(st.retained_bytes, o.retain_bytes);
  ExpectAccountingConsistent(*pool);
  EXPECT_OK(pool->Close());
}

TEST(ConcurrencyTest, TrimAndStatsRaceWithAllocation) {
  PoolOptions o;
  o.region_bytes = 4 << 20;
  auto pool = MakePool(o);
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::thread trimmer([&] {
    while (!stop.load()) {
      pool->Trim();
      (void)pool->Stats();
      (void)GetProcessPoolStats();
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < 2; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < Iterations(20000); ++i) {
        Segment s;
        if (!pool->Allocate(size_t{4096} << ((i + t) % 9), &s).ok()) {
          failures.fetch_add(1);
          continue;
        }
        Stamp(s, i);
        if (!HasStamp(s, i) || !pool->Release(s).ok()) failures.fetch_add(1);
      }
    });
  }
  for (auto& w : workers) w.join();
  stop.store(true);
  trimmer.join();
  EXPECT_EQ(failures.load(), 0);
  pool->Trim();
  EXPECT_EQ(pool->Stats().reserved_bytes, 0u);
  ExpectAccountingConsistent(*pool);
}

TEST(ConcurrencyTest, RacingDoubleReleaseSucceedsOnce) {
  auto pool = MakePool();
  for (int round = 0; round < Iterations(2000); ++round) {
    Segment s;
    ASSERT_OK(pool->Allocate(4096, &s));
    std::atomic<int> ok{0};
    std::thread a([&] { ok += pool->Release(s).ok(); });
    std::thread b([&] { ok += pool->Release(s).ok(); });
    a.join();
    b.join();
    ASSERT_EQ(ok.load(), 1);
  }
  EXPECT_EQ(pool->Stats().in_use_bytes, 0u);
  ExpectAccountingConsistent(*pool);
}

TEST(ConcurrencyTest, SharedArenaAndChildArenasAcrossThreads) {
  auto pool = MakePool();
  ArenaOptions po;
  po.name = "db";
  po.kind = ArenaKind::kShared;
  auto db = MakeArena(pool, po);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::pair<uint64_t*, uint64_t>> mine;
      for (int i = 0; i < Iterations(20000); ++i) {
        void* p;
        if (!db->Allocate(sizeof(uint64_t) * (1 + i % 8), 8, &p).ok()) {
          failures.fetch_add(1);
          continue;
        }
        const uint64_t v = (uint64_t{static_cast<uint32_t>(t)} << 32) | i;
        *static_cast<uint64_t*>(p) = v;
        mine.push_back({static_cast<uint64_t*>(p), v});
        if (i % 100 == 0) {
          // A transaction: a confined child arena living on this thread.
          std::unique_ptr<Arena> txn;
          ArenaOptions co;
          co.name = "txn";
          if (!db->NewChild(co, &txn).ok()) {
            failures.fetch_add(1);
            continue;
          }
          Segment s;
          if (!txn->AllocateSegment(8192, &s).ok()) failures.fetch_add(1);
          for (int j = 0; j < 50; ++j) {
            if (!txn->Allocate(64, 8, &p).ok()) failures.fetch_add(1);
          }
          if (i % 200 == 0) txn->Close();
        }
      }
      for (auto& [ptr, v] : mine) {
        if (*ptr != v) failures.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(db->Stats().children, 0u);
  EXPECT_EQ(pool->Stats().open_arenas, 1u);
  db->Close();
  EXPECT_EQ(pool->Stats().in_use_bytes, 0u);
  EXPECT_OK(pool->Close());
}

TEST(ConcurrencyTest, ArenaClosesRaceAcrossThreads) {
  auto pool = MakePool();
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < Iterations(2000); ++i) {
        std::unique_ptr<Arena> a;
        if (!Arena::Create(pool, ArenaOptions(), &a).ok()) {
          failures.fetch_add(1);
          continue;
        }
        for (int j = 0; j < 8; ++j) {
          Segment s;
          if (!a->AllocateSegment(4096 << (j % 3), &s).ok()) failures.fetch_add(1);
        }
        // Half closed explicitly, half by the destructor.
        if (i % 2) a->Close();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(pool->Stats().in_use_bytes, 0u);
  EXPECT_EQ(pool->Stats().open_arenas, 0u);
  ExpectAccountingConsistent(*pool);
}

}  // namespace
}  // namespace arenakv::alloc
