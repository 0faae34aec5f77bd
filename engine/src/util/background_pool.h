// BackgroundPool: the process's few background threads, shared by every
// open database for its checkpoints, so that a thousand open databases do
// not mean a thousand threads and an idle database costs none.
//
// Work is posted with an owner (the database) and, optionally, a delay.
// Cancel(owner) drops the owner's pending work and waits for the piece of it
// that is running, so a closing database knows nothing of it runs later.
// Threads start when work is posted, up to the configured count
// (SetBackgroundThreads, 2 by default), and end when no work is left: an
// idle process holds none. A fork() is safe: the pool's lock is held across
// it, threads that ended are joined first, and the child starts threads of
// its own for the work it posts.
//
// Thread safety: every method may be called concurrently. Work must not
// call Cancel for its own owner.
#ifndef ARENAKV_UTIL_BACKGROUND_POOL_H_
#define ARENAKV_UTIL_BACKGROUND_POOL_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "port/mutex.h"

namespace arenakv {

class BackgroundPool {
 public:
  using Clock = std::chrono::steady_clock;

  static BackgroundPool* Default();

  explicit BackgroundPool(int threads);
  ~BackgroundPool();  // finishes nothing pending; joins the threads
  BackgroundPool(const BackgroundPool&) = delete;
  BackgroundPool& operator=(const BackgroundPool&) = delete;

  void Post(const void* owner, std::function<void()> work, Clock::duration delay = {});
  void Cancel(const void* owner);
  void SetThreads(int threads);
  // When no work is queued or running: waits for every thread to end and
  // joins them (fork() does, so a process with nothing to do forks with no
  // thread of ours). Otherwise returns at once.
  void WaitForIdleThreads();
  // Joins the threads that have ended (they hold no work).
  void Reap();
  int threads() const;       // alive now
  int peak_threads() const;  // the most ever alive at once
  // Pieces of work waiting (for tests).
  size_t pending() const;

 private:
  struct Work {
    const void* owner;
    Clock::time_point due;
    std::function<void()> fn;
  };
  void Loop();
  void StartThreadsLocked() REQUIRES(mu_);
  void ReapLocked() REQUIRES(mu_);  // joins threads that ended
  void WaitForIdleThreadsLocked() REQUIRES(mu_);
  // pthread_atfork handlers of Default(): the lock is taken in one, released
  // in another, which the analysis cannot follow.
  static void BeforeFork() NO_THREAD_SAFETY_ANALYSIS;
  static void AfterForkParent() NO_THREAD_SAFETY_ANALYSIS;
  static void AfterForkChild() NO_THREAD_SAFETY_ANALYSIS;

  mutable port::Mutex mu_;
  port::CondVar cv_{&mu_};                  // work posted, or stopping
  port::CondVar done_cv_{&mu_};             // a piece of work finished
  std::deque<Work> queue_ GUARDED_BY(mu_);  // by due time, then post order
  std::vector<const void*> running_ GUARDED_BY(mu_);
  std::vector<std::thread> threads_ GUARDED_BY(mu_);
  std::vector<std::thread::id> ended_ GUARDED_BY(mu_);  // left Loop, not joined
  int wanted_threads_ GUARDED_BY(mu_);
  int peak_threads_ GUARDED_BY(mu_) = 0;
  bool stopping_ GUARDED_BY(mu_) = false;
};

}  // namespace arenakv

#endif  // ARENAKV_UTIL_BACKGROUND_POOL_H_
