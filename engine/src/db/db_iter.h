// The public Iterator over a database, a snapshot or a transaction: a live
// (tombstone-skipping) view of an InternalIterator, pinned to one Version,
// registered as a Handle so that DB::Close() can invalidate it.
//
// Thread safety: one thread at a time, like every arenakv::Iterator.
#ifndef ARENAKV_DB_DB_ITER_H_
#define ARENAKV_DB_DB_ITER_H_

#include <memory>

#include "arenakv/iterator.h"
#include "db/version.h"
#include "util/internal_iterator.h"

namespace arenakv {

class DBImpl;
class HandleRegistry;
struct ReadSet;

// Records the key range an iterator of a serializable transaction covered,
// so that commit can check no one wrote inside it.
class RangeTracker {
 public:
  virtual ~RangeTracker() = default;
  // The iterator covered [begin, end] (end inclusive); `to_first`/`to_last`
  // mean it ran off the respective end.
  virtual void Covered(std::string_view begin, bool to_first, std::string_view end,
                       bool to_last) = 0;
};

// `overlay` (may be null) is merged above the database view with the highest
// priority (a transaction's write set). `registry` is where the iterator
// registers (the database's, or its transaction's).
std::unique_ptr<Iterator> NewDBIterator(DBImpl* db, std::shared_ptr<Version> version,
                                        uint64_t sequence, const ReadOptions& options,
                                        std::unique_ptr<InternalIterator> overlay,
                                        const std::shared_ptr<HandleRegistry>& registry,
                                        RangeTracker* tracker = nullptr);

// An iterator that is never valid and reports `status`.
std::unique_ptr<Iterator> NewErrorIterator(Status status);

}  // namespace arenakv

#endif  // ARENAKV_DB_DB_ITER_H_
