#include "mem/live_iterator.h"

#include <utility>

namespace arenakv::mem {

namespace {

class LiveIterator final : public SkippingIterator<LiveIterator> {
 public:
  explicit LiveIterator(std::unique_ptr<InternalIterator> base)
      : SkippingIterator(base.get()), owned_(std::move(base)) {}

  bool is_tombstone() const override { return false; }

  void SkipForward() {
    while (base()->Valid() && base()->is_tombstone()) base()->Next();
  }
  void SkipBackward() {
    while (base()->Valid() && base()->is_tombstone()) base()->Prev();
  }

 private:
  const std::unique_ptr<InternalIterator> owned_;
};

}  // namespace

std::unique_ptr<InternalIterator> NewLiveIterator(std::unique_ptr<InternalIterator> base) {
  // Nothing to filter (the tree alone), or a merge that filters as it
  // steps: the scan pays no extra virtual calls per key for a filter.
  if (base->HideTombstones()) return base;
  return std::make_unique<LiveIterator>(std::move(base));
}

}  // namespace arenakv::mem
