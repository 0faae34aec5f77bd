// BackgroundPool: the process's few background threads, shared by every
// open database for its checkpoints, so that a thousand open databases do
// not mean a thousand threads and an idle database costs none.
//
// Work is posted with an owner (the database) and, optionally, a delay.
// Cancel(owner) drops the owner's pending work and waits for the piece of it
// that is running, so a closing database knows nothing of it runs later.
// Threads start on the first post, up to the configured count
// (SetBackgroundThreads, 2 by default), and stay for the process; raising
// the count starts more, lowering it only limits threads not started yet.
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
  int threads() const;
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

  mutable port::Mutex mu_;
  port::CondVar cv_{&mu_};                  // work posted, or stopping
  port::CondVar done_cv_{&mu_};             // a piece of work finished
  std::deque<Work> queue_ GUARDED_BY(mu_);  // by due time, then post order
  std::vector<const void*> running_ GUARDED_BY(mu_);
  std::vector<std::thread> threads_ GUARDED_BY(mu_);
  int wanted_threads_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
};

}  // namespace arenakv

#endif  // ARENAKV_UTIL_BACKGROUND_POOL_H_
