// Read-only opens (Options::read_only): they read the state as of the open
// beside a writer, create, write and delete nothing (so they work where
// nothing may be written), leave a torn log tail as it is, and refuse every
// write with NotSupported.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "arenakv/db.h"
#include "arenakv/env.h"
#include "db_test_util.h"
#include "sync_point_util.h"
#include "test_util.h"

namespace arenakv {
namespace {

using test::ExpectPoolsReleased;

std::string Key(int i) {
  char k[16];
  std::snprintf(k, sizeof(k), "k%06d", i);
  return k;
}

// Name -> content of every file in `dir`.
std::map<std::string, std::string> Snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(e.path(), std::ios::binary);
    files[e.path().filename().string()] =
        std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return files;
}

// A file system mounted read-only: every call that would create, change or
// remove something fails with EROFS.
class ReadOnlyFileSystem final : public Env {
 public:
  Status OpenFile(const std::string& path, OpenMode mode, std::unique_ptr<File>* file) override {
    if (mode != OpenMode::kReadOnly) return Refused("open for writing", path);
    return base_->OpenFile(path, mode, file);
  }
  Status CreateDir(const std::string& path) override { return Refused("mkdir", path); }
  bool FileExists(const std::string& path) override { return base_->FileExists(path); }
  Status GetChildren(const std::string& dir, std::vector<std::string>* names) override {
    return base_->GetChildren(dir, names);
  }
  Status DeleteFile(const std::string& path) override { return Refused("unlink", path); }
  Status RenameFile(const std::string& from, const std::string&) override {
    return Refused("rename", from);
  }
  Status SyncDir(const std::string& dir) override { return Refused("sync", dir); }
  Status LockFile(const std::string& path, std::unique_ptr<FileLock>*) override {
    return Refused("lock", path);
  }

  int refused() const { return refused_; }

 private:
  Status Refused(const char* what, const std::string& path) {
    ++refused_;
    return Status::IOError(std::string(what) + " " + path + ": Read-only file system");
  }

  std::shared_ptr<Env> base_ = Env::Default();
  int refused_ = 0;
};

Options ReadOnly() {
  Options o;
  o.read_only = true;
  return o;
}

TEST(ReadOnlyTest, ReadsTheStateAsOfItsOpenBesideAWriter) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  std::unique_ptr<DB> writer;
  ASSERT_OK(DB::Open(Options{}, path, &writer));
  for (int i = 0; i < 3000; ++i) ASSERT_OK(writer->Put(WriteOptions{}, Key(i), "checkpointed"));
  ASSERT_OK(writer->Checkpoint());
  for (int i = 2000; i < 4000; ++i) ASSERT_OK(writer->Put(WriteOptions{}, Key(i), "logged"));
  ASSERT_OK(writer->Delete(WriteOptions{}, Key(0)));
  const auto before = Snapshot(path);

  std::unique_ptr<DB> reader;
  ASSERT_OK(DB::Open(ReadOnly(), path, &reader));
  std::map<std::string, std::string> want;
  for (int i = 1; i < 4000; ++i) want[Key(i)] = i < 2000 ? "checkpointed" : "logged";
  EXPECT_EQ(test::Contents(reader.get()), want);

  VerifyReport report;
  ASSERT_OK(reader->Verify(&report));

  // The writer goes on, through a checkpoint: the reader's lock keeps the
  // pages of its state, and it reads them from the file as before.
  for (int i = 0; i < 100; ++i) ASSERT_OK(writer->Put(WriteOptions{}, Key(i), "later"));
  ASSERT_OK(writer->Checkpoint());
  std::string v;
  EXPECT_TRUE(reader->Get(ReadOptions{}, Key(0), &v).IsNotFound());
  ASSERT_OK(reader->Get(ReadOptions{}, Key(50), &v));
  EXPECT_EQ(v, "checkpointed");
  EXPECT_EQ(test::Contents(reader.get()), want);
  ASSERT_OK(reader->Verify(&report));  // reads every page from the file

  // Every write is refused, and says why.
  Status s = reader->Put(WriteOptions{}, "x", "y");
  EXPECT_TRUE(s.IsNotSupported()) << s.ToString();
  EXPECT_NE(s.ToString().find("read-only"), std::string::npos) << s.ToString();
  EXPECT_TRUE(reader->Delete(WriteOptions{}, Key(1)).IsNotSupported());
  WriteBatch batch;
  ASSERT_OK(batch.Put("x", "y"));
  EXPECT_TRUE(reader->Write(WriteOptions{}, &batch).IsNotSupported());
  EXPECT_TRUE(reader->Checkpoint().IsNotSupported());
  std::unique_ptr<Transaction> txn = reader->BeginTransaction(WriteOptions{});
  ASSERT_OK(txn->Get(ReadOptions{}, Key(3), &v));
  EXPECT_EQ(v, "checkpointed");
  ASSERT_OK(txn->Put("x", "y"));
  EXPECT_TRUE(txn->Commit().IsNotSupported());
  txn.reset();
  ASSERT_OK(reader->Close());
  reader.reset();

  // The reader wrote nothing: what changed is the writer's doing alone.
  const auto after_reader = Snapshot(path);
  ASSERT_OK(writer->Close());
  writer.reset();
  for (const auto& [name, bytes] : before) {
    if (name.rfind("wal-", 0) == 0 || name == "data.akv") continue;  // the writer's
    ASSERT_TRUE(after_reader.count(name)) << name;
    EXPECT_EQ(after_reader.at(name), bytes) << name;
  }
  ExpectPoolsReleased();
}

uint64_t DataFileBytes(const std::string& path) {
  return std::filesystem::file_size(path + "/data.akv");
}

// Sets every key of [0, keys) to `value`, then checkpoints: a rewrite of
// every page of the tree.
void Rewrite(DB* db, int keys, const std::string& value) {
  for (int i = 0; i < keys; ++i) ASSERT_OK(db->Put(WriteOptions{}, Key(i), value));
  ASSERT_OK(db->Checkpoint());
}

// A read-only open whose reads meet the file: a small cache, no read-ahead.
Options SmallCacheReader(size_t cache_bytes) {
  Options o = ReadOnly();
  o.cache_bytes = cache_bytes;
  o.read_ahead = false;
  return o;
}

// A reader whose pages are not cached, beside a writer that checkpoints
// over and over, rewriting every page: the writer keeps the pages of the
// state the reader holds instead of reusing them, so every read returns
// that state's value; once the reader closes, the writer reuses them.
TEST(ReadOnlyTest, AReaderBesideCheckpointsKeepsItsState) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  std::unique_ptr<DB> writer;
  ASSERT_OK(DB::Open(Options{}, path, &writer));
  constexpr int kKeys = 20000;
  const std::string pad(200, 'p');
  ASSERT_NO_FATAL_FAILURE(Rewrite(writer.get(), kKeys, "v0" + pad));

  std::unique_ptr<DB> reader;
  ASSERT_OK(DB::Open(SmallCacheReader(1 << 20), path, &reader));
  std::string v;
  ASSERT_OK(reader->Get(ReadOptions{}, Key(kKeys / 2), &v));
  EXPECT_EQ(v, "v0" + pad);

  const uint64_t misses_before = [&] {
    DBStats st;
    EXPECT_OK(reader->GetStats(&st));
    return st.cache.misses;
  }();
  for (int round = 1; round <= 3; ++round) {
    ASSERT_NO_FATAL_FAILURE(Rewrite(writer.get(), kKeys, "v" + std::to_string(round) + pad));
    for (int i = round; i < kKeys; i += 97) {
      ASSERT_OK(reader->Get(ReadOptions{}, Key(i), &v));
      EXPECT_EQ(v, "v0" + pad) << Key(i) << " after " << round << " checkpoints";
    }
  }
  DBStats st;
  ASSERT_OK(reader->GetStats(&st));
  EXPECT_GT(st.cache.misses, misses_before + 100);  // the reads met the file
  VerifyReport report;
  ASSERT_OK(reader->Verify(&report));
  EXPECT_EQ(report.keys, static_cast<uint64_t>(kKeys));

  // Every round wrote a new copy of the tree beside the one kept for the
  // reader. Once it is gone, the rounds reuse the space they free.
  ASSERT_OK(reader->Close());
  reader.reset();
  for (int round = 4; round <= 5; ++round) {
    ASSERT_NO_FATAL_FAILURE(Rewrite(writer.get(), kKeys, "v" + pad));
  }
  const uint64_t settled = DataFileBytes(path);
  for (int round = 6; round <= 9; ++round) {
    ASSERT_NO_FATAL_FAILURE(Rewrite(writer.get(), kKeys, "w" + pad));
  }
  EXPECT_LE(DataFileBytes(path), settled + settled / 8);
  ASSERT_OK(writer->Close());
  reader.reset();
  writer.reset();
  ExpectPoolsReleased();
}

// The writer closes and another opens while a reader holds an old state:
// the new writer cannot know that state's pages, so it writes after every
// byte of the file until the reader is gone.
TEST(ReadOnlyTest, AReaderOutlivesItsWriterAndTheNext) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  constexpr int kKeys = 5000;
  const std::string pad(200, 'p');
  std::unique_ptr<DB> writer;
  ASSERT_OK(DB::Open(Options{}, path, &writer));
  ASSERT_NO_FATAL_FAILURE(Rewrite(writer.get(), kKeys, "v0" + pad));
  std::unique_ptr<DB> reader;
  ASSERT_OK(DB::Open(SmallCacheReader(256 << 10), path, &reader));
  for (int round = 1; round <= 6; ++round) {
    ASSERT_OK(writer->Close());
    writer.reset();
    ASSERT_OK(DB::Open(Options{}, path, &writer));
    ASSERT_NO_FATAL_FAILURE(Rewrite(writer.get(), kKeys, "v" + std::to_string(round) + pad));
  }
  std::map<std::string, std::string> want;
  for (int i = 0; i < kKeys; ++i) want[Key(i)] = "v0" + pad;
  EXPECT_EQ(test::Contents(reader.get()), want);
  VerifyReport report;
  ASSERT_OK(reader->Verify(&report));
  std::string v;
  ASSERT_OK(writer->Get(ReadOptions{}, Key(3), &v));
  EXPECT_EQ(v, "v6" + pad);
  ASSERT_OK(reader->Close());
  ASSERT_OK(writer->Close());
  reader.reset();
  writer.reset();
  ExpectPoolsReleased();
}

// The same under the smallest budgets (a few MiB above a 256 KiB cache)
// for both: the writer's list of pages kept for the reader, and the
// reader's reads of a tree the writer keeps rewriting, stay within them.
TEST(ReadOnlyTest, AReaderBesideCheckpointsUnderTheSmallestBudgets) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  const size_t cache = 256 << 10;
  const size_t budget = cache + cache / 8 + (size_t{8} << 20);
  Options wo;
  wo.cache_bytes = cache;
  wo.memory_budget_bytes = budget;
  std::unique_ptr<DB> writer;
  ASSERT_OK(DB::Open(wo, path, &writer));
  constexpr int kKeys = 30000;  // about 9 MiB of entries: larger than either budget
  const std::string pad(200, 'p');
  ASSERT_NO_FATAL_FAILURE(Rewrite(writer.get(), kKeys, "v0" + pad));
  Options ro = SmallCacheReader(cache);
  ro.memory_budget_bytes = budget;
  std::unique_ptr<DB> reader;
  ASSERT_OK(DB::Open(ro, path, &reader));
  std::string v;
  for (int round = 1; round <= 4; ++round) {
    ASSERT_NO_FATAL_FAILURE(Rewrite(writer.get(), kKeys, "v" + std::to_string(round) + pad));
    for (int i = round; i < kKeys; i += 61) {
      ASSERT_OK(reader->Get(ReadOptions{}, Key(i), &v));
      EXPECT_EQ(v, "v0" + pad) << Key(i) << " after " << round << " checkpoints";
    }
  }
  VerifyReport report;
  ASSERT_OK(reader->Verify(&report));
  EXPECT_EQ(report.keys, static_cast<uint64_t>(kKeys));
  for (DB* db : {writer.get(), reader.get()}) {
    DBStats st;
    ASSERT_OK(db->GetStats(&st));
    EXPECT_LE(st.pool.high_water_bytes, budget);
    EXPECT_EQ(st.memory_limit_errors, 0u);
  }
  ASSERT_OK(reader->Close());
  ASSERT_OK(writer->Close());
  reader.reset();
  writer.reset();
  ExpectPoolsReleased();
}

// A checkpoint that commits between a reader's reading the meta block and
// its taking the lock may already have let the state's pages go: the
// reader then does not count on the lock, and checks every page it reads
// (Busy once the state is gone), never returning another state's value.
TEST(ReadOnlyTest, AReaderThatLockedTooLateChecksEveryRead) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  constexpr int kKeys = 20000;
  const std::string pad(200, 'p');
  std::unique_ptr<DB> writer;
  ASSERT_OK(DB::Open(Options{}, path, &writer));
  ASSERT_NO_FATAL_FAILURE(Rewrite(writer.get(), kKeys, "v0" + pad));

  test::SyncPointScope scope;
  int locked = 0;
  SyncPoint::Get()->SetCallBack("DBImpl::HoldTreeState:Locked", [&](void*) {
    if (++locked > 1) return;
    for (int round = 1; round <= 2; ++round) {
      ASSERT_NO_FATAL_FAILURE(Rewrite(writer.get(), kKeys, "v" + std::to_string(round) + pad));
    }
  });
  SyncPoint::Get()->EnableProcessing();
  std::unique_ptr<DB> reader;
  ASSERT_OK(DB::Open(SmallCacheReader(1 << 20), path, &reader));
  scope.Reset();
  ASSERT_EQ(locked, 1);
  int busy = 0;
  std::string v;
  for (int i = 0; i < kKeys; i += 97) {
    Status s = reader->Get(ReadOptions{}, Key(i), &v);
    if (s.IsBusy()) {
      ++busy;
      continue;
    }
    ASSERT_OK(s);
    EXPECT_EQ(v, "v0" + pad) << Key(i);
  }
  EXPECT_GT(busy, 0);
  ASSERT_OK(reader->Close());
  ASSERT_OK(writer->Close());
  reader.reset();
  writer.reset();
  ExpectPoolsReleased();
}

TEST(ReadOnlyTest, OpensWhereNothingMayBeWritten) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  {
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(Options{}, path, &db));
    for (int i = 0; i < 500; ++i) ASSERT_OK(db->Put(WriteOptions{}, Key(i), "v"));
    ASSERT_OK(db->Close());
  }
  const auto before = Snapshot(path);
  auto fs = std::make_shared<ReadOnlyFileSystem>();
  Options options = ReadOnly();
  options.env = fs;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(options, path, &db));
  std::string v;
  ASSERT_OK(db->Get(ReadOptions{}, Key(499), &v));
  EXPECT_EQ(v, "v");
  EXPECT_EQ(test::Contents(db.get()).size(), 500u);
  ASSERT_OK(db->Close());
  db.reset();
  EXPECT_EQ(fs->refused(), 0) << "a read-only open tried to write";
  EXPECT_EQ(Snapshot(path), before);

  // An open that would write fails cleanly there.
  Options writable;
  writable.env = fs;
  Status s = DB::Open(writable, path, &db);
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_EQ(db, nullptr);
  ExpectPoolsReleased();
}

TEST(ReadOnlyTest, AMissingDatabaseIsNotFoundAndNothingIsCreated) {
  test::TempDir dir;
  const std::string path = dir.Join("nothing-here");
  std::unique_ptr<DB> db;
  Status s = DB::Open(ReadOnly(), path, &db);
  EXPECT_TRUE(s.IsNotFound()) << s.ToString();
  EXPECT_NE(s.ToString().find("no database at"), std::string::npos) << s.ToString();
  EXPECT_FALSE(std::filesystem::exists(path));
  ExpectPoolsReleased();
}

TEST(ReadOnlyTest, ATornLogTailIsReadUpToAndLeftAsItIs) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  std::unique_ptr<DB> writer;
  ASSERT_OK(DB::Open(Options{}, path, &writer));
  for (int i = 0; i < 10; ++i) ASSERT_OK(writer->Put(WriteOptions{}, Key(i), "v"));
  // A writer in the middle of storing its next record: its header is there,
  // its payload not yet.
  std::string log;
  for (const auto& e : std::filesystem::directory_iterator(path)) {
    if (e.path().filename().string().rfind("wal-", 0) == 0) log = e.path().string();
  }
  ASSERT_FALSE(log.empty());
  auto files = Snapshot(path);
  std::string bytes = files[std::filesystem::path(log).filename().string()];
  size_t end = 32;
  while (end + 16 <= bytes.size() && bytes[end + 12] != 0) {
    uint32_t len;
    std::memcpy(&len, bytes.data() + end + 8, 4);
    end += 16 + len;
  }
  {
    std::fstream f(log, std::ios::in | std::ios::out | std::ios::binary);
    const char header[16] = {1, 2, 3, 4, 5, 6, 7, 8, 40, 0, 0, 0, 1, 9, 9, 9};
    f.seekp(static_cast<std::streamoff>(end));
    f.write(header, sizeof(header));
  }
  const auto before = Snapshot(path);
  std::unique_ptr<DB> reader;
  ASSERT_OK(DB::Open(ReadOnly(), path, &reader));
  EXPECT_EQ(test::Contents(reader.get()).size(), 10u);
  ASSERT_OK(reader->Close());
  reader.reset();
  EXPECT_EQ(Snapshot(path), before) << "the tail was cut";
  writer.reset();  // its close may fail on the damaged log: not this test's concern
  ExpectPoolsReleased();
}

// A checkpoint of the writer between the reader's reading the meta block and
// its listing the logs deletes the log that meta names: the open starts
// again on the newer state instead of failing.
TEST(ReadOnlyTest, AnOpenThatLosesARaceWithACheckpointOpensAgain) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  std::unique_ptr<DB> writer;
  ASSERT_OK(DB::Open(Options{}, path, &writer));
  for (int i = 0; i < 100; ++i) ASSERT_OK(writer->Put(WriteOptions{}, Key(i), "first"));
  ASSERT_OK(writer->Checkpoint());
  for (int i = 0; i < 100; ++i) ASSERT_OK(writer->Put(WriteOptions{}, Key(i), "second"));

  std::atomic<int> meta_reads{0};
  std::atomic<bool> writer_done{false};
  test::Notifier notifier;
  test::SyncPointScope scope;
  SyncPoint::Get()->SetCallBack("DBImpl::Recover:MetaRead", [&](void*) {
    if (meta_reads.fetch_add(1) > 0) return;
    notifier.Notify();
    notifier.WaitUntil([&] { return writer_done.load(); });  // holds the first open here
  });
  SyncPoint::Get()->EnableProcessing();
  std::unique_ptr<DB> reader;
  Status open_status;
  std::thread opener([&] { open_status = DB::Open(ReadOnly(), path, &reader); });
  notifier.WaitUntil([&] { return meta_reads.load() > 0; });
  // Two checkpoints: the log the first meta named is gone.
  ASSERT_OK(writer->Checkpoint());
  for (int i = 0; i < 100; ++i) ASSERT_OK(writer->Put(WriteOptions{}, Key(i), "third"));
  ASSERT_OK(writer->Checkpoint());
  writer_done = true;
  notifier.Notify();
  opener.join();
  scope.Reset();
  ASSERT_OK(open_status);
  EXPECT_GE(meta_reads.load(), 2) << "the open was not tried again";
  std::string v;
  ASSERT_OK(reader->Get(ReadOptions{}, Key(7), &v));
  EXPECT_EQ(v, "third");
  ASSERT_OK(reader->Close());
  ASSERT_OK(writer->Close());
  reader.reset();
  writer.reset();
  ExpectPoolsReleased();
}

}  // namespace
}  // namespace arenakv
