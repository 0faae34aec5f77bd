// What a database says about itself: the statistics report, named
// properties, and the approximate sizes of key ranges. All read state the
// database already keeps (counters, the tree's internal pages, the
// memtables' sorted runs); none scans the data.

#include <cinttypes>
#include <cstdio>
#include <string>

#include "arenakv/alloc/arena.h"
#include "db/db_impl.h"

namespace arenakv {

std::string DBImpl::StatsReport() {
  DBStats st;
  Status s = GetStats(&st);
  if (!s.ok()) return s.ToString() + "\n";
  using alloc::FormatBytes;
  std::string out;
  char line[256];
  auto add = [&](const char* fmt, auto... args) {
    std::snprintf(line, sizeof(line), fmt, args...);
    out += line;
  };
  add("pool %s: reserved %s, committed %s, in use %s, retained %s, handles %s, high water %s, "
      "budget %s\n",
      st.pool.name.c_str(), FormatBytes(st.pool.reserved_bytes).c_str(),
      FormatBytes(st.pool.committed_bytes).c_str(), FormatBytes(st.pool.in_use_bytes).c_str(),
      FormatBytes(st.pool.retained_bytes).c_str(), FormatBytes(st.pool.charged_bytes).c_str(),
      FormatBytes(st.pool.high_water_bytes).c_str(),
      st.pool.budget_bytes == SIZE_MAX ? "unlimited" : FormatBytes(st.pool.budget_bytes).c_str());
  add("cache: %s of %s in %zu pages (%zu pinned), %" PRIu64 " hits, %" PRIu64 " misses, %" PRIu64
      " evictions\n",
      FormatBytes(st.cache.used_bytes).c_str(), FormatBytes(st.cache.capacity_bytes).c_str(),
      st.cache.pages, st.cache.pinned_pages, st.cache.hits, st.cache.misses, st.cache.evictions);
  add("memtables: %s in %zu; open transactions %zu, snapshots %zu; last sequence %" PRIu64
      "; checkpoints %" PRIu64 " (%" PRIu64 " while recovering)\n",
      FormatBytes(st.memtable_bytes).c_str(), st.live_memtables, st.open_transactions,
      st.open_snapshots, st.last_sequence, st.checkpoints, st.recovery_checkpoints);
  add("writes: memtable share %s, %" PRIu64 " slowdowns, %" PRIu64
      " stalls, %.1f ms stalled, %" PRIu64 " refused for memory, %" PRIu64
      " checkpoints short of memory\n",
      FormatBytes(st.memtable_budget_bytes).c_str(), st.write_slowdowns, st.write_stalls,
      static_cast<double>(st.stall_micros) / 1000.0, st.memory_limit_errors,
      st.checkpoint_memory_failures);
  if (!st.recovery_cut.empty()) {
    add("recovery: cut a torn tail: %s\n", st.recovery_cut.c_str());
  }
  add("versions: %zu live, %zu tree roots, %zu old pages kept for readers, %s of key records "
      "kept for transactions\n",
      st.live_versions, st.live_tree_roots, st.retained_old_pages,
      FormatBytes(st.history_record_bytes).c_str());
  if (st.memtable_spills > 0 || st.spill_failures > 0) {
    add("spilled: %" PRIu64 " memtables held by readers, %s on disk now, %" PRIu64 " failed\n",
        st.memtable_spills, FormatBytes(st.spilled_bytes).c_str(), st.spill_failures);
  }
  out += "arenas:\n";
  for (const auto& a : st.arenas) {
    add("  %-28s %10s in %zu segments\n", a.name.c_str(), FormatBytes(a.bytes).c_str(), a.segments);
  }
  return out;
}

Status DBImpl::GetProperty(std::string_view name, std::string* value) {
  try {
    return PropertyOf(name, value);
  } catch (const std::bad_alloc&) {
    return Status::MemoryLimit("out of memory formatting a property");
  }
}

Status DBImpl::PropertyOf(std::string_view name, std::string* value) {
  DBStats st;
  Status s = GetStats(&st);
  if (!s.ok()) return s;
  // The tree's figures, read while no Close() can tear it down (GetStats
  // held the same lock, released again: not nested, so that a Close()
  // waiting for it cannot wedge between the two).
  uint64_t covered_sequence = 0, live_bytes = 0;
  {
    port::ReaderLock l(&rw_);
    if (closed_) return Status::Closed("database is closed");
    covered_sequence = tree_->meta().last_sequence;
    live_bytes = tree_->live_bytes();
  }
  using alloc::FormatBytes;
  auto number = [&](uint64_t n) {
    *value = std::to_string(n);
    return Status::OK();
  };
  char line[256];
  if (name == "arenakv.stats") {
    *value = StatsReport();
  } else if (name == "arenakv.memory") {
    std::snprintf(
        line, sizeof(line), "committed %s, in use %s, retained %s, high water %s, budget %s",
        FormatBytes(st.pool.committed_bytes).c_str(), FormatBytes(st.pool.in_use_bytes).c_str(),
        FormatBytes(st.pool.retained_bytes).c_str(), FormatBytes(st.pool.high_water_bytes).c_str(),
        st.pool.budget_bytes == SIZE_MAX ? "unlimited" : FormatBytes(st.pool.budget_bytes).c_str());
    *value = line;
  } else if (name == "arenakv.cache") {
    std::snprintf(
        line, sizeof(line),
        "%s of %s in %zu pages, %" PRIu64 " hits, %" PRIu64 " misses, %" PRIu64 " evictions",
        FormatBytes(st.cache.used_bytes).c_str(), FormatBytes(st.cache.capacity_bytes).c_str(),
        st.cache.pages, st.cache.hits, st.cache.misses, st.cache.evictions);
    *value = line;
  } else if (name == "arenakv.checkpoints") {
    std::snprintf(line, sizeof(line),
                  "%" PRIu64 " (%" PRIu64 " while recovering), covering up to sequence %" PRIu64,
                  st.checkpoints, st.recovery_checkpoints, covered_sequence);
    *value = line;
  } else if (name == "arenakv.approximate-keys") {
    return number(st.approximate_keys);
  } else if (name == "arenakv.memory-bytes") {
    return number(st.pool.committed_bytes + st.pool.charged_bytes);
  } else if (name == "arenakv.cache-bytes") {
    return number(st.cache.used_bytes);
  } else if (name == "arenakv.memtable-bytes") {
    return number(st.memtable_bytes);
  } else if (name == "arenakv.data-file-bytes") {
    return number(live_bytes);
  } else if (name == "arenakv.last-sequence") {
    return number(st.last_sequence);
  } else {
    return Status::NotFound("no property named " + std::string(name));
  }
  return Status::OK();
}

Status DBImpl::GetApproximateSizes(const Range* ranges, size_t n, uint64_t* sizes) {
  if (n > 0 && (ranges == nullptr || sizes == nullptr)) {
    return Status::InvalidArgument("GetApproximateSizes: null ranges or sizes");
  }
  if (read_closed_.load(std::memory_order_acquire)) return Status::Closed("database is closed");
  port::ReaderLock l(&rw_);
  if (closed_) return Status::Closed("database is closed");
  std::shared_ptr<Version> v;
  uint64_t seq;
  CurrentView(&v, &seq);
  const double tree_bytes = static_cast<double>(tree_->live_bytes());
  for (size_t i = 0; i < n; ++i) {
    const Range& r = ranges[i];
    sizes[i] = 0;
    if (order_.Compare(r.limit, r.start) <= 0) continue;
    double from = 0, to = 0;
    Status s = tree_->ApproximatePosition(v->tree->root(), r.start, &from);
    if (s.ok()) s = tree_->ApproximatePosition(v->tree->root(), r.limit, &to);
    if (!s.ok()) return s;
    uint64_t bytes = to > from ? static_cast<uint64_t>((to - from) * tree_bytes) : 0;
    bytes += v->mem->table->ApproximateBytesBetween(r.start, r.limit);
    for (const auto& m : v->imm) bytes += m->table->ApproximateBytesBetween(r.start, r.limit);
    sizes[i] = bytes;
  }
  return Status::OK();
}

}  // namespace arenakv
