// FreeSpace: coalesced free extents of the data file.
#include "tree/free_space.h"

namespace arenakv::tree {

FreeSpace::FreeSpace(std::pmr::memory_resource* upstream)
    : pool_(upstream), by_offset_(&pool_), by_length_(&pool_) {}

void FreeSpace::Reset(uint64_t file_end) {
  port::MutexLock l(&mu_);
  by_offset_.clear();
  by_length_.clear();
  file_end_ = file_end;
  free_bytes_ = 0;
}

void FreeSpace::EraseLocked(std::pmr::map<uint64_t, uint64_t>::iterator it) {
  by_length_.erase({it->second, it->first});
  free_bytes_ -= it->second;
  by_offset_.erase(it);
}

void FreeSpace::Add(uint64_t offset, uint64_t length) {
  port::MutexLock l(&mu_);
  AddLocked(offset, length);
}

void FreeSpace::AddLocked(uint64_t offset, uint64_t length) {
  if (length == 0) return;
  // Coalesce with the neighbours on both sides.
  auto next = by_offset_.lower_bound(offset);
  if (next != by_offset_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == offset) {
      offset = prev->first;
      length += prev->second;
      EraseLocked(prev);
    }
  }
  if (next != by_offset_.end() && offset + length == next->first) {
    length += next->second;
    EraseLocked(next);
  }
  if (offset + length >= file_end_) {
    file_end_ = offset;  // free space at the end shortens the file instead
    return;
  }
  by_offset_.emplace(offset, length);
  by_length_.emplace(length, offset);
  free_bytes_ += length;
}

void FreeSpace::TakeRun(uint64_t min_length, uint64_t* begin, uint64_t* end, bool* at_end) {
  port::MutexLock l(&mu_);
  if (!by_length_.empty() && by_length_.rbegin()->first >= min_length) {
    auto [length, offset] = *by_length_.rbegin();
    EraseLocked(by_offset_.find(offset));
    *begin = offset;
    *end = offset + length;
    *at_end = false;
    return;
  }
  *begin = *end = file_end_;
  *at_end = true;
}

uint64_t FreeSpace::ExtendEnd(uint64_t length) {
  port::MutexLock l(&mu_);
  uint64_t old = file_end_;
  file_end_ += length;
  return old;
}

uint64_t FreeSpace::file_end() const {
  port::MutexLock l(&mu_);
  return file_end_;
}

uint64_t FreeSpace::free_bytes() const {
  port::MutexLock l(&mu_);
  return free_bytes_;
}

size_t FreeSpace::extents() const {
  port::MutexLock l(&mu_);
  return by_offset_.size();
}

}  // namespace arenakv::tree
