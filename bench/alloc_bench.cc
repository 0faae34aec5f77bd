// Allocator micro-benchmarks: pooled segments against glibc malloc/free and
// raw mmap/munmap, arena bump allocation against malloc, arena close against
// free(), and two-thread scaling of the pool's hot path.
//
// Like is compared with like: each pair requests the same sizes, checks the
// result the same way, writes the memory it got the same way (first byte of
// a segment, first byte of a small object) and hides the pointer from the
// optimizer with DoNotOptimize, so neither side can be elided. And both
// sides keep freed memory for reuse: a pool retains released segments (up to
// retain_bytes), and glibc is told to do the same (no trimming of the heap top,
// blocks up to 32 MiB from the heap). With its defaults glibc's thresholds
// move with the process's history, and in a fresh process free() trims the
// heap and the next malloc() faults the pages in again, which made malloc up
// to 25x slower in these loops depending on what ran before.
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "arenakv/alloc/arena.h"
#include "arenakv/alloc/segment_pool.h"

namespace {

// glibc keeps freed memory, like a pool's retained segments (see above).
const bool g_malloc_retains = [] {
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  return true;
}();

using arenakv::alloc::Arena;
using arenakv::alloc::ArenaKind;
using arenakv::alloc::ArenaOptions;
using arenakv::alloc::PoolOptions;
using arenakv::alloc::Segment;
using arenakv::alloc::SegmentPool;

std::shared_ptr<SegmentPool> NewPool() {
  std::shared_ptr<SegmentPool> pool;
  if (!SegmentPool::Create(PoolOptions(), &pool).ok()) std::abort();
  return pool;
}

std::unique_ptr<Arena> NewArena(const std::shared_ptr<SegmentPool>& pool,
                                ArenaKind kind = ArenaKind::kConfined) {
  ArenaOptions options;
  options.kind = kind;
  std::unique_ptr<Arena> arena;
  if (!Arena::Create(pool, options, &arena).ok()) std::abort();
  return arena;
}

// One allocate + release of a segment; the first byte is written so that
// every contender pays for a usable block.
void BM_PoolSegment(benchmark::State& state) {
  auto pool = NewPool();
  const size_t bytes = state.range(0);
  for (auto _ : state) {
    Segment s;
    if (!pool->Allocate(bytes, &s).ok()) std::abort();
    s.data[0] = 1;
    benchmark::DoNotOptimize(s.data);
    if (!pool->Release(s).ok()) std::abort();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PoolSegment)->RangeMultiplier(8)->Range(4 << 10, 2 << 20);

// The cost the retained pool avoids: retain_bytes = 0 gives every released
// segment's pages back at once (one madvise per release, and a page fault
// when the memory is touched again).
void BM_PoolSegmentMadviseEachRelease(benchmark::State& state) {
  PoolOptions o;
  o.retain_bytes = 0;
  std::shared_ptr<SegmentPool> pool;
  if (!SegmentPool::Create(o, &pool).ok()) std::abort();
  const size_t bytes = state.range(0);
  for (auto _ : state) {
    Segment s;
    if (!pool->Allocate(bytes, &s).ok()) std::abort();
    s.data[0] = 1;
    benchmark::DoNotOptimize(s.data);
    if (!pool->Release(s).ok()) std::abort();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PoolSegmentMadviseEachRelease)->Arg(4 << 10)->Arg(64 << 10);

void BM_Malloc(benchmark::State& state) {
  const size_t bytes = state.range(0);
  for (auto _ : state) {
    char* p = static_cast<char*>(std::malloc(bytes));
    if (p == nullptr) std::abort();
    p[0] = 1;
    benchmark::DoNotOptimize(p);
    std::free(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Malloc)->RangeMultiplier(8)->Range(4 << 10, 2 << 20);

void BM_Mmap(benchmark::State& state) {
  const size_t bytes = state.range(0);
  for (auto _ : state) {
    char* p = static_cast<char*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
    p[0] = 1;
    benchmark::DoNotOptimize(p);
    munmap(p, bytes);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Mmap)->RangeMultiplier(8)->Range(4 << 10, 2 << 20);

// Small objects: 10,000 allocations of 16..136 bytes per iteration, each
// object's first byte written. The arena is created inside the timed region
// (its first block is part of its cost); its close and malloc's frees are not
// timed. Arg 0: a confined arena, 1: a shared one (the kind the engine uses).
constexpr int kSmallObjects = 10000;
size_t SmallSize(int i) { return 16 + (i * 8) % 128; }

void BM_ArenaSmallAlloc(benchmark::State& state) {
  auto pool = NewPool();
  const ArenaKind kind = state.range(0) == 0 ? ArenaKind::kConfined : ArenaKind::kShared;
  for (auto _ : state) {
    auto arena = NewArena(pool, kind);
    for (int i = 0; i < kSmallObjects; ++i) {
      void* p;
      if (!arena->Allocate(SmallSize(i), 8, &p).ok()) std::abort();
      static_cast<char*>(p)[0] = 1;
      benchmark::DoNotOptimize(p);
    }
    state.PauseTiming();
    arena.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * kSmallObjects);
}
BENCHMARK(BM_ArenaSmallAlloc)->Arg(0)->Arg(1);

void BM_MallocSmallAlloc(benchmark::State& state) {
  std::vector<void*> ptrs(kSmallObjects);
  for (auto _ : state) {
    for (int i = 0; i < kSmallObjects; ++i) {
      void* p = std::malloc(SmallSize(i));
      if (p == nullptr) std::abort();
      static_cast<char*>(p)[0] = 1;
      benchmark::DoNotOptimize(p);
      ptrs[i] = p;
    }
    state.PauseTiming();
    for (void* p : ptrs) std::free(p);
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * kSmallObjects);
}
BENCHMARK(BM_MallocSmallAlloc);

// Tear-down: closing an arena that holds 1,000 segments against 1,000 free()
// calls of the same sizes.
constexpr int kTeardownSegments = 1000;

void BM_ArenaClose1000(benchmark::State& state) {
  auto pool = NewPool();
  const size_t bytes = state.range(0);
  for (auto _ : state) {
    state.PauseTiming();
    auto arena = NewArena(pool);
    for (int i = 0; i < kTeardownSegments; ++i) {
      Segment s;
      if (!arena->AllocateSegment(bytes, &s).ok()) std::abort();
      s.data[0] = 1;
    }
    state.ResumeTiming();
    arena->Close();
    state.PauseTiming();
    arena.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * kTeardownSegments);
}
BENCHMARK(BM_ArenaClose1000)->Arg(4 << 10)->Arg(16 << 10);

void BM_Free1000(benchmark::State& state) {
  const size_t bytes = state.range(0);
  std::vector<char*> ptrs(kTeardownSegments);
  for (auto _ : state) {
    state.PauseTiming();
    for (auto& p : ptrs) {
      p = static_cast<char*>(std::malloc(bytes));
      p[0] = 1;
    }
    state.ResumeTiming();
    for (char* p : ptrs) std::free(p);
  }
  state.SetItemsProcessed(state.iterations() * kTeardownSegments);
}
BENCHMARK(BM_Free1000)->Arg(4 << 10)->Arg(16 << 10);

// Two threads on one pool (same class) against two threads on malloc.
std::shared_ptr<SegmentPool> g_shared_pool;

void BM_PoolSegmentThreads(benchmark::State& state) {
  if (state.thread_index() == 0) g_shared_pool = NewPool();
  // Google Benchmark syncs threads before the timed loop.
  for (auto _ : state) {
    Segment s;
    if (!g_shared_pool->Allocate(16 << 10, &s).ok()) std::abort();
    s.data[0] = 1;
    benchmark::DoNotOptimize(s.data);
    if (!g_shared_pool->Release(s).ok()) std::abort();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PoolSegmentThreads)->Threads(1)->Threads(2)->UseRealTime();

void BM_MallocThreads(benchmark::State& state) {
  for (auto _ : state) {
    char* p = static_cast<char*>(std::malloc(16 << 10));
    if (p == nullptr) std::abort();
    p[0] = 1;
    benchmark::DoNotOptimize(p);
    std::free(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MallocThreads)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
