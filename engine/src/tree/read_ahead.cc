#include "tree/read_ahead.h"

#include <system_error>
#include <utility>

namespace arenakv::tree {

bool ReadAhead::RecentLocked(uint64_t parent) const {
  for (uint64_t p : recent_) {
    if (p == parent) return true;
  }
  return false;
}

void ReadAhead::Request(uint64_t parent, std::shared_ptr<const void> keep_alive) {
  if (parent == 0 || !tree_->CacheHasRoom()) return;
  std::thread finished;
  {
    port::MutexLock l(&mu_);
    if (stopped_ || size_ == kQueue || RecentLocked(parent)) return;
    recent_[recent_next_] = parent;
    recent_next_ = (recent_next_ + 1) % kRecent;
    Task& t = queue_[(head_ + size_) % kQueue];
    t.parent = parent;
    t.keep_alive = std::move(keep_alive);
    ++size_;
    if (running_) return;
    // The previous thread has left Run (running_ is false): join it below.
    finished = std::move(thread_);
    try {
      thread_ = std::thread([this] { Run(); });
      running_ = true;
    } catch (const std::system_error&) {
      // No thread to be had: read-ahead is only an optimisation.
      --size_;
      keep_alive = std::move(queue_[(head_ + size_) % kQueue].keep_alive);
    }
  }
  if (finished.joinable()) finished.join();
  // keep_alive (a dropped task's) goes here, outside the lock.
}

void ReadAhead::Run() {
  while (true) {
    Task task;
    {
      port::MutexLock l(&mu_);
      if (size_ == 0 || stop_.load(std::memory_order_relaxed)) {
        running_ = false;
        return;
      }
      task = std::move(queue_[head_]);
      head_ = (head_ + 1) % kQueue;
      --size_;
    }
    uint64_t n = 0;
    try {
      // An error here is left for the reader that reaches the page to meet.
      tree_->LoadChildren(task.parent, stop_, &n).IgnoreError();
    } catch (...) {
      // Out of memory building a frame or a message: stop reading ahead.
    }
    loaded_.fetch_add(n, std::memory_order_relaxed);
  }
}

void ReadAhead::Stop() {
  stop_.store(true, std::memory_order_relaxed);
  std::thread thread;
  std::array<Task, kQueue> dropped;
  {
    port::MutexLock l(&mu_);
    stopped_ = true;
    thread = std::move(thread_);
    for (size_t i = 0; i < size_; ++i) dropped[i] = std::move(queue_[(head_ + i) % kQueue]);
    size_ = 0;
  }
  if (thread.joinable()) thread.join();
}

}  // namespace arenakv::tree
