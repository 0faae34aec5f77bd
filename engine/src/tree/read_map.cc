#include "tree/read_map.h"

#include <algorithm>
#include <utility>

namespace arenakv::tree {

ReadMap::ReadMap(File* file, uint64_t min_file_bytes, Budget budget)
    : file_(file), min_file_bytes_(min_file_bytes), budget_(std::move(budget)) {}

ReadMap::~ReadMap() {
  port::MutexLock l(&mu_);
  length_.store(0, std::memory_order_relaxed);
  regions_.clear();
  if (charged_ > 0) budget_.uncharge(charged_);
  charged_ = 0;
}

void ReadMap::Cover(uint64_t file_bytes) {
  if (file_bytes <= min_file_bytes_ || file_bytes > SIZE_MAX) return;
  port::MutexLock l(&mu_);
  const uint64_t in_use = length_.load(std::memory_order_relaxed);
  if (in_use > 0 && file_bytes - std::min(file_bytes, in_use) < in_use / 8) return;
  if (in_use == 0 && !regions_.empty()) {
    // Dropped earlier: the last mapping serves again while the file has not
    // outgrown it by an eighth (it never shrinks, so all of it is there).
    const size_t last = regions_.back()->size();
    if (file_bytes - std::min<uint64_t>(file_bytes, last) < last / 8) {
      if (!budget_.charge(last)) return;
      length_.store(last, std::memory_order_release);
      charged_ = last;
      return;
    }
  }
  // The new mapping is charged whole; the one it replaces gives its charge
  // back once its pages are dropped.
  const size_t bytes = static_cast<size_t>(file_bytes);
  if (!budget_.charge(bytes)) return;
  std::unique_ptr<MappedRegion> region;
  if (!file_->MapReadOnly(bytes, &region).ok()) {
    budget_.uncharge(bytes);
    return;
  }
  data_.store(region->data(), std::memory_order_release);
  length_.store(bytes, std::memory_order_release);
  if (!regions_.empty()) regions_.back()->DropPages();
  if (charged_ > 0) budget_.uncharge(charged_);
  charged_ = bytes;
  regions_.push_back(std::move(region));
}

size_t ReadMap::Drop() {
  // Blocking is safe: Cover() holding the lock allocates nothing from the
  // pool (its charge never reclaims), so it never waits for a reclaim.
  port::MutexLock l(&mu_);
  length_.store(0, std::memory_order_release);
  // A reader that loaded the old length still copies correct bytes: the
  // pages come back from the OS's page cache.
  for (auto& r : regions_) r->DropPages();
  const size_t freed = charged_;
  if (charged_ > 0) {
    budget_.uncharge(charged_);
    drops_.fetch_add(1, std::memory_order_relaxed);
  }
  charged_ = 0;
  return freed;
}

}  // namespace arenakv::tree
