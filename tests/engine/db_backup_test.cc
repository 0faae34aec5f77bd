// DB::Backup: a copy of a live database that opens on its own with the state
// as of the call, while writers go on; a non-empty target is refused.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "arenakv/db.h"
#include "db_test_util.h"
#include "fault_env.h"
#include "sync_point_util.h"
#include "test_util.h"

namespace arenakv {
namespace {

using test::ExpectPoolsReleased;

std::string Key(int i) {
  char k[16];
  std::snprintf(k, sizeof(k), "k%07d", i);
  return k;
}

TEST(BackupTest, ACopyOpensWithTheStateAsOfTheCall) {
  test::TempDir dir;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(Options{}, dir.Join("db"), &db));
  std::map<std::string, std::string> model;
  for (int i = 0; i < 3000; ++i) {
    ASSERT_OK(db->Put(WriteOptions{}, Key(i), "checkpointed"));
    model[Key(i)] = "checkpointed";
  }
  ASSERT_OK(db->Checkpoint());
  for (int i = 2000; i < 4000; ++i) {
    ASSERT_OK(db->Put(WriteOptions{}, Key(i), "logged"));
    model[Key(i)] = "logged";
  }
  ASSERT_OK(db->Delete(WriteOptions{}, Key(5)));
  model.erase(Key(5));
  ASSERT_OK(db->Backup(dir.Join("first")));
  const auto first = model;

  for (int i = 0; i < 100; ++i) {
    ASSERT_OK(db->Put(WriteOptions{}, Key(i), "later"));
    model[Key(i)] = "later";
  }
  ASSERT_OK(db->Checkpoint());
  ASSERT_OK(db->Backup(dir.Join("second")));
  EXPECT_EQ(test::Contents(db.get()), model);
  ASSERT_OK(db->Close());
  db.reset();

  EXPECT_EQ(test::OpenVerifyContents(dir.Join("first")), first);
  EXPECT_EQ(test::OpenVerifyContents(dir.Join("second")), model);
  ExpectPoolsReleased();
}

// A writer keeps putting keys in order while the copy is made (held at the
// point where the state is captured): the copy holds every key acknowledged
// before the call and nothing but a prefix of the order.
TEST(BackupTest, WritersGoOnWhileTheCopyHoldsAPrefix) {
  test::TempDir dir;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(Options{}, dir.Join("db"), &db));
  std::atomic<int> acked{0};
  std::atomic<bool> stop{false};
  std::atomic<int> during{0};
  test::Notifier notifier;
  std::thread writer([&] {
    for (int i = 0; !stop.load(); ++i) {
      if (!db->Put(WriteOptions{}, Key(i), "v").ok()) return;
      acked.store(i + 1);
      notifier.Notify();
    }
  });
  notifier.WaitUntil([&] { return acked.load() >= 5000; });
  int acked_before = 0;
  test::SyncPointScope scope;
  SyncPoint::Get()->SetCallBack("DBImpl::Backup:Captured", [&](void*) {
    // The writer commits more while the copy is being made.
    const int at = acked.load();
    notifier.WaitUntil([&] { return acked.load() >= at + 2000; });
    during = acked.load() - at;
  });
  SyncPoint::Get()->EnableProcessing();
  acked_before = acked.load();
  ASSERT_OK(db->Backup(dir.Join("copy")));
  scope.Reset();
  stop = true;
  writer.join();
  EXPECT_GE(during.load(), 2000);

  const auto copy = test::OpenVerifyContents(dir.Join("copy"));
  ASSERT_GE(static_cast<int>(copy.size()), acked_before);
  int i = 0;
  for (const auto& [k, v] : copy) ASSERT_EQ(k, Key(i++)) << "not a prefix of the puts";
  ASSERT_OK(db->Close());
  db.reset();
  ExpectPoolsReleased();
}

// A database many times its budget (the smallest a 256 KiB cache allows)
// copies within it: the copy streams, it does not hold the files.
TEST(BackupTest, ADatabaseManyTimesTheBudgetIsCopiedWithinIt) {
  test::TempDir dir;
  Options tight;
  tight.cache_bytes = 256 << 10;
  tight.memory_budget_bytes = tight.cache_bytes + tight.cache_bytes / 8 + (8 << 20);
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(tight, dir.Join("db"), &db));
  const std::string value(150, 'x');
  constexpr int kKeys = 150000;
  for (int i = 0; i < kKeys; ++i) ASSERT_OK(db->Put(WriteOptions{}, Key(i), value + Key(i)));
  DBStats st;
  ASSERT_OK(db->GetStats(&st));
  ASSERT_GT(st.data_file_bytes + st.wal_bytes, tight.memory_budget_bytes);
  ASSERT_OK(db->Backup(dir.Join("copy")));
  ASSERT_OK(db->GetStats(&st));
  EXPECT_LE(st.pool.high_water_bytes, tight.memory_budget_bytes);
  ASSERT_OK(db->Close());
  db.reset();
  const auto contents = test::OpenVerifyContents(dir.Join("copy"));
  ASSERT_EQ(contents.size(), static_cast<size_t>(kKeys));
  EXPECT_EQ(contents.at(Key(4242)), value + Key(4242));
  ExpectPoolsReleased();
}

TEST(BackupTest, ANonEmptyTargetOrAReadOnlyDatabaseIsRefused) {
  test::TempDir dir;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(Options{}, dir.Join("db"), &db));
  ASSERT_OK(db->Put(WriteOptions{}, "a", "1"));
  std::filesystem::create_directory(dir.Join("busy"));
  std::ofstream(dir.Join("busy") + "/keep") << "mine";
  Status s = db->Backup(dir.Join("busy"));
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.Join("busy")),
                          std::filesystem::directory_iterator{}),
            1);
  s = db->Backup("");
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  ASSERT_OK(db->Close());
  db.reset();

  Options read_only;
  read_only.read_only = true;
  ASSERT_OK(DB::Open(read_only, dir.Join("db"), &db));
  s = db->Backup(dir.Join("from-reader"));
  EXPECT_TRUE(s.IsNotSupported()) << s.ToString();
  ASSERT_OK(db->Close());
  db.reset();
  ExpectPoolsReleased();
}

// A backup stopped by its progress callback (Ctrl-C in kvtool), or failing
// half-way, leaves nothing behind: no partial copy to mistake for a
// backup, the target directory as it was.
TEST(BackupTest, AStoppedOrFailedCopyLeavesNothingBehind) {
  test::TempDir dir;
  auto env = std::make_shared<test::FaultInjectionEnv>(Env::Default());
  Options options;
  options.env = env;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(options, dir.Join("db"), &db));
  std::mt19937_64 rng(7);
  std::string value(1000, '\0');
  for (int i = 0; i < 6000; ++i) {
    for (char& c : value) c = static_cast<char>(rng());  // not compressible
    ASSERT_OK(db->Put(WriteOptions{}, Key(i), value));
  }
  ASSERT_OK(db->Checkpoint());  // a data file of some MiB
  for (int i = 0; i < 100; ++i) ASSERT_OK(db->Put(WriteOptions{}, Key(i), "logged"));

  struct Seen {
    int calls = 0;
    uint64_t done = 0, total = 0;
  } seen;
  BackupOptions stop_at_second;
  stop_at_second.arg = &seen;
  stop_at_second.progress = [](uint64_t done, uint64_t total, void* arg) {
    auto* s = static_cast<Seen*>(arg);
    s->done = done;
    s->total = total;
    return ++s->calls < 2;
  };
  Status s = db->Backup(dir.Join("stopped"), stop_at_second);
  EXPECT_TRUE(s.IsAborted()) << s.ToString();
  EXPECT_EQ(seen.calls, 2);
  EXPECT_GT(seen.total, seen.done);
  EXPECT_FALSE(std::filesystem::exists(dir.Join("stopped")));

  // An empty directory that was there stays, empty.
  std::filesystem::create_directory(dir.Join("mine"));
  env->AddRule({.file_substring = "mine/data", .op = test::FaultOp::kWrite, .after_ops = 1});
  s = db->Backup(dir.Join("mine"));
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_TRUE(std::filesystem::is_empty(dir.Join("mine")));
  env->ClearRules();

  // And the next one works, with every byte counted.
  BackupOptions count;
  seen = {};
  count.arg = &seen;
  count.progress = [](uint64_t done, uint64_t total, void* arg) {
    auto* s = static_cast<Seen*>(arg);
    if (done < s->done || done > total) return false;
    s->done = done;
    s->total = total;
    ++s->calls;
    return true;
  };
  ASSERT_OK(db->Backup(dir.Join("mine"), count));
  EXPECT_EQ(seen.done, seen.total);
  EXPECT_GT(seen.calls, 2);
  auto contents = test::Contents(db.get());
  ASSERT_OK(db->Close());
  db.reset();
  EXPECT_EQ(test::OpenVerifyContents(dir.Join("mine")), contents);
  ExpectPoolsReleased();
}

}  // namespace
}  // namespace arenakv
