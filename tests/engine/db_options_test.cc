// Each option does what its name says: tests that failed while an option
// was ignored or measured the wrong thing.

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>

#include "arenakv/db.h"
#include "db_test_util.h"
#include "sync_point_util.h"
#include "test_util.h"
#include "tree/page_cache.h"

namespace arenakv {
namespace {

using test::ExpectPoolsReleased;

constexpr size_t kMiB = size_t{1} << 20;

DBStats Stats(DB* db) {
  DBStats st;
  EXPECT_OK(db->GetStats(&st));
  return st;
}

// checkpoint_wal_bytes bounds the log, not the memtable: the memtable of
// 216-byte entries is some 15% larger than their log records, so a
// memtable measured against the option was frozen with its log well short
// of it.
TEST(OptionsTest, CheckpointWalBytesIsTheActiveLogsSize) {
  const uint64_t seed = test::TestSeed();
  std::mt19937_64 rng(seed);
  test::TempDir dir;
  {
    Options options;
    options.background_checkpoints = false;
    options.compression = false;  // the log holds what was written
    options.checkpoint_wal_bytes = kMiB;
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(options, dir.Join("db"), &db));
    ASSERT_EQ(Stats(db.get()).checkpoints, 0u);
    uint64_t logged_at_freeze = 0;
    for (int i = 0; i < 20000 && logged_at_freeze == 0; ++i) {
      std::string value(200, '\0');
      for (char& c : value) c = static_cast<char>(rng());
      const uint64_t logged = Stats(db.get()).wal_bytes;
      char key[17];
      snprintf(key, sizeof(key), "%016d", i);
      ASSERT_OK(db->Put({}, key, value));
      // With checkpoints in the foreground, the put that freezes the memtable
      // also checkpoints it.
      if (Stats(db.get()).checkpoints > 0) logged_at_freeze = logged;
    }
    ASSERT_GT(logged_at_freeze, 0u) << "seed " << seed << ": no checkpoint ran";
    // The log held about the option's bytes when the memtable was frozen:
    // the payload (some 7% of record headers aside) at least 90% of it,
    // never more.
    EXPECT_GE(logged_at_freeze, options.checkpoint_wal_bytes / 100 * 90) << "seed " << seed;
    EXPECT_LE(logged_at_freeze, options.checkpoint_wal_bytes) << "seed " << seed;
    ASSERT_OK(db->Close());
  }
  ExpectPoolsReleased();
}

// paranoid_checks re-checks cached pages at every read: a cached image
// damaged in memory is reported, not served.
TEST(OptionsTest, ParanoidChecksFindACachedPageDamagedInMemory) {
  test::TempDir dir;
  {
    Options options;
    options.background_checkpoints = false;
    options.paranoid_checks = true;
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(options, dir.Join("db"), &db));
    for (int i = 0; i < 200; ++i) ASSERT_OK(db->Put({}, "key" + std::to_string(i), "value"));
    ASSERT_OK(db->Checkpoint());
    std::string v;
    ASSERT_OK(db->Get({}, "key7", &v));  // the pages on its path are cached now

    test::SyncPointScope scope;
    char* damaged = nullptr;
    SyncPoint::Get()->SetCallBack("BTree::FetchPage:Cached", [&](void* arg) {
      if (damaged != nullptr) return;
      auto* ref = static_cast<tree::PageRef*>(arg);
      damaged = const_cast<char*>(ref->data()) + ref->bytes() / 2;
      *damaged ^= 0x20;
    });
    SyncPoint::Get()->EnableProcessing();
    Status s = db->Get({}, "key7", &v);
    scope.Reset();
    ASSERT_NE(damaged, nullptr) << "the read did not look at a cached page";
    *damaged ^= 0x20;  // as it was
    EXPECT_TRUE(s.IsCorruption()) << s.ToString();
    EXPECT_NE(s.ToString().find("cached page checksum mismatch"), std::string::npos)
        << s.ToString();
    // Nothing else was harmed: the undamaged page reads again.
    ASSERT_OK(db->Get({}, "key7", &v));
    EXPECT_EQ(v, "value");
    ASSERT_OK(db->Close());
  }
  ExpectPoolsReleased();
}

}  // namespace
}  // namespace arenakv
