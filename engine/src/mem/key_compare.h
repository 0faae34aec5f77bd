// CompareKeys: bytewise (unsigned) key order, as std::string_view::compare,
// inlined for the memtable's searches, which compare keys at every step. The
// first 16 bytes are compared as two big-endian words: short keys, and keys
// whose differences come after a shared stretch (zero-padded numbers), then
// cost no call to memcmp.
//
// Thread safety: a pure function.
#ifndef ARENAKV_MEM_KEY_COMPARE_H_
#define ARENAKV_MEM_KEY_COMPARE_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace arenakv::mem {

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

}  // namespace arenakv::mem

#endif  // ARENAKV_MEM_KEY_COMPARE_H_
