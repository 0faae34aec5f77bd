// Options::comparator (arenakv/comparator.h): the bytewise order; databases
// in a user's order (reverse, numeric, case folding) against a std::map
// kept in it, through checkpoints, reopens, transactions and repair; the
// name a data file records and the refusal of any other order.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "arenakv/comparator.h"
#include "arenakv/db.h"
#include "arenakv/env.h"
#include "commit_group_util.h"
#include "db_test_util.h"
#include "sync_point_util.h"
#include "test_orders.h"
#include "test_util.h"
#include "tree/btree.h"
#include "tree_test_util.h"

namespace arenakv {
namespace {

namespace fs = std::filesystem;

class NamedOrder final : public Comparator {
 public:
  explicit NamedOrder(const char* name) : name_(name) {}
  int Compare(std::string_view a, std::string_view b) const override { return b.compare(a); }
  const char* Name() const override { return name_; }

 private:
  const char* const name_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(ComparatorTest, BytewiseIsUnsignedWithShorterKeysFirst) {
  const Comparator* c = BytewiseComparator();
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c, BytewiseComparator());
  EXPECT_STREQ(c->Name(), "arenakv.BytewiseComparator");
  EXPECT_LT(c->Compare("a", "b"), 0);
  EXPECT_GT(c->Compare("b", "a"), 0);
  EXPECT_EQ(c->Compare("abc", "abc"), 0);
  EXPECT_LT(c->Compare("ab", "abc"), 0);                    // a prefix first
  EXPECT_LT(c->Compare("", std::string_view("\0", 1)), 0);  // even of a zero byte
  EXPECT_GT(c->Compare("\xff", "a"), 0);                    // bytes are unsigned
  EXPECT_LT(c->Compare("a\x7f", "a\x80"), 0);
}

// Passing the bytewise comparator is the same as passing none: the file
// names no order and is read by either.
TEST(ComparatorTest, TheBytewiseComparatorIsTheDefault) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  {
    Options o;
    o.comparator = BytewiseComparator();
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(o, path, &db));
    ASSERT_OK(db->Put(WriteOptions(), "b", "2"));
    ASSERT_OK(db->Put(WriteOptions(), "a", "1"));
    ASSERT_OK(db->Close());
  }
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(Options(), path, &db));
  std::unique_ptr<Iterator> it = db->NewIterator(ReadOptions());
  it->SeekToFirst();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "a");
  it.reset();
  ASSERT_OK(db->Close());
  test::ExpectPoolsReleased();
}

// Names a data file could not record are refused before anything is
// created.
TEST(ComparatorTest, NamesAFileCannotRecordAreRefused) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  const std::string long_name(256, 'n');
  for (const char* name : {"", "arenakv.Mine", long_name.c_str()}) {
    NamedOrder order(name);
    Options o;
    o.comparator = &order;
    std::unique_ptr<DB> db;
    Status s = DB::Open(o, path, &db);
    EXPECT_EQ(db, nullptr);
    EXPECT_TRUE(s.IsInvalidArgument()) << std::string(name).substr(0, 20) << ": " << s.ToString();
    EXPECT_FALSE(fs::exists(path)) << std::string(name).substr(0, 20);
    RepairReport report;
    EXPECT_FALSE(RepairDB(path, o, &report).ok());
  }
  test::ExpectPoolsReleased();
}

test::ReverseOrder reverse_order;
test::NumericOrder numeric_order;
test::CaseFolding case_folding;

using Model = std::map<std::string, std::string, test::OrderLess>;

// Keys the order has something to say about (see btree_order_test.cc).
std::string MakeKey(const Comparator* order, std::mt19937_64& rng) {
  if (order == &numeric_order) return std::to_string(rng() % (uint64_t{1} << (rng() % 20)));
  if (order == &case_folding) {
    std::string k(1 + rng() % 5, ' ');
    for (char& c : k) c = static_cast<char>((rng() % 2 ? 'a' : 'A') + rng() % 5);
    return k;
  }
  return "k" + std::to_string(rng() % 20000);
}

class OrderedDBTest : public ::testing::TestWithParam<const Comparator*> {
 protected:
  void SetUp() override { path_ = dir_.Join("db"); }
  Options DBOptions() const {
    Options o;
    o.comparator = GetParam();
    o.cache_bytes = 1 << 20;
    o.checkpoint_wal_bytes = 256 << 10;  // checkpoints every few hundred writes
    o.page_bytes = 4096;
    return o;
  }
  const Comparator* order() const { return GetParam(); }

  // Every key in order both ways, a few seeks, and every value.
  void Check(DB* db, const Model& model, uint64_t seed) {
    std::unique_ptr<Iterator> it = db->NewIterator(ReadOptions());
    ASSERT_NO_FATAL_FAILURE(test::ExpectScansMatch(it.get(), model, seed));
    std::mt19937_64 rng(seed);
    for (int i = 0; i < 200; ++i) {
      const std::string t = MakeKey(order(), rng);
      it->Seek(t);
      const auto want = model.lower_bound(t);
      ASSERT_EQ(it->Valid(), want != model.end()) << "seek " << t << " seed " << seed;
      if (want != model.end()) {
        ASSERT_EQ(it->key(), want->first) << "seek " << t;
      }
      std::string v;
      const auto found = model.find(t);
      Status s = db->Get(ReadOptions(), t, &v);
      if (found == model.end()) {
        ASSERT_TRUE(s.IsNotFound()) << t << ": " << s.ToString();
      } else {
        ASSERT_OK(s);
        ASSERT_EQ(v, found->second) << t;
      }
    }
  }

  // Puts, deletes, range deletes and batches against the model, across
  // checkpoints and reopens (the tree and the log's replay), then Verify.
  // Values of up to `max_value` bytes; `min_checkpoints`: how many the
  // budget must have forced in each session before its close.
  void RunAgainstModel(const Options& options, size_t max_value = 100,
                       uint64_t min_checkpoints = 0);

  test::TempDir dir_;
  std::string path_;
};

void OrderedDBTest::RunAgainstModel(const Options& options, size_t max_value,
                                    uint64_t min_checkpoints) {
  const uint64_t seed = test::TestSeed();
  std::mt19937_64 rng(seed);
  Model model(test::OrderLess{order()});
  for (int session = 0; session < 3; ++session) {
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(options, path_, &db));
    Check(db.get(), model, seed + session);
    for (int i = 0; i < 6000; ++i) {
      const std::string k = MakeKey(order(), rng);
      const int op = static_cast<int>(rng() % 100);
      if (op < 70) {
        std::string v = test::HalfRandomValue(rng());
        while (v.size() < max_value) v += test::HalfRandomValue(rng());
        v.resize(rng() % max_value);
        ASSERT_OK(db->Put(WriteOptions(), k, v));
        model.erase(k);  // a key the order calls equal takes the new bytes
        model.emplace(k, v);
      } else if (op < 95) {
        ASSERT_OK(db->Delete(WriteOptions(), k));
        model.erase(k);
      } else if (op < 97) {
        // About 20 keys of the model from k on.
        const std::string begin = k;
        auto last = model.lower_bound(begin);
        for (int j = 0; j < 20 && last != model.end(); ++j) ++last;
        const std::string end = last == model.end() ? MakeKey(order(), rng) : last->first;
        if (order()->Compare(begin, end) > 0) continue;
        ASSERT_OK(db->DeleteRange(WriteOptions(), begin, end));
        model.erase(model.lower_bound(begin), model.lower_bound(end));
      } else {
        WriteBatch batch;
        std::map<std::string, std::optional<std::string>, test::OrderLess> changes(
            test::OrderLess{order()});
        for (int j = 0; j < 10; ++j) {
          const std::string bk = MakeKey(order(), rng);
          if (rng() % 4 == 0) {
            ASSERT_OK(batch.Delete(bk));
            changes.erase(bk);
            changes.emplace(bk, std::nullopt);
          } else {
            const std::string v = "batch" + std::to_string(j);
            ASSERT_OK(batch.Put(bk, v));
            changes.erase(bk);
            changes.emplace(bk, v);
          }
        }
        ASSERT_OK(db->Write(WriteOptions(), &batch));
        for (const auto& [bk, v] : changes) {
          model.erase(bk);
          if (v) model.emplace(bk, *v);
        }
      }
    }
    Check(db.get(), model, seed + 100 + session);
    if (session == 1) ASSERT_OK(db->Checkpoint());
    VerifyReport report;
    ASSERT_OK(db->Verify(&report));
    DBStats st;
    ASSERT_OK(db->GetStats(&st));
    EXPECT_EQ(st.memory_limit_errors, 0u);
    EXPECT_GE(st.checkpoints, min_checkpoints);
    if (options.memory_budget_bytes != 0) {
      EXPECT_LE(st.pool.high_water_bytes, options.memory_budget_bytes);
    }
    ASSERT_OK(db->Close());
  }
  std::printf("%zu keys in %s\n", model.size(), order()->Name());
  test::ExpectPoolsReleased();
}

TEST_P(OrderedDBTest, RandomizedAgainstModel) { RunAgainstModel(DBOptions()); }

// The same under the tight budget our users run with (a few MiB above the
// cache), with checkpoints left to the budget: the memtables freeze when
// their share is full, not by the log's size.
TEST_P(OrderedDBTest, RandomizedAgainstModelUnderATightBudget) {
  Options o = DBOptions();
  o.memory_budget_bytes = o.cache_bytes + (size_t{9} << 20);
  o.checkpoint_wal_bytes = size_t{1} << 30;
  RunAgainstModel(o, /*max_value=*/4000, /*min_checkpoints=*/2);
}

// A serializable transaction's scanned range is what the order says lies
// between its ends: a write there conflicts, one outside does not. Its
// own writes merge into its reads in the order.
TEST_P(OrderedDBTest, TransactionsReadAndConflictInTheOrder) {
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(DBOptions(), path_, &db));
  std::mt19937_64 rng(7);
  Model model(test::OrderLess{order()});
  while (model.size() < 40) {
    const std::string k = MakeKey(order(), rng);
    ASSERT_OK(db->Put(WriteOptions(), k, "v"));
    model.erase(k);  // the database keeps the latest bytes of equal keys
    model.emplace(k, "v");
  }
  // Keys 10..20 of the order: the scan covers [keys[10], keys[20]].
  std::vector<std::string> keys;
  for (const auto& [k, v] : model) keys.push_back(k);
  const TransactionOptions serializable{.isolation = IsolationLevel::kSerializable};
  // A new key the order puts inside the scanned range, or after it.
  auto new_key = [&](bool inside) {
    while (true) {
      const std::string k = MakeKey(order(), rng);
      if (model.count(k) != 0) continue;
      const bool after_start = order()->Compare(k, keys[10]) > 0;
      const bool before_end = order()->Compare(k, keys[20]) < 0;
      if (inside ? after_start && before_end : !before_end && order()->Compare(k, keys[20]) > 0) {
        return k;
      }
    }
  };
  for (const bool inside : {true, false}) {
    std::unique_ptr<Transaction> txn = db->BeginTransaction(WriteOptions(), serializable);
    ASSERT_OK(txn->Put(keys[15], "mine"));
    std::unique_ptr<Iterator> it = txn->NewIterator(ReadOptions());
    int seen = 0;
    for (it->Seek(keys[10]); it->Valid() && seen <= 10; it->Next(), ++seen) {
      ASSERT_EQ(it->key(), keys[10 + seen]);
      if (seen == 5) {
        EXPECT_EQ(it->value(), "mine");
      }
    }
    ASSERT_OK(it->status());
    ASSERT_EQ(seen, 11);
    it.reset();
    const std::string other = new_key(inside);
    ASSERT_OK(db->Put(WriteOptions(), other, "other"));
    model.emplace(other, "other");
    Status s = txn->Commit();
    if (inside) {
      EXPECT_TRUE(s.IsConflict()) << other << ": " << s.ToString();
      keys.clear();  // the new key moved the ones after it
      for (const auto& [k, v] : model) keys.push_back(k);
    } else {
      EXPECT_TRUE(s.ok()) << other << ": " << s.ToString();
    }
  }
  ASSERT_OK(db->Close());
  test::ExpectPoolsReleased();
}

INSTANTIATE_TEST_SUITE_P(Orders, OrderedDBTest,
                         ::testing::Values(&reverse_order, &numeric_order, &case_folding),
                         [](const ::testing::TestParamInfo<const Comparator*>& info) {
                           return std::string(info.param->Name()).substr(5);  // past "test."
                         });

// Keys the order calls equal are one key when they come from different
// sources (the tree, a memtable, a transaction's writes), also when an
// iterator turns from Prev to Next: each source steps past the key it
// spells otherwise.
TEST(ComparatorTest, EqualKeysOfOtherBytesAreOneKeyAcrossSources) {
  test::TempDir dir;
  Options o;
  o.comparator = &case_folding;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(o, dir.Join("db"), &db));
  ASSERT_OK(db->Put(WriteOptions(), "a", "1"));
  ASSERT_OK(db->Put(WriteOptions(), "foo", "old"));
  ASSERT_OK(db->Put(WriteOptions(), "z", "2"));
  ASSERT_OK(db->Checkpoint());                       // in the tree
  ASSERT_OK(db->Put(WriteOptions(), "FOO", "new"));  // in the memtable
  std::unique_ptr<Transaction> txn = db->BeginTransaction(WriteOptions());
  ASSERT_OK(txn->Put("Z", "mine"));  // in the write set
  for (int source = 0; source < 2; ++source) {
    std::unique_ptr<Iterator> it =
        source == 0 ? db->NewIterator(ReadOptions()) : txn->NewIterator(ReadOptions());
    const std::string last = source == 0 ? "z" : "Z";
    auto expect = [&](std::string_view key, std::string_view value) {
      ASSERT_TRUE(it->Valid()) << key;
      EXPECT_EQ(it->key(), key);
      EXPECT_EQ(it->value(), value);
    };
    it->SeekToLast();
    expect(last, source == 0 ? "2" : "mine");
    it->Prev();
    expect("FOO", "new");
    it->Next();
    expect(last, source == 0 ? "2" : "mine");
    it->Next();
    EXPECT_FALSE(it->Valid());
    it->SeekToFirst();
    expect("a", "1");
    it->Next();
    expect("FOO", "new");
    it->Prev();
    expect("a", "1");
    it->Next();
    expect("FOO", "new");
    it->Next();
    expect(last, source == 0 ? "2" : "mine");
    ASSERT_OK(it->status());
  }
  ASSERT_OK(txn->Rollback());
  txn.reset();
  // A transaction that writes one key twice, spelled two ways, keeps the
  // latest spelling, as the database does.
  txn = db->BeginTransaction(WriteOptions());
  ASSERT_OK(txn->Put("q", "1"));
  ASSERT_OK(txn->Put("Q", "2"));
  ASSERT_OK(txn->Commit());
  txn.reset();
  std::unique_ptr<Iterator> it = db->NewIterator(ReadOptions());
  it->Seek("q");
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "Q");
  EXPECT_EQ(it->value(), "2");
  it.reset();
  ASSERT_OK(db->Close());
  test::ExpectPoolsReleased();
}

// Two transactions that write keys the order calls equal ("Foo", "FOO")
// and commit in one group: the second conflicts with the first, which is
// not in a memtable yet when the group is checked. A third writer holds
// the queue while both join it.
TEST(ComparatorTest, EqualKeysConflictWithinOneCommitGroup) {
  test::TempDir dir;
  Options o;
  o.comparator = &case_folding;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(o, dir.Join("db"), &db));
  ASSERT_OK(db->Put(WriteOptions(), "foo", "0"));
  std::unique_ptr<Transaction> a = db->BeginTransaction(WriteOptions());
  std::unique_ptr<Transaction> b = db->BeginTransaction(WriteOptions());
  ASSERT_OK(a->Put("Foo", "a"));
  ASSERT_OK(b->Put("FOO", "b"));

  Status sa, sb;
  const int groups =
      test::RunInOneGroup(db.get(), {[&] { sa = a->Commit(); }, [&] { sb = b->Commit(); }});
  EXPECT_EQ(groups, 2);  // the holder's, then one for both commits
  EXPECT_OK(sa);
  EXPECT_TRUE(sb.IsConflict()) << sb.ToString();
  std::string v;
  ASSERT_OK(db->Get(ReadOptions(), "fOO", &v));
  EXPECT_EQ(v, "a");
  a.reset();
  b.reset();
  ASSERT_OK(db->Close());
  test::ExpectPoolsReleased();
}

// A database records its order: opened (or repaired) in another, or in
// bytewise, it is refused with InvalidArgument naming both, and nothing is
// written; in its own order it opens and repairs to the same contents.
TEST(ComparatorTest, ADatabaseOpensOnlyInItsOwnOrder) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  Options reverse;
  reverse.comparator = &reverse_order;
  {
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(reverse, path, &db));
    for (int i = 0; i < 500; ++i) {
      ASSERT_OK(db->Put(WriteOptions(), "k" + std::to_string(i), std::to_string(i)));
    }
    ASSERT_OK(db->Close());
  }
  const std::string data = path + "/data.akv";
  const std::string before = ReadFile(data);
  Options numeric;
  numeric.comparator = &numeric_order;
  for (const Options& o : {Options(), numeric}) {
    std::unique_ptr<DB> db;
    Status s = DB::Open(o, path, &db);
    EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
    EXPECT_NE(s.message().find("test.ReverseOrder"), std::string::npos) << s.ToString();
    Options ro = o;
    ro.read_only = true;
    EXPECT_TRUE(DB::Open(ro, path, &db).IsInvalidArgument());
    RepairReport report;
    s = RepairDB(path, o, &report);
    EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
    EXPECT_NE(s.message().find("test.ReverseOrder"), std::string::npos) << s.ToString();
  }
  EXPECT_EQ(ReadFile(data), before);
  EXPECT_FALSE(fs::exists(path + "/lost"));
  RepairReport report;
  ASSERT_OK(RepairDB(path, reverse, &report));
  EXPECT_EQ(report.keys, 500u);
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(reverse, path, &db));
  VerifyReport verify;
  ASSERT_OK(db->Verify(&verify));
  std::unique_ptr<Iterator> it = db->NewIterator(ReadOptions());
  it->SeekToFirst();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "k99");  // the greatest bytes come first
  EXPECT_EQ(it->value(), "99");
  it.reset();
  ASSERT_OK(db->Close());
  test::ExpectPoolsReleased();
}

}  // namespace
}  // namespace arenakv
