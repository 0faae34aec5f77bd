// Old versions kept alive for readers are owned, counted, and released the
// moment their last reader ends.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "arenakv/alloc/segment_pool.h"
#include "arenakv/db.h"
#include "test_util.h"

namespace arenakv {
namespace {

DBStats Stats(DB* db) {
  DBStats st;
  EXPECT_OK(db->GetStats(&st));
  return st;
}

void PutAll(DB* db, const std::string& tag) {
  for (int i = 0; i < 2000; ++i) {
    ASSERT_OK(db->Put(WriteOptions{}, "key" + std::to_string(i), tag + std::to_string(i)));
  }
}

TEST(VersionsTest, SnapshotKeepsOldPagesUntilReleased) {
  test::TempDir dir;
  Options options;
  options.page_bytes = 4096;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(options, dir.Join("db"), &db));
  PutAll(db.get(), "old");
  ASSERT_OK(db->Checkpoint());
  DBStats st = Stats(db.get());
  EXPECT_EQ(st.live_tree_roots, 1u);
  EXPECT_EQ(st.retained_old_pages, 0u);
  EXPECT_EQ(st.live_memtables, 1u);  // the checkpointed one is gone already

  std::unique_ptr<Snapshot> snap = db->GetSnapshot();
  PutAll(db.get(), "new");
  ASSERT_OK(db->Checkpoint());
  st = Stats(db.get());
  EXPECT_EQ(st.live_tree_roots, 2u);      // the snapshot's root and the current one
  EXPECT_GT(st.retained_old_pages, 10u);  // every leaf was rewritten
  EXPECT_EQ(st.open_snapshots, 1u);

  ReadOptions ro;
  ro.snapshot = snap.get();
  std::string v;
  ASSERT_OK(db->Get(ro, "key7", &v));
  EXPECT_EQ(v, "old7");
  ASSERT_OK(db->Get(ReadOptions{}, "key7", &v));
  EXPECT_EQ(v, "new7");

  snap.reset();  // the last reader of the old version ends...
  st = Stats(db.get());
  EXPECT_EQ(st.live_tree_roots, 1u);  // ...and its pages are released at once
  EXPECT_EQ(st.retained_old_pages, 0u);
  EXPECT_EQ(st.open_snapshots, 0u);
  EXPECT_EQ(st.live_versions, 1u);

  ASSERT_OK(db->Close());
  db.reset();
  EXPECT_EQ(alloc::GetProcessPoolStats().mapped_bytes, 0u);
  EXPECT_EQ(alloc::GetProcessPoolStats().live_pools, 0u);
}

TEST(VersionsTest, IteratorKeepsFrozenMemtableUntilDestroyed) {
  test::TempDir dir;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(Options{}, dir.Join("db"), &db));
  PutAll(db.get(), "a");
  std::unique_ptr<Iterator> it = db->NewIterator(ReadOptions{});
  ASSERT_OK(db->Checkpoint());  // freezes and applies the memtable it reads
  EXPECT_EQ(Stats(db.get()).live_memtables, 2u);
  int n = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) ++n;
  EXPECT_OK(it->status());
  EXPECT_EQ(n, 2000);
  it.reset();
  EXPECT_EQ(Stats(db.get()).live_memtables, 1u);
  ASSERT_OK(db->Close());
  db.reset();
  EXPECT_EQ(alloc::GetProcessPoolStats().mapped_bytes, 0u);
  EXPECT_EQ(alloc::GetProcessPoolStats().live_pools, 0u);
}

}  // namespace
}  // namespace arenakv
