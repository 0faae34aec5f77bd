// Recovery refuses states it cannot prove: a damaged newest meta block must
// not silently roll the database back to an older checkpoint whose logs are
// gone, and a damaged data-file header is Corruption.
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "arenakv/alloc/segment_pool.h"
#include "arenakv/db.h"
#include "db_test_util.h"
#include "fault_env.h"
#include "power_loss_env.h"
#include "test_util.h"
#include "util/coding.h"

namespace arenakv {
namespace {

using test::ExpectPoolsReleased;

void FlipByte(const std::string& path, long offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f.good()) << path;
  f.seekg(offset);
  char c = 0;
  f.read(&c, 1);
  c ^= 0x5a;
  f.seekp(offset);
  f.write(&c, 1);
}

// Two checkpoints, then a change only in the log; the close-time checkpoint
// fails, as if the process had died.
void BuildDatabase(const std::string& path) {
  auto env = std::make_shared<test::FaultInjectionEnv>(Env::Default());
  Options options;
  options.env = env;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(options, path, &db));
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 500; ++i) {
      ASSERT_OK(db->Put(WriteOptions{}, "k" + std::to_string(i), std::to_string(round)));
    }
    ASSERT_OK(db->Checkpoint());
  }
  ASSERT_OK(db->Put(WriteOptions{.sync = true}, "logged", "only"));
  env->AddRule({.file_substring = "data", .op = test::FaultOp::kWrite, .error = EIO});
  EXPECT_FALSE(db->Close().ok());
  db.reset();
  ExpectPoolsReleased();
}

TEST(RecoveryTest, IntactDatabaseRecoversFromCheckpointAndLog) {
  test::TempDir dir;
  ASSERT_NO_FATAL_FAILURE(BuildDatabase(dir.Join("db")));
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(Options{}, dir.Join("db"), &db));
  std::string v;
  ASSERT_OK(db->Get(ReadOptions{}, "k7", &v));
  EXPECT_EQ(v, "1");
  ASSERT_OK(db->Get(ReadOptions{}, "logged", &v));
  ASSERT_OK(db->Close());
  db.reset();
  ExpectPoolsReleased();
}

TEST(RecoveryTest, DamagedNewestMetaIsCorruptionNotAnOlderState) {
  test::TempDir dir;
  ASSERT_NO_FATAL_FAILURE(BuildDatabase(dir.Join("db")));
  // Checkpoint 2 lives in the meta slot at 4096 (slot = id mod 2); damage it
  // so that only checkpoint 1 (whose log was deleted by checkpoint 2) is left.
  FlipByte(dir.Join("db") + "/data.akv", 4096 + 20);
  std::unique_ptr<DB> db;
  Status s = DB::Open(Options{}, dir.Join("db"), &db);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.message().find("missing"), std::string::npos) << s.ToString();
  db.reset();
  ExpectPoolsReleased();
}

TEST(RecoveryTest, DamagedDataFileMagicIsCorruption) {
  test::TempDir dir;
  ASSERT_NO_FATAL_FAILURE(BuildDatabase(dir.Join("db")));
  FlipByte(dir.Join("db") + "/data.akv", 6);
  std::unique_ptr<DB> db;
  Status s = DB::Open(Options{}, dir.Join("db"), &db);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.message().find("data.akv"), std::string::npos) << s.ToString();
  db.reset();
  ExpectPoolsReleased();
}

// A data file lost beside logs that hold commits is Corruption: recreating
// it empty used to serve the logs' tail as the whole database.
TEST(RecoveryTest, MissingOrEmptyDataFileBesideLogsIsCorruption) {
  for (bool empty : {false, true}) {
    SCOPED_TRACE(empty ? "empty data file" : "missing data file");
    test::TempDir dir;
    ASSERT_NO_FATAL_FAILURE(BuildDatabase(dir.Join("db")));
    const std::string data = dir.Join("db") + "/data.akv";
    if (empty) {
      std::ofstream(data, std::ios::trunc).close();
    } else {
      ASSERT_EQ(std::remove(data.c_str()), 0);
    }
    std::unique_ptr<DB> db;
    Status s = DB::Open(Options{}, dir.Join("db"), &db);
    EXPECT_TRUE(s.IsCorruption()) << s.ToString();
    EXPECT_NE(s.message().find(empty ? "is empty" : "is missing"), std::string::npos)
        << s.ToString();
    EXPECT_EQ(std::filesystem::exists(data), empty) << "Open created a data file";
    db.reset();
    ExpectPoolsReleased();
  }
}

// The logs of `path`, by number.
std::vector<std::string> Logs(const std::string& path) {
  std::vector<std::string> logs;
  for (const auto& e : std::filesystem::directory_iterator(path)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("wal-", 0) == 0) logs.push_back(e.path().string());
  }
  std::sort(logs.begin(), logs.end());
  return logs;
}

// Creates an empty (headerless) log numbered `after` + `k` beside the log
// file `after`, as a crash right after creating a log leaves; returns its path.
std::string HeaderlessLogAfter(const std::string& after, uint64_t k = 1) {
  const std::filesystem::path p(after);
  char name[64];
  std::snprintf(name, sizeof(name), "wal-%06llu.log",
                static_cast<unsigned long long>(std::stoull(p.filename().string().substr(4)) + k));
  const std::string made = (p.parent_path() / name).string();
  std::ofstream(made, std::ios::trunc).close();
  return made;
}

// Tears the last record of the last log holding records (3 bytes short of
// its end, past the preallocated zeros); *log is that log, *torn_size the
// size it is cut to.
void TearLastLogWithRecords(const std::string& path, std::string* log, uint64_t* torn_size) {
  log->clear();
  for (const auto& l : Logs(path)) {
    if (std::filesystem::file_size(l) > 32) *log = l;
  }
  ASSERT_FALSE(log->empty());
  std::ifstream in(*log, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t end = bytes.size();
  while (end > 32 && bytes[end - 1] == '\0') --end;  // past the preallocated zeros
  *torn_size = end - 3;
  std::filesystem::resize_file(*log, *torn_size);
}

// A log holding no record does not make a lost data file Corruption: nothing
// was committed on top of it. The check used to go by the log's size, and a
// log created and preallocated but never synced (all zeros, longer than a
// header) was taken for one holding commits.
TEST(RecoveryTest, EmptyLogsBesideAMissingDataFileAreNotCommits) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(Options{}, path, &db));
  ASSERT_OK(db->Close());
  db.reset();
  const std::vector<std::string> logs = Logs(path);
  ASSERT_EQ(logs.size(), 1u);
  std::ofstream(logs[0], std::ios::trunc) << std::string(8192, '\0');
  ASSERT_EQ(std::remove((path + "/data.akv").c_str()), 0);
  ASSERT_OK(DB::Open(Options{}, path, &db));
  ASSERT_OK(db->Put(WriteOptions{}, "k", "v"));
  ASSERT_OK(db->Close());
  db.reset();
  ExpectPoolsReleased();
}

// Only "wal-<digits>.log" names a log. sscanf used to read "wal--1.log" as
// log 2^64-1 and refuse the database over a file it never wrote.
TEST(RecoveryTest, FilesOnlyNamedLikeLogsAreLeftAlone) {
  test::TempDir dir;
  ASSERT_NO_FATAL_FAILURE(BuildDatabase(dir.Join("db")));
  const std::vector<std::string> foreign = {"wal--1.log", "wal-+3.log",
                                            "wal- 2.log", "wal-99999999999999999999.log",
                                            "wal-.log",   "wal-7.log.bak"};
  for (const auto& name : foreign) {
    std::ofstream(dir.Join("db") + "/" + name) << "not a log";
  }
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(Options{}, dir.Join("db"), &db));
  std::string v;
  ASSERT_OK(db->Get(ReadOptions{}, "logged", &v));
  EXPECT_EQ(v, "only");
  ASSERT_OK(db->Checkpoint());
  ASSERT_OK(db->Close());
  db.reset();
  for (const auto& name : foreign) {
    EXPECT_TRUE(std::filesystem::exists(dir.Join("db") + "/" + name)) << name << " was deleted";
  }
  ExpectPoolsReleased();
}

// A torn tail of the last log holding commits is cut, and the database says
// what it cut (DBStats::recovery_cut, shown by kvtool stats).
TEST(RecoveryTest, TornTailIsCutAndReported) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  ASSERT_NO_FATAL_FAILURE(BuildDatabase(path));
  std::string torn;
  uint64_t torn_size = 0;
  ASSERT_NO_FATAL_FAILURE(TearLastLogWithRecords(path, &torn, &torn_size));
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(Options{}, path, &db));
  DBStats st;
  ASSERT_OK(db->GetStats(&st));
  const std::string name = std::filesystem::path(torn).filename().string();
  EXPECT_EQ(st.recovery_cut.rfind(name + " at offset ", 0), 0u) << st.recovery_cut;
  EXPECT_NE(db->StatsReport().find("cut a torn tail: " + name), std::string::npos);
  std::string v;
  ASSERT_OK(db->Get(ReadOptions{}, "k7", &v));  // the checkpointed state is intact
  ASSERT_OK(db->Close());
  db.reset();
  ASSERT_OK(DB::Open(Options{}, path, &db));
  ASSERT_OK(db->GetStats(&st));
  EXPECT_TRUE(st.recovery_cut.empty()) << "nothing left to cut: " << st.recovery_cut;
  ASSERT_OK(db->Close());
  db.reset();
  ExpectPoolsReleased();
}

// An open that writes nothing leaves no file behind: with no record in any
// log, the first log is written again from its header instead of a new one
// being created after it. 1,000 open/read/close cycles used to leave 1,001
// logs, and every open read them all.
TEST(RecoveryTest, OpensThatWriteNothingLeaveNoFileBehind) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(Options{}, path, &db));
  ASSERT_OK(db->Put({}, "k", "v"));
  ASSERT_OK(db->Close());
  db.reset();
  const std::vector<std::string> before = Logs(path);
  ASSERT_EQ(before.size(), 1u);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_OK(DB::Open(Options{}, path, &db));
    std::string v;
    ASSERT_OK(db->Get({}, "k", &v));
    ASSERT_OK(db->Close());
    db.reset();
  }
  EXPECT_EQ(Logs(path), before);
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(path)) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 3u) << "LOCK, data.akv and one log";
  // Empty logs left by an older version (here: never written, headerless)
  // are folded into the first too.
  for (uint64_t k = 1; k <= 3; ++k) HeaderlessLogAfter(before[0], k);
  ASSERT_OK(DB::Open(Options{}, path, &db));
  EXPECT_EQ(Logs(path), before);
  ASSERT_OK(db->Put(WriteOptions{.sync = true}, "k2", "v2"));
  ASSERT_OK(db->Close());
  db.reset();
  ASSERT_OK(DB::Open(Options{}, path, &db));
  std::string v;
  ASSERT_OK(db->Get({}, "k2", &v));
  EXPECT_EQ(v, "v2");
  ASSERT_OK(db->Close());
  db.reset();
  ExpectPoolsReleased();
}

// Folding empty logs into the first deletes them last first; when one
// deletion fails, the new log must follow the last one left. It followed the
// last one there had been, leaving a gap the next open refused as a lost log
// (found in review).
TEST(RecoveryTest, FailedDeletionOfAnEmptyLogLeavesNoGap) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(Options{}, path, &db));
  ASSERT_OK(db->Close());
  db.reset();
  const std::string first = Logs(path).at(0);
  std::vector<std::string> extra;
  for (uint64_t k = 1; k <= 3; ++k) extra.push_back(HeaderlessLogAfter(first, k));
  auto env = std::make_shared<test::FaultInjectionEnv>(Env::Default());
  env->AddRule({.file_substring = extra[1], .op = test::FaultOp::kDelete, .error = EIO});
  Options options;
  options.env = env;
  ASSERT_OK(DB::Open(options, path, &db));
  ASSERT_OK(db->Put(WriteOptions{.sync = true}, "k", "v"));
  env->AddRule({.file_substring = "data", .op = test::FaultOp::kWrite, .error = EIO});
  EXPECT_FALSE(db->Close().ok());  // the logs stay, as after a crash
  db.reset();
  ASSERT_OK(DB::Open(Options{}, path, &db));
  std::string v;
  ASSERT_OK(db->Get({}, "k", &v));
  EXPECT_EQ(v, "v");
  ASSERT_OK(db->Close());
  db.reset();
  ExpectPoolsReleased();
}

// Options::wal_recovery = kAbsoluteConsistency refuses what the default cuts,
// leaves the torn log as it is, and names it; the default then cuts it.
TEST(RecoveryTest, StrictRecoveryRefusesATornTailAndLeavesTheLog) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  ASSERT_NO_FATAL_FAILURE(BuildDatabase(path));
  std::string torn;
  uint64_t torn_size = 0;
  ASSERT_NO_FATAL_FAILURE(TearLastLogWithRecords(path, &torn, &torn_size));
  const std::string name = std::filesystem::path(torn).filename().string();

  Options strict;
  strict.wal_recovery = WalRecovery::kAbsoluteConsistency;
  std::unique_ptr<DB> db;
  Status s = DB::Open(strict, path, &db);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.ToString().find(name), std::string::npos) << s.ToString();
  EXPECT_EQ(std::filesystem::file_size(torn), torn_size) << "a refused open changed the log";
  db.reset();
  ExpectPoolsReleased();

  ASSERT_OK(DB::Open(Options{}, path, &db));
  DBStats st;
  ASSERT_OK(db->GetStats(&st));
  EXPECT_EQ(st.recovery_cut.rfind(name + " at offset ", 0), 0u) << st.recovery_cut;
  ASSERT_OK(db->Close());
  db.reset();
  // Once cut, the strict open has nothing to refuse.
  ASSERT_OK(DB::Open(strict, path, &db));
  ASSERT_OK(db->Close());
  db.reset();
  ExpectPoolsReleased();
}

// A log whose header never reached the disk (a power cut right after it was
// created) is the last log, and empty. Recovery used to cut it to zero bytes
// and leave it: the next open put a new log after it, and the open after
// that read a headerless log before a later one as damage (found by
// db_power_loss_test). It gets its header back instead.
TEST(RecoveryTest, HeaderlessLastLogDoesNotBreakALaterOpen) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  ASSERT_NO_FATAL_FAILURE(BuildDatabase(path));
  const std::string empty_log = HeaderlessLogAfter(Logs(path).back());
  for (int open = 0; open < 3; ++open) {
    auto env = std::make_shared<test::FaultInjectionEnv>(Env::Default());
    Options options;
    options.env = env;
    std::unique_ptr<DB> db;
    Status s = DB::Open(options, path, &db);
    ASSERT_TRUE(s.ok()) << "open " << open << ": " << s.ToString();
    std::string v;
    ASSERT_OK(db->Get(ReadOptions{}, "logged", &v));
    EXPECT_EQ(v, "only");
    if (open > 0) {
      ASSERT_OK(db->Get(ReadOptions{}, "after", &v));
      EXPECT_EQ(v, std::to_string(open - 1));
    }
    ASSERT_OK(db->Put(WriteOptions{.sync = true}, "after", std::to_string(open)));
    if (open == 0) {
      EXPECT_GE(std::filesystem::file_size(empty_log), 32u) << "no header written";
    }
    // The process dies before its close-time checkpoint: the logs stay.
    env->AddRule({.file_substring = "data", .op = test::FaultOp::kWrite, .error = EIO});
    EXPECT_FALSE(db->Close().ok());
    db.reset();
    ExpectPoolsReleased();
  }
}

// A log is synced before the next one is created, so a torn log followed by
// logs holding commits is damage, not a crash. Recovery used to cut it and
// replay the later logs: a state that never existed (issue 12).
TEST(RecoveryTest, TornLogBeforeLaterCommitsIsCorruption) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  ASSERT_NO_FATAL_FAILURE(BuildDatabase(path));  // "logged" lives in a log only
  const std::vector<std::string> first = Logs(path);
  ASSERT_FALSE(first.empty());
  {
    // A second session commits into a later log, then fails its checkpoint.
    auto env = std::make_shared<test::FaultInjectionEnv>(Env::Default());
    Options options;
    options.env = env;
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(options, path, &db));
    ASSERT_OK(db->Put(WriteOptions{.sync = true}, "second", "session"));
    env->AddRule({.file_substring = "data", .op = test::FaultOp::kWrite, .error = EIO});
    EXPECT_FALSE(db->Close().ok());
  }
  ExpectPoolsReleased();
  // Tear the record holding "logged": cut its last bytes off its log.
  std::string torn;
  for (const auto& log : first) {
    if (std::filesystem::file_size(log) > 32 && Logs(path).back() != log) torn = log;
  }
  ASSERT_FALSE(torn.empty());
  {
    std::ifstream in(torn, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t end = bytes.size();
    while (end > 32 && bytes[end - 1] == '\0') --end;  // past the preallocated zeros
    ASSERT_GT(end, 40u);
    std::filesystem::resize_file(torn, end - 3);
  }
  std::unique_ptr<DB> db;
  Status s = DB::Open(Options{}, path, &db);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.ToString().find("later logs hold commits"), std::string::npos) << s.ToString();
  db.reset();
  ExpectPoolsReleased();
}

// After a power loss the disk may keep a later unsynced record and tear an
// earlier one. The log's sync marks say which records were durable: a tear
// among unsynced records is cut (the database opens with every synced
// commit and a prefix of the rest); damage to a record a later mark covers
// is Corruption.
TEST(RecoveryTest, UnsyncedTearBeforeIntactRecordsIsCutSyncedDamageIsNot) {
  for (bool damage_synced : {false, true}) {
    SCOPED_TRACE(damage_synced ? "the synced record is damaged" : "an unsynced record is torn");
    test::TempDir dir;
    const std::string path = dir.Join("db");
    {
      auto env = std::make_shared<test::FaultInjectionEnv>(Env::Default());
      Options options;
      options.env = env;
      std::unique_ptr<DB> db;
      ASSERT_OK(DB::Open(options, path, &db));
      ASSERT_OK(db->Put(WriteOptions{.sync = true}, "logged", "synced"));
      for (int i = 0; i < 10; ++i) {
        ASSERT_OK(db->Put(WriteOptions{}, "u" + std::to_string(i), "unsynced"));
      }
      // The closing checkpoint fails: the commits stay in the log only.
      env->AddRule({.file_substring = "data", .op = test::FaultOp::kWrite, .error = EIO});
      EXPECT_FALSE(db->Close().ok());
    }
    ExpectPoolsReleased();
    std::string log;
    for (const auto& l : Logs(path)) {
      if (std::filesystem::file_size(l) > 32) log = l;
    }
    ASSERT_FALSE(log.empty());
    std::string bytes;
    {
      std::ifstream in(log, std::ios::binary);
      bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    // The batches' records (type 1 or 2), in order, skipping sync marks (3).
    std::vector<size_t> batches;
    for (size_t pos = 32; pos + 16 <= bytes.size();) {
      const uint32_t len = DecodeFixed32(bytes.data() + pos + 8);
      const uint8_t type = static_cast<uint8_t>(bytes[pos + 12]);
      if (type == 0) break;  // the preallocated zeros
      if (type != 3) batches.push_back(pos);
      pos += 16 + len;
    }
    ASSERT_EQ(batches.size(), 11u) << "\"logged\" and u0..u9";
    const size_t target = damage_synced ? batches[0] : batches[3];  // "logged", or u2
    FlipByte(log, static_cast<long>(target + 18));
    std::unique_ptr<DB> db;
    Status s = DB::Open(Options{}, path, &db);
    if (damage_synced) {
      EXPECT_TRUE(s.IsCorruption()) << s.ToString();
      EXPECT_NE(s.ToString().find("synced part of the log"), std::string::npos) << s.ToString();
      db.reset();
      ExpectPoolsReleased();
      continue;
    }
    ASSERT_OK(s);
    std::string v;
    ASSERT_OK(db->Get(ReadOptions{}, "logged", &v));
    EXPECT_EQ(v, "synced");
    for (int i = 0; i < 10; ++i) {
      Status g = db->Get(ReadOptions{}, "u" + std::to_string(i), &v);
      EXPECT_EQ(g.ok(), i < 2) << "u" << i << ": " << g.ToString();
    }
    DBStats st;
    ASSERT_OK(db->GetStats(&st));
    EXPECT_EQ(st.recovery_cut.rfind(std::filesystem::path(log).filename().string() + " at offset " +
                                        std::to_string(target),
                                    0),
              0u)
        << st.recovery_cut;
    ASSERT_OK(db->Put(WriteOptions{.sync = true}, "after", "works"));
    ASSERT_OK(db->Close());
    db.reset();
    ExpectPoolsReleased();
  }
}

}  // namespace
}  // namespace arenakv

namespace arenakv {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// (offset, length) of each batch record of a log, sync marks skipped.
std::vector<std::pair<size_t, size_t>> BatchRecords(const std::string& bytes) {
  std::vector<std::pair<size_t, size_t>> out;
  for (size_t pos = 32; pos + 16 <= bytes.size();) {
    const uint32_t len = DecodeFixed32(bytes.data() + pos + 8);
    const uint8_t type = static_cast<uint8_t>(bytes[pos + 12]);
    if (type == 0) break;  // the preallocated zeros
    if (type != 3) out.push_back({pos, 16 + len});
    pos += 16 + len;
  }
  return out;
}

// A log whose records recovery cut (a torn first record before an intact
// unsynced one) is written again from its header by the same open, under
// the same number, so its old records would still carry valid checksums.
// Recovery truncates the cut tail durably before that, so no power loss
// afterwards can put the new first sector beside the old later ones and
// bring the cut record back after commits made since.
TEST(RecoveryTest, ARecordCutByRecoveryNeverComesBackAfterTheLogIsReused) {
  for (uint64_t seed = 1; seed <= 16; ++seed) {
    SCOPED_TRACE("crash image seed " + std::to_string(seed));
    test::TempDir dir;
    const std::string path = dir.Join("db");
    // A log holding R1 ("a", 480 bytes: it ends on the first sector
    // boundary) and R2 ("b"), neither synced; the closing checkpoint fails.
    std::string log;
    size_t value_bytes = 400;
    for (int attempt = 0; attempt < 2; ++attempt) {
      std::filesystem::remove_all(path);
      auto env = std::make_shared<test::FaultInjectionEnv>(Env::Default());
      Options options;
      options.env = env;
      std::unique_ptr<DB> db;
      ASSERT_OK(DB::Open(options, path, &db));
      ASSERT_OK(db->Put(WriteOptions{}, "a", std::string(value_bytes, 'x')));
      ASSERT_OK(db->Put(WriteOptions{}, "b", "cut by recovery"));
      env->AddRule({.file_substring = "data", .op = test::FaultOp::kWrite, .error = EIO});
      EXPECT_FALSE(db->Close().ok());
      db.reset();
      ExpectPoolsReleased();
      for (const auto& l : Logs(path)) {
        if (BatchRecords(ReadFile(l)).size() == 2) log = l;
      }
      ASSERT_FALSE(log.empty());
      const auto records = BatchRecords(ReadFile(log));
      ASSERT_EQ(records[0].first, 32u);
      if (records[1].first == 512) break;
      value_bytes += 512 - records[1].first;  // the record grows with its value
    }
    ASSERT_EQ(BatchRecords(ReadFile(log))[1].first, 512u);
    FlipByte(log, 32 + 20);  // R1 torn: recovery cuts there, R2 goes too

    {
      auto env = std::make_shared<test::PowerLossEnv>(Env::Default(), path);
      Options options;
      options.env = env;
      std::unique_ptr<DB> db;
      ASSERT_OK(DB::Open(options, path, &db));
      std::string v;
      EXPECT_TRUE(db->Get(ReadOptions{}, "b", &v).IsNotFound());
      // The reused log's first record, the size R1 had.
      ASSERT_OK(db->Put(WriteOptions{}, "a", std::string(value_bytes, 'y')));
      env->PowerCut();
      db->Close().IgnoreError();
      db.reset();
      ExpectPoolsReleased();
      std::string image;
      ASSERT_OK(env->WriteCrashImage(seed, test::CrashStyle::kRandom, &image));
    }
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(Options{}, path, &db));
    std::string v;
    Status s = db->Get(ReadOptions{}, "b", &v);
    EXPECT_TRUE(s.IsNotFound()) << "the record recovery cut is back: " << s.ToString() << " " << v;
    ASSERT_OK(db->Close());
    db.reset();
    ExpectPoolsReleased();
  }
}

}  // namespace
}  // namespace arenakv
