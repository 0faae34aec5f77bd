// Page image validation and the stored (compressed, checksummed) page form.
#include "tree/page_format.h"

#include <lz4.h>

#include <cstring>

#include "arenakv/options.h"
#include "util/checksum.h"

namespace arenakv::tree {

int PageView::CompareSuffix(uint32_t i, std::string_view target, uint32_t target_hint) const {
  uint32_t h = hint(i);
  if (h != target_hint) return h < target_hint ? -1 : 1;
  size_t p = prefix_len();
  std::string_view k = key(i);
  return k.substr(std::min(p, k.size())).compare(target.substr(std::min(p, target.size())));
}

namespace {

// Where target stands against the prefix P every key (from index `first`)
// shares: -1 below all keys, +1 above all, 0 if it starts with the prefix.
int ComparePrefix(const PageView& v, uint32_t first, std::string_view target) {
  size_t p = v.prefix_len();
  if (p == 0 || first >= v.count()) return 0;
  std::string_view prefix = v.key(first).substr(0, p);
  int c = target.substr(0, p).compare(prefix);
  return c < 0 ? -1 : (c > 0 ? 1 : 0);  // a shorter equal target compares < 0
}

// Lines of slot array a search prefetches at most (512 slots).
constexpr size_t kMaxPrefetchLines = 64;

}  // namespace

void PageView::PrefetchAt(const char* image, uint32_t n) {
  if (image == nullptr) return;
  if (n == 0) n = 8;  // unknown: the header and the first slots
  const uintptr_t line = ~uintptr_t{63};
  const char* end = image + kImageHeaderBytes + size_t{n} * kSlotBytes;
  const char* a = reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(image) & line);
  for (size_t i = 0; a < end && i <= kMaxPrefetchLines; a += 64, ++i) __builtin_prefetch(a);
}

void PageView::Prefetch(uint32_t n) const { PrefetchAt(p_, n == 0 ? count() : n); }

uint32_t PageView::FirstHintAtLeast(uint32_t lo, uint32_t hi, uint32_t th) const {
  const char* slots = p_ + kImageHeaderBytes + 4;  // slot i's hint at slots + 8 i
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo) / 2;
    // The slots the next probe reads, either way this one goes: each
    // probe's line is then on its way before it is needed, rather than
    // one miss after another down the search.
    __builtin_prefetch(slots + 8 * size_t{lo + (mid - lo) / 2});
    __builtin_prefetch(slots + 8 * size_t{mid + 1 + (hi - mid - 1) / 2});
    if (DecodeFixed32(slots + 8 * size_t{mid}) < th) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

uint32_t PageView::LowerBound(std::string_view target, KeyOrder order) const {
  if (!order.bytewise()) return LowerBoundIn(order, target);
  const uint32_t n = count();
  int where = ComparePrefix(*this, 0, target);
  if (where != 0) return where < 0 ? 0 : n;
  const uint32_t th = KeyHint(target, prefix_len());
  uint32_t lo = FirstHintAtLeast(0, n, th);
  while (lo < n && hint(lo) == th && CompareSuffix(lo, target, th) < 0) ++lo;
  return lo;
}

uint32_t PageView::Find(std::string_view target, KeyOrder order) const {
  const uint32_t n = count();
  if (!order.bytewise()) {
    const uint32_t i = LowerBoundIn(order, target);
    return i < n && order.Equal(key(i), target) ? i : n;
  }
  const size_t p = prefix_len();
  if (target.size() < p) return n;
  const uint32_t th = KeyHint(target, p);
  uint32_t lo = FirstHintAtLeast(0, n, th);
  // lo: the first slot whose hint is >= th; keys sharing the hint follow it.
  // Its entry is the one a hit reads, key and value: ask for all of it at
  // once rather than line by line as the compare and the copy reach it.
  if (lo < n) {
    const char* e = p_ + Slot(lo);
    __builtin_prefetch(e + 64);
    __builtin_prefetch(e + 127);
  }
  for (; lo < n && hint(lo) == th; ++lo) {
    std::string_view k = key(lo);
    int c = k.substr(p).compare(target.substr(p));
    if (c == 0) return k.substr(0, p) == target.substr(0, p) ? lo : n;
    if (c > 0) break;
  }
  return n;
}

uint32_t PageView::ChildIndex(std::string_view target, KeyOrder order) const {
  if (!order.bytewise()) return ChildIndexIn(order, target);
  // Last i >= 1 with key(i) <= target, else 0.
  const uint32_t n = count();
  int where = ComparePrefix(*this, 1, target);
  if (where != 0) return where < 0 ? 0 : n - 1;
  const uint32_t th = KeyHint(target, prefix_len());
  uint32_t lo = FirstHintAtLeast(1, n, th);
  // Keys before lo sort before target; of those sharing its hint, the
  // bytes past the hint decide.
  while (lo < n && hint(lo) == th && CompareSuffix(lo, target, th) <= 0) ++lo;
  return lo - 1;
}

uint32_t PageView::LowerBoundIn(KeyOrder order, std::string_view target) const {
  uint32_t lo = 0, hi = count();
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo) / 2;
    if (order.Compare(key(mid), target) < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

uint32_t PageView::ChildIndexIn(KeyOrder order, std::string_view target) const {
  uint32_t lo = 1, hi = count();
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo) / 2;
    if (order.Compare(key(mid), target) <= 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo - 1;
}

namespace {

// Equality of short byte runs (a page's shared prefix) without a call.
inline bool BytesEqual(const char* a, const char* b, size_t n) {
  for (; n >= 8; a += 8, b += 8, n -= 8) {
    uint64_t x, y;
    std::memcpy(&x, a, 8);
    std::memcpy(&y, b, 8);
    if (x != y) return false;
  }
  for (; n > 0; ++a, ++b, --n) {
    if (*a != *b) return false;
  }
  return true;
}

}  // namespace

bool ValidateImage(const char* image, size_t bytes, std::string* why, KeyOrder order) {
  if (bytes < kImageHeaderBytes || bytes > kMaxImageBytes) {
    *why = "image size " + std::to_string(bytes) + " out of range";
    return false;
  }
  uint8_t type = static_cast<uint8_t>(image[0]);
  uint16_t level = DecodeFixed16(image + 2);
  uint32_t count = DecodeFixed32(image + 4);
  if (type != static_cast<uint8_t>(PageType::kLeaf) &&
      type != static_cast<uint8_t>(PageType::kInternal)) {
    *why = "unknown page type " + std::to_string(type);
    return false;
  }
  bool leaf = type == static_cast<uint8_t>(PageType::kLeaf);
  if (leaf != (level == 0) || level > kMaxTreeDepth) {
    *why = "bad level " + std::to_string(level);
    return false;
  }
  if (DecodeFixed32(image + 8) != bytes || DecodeFixed16(image + 14) != 0 || image[1] != 0) {
    *why = "image size mismatch or reserved bytes set";
    return false;
  }
  const size_t prefix = DecodeFixed16(image + 12);
  if (count > (bytes - kImageHeaderBytes) / (kSlotBytes + kLeafEntryHeaderBytes) ||
      (!leaf && count < 1)) {
    *why = "bad entry count " + std::to_string(count);
    return false;
  }
  const size_t entries_start = kImageHeaderBytes + size_t{count} * kSlotBytes;
  const size_t header = leaf ? kLeafEntryHeaderBytes : kInternalEntryHeaderBytes;
  PageView view(image);
  std::string_view prev;
  uint32_t prev_hint = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const char* slot = image + kImageHeaderBytes + size_t{i} * kSlotBytes;
    size_t off = DecodeFixed32(slot);
    if (off < entries_start || off > bytes || bytes - off < header) {
      *why = "entry " + std::to_string(i) + " offset out of bounds";
      return false;
    }
    size_t klen = DecodeFixed16(image + off);
    size_t vlen = leaf ? DecodeFixed32(image + off + 2) : 0;
    if (klen > kMaxKeyBytes || vlen > kMaxValueBytes || bytes - off - header < klen + vlen) {
      *why = "entry " + std::to_string(i) + " length out of bounds";
      return false;
    }
    std::string_view k = view.key(i);
    if (!leaf) {
      uint64_t child = view.child(i);
      if (AddressLength(child) < kStoredHeaderBytes) {
        *why = "entry " + std::to_string(i) + " has a bad child address";
        return false;
      }
      if (i == 0 && !k.empty()) {
        *why = "first separator not empty";
        return false;
      }
    }
    // The search trusts the prefix and the hints: they must be exact.
    const bool searched = leaf || i > 0;
    const uint32_t hint = DecodeFixed32(slot + 4);
    if (searched) {
      std::string_view first = view.key(leaf ? 0 : 1);
      if (k.size() < prefix || first.size() < prefix ||
          !BytesEqual(k.data(), first.data(), prefix) || hint != KeyHint(k, prefix)) {
        *why = "entry " + std::to_string(i) + " disagrees with the page prefix or its hint";
        return false;
      }
    } else if (hint != 0) {
      *why = "entry 0 has a hint";
      return false;
    }
    // Past the shared prefix a hint is the next four key bytes, zero-padded:
    // in the bytewise order hints never order two keys against the keys'
    // order, so only equal hints need the keys compared (checked above to
    // be exact). In another order they say nothing.
    if (i > 0 && (leaf || i > 1) &&
        (order.bytewise() ? hint < prev_hint || (hint == prev_hint && !(prev < k))
                          : order.Compare(prev, k) >= 0)) {
      *why = "keys out of order at entry " + std::to_string(i);
      return false;
    }
    prev = k;
    prev_hint = hint;
  }
  return true;
}

uint64_t ImageChecksum(const char* image, size_t bytes) {
  return Checksum64(ChecksumKind::kPage, std::string_view(image, bytes));
}

size_t MaxStoredBytes(size_t image_bytes) {
  return kStoredHeaderBytes + static_cast<size_t>(LZ4_compressBound(static_cast<int>(image_bytes)));
}

namespace {

size_t EntryHeaderBytes(bool leaf) {
  return leaf ? kLeafEntryHeaderBytes : kInternalEntryHeaderBytes;
}

// The prefix length the decoder derives for a slotless page: that of the
// first and last searched keys (internal pages: from entry 1 on). In a user
// order keys between them need not share it (PagePrefix); a page whose
// prefix is smaller keeps its slots, and ValidateImage refuses any page
// with a key that does not share its prefix.
size_t CanonicalPrefix(const PageView& v) {
  uint32_t n = v.count();
  uint32_t first = v.is_leaf() ? 0 : 1;
  if (n <= first) return 0;
  return CommonPrefix(v.key(first), v.key(n - 1));
}

// True when the slot array of `image` is exactly what RebuildSlots makes from
// its entries. Checks every bound itself: the encoder may be handed any bytes.
bool SlotsAreCanonical(const char* image, size_t image_bytes) {
  if (image_bytes < kImageHeaderBytes || DecodeFixed32(image + 8) != image_bytes) return false;
  const uint8_t type = static_cast<uint8_t>(image[0]);
  const bool leaf = type == static_cast<uint8_t>(PageType::kLeaf);
  if (!leaf && type != static_cast<uint8_t>(PageType::kInternal)) return false;
  const uint32_t n = DecodeFixed32(image + 4);
  if (n == 0 || n > (image_bytes - kImageHeaderBytes) / (kSlotBytes + kLeafEntryHeaderBytes)) {
    return false;
  }
  const size_t header = EntryHeaderBytes(leaf);
  size_t pos = kImageHeaderBytes + size_t{n} * kSlotBytes;
  for (uint32_t i = 0; i < n; ++i) {
    if (DecodeFixed32(image + kImageHeaderBytes + size_t{i} * kSlotBytes) != pos) return false;
    if (image_bytes - pos < header) return false;
    size_t len = header + DecodeFixed16(image + pos) + (leaf ? DecodeFixed32(image + pos + 2) : 0);
    if (image_bytes - pos < len) return false;
    pos += len;
  }
  if (pos != image_bytes) return false;
  // Every slot now points at an entry inside the image: PageView is safe.
  PageView v(image);
  const size_t prefix = v.prefix_len();
  if (prefix != CanonicalPrefix(v)) return false;
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t hint = (leaf || i > 0) ? KeyHint(v.key(i), prefix) : 0;
    if (v.hint(i) != hint) return false;
  }
  return true;
}

// Rebuilds the header and slot array of a slotless page whose entries are in
// place; false when the entries do not fill the image exactly.
bool RebuildSlots(char* image, size_t image_bytes, uint8_t type, uint16_t level, uint32_t n) {
  const bool leaf = type == static_cast<uint8_t>(PageType::kLeaf);
  const size_t header = EntryHeaderBytes(leaf);
  size_t pos = kImageHeaderBytes + size_t{n} * kSlotBytes;
  for (uint32_t i = 0; i < n; ++i) {
    if (image_bytes - pos < header) return false;
    size_t len = header + DecodeFixed16(image + pos) + (leaf ? DecodeFixed32(image + pos + 2) : 0);
    if (image_bytes - pos < len) return false;
    EncodeFixed32(image + kImageHeaderBytes + size_t{i} * kSlotBytes, static_cast<uint32_t>(pos));
    pos += len;
  }
  if (pos != image_bytes) return false;
  image[0] = static_cast<char>(type);
  image[1] = 0;
  EncodeFixed16(image + 2, level);
  EncodeFixed32(image + 4, n);
  EncodeFixed32(image + 8, static_cast<uint32_t>(image_bytes));
  EncodeFixed16(image + 12, 0);
  EncodeFixed16(image + 14, 0);
  PageView v(image);
  const size_t prefix = CanonicalPrefix(v);
  EncodeFixed16(image + 12, static_cast<uint16_t>(prefix));
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t hint = (leaf || i > 0) ? KeyHint(v.key(i), prefix) : 0;
    EncodeFixed32(image + kImageHeaderBytes + size_t{i} * kSlotBytes + 4, hint);
  }
  return true;
}

constexpr size_t kBlockCountBytes = 2;
constexpr size_t kBlockHeaderBytes = 14;  // first entry, raw bytes, LZ4 bytes, key length
constexpr size_t kBlockSumBytes = 8;      // format 5: the block's checksum, before the key
// Format 6, most of an index entry's fixed part: five varints of up to 5
// bytes and a 32-bit checksum.
constexpr size_t kCompactEntryMaxBytes = 5 * 5 + 4;
// Format 6: the index's entries' length, after the block count, so that a
// reader knows where the blocks start without walking the index.
constexpr size_t kIndexLengthBytes = 4;

uint64_t BlockChecksum(std::string_view lz4) { return Checksum64(ChecksumKind::kLeafBlock, lz4); }

// How a blocked leaf's index is laid out, from its flags.
enum class IndexLayout { kPlain, kWideSums, kCompact };

IndexLayout LayoutOf(const char* stored) {
  const uint8_t flags = static_cast<uint8_t>(stored[9]);
  if (flags & kStoredFlagCompactIndex) return IndexLayout::kCompact;
  return (flags & kStoredFlagBlockSums) ? IndexLayout::kWideSums : IndexLayout::kPlain;
}

// Where the entries of a canonical page end: entry i+1's offset, or the image's end.
size_t EntryEnd(const PageView& v, uint32_t i) {
  return i + 1 < v.count()
             ? DecodeFixed32(v.data() + kImageHeaderBytes + size_t{i + 1} * kSlotBytes)
             : v.image_bytes();
}

// Calls visit(first entry, entry count, start offset, end offset) for each
// block of a canonical leaf's entries: a block ends after the entry that
// takes it to `block_bytes` or more.
template <typename Visit>
void ForEachBlock(const PageView& v, size_t block_bytes, Visit&& visit) {
  const uint32_t n = v.count();
  uint32_t first = 0;
  size_t start = kImageHeaderBytes + size_t{n} * kSlotBytes;
  for (uint32_t i = 0; i < n; ++i) {
    const size_t end = EntryEnd(v, i);
    if (end - start >= block_bytes || i + 1 == n) {
      visit(first, i + 1 - first, start, end);
      first = i + 1;
      start = end;
    }
  }
}

// Compresses each block of a canonical leaf into payload from `data` on, in
// order, and calls index(first entry, raw bytes, its LZ4 bytes) after each.
// Returns where the blocks end, or 0 when they do not fit in `capacity`.
template <typename Index>
size_t CompressBlocks(const char* image, size_t block_bytes, char* payload, size_t data,
                      size_t capacity, Index&& index) {
  bool fits = true;
  ForEachBlock(
      PageView(image), block_bytes, [&](uint32_t first, uint32_t, size_t start, size_t end) {
        if (!fits) return;
        const int n =
            LZ4_compress_default(image + start, payload + data, static_cast<int>(end - start),
                                 static_cast<int>(capacity - data));
        if (n <= 0) {
          fits = false;
          return;
        }
        index(first, end - start, std::string_view(payload + data, size_t(n)));
        data += static_cast<size_t>(n);
      });
  return fits ? data : 0;
}

// The payload of a leaf stored in blocks with the format-5 index, or 0 when
// it would be one block or does not fit in `capacity`.
size_t EncodeWideBlockedLeaf(const char* image, size_t block_bytes, char* payload,
                             size_t capacity) {
  const PageView v(image);
  size_t blocks = 0, index = kBlockCountBytes;
  ForEachBlock(v, block_bytes, [&](uint32_t first, uint32_t, size_t, size_t) {
    ++blocks;
    index += kBlockHeaderBytes + kBlockSumBytes + v.key(first).size();
  });
  if (blocks < 2 || blocks > 0xFFFF || index > capacity) return 0;
  EncodeFixed16(payload, static_cast<uint16_t>(blocks));
  char* header = payload + kBlockCountBytes;
  return CompressBlocks(image, block_bytes, payload, index, capacity,
                        [&](uint32_t first, size_t raw, std::string_view lz4) {
                          const std::string_view key = v.key(first);
                          EncodeFixed32(header, first);
                          EncodeFixed32(header + 4, static_cast<uint32_t>(raw));
                          EncodeFixed32(header + 8, static_cast<uint32_t>(lz4.size()));
                          EncodeFixed16(header + 12, static_cast<uint16_t>(key.size()));
                          EncodeFixed64(header + kBlockHeaderBytes, BlockChecksum(lz4));
                          std::memcpy(header + kBlockHeaderBytes + kBlockSumBytes, key.data(),
                                      key.size());
                          header += kBlockHeaderBytes + kBlockSumBytes + key.size();
                        });
}

// The same with the compact (format 6) index. Its length is known only once
// every block is compressed, so the blocks go first behind room for the
// longest index, and move down behind the index when it is written.
size_t EncodeCompactBlockedLeaf(const char* image, size_t block_bytes, char* payload,
                                size_t capacity) {
  const PageView v(image);
  size_t blocks = 0, most = kBlockCountBytes + kIndexLengthBytes;
  ForEachBlock(v, block_bytes, [&](uint32_t first, uint32_t, size_t, size_t) {
    ++blocks;
    most += kCompactEntryMaxBytes + v.key(first).size();
  });
  if (blocks < 2 || blocks > 0xFFFF || most > capacity) return 0;
  EncodeFixed16(payload, static_cast<uint16_t>(blocks));
  char* const entries = payload + kBlockCountBytes + kIndexLengthBytes;
  char* entry = entries;
  uint32_t prev_first = 0;
  std::string_view prev_key;
  const size_t end =
      CompressBlocks(image, block_bytes, payload, most, capacity,
                     [&](uint32_t first, size_t raw, std::string_view lz4) {
                       const std::string_view key = v.key(first);
                       const size_t shared = CommonPrefix(prev_key, key);
                       entry = EncodeVarint64(entry, first - prev_first);
                       entry = EncodeVarint64(entry, raw);
                       entry = EncodeVarint64(entry, lz4.size());
                       EncodeFixed32(entry, static_cast<uint32_t>(BlockChecksum(lz4)));
                       entry = EncodeVarint64(entry + 4, shared);
                       entry = EncodeVarint64(entry, key.size() - shared);
                       std::memcpy(entry, key.data() + shared, key.size() - shared);
                       entry += key.size() - shared;
                       prev_first = first;
                       prev_key = key;
                     });
  if (end == 0) return 0;
  EncodeFixed32(payload + kBlockCountBytes, static_cast<uint32_t>(entry - entries));
  std::memmove(entry, payload + most, end - most);
  return static_cast<size_t>(entry - payload) + (end - most);
}

// One entry of a block index, as BlockIndex::Next reads it.
struct BlockEntry {
  uint32_t first_entry = 0, raw_bytes = 0, lz4_bytes = 0;
  size_t lz4_offset = 0;       // from data_start()
  uint64_t checksum = 0;       // with block sums
  std::string_view first_key;  // valid until the next call to Next
};

// Reads a blocked leaf's index, checking every field against the page's
// header as it goes: a walk that ends without error has seen a well-formed
// index whose blocks tile the entries and the payload exactly. A block's
// entry count is the gap to the next block's first entry (the last: to the
// page's count).
class BlockIndex {
 public:
  // Blocks' first keys must increase in `order`.
  BlockIndex(std::string_view payload, uint32_t count, size_t entries_bytes, IndexLayout layout,
             KeyOrder order)
      : payload_(payload),
        count_(count),
        entries_bytes_(entries_bytes),
        layout_(layout),
        order_(order) {}
  BlockIndex(const BlockIndex&) = delete;
  BlockIndex& operator=(const BlockIndex&) = delete;

  // The next block; false at the end (why empty: the index is well formed
  // and data_start() is set) or on an error (why set).
  bool Next(BlockEntry* b, std::string* why) {
    if (pos_ == 0 && !Start(why)) return false;
    if (seen_ == blocks_) {
      if (raw_total_ != entries_bytes_ ||
          (layout_ == IndexLayout::kCompact && pos_ != index_end_) ||
          pos_ + lz4_total_ != payload_.size()) {
        return Fail(why, "blocks do not tile the page");
      }
      data_start_ = pos_;
      return false;
    }
    const bool read = layout_ == IndexLayout::kCompact ? ReadCompact(b) : ReadWide(b);
    if (!read) return Fail(why, "block index truncated");
    const bool first_ok =
        seen_ == 0 ? b->first_entry == 0 : b->first_entry > prev_first_ && b->first_entry < count_;
    if (!first_ok || b->raw_bytes == 0 || b->lz4_bytes == 0 ||
        b->raw_bytes > entries_bytes_ - raw_total_ || b->lz4_bytes > payload_.size() - lz4_total_) {
      return Fail(why, "block " + std::to_string(seen_) + " out of bounds");
    }
    if (seen_ > 0 && order_.Compare(prev_key_, b->first_key) >= 0) {
      return Fail(why, "block keys out of order at block " + std::to_string(seen_));
    }
    b->lz4_offset = lz4_total_;  // from data_start()
    prev_first_ = b->first_entry;
    prev_key_ = b->first_key;
    raw_total_ += b->raw_bytes;
    lz4_total_ += b->lz4_bytes;
    ++seen_;
    return true;
  }
  size_t data_start() const { return data_start_; }
  // Where the blocks start before the walk ends: known from the start with
  // the compact index (0 otherwise). A reader that stops early checks the
  // bounds of the block it takes itself.
  size_t early_data_start() const { return layout_ == IndexLayout::kCompact ? index_end_ : 0; }

 private:
  static bool Fail(std::string* why, std::string what) {
    *why = std::move(what);
    return false;
  }

  bool Start(std::string* why) {
    if (payload_.size() < kBlockCountBytes) return Fail(why, "block index truncated");
    blocks_ = DecodeFixed16(payload_.data());
    if (blocks_ < 2 || blocks_ > count_) return Fail(why, "bad block count");
    pos_ = kBlockCountBytes;
    if (layout_ == IndexLayout::kCompact) {
      if (payload_.size() - pos_ < kIndexLengthBytes) return Fail(why, "block index truncated");
      const uint32_t n = DecodeFixed32(payload_.data() + pos_);
      pos_ += kIndexLengthBytes;
      if (n > payload_.size() - pos_) return Fail(why, "block index truncated");
      index_end_ = pos_ + n;
    }
    return true;
  }

  // Formats 3 to 5: fixed fields, the whole key.
  bool ReadWide(BlockEntry* b) {
    const size_t header_bytes =
        kBlockHeaderBytes + (layout_ == IndexLayout::kWideSums ? kBlockSumBytes : 0);
    if (payload_.size() - pos_ < header_bytes) return false;
    const char* h = payload_.data() + pos_;
    const size_t klen = DecodeFixed16(h + 12);
    if (payload_.size() - pos_ - header_bytes < klen) return false;
    b->first_entry = DecodeFixed32(h);
    b->raw_bytes = DecodeFixed32(h + 4);
    b->lz4_bytes = DecodeFixed32(h + 8);
    b->checksum = header_bytes > kBlockHeaderBytes ? DecodeFixed64(h + kBlockHeaderBytes) : 0;
    b->first_key = std::string_view(h + header_bytes, klen);
    pos_ += header_bytes + klen;
    return true;
  }

  // Format 6: varints, a 32-bit checksum, the key after the shared prefix.
  // Keys are rebuilt into two buffers by turns: the previous key stays
  // whole for the next entry's prefix and the order check.
  bool ReadCompact(BlockEntry* b) {
    std::string_view in(payload_.data() + pos_, index_end_ - pos_);
    uint64_t delta = 0, raw = 0, lz4 = 0, shared = 0, suffix = 0;
    uint32_t sum = 0;
    if (!GetVarint64(&in, &delta) || !GetVarint64(&in, &raw) || !GetVarint64(&in, &lz4) ||
        !GetFixed32(&in, &sum) || !GetVarint64(&in, &shared) || !GetVarint64(&in, &suffix)) {
      return false;
    }
    if (suffix > in.size() || shared > prev_key_.size() || raw > UINT32_MAX || lz4 > UINT32_MAX ||
        delta > UINT32_MAX - prev_first_) {
      return false;
    }
    IndexKey& key = keys_[seen_ % 2];
    key.Assign(prev_key_.substr(0, shared), in.substr(0, suffix));
    // prev_first_ is 0 before block 0, whose delta Next() requires to be 0;
    // a later delta of 0 repeats a first entry, which Next() refuses too.
    b->first_entry = prev_first_ + static_cast<uint32_t>(delta);
    b->raw_bytes = static_cast<uint32_t>(raw);
    b->lz4_bytes = static_cast<uint32_t>(lz4);
    b->checksum = sum;
    b->first_key = key.view();
    pos_ = index_end_ - in.size() + suffix;
    return true;
  }

  const std::string_view payload_;
  const uint32_t count_;
  const size_t entries_bytes_;
  const IndexLayout layout_;
  const KeyOrder order_;
  size_t pos_ = 0;
  uint32_t blocks_ = 0, seen_ = 0, prev_first_ = 0;
  size_t raw_total_ = 0, lz4_total_ = 0, data_start_ = 0;
  size_t index_end_ = 0;  // compact: where the entries end; otherwise unknown (0)
  std::string_view prev_key_;
  IndexKey keys_[2];
};

}  // namespace

size_t EncodeStoredPage(const char* image, size_t image_bytes, bool compress, char* out,
                        size_t block_bytes, BlockIndexForm form) {
  uint8_t flags = 0;
  size_t payload = image_bytes;
  if (compress) {
    const int bound = LZ4_compressBound(static_cast<int>(image_bytes));
    const size_t worth = image_bytes - image_bytes / 8;  // at least 1/8 smaller
    const bool canonical = SlotsAreCanonical(image, image_bytes);
    if (canonical && block_bytes > 0 && PageView(image).is_leaf()) {
      const bool compact = form == BlockIndexForm::kCompact;
      const size_t capacity = MaxStoredBytes(image_bytes) - kStoredHeaderBytes;
      size_t n =
          compact ? EncodeCompactBlockedLeaf(image, block_bytes, out + kStoredHeaderBytes, capacity)
                  : EncodeWideBlockedLeaf(image, block_bytes, out + kStoredHeaderBytes, capacity);
      if (n >= kImageHeaderBytes && n <= worth) {
        flags = kStoredFlagLz4 | kStoredFlagNoSlots | kStoredFlagBlocks | kStoredFlagBlockSums |
                (compact ? kStoredFlagCompactIndex : 0);
        payload = n;
      }
    }
    if (flags == 0 && canonical) {
      const size_t skip = kImageHeaderBytes + size_t{PageView(image).count()} * kSlotBytes;
      int n = LZ4_compress_default(image + skip, out + kStoredHeaderBytes,
                                   static_cast<int>(image_bytes - skip), bound);
      // A stored page is never shorter than a header and an image header.
      if (n >= static_cast<int>(kImageHeaderBytes) && static_cast<size_t>(n) <= worth) {
        flags = kStoredFlagLz4 | kStoredFlagNoSlots;
        payload = static_cast<size_t>(n);
      }
    }
    if (flags == 0) {
      int n = LZ4_compress_default(image, out + kStoredHeaderBytes, static_cast<int>(image_bytes),
                                   bound);
      if (n > 0 && static_cast<size_t>(n) <= worth) {
        flags = kStoredFlagLz4;
        payload = static_cast<size_t>(n);
      }
    }
  }
  if (flags == 0) std::memcpy(out + kStoredHeaderBytes, image, image_bytes);
  EncodeFixed64(out, 0);
  out[8] = image[0];
  out[9] = static_cast<char>(flags);
  std::memcpy(out + 10, image + 2, 2);  // level
  std::memcpy(out + 12, image + 4, 4);  // count
  EncodeFixed32(out + 16, static_cast<uint32_t>(image_bytes));
  EncodeFixed32(out + 20, static_cast<uint32_t>(payload));
  return kStoredHeaderBytes + payload;
}

namespace {

constexpr uint8_t kBlockedLeafFlags =
    kStoredFlagLz4 | kStoredFlagNoSlots | kStoredFlagBlocks | kStoredFlagBlockSums;

bool HasBlockSums(const char* stored) {
  return (static_cast<uint8_t>(stored[9]) & kStoredFlagBlockSums) != 0;
}

// The bits of a block's XXH3 its index keeps.
uint64_t BlockSumMask(IndexLayout layout) {
  return layout == IndexLayout::kCompact ? uint64_t{UINT32_MAX} : ~uint64_t{0};
}

// Where the index of a blocked leaf with block sums ends, from the page's
// start, within the first `available` bytes; 0 when it does not end there.
size_t BlockIndexEnd(const char* stored, size_t available) {
  size_t pos = kStoredHeaderBytes + kBlockCountBytes;
  if (available < pos) return 0;
  const uint32_t blocks = DecodeFixed16(stored + kStoredHeaderBytes);
  if (LayoutOf(stored) == IndexLayout::kCompact) {
    if (available - pos < kIndexLengthBytes) return 0;
    const uint32_t n = DecodeFixed32(stored + pos);
    pos += kIndexLengthBytes;
    return n <= available - pos ? pos + n : 0;
  }
  for (uint32_t i = 0; i < blocks; ++i) {
    if (available - pos < kBlockHeaderBytes + kBlockSumBytes) return 0;
    pos += kBlockHeaderBytes + kBlockSumBytes + DecodeFixed16(stored + pos + 12);
    if (pos > available) return 0;
  }
  return pos;
}

// Covers the whole page, or with block sums its header and index (`end`).
uint64_t StoredChecksum(const char* stored, size_t end, uint64_t offset) {
  // Seeded with the offset: a page read from the wrong place fails.
  uint64_t seed = static_cast<uint64_t>(ChecksumKind::kPage) ^ (offset * 0x9E3779B97F4A7C15ULL);
  return XXH3_64bits_withSeed(stored + 8, end - 8, seed);
}

// The page checksum of a page with block sums, then every block's.
Status VerifyBlockSums(std::string_view stored, uint64_t offset, const std::string& file,
                       KeyOrder order) {
  const char* p = stored.data();
  const size_t end = BlockIndexEnd(p, stored.size());
  if (end == 0) return PageCorruption(file, offset, "block index truncated");
  if (DecodeFixed64(p) != StoredChecksum(p, end, offset)) {
    return PageCorruption(file, offset, "checksum mismatch");
  }
  const uint32_t count = DecodeFixed32(p + 12);
  const size_t skip = kImageHeaderBytes + size_t{count} * kSlotBytes;
  const uint32_t image_bytes = DecodeFixed32(p + 16);
  if (skip > image_bytes) return PageCorruption(file, offset, "bad entry count");
  const std::string_view payload = stored.substr(kStoredHeaderBytes);
  const IndexLayout layout = LayoutOf(p);
  const uint64_t mask = BlockSumMask(layout);
  BlockIndex index(payload, count, image_bytes - skip, layout, order);
  BlockEntry b;
  std::string why;
  const size_t data_start = end - kStoredHeaderBytes;
  while (index.Next(&b, &why)) {
    if (b.lz4_offset + b.lz4_bytes > payload.size() - data_start ||
        (BlockChecksum(payload.substr(data_start + b.lz4_offset, b.lz4_bytes)) & mask) !=
            b.checksum) {
      return PageCorruption(file, offset, "block checksum mismatch");
    }
  }
  if (!why.empty()) return PageCorruption(file, offset, why);
  return Status::OK();
}

}  // namespace

void SealStoredPage(char* stored, size_t length, uint64_t offset) {
  // (An index that does not end inside the page, only ever in a test's
  // damaged page, gets the whole-page checksum: readers refuse it anyway.)
  const size_t end = HasBlockSums(stored) ? BlockIndexEnd(stored, length) : length;
  EncodeFixed64(stored, StoredChecksum(stored, end == 0 ? length : end, offset));
}

void IndexKey::Assign(std::string_view prefix, std::string_view suffix) {
  const size_t n = prefix.size() + suffix.size();
  char* p = inline_;
  if (n > sizeof(inline_)) {
    spill_.resize(n);
    p = spill_.data();
  }
  if (!prefix.empty()) std::memcpy(p, prefix.data(), prefix.size());
  if (!suffix.empty()) std::memcpy(p + prefix.size(), suffix.data(), suffix.size());
  view_ = std::string_view(p, n);
}

Status PageCorruption(const std::string& file, uint64_t offset, std::string_view what) {
  return Status::Corruption(file + " page at offset " + std::to_string(offset) + ": " +
                            std::string(what));
}

namespace {

// The stored header's fields against a page of `length` bytes, once its
// checksum holds: for a whole read (ParseStoredPage) and a head read
// (ParseStoredHead) alike.
Status CheckStoredHeader(const char* p, size_t length, uint64_t offset, const std::string& file,
                         size_t* image_bytes) {
  const uint8_t flags = static_cast<uint8_t>(p[9]);
  const uint32_t raw = DecodeFixed32(p + 16);
  const uint32_t payload = DecodeFixed32(p + 20);
  if (size_t{payload} + kStoredHeaderBytes != length) {
    return PageCorruption(file, offset, "payload length mismatch");
  }
  const bool leaf = p[8] == static_cast<char>(PageType::kLeaf);
  const bool known =
      flags == 0 || flags == kStoredFlagLz4 || flags == (kStoredFlagLz4 | kStoredFlagNoSlots) ||
      (flags == (kStoredFlagLz4 | kStoredFlagNoSlots | kStoredFlagBlocks) && leaf) ||
      ((flags == kBlockedLeafFlags || flags == (kBlockedLeafFlags | kStoredFlagCompactIndex)) &&
       leaf);
  if (!known) return PageCorruption(file, offset, "unknown page flags");
  if (raw < kImageHeaderBytes || raw > kMaxImageBytes ||
      ((flags & kStoredFlagLz4) == 0 && raw != payload)) {
    return PageCorruption(file, offset, "bad image size");
  }
  *image_bytes = raw;
  return Status::OK();
}

}  // namespace

Status ParseStoredPage(std::string_view stored, uint64_t offset, bool verify_checksum,
                       const std::string& file, size_t* image_bytes, KeyOrder order) {
  if (stored.size() < kStoredHeaderBytes) return PageCorruption(file, offset, "truncated page");
  const char* p = stored.data();
  if (verify_checksum) {
    // Before the header's fields, as for every page: a damaged page reports
    // its checksum first.
    if (HasBlockSums(p)) {
      Status s = VerifyBlockSums(stored, offset, file, order);
      if (!s.ok()) return s;
    } else if (DecodeFixed64(p) != StoredChecksum(p, stored.size(), offset)) {
      return PageCorruption(file, offset, "checksum mismatch");
    }
  }
  return CheckStoredHeader(p, stored.size(), offset, file, image_bytes);
}

namespace {

// Decompresses every block of a blocked leaf into `entries`, back to back.
bool DecodeBlocks(std::string_view payload, uint32_t count, KeyOrder order, char* entries,
                  size_t entries_bytes, IndexLayout layout, std::string* why) {
  BlockEntry b;
  size_t data_start = 0;
  if (layout != IndexLayout::kCompact) {
    // The blocks start after the index: a first walk finds where. The
    // compact index says so up front, and one walk does.
    BlockIndex check(payload, count, entries_bytes, layout, order);
    while (check.Next(&b, why)) {
    }
    if (!why->empty()) return false;
    data_start = check.data_start();
  }
  BlockIndex index(payload, count, entries_bytes, layout, order);
  size_t out = 0;
  while (index.Next(&b, why)) {
    if (layout == IndexLayout::kCompact) {
      // Before the walk ends, the bounds of each block are checked here.
      data_start = index.early_data_start();
      if (b.lz4_offset + b.lz4_bytes > payload.size() - data_start) {
        *why = "block at entry " + std::to_string(b.first_entry) + " out of bounds";
        return false;
      }
    }
    const int n = LZ4_decompress_safe(payload.data() + data_start + b.lz4_offset, entries + out,
                                      static_cast<int>(b.lz4_bytes), static_cast<int>(b.raw_bytes));
    if (n < 0 || static_cast<uint32_t>(n) != b.raw_bytes) {
      *why = "LZ4 block at entry " + std::to_string(b.first_entry) + " does not decompress";
      return false;
    }
    out += b.raw_bytes;
  }
  return why->empty();
}

// After RebuildSlots: each block starts at an entry, with the key its index
// names (so a block read finds what a whole-page read finds).
bool BlocksMatchEntries(std::string_view payload, const char* image, IndexLayout layout,
                        KeyOrder order, std::string* why) {
  const PageView v(image);
  const size_t skip = kImageHeaderBytes + size_t{v.count()} * kSlotBytes;
  BlockIndex index(payload, v.count(), v.image_bytes() - skip, layout, order);
  BlockEntry b;
  size_t start = skip;
  while (index.Next(&b, why)) {
    if (DecodeFixed32(image + kImageHeaderBytes + size_t{b.first_entry} * kSlotBytes) != start ||
        v.key(b.first_entry) != b.first_key) {
      *why = "block at entry " + std::to_string(b.first_entry) + " disagrees with its index";
      return false;
    }
    start += b.raw_bytes;
  }
  return why->empty();
}

}  // namespace

Status LocateLeafBlock(std::string_view stored, uint64_t offset, const std::string& file,
                       std::string_view key, LeafBlock* block, bool* in_range, KeyOrder order) {
  const uint32_t count = StoredEntryCount(stored);
  const uint32_t image_bytes = DecodeFixed32(stored.data() + 16);
  if (!IsBlockedLeaf(stored) || !IsStoredLeaf(stored)) {
    return PageCorruption(file, offset, "not a leaf stored in blocks");
  }
  const size_t skip = kImageHeaderBytes + size_t{count} * kSlotBytes;
  if (count == 0 || skip > image_bytes) {
    return PageCorruption(file, offset, "bad entry count " + std::to_string(count));
  }
  const std::string_view payload = stored.substr(kStoredHeaderBytes);
  const IndexLayout layout = LayoutOf(stored.data());
  BlockIndex index(payload, count, image_bytes - skip, layout, order);
  // With the compact index the walk stops at the first block past the key:
  // the blocks' start is known, and the page checksum has covered the rest
  // of the index (a whole read walks all of it).
  BlockEntry b, chosen;
  bool have = false, stopped = false;
  uint32_t chosen_end = count;  // the entry after the chosen block's last
  std::string why;
  while (index.Next(&b, &why)) {
    if (order.bytewise() ? b.first_key <= key : order.Compare(b.first_key, key) <= 0) {
      chosen = b;  // its key outlives one more Next (the index's buffers alternate)
      chosen_end = count;
      have = true;
      continue;
    }
    if (have && chosen_end == count) chosen_end = b.first_entry;
    if (index.early_data_start() != 0) {
      stopped = true;
      break;
    }
  }
  if (!why.empty()) return PageCorruption(file, offset, why);
  *in_range = have;
  if (!have) return Status::OK();
  const size_t data_start = stopped ? index.early_data_start() : index.data_start();
  if (chosen.lz4_offset + chosen.lz4_bytes > payload.size() - data_start) {
    return PageCorruption(file, offset, "block out of bounds");
  }
  block->first_key.Assign(chosen.first_key);
  block->lz4 = payload.substr(data_start + chosen.lz4_offset, chosen.lz4_bytes);
  block->raw_bytes = chosen.raw_bytes;
  block->entries = chosen_end - chosen.first_entry;
  block->has_checksum = layout != IndexLayout::kPlain;
  block->checksum = chosen.checksum;
  block->checksum_mask = BlockSumMask(layout);
  return Status::OK();
}

Status ForEachLeafBlock(std::string_view stored, uint64_t offset, const std::string& file,
                        KeyOrder order, const std::function<void(const IndexedBlock&)>& visit,
                        bool* compact) {
  *compact = false;
  if (!IsBlockedLeaf(stored) || !IsStoredLeaf(stored)) {
    return PageCorruption(file, offset, "not a leaf stored in blocks");
  }
  const IndexLayout layout = LayoutOf(stored.data());
  if (layout != IndexLayout::kCompact) return Status::OK();
  *compact = true;
  const uint32_t count = StoredEntryCount(stored);
  const uint32_t image_bytes = DecodeFixed32(stored.data() + 16);
  const size_t skip = kImageHeaderBytes + size_t{count} * kSlotBytes;
  if (count == 0 || skip > image_bytes) {
    return PageCorruption(file, offset, "bad entry count " + std::to_string(count));
  }
  const std::string_view payload = stored.substr(kStoredHeaderBytes);
  BlockIndex index(payload, count, image_bytes - skip, layout, order);
  BlockEntry b;
  std::string why;
  while (index.Next(&b, &why)) {
    visit({.first_entry = b.first_entry,
           .raw_bytes = b.raw_bytes,
           .lz4_bytes = b.lz4_bytes,
           .lz4_offset = kStoredHeaderBytes + index.early_data_start() + b.lz4_offset,
           .checksum = static_cast<uint32_t>(b.checksum),
           .first_key = b.first_key});
  }
  // The walk's end checked that the blocks tile the page.
  if (!why.empty()) return PageCorruption(file, offset, why);
  return Status::OK();
}

Status ParseStoredHead(std::string_view head, uint32_t length, uint64_t offset,
                       const std::string& file, bool* usable, size_t* index_end) {
  *usable = false;
  if (head.size() < kStoredHeaderBytes || head.size() > length) return Status::OK();
  const char* p = head.data();
  if ((static_cast<uint8_t>(p[9]) & ~kStoredFlagCompactIndex) != kBlockedLeafFlags) {
    return Status::OK();
  }
  const size_t end = BlockIndexEnd(p, head.size());
  if (end == 0) return Status::OK();  // the index goes on past the head
  if (DecodeFixed64(p) != StoredChecksum(p, end, offset)) {
    return PageCorruption(file, offset, "checksum mismatch");
  }
  size_t image_bytes = 0;
  Status s = CheckStoredHeader(p, length, offset, file, &image_bytes);
  *usable = s.ok();
  if (index_end != nullptr) *index_end = end;
  return s;
}

Status SearchLeafBlock(const LeafBlock& block, char* raw, uint64_t offset, const std::string& file,
                       std::string_view key, std::string_view* value, bool* found, KeyOrder order) {
  *found = false;
  if (block.has_checksum && (BlockChecksum(block.lz4) & block.checksum_mask) != block.checksum) {
    return PageCorruption(file, offset, "block checksum mismatch");
  }
  const int n = LZ4_decompress_safe(block.lz4.data(), raw, static_cast<int>(block.lz4.size()),
                                    static_cast<int>(block.raw_bytes));
  if (n < 0 || static_cast<uint32_t>(n) != block.raw_bytes) {
    return PageCorruption(file, offset, "LZ4 block does not decompress");
  }
  size_t pos = 0;
  std::string_view prev;
  for (uint32_t i = 0; i < block.entries; ++i) {
    const size_t left = block.raw_bytes - pos;
    if (left < kLeafEntryHeaderBytes)
      return PageCorruption(file, offset, "block entry out of bounds");
    const size_t klen = DecodeFixed16(raw + pos);
    const size_t vlen = DecodeFixed32(raw + pos + 2);
    if (klen > kMaxKeyBytes || vlen > kMaxValueBytes ||
        left - kLeafEntryHeaderBytes < klen + vlen) {
      return PageCorruption(file, offset, "block entry out of bounds");
    }
    const std::string_view k(raw + pos + kLeafEntryHeaderBytes, klen);
    if (i == 0             ? k != block.first_key.view()
        : order.bytewise() ? !(prev < k)
                           : order.Compare(prev, k) >= 0) {
      return PageCorruption(file, offset, "block keys disagree with the index");
    }
    if (order.bytewise() ? k == key : order.Equal(k, key)) {
      *value = std::string_view(raw + pos + kLeafEntryHeaderBytes + klen, vlen);
      *found = true;
    }
    prev = k;
    pos += kLeafEntryHeaderBytes + klen + vlen;
  }
  if (pos != block.raw_bytes) return PageCorruption(file, offset, "block entries do not fill it");
  return Status::OK();
}

Status DecodeStoredPage(std::string_view stored, uint64_t offset, const std::string& file,
                        char* image, size_t image_bytes, KeyOrder order) {
  const char* p = stored.data();
  const char* payload = p + kStoredHeaderBytes;
  size_t payload_bytes = stored.size() - kStoredHeaderBytes;
  if (p[9] & kStoredFlagNoSlots) {
    const uint32_t count = DecodeFixed32(p + 12);
    const size_t skip = kImageHeaderBytes + size_t{count} * kSlotBytes;
    if (count > (image_bytes - kImageHeaderBytes) / (kSlotBytes + kLeafEntryHeaderBytes)) {
      return PageCorruption(file, offset, "bad entry count " + std::to_string(count));
    }
    const std::string_view body(payload, payload_bytes);
    std::string why;
    if (p[9] & kStoredFlagBlocks) {
      if (!DecodeBlocks(body, count, order, image + skip, image_bytes - skip, LayoutOf(p), &why)) {
        return PageCorruption(file, offset, why);
      }
    } else {
      int n = LZ4_decompress_safe(payload, image + skip, static_cast<int>(payload_bytes),
                                  static_cast<int>(image_bytes - skip));
      if (n < 0 || static_cast<size_t>(n) != image_bytes - skip) {
        return PageCorruption(file, offset, "LZ4 payload does not decompress");
      }
    }
    if (!RebuildSlots(image, image_bytes, static_cast<uint8_t>(p[8]), DecodeFixed16(p + 10),
                      count)) {
      return PageCorruption(file, offset, "entries do not fill the page");
    }
    if ((p[9] & kStoredFlagBlocks) && !BlocksMatchEntries(body, image, LayoutOf(p), order, &why)) {
      return PageCorruption(file, offset, why);
    }
  } else if (p[9] & kStoredFlagLz4) {
    int n = LZ4_decompress_safe(payload, image, static_cast<int>(payload_bytes),
                                static_cast<int>(image_bytes));
    if (n < 0 || static_cast<size_t>(n) != image_bytes) {
      return PageCorruption(file, offset, "LZ4 payload does not decompress");
    }
  } else {
    std::memcpy(image, payload, image_bytes);
  }
  if (image[0] != p[8] || std::memcmp(image + 2, p + 10, 6) != 0) {
    return PageCorruption(file, offset, "header does not match the image");
  }
  std::string why;
  if (!ValidateImage(image, image_bytes, &why, order)) return PageCorruption(file, offset, why);
  return Status::OK();
}

}  // namespace arenakv::tree
