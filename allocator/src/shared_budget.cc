#include "arenakv/alloc/shared_budget.h"

#include <algorithm>

namespace arenakv::alloc {

namespace {

// A sixteenth of the capacity, at most 4 MiB: room for the next memtable
// and a checkpoint's pages on each of a few background threads.
constexpr size_t kMaxReserveBytes = size_t{4} << 20;

thread_local int release_depth = 0;

}  // namespace

SharedBudget::SharedBudget(size_t capacity_bytes)
    : capacity_(capacity_bytes), reserve_(std::min(capacity_bytes / 16, kMaxReserveBytes)) {}

SharedBudget::ReleaseScope::ReleaseScope() { ++release_depth; }
SharedBudget::ReleaseScope::~ReleaseScope() { --release_depth; }
bool SharedBudget::ReleaseScope::Active() { return release_depth > 0; }

size_t SharedBudget::Limit() const { return release_depth > 0 ? capacity_ : capacity_ - reserve_; }

size_t SharedBudget::Over(size_t bytes) const {
  const size_t limit = Limit();
  const size_t now = used();
  return bytes > limit || now > limit - bytes ? now + bytes - limit : 0;
}

bool SharedBudget::TryTake(size_t bytes) {
  const size_t limit = Limit();
  size_t cur = used_.load(std::memory_order_relaxed);
  do {
    if (bytes > limit || cur > limit - bytes) return false;
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
