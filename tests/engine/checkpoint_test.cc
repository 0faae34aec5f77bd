// Tests of what a checkpoint costs: how full it leaves the pages after
// random inserts, and how much memory it holds while it rewrites a tree much
// larger than the page cache.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "arenakv/alloc/segment_pool.h"
#include "arenakv/env.h"
#include "test_util.h"
#include "tree/btree.h"
#include "tree/page_format.h"
#include "tree_test_util.h"

namespace arenakv::tree {
namespace {

using Batch = std::map<std::string, std::optional<std::string>>;

constexpr size_t kKeyLen = 16;
constexpr size_t kValueLen = 100;

std::string Key(uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%016llu", static_cast<unsigned long long>(i));
  return buf;
}

std::string Value(uint64_t i) { return std::string(kValueLen, static_cast<char>('a' + i % 26)); }

class CheckpointTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (tree_) {
      ASSERT_OK(tree_->Close());
    }
    tree_.reset();
    arena_.reset();  // checks that the pool accounting is back to zero
  }

  void Open(const TreeOptions& o) {
    arena_ = std::make_unique<test::TreeArena>();
    Status s =
        BTree::Open(Env::Default().get(), dir_.Join("data.akv"), true, o, arena_->arena(), &tree_);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  void Apply(const Batch& batch) {
    test::VectorChanges changes(batch);
    CheckpointResult r;
    Status s = tree_->Checkpoint(&changes, tree_->meta().last_sequence + 1, 1, &r);
    ASSERT_TRUE(s.ok()) << s.ToString();
    tree_->ReleasePages(r.obsolete);
  }

  // Leaf bytes the keys need over the bytes of every page of the tree
  // (internal pages included), from a full verification.
  double FillFactor(size_t page_bytes) {
    VerifyStats vs;
    Status s = tree_->Verify(&vs);
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(vs.keys, tree_->meta().key_count);
    double need =
        static_cast<double>(vs.keys) * static_cast<double>(LeafEntryBytes(kKeyLen, kValueLen));
    return need /
           (static_cast<double>(vs.pages) * static_cast<double>(page_bytes - kImageHeaderBytes));
  }

  test::TempDir dir_;
  std::unique_ptr<test::TreeArena> arena_;
  std::unique_ptr<BTree> tree_;
};

// Keys arrive in random order, a batch per checkpoint: every checkpoint
// splits pages an earlier one wrote. The pages must still end up nearly full.
TEST_F(CheckpointTest, RandomInsertsLeavePagesFull) {
  uint64_t seed = test::TestSeed();
  TreeOptions o;
  o.page_bytes = 4096;
  o.cache_bytes = 8 << 20;
  Open(o);
  constexpr uint64_t kKeys = 60000;
  std::vector<uint64_t> order(kKeys);
  for (uint64_t i = 0; i < kKeys; ++i) order[i] = i;
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  constexpr uint64_t kBatch = 6000;
  for (uint64_t b = 0; b < kKeys; b += kBatch) {
    Batch batch;
    for (uint64_t i = b; i < b + kBatch; ++i) batch[Key(order[i])] = Value(order[i]);
    Apply(batch);
  }
  double fill = FillFactor(o.page_bytes);
  std::printf("fill factor after %llu random inserts in batches of %llu: %.1f%%\n",
              static_cast<unsigned long long>(kKeys), static_cast<unsigned long long>(kBatch),
              100 * fill);
  EXPECT_GE(fill, 0.85);
  EXPECT_EQ(tree_->meta().key_count, kKeys);
}

// Deleting most keys at random must not leave a tree of nearly empty pages.
TEST_F(CheckpointTest, RandomDeletesRepackPages) {
  uint64_t seed = test::TestSeed();
  TreeOptions o;
  o.page_bytes = 4096;
  Open(o);
  constexpr uint64_t kKeys = 40000;
  Batch all;
  for (uint64_t i = 0; i < kKeys; ++i) all[Key(i)] = Value(i);
  Apply(all);
  std::mt19937_64 rng(seed);
  Batch del;
  for (uint64_t i = 0; i < kKeys; ++i) {
    if (rng() % 4 != 0) del[Key(i)] = std::nullopt;  // keep about a quarter
  }
  Apply(del);
  double fill = FillFactor(o.page_bytes);
  std::printf("fill factor after deleting %zu of %llu keys: %.1f%%\n", del.size(),
              static_cast<unsigned long long>(kKeys), 100 * fill);
  EXPECT_GE(fill, 0.85);
  EXPECT_EQ(tree_->meta().key_count, kKeys - del.size());
}

// A checkpoint that erases a range drops the subtrees inside it whole: it
// writes only the pages at the range's edges and the path above them, and
// the tree holds exactly the keys outside the range plus the changes
// outside it (changes inside are ignored).
TEST_F(CheckpointTest, ErasedRangesDropWholeSubtrees) {
  const uint64_t seed = test::TestSeed();
  std::mt19937_64 rng(seed);
  TreeOptions o;
  o.page_bytes = 4096;
  o.cache_bytes = 1 << 20;
  Open(o);
  constexpr uint64_t kKeys = 40000;
  std::map<std::string, std::string> model;
  Batch all;
  for (uint64_t i = 0; i < kKeys; ++i) {
    all[Key(i)] = Value(i);
    model[Key(i)] = Value(i);
  }
  Apply(all);
  for (int trial = 0; trial < 12; ++trial) {
    SCOPED_TRACE("seed " + std::to_string(seed) + " trial " + std::to_string(trial));
    uint64_t a = rng() % kKeys, b = rng() % kKeys;
    if (a > b) std::swap(a, b);
    if (trial == 0) a = 0, b = kKeys;  // everything: the tree ends empty
    const std::string begin = Key(a), end = trial % 3 == 1 ? Key(b) + "5" : Key(b);
    Batch changes;
    for (int c = 0; c < 50; ++c) {
      const uint64_t k = rng() % kKeys;
      if (rng() % 3 == 0) {
        changes[Key(k)] = std::nullopt;
      } else {
        changes[Key(k)] = "changed" + std::to_string(trial);
      }
    }
    for (const auto& [k, v] : changes) {
      if (k >= begin && k < end) continue;
      if (v.has_value()) {
        model[k] = *v;
      } else {
        model.erase(k);
      }
    }
    model.erase(model.lower_bound(begin), model.lower_bound(end));
    const EraseRange erase{begin, end};
    test::VectorChanges it(changes);
    CheckpointResult r;
    ASSERT_OK(tree_->Checkpoint(&it, tree_->meta().last_sequence + 1, 1, &r, &erase));
    tree_->ReleasePages(r.obsolete);
    EXPECT_EQ(tree_->meta().key_count, model.size());
    VerifyStats vs;
    ASSERT_OK(tree_->Verify(&vs));
    EXPECT_EQ(vs.keys, model.size());
    std::map<std::string, std::string> found;
    auto cursor = tree_->NewIterator(tree_->meta().root);
    for (cursor->SeekToFirst(); cursor->Valid(); cursor->Next()) {
      found[std::string(cursor->key())] = std::string(cursor->value());
    }
    ASSERT_OK(cursor->status());
    ASSERT_EQ(found, model);
    if (trial == 0) {
      EXPECT_EQ(tree_->meta().root, 0u);
      EXPECT_GT(r.obsolete.size(), 1000u);  // every page of the 40,000 keys
      EXPECT_EQ(r.pages_written, 0u);
      for (uint64_t i = 0; i < kKeys; ++i) model[Key(i)] = Value(i);
      Apply(all);
    } else {
      // The 50 changes and the two edges rewrite at most a few pages each
      // level; a range of thousands of keys drops far more.
      EXPECT_LE(r.pages_written, 150u) << "erased " << (b - a) << " keys";
    }
  }
}

// A checkpoint that rewrites every page of a tree many times the size of the
// cache holds about the cache, its write buffer and its bookkeeping: pages
// are written out as it goes and become evictable frames.
TEST_F(CheckpointTest, MemoryStaysBoundedWhileRewritingALargeTree) {
  TreeOptions o;
  o.page_bytes = 16 * 1024;
  o.cache_bytes = 2 << 20;
  o.compression = false;
  Open(o);
  constexpr uint64_t kKeys = 400000;  // ~50 MiB of pages once both halves are in
  Batch even, odd;
  for (uint64_t i = 0; i < kKeys; i += 2) even[Key(i)] = Value(i);
  for (uint64_t i = 1; i < kKeys; i += 2) odd[Key(i)] = Value(i);
  Apply(even);
  Apply(odd);  // every leaf of the first tree is rewritten
  uint64_t tree_bytes = tree_->file_bytes() - tree_->free_bytes();
  alloc::PoolStats ps = arena_->pool()->Stats();
  std::printf("tree %.1f MiB, pool high water %.1f MiB with a %.1f MiB cache\n",
              tree_bytes / 1048576.0, ps.high_water_bytes / 1048576.0, o.cache_bytes / 1048576.0);
  EXPECT_GT(tree_bytes, uint64_t{40} << 20);
  // Cache + 2 MiB write buffer + builder scratch and per-parent bookkeeping.
  EXPECT_LE(ps.high_water_bytes, o.cache_bytes + (size_t{6} << 20));
  CacheStats cs = tree_->cache_stats();
  EXPECT_LE(cs.used_bytes, o.cache_bytes + o.page_bytes * 4);
  EXPECT_EQ(tree_->meta().key_count, kKeys);
}

// A checkpoint caches the pages it writes only where readers had the old
// ones cached: a bulk load does not fill the cache with a tree nobody read,
// and a rewritten hot leaf's old image leaves the cache at once, so the cache
// never holds both versions (the old extent stays readable for older roots
// until the release).
TEST_F(CheckpointTest, CheckpointCachesWhatReadersUse) {
  TreeOptions o;
  o.cache_bytes = 256 << 20;  // room for both copies: only the policy limits it
  o.compression = false;
  Open(o);
  constexpr uint64_t kKeys = 100000;
  Batch even, odd;
  for (uint64_t i = 0; i < kKeys; i += 2) even[Key(i)] = Value(i);
  for (uint64_t i = 1; i < kKeys; i += 2) odd[Key(i)] = Value(i);
  Apply(even);
  size_t loaded = tree_->cache_stats().used_bytes;
  // Readers touch the lower half of the keys.
  std::string v;
  bool found = false;
  for (uint64_t i = 0; i < kKeys / 2; i += 2) {
    ASSERT_OK(tree_->Get(tree_->meta().root, Key(i), &v, &found));
    ASSERT_TRUE(found);
  }
  size_t warm = tree_->cache_stats().used_bytes;
  test::VectorChanges changes(odd);
  CheckpointResult r;
  ASSERT_OK(tree_->Checkpoint(&changes, 9, 1, &r));
  size_t after = tree_->cache_stats().used_bytes;
  std::printf(
      "cache %.2f MiB after the load, %.2f MiB warm, %.2f MiB after rewriting every leaf"
      " (%llu pages written)\n",
      loaded / 1048576.0, warm / 1048576.0, after / 1048576.0,
      static_cast<unsigned long long>(r.pages_written));
  ASSERT_GT(r.pages_written, 700u);
  const size_t all_new = r.pages_written * o.page_bytes;
  EXPECT_LT(loaded, all_new / 20);  // internal pages only
  EXPECT_GT(warm, all_new / 4);
  // The hot half was rewritten into about twice as many pages; the cold half
  // stays out, and no old image of a rewritten leaf stays in.
  EXPECT_GT(after, all_new / 3);
  EXPECT_LT(after, all_new * 3 / 4);
  tree_->ReleasePages(r.obsolete);
  for (uint64_t i = 0; i < kKeys; ++i) {
    ASSERT_OK(tree_->Get(tree_->meta().root, Key(i), &v, &found));
    ASSERT_TRUE(found) << i;
    ASSERT_EQ(v, Value(i));
  }
}

// After a checkpoint that rewrote the whole tree, the released copy gives its
// blocks back: the file occupies about one tree on disk, not two.
TEST_F(CheckpointTest, ReleasedTreeGivesItsBlocksBack) {
  TreeOptions o;
  Open(o);
  constexpr uint64_t kKeys = 200000;
  for (int round = 0; round < 3; ++round) {
    Batch batch;
    for (uint64_t i = round % 2; i < kKeys; i += 1 + (round < 2)) batch[Key(i)] = Value(i + round);
    Apply(batch);
  }
  ASSERT_EQ(tree_->meta().key_count, kKeys);
  uint64_t tree_bytes = tree_->file_bytes() - tree_->free_bytes();
  struct stat st;
  ASSERT_EQ(::stat(dir_.Join("data.akv").c_str(), &st), 0);
  uint64_t allocated = static_cast<uint64_t>(st.st_blocks) * 512;
  std::printf("tree %.1f MiB, file %.1f MiB logical, %.1f MiB allocated\n", tree_bytes / 1048576.0,
              tree_->file_bytes() / 1048576.0, allocated / 1048576.0);
  if (tree_->file_bytes() < tree_bytes * 3 / 2) GTEST_SKIP() << "no released copy to give back";
  EXPECT_LE(allocated, tree_bytes + tree_bytes / 4 + (uint64_t{1} << 20));
}

}  // namespace
}  // namespace arenakv::tree
