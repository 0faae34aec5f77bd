// MemTable micro-benchmarks: inserts (random and sequential keys), point
// reads and scans at 1M entries, with 16-byte keys and 100-byte values.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "arenakv/alloc/arena.h"
#include "arenakv/alloc/segment_pool.h"
#include "mem/memtable.h"

namespace arenakv::mem {
namespace {

constexpr size_t kKeyBytes = 16;
constexpr size_t kValueBytes = 100;

std::string KeyOf(uint64_t n) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%016llu", static_cast<unsigned long long>(n));
  return std::string(buf, kKeyBytes);
}

// Key i of a table of n entries, in random or sequential insertion order.
std::vector<std::string> MakeKeys(size_t n, bool random) {
  std::vector<uint64_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = i * 7919;  // spread, still unique
  if (random) std::shuffle(ids.begin(), ids.end(), std::mt19937_64(301));
  std::vector<std::string> keys;
  keys.reserve(n);
  for (uint64_t id : ids) keys.push_back(KeyOf(id));
  return keys;
}

void Check(const Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "memtable_bench: %s\n", s.ToString().c_str());
    std::abort();
  }
}

struct Env {
  std::shared_ptr<alloc::SegmentPool> pool;
  std::unique_ptr<alloc::Arena> db;
  Env() {
    Check(alloc::SegmentPool::Create({}, &pool));
    Check(alloc::Arena::Create(pool, {.name = "db", .kind = alloc::ArenaKind::kShared}, &db));
  }
  ~Env() {
    db.reset();
    pool->Close().IgnoreError();
  }
};

// Fills tables of range(0) entries over and over; each Add is one item.
void Insert(benchmark::State& state, bool random) {
  const size_t n = static_cast<size_t>(state.range(0));
  const std::vector<std::string> keys = MakeKeys(n, random);
  const size_t value_bytes = state.range(1);
  const std::string value(value_bytes, 'v');
  Env env;
  std::unique_ptr<MemTable> table;
  uint64_t id = 0;
  Check(MemTable::Create(env.db.get(), ++id, &table));
  size_t i = 0;
  for (auto _ : state) {
    if (i == n) {
      state.PauseTiming();
      table.reset();
      Check(MemTable::Create(env.db.get(), ++id, &table));
      i = 0;
      state.ResumeTiming();
    }
    Check(table->Add(i + 1, ValueType::kValue, keys[i], value));
    ++i;
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * (kKeyBytes + value_bytes));
}

void BM_InsertRandom(benchmark::State& state) { Insert(state, true); }
void BM_InsertSequential(benchmark::State& state) { Insert(state, false); }
// Args: entries per table, value bytes.
BENCHMARK(BM_InsertRandom)
    ->Args({100000, kValueBytes})
    ->Args({1000000, kValueBytes})
    ->Args({1000000, 8});
BENCHMARK(BM_InsertSequential)->Args({1000000, kValueBytes});

// One table of 1M random entries shared by the read benchmarks.
struct Filled {
  Env env;
  std::unique_ptr<MemTable> table;
  std::vector<std::string> keys;
  explicit Filled(size_t n) : keys(MakeKeys(n, true)) {
    Check(MemTable::Create(env.db.get(), 1, &table));
    const std::string value(kValueBytes, 'v');
    for (size_t i = 0; i < n; ++i) Check(table->Add(i + 1, ValueType::kValue, keys[i], value));
    // Lookups in another random order than the insertion.
    std::shuffle(keys.begin(), keys.end(), std::mt19937_64(7));
  }
};

Filled* Table1M() {
  static Filled filled(1000000);  // built once, on first use
  return &filled;
}

Filled* Table100K() {
  static Filled filled(100000);
  return &filled;
}

void BM_GetHit(benchmark::State& state) {
  Filled* f = state.range(0) == 1000000 ? Table1M() : Table100K();
  std::string value;
  bool deleted = false;
  size_t i = 0;
  for (auto _ : state) {
    bool found = f->table->Get(f->keys[i], kMaxSequence, &value, &deleted, nullptr);
    benchmark::DoNotOptimize(found);
    if (++i == f->keys.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GetHit)->Arg(100000)->Arg(1000000);

void BM_GetMiss(benchmark::State& state) {
  Filled* f = Table1M();
  std::vector<std::string> misses;
  for (size_t i = 0; i < 100000; ++i) misses.push_back(KeyOf(i * 7919 + 1));
  std::shuffle(misses.begin(), misses.end(), std::mt19937_64(9));
  size_t i = 0;
  for (auto _ : state) {
    bool found = f->table->Get(misses[i], kMaxSequence, nullptr, nullptr, nullptr);
    benchmark::DoNotOptimize(found);
    if (++i == misses.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GetMiss);

void BM_IterateNext(benchmark::State& state) {
  Filled* f = Table1M();
  auto it = f->table->NewIterator(kMaxSequence);
  it->SeekToFirst();
  for (auto _ : state) {
    if (!it->Valid()) it->SeekToFirst();
    benchmark::DoNotOptimize(it->key().data());
    it->Next();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_IterateNext);

void BM_IteratePrev(benchmark::State& state) {
  Filled* f = Table1M();
  auto it = f->table->NewIterator(kMaxSequence);
  it->SeekToLast();
  for (auto _ : state) {
    if (!it->Valid()) it->SeekToLast();
    benchmark::DoNotOptimize(it->key().data());
    it->Prev();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_IteratePrev);

}  // namespace
}  // namespace arenakv::mem

BENCHMARK_MAIN();
