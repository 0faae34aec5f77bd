// The B+tree in a user's key order: checkpoints build pages in it (splits,
// merges, separators, erased ranges), reads find keys in it (cached pages,
// leaves read block by block, cursors both ways and Seek), Verify checks
// it, and all of it again after a reopen. Against a std::map kept in the
// same order, for reverse bytewise, numeric and case-folding orders.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <optional>
#include <random>
#include <string>

#include "arenakv/env.h"
#include "test_orders.h"
#include "test_util.h"
#include "tree/btree.h"
#include "tree_test_util.h"

namespace arenakv::tree {
namespace {

using test::OrderLess;
using Model = std::map<std::string, std::string, OrderLess>;
using Batch = std::map<std::string, std::optional<std::string>, OrderLess>;

struct OrderCase {
  const char* name;
  const Comparator* order;
  size_t page_bytes;
};

test::ReverseOrder reverse_order;
test::NumericOrder numeric_order;
test::CaseFolding case_folding;
test::ShortReverseOrder short_reverse;
test::LongSeparatorOrder long_separator;

// A key the order has something to say about: numbers of 1 to 7 digits for
// the numeric order (so neighbours share no prefix their range's ends
// share), mixed-case words for case folding, else zero-padded numbers with
// a varying tail.
std::string MakeKey(const Comparator* order, std::mt19937_64& rng) {
  if (order == &numeric_order) return std::to_string(rng() % (uint64_t{1} << (rng() % 23)));
  if (order == &case_folding) {
    std::string k(1 + rng() % 6, ' ');
    for (char& c : k) c = static_cast<char>((rng() % 2 ? 'a' : 'A') + rng() % 4);
    return k;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "key%06llu", static_cast<unsigned long long>(rng() % 30000));
  return std::string(buf) + std::string(rng() % 3, 'x');
}

class BTreeOrderTest : public ::testing::TestWithParam<OrderCase> {
 protected:
  void SetUp() override { path_ = dir_.Join("data.akv"); }
  void TearDown() override {
    if (tree_ != nullptr) EXPECT_OK(tree_->Close());
    tree_.reset();
    arena_.Close();
  }

  TreeOptions Options() const {
    TreeOptions o;
    o.page_bytes = GetParam().page_bytes;
    o.cache_bytes = 256 << 10;  // most leaves are read from the file, block by block
    o.order = KeyOrder(GetParam().order);
    o.comparator = GetParam().order->Name();
    return o;
  }
  void Open() {
    ASSERT_OK(BTree::Open(Env::Default().get(), path_, true, Options(), arena_.arena(), &tree_));
  }
  void Reopen() {
    ASSERT_OK(tree_->Close());
    tree_.reset();
    Open();
  }

  // Applies `batch` (and the keys of `erase`, when given) to the tree and
  // to the model.
  void Apply(const Batch& batch, Model* model, const EraseRange* erase = nullptr) {
    test::VectorChanges changes(batch, GetParam().order);
    CheckpointResult r;
    ASSERT_OK(tree_->Checkpoint(&changes, tree_->meta().last_sequence + 1, 7, &r, erase));
    const Comparator* order = GetParam().order;
    if (erase != nullptr) {
      for (auto it = model->lower_bound(std::string(erase->begin));
           it != model->end() && order->Compare(it->first, erase->end) < 0;) {
        it = model->erase(it);
      }
    }
    for (const auto& [k, v] : batch) {
      const bool erased = erase != nullptr && order->Compare(k, erase->begin) >= 0 &&
                          order->Compare(k, erase->end) < 0;
      if (erased) continue;
      if (v) {
        // A key equal in the order replaces the model's, bytes and all.
        model->erase(k);
        model->emplace(k, *v);
      } else {
        model->erase(k);
      }
    }
    EXPECT_EQ(r.meta.key_count, model->size());
    tree_->ReleasePages(r.obsolete);
  }

  void CheckAll(const Model& model, uint64_t seed) {
    const uint64_t root = tree_->meta().root;
    std::string v;
    bool found = false;
    for (const auto& [k, val] : model) {
      ASSERT_OK(tree_->Get(root, k, &v, &found));
      ASSERT_TRUE(found) << k << " seed " << seed;
      ASSERT_EQ(v, val) << k << " seed " << seed;
    }
    auto it = tree_->NewIterator(root);
    ASSERT_NO_FATAL_FAILURE(test::ExpectScansMatch(it.get(), model, seed));
    VerifyStats vs;
    ASSERT_OK(tree_->Verify(&vs));
    EXPECT_EQ(vs.keys, model.size());
  }

  test::TempDir dir_;
  std::string path_;
  test::TreeArena arena_;
  std::unique_ptr<BTree> tree_;
};

TEST_P(BTreeOrderTest, RandomizedAgainstModel) {
  const uint64_t seed = test::TestSeed();
  std::mt19937_64 rng(seed);
  const Comparator* order = GetParam().order;
  Open();
  Model model(OrderLess{order});
  for (int round = 1; round <= 24; ++round) {
    Batch b(OrderLess{order});
    const size_t n = 1 + rng() % (round % 5 == 0 ? 6000 : 1500);
    const bool deletes = round % 4 == 0;
    for (size_t i = 0; i < n; ++i) {
      std::string k = MakeKey(order, rng);
      if (deletes ? rng() % 10 < 7 : rng() % 10 < 1) {
        b.insert_or_assign(std::move(k), std::nullopt);
      } else {
        b.insert_or_assign(std::move(k), test::HalfRandomValue(rng()).substr(0, rng() % 101));
      }
    }
    std::optional<EraseRange> erase;
    std::string lo = MakeKey(order, rng), hi = MakeKey(order, rng);
    if (round % 6 == 0 && order->Compare(lo, hi) != 0) {
      if (order->Compare(lo, hi) > 0) std::swap(lo, hi);
      erase = EraseRange{lo, hi};
    }
    Apply(b, &model, erase ? &*erase : nullptr);
    // Point reads of keys in and out of the tree.
    const uint64_t root = tree_->meta().root;
    for (int i = 0; i < 500; ++i) {
      const std::string k = MakeKey(order, rng);
      std::string v;
      bool found = false;
      ASSERT_OK(tree_->Get(root, k, &v, &found));
      const auto m = model.find(k);
      ASSERT_EQ(found, m != model.end()) << k << " seed " << seed;
      if (found) {
        ASSERT_EQ(v, m->second) << k << " seed " << seed;
      }
    }
    // Seeks, each followed by a few steps either way.
    auto it = tree_->NewIterator(root);
    for (int i = 0; i < 100; ++i) {
      const std::string t = MakeKey(order, rng);
      it->Seek(t);
      auto m = model.lower_bound(t);
      for (int step = 0; step < 8; ++step) {
        ASSERT_EQ(it->Valid(), m != model.end()) << "seek " << t << " seed " << seed;
        if (m == model.end()) break;
        ASSERT_EQ(it->key(), m->first) << "seek " << t << " seed " << seed;
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
    if (round % 8 == 0) {
      CheckAll(model, seed);
      Reopen();
      ASSERT_EQ(tree_->meta().key_count, model.size());
    }
  }
  CheckAll(model, seed);
  if (order == &short_reverse) {
    EXPECT_GT(short_reverse.calls.load(), 0u);  // its separators were asked for
  }
}

INSTANTIATE_TEST_SUITE_P(Orders, BTreeOrderTest,
                         ::testing::Values(OrderCase{"Reverse", &reverse_order, 4096},
                                           OrderCase{"Reverse16K", &reverse_order, 16384},
                                           OrderCase{"Numeric", &numeric_order, 4096},
                                           OrderCase{"Numeric16K", &numeric_order, 16384},
                                           OrderCase{"CaseFolding", &case_folding, 4096},
                                           OrderCase{"ShortSeparators", &short_reverse, 4096},
                                           OrderCase{"LongSeparators", &long_separator, 4096}),
                         [](const ::testing::TestParamInfo<OrderCase>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace arenakv::tree
