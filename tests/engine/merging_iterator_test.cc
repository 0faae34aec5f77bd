// MergingIterator and LiveIterator: prioritized merge with tombstones against
// a model, direction changes, child errors, and memtables as children.
#include "mem/merging_iterator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "arenakv/alloc/arena.h"
#include "arenakv/alloc/segment_pool.h"
#include "cursor_walk.h"
#include "mem/live_iterator.h"
#include "mem/memtable.h"
#include "test_orders.h"
#include "test_util.h"

namespace arenakv::mem {
namespace {

// nullopt is a tombstone.
using Source = std::map<std::string, std::optional<std::string>>;

// A child over a sorted map; can be told to fail at its n-th positioning.
class MapIterator final : public InternalIterator {
 public:
  explicit MapIterator(const Source* source, int fail_after = -1)
      : source_(source), it_(source->end()), fail_after_(fail_after) {}

  bool Valid() const override { return status_.ok() && it_ != source_->end(); }
  void SeekToFirst() override {
    if (Tick()) it_ = source_->begin();
  }
  void SeekToLast() override {
    if (!Tick()) return;
    it_ = source_->empty() ? source_->end() : std::prev(source_->end());
  }
  void Seek(std::string_view target) override {
    if (Tick()) it_ = source_->lower_bound(std::string(target));
  }
  void Next() override {
    EXPECT_TRUE(Valid());
    if (Tick()) ++it_;
  }
  void Prev() override {
    EXPECT_TRUE(Valid());
    if (!Tick()) return;
    it_ = it_ == source_->begin() ? source_->end() : std::prev(it_);
  }
  std::string_view key() const override {
    EXPECT_TRUE(Valid());
    return it_->first;
  }
  std::string_view value() const override {
    EXPECT_TRUE(Valid());
    return it_->second.has_value() ? std::string_view(*it_->second) : std::string_view();
  }
  bool is_tombstone() const override {
    EXPECT_TRUE(Valid());
    return !it_->second.has_value();
  }
  Status status() const override { return status_; }

 private:
  bool Tick() {
    if (!status_.ok()) return false;
    if (fail_after_ >= 0 && ops_++ >= fail_after_) {
      status_ = Status::IOError("injected child failure");
      return false;
    }
    return true;
  }

  const Source* source_;
  Source::const_iterator it_;
  int fail_after_;
  int ops_ = 0;
  Status status_;
};

struct Entry {
  std::string key;
  bool tombstone;
  std::string value;
  bool operator==(const Entry&) const = default;
};

// The expected merge: for each key, the lowest-index source having it.
std::vector<Entry> MergeModel(const std::vector<Source>& sources, bool live) {
  std::map<std::string, std::optional<std::string>> merged;
  for (const Source& s : sources) {
    for (const auto& [k, v] : s) merged.emplace(k, v);  // first (highest priority) wins
  }
  std::vector<Entry> out;
  for (const auto& [k, v] : merged) {
    if (live && !v.has_value()) continue;
    out.push_back({k, !v.has_value(), v.value_or("")});
  }
  return out;
}

std::unique_ptr<InternalIterator> MergeOf(const std::vector<Source>& sources) {
  std::vector<std::unique_ptr<InternalIterator>> children;
  for (const Source& s : sources) children.push_back(std::make_unique<MapIterator>(&s));
  return NewMergingIterator(std::move(children));
}

std::vector<Entry> Forward(InternalIterator* it) {
  std::vector<Entry> out;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    out.push_back({std::string(it->key()), it->is_tombstone(), std::string(it->value())});
  }
  return out;
}

std::vector<Entry> Backward(InternalIterator* it) {
  std::vector<Entry> out;
  for (it->SeekToLast(); it->Valid(); it->Prev()) {
    out.push_back({std::string(it->key()), it->is_tombstone(), std::string(it->value())});
  }
  std::reverse(out.begin(), out.end());
  return out;
}

TEST(MergingIteratorTest, PriorityAndTombstones) {
  std::vector<Source> sources(3);
  sources[0] = {{"b", std::nullopt}, {"d", "d0"}};
  sources[1] = {{"a", "a1"}, {"b", "b1"}, {"c", std::nullopt}, {"d", "d1"}};
  sources[2] = {{"a", "a2"}, {"c", "c2"}, {"e", "e2"}};
  auto it = MergeOf(sources);
  std::vector<Entry> expected = {
      {"a", false, "a1"}, {"b", true, ""}, {"c", true, ""}, {"d", false, "d0"}, {"e", false, "e2"}};
  EXPECT_EQ(Forward(it.get()), expected);
  EXPECT_EQ(Backward(it.get()), expected);
  EXPECT_OK(it->status());

  // Seek then Prev, and alternating directions over equal keys.
  it->Seek("c");
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "c");
  it->Prev();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "b");
  EXPECT_TRUE(it->is_tombstone());
  it->Next();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "c");
  it->Next();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "d");
  EXPECT_EQ(it->value(), "d0");
  it->Prev();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "c");
  it->Prev();
  it->Prev();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "a");
  it->Prev();
  EXPECT_FALSE(it->Valid());
  it->Seek("f");
  EXPECT_FALSE(it->Valid());
  it->Seek("");
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "a");

  auto live = NewLiveIterator(MergeOf(sources));
  std::vector<Entry> live_expected = {{"a", false, "a1"}, {"d", false, "d0"}, {"e", false, "e2"}};
  EXPECT_EQ(Forward(live.get()), live_expected);
  EXPECT_EQ(Backward(live.get()), live_expected);
  live->Seek("b");
  ASSERT_TRUE(live->Valid());
  EXPECT_EQ(live->key(), "d");
  live->Prev();
  ASSERT_TRUE(live->Valid());
  EXPECT_EQ(live->key(), "a");
}

TEST(MergingIteratorTest, NoChildrenAndEmptyChildren) {
  auto none = NewMergingIterator({});
  none->SeekToFirst();
  EXPECT_FALSE(none->Valid());
  none->SeekToLast();
  EXPECT_FALSE(none->Valid());
  none->Seek("x");
  EXPECT_FALSE(none->Valid());
  EXPECT_OK(none->status());

  std::vector<Source> sources(3);
  sources[1] = {{"k", "v"}};
  auto it = MergeOf(sources);
  EXPECT_EQ(Forward(it.get()), (std::vector<Entry>{{"k", false, "v"}}));
  EXPECT_EQ(Backward(it.get()), (std::vector<Entry>{{"k", false, "v"}}));
}

TEST(MergingIteratorTest, ChildErrorStopsTheMerge) {
  std::vector<Source> sources(2);
  sources[0] = {{"a", "a0"}, {"c", "c0"}};
  sources[1] = {{"b", "b1"}, {"d", "d1"}};
  std::vector<std::unique_ptr<InternalIterator>> children;
  children.push_back(std::make_unique<MapIterator>(&sources[0]));
  children.push_back(std::make_unique<MapIterator>(&sources[1], /*fail_after=*/1));
  auto it = NewMergingIterator(std::move(children));
  it->SeekToFirst();  // child 1: op 1
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "a");
  it->Next();  // child 0 moves to c; child 1 stays at b
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "b");
  it->Next();  // child 1: op 2 fails
  EXPECT_FALSE(it->Valid());
  EXPECT_TRUE(it->status().IsIOError()) << it->status().ToString();
  auto live = NewLiveIterator(std::move(it));
  live->SeekToFirst();
  EXPECT_FALSE(live->Valid());
  EXPECT_TRUE(live->status().IsIOError());
}

TEST(MergingIteratorTest, RandomizedAgainstModel) {
  const uint64_t seed = test::TestSeed();
  std::mt19937_64 rng(seed);
  auto random_key = [&rng](int space) {
    std::string k = std::to_string(rng() % space);
    if (rng() % 8 == 0) k.push_back('\0');
    if (rng() % 16 == 0) k.push_back('\xff');
    return k;
  };
  int total_ops = 0;
  for (int round = 0; round < 400; ++round) {
    const int n = 1 + static_cast<int>(rng() % 5);
    const int space = 5 + static_cast<int>(rng() % 60);
    std::vector<Source> sources(n);
    for (Source& s : sources) {
      int count = static_cast<int>(rng() % (space + 1));
      for (int i = 0; i < count; ++i) {
        if (rng() % 4 == 0) {
          s[random_key(space)] = std::nullopt;
        } else {
          s[random_key(space)] =
              "v" + std::to_string(&s - sources.data()) + "_" + std::to_string(rng() % 1000);
        }
      }
    }
    for (bool live : {false, true}) {
      const std::vector<Entry> view = MergeModel(sources, live);
      std::unique_ptr<InternalIterator> it = MergeOf(sources);
      if (live) it = NewLiveIterator(std::move(it));
      ASSERT_EQ(Forward(it.get()), view) << "seed " << seed << " round " << round;
      ASSERT_EQ(Backward(it.get()), view) << "seed " << seed << " round " << round;
      test::RandomCursorWalk(
          it.get(), view, &Entry::tombstone, rng, [&] { return random_key(space + 2); }, 200,
          "seed " + std::to_string(seed) + " round " + std::to_string(round));
      if (HasFatalFailure()) return;
      total_ops += 200;
      EXPECT_OK(it->status());
    }
  }
  EXPECT_GE(total_ops, 100000);
}

// Memtables as children: the active one hides the frozen one's versions,
// each read at the same snapshot.
TEST(MergingIteratorTest, MemTablesAtASnapshot) {
  {
    std::shared_ptr<alloc::SegmentPool> pool;
    ASSERT_OK(alloc::SegmentPool::Create({}, &pool));
    std::unique_ptr<alloc::Arena> db;
    ASSERT_OK(alloc::Arena::Create(pool, {.name = "db", .kind = alloc::ArenaKind::kShared}, &db));
    std::unique_ptr<MemTable> frozen, active;
    ASSERT_OK(MemTable::Create(db.get(), 1, &frozen));
    ASSERT_OK(MemTable::Create(db.get(), 2, &active));
    ASSERT_OK(frozen->Add(1, ValueType::kValue, "a", "a1"));
    ASSERT_OK(frozen->Add(2, ValueType::kValue, "b", "b2"));
    ASSERT_OK(frozen->Add(3, ValueType::kValue, "c", "c3"));
    ASSERT_OK(active->Add(4, ValueType::kDeletion, "b", ""));
    ASSERT_OK(active->Add(5, ValueType::kValue, "c", "c5"));
    ASSERT_OK(active->Add(6, ValueType::kValue, "d", "d6"));

    auto merged_at = [&](uint64_t snap) {
      std::vector<std::unique_ptr<InternalIterator>> children;
      children.push_back(active->NewIterator(snap));
      children.push_back(frozen->NewIterator(snap));
      return NewLiveIterator(NewMergingIterator(std::move(children)));
    };
    auto at3 = merged_at(3);
    std::vector<Entry> e3 = {{"a", false, "a1"}, {"b", false, "b2"}, {"c", false, "c3"}};
    EXPECT_EQ(Forward(at3.get()), e3);
    EXPECT_EQ(Backward(at3.get()), e3);
    auto at5 = merged_at(5);
    std::vector<Entry> e5 = {{"a", false, "a1"}, {"c", false, "c5"}};
    EXPECT_EQ(Forward(at5.get()), e5);
    EXPECT_EQ(Backward(at5.get()), e5);
    auto latest = merged_at(kMaxSequence);
    std::vector<Entry> e6 = {{"a", false, "a1"}, {"c", false, "c5"}, {"d", false, "d6"}};
    EXPECT_EQ(Forward(latest.get()), e6);
    EXPECT_EQ(Backward(latest.get()), e6);

    at3.reset();
    at5.reset();
    latest.reset();
    active.reset();
    frozen.reset();
    db.reset();
    EXPECT_OK(pool->Close());
  }
  alloc::ProcessPoolStats stats = alloc::GetProcessPoolStats();
  EXPECT_EQ(stats.mapped_bytes, 0u);
  EXPECT_EQ(stats.live_pools, 0u);
}

// Memtables in a user order (reverse bytewise) merged in that order: the
// newer version of a key wins, in both directions and at a Seek.
TEST(MergingIteratorTest, MemTablesInAUserOrder) {
  test::ReverseOrder reverse;
  const KeyOrder order(&reverse);
  {
    std::shared_ptr<alloc::SegmentPool> pool;
    ASSERT_OK(alloc::SegmentPool::Create({}, &pool));
    std::unique_ptr<alloc::Arena> db;
    ASSERT_OK(alloc::Arena::Create(pool, {.name = "db", .kind = alloc::ArenaKind::kShared}, &db));
    std::unique_ptr<MemTable> frozen, active;
    ASSERT_OK(MemTable::Create(db.get(), 1, {.order = order}, &frozen));
    ASSERT_OK(MemTable::Create(db.get(), 2, {.order = order}, &active));
    ASSERT_OK(frozen->Add(1, ValueType::kValue, "a", "a1"));
    ASSERT_OK(frozen->Add(2, ValueType::kValue, "b", "b2"));
    ASSERT_OK(frozen->Add(3, ValueType::kValue, "c", "c3"));
    ASSERT_OK(active->Add(4, ValueType::kDeletion, "b", ""));
    ASSERT_OK(active->Add(5, ValueType::kValue, "c", "c5"));
    ASSERT_OK(active->Add(6, ValueType::kValue, "d", "d6"));
    std::vector<std::unique_ptr<InternalIterator>> children;
    children.push_back(active->NewIterator(kMaxSequence));
    children.push_back(frozen->NewIterator(kMaxSequence));
    auto it = NewLiveIterator(NewMergingIterator(std::move(children), order));
    const std::vector<Entry> want = {{"d", false, "d6"}, {"c", false, "c5"}, {"a", false, "a1"}};
    EXPECT_EQ(Forward(it.get()), want);
    EXPECT_EQ(Backward(it.get()), want);
    it->Seek("bb");  // after "c", before "b" in this order
    ASSERT_TRUE(it->Valid());
    EXPECT_EQ(it->key(), "a");
    it.reset();
    active.reset();
    frozen.reset();
    db.reset();
    EXPECT_OK(pool->Close());
  }
  EXPECT_EQ(alloc::GetProcessPoolStats().mapped_bytes, 0u);
}

}  // namespace
}  // namespace arenakv::mem
