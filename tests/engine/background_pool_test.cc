// BackgroundPool: posted work runs on a few shared threads, delayed work
// waits its turn, Cancel drops an owner's pending work and waits for the
// piece running; and databases use it: an idle database holds no thread.
#include "util/background_pool.h"

#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "arenakv/db.h"
#include "db_test_util.h"
#include "test_util.h"

#if defined(__SANITIZE_THREAD__)
#define ARENAKV_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ARENAKV_TEST_TSAN 1
#endif
#endif

namespace arenakv {
namespace {

using namespace std::chrono_literals;

size_t ProcessThreads() {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
    (void)e;
    ++n;
  }
  return n;
}

TEST(BackgroundPoolTest, RunsWorkInDueOrderOnItsThreads) {
  BackgroundPool pool(1);  // one thread: the order is the queue's
  std::vector<int> order;
  std::promise<void> done;
  int owner = 0;
  pool.Post(
      &owner,
      [&] {
        order.push_back(3);
        done.set_value();
      },
      50ms);
  pool.Post(&owner, [&] { order.push_back(1); });
  pool.Post(&owner, [&] { order.push_back(2); });
  done.get_future().wait();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(pool.peak_threads(), 1);
  EXPECT_EQ(pool.pending(), 0u);
}

TEST(BackgroundPoolTest, CancelDropsPendingWorkAndWaitsForTheRunningPiece) {
  BackgroundPool pool(2);
  int a = 0, b = 0;
  std::promise<void> started;
  std::atomic<bool> cancel_returned{false}, saw_returned{true}, finished{false};
  std::atomic<int> ran_later{0};
  pool.Post(&a, [&] {
    started.set_value();
    // Cancel(&a) has begun once a's pending piece is gone: it must now
    // wait for this one.
    while (pool.pending() != 1) std::this_thread::yield();
    saw_returned = cancel_returned.load();
    finished = true;
  });
  started.get_future().wait();
  pool.Post(
      &a, [&] { ran_later.fetch_add(1); }, 10s);  // pending: dropped
  pool.Post(
      &b, [&] { ran_later.fetch_add(100); }, 10s);
  std::thread canceller([&] {
    pool.Cancel(&a);
    cancel_returned = true;
  });
  canceller.join();
  EXPECT_TRUE(finished.load());
  EXPECT_FALSE(saw_returned.load()) << "Cancel returned while the owner's work ran";
  EXPECT_EQ(pool.pending(), 1u);  // b's stays
  EXPECT_EQ(ran_later.load(), 0);
  pool.Cancel(&b);
  EXPECT_EQ(pool.pending(), 0u);
}

// Opening many databases adds no thread; writing to some of them (with
// background checkpoints) and reading them cold (with read-ahead) adds at
// most the pool's.
TEST(BackgroundPoolTest, DatabasesShareThePoolsThreads) {
  test::TempDir dir;
  Options o;
  o.cache_bytes = 256 << 10;
  o.checkpoint_wal_bytes = 256 << 10;
  const size_t before = ProcessThreads();
  constexpr int kDbs = 40;
  std::vector<std::unique_ptr<DB>> dbs(kDbs);
  for (int d = 0; d < kDbs; ++d) {
    ASSERT_OK(DB::Open(o, dir.Join("db" + std::to_string(d)), &dbs[d]));
  }
  EXPECT_EQ(ProcessThreads(), before) << "an idle database started a thread";
  const std::string value(200, 'v');
  for (int i = 0; i < 3000; ++i) {
    for (int d = 0; d < kDbs; d += 7) {
      ASSERT_OK(dbs[d]->Put(WriteOptions(), "k" + std::to_string(i), value));
    }
  }
  DBStats written;
  ASSERT_OK(dbs[0]->GetStats(&written));
  EXPECT_GT(written.checkpoints, 0u);  // the shared threads ran checkpoints
  // Reopened cold, read: misses queue read-ahead on the same threads.
  for (int d = 0; d < kDbs; d += 7) {
    ASSERT_OK(dbs[d]->Close());
    ASSERT_OK(DB::Open(o, dir.Join("db" + std::to_string(d)), &dbs[d]));
    std::string v;
    for (int i = 0; i < 3000; i += 10)
      ASSERT_OK(dbs[d]->Get(ReadOptions(), "k" + std::to_string(i), &v));
  }
  EXPECT_LE(BackgroundPool::Default()->peak_threads(), 2);
  for (auto& db : dbs) {
    ASSERT_OK(db->Close());
    db.reset();
  }
  // Nothing left to do: the pool's threads end.
  BackgroundPool::Default()->WaitForIdleThreads();
  EXPECT_EQ(BackgroundPool::Default()->threads(), 0);
  test::ExpectPoolsReleased();
}

// A child forked while the pool has threads starts its own for its work
// (before, it waited for ever on threads that did not exist in it).
TEST(BackgroundPoolTest, AForkedChildRunsItsOwnWork) {
#ifdef ARENAKV_TEST_TSAN
  GTEST_SKIP() << "forks while a thread runs, which ThreadSanitizer does not support";
#endif
  BackgroundPool* pool = BackgroundPool::Default();
  std::promise<void> started, release;
  std::shared_future<void> go = release.get_future().share();
  int owner = 0;
  pool->Post(&owner, [&] {
    started.set_value();
    go.wait();
  });
  started.get_future().wait();  // a thread of the pool is busy across the fork
  const pid_t pid = fork();
  if (pid == 0) {
    std::promise<void> ran;
    int child_owner = 0;
    pool->Post(&child_owner, [&] { ran.set_value(); });
    ran.get_future().wait();
    pool->Cancel(&owner);  // the parent's running piece is not waited for
    _exit(0);
  }
  ASSERT_GT(pid, 0);
  release.set_value();
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  pool->Cancel(&owner);
}

// Run by AClosedDatabaseLeavesNoThreadAtExit, in a process of its own: a
// database read cold (its misses post read-ahead) and closed just before
// the process exits.
TEST(BackgroundPoolTest, ExitAfterCloseChild) {
  const char* path = std::getenv("ARENAKV_EXIT_CHILD_DB");
  if (path == nullptr) GTEST_SKIP() << "run only as AClosedDatabaseLeavesNoThreadAtExit's child";
  Options o;
  o.cache_bytes = 256 << 10;
  o.create_if_missing = false;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(o, path, &db));
  std::string v;
  for (int i = 0; i < 3000; i += 50) ASSERT_OK(db->Get(ReadOptions(), "k" + std::to_string(i), &v));
  ASSERT_OK(db->Close());
}

// The pool joins its threads at exit. Joining only those that had ended
// missed a thread still on its way out of its last piece of work, and
// ThreadSanitizer reported it as leaked (exit status 66): in CI, once, a
// test that closed a database just before its process exited; this test,
// four copies at once under TSan, failed 9 runs of 12 (0 of 12 since).
TEST(BackgroundPoolTest, AClosedDatabaseLeavesNoThreadAtExit) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  {
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(Options{}, path, &db));
    const std::string value(200, 'v');
    for (int i = 0; i < 3000; ++i)
      ASSERT_OK(db->Put(WriteOptions(), "k" + std::to_string(i), value));
    ASSERT_OK(db->Close());
  }
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string env = "ARENAKV_EXIT_CHILD_DB=" + path;
  for (int round = 0; round < 40; ++round) {
    std::string filter = "--gtest_filter=BackgroundPoolTest.ExitAfterCloseChild";
    std::string brief = "--gtest_brief=1";
    char* argv[] = {const_cast<char*>(self.c_str()), filter.data(), brief.data(), nullptr};
    std::vector<char*> envp;
    for (char** e = environ; *e != nullptr; ++e) envp.push_back(*e);
    envp.push_back(const_cast<char*>(env.c_str()));
    envp.push_back(nullptr);
    pid_t pid = 0;
    ASSERT_EQ(posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv, envp.data()), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "round " << round << ": the child exited with status " << status;
  }
  test::ExpectPoolsReleased();
}

}  // namespace
}  // namespace arenakv
