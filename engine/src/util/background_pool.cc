#include "util/background_pool.h"

#include <algorithm>

#include "arenakv/db.h"

namespace arenakv {

namespace {
constexpr int kDefaultThreads = 2;
}  // namespace

BackgroundPool* BackgroundPool::Default() {
  // Never destroyed: databases may close from static destructors.
  static BackgroundPool* pool = new BackgroundPool(kDefaultThreads);
  return pool;
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

void BackgroundPool::StartThreadsLocked() {
  while (static_cast<int>(threads_.size()) < wanted_threads_) {
    threads_.emplace_back([this] { Loop(); });
  }
}

void BackgroundPool::Post(const void* owner, std::function<void()> work, Clock::duration delay) {
  port::MutexLock l(&mu_);
  if (stopping_) return;
  StartThreadsLocked();
  Work w{owner, Clock::now() + delay, std::move(work)};
  auto at = std::upper_bound(queue_.begin(), queue_.end(), w.due,
                             [](Clock::time_point due, const Work& q) { return due < q.due; });
  queue_.insert(at, std::move(w));
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
  // More threads start now; threads already started stay.
  wanted_threads_ = std::max(threads, 1);
  if (!queue_.empty()) StartThreadsLocked();
  cv_.SignalAll();
}

int BackgroundPool::threads() const {
  port::MutexLock l(&mu_);
  return static_cast<int>(threads_.size());
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
      cv_.Wait();
      continue;
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
