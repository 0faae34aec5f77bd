// What a SegmentPool and an Arena report about themselves: plain value
// types, kept apart from the allocator's classes so that a header showing
// statistics (arenakv/db.h's DBStats) does not bring the allocation fast
// path and its internals into every embedder.
//
// Thread safety: plain values; copies are independent.

#ifndef ARENAKV_ALLOC_STATS_H_
#define ARENAKV_ALLOC_STATS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace arenakv::alloc {

struct ClassStats {
  size_t class_bytes = 0;
  size_t in_use_segments = 0;
  size_t free_segments = 0;  // retained + released-to-OS slots on free lists
};

struct PoolStats {
  std::string name;
  size_t reserved_bytes = 0;    // address space mapped (regions + dedicated)
  size_t committed_bytes = 0;   // in use + retained + dedicated
  size_t charged_bytes = 0;     // held outside the pool, counted against its budget (Charge)
  size_t in_use_bytes = 0;      // segments currently handed out (spilled ones too)
  size_t spilled_bytes = 0;     // handed out, moved to disk (Arena::Spill): not committed
  size_t retained_bytes = 0;    // free segments still backed by memory
  size_t recycled_bytes = 0;    // of those, kept for recycling arenas (SetRecycleBytes)
  size_t dedicated_bytes = 0;   // oversized requests, mapped one by one
  size_t high_water_bytes = 0;  // peak committed_bytes + charged_bytes
  size_t budget_bytes = 0;
  uint64_t mmap_calls = 0;
  uint64_t munmap_calls = 0;
  uint64_t madvise_calls = 0;
  uint64_t reclaim_calls = 0;
  uint64_t limit_failures = 0;
  size_t open_arenas = 0;
  std::vector<ClassStats> classes;
};

struct ArenaStats {
  std::string name;
  size_t bytes = 0;          // segment bytes owned in memory (blocks + whole segments)
  size_t spilled_bytes = 0;  // segment bytes owned and moved out (Spill)
  size_t used_bytes = 0;     // bytes handed out by bump allocation
  size_t segments = 0;       // segments owned
  size_t limit_bytes = 0;
  size_t children = 0;
  bool closed = false;
};

// Totals over every pool alive in this process; a test's proof that a closed
// database left nothing mapped behind.
struct ProcessPoolStats {
  size_t live_pools = 0;
  size_t mapped_bytes = 0;
  size_t in_use_bytes = 0;
};
ProcessPoolStats GetProcessPoolStats();

}  // namespace arenakv::alloc

#endif  // ARENAKV_ALLOC_STATS_H_
