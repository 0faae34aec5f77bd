// The public headers show the contract only. arenakv/db.h comes first here,
// before anything that could bring the allocator's classes in, so that what
// it includes is what an embedder gets.
#include "arenakv/db.h"

#ifdef ARENAKV_ALLOC_ARENA_H_
#error "arenakv/db.h brings in the allocator's arena.h (its fast path and internals)"
#endif
#ifdef ARENAKV_ALLOC_SEGMENT_POOL_H_
#error "arenakv/db.h brings in the allocator's segment_pool.h"
#endif

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <type_traits>

#include "db_test_util.h"
#include "test_util.h"

namespace arenakv {
namespace {

// A snapshot comes only from DB::GetSnapshot(): ReadOptions hands it back
// to the engine, which relies on its own type.
struct UserSnapshot : Snapshot {
  uint64_t sequence() const override { return 0; }
};
static_assert(!std::is_default_constructible_v<UserSnapshot>,
              "a user can derive a Snapshot the engine would misread");

TEST(PublicHeadersTest, StatsAreCompleteWithDbHeaderAlone) {
  // DBStats, with the pool's and the arenas' statistics, is complete with
  // db.h alone: plain values.
  test::TempDir dir;
  {
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(Options{}, dir.Join("db"), &db));
    DBStats stats;
    ASSERT_OK(db->GetStats(&stats));
    EXPECT_GT(stats.pool.in_use_bytes, 0u);
    bool db_arena = false;
    for (const alloc::ArenaStats& a : stats.arenas) db_arena |= a.name == "db";
    EXPECT_TRUE(db_arena);
    ASSERT_OK(db->Close());
  }
  test::ExpectPoolsReleased();
}

}  // namespace
}  // namespace arenakv
