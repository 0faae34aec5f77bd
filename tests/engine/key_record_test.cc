// KeyRecord answers validation's two questions exactly as the memtable it
// was built from: the latest sequence of a key, and whether a range was
// written after a sequence.
#include "db/key_record.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "arenakv/alloc/arena.h"
#include "arenakv/alloc/segment_pool.h"
#include "db_test_util.h"
#include "mem/memtable.h"
#include "test_util.h"

namespace arenakv {
namespace {

class KeyRecordTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(alloc::SegmentPool::Create(alloc::PoolOptions(), &pool_));
    ASSERT_OK(alloc::Arena::Create(pool_, {.name = "test"}, &arena_));
  }
  void TearDown() override {
    arena_->Close();
    ASSERT_OK(pool_->Close());
  }

  std::shared_ptr<alloc::SegmentPool> pool_;
  std::unique_ptr<alloc::Arena> arena_;
};

std::string Key(int i) { return "key" + std::to_string(i); }

TEST_F(KeyRecordTest, AnswersAsTheMemtableDoes) {
  std::mt19937_64 rng(test::TestSeed());
  std::unique_ptr<mem::MemTable> table;
  ASSERT_OK(mem::MemTable::Create(arena_.get(), 1, &table));
  uint64_t seq = 100;
  for (int i = 0; i < 3000; ++i) {
    const std::string k = Key(static_cast<int>(rng() % 1000));
    const auto type = rng() % 5 == 0 ? mem::ValueType::kDeletion : mem::ValueType::kValue;
    ASSERT_OK(table->Add(++seq, type, k, type == mem::ValueType::kValue ? "v" : ""));
  }
  std::atomic<size_t> gauge{0};
  std::unique_ptr<KeyRecord> record;
  ASSERT_OK(KeyRecord::Build(*table, std::pmr::new_delete_resource(), &gauge, &record));
  EXPECT_EQ(gauge.load(), record->bytes());
  EXPECT_GT(record->count(), 0u);
  EXPECT_LE(record->count(), 1000u);
  for (int i = 0; i < 1100; ++i) {  // a hundred keys that were never written
    EXPECT_EQ(record->LatestSequence(Key(i)), table->LatestSequence(Key(i))) << Key(i);
  }
  EXPECT_EQ(record->LatestSequence(""), 0u);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string begin = Key(static_cast<int>(rng() % 1100));
    std::string end = Key(static_cast<int>(rng() % 1100));
    if (end < begin) std::swap(begin, end);
    const KeyRange range{begin, end, rng() % 4 == 0, rng() % 4 == 0};
    const uint64_t after = 100 + rng() % 3100;
    EXPECT_EQ(record->WrittenInRangeAfter(range, after), table->WrittenInRangeAfter(range, after))
        << "[" << begin << ", " << end << "] from_first " << range.from_first << " to_last "
        << range.to_last << " after " << after;
  }
  record.reset();
  EXPECT_EQ(gauge.load(), 0u);
}

TEST_F(KeyRecordTest, EmptyMemtable) {
  std::unique_ptr<mem::MemTable> table;
  ASSERT_OK(mem::MemTable::Create(arena_.get(), 1, &table));
  std::unique_ptr<KeyRecord> record;
  ASSERT_OK(KeyRecord::Build(*table, std::pmr::new_delete_resource(), nullptr, &record));
  EXPECT_EQ(record->count(), 0u);
  EXPECT_EQ(record->LatestSequence("a"), 0u);
  EXPECT_FALSE(record->WrittenInRangeAfter({.from_first = true, .to_last = true}, 0));
}

// A memory resource that has nothing to give.
class EmptyResource final : public std::pmr::memory_resource {
  void* do_allocate(size_t, size_t) override { throw std::bad_alloc(); }
  void do_deallocate(void*, size_t, size_t) override {}
  bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override {
    return this == &o;
  }
};

TEST_F(KeyRecordTest, NoMemoryIsMemoryLimit) {
  std::unique_ptr<mem::MemTable> table;
  ASSERT_OK(mem::MemTable::Create(arena_.get(), 1, &table));
  ASSERT_OK(table->Add(1, mem::ValueType::kValue, "k", "v"));
  EmptyResource empty;
  std::atomic<size_t> gauge{0};
  std::unique_ptr<KeyRecord> record;
  Status s = KeyRecord::Build(*table, &empty, &gauge, &record);
  EXPECT_TRUE(s.IsMemoryLimit()) << s.ToString();
  EXPECT_EQ(record, nullptr);
  EXPECT_EQ(gauge.load(), 0u);
}

}  // namespace
}  // namespace arenakv
