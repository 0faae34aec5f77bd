// Annotated mutexes: std::mutex and std::shared_mutex carry no clang
// capability attributes in libstdc++, so lock discipline is checked through
// these thin wrappers instead.
#ifndef ARENAKV_PORT_MUTEX_H_
#define ARENAKV_PORT_MUTEX_H_

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>

#include "port/thread_annotations.h"

namespace arenakv::port {

class CAPABILITY("mutex") Mutex {
 public:
  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  bool TryLock() TRY_ACQUIRE(true) { return mu_.try_lock(); }
  void AssertHeld() ASSERT_CAPABILITY(this) {}
  std::mutex& native() { return mu_; }

 private:
  std::mutex mu_;
};

class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() RELEASE() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

class CAPABILITY("shared_mutex") SharedMutex {
 public:
  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  void LockShared() ACQUIRE_SHARED() { mu_.lock_shared(); }
  void UnlockShared() RELEASE_SHARED() { mu_.unlock_shared(); }

 private:
  std::shared_mutex mu_;
};

class SCOPED_CAPABILITY WriterLock {
 public:
  explicit WriterLock(SharedMutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~WriterLock() RELEASE() { mu_->Unlock(); }

 private:
  SharedMutex* const mu_;
};

class SCOPED_CAPABILITY ReaderLock {
 public:
  explicit ReaderLock(SharedMutex* mu) ACQUIRE_SHARED(mu) : mu_(mu) { mu_->LockShared(); }
  ~ReaderLock() RELEASE() { mu_->UnlockShared(); }

 private:
  SharedMutex* const mu_;
};

// Condition variable that waits on a port::Mutex (held by the caller).
class CondVar {
 public:
  explicit CondVar(Mutex* mu) : mu_(mu) {}
  // The caller holds the mutex (not expressible to the analysis: the
  // capability is another object's member).
  void Wait() {
    std::unique_lock<std::mutex> lk(mu_->native(), std::adopt_lock);
    cv_.wait(lk);
    lk.release();
  }
  // Wait() for at most `timeout`; false when it ran out (a signal may still
  // have come: the caller re-checks its condition either way).
  template <class Rep, class Period>
  bool WaitFor(std::chrono::duration<Rep, Period> timeout) {
    std::unique_lock<std::mutex> lk(mu_->native(), std::adopt_lock);
    const bool signalled = cv_.wait_for(lk, timeout) == std::cv_status::no_timeout;
    lk.release();
    return signalled;
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  Mutex* const mu_;
  std::condition_variable cv_;
};

}  // namespace arenakv::port

#endif  // ARENAKV_PORT_MUTEX_H_
