// WriteBatch and DB::Write: the batch as a value (operations, order, limits,
// copies and moves) and as a commit (all or nothing, in the order given,
// under the memory budget, from many threads at once). Atomicity across a
// crash or a power loss is checked by db_crash_test and db_power_loss_test,
// whose workload commits some of its multi-key operations as batches.

#include "arenakv/write_batch.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "arenakv/db.h"
#include "db_test_util.h"
#include "test_util.h"

namespace arenakv {
namespace {

using test::Contents;
using test::ExpectPoolsReleased;

// Records what Iterate hands it, as "put k=v" and "del k".
class Recorder : public WriteBatch::Handler {
 public:
  Status Put(std::string_view key, std::string_view value) override {
    ops.push_back("put " + std::string(key) + "=" + std::string(value));
    return Status::OK();
  }
  Status Delete(std::string_view key) override {
    ops.push_back("del " + std::string(key));
    return stop_at_delete ? Status::Busy("stop") : Status::OK();
  }
  std::vector<std::string> ops;
  bool stop_at_delete = false;
};

std::vector<std::string> OpsOf(const WriteBatch& b) {
  Recorder r;
  EXPECT_OK(b.Iterate(&r));
  return r.ops;
}

TEST(WriteBatchTest, OperationsInOrderCountAndSize) {
  WriteBatch b;
  EXPECT_EQ(b.Count(), 0u);
  const size_t empty = b.ApproximateSize();
  ASSERT_OK(b.Put("a", "1"));
  ASSERT_OK(b.Delete("b"));
  ASSERT_OK(b.Put("a", "2"));
  EXPECT_EQ(b.Count(), 3u);
  EXPECT_GT(b.ApproximateSize(), empty + 3);
  EXPECT_EQ(OpsOf(b), (std::vector<std::string>{"put a=1", "del b", "put a=2"}));
  b.Clear();
  EXPECT_EQ(b.Count(), 0u);
  EXPECT_EQ(b.ApproximateSize(), empty);
  EXPECT_TRUE(OpsOf(b).empty());
}

TEST(WriteBatchTest, IterateStopsAtTheHandlersError) {
  WriteBatch b;
  ASSERT_OK(b.Put("a", "1"));
  ASSERT_OK(b.Delete("b"));
  ASSERT_OK(b.Put("c", "3"));
  Recorder r;
  r.stop_at_delete = true;
  Status s = b.Iterate(&r);
  EXPECT_TRUE(s.IsBusy()) << s.ToString();
  EXPECT_EQ(r.ops.size(), 2u);
  EXPECT_TRUE(b.Iterate(nullptr).IsInvalidArgument());
}

TEST(WriteBatchTest, AppendCopyAndMove) {
  WriteBatch a, b;
  ASSERT_OK(a.Put("x", "1"));
  ASSERT_OK(b.Delete("y"));
  ASSERT_OK(b.Put("z", "2"));
  ASSERT_OK(a.Append(b));
  EXPECT_EQ(a.Count(), 3u);
  EXPECT_EQ(OpsOf(a), (std::vector<std::string>{"put x=1", "del y", "put z=2"}));

  WriteBatch copy = a;
  ASSERT_OK(copy.Put("w", "3"));
  EXPECT_EQ(a.Count(), 3u);  // the copy is independent
  EXPECT_EQ(copy.Count(), 4u);

  WriteBatch moved = std::move(copy);
  EXPECT_EQ(moved.Count(), 4u);
  // A moved-from batch is empty and usable.
  EXPECT_EQ(copy.Count(), 0u);  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(OpsOf(copy).empty());
  ASSERT_OK(copy.Put("again", "4"));
  EXPECT_EQ(OpsOf(copy), (std::vector<std::string>{"put again=4"}));
}

TEST(WriteBatchTest, OversizedKeyOrValueIsRefusedAndChangesNothing) {
  WriteBatch b;
  ASSERT_OK(b.Put("k", "v"));
  const size_t size = b.ApproximateSize();
  Status s = b.Put(std::string(kMaxKeyBytes + 1, 'k'), "v");
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  s = b.Put("k", std::string(kMaxValueBytes + 1, 'v'));
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  s = b.Delete(std::string(kMaxKeyBytes + 1, 'k'));
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_EQ(b.Count(), 1u);
  EXPECT_EQ(b.ApproximateSize(), size);
}

class DBWriteTest : public ::testing::Test {
 protected:
  void Open(Options options = {}) { ASSERT_OK(DB::Open(options, dir_.Join("db"), &db_)); }
  void TearDown() override {
    if (db_ != nullptr) {
      EXPECT_OK(db_->Close());
      db_.reset();
    }
    ExpectPoolsReleased();
  }
  test::TempDir dir_;
  std::unique_ptr<DB> db_;
};

TEST_F(DBWriteTest, AppliesEveryOperationInOrderAndSurvivesAReopen) {
  Open();
  ASSERT_OK(db_->Put({}, "gone", "x"));
  WriteBatch b;
  ASSERT_OK(b.Put("a", "1"));
  ASSERT_OK(b.Put("b", "1"));
  ASSERT_OK(b.Delete("gone"));
  ASSERT_OK(b.Put("a", "2"));  // the later op on a key wins
  ASSERT_OK(b.Delete("b"));
  ASSERT_OK(db_->Write(WriteOptions{.sync = true}, &b));
  const std::map<std::string, std::string> want = {{"a", "2"}};
  EXPECT_EQ(Contents(db_.get()), want);
  // The batch can be written again; it is unchanged by Write.
  ASSERT_OK(db_->Write({}, &b));
  EXPECT_EQ(Contents(db_.get()), want);
  ASSERT_OK(db_->Close());
  db_.reset();
  Open();
  EXPECT_EQ(Contents(db_.get()), want);
}

TEST_F(DBWriteTest, EmptyBatchWritesNothing) {
  Open();
  DBStats before, after;
  ASSERT_OK(db_->GetStats(&before));
  WriteBatch b;
  ASSERT_OK(db_->Write(WriteOptions{.sync = true}, &b));
  WriteBatch moved_from = std::move(b);
  ASSERT_OK(db_->Write({}, &b));  // NOLINT(bugprone-use-after-move)
  ASSERT_OK(db_->GetStats(&after));
  EXPECT_EQ(after.wal_bytes, before.wal_bytes);
  EXPECT_TRUE(Contents(db_.get()).empty());
  EXPECT_TRUE(db_->Write({}, nullptr).IsInvalidArgument());
}

TEST_F(DBWriteTest, ClosedDatabaseSaysSo) {
  Open();
  ASSERT_OK(db_->Close());
  WriteBatch b;
  ASSERT_OK(b.Put("k", "v"));
  EXPECT_TRUE(db_->Write({}, &b).IsClosed());
}

// A batch larger than the memtables' share of a tight budget cannot commit:
// MemoryLimit, nothing applied, and the database goes on taking writes.
TEST_F(DBWriteTest, BatchOverTheBudgetIsMemoryLimitAndAppliesNothing) {
  Options o;
  o.cache_bytes = size_t{1} << 20;
  o.memory_budget_bytes = size_t{12} << 20;
  Open(o);
  ASSERT_OK(db_->Put({}, "before", "1"));
  WriteBatch b;
  const std::string value(64 * 1024, 'v');
  for (int i = 0; i < 320; ++i) ASSERT_OK(b.Put("big" + std::to_string(i), value));  // 20 MiB
  Status s = db_->Write({}, &b);
  EXPECT_TRUE(s.IsMemoryLimit()) << s.ToString();
  std::string v;
  for (int i = 0; i < 320; i += 7) {
    EXPECT_TRUE(db_->Get({}, "big" + std::to_string(i), &v).IsNotFound()) << i;
  }
  ASSERT_OK(db_->Put({}, "after", "2"));
  EXPECT_EQ(Contents(db_.get()),
            (std::map<std::string, std::string>{{"after", "2"}, {"before", "1"}}));
  // Not after a reopen either: it never reached the log.
  ASSERT_OK(db_->Close());
  db_.reset();
  Open(o);
  EXPECT_TRUE(db_->Get({}, "big0", &v).IsNotFound());
}

// A batch larger than one log record (64 MiB) is logged as a run of
// fragments: it commits, and a reopen recovers it whole.
TEST_F(DBWriteTest, BatchLargerThanALogRecordCommitsWhole) {
  if (test::UnderSanitizer()) GTEST_SKIP() << "some 300 MiB of buffers; the sanitizer doubles it";
  Open();
  WriteBatch b;
  const std::string value(kMaxValueBytes, 'v');
  for (int i = 0; i < 65; ++i) ASSERT_OK(b.Put("big" + std::to_string(i), value));
  ASSERT_OK(db_->Write({}, &b));
  ASSERT_OK(db_->Close());
  db_.reset();
  Open();
  std::string v;
  ASSERT_OK(db_->Get({}, "big0", &v));
  ASSERT_OK(db_->Get({}, "big64", &v));
  EXPECT_EQ(v, value);
}

// Batches from many threads are grouped into shared log records; each
// batch still lands whole (its keys all carry its writer's last round).
TEST_F(DBWriteTest, ConcurrentBatchesEachLandWhole) {
  Open();
  constexpr int kThreads = 4, kRounds = 300, kKeys = 8;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      WriteBatch b;
      for (int r = 0; r < kRounds; ++r) {
        b.Clear();
        for (int k = 0; k < kKeys; ++k) {
          EXPECT_OK(b.Put("t" + std::to_string(t) + "/" + std::to_string(k), std::to_string(r)));
        }
        EXPECT_OK(db_->Write(WriteOptions{.sync = r % 50 == 0}, &b));
      }
    });
  }
  for (auto& th : threads) th.join();
  const auto contents = Contents(db_.get());
  ASSERT_EQ(contents.size(), static_cast<size_t>(kThreads * kKeys));
  for (const auto& [k, v] : contents) EXPECT_EQ(v, std::to_string(kRounds - 1)) << k;
}

}  // namespace
}  // namespace arenakv
