// What a database says about itself: named properties and the approximate
// sizes of key ranges, which must come without reading the data.

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "arenakv/db.h"
#include "db_test_util.h"
#include "test_util.h"

namespace arenakv {
namespace {

using test::ExpectPoolsReleased;

std::string Key(int i) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "key%08d", i);
  return buf;
}

// Values that compress little, so that bytes on disk follow bytes written.
std::string Value(int i) {
  std::string v(100, '\0');
  uint64_t x = static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull + 1;
  for (char& c : v) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  return v;
}

uint64_t Number(DB* db, const char* name) {
  std::string v;
  Status s = db->GetProperty(name, &v);
  EXPECT_TRUE(s.ok()) << name << ": " << s.ToString();
  EXPECT_FALSE(v.empty()) << name;
  EXPECT_EQ(v.find_first_not_of("0123456789"), std::string::npos) << name << " = " << v;
  return v.empty() ? 0 : std::stoull(v);
}

TEST(PropertiesTest, EveryNamedPropertyAnswersAndUnknownOnesAreNotFound) {
  test::TempDir dir;
  {
    Options options;
    options.background_checkpoints = false;
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(options, dir.Join("db"), &db));
    for (int i = 0; i < 1000; ++i) ASSERT_OK(db->Put({}, Key(i), Value(i)));
    ASSERT_OK(db->Checkpoint());
    for (int i = 1000; i < 1500; ++i) ASSERT_OK(db->Put({}, Key(i), Value(i)));

    DBStats st;
    ASSERT_OK(db->GetStats(&st));
    EXPECT_EQ(Number(db.get(), "arenakv.approximate-keys"), st.approximate_keys);
    EXPECT_EQ(Number(db.get(), "arenakv.last-sequence"), 1500u);
    EXPECT_EQ(Number(db.get(), "arenakv.memtable-bytes"), st.memtable_bytes);
    EXPECT_GT(st.memtable_bytes, 500u * 100);
    EXPECT_GE(Number(db.get(), "arenakv.memory-bytes"), st.pool.in_use_bytes);
    EXPECT_GT(Number(db.get(), "arenakv.cache-bytes"), 0u);  // the checkpoint's pages
    const uint64_t data = Number(db.get(), "arenakv.data-file-bytes");
    EXPECT_GT(data, 1000u * 100 / 2);
    EXPECT_LE(data, st.data_file_bytes);

    std::string v;
    ASSERT_OK(db->GetProperty("arenakv.stats", &v));
    EXPECT_EQ(v, db->StatsReport());
    ASSERT_OK(db->GetProperty("arenakv.memory", &v));
    EXPECT_NE(v.find("committed"), std::string::npos) << v;
    ASSERT_OK(db->GetProperty("arenakv.cache", &v));
    EXPECT_NE(v.find("hits"), std::string::npos) << v;
    ASSERT_OK(db->GetProperty("arenakv.checkpoints", &v));
    EXPECT_EQ(v.rfind("1 (0 while recovering), covering up to sequence 1000", 0), 0u) << v;

    v = "unchanged";
    Status s = db->GetProperty("arenakv.no-such-thing", &v);
    EXPECT_TRUE(s.IsNotFound()) << s.ToString();
    EXPECT_NE(s.ToString().find("arenakv.no-such-thing"), std::string::npos) << s.ToString();
    EXPECT_EQ(v, "unchanged");
    ASSERT_OK(db->Close());
    EXPECT_TRUE(db->GetProperty("arenakv.stats", &v).IsClosed());
  }
  ExpectPoolsReleased();
}

TEST(ApproximateSizesTest, ShareOfTheTreeFromItsInternalPagesAlone) {
  constexpr int kKeys = 200000;
  test::TempDir dir;
  const std::string path = dir.Join("db");
  {
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(Options{}, path, &db));
    for (int i = 0; i < kKeys; ++i) ASSERT_OK(db->Put({}, Key(i), Value(i)));
    ASSERT_OK(db->Close());  // all of it checkpointed
  }
  {
    Options options;
    options.read_ahead = false;
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(options, path, &db));
    const std::string k0 = Key(0), k25 = Key(kKeys / 4), k50 = Key(kKeys / 2), kend = Key(kKeys),
                      k7 = Key(7), k8 = Key(8);
    const Range ranges[] = {{k0, kend}, {k0, k50},     {k25, k50}, {k50, k0},
                            {k7, k7},   {kend, "kez"}, {"", "a"}};
    uint64_t sizes[7];
    DBStats before, after;
    ASSERT_OK(db->GetStats(&before));
    ASSERT_OK(db->GetApproximateSizes(ranges, 7, sizes));
    ASSERT_OK(db->GetStats(&after));
    const uint64_t live = Number(db.get(), "arenakv.data-file-bytes");
    // The whole key space is about the whole tree; its halves and quarters
    // are about half and a quarter of it.
    EXPECT_GE(sizes[0], live * 9 / 10);
    EXPECT_LE(sizes[0], live);
    EXPECT_NEAR(static_cast<double>(sizes[1]), live / 2.0, live * 0.08);
    EXPECT_NEAR(static_cast<double>(sizes[2]), live / 4.0, live * 0.06);
    EXPECT_EQ(sizes[3], 0u);          // limit before start
    EXPECT_EQ(sizes[4], 0u);          // empty
    EXPECT_LE(sizes[5], live / 100);  // past every key: a leaf at most
    EXPECT_LE(sizes[6], live / 100);  // before every key
    // Nothing was read but internal pages: a few misses on a cold cache
    // for a tree of some 1,500 leaves.
    EXPECT_LE(after.cache.misses - before.cache.misses, 12u);
    ASSERT_OK(db->Close());
  }
  {
    // A read-only open, which keeps no free space, estimates as well.
    Options options;
    options.read_only = true;
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(options, path, &db));
    const std::string k0 = Key(0), k50 = Key(kKeys / 2), kend = Key(kKeys);
    const Range ranges[] = {{k0, kend}, {k0, k50}};
    uint64_t sizes[2];
    ASSERT_OK(db->GetApproximateSizes(ranges, 2, sizes));
    EXPECT_GT(sizes[0], uint64_t{kKeys} * 100 / 2);  // values of 100 bytes that compress little
    EXPECT_NEAR(static_cast<double>(sizes[1]), sizes[0] / 2.0, sizes[0] * 0.08);
    ASSERT_OK(db->Close());
  }
  ExpectPoolsReleased();
}

// A tree that is one leaf: the positions come from that leaf's keys, the
// ends of a range need not be keys, and a wider range is never smaller.
TEST(ApproximateSizesTest, ATreeOfOneLeaf) {
  test::TempDir dir;
  {
    Options options;
    options.background_checkpoints = false;
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(options, dir.Join("db"), &db));
    for (int i = 0; i < 100; ++i) ASSERT_OK(db->Put({}, Key(i), "v"));
    ASSERT_OK(db->Checkpoint());
    const uint64_t live = Number(db.get(), "arenakv.data-file-bytes");
    const std::string k10 = Key(10), k50 = Key(50), k50x = Key(50) + "x";
    const Range ranges[] = {{"a", "z"}, {k10, k50}, {k10, k50x}};
    uint64_t sizes[3];
    ASSERT_OK(db->GetApproximateSizes(ranges, 3, sizes));
    EXPECT_EQ(sizes[0], live);
    EXPECT_NEAR(static_cast<double>(sizes[1]), live * 0.40, live * 0.011);
    EXPECT_NEAR(static_cast<double>(sizes[2]), live * 0.41, live * 0.011);
    ASSERT_OK(db->Close());
  }
  ExpectPoolsReleased();
}

TEST(ApproximateSizesTest, CountsWhatTheMemtablesHold) {
  test::TempDir dir;
  {
    Options options;
    options.background_checkpoints = false;
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(options, dir.Join("db"), &db));
    const std::string k0 = Key(0), k50 = Key(50000), kend = Key(100000);
    const Range half[] = {{k0, k50}};
    uint64_t size = 1;
    ASSERT_OK(db->GetApproximateSizes(half, 1, &size));
    EXPECT_EQ(size, 0u);  // nothing written
    // A few keys, all in the memtable's list; then many, most in its run.
    for (int i = 0; i < 100; ++i) ASSERT_OK(db->Put({}, Key(i * 1000), Value(i)));
    ASSERT_OK(db->GetApproximateSizes(half, 1, &size));
    DBStats st;
    ASSERT_OK(db->GetStats(&st));
    EXPECT_NEAR(static_cast<double>(size), st.memtable_bytes / 2.0, st.memtable_bytes * 0.05);
    for (int i = 0; i < 100000; ++i) ASSERT_OK(db->Put({}, Key(i), Value(i)));
    ASSERT_OK(db->GetStats(&st));
    ASSERT_EQ(st.checkpoints, 0u);
    ASSERT_OK(db->GetApproximateSizes(half, 1, &size));
    EXPECT_NEAR(static_cast<double>(size), st.memtable_bytes / 2.0, st.memtable_bytes * 0.1);
    EXPECT_TRUE(db->GetApproximateSizes(nullptr, 1, &size).IsInvalidArgument());
    ASSERT_OK(db->Close());
  }
  ExpectPoolsReleased();
}

}  // namespace
}  // namespace arenakv
