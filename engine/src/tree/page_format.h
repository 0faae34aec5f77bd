// The B+tree page formats: page addresses, the in-memory page image (a
// slotted page that the cache holds and readers binary-search in place), and
// the stored form of a page in the data file (header + image, LZ4-compressed
// when that helps, XXH3 checksum seeded with the page's file offset).
//
// Decoding never trusts its input: every stored page and every image is
// bounds-checked once when it enters memory (DecodeStoredPage /
// ValidateImage); PageView accessors afterwards assume a validated image.
//
// Thread safety: pure functions over caller-owned bytes; a PageView over a
// pinned, immutable image may be used by many threads.
#ifndef ARENAKV_TREE_PAGE_FORMAT_H_
#define ARENAKV_TREE_PAGE_FORMAT_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>

#include "arenakv/status.h"
#include "util/coding.h"
#include "util/key_compare.h"

namespace arenakv::tree {

// ---- Page addresses -------------------------------------------------------
// 64 bits: (file offset / kPageAlign) << kLengthBits | stored length. One
// pread of `length` bytes at `offset` fetches the whole stored page. 0 means
// "no page" (the empty tree); offset 0 is the file header, never a page.
inline constexpr uint64_t kPageAlign = 16;
inline constexpr int kLengthBits = 26;
inline constexpr uint64_t kMaxStoredLength = (uint64_t{1} << kLengthBits) - 1;
inline constexpr uint64_t kMaxFileOffset = (uint64_t{1} << (64 - kLengthBits)) * kPageAlign;

inline uint64_t AlignUp(uint64_t n) { return (n + kPageAlign - 1) & ~(kPageAlign - 1); }
inline uint64_t MakeAddress(uint64_t offset, uint64_t length) {
  return ((offset / kPageAlign) << kLengthBits) | length;
}
inline uint64_t AddressOffset(uint64_t address) { return (address >> kLengthBits) * kPageAlign; }
inline uint32_t AddressLength(uint64_t address) {
  return static_cast<uint32_t>(address & kMaxStoredLength);
}
// Bytes of file the page occupies (its length rounded up to the alignment).
inline uint64_t AddressExtent(uint64_t address) { return AlignUp(AddressLength(address)); }

// ---- Page image (what a cache frame holds) ---------------------------------
//   [0]  u8 type (1 leaf, 2 internal)   [1] u8 reserved (0)
//   [2]  u16 level (0 = leaf)           [4] u32 entry count
//   [8]  u32 image bytes                [12] u16 prefix length P   [14] u16 reserved (0)
//   [16] slot[count], 8 bytes each: u32 offset of entry i from the image start,
//        u32 hint = the key's bytes [P, P+4) big-endian, zero-padded
//   entries, leaf:     u16 key_len, u32 value_len, key, value
//   entries, internal: u16 key_len, u64 child address, key
// Keys are strictly increasing. In an internal page entry 0's key is stored
// empty: its lower bound is the separator the parent holds for this page.
// P is the length of the prefix all (internal: all but entry 0's) keys share;
// a binary search compares the target's prefix once, then mostly hints, so it
// stays inside the slot array instead of touching every probed key.
enum class PageType : uint8_t { kLeaf = 1, kInternal = 2 };

inline constexpr size_t kImageHeaderBytes = 16;
inline constexpr size_t kSlotBytes = 8;
inline constexpr size_t kLeafEntryHeaderBytes = 6;
inline constexpr size_t kInternalEntryHeaderBytes = 10;
// The largest image a page may have: the largest pool size class.
inline constexpr size_t kMaxImageBytes = size_t{2} << 20;
// Deepest tree a reader follows (internal pages hold >= 2 children).
inline constexpr int kMaxTreeDepth = 64;

inline size_t LeafEntryBytes(size_t key, size_t value) {
  return kSlotBytes + kLeafEntryHeaderBytes + key + value;
}
inline size_t InternalEntryBytes(size_t key) {
  return kSlotBytes + kInternalEntryHeaderBytes + key;
}

// Bytes [p, p+4) of key, big-endian, zero-padded.
inline uint32_t KeyHint(std::string_view key, size_t p) {
  if (p <= key.size() && key.size() - p >= 4) {  // not p + 4: it could wrap
    uint32_t h;
    std::memcpy(&h, key.data() + p, 4);
    return __builtin_bswap32(h);
  }
  uint32_t h = 0;
  for (size_t i = 0; i < 4; ++i) {
    h = (h << 8) | (p + i < key.size() ? static_cast<uint8_t>(key[p + i]) : 0u);
  }
  return h;
}
// Length of the common prefix of a and b (capped to fit the header field).
inline size_t CommonPrefix(std::string_view a, std::string_view b) {
  size_t n = std::min({a.size(), b.size(), size_t{65535}});
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

// Read-only accessors over a validated image.
class PageView {
 public:
  PageView() = default;
  explicit PageView(const char* image) : p_(image) {}

  PageType type() const { return static_cast<PageType>(p_[0]); }
  bool is_leaf() const { return p_[0] == static_cast<char>(PageType::kLeaf); }
  uint16_t level() const { return DecodeFixed16(p_ + 2); }
  uint32_t count() const { return DecodeFixed32(p_ + 4); }
  uint32_t image_bytes() const { return DecodeFixed32(p_ + 8); }
  uint16_t prefix_len() const { return DecodeFixed16(p_ + 12); }
  const char* data() const { return p_; }

  std::string_view key(uint32_t i) const {
    const char* e = p_ + Slot(i);
    size_t header = is_leaf() ? kLeafEntryHeaderBytes : kInternalEntryHeaderBytes;
    return {e + header, DecodeFixed16(e)};
  }
  std::string_view value(uint32_t i) const {  // leaf only
    const char* e = p_ + Slot(i);
    uint16_t klen = DecodeFixed16(e);
    return {e + kLeafEntryHeaderBytes + klen, DecodeFixed32(e + 2)};
  }
  uint64_t child(uint32_t i) const {  // internal only
    return DecodeFixed64(p_ + Slot(i) + 2);
  }
  uint32_t hint(uint32_t i) const { return DecodeFixed32(p_ + kImageHeaderBytes + 8 * i + 4); }

  // The searches take the tree's key order. In the bytewise order they use
  // the page prefix and the hints; in another, bytes say nothing of the
  // order, and they compare whole keys through it.

  // Leaf: the first index whose key is >= target (count() if none).
  uint32_t LowerBound(std::string_view target, KeyOrder order = {}) const;
  // Starts loading the lines a search of a page of `count` entries reads
  // (header, slot array): a page that is not in the CPU cache then costs
  // about one memory latency instead of one per binary-search probe. With
  // count 0 (unknown) it waits for the header to learn it.
  void Prefetch(uint32_t count) const;
  // Prefetch(count) for an image at `image` that may no longer be one (or
  // nullptr): it only issues prefetches, and with count 0 only the first
  // lines. Never reads the memory.
  static void PrefetchAt(const char* image, uint32_t count);

  // Leaf: the index of target, or count() if the page does not hold it. It
  // skips the prefix check of LowerBound (one memory access less on a page
  // that is not in the CPU cache): a key the page holds shares the prefix, so
  // the hint search finds it, and any other index fails the final compare.
  uint32_t Find(std::string_view target, KeyOrder order = {}) const;
  // Internal: the child whose range holds target (last i with key(i) <= target;
  // entry 0 stands for minus infinity).
  uint32_t ChildIndex(std::string_view target, KeyOrder order = {}) const;

 private:
  // LowerBound and ChildIndex in a user's order.
  uint32_t LowerBoundIn(KeyOrder order, std::string_view target) const;
  uint32_t ChildIndexIn(KeyOrder order, std::string_view target) const;
  uint32_t Slot(uint32_t i) const { return DecodeFixed32(p_ + kImageHeaderBytes + 8 * i); }
  // Compares key(i) with target, both known to share the page prefix.
  int CompareSuffix(uint32_t i, std::string_view target, uint32_t target_hint) const;
  // The first slot in [lo, hi) whose hint is at least th (hi if none).
  uint32_t FirstHintAtLeast(uint32_t lo, uint32_t hi, uint32_t th) const;
  const char* p_ = nullptr;
};

// Writes an image entry by entry into memory sized for it in advance.
class ImageWriter {
 public:
  // `prefix_len`: the length of the prefix every key (internal pages: every
  // key but entry 0's) shares: PagePrefix of the sorted keys.
  ImageWriter(char* image, PageType type, uint16_t level, uint32_t count, uint32_t bytes,
              size_t prefix_len)
      : p_(image),
        prefix_(prefix_len),
        count_(count),
        bytes_(bytes),
        pos_(kImageHeaderBytes + size_t{count} * kSlotBytes) {
    p_[0] = static_cast<char>(type);
    p_[1] = 0;
    EncodeFixed16(p_ + 2, level);
    EncodeFixed32(p_ + 4, count);
    EncodeFixed32(p_ + 8, bytes);
    EncodeFixed16(p_ + 12, static_cast<uint16_t>(prefix_len));
    EncodeFixed16(p_ + 14, 0);
  }
  void Leaf(std::string_view key, std::string_view value) {
    Slot(key);
    EncodeFixed16(p_ + pos_, static_cast<uint16_t>(key.size()));
    EncodeFixed32(p_ + pos_ + 2, static_cast<uint32_t>(value.size()));
    pos_ += kLeafEntryHeaderBytes;
    Copy(key);
    Copy(value);
  }
  void Internal(std::string_view key, uint64_t child) {
    Slot(key);
    EncodeFixed16(p_ + pos_, static_cast<uint16_t>(key.size()));
    EncodeFixed64(p_ + pos_ + 2, child);
    pos_ += kInternalEntryHeaderBytes;
    Copy(key);
  }
  // True when exactly `count` entries filled exactly `bytes`.
  bool complete() const { return i_ == count_ && pos_ == bytes_; }

 private:
  void Slot(std::string_view key) {
    char* slot = p_ + kImageHeaderBytes + size_t{i_++} * kSlotBytes;
    EncodeFixed32(slot, static_cast<uint32_t>(pos_));
    EncodeFixed32(slot + 4, KeyHint(key, prefix_));
  }
  void Copy(std::string_view s) {
    if (!s.empty()) std::memcpy(p_ + pos_, s.data(), s.size());
    pos_ += s.size();
  }
  char* p_;
  size_t prefix_;
  uint32_t count_, bytes_, i_ = 0;
  size_t pos_;
};

// Checks that `bytes` bytes at `image` form a well-formed page: header, slot
// array and every entry in bounds, sizes within the limits, keys strictly
// increasing in `order`, internal children non-null. On failure *why says
// what is wrong.
bool ValidateImage(const char* image, size_t bytes, std::string* why, KeyOrder order = {});

// The page prefix of the searched keys first..last of a page: the bytes
// every one of them begins with. Keys in the bytewise order share those of
// their first and last; in another order keys between them need not, and
// `every_key` compares them all (right in either order, at a cost). `key(i)`
// returns key i.
template <typename KeyAt>
size_t PagePrefix(bool every_key, uint32_t first, uint32_t last, KeyAt&& key) {
  if (last < first) return 0;
  size_t p = CommonPrefix(key(first), key(last));
  for (uint32_t i = first + 1; every_key && p > 0 && i < last; ++i) {
    p = std::min(p, CommonPrefix(key(first), key(i)));
  }
  return p;
}

// XXH3 of an image, kept with a cached frame so that cached pages can be
// re-verified (ReadOptions::verify_checksums).
uint64_t ImageChecksum(const char* image, size_t bytes);

// ---- Stored page (what the data file holds at a page address) -------------
//   [0]  u64 checksum: XXH3 of bytes [8, length), seeded with ChecksumKind::kPage
//        mixed with the page's file offset
//   [8]  u8 type   [9] u8 flags   [10] u16 level
//   [12] u32 entry count    [16] u32 image bytes    [20] u32 payload bytes
//   [24] payload: the image, raw or LZ4 block-compressed; with kStoredFlagNoSlots
//        (only together with LZ4) the entries alone, LZ4 block-compressed;
//        with kStoredFlagBlocks (leaves only, together with both) the
//        entries cut into blocks, each its own LZ4 block, behind an index:
//          u16 block count B (>= 2)
//          B times: u32 first entry, u32 raw bytes, u32 LZ4 bytes,
//                   u16 first key length, [u64 block checksum,] first key
//          the B LZ4 blocks, in order
//        with kStoredFlagBlockSums (format 5) each index entry holds its
//        block's checksum, and the page checksum covers the header and the
//        index only: a point read reads and checks those and one block.
//        With kStoredFlagCompactIndex (format 6) an index entry is
//          varint first-entry delta, varint raw bytes, varint LZ4 bytes,
//          u32 block checksum, varint shared key prefix, varint suffix
//          length, suffix (the first key shares its prefix with the
//          previous block's)
// A slot array is ~8 bytes per entry that LZ4 barely compresses (~10% of a
// stored leaf of 100-byte values), and it is a function of the entries: the
// decoder rebuilds it, with the prefix length, from the entries and the
// stored header. Pages whose slots are not that function keep them.
inline constexpr size_t kStoredHeaderBytes = 24;
inline constexpr uint8_t kStoredFlagLz4 = 1;
inline constexpr uint8_t kStoredFlagNoSlots = 2;
// A point read that misses a leaf needs one key, not the page: with the
// entries in independently compressed blocks it decompresses the one block
// (an eighth of a 16 KiB page) that may hold the key. With data many times
// the cache most leaves a read meets are read once before they are evicted,
// and decoding all of one cost three times the rest of the lookup.
inline constexpr uint8_t kStoredFlagBlocks = 4;
// A blocked leaf whose index carries a checksum per block (XXH3-64 of its
// LZ4 bytes, seed ChecksumKind::kLeafBlock); the page checksum then covers
// bytes [8, end of the index). A point read that misses then reads the
// header and index, and the one block it needs, instead of the whole
// stored page: a third of the bytes copied from the OS page cache and
// checked (format 5).
inline constexpr uint8_t kStoredFlagBlockSums = 8;
// A block index of varints, 32-bit block checksums and first keys that share
// their prefix with the previous block's (format 6, only with bits 0 to 3):
// about 16 bytes a block instead of 38 for 16-byte keys, which is what lets
// blocks be 1 KiB without the index costing more disk than 2 KiB blocks did.
inline constexpr uint8_t kStoredFlagCompactIndex = 16;
// Raw entry bytes a leaf block holds at least (every block but the last).
// A point read that misses copies the page's head and one block from the OS
// page cache, lines that are cold in the CPU's caches: 1 KiB blocks (with
// the compact index) touch about half the lines 2 KiB ones did.
inline constexpr size_t kLeafBlockBytes = 1024;
// How a blocked leaf's index is written: compact (format 6, what checkpoints
// write) or wide (format 5; for tests of pages older files hold).
enum class BlockIndexForm { kCompact, kWide };

// Upper bound of the stored size of an image of `image_bytes`.
size_t MaxStoredBytes(size_t image_bytes);
// Writes the stored form of `image` into out (room for MaxStoredBytes) with a
// zero checksum and returns its length. Compresses when `compress` and the
// result is at least 1/8 smaller, leaving out the slot array when the decoder
// can rebuild it exactly (entries back to back in slot order, prefix length
// CommonPrefix of the first and last searched keys, exact hints). A leaf
// whose entries fill more than one block of `block_bytes` (0: never) is
// stored in blocks.
size_t EncodeStoredPage(const char* image, size_t image_bytes, bool compress, char* out,
                        size_t block_bytes = 0, BlockIndexForm form = BlockIndexForm::kCompact);
// Fills in the checksum once the page's offset is known.
void SealStoredPage(char* stored, size_t length, uint64_t offset);

// Checks a stored page's header and checksum (when verify_checksum) and
// returns the size of the image it holds; a blocked leaf's index is checked
// to name its blocks in `order`. Errors are Corruption naming `file` and
// the offset.
Status ParseStoredPage(std::string_view stored, uint64_t offset, bool verify_checksum,
                       const std::string& file, size_t* image_bytes, KeyOrder order = {});
// Decodes a stored page already accepted by ParseStoredPage into `image`
// (room for image_bytes) and validates the image.
Status DecodeStoredPage(std::string_view stored, uint64_t offset, const std::string& file,
                        char* image, size_t image_bytes, KeyOrder order = {});

// A key copied out of a block index (whose compact form stores only the
// part that differs from the previous key): short keys stay inline, so a
// point read allocates nothing for them.
class IndexKey {
 public:
  IndexKey() = default;
  IndexKey(const IndexKey&) = delete;
  IndexKey& operator=(const IndexKey&) = delete;
  // `prefix` and `suffix` must not point into this key.
  void Assign(std::string_view prefix, std::string_view suffix = {});
  std::string_view view() const { return view_; }

 private:
  char inline_[48];
  std::string spill_;
  std::string_view view_;
};

// One block of a leaf stored in blocks.
struct LeafBlock {
  std::string_view lz4;       // its LZ4 block
  uint32_t raw_bytes = 0;     // the bytes of its entries
  uint32_t entries = 0;       // how many entries it holds
  IndexKey first_key;         // its first entry's key, as the index holds it
  bool has_checksum = false;  // format 5 on: SearchLeafBlock checks lz4 against it
  uint64_t checksum = 0;      // format 6: the low 32 bits of the block's XXH3
  uint64_t checksum_mask = ~uint64_t{0};
};
// Bytes of the start of a stored page a block read fetches first: the
// header and, for 16-byte keys, the compact index of up to 28 blocks.
inline constexpr size_t kStoredHeadBytes = 512;
// `head` is the start of a stored page of `length` bytes (length from its
// address). When it is a leaf in blocks with block checksums whose header
// and index lie within head, checks them (payload length, flags, the page
// checksum) and sets *usable; otherwise *usable is false and the page is
// read whole. Corruption when what it checked is wrong. LocateLeafBlock then
// takes a view of `length` bytes of which only `head` is filled: only the
// first *index_end bytes (when usable), the header and the index, are read.
Status ParseStoredHead(std::string_view head, uint32_t length, uint64_t offset,
                       const std::string& file, bool* usable, size_t* index_end = nullptr);
// Whether a stored page accepted by ParseStoredPage is a leaf in blocks.
inline bool IsBlockedLeaf(std::string_view stored) {
  return (static_cast<uint8_t>(stored[9]) & kStoredFlagBlocks) != 0;
}
// A stored page's header, as ParseStoredPage accepted it: a leaf (type and
// level agree), and its entry count.
inline bool IsStoredLeaf(std::string_view stored) {
  return static_cast<uint8_t>(stored[8]) == static_cast<uint8_t>(PageType::kLeaf) &&
         DecodeFixed16(stored.data() + 10) == 0;
}
inline uint32_t StoredEntryCount(std::string_view stored) {
  return DecodeFixed32(stored.data() + 12);
}
// The block of a blocked leaf (accepted by ParseStoredPage) that holds `key`
// if the leaf does; *in_range is false when key sorts before every key. A
// malformed index is Corruption.
Status LocateLeafBlock(std::string_view stored, uint64_t offset, const std::string& file,
                       std::string_view key, LeafBlock* block, bool* in_range, KeyOrder order = {});
// One block of a leaf's compact index, as ForEachLeafBlock reports it.
struct IndexedBlock {
  uint32_t first_entry = 0, raw_bytes = 0, lz4_bytes = 0;
  size_t lz4_offset = 0;       // from the page's start
  uint32_t checksum = 0;       // the low 32 bits of the block's XXH3
  std::string_view first_key;  // valid during the call only
};
// Walks the whole compact (format 6) block index of a page whose head
// ParseStoredHead accepted (`stored` as LocateLeafBlock takes it), checking
// it as a whole read does (keys in order, blocks tiling the page), and
// calls visit for each block. *compact is false, and nothing is visited,
// for the older index layouts.
Status ForEachLeafBlock(std::string_view stored, uint64_t offset, const std::string& file,
                        KeyOrder order, const std::function<void(const IndexedBlock&)>& visit,
                        bool* compact);
// Checks the block's checksum (format 5), decompresses `block` into `raw`
// (room for block.raw_bytes), checks its entries and looks `key` up in it:
// *value then points into raw.
Status SearchLeafBlock(const LeafBlock& block, char* raw, uint64_t offset, const std::string& file,
                       std::string_view key, std::string_view* value, bool* found,
                       KeyOrder order = {});

// "Corruption: <file> page at offset N: <what>"
Status PageCorruption(const std::string& file, uint64_t offset, std::string_view what);

}  // namespace arenakv::tree

#endif  // ARENAKV_TREE_PAGE_FORMAT_H_
