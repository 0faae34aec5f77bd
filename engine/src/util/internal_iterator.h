// InternalIterator: the cursor every engine layer speaks (memtables, the
// B+tree, transaction write sets, merges of them). Each source yields at most
// one entry per user key, in bytewise key order; a deletion is yielded as a
// tombstone so that a merge lets a newer source hide an older one.
//
// Thread safety: one thread at a time per iterator.
#ifndef ARENAKV_UTIL_INTERNAL_ITERATOR_H_
#define ARENAKV_UTIL_INTERNAL_ITERATOR_H_

#include <string_view>

#include "arenakv/status.h"

namespace arenakv {

class InternalIterator {
 public:
  InternalIterator() = default;
  InternalIterator(const InternalIterator&) = delete;
  InternalIterator& operator=(const InternalIterator&) = delete;
  virtual ~InternalIterator() = default;

  virtual bool Valid() const = 0;
  virtual void SeekToFirst() = 0;
  virtual void SeekToLast() = 0;
  // First entry with key >= target.
  virtual void Seek(std::string_view target) = 0;
  virtual void Next() = 0;                     // requires Valid()
  virtual void Prev() = 0;                     // requires Valid()
  virtual std::string_view key() const = 0;    // requires Valid()
  virtual std::string_view value() const = 0;  // requires Valid(); empty for a tombstone
  virtual bool is_tombstone() const = 0;       // requires Valid()
  // True for a source that never yields a tombstone (the B+tree's): a
  // caller may skip its filter of them.
  virtual bool never_tombstones() const { return false; }
  // Asks the iterator to pass over tombstones itself from now on, as a
  // filter over it would (called before it is positioned). False when it
  // cannot: the caller filters.
  virtual bool HideTombstones() { return never_tombstones(); }
  // An error stops iteration (Valid() false) and is reported here.
  virtual Status status() const = 0;
};

// A cursor over `base` that leaves some of its entries out. Derived provides
// SkipForward() and SkipBackward(), which move past what it leaves out and
// are called after every move (through the type, not a virtual call).
template <typename Derived>
class SkippingIterator : public InternalIterator {
 public:
  bool Valid() const override { return base_->Valid(); }
  void SeekToFirst() override {
    base_->SeekToFirst();
    self().SkipForward();
  }
  void SeekToLast() override {
    base_->SeekToLast();
    self().SkipBackward();
  }
  void Seek(std::string_view target) override {
    base_->Seek(target);
    self().SkipForward();
  }
  void Next() override {
    base_->Next();
    self().SkipForward();
  }
  void Prev() override {
    base_->Prev();
    self().SkipBackward();
  }
  std::string_view key() const override { return base_->key(); }
  std::string_view value() const override { return base_->value(); }
  bool is_tombstone() const override { return base_->is_tombstone(); }
  Status status() const override { return base_->status(); }

 protected:
  explicit SkippingIterator(InternalIterator* base) : base_(base) {}
  InternalIterator* base() const { return base_; }

 private:
  Derived& self() { return static_cast<Derived&>(*this); }

  InternalIterator* const base_;
};

}  // namespace arenakv

#endif  // ARENAKV_UTIL_INTERNAL_ITERATOR_H_
