// DB API behaviours, one test each: open/lock semantics, point operations on
// arbitrary bytes, size limits, iterators, checkpoints, close/reopen,
// durability knobs, statistics, handles that outlive Close(), transactions
// (own writes, snapshot isolation, serializable validation, budgets) and
// snapshots. Every test that opens a database ends by checking that the
// process's pool accounting is back to zero.

// GCC 12 warns falsely (-Wrestrict) inside std::string's operator+ once it
// is inlined at -O2 (GCC bug 105329); the code here is fine.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

#include "arenakv/db.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "arenakv/alloc/segment_pool.h"
#include "arenakv/env.h"
#include "arenakv/iterator.h"
#include "arenakv/options.h"
#include "arenakv/transaction.h"
#include "db_test_util.h"
#include "test_util.h"

namespace arenakv {
namespace {

using test::ExpectPoolsReleased;

// Every key/value pair an iterator yields from SeekToFirst onwards.
std::vector<std::pair<std::string, std::string>> Scan(Iterator* it) {
  std::vector<std::pair<std::string, std::string>> out;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    out.emplace_back(std::string(it->key()), std::string(it->value()));
  }
  EXPECT_TRUE(it->status().ok()) << it->status().ToString();
  return out;
}

std::vector<std::pair<std::string, std::string>> ScanDB(DB* db, const ReadOptions& ro = {}) {
  std::unique_ptr<Iterator> it = db->NewIterator(ro);
  EXPECT_NE(it, nullptr);
  if (it == nullptr) return {};
  return Scan(it.get());
}

std::string GetOrStatus(DB* db, std::string_view key, const ReadOptions& ro = {}) {
  std::string value;
  Status s = db->Get(ro, key, &value);
  if (s.ok()) return value;
  return "<" + s.ToString() + ">";
}

std::string TxnGetOrStatus(Transaction* txn, std::string_view key) {
  std::string value;
  Status s = txn->Get(ReadOptions{}, key, &value);
  if (s.ok()) return value;
  return "<" + s.ToString() + ">";
}

bool IsNotFoundIn(DB* db, std::string_view key) {
  std::string value;
  return db->Get(ReadOptions{}, key, &value).IsNotFound();
}

class DBTest : public ::testing::Test {
 protected:
  std::string path() const { return dir_.Join("db"); }

  Status Open(const Options& options = Options{}) {
    db_.reset();
    return DB::Open(options, path(), &db_);
  }
  void Reopen(const Options& options = Options{}) {
    if (db_ != nullptr) ASSERT_OK(db_->Close());
    db_.reset();
    ExpectPoolsReleased();
    ASSERT_OK(Open(options));
  }
  void CloseAndCheck() {
    if (db_ != nullptr) {
      EXPECT_OK(db_->Close());
      ExpectPoolsReleased();
      db_.reset();
    }
    ExpectPoolsReleased();
  }
  void TearDown() override { CloseAndCheck(); }

  test::TempDir dir_;
  std::unique_ptr<DB> db_;
};

// ---------------------------------------------------------------- Open / lock

TEST_F(DBTest, OpenCreatesMissingDatabase) {
  ASSERT_OK(Open());
  ASSERT_NE(db_, nullptr);
  // While open, the database owns a live pool: the accounting helper can fail.
  EXPECT_GE(alloc::GetProcessPoolStats().live_pools, 1u);
  EXPECT_TRUE(IsNotFoundIn(db_.get(), "anything"));
}

TEST_F(DBTest, OpenMissingWithoutCreateIfMissingFails) {
  Options options;
  options.create_if_missing = false;
  Status s = Open(options);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(db_, nullptr);
  ExpectPoolsReleased();
}

TEST_F(DBTest, ErrorIfExistsRejectsExistingDatabase) {
  ASSERT_OK(Open());
  ASSERT_OK(db_->Put(WriteOptions{}, "k", "v"));
  ASSERT_OK(db_->Close());
  db_.reset();
  Options options;
  options.error_if_exists = true;
  Status s = Open(options);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  ExpectPoolsReleased();
  // The rejected open changed nothing.
  ASSERT_OK(Open());
  EXPECT_EQ(GetOrStatus(db_.get(), "k"), "v");
}

TEST_F(DBTest, ErrorIfExistsAcceptsNewDatabase) {
  Options options;
  options.error_if_exists = true;
  ASSERT_OK(Open(options));
}

TEST_F(DBTest, SecondOpenInSameProcessIsBusy) {
  ASSERT_OK(Open());
  ASSERT_OK(db_->Put(WriteOptions{}, "k", "v"));
  std::unique_ptr<DB> second;
  Status s = DB::Open(Options{}, path(), &second);
  EXPECT_TRUE(s.IsBusy()) << s.ToString();
  EXPECT_EQ(second, nullptr);
  // The first handle is unaffected.
  EXPECT_EQ(GetOrStatus(db_.get(), "k"), "v");
  // After closing the first handle the database can be opened again.
  ASSERT_OK(db_->Close());
  ASSERT_OK(DB::Open(Options{}, path(), &second));
  EXPECT_EQ(GetOrStatus(second.get(), "k"), "v");
  ASSERT_OK(second->Close());
}

// The child is forked before the parent opens anything, so whatever the
// engine keeps in process memory (an open-path registry) is empty in the
// child: only the file lock can make its Open fail.
TEST_F(DBTest, SecondOpenInAnotherProcessIsBusy) {
  int go[2], result[2];
  ASSERT_EQ(pipe(go), 0);
  ASSERT_EQ(pipe(result), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(go[1]);
    close(result[0]);
    char round;
    // Round 1: the parent holds the database open -> expect Busy.
    // Round 2: the parent closed it -> expect OK.
    for (int i = 0; i < 2; i++) {
      if (read(go[0], &round, 1) != 1) _exit(10);
      std::unique_ptr<DB> db;
      Status s = DB::Open(Options{}, path(), &db);
      char code = s.ok() ? 'O' : s.IsBusy() ? 'B' : 'E';
      if (db != nullptr) s = db->Close();
      db.reset();
      if (write(result[1], &code, 1) != 1) _exit(11);
    }
    _exit(0);
  }
  close(go[0]);
  close(result[1]);
  ASSERT_OK(Open());
  char c = '1';
  ASSERT_EQ(write(go[1], &c, 1), 1);
  char code = 0;
  ASSERT_EQ(read(result[0], &code, 1), 1);
  EXPECT_EQ(code, 'B') << "another process opened a database this process holds open";
  ASSERT_OK(db_->Close());
  db_.reset();
  c = '2';
  ASSERT_EQ(write(go[1], &c, 1), 1);
  ASSERT_EQ(read(result[0], &code, 1), 1);
  EXPECT_EQ(code, 'O') << "the lock was not released by Close()";
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << "child status " << wstatus;
  close(go[1]);
  close(result[0]);
}

TEST_F(DBTest, DestroyDBRemovesEverything) {
  ASSERT_OK(Open());
  ASSERT_OK(db_->Put(WriteOptions{}, "k", "v"));
  ASSERT_OK(db_->Close());
  db_.reset();
  ASSERT_OK(DestroyDB(path()));
  EXPECT_FALSE(std::filesystem::exists(path()));
  Options options;
  options.create_if_missing = false;
  EXPECT_FALSE(Open(options).ok());
}

// ---------------------------------------------------------------- Point ops

TEST_F(DBTest, PutGetDelete) {
  ASSERT_OK(Open());
  ASSERT_OK(db_->Put(WriteOptions{}, "apple", "red"));
  ASSERT_OK(db_->Put(WriteOptions{}, "banana", "yellow"));
  EXPECT_EQ(GetOrStatus(db_.get(), "apple"), "red");
  EXPECT_EQ(GetOrStatus(db_.get(), "banana"), "yellow");
  ASSERT_OK(db_->Put(WriteOptions{}, "apple", "green"));
  EXPECT_EQ(GetOrStatus(db_.get(), "apple"), "green");
  ASSERT_OK(db_->Delete(WriteOptions{}, "apple"));
  EXPECT_TRUE(IsNotFoundIn(db_.get(), "apple"));
  EXPECT_EQ(GetOrStatus(db_.get(), "banana"), "yellow");
  // Deleting a missing key is not an error.
  EXPECT_OK(db_->Delete(WriteOptions{}, "never-written"));
  EXPECT_TRUE(IsNotFoundIn(db_.get(), "never-written"));
}

TEST_F(DBTest, ArbitraryBytesInKeysAndValues) {
  ASSERT_OK(Open());
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {std::string("\0", 1), std::string("zero\0key", 8)},
      {std::string("\0\0", 2), std::string()},  // empty value
      {std::string("a\0b", 3), std::string("\0\0\0", 3)},
      {std::string("a"), std::string("\xff\xfe", 2)},
      {std::string("a\xff", 2), std::string("high byte")},
      {std::string("\x80"), std::string(1000, '\0')},
      {std::string("\xff\xff\xff", 3), std::string("last")},
  };
  for (const auto& [k, v] : pairs) ASSERT_OK(db_->Put(WriteOptions{}, k, v));
  for (const auto& [k, v] : pairs) EXPECT_EQ(GetOrStatus(db_.get(), k), v);
  // "a" and "a\0b" are distinct keys; so are "\0" and "\0\0".
  EXPECT_TRUE(IsNotFoundIn(db_.get(), std::string("a\0", 2)));
  // Keys are ordered as unsigned bytes.
  std::map<std::string, std::string> expected(pairs.begin(), pairs.end());
  auto scanned = ScanDB(db_.get());
  ASSERT_EQ(scanned.size(), expected.size());
  auto e = expected.begin();
  for (size_t i = 0; i < scanned.size(); ++i, ++e) {
    EXPECT_EQ(scanned[i].first, e->first) << "position " << i;
    EXPECT_EQ(scanned[i].second, e->second) << "position " << i;
  }
  Reopen();
  for (const auto& [k, v] : pairs) EXPECT_EQ(GetOrStatus(db_.get(), k), v);
}

TEST_F(DBTest, KeyAndValueLimitsAreEnforced) {
  ASSERT_OK(Open());
  ASSERT_OK(db_->Put(WriteOptions{}, "keep", "me"));
  const std::string max_key(kMaxKeyBytes, 'k');
  const std::string big_key(kMaxKeyBytes + 1, 'k');
  const std::string max_value(kMaxValueBytes, 'v');
  const std::string big_value(kMaxValueBytes + 1, 'v');

  Status s = db_->Put(WriteOptions{}, big_key, "x");
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  s = db_->Put(WriteOptions{}, "big-value", big_value);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  s = db_->Delete(WriteOptions{}, big_key);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  // Nothing changed.
  EXPECT_TRUE(IsNotFoundIn(db_.get(), "big-value"));
  EXPECT_TRUE(IsNotFoundIn(db_.get(), max_key));
  auto scanned = ScanDB(db_.get());
  ASSERT_EQ(scanned.size(), 1u);
  EXPECT_EQ(scanned[0].first, "keep");

  // Exactly at the limits is fine and survives a reopen.
  ASSERT_OK(db_->Put(WriteOptions{}, max_key, "at-limit"));
  ASSERT_OK(db_->Put(WriteOptions{}, "max-value", max_value));
  Reopen();
  EXPECT_EQ(GetOrStatus(db_.get(), max_key), "at-limit");
  EXPECT_TRUE(GetOrStatus(db_.get(), "max-value") == max_value);
  EXPECT_EQ(GetOrStatus(db_.get(), "keep"), "me");

  // The same limits apply inside a transaction; the transaction stays usable.
  std::unique_ptr<Transaction> txn = db_->BeginTransaction(WriteOptions{});
  ASSERT_NE(txn, nullptr);
  s = txn->Put(big_key, "x");
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  s = txn->Put("t", big_value);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  ASSERT_OK(txn->Put("t", "ok"));
  ASSERT_OK(txn->Commit());
  EXPECT_EQ(GetOrStatus(db_.get(), "t"), "ok");
  EXPECT_EQ(ScanDB(db_.get()).size(), 4u);
}

// ---------------------------------------------------------------- Iterators

TEST_F(DBTest, IteratorOnEmptyDatabase) {
  ASSERT_OK(Open());
  std::unique_ptr<Iterator> it = db_->NewIterator(ReadOptions{});
  ASSERT_NE(it, nullptr);
  it->SeekToFirst();
  EXPECT_FALSE(it->Valid());
  it->SeekToLast();
  EXPECT_FALSE(it->Valid());
  it->Seek("a");
  EXPECT_FALSE(it->Valid());
  EXPECT_OK(it->status());
}

TEST_F(DBTest, IteratorSeekNextPrev) {
  ASSERT_OK(Open());
  // Keys k000, k002, ..., k198 (even numbers only).
  auto key = [](int i) {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "k%03d", i);
    return std::string(buf);
  };
  for (int i = 0; i < 200; i += 2) ASSERT_OK(db_->Put(WriteOptions{}, key(i), "v" + key(i)));
  std::unique_ptr<Iterator> it = db_->NewIterator(ReadOptions{});
  ASSERT_NE(it, nullptr);

  // Forward.
  int n = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next(), n += 2) {
    ASSERT_EQ(it->key(), key(n));
    ASSERT_EQ(it->value(), "v" + key(n));
  }
  EXPECT_EQ(n, 200);
  // Backward.
  n = 198;
  for (it->SeekToLast(); it->Valid(); it->Prev(), n -= 2) ASSERT_EQ(it->key(), key(n));
  EXPECT_EQ(n, -2);

  // Seek lands on the first key >= target.
  it->Seek(key(51));
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), key(52));
  it->Seek(key(52));
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), key(52));
  it->Seek("");
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), key(0));
  it->Seek("z");
  EXPECT_FALSE(it->Valid());

  // Direction changes.
  it->Seek(key(100));
  ASSERT_TRUE(it->Valid());
  it->Next();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), key(102));
  it->Prev();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), key(100));
  it->Prev();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), key(98));
  it->Next();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), key(100));
  // Off both ends.
  it->SeekToFirst();
  it->Prev();
  EXPECT_FALSE(it->Valid());
  it->SeekToLast();
  it->Next();
  EXPECT_FALSE(it->Valid());
  EXPECT_OK(it->status());
}

TEST_F(DBTest, IteratorSeesSnapshotAtCreation) {
  ASSERT_OK(Open());
  ASSERT_OK(db_->Put(WriteOptions{}, "a", "1"));
  ASSERT_OK(db_->Put(WriteOptions{}, "c", "3"));
  std::unique_ptr<Iterator> it = db_->NewIterator(ReadOptions{});
  ASSERT_OK(db_->Put(WriteOptions{}, "b", "2"));
  ASSERT_OK(db_->Put(WriteOptions{}, "a", "changed"));
  ASSERT_OK(db_->Delete(WriteOptions{}, "c"));
  auto seen = Scan(it.get());
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], std::make_pair(std::string("a"), std::string("1")));
  EXPECT_EQ(seen[1], std::make_pair(std::string("c"), std::string("3")));
  // A new iterator sees the new state.
  auto now = ScanDB(db_.get());
  ASSERT_EQ(now.size(), 2u);
  EXPECT_EQ(now[0], std::make_pair(std::string("a"), std::string("changed")));
  EXPECT_EQ(now[1], std::make_pair(std::string("b"), std::string("2")));
}

TEST_F(DBTest, IteratorAcrossCheckpointAndManyPages) {
  Options options;
  options.page_bytes = 4096;
  ASSERT_OK(Open(options));
  std::map<std::string, std::string> model;
  for (int i = 0; i < 5000; i++) {
    std::string k = "key" + std::to_string(i * 7919 % 5000);
    std::string v(i % 200, static_cast<char>('a' + i % 26));
    ASSERT_OK(db_->Put(WriteOptions{}, k, v));
    model[k] = v;
    if (i == 2500) ASSERT_OK(db_->Checkpoint());
  }
  for (int i = 0; i < 5000; i += 3) {
    std::string k = "key" + std::to_string(i);
    ASSERT_OK(db_->Delete(WriteOptions{}, k));
    model.erase(k);
  }
  auto check = [&] {
    auto scanned = ScanDB(db_.get());
    ASSERT_EQ(scanned.size(), model.size());
    auto m = model.begin();
    for (const auto& kv : scanned) {
      ASSERT_EQ(kv.first, m->first);
      ASSERT_EQ(kv.second, m->second);
      ++m;
    }
    std::unique_ptr<Iterator> it = db_->NewIterator(ReadOptions{});
    auto r = model.rbegin();
    for (it->SeekToLast(); it->Valid(); it->Prev(), ++r) {
      ASSERT_NE(r, model.rend());
      ASSERT_EQ(it->key(), r->first);
    }
    EXPECT_EQ(r, model.rend());
    EXPECT_OK(it->status());
  };
  check();
  ASSERT_OK(db_->Checkpoint());
  check();
  Reopen(options);
  check();
}

// ---------------------------------------------------------------- Durability

TEST_F(DBTest, DataSurvivesCloseAndReopen) {
  ASSERT_OK(Open());
  for (int i = 0; i < 1000; i++) {
    ASSERT_OK(db_->Put(WriteOptions{}, "k" + std::to_string(i), "v" + std::to_string(i)));
  }
  ASSERT_OK(db_->Delete(WriteOptions{}, "k7"));
  Reopen();
  for (int i = 0; i < 1000; i++) {
    std::string k = "k" + std::to_string(i);
    if (i == 7) {
      EXPECT_TRUE(IsNotFoundIn(db_.get(), k));
    } else {
      EXPECT_EQ(GetOrStatus(db_.get(), k), "v" + std::to_string(i));
    }
  }
  // Twice, to cover reopening a database that was itself recovered.
  ASSERT_OK(db_->Put(WriteOptions{}, "after", "reopen"));
  Reopen();
  EXPECT_EQ(GetOrStatus(db_.get(), "after"), "reopen");
  EXPECT_EQ(GetOrStatus(db_.get(), "k999"), "v999");
  EXPECT_EQ(ScanDB(db_.get()).size(), 1000u);
}

TEST_F(DBTest, CheckpointThenMoreWritesThenReopen) {
  ASSERT_OK(Open());
  ASSERT_OK(db_->Put(WriteOptions{}, "before", "1"));
  ASSERT_OK(db_->Put(WriteOptions{}, "overwritten", "old"));
  ASSERT_OK(db_->Checkpoint());
  ASSERT_OK(db_->Put(WriteOptions{}, "after", "2"));
  ASSERT_OK(db_->Put(WriteOptions{}, "overwritten", "new"));
  ASSERT_OK(db_->Delete(WriteOptions{}, "before"));
  ASSERT_OK(db_->Checkpoint());
  ASSERT_OK(db_->Checkpoint());  // a checkpoint with nothing to do
  Reopen();
  EXPECT_TRUE(IsNotFoundIn(db_.get(), "before"));
  EXPECT_EQ(GetOrStatus(db_.get(), "after"), "2");
  EXPECT_EQ(GetOrStatus(db_.get(), "overwritten"), "new");
}

TEST_F(DBTest, CloseIsIdempotent) {
  ASSERT_OK(Open());
  ASSERT_OK(db_->Put(WriteOptions{}, "k", "v"));
  EXPECT_OK(db_->Close());
  ExpectPoolsReleased();
  EXPECT_OK(db_->Close());
  EXPECT_OK(db_->Close());
  ExpectPoolsReleased();
  // The database object itself reports Closed afterwards.
  std::string v;
  EXPECT_TRUE(db_->Get(ReadOptions{}, "k", &v).IsClosed());
  EXPECT_TRUE(db_->Put(WriteOptions{}, "k", "v2").IsClosed());
  EXPECT_TRUE(db_->Delete(WriteOptions{}, "k").IsClosed());
  EXPECT_TRUE(db_->Checkpoint().IsClosed());
  DBStats stats;
  EXPECT_TRUE(db_->GetStats(&stats).IsClosed());
  db_.reset();
  ASSERT_OK(Open());
  EXPECT_EQ(GetOrStatus(db_.get(), "k"), "v");
}

TEST_F(DBTest, DestructorCloses) {
  ASSERT_OK(Open());
  ASSERT_OK(db_->Put(WriteOptions{}, "k", "v"));
  db_.reset();  // no Close()
  ExpectPoolsReleased();
  ASSERT_OK(Open());  // the lock was released, the write persisted
  EXPECT_EQ(GetOrStatus(db_.get(), "k"), "v");
}

// An Env that counts Sync() calls, to see that sync=true really syncs.
class CountingEnv : public Env {
 public:
  class CountingFile : public File {
   public:
    CountingFile(std::unique_ptr<File> base, CountingEnv* env)
        : base_(std::move(base)), env_(env) {}
    Status Read(uint64_t o, size_t n, char* s, size_t* r) override {
      return base_->Read(o, n, s, r);
    }
    Status Write(uint64_t o, std::string_view d) override { return base_->Write(o, d); }
    Status Append(std::string_view d) override { return base_->Append(d); }
    Status Sync() override {
      env_->syncs.fetch_add(1);
      return base_->Sync();
    }
    Status Truncate(uint64_t n) override { return base_->Truncate(n); }
    Status Size(uint64_t* n) override { return base_->Size(n); }
    Status Close() override { return base_->Close(); }
    const std::string& path() const override { return base_->path(); }

   private:
    std::unique_ptr<File> base_;
    CountingEnv* env_;
  };

  Status OpenFile(const std::string& p, OpenMode m, std::unique_ptr<File>* f) override {
    std::unique_ptr<File> base;
    Status s = base_->OpenFile(p, m, &base);
    if (s.ok()) *f = std::make_unique<CountingFile>(std::move(base), this);
    return s;
  }
  Status CreateDir(const std::string& p) override { return base_->CreateDir(p); }
  bool FileExists(const std::string& p) override { return base_->FileExists(p); }
  Status GetChildren(const std::string& d, std::vector<std::string>* n) override {
    return base_->GetChildren(d, n);
  }
  Status DeleteFile(const std::string& p) override { return base_->DeleteFile(p); }
  Status RenameFile(const std::string& a, const std::string& b) override {
    return base_->RenameFile(a, b);
  }
  Status SyncDir(const std::string& d) override { return base_->SyncDir(d); }
  Status LockFile(const std::string& p, std::unique_ptr<FileLock>* l) override {
    return base_->LockFile(p, l);
  }

  std::atomic<uint64_t> syncs{0};

 private:
  std::shared_ptr<Env> base_ = Env::Default();
};

TEST_F(DBTest, SyncWriteCallsFdatasyncBeforeReturning) {
  auto env = std::make_shared<CountingEnv>();
  Options options;
  options.env = env;
  options.background_checkpoints = false;  // no syncs from a background thread
  ASSERT_OK(Open(options));
  ASSERT_OK(db_->Put(WriteOptions{}, "warm", "up"));
  DBStats before;
  ASSERT_OK(db_->GetStats(&before));
  for (int i = 0; i < 5; i++) {
    uint64_t syncs = env->syncs.load();
    WriteOptions wo;
    wo.sync = true;
    ASSERT_OK(db_->Put(wo, "k" + std::to_string(i), "v"));
    EXPECT_GT(env->syncs.load(), syncs) << "sync=true Put returned without a Sync()";
  }
  uint64_t syncs = env->syncs.load();
  WriteOptions wo;
  wo.sync = true;
  std::unique_ptr<Transaction> txn = db_->BeginTransaction(wo);
  ASSERT_OK(txn->Put("t", "v"));
  ASSERT_OK(txn->Commit());
  EXPECT_GT(env->syncs.load(), syncs) << "sync=true Commit returned without a Sync()";
  DBStats after;
  ASSERT_OK(db_->GetStats(&after));
  EXPECT_GE(after.wal_syncs, before.wal_syncs + 6);
}

// Synced commits from several threads share fdatasync calls (group commit,
// with the leader gathering its peers), and every one of them is durable.
TEST_F(DBTest, ConcurrentSyncedCommitsShareFsyncs) {
  ASSERT_OK(Open());
  DBStats before;
  ASSERT_OK(db_->GetStats(&before));
  constexpr int kThreads = 4, kPerThread = 150;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      WriteOptions wo;
      wo.sync = true;
      for (int i = 0; i < kPerThread; i++) {
        if (!db_->Put(wo, "t" + std::to_string(t) + "/" + std::to_string(i), "v").ok()) {
          failures.fetch_add(1);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_EQ(failures.load(), 0);
  DBStats after;
  ASSERT_OK(db_->GetStats(&after));
  const uint64_t syncs = after.wal_syncs - before.wal_syncs;
  const uint64_t commits = kThreads * kPerThread;
  std::printf("[group commit] %llu commits, %llu fdatasync calls\n",
              static_cast<unsigned long long>(commits), static_cast<unsigned long long>(syncs));
  EXPECT_GT(syncs, 0u);
  EXPECT_LT(syncs * 10, commits * 8) << "synced commits from 4 threads were not grouped";
  Reopen();
  for (int t = 0; t < kThreads; t++) {
    for (int i = 0; i < kPerThread; i++) {
      EXPECT_EQ(GetOrStatus(db_.get(), "t" + std::to_string(t) + "/" + std::to_string(i)), "v");
    }
  }
}

// sync=false still survives a killed process: the write reached the OS.
TEST_F(DBTest, UnsyncedWritesSurviveSigkill) {
  int ack[2];
  ASSERT_EQ(pipe(ack), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(ack[0]);
    std::unique_ptr<DB> db;
    if (!DB::Open(Options{}, path(), &db).ok()) _exit(2);
    for (int i = 0; i < 500; i++) {
      if (!db->Put(WriteOptions{}, "k" + std::to_string(i), "v" + std::to_string(i)).ok()) {
        _exit(3);
      }
    }
    std::unique_ptr<Transaction> txn = db->BeginTransaction(WriteOptions{});
    for (int i = 0; i < 10; i++) {
      if (!txn->Put("t" + std::to_string(i), "txn").ok()) _exit(4);
    }
    if (!txn->Commit().ok()) _exit(5);
    char c = 'A';
    if (write(ack[1], &c, 1) != 1) _exit(6);
    for (;;) pause();  // wait for SIGKILL
  }
  close(ack[1]);
  char c = 0;
  ASSERT_EQ(read(ack[0], &c, 1), 1) << "child failed before acknowledging";
  close(ack[0]);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(wstatus));
  ASSERT_OK(Open());
  for (int i = 0; i < 500; i++) {
    EXPECT_EQ(GetOrStatus(db_.get(), "k" + std::to_string(i)), "v" + std::to_string(i));
  }
  for (int i = 0; i < 10; i++) EXPECT_EQ(GetOrStatus(db_.get(), "t" + std::to_string(i)), "txn");
}

// ---------------------------------------------------------------- Verify / stats

TEST_F(DBTest, VerifyReportsPagesAndKeys) {
  Options options;
  options.page_bytes = 4096;
  ASSERT_OK(Open(options));
  for (int i = 0; i < 3000; i++) {
    ASSERT_OK(db_->Put(WriteOptions{}, "key" + std::to_string(i), std::string(100, 'x')));
  }
  ASSERT_OK(db_->Checkpoint());
  struct Progress {
    uint64_t calls = 0;
    uint64_t last_done = 0;
    bool monotonic = true;
    bool bounded = true;
  } progress;
  VerifyReport report;
  ASSERT_OK(db_->Verify(
      &report,
      [](uint64_t done, uint64_t total, void* arg) {
        auto* p = static_cast<Progress*>(arg);
        p->calls++;
        if (done < p->last_done) p->monotonic = false;
        if (done > total) p->bounded = false;
        p->last_done = done;
        return true;
      },
      &progress));
  EXPECT_EQ(report.keys, 3000u);
  // 3000 * ~110 bytes cannot fit in fewer than ~80 pages of 4 KiB.
  EXPECT_GT(report.pages, 50u);
  EXPECT_GT(progress.calls, 0u);
  EXPECT_TRUE(progress.monotonic);
  EXPECT_TRUE(progress.bounded);
  Reopen(options);
  VerifyReport again;
  ASSERT_OK(db_->Verify(&again));
  EXPECT_EQ(again.keys, 3000u);

  // Progress returning false stops the check (Ctrl-C in kvtool): Aborted,
  // saying how far it got, and no more calls after.
  uint64_t calls = 0;
  Status s = db_->Verify(
      &again,
      [](uint64_t, uint64_t, void* arg) {
        return ++*static_cast<uint64_t*>(arg) < 2;  // after the internal pages, go on once
      },
      &calls);
  EXPECT_TRUE(s.IsAborted()) << s.ToString();
  EXPECT_NE(s.ToString().find("nothing wrong so far"), std::string::npos) << s.ToString();
  EXPECT_EQ(calls, 2u);
}

TEST_F(DBTest, GetStatsReflectsState) {
  Options options;
  options.cache_bytes = size_t{8} << 20;
  ASSERT_OK(Open(options));
  DBStats s0;
  ASSERT_OK(db_->GetStats(&s0));
  EXPECT_EQ(s0.cache.capacity_bytes, options.cache_bytes);
  EXPECT_EQ(s0.open_transactions, 0u);
  EXPECT_EQ(s0.open_snapshots, 0u);
  EXPECT_FALSE(s0.arenas.empty());
  for (int i = 0; i < 100; i++) ASSERT_OK(db_->Put(WriteOptions{}, "k" + std::to_string(i), "v"));
  std::unique_ptr<Transaction> txn = db_->BeginTransaction(WriteOptions{});
  std::unique_ptr<Snapshot> snap = db_->GetSnapshot();
  DBStats s1;
  ASSERT_OK(db_->GetStats(&s1));
  EXPECT_GE(s1.last_sequence, s0.last_sequence + 100);
  EXPECT_EQ(s1.open_transactions, 1u);
  EXPECT_EQ(s1.open_snapshots, 1u);
  EXPECT_GT(s1.wal_bytes, s0.wal_bytes);
  EXPECT_GT(s1.pool.committed_bytes, 0u);
  txn.reset();
  snap.reset();
  ASSERT_OK(db_->Checkpoint());
  DBStats s2;
  ASSERT_OK(db_->GetStats(&s2));
  EXPECT_EQ(s2.open_transactions, 0u);
  EXPECT_EQ(s2.open_snapshots, 0u);
  EXPECT_GE(s2.checkpoints, s1.checkpoints + 1);
  EXPECT_GT(s2.data_file_bytes, 0u);
  EXPECT_FALSE(db_->StatsReport().empty());
}

// ---------------------------------------------------------------- After Close

TEST_F(DBTest, HandlesReturnClosedAfterClose) {
  ASSERT_OK(Open());
  ASSERT_OK(db_->Put(WriteOptions{}, "a", "1"));
  ASSERT_OK(db_->Put(WriteOptions{}, "b", "2"));
  std::unique_ptr<Iterator> it = db_->NewIterator(ReadOptions{});
  it->SeekToFirst();
  ASSERT_TRUE(it->Valid());
  std::unique_ptr<Transaction> txn = db_->BeginTransaction(WriteOptions{});
  ASSERT_OK(txn->Put("c", "3"));
  std::unique_ptr<Iterator> txn_it = txn->NewIterator(ReadOptions{});
  txn_it->SeekToFirst();
  std::unique_ptr<Snapshot> snap = db_->GetSnapshot();

  ASSERT_OK(db_->Close());
  ExpectPoolsReleased();

  EXPECT_FALSE(it->Valid());
  EXPECT_TRUE(it->status().IsClosed()) << it->status().ToString();
  it->SeekToFirst();
  EXPECT_FALSE(it->Valid());
  it->SeekToLast();
  EXPECT_FALSE(it->Valid());
  it->Seek("a");
  EXPECT_FALSE(it->Valid());
  EXPECT_TRUE(it->status().IsClosed());
  txn_it->Seek("a");
  EXPECT_FALSE(txn_it->Valid());
  EXPECT_TRUE(txn_it->status().IsClosed()) << txn_it->status().ToString();

  std::string v;
  EXPECT_TRUE(txn->Put("d", "4").IsClosed());
  EXPECT_TRUE(txn->Delete("a").IsClosed());
  EXPECT_TRUE(txn->Get(ReadOptions{}, "a", &v).IsClosed());
  std::unique_ptr<Iterator> late = txn->NewIterator(ReadOptions{});
  if (late != nullptr) {
    late->SeekToFirst();
    EXPECT_FALSE(late->Valid());
    EXPECT_TRUE(late->status().IsClosed());
  }
  EXPECT_TRUE(txn->Commit().IsClosed());
  EXPECT_TRUE(txn->Rollback().IsClosed());

  ReadOptions ro;
  ro.snapshot = snap.get();
  (void)snap->sequence();
  EXPECT_TRUE(db_->Get(ro, "a", &v).IsClosed());
  std::unique_ptr<Iterator> after = db_->NewIterator(ReadOptions{});
  if (after != nullptr) {
    after->SeekToFirst();
    EXPECT_FALSE(after->Valid());
    EXPECT_TRUE(after->status().IsClosed());
  }
  std::unique_ptr<Transaction> late_txn = db_->BeginTransaction(WriteOptions{});
  if (late_txn != nullptr) {
    EXPECT_TRUE(late_txn->Put("x", "y").IsClosed());
  }

  // The uncommitted transaction left nothing behind.
  db_.reset();
  ASSERT_OK(Open());
  EXPECT_TRUE(IsNotFoundIn(db_.get(), "c"));
}

// Handles may outlive the DB object itself; destroying them later is safe.
TEST_F(DBTest, HandlesOutliveTheDatabaseObject) {
  ASSERT_OK(Open());
  ASSERT_OK(db_->Put(WriteOptions{}, "a", "1"));
  std::unique_ptr<Iterator> it = db_->NewIterator(ReadOptions{});
  it->SeekToFirst();
  std::unique_ptr<Transaction> txn = db_->BeginTransaction(WriteOptions{});
  ASSERT_OK(txn->Put("b", "2"));
  std::unique_ptr<Snapshot> snap = db_->GetSnapshot();
  db_.reset();  // destructor closes
  ExpectPoolsReleased();
  EXPECT_FALSE(it->Valid());
  EXPECT_TRUE(it->status().IsClosed());
  EXPECT_TRUE(txn->Commit().IsClosed());
  it.reset();
  txn.reset();
  snap.reset();
  ExpectPoolsReleased();
}

// ---------------------------------------------------------------- Transactions

TEST_F(DBTest, TransactionReadsItsOwnWritesAndDeletes) {
  ASSERT_OK(Open());
  ASSERT_OK(db_->Put(WriteOptions{}, "a", "db-a"));
  ASSERT_OK(db_->Put(WriteOptions{}, "b", "db-b"));
  ASSERT_OK(db_->Put(WriteOptions{}, "d", "db-d"));
  std::unique_ptr<Transaction> txn = db_->BeginTransaction(WriteOptions{});
  ASSERT_NE(txn, nullptr);
  ASSERT_OK(txn->Put("a", "txn-a"));  // overwrite
  ASSERT_OK(txn->Delete("b"));        // own delete
  ASSERT_OK(txn->Put("c", "txn-c"));  // new key
  ASSERT_OK(txn->Put("e", "txn-e"));
  ASSERT_OK(txn->Delete("e"));        // put then delete
  ASSERT_OK(txn->Delete("f"));        // delete of a missing key
  ASSERT_OK(txn->Put("f", "txn-f"));  // delete then put

  EXPECT_EQ(TxnGetOrStatus(txn.get(), "a"), "txn-a");
  std::string v;
  EXPECT_TRUE(txn->Get(ReadOptions{}, "b", &v).IsNotFound());
  EXPECT_EQ(TxnGetOrStatus(txn.get(), "c"), "txn-c");
  EXPECT_EQ(TxnGetOrStatus(txn.get(), "d"), "db-d");
  EXPECT_TRUE(txn->Get(ReadOptions{}, "e", &v).IsNotFound());
  EXPECT_EQ(TxnGetOrStatus(txn.get(), "f"), "txn-f");

  const std::vector<std::pair<std::string, std::string>> expected = {
      {"a", "txn-a"}, {"c", "txn-c"}, {"d", "db-d"}, {"f", "txn-f"}};
  std::unique_ptr<Iterator> it = txn->NewIterator(ReadOptions{});
  EXPECT_EQ(Scan(it.get()), expected);
  // Backwards and with Seek, over the merged view.
  std::vector<std::string> back;
  for (it->SeekToLast(); it->Valid(); it->Prev()) back.emplace_back(it->key());
  EXPECT_EQ(back, (std::vector<std::string>{"f", "d", "c", "a"}));
  it->Seek("b");
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "c");
  it->Prev();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "a");
  it->Seek("e");
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "f");

  // The database does not see uncommitted writes.
  EXPECT_EQ(GetOrStatus(db_.get(), "a"), "db-a");
  EXPECT_TRUE(IsNotFoundIn(db_.get(), "c"));
  ASSERT_OK(txn->Commit());
  EXPECT_EQ(ScanDB(db_.get()), expected);
  Reopen();
  EXPECT_EQ(ScanDB(db_.get()), expected);
}

// A Put to the key a transaction's iterator stands on rewrites the buffered
// value; the iterator shows the new value at once, shorter or longer.
TEST_F(DBTest, TransactionIteratorShowsItsOwnRewriteInPlace) {
  ASSERT_OK(Open());
  std::unique_ptr<Transaction> txn = db_->BeginTransaction(WriteOptions{});
  ASSERT_OK(txn->Put("k", "hello"));
  std::unique_ptr<Iterator> it = txn->NewIterator(ReadOptions{});
  it->Seek("k");
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->value(), "hello");
  ASSERT_OK(txn->Put("k", "hi"));
  EXPECT_EQ(it->key(), "k");
  EXPECT_EQ(it->value(), "hi");
  ASSERT_OK(txn->Put("k", std::string(200, 'x')));
  EXPECT_EQ(it->value(), std::string(200, 'x'));
  it.reset();
  ASSERT_OK(txn->Rollback());
}

TEST_F(DBTest, TransactionReadsAConsistentSnapshot) {
  ASSERT_OK(Open());
  ASSERT_OK(db_->Put(WriteOptions{}, "x", "old"));
  ASSERT_OK(db_->Put(WriteOptions{}, "gone", "here"));
  std::unique_ptr<Transaction> txn = db_->BeginTransaction(WriteOptions{});
  ASSERT_OK(db_->Put(WriteOptions{}, "x", "new"));
  ASSERT_OK(db_->Put(WriteOptions{}, "y", "new"));
  ASSERT_OK(db_->Delete(WriteOptions{}, "gone"));
  EXPECT_EQ(TxnGetOrStatus(txn.get(), "x"), "old");
  std::string v;
  EXPECT_TRUE(txn->Get(ReadOptions{}, "y", &v).IsNotFound());
  EXPECT_EQ(TxnGetOrStatus(txn.get(), "gone"), "here");
  std::unique_ptr<Iterator> it = txn->NewIterator(ReadOptions{});
  const std::vector<std::pair<std::string, std::string>> expected = {{"gone", "here"},
                                                                     {"x", "old"}};
  EXPECT_EQ(Scan(it.get()), expected);
  ASSERT_OK(txn->Rollback());
}

TEST_F(DBTest, WriteWriteConflictFirstCommitterWins) {
  ASSERT_OK(Open());
  ASSERT_OK(db_->Put(WriteOptions{}, "k", "0"));
  std::unique_ptr<Transaction> t1 = db_->BeginTransaction(WriteOptions{});
  std::unique_ptr<Transaction> t2 = db_->BeginTransaction(WriteOptions{});
  ASSERT_OK(t1->Put("k", "t1"));
  ASSERT_OK(t2->Put("k", "t2"));
  ASSERT_OK(t2->Put("t2-only", "x"));
  ASSERT_OK(t2->Delete("other"));
  ASSERT_OK(t1->Commit());
  Status s = t2->Commit();
  EXPECT_TRUE(s.IsConflict()) << s.ToString();
  // The loser left nothing behind.
  EXPECT_EQ(GetOrStatus(db_.get(), "k"), "t1");
  EXPECT_TRUE(IsNotFoundIn(db_.get(), "t2-only"));
  t2.reset();
  // A retry in a new transaction succeeds.
  std::unique_ptr<Transaction> t3 = db_->BeginTransaction(WriteOptions{});
  ASSERT_OK(t3->Put("k", "t3"));
  ASSERT_OK(t3->Commit());
  EXPECT_EQ(GetOrStatus(db_.get(), "k"), "t3");
}

TEST_F(DBTest, ConflictWithNonTransactionalWrite) {
  ASSERT_OK(Open());
  std::unique_ptr<Transaction> txn = db_->BeginTransaction(WriteOptions{});
  ASSERT_OK(txn->Put("k", "txn"));
  ASSERT_OK(txn->Put("side", "effect"));
  ASSERT_OK(db_->Put(WriteOptions{}, "k", "plain"));
  Status s = txn->Commit();
  EXPECT_TRUE(s.IsConflict()) << s.ToString();
  EXPECT_EQ(GetOrStatus(db_.get(), "k"), "plain");
  EXPECT_TRUE(IsNotFoundIn(db_.get(), "side"));
}

TEST_F(DBTest, DeleteDeleteIsAWriteWriteConflict) {
  ASSERT_OK(Open());
  ASSERT_OK(db_->Put(WriteOptions{}, "k", "v"));
  std::unique_ptr<Transaction> t1 = db_->BeginTransaction(WriteOptions{});
  std::unique_ptr<Transaction> t2 = db_->BeginTransaction(WriteOptions{});
  ASSERT_OK(t1->Delete("k"));
  ASSERT_OK(t2->Put("k", "v2"));
  ASSERT_OK(t1->Commit());
  EXPECT_TRUE(t2->Commit().IsConflict());
  EXPECT_TRUE(IsNotFoundIn(db_.get(), "k"));
}

TEST_F(DBTest, DisjointTransactionsBothCommit) {
  ASSERT_OK(Open());
  std::unique_ptr<Transaction> t1 = db_->BeginTransaction(WriteOptions{});
  std::unique_ptr<Transaction> t2 = db_->BeginTransaction(WriteOptions{});
  ASSERT_OK(t1->Put("a", "1"));
  ASSERT_OK(t2->Put("b", "2"));
  ASSERT_OK(t2->Commit());
  ASSERT_OK(t1->Commit());
  EXPECT_EQ(GetOrStatus(db_.get(), "a"), "1");
  EXPECT_EQ(GetOrStatus(db_.get(), "b"), "2");
}

// Two on-call doctors: each reads both flags and takes itself off call when
// the other is on. Snapshot isolation lets both commit (write skew, as
// documented); serializable rejects the second.
void RunWriteSkew(DB* db, IsolationLevel level, Status* second_commit) {
  ASSERT_OK(db->Put(WriteOptions{}, "alice", "on"));
  ASSERT_OK(db->Put(WriteOptions{}, "bob", "on"));
  TransactionOptions topt;
  topt.isolation = level;
  std::unique_ptr<Transaction> t1 = db->BeginTransaction(WriteOptions{}, topt);
  std::unique_ptr<Transaction> t2 = db->BeginTransaction(WriteOptions{}, topt);
  EXPECT_EQ(TxnGetOrStatus(t1.get(), "alice"), "on");
  EXPECT_EQ(TxnGetOrStatus(t1.get(), "bob"), "on");
  EXPECT_EQ(TxnGetOrStatus(t2.get(), "alice"), "on");
  EXPECT_EQ(TxnGetOrStatus(t2.get(), "bob"), "on");
  ASSERT_OK(t1->Put("alice", "off"));
  ASSERT_OK(t2->Put("bob", "off"));
  ASSERT_OK(t1->Commit());
  *second_commit = t2->Commit();
}

TEST_F(DBTest, SnapshotIsolationAllowsWriteSkew) {
  ASSERT_OK(Open());
  Status second;
  RunWriteSkew(db_.get(), IsolationLevel::kSnapshot, &second);
  EXPECT_TRUE(second.ok()) << "snapshot isolation only checks write-write conflicts: "
                           << second.ToString();
}

TEST_F(DBTest, SerializablePreventsWriteSkew) {
  ASSERT_OK(Open());
  Status second;
  RunWriteSkew(db_.get(), IsolationLevel::kSerializable, &second);
  EXPECT_TRUE(second.IsConflict()) << second.ToString();
  EXPECT_EQ(GetOrStatus(db_.get(), "alice"), "off");
  EXPECT_EQ(GetOrStatus(db_.get(), "bob"), "on");
}

TEST_F(DBTest, SerializableValidatesReadOfMissingKey) {
  ASSERT_OK(Open());
  TransactionOptions topt;
  topt.isolation = IsolationLevel::kSerializable;
  std::unique_ptr<Transaction> txn = db_->BeginTransaction(WriteOptions{}, topt);
  std::string v;
  EXPECT_TRUE(txn->Get(ReadOptions{}, "flag", &v).IsNotFound());
  ASSERT_OK(db_->Put(WriteOptions{}, "flag", "set"));
  ASSERT_OK(txn->Put("decision", "flag-was-absent"));
  Status s = txn->Commit();
  EXPECT_TRUE(s.IsConflict()) << s.ToString();
  EXPECT_TRUE(IsNotFoundIn(db_.get(), "decision"));
}

// A serializable transaction that scanned a range conflicts with a
// concurrent insert into that range (no phantoms).
TEST_F(DBTest, SerializableValidatesScannedRange) {
  ASSERT_OK(Open());
  ASSERT_OK(db_->Put(WriteOptions{}, "item/1", "10"));
  ASSERT_OK(db_->Put(WriteOptions{}, "item/3", "30"));
  TransactionOptions topt;
  topt.isolation = IsolationLevel::kSerializable;
  std::unique_ptr<Transaction> txn = db_->BeginTransaction(WriteOptions{}, topt);
  int count = 0;
  {
    std::unique_ptr<Iterator> it = txn->NewIterator(ReadOptions{});
    for (it->Seek("item/"); it->Valid() && it->key().substr(0, 5) == "item/"; it->Next()) count++;
    ASSERT_OK(it->status());
  }
  EXPECT_EQ(count, 2);
  ASSERT_OK(db_->Put(WriteOptions{}, "item/2", "20"));  // a phantom
  ASSERT_OK(txn->Put("count", std::to_string(count)));
  Status s = txn->Commit();
  EXPECT_TRUE(s.IsConflict()) << s.ToString();
  EXPECT_TRUE(IsNotFoundIn(db_.get(), "count"));
}

TEST_F(DBTest, SerializableReadOnlyOfUnchangedKeysCommits) {
  ASSERT_OK(Open());
  ASSERT_OK(db_->Put(WriteOptions{}, "a", "1"));
  TransactionOptions topt;
  topt.isolation = IsolationLevel::kSerializable;
  std::unique_ptr<Transaction> txn = db_->BeginTransaction(WriteOptions{}, topt);
  EXPECT_EQ(TxnGetOrStatus(txn.get(), "a"), "1");
  ASSERT_OK(db_->Put(WriteOptions{}, "unrelated", "x"));
  ASSERT_OK(txn->Put("b", "2"));
  ASSERT_OK(txn->Commit());
  EXPECT_EQ(GetOrStatus(db_.get(), "b"), "2");
}

TEST_F(DBTest, RollbackDiscardsEverything) {
  ASSERT_OK(Open());
  ASSERT_OK(db_->Put(WriteOptions{}, "a", "1"));
  std::unique_ptr<Transaction> txn = db_->BeginTransaction(WriteOptions{});
  ASSERT_OK(txn->Put("a", "2"));
  ASSERT_OK(txn->Put("b", "2"));
  ASSERT_OK(txn->Delete("a"));
  ASSERT_OK(txn->Rollback());
  EXPECT_EQ(GetOrStatus(db_.get(), "a"), "1");
  EXPECT_TRUE(IsNotFoundIn(db_.get(), "b"));
  txn.reset();
  Reopen();
  EXPECT_EQ(GetOrStatus(db_.get(), "a"), "1");
  EXPECT_TRUE(IsNotFoundIn(db_.get(), "b"));
}

TEST_F(DBTest, DestroyingUncommittedTransactionDiscardsIt) {
  ASSERT_OK(Open());
  {
    std::unique_ptr<Transaction> txn = db_->BeginTransaction(WriteOptions{});
    ASSERT_OK(txn->Put("a", "1"));
  }
  EXPECT_TRUE(IsNotFoundIn(db_.get(), "a"));
  DBStats stats;
  ASSERT_OK(db_->GetStats(&stats));
  EXPECT_EQ(stats.open_transactions, 0u);
  // The destroyed transaction's write does not conflict with a later one.
  std::unique_ptr<Transaction> txn = db_->BeginTransaction(WriteOptions{});
  ASSERT_OK(txn->Put("a", "2"));
  ASSERT_OK(txn->Commit());
  Reopen();
  EXPECT_EQ(GetOrStatus(db_.get(), "a"), "2");
}

TEST_F(DBTest, TransactionBufferBudgetGivesMemoryLimit) {
  ASSERT_OK(Open());
  ASSERT_OK(db_->Put(WriteOptions{}, "existing", "value"));
  TransactionOptions topt;
  topt.buffer_budget_bytes = size_t{1} << 20;
  std::unique_ptr<Transaction> txn = db_->BeginTransaction(WriteOptions{}, topt);
  const std::string value(64 << 10, 'v');
  Status s;
  int accepted = 0;
  for (; accepted < 1000; accepted++) {
    s = txn->Put("big" + std::to_string(accepted), value);
    if (!s.ok()) break;
  }
  EXPECT_TRUE(s.IsMemoryLimit()) << s.ToString();
  // 1 MiB holds at most 16 values of 64 KiB.
  EXPECT_LE(accepted, 16);
  EXPECT_LE(txn->BufferBytes(), topt.buffer_budget_bytes);
  // The transaction still holds what it accepted before the limit.
  if (accepted > 0) {
    EXPECT_TRUE(TxnGetOrStatus(txn.get(), "big0") == value);
  }
  ASSERT_OK(txn->Rollback());
  txn.reset();
  EXPECT_EQ(GetOrStatus(db_.get(), "existing"), "value");
  EXPECT_TRUE(IsNotFoundIn(db_.get(), "big0"));
  // The database is fully usable afterwards.
  std::unique_ptr<Transaction> again = db_->BeginTransaction(WriteOptions{});
  ASSERT_OK(again->Put("small", "ok"));
  ASSERT_OK(again->Commit());
  EXPECT_EQ(GetOrStatus(db_.get(), "small"), "ok");
}

TEST_F(DBTest, TransactionCommitIsDurableAndAtomic) {
  ASSERT_OK(Open());
  std::unique_ptr<Transaction> txn = db_->BeginTransaction(WriteOptions{});
  for (int i = 0; i < 100; i++) ASSERT_OK(txn->Put("t" + std::to_string(i), "v"));
  // Nothing is visible before Commit.
  EXPECT_EQ(ScanDB(db_.get()).size(), 0u);
  ASSERT_OK(txn->Commit());
  EXPECT_EQ(ScanDB(db_.get()).size(), 100u);
  Reopen();
  EXPECT_EQ(ScanDB(db_.get()).size(), 100u);
}

// ---------------------------------------------------------------- Snapshots

TEST_F(DBTest, SnapshotGivesConsistentReads) {
  ASSERT_OK(Open());
  ASSERT_OK(db_->Put(WriteOptions{}, "a", "1"));
  ASSERT_OK(db_->Put(WriteOptions{}, "b", "1"));
  std::unique_ptr<Snapshot> snap = db_->GetSnapshot();
  ASSERT_NE(snap, nullptr);
  ASSERT_OK(db_->Put(WriteOptions{}, "a", "2"));
  ASSERT_OK(db_->Delete(WriteOptions{}, "b"));
  ASSERT_OK(db_->Put(WriteOptions{}, "c", "2"));
  ASSERT_OK(db_->Checkpoint());  // old versions stay readable across a checkpoint
  ReadOptions at;
  at.snapshot = snap.get();
  EXPECT_EQ(GetOrStatus(db_.get(), "a", at), "1");
  EXPECT_EQ(GetOrStatus(db_.get(), "b", at), "1");
  std::string v;
  EXPECT_TRUE(db_->Get(at, "c", &v).IsNotFound());
  const std::vector<std::pair<std::string, std::string>> then = {{"a", "1"}, {"b", "1"}};
  EXPECT_EQ(ScanDB(db_.get(), at), then);
  const std::vector<std::pair<std::string, std::string>> now = {{"a", "2"}, {"c", "2"}};
  EXPECT_EQ(ScanDB(db_.get()), now);
  std::unique_ptr<Snapshot> later = db_->GetSnapshot();
  EXPECT_GT(later->sequence(), snap->sequence());
  snap.reset();
  ReadOptions at_later;
  at_later.snapshot = later.get();
  EXPECT_EQ(ScanDB(db_.get(), at_later), now);
}

}  // namespace
}  // namespace arenakv
