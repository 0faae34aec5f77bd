// Helpers for the B+tree tests: a pool + database arena that checks the
// process's pool accounting is back to zero when it goes away, and an
// InternalIterator over a sorted vector of changes.
#ifndef ARENAKV_TESTS_ENGINE_TREE_TEST_UTIL_H_
#define ARENAKV_TESTS_ENGINE_TREE_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "arenakv/alloc/arena.h"
#include "arenakv/alloc/segment_pool.h"
#include "util/internal_iterator.h"

namespace arenakv::test {

// A pool and a shared "db" arena. Close() (or the destructor) closes both and
// checks that nothing stays mapped in the process.
class TreeArena {
 public:
  explicit TreeArena(alloc::PoolOptions po = {}) {
    EXPECT_TRUE(alloc::SegmentPool::Create(po, &pool_).ok());
    EXPECT_TRUE(
        alloc::Arena::Create(pool_, {.name = "db", .kind = alloc::ArenaKind::kShared}, &arena_)
            .ok());
  }
  ~TreeArena() { Close(); }
  alloc::Arena* arena() { return arena_.get(); }
  alloc::SegmentPool* pool() { return pool_.get(); }
  void Close() {
    if (pool_ == nullptr) return;
    arena_.reset();
    EXPECT_TRUE(pool_->Close().ok());
    pool_.reset();
    alloc::ProcessPoolStats ps = alloc::GetProcessPoolStats();
    EXPECT_EQ(ps.mapped_bytes, 0u);
    EXPECT_EQ(ps.live_pools, 0u);
  }

 private:
  std::shared_ptr<alloc::SegmentPool> pool_;
  std::unique_ptr<alloc::Arena> arena_;
};

// Sorted changes: a value, or std::nullopt for a tombstone.
class VectorChanges final : public InternalIterator {
 public:
  using Entry = std::pair<std::string, std::optional<std::string>>;
  explicit VectorChanges(std::vector<Entry> entries) : e_(std::move(entries)) {}
  explicit VectorChanges(const std::map<std::string, std::optional<std::string>>& m)
      : e_(m.begin(), m.end()) {}

  bool Valid() const override { return i_ < e_.size(); }
  void SeekToFirst() override { i_ = 0; }
  void SeekToLast() override { i_ = e_.empty() ? 0 : e_.size() - 1; }
  void Seek(std::string_view t) override {
    i_ = 0;
    while (i_ < e_.size() && e_[i_].first < t) ++i_;
  }
  void Next() override { ++i_; }
  void Prev() override { i_ = i_ == 0 ? e_.size() : i_ - 1; }
  std::string_view key() const override { return e_[i_].first; }
  std::string_view value() const override {
    return e_[i_].second ? std::string_view(*e_[i_].second) : std::string_view();
  }
  bool is_tombstone() const override { return !e_[i_].second.has_value(); }
  Status status() const override { return Status::OK(); }

 private:
  std::vector<Entry> e_;
  size_t i_ = 0;
};

}  // namespace arenakv::test

#endif  // ARENAKV_TESTS_ENGINE_TREE_TEST_UTIL_H_
