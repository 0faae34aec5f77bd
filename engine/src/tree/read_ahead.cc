#include "tree/read_ahead.h"

#include <utility>

#include "util/background_pool.h"
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
  bool queued = true;
  {
    port::MutexLock l(&mu_);
    if (stopped_ || size_ == kQueue || RecentLocked(parent)) return;
    recent_[recent_next_] = parent;
    recent_next_ = (recent_next_ + 1) % kRecent;
    queue_[(head_ + size_) % kQueue] = parent;
    ++size_;
    if (!running_) {
      try {
        BackgroundPool::Default()->Post(this, [this] { Run(); });
        running_ = true;
      } catch (...) {
        // No memory to queue the work: read-ahead is only an optimisation.
        --size_;
        queued = false;
      }
    }
  }
  if (queued) TEST_SYNC_POINT("ReadAhead::Request:Queued");
}

// One parent's children per piece of work, then the next piece is queued
// behind whatever else the shared threads have to do (checkpoints first
// among them, as they were posted first).
void ReadAhead::Run() {
  uint64_t parent = 0;
  {
    port::MutexLock l(&mu_);
    if (size_ == 0 || stop_.load(std::memory_order_relaxed)) {
      running_ = false;
    } else {
      parent = queue_[head_];
      head_ = (head_ + 1) % kQueue;
      --size_;
    }
  }
  if (parent == 0) {
    TEST_SYNC_POINT("ReadAhead::Run:Idle");
    return;
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
  port::MutexLock l(&mu_);
  try {
    BackgroundPool::Default()->Post(this, [this] { Run(); });
  } catch (...) {
    running_ = false;  // the rest of the queue waits for the next request
  }
}

void ReadAhead::Stop() {
  stop_.store(true, std::memory_order_relaxed);
  {
    port::MutexLock l(&mu_);
    stopped_ = true;
    size_ = 0;
  }
  // The piece of work queued is dropped; the one running finishes its page.
  BackgroundPool::Default()->Cancel(this);
}

}  // namespace arenakv::tree
