// Close() racing point reads on a tree of thousands of pages: a read that
// ends after Close() began must get Closed or its answer, never touch a torn
// down tree. A point read used to drop the versions retired by a checkpoint
// outside every lock, so ~TreeRoot could give pages back to a tree that
// Close() was destroying (use after free). And a stream of reads taking the
// database's shared lock kept Close() waiting for its writer lock for 5-30 s
// per round here; it now takes a few milliseconds.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "arenakv/db.h"
#include "db_test_util.h"
#include "test_util.h"

namespace arenakv {
namespace {

std::string Key(int i) {
  char k[16];
  std::snprintf(k, sizeof(k), "k%07d", i);
  return k;
}

// Spins (yielding) until `pred` holds: threads are ordered by what they have
// done, never by time.
template <typename Pred>
void WaitFor(Pred pred) {
  while (!pred()) std::this_thread::yield();
}

TEST(CloseRaceTest, CloseAgainstManyReadersOnALargeTreeWithCheckpoints) {
  constexpr int kKeys = 40000;
  constexpr int kReaders = 4;
  const int rounds = test::UnderSanitizer() ? 3 : 10;
  test::TempDir dir;
  Options options;
  options.page_bytes = 1024;  // thousands of pages
  options.cache_bytes = size_t{8} << 20;
  options.memory_budget_bytes = size_t{32} << 20;
  {
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(options, dir.Join("db"), &db));
    for (int i = 0; i < kKeys; ++i)
      ASSERT_OK(db->Put(WriteOptions(), Key(i), std::string(40, 'v')));
    ASSERT_OK(db->Close());
  }
  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(options, dir.Join("db"), &db));
    std::atomic<int> reads{0};
    std::atomic<int> checkpoints{0};
    std::atomic<bool> failed{false};
    std::vector<std::thread> threads;
    for (int r = 0; r < kReaders; ++r) {
      threads.emplace_back([&, r] {
        std::string v;
        for (int i = r;; i = (i + 7919) % kKeys) {
          Status s = db->Get(ReadOptions(), Key(i), &v);
          if (s.IsClosed()) return;
          if (!s.ok() || v.size() != 40) failed = true;
          reads.fetch_add(1, std::memory_order_relaxed);
        }
      });
    }
    // Checkpoints retire versions that readers may still hold, so that
    // readers are the ones to drop them.
    threads.emplace_back([&] {
      for (int i = 0;; ++i) {
        Status s = db->Put(WriteOptions(), Key((i * 31) % kKeys), std::string(40, 'w'));
        if (s.ok()) s = db->Checkpoint();
        if (s.IsClosed()) return;
        if (!s.ok()) failed = true;
        checkpoints.fetch_add(1, std::memory_order_relaxed);
      }
    });
    WaitFor([&] { return checkpoints.load() >= 3 && reads.load() >= 2000; });
    ASSERT_OK(db->Close());
    for (auto& t : threads) t.join();
    EXPECT_FALSE(failed.load()) << "a read or write before Close() failed";
    db.reset();
    test::ExpectPoolsReleased();
  }
}

}  // namespace
}  // namespace arenakv
