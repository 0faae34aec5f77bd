// Sync points: named places in engine code where a concurrency test can make
// one thread wait for another, or run code of its own, so that the test
// orders threads by events instead of by sleeping and hoping.
//
// In the engine a point is one line:
//
//   TEST_SYNC_POINT("PageCache::Evict:WaitForReaders");
//   TEST_SYNC_POINT_CALLBACK("ReadAhead::Run:Loaded", &n);  // a callback sees &n
//
// Both macros compile to nothing unless ARENAKV_SYNC_POINTS is defined. Only
// the engine variant the tests link (arenakv_engine_testing) defines it; the
// installed library and the benchmarks have no hooks at all, and SyncPoint
// itself is declared only when it is defined.
//
// A test drives the points through the singleton:
//
//   SyncPoint* sp = SyncPoint::Get();
//   sp->LoadDependency({{"A", "B"}});  // a thread reaching B waits until A is passed
//   sp->SetCallBack("C", [&](void* arg) { ... });  // runs in the thread at C
//   sp->EnableProcessing();
//   ... run the threads ...
//   sp->DisableProcessing();
//   sp->ClearAll();
//
// A thread reaching a point while processing is enabled first waits until
// every predecessor of the point (LoadDependency) has been passed, then runs
// the point's callback, if any, and then marks the point passed, waking the
// threads that wait for it. So a callback that blocks holds its thread at the
// point, and successors of the point run only after the callback returns.
// Disabling processing or replacing the dependencies releases every waiting
// thread whose wait no longer applies.
//
// Points placed in the engine. A callback runs in the engine's thread at that
// place, possibly with engine locks held (noted below), so callbacks keep to
// test state rather than calling back into the engine:
//
//   ReadEpoch::WaitUntilSafe:NotYetSafe   tree/read_epoch.cc, each time
//       WaitUntilSafe finds a reader section still holding the tag back
//       (arg: uint64_t*, the tag). The waiter is blocked there; callers
//       may hold the close or checkpoint mutex, or be in a pool's reclaim.
//   PageCache::Evict:WaitForReaders       tree/page_cache.cc, Evict about to
//       wait for readers' sections before releasing what it retired
//       (arg: uint64_t*, the tag it waits for); it may be in a pool's
//       reclaim.
//   ReadAhead::Request:Queued             tree/read_ahead.cc, a parent page
//       was queued for read-ahead (a thread is running or started for it).
//   ReadAhead::Run:Load                   tree/read_ahead.cc, the read-ahead
//       thread took a parent off the queue and is about to read its children.
//   ReadAhead::Run:Loaded                 tree/read_ahead.cc, it has read them
//       (arg: uint64_t*, the pages it added to the cache).
//   ReadAhead::Run:Idle                   tree/read_ahead.cc, the thread found
//       the queue empty (or was stopped) and ends; no page is added after it
//       until the next request.
//   DBImpl::GetLockFree:Reading           db/db_impl.cc, a lock-free point
//       read has passed the closed check inside its read section and is about
//       to read the memtables and the tree.
//   DBImpl::Get:LeafMissed                db/db_impl.cc, a lock-free point
//       read found every page cached but its leaf, and has left its read
//       section (before GetMissedLeaf).
//   DBImpl::GetMissedLeaf:Reading         db/db_impl.cc, a lock-free point
//       read that missed a leaf has left its read section and is about to
//       read the leaf by its address alone.
//   DBImpl::Close:ReadsClosed             db/db_impl.cc, Close() has marked
//       the database closed to lock-free reads (before waiting for them).
//   DBImpl::Close:Marked                  db/db_impl.cc, Close() has marked
//       the database closed to every call; a later Close() waits for it.
//   DBImpl::Close:Checkpoint              db/db_impl.cc, Close() has stopped
//       the background work and is about to write the final checkpoint and
//       tear down (every pool still mapped).
//   (The three Close points are reached holding the close mutex only.)
//   DBImpl::Backup:Captured               db/backup.cc, Backup has taken the
//       state to copy and is about to copy it (holding the checkpoint
//       mutex: no checkpoint runs until it is done).
//   DBImpl::DeleteRange:Scanned           db/db_impl.cc, DeleteRange has
//       deleted every key it found in the range in its transaction and is
//       about to commit (no lock held).
//   BTree::FetchPage:Cached               tree/btree.cc, a page was found in
//       the cache and is about to be checked, if asked (arg: PageRef*; a
//       test may damage the cached image to see it found).
//   DBImpl::Recover:MetaRead              db/db_impl.cc, an open has read the
//       data file's meta block and is about to list the logs after it (no
//       lock held).
//   DBImpl::RunWriter:Queued              db/db_impl.cc, a write or commit
//       has joined the writers' queue (mu_ held: count, do not block).
//   DBImpl::CommitGroup:Logging           db/db_impl.cc, a group's leader
//       has released mu_ to log and apply the group; writers arriving
//       meanwhile queue up for the next group.
//   DBImpl::RunTreeCheckpoint:Start       db/db_impl.cc, a checkpoint of
//       the frozen memtables is about to write the tree (arg:
//       DBImpl::CheckpointStartPoint*, the database's path and the status;
//       a callback may set a MemoryLimit to play a checkpoint out of
//       memory: nothing is written then).
//
// Tests may place points of their own with the same macros, named after the
// test ("DBReviewTest::SecondClose").
//
// Thread safety: every SyncPoint method may be called from any thread. A
// callback must not call ClearCallBack, ClearAllCallBacks or ClearAll (they
// wait for running callbacks to return) and must not wait for a thread that
// is itself waiting at a point for that callback's point.
#ifndef ARENAKV_UTIL_SYNC_POINT_H_
#define ARENAKV_UTIL_SYNC_POINT_H_

#ifdef ARENAKV_SYNC_POINTS

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "port/mutex.h"

namespace arenakv {

class SyncPoint {
 public:
  // `successor` waits until `predecessor` has been passed.
  struct Dependency {
    std::string predecessor;
    std::string successor;
  };
  using CallBack = std::function<void(void*)>;

  // The process-wide instance the macros use.
  static SyncPoint* Get();

  SyncPoint(const SyncPoint&) = delete;
  SyncPoint& operator=(const SyncPoint&) = delete;

  // Replaces every dependency and forgets which points were passed.
  void LoadDependency(const std::vector<Dependency>& dependencies) EXCLUDES(mu_);
  // Runs `callback(arg)` in every thread that reaches `point` (replacing a
  // callback set before).
  void SetCallBack(const std::string& point, CallBack callback) EXCLUDES(mu_);
  // Removes the callback of `point`, once no thread is running a callback.
  void ClearCallBack(const std::string& point) EXCLUDES(mu_);
  // Removes every callback, once no thread is running one.
  void ClearAllCallBacks() EXCLUDES(mu_);
  // Drops the dependencies, the callbacks and the passed points (waiting for
  // running callbacks). Processing stays as it was.
  void ClearAll() EXCLUDES(mu_);

  void EnableProcessing() EXCLUDES(mu_);
  // Points do nothing from now on; threads waiting at one go on.
  void DisableProcessing() EXCLUDES(mu_);

  // What the macros call: waits for the predecessors of `point`, runs its
  // callback, marks it passed. Nothing while processing is disabled.
  void Process(const char* point, void* arg = nullptr) EXCLUDES(mu_) {
    if (!enabled_.load(std::memory_order_acquire)) return;
    ProcessSlow(point, arg);
  }

 private:
  SyncPoint() = default;
  void ProcessSlow(const char* point, void* arg) EXCLUDES(mu_);
  bool PredecessorsPassedLocked(const std::string& point) const REQUIRES(mu_);
  void WaitForCallBacksLocked() REQUIRES(mu_);

  port::Mutex mu_;
  port::CondVar cv_{&mu_};  // a point passed, or the rules changed
  // Written under mu_; loaded without it to keep a disabled point cheap.
  std::atomic<bool> enabled_{false};
  std::unordered_map<std::string, std::vector<std::string>> predecessors_ GUARDED_BY(mu_);
  std::unordered_set<std::string> passed_ GUARDED_BY(mu_);
  // Shared so that a running callback survives being replaced or cleared.
  std::unordered_map<std::string, std::shared_ptr<const CallBack>> callbacks_ GUARDED_BY(mu_);
  int callbacks_running_ GUARDED_BY(mu_) = 0;
};

}  // namespace arenakv

#define TEST_SYNC_POINT(name) ::arenakv::SyncPoint::Get()->Process(name)
#define TEST_SYNC_POINT_CALLBACK(name, arg) ::arenakv::SyncPoint::Get()->Process(name, arg)

#else  // !ARENAKV_SYNC_POINTS

#define TEST_SYNC_POINT(name) static_cast<void>(0)
#define TEST_SYNC_POINT_CALLBACK(name, arg) static_cast<void>(0)

#endif  // ARENAKV_SYNC_POINTS

#endif  // ARENAKV_UTIL_SYNC_POINT_H_
