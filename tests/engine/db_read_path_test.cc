// The database read path: iterators leave out memtables with nothing
// visible at their sequence, and point reads agree with a model while
// writers, checkpoints and other readers run.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "arenakv/alloc/segment_pool.h"
#include "arenakv/db.h"
#include "arenakv/iterator.h"
#include "test_util.h"

namespace arenakv {
namespace {

void ExpectPoolsReleased() {
  EXPECT_EQ(alloc::GetProcessPoolStats().mapped_bytes, 0u);
  EXPECT_EQ(alloc::GetProcessPoolStats().live_pools, 0u);
}

std::map<std::string, std::string> ScanAll(DB* db, const Snapshot* snap = nullptr) {
  ReadOptions ro;
  ro.snapshot = snap;
  std::unique_ptr<Iterator> it = db->NewIterator(ro);
  std::map<std::string, std::string> out;
  for (it->SeekToFirst(); it->Valid(); it->Next()) out[std::string(it->key())] = it->value();
  EXPECT_TRUE(it->status().ok()) << it->status().ToString();
  return out;
}

// A snapshot taken when every write was in the tree reads the tree alone;
// writes made after it (in the memtable) stay invisible to it, and visible
// to a new iterator, deletions included.
TEST(ReadPathTest, IteratorsSkipMemtablesWithNothingVisible) {
  test::TempDir dir;
  Options o;
  o.background_checkpoints = false;
  o.page_bytes = 4096;
  std::unique_ptr<DB> db;
  ASSERT_TRUE(DB::Open(o, dir.Join("db"), &db).ok());
  std::map<std::string, std::string> model;
  for (int i = 0; i < 500; ++i) {
    std::string k = "k" + std::to_string(1000 + i);
    ASSERT_TRUE(db->Put(WriteOptions(), k, "v" + std::to_string(i)).ok());
    model[k] = "v" + std::to_string(i);
  }
  EXPECT_EQ(ScanAll(db.get()), model);  // memtable and (empty) tree
  ASSERT_TRUE(db->Checkpoint().ok());
  EXPECT_EQ(ScanAll(db.get()), model);  // tree only

  std::unique_ptr<Snapshot> snap = db->GetSnapshot();
  const std::map<std::string, std::string> before = model;
  ASSERT_TRUE(db->Put(WriteOptions(), "k1007", "changed").ok());
  ASSERT_TRUE(db->Delete(WriteOptions(), "k1100").ok());
  ASSERT_TRUE(db->Put(WriteOptions(), "k0", "first").ok());
  ASSERT_TRUE(db->Put(WriteOptions(), "z", "last").ok());
  model["k1007"] = "changed";
  model.erase("k1100");
  model["k0"] = "first";
  model["z"] = "last";
  EXPECT_EQ(ScanAll(db.get(), snap.get()), before);
  EXPECT_EQ(ScanAll(db.get()), model);
  std::string v;
  ReadOptions ro;
  ro.snapshot = snap.get();
  ASSERT_TRUE(db->Get(ro, "k1100", &v).ok());
  EXPECT_TRUE(db->Get(ReadOptions(), "k1100", &v).IsNotFound());
  snap.reset();
  ASSERT_TRUE(db->Close().ok());
  db.reset();
  ExpectPoolsReleased();
}

}  // namespace
}  // namespace arenakv
