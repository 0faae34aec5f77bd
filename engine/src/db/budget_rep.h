// MemoryBudget::Rep: the databases drawing from one shared budget, and the
// reclaim that frees memory among them when it is full.
//
// The budget itself is an alloc::SharedBudget every member's pool draws
// from. Reclaim asks members for memory in order of how little they were
// used since the previous reclaim (an activity counter each member
// supplies: cache reads and commits), the asking database last; each frees
// clean cache pages and gives its pool's free segments back to the OS.
//
// Thread safety: all methods may be called concurrently. A member's
// callbacks run under its own mutex; Leave() takes it, so once Leave()
// returns no callback of that member is running or will run.
#ifndef ARENAKV_DB_BUDGET_REP_H_
#define ARENAKV_DB_BUDGET_REP_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "arenakv/alloc/segment_pool.h"
#include "arenakv/alloc/shared_budget.h"
#include "arenakv/memory_budget.h"
#include "port/mutex.h"

namespace arenakv {

struct MemoryBudget::Rep {
  struct Member {
    port::Mutex mu;
    bool alive GUARDED_BY(mu) = true;
    const alloc::SegmentPool* pool = nullptr;
    // Frees up to `wanted` bytes of this database's memory (cache pages;
    // `trim`: its pool's free segments too); returns the bytes freed.
    std::function<size_t(size_t wanted, bool trim)> reclaim;
    // Moves whenever the database is used.
    std::function<uint64_t()> activity;
    uint64_t seen GUARDED_BY(mu) = 0;  // activity() at the previous reclaim
  };

  explicit Rep(size_t capacity);
  ~Rep();

  std::shared_ptr<Member> Join(const alloc::SegmentPool* pool,
                               std::function<size_t(size_t, bool)> reclaim,
                               std::function<uint64_t()> activity);
  void Leave(const std::shared_ptr<Member>& member);
  size_t Reclaim(size_t wanted, const alloc::SegmentPool* asking);
  size_t databases() const;
  // Takes m->mu; without waiting (false when it is held) unless may_wait.
  static bool LockMember(Member* m, bool may_wait) TRY_ACQUIRE(true, m->mu);

  const std::shared_ptr<alloc::SharedBudget> shared;

 private:
  mutable port::Mutex mu_;
  std::vector<std::shared_ptr<Member>> members_ GUARDED_BY(mu_);
};

}  // namespace arenakv

#endif  // ARENAKV_DB_BUDGET_REP_H_
