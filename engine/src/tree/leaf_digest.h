// LeafDigest: what a point read needs of a blocked leaf's head (its stored
// header and compact block index), decoded once into fixed-width arrays.
// The page cache keeps digests of leaves it does not hold whole
// (LeafHeadTable), so that a read which misses finds its block by a binary
// search over the blocks' first keys instead of walking and rebuilding the
// prefix-compressed index (and checking it all over again) every time.
// Digests live in memory only; nothing here is written to disk.
//
// Layout (u16 little-endian unless said; n blocks, entries at 8):
//   [0] n   [2] prefix bytes P   [4] the leaf's entry count
//   [6] data start: where block 0's LZ4 bytes start in the stored page
//   key_end[n]      where block i's first key ends in the suffixes
//   first[n]        block i's first entry
//   lz4_end[n]      where block i's LZ4 bytes end, from the data start
//   raw[n]          block i's bytes decompressed
//   sum[n] (u32)    the low 32 bits of block i's XXH3, as the index has it
//   P bytes every first key starts with, then each key's rest
// Only leaves with 16-bit lengths and counts (pages up to 64 KiB) have one.
//
// Thread safety: pure functions over caller-owned bytes.
#ifndef ARENAKV_TREE_LEAF_DIGEST_H_
#define ARENAKV_TREE_LEAF_DIGEST_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "arenakv/status.h"
#include "tree/page_format.h"
#include "util/key_compare.h"

namespace arenakv::tree {

// The digest of the leaf whose head ParseStoredHead accepted (`stored` as
// LocateLeafBlock takes it: the page's length, its head filled), written
// to out: *bytes is its size, 0 when the leaf has none (older index
// layout, lengths over 16 bits) or it is longer than `capacity`. A
// malformed index is Corruption.
Status EncodeLeafDigest(std::string_view stored, uint64_t offset, const std::string& file,
                        KeyOrder order, char* out, size_t capacity, size_t* bytes);

// Where a block's LZ4 bytes lie in its stored page.
struct DigestBlock {
  uint32_t lz4_offset = 0;  // from the page's start
  uint32_t lz4_bytes = 0;
};

// The block of the leaf `digest` describes (as EncodeLeafDigest wrote it)
// that holds `key` if the leaf does: every field of *block but lz4, and
// where its bytes are. *in_range is false when key sorts before every key.
// Returns false when `digest` is not well formed (nothing set).
bool LocateInDigest(std::string_view digest, std::string_view key, KeyOrder order, LeafBlock* block,
                    DigestBlock* where, bool* in_range);

}  // namespace arenakv::tree

#endif  // ARENAKV_TREE_LEAF_DIGEST_H_
