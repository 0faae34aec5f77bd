// B+tree micro-benchmarks: Get on a fully cached tree of 1M keys (the read hit
// path: cache lookup + pin per level, binary search in place), a full
// iterator scan, a bare page-cache lookup (pinned, and peeked inside a read
// epoch section, from one and two threads), and a checkpoint applying 100K
// sorted random changes to the 1M-key tree.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "arenakv/alloc/arena.h"
#include "arenakv/env.h"
#include "tree/btree.h"
#include "tree/read_epoch.h"
#include "util/internal_iterator.h"

namespace arenakv::tree {
namespace {

constexpr int kKeys = 1000000;

std::string Key(uint64_t i) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "key%013llu", static_cast<unsigned long long>(i));
  return buf;
}

class SortedChanges final : public InternalIterator {
 public:
  explicit SortedChanges(std::vector<std::pair<std::string, std::string>> e) : e_(std::move(e)) {}
  bool Valid() const override { return i_ < e_.size(); }
  void SeekToFirst() override { i_ = 0; }
  void SeekToLast() override { i_ = e_.size() - 1; }
  void Seek(std::string_view) override { i_ = 0; }
  void Next() override { ++i_; }
  void Prev() override { --i_; }
  std::string_view key() const override { return e_[i_].first; }
  std::string_view value() const override { return e_[i_].second; }
  bool is_tombstone() const override { return false; }
  Status status() const override { return Status::OK(); }

 private:
  std::vector<std::pair<std::string, std::string>> e_;
  size_t i_ = 0;
};

// One 1M-key tree shared by the benchmarks (built once, in a temp dir).
struct Fixture {
  Fixture() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/arenakv-bench-XXXXXX";
    dir = mkdtemp(tmpl.data());
    if (!alloc::SegmentPool::Create({}, &pool).ok() ||
        !alloc::Arena::Create(pool, {.name = "db", .kind = alloc::ArenaKind::kShared}, &arena)
             .ok()) {
      std::abort();
    }
    TreeOptions o;
    o.cache_bytes = size_t{512} << 20;
    env = Env::Default();
    if (!BTree::Open(env.get(), dir + "/data.akv", true, o, arena.get(), &tree).ok()) std::abort();
    std::vector<std::pair<std::string, std::string>> e;
    e.reserve(kKeys);
    for (int i = 0; i < kKeys; ++i) e.emplace_back(Key(i), std::string(100, 'a' + i % 26));
    SortedChanges ch(std::move(e));
    CheckpointResult r;
    auto start = std::chrono::steady_clock::now();
    if (!tree->Checkpoint(&ch, 1, 1, &r).ok()) std::abort();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "load: 1M keys in %.2f s, %llu pages, %llu writes, file %.1f MiB\n", s,
                 static_cast<unsigned long long>(r.pages_written),
                 static_cast<unsigned long long>(r.writes), tree->file_bytes() / 1048576.0);
  }
  ~Fixture() {
    tree->Close().IgnoreError();
    tree.reset();
    arena.reset();
    pool->Close().IgnoreError();
    std::filesystem::remove_all(dir);
  }
  std::string dir;
  std::shared_ptr<Env> env;
  std::shared_ptr<alloc::SegmentPool> pool;
  std::unique_ptr<alloc::Arena> arena;
  std::unique_ptr<BTree> tree;
};

Fixture& F() {
  static Fixture f;
  return f;
}

void BM_GetCachedHit(benchmark::State& state) {
  BTree* tree = F().tree.get();
  uint64_t root = tree->meta().root;
  std::vector<std::string> keys;
  std::mt19937_64 rng(1);
  for (int i = 0; i < 1 << 16; ++i) keys.push_back(Key(rng() % kKeys));
  std::string v;
  bool found;
  for (const auto& k : keys) tree->Get(root, k, &v, &found).IgnoreError();  // warm
  size_t i = 0;
  for (auto _ : state) {
    tree->Get(root, keys[i++ & (keys.size() - 1)], &v, &found).IgnoreError();
    benchmark::DoNotOptimize(v.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GetCachedHit)->ThreadRange(1, 2)->UseRealTime();

void BM_GetAllKeysWarm(benchmark::State& state) {
  // Random keys over the whole 1M-key tree once it is all cached.
  BTree* tree = F().tree.get();
  uint64_t root = tree->meta().root;
  std::string v;
  bool found;
  static bool warmed = false;
  if (!warmed) {
    auto it = tree->NewIterator(root);
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
    }
    warmed = true;
  }
  std::mt19937_64 rng(2);
  for (auto _ : state) {
    tree->Get(root, Key(rng() % kKeys), &v, &found).IgnoreError();
    benchmark::DoNotOptimize(found);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GetAllKeysWarm);

void BM_IteratorScan(benchmark::State& state) {
  BTree* tree = F().tree.get();
  auto it = tree->NewIterator(tree->meta().root);
  it->SeekToFirst();
  for (auto _ : state) {
    if (!it->Valid()) it->SeekToFirst();
    benchmark::DoNotOptimize(it->value().data());
    it->Next();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_IteratorScan);

void BM_CacheLookupHit(benchmark::State& state) {
  BTree* tree = F().tree.get();
  uint64_t root = tree->meta().root;
  PageCache* cache = tree->cache();
  PageRef ref;
  for (auto _ : state) {
    cache->Lookup(root, &ref);
    benchmark::DoNotOptimize(ref.data());
    ref.Reset();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CacheLookupHit)->ThreadRange(1, 2)->UseRealTime();

void BM_CachePeekHit(benchmark::State& state) {
  // The lock- and pin-free lookup point reads use, inside a read section.
  BTree* tree = F().tree.get();
  uint64_t root = tree->meta().root;
  PageCache* cache = tree->cache();
  for (auto _ : state) {
    epoch::ReadSection section;
    const Frame* f = cache->Peek(root);
    benchmark::DoNotOptimize(f->data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CachePeekHit)->ThreadRange(1, 2)->UseRealTime();

void BM_Checkpoint100KRandomChanges(benchmark::State& state) {
  BTree* tree = F().tree.get();
  std::mt19937_64 rng(3);
  uint64_t pages = 0;
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<uint64_t> ids(100000);
    for (auto& id : ids) id = rng() % kKeys;
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    std::vector<std::pair<std::string, std::string>> e;
    for (uint64_t id : ids) e.emplace_back(Key(id), std::string(100, 'z'));
    SortedChanges ch(std::move(e));
    state.ResumeTiming();
    CheckpointResult r;
    if (!tree->Checkpoint(&ch, 2, 2, &r).ok()) state.SkipWithError("checkpoint failed");
    tree->ReleasePages(r.obsolete);
    pages += r.pages_written;
  }
  state.counters["pages/ckpt"] = static_cast<double>(pages) / state.iterations();
  state.SetItemsProcessed(state.iterations() * 100000);
}
BENCHMARK(BM_Checkpoint100KRandomChanges)->Iterations(5)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace arenakv::tree

BENCHMARK_MAIN();
