// VectorChanges: an InternalIterator over sorted changes held in a vector,
// what a checkpoint consumes, for the tree tests and the tree fuzz target
// (which is why it needs no GoogleTest).
//
// Thread safety: one thread at a time, like every InternalIterator.
#ifndef ARENAKV_TESTS_ENGINE_VECTOR_CHANGES_H_
#define ARENAKV_TESTS_ENGINE_VECTOR_CHANGES_H_

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "arenakv/comparator.h"
#include "util/internal_iterator.h"

namespace arenakv::test {

// Sorted changes: a value, or std::nullopt for a tombstone; sorted in
// `order` (nullptr: bytewise), which Seek searches by.
class VectorChanges final : public InternalIterator {
 public:
  using Entry = std::pair<std::string, std::optional<std::string>>;
  explicit VectorChanges(std::vector<Entry> entries, const Comparator* order = nullptr)
      : e_(std::move(entries)), order_(order) {}
  template <typename Less>
  explicit VectorChanges(const std::map<std::string, std::optional<std::string>, Less>& m,
                         const Comparator* order = nullptr)
      : e_(m.begin(), m.end()), order_(order) {}

  bool Valid() const override { return i_ < e_.size(); }
  void SeekToFirst() override { i_ = 0; }
  void SeekToLast() override { i_ = e_.empty() ? 0 : e_.size() - 1; }
  void Seek(std::string_view t) override {
    i_ = 0;
    while (i_ < e_.size() &&
           (order_ != nullptr ? order_->Compare(e_[i_].first, t) < 0 : e_[i_].first < t)) {
      ++i_;
    }
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
  const Comparator* order_;
  size_t i_ = 0;
};

}  // namespace arenakv::test

#endif  // ARENAKV_TESTS_ENGINE_VECTOR_CHANGES_H_
