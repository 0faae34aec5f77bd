// How a database's memory budget splits: the cache, a working reserve
// (checkpoint scratch, the pool's retained segments, write-path buffers,
// transactions) and the memtables' share. One place for DB::Open, which
// enforces it, and RepairDB, which sizes its writes by it.
//
// Thread safety: pure functions.
#ifndef ARENAKV_DB_BUDGET_SPLIT_H_
#define ARENAKV_DB_BUDGET_SPLIT_H_

#include <cstddef>

#include "arenakv/db.h"

namespace arenakv {

// Room the budget keeps besides the cache and the memtables.
inline size_t WorkingReserve(size_t cache_bytes) { return (size_t{4} << 20) + cache_bytes / 8; }

// The pool's budget and the memtables' share of it; InvalidArgument naming
// the minimum when the budget cannot hold the cache and a working memtable.
Status MemoryBudgetFor(const Options& o, size_t* budget, size_t* memtable_share);

}  // namespace arenakv

#endif  // ARENAKV_DB_BUDGET_SPLIT_H_
