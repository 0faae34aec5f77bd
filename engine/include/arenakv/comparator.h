// Comparator: the order of a database's keys.
//
// The default order is bytewise: keys compare as unsigned byte strings,
// shorter first on a common prefix (BytewiseComparator()). A comparator's
// name is recorded in the database when it is created, and a later open
// under another name fails with InvalidArgument, since the data on disk is
// sorted in the order it was written in: give a comparator a new name
// whenever its order changes.
//
// The bytewise order is the fast path: the engine compares its keys inline
// and searches pages by their bytes. In any other order every comparison
// is a call to Compare().
//
// Thread safety: the methods are called from any thread at once, so they
// must not change shared state. A comparator must outlive every database
// opened with it.

#ifndef ARENAKV_COMPARATOR_H_
#define ARENAKV_COMPARATOR_H_

#include <string>
#include <string_view>

namespace arenakv {

class Comparator {
 public:
  Comparator() = default;
  Comparator(const Comparator&) = delete;
  Comparator& operator=(const Comparator&) = delete;
  virtual ~Comparator() = default;

  // Negative, zero or positive as `a` sorts before, together with or after
  // `b`. Keys that compare equal are the same key. Must be a total order.
  virtual int Compare(std::string_view a, std::string_view b) const = 0;

  // Recorded in the database; at most 255 bytes, not empty. Names
  // beginning with "arenakv." are reserved.
  virtual const char* Name() const = 0;

  // Optional, as LevelDB's: when *start < limit, may change *start to a
  // shorter string s with *start <= s < limit. The tree keeps such a
  // string between two leaves instead of the right leaf's first key
  // (internal pages hold more children); it is used only when it sorts
  // strictly after the left leaf's last key. The default leaves *start.
  // (LevelDB's FindShortSuccessor has no use here: the tree's separators
  // bound pages from below.)
  virtual void FindShortestSeparator(std::string* start, std::string_view limit) const {
    (void)start;
    (void)limit;
  }
};

// The default order, "arenakv.BytewiseComparator". Owned by the library.
const Comparator* BytewiseComparator();

}  // namespace arenakv

#endif  // ARENAKV_COMPARATOR_H_
