// LeafDigest: a blocked leaf's head decoded for binary search.
#include "tree/leaf_digest.h"

#include <algorithm>
#include <cstring>

#include "util/coding.h"

namespace arenakv::tree {
namespace {

constexpr size_t kHeaderBytes = 8;
constexpr size_t kBlockBytes = 2 + 2 + 2 + 2 + 4;  // key_end, first, lz4_end, raw, sum
// Room for the first keys whole while the digest is made; a leaf whose
// first keys take more has no digest.
constexpr size_t kMaxDigestKeyBytes = 2048;

// Where each array of a digest of n blocks starts, from the digest's start.
struct Offsets {
  size_t key_end, first, lz4_end, raw, sum, prefix;
};
constexpr Offsets OffsetsFor(size_t n) {
  return {kHeaderBytes,         kHeaderBytes + 2 * n, kHeaderBytes + 4 * n,
          kHeaderBytes + 6 * n, kHeaderBytes + 8 * n, kHeaderBytes + 12 * n};
}
static_assert(OffsetsFor(1).prefix == kHeaderBytes + kBlockBytes);

// The digest's arrays, over trusted bytes.
struct DigestView {
  uint32_t n = 0, prefix_bytes = 0, count = 0, data_start = 0;
  const char* key_end = nullptr;
  const char* first = nullptr;
  const char* lz4_end = nullptr;
  const char* raw = nullptr;
  const char* sum = nullptr;
  const char* prefix = nullptr;
  const char* suffixes = nullptr;

  // false when `d` is shorter or longer than its header says.
  bool Parse(std::string_view d) {
    if (d.size() < kHeaderBytes) return false;
    const char* p = d.data();
    n = DecodeFixed16(p);
    prefix_bytes = DecodeFixed16(p + 2);
    count = DecodeFixed16(p + 4);
    data_start = DecodeFixed16(p + 6);
    const Offsets o = OffsetsFor(n);  // o.prefix: the header and the arrays
    if (n == 0 || d.size() < o.prefix + prefix_bytes) return false;
    key_end = p + o.key_end;
    first = p + o.first;
    lz4_end = p + o.lz4_end;
    raw = p + o.raw;
    sum = p + o.sum;
    prefix = p + o.prefix;
    suffixes = prefix + prefix_bytes;
    return d.size() == o.prefix + prefix_bytes + At(key_end, n - 1);
  }
  static uint32_t At(const char* array, uint32_t i) { return DecodeFixed16(array + 2 * i); }
  std::string_view Suffix(uint32_t i) const {
    const uint32_t start = i == 0 ? 0 : At(key_end, i - 1);
    return {suffixes + start, At(key_end, i) - start};
  }
};

// The last block whose first key is at most `key` (bytewise), or -1.
int64_t FindBytewise(const DigestView& v, std::string_view key) {
  const size_t m = std::min<size_t>(v.prefix_bytes, key.size());
  const int c = std::memcmp(key.data(), v.prefix, m);
  if (c < 0 || (c == 0 && key.size() < v.prefix_bytes)) return -1;
  if (c > 0) return int64_t{v.n} - 1;
  const std::string_view rest = key.substr(v.prefix_bytes);
  uint32_t lo = 0, hi = v.n;  // the first block whose key is above `key` lies in [lo, hi]
  while (lo < hi) {
    const uint32_t mid = (lo + hi) / 2;
    if (v.Suffix(mid) <= rest) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return int64_t{lo} - 1;
}

int64_t FindOrdered(const DigestView& v, std::string_view key, KeyOrder order) {
  const std::string_view prefix(v.prefix, v.prefix_bytes);
  IndexKey probe;
  uint32_t lo = 0, hi = v.n;
  while (lo < hi) {
    const uint32_t mid = (lo + hi) / 2;
    probe.Assign(prefix, v.Suffix(mid));
    if (order.Compare(probe.view(), key) <= 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return int64_t{lo} - 1;
}

}  // namespace

Status EncodeLeafDigest(std::string_view stored, uint64_t offset, const std::string& file,
                        KeyOrder order, char* out, size_t capacity, size_t* bytes) {
  *bytes = 0;
  if (stored.size() < kStoredHeaderBytes + 2 || stored.size() > UINT16_MAX ||
      StoredEntryCount(stored) > UINT16_MAX) {
    return Status::OK();
  }
  // The walk checks this count; the arrays' places depend on it.
  const size_t n = DecodeFixed16(stored.data() + kStoredHeaderBytes);
  const Offsets o = OffsetsFor(n);  // o.prefix: the header and the arrays
  if (n == 0 || o.prefix > capacity) return Status::OK();
  char* const key_end = out + o.key_end;
  char* const first = out + o.first;
  char* const lz4_end = out + o.lz4_end;
  char* const raw = out + o.raw;
  char* const sum = out + o.sum;
  // The first keys whole, until the prefix they share is known.
  char keys[kMaxDigestKeyBytes];
  size_t i = 0, key_bytes = 0, data_start = 0, prefix_bytes = 0;
  bool fits = true;
  std::string_view prev;
  bool compact = false;
  Status s = ForEachLeafBlock(
      stored, offset, file, order,
      [&](const IndexedBlock& b) {
        if (i >= n || b.first_key.size() > sizeof(keys) - key_bytes) {
          fits = false;
          return;
        }
        if (i == 0) data_start = b.lz4_offset;
        // The prefix all keys share is the least two neighbours share.
        prefix_bytes =
            i == 0 ? b.first_key.size() : std::min(prefix_bytes, CommonPrefix(prev, b.first_key));
        std::memcpy(keys + key_bytes, b.first_key.data(), b.first_key.size());
        prev = std::string_view(keys + key_bytes, b.first_key.size());
        key_bytes += b.first_key.size();
        // Every length is below the page's, so 16 bits. key_end holds the
        // whole keys' ends until the prefix is known.
        EncodeFixed16(key_end + 2 * i, static_cast<uint16_t>(key_bytes));
        EncodeFixed16(first + 2 * i, static_cast<uint16_t>(b.first_entry));
        EncodeFixed16(lz4_end + 2 * i,
                      static_cast<uint16_t>(b.lz4_offset + b.lz4_bytes - data_start));
        EncodeFixed16(raw + 2 * i, static_cast<uint16_t>(b.raw_bytes));
        EncodeFixed32(sum + 4 * i, b.checksum);
        ++i;
      },
      &compact);
  if (!s.ok() || !compact || !fits || i != n) return s;
  const size_t size = o.prefix + key_bytes - (n - 1) * prefix_bytes;
  if (size > capacity) return Status::OK();
  EncodeFixed16(out, static_cast<uint16_t>(n));
  EncodeFixed16(out + 2, static_cast<uint16_t>(prefix_bytes));
  EncodeFixed16(out + 4, static_cast<uint16_t>(StoredEntryCount(stored)));
  EncodeFixed16(out + 6, static_cast<uint16_t>(data_start));
  char* const prefix = out + o.prefix;
  std::memcpy(prefix, keys, prefix_bytes);
  char* suffix = prefix + prefix_bytes;
  size_t start = 0;
  for (size_t b = 0; b < n; ++b) {
    const size_t end = DecodeFixed16(key_end + 2 * b);
    std::memcpy(suffix, keys + start + prefix_bytes, end - start - prefix_bytes);
    suffix += end - start - prefix_bytes;
    EncodeFixed16(key_end + 2 * b, static_cast<uint16_t>(suffix - (prefix + prefix_bytes)));
    start = end;
  }
  *bytes = size;
  return Status::OK();
}

bool LocateInDigest(std::string_view digest, std::string_view key, KeyOrder order, LeafBlock* block,
                    DigestBlock* where, bool* in_range) {
  DigestView v;
  if (!v.Parse(digest)) return false;
  const int64_t found = order.bytewise() ? FindBytewise(v, key) : FindOrdered(v, key, order);
  *in_range = found >= 0;
  if (!*in_range) return true;
  const auto i = static_cast<uint32_t>(found);
  const uint32_t lz4_start = i == 0 ? 0 : DigestView::At(v.lz4_end, i - 1);
  const uint32_t end_entry = i + 1 < v.n ? DigestView::At(v.first, i + 1) : v.count;
  where->lz4_offset = v.data_start + lz4_start;
  where->lz4_bytes = DigestView::At(v.lz4_end, i) - lz4_start;
  block->lz4 = {};
  block->raw_bytes = DigestView::At(v.raw, i);
  block->entries = end_entry - DigestView::At(v.first, i);
  block->first_key.Assign(std::string_view(v.prefix, v.prefix_bytes), v.Suffix(i));
  block->has_checksum = true;
  block->checksum = DecodeFixed32(v.sum + 4 * i);
  block->checksum_mask = UINT32_MAX;
  return true;
}

}  // namespace arenakv::tree
