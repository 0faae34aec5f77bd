// CompareKeys: bytewise (unsigned) key order, as std::string_view::compare,
// inlined for the memtable's searches, which compare keys at every step. The
// first 16 bytes are compared as two big-endian words: short keys, and keys
// whose differences come after a shared stretch (zero-padded numbers), then
// cost no call to memcmp.
//
// KeyOrder: the order of a database's keys as the engine compares them:
// CompareKeys inline for the bytewise order, the user's Comparator
// otherwise. It is a pointer wide and kept by value, so the bytewise path
// costs one predictable branch.
//
// KeyRange: keys between two bounds in an order, as a serializable
// transaction records what it scanned.
//
// Thread safety: pure functions; a KeyOrder is immutable.
#ifndef ARENAKV_UTIL_KEY_COMPARE_H_
#define ARENAKV_UTIL_KEY_COMPARE_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "arenakv/comparator.h"

namespace arenakv {

inline int CompareKeys(std::string_view a, std::string_view b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  for (; i + 8 <= n && i < 16; i += 8) {
    uint64_t x, y;
    std::memcpy(&x, a.data() + i, 8);
    std::memcpy(&y, b.data() + i, 8);
    if (x != y) return __builtin_bswap64(x) < __builtin_bswap64(y) ? -1 : 1;
  }
  if (i < n) {
    const int c = std::memcmp(a.data() + i, b.data() + i, n - i);
    if (c != 0) return c;
  }
  return a.size() < b.size() ? -1 : (a.size() > b.size() ? 1 : 0);
}

// Equality, inline as CompareKeys (operator== on string_view calls memcmp):
// a scan asks it of every version, to step past a key's older ones.
inline bool KeysEqual(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CompareKeys(a, b) == 0;
}

// The bytewise order as a type of its own, for the scan's cursors, which
// are templates on the order: their bytewise instances compare inline with
// no branch at all.
struct BytewiseOrder {
  int Compare(std::string_view a, std::string_view b) const { return CompareKeys(a, b); }
  bool Equal(std::string_view a, std::string_view b) const { return KeysEqual(a, b); }
};

class KeyOrder {
 public:
  KeyOrder() = default;  // bytewise
  // nullptr and BytewiseComparator() are the bytewise order.
  explicit KeyOrder(const Comparator* user)
      : user_(user == BytewiseComparator() ? nullptr : user) {}

  bool bytewise() const { return user_ == nullptr; }
  const Comparator* user() const { return user_; }  // nullptr for bytewise
  int Compare(std::string_view a, std::string_view b) const {
    return user_ == nullptr ? CompareKeys(a, b) : user_->Compare(a, b);
  }
  // Keys that compare equal are the same key, whatever their bytes.
  bool Equal(std::string_view a, std::string_view b) const {
    return user_ == nullptr ? KeysEqual(a, b) : user_->Compare(a, b) == 0;
  }

 private:
  const Comparator* user_ = nullptr;
};

// From `begin` (or the first key, with from_first) to `end` (or the last
// key, with to_last), both inclusive. Inclusive bounds need no successor of
// a key, which a user's order cannot name, and "" is a key like any other.
struct KeyRange {
  std::string_view begin{}, end{};
  bool from_first = false, to_last = false;

  bool NotBefore(KeyOrder order, std::string_view key) const {
    return from_first || order.Compare(key, begin) >= 0;
  }
  bool NotAfter(KeyOrder order, std::string_view key) const {
    return to_last || order.Compare(key, end) <= 0;
  }
  bool Contains(KeyOrder order, std::string_view key) const {
    return NotBefore(order, key) && NotAfter(order, key);
  }
  // Whether it meets [lo, hi) (hi exclusive).
  bool Meets(KeyOrder order, std::string_view lo, std::string_view hi) const {
    return (from_first || order.Compare(begin, hi) < 0) && NotAfter(order, lo);
  }
};

}  // namespace arenakv

#endif  // ARENAKV_UTIL_KEY_COMPARE_H_
