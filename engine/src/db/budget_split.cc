#include "db/budget_split.h"

#include <algorithm>
#include <string>

#include "arenakv/alloc/segment_pool.h"
#include "arenakv/memory_budget.h"

namespace arenakv {

namespace {
constexpr size_t kMinMemtableBudget = size_t{4} << 20;
}  // namespace

Status MemoryBudgetFor(const Options& o, size_t* budget, size_t* memtable_share) {
  const size_t own_default = o.memory_budget != nullptr ? o.memory_budget->capacity_bytes()
                                                        : 4 * o.cache_bytes + (size_t{512} << 20);
  *budget = o.memory_budget_bytes != 0 ? o.memory_budget_bytes : own_default;
  if (o.memory_budget != nullptr) *budget = std::min(*budget, o.memory_budget->capacity_bytes());
  const size_t minimum = o.cache_bytes + WorkingReserve(o.cache_bytes) + kMinMemtableBudget;
  if (*budget < minimum) {
    // Name the limit that binds: the shared budget's capacity when it is
    // the smaller one (or the only one).
    const bool shared = o.memory_budget != nullptr &&
                        (o.memory_budget_bytes == 0 || o.memory_budget_bytes >= *budget);
    return Status::InvalidArgument(
        std::string(shared ? "the shared memory budget's capacity of "
                           : "memory_budget_bytes of ") +
        alloc::FormatBytes(*budget) + " is below the minimum of " + alloc::FormatBytes(minimum) +
        " for a cache of " + alloc::FormatBytes(o.cache_bytes) +
        " (cache + 1/8 of it + 8 MiB): raise the budget or lower cache_bytes");
  }
  *memtable_share = *budget - o.cache_bytes - WorkingReserve(o.cache_bytes);
  return Status::OK();
}

}  // namespace arenakv
