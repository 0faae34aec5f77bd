// Helpers for tests that order threads with sync points (util/sync_point.h):
// a scope that leaves the sync points as it found them, and a condition a
// test thread waits on while callbacks and other threads change state.
//
// Thread safety: SyncPointScope belongs to the test's main thread; every
// Notifier method may be called from any thread.
#ifndef ARENAKV_TESTS_ENGINE_SYNC_POINT_UTIL_H_
#define ARENAKV_TESTS_ENGINE_SYNC_POINT_UTIL_H_

#include <functional>

#include "port/mutex.h"
#include "util/sync_point.h"

namespace arenakv::test {

// Starts from no dependency and no callback and, on leaving, turns
// processing off and clears everything (waiting for running callbacks).
// Declare it after the state its callbacks capture, so that the callbacks
// are gone before that state is; threads that reach points must have been
// joined, or be done with them, by then.
class SyncPointScope {
 public:
  SyncPointScope() { SyncPoint::Get()->ClearAll(); }
  ~SyncPointScope() { Reset(); }
  SyncPointScope(const SyncPointScope&) = delete;
  SyncPointScope& operator=(const SyncPointScope&) = delete;

  // Processing off, dependencies and callbacks gone: points do nothing.
  void Reset() {
    SyncPoint::Get()->DisableProcessing();
    SyncPoint::Get()->ClearAll();
  }
};

// A condition to wait for: threads change the state (atomics) that a
// predicate reads, then call Notify(); WaitUntil(predicate) returns once it
// holds. No wake-up is lost: the predicate is checked under the lock that
// Notify() takes.
class Notifier {
 public:
  void Notify() {
    port::MutexLock l(&mu_);
    cv_.SignalAll();
  }
  void WaitUntil(const std::function<bool()>& done) {
    port::MutexLock l(&mu_);
    while (!done()) cv_.Wait();
  }

 private:
  port::Mutex mu_;
  port::CondVar cv_{&mu_};
};

}  // namespace arenakv::test

#endif  // ARENAKV_TESTS_ENGINE_SYNC_POINT_UTIL_H_
