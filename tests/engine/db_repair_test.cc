// RepairDB: one kind of damage per file (a leaf page, a meta block, a log
// record), each repaired into a database that opens and verifies, holds
// only values that were written, loses no more than the damage took, and
// says what it lost.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>

#include "arenakv/db.h"
#include "db_test_util.h"
#include "fault_env.h"
#include "test_util.h"

namespace arenakv {
namespace {

namespace fs = std::filesystem;
using test::ExpectPoolsReleased;

std::string Key(int i) {
  char k[16];
  std::snprintf(k, sizeof(k), "k%05d", i);
  return k;
}
// Unique and findable in the file (pages are stored uncompressed here).
std::string Value(const std::string& phase, int i) {
  std::string v = phase + "-" + Key(i) + "-";
  v.resize(100, '.');
  return v;
}

Options FixtureOptions() {
  Options o;
  o.page_bytes = 4096;
  o.compression = false;
  o.background_checkpoints = false;
  return o;
}

// In a child process: keys 0..2999 = v1, checkpoint; 0..499 = v2,
// checkpoint; 0..99 = v3, left in the log (the child exits without Close).
void BuildFixture(const std::string& path) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::unique_ptr<DB> db;
    if (!DB::Open(FixtureOptions(), path, &db).ok()) _exit(2);
    for (int i = 0; i < 3000; ++i) {
      if (!db->Put(WriteOptions{}, Key(i), Value("v1", i)).ok()) _exit(3);
    }
    if (!db->Checkpoint().ok()) _exit(4);
    for (int i = 0; i < 500; ++i) {
      if (!db->Put(WriteOptions{}, Key(i), Value("v2", i)).ok()) _exit(3);
    }
    if (!db->Checkpoint().ok()) _exit(4);
    for (int i = 0; i < 100; ++i) {
      if (!db->Put(WriteOptions{}, Key(i), Value("v3", i)).ok()) _exit(3);
    }
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

std::string Expected(int i) { return Value(i < 100 ? "v3" : i < 500 ? "v2" : "v1", i); }

std::string ReadFile(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void FlipByteAt(const std::string& file, uint64_t offset) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(offset));
  f.put(static_cast<char>(c ^ 0x5a));
}

std::string OnlyLog(const std::string& path) {
  std::string log;
  for (const auto& e : fs::directory_iterator(path)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("wal-", 0) == 0 && fs::file_size(e.path()) > 1000) log = e.path().string();
  }
  return log;
}

TEST(RepairTest, AnIntactDatabaseKeepsEverything) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  ASSERT_NO_FATAL_FAILURE(BuildFixture(path));
  RepairReport report;
  ASSERT_OK(RepairDB(path, {}, &report));
  EXPECT_TRUE(report.lost.empty()) << report.lost.front();
  EXPECT_EQ(report.keys, 3000u);
  EXPECT_EQ(report.log_records, 100u);
  EXPECT_EQ(report.pages_lost, 0u);
  const auto contents = test::OpenVerifyContents(path);
  ASSERT_EQ(contents.size(), 3000u);
  for (int i = 0; i < 3000; ++i) EXPECT_EQ(contents.at(Key(i)), Expected(i)) << i;
  // The originals are kept aside.
  EXPECT_TRUE(fs::exists(report.lost_dir + "/data.akv")) << report.lost_dir;
  EXPECT_FALSE(fs::exists(path + "/repair.tmp"));
  ExpectPoolsReleased();
}

TEST(RepairTest, ADamagedLeafLosesOnlyItsKeys) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  ASSERT_NO_FATAL_FAILURE(BuildFixture(path));
  // A byte of key 2000's value: inside a leaf of the current tree.
  const std::string data = path + "/data.akv";
  const size_t at = ReadFile(data).rfind(Value("v1", 2000));
  ASSERT_NE(at, std::string::npos);
  FlipByteAt(data, at + 50);
  {
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(Options{}, path, &db));
    VerifyReport vr;
    EXPECT_TRUE(db->Verify(&vr).IsCorruption());  // the damage is real
    ASSERT_OK(db->Close());
  }
  RepairReport report;
  ASSERT_OK(RepairDB(path, {}, &report));
  EXPECT_EQ(report.pages_lost, 1u);
  ASSERT_FALSE(report.lost.empty());
  EXPECT_NE(report.lost.front().find("Corruption"), std::string::npos) << report.lost.front();
  const auto contents = test::OpenVerifyContents(path);
  EXPECT_EQ(contents.count(Key(2000)), 0u);
  // One 4 KiB leaf holds a few dozen of these keys: only they are gone.
  EXPECT_GE(contents.size(), 3000u - 50);
  EXPECT_LT(contents.size(), 3000u);
  EXPECT_EQ(report.keys, contents.size());
  for (const auto& [k, v] : contents) EXPECT_EQ(v, Expected(std::stoi(k.substr(1)))) << k;
  ExpectPoolsReleased();
}

TEST(RepairTest, ADamagedMetaBlockFallsBackToTheCheckpointBefore) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  ASSERT_NO_FATAL_FAILURE(BuildFixture(path));
  // Both meta blocks hold a checkpoint (the first and the second); damage
  // each in turn on a copy and repair it.
  for (uint64_t meta : {4096u, 8192u}) {
    SCOPED_TRACE("meta block at " + std::to_string(meta));
    const std::string copy = dir.Join("copy-" + std::to_string(meta));
    fs::copy(path, copy);
    FlipByteAt(copy + "/data.akv", meta + 20);
    RepairReport report;
    ASSERT_OK(RepairDB(copy, {}, &report));
    bool said = false;
    for (const auto& line : report.lost)
      said |= line.find("meta block is damaged") != std::string::npos;
    EXPECT_TRUE(said);
    const auto contents = test::OpenVerifyContents(copy);
    // The log's commits are there either way; the rest is the state of the
    // checkpoint used (the second's v2, or the first's v1 where the
    // second's log is gone), never a value that was not written.
    for (int i = 0; i < 100; ++i)
      EXPECT_EQ(contents.count(Key(i)) ? contents.at(Key(i)) : "", Expected(i));
    for (const auto& [k, v] : contents) {
      const int i = std::stoi(k.substr(1));
      EXPECT_TRUE(v == Expected(i) || v == Value("v1", i)) << k << " = " << v;
    }
    EXPECT_GE(contents.size(), 2000u);
  }
  ExpectPoolsReleased();
}

TEST(RepairTest, ADamagedLogRecordIsPassedOver) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  ASSERT_NO_FATAL_FAILURE(BuildFixture(path));
  const std::string log = OnlyLog(path);
  ASSERT_FALSE(log.empty());
  const size_t at = ReadFile(log).find(Value("v3", 50));
  ASSERT_NE(at, std::string::npos);
  FlipByteAt(log, at + 30);
  RepairReport report;
  ASSERT_OK(RepairDB(path, {}, &report));
  EXPECT_GT(report.log_bytes_lost, 0u);
  EXPECT_EQ(report.log_records, 99u);  // every commit but the damaged one
  const auto contents = test::OpenVerifyContents(path);
  ASSERT_EQ(contents.size(), 3000u);
  // Key 50 keeps the value before the lost commit; the commits after it
  // are there (a plain open cuts the log at the damage instead).
  EXPECT_EQ(contents.at(Key(50)), Value("v2", 50));
  for (int i = 0; i < 3000; ++i) {
    if (i != 50) {
      EXPECT_EQ(contents.at(Key(i)), Expected(i)) << i;
    }
  }
  ExpectPoolsReleased();
}

// A repair that fails half-way through its file swap (here: moving the
// salvaged data file into place) leaves a directory that an open refuses,
// and the next repair finishes the swap.
TEST(RepairTest, AnInterruptedSwapIsFinishedByTheNextRepair) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  ASSERT_NO_FATAL_FAILURE(BuildFixture(path));
  auto env = std::make_shared<test::FaultInjectionEnv>(Env::Default());
  // The swap's rename (from ends there; a rename is matched as "from\nto"),
  // not the one that creates the repaired data file under its name.
  env->AddRule({.file_substring = "repair.tmp/data.akv\n", .op = test::FaultOp::kRename});
  Options options;
  options.env = env;
  Status s = RepairDB(path, options);
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  std::unique_ptr<DB> db;
  s = DB::Open(Options{}, path, &db);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.ToString().find("run RepairDB"), std::string::npos) << s.ToString();
  env->ClearRules();
  RepairReport report;
  ASSERT_OK(RepairDB(path, options, &report));
  ASSERT_FALSE(report.lost.empty());
  EXPECT_NE(report.lost.front().find("interrupted repair was finished"), std::string::npos);
  const auto contents = test::OpenVerifyContents(path);
  ASSERT_EQ(contents.size(), 3000u);
  for (int i = 0; i < 3000; ++i) EXPECT_EQ(contents.at(Key(i)), Expected(i)) << i;
  EXPECT_TRUE(fs::exists(report.lost_dir + "/data.akv"));
  EXPECT_FALSE(fs::exists(path + "/repair.tmp"));
  ExpectPoolsReleased();
}

TEST(RepairTest, RefusedWhileOpenAndStoppedBeforeAnythingChanges) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  ASSERT_NO_FATAL_FAILURE(BuildFixture(path));
  EXPECT_TRUE(RepairDB(dir.Join("nothing-here")).IsNotFound());
  {
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(Options{}, path, &db));
    EXPECT_TRUE(RepairDB(path).IsBusy());
    ASSERT_OK(db->Close());
  }
  const std::string before = ReadFile(path + "/data.akv");
  int calls = 0;
  Status s = RepairDB(
      path, {}, nullptr,
      [](uint64_t, uint64_t, void* arg) { return ++*static_cast<int*>(arg) < 3; }, &calls);
  EXPECT_TRUE(s.IsAborted()) << s.ToString();
  EXPECT_EQ(ReadFile(path + "/data.akv"), before);
  EXPECT_FALSE(fs::exists(path + "/lost"));
  ExpectPoolsReleased();
}

// The smallest budget a 256 KiB cache allows (cache + 1/8 + 8 MiB) holds
// nothing like the 30 MB of data, tree and log, that the repair salvages:
// it works through it all the same, and leaves no pool behind.
TEST(RepairTest, ADatabaseManyTimesTheBudgetIsRepairedWithinIt) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  constexpr int kKeys = 200000;
  auto value = [](int i) { return Value(i % 3 == 0 ? "new" : "old", i) + std::to_string(i); };
  Options tight;
  tight.cache_bytes = 256 << 10;
  tight.memory_budget_bytes = tight.cache_bytes + tight.cache_bytes / 8 + (8 << 20);
  tight.compression = false;  // the values are mostly padding
  {
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(tight, path, &db));
    for (int i = 0; i < kKeys; ++i) {
      ASSERT_OK(db->Put(WriteOptions{}, Key(i), Value("old", i) + std::to_string(i)));
    }
    ASSERT_OK(db->Checkpoint());
    for (int i = 0; i < kKeys; i += 3) ASSERT_OK(db->Put(WriteOptions{}, Key(i), value(i)));
    DBStats st;
    ASSERT_OK(db->GetStats(&st));
    ASSERT_GT(st.data_file_bytes, 2 * tight.memory_budget_bytes);
    ASSERT_OK(db->Close());
  }
  ExpectPoolsReleased();
  RepairReport report;
  ASSERT_OK(RepairDB(path, tight, &report));
  EXPECT_TRUE(report.lost.empty()) << report.lost.front();
  EXPECT_EQ(report.keys, static_cast<uint64_t>(kKeys));
  ExpectPoolsReleased();
  const auto contents = test::OpenVerifyContents(path);
  ASSERT_EQ(contents.size(), static_cast<size_t>(kKeys));
  for (int i = 0; i < kKeys; i += 997) EXPECT_EQ(contents.at(Key(i)), value(i)) << i;
  ExpectPoolsReleased();
}

}  // namespace
}  // namespace arenakv
