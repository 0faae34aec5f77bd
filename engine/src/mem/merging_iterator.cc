#include "mem/merging_iterator.h"

#include <string>
#include <string_view>
#include <utility>

#include "util/key_compare.h"

namespace arenakv::mem {

namespace {

// Invariants, with K the current key:
//  forward: every child is invalid or at its first key >= K;
//  reverse: every child is invalid or at its last key <= K.
// The current child is the lowest-index child positioned at K. A step moves
// every child sitting at K, so lower-priority duplicates are passed over.
//
// Each child's validity and key are cached after every move: a step of a
// scan then compares cached keys inline instead of making two virtual calls
// and a memcmp per child (a scan right after a large import merges every
// key of the memtable with the tree's).
// `Order`: BytewiseOrder, or KeyOrder for a user's order.
template <typename Order>
class MergingIterator final : public InternalIterator {
 public:
  MergingIterator(std::vector<std::unique_ptr<InternalIterator>> children, Order order)
      : owned_(std::move(children)), children_(owned_.size()), order_(order) {
    for (size_t i = 0; i < owned_.size(); ++i) children_[i].it = owned_[i].get();
  }

  bool Valid() const override { return current_ != nullptr && !error_; }

  bool HideTombstones() override {
    hide_tombstones_ = true;
    return true;
  }

  void SeekToFirst() override {
    for (Child& c : children_) {
      c.it->SeekToFirst();
      Refresh(&c);
    }
    direction_ = kForward;
    FindSmallest();
    SkipTombstones(true);
  }

  void SeekToLast() override {
    for (Child& c : children_) {
      c.it->SeekToLast();
      Refresh(&c);
    }
    direction_ = kReverse;
    FindLargest();
    SkipTombstones(false);
  }

  void Seek(std::string_view target) override {
    for (Child& c : children_) {
      c.it->Seek(target);
      Refresh(&c);
    }
    direction_ = kForward;
    FindSmallest();
    SkipTombstones(true);
  }

  void Next() override {
    Step(true);
    SkipTombstones(true);
  }

  void Prev() override {
    Step(false);
    SkipTombstones(false);
  }

  std::string_view key() const override { return current_->key; }
  std::string_view value() const override { return current_->it->value(); }
  bool is_tombstone() const override { return current_->it->is_tombstone(); }

  Status status() const override {
    for (const Child& c : children_) {
      Status s = c.it->status();
      if (!s.ok()) return s;
    }
    return Status::OK();
  }

 private:
  enum Direction { kForward, kReverse };

  void Step(bool forward) {
    if (forward) {
      StepNext();
    } else {
      StepPrev();
    }
  }

  void SkipTombstones(bool forward) {
    while (hide_tombstones_ && Valid() && current_->it->is_tombstone()) Step(forward);
  }

  void StepNext() {
    if (direction_ != kForward) {
      // Children are at or before K: bring each to its first key > K.
      saved_key_.assign(current_->key);
      const std::string_view k = saved_key_;
      for (Child& c : children_) {
        c.it->Seek(k);
        Refresh(&c);
        if (c.valid && order_.Compare(c.key, k) == 0) {
          c.it->Next();
          Refresh(&c);
        }
      }
      direction_ = kForward;
    } else {
      const std::string_view k = current_->key;
      // Others first: k points into current_, which must not move yet.
      for (Child& c : children_) {
        if (&c != current_ && c.valid && order_.Compare(c.key, k) == 0) {
          c.it->Next();
          Refresh(&c);
        }
      }
      current_->it->Next();
      Refresh(current_);
    }
    FindSmallest();
  }

  void StepPrev() {
    if (direction_ != kReverse) {
      // Children are at or after K: bring each to its last key < K.
      saved_key_.assign(current_->key);
      const std::string_view k = saved_key_;
      for (Child& c : children_) {
        c.it->Seek(k);
        Refresh(&c);
        if (c.valid) {
          c.it->Prev();
          Refresh(&c);
        } else if (!c.failed) {
          c.it->SeekToLast();  // every key of this child is < K
          Refresh(&c);
        }
      }
      direction_ = kReverse;
    } else {
      const std::string_view k = current_->key;
      for (Child& c : children_) {
        if (&c != current_ && c.valid && order_.Compare(c.key, k) == 0) {
          c.it->Prev();
          Refresh(&c);
        }
      }
      current_->it->Prev();
      Refresh(current_);
    }
    FindLargest();
  }

  struct Child {
    InternalIterator* it = nullptr;
    std::string_view key;  // valid while `valid`, until `it` moves
    bool valid = false;
    bool failed = false;  // invalid with an error: the whole merge stops
  };

  // An invalid child's status cannot change until it moves, so it is read
  // once here rather than at every step.
  void Refresh(Child* c) {
    c->valid = c->it->Valid();
    if (c->valid) {
      c->key = c->it->key();
      c->failed = false;
    } else {
      c->failed = !c->it->status().ok();
    }
  }

  // Ties go to the lowest index: strict comparisons, scanning in order.
  void FindSmallest() {
    current_ = nullptr;
    error_ = false;
    for (Child& c : children_) {
      error_ |= c.failed;
      if (!c.valid) continue;
      if (current_ == nullptr || order_.Compare(c.key, current_->key) < 0) current_ = &c;
    }
  }

  void FindLargest() {
    current_ = nullptr;
    error_ = false;
    for (Child& c : children_) {
      error_ |= c.failed;
      if (!c.valid) continue;
      if (current_ == nullptr || order_.Compare(c.key, current_->key) > 0) current_ = &c;
    }
  }

  std::vector<std::unique_ptr<InternalIterator>> owned_;
  std::vector<Child> children_;
  const Order order_;
  Child* current_ = nullptr;
  Direction direction_ = kForward;
  // A child that failed is invalid; skipping it would silently drop its
  // keys, so the whole merge stops.
  bool error_ = false;
  bool hide_tombstones_ = false;  // steps pass over tombstones (HideTombstones)
  std::string saved_key_;         // K while children are repositioned
};

}  // namespace

std::unique_ptr<InternalIterator> NewMergingIterator(
    std::vector<std::unique_ptr<InternalIterator>> children, KeyOrder order) {
  // One source merges to itself.
  if (children.size() == 1) return std::move(children[0]);
  if (order.bytewise()) {
    return std::make_unique<MergingIterator<BytewiseOrder>>(std::move(children), BytewiseOrder());
  }
  return std::make_unique<MergingIterator<KeyOrder>>(std::move(children), order);
}

}  // namespace arenakv::mem
