// LeafHeadTable: heads kept, found whole and forgotten; a head longer than a
// slot is not kept; a full set gives up one way; readers racing writers
// never take a torn head. (The page cache's use of it: page_cache_test.)
#include "tree/leaf_head_table.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace arenakv::tree {
namespace {

// The head kept for `address` in these tests: its bytes and length follow
// from the address, so a reader can tell a torn copy.
std::string HeadOf(uint64_t address) {
  std::string head(16 + address % (LeafHeadTable::kMaxHeadBytes - 16), '\0');
  std::mt19937_64 rng(address);
  for (char& c : head) c = static_cast<char>(rng());
  return head;
}

class LeafHeadTableTest : public ::testing::Test {
 protected:
  void Make(size_t sets) {
    memory_.reset(
        static_cast<char*>(::operator new (LeafHeadTable::BytesFor(sets), std::align_val_t{64})));
    table_ = std::make_unique<LeafHeadTable>(memory_.get(), sets);
  }
  // The head Find gives for `address`, or "" for none.
  std::string Found(uint64_t address) {
    char out[LeafHeadTable::kMaxHeadBytes];
    size_t n = 0;
    if (!table_->Find(address, out, &n)) return "";
    return std::string(out, n);
  }

  struct AlignedDelete {
    void operator()(char* p) const { ::operator delete (p, std::align_val_t{64}); }
  };
  std::unique_ptr<char, AlignedDelete> memory_;
  std::unique_ptr<LeafHeadTable> table_;
};

TEST_F(LeafHeadTableTest, KeepsFindsAndForgetsHeads) {
  Make(64);
  for (uint64_t a = 1; a <= 40; ++a) table_->Insert(a * 977, HeadOf(a * 977));
  int kept = 0;
  for (uint64_t a = 1; a <= 40; ++a) {
    const std::string found = Found(a * 977);
    if (found.empty()) continue;  // its set was full
    ++kept;
    EXPECT_EQ(found, HeadOf(a * 977)) << a;
  }
  EXPECT_GT(kept, 30);
  EXPECT_EQ(Found(5), "");  // never kept
  table_->Erase(977);
  EXPECT_EQ(Found(977), "");
  table_->Insert(977, HeadOf(977));
  EXPECT_EQ(Found(977), HeadOf(977));
  table_->Clear();
  for (uint64_t a = 1; a <= 40; ++a) EXPECT_EQ(Found(a * 977), "") << a;
}

TEST_F(LeafHeadTableTest, AHeadLongerThanASlotIsNotKept) {
  Make(4);
  table_->Insert(7, std::string(LeafHeadTable::kMaxHeadBytes + 1, 'x'));
  EXPECT_EQ(Found(7), "");
  const std::string longest(LeafHeadTable::kMaxHeadBytes, 'y');
  table_->Insert(7, longest);
  EXPECT_EQ(Found(7), longest);
}

// One set: two heads fit, a third replaces one of them, and the ways are
// taken by turns: the next replacement takes the other way.
TEST_F(LeafHeadTableTest, AFullSetGivesUpOneWay) {
  Make(1);
  table_->Insert(11, HeadOf(11));
  table_->Insert(22, HeadOf(22));
  EXPECT_EQ(Found(11), HeadOf(11));
  EXPECT_EQ(Found(22), HeadOf(22));
  table_->Insert(33, HeadOf(33));
  EXPECT_EQ(Found(33), HeadOf(33));
  EXPECT_NE(Found(11).empty(), Found(22).empty()) << "one of the two stays";
  table_->Insert(44, HeadOf(44));
  EXPECT_EQ(Found(44), HeadOf(44));
  EXPECT_EQ(Found(33), HeadOf(33)) << "the other way went this time";
}

// Writers keep replacing and erasing the heads of one small set while
// readers look them up: every head a reader is given is the whole head of
// the address it asked for.
TEST_F(LeafHeadTableTest, ReadersNeverTakeATornHead) {
  Make(1);
  constexpr int kRounds = 20000;
  std::atomic<int> writers_done{0};
  std::atomic<uint64_t> found{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < 2; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < kRounds; ++i) {
        const uint64_t a = 1 + (i * 2 + w) % 7;
        if (i % 5 == 4) {
          table_->Erase(a);
        } else {
          table_->Insert(a, HeadOf(a));
        }
      }
      writers_done.fetch_add(1);
    });
  }
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&] {
      char out[LeafHeadTable::kMaxHeadBytes];
      uint64_t a = 1;
      while (writers_done.load() < 2) {
        size_t n = 0;
        if (table_->Find(a, out, &n)) {
          found.fetch_add(1);
          ASSERT_EQ(std::string(out, n), HeadOf(a)) << "address " << a;
        }
        a = a % 7 + 1;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  // Whether readers met heads depends on the schedule; the set's end state
  // does not: every address is either kept whole or not at all.
  for (uint64_t a = 1; a <= 7; ++a) {
    const std::string f = Found(a);
    if (!f.empty()) {
      EXPECT_EQ(f, HeadOf(a));
    }
  }
}

}  // namespace
}  // namespace arenakv::tree
