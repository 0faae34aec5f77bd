// Regression tests for correctness bugs found reviewing the DB layer
// (engine/src/db): each test failed before its fix.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "arenakv/alloc/segment_pool.h"
#include "arenakv/db.h"
#include "db_test_util.h"
#include "fault_env.h"
#include "sync_point_util.h"
#include "test_util.h"

namespace arenakv {
namespace {

using test::ExpectPoolsReleased;

constexpr size_t kKiB = size_t{1} << 10;
constexpr size_t kMiB = size_t{1} << 20;

// Bytes the database arena itself owns (its children not counted).
size_t DbArenaBytes(DB* db) {
  DBStats st;
  EXPECT_OK(db->GetStats(&st));
  for (const auto& a : st.arenas) {
    if (a.name == "db") return a.bytes;
  }
  ADD_FAILURE() << "no arena named db";
  return 0;
}

// The database arena never frees (an arena's deallocate is a no-op), so
// scratch memory of the write path that is taken from it on every commit
// grows with the data written: a DB::Put of a value larger than its
// on-stack buffer, or a commit group larger than the leader's pool blocks,
// must not leave its bytes behind in the database arena.
TEST(DBReviewTest, CommitScratchDoesNotGrowTheDatabaseArena) {
  test::TempDir dir;
  {
    Options options;
    options.background_checkpoints = false;
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(options, dir.Join("db"), &db));
    const std::string value(64 * kKiB, 'v');
    // Warm up: the write path's reusable buffers reach their steady size.
    for (int i = 0; i < 16; ++i) ASSERT_OK(db->Put({}, "warm" + std::to_string(i), value));
    const size_t before = DbArenaBytes(db.get());
    for (int i = 0; i < 400; ++i) ASSERT_OK(db->Put({}, "k" + std::to_string(i % 8), value));
    auto txn_value = std::string(48 * kKiB, 't');
    for (int i = 0; i < 200; ++i) {
      auto txn = db->BeginTransaction({}, {});
      ASSERT_OK(txn->Put("t" + std::to_string(i % 8), txn_value));
      ASSERT_OK(txn->Commit());
    }
    const size_t after = DbArenaBytes(db.get());
    // 600 commits of ~50-64 KiB: ~35 MiB if each left its batch behind.
    EXPECT_LT(after, before + 2 * kMiB) << "db arena grew from " << before << " to " << after;
    ASSERT_OK(db->Close());
  }
  ExpectPoolsReleased();
}

// A DB::Put whose commit group cannot get memory for the leader's group
// batch (the database at its memory budget) must fail with MemoryLimit and
// leave the write queue usable. An allocation failure that escaped the
// leader left its (stack) writer at the head of the queue: every later write
// waited forever behind a dangling pointer.
TEST(DBReviewTest, LeaderOutOfMemoryLeavesWriteQueueUsable) {
  test::TempDir dir;
  {
    Options options;
    options.background_checkpoints = false;
    options.cache_bytes = 1 * kMiB;
    options.memory_budget_bytes = 24 * kMiB;
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(options, dir.Join("db"), &db));
    ASSERT_OK(db->Put({}, "warm", "up"));
    // Fill the budget with a transaction's buffers until ~3 MiB are left: a
    // 1 MiB value's batch (a 2 MiB segment) still fits, the leader's copy
    // of it does not.
    auto filler = db->BeginTransaction({}, {});
    ASSERT_NO_FATAL_FAILURE(test::FillBudgetUntil(
        db.get(), filler.get(), options.memory_budget_bytes, 3 * kMiB + 512 * kKiB));
    const std::string big(kMaxValueBytes, 'b');
    Status s = db->Put({}, "big", big);
    EXPECT_TRUE(s.IsMemoryLimit()) << s.ToString();
    // The Put's own batch fits: it is the commit leader that runs out.
    EXPECT_EQ(s.ToString().find("buffering a write"), std::string::npos) << s.ToString();
    std::fprintf(stderr, "big put: %s\n", s.ToString().c_str());
    ASSERT_OK(filler->Rollback());

    // The queue must still move: a small write from another thread returns.
    auto done = std::async(std::launch::async, [&] { return db->Put({}, "after", "ok"); });
    if (done.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
      ADD_FAILURE() << "a write after the leader's allocation failure never returned";
      std::fflush(nullptr);
      std::_Exit(1);  // the writer thread is stuck for good
    }
    ASSERT_OK(done.get());
    std::string v;
    ASSERT_OK(db->Get({}, "after", &v));
    EXPECT_EQ(v, "ok");
    ASSERT_OK(db->Close());
  }
  ExpectPoolsReleased();
}

// A snapshot of one database passed to another database's NewIterator must
// be refused (Get already refuses it): otherwise the iterator reads the other
// database's memtables through this database's tree, and keeps them pinned
// past that database's Close().
TEST(DBReviewTest, IteratorRefusesSnapshotOfAnotherDatabase) {
  test::TempDir dir;
  {
    std::unique_ptr<DB> db1, db2;
    ASSERT_OK(DB::Open(Options{}, dir.Join("db1"), &db1));
    ASSERT_OK(DB::Open(Options{}, dir.Join("db2"), &db2));
    ASSERT_OK(db1->Put({}, "only-in-db1", "1"));
    ASSERT_OK(db2->Put({}, "only-in-db2", "2"));
    auto snap = db1->GetSnapshot();
    ReadOptions ro;
    ro.snapshot = snap.get();
    std::string v;
    EXPECT_TRUE(db2->Get(ro, "only-in-db1", &v).IsInvalidArgument());
    auto it = db2->NewIterator(ro);
    it->SeekToFirst();
    EXPECT_FALSE(it->Valid()) << "db2 iterated db1's data: " << it->key();
    EXPECT_TRUE(it->status().IsInvalidArgument()) << it->status().ToString();
    it.reset();
    snap.reset();
    ASSERT_OK(db1->Close());
    ASSERT_OK(db2->Close());
  }
  ExpectPoolsReleased();
}

// A serializable transaction whose read set outgrew its buffer budget (range
// tracking failed) must still be able to end: Rollback() succeeds and gives
// the buffers back, and Commit() fails without writing and ends it too.
TEST(DBReviewTest, SerializableReadSetOverflowStillRollsBack) {
  test::TempDir dir;
  {
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(Options{}, dir.Join("db"), &db));
    char key[16];
    for (int i = 0; i < 4000; i += 2) {
      std::snprintf(key, sizeof(key), "k%05d", i);
      ASSERT_OK(db->Put({}, key, "v"));
    }
    TransactionOptions to;
    to.isolation = IsolationLevel::kSerializable;
    to.buffer_budget_bytes = 64 * kKiB;
    for (bool commit : {false, true}) {
      auto txn = db->BeginTransaction({}, to);
      ASSERT_OK(txn->Put("w", "x"));
      {
        auto it = txn->NewIterator({});
        // Disjoint point ranges: one read-set range each, until the budget
        // is exhausted.
        for (int i = 0; i < 4000; i += 2) {
          std::snprintf(key, sizeof(key), "k%05d", i);
          it->Seek(key);
          ASSERT_TRUE(it->Valid());
        }
      }
      EXPECT_TRUE(txn->Put("y", "z").IsMemoryLimit()) << "read set did not overflow";
      if (commit) {
        Status s = txn->Commit();
        EXPECT_FALSE(s.ok());
        EXPECT_TRUE(txn->Commit().IsInvalidArgument()) << "commit did not end the transaction";
      } else {
        ASSERT_OK(txn->Rollback());
      }
      EXPECT_EQ(txn->BufferBytes(), 0u);
      std::string v;
      EXPECT_TRUE(db->Get({}, "w", &v).IsNotFound());
    }
    ASSERT_OK(db->Close());
  }
  ExpectPoolsReleased();
}

// Verify() walks the tree of the meta block current when it starts, reading
// pages from disk. Checkpoints running meanwhile must not free (and a later
// checkpoint overwrite) those pages under it: Verify on a healthy database
// must never report Corruption.
TEST(DBReviewTest, VerifyConcurrentWithCheckpointsSeesNoCorruption) {
  test::TempDir dir;
  {
    Options options;
    options.background_checkpoints = false;
    options.page_bytes = 1024;
    options.compression = false;
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(options, dir.Join("db"), &db));
    const std::string value(100, 'v');
    char key[16];
    for (int i = 0; i < 6000; ++i) {
      std::snprintf(key, sizeof(key), "k%06d", i);
      ASSERT_OK(db->Put({}, key, value));
    }
    ASSERT_OK(db->Checkpoint());
    std::atomic<bool> stop{false};
    std::thread writer([&] {
      for (int round = 0; !stop.load(); ++round) {
        for (int i = 0; i < 6000; i += 7) {
          std::snprintf(key, sizeof(key), "k%06d", (i + round) % 6000);
          if (!db->Put({}, key, std::to_string(round) + value).ok()) return;
        }
        if (!db->Checkpoint().ok()) return;
      }
    });
    Status bad;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    int verifies = 0;
    while (std::chrono::steady_clock::now() < deadline && bad.ok()) {
      VerifyReport report;
      bad = db->Verify(&report, nullptr, nullptr);
      ++verifies;
    }
    stop = true;
    writer.join();
    EXPECT_TRUE(bad.ok()) << "after " << verifies << " runs: " << bad.ToString();
    ASSERT_OK(db->Close());
  }
  ExpectPoolsReleased();
}

// A transaction that rewrites the same keys many times holds a small write
// set: replaced values must be reused, not left behind in the transaction's
// arena (whose deallocate is a no-op) until its budget runs out.
TEST(DBReviewTest, RewritingOneKeyDoesNotExhaustTransactionBudget) {
  test::TempDir dir;
  {
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(Options{}, dir.Join("db"), &db));
    TransactionOptions to;
    to.buffer_budget_bytes = 1 * kMiB;
    auto txn = db->BeginTransaction({}, to);
    std::string value(1 * kKiB, 'v');
    for (int i = 0; i < 20000; ++i) {
      value[i % value.size()] = static_cast<char>('a' + i % 26);
      Status s = txn->Put("counter/" + std::to_string(i % 4), value);
      ASSERT_TRUE(s.ok()) << "rewrite " << i << ": " << s.ToString();
      if (i % 3 == 0) ASSERT_OK(txn->Delete("tmp"));
    }
    EXPECT_LT(txn->BufferBytes(), 256 * kKiB);
    ASSERT_OK(txn->Commit());
    std::string v;
    ASSERT_OK(db->Get({}, "counter/3", &v));
    EXPECT_EQ(v, value);  // i = 19999 wrote counter/3 last
    ASSERT_OK(db->Close());
  }
  ExpectPoolsReleased();
}

// DB::Close() is thread-safe like every DB call, and memory is back when it
// returns. A second Close() racing the first returned OK at once, while the
// first was still checkpointing with every pool mapped: the second caller
// cannot rely on the database being closed.
TEST(DBReviewTest, ConcurrentCloseReturnsOnlyOnceClosed) {
  test::TempDir dir;
  {
    Options options;
    options.background_checkpoints = false;
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(options, dir.Join("db"), &db));
    // Enough buffered changes that Close()'s checkpoint takes a while.
    const std::string value(100, 'v');
    char key[16];
    for (int i = 0; i < 100000; ++i) {
      std::snprintf(key, sizeof(key), "k%07d", i);
      ASSERT_OK(db->Put({}, key, value));
    }
    // The second Close() comes once the first has marked the database
    // closed, and the first writes its final checkpoint and tears down only
    // after the second has been called: they overlap every time.
    test::SyncPointScope scope;
    SyncPoint::Get()->LoadDependency({{"DBImpl::Close:Marked", "DBReviewTest::SecondClose"},
                                      {"DBReviewTest::SecondClose", "DBImpl::Close:Checkpoint"}});
    SyncPoint::Get()->EnableProcessing();
    std::thread first([&] { EXPECT_OK(db->Close()); });
    TEST_SYNC_POINT("DBReviewTest::SecondClose");
    std::string v;
    EXPECT_TRUE(db->Get({}, "k0000000", &v).IsClosed());
    ASSERT_OK(db->Close());
    const alloc::ProcessPoolStats stats = alloc::GetProcessPoolStats();
    EXPECT_EQ(stats.mapped_bytes, 0u) << "the second Close() returned before the database closed";
    EXPECT_EQ(stats.live_pools, 0u);
    first.join();
  }
  ExpectPoolsReleased();
}

}  // namespace
}  // namespace arenakv
