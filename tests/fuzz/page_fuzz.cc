// libFuzzer target for the B+tree page decoder. The first input byte picks
// how the rest is used:
//   0: a stored page as read from disk, checksum verified (the common case:
//      almost everything must be refused as Corruption);
//   1: a stored page whose checksum is recomputed first, so the fuzzer reaches
//      the header checks, LZ4 and the image validator;
//   2: a raw page image given to the validator;
//   3: entries for a leaf, encoded in small blocks: the stored page must
//      decode to the image and every key must be found from its block.
// A stored page stored in blocks is also searched block by block.
// Whatever is accepted is then walked through PageView accessors and searches,
// which must stay inside the image (AddressSanitizer watches).
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "tree/page_format.h"

namespace {

void Walk(const std::string& image) {
  using arenakv::tree::PageView;
  PageView v(image.data());
  size_t sum = 0;
  for (uint32_t i = 0; i < v.count(); ++i) {
    sum += v.key(i).size();
    if (v.is_leaf()) {
      sum += v.value(i).size();
    } else {
      sum += v.child(i) & 1;
    }
  }
  if (v.is_leaf()) {
    sum += v.LowerBound("m");
  } else {
    sum += v.ChildIndex("m");
  }
  if (sum == 0xdeadbeef) __builtin_trap();  // keep the loop alive
}

// A lookup through the block index; aborts only if it reads out of bounds
// (ASan) or contradicts itself.
bool BlockLookup(std::string_view stored, uint64_t offset, std::string_view key,
                 std::string* value) {
  using namespace arenakv::tree;
  LeafBlock block;
  bool in_range = false;
  if (!LocateLeafBlock(stored, offset, "fuzz", key, &block, &in_range).ok() || !in_range) {
    return false;
  }
  std::string raw(block.raw_bytes, '\0');
  std::string_view v;
  bool found = false;
  if (!SearchLeafBlock(block, raw.data(), offset, "fuzz", key, &v, &found).ok()) return false;
  if (found) value->assign(v);
  return found;
}

// Mode 3: entries from the input (key length, value length, key bytes;
// values are patterns), a leaf image, stored in blocks of 256 bytes.
void RoundTripBlocks(std::string_view in) {
  using namespace arenakv::tree;
  std::map<std::string, std::string> entries;
  while (in.size() >= 3) {
    const size_t klen = 1 + static_cast<uint8_t>(in[0]) % 24;
    const size_t vlen = static_cast<uint8_t>(in[1]) * 13 % 1500;
    in.remove_prefix(2);
    if (in.size() < klen) break;
    entries[std::string(in.substr(0, klen))] =
        std::string(vlen, static_cast<char>('a' + vlen % 26));
    in.remove_prefix(klen);
  }
  if (entries.empty()) return;
  size_t bytes = kImageHeaderBytes;
  for (const auto& [k, v] : entries) bytes += LeafEntryBytes(k.size(), v.size());
  if (bytes > kMaxImageBytes) return;
  std::string image(bytes, '\0');
  ImageWriter w(image.data(), PageType::kLeaf, 0, static_cast<uint32_t>(entries.size()),
                static_cast<uint32_t>(bytes),
                CommonPrefix(entries.begin()->first, entries.rbegin()->first));
  for (const auto& [k, v] : entries) w.Leaf(k, v);
  const uint64_t offset = 4096 * 5;
  std::string stored(MaxStoredBytes(bytes), '\0');
  stored.resize(EncodeStoredPage(image.data(), bytes, true, stored.data(), 256));
  SealStoredPage(stored.data(), stored.size(), offset);
  size_t image_bytes = 0;
  if (!ParseStoredPage(stored, offset, true, "fuzz", &image_bytes).ok()) __builtin_trap();
  std::string out(image_bytes, '\0');
  if (!DecodeStoredPage(stored, offset, "fuzz", out.data(), image_bytes).ok()) __builtin_trap();
  if (out != image) __builtin_trap();
  if (!IsBlockedLeaf(stored)) return;
  for (const auto& [k, v] : entries) {
    std::string got;
    if (!BlockLookup(stored, offset, k, &got) || got != v) __builtin_trap();
    if (entries.count(k + "\x01") == 0 && BlockLookup(stored, offset, k + "\x01", &got)) {
      __builtin_trap();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace arenakv::tree;
  if (size < 1) return 0;
  int mode = data[0] % 4;
  std::string input(reinterpret_cast<const char*>(data + 1), size - 1);
  const uint64_t offset = 4096 * 3;
  if (mode == 3) {
    RoundTripBlocks(input);
    return 0;
  }
  if (mode == 2) {
    std::string why;
    if (ValidateImage(input.data(), input.size(), &why)) Walk(input);
    return 0;
  }
  if (mode == 1 && input.size() >= kStoredHeaderBytes) {
    SealStoredPage(input.data(), input.size(), offset);
  }
  size_t image_bytes = 0;
  if (!ParseStoredPage(input, offset, true, "fuzz", &image_bytes).ok()) return 0;
  if (IsBlockedLeaf(input)) {
    std::string value;
    BlockLookup(input, offset, "m", &value);
    if (input.size() >= kStoredHeaderBytes + 24) {
      BlockLookup(input, offset, std::string_view(input).substr(kStoredHeaderBytes + 16, 8),
                  &value);
    }
  }
  std::string image(image_bytes, '\0');
  if (!DecodeStoredPage(input, offset, "fuzz", image.data(), image_bytes).ok()) return 0;
  Walk(image);
  return 0;
}
