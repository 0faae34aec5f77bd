// DB::DeleteRange: exactly the keys in [begin, end) go, in one atomic
// commit, wherever they live (tree or memtable) and however many; a key put
// into the range while it runs goes too; a snapshot still sees them.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>

#include "arenakv/db.h"
#include "db_test_util.h"
#include "sync_point_util.h"
#include "test_util.h"

namespace arenakv {
namespace {

using test::ExpectPoolsReleased;

std::string Key(int i) {
  char k[16];
  std::snprintf(k, sizeof(k), "k%05d", i);
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

  // 10,000 keys: more than one chunk of the scan.
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

TEST(DeleteRangeTest, AKeyPutIntoTheRangeMeanwhileGoesToo) {
  test::TempDir dir;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(Options{}, dir.Join("db"), &db));
  for (int i = 0; i < 100; ++i) ASSERT_OK(db->Put(WriteOptions{}, Key(i), "v"));
  std::atomic<int> scans{0};
  test::SyncPointScope scope;
  SyncPoint::Get()->SetCallBack("DBImpl::DeleteRange:Scanned", [&](void*) {
    // Between the first scan and its commit, another writer puts a key in
    // the range: the commit conflicts, and the range is scanned again.
    if (scans.fetch_add(1) == 0) ASSERT_OK(db->Put(WriteOptions{}, Key(50) + "x", "late"));
  });
  SyncPoint::Get()->EnableProcessing();
  ASSERT_OK(db->DeleteRange(WriteOptions{}, Key(10), Key(90)));
  scope.Reset();
  EXPECT_EQ(scans.load(), 2);
  std::string v;
  EXPECT_TRUE(db->Get(ReadOptions{}, Key(50) + "x", &v).IsNotFound());
  EXPECT_EQ(test::Contents(db.get()).size(), 20u);
  ASSERT_OK(db->Close());
  db.reset();

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
