// MergingIterator: one cursor over several prioritized sources (a transaction
// write set, the active memtable, frozen memtables, the B+tree). For each user
// key it yields the entry of the highest-priority source having that key
// (children[0] is the newest); tombstones pass through so that the caller can
// let a newer deletion hide an older value, unless HideTombstones() was
// called: then the merge steps over them itself, as a LiveIterator over it
// would, without a layer of virtual calls per key. Next() and Prev() may be
// mixed freely.
//
// Thread safety: one thread at a time, like every InternalIterator.
#ifndef ARENAKV_MEM_MERGING_ITERATOR_H_
#define ARENAKV_MEM_MERGING_ITERATOR_H_

#include <memory>
#include <vector>

#include "util/internal_iterator.h"
#include "util/key_compare.h"

namespace arenakv::mem {

// Takes ownership of the children, whose keys are in `order`. status()
// reports the first child error (in priority order); an error makes the
// merge invalid.
std::unique_ptr<InternalIterator> NewMergingIterator(
    std::vector<std::unique_ptr<InternalIterator>> children, KeyOrder order = KeyOrder());

}  // namespace arenakv::mem

#endif  // ARENAKV_MEM_MERGING_ITERATOR_H_
