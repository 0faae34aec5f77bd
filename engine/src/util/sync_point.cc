// Sync points: the registry of dependencies and callbacks behind the macros.
// Compiled to an empty object unless ARENAKV_SYNC_POINTS is defined.
#include "util/sync_point.h"

#ifdef ARENAKV_SYNC_POINTS

#include <utility>

namespace arenakv {

SyncPoint* SyncPoint::Get() {
  static SyncPoint* const instance = new SyncPoint();  // never destroyed: threads may outlive main
  return instance;
}

void SyncPoint::LoadDependency(const std::vector<Dependency>& dependencies) {
  port::MutexLock l(&mu_);
  predecessors_.clear();
  passed_.clear();
  for (const Dependency& d : dependencies) predecessors_[d.successor].push_back(d.predecessor);
  cv_.SignalAll();
}

void SyncPoint::SetCallBack(const std::string& point, CallBack callback) {
  auto shared = std::make_shared<const CallBack>(std::move(callback));
  port::MutexLock l(&mu_);
  callbacks_[point] = std::move(shared);
}

void SyncPoint::ClearCallBack(const std::string& point) {
  port::MutexLock l(&mu_);
  callbacks_.erase(point);
  WaitForCallBacksLocked();
}

void SyncPoint::ClearAllCallBacks() {
  port::MutexLock l(&mu_);
  callbacks_.clear();
  WaitForCallBacksLocked();
}

void SyncPoint::ClearAll() {
  port::MutexLock l(&mu_);
  predecessors_.clear();
  passed_.clear();
  callbacks_.clear();
  cv_.SignalAll();
  WaitForCallBacksLocked();
}

void SyncPoint::EnableProcessing() {
  port::MutexLock l(&mu_);
  enabled_.store(true, std::memory_order_release);
}

void SyncPoint::DisableProcessing() {
  port::MutexLock l(&mu_);
  enabled_.store(false, std::memory_order_release);
  cv_.SignalAll();
}

bool SyncPoint::PredecessorsPassedLocked(const std::string& point) const {
  auto it = predecessors_.find(point);
  if (it == predecessors_.end()) return true;
  for (const std::string& p : it->second) {
    if (passed_.count(p) == 0) return false;
  }
  return true;
}

void SyncPoint::WaitForCallBacksLocked() {
  while (callbacks_running_ > 0) cv_.Wait();
}

void SyncPoint::ProcessSlow(const char* name, void* arg) {
  const std::string point(name);
  port::MutexLock l(&mu_);
  // Re-checked after every wake-up: DisableProcessing, LoadDependency and
  // ClearAll change what this thread waits for.
  while (!PredecessorsPassedLocked(point)) {
    if (!enabled_.load(std::memory_order_relaxed)) return;
    cv_.Wait();
  }
  if (!enabled_.load(std::memory_order_relaxed)) return;
  auto it = callbacks_.find(point);
  if (it != callbacks_.end()) {
    std::shared_ptr<const CallBack> callback = it->second;
    ++callbacks_running_;
    mu_.Unlock();
    try {
      (*callback)(arg);
    } catch (...) {
      mu_.Lock();
      --callbacks_running_;
      cv_.SignalAll();
      throw;
    }
    mu_.Lock();
    --callbacks_running_;
  }
  passed_.insert(point);
  cv_.SignalAll();
}

}  // namespace arenakv

#endif  // ARENAKV_SYNC_POINTS
