// MemTable: versions at snapshots, iteration in both directions against a
// model, lock-free readers beside one writer, conflict-check helpers, memory
// limits, and unsigned byte ordering.
#include "mem/memtable.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "arenakv/alloc/arena.h"
#include "arenakv/alloc/segment_pool.h"
#include "cursor_walk.h"
#include "test_orders.h"
#include "test_util.h"

namespace arenakv::mem {
namespace {

// Sanitizer builds run the same tests on smaller workloads.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

class MemTableTest : public ::testing::Test {
 protected:
  void SetUp() override { OpenPool({}); }

  void OpenPool(const alloc::PoolOptions& options) {
    ASSERT_OK(alloc::SegmentPool::Create(options, &pool_));
    ASSERT_OK(alloc::Arena::Create(pool_, {.name = "db", .kind = alloc::ArenaKind::kShared}, &db_));
  }

  void ClosePool() {
    tables_.clear();
    db_.reset();
    if (pool_ != nullptr) {
      EXPECT_OK(pool_->Close());
      pool_.reset();
    }
  }

  void TearDown() override {
    ClosePool();
    alloc::ProcessPoolStats stats = alloc::GetProcessPoolStats();
    EXPECT_EQ(stats.mapped_bytes, 0u);
    EXPECT_EQ(stats.live_pools, 0u);
  }

  MemTable* NewTable(uint64_t id = 1, const MemTableOptions& options = {}) {
    std::unique_ptr<MemTable> t;
    Status s = MemTable::Create(db_.get(), id, options, &t);
    EXPECT_TRUE(s.ok()) << s.ToString();
    tables_.push_back(std::move(t));
    return tables_.back().get();
  }

  std::shared_ptr<alloc::SegmentPool> pool_;
  std::unique_ptr<alloc::Arena> db_;
  std::vector<std::unique_ptr<MemTable>> tables_;
};

struct Visible {
  std::string key;
  bool deleted;
  std::string value;
};

// Collects what an iterator shows, forward then backward must agree.
std::vector<Visible> ScanForward(InternalIterator* it) {
  std::vector<Visible> out;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    out.push_back({std::string(it->key()), it->is_tombstone(), std::string(it->value())});
  }
  return out;
}

std::vector<Visible> ScanBackward(InternalIterator* it) {
  std::vector<Visible> out;
  for (it->SeekToLast(); it->Valid(); it->Prev()) {
    out.push_back({std::string(it->key()), it->is_tombstone(), std::string(it->value())});
  }
  std::reverse(out.begin(), out.end());
  return out;
}

bool operator==(const Visible& a, const Visible& b) {
  return a.key == b.key && a.deleted == b.deleted && a.value == b.value;
}

TEST_F(MemTableTest, AddGetAndCounters) {
  MemTable* t = NewTable(7);
  EXPECT_EQ(t->id(), 7u);
  EXPECT_EQ(t->entries(), 0u);
  EXPECT_EQ(t->min_sequence(), 0u);
  EXPECT_EQ(t->max_sequence(), 0u);
  ASSERT_OK(t->Add(10, ValueType::kValue, "apple", "red"));
  ASSERT_OK(t->Add(11, ValueType::kValue, "banana", "yellow"));
  ASSERT_OK(t->Add(12, ValueType::kDeletion, "apple", ""));
  EXPECT_EQ(t->entries(), 3u);
  EXPECT_EQ(t->min_sequence(), 10u);
  EXPECT_EQ(t->max_sequence(), 12u);
  EXPECT_GT(t->ApproximateBytes(), 0u);

  std::string v;
  bool deleted = true;
  uint64_t seq = 0;
  ASSERT_TRUE(t->Get("apple", 11, &v, &deleted, &seq));
  EXPECT_FALSE(deleted);
  EXPECT_EQ(v, "red");
  EXPECT_EQ(seq, 10u);
  ASSERT_TRUE(t->Get("apple", 12, &v, &deleted, &seq));
  EXPECT_TRUE(deleted);
  EXPECT_EQ(seq, 12u);
  EXPECT_FALSE(t->Get("apple", 9, &v, &deleted, &seq));
  EXPECT_FALSE(t->Get("cherry", kMaxSequence, &v, &deleted, &seq));
  EXPECT_FALSE(t->Get("appl", kMaxSequence, &v, &deleted, &seq));
  EXPECT_FALSE(t->Get("applee", kMaxSequence, &v, &deleted, &seq));
  // Presence only.
  EXPECT_TRUE(t->Get("banana", 11, nullptr, &deleted, nullptr));
  EXPECT_FALSE(deleted);
}

TEST_F(MemTableTest, SameKeyAndSequenceLaterAddWins) {
  MemTable* t = NewTable();
  ASSERT_OK(t->Add(5, ValueType::kValue, "k", "first"));
  ASSERT_OK(t->Add(5, ValueType::kValue, "k", "second"));
  std::string v;
  bool deleted = false;
  ASSERT_TRUE(t->Get("k", 5, &v, &deleted, nullptr));
  EXPECT_EQ(v, "second");
  auto it = t->NewIterator(5);
  it->SeekToFirst();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->value(), "second");
  it->Next();
  EXPECT_FALSE(it->Valid());
  it->SeekToLast();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->value(), "second");
}

TEST_F(MemTableTest, SnapshotInTheMiddleOfVersions) {
  MemTable* t = NewTable();
  // a: 5 -> v5, 10 -> deleted, 15 -> v15; b: 20 -> b20 only; c: 3 -> c3, 30 -> c30.
  ASSERT_OK(t->Add(3, ValueType::kValue, "c", "c3"));
  ASSERT_OK(t->Add(5, ValueType::kValue, "a", "v5"));
  ASSERT_OK(t->Add(10, ValueType::kDeletion, "a", ""));
  ASSERT_OK(t->Add(15, ValueType::kValue, "a", "v15"));
  ASSERT_OK(t->Add(20, ValueType::kValue, "b", "b20"));
  ASSERT_OK(t->Add(30, ValueType::kValue, "c", "c30"));

  struct Case {
    uint64_t snapshot;
    std::vector<Visible> expected;
  };
  std::vector<Case> cases = {
      {2, {}},
      {4, {{"c", false, "c3"}}},
      {9, {{"a", false, "v5"}, {"c", false, "c3"}}},
      {10, {{"a", true, ""}, {"c", false, "c3"}}},
      {19, {{"a", false, "v15"}, {"c", false, "c3"}}},
      {25, {{"a", false, "v15"}, {"b", false, "b20"}, {"c", false, "c3"}}},
      {kMaxSequence, {{"a", false, "v15"}, {"b", false, "b20"}, {"c", false, "c30"}}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.snapshot);
    auto it = t->NewIterator(c.snapshot);
    EXPECT_EQ(ScanForward(it.get()), c.expected);
    EXPECT_EQ(ScanBackward(it.get()), c.expected);
  }
  // Seek lands on the visible version; Prev after Seek finds the previous
  // key's newest visible version, skipping keys invisible at the snapshot.
  auto it = t->NewIterator(12);
  it->Seek("b");
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "c");
  EXPECT_EQ(it->value(), "c3");
  it->Prev();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "a");
  EXPECT_TRUE(it->is_tombstone());
  EXPECT_EQ(it->value(), "");
  it->Prev();
  EXPECT_FALSE(it->Valid());
  it->Seek("a\x01");
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "c");
  it->Seek("d");
  EXPECT_FALSE(it->Valid());
}

TEST_F(MemTableTest, HotKeyWithManyVersions) {
  MemTable* t = NewTable();
  uint64_t seq = 0;
  ASSERT_OK(t->Add(++seq, ValueType::kValue, "a", "a"));
  for (int i = 0; i < 5000; ++i) {
    ++seq;
    ASSERT_OK(t->Add(seq, ValueType::kValue, "hot", std::to_string(seq)));
  }
  ASSERT_OK(t->Add(++seq, ValueType::kValue, "z", "z"));
  for (uint64_t snap : {uint64_t{1}, uint64_t{2}, uint64_t{100}, uint64_t{2501}, uint64_t{5001},
                        uint64_t{5002}, kMaxSequence}) {
    SCOPED_TRACE(snap);
    std::vector<Visible> expected = {{"a", false, "a"}};
    if (snap >= 2)
      expected.push_back({"hot", false, std::to_string(std::min<uint64_t>(snap, 5001))});
    if (snap >= 5002) expected.push_back({"z", false, "z"});
    auto it = t->NewIterator(snap);
    EXPECT_EQ(ScanForward(it.get()), expected);
    EXPECT_EQ(ScanBackward(it.get()), expected);
  }
}

// A version older than one already merged into the run lands in the new
// buffer, where it is the only one of its key: it must not become the one
// the index (and so every point read) returns.
TEST_F(MemTableTest, AnOlderVersionAddedAfterAMergeDoesNotHideTheNewest) {
  MemTable* t = NewTable(1, {.merge_entries = 2});
  ASSERT_OK(t->Add(10, ValueType::kValue, "k", "new"));
  ASSERT_OK(t->Add(11, ValueType::kValue, "x", "x"));
  ASSERT_OK(t->Add(12, ValueType::kValue, "y", "y"));  // merges k and x first
  ASSERT_EQ(t->merges(), 1u);
  ASSERT_OK(t->Add(5, ValueType::kValue, "k", "old"));
  std::string v;
  uint64_t seq = 0;
  ASSERT_TRUE(t->Get("k", kMaxSequence, &v, nullptr, &seq));
  EXPECT_EQ(v, "new");
  EXPECT_EQ(seq, 10u);
  EXPECT_EQ(t->LatestSequence("k"), 10u);
  ASSERT_TRUE(t->Get("k", 7, &v, nullptr, &seq));
  EXPECT_EQ(v, "old");
  EXPECT_EQ(seq, 5u);
  EXPECT_FALSE(t->Get("k", 4, &v, nullptr, &seq));
  for (uint64_t snap : {kMaxSequence, uint64_t{7}}) {
    auto it = t->NewIterator(snap);
    const std::vector<Visible> want =
        snap == 7 ? std::vector<Visible>{{"k", false, "old"}}
                  : std::vector<Visible>{{"k", false, "new"}, {"x", false, "x"}, {"y", false, "y"}};
    EXPECT_EQ(ScanForward(it.get()), want) << "snapshot " << snap;
    EXPECT_EQ(ScanBackward(it.get()), want) << "snapshot " << snap;
  }
}

// An iterator keeps the runs and the copy of the buffer it started on:
// merges after it began neither change nor free what it walks.
TEST_F(MemTableTest, AnIteratorOutlivesTheMergesAfterIt) {
  MemTable* t = NewTable(1, {.merge_entries = 50});
  for (uint64_t i = 1; i <= 200; ++i) {
    ASSERT_OK(t->Add(i, ValueType::kValue, "key" + std::to_string(1000 + i), "v"));
  }
  auto it = t->NewIterator(200);
  it->Seek("key1100");
  ASSERT_TRUE(it->Valid());
  const uint64_t merges_before = t->merges();
  for (uint64_t i = 201; i <= 2000; ++i) {
    ASSERT_OK(t->Add(i, ValueType::kValue, "key" + std::to_string(1000 - i % 900), "w"));
    ASSERT_OK(t->Add(i, ValueType::kValue, "key" + std::to_string(1000 + i % 200), "w"));
  }
  EXPECT_GT(t->merges(), merges_before + 5);
  int n = 0;
  for (; it->Valid(); it->Next(), ++n) {
    EXPECT_EQ(it->key(), "key" + std::to_string(1100 + n));
    EXPECT_EQ(it->value(), "v");
  }
  EXPECT_EQ(n, 101);
  for (it->SeekToLast(), n = 0; it->Valid(); it->Prev(), ++n) {
  }
  EXPECT_EQ(n, 200);
}

// Filling a table to its limit with merges on the way: a merge into the
// main run short of memory is put off (the tail grows on), and when inserts
// stop with MemoryLimit every version added before is still found, in
// order. Values are short, so that the runs, not the nodes, reach the limit.
TEST_F(MemTableTest, MergesAtTheMemoryLimitLoseNothing) {
  MemTable* t =
      NewTable(1, {.limit_bytes = 256 << 10, .block_bytes = 16 << 10, .merge_entries = 64});
  std::map<std::string, std::string> added;
  Status s;
  for (uint64_t i = 1; s.ok(); ++i) {
    const std::string k = "k" + std::to_string((i * 7919) % 100003);
    s = t->Add(i, ValueType::kValue, k, std::to_string(i));
    if (s.ok()) added[k] = std::to_string(i);
  }
  EXPECT_TRUE(s.IsMemoryLimit()) << s.ToString();
  EXPECT_GT(t->merges(), 3u);
  EXPECT_GT(t->merges_put_off(), 0u);
  std::vector<Visible> want;
  for (const auto& [k, v] : added) want.push_back({k, false, v});
  auto it = t->NewIterator(kMaxSequence);
  EXPECT_EQ(ScanForward(it.get()), want);
  EXPECT_EQ(ScanBackward(it.get()), want);
  for (const auto& [k, v] : added) {
    std::string got;
    ASSERT_TRUE(t->Get(k, kMaxSequence, &got, nullptr, nullptr)) << k;
    ASSERT_EQ(got, v);
  }
}

TEST_F(MemTableTest, UnsignedByteOrderWithZeroAndFFBytes) {
  MemTable* t = NewTable();
  std::vector<std::string> keys = {std::string(),
                                   std::string("\0", 1),
                                   std::string("\0\0", 2),
                                   std::string("\0\xff", 2),
                                   "\x01",
                                   "a",
                                   std::string("a\0", 2),
                                   std::string("a\0b", 3),
                                   "a\x7f",
                                   "a\x80",
                                   "a\xff",
                                   "\x7f",
                                   "\x80",
                                   "\xfe",
                                   "\xff",
                                   "\xff\xff",
                                   std::string("\xff\xff\0", 3)};
  std::vector<std::string> shuffled = keys;
  std::mt19937_64 rng(42);
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  uint64_t seq = 0;
  for (const std::string& k : shuffled) {
    ASSERT_OK(t->Add(++seq, ValueType::kValue, k, "v" + k));
  }
  std::vector<Visible> expected;
  for (const std::string& k : keys) expected.push_back({k, false, "v" + k});
  auto it = t->NewIterator(kMaxSequence);
  EXPECT_EQ(ScanForward(it.get()), expected);
  EXPECT_EQ(ScanBackward(it.get()), expected);
  for (const std::string& k : keys) {
    std::string v;
    bool deleted = true;
    ASSERT_TRUE(t->Get(k, kMaxSequence, &v, &deleted, nullptr));
    EXPECT_EQ(v, "v" + k);
    it->Seek(k);
    ASSERT_TRUE(it->Valid());
    EXPECT_EQ(it->key(), k);
  }
}

TEST_F(MemTableTest, LatestSequenceAndWrittenInRangeAfter) {
  MemTable* t = NewTable();
  EXPECT_EQ(t->LatestSequence("a"), 0u);
  const KeyRange all{.from_first = true, .to_last = true};
  EXPECT_FALSE(t->WrittenInRangeAfter(all, 0));
  ASSERT_OK(t->Add(1, ValueType::kValue, "b", "1"));
  ASSERT_OK(t->Add(2, ValueType::kValue, "d", "2"));
  ASSERT_OK(t->Add(3, ValueType::kDeletion, "b", ""));
  ASSERT_OK(t->Add(4, ValueType::kValue, "f", "4"));
  EXPECT_EQ(t->LatestSequence("b"), 3u);
  EXPECT_EQ(t->LatestSequence("d"), 2u);
  EXPECT_EQ(t->LatestSequence("f"), 4u);
  EXPECT_EQ(t->LatestSequence("c"), 0u);
  EXPECT_EQ(t->LatestSequence(""), 0u);

  EXPECT_TRUE(t->WrittenInRangeAfter(all, 3));
  EXPECT_FALSE(t->WrittenInRangeAfter(all, 4));
  // [b, c] holds only b (seqs 1, 3).
  EXPECT_TRUE(t->WrittenInRangeAfter({"b", "c"}, 2));
  EXPECT_FALSE(t->WrittenInRangeAfter({"b", "c"}, 3));
  // Both bounds are inclusive: d (seq 2) is in [c, d], not in [c, cz].
  EXPECT_TRUE(t->WrittenInRangeAfter({"c", "d"}, 1));
  EXPECT_FALSE(t->WrittenInRangeAfter({"c", "cz"}, 0));
  EXPECT_TRUE(t->WrittenInRangeAfter({.begin = "d", .to_last = true}, 3));
  EXPECT_FALSE(t->WrittenInRangeAfter({.begin = "g", .to_last = true}, 0));
  EXPECT_FALSE(t->WrittenInRangeAfter({"b\x01", "c"}, 0));
  EXPECT_TRUE(t->WrittenInRangeAfter({.end = "c", .from_first = true}, 0));
  // "" is a key like any other, not "unbounded".
  EXPECT_FALSE(t->WrittenInRangeAfter({"", ""}, 0));
}

TEST_F(MemTableTest, MemoryLimitLeavesTableUsable) {
  ClosePool();
  alloc::PoolOptions options;
  options.budget_bytes = size_t{1} << 20;
  OpenPool(options);
  MemTableOptions mt_options;
  mt_options.block_bytes = size_t{64} << 10;
  MemTable* t = NewTable(3, mt_options);

  const std::string value(1000, 'v');
  uint64_t seq = 0;
  Status s;
  while (true) {
    s = t->Add(seq + 1, ValueType::kValue, "key" + std::to_string(seq + 1), value);
    if (!s.ok()) break;
    ++seq;
    ASSERT_LT(seq, 100000u) << "the budget never bit";
  }
  EXPECT_TRUE(s.IsMemoryLimit()) << s.ToString();
  ASSERT_GT(seq, 100u);
  EXPECT_EQ(t->entries(), seq);
  EXPECT_EQ(t->max_sequence(), seq);
  const size_t bytes = t->ApproximateBytes();

  // Failing again changes nothing, and a failed key is not visible.
  EXPECT_TRUE(t->Add(seq + 1, ValueType::kValue, "huge", std::string(size_t{4} << 20, 'h'))
                  .IsMemoryLimit());
  EXPECT_EQ(t->entries(), seq);
  EXPECT_EQ(t->ApproximateBytes(), bytes);
  EXPECT_EQ(t->LatestSequence("huge"), 0u);
  EXPECT_EQ(t->LatestSequence("key" + std::to_string(seq + 1)), 0u);

  // Everything added before is intact.
  for (uint64_t i = 1; i <= seq; ++i) {
    std::string v;
    bool deleted = true;
    ASSERT_TRUE(t->Get("key" + std::to_string(i), kMaxSequence, &v, &deleted, nullptr)) << i;
    ASSERT_EQ(v, value);
  }
  auto it = t->NewIterator(kMaxSequence);
  EXPECT_EQ(ScanForward(it.get()).size(), seq);
  EXPECT_EQ(ScanBackward(it.get()).size(), seq);
}

TEST_F(MemTableTest, ArenaLimitFromOptions) {
  MemTableOptions mt_options;
  mt_options.block_bytes = size_t{64} << 10;
  mt_options.limit_bytes = size_t{256} << 10;
  MemTable* t = NewTable(4, mt_options);
  uint64_t seq = 0;
  Status s;
  while (
      (s = t->Add(seq + 1, ValueType::kValue, std::to_string(seq), std::string(500, 'x'))).ok()) {
    ++seq;
    ASSERT_LT(seq, 10000u);
  }
  EXPECT_TRUE(s.IsMemoryLimit()) << s.ToString();
  EXPECT_EQ(t->entries(), seq);
  EXPECT_LE(t->ApproximateBytes(), mt_options.limit_bytes);
  // Another table of the same parent is not affected by this one's limit.
  MemTable* other = NewTable(5);
  EXPECT_OK(other->Add(1, ValueType::kValue, "k", std::string(10000, 'y')));
}

// Enough distinct keys to grow the hash index many times, with tag
// collisions among them; every key and a set of absent ones are checked.
TEST_F(MemTableTest, ManyKeysThroughIndexGrowth) {
  MemTable* t = NewTable();
  const int kKeys = kSanitized ? 30000 : 200000;
  for (int i = 0; i < kKeys; ++i) {
    std::string k = "k" + std::to_string(i * 3);
    ASSERT_OK(t->Add(i + 1, ValueType::kValue, k, std::to_string(i)));
    if (i % 5 == 0) {
      // A newer version replaces the indexed head of the key.
      ASSERT_OK(t->Add(kKeys + i + 1, ValueType::kDeletion, k, ""));
    }
  }
  for (int i = 0; i < kKeys; ++i) {
    std::string k = "k" + std::to_string(i * 3);
    std::string v;
    bool deleted = false;
    uint64_t seq = 0;
    ASSERT_TRUE(t->Get(k, kMaxSequence, &v, &deleted, &seq)) << k;
    ASSERT_EQ(deleted, i % 5 == 0) << k;
    ASSERT_EQ(seq, static_cast<uint64_t>(i % 5 == 0 ? kKeys + i + 1 : i + 1));
    ASSERT_TRUE(t->Get(k, kKeys, &v, &deleted, &seq)) << k;
    ASSERT_FALSE(deleted);
    ASSERT_EQ(v, std::to_string(i));
    ASSERT_EQ(t->LatestSequence(k), static_cast<uint64_t>(i % 5 == 0 ? kKeys + i + 1 : i + 1));
    ASSERT_FALSE(t->Get(k, static_cast<uint64_t>(i), nullptr, &deleted, nullptr)) << k;
    ASSERT_FALSE(t->Get("k" + std::to_string(i * 3 + 1), kMaxSequence, nullptr, &deleted, nullptr));
    ASSERT_EQ(t->LatestSequence("k" + std::to_string(i * 3 + 2)), 0u);
  }
}

// A large table's tags must tell apart keys whose home slots are near each
// other: a probe walks past those, and a tag that matches costs the cache
// miss of reading a node's key. Tags taken from the hash's top bits, which
// also give the home slot, matched at nearly every probe in a table of more
// than 64K slots (a fifth of the writer's time at 1M sequential puts).
TEST(HashIndexTest, TagsOfNeighbouringKeysDifferInLargeTables) {
  const uint64_t seed = test::TestSeed();
  std::mt19937_64 rng(seed);
  for (const size_t capacity : {size_t{1} << 17, size_t{1} << 20, size_t{1} << 24}) {
    const int shift = 64 - __builtin_ctzll(capacity);
    const uint64_t below = (uint64_t{1} << shift) - 1;
    int same = 0;
    const int kPairs = 10000;
    for (int i = 0; i < kPairs; ++i) {
      const uint64_t a = rng();
      // Another hash with the same home slot, or the next one.
      const uint64_t b = (((a >> shift) + (i & 1)) << shift) | (rng() & below);
      same += HashIndex::TagFor(capacity, a) == HashIndex::TagFor(capacity, b);
    }
    EXPECT_LT(same, kPairs / 100) << "capacity " << capacity << ", seed " << seed;
  }
  // Up to 64K slots the tag holds the home slot: tables grow from tags alone.
  for (int i = 0; i < 1000; ++i) {
    const uint64_t h = rng();
    EXPECT_EQ(HashIndex::TagFor(size_t{1} << 16, h), h >> 48);
    EXPECT_EQ(HashIndex::TagFor(size_t{1} << 10, h) >> 6, h >> 54);
  }
}

using test::CaseFolding;
using test::ReverseOrder;
using ModelLess = test::OrderLess;

// The model: each key's versions as seq -> value (nullopt: tombstone).
using Versions = std::map<uint64_t, std::optional<std::string>>;
using Model = std::map<std::string, Versions, ModelLess>;

// The newest version of `versions` with seq <= snapshot, or end().
Versions::const_iterator VisibleVersion(const Versions& versions, uint64_t snapshot) {
  auto it = versions.upper_bound(snapshot);
  return it == versions.begin() ? versions.end() : std::prev(it);
}

std::vector<Visible> ModelView(const Model& model, uint64_t snapshot) {
  std::vector<Visible> out;
  for (const auto& [k, versions] : model) {
    auto v = VisibleVersion(versions, snapshot);
    if (v == versions.end()) continue;
    out.push_back({k, !v->second.has_value(), v->second.value_or("")});
  }
  return out;
}

std::string RandomKey(std::mt19937_64& rng, int key_space) {
  // Short binary keys with 0x00 and 0xff bytes, sharing prefixes.
  uint64_t n = rng() % key_space;
  std::string k;
  static const char kAlphabet[] = {'\0', '\x01', 'a', 'b', '\x7f', '\x80', '\xfe', '\xff'};
  do {
    k.push_back(kAlphabet[n % 8]);
    n /= 8;
  } while (n != 0);
  return k;
}

// Runs the randomized model check on a table whose keys are in `order`
// (nullptr: bytewise; the table must have been made with it).
void RandomizedAgainstModel(MemTable* t, const Comparator* order = nullptr);

TEST_F(MemTableTest, RandomizedAgainstModel) { RandomizedAgainstModel(NewTable()); }

// A user order: the buffer, runs, merges, searches and both directions keep it,
// and point reads do without the hash index.
TEST_F(MemTableTest, RandomizedAgainstModelInAUserOrder) {
  ReverseOrder reverse;
  MemTable* t = NewTable(1, {.merge_entries = 300, .order = KeyOrder(&reverse)});
  RandomizedAgainstModel(t, &reverse);
  EXPECT_GE(t->merges(), 10u);
}

// Keys the order calls equal are one key, whatever their bytes: the newest
// version of any of its spellings is the key's, for reads, conflict checks
// and iterators (a hash of the bytes would tell the spellings apart).
TEST_F(MemTableTest, KeysTheOrderCallsEqualAreOneKey) {
  CaseFolding folding;
  for (size_t merge_entries : {size_t{4096}, size_t{2}}) {
    MemTable* t = NewTable(1, {.merge_entries = merge_entries, .order = KeyOrder(&folding)});
    ASSERT_OK(t->Add(1, ValueType::kValue, "Apple", "1"));
    ASSERT_OK(t->Add(2, ValueType::kValue, "banana", "2"));
    ASSERT_OK(t->Add(3, ValueType::kValue, "APPLE", "3"));
    ASSERT_OK(t->Add(4, ValueType::kValue, "Cherry", "4"));
    std::string v;
    bool deleted = true;
    uint64_t seq = 0;
    ASSERT_TRUE(t->Get("apple", kMaxSequence, &v, &deleted, &seq));
    EXPECT_EQ(v, "3");
    EXPECT_EQ(seq, 3u);
    ASSERT_TRUE(t->Get("aPPle", 2, &v, &deleted, &seq));
    EXPECT_EQ(v, "1");
    EXPECT_EQ(t->LatestSequence("apple"), 3u);
    EXPECT_EQ(t->LatestSequence("BANANA"), 2u);
    EXPECT_TRUE(t->WrittenInRangeAfter({"APPLE", "APPLE"}, 2));
    EXPECT_FALSE(t->WrittenInRangeAfter({"apple", "B"}, 3));
    auto it = t->NewIterator(kMaxSequence);
    const std::vector<Visible> want = {
        {"APPLE", false, "3"}, {"banana", false, "2"}, {"Cherry", false, "4"}};
    EXPECT_EQ(ScanForward(it.get()), want) << merge_entries;
    EXPECT_EQ(ScanBackward(it.get()), want) << merge_entries;
    it->Seek("BANANA");
    ASSERT_TRUE(it->Valid());
    EXPECT_EQ(it->key(), "banana");
  }
}

// The same with a merge every few hundred inserts: versions of a key spread
// over the buffer and the runs, searches and both directions across them.
TEST_F(MemTableTest, RandomizedAgainstModelWithFrequentMerges) {
  MemTable* t = NewTable(1, {.merge_entries = 300});
  RandomizedAgainstModel(t);
  EXPECT_GE(t->merges(), 10u);
  EXPECT_GT(t->run_entries(), 0u);
}

// Buffers of 7 versions and tiers passed down every 20: versions of a key
// spread over the buffer and all three runs (the middle one too, which a
// table only uses once its main run holds 8 x 20 versions), read at old
// snapshots and walked both ways across them; in a user order too.
TEST_F(MemTableTest, RandomizedAgainstModelAcrossEveryTier) {
  MemTable* t = NewTable(1, {.merge_entries = 20, .buffer_entries = 7});
  RandomizedAgainstModel(t);
  EXPECT_GE(t->merges(), 40u);
  ReverseOrder reverse;
  MemTable* u =
      NewTable(2, {.merge_entries = 20, .buffer_entries = 7, .order = KeyOrder(&reverse)});
  RandomizedAgainstModel(u, &reverse);
  EXPECT_GE(u->merges(), 40u);
}

// A commit of more versions than a buffer holds: Prepare() makes room for
// all of them at once, so that none of the Add()s after the log can fail,
// and they are read in order like any others.
TEST_F(MemTableTest, APreparedCommitLargerThanTheBufferIsAddedWhole) {
  MemTable* t = NewTable(1, {.merge_entries = 64, .buffer_entries = 16});
  std::vector<Visible> want;
  for (int i = 0; i < 40; ++i)
    ASSERT_OK(t->Add(i + 1, ValueType::kValue, "a" + std::to_string(i), "x"));
  constexpr int kCommit = 1000;
  ASSERT_OK(t->Prepare(kCommit, kCommit * 8));
  // Every Add lives on what Prepare() took: not one more segment.
  alloc::Arena* arena = t->arena();
  const size_t segments = arena->Stats().segments;
  for (int i = 0; i < kCommit; ++i) {
    ASSERT_OK(t->Add(100 + i, ValueType::kValue, "b" + std::to_string(i), "y"));
  }
  EXPECT_EQ(arena->Stats().segments, segments) << "an Add took memory Prepare() did not";
  std::map<std::string, std::string> model;
  for (int i = 0; i < 40; ++i) model["a" + std::to_string(i)] = "x";
  for (int i = 0; i < kCommit; ++i) model["b" + std::to_string(i)] = "y";
  for (const auto& [k, v] : model) want.push_back({k, false, v});
  auto it = t->NewIterator(kMaxSequence);
  EXPECT_EQ(ScanForward(it.get()), want);
  EXPECT_EQ(ScanBackward(it.get()), want);
  // The next Add sorts the large buffer away and goes on.
  ASSERT_OK(t->Add(5000, ValueType::kValue, "c", "z"));
  std::string v;
  ASSERT_TRUE(t->Get("b999", kMaxSequence, &v, nullptr, nullptr));
  EXPECT_EQ(v, "y");
}

void RandomizedAgainstModel(MemTable* t, const Comparator* order) {
  const uint64_t seed = test::TestSeed();
  std::mt19937_64 rng(seed);
  const ModelLess less{order};
  Model model(less);
  uint64_t seq = 0;
  int ops = 0;
  const int kRounds = kSanitized ? 60 : 300;
  for (int round = 0; round < kRounds; ++round) {
    // Inserts, then point reads, then an iterator session.
    const int key_space = round % 3 == 0 ? 64 : 4000;
    // Random order, or ascending / descending runs (the insertion path
    // reuses the previous insertion's position).
    std::vector<std::string> batch;
    for (int i = 0; i < 200; ++i) batch.push_back(RandomKey(rng, key_space));
    if (round % 4 == 1) std::sort(batch.begin(), batch.end(), less);
    if (round % 4 == 2) std::sort(batch.rbegin(), batch.rend(), less);
    for (int i = 0; i < 200; ++i, ++ops) {
      // Occasionally skip sequences (other memtables took them).
      seq += 1 + (rng() % 10 == 0 ? rng() % 5 : 0);
      const std::string& k = batch[i];
      if (rng() % 5 == 0) {
        ASSERT_OK(t->Add(seq, ValueType::kDeletion, k, ""));
        model[k][seq] = std::nullopt;
      } else {
        std::string v = std::to_string(seq) + std::string(rng() % 20, 'v');
        ASSERT_OK(t->Add(seq, ValueType::kValue, k, v));
        model[k][seq] = v;
      }
    }
    for (int i = 0; i < 150; ++i, ++ops) {
      std::string k = RandomKey(rng, key_space);
      uint64_t snap = rng() % (seq + 2);
      auto mk = model.find(k);
      Versions::const_iterator m;
      bool model_found =
          mk != model.end() && (m = VisibleVersion(mk->second, snap)) != mk->second.end();
      std::string v;
      bool deleted = false;
      uint64_t got_seq = 0;
      bool found = t->Get(k, snap, &v, &deleted, &got_seq);
      ASSERT_EQ(found, model_found) << "seed " << seed;
      if (found) {
        ASSERT_EQ(got_seq, m->first);
        ASSERT_EQ(deleted, !m->second.has_value());
        if (!deleted) {
          ASSERT_EQ(v, *m->second);
        }
      }
      uint64_t model_latest = mk == model.end() ? 0 : mk->second.rbegin()->first;
      ASSERT_EQ(t->LatestSequence(k), model_latest);
      if (i % 10 == 0) {
        const std::string begin = RandomKey(rng, key_space);
        const std::string end = RandomKey(rng, key_space);
        const KeyRange range{begin, end, rng() % 4 == 0, rng() % 4 == 0};
        uint64_t after = seq - std::min<uint64_t>(seq, rng() % 400);
        bool model_written = false;
        for (auto it = range.from_first ? model.begin() : model.lower_bound(begin);
             it != model.end() && (range.to_last || !less(end, it->first)); ++it) {
          if (it->second.rbegin()->first > after) {
            model_written = true;
            break;
          }
        }
        ASSERT_EQ(t->WrittenInRangeAfter(range, after), model_written) << "seed " << seed;
      }
    }
    // Iterator session at a random snapshot (sometimes the latest).
    const uint64_t snap = rng() % 4 == 0 ? kMaxSequence : rng() % (seq + 2);
    const std::vector<Visible> view = ModelView(model, snap);
    auto it = t->NewIterator(snap);
    if (round % 50 == 0) {
      ASSERT_EQ(ScanForward(it.get()), view) << "seed " << seed;
      ASSERT_EQ(ScanBackward(it.get()), view) << "seed " << seed;
    }
    test::RandomCursorWalk(
        it.get(), view, &Visible::deleted, rng,
        [&] {
          std::string target = RandomKey(rng, key_space);
          if (rng() % 2) target.push_back('\0');
          return target;
        },
        150, "seed " + std::to_string(seed) + " round " + std::to_string(round), order);
    if (::testing::Test::HasFatalFailure()) return;
    ops += 150;
  }
  if (!kSanitized) {
    EXPECT_GE(ops, 100000);
  }
  size_t versions = 0;
  for (const auto& [k, v] : model) versions += v.size();
  EXPECT_EQ(t->entries(), versions);
}

TEST_F(MemTableTest, ConcurrentReadersSeeConsistentSnapshots) {
  const uint64_t seed = test::TestSeed();
  // Merges every thousand inserts, under the readers' feet.
  MemTable* t = NewTable(1, {.merge_entries = 1000});
  const uint64_t kWrites = kSanitized ? 30000 : 100000;
  const int kKeys = 20000;  // the hash index grows while readers use it
  // The whole workload is fixed up front so readers can compute the exact
  // answer for any (key, snapshot): seq i writes key keys[i].
  std::mt19937_64 rng(seed);
  std::vector<int> keys(kWrites + 1);
  std::vector<std::vector<uint64_t>> seqs_of(kKeys);
  for (uint64_t i = 1; i <= kWrites; ++i) {
    keys[i] = static_cast<int>(rng() % kKeys);
    seqs_of[keys[i]].push_back(i);
  }
  auto key_name = [](int k) { return "key" + std::to_string(k); };
  auto deleted_at = [](uint64_t s) { return s % 7 == 0; };
  // Newest seq <= snap that wrote k, 0 if none.
  auto expected_seq = [&](int k, uint64_t snap) -> uint64_t {
    const auto& v = seqs_of[k];
    auto it = std::upper_bound(v.begin(), v.end(), snap);
    return it == v.begin() ? 0 : *(it - 1);
  };

  std::atomic<uint64_t> published{0};
  std::atomic<bool> failed{false};
  std::atomic<uint64_t> reads{0};
  std::thread writer([&] {
    for (uint64_t i = 1; i <= kWrites; ++i) {
      Status s = deleted_at(i) ? t->Add(i, ValueType::kDeletion, key_name(keys[i]), "")
                               : t->Add(i, ValueType::kValue, key_name(keys[i]),
                                        key_name(keys[i]) + "@" + std::to_string(i));
      if (!s.ok()) {
        failed = true;
        return;
      }
      published.store(i, std::memory_order_release);
    }
  });
  auto reader = [&](int id) {
    std::mt19937_64 r(seed + id);
    while (published.load(std::memory_order_acquire) < kWrites && !failed) {
      const uint64_t snap = published.load(std::memory_order_acquire);
      for (int i = 0; i < 50; ++i) {
        int k = static_cast<int>(r() % kKeys);
        uint64_t want = expected_seq(k, snap);
        std::string v;
        bool deleted = false;
        uint64_t got = 0;
        bool found = t->Get(key_name(k), snap, &v, &deleted, &got);
        if (found != (want != 0) ||
            (found && (got != want || deleted != deleted_at(want) ||
                       (!deleted && v != key_name(k) + "@" + std::to_string(want))))) {
          failed = true;
          ADD_FAILURE() << "Get key " << k << " at " << snap << ": found " << found << " seq "
                        << got << " want " << want;
          return;
        }
      }
      // A short scan from a random key must show exactly the model's keys.
      auto it = t->NewIterator(snap);
      int start = static_cast<int>(r() % kKeys);
      int seen = 0;
      std::string prev;
      for (it->Seek(key_name(start)); it->Valid() && seen < 20; it->Next(), ++seen) {
        std::string k(it->key());
        int kn = std::stoi(k.substr(3));
        uint64_t want = expected_seq(kn, snap);
        if (want == 0 || (!prev.empty() && k <= prev) || it->is_tombstone() != deleted_at(want) ||
            (!it->is_tombstone() && it->value() != k + "@" + std::to_string(want))) {
          failed = true;
          ADD_FAILURE() << "scan at " << snap << " key " << k << " want seq " << want;
          return;
        }
        prev = k;
      }
      for (it->SeekToLast(), seen = 0; it->Valid() && seen < 5; it->Prev(), ++seen) {
      }
      reads.fetch_add(1, std::memory_order_relaxed);
    }
  };
  std::thread r1(reader, 1), r2(reader, 2);
  writer.join();
  r1.join();
  r2.join();
  EXPECT_FALSE(failed.load()) << "seed " << seed;
  EXPECT_GT(reads.load(), 0u);
  EXPECT_EQ(t->entries(), kWrites);
  EXPECT_GE(t->merges(), 10u);
  // After the writer: a full scan matches the final state.
  auto it = t->NewIterator(kMaxSequence);
  size_t n = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) ++n;
  size_t written_keys = 0;
  for (const auto& v : seqs_of) written_keys += v.empty() ? 0 : 1;
  EXPECT_EQ(n, written_keys);
}

}  // namespace
}  // namespace arenakv::mem
