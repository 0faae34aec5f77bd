#include "mem/live_iterator.h"

#include <utility>

namespace arenakv::mem {

namespace {

class LiveIterator final : public InternalIterator {
 public:
  explicit LiveIterator(std::unique_ptr<InternalIterator> base) : base_(std::move(base)) {}

  bool Valid() const override { return base_->Valid(); }
  void SeekToFirst() override {
    base_->SeekToFirst();
    SkipForward();
  }
  void SeekToLast() override {
    base_->SeekToLast();
    SkipBackward();
  }
  void Seek(std::string_view target) override {
    base_->Seek(target);
    SkipForward();
  }
  void Next() override {
    base_->Next();
    SkipForward();
  }
  void Prev() override {
    base_->Prev();
    SkipBackward();
  }
  std::string_view key() const override { return base_->key(); }
  std::string_view value() const override { return base_->value(); }
  bool is_tombstone() const override { return false; }
  Status status() const override { return base_->status(); }

 private:
  void SkipForward() {
    while (base_->Valid() && base_->is_tombstone()) base_->Next();
  }
  void SkipBackward() {
    while (base_->Valid() && base_->is_tombstone()) base_->Prev();
  }

  std::unique_ptr<InternalIterator> base_;
};

}  // namespace

std::unique_ptr<InternalIterator> NewLiveIterator(std::unique_ptr<InternalIterator> base) {
  // Nothing to filter (the tree alone), or a merge that filters as it
  // steps: the scan pays no extra virtual calls per key for a filter.
  if (base->HideTombstones()) return base;
  return std::make_unique<LiveIterator>(std::move(base));
}

}  // namespace arenakv::mem
