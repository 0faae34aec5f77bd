// Sync points: dependencies order threads, callbacks run at their point with
// its argument, and nothing happens while processing is off.
#include "util/sync_point.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sync_point_util.h"

namespace arenakv {
namespace {

// What the threads of a test did, in order.
class Log {
 public:
  void Add(const std::string& event) {
    std::lock_guard<std::mutex> l(mu_);
    events_.push_back(event);
  }
  std::vector<std::string> events() {
    std::lock_guard<std::mutex> l(mu_);
    return events_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> events_;
};

TEST(SyncPointTest, NothingHappensWhileProcessingIsOff) {
  int calls = 0;
  test::SyncPointScope scope;
  SyncPoint* sp = SyncPoint::Get();
  sp->LoadDependency({{"SyncPointTest:Never", "SyncPointTest:Waits"}});
  sp->SetCallBack("SyncPointTest:Waits", [&](void*) { ++calls; });
  TEST_SYNC_POINT("SyncPointTest:Waits");  // would wait forever if processed
  EXPECT_EQ(calls, 0);
  sp->EnableProcessing();
  sp->DisableProcessing();
  TEST_SYNC_POINT("SyncPointTest:Waits");
  EXPECT_EQ(calls, 0);
}

TEST(SyncPointTest, CallBackRunsAtItsPointWithTheArgument) {
  int seen = 0;
  int other = 0;
  test::SyncPointScope scope;
  SyncPoint* sp = SyncPoint::Get();
  sp->SetCallBack("SyncPointTest:Add", [&](void* arg) { seen += *static_cast<int*>(arg); });
  sp->SetCallBack("SyncPointTest:Other", [&](void*) { ++other; });
  sp->EnableProcessing();
  int three = 3;
  TEST_SYNC_POINT_CALLBACK("SyncPointTest:Add", &three);
  TEST_SYNC_POINT_CALLBACK("SyncPointTest:Add", &three);
  EXPECT_EQ(seen, 6);
  EXPECT_EQ(other, 0);
  TEST_SYNC_POINT("SyncPointTest:Unknown");  // no callback, no dependency: passes
  // A new callback replaces the old one; a cleared one is gone.
  sp->SetCallBack("SyncPointTest:Add", [&](void* arg) { seen -= *static_cast<int*>(arg); });
  TEST_SYNC_POINT_CALLBACK("SyncPointTest:Add", &three);
  EXPECT_EQ(seen, 3);
  sp->ClearCallBack("SyncPointTest:Add");
  TEST_SYNC_POINT_CALLBACK("SyncPointTest:Add", &three);
  EXPECT_EQ(seen, 3);
  TEST_SYNC_POINT("SyncPointTest:Other");
  EXPECT_EQ(other, 1);
  sp->ClearAll();
  TEST_SYNC_POINT("SyncPointTest:Other");
  EXPECT_EQ(other, 1);
}

// The successor of a dependency goes on only once its predecessor has been
// passed, here by a thread that gets there after the successor's thread has
// started waiting. (Events are logged by callbacks, which run at the point:
// after its predecessors, before it counts as passed.)
TEST(SyncPointTest, SuccessorWaitsForPredecessor) {
  Log log;
  test::SyncPointScope scope;
  SyncPoint* sp = SyncPoint::Get();
  sp->LoadDependency({{"SyncPointTest:A", "SyncPointTest:B"},
                      {"SyncPointTest:B", "SyncPointTest:AfterB"},
                      {"SyncPointTest:Ready", "SyncPointTest:BeforeA"}});
  sp->SetCallBack("SyncPointTest:B", [&](void*) { log.Add("B"); });
  sp->EnableProcessing();
  std::thread waiter([&] {
    TEST_SYNC_POINT("SyncPointTest:Ready");
    TEST_SYNC_POINT("SyncPointTest:B");
  });
  TEST_SYNC_POINT("SyncPointTest:BeforeA");  // the waiter is on its way to B
  log.Add("A");
  TEST_SYNC_POINT("SyncPointTest:A");
  TEST_SYNC_POINT("SyncPointTest:AfterB");
  log.Add("after B");
  waiter.join();
  EXPECT_EQ(log.events(), (std::vector<std::string>{"A", "B", "after B"}));
}

TEST(SyncPointTest, SuccessorWaitsForEveryPredecessor) {
  Log log;
  test::SyncPointScope scope;
  SyncPoint* sp = SyncPoint::Get();
  sp->LoadDependency({{"SyncPointTest:First", "SyncPointTest:Last"},
                      {"SyncPointTest:Second", "SyncPointTest:Last"},
                      {"SyncPointTest:First", "SyncPointTest:Second"}});
  for (const char* name : {"First", "Second", "Last"}) {
    sp->SetCallBack(std::string("SyncPointTest:") + name, [&log, name](void*) { log.Add(name); });
  }
  sp->EnableProcessing();
  std::thread last([&] { TEST_SYNC_POINT("SyncPointTest:Last"); });
  std::thread second([&] { TEST_SYNC_POINT("SyncPointTest:Second"); });
  TEST_SYNC_POINT("SyncPointTest:First");
  second.join();
  last.join();
  EXPECT_EQ(log.events(), (std::vector<std::string>{"First", "Second", "Last"}));
}

// A point counts as passed only after its callback returns: a callback that
// blocks holds back the point's successors.
TEST(SyncPointTest, PointIsPassedAfterItsCallBack) {
  Log log;
  test::SyncPointScope scope;
  SyncPoint* sp = SyncPoint::Get();
  sp->LoadDependency({{"SyncPointTest:Slow", "SyncPointTest:Next"}});
  sp->SetCallBack("SyncPointTest:Slow", [&](void*) { log.Add("callback"); });
  sp->EnableProcessing();
  std::thread next([&] {
    TEST_SYNC_POINT("SyncPointTest:Next");
    log.Add("next");
  });
  TEST_SYNC_POINT("SyncPointTest:Slow");
  next.join();
  EXPECT_EQ(log.events(), (std::vector<std::string>{"callback", "next"}));
}

// LoadDependency forgets the points passed before it.
TEST(SyncPointTest, LoadDependencyForgetsPassedPoints) {
  Log log;
  test::SyncPointScope scope;
  SyncPoint* sp = SyncPoint::Get();
  sp->EnableProcessing();
  TEST_SYNC_POINT("SyncPointTest:A");  // passed, then forgotten
  sp->LoadDependency(
      {{"SyncPointTest:A", "SyncPointTest:B"}, {"SyncPointTest:Ready", "SyncPointTest:BeforeA"}});
  std::thread waiter([&] {
    TEST_SYNC_POINT("SyncPointTest:Ready");
    TEST_SYNC_POINT("SyncPointTest:B");
    log.Add("B");
  });
  TEST_SYNC_POINT("SyncPointTest:BeforeA");
  log.Add("A");
  TEST_SYNC_POINT("SyncPointTest:A");
  waiter.join();
  EXPECT_EQ(log.events(), (std::vector<std::string>{"A", "B"}));
}

// Turning processing off lets a thread waiting for a point that will never
// be passed go on (a test's teardown relies on it).
TEST(SyncPointTest, DisableProcessingReleasesWaiters) {
  std::atomic<bool> released{false};
  test::SyncPointScope scope;
  SyncPoint* sp = SyncPoint::Get();
  sp->LoadDependency({{"SyncPointTest:Never", "SyncPointTest:Stuck"},
                      {"SyncPointTest:Ready", "SyncPointTest:Disable"}});
  sp->EnableProcessing();
  std::thread stuck([&] {
    TEST_SYNC_POINT("SyncPointTest:Ready");
    TEST_SYNC_POINT("SyncPointTest:Stuck");
    released.store(true);
  });
  TEST_SYNC_POINT("SyncPointTest:Disable");
  sp->DisableProcessing();
  stuck.join();
  EXPECT_TRUE(released.load());
}

// Clearing callbacks waits for the ones running, so that the state they use
// may go once it returns.
TEST(SyncPointTest, ClearWaitsForRunningCallBacks) {
  std::atomic<bool> in_callback{false};
  std::atomic<bool> release{false};
  std::atomic<bool> finished{false};
  std::atomic<bool> cleared{false};
  test::Notifier notifier;
  test::SyncPointScope scope;
  SyncPoint* sp = SyncPoint::Get();
  sp->SetCallBack("SyncPointTest:Busy", [&](void*) {
    in_callback.store(true);
    notifier.Notify();
    notifier.WaitUntil([&] { return release.load(); });
    finished.store(true);
  });
  sp->EnableProcessing();
  std::thread busy([&] { TEST_SYNC_POINT("SyncPointTest:Busy"); });
  notifier.WaitUntil([&] { return in_callback.load(); });
  std::thread clearer([&] {
    sp->ClearAllCallBacks();
    EXPECT_TRUE(finished.load()) << "ClearAllCallBacks returned while a callback ran";
    cleared.store(true);
    notifier.Notify();
  });
  // The clearer cannot be done: the callback has not been released.
  EXPECT_FALSE(cleared.load());
  release.store(true);
  notifier.Notify();
  busy.join();
  clearer.join();
  EXPECT_TRUE(cleared.load());
}

// Many threads through the same points with a callback: every pass is seen
// (and ThreadSanitizer checks the registry's locking).
TEST(SyncPointTest, ConcurrentPointsAllRunTheirCallBack) {
  constexpr int kThreads = 4;
  constexpr int kPasses = 2000;
  std::atomic<int> calls{0};
  test::SyncPointScope scope;
  SyncPoint* sp = SyncPoint::Get();
  sp->SetCallBack("SyncPointTest:Hot", [&](void* arg) {
    calls.fetch_add(*static_cast<int*>(arg), std::memory_order_relaxed);
  });
  sp->EnableProcessing();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([] {
      int one = 1;
      for (int i = 0; i < kPasses; ++i) {
        TEST_SYNC_POINT_CALLBACK("SyncPointTest:Hot", &one);
        TEST_SYNC_POINT("SyncPointTest:Cold");
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(calls.load(), kThreads * kPasses);
}

}  // namespace
}  // namespace arenakv
