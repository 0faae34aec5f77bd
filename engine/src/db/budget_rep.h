// MemoryBudget::Rep: the databases drawing from one shared budget, and the
// reclaim that frees memory among them when it is full.
//
// The budget itself is an alloc::SharedBudget every member's pool draws
// from. Reclaim asks members for memory as a clock does: from where the
// previous reclaim stopped, passing over once a member used since the hand
// last passed it (an activity counter each member supplies: cache reads and
// commits), the asking database last; each frees
// clean cache pages and gives its pool's free segments back to the OS. When
// that is not enough, the other members, in the same order, are asked to
// checkpoint their memtables in the background (a release): that memory
// comes back later, and a writer short of memory waits for the releases
// under way (AwaitRelease) before it gives up.
//
// Thread safety: all methods may be called concurrently. A member's
// callbacks run under its own mutex; Leave() takes it, so once Leave()
// returns no callback of that member is running or will run.
#ifndef ARENAKV_DB_BUDGET_REP_H_
#define ARENAKV_DB_BUDGET_REP_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
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
    std::string path;  // the database's, for GetDatabases
    // Frees up to `wanted` bytes of this database's memory (cache pages;
    // `trim`: its pool's free segments too); returns the bytes freed.
    std::function<size_t(size_t wanted, bool trim)> reclaim;
    // Moves whenever the database is used.
    std::function<uint64_t()> activity;
    // Starts a release (a checkpoint of the memtable, in the background) if
    // the database holds a memtable worth one and none is under way;
    // returns the bytes it should give back (0: none started). The
    // database calls ReleaseStarted() before it starts one and
    // ReleaseFinished() once it has ended.
    std::function<size_t()> release_memtable;
    uint64_t seen GUARDED_BY(mu) = 0;  // activity() at the previous reclaim
  };

  explicit Rep(size_t capacity);
  ~Rep();

  std::shared_ptr<Member> Join(const alloc::SegmentPool* pool, const std::string& path,
                               std::function<size_t(size_t, bool)> reclaim,
                               std::function<uint64_t()> activity,
                               std::function<size_t()> release_memtable);
  void Leave(const std::shared_ptr<Member>& member);
  size_t Reclaim(size_t wanted, const alloc::SegmentPool* asking);
  size_t databases() const;
  Status GetDatabases(std::vector<BudgetDatabase>* out) const;
  // Takes m->mu; without waiting (false when it is held) unless may_wait.
  static bool LockMember(Member* m, bool may_wait) TRY_ACQUIRE(true, m->mu);

  // A release begins; it ended, `freed` if it checkpointed a memtable (else
  // it could not run, or its checkpoint failed).
  void ReleaseStarted();
  void ReleaseFinished(bool freed);
  // The count of releases ended so far, for AwaitRelease.
  uint64_t ReleaseMark();
  // The count of those that freed memory: a checkpoint that failed for
  // memory before the last of them may succeed now.
  uint64_t FreedMark();
  // True at once if a release ended since `mark` was taken; else waits until
  // the releases under way now have ended (true), or returns false at once
  // when none is: there is nothing to wait for.
  bool AwaitRelease(uint64_t mark);

  const std::shared_ptr<alloc::SharedBudget> shared;

 private:
  mutable port::Mutex mu_;
  std::vector<std::shared_ptr<Member>> members_ GUARDED_BY(mu_);
  size_t hand_ GUARDED_BY(mu_) = 0;  // where the next reclaim starts (an index)
  port::Mutex release_mu_;
  port::CondVar release_cv_{&release_mu_};
  uint64_t releases_started_ GUARDED_BY(release_mu_) = 0;
  // Moved under release_mu_ (AwaitRelease waits on it); read without it
  // by the marks, which every commit and read under the budget takes.
  std::atomic<uint64_t> releases_finished_{0};
  std::atomic<uint64_t> releases_freed_{0};
};

}  // namespace arenakv

#endif  // ARENAKV_DB_BUDGET_REP_H_
