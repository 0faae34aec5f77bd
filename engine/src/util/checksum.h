// Checksums for everything arenakv writes: XXH3 (xxHash), 64-bit, seeded per
// structure kind so that a block of one kind is never accepted as another.
#ifndef ARENAKV_UTIL_CHECKSUM_H_
#define ARENAKV_UTIL_CHECKSUM_H_

#include <xxhash.h>

#include <cstdint>
#include <string_view>

namespace arenakv {

enum class ChecksumKind : uint64_t {
  kPage = 0x7061676531ULL,       // "page1"
  kMeta = 0x6d65746131ULL,       // "meta1"
  kWalRecord = 0x77616c31ULL,    // "wal1"
  kWalHeader = 0x77616c6831ULL,  // "walh1"
  kLeafBlock = 0x626c6b31ULL,    // "blk1"
};

inline uint64_t Checksum64(ChecksumKind kind, std::string_view data) {
  return XXH3_64bits_withSeed(data.data(), data.size(), static_cast<uint64_t>(kind));
}

inline uint32_t Checksum32(ChecksumKind kind, std::string_view data) {
  return static_cast<uint32_t>(Checksum64(kind, data));
}

}  // namespace arenakv

#endif  // ARENAKV_UTIL_CHECKSUM_H_
