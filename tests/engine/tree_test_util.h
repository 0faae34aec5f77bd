// Helpers for the B+tree tests: a pool + database arena that checks the
// process's pool accounting is back to zero when it goes away, and (from
// vector_changes.h) an InternalIterator over a sorted vector of changes.
#ifndef ARENAKV_TESTS_ENGINE_TREE_TEST_UTIL_H_
#define ARENAKV_TESTS_ENGINE_TREE_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "arenakv/alloc/arena.h"
#include "arenakv/alloc/segment_pool.h"
#include "test_util.h"
#include "vector_changes.h"

namespace arenakv::test {

// A pool and a shared "db" arena. Close() (or the destructor) closes both and
// checks that nothing stays mapped in the process.
class TreeArena {
 public:
  explicit TreeArena(alloc::PoolOptions po = {}) {
    EXPECT_OK(alloc::SegmentPool::Create(po, &pool_));
    EXPECT_OK(
        alloc::Arena::Create(pool_, {.name = "db", .kind = alloc::ArenaKind::kShared}, &arena_));
  }
  ~TreeArena() { Close(); }
  alloc::Arena* arena() { return arena_.get(); }
  alloc::SegmentPool* pool() { return pool_.get(); }
  void Close() {
    if (pool_ == nullptr) return;
    arena_.reset();
    EXPECT_OK(pool_->Close());
    pool_.reset();
    alloc::ProcessPoolStats ps = alloc::GetProcessPoolStats();
    EXPECT_EQ(ps.mapped_bytes, 0u);
    EXPECT_EQ(ps.live_pools, 0u);
  }

 private:
  std::shared_ptr<alloc::SegmentPool> pool_;
  std::unique_ptr<alloc::Arena> arena_;
};

}  // namespace arenakv::test

#endif  // ARENAKV_TESTS_ENGINE_TREE_TEST_UTIL_H_
