#include "tree/read_ahead.h"

#include <utility>

#include "util/sync_point.h"

namespace arenakv::tree {

bool ReadAhead::RecentLocked(uint64_t parent) const {
  for (uint64_t p : recent_) {
    if (p == parent) return true;
  }
  return false;
}

void ReadAhead::Request(uint64_t parent) noexcept {
  if (parent == 0 || !tree_->CacheHasRoom()) return;
  std::thread finished;
  bool queued = true;
  {
    port::MutexLock l(&mu_);
    if (stopped_ || size_ == kQueue || RecentLocked(parent)) return;
    recent_[recent_next_] = parent;
    recent_next_ = (recent_next_ + 1) % kRecent;
    queue_[(head_ + size_) % kQueue] = parent;
    ++size_;
    if (!running_) {
      // The previous thread has left Run (running_ is false): join it below.
      finished = std::move(thread_);
      try {
        thread_ = std::thread([this] { Run(); });
        running_ = true;
      } catch (...) {
        // No thread to be had (std::system_error, or std::bad_alloc for its
        // state): read-ahead is only an optimisation.
        --size_;
        queued = false;
      }
    }
  }
  if (queued) TEST_SYNC_POINT("ReadAhead::Request:Queued");
  if (finished.joinable()) finished.join();
}

void ReadAhead::Run() {
  while (true) {
    uint64_t parent;
    {
      port::MutexLock l(&mu_);
      if (size_ == 0 || stop_.load(std::memory_order_relaxed)) {
        running_ = false;
        break;
      }
      parent = queue_[head_];
      head_ = (head_ + 1) % kQueue;
      --size_;
    }
    TEST_SYNC_POINT("ReadAhead::Run:Load");
    uint64_t n = 0;
    try {
      // An error here is left for the reader that reaches the page to meet.
      tree_->LoadChildren(parent, stop_, &n).IgnoreError();
    } catch (...) {
      // Out of memory building a frame or a message: this parent is skipped.
    }
    loaded_.fetch_add(n, std::memory_order_relaxed);
    TEST_SYNC_POINT_CALLBACK("ReadAhead::Run:Loaded", &n);
  }
  TEST_SYNC_POINT("ReadAhead::Run:Idle");
}

void ReadAhead::Stop() {
  stop_.store(true, std::memory_order_relaxed);
  std::thread thread;
  {
    port::MutexLock l(&mu_);
    stopped_ = true;
    thread = std::move(thread_);
    size_ = 0;
  }
  if (thread.joinable()) thread.join();
}

}  // namespace arenakv::tree
