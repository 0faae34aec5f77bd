// MemoryBudget: one memory limit shared by every database opened with it
// (Options::memory_budget), for a process that opens many databases (one
// per tenant) and wants one bound on all of them, not one per database.
//
// Each database keeps its own pool and arenas: Close() still gives that
// database's memory back at once, to the budget and to the operating
// system. When the budget is full, memory comes from where it is coldest
// first: the clean cache pages of the databases used least since the last
// time memory was short, then of busier ones, the asking database last.
// MemoryLimit only when nothing can be freed.
//
//   std::shared_ptr<arenakv::MemoryBudget> budget =
//       arenakv::MemoryBudget::Create(256 << 20);
//   arenakv::Options options;
//   options.memory_budget = budget;  // every database opened with it shares it
//
// Options::memory_budget_bytes still applies to each database on top.
//
// Thread safety: all methods may be called concurrently. The budget lives
// as long as the last database (or caller) holding it.
#ifndef ARENAKV_MEMORY_BUDGET_H_
#define ARENAKV_MEMORY_BUDGET_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "arenakv/status.h"

namespace arenakv {

// What one database holds of a MemoryBudget (MemoryBudget::GetDatabases).
struct BudgetDatabase {
  std::string path;  // as given to DB::Open
  size_t bytes = 0;  // what its pool has committed and charged
};

class MemoryBudget {
 public:
  // A budget of `capacity_bytes` (at least 1 MiB; less is raised to it).
  static std::shared_ptr<MemoryBudget> Create(size_t capacity_bytes);
  ~MemoryBudget();
  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  size_t capacity_bytes() const;
  // Memory the databases hold now (committed by their pools, and charged).
  size_t used_bytes() const;
  // The most used_bytes() has been.
  size_t peak_bytes() const;
  // Databases open with this budget now.
  size_t databases() const;
  // Those databases, in the order they opened, with what each holds of the
  // budget now. MemoryLimit (and *out left as it was) when the list finds
  // no memory.
  Status GetDatabases(std::vector<BudgetDatabase>* out) const;

  // Internal: the engine's view of the budget.
  struct Rep;
  Rep* rep() const { return rep_.get(); }

 private:
  explicit MemoryBudget(size_t capacity_bytes);
  std::unique_ptr<Rep> rep_;
};

}  // namespace arenakv

#endif  // ARENAKV_MEMORY_BUDGET_H_
