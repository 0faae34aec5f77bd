// Durability of the database's own directory entries: the directory a
// database creates is synced into its parent, and DestroyDB unlinks LOCK
// while it still holds the lock.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "arenakv/db.h"
#include "arenakv/env.h"
#include "db_test_util.h"
#include "port/mutex.h"
#include "test_util.h"

namespace arenakv {
namespace {

// Forwards to the default Env and records directory syncs, deletions and
// lock releases, in order.
class RecordingEnv final : public Env {
 public:
  std::vector<std::string> events() {
    port::MutexLock l(&mu_);
    return events_;
  }

  Status OpenFile(const std::string& path, OpenMode mode, std::unique_ptr<File>* file) override {
    return base_->OpenFile(path, mode, file);
  }
  Status CreateDir(const std::string& path) override {
    Record("mkdir " + path);
    return base_->CreateDir(path);
  }
  bool FileExists(const std::string& path) override { return base_->FileExists(path); }
  Status GetChildren(const std::string& dir, std::vector<std::string>* names) override {
    return base_->GetChildren(dir, names);
  }
  Status DeleteFile(const std::string& path) override {
    Record("delete " + path);
    return base_->DeleteFile(path);
  }
  Status RenameFile(const std::string& from, const std::string& to) override {
    return base_->RenameFile(from, to);
  }
  Status SyncDir(const std::string& dir) override {
    Record("syncdir " + dir);
    return base_->SyncDir(dir);
  }
  Status LockFile(const std::string& path, std::unique_ptr<FileLock>* lock) override {
    std::unique_ptr<FileLock> inner;
    Status s = base_->LockFile(path, &inner);
    if (s.ok()) *lock = std::make_unique<Lock>(this, path, std::move(inner));
    return s;
  }

 private:
  class Lock final : public FileLock {
   public:
    Lock(RecordingEnv* env, std::string path, std::unique_ptr<FileLock> inner)
        : env_(env), path_(std::move(path)), inner_(std::move(inner)) {}
    ~Lock() override {
      inner_.reset();
      env_->Record("unlock " + path_);
    }

   private:
    RecordingEnv* const env_;
    const std::string path_;
    std::unique_ptr<FileLock> inner_;
  };

  void Record(std::string e) {
    port::MutexLock l(&mu_);
    events_.push_back(std::move(e));
  }

  const std::shared_ptr<Env> base_ = Env::Default();
  port::Mutex mu_;
  std::vector<std::string> events_ GUARDED_BY(mu_);
};

size_t IndexOf(const std::vector<std::string>& events, const std::string& e) {
  for (size_t i = 0; i < events.size(); ++i) {
    if (events[i] == e) return i;
  }
  return events.size();
}

TEST(DirectoryTest, NewDatabaseDirectoryIsSyncedIntoItsParent) {
  test::TempDir dir;
  auto env = std::make_shared<RecordingEnv>();
  Options options;
  options.env = env;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(options, dir.Join("db"), &db));
  ASSERT_OK(db->Close());
  db.reset();
  const std::vector<std::string> events = env->events();
  const size_t mkdir = IndexOf(events, "mkdir " + dir.Join("db"));
  const size_t sync = IndexOf(events, "syncdir " + dir.path());
  ASSERT_LT(mkdir, events.size());
  EXPECT_LT(sync, events.size()) << "the parent directory was never synced";
  EXPECT_GT(sync, mkdir);
  test::ExpectPoolsReleased();
}

TEST(DirectoryTest, DestroyUnlinksLockWhileHoldingIt) {
  test::TempDir dir;
  auto env = std::make_shared<RecordingEnv>();
  Options options;
  options.env = env;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(options, dir.Join("db"), &db));
  ASSERT_OK(db->Put(WriteOptions(), "k", "v"));
  ASSERT_OK(db->Close());
  db.reset();
  ASSERT_OK(DestroyDB(dir.Join("db"), options));
  const std::vector<std::string> events = env->events();
  const std::string lock = dir.Join("db") + "/LOCK";
  // The last lock release is DestroyDB's.
  size_t unlock = events.size();
  for (size_t i = 0; i < events.size(); ++i) {
    if (events[i] == "unlock " + lock) unlock = i;
  }
  const size_t del = IndexOf(events, "delete " + lock);
  ASSERT_LT(del, events.size()) << "LOCK was not deleted";
  ASSERT_LT(unlock, events.size());
  EXPECT_LT(del, unlock) << "LOCK was unlinked after the lock was released";
  EXPECT_FALSE(Env::Default()->FileExists(dir.Join("db")));
  test::ExpectPoolsReleased();
}

// Open creates the database's directory, not its parents, and says which is
// missing: "NotFound: mkdir /var/lib/app/db: No such file or directory"
// left a new user guessing.
TEST(DirectoryTest, MissingParentDirectoryIsNamed) {
  test::TempDir dir;
  const std::string path = dir.Join("missing") + "/db";
  std::unique_ptr<DB> db;
  Status s = DB::Open(Options{}, path, &db);
  EXPECT_TRUE(s.IsNotFound()) << s.ToString();
  EXPECT_NE(s.ToString().find(path + ": its parent directory does not exist"), std::string::npos)
      << s.ToString();
  EXPECT_FALSE(std::filesystem::exists(dir.Join("missing")));
  test::ExpectPoolsReleased();
}

}  // namespace
}  // namespace arenakv
