// Iterator: an ordered cursor over a database, a snapshot or a transaction.
//
// Keys are ordered bytewise (unsigned). key() and value() stay valid until
// the iterator moves, is destroyed, or its database (or transaction) closes:
// Close() takes back the memory they point into. An iterator reads one
// consistent snapshot taken when it was created. After its database closes,
// every call leaves the iterator invalid and status() returns Closed.
//
// Thread safety: one iterator is used by one thread at a time.

#ifndef ARENAKV_ITERATOR_H_
#define ARENAKV_ITERATOR_H_

#include <string_view>

#include "arenakv/status.h"

namespace arenakv {

class Iterator {
 public:
  Iterator() = default;
  Iterator(const Iterator&) = delete;
  Iterator& operator=(const Iterator&) = delete;
  virtual ~Iterator() = default;

  virtual bool Valid() const = 0;
  virtual void SeekToFirst() = 0;
  virtual void SeekToLast() = 0;
  // Positions at the first key >= target.
  virtual void Seek(std::string_view target) = 0;
  // Requires Valid().
  virtual void Next() = 0;
  virtual void Prev() = 0;
  virtual std::string_view key() const = 0;
  virtual std::string_view value() const = 0;
  // Non-OK when an error (I/O, corruption, Closed) stopped the iteration.
  virtual Status status() const = 0;
};

}  // namespace arenakv

#endif  // ARENAKV_ITERATOR_H_
