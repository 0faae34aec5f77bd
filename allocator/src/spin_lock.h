// SpinLock: the size-class lock of a segment pool. Its critical sections are
// a few dozen instructions (pop or push on a free list), so spinning briefly
// beats sleeping, and unlocking is a plain release store: one atomic
// read-modify-write per lock/unlock pair instead of the two of std::mutex.
// After a short spin the waiter yields the CPU, so a holder that was
// preempted is not starved on a machine with few cores.
//
// Thread safety: a mutex; annotated for clang's -Wthread-safety.
#ifndef ARENAKV_ALLOC_SPIN_LOCK_H_
#define ARENAKV_ALLOC_SPIN_LOCK_H_

#include <sched.h>

#include <atomic>

#include "port/thread_annotations.h"

namespace arenakv::alloc::internal {

class CAPABILITY("mutex") SpinLock {
 public:
  void Lock() ACQUIRE() {
    while (locked_.exchange(true, std::memory_order_acquire)) {
      for (int spins = 0; locked_.load(std::memory_order_relaxed); ++spins) {
        if (spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
          __builtin_ia32_pause();
#endif
        } else {
          sched_yield();
        }
      }
    }
  }
  bool TryLock() TRY_ACQUIRE(true) {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  void Unlock() RELEASE() { locked_.store(false, std::memory_order_release); }
  void AssertHeld() ASSERT_CAPABILITY(this) {}

 private:
  std::atomic<bool> locked_{false};
};

class SCOPED_CAPABILITY SpinLockGuard {
 public:
  explicit SpinLockGuard(SpinLock* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~SpinLockGuard() RELEASE() { mu_->Unlock(); }
  SpinLockGuard(const SpinLockGuard&) = delete;
  SpinLockGuard& operator=(const SpinLockGuard&) = delete;

 private:
  SpinLock* const mu_;
};

}  // namespace arenakv::alloc::internal

#endif  // ARENAKV_ALLOC_SPIN_LOCK_H_
