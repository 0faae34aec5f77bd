#include "mem/merging_iterator.h"

#include <string>
#include <string_view>
#include <utility>

namespace arenakv::mem {

namespace {

// Invariants, with K the current key:
//  forward: every child is invalid or at its first key >= K;
//  reverse: every child is invalid or at its last key <= K.
// The current child is the lowest-index child positioned at K. A step moves
// every child sitting at K, so lower-priority duplicates are passed over.
class MergingIterator final : public InternalIterator {
 public:
  explicit MergingIterator(std::vector<std::unique_ptr<InternalIterator>> children)
      : children_(std::move(children)) {}

  bool Valid() const override { return current_ != nullptr && !error_; }

  void SeekToFirst() override {
    for (auto& c : children_) c->SeekToFirst();
    direction_ = kForward;
    FindSmallest();
  }

  void SeekToLast() override {
    for (auto& c : children_) c->SeekToLast();
    direction_ = kReverse;
    FindLargest();
  }

  void Seek(std::string_view target) override {
    for (auto& c : children_) c->Seek(target);
    direction_ = kForward;
    FindSmallest();
  }

  void Next() override {
    if (direction_ != kForward) {
      // Children are at or before K: bring each to its first key > K.
      saved_key_.assign(current_->key());
      const std::string_view k = saved_key_;
      for (auto& c : children_) {
        c->Seek(k);
        if (c->Valid() && c->key() == k) c->Next();
      }
      direction_ = kForward;
    } else {
      const std::string_view k = current_->key();
      // Others first: k points into current_, which must not move yet.
      for (auto& c : children_) {
        if (c.get() != current_ && c->Valid() && c->key() == k) c->Next();
      }
      current_->Next();
    }
    FindSmallest();
  }

  void Prev() override {
    if (direction_ != kReverse) {
      // Children are at or after K: bring each to its last key < K.
      saved_key_.assign(current_->key());
      const std::string_view k = saved_key_;
      for (auto& c : children_) {
        c->Seek(k);
        if (c->Valid()) {
          c->Prev();
        } else if (c->status().ok()) {
          c->SeekToLast();  // every key of this child is < K
        }
      }
      direction_ = kReverse;
    } else {
      const std::string_view k = current_->key();
      for (auto& c : children_) {
        if (c.get() != current_ && c->Valid() && c->key() == k) c->Prev();
      }
      current_->Prev();
    }
    FindLargest();
  }

  std::string_view key() const override { return current_->key(); }
  std::string_view value() const override { return current_->value(); }
  bool is_tombstone() const override { return current_->is_tombstone(); }

  Status status() const override {
    for (const auto& c : children_) {
      Status s = c->status();
      if (!s.ok()) return s;
    }
    return Status::OK();
  }

 private:
  enum Direction { kForward, kReverse };

  // Ties go to the lowest index: strict comparisons, scanning in order.
  void FindSmallest() {
    current_ = nullptr;
    for (auto& c : children_) {
      if (!c->Valid()) continue;
      if (current_ == nullptr || c->key() < current_->key()) current_ = c.get();
    }
    CheckErrors();
  }

  void FindLargest() {
    current_ = nullptr;
    for (auto& c : children_) {
      if (!c->Valid()) continue;
      if (current_ == nullptr || c->key() > current_->key()) current_ = c.get();
    }
    CheckErrors();
  }

  // A child that failed is invalid; skipping it would silently drop its keys,
  // so the whole merge stops.
  void CheckErrors() {
    error_ = false;
    for (auto& c : children_) {
      if (!c->Valid() && !c->status().ok()) {
        error_ = true;
        return;
      }
    }
  }

  std::vector<std::unique_ptr<InternalIterator>> children_;
  InternalIterator* current_ = nullptr;
  Direction direction_ = kForward;
  bool error_ = false;
  std::string saved_key_;  // K while children are repositioned
};

}  // namespace

std::unique_ptr<InternalIterator> NewMergingIterator(
    std::vector<std::unique_ptr<InternalIterator>> children) {
  // One source merges to itself.
  if (children.size() == 1) return std::move(children[0]);
  return std::make_unique<MergingIterator>(std::move(children));
}

}  // namespace arenakv::mem
