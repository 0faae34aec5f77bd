// Commit groups (DBImpl::GatherGroupLocked): writers queued behind a leader
// are logged in one record, and a transaction in the group is checked
// against the keys of the members before it, which are in no memtable yet.
// The members before it may be plain writes that check nothing themselves.

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "arenakv/db.h"
#include "arenakv/transaction.h"
#include "commit_group_util.h"
#include "db_test_util.h"
#include "test_util.h"

namespace arenakv {
namespace {

// Plain puts list no keys for the group: a transaction behind them must
// still see theirs, the first's as well as the last's.
TEST(CommitGroupTest, TransactionConflictsWithPlainPutsBeforeItInItsGroup) {
  test::TempDir dir;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(Options(), dir.Join("db"), &db));
  for (const char* key : {"a", "b"}) {
    std::unique_ptr<Transaction> txn = db->BeginTransaction(WriteOptions());
    ASSERT_OK(txn->Put(key, "txn"));
    Status s1, s2, st;
    const int groups = test::RunInOneGroup(
        db.get(), {[&] { s1 = db->Put(WriteOptions(), "a", "put"); },
                   [&] { s2 = db->Put(WriteOptions(), "b", "put"); }, [&] { st = txn->Commit(); }});
    EXPECT_EQ(groups, 2) << key;  // the holder's, then one for the three
    EXPECT_OK(s1);
    EXPECT_OK(s2);
    EXPECT_TRUE(st.IsConflict()) << key << ": " << st.ToString();
    std::string v;
    ASSERT_OK(db->Get(ReadOptions(), key, &v));
    EXPECT_EQ(v, "put") << key;
  }
  ASSERT_OK(db->Close());
  test::ExpectPoolsReleased();
}

// Without a common key the transaction commits in the same group, after
// the puts.
TEST(CommitGroupTest, TransactionWithOtherKeysCommitsInTheSameGroup) {
  test::TempDir dir;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(Options(), dir.Join("db"), &db));
  std::unique_ptr<Transaction> txn = db->BeginTransaction(WriteOptions());
  ASSERT_OK(txn->Put("c", "txn"));
  Status s1, st;
  const int groups = test::RunInOneGroup(
      db.get(), {[&] { s1 = db->Put(WriteOptions(), "a", "put"); }, [&] { st = txn->Commit(); }});
  EXPECT_EQ(groups, 2);
  EXPECT_OK(s1);
  EXPECT_OK(st);
  std::string v;
  ASSERT_OK(db->Get(ReadOptions(), "c", &v));
  EXPECT_EQ(v, "txn");
  txn.reset();
  ASSERT_OK(db->Close());
  test::ExpectPoolsReleased();
}

}  // namespace
}  // namespace arenakv
