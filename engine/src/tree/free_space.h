// FreeSpace: the extents of the data file that hold no live page, coalesced,
// and the logical end of the file.
//
// An extent is free when no page reachable from the latest durable meta block
// and no page of a root still held by a reader lies in it. The B+tree adds
// extents only when that holds: pages replaced by a checkpoint come back
// through ReleasePages (the DB calls it once no reader can reach them), pages
// of a failed checkpoint come back at once (no durable meta names them).
// A free extent that reaches the end of the file shortens the logical end
// instead, so new pages go to the lowest free offsets and the file stops
// growing once it holds about two copies of the tree.
//
// Writers take a "run" (the largest free extent, or the end of the file) and
// carve pages from it sequentially so that contiguous pages go out in one
// write.
//
// Thread safety: all methods are safe to call concurrently (internal mutex).
#ifndef ARENAKV_TREE_FREE_SPACE_H_
#define ARENAKV_TREE_FREE_SPACE_H_

#include <cstdint>
#include <map>
#include <memory_resource>
#include <set>
#include <utility>

#include "arenakv/alloc/recycling_resource.h"
#include "port/mutex.h"

namespace arenakv::tree {

class FreeSpace {
 public:
  // Node memory comes from `upstream` (an arena) through a pool resource.
  explicit FreeSpace(std::pmr::memory_resource* upstream);
  FreeSpace(const FreeSpace&) = delete;
  FreeSpace& operator=(const FreeSpace&) = delete;

  // Forgets every extent; the file's logical end becomes `file_end`.
  void Reset(uint64_t file_end);
  // Marks [offset, offset+length) free. Throws std::bad_alloc when the arena
  // is exhausted (the caller catches it at the API boundary).
  void Add(uint64_t offset, uint64_t length);

  // A region to carve pages from: the largest free extent if it holds at
  // least `min_length` bytes ([*begin, *end)), else the end of the file
  // (*at_end = true, *begin = the logical end; carve with ExtendEnd).
  void TakeRun(uint64_t min_length, uint64_t* begin, uint64_t* end, bool* at_end);
  // Advances the logical end by `length` and returns the old end.
  uint64_t ExtendEnd(uint64_t length);

  uint64_t file_end() const;
  uint64_t free_bytes() const;
  size_t extents() const;

 private:
  void AddLocked(uint64_t offset, uint64_t length) REQUIRES(mu_);
  void EraseLocked(std::pmr::map<uint64_t, uint64_t>::iterator it) REQUIRES(mu_);

  mutable port::Mutex mu_;
  alloc::RecyclingResource pool_ GUARDED_BY(mu_);
  std::pmr::map<uint64_t, uint64_t> by_offset_ GUARDED_BY(mu_);             // offset -> length
  std::pmr::set<std::pair<uint64_t, uint64_t>> by_length_ GUARDED_BY(mu_);  // (length, offset)
  uint64_t file_end_ GUARDED_BY(mu_) = 0;
  uint64_t free_bytes_ GUARDED_BY(mu_) = 0;
};

}  // namespace arenakv::tree

#endif  // ARENAKV_TREE_FREE_SPACE_H_
