// RunInOneGroup: makes writers form one commit group, for tests of what a
// group's leader checks and logs (DBImpl::GatherGroupLocked).
//
// Thread safety: call from one test thread; it starts and joins the
// writers' threads itself.
#ifndef ARENAKV_TESTS_ENGINE_COMMIT_GROUP_UTIL_H_
#define ARENAKV_TESTS_ENGINE_COMMIT_GROUP_UTIL_H_

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <thread>
#include <vector>

#include "arenakv/db.h"
#include "sync_point_util.h"
#include "test_util.h"

namespace arenakv::test {

// Holds the queue with one put (of "holder") while the writers of `steps`
// queue behind it in order, one at a time, so that they form the next
// group together. Returns how many groups were logged: 2 when they did.
inline int RunInOneGroup(DB* db, const std::vector<std::function<void()>>& steps) {
  std::atomic<int> queued{0};
  std::atomic<int> groups{0};
  const int want = static_cast<int>(steps.size()) + 1;
  Notifier notifier;
  SyncPointScope scope;
  SyncPoint* sp = SyncPoint::Get();
  sp->SetCallBack("DBImpl::RunWriter:Queued", [&](void*) {
    queued.fetch_add(1);
    notifier.Notify();
  });
  // The first group (the holder's put) waits, out of the lock, until every
  // writer has queued behind it.
  sp->SetCallBack("DBImpl::CommitGroup:Logging", [&](void*) {
    if (groups.fetch_add(1) == 0) notifier.WaitUntil([&] { return queued.load() >= want; });
  });
  sp->EnableProcessing();
  std::vector<std::thread> threads;
  threads.emplace_back([&] { EXPECT_OK(db->Put(WriteOptions(), "holder", "x")); });
  for (size_t i = 0; i < steps.size(); ++i) {
    notifier.WaitUntil([&] { return queued.load() >= static_cast<int>(i) + 1; });
    threads.emplace_back(steps[i]);
  }
  for (std::thread& t : threads) t.join();
  scope.Reset();
  return groups.load();
}

}  // namespace arenakv::test

#endif  // ARENAKV_TESTS_ENGINE_COMMIT_GROUP_UTIL_H_
