// Tests of the copy-on-write B+tree: a model-based randomized test against
// std::map, splits and merges, large entries, a tree larger than its cache,
// readers of old roots, free-space reuse, corruption and injected faults.
#include "tree/btree.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "arenakv/env.h"
#include "fault_env.h"
#include "test_util.h"
#include "tree/page_format.h"
#include "tree_test_util.h"

namespace arenakv::tree {
namespace {

using test::TreeArena;
using test::VectorChanges;
using Model = std::map<std::string, std::string>;
using Batch = std::map<std::string, std::optional<std::string>>;

std::string Key(uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "key%010llu", static_cast<unsigned long long>(i));
  return buf;
}

std::string Value(std::mt19937_64& rng, size_t max_len) {
  std::string v(rng() % (max_len + 1), '\0');
  for (auto& c : v) c = static_cast<char>('a' + rng() % 26);
  return v;
}

class BTreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_ = Env::Default();
    path_ = dir_.Join("data.akv");
  }
  void TearDown() override {
    if (tree_) {
      ASSERT_OK(tree_->Close());
    }
    tree_.reset();
    arena_.reset();
  }

  void Open(TreeOptions o = Small(), Env* env = nullptr) {
    if (arena_ == nullptr) arena_ = std::make_unique<TreeArena>();
    Status s = BTree::Open(env ? env : env_.get(), path_, true, o, arena_->arena(), &tree_);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void Reopen(TreeOptions o = Small(), Env* env = nullptr) {
    ASSERT_OK(tree_->Close());
    tree_.reset();
    Open(o, env);
  }
  static TreeOptions Small() {
    TreeOptions o;
    o.page_bytes = 4096;
    o.cache_bytes = 4 << 20;
    return o;
  }

  // Applies `batch` to the tree and to `model`; releases the replaced pages
  // (nobody else reads the old root).
  void Apply(const Batch& batch, Model* model, CheckpointResult* out = nullptr) {
    VectorChanges changes(batch);
    CheckpointResult r;
    uint64_t seq = tree_->meta().last_sequence + 1;
    Status s = tree_->Checkpoint(&changes, seq, 7, &r);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(r.meta.root, tree_->meta().root);
    EXPECT_EQ(r.meta.last_sequence, seq);
    for (const auto& [k, v] : batch) {
      if (v) {
        (*model)[k] = *v;
      } else {
        model->erase(k);
      }
    }
    EXPECT_EQ(r.meta.key_count, model->size());
    tree_->ReleasePages(r.obsolete);
    if (out) *out = std::move(r);
  }

  void CheckAll(const Model& model, uint64_t root) {
    std::string v;
    bool found;
    for (const auto& [k, val] : model) {
      ASSERT_OK(tree_->Get(root, k, &v, &found));
      ASSERT_TRUE(found) << k;
      ASSERT_EQ(v, val) << k;
    }
    auto it = tree_->NewIterator(root);
    auto m = model.begin();
    for (it->SeekToFirst(); it->Valid(); it->Next(), ++m) {
      ASSERT_NE(m, model.end());
      ASSERT_EQ(it->key(), m->first);
      ASSERT_EQ(it->value(), m->second);
    }
    ASSERT_TRUE(it->status().ok()) << it->status().ToString();
    ASSERT_EQ(m, model.end());
    auto r = model.rbegin();
    for (it->SeekToLast(); it->Valid(); it->Prev(), ++r) {
      ASSERT_NE(r, model.rend());
      ASSERT_EQ(it->key(), r->first);
    }
    ASSERT_EQ(r, model.rend());
  }

  void VerifyOk(uint64_t expected_keys) {
    VerifyStats vs;
    Status s = tree_->Verify(&vs);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(vs.keys, expected_keys);
  }

  // Number of levels: the root's level (read from its stored header) + 1.
  uint64_t Depth(uint64_t root) {
    if (root == 0) return 0;
    std::unique_ptr<File> f;
    EXPECT_OK(env_->OpenFile(path_, OpenMode::kReadOnly, &f));
    char head[kStoredHeaderBytes];
    size_t got = 0;
    EXPECT_OK(f->Read(AddressOffset(root), sizeof(head), head, &got));
    EXPECT_OK(f->Close());
    return DecodeFixed16(head + 10) + 1;
  }

  test::TempDir dir_;
  std::shared_ptr<Env> env_;
  std::string path_;
  std::unique_ptr<TreeArena> arena_;
  std::unique_ptr<BTree> tree_;
};

TEST_F(BTreeTest, EmptyTreeAndBasicCheckpoint) {
  Open();
  EXPECT_EQ(tree_->meta().root, 0u);
  std::string v;
  bool found = true;
  ASSERT_OK(tree_->Get(0, "a", &v, &found));
  EXPECT_FALSE(found);
  auto it = tree_->NewIterator(0);
  it->SeekToFirst();
  EXPECT_FALSE(it->Valid());

  Model model;
  Batch b;
  for (int i = 0; i < 1000; ++i) b[Key(i)] = "value" + std::to_string(i);
  b["absent"] = std::nullopt;  // deleting a missing key is ignored
  Apply(b, &model);
  CheckAll(model, tree_->meta().root);
  EXPECT_EQ(tree_->meta().checkpoint_id, 1u);
  EXPECT_EQ(tree_->meta().wal_number, 7u);
  VerifyOk(model.size());
  Reopen();
  EXPECT_EQ(tree_->meta().checkpoint_id, 1u);
  EXPECT_EQ(tree_->meta().key_count, 1000u);
  CheckAll(model, tree_->meta().root);

  it = tree_->NewIterator(tree_->meta().root);
  it->Seek("key0000000500x");
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), Key(501));
  it->Prev();
  EXPECT_EQ(it->key(), Key(500));
  it->Seek("zzz");
  EXPECT_FALSE(it->Valid());
  it->Seek("");
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), Key(0));
}

TEST_F(BTreeTest, UnsortedChangesAreRefused) {
  Open();
  Model model;
  Apply({{"b", "1"}}, &model);
  MetaState before = tree_->meta();
  VectorChanges bad(std::vector<VectorChanges::Entry>{{"c", "x"}, {"a", "y"}});
  CheckpointResult r;
  Status s = tree_->Checkpoint(&bad, 9, 9, &r);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_EQ(tree_->meta().root, before.root);
  EXPECT_EQ(tree_->meta().checkpoint_id, before.checkpoint_id);
  CheckAll(model, tree_->meta().root);
  VerifyOk(1);
}

// >= 200,000 operations against std::map across many checkpoints and reopens.
TEST_F(BTreeTest, RandomizedAgainstModel) {
  uint64_t seed = test::TestSeed();
  std::mt19937_64 rng(seed);
  Open();
  Model model;
  uint64_t ops = 0;
  const uint64_t key_space = 20000;
  int round = 0;
  while (ops < 200000) {
    ++round;
    Batch b;
    size_t n = 1 + rng() % (round % 7 == 0 ? 12000 : 2500);
    int mode = static_cast<int>(rng() % 4);  // 0: mostly deletes, else mostly puts
    for (size_t i = 0; i < n; ++i) {
      std::string k = Key(rng() % key_space);
      bool del = mode == 0 ? rng() % 10 < 8 : rng() % 10 < 2;
      if (del) {
        b[k] = std::nullopt;
      } else {
        b[k] = Value(rng, rng() % 16 == 0 ? 1500 : 40);
      }
    }
    ops += b.size();
    Apply(b, &model);
    uint64_t root = tree_->meta().root;
    // Point reads, hits and misses.
    for (int i = 0; i < 2000; ++i, ++ops) {
      std::string k = Key(rng() % key_space);
      std::string v;
      bool found;
      ASSERT_OK(tree_->Get(root, k, &v, &found));
      auto m = model.find(k);
      ASSERT_EQ(found, m != model.end()) << k << " seed " << seed;
      if (found) {
        ASSERT_EQ(v, m->second);
      }
    }
    // Seeks with short scans in both directions.
    auto it = tree_->NewIterator(root);
    for (int i = 0; i < 200; ++i, ++ops) {
      std::string t = Key(rng() % key_space);
      if (rng() % 2) t.push_back('x');
      it->Seek(t);
      auto m = model.lower_bound(t);
      for (int step = 0; step < 20; ++step) {
        ASSERT_EQ(it->Valid(), m != model.end()) << "seek " << t << " seed " << seed;
        if (m == model.end()) break;
        ASSERT_EQ(it->key(), m->first);
        ASSERT_EQ(it->value(), m->second);
        if (rng() % 3 == 0 && m != model.begin()) {
          it->Prev();
          --m;
        } else {
          it->Next();
          ++m;
        }
      }
    }
    ASSERT_OK(it->status());
    it.reset();
    if (round % 10 == 0) {
      CheckAll(model, root);
      VerifyOk(model.size());
      Reopen();
      ASSERT_EQ(tree_->meta().key_count, model.size());
    }
  }
  CheckAll(model, tree_->meta().root);
  VerifyOk(model.size());
  std::printf("rounds=%d ops=%llu keys=%zu file=%llu\n", round,
              static_cast<unsigned long long>(ops), model.size(),
              static_cast<unsigned long long>(tree_->file_bytes()));
}

TEST_F(BTreeTest, SplitsMergesAndCollapse) {
  Open();
  Model model;
  Batch b;
  for (int i = 0; i < 30000; ++i) b[Key(i)] = std::string(60, 'v');
  Apply(b, &model);
  uint64_t depth = Depth(tree_->meta().root);
  EXPECT_GE(depth, 3u);
  VerifyStats full;
  ASSERT_OK(tree_->Verify(&full));
  // Delete 97% in scattered batches: pages must merge, not linger near empty.
  for (int pass = 0; pass < 3; ++pass) {
    Batch d;
    for (int i = 0; i < 30000; ++i) {
      if (i % 33 != 0 && i % 3 == pass) d[Key(i)] = std::nullopt;
    }
    Apply(d, &model);
  }
  VerifyStats after;
  ASSERT_OK(tree_->Verify(&after));
  EXPECT_EQ(after.keys, model.size());
  // ~910 keys of ~80 bytes fill ~20 pages; merging keeps pages >= ~1/4 full
  // (without merges nearly all ~600 leaves would remain, 1-2 keys each).
  EXPECT_LT(after.pages, full.pages / 6) << full.pages << " -> " << after.pages;
  CheckAll(model, tree_->meta().root);
  // Delete everything but one key: the root collapses to a single leaf.
  Batch d;
  for (const auto& [k, v] : model) {
    if (k != Key(99)) d[k] = std::nullopt;
  }
  Apply(d, &model);
  EXPECT_EQ(Depth(tree_->meta().root), 1u);
  CheckAll(model, tree_->meta().root);
  Apply({{Key(99), std::nullopt}}, &model);
  EXPECT_EQ(tree_->meta().root, 0u);
  VerifyOk(0);
  Reopen();
  EXPECT_EQ(tree_->meta().root, 0u);
  EXPECT_EQ(tree_->file_bytes(), kDataStart);  // everything free again
}

TEST_F(BTreeTest, LargeKeysAndValues) {
  uint64_t seed = test::TestSeed();
  std::mt19937_64 rng(seed);
  TreeOptions o = Small();
  Open(o);
  Model model;
  Batch b;
  for (int i = 0; i < 40; ++i) {
    std::string k = Key(i * 10);
    if (i % 5 == 0) k += std::string(kMaxKeyBytes - k.size(), 'k');
    size_t vlen = i % 4 == 0 ? kMaxValueBytes : (i % 4 == 1 ? 5000 : 10);
    b[k] = Value(rng, 0) + std::string(vlen, static_cast<char>('A' + i % 26));
  }
  for (int i = 0; i < 400; ++i) b[Key(i * 10 + 1)] = Value(rng, 100);
  Apply(b, &model);
  CheckAll(model, tree_->meta().root);
  VerifyOk(model.size());
  Reopen(o);
  CheckAll(model, tree_->meta().root);
  // Overwrite some big ones with small values and delete others.
  Batch c;
  int i = 0;
  for (const auto& [k, v] : model) {
    if (v.size() >= 5000) c[k] = (i++ % 2) ? std::optional<std::string>() : std::string("small");
  }
  Apply(c, &model);
  CheckAll(model, tree_->meta().root);
  VerifyOk(model.size());
}

TEST_F(BTreeTest, TreeTenTimesLargerThanCache) {
  TreeOptions o = Small();
  o.cache_bytes = 256 << 10;
  o.compression = false;
  Open(o);
  Model model;
  std::mt19937_64 rng(1);
  Batch b;
  for (int i = 0; i < 30000; ++i) b[Key(i)] = Value(rng, 150);
  Apply(b, &model);
  EXPECT_GT(tree_->file_bytes(), 10 * o.cache_bytes);
  Reopen(o);
  CheckAll(model, tree_->meta().root);
  CacheStats cs = tree_->cache_stats();
  EXPECT_GT(cs.evictions, 0u);
  EXPECT_LE(cs.used_bytes, o.cache_bytes + 64 * 1024);
  EXPECT_EQ(cs.pinned_pages, 0u);
  VerifyOk(model.size());
}

// A scan that keeps finding its next leaf uncached is reading cold data in
// bulk: after 64 such leaves it stops filling the cache (its leaves go into
// private frames), so one pass over the data neither pushes out the cached
// working set nor takes fresh memory per leaf. Cached leaves are still used.
TEST_F(BTreeTest, BulkScanOfColdLeavesLeavesTheCacheAlone) {
  TreeOptions o = Small();
  o.cache_bytes = 64 << 20;
  Open(o);
  Model model;
  std::mt19937_64 rng(7);
  Batch b;
  for (int i = 0; i < 40000; ++i) b[Key(i)] = Value(rng, 120);
  Apply(b, &model);
  const uint64_t root = tree_->meta().root;

  // Every page, cached by point reads: how many pages the tree has.
  Reopen(o);
  std::string v;
  bool found = false;
  for (const auto& [k, val] : model) ASSERT_OK(tree_->Get(root, k, &v, &found));
  const size_t all_pages = tree_->cache_stats().pages;
  ASSERT_GT(all_pages, 400u);

  for (bool forward : {true, false}) {
    SCOPED_TRACE(forward ? "forward" : "backward");
    Reopen(o);
    auto it = tree_->NewIterator(root);
    size_t n = 0;
    if (forward) {
      auto m = model.begin();
      for (it->SeekToFirst(); it->Valid(); it->Next(), ++m, ++n) {
        ASSERT_NE(m, model.end());
        ASSERT_EQ(it->key(), m->first);
        ASSERT_EQ(it->value(), m->second);
      }
    } else {
      auto m = model.rbegin();
      for (it->SeekToLast(); it->Valid(); it->Prev(), ++m, ++n) {
        ASSERT_NE(m, model.rend());
        ASSERT_EQ(it->key(), m->first);
        ASSERT_EQ(it->value(), m->second);
      }
    }
    ASSERT_TRUE(it->status().ok()) << it->status().ToString();
    ASSERT_EQ(n, model.size());
    it.reset();
    CacheStats cs = tree_->cache_stats();
    // The internal pages, the first 64 leaves and the seek's leaf at most.
    EXPECT_GE(cs.pages, 64u);
    EXPECT_LT(cs.pages, 64u + 2 + all_pages / 10) << "of " << all_pages;
    EXPECT_EQ(cs.pinned_pages, 0u);
    EXPECT_EQ(cs.evictions, 0u);
  }

  // kAlways keeps every leaf (a scan warming the cache); kNever none.
  Reopen(o);
  auto warm = tree_->NewIterator(root, false, ScanCaching::kAlways);
  size_t n = 0;
  for (warm->SeekToFirst(); warm->Valid(); warm->Next()) ++n;
  EXPECT_EQ(n, model.size());
  warm.reset();
  EXPECT_EQ(tree_->cache_stats().pages, all_pages);
  Reopen(o);
  auto cold = tree_->NewIterator(root, false, ScanCaching::kNever);
  n = 0;
  for (cold->Seek(Key(20000)); cold->Valid(); cold->Next()) ++n;
  EXPECT_EQ(n, model.size() - 20000);
  cold.reset();
  EXPECT_LT(tree_->cache_stats().pages, 3 + all_pages / 10);

  // With everything cached, a scan reads nothing from disk.
  for (const auto& [k, val] : model) ASSERT_OK(tree_->Get(root, k, &v, &found));
  const CacheStats before = tree_->cache_stats();
  ASSERT_EQ(before.pages, all_pages);
  auto it = tree_->NewIterator(root);
  n = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) ++n;
  ASSERT_OK(it->status());
  EXPECT_EQ(n, model.size());
  it.reset();
  const CacheStats after = tree_->cache_stats();
  EXPECT_EQ(after.misses, before.misses);
  EXPECT_GT(after.hits, before.hits + all_pages / 2);
  EXPECT_EQ(after.pages, all_pages);
}

// Read-ahead holds no root: it may read a released page's extent (free, its
// old bytes still there) and cache what it found. A later checkpoint that
// writes a page at the same address must replace that frame, never be
// shadowed by it.
TEST_F(BTreeTest, ReadAheadOfReleasedPagesNeverShadowsNewPages) {
  TreeOptions o = Small();
  o.compression = false;  // same keys, same value sizes: same page lengths
  Open(o);
  Model model;
  auto fill = [](char c, bool all) {
    Batch b;
    for (int i = 0; i < 3000; ++i) {
      if (all || (i / 100) % 4 == 0) b[Key(i)] = std::string(100, c);
    }
    return b;
  };
  Apply(fill('a', true), &model);
  const uint64_t r1 = tree_->meta().root;
  ASSERT_EQ(Depth(r1), 2u);  // r1 is the parent of every leaf
  // Short runs of leaves are replaced and released (too short to be
  // punched out of the file: their old bytes stay).
  Apply(fill('b', false), &model);
  tree_->cache()->Clear();
  std::atomic<bool> stop{false};
  uint64_t loaded = 0;
  ASSERT_OK(tree_->LoadChildren(r1, stop, &loaded));
  EXPECT_GT(loaded, 10u);  // old leaves, some from free extents
  // The same leaves again: their new pages reuse those free extents.
  Apply(fill('c', false), &model);
  CheckAll(model, tree_->meta().root);
  VerifyOk(model.size());
}

// A point read that misses a full cache keeps the leaf's head (header and
// block index) so that its next miss reads the block alone. A leaf released
// by a checkpoint takes its head with it: its extent may next hold the new
// page of the same keys at the same address (same length: one byte of each
// value changes), whose blocks the old index does not describe.
TEST_F(BTreeTest, KeptHeadsOfReleasedLeavesNeverShadowNewLeaves) {
  TreeOptions o = Small();
  o.page_bytes = 16384;
  o.cache_bytes = 256 << 10;  // 16 leaves of ~60, so reads take blocks
  Open(o);
  // Half random, as the benchmarks' values: leaves of several blocks.
  auto value = [](int i, char round) {
    std::string v = test::HalfRandomValue(i);
    v[7] = round;
    return v;
  };
  auto fill = [&](char round, bool all) {
    Batch b;
    for (int i = 0; i < 8000; ++i) {
      if (all || (i / 100) % 4 == 0) b[Key(i)] = value(i, round);
    }
    return b;
  };
  // The leaves' addresses: the root's children (the tree has two levels).
  auto leaves = [&] {
    const uint64_t root = tree_->meta().root;
    EXPECT_EQ(Depth(root), 2u);
    std::vector<uint64_t> out;
    PageRef ref;
    if (!tree_->cache()->Lookup(root, &ref)) {
      ADD_FAILURE() << "root not cached";
      return out;
    }
    PageView view(ref.data());
    for (uint32_t i = 0; i < view.count(); ++i) out.push_back(view.child(i));
    return out;
  };
  Model model;
  Apply(fill('A', true), &model);
  std::string v;
  bool found = false;
  uint64_t block_reads = 0;
  size_t reused = 0;  // leaves written where a released leaf was, same length
  std::set<uint64_t> released;
  for (char round = 'B'; round <= 'F'; ++round) {
    // Twice: the first pass keeps heads, the second reads by them.
    for (int pass = 0; pass < 2; ++pass) {
      for (const auto& [k, val] : model) {
        ASSERT_OK(tree_->Get(tree_->meta().root, k, &v, &found));
        ASSERT_TRUE(found) << k;
        ASSERT_EQ(v, val) << k << " round " << round;
      }
    }
    const CacheStats cs = tree_->cache_stats();
    EXPECT_GT(cs.block_reads, block_reads) << "round " << round;
    EXPECT_GT(cs.leaf_head_bytes, 0u);
    block_reads = cs.block_reads;
    // A checkpoint writes into extents released before it began.
    const std::vector<uint64_t> kept = leaves();
    CheckpointResult r;
    Apply(fill(round, false), &model, &r);
    ASSERT_OK(tree_->Get(tree_->meta().root, Key(0), &v, &found));  // caches the new root
    for (uint64_t a : leaves()) {
      if (std::find(kept.begin(), kept.end(), a) == kept.end()) reused += released.count(a);
    }
    released.insert(r.obsolete.begin(), r.obsolete.end());
  }
  // What the test is for happened: without heads forgotten, those leaves
  // were read through the index of the page they replaced.
  EXPECT_GT(reused, 0u);
  VerifyOk(model.size());
}

TEST_F(BTreeTest, OldRootReadersSeeOldDataUntilRelease) {
  Open();
  Model m1;
  Batch b;
  for (int i = 0; i < 5000; ++i) b[Key(i)] = "old" + std::to_string(i);
  Apply(b, &m1);
  uint64_t old_root = tree_->meta().root;
  Batch c;
  for (int i = 0; i < 5000; i += 2) c[Key(i)] = "new";
  for (int i = 1; i < 5000; i += 4) c[Key(i)] = std::nullopt;
  VectorChanges changes(c);
  CheckpointResult r;
  ASSERT_OK(tree_->Checkpoint(&changes, 2, 2, &r));
  EXPECT_FALSE(r.obsolete.empty());
  // Fill free space and churn the cache: the old pages must stay intact.
  tree_->cache()->Clear();
  CheckAll(m1, old_root);
  std::string v;
  bool found;
  ASSERT_OK(tree_->Get(r.meta.root, Key(0), &v, &found));
  EXPECT_EQ(v, "new");
  ASSERT_OK(tree_->Get(r.meta.root, Key(1), &v, &found));
  EXPECT_FALSE(found);
  // A second checkpoint while the old root is still held must not reuse it.
  Model m2 = m1;
  for (const auto& [k, val] : c) {
    if (val) {
      m2[k] = *val;
    } else {
      m2.erase(k);
    }
  }
  Batch d;
  for (int i = 0; i < 5000; i += 3) d[Key(i)] = "newer";
  CheckpointResult r2;
  {
    VectorChanges ch(d);
    ASSERT_OK(tree_->Checkpoint(&ch, 3, 3, &r2));
  }
  tree_->cache()->Clear();
  CheckAll(m1, old_root);
  tree_->ReleasePages(r2.obsolete);
  tree_->ReleasePages(r.obsolete);
  VerifyStats vs;
  ASSERT_OK(tree_->Verify(&vs));
}

TEST_F(BTreeTest, FileStaysSmallUnderOverwrite) {
  TreeOptions o;
  o.cache_bytes = 8 << 20;
  Open(o);
  Model model;
  std::mt19937_64 rng(2);
  uint64_t one_copy = 0, writes = 0, pages = 0;
  for (int round = 0; round < 100; ++round) {
    Batch b;
    for (int i = 0; i < 10000; ++i) b[Key(i)] = Value(rng, 100);
    CheckpointResult r;
    Apply(b, &model, &r);
    writes += r.writes;
    pages += r.pages_written;
    if (round == 0) one_copy = std::filesystem::file_size(path_);
  }
  uint64_t size = std::filesystem::file_size(path_);
  std::printf("one copy %llu bytes, after 100 overwrites %llu bytes, %llu pages in %llu writes\n",
              static_cast<unsigned long long>(one_copy), static_cast<unsigned long long>(size),
              static_cast<unsigned long long>(pages), static_cast<unsigned long long>(writes));
  EXPECT_LE(size, 3 * one_copy);
  EXPECT_LT(writes, pages / 4);  // contiguous pages go out together
  CheckAll(model, tree_->meta().root);
  VerifyOk(model.size());
}

TEST_F(BTreeTest, BigCheckpointIsFewLargeWrites) {
  TreeOptions o;
  o.page_bytes = 4096;
  o.compression = false;
  Open(o);
  Model model;
  Batch b;
  for (int i = 0; i < 300000; ++i) b[Key(i)] = std::string(40, 'x');
  CheckpointResult r;
  Apply(b, &model, &r);
  EXPECT_GT(r.pages_written, 4000u);
  EXPECT_LT(r.writes, r.pages_written / 100) << r.pages_written << " pages";
  VerifyOk(model.size());
}

TEST_F(BTreeTest, ConcurrentReadersDuringCheckpoints) {
  Open();
  Model model;
  Batch b;
  for (int i = 0; i < 4000; ++i) b[Key(i)] = "v0";
  Apply(b, &model);
  std::atomic<uint64_t> root{tree_->meta().root};
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  // Readers read a root they hold; the writer releases a root's pages only
  // after every reader moved on (tracked by the epoch below).
  std::vector<std::thread> readers;
  std::atomic<uint64_t> reading[2] = {0, 0};
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      while (!stop.load()) {
        uint64_t r = root.load();
        reading[t].store(r);
        if (root.load() != r) continue;
        std::string v;
        bool found;
        for (int i = 0; i < 200; ++i) {
          Status s = tree_->Get(r, Key(rng() % 4000), &v, &found);
          if (!s.ok() || !found || v.size() != 2) errors++;
        }
      }
      reading[t].store(0);
    });
  }
  std::vector<std::pair<uint64_t, std::pmr::vector<uint64_t>>>
      pending;  // (root, its obsolete pages)
  for (int round = 1; round <= 30; ++round) {
    Batch c;
    for (int i = round % 3; i < 4000; i += 3) c[Key(i)] = "v" + std::to_string(round % 10);
    VectorChanges ch(c);
    CheckpointResult r;
    ASSERT_OK(tree_->Checkpoint(&ch, round, round, &r));
    uint64_t old = root.exchange(r.meta.root);
    pending.emplace_back(old, std::move(r.obsolete));
    // Release pages of roots no reader holds.
    for (auto it = pending.begin(); it != pending.end();) {
      if (reading[0].load() != it->first && reading[1].load() != it->first) {
        tree_->ReleasePages(it->second);
        it = pending.erase(it);
      } else {
        ++it;
      }
    }
  }
  stop = true;
  for (auto& t : readers) t.join();
  for (auto& p : pending) tree_->ReleasePages(p.second);
  EXPECT_EQ(errors.load(), 0);
  VerifyOk(4000);
}

TEST_F(BTreeTest, CorruptionNeverCrashes) {
  uint64_t seed = test::TestSeed();
  std::mt19937_64 rng(seed);
  TreeOptions o = Small();
  Model model;
  {
    Open(o);
    Batch b;
    for (int i = 0; i < 3000; ++i) b[Key(i)] = Value(rng, 200);
    Apply(b, &model);
    ASSERT_OK(tree_->Close());
    tree_.reset();
  }
  std::string pristine;
  {
    std::ifstream in(path_, std::ios::binary);
    pristine.assign(std::istreambuf_iterator<char>(in), {});
  }
  int corrupt_opens = 0, corrupt_reads = 0;
  for (int trial = 0; trial < 30; ++trial) {
    std::string bytes = pristine;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      size_t pos = kDataStart + rng() % (bytes.size() - kDataStart);
      if (trial % 10 == 0) pos = rng() % kDataStart;  // header and meta blocks too
      bytes[pos] = static_cast<char>(bytes[pos] ^ (1 + rng() % 255));
    }
    {
      std::ofstream out(path_, std::ios::binary | std::ios::trunc);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
    Status s = BTree::Open(env_.get(), path_, false, o, arena_->arena(), &tree_);
    if (!s.ok()) {
      EXPECT_TRUE(s.IsCorruption() || s.IsInvalidArgument() || s.IsNotSupported()) << s.ToString();
      ++corrupt_opens;
      continue;
    }
    uint64_t root = tree_->meta().root;
    if (tree_->meta().checkpoint_id != 1) {
      // The newest meta block was damaged: the older one (the empty tree) won.
      EXPECT_EQ(root, 0u);
      ASSERT_OK(tree_->Close());
      tree_.reset();
      continue;
    }
    for (const auto& [k, val] : model) {
      std::string v;
      bool found = false;
      Status g = tree_->Get(root, k, &v, &found);
      if (g.ok()) {
        ASSERT_TRUE(found) << k << " seed " << seed;
        ASSERT_EQ(v, val) << k << " seed " << seed;
      } else {
        ASSERT_TRUE(g.IsCorruption()) << g.ToString();
        EXPECT_NE(g.message().find("data.akv"), std::string::npos) << g.ToString();
        ++corrupt_reads;
      }
    }
    auto it = tree_->NewIterator(root);
    size_t n = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) ++n;
    EXPECT_TRUE(it->status().ok() || it->status().IsCorruption());
    if (it->status().ok()) {
      EXPECT_EQ(n, model.size());
    }
    VerifyStats vs;
    Status vst = tree_->Verify(&vs);
    EXPECT_TRUE(vst.ok() || vst.IsCorruption()) << vst.ToString();
    ASSERT_OK(tree_->Close());
    tree_.reset();
  }
  std::printf("corrupt opens %d, corrupt reads %d\n", corrupt_opens, corrupt_reads);
  EXPECT_GT(corrupt_opens + corrupt_reads, 0);
}

TEST_F(BTreeTest, OpenRejectsForeignAndNewerFiles) {
  {
    std::ofstream out(path_, std::ios::binary);
    out << std::string(20000, 'z');
  }
  arena_ = std::make_unique<TreeArena>();
  Status s = BTree::Open(env_.get(), path_, true, Small(), arena_->arena(), &tree_);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_NE(s.message().find("not an arenakv data file"), std::string::npos);
  std::filesystem::remove(path_);
  s = BTree::Open(env_.get(), path_, false, Small(), arena_->arena(), &tree_);
  EXPECT_TRUE(s.IsNotFound()) << s.ToString();
  Open();
  ASSERT_OK(tree_->Close());
  tree_.reset();
  {
    std::fstream f(path_, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(8);
    char v[4] = {9, 0, 0, 0};
    f.write(v, 4);
  }
  s = BTree::Open(env_.get(), path_, false, Small(), arena_->arena(), &tree_);
  // The version was changed without resealing the header's checksum: that is
  // damage, and the checksum is checked first, so it never reads as "newer".
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.message().find("checksum"), std::string::npos) << s.ToString();
}

// Faults during a checkpoint leave the previous durable state in force, in
// this process and after a reopen; the space the failed checkpoint took is
// reused later.
TEST_F(BTreeTest, FaultsDuringCheckpoint) {
  uint64_t seed = test::TestSeed();
  std::mt19937_64 rng(seed);
  auto fenv = std::make_shared<test::FaultInjectionEnv>(Env::Default());
  Open(Small(), fenv.get());
  Model model;
  Batch b;
  for (int i = 0; i < 5000; ++i) b[Key(i)] = Value(rng, 100);
  Apply(b, &model);

  struct Case {
    test::FaultOp op;
    int error;
    bool short_write;
    uint64_t after;
  };
  std::vector<Case> cases = {
      {test::FaultOp::kWrite, EIO, false, 0},   {test::FaultOp::kWrite, ENOSPC, true, 2},
      {test::FaultOp::kWrite, ENOSPC, true, 0}, {test::FaultOp::kSync, EIO, false, 0},
      {test::FaultOp::kSync, EIO, false, 1},  // the meta block's sync
  };
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const Case& c = cases[ci];
    MetaState before = tree_->meta();
    Batch u;
    for (int i = 0; i < 5000; ++i) {
      if (rng() % 2) u[Key(rng() % 6000)] = Value(rng, 100);
    }
    fenv->AddRule({.file_substring = "data.akv",
                   .op = c.op,
                   .error = c.error,
                   .after_ops = c.after,
                   .short_write = c.short_write,
                   .one_shot = true});
    VectorChanges ch(u);
    CheckpointResult r;
    Status s = tree_->Checkpoint(&ch, 100 + ci, 100 + ci, &r);
    fenv->ClearRules();
    ASSERT_FALSE(s.ok()) << "case " << ci;
    EXPECT_TRUE(s.IsIOError()) << s.ToString();
    EXPECT_EQ(tree_->meta().root, before.root);
    EXPECT_EQ(tree_->meta().checkpoint_id, before.checkpoint_id);
    EXPECT_TRUE(r.obsolete.empty());
    CheckAll(model, tree_->meta().root);
    // The next checkpoint works and its result is durable.
    Apply(u, &model);
    CheckAll(model, tree_->meta().root);
    Reopen(Small(), fenv.get());
    CheckAll(model, tree_->meta().root);
    VerifyOk(model.size());
  }
  // A failed checkpoint followed by a reopen gives the previous durable state.
  fenv->AddRule({.file_substring = "data.akv",
                 .op = test::FaultOp::kSync,
                 .error = EIO,
                 .after_ops = 0,
                 .one_shot = true});
  Batch u{{Key(1), "lost"}};
  VectorChanges ch(u);
  CheckpointResult r;
  EXPECT_FALSE(tree_->Checkpoint(&ch, 1000, 1000, &r).ok());
  fenv->ClearRules();
  Reopen(Small(), fenv.get());
  CheckAll(model, tree_->meta().root);
  // Repeated churn does not leak space taken by failed checkpoints.
  uint64_t size_before = tree_->file_bytes();
  for (int k = 0; k < 5; ++k) {
    fenv->AddRule({.file_substring = "data.akv",
                   .op = test::FaultOp::kWrite,
                   .error = EIO,
                   .after_ops = static_cast<uint64_t>(k % 2),
                   .one_shot = true});
    VectorChanges c2(u);
    EXPECT_FALSE(tree_->Checkpoint(&c2, 1000, 1000, &r).ok());
    fenv->ClearRules();
  }
  EXPECT_LE(tree_->file_bytes(), size_before + 64 * 1024);
}

}  // namespace
}  // namespace arenakv::tree
