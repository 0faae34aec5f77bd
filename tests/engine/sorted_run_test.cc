// SortedRun: sorts of a batch of versions and merges of a run with a newer
// one keep list order (the later version first on an equal key and
// sequence), searches agree with a
// sorted model for targets inside and outside the keys' shared prefix, the
// inline key bytes are recomputed when the shared prefix shrinks, runs span
// several chunks, and every segment goes back when the last reference goes.
#include "mem/sorted_run.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "arenakv/alloc/arena.h"
#include "arenakv/alloc/segment_pool.h"
#include "mem/version_node.h"
#include "test_orders.h"
#include "test_util.h"

namespace arenakv::mem {
namespace {

// A version as the model holds it; `order` breaks ties of (key, seq): the
// later insertion first.
struct Version {
  std::string key;
  uint64_t seq;
  int order;
};

bool ListOrder(const Version& a, const Version& b) {
  if (a.key != b.key) return a.key < b.key;
  if (a.seq != b.seq) return a.seq > b.seq;
  return a.order > b.order;
}

class SortedRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(alloc::SegmentPool::Create({}, &pool_));
    ASSERT_OK(
        alloc::Arena::Create(pool_, {.name = "runs", .kind = alloc::ArenaKind::kShared}, &arena_));
  }
  void TearDown() override {
    arena_.reset();
    ASSERT_OK(pool_->Close());
    pool_.reset();
    EXPECT_EQ(alloc::GetProcessPoolStats().mapped_bytes, 0u);
  }

  // New nodes for `versions`, in the given order; each gets the next
  // insertion number.
  std::vector<const VersionNode*> NewBatch(
      const std::vector<std::pair<std::string, uint64_t>>& versions) {
    std::vector<const VersionNode*> nodes;
    for (const auto& [key, seq] : versions) {
      nodes.push_back(NewNode(key, seq));
      model_.push_back({key, seq, next_order_++});
    }
    return nodes;
  }
  const VersionNode* NewNode(const std::string& key, uint64_t seq) {
    const VersionNode* node = nullptr;
    size_t bytes = 0;
    EXPECT_OK(VersionNode::New(arena_.get(), seq, ValueType::kValue, key, "v", &node, &bytes));
    return node;
  }
  // The batch sorted into a run.
  RunRef Sorted(const std::vector<const VersionNode*>& nodes, KeyOrder order = KeyOrder()) {
    RunRef run;
    EXPECT_OK(SortedRun::Sort(arena_.get(), nodes.data(), nodes.size(), &run, order));
    return run;
  }

  // The first `n` versions of the model in list order.
  std::vector<Version> Sorted(size_t n = SIZE_MAX) const {
    std::vector<Version> v(model_.begin(), model_.begin() + std::min(n, model_.size()));
    std::stable_sort(v.begin(), v.end(), ListOrder);
    return v;
  }

  // The run holds exactly the first `n` versions inserted, in list order,
  // with the later insertion first among equal (key, seq).
  void ExpectRunIsModel(const SortedRun& run, size_t n = SIZE_MAX) {
    const std::vector<Version> want = Sorted(n);
    ASSERT_EQ(run.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_EQ(run.node(i)->key(), want[i].key) << "entry " << i;
      ASSERT_EQ(run.node(i)->seq(), want[i].seq) << "entry " << i;
    }
  }

  // Seek and FirstAfterKey agree with the model for `target`.
  void ExpectSearches(const SortedRun& run, const std::string& target, uint64_t seq) {
    const std::vector<Version> want = Sorted();
    const auto seek = std::find_if(want.begin(), want.end(), [&](const Version& v) {
      return v.key > target || (v.key == target && v.seq <= seq);
    });
    EXPECT_EQ(run.Seek(target, seq), static_cast<size_t>(seek - want.begin()))
        << "Seek('" << target << "', " << seq << ")";
    const auto after =
        std::find_if(want.begin(), want.end(), [&](const Version& v) { return v.key > target; });
    EXPECT_EQ(run.FirstAfterKey(target), static_cast<size_t>(after - want.begin()))
        << "FirstAfterKey('" << target << "')";
  }

  std::shared_ptr<alloc::SegmentPool> pool_;
  std::unique_ptr<alloc::Arena> arena_;
  std::vector<Version> model_;
  int next_order_ = 0;
};

TEST_F(SortedRunTest, MergeKeepsListOrderAndPutsTheNewerRunFirst) {
  const auto first = NewBatch(
      {{"user:0005", 3}, {"user:0001", 1}, {"user:0009", 2}, {"user:0005", 7}, {"user:0003", 4}});
  RunRef run = Sorted(first);
  ASSERT_TRUE(run);
  ExpectRunIsModel(*run);
  // The same (key, seq) again, and versions between and around the old ones.
  const auto second =
      NewBatch({{"user:0005", 7}, {"user:0004", 9}, {"user:0000", 8}, {"user:0009", 2}});
  RunRef merged;
  ASSERT_OK(SortedRun::Merge(arena_.get(), run.get(), *Sorted(second), &merged));
  ExpectRunIsModel(*merged);
  // The later insertion of user:0005@7 comes first: it is the newer run's.
  const size_t i = merged->Seek("user:0005", 7);
  ASSERT_LT(i + 1, merged->size());
  EXPECT_EQ(merged->node(i)->seq(), 7u);
  EXPECT_EQ(merged->node(i + 1)->seq(), 7u);
  EXPECT_EQ(merged->node(i), second[0]);
  // The old run is still whole while it is held.
  ExpectRunIsModel(*run, 5);
}

// Keys of one length within eight bytes of the shared prefix: a merge
// orders two versions of one key without reading them when every newer
// version is at least as new as every older one, and reads them when not
// (an older sequence added later).
TEST_F(SortedRunTest, MergesOfOneKeyLengthKeepListOrderWithAndWithoutSequenceOrder) {
  std::mt19937_64 rng(test::TestSeed());
  for (const bool newer_is_newer : {true, false}) {
    SCOPED_TRACE(newer_is_newer ? "newer sequences" : "an older sequence added later");
    model_.clear();
    std::vector<std::pair<std::string, uint64_t>> a, b;
    for (int i = 0; i < 600; ++i) {
      char key[16];
      std::snprintf(key, sizeof(key), "key%05d", static_cast<int>(rng() % 300));
      a.push_back({key, 1000 + rng() % 1000});
    }
    for (int i = 0; i < 200; ++i) {
      char key[16];
      std::snprintf(key, sizeof(key), "key%05d", static_cast<int>(rng() % 300));
      // Equal sequences too: the newer run's version comes first.
      b.push_back({key, newer_is_newer ? 1999 + rng() % 1000 : 500 + rng() % 1000});
    }
    RunRef older = Sorted(NewBatch(a));
    ASSERT_TRUE(older);
    RunRef merged;
    ASSERT_OK(SortedRun::Merge(arena_.get(), older.get(), *Sorted(NewBatch(b)), &merged));
    ExpectRunIsModel(*merged);
  }
}

TEST_F(SortedRunTest, SearchesOutsideTheSharedPrefix) {
  // Every key starts with "tenant-42/": targets before, inside, after and
  // shorter than that prefix.
  std::vector<std::pair<std::string, uint64_t>> versions;
  for (int i = 0; i < 300; ++i) {
    versions.push_back({"tenant-42/" + std::to_string(1000 + i * 7), 10 + i % 5});
  }
  RunRef run = Sorted(NewBatch(versions));
  ASSERT_TRUE(run);
  ExpectRunIsModel(*run);
  for (const std::string& target : std::vector<std::string>{
           "", "a", "tenant-4", "tenant-42", "tenant-42/", "tenant-42/0", "tenant-42/1000",
           "tenant-42/1001", "tenant-42/1350", "tenant-42/3092", "tenant-42/9", "tenant-43",
           "tenant-42/1350\xff", std::string("tenant-42/1350\0", 15), "\xff"}) {
    for (uint64_t seq : {uint64_t{0}, uint64_t{12}, kMaxSequence}) {
      ExpectSearches(*run, target, seq);
    }
  }
}

// Keys in a user order (here reverse bytewise): the eight inline bytes say
// nothing of it, so merges and searches compare the nodes; every entry is
// in the order and searches land where it says.
TEST_F(SortedRunTest, AUserOrderIsKeptByMergesAndSearches) {
  test::ReverseOrder reverse;
  const KeyOrder order(&reverse);
  std::mt19937_64 rng(test::TestSeed());
  std::vector<std::string> keys;
  auto make_run = [&](int n) {
    std::vector<const VersionNode*> nodes;
    for (int i = 0; i < n; ++i) {
      keys.push_back(std::to_string(rng() % 100000) + "/k");
      nodes.push_back(NewNode(keys.back(), 1 + keys.size()));
    }
    return Sorted(nodes, order);
  };
  RunRef run = make_run(400), merged;
  ASSERT_TRUE(run);
  ASSERT_OK(SortedRun::Merge(arena_.get(), run.get(), *make_run(300), &merged, order));
  ASSERT_EQ(merged->size(), 700u);
  for (size_t i = 1; i < merged->size(); ++i) {
    ASSERT_GE(reverse.Compare(merged->node(i)->key(), merged->node(i - 1)->key()), 0) << i;
  }
  for (int t = 0; t < 200; ++t) {
    const std::string target =
        t % 2 ? keys[rng() % keys.size()] : std::to_string(rng() % 100000) + "/k";
    size_t want = 0, want_after = 0;
    for (size_t i = 0; i < merged->size(); ++i) {
      if (reverse.Compare(merged->node(i)->key(), target) < 0) want = i + 1;
      if (reverse.Compare(merged->node(i)->key(), target) <= 0) want_after = i + 1;
    }
    EXPECT_EQ(merged->Seek(target, kMaxSequence), want) << target;
    EXPECT_EQ(merged->FirstAfterKey(target), want_after) << target;
  }
}

TEST_F(SortedRunTest, TheSharedPrefixShrinksWhenNewKeysWidenTheRange) {
  // First keys share "aaaa/" and 8 bytes beyond it tie often; then keys
  // with other first bytes make the shared prefix empty, so the old
  // entries' inline bytes must be taken again.
  std::mt19937_64 rng(test::TestSeed());
  std::vector<std::pair<std::string, uint64_t>> a, b;
  for (int i = 0; i < 500; ++i) {
    a.push_back({"aaaa/same-eight" + std::to_string(rng() % 1000), i + 1});
  }
  RunRef run = Sorted(NewBatch(a));
  ASSERT_TRUE(run);
  for (int i = 0; i < 500; ++i) {
    std::string k(1 + rng() % 12, '\0');
    for (char& c : k) c = static_cast<char>("a\x01\xfe/"[rng() % 4]);
    b.push_back({k, 1000 + rng() % 50});
  }
  RunRef merged;
  ASSERT_OK(SortedRun::Merge(arena_.get(), run.get(), *Sorted(NewBatch(b)), &merged));
  ExpectRunIsModel(*merged);
  for (int i = 0; i < 300; ++i) {
    const auto& pick = i % 2 ? a[rng() % a.size()] : b[rng() % b.size()];
    ExpectSearches(*merged, pick.first, rng() % 1100);
    ExpectSearches(*merged, pick.first + '\0', kMaxSequence);
  }
}

TEST_F(SortedRunTest, RunsSpanChunksAndGiveTheirSegmentsBack) {
  const size_t before = arena_->Stats().segments;
  // Versions for 34 whole chunks of 4,096 and a partial one.
  constexpr size_t kVersions = 140000;
  constexpr size_t kChunks = (kVersions + 4095) / 4096;
  std::vector<std::pair<std::string, uint64_t>> versions;
  versions.reserve(kVersions);
  for (size_t i = 0; i < kVersions; ++i) {
    char key[16];
    std::snprintf(key, sizeof(key), "%012zu", (i * 7919) % kVersions);
    versions.push_back({key, i + 1});
  }
  const auto nodes = NewBatch(versions);
  const size_t with_list = arena_->Stats().segments;
  {
    RunRef run = Sorted(nodes);
    ASSERT_TRUE(run);
    EXPECT_EQ(arena_->Stats().segments, with_list + kChunks);
    for (size_t i = 0; i < kVersions; i += 997) {
      char key[16];
      std::snprintf(key, sizeof(key), "%012zu", i);
      ASSERT_EQ(run->Seek(key, kMaxSequence), i);
      ASSERT_EQ(run->node(i)->key(), std::string(key));
    }
    RunRef copy = run;
    run.reset();
    EXPECT_EQ(arena_->Stats().segments, with_list + kChunks) << "a reference still holds it";
    EXPECT_EQ(copy->node(kVersions - 1)->key(), std::string("000000139999"));
  }
  EXPECT_EQ(arena_->Stats().segments, with_list);
  EXPECT_GT(with_list, before);
}

TEST_F(SortedRunTest, ASortOrMergeShortOfMemoryChangesNothing) {
  const auto batch = NewBatch({{"b", 1}, {"a", 2}, {"b", 1}});
  RunRef older = Sorted(NewBatch({{"c", 3}}));
  ASSERT_TRUE(older);
  // An arena at its limit: no segment for the array.
  std::unique_ptr<alloc::Arena> full;
  ASSERT_OK(arena_->NewChild(
      {.name = "full", .kind = alloc::ArenaKind::kShared, .limit_bytes = 1024}, &full));
  RunRef run;
  Status s = SortedRun::Sort(full.get(), batch.data(), batch.size(), &run);
  EXPECT_TRUE(s.IsMemoryLimit()) << s.ToString();
  EXPECT_FALSE(run);
  s = SortedRun::Merge(full.get(), older.get(), *older, &run);
  EXPECT_TRUE(s.IsMemoryLimit()) << s.ToString();
  EXPECT_FALSE(run);
  EXPECT_EQ(full->Stats().segments, 0u);
  // An empty batch is refused.
  s = SortedRun::Sort(arena_.get(), batch.data(), 0, &run);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  ASSERT_OK(SortedRun::Sort(arena_.get(), batch.data(), batch.size(), &run));
  RunRef merged;
  ASSERT_OK(SortedRun::Merge(arena_.get(), older.get(), *run, &merged));
  ExpectRunIsModel(*merged);
  // Of the two b@1, the later one first.
  EXPECT_EQ(merged->node(1), batch[2]);
  EXPECT_EQ(merged->node(2), batch[0]);
}

}  // namespace
}  // namespace arenakv::mem
