// ReadMap: the data file read through mappings charged to a budget. Reads
// through it see what pread sees; the charge follows what is mapped; a
// drop gives pages and charge back while readers go on; a file that grows
// gets a new mapping and readers of the old one are unharmed.
#include "tree/read_map.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "arenakv/env.h"
#include "test_util.h"

namespace arenakv::tree {
namespace {

// A budget of `capacity` bytes that counts what is charged.
struct CountingBudget {
  explicit CountingBudget(size_t capacity) : capacity(capacity) {}
  ReadMap::Budget budget() {
    return {[this](size_t b) {
              if (charged.load() + b > capacity) return false;
              charged.fetch_add(b);
              return true;
            },
            [this](size_t b) { charged.fetch_sub(b); }};
  }
  size_t capacity;
  std::atomic<size_t> charged{0};
};

// Byte i of the file is a function of i.
char ByteAt(uint64_t i) { return static_cast<char>((i * 2654435761u) >> 13); }

class ReadMapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(Env::Default()->OpenFile(dir_.Join("f"), OpenMode::kCreate, &file_));
  }
  // Grows the file to `bytes`.
  void Grow(uint64_t bytes) {
    std::string chunk;
    for (uint64_t i = size_; i < bytes; ++i) chunk.push_back(ByteAt(i));
    ASSERT_OK(file_->Write(size_, chunk));
    size_ = bytes;
  }
  // Every read of [offset, offset + n) that the map serves holds the file's
  // bytes; returns how many it served.
  int CheckReads(const ReadMap& map, uint64_t seed, int count) {
    std::mt19937_64 rng(seed);
    int served = 0;
    std::string buf(4096, '\0');
    for (int i = 0; i < count; ++i) {
      const uint64_t offset = rng() % size_;
      const size_t n = 1 + rng() % 4096;
      const char* view = map.View(offset, n);  // the same bytes, in place
      if (!map.Read(offset, n, buf.data())) {
        EXPECT_GT(offset + n, map.mapped_bytes()) << "a mapped range was refused";
        EXPECT_EQ(view, nullptr) << "a view of bytes the map does not read";
        continue;
      }
      ++served;
      if (view == nullptr) {
        ADD_FAILURE() << "no view of a range the map reads (seed " << seed << ")";
        return served;
      }
      for (size_t j = 0; j < n; ++j) {
        if (buf[j] != ByteAt(offset + j) || view[j] != buf[j]) {
          ADD_FAILURE() << "byte " << offset + j << " differs (seed " << seed << ")";
          return served;
        }
      }
    }
    return served;
  }

  test::TempDir dir_;
  std::unique_ptr<File> file_;
  uint64_t size_ = 0;
};

TEST_F(ReadMapTest, MapsOnlyFilesLargerThanTheCacheAndWithinTheBudget) {
  CountingBudget budget(1 << 20);
  {
    ReadMap map(file_.get(), /*min_file_bytes=*/64 << 10, budget.budget());
    Grow(60 << 10);
    map.Cover(size_);
    EXPECT_EQ(map.mapped_bytes(), 0u) << "a file the cache holds";
    Grow(300 << 10);
    map.Cover(size_);
    EXPECT_EQ(map.mapped_bytes(), size_);
    EXPECT_EQ(budget.charged.load(), size_);
    EXPECT_GT(CheckReads(map, 1, 2000), 1900);
    Grow(2 << 20);  // over the budget: the old mapping stays in use
    map.Cover(size_);
    EXPECT_EQ(map.mapped_bytes(), 300u << 10);
    EXPECT_EQ(budget.charged.load(), 300u << 10);
    CheckReads(map, 2, 2000);
  }
  EXPECT_EQ(budget.charged.load(), 0u) << "the map's destruction returns its charge";
}

TEST_F(ReadMapTest, GrowsByAnEighthAndDropsWhatItReplaced) {
  CountingBudget budget(64 << 20);
  ReadMap map(file_.get(), 0, budget.budget());
  Grow(1 << 20);
  map.Cover(size_);
  ASSERT_EQ(map.mapped_bytes(), 1u << 20);
  Grow((1 << 20) + (64 << 10));  // less than an eighth more
  map.Cover(size_);
  EXPECT_EQ(map.mapped_bytes(), 1u << 20);
  EXPECT_GT(CheckReads(map, 3, 2000), 0);
  Grow(2 << 20);
  map.Cover(size_);
  EXPECT_EQ(map.mapped_bytes(), 2u << 20);
  EXPECT_EQ(budget.charged.load(), 2u << 20) << "only the mapping in use is charged";
  EXPECT_GT(CheckReads(map, 4, 2000), 1900);
}

TEST_F(ReadMapTest, DropGivesTheChargeBackAndCoverUsesTheMappingAgain) {
  CountingBudget budget(64 << 20);
  ReadMap map(file_.get(), 0, budget.budget());
  Grow(1 << 20);
  map.Cover(size_);
  const char* view = map.View(4096, 100);
  ASSERT_NE(view, nullptr);
  EXPECT_EQ(map.Drop(), 1u << 20);
  EXPECT_EQ(map.mapped_bytes(), 0u);
  EXPECT_EQ(map.View(4096, 100), nullptr);
  // A view taken before stays readable: the pages come back from the file.
  for (size_t j = 0; j < 100; ++j) ASSERT_EQ(view[j], ByteAt(4096 + j)) << j;
  EXPECT_EQ(budget.charged.load(), 0u);
  EXPECT_EQ(CheckReads(map, 5, 200), 0) << "no read through a dropped map";
  EXPECT_EQ(map.Drop(), 0u);
  map.Cover(size_);
  EXPECT_EQ(map.mapped_bytes(), 1u << 20);
  EXPECT_EQ(budget.charged.load(), 1u << 20);
  EXPECT_GT(CheckReads(map, 6, 2000), 1900);
}

// Readers copy while another thread grows the file, covers and drops: every
// byte a reader gets is the file's (ThreadSanitizer checks the publication).
TEST_F(ReadMapTest, ReadersRaceCoverAndDrop) {
  CountingBudget budget(256 << 20);
  ReadMap map(file_.get(), 0, budget.budget());
  Grow(256 << 10);
  map.Cover(size_);
  const uint64_t readable = size_;  // readers stay below what exists at the start
  std::atomic<bool> stop{false};
  std::atomic<bool> bad{false};
  std::atomic<int> rounds_seen{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      std::mt19937_64 rng(100 + t);
      char buf[512];
      while (!stop.load()) {
        const uint64_t offset = rng() % (readable - sizeof(buf));
        if (map.Read(offset, sizeof(buf), buf)) {
          for (size_t j = 0; j < sizeof(buf); ++j) {
            if (buf[j] != ByteAt(offset + j)) bad = true;
          }
        }
        rounds_seen.fetch_add(1);
      }
    });
  }
  const int rounds = test::UnderSanitizer() ? 20 : 100;
  for (int i = 0; i < rounds; ++i) {
    const int seen = rounds_seen.load();
    while (rounds_seen.load() < seen + 10) std::this_thread::yield();
    Grow(size_ + (64 << 10));
    map.Cover(size_);
    if (i % 3 == 0) map.Drop();
  }
  stop = true;
  for (auto& r : readers) r.join();
  EXPECT_FALSE(bad.load());
  map.Drop();
  EXPECT_EQ(budget.charged.load(), 0u);
}

}  // namespace
}  // namespace arenakv::tree
