// Observability: pool statistics, reports, leak reports, and the process-wide
// totals that prove a closed database left nothing mapped behind.

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <string>

#include "arenakv/alloc/segment_pool.h"
#include "pool_core.h"
#include "port/mutex.h"

namespace arenakv::alloc {
namespace internal {
namespace {

std::atomic<size_t> g_live_pools{0};
std::atomic<size_t> g_mapped_bytes{0};

// Registry of open pools, walked only by GetProcessPoolStats() to sum bytes in
// use; keeping that sum off the allocation hot path costs nothing there.
port::Mutex* RegistryMutex() {
  static port::Mutex mu;
  return &mu;
}
PoolCore* g_registry_head = nullptr;  // guarded by RegistryMutex()

void AppendArena(const ArenaCore* a, std::string* out, int depth) {
  if (!a->closed.load(std::memory_order_acquire)) {
    if (!out->empty()) *out += ", ";
    *out += "'" + a->options.name + "' (" + FormatBytes(a->bytes.load(std::memory_order_relaxed)) +
            " in " + std::to_string(a->segments.load(std::memory_order_relaxed)) + " segment(s)";
    if (depth > 0) *out += ", nested";
    *out += ")";
  }
  for (const ArenaCore* c = a->first_child; c != nullptr; c = c->next) {
    AppendArena(c, out, depth + 1);
  }
}

void AppendTree(const ArenaCore* a, std::string* out, int depth) {
  *out += std::string(2 + 2 * depth, ' ') + "arena '" + a->options.name + "' " +
          (a->shared ? "shared" : "confined") + ": " +
          FormatBytes(a->bytes.load(std::memory_order_relaxed)) + " in " +
          std::to_string(a->segments.load(std::memory_order_relaxed)) + " segment(s), " +
          FormatBytes(a->bump->used.load(std::memory_order_relaxed)) + " bump-allocated" +
          (a->closed.load(std::memory_order_acquire) ? " (closed)" : "") + "\n";
  for (const ArenaCore* c = a->first_child; c != nullptr; c = c->next) {
    AppendTree(c, out, depth + 1);
  }
}

}  // namespace

void RegisterPool(PoolCore* pool) {
  port::MutexLock l(RegistryMutex());
  pool->registry_prev = nullptr;
  pool->registry_next = g_registry_head;
  if (g_registry_head != nullptr) g_registry_head->registry_prev = pool;
  g_registry_head = pool;
  pool->registered = true;
  g_live_pools.fetch_add(1, std::memory_order_relaxed);
}

void UnregisterPool(PoolCore* pool) {
  port::MutexLock l(RegistryMutex());
  if (!pool->registered) return;
  pool->registered = false;
  if (pool->registry_prev != nullptr) {
    pool->registry_prev->registry_next = pool->registry_next;
  } else {
    g_registry_head = pool->registry_next;
  }
  if (pool->registry_next != nullptr) pool->registry_next->registry_prev = pool->registry_prev;
  pool->registry_prev = pool->registry_next = nullptr;
  g_live_pools.fetch_sub(1, std::memory_order_relaxed);
}

void AddMappedBytes(size_t bytes) { g_mapped_bytes.fetch_add(bytes, std::memory_order_relaxed); }
void SubMappedBytes(size_t bytes) { g_mapped_bytes.fetch_sub(bytes, std::memory_order_relaxed); }

size_t PoolCore::InUseBytes() const {
  size_t bytes = dedicated_.load(std::memory_order_relaxed);
  port::MutexLock ml(MagazineMutex());
  for (int c = 0; c < total_classes_; ++c) {
    const size_t cached = CachedSegmentsLocked(c);
    SpinLockGuard l(&classes_[c].mu);
    if (classes_[c].in_use > cached) bytes += (classes_[c].in_use - cached) * classes_[c].bytes;
  }
  return bytes;
}

PoolStats PoolCore::Stats() const {
  PoolStats st;
  st.name = opt_.name;
  st.budget_bytes = opt_.budget_bytes;
  st.classes.reserve(num_classes_);
  size_t in_use = 0;
  size_t retained = 0;
  for (int c = 0; c < num_classes_; ++c) {
    port::MutexLock ml(MagazineMutex());
    ClassStats cst;
    {
      // Segments in threads' magazines are free (and retained), though the
      // class lists count them as handed out.
      const size_t cached = CachedSegmentsLocked(c);
      SpinLockGuard l(&classes_[c].mu);
      const size_t in_use = classes_[c].in_use > cached ? classes_[c].in_use - cached : 0;
      cst.class_bytes = classes_[c].bytes;
      cst.in_use_segments = in_use;
      cst.free_segments =
          classes_[c].retained + classes_[c].released + (classes_[c].in_use - in_use);
      retained += (classes_[c].retained + classes_[c].in_use - in_use) * classes_[c].bytes;
    }
    if (huge_class_offset_ != 0) {
      // The huge-page twin is reported with its size class (never cached).
      ClassState& twin = classes_[c + huge_class_offset_];
      SpinLockGuard l(&twin.mu);
      cst.in_use_segments += twin.in_use;
      cst.free_segments += twin.retained + twin.released;
      retained += twin.retained * twin.bytes;
    }
    in_use += cst.in_use_segments * cst.class_bytes;
    st.classes.push_back(cst);
  }
  st.dedicated_bytes = dedicated_.load(std::memory_order_relaxed);
  st.in_use_bytes = in_use + st.dedicated_bytes;
  st.retained_bytes = retained;
  st.recycled_bytes = std::min(retained, recycled_.load(std::memory_order_relaxed));
  st.charged_bytes = charged_.load(std::memory_order_relaxed);
  st.spilled_bytes = spilled_.load(std::memory_order_relaxed);
  const size_t committed = committed_.load(std::memory_order_relaxed);  // charges included
  st.committed_bytes = committed > st.charged_bytes ? committed - st.charged_bytes : 0;
  st.reserved_bytes = reserved_.load(std::memory_order_relaxed);
  st.high_water_bytes = high_water_.load(std::memory_order_relaxed);
  st.mmap_calls = mmap_calls_.load(std::memory_order_relaxed);
  st.munmap_calls = munmap_calls_.load(std::memory_order_relaxed);
  st.madvise_calls = madvise_calls_.load(std::memory_order_relaxed);
  st.reclaim_calls = reclaim_calls_.load(std::memory_order_relaxed);
  st.limit_failures = limit_failures_.load(std::memory_order_relaxed);
  {
    port::MutexLock l(&tree_mu);
    st.open_arenas = open_arenas;
  }
  return st;
}

std::string PoolCore::Report() const {
  const PoolStats st = Stats();
  std::string out = "pool '" + st.name + "'" + (closed() ? " (closed)" : "") + "\n";
  out += "  reserved " + FormatBytes(st.reserved_bytes) + ", committed " +
         FormatBytes(st.committed_bytes) + " (high water " + FormatBytes(st.high_water_bytes) +
         "), budget " +
         (st.budget_bytes == SIZE_MAX ? std::string("unlimited") : FormatBytes(st.budget_bytes)) +
         "\n";
  out += "  in use " + FormatBytes(st.in_use_bytes) + ", retained " +
         FormatBytes(st.retained_bytes) + " (recycled " + FormatBytes(st.recycled_bytes) +
         "), dedicated " + FormatBytes(st.dedicated_bytes) + ", charged " +
         FormatBytes(st.charged_bytes) + ", spilled " + FormatBytes(st.spilled_bytes) + "\n";
  out += "  calls: mmap " + std::to_string(st.mmap_calls) + ", munmap " +
         std::to_string(st.munmap_calls) + ", madvise " + std::to_string(st.madvise_calls) +
         ", reclaim " + std::to_string(st.reclaim_calls) + ", limit failures " +
         std::to_string(st.limit_failures) + "\n";
  for (const ClassStats& c : st.classes) {
    if (c.in_use_segments == 0 && c.free_segments == 0) continue;
    out += "  class " + FormatBytes(c.class_bytes) + ": " + std::to_string(c.in_use_segments) +
           " in use, " + std::to_string(c.free_segments) + " free\n";
  }
  out += "  open arenas: " + std::to_string(st.open_arenas) + "\n";
  port::MutexLock l(&tree_mu);
  for (const ArenaCore* a = roots; a != nullptr; a = a->next) AppendTree(a, &out, 0);
  return out;
}

std::string PoolCore::LeakReportLocked() const {
  std::string names;
  for (const ArenaCore* a = roots; a != nullptr; a = a->next) AppendArena(a, &names, 0);
  if (names.empty()) return "";
  return "pool '" + opt_.name + "' has " + std::to_string(open_arenas) +
         " arena(s) still open: " + names;
}

std::string PoolCore::LeakReport() const {
  port::MutexLock l(&tree_mu);
  return LeakReportLocked();
}

}  // namespace internal

ProcessPoolStats GetProcessPoolStats() {
  ProcessPoolStats st;
  port::MutexLock l(internal::RegistryMutex());
  for (internal::PoolCore* p = internal::g_registry_head; p != nullptr; p = p->registry_next) {
    st.in_use_bytes += p->InUseBytes();
  }
  st.live_pools = internal::g_live_pools.load(std::memory_order_relaxed);
  st.mapped_bytes = internal::g_mapped_bytes.load(std::memory_order_relaxed);
  return st;
}

std::string FormatBytes(size_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024.0 && unit < 6) {
    v /= 1024.0;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f %s", v, kUnits[unit]);
  return buf;
}

}  // namespace arenakv::alloc
