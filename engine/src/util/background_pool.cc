#include "util/background_pool.h"

#include <pthread.h>

#include <algorithm>
#include <cstdlib>

#include "arenakv/db.h"

namespace arenakv {

namespace {
constexpr int kDefaultThreads = 2;
}  // namespace

BackgroundPool* BackgroundPool::Default() {
  // Never destroyed: databases may close from static destructors.
  static BackgroundPool* pool = [] {
    auto* p = new BackgroundPool(kDefaultThreads);
    pthread_atfork(&BeforeFork, &AfterForkParent, &AfterForkChild);
    // Threads are joined at exit too: the pool is never destroyed, and a
    // thread left unjoined is a leak to the sanitizers. Joining only those
    // that had ended missed one still on its way out of its last piece of
    // work (a database closed just before exit cancels its read-ahead, and
    // the thread that ran it ends a moment later): TSan reported it. With
    // nothing queued or running, every thread ends at once, so waiting for
    // them is short; with work pending, nothing is waited for.
    std::atexit([] { Default()->WaitForIdleThreads(); });
    return p;
  }();
  return pool;
}

// The default pool's lock is held across fork(), so the child's copy is in
// a consistent state; threads that ended are joined first, so a process
// whose work is done forks with no thread of ours.
void BackgroundPool::BeforeFork() {
  BackgroundPool* p = Default();
  p->mu_.Lock();
  p->WaitForIdleThreadsLocked();
}

void BackgroundPool::AfterForkParent() { Default()->mu_.Unlock(); }

// The child has none of the parent's threads: forget them (their objects
// are leaked, never joined) and what they were running; the work still
// queued is started by the child's own threads when it next posts.
void BackgroundPool::AfterForkChild() {
  BackgroundPool* p = Default();
  auto* gone = new std::vector<std::thread>(std::move(p->threads_));
  (void)gone;
  p->threads_.clear();
  p->ended_.clear();
  p->running_.clear();
  p->mu_.Unlock();
}

void SetBackgroundThreads(int threads) { BackgroundPool::Default()->SetThreads(threads); }

BackgroundPool::BackgroundPool(int threads) : wanted_threads_(std::max(threads, 1)) {}

BackgroundPool::~BackgroundPool() {
  std::vector<std::thread> threads;
  {
    port::MutexLock l(&mu_);
    stopping_ = true;
    queue_.clear();
    threads.swap(threads_);
    cv_.SignalAll();
  }
  for (std::thread& t : threads) t.join();
}

void BackgroundPool::ReapLocked() {
  for (const std::thread::id id : ended_) {
    auto it = std::find_if(threads_.begin(), threads_.end(),
                           [id](const std::thread& t) { return t.get_id() == id; });
    if (it == threads_.end()) continue;
    it->join();  // it has left Loop (and released mu_): a short wait at most
    threads_.erase(it);
  }
  ended_.clear();
}

void BackgroundPool::WaitForIdleThreadsLocked() {
  // A thread with nothing to do ends as soon as it holds the lock.
  while (queue_.empty() && running_.empty() && threads_.size() > ended_.size()) done_cv_.Wait();
  ReapLocked();
}

void BackgroundPool::Reap() {
  port::MutexLock l(&mu_);
  ReapLocked();
}

void BackgroundPool::WaitForIdleThreads() {
  port::MutexLock l(&mu_);
  WaitForIdleThreadsLocked();
}

void BackgroundPool::StartThreadsLocked() {
  ReapLocked();
  while (static_cast<int>(threads_.size()) < wanted_threads_ &&
         threads_.size() < queue_.size() + running_.size()) {
    threads_.emplace_back([this] { Loop(); });
  }
  peak_threads_ = std::max(peak_threads_, static_cast<int>(threads_.size()));
}

void BackgroundPool::Post(const void* owner, std::function<void()> work, Clock::duration delay) {
  port::MutexLock l(&mu_);
  if (stopping_) return;
  Work w{owner, Clock::now() + delay, std::move(work)};
  auto at = std::upper_bound(queue_.begin(), queue_.end(), w.due,
                             [](Clock::time_point due, const Work& q) { return due < q.due; });
  queue_.insert(at, std::move(w));
  StartThreadsLocked();
  cv_.SignalAll();
}

void BackgroundPool::Cancel(const void* owner) {
  port::MutexLock l(&mu_);
  queue_.erase(std::remove_if(queue_.begin(), queue_.end(),
                              [owner](const Work& w) { return w.owner == owner; }),
               queue_.end());
  while (std::find(running_.begin(), running_.end(), owner) != running_.end()) done_cv_.Wait();
}

void BackgroundPool::SetThreads(int threads) {
  port::MutexLock l(&mu_);
  // More may start now; threads already running stay until the work ends.
  wanted_threads_ = std::max(threads, 1);
  if (!queue_.empty()) StartThreadsLocked();
  cv_.SignalAll();
}

int BackgroundPool::threads() const {
  port::MutexLock l(&mu_);
  return static_cast<int>(threads_.size() - ended_.size());
}

int BackgroundPool::peak_threads() const {
  port::MutexLock l(&mu_);
  return peak_threads_;
}

size_t BackgroundPool::pending() const {
  port::MutexLock l(&mu_);
  return queue_.size();
}

void BackgroundPool::Loop() {
  port::MutexLock l(&mu_);
  for (;;) {
    if (stopping_) return;
    if (queue_.empty()) {
      // Nothing left: the thread ends (joined by the next start or fork).
      ended_.push_back(std::this_thread::get_id());
      done_cv_.SignalAll();
      return;
    }
    const Clock::time_point now = Clock::now();
    if (queue_.front().due > now) {
      cv_.WaitFor(queue_.front().due - now);
      continue;
    }
    Work w = std::move(queue_.front());
    queue_.pop_front();
    running_.push_back(w.owner);
    mu_.Unlock();
    w.fn();
    w.fn = nullptr;  // whatever it captured goes before the owner is told
    mu_.Lock();
    running_.erase(std::find(running_.begin(), running_.end(), w.owner));
    done_cv_.SignalAll();
  }
}

}  // namespace arenakv
