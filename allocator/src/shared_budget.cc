#include "arenakv/alloc/shared_budget.h"

namespace arenakv::alloc {

bool SharedBudget::TryTake(size_t bytes) {
  size_t cur = used_.load(std::memory_order_relaxed);
  do {
    if (bytes > capacity_ || cur > capacity_ - bytes) return false;
  } while (!used_.compare_exchange_weak(cur, cur + bytes, std::memory_order_relaxed));
  const size_t now = cur + bytes;
  size_t hw = high_water_.load(std::memory_order_relaxed);
  while (now > hw && !high_water_.compare_exchange_weak(hw, now, std::memory_order_relaxed)) {
  }
  return true;
}

void SharedBudget::SetReclaim(ReclaimFn fn) {
  auto p = fn ? std::make_shared<ReclaimFn>(std::move(fn)) : nullptr;
  std::lock_guard<std::mutex> l(mu_);
  reclaim_ = std::move(p);
}

size_t SharedBudget::Reclaim(size_t wanted, const SegmentPool* asking) {
  std::shared_ptr<ReclaimFn> fn;
  {
    std::lock_guard<std::mutex> l(mu_);
    fn = reclaim_;
  }
  return fn ? (*fn)(wanted, asking) : 0;
}

}  // namespace arenakv::alloc
