// Database read-path micro-benchmarks: point reads (one and two threads) and
// a full iterator scan through the public API, on a database laid out like
// the RocksDB comparison's (16-byte decimal keys, 100-byte values, filled in
// random order, checkpointed, closed and reopened so the memtables are empty
// and the tree is cold at the start).
//
// ARENAKV_BENCH_KEYS sets the key count (default 300000).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "arenakv/db.h"

namespace arenakv {
namespace {

uint64_t Keys() {
  const char* k = std::getenv("ARENAKV_BENCH_KEYS");
  return k != nullptr && *k != '\0' ? std::strtoull(k, nullptr, 10) : 300000;
}

void FormatKey(uint64_t index, char* out) {
  for (int i = 15; i >= 0; --i) {
    out[i] = static_cast<char>('0' + index % 10);
    index /= 10;
  }
}

struct Fixture {
  Fixture() : keys(Keys()) {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/arenakv-dbbench-XXXXXX";
    dir = mkdtemp(tmpl.data());
    dir += "/db";
    Options o;
    o.cache_bytes = size_t{256} << 20;
    std::unique_ptr<DB> db;
    if (!DB::Open(o, dir, &db).ok()) std::abort();
    std::vector<uint64_t> order(keys);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937_64(7));
    char k[16];
    std::string v(100, 'v');
    for (uint64_t i : order) {
      FormatKey(i, k);
      v[0] = static_cast<char>('a' + i % 26);
      if (!db->Put(WriteOptions(), std::string_view(k, 16), v).ok()) std::abort();
    }
    if (!db->Close().ok()) std::abort();
    db.reset();
    if (!DB::Open(o, dir, &this->db).ok()) std::abort();
  }
  ~Fixture() {
    db->Close().IgnoreError();
    db.reset();
    std::filesystem::remove_all(std::filesystem::path(dir).parent_path());
  }
  const uint64_t keys;
  std::string dir;
  std::unique_ptr<DB> db;
};

Fixture& F() {
  static Fixture f;
  return f;
}

void BM_DBGetRandom(benchmark::State& state) {
  DB* db = F().db.get();
  const uint64_t n = F().keys;
  std::mt19937_64 rng(state.thread_index() + 1);
  char k[16];
  std::string v;
  uint64_t missing = 0;
  for (auto _ : state) {
    FormatKey(rng() % n, k);
    if (!db->Get(ReadOptions(), std::string_view(k, 16), &v).ok()) ++missing;
    benchmark::DoNotOptimize(v.data());
  }
  if (missing != 0) state.SkipWithError("a key was not found");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DBGetRandom)->ThreadRange(1, 2)->UseRealTime();

void BM_DBScan(benchmark::State& state) {
  DB* db = F().db.get();
  uint64_t items = 0;
  for (auto _ : state) {
    std::unique_ptr<Iterator> it = db->NewIterator(ReadOptions());
    uint64_t n = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      benchmark::DoNotOptimize(it->key().data());
      benchmark::DoNotOptimize(it->value().data());
      ++n;
    }
    if (n != F().keys) state.SkipWithError("scan saw the wrong number of keys");
    items += n;
  }
  state.SetItemsProcessed(static_cast<int64_t>(items));
}
BENCHMARK(BM_DBScan)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace arenakv

BENCHMARK_MAIN();
