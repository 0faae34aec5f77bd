// LiveIterator: hides the tombstones of an InternalIterator, in both
// directions; what user-facing iterators show once sources are merged.
//
// Thread safety: one thread at a time, like every InternalIterator.
#ifndef ARENAKV_MEM_LIVE_ITERATOR_H_
#define ARENAKV_MEM_LIVE_ITERATOR_H_

#include <memory>

#include "util/internal_iterator.h"

namespace arenakv::mem {

// Owns `base`; returns it as is when it can hide its tombstones itself
// (InternalIterator::HideTombstones).
std::unique_ptr<InternalIterator> NewLiveIterator(std::unique_ptr<InternalIterator> base);

}  // namespace arenakv::mem

#endif  // ARENAKV_MEM_LIVE_ITERATOR_H_
