// Long-lived readers cost disk, not memory: memtables that snapshots,
// iterators and transactions keep past their checkpoint move to the spill
// file, and readers go on reading them there. Without disk space for them,
// writes are refused atomically and resume when the readers end.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "arenakv/db.h"
#include "arenakv/iterator.h"
#include "arenakv/transaction.h"
#include "db_test_util.h"
#include "fault_env.h"
#include "test_util.h"

namespace arenakv {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

using Model = std::map<std::string, std::string>;
using test::Contents;
using test::FaultInjectionEnv;
using test::FaultOp;

Options SpillOptions(std::shared_ptr<Env> env = nullptr) {
  Options o;
  o.cache_bytes = 1 * kMiB;
  o.memory_budget_bytes = 10 * kMiB;
  o.env = std::move(env);
  return o;
}

std::string Key(int i) {
  char k[16];
  std::snprintf(k, sizeof(k), "k%07d", i);
  return k;
}

bool SpillFileInDirectory(const std::string& dir) {
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().filename() == "SPILL") return true;
  }
  return false;
}

// A reader taken every 200 puts, each on a newer memtable, and all kept:
// together they hold far more than the 10 MiB budget. They used to fill it,
// and writers got MemoryLimit after some 5 MiB of puts; now every put
// succeeds, the memory stays within the budget, and each reader still sees
// exactly what was written before it.
TEST(SpillTest, ReadersHeldAcrossManyMemtablesCostDiskNotMemory) {
  test::TempDir dir;
  const Options options = SpillOptions();
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(options, dir.Join("db"), &db));
  struct Held {
    int before;  // puts made when it was taken
    std::unique_ptr<Snapshot> snapshot;
    std::unique_ptr<Iterator> iterator;
  };
  std::vector<Held> held;
  const int kPuts = 30000;
  for (int i = 0; i < kPuts; ++i) {
    if (i % 200 == 0) {
      held.push_back(
          {i, db->GetSnapshot(), i % 2000 == 0 ? db->NewIterator(ReadOptions()) : nullptr});
    }
    // 1000-byte values, each naming the put that wrote it.
    Status s = db->Put(WriteOptions(), Key(i % 20000), std::string(1000, 'a' + i % 26) + Key(i));
    if (!s.ok()) std::fprintf(stderr, "%s", db->StatsReport().c_str());
    ASSERT_TRUE(s.ok()) << "put " << i << ": " << s.ToString();
  }
  DBStats st;
  ASSERT_OK(db->GetStats(&st));
  EXPECT_GT(st.memtable_spills, 3u);
  EXPECT_GT(st.spilled_bytes, 10 * kMiB) << "the held readers hold more than the budget";
  EXPECT_EQ(st.spill_failures, 0u);
  EXPECT_LE(st.pool.high_water_bytes, options.memory_budget_bytes);
  EXPECT_FALSE(SpillFileInDirectory(dir.Join("db"))) << "the spill file is unlinked at once";

  // Every reader reads its own state, from memory or from the spill file.
  for (const Held& h : held) {
    SCOPED_TRACE("reader taken after " + std::to_string(h.before) + " puts");
    ReadOptions at;
    at.snapshot = h.snapshot.get();
    std::string v;
    if (h.before > 0) {
      const int last = h.before - 1;
      ASSERT_OK(db->Get(at, Key(last % 20000), &v));
      EXPECT_EQ(v.substr(1000), Key(last));
    }
    if (h.before < 20000) {
      EXPECT_TRUE(db->Get(at, Key(h.before), &v).IsNotFound());
    }
    if (h.iterator != nullptr) {
      int keys = 0;
      for (h.iterator->SeekToFirst(); h.iterator->Valid(); h.iterator->Next()) ++keys;
      ASSERT_OK(h.iterator->status());
      EXPECT_EQ(keys, std::min(h.before, 20000));
    }
  }
  held.clear();
  ASSERT_OK(db->GetStats(&st));
  EXPECT_EQ(st.spilled_bytes, 0u) << "released readers give the spill file's space back";
  Model expected;
  for (int i = kPuts - 20000; i < kPuts; ++i) {
    expected[Key(i % 20000)] = std::string(1000, 'a' + i % 26) + Key(i);
  }
  EXPECT_EQ(Contents(db.get()), expected);
  ASSERT_OK(db->Close());
  db.reset();
  test::ExpectPoolsReleased();
}

// Readers in mid-walk while their memtable moves to disk under them: the
// bytes they read stay the same bytes, at the same addresses.
TEST(SpillTest, ReadersKeepReadingWhileTheirMemtableSpills) {
  test::TempDir dir;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(SpillOptions(), dir.Join("db"), &db));
  for (int i = 0; i < 2000; ++i) {
    ASSERT_OK(db->Put(WriteOptions(), Key(i), std::string(1000, 'r') + Key(i)));
  }
  std::unique_ptr<Snapshot> snap = db->GetSnapshot();
  std::atomic<bool> done{false};
  std::atomic<int> walks{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&] {
      ReadOptions at;
      at.snapshot = snap.get();
      while (!done.load(std::memory_order_acquire)) {
        std::unique_ptr<Iterator> it = db->NewIterator(at);
        int n = 0;
        for (it->SeekToFirst(); it->Valid(); it->Next(), ++n) {
          if (it->value() != std::string(1000, 'r') + Key(n)) {
            ADD_FAILURE() << "key " << it->key() << " read a wrong value";
            return;
          }
        }
        EXPECT_OK(it->status());
        EXPECT_EQ(n, 2000);
        walks.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  // Overwrites every key many times over: checkpoints retire the memtable
  // the snapshot reads, and it spills while the readers walk it.
  DBStats st;
  Status s;
  int i = 0;
  for (; s.ok() && i < 1000000 && (st.memtable_spills == 0 || walks.load() < 4); ++i) {
    s = db->Put(WriteOptions(), Key(i % 2000), std::string(1000, 'w'));
    if (s.ok() && i % 1000 == 0) s = db->GetStats(&st);
  }
  done.store(true, std::memory_order_release);
  for (auto& t : readers) t.join();
  ASSERT_OK(s);
  EXPECT_GT(st.memtable_spills, 0u) << "the held memtable never spilled in " << i << " puts";
  snap.reset();
  ASSERT_OK(db->Close());
  db.reset();
  test::ExpectPoolsReleased();
}

// Without room on disk for the spill (the write or the mapping fails), the
// held snapshots fill the budget as they did before spilling existed:
// writes are refused with MemoryLimit, having changed nothing, and resume
// without a reopen once the snapshots are released.
TEST(SpillTest, WithoutDiskForTheSpillWritesAreRefusedAndResumeOnRelease) {
  for (FaultOp op : {FaultOp::kWrite, FaultOp::kMap}) {
    SCOPED_TRACE(op == FaultOp::kWrite ? "the spill file's writes fail" : "its mappings fail");
    test::TempDir dir;
    auto env = std::make_shared<FaultInjectionEnv>(Env::Default());
    env->AddRule({.file_substring = "SPILL", .op = op, .error = ENOSPC});
    const Options options = SpillOptions(env);
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(options, dir.Join("db"), &db));
    ASSERT_OK(db->Put(WriteOptions(), "before", "1"));
    std::vector<std::unique_ptr<Snapshot>> snapshots;
    Model written;
    std::string refused;
    const std::string value(1000, 'x');
    for (int i = 0; i < 100000 && refused.empty(); ++i) {
      if (i % 200 == 0) snapshots.push_back(db->GetSnapshot());
      const std::string key = "k" + std::to_string(i);
      Status s = db->Put(WriteOptions(), key, value);
      if (s.IsMemoryLimit()) {
        refused = key;
        EXPECT_NE(s.ToString().find("nothing was written"), std::string::npos) << s.ToString();
      } else {
        ASSERT_OK(s);
        written[key] = value;
      }
    }
    ASSERT_FALSE(refused.empty()) << "held snapshots never filled a 10 MiB budget";
    DBStats st;
    ASSERT_OK(db->GetStats(&st));
    EXPECT_GT(st.spill_failures, 0u);
    EXPECT_EQ(st.spilled_bytes, 0u);
    std::string v;
    // The refused put is not there. A read that goes to the tree may find
    // no room for a page while the readers hold every byte: that is a clear
    // error too, and the same read after the release must say NotFound.
    Status gs = db->Get(ReadOptions(), refused, &v);
    EXPECT_TRUE(gs.IsNotFound() || gs.IsMemoryLimit()) << gs.ToString();
    // Reads of what the memtables hold still work while the snapshots are held.
    ASSERT_OK(db->Get(ReadOptions{.snapshot = snapshots.front().get()}, "before", &v));
    snapshots.clear();
    gs = db->Get(ReadOptions(), refused, &v);
    EXPECT_TRUE(gs.IsNotFound()) << gs.ToString();
    // Writes resume at once: no reopen, no waiting.
    for (int i = 0; i < 2000; ++i) {
      const std::string key = "after" + std::to_string(i);
      Status s = db->Put(WriteOptions(), key, value);
      ASSERT_TRUE(s.ok()) << "write " << i << " after the release: " << s.ToString();
      written[key] = value;
    }
    ASSERT_OK(db->GetStats(&st));
    EXPECT_GE(st.memory_limit_errors, 1u);
    ASSERT_OK(db->Close());
    db.reset();
    test::ExpectPoolsReleased();

    ASSERT_OK(DB::Open(SpillOptions(), dir.Join("db"), &db));
    EXPECT_TRUE(db->Get(ReadOptions(), refused, &v).IsNotFound())
        << "a Put that returned MemoryLimit was applied";
    written["before"] = "1";
    EXPECT_EQ(Contents(db.get()), written);
    ASSERT_OK(db->Close());
    db.reset();
    test::ExpectPoolsReleased();
  }
}

// A spill file left by a crash between its creation and its unlinking is
// removed at the next open.
TEST(SpillTest, OpenRemovesALeftoverSpillFile) {
  test::TempDir dir;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(SpillOptions(), dir.Join("db"), &db));
  ASSERT_OK(db->Put(WriteOptions(), "k", "v"));
  ASSERT_OK(db->Close());
  db.reset();
  std::FILE* f = std::fopen(dir.Join("db/SPILL").c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("left over", f);
  std::fclose(f);
  ASSERT_OK(DB::Open(SpillOptions(), dir.Join("db"), &db));
  EXPECT_FALSE(SpillFileInDirectory(dir.Join("db")));
  std::string v;
  ASSERT_OK(db->Get(ReadOptions(), "k", &v));
  EXPECT_EQ(v, "v");
  ASSERT_OK(db->Close());
  db.reset();
  test::ExpectPoolsReleased();
}

}  // namespace
}  // namespace arenakv
