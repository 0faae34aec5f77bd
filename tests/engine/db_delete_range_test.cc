// DB::DeleteRange: exactly the keys in [begin, end) go, in one atomic
// durable step, wherever they live (tree or memtable) and however many;
// snapshots still see them, transactions that touched them conflict, later
// writes are kept, and a failure deletes nothing.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>

#include "arenakv/db.h"
#include "arenakv/transaction.h"
#include "db_test_util.h"
#include "fault_env.h"
#include "sync_point_util.h"
#include "test_util.h"

namespace arenakv {
namespace {

using test::ExpectPoolsReleased;
using test::FaultOp;

std::string Key(int i) {
  char k[16];
  std::snprintf(k, sizeof(k), "k%06d", i);
  return k;
}

TEST(DeleteRangeTest, DeletesExactlyTheRangeWhereverTheKeysLive) {
  test::TempDir dir;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(Options{}, dir.Join("db"), &db));
  std::map<std::string, std::string> model;
  for (int i = 0; i < 12000; ++i) {
    ASSERT_OK(db->Put(WriteOptions{}, Key(i), "v"));
    model[Key(i)] = "v";
    if (i == 6000) ASSERT_OK(db->Checkpoint());  // half in the tree, half in the memtable
  }
  std::unique_ptr<Snapshot> before = db->GetSnapshot();

  // 10,000 keys, some in the tree, some in the memtable.
  ASSERT_OK(db->DeleteRange(WriteOptions{}, Key(1000), Key(11000)));
  for (int i = 1000; i < 11000; ++i) model.erase(Key(i));
  EXPECT_EQ(test::Contents(db.get()), model);
  std::string v;
  ASSERT_OK(db->Get(ReadOptions{}, Key(999), &v));
  ASSERT_OK(db->Get(ReadOptions{}, Key(11000), &v));
  EXPECT_TRUE(db->Get(ReadOptions{}, Key(1000), &v).IsNotFound());
  ReadOptions at_before;
  at_before.snapshot = before.get();
  ASSERT_OK(db->Get(at_before, Key(5000), &v));

  EXPECT_OK(db->DeleteRange(WriteOptions{}, "a", "a"));  // empty: nothing to do
  EXPECT_OK(db->DeleteRange(WriteOptions{}, "x", "y"));  // no key in it
  Status s = db->DeleteRange(WriteOptions{}, "b", "a");
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_EQ(test::Contents(db.get()), model);

  // Durable as one commit: it survives a reopen.
  before.reset();
  ASSERT_OK(db->Close());
  ASSERT_OK(DB::Open(Options{}, dir.Join("db"), &db));
  EXPECT_EQ(test::Contents(db.get()), model);
  ASSERT_OK(db->Close());
  db.reset();
  ExpectPoolsReleased();
}

// Deleting a range is a commit like any other for transactions: one that
// read or wrote a key in it, or scanned across it, and began before it,
// conflicts; one that stayed outside it, or began after it, does not.
TEST(DeleteRangeTest, TransactionsThatTouchedTheRangeConflict) {
  test::TempDir dir;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(Options{}, dir.Join("db"), &db));
  for (int i = 0; i < 100; ++i) ASSERT_OK(db->Put(WriteOptions{}, Key(i), "v"));
  TransactionOptions serializable;
  serializable.isolation = IsolationLevel::kSerializable;
  std::string v;
  std::unique_ptr<Transaction> read_inside = db->BeginTransaction(WriteOptions{}, serializable);
  ASSERT_OK(read_inside->Get(ReadOptions{}, Key(50), &v));
  ASSERT_OK(read_inside->Put(Key(95), "from read_inside"));
  std::unique_ptr<Transaction> wrote_inside = db->BeginTransaction(WriteOptions{});
  ASSERT_OK(wrote_inside->Put(Key(20), "from wrote_inside"));
  std::unique_ptr<Transaction> scanned = db->BeginTransaction(WriteOptions{}, serializable);
  {
    std::unique_ptr<Iterator> it = scanned->NewIterator(ReadOptions{});
    int n = 0;
    for (it->Seek(Key(5)); it->Valid() && n < 10; it->Next()) ++n;  // Key(5) .. Key(14)
    ASSERT_OK(it->status());
  }
  ASSERT_OK(scanned->Put(Key(99), "from scanned"));
  std::unique_ptr<Transaction> outside = db->BeginTransaction(WriteOptions{}, serializable);
  ASSERT_OK(outside->Get(ReadOptions{}, Key(5), &v));
  ASSERT_OK(outside->Put(Key(96), "from outside"));

  ASSERT_OK(db->DeleteRange(WriteOptions{}, Key(10), Key(90)));
  Status s = read_inside->Commit();
  EXPECT_TRUE(s.IsConflict()) << s.ToString();
  s = wrote_inside->Commit();
  EXPECT_TRUE(s.IsConflict()) << s.ToString();
  s = scanned->Commit();
  EXPECT_TRUE(s.IsConflict()) << s.ToString();
  ASSERT_OK(outside->Commit());
  std::unique_ptr<Transaction> after = db->BeginTransaction(WriteOptions{}, serializable);
  EXPECT_TRUE(after->Get(ReadOptions{}, Key(50), &v).IsNotFound());
  ASSERT_OK(after->Put(Key(50), "after"));
  ASSERT_OK(after->Commit());

  std::map<std::string, std::string> model;
  for (int i = 0; i < 100; ++i) {
    if (i < 10 || i >= 90) model[Key(i)] = "v";
  }
  model[Key(96)] = "from outside";
  model[Key(50)] = "after";
  EXPECT_EQ(test::Contents(db.get()), model);
  read_inside.reset();
  wrote_inside.reset();
  scanned.reset();
  outside.reset();
  after.reset();
  ASSERT_OK(db->Close());
  db.reset();
  ExpectPoolsReleased();
}

// Writes after a range delete follow it in the log: a reopen replays them
// over the tree it left, and none is lost or erased.
TEST(DeleteRangeTest, WritesAfterItSurviveAReopen) {
  test::TempDir dir;
  Options o;
  o.background_checkpoints = false;  // the frozen memtable is checkpointed by the range delete
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(o, dir.Join("db"), &db));
  std::map<std::string, std::string> model;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 3000; ++i) {
      const std::string v = "r" + std::to_string(round);
      ASSERT_OK(db->Put(WriteOptions{}, Key(i), v));
      model[Key(i)] = v;
    }
    const int a = 100 + 700 * round, b = a + 1500;
    ASSERT_OK(db->DeleteRange(WriteOptions{}, Key(a), Key(b)));
    model.erase(model.lower_bound(Key(a)), model.lower_bound(Key(b)));
    ASSERT_OK(db->Put(WriteOptions{}, Key(a + 1), "after"));
    model[Key(a + 1)] = "after";
    EXPECT_EQ(test::Contents(db.get()), model);
  }
  ASSERT_OK(db->Close());
  db.reset();
  EXPECT_EQ(test::OpenVerifyContents(dir.Join("db")), model);
  ExpectPoolsReleased();
}

// A range delete that cannot be made durable deletes nothing: it returns the
// error, and the database, reopened, holds every key.
TEST(DeleteRangeTest, AFailedDeleteRangeDeletesNothing) {
  test::TempDir dir;
  std::map<std::string, std::string> model;
  {
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(Options{}, dir.Join("db"), &db));
    for (int i = 0; i < 5000; ++i) {
      ASSERT_OK(db->Put(WriteOptions{}, Key(i), "v"));
      model[Key(i)] = "v";
      if (i == 2500) ASSERT_OK(db->Checkpoint());
    }
    ASSERT_OK(db->Close());
  }
  for (FaultOp op : {FaultOp::kWrite, FaultOp::kSync}) {
    SCOPED_TRACE(static_cast<int>(op));
    auto env = std::make_shared<test::FaultInjectionEnv>(Env::Default());
    Options o;
    o.env = env;
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(o, dir.Join("db"), &db));
    env->AddRule({.file_substring = "data.akv", .op = op, .error = EIO});
    Status s = db->DeleteRange(WriteOptions{}, Key(1000), Key(4000));
    EXPECT_TRUE(s.IsIOError()) << s.ToString();
    db->Close().IgnoreError();
    db.reset();
    EXPECT_EQ(test::OpenVerifyContents(dir.Join("db")), model);
  }
  ExpectPoolsReleased();
}

// Under the smallest budget (a few MiB above the cache), a range of most of
// a tree several times that size goes in one step: the pages inside it are
// dropped, not buffered as tombstones.
TEST(DeleteRangeTest, ALargeRangeGoesUnderTheSmallestBudget) {
  test::TempDir dir;
  Options o;
  o.cache_bytes = 256 << 10;
  o.memory_budget_bytes = o.cache_bytes + o.cache_bytes / 8 + (size_t{8} << 20);
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(o, dir.Join("db"), &db));
  constexpr int kKeys = 200000;  // about 24 MiB of entries
  const std::string value(100, 'v');
  for (int i = 0; i < kKeys; ++i) ASSERT_OK(db->Put(WriteOptions{}, Key(i), value));
  ASSERT_OK(db->DeleteRange(WriteOptions{}, Key(1000), Key(kKeys - 1000)));
  std::map<std::string, std::string> model;
  for (int i = 0; i < kKeys; ++i) {
    if (i < 1000 || i >= kKeys - 1000) model[Key(i)] = value;
  }
  EXPECT_EQ(test::Contents(db.get()), model);
  DBStats st;
  ASSERT_OK(db->GetStats(&st));
  EXPECT_LE(st.pool.high_water_bytes, o.memory_budget_bytes);
  EXPECT_EQ(st.approximate_keys, model.size());  // exact right after a checkpoint
  VerifyReport report;
  ASSERT_OK(db->Verify(&report));
  ASSERT_OK(db->Close());
  db.reset();
  ExpectPoolsReleased();
}

// Read-only opens refuse it.
TEST(DeleteRangeTest, AReadOnlyOpenRefusesIt) {
  test::TempDir dir;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(Options{}, dir.Join("db"), &db));
  ASSERT_OK(db->Put(WriteOptions{}, "a", "v"));
  ASSERT_OK(db->Close());
  Options read_only;
  read_only.read_only = true;
  ASSERT_OK(DB::Open(read_only, dir.Join("db"), &db));
  Status s = db->DeleteRange(WriteOptions{}, "a", "z");
  EXPECT_TRUE(s.IsNotSupported()) << s.ToString();
  ASSERT_OK(db->Close());
  db.reset();
  ExpectPoolsReleased();
}

}  // namespace
}  // namespace arenakv
