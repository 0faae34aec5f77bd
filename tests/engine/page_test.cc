// Page format: addresses, slotted images, the stored (compressed,
// checksummed) form, and the bounds checks of the decoder.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "arenakv/options.h"
#include "db_test_util.h"
#include "test_orders.h"
#include "test_util.h"
#include "tree/leaf_digest.h"
#include "tree/page_format.h"

namespace arenakv::tree {
namespace {

std::string LeafImage(const std::vector<std::pair<std::string, std::string>>& entries) {
  size_t bytes = kImageHeaderBytes;
  for (const auto& [k, v] : entries) bytes += LeafEntryBytes(k.size(), v.size());
  std::string image(bytes, '\0');
  size_t prefix = entries.empty() ? 0 : CommonPrefix(entries.front().first, entries.back().first);
  ImageWriter w(image.data(), PageType::kLeaf, 0, static_cast<uint32_t>(entries.size()),
                static_cast<uint32_t>(bytes), prefix);
  for (const auto& [k, v] : entries) w.Leaf(k, v);
  EXPECT_TRUE(w.complete());
  return image;
}

std::string InternalImage(const std::vector<std::pair<std::string, uint64_t>>& entries,
                          uint16_t level = 1) {
  size_t bytes = kImageHeaderBytes;
  for (const auto& [k, c] : entries) bytes += InternalEntryBytes(k.size());
  std::string image(bytes, '\0');
  size_t prefix = entries.size() < 2 ? 0 : CommonPrefix(entries[1].first, entries.back().first);
  ImageWriter w(image.data(), PageType::kInternal, level, static_cast<uint32_t>(entries.size()),
                static_cast<uint32_t>(bytes), prefix);
  for (const auto& [k, c] : entries) w.Internal(k, c);
  EXPECT_TRUE(w.complete());
  return image;
}

TEST(PageAddressTest, RoundTrip) {
  uint64_t a = MakeAddress(uint64_t{123456} * 16, 4321);
  EXPECT_EQ(AddressOffset(a), uint64_t{123456} * 16);
  EXPECT_EQ(AddressLength(a), 4321u);
  EXPECT_EQ(AddressExtent(a), AlignUp(4321));
  uint64_t big = MakeAddress(kMaxFileOffset - 16, kMaxStoredLength);
  EXPECT_EQ(AddressOffset(big), kMaxFileOffset - 16);
  EXPECT_EQ(AddressLength(big), kMaxStoredLength);
  EXPECT_GE(kMaxStoredLength, MaxStoredBytes(kMaxImageBytes));  // any page fits in one address
}

TEST(PageViewTest, LeafSearch) {
  std::vector<std::pair<std::string, std::string>> e;
  for (int i = 0; i < 100; ++i)
    e.emplace_back("k" + std::to_string(1000 + 2 * i), "v" + std::to_string(i));
  std::string image = LeafImage(e);
  std::string why;
  ASSERT_TRUE(ValidateImage(image.data(), image.size(), &why)) << why;
  PageView v(image.data());
  EXPECT_TRUE(v.is_leaf());
  EXPECT_EQ(v.count(), 100u);
  EXPECT_EQ(v.key(7), "k1014");
  EXPECT_EQ(v.value(7), "v7");
  EXPECT_EQ(v.LowerBound("k1014"), 7u);
  EXPECT_EQ(v.LowerBound("k1015"), 8u);
  EXPECT_EQ(v.LowerBound(""), 0u);
  EXPECT_EQ(v.LowerBound("z"), 100u);
}

TEST(PageViewTest, InternalRouting) {
  std::string image = InternalImage({{"", MakeAddress(16 * 1000, 100)},
                                     {"f", MakeAddress(16 * 2000, 100)},
                                     {"m", MakeAddress(16 * 3000, 100)}});
  std::string why;
  ASSERT_TRUE(ValidateImage(image.data(), image.size(), &why)) << why;
  PageView v(image.data());
  EXPECT_EQ(v.ChildIndex(""), 0u);
  EXPECT_EQ(v.ChildIndex("a"), 0u);
  EXPECT_EQ(v.ChildIndex("f"), 1u);
  EXPECT_EQ(v.ChildIndex("lzz"), 1u);
  EXPECT_EQ(v.ChildIndex("m"), 2u);
  EXPECT_EQ(v.ChildIndex("\xff"), 2u);
  EXPECT_EQ(AddressOffset(v.child(2)), 16u * 3000);
}

// The search compares the shared prefix once and then mostly the 4-byte hints
// in the slots; it must agree with a plain lower/upper bound on every target,
// including keys with zero bytes (hints are zero-padded), short targets and
// runs of equal hints.
TEST(PageViewTest, PrefixAndHintSearchMatchesPlainSearch) {
  uint64_t seed = test::TestSeed();
  std::mt19937_64 rng(seed);
  const std::string alphabet("\0\1ab\xff", 5);
  auto rand_str = [&](size_t max) {
    std::string s(rng() % (max + 1), '\0');
    for (auto& c : s) c = alphabet[rng() % alphabet.size()];
    return s;
  };
  for (int trial = 0; trial < 300; ++trial) {
    std::string prefix = rand_str(6);
    std::set<std::string> keys;
    // Some pages as full as a 16 KiB internal page gets.
    size_t n = 1 + rng() % (trial % 4 == 0 ? 700 : 60);
    while (keys.size() < n) keys.insert(prefix + rand_str(7));
    std::vector<std::pair<std::string, std::string>> leaf;
    for (const auto& k : keys) leaf.emplace_back(k, "v");
    std::string limg = LeafImage(leaf);
    std::vector<std::pair<std::string, uint64_t>> inner{{"", MakeAddress(16 * 100, 64)}};
    for (const auto& k : keys) inner.emplace_back(k, MakeAddress(16 * 100, 64));
    std::string iimg = InternalImage(inner);
    std::string why;
    ASSERT_TRUE(ValidateImage(limg.data(), limg.size(), &why)) << why;
    ASSERT_TRUE(ValidateImage(iimg.data(), iimg.size(), &why)) << why;
    PageView lv(limg.data()), iv(iimg.data());
    std::vector<std::string> sorted(keys.begin(), keys.end());
    for (int t = 0; t < 50; ++t) {
      std::string target = rng() % 2 ? prefix.substr(0, rng() % (prefix.size() + 1)) + rand_str(8)
                                     : sorted[rng() % sorted.size()];
      uint32_t want = static_cast<uint32_t>(std::lower_bound(sorted.begin(), sorted.end(), target) -
                                            sorted.begin());
      ASSERT_EQ(lv.LowerBound(target), want) << "seed " << seed;
      // Child i+1 holds sorted[i]: the child is the count of keys <= target.
      uint32_t child = static_cast<uint32_t>(
          std::upper_bound(sorted.begin(), sorted.end(), target) - sorted.begin());
      ASSERT_EQ(iv.ChildIndex(target), child) << "seed " << seed;
    }
  }
}

TEST(PageValidateTest, RejectsWrongHintsAndPrefix) {
  std::string good = LeafImage({{"abcd1", "x"}, {"abcd2", "y"}});
  std::string why;
  ASSERT_TRUE(ValidateImage(good.data(), good.size(), &why)) << why;
  EXPECT_EQ(PageView(good.data()).prefix_len(), 4u);
  std::string bad_hint = good;
  bad_hint[kImageHeaderBytes + 4] ^= 1;
  EXPECT_FALSE(ValidateImage(bad_hint.data(), bad_hint.size(), &why));
  std::string bad_prefix = good;
  EncodeFixed16(bad_prefix.data() + 12, 5);
  EXPECT_FALSE(ValidateImage(bad_prefix.data(), bad_prefix.size(), &why));
}

// Keys out of order are found whether their hints differ (the hints alone
// decide) or are equal (the keys are compared); the prefix and hints stay
// exact, so only the order check can catch them.
TEST(PageValidateTest, RejectsKeysOutOfOrderWithEqualOrDifferentHints) {
  // Prefix "key-"; the first two keys share their hint ("0000").
  std::string good =
      LeafImage({{"key-0000-a", "x"}, {"key-0000-b", "y"}, {"key-1111", "z"}, {"key-2", "w"}});
  std::string why;
  ASSERT_TRUE(ValidateImage(good.data(), good.size(), &why)) << why;
  ASSERT_EQ(PageView(good.data()).prefix_len(), 4u);
  auto swapped = [&](uint32_t i) {  // slots i and i + 1, offsets and hints
    std::string bad = good;
    char* a = bad.data() + kImageHeaderBytes + size_t{i} * kSlotBytes;
    std::swap_ranges(a, a + kSlotBytes, a + kSlotBytes);
    return bad;
  };
  for (uint32_t i : {0u, 1u, 2u}) {
    std::string bad = swapped(i);
    EXPECT_FALSE(ValidateImage(bad.data(), bad.size(), &why)) << "slots " << i << " and " << i + 1;
    EXPECT_NE(why.find("out of order"), std::string::npos) << why;
  }
  // A duplicate key (equal hints, equal keys) is out of order too.
  std::string dup = LeafImage({{"key-0000-a", "x"}, {"key-0000-a", "y"}, {"key-1111", "z"}});
  EXPECT_FALSE(ValidateImage(dup.data(), dup.size(), &why));

  // An internal page, separators shorter than the hint (zero-padded: "b"
  // and "b\0" have equal hints): the order check starts at entry 2 (entry 0's
  // key is empty) and compares the keys.
  const std::string b0("b\0", 2);
  std::string inner = InternalImage({{"", MakeAddress(16 * 1000, 100)},
                                     {"b", MakeAddress(16 * 2000, 100)},
                                     {b0, MakeAddress(16 * 3000, 100)},
                                     {"c", MakeAddress(16 * 4000, 100)}});
  ASSERT_TRUE(ValidateImage(inner.data(), inner.size(), &why)) << why;
  char* s1 = inner.data() + kImageHeaderBytes + kSlotBytes;
  std::swap_ranges(s1, s1 + kSlotBytes, s1 + kSlotBytes);  // "b\0" before "b"
  EXPECT_FALSE(ValidateImage(inner.data(), inner.size(), &why));
  EXPECT_NE(why.find("out of order"), std::string::npos) << why;
}

TEST(PageValidateTest, RejectsMalformedImages) {
  std::string why;
  std::string good = LeafImage({{"a", "1"}, {"b", "2"}});
  ASSERT_TRUE(ValidateImage(good.data(), good.size(), &why));

  std::string unordered = LeafImage({{"b", "1"}, {"a", "2"}});
  EXPECT_FALSE(ValidateImage(unordered.data(), unordered.size(), &why));
  EXPECT_NE(why.find("order"), std::string::npos) << why;

  std::string dup = LeafImage({{"a", "1"}, {"a", "2"}});
  EXPECT_FALSE(ValidateImage(dup.data(), dup.size(), &why));

  std::string bad_slot = good;
  EncodeFixed32(bad_slot.data() + kImageHeaderBytes, 100000);
  EXPECT_FALSE(ValidateImage(bad_slot.data(), bad_slot.size(), &why));
  EXPECT_NE(why.find("bounds"), std::string::npos) << why;

  std::string bad_len = good;
  size_t off = DecodeFixed32(good.data() + kImageHeaderBytes);
  EncodeFixed32(bad_len.data() + off + 2, 1000);  // value longer than the page
  EXPECT_FALSE(ValidateImage(bad_len.data(), bad_len.size(), &why));

  std::string bad_count = good;
  EncodeFixed32(bad_count.data() + 4, 0xFFFFFFFF);
  EXPECT_FALSE(ValidateImage(bad_count.data(), bad_count.size(), &why));

  std::string bad_type = good;
  bad_type[0] = 7;
  EXPECT_FALSE(ValidateImage(bad_type.data(), bad_type.size(), &why));

  std::string bad_size = good;
  EncodeFixed32(bad_size.data() + 8, 12);
  EXPECT_FALSE(ValidateImage(bad_size.data(), bad_size.size(), &why));
  EXPECT_FALSE(ValidateImage(good.data(), 8, &why));

  std::string null_child = InternalImage({{"", 0}, {"m", MakeAddress(16 * 3000, 100)}});
  EXPECT_FALSE(ValidateImage(null_child.data(), null_child.size(), &why));
  std::string first_sep =
      InternalImage({{"a", MakeAddress(16 * 1000, 100)}, {"m", MakeAddress(16 * 3000, 100)}});
  EXPECT_FALSE(ValidateImage(first_sep.data(), first_sep.size(), &why));
  std::string leaf_level = InternalImage({{"", MakeAddress(16 * 1000, 100)}}, 0);
  EXPECT_FALSE(ValidateImage(leaf_level.data(), leaf_level.size(), &why));
}

class StoredPageTest : public ::testing::TestWithParam<bool> {};

TEST_P(StoredPageTest, RoundTripAndChecks) {
  bool compress = GetParam();
  std::vector<std::pair<std::string, std::string>> e;
  for (int i = 0; i < 50; ++i)
    e.emplace_back("key" + std::to_string(100 + i), std::string(60, 'x'));
  std::string image = LeafImage(e);
  std::string stored(MaxStoredBytes(image.size()), '\0');
  size_t len = EncodeStoredPage(image.data(), image.size(), compress, stored.data());
  stored.resize(len);
  EXPECT_EQ(len < image.size(), compress);  // compressible: LZ4 used when asked
  const uint64_t offset = 16 * 777;
  SealStoredPage(stored.data(), len, offset);

  size_t image_bytes = 0;
  ASSERT_OK(ParseStoredPage(stored, offset, true, "f.akv", &image_bytes));
  ASSERT_EQ(image_bytes, image.size());
  std::string out(image_bytes, '\0');
  ASSERT_OK(DecodeStoredPage(stored, offset, "f.akv", out.data(), image_bytes));
  EXPECT_EQ(out, image);

  // Read from the wrong place: the offset-seeded checksum fails.
  Status s = ParseStoredPage(stored, offset + 16, true, "f.akv", &image_bytes);
  ASSERT_TRUE(s.IsCorruption());
  EXPECT_EQ(s.message(),
            "f.akv page at offset " + std::to_string(offset + 16) + ": checksum mismatch");
  // Every single-bit flip is caught.
  for (size_t i = 0; i < stored.size(); i += 7) {
    std::string bad = stored;
    bad[i] ^= 0x10;
    EXPECT_TRUE(ParseStoredPage(bad, offset, true, "f.akv", &image_bytes).IsCorruption()) << i;
  }
  EXPECT_TRUE(
      ParseStoredPage(stored.substr(0, 10), offset, true, "f.akv", &image_bytes).IsCorruption());
  EXPECT_TRUE(ParseStoredPage(stored.substr(0, len - 1), offset, true, "f.akv", &image_bytes)
                  .IsCorruption());
}

INSTANTIATE_TEST_SUITE_P(Compression, StoredPageTest, ::testing::Bool());

// Compressed pages leave out the slot array when the decoder can rebuild it
// exactly; a page whose prefix is not the canonical one keeps it. Either way
// the decoded image is the original, byte for byte.
TEST(StoredPageTest, SlotArrayIsRebuiltNotStored) {
  std::vector<std::pair<std::string, std::string>> e;
  for (int i = 0; i < 120; ++i) {
    e.emplace_back("user" + std::to_string(100000 + 37 * i), std::string(40, 'a' + i % 26));
  }
  std::vector<std::pair<std::string, uint64_t>> c;
  for (int i = 0; i < 120; ++i) {
    c.emplace_back(i == 0 ? "" : "sep" + std::to_string(5000 + 11 * i),
                   MakeAddress(16 * (1000 + 64 * i), 900 + i));
  }
  std::string nonprefix = LeafImage(e);
  EncodeFixed16(nonprefix.data() + 12, 0);  // valid (no prefix), not canonical
  for (size_t h = 0; h < e.size(); ++h) {
    EncodeFixed32(nonprefix.data() + kImageHeaderBytes + 8 * h + 4, KeyHint(e[h].first, 0));
  }
  std::string why;
  ASSERT_TRUE(ValidateImage(nonprefix.data(), nonprefix.size(), &why)) << why;
  const std::string images[] = {LeafImage(e), InternalImage(c), nonprefix};
  for (int which = 0; which < 3; ++which) {
    const std::string& image = images[which];
    std::string stored(MaxStoredBytes(image.size()), '\0');
    size_t len = EncodeStoredPage(image.data(), image.size(), true, stored.data());
    stored.resize(len);
    const bool slotless = (stored[9] & kStoredFlagNoSlots) != 0;
    EXPECT_EQ(slotless, which != 2) << which;
    EXPECT_NE(stored[9] & kStoredFlagLz4, 0) << which;
    SealStoredPage(stored.data(), len, 4096);
    size_t n = 0;
    ASSERT_TRUE(ParseStoredPage(stored, 4096, true, "f", &n).ok()) << which;
    std::string out(n, '\0');
    Status s = DecodeStoredPage(stored, 4096, "f", out.data(), n);
    ASSERT_TRUE(s.ok()) << which << " " << s.ToString();
    EXPECT_EQ(out, image) << which;
    if (slotless) {
      // Without the slots the page is smaller than its full image compressed.
      std::string full(MaxStoredBytes(image.size()), '\0');
      std::string copy = image;
      EncodeFixed16(copy.data() + 12, 0);  // forces the slots in
      for (uint32_t i = 0; i < PageView(copy.data()).count(); ++i) {
        std::string_view k = PageView(copy.data()).key(i);
        EncodeFixed32(copy.data() + kImageHeaderBytes + 8 * i + 4,
                      which == 1 && i == 0 ? 0 : KeyHint(k, 0));
      }
      size_t full_len = EncodeStoredPage(copy.data(), copy.size(), true, full.data());
      EXPECT_LT(len + PageView(image.data()).count() * 4, full_len) << which;
    }
    // Entries that do not fill the page exactly are Corruption, never a crash.
    std::string bad = stored;
    EncodeFixed32(bad.data() + 12, DecodeFixed32(bad.data() + 12) - 1);  // one entry fewer
    SealStoredPage(bad.data(), bad.size(), 4096);
    if (slotless && ParseStoredPage(bad, 4096, true, "f", &n).ok()) {
      EXPECT_TRUE(DecodeStoredPage(bad, 4096, "f", out.data(), n).IsCorruption());
    }
  }
}

// ---- Leaves stored in blocks ----------------------------------------------

// Entries of varied sizes (a few far larger than a block), sorted.
std::vector<std::pair<std::string, std::string>> VariedEntries(uint64_t seed, int n) {
  std::mt19937_64 rng(seed);
  std::set<std::string> keys;
  while (static_cast<int>(keys.size()) < n) keys.insert("user" + std::to_string(rng() % 1000000));
  std::vector<std::pair<std::string, std::string>> e;
  for (const std::string& k : keys) {
    const size_t len = rng() % 20 == 0 ? 5000 + rng() % 6000 : rng() % 200;
    std::string v(len, '\0');
    for (size_t i = 0; i < len; ++i) v[i] = static_cast<char>('a' + (i / 7 + rng() % 3) % 26);
    e.emplace_back(k, std::move(v));
  }
  return e;
}

std::string EncodeBlocked(const std::string& image, uint64_t offset,
                          BlockIndexForm form = BlockIndexForm::kCompact) {
  std::string stored(MaxStoredBytes(image.size()), '\0');
  size_t len =
      EncodeStoredPage(image.data(), image.size(), true, stored.data(), kLeafBlockBytes, form);
  stored.resize(len);
  SealStoredPage(stored.data(), len, offset);
  return stored;
}

// The same leaf as format 5 wrote it: fixed-width index entries, whole keys.
std::string EncodeWide(const std::string& image, uint64_t offset) {
  return EncodeBlocked(image, offset, BlockIndexForm::kWide);
}

constexpr uint8_t kCompactBlockedFlags = kStoredFlagLz4 | kStoredFlagNoSlots | kStoredFlagBlocks |
                                         kStoredFlagBlockSums | kStoredFlagCompactIndex;

// A point lookup through the block index: LocateLeafBlock, SearchLeafBlock.
Status BlockLookup(const std::string& stored, uint64_t offset, std::string_view key,
                   std::string* value, bool* found) {
  *found = false;
  LeafBlock block;
  bool in_range = false;
  Status s = LocateLeafBlock(stored, offset, "f", key, &block, &in_range);
  if (!s.ok() || !in_range) return s;
  std::string raw(block.raw_bytes, '\0');
  std::string_view v;
  s = SearchLeafBlock(block, raw.data(), offset, "f", key, &v, found);
  if (s.ok() && *found) value->assign(v);
  return s;
}

TEST(BlockedLeafTest, EveryKeyFoundFromItsBlockAndTheWholePageDecodes) {
  const uint64_t seed = test::TestSeed();
  auto e = VariedEntries(seed, 400);
  std::string image = LeafImage(e);
  const uint64_t offset = 16 * 4321;
  std::string stored = EncodeBlocked(image, offset);
  ASSERT_TRUE(IsBlockedLeaf(stored)) << "seed " << seed;
  EXPECT_EQ(static_cast<uint8_t>(stored[9]), kCompactBlockedFlags);
  size_t n = 0;
  ASSERT_OK(ParseStoredPage(stored, offset, true, "f", &n));
  std::string out(n, '\0');
  ASSERT_OK(DecodeStoredPage(stored, offset, "f", out.data(), n));
  EXPECT_EQ(out, image) << "seed " << seed;

  for (const auto& [k, v] : e) {
    std::string got;
    bool found = false;
    ASSERT_OK(BlockLookup(stored, offset, k, &got, &found));
    ASSERT_TRUE(found) << "seed " << seed << " key " << k;
    ASSERT_EQ(got, v) << "seed " << seed << " key " << k;
    // Neighbours that are not keys: a byte longer, a byte shorter.
    for (const std::string& miss : {k + "0", k.substr(0, k.size() - 1)}) {
      if (std::binary_search(e.begin(), e.end(), std::make_pair(miss, std::string()),
                             [](const auto& a, const auto& b) { return a.first < b.first; })) {
        continue;
      }
      ASSERT_OK(BlockLookup(stored, offset, miss, &got, &found));
      EXPECT_FALSE(found) << "seed " << seed << " key " << miss;
    }
  }
  bool found = true;
  std::string got;
  for (const std::string& outside : {std::string(""), std::string("a"), std::string("zzz")}) {
    ASSERT_OK(BlockLookup(stored, offset, outside, &got, &found));
    EXPECT_FALSE(found) << outside;
  }
}

TEST(BlockedLeafTest, OnlyLeavesOfMoreThanOneBlock) {
  // One block's worth: the plain slotless form.
  std::vector<std::pair<std::string, std::string>> small;
  for (int i = 0; i < 10; ++i)
    small.emplace_back("k" + std::to_string(100 + i), std::string(50, 'v'));
  std::string image = LeafImage(small);
  EXPECT_FALSE(IsBlockedLeaf(EncodeBlocked(image, 4096)));
  // Internal pages are always read whole.
  std::vector<std::pair<std::string, uint64_t>> c;
  for (int i = 0; i < 600; ++i) {
    c.emplace_back(i == 0 ? "" : "sep" + std::to_string(5000 + 11 * i),
                   MakeAddress(16 * (1000 + 64 * i), 900 + i));
  }
  std::string internal = InternalImage(c);
  EXPECT_FALSE(IsBlockedLeaf(EncodeBlocked(internal, 4096)));
  // Without compression nothing is blocked.
  auto e = VariedEntries(7, 300);
  std::string leaf = LeafImage(e);
  std::string stored(MaxStoredBytes(leaf.size()), '\0');
  stored.resize(EncodeStoredPage(leaf.data(), leaf.size(), false, stored.data(), kLeafBlockBytes));
  EXPECT_EQ(stored[9], 0);
  // A blocked flag on an internal page is refused before anything reads it.
  std::string flagged = EncodeBlocked(internal, 4096);
  flagged[9] = static_cast<char>(kStoredFlagLz4 | kStoredFlagNoSlots | kStoredFlagBlocks);
  SealStoredPage(flagged.data(), flagged.size(), 4096);
  size_t n = 0;
  Status s = ParseStoredPage(flagged, 4096, true, "f", &n);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
}

std::string WithoutBlockSums(const std::string& stored, uint64_t offset);

// A page whose checksum holds but whose index or blocks are wrong (a writer
// bug, or a crafted file) is Corruption on every path, never a crash or a
// read out of bounds (ASan checks the second).
TEST(BlockedLeafTest, DamagedIndexOrBlocksAreCorruption) {
  const uint64_t seed = test::TestSeed();
  auto e = VariedEntries(seed, 300);
  std::string image = LeafImage(e);
  const uint64_t offset = 16 * 999;
  const std::string stored = EncodeBlocked(image, offset);
  const std::string wide = EncodeWide(image, offset);
  ASSERT_TRUE(IsBlockedLeaf(stored));
  ASSERT_TRUE(IsBlockedLeaf(wide));
  const size_t blocks = DecodeFixed16(wide.data() + kStoredHeaderBytes);
  ASSERT_GE(blocks, 2u);

  // Named cases: a count of one, a first entry moved, a key out of order.
  // With block checksums the walk that checks them meets a bad index
  // first; either way it is Corruption before anything trusts it.
  auto expect_corrupt = [&](std::string bad, const std::string& what) {
    SealStoredPage(bad.data(), bad.size(), offset);
    size_t n = 0;
    Status s = ParseStoredPage(bad, offset, true, "f", &n);
    if (s.ok()) {
      std::string out(n, '\0');
      s = DecodeStoredPage(bad, offset, "f", out.data(), n);
    }
    EXPECT_TRUE(s.IsCorruption()) << what << ": " << s.ToString();
    std::string v;
    bool found = false;
    Status b = BlockLookup(bad, offset, e[e.size() / 2].first, &v, &found);
    EXPECT_TRUE(b.IsCorruption() || (b.ok() && !found) || (b.ok() && v == e[e.size() / 2].second))
        << what << ": " << b.ToString();
  };
  const size_t index = kStoredHeaderBytes + 2;  // block 0's header
  for (const std::string* form : {&stored, &wide}) {
    std::string one = *form;
    EncodeFixed16(one.data() + kStoredHeaderBytes, 1);
    expect_corrupt(one, "one block");
  }
  std::string moved = wide;
  const size_t entry = 14 + 8;  // first entry, sizes, key length, block checksum
  const size_t block1 = index + entry + DecodeFixed16(wide.data() + index + 12);
  EncodeFixed32(moved.data() + block1, DecodeFixed32(wide.data() + block1) + 1);
  expect_corrupt(moved, "first entry moved");
  std::string order = wide;
  order[block1 + entry] = '\x01';  // block 1's first key now sorts before block 0's
  expect_corrupt(order, "keys out of order");
  // The compact index: block 0 must start at entry 0, and a prefix may not
  // be longer than the previous key.
  const size_t compact_index = index + 4;  // after the index's length
  std::string shifted = stored;
  shifted[compact_index] = '\x01';  // block 0's first-entry delta
  expect_corrupt(shifted, "compact: block 0 not at entry 0");
  std::string longer = stored;
  EncodeFixed32(longer.data() + index, DecodeFixed32(stored.data() + index) + 1);
  expect_corrupt(longer, "compact: the index's length one too long");
  std::string_view in(stored.data() + compact_index, stored.size() - compact_index);
  uint64_t field = 0;
  uint32_t sum = 0;
  for (int f = 0; f < 3; ++f) ASSERT_TRUE(GetVarint64(&in, &field));
  ASSERT_TRUE(GetFixed32(&in, &sum));
  const size_t shared_at = static_cast<size_t>(in.data() - stored.data());
  ASSERT_EQ(stored[shared_at], 0) << "block 0 shares no prefix";
  std::string prefixed = stored;
  prefixed[shared_at] = '\x05';  // a prefix of a key before the first
  expect_corrupt(prefixed, "compact: block 0 shares a prefix");

  // Random damage anywhere past the header, checksum resealed; in both
  // formats (with block checksums most of it fails the page's own check,
  // so the format-4 form is what reaches the decoders).
  const std::string old = WithoutBlockSums(wide, offset);
  std::mt19937_64 rng(seed);
  for (int trial = 0; trial < 4500; ++trial) {
    std::string bad = trial % 3 == 0 ? stored : (trial % 3 == 1 ? wide : old);
    const size_t at = kStoredHeaderBytes + rng() % (bad.size() - kStoredHeaderBytes);
    bad[at] = static_cast<char>(bad[at] ^ (1 + rng() % 255));
    SealStoredPage(bad.data(), bad.size(), offset);
    size_t n = 0;
    if (!ParseStoredPage(bad, offset, true, "f", &n).ok()) continue;
    std::string out(n, '\0');
    Status s = DecodeStoredPage(bad, offset, "f", out.data(), n);
    const auto& [k, v] = e[rng() % e.size()];
    std::string got;
    bool found = false;
    Status b = BlockLookup(bad, offset, k, &got, &found);
    if (s.ok()) {
      // Damage the whole-page decoder accepts (inside a value) is what the
      // block read sees too.
      PageView view(out.data());
      const uint32_t i = view.Find(k);
      ASSERT_TRUE(b.ok()) << "seed " << seed << " trial " << trial << ": " << b.ToString();
      ASSERT_EQ(found, i < view.count()) << "seed " << seed << " trial " << trial;
      if (found) {
        EXPECT_EQ(got, view.value(i)) << "seed " << seed << " trial " << trial;
      }
    }
  }
}

// The same leaf as format 4 wrote it: no checksum per block, the page
// checksum over all of it.
std::string WithoutBlockSums(const std::string& stored, uint64_t offset) {
  const size_t blocks = DecodeFixed16(stored.data() + kStoredHeaderBytes);
  std::string out = stored.substr(0, kStoredHeaderBytes + 2);
  size_t pos = kStoredHeaderBytes + 2;
  for (size_t b = 0; b < blocks; ++b) {
    const size_t klen = DecodeFixed16(stored.data() + pos + 12);
    out += stored.substr(pos, 14);
    out += stored.substr(pos + 22, klen);
    pos += 22 + klen;
  }
  out += stored.substr(pos);
  out[9] = static_cast<char>(static_cast<uint8_t>(out[9]) & ~kStoredFlagBlockSums);
  EncodeFixed32(out.data() + 20, static_cast<uint32_t>(out.size() - kStoredHeaderBytes));
  SealStoredPage(out.data(), out.size(), offset);
  return out;
}

// A block read (what a point read that misses a full cache does): the head
// of the page first, then the block, as BTree::GetFromBlock reads them.
Status HeadAndBlockLookup(const std::string& stored, uint64_t offset, std::string_view key,
                          std::string* value, bool* found, bool* usable) {
  *found = false;
  std::string buf(stored.size(), '\0');  // what was not read stays zero
  buf.replace(0, kStoredHeadBytes, stored, 0, kStoredHeadBytes);
  Status s = ParseStoredHead(std::string_view(buf).substr(0, kStoredHeadBytes),
                             static_cast<uint32_t>(stored.size()), offset, "f", usable);
  if (!s.ok() || !*usable) return s;
  LeafBlock block;
  bool in_range = false;
  s = LocateLeafBlock(buf, offset, "f", key, &block, &in_range);
  if (!s.ok() || !in_range) return s;
  const size_t at = static_cast<size_t>(block.lz4.data() - buf.data());
  buf.replace(at, block.lz4.size(), stored, at, block.lz4.size());
  std::string raw(block.raw_bytes, '\0');
  std::string_view v;
  s = SearchLeafBlock(block, raw.data(), offset, "f", key, &v, found);
  if (s.ok() && *found) value->assign(v);
  return s;
}

TEST(BlockedLeafTest, FormatFourLeavesStillRead) {
  const uint64_t seed = test::TestSeed();
  auto e = VariedEntries(seed, 400);
  std::string image = LeafImage(e);
  const uint64_t offset = 16 * 777;
  const std::string old = WithoutBlockSums(EncodeWide(image, offset), offset);
  ASSERT_EQ(static_cast<uint8_t>(old[9]), kStoredFlagLz4 | kStoredFlagNoSlots | kStoredFlagBlocks);
  size_t n = 0;
  ASSERT_OK(ParseStoredPage(old, offset, true, "f", &n));
  std::string out(n, '\0');
  ASSERT_OK(DecodeStoredPage(old, offset, "f", out.data(), n));
  EXPECT_EQ(out, image) << "seed " << seed;
  // A block read of it falls back to the whole page: its head says so.
  std::string got;
  bool found = false, usable = true;
  ASSERT_OK(HeadAndBlockLookup(old, offset, e[0].first, &got, &found, &usable));
  EXPECT_FALSE(usable);
  for (const auto& [k, v] : e) {
    ASSERT_OK(BlockLookup(old, offset, k, &got, &found));
    ASSERT_TRUE(found) << "seed " << seed << " key " << k;
    ASSERT_EQ(got, v) << "seed " << seed << " key " << k;
  }
  // Its page checksum still covers every byte.
  std::string bad = old;
  bad[old.size() - 5] ^= 0x20;
  EXPECT_TRUE(ParseStoredPage(bad, offset, true, "f", &n).IsCorruption());
}

TEST(BlockedLeafTest, FormatFiveLeavesStillRead) {
  const uint64_t seed = test::TestSeed();
  auto e = VariedEntries(seed, 400);
  std::string image = LeafImage(e);
  const uint64_t offset = 16 * 555;
  const std::string wide = EncodeWide(image, offset);
  ASSERT_EQ(static_cast<uint8_t>(wide[9]),
            kStoredFlagLz4 | kStoredFlagNoSlots | kStoredFlagBlocks | kStoredFlagBlockSums);
  // The compact index is the smaller one for the same blocks.
  EXPECT_LT(EncodeBlocked(image, offset).size(), wide.size());
  size_t n = 0;
  ASSERT_OK(ParseStoredPage(wide, offset, true, "f", &n));
  std::string out(n, '\0');
  ASSERT_OK(DecodeStoredPage(wide, offset, "f", out.data(), n));
  EXPECT_EQ(out, image) << "seed " << seed;
  for (const auto& [k, v] : e) {
    std::string got;
    bool found = false, usable = false;
    ASSERT_OK(BlockLookup(wide, offset, k, &got, &found));
    ASSERT_TRUE(found) << "seed " << seed << " key " << k;
    ASSERT_EQ(got, v) << "seed " << seed << " key " << k;
    ASSERT_OK(HeadAndBlockLookup(wide, offset, k, &got, &found, &usable));
    if (usable) {  // when its longer index still fits the head
      ASSERT_TRUE(found) << "seed " << seed << " key " << k;
      ASSERT_EQ(got, v) << "seed " << seed << " key " << k;
    }
  }
  // A damaged block is found by its 64-bit checksum.
  std::string bad = wide;
  bad[bad.size() - 3] ^= 0x01;
  Status s = ParseStoredPage(bad, offset, true, "f", &n);
  EXPECT_NE(s.ToString().find("block checksum"), std::string::npos) << s.ToString();
}

TEST(BlockedLeafTest, ABlockReadReadsTheHeadAndOneBlock) {
  const uint64_t seed = test::TestSeed();
  std::vector<std::pair<std::string, std::string>> e;
  for (int i = 0; i < 140; ++i) {  // a leaf of 16-byte keys and 100-byte values, as compare's
    char key[17];
    std::snprintf(key, sizeof(key), "%016d", i * 7);
    e.emplace_back(key,
                   std::string(50, 'a' + i % 26) + std::to_string(seed + i) + std::string(40, 'v'));
  }
  std::string image = LeafImage(e);
  const uint64_t offset = 16 * 4096;
  const std::string stored = EncodeBlocked(image, offset);
  ASSERT_TRUE(IsBlockedLeaf(stored));
  ASSERT_GT(stored.size(), 2 * kStoredHeadBytes);
  for (const auto& [k, v] : e) {
    std::string got;
    bool found = false, usable = false;
    ASSERT_OK(HeadAndBlockLookup(stored, offset, k, &got, &found, &usable));
    ASSERT_TRUE(usable);
    ASSERT_TRUE(found) << "key " << k;
    ASSERT_EQ(got, v) << "key " << k;
  }
  std::string got;
  bool found = true, usable = false;
  ASSERT_OK(HeadAndBlockLookup(stored, offset, "0000000000000001", &got, &found, &usable));
  EXPECT_FALSE(found);

  // The head read elsewhere (a stale address): the offset-seeded checksum
  // over the header and the index fails.
  Status s = HeadAndBlockLookup(stored, offset + 16, e[0].first, &got, &found, &usable);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  // A damaged block: the whole-page check and a block read of a key in it
  // fail; a block read of a key in another block does not.
  const size_t blocks = DecodeFixed16(stored.data() + kStoredHeaderBytes);
  ASSERT_GE(blocks, 2u);
  std::string bad = stored;
  bad[bad.size() - 3] ^= 0x01;  // inside the last block
  size_t n = 0;
  s = ParseStoredPage(bad, offset, true, "f", &n);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.ToString().find("block checksum"), std::string::npos) << s.ToString();
  s = HeadAndBlockLookup(bad, offset, e.back().first, &got, &found, &usable);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  ASSERT_OK(HeadAndBlockLookup(bad, offset, e[0].first, &got, &found, &usable));
  EXPECT_TRUE(found);
  EXPECT_EQ(got, e[0].second);
  // A damaged index entry (block 0's checksum, after the block count, the
  // index's length and the entry's three varints):
  // the head's checksum fails.
  bad = stored;
  bad[kStoredHeaderBytes + 2 + 4 + 1 + 2 + 2] ^= 0x01;
  s = HeadAndBlockLookup(bad, offset, e[0].first, &got, &found, &usable);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  // Keys so long that the index does not fit the head: read whole.
  std::vector<std::pair<std::string, std::string>> wide;
  for (int i = 0; i < 40; ++i) {
    // Different from their first byte: the compact index shares no prefix.
    wide.emplace_back(std::to_string(1000 + i) + std::string(300, 'k'), std::string(200, 'v'));
  }
  const std::string long_keys = EncodeBlocked(LeafImage(wide), offset);
  ASSERT_TRUE(IsBlockedLeaf(long_keys));
  ASSERT_OK(HeadAndBlockLookup(long_keys, offset, wide[3].first, &got, &found, &usable));
  EXPECT_FALSE(usable);
}

// What a point read takes from a leaf's digest (LeafDigest) must be what
// it takes from the leaf's index: the same block, and so the same value.
void ExpectDigestAgrees(const std::string& stored, uint64_t offset, std::string_view key,
                        KeyOrder order, const std::string& why) {
  std::string buf(stored.size(), '\0');  // only the head, as a block read has it
  buf.replace(0, kStoredHeadBytes, stored, 0, kStoredHeadBytes);
  char digest[304];
  size_t bytes = 0;
  ASSERT_OK(EncodeLeafDigest(buf, offset, "f", order, digest, sizeof(digest), &bytes));
  ASSERT_GT(bytes, 0u) << why;
  LeafBlock want, got;
  bool want_in = false, got_in = false;
  ASSERT_OK(LocateLeafBlock(buf, offset, "f", key, &want, &want_in, order));
  DigestBlock where;
  ASSERT_TRUE(LocateInDigest(std::string_view(digest, bytes), key, order, &got, &where, &got_in))
      << why;
  ASSERT_EQ(got_in, want_in) << why << " key " << key;
  if (!want_in) return;
  EXPECT_EQ(stored.data() + where.lz4_offset, stored.data() + (want.lz4.data() - buf.data()))
      << why << " key " << key;
  EXPECT_EQ(where.lz4_bytes, want.lz4.size()) << why << " key " << key;
  EXPECT_EQ(got.first_key.view(), want.first_key.view()) << why << " key " << key;
  EXPECT_EQ(got.raw_bytes, want.raw_bytes) << why;
  EXPECT_EQ(got.entries, want.entries) << why;
  EXPECT_EQ(got.checksum, want.checksum) << why;
  EXPECT_EQ(got.checksum_mask, want.checksum_mask) << why;
  EXPECT_TRUE(got.has_checksum) << why;
  // And the block it names holds what the leaf holds.
  got.lz4 = std::string_view(stored).substr(where.lz4_offset, where.lz4_bytes);
  std::string raw(got.raw_bytes, '\0');
  std::string_view v1, v2;
  bool f1 = false, f2 = false;
  ASSERT_OK(SearchLeafBlock(got, raw.data(), offset, "f", key, &v1, &f1, order));
  std::string raw2(want.raw_bytes, '\0');
  want.lz4 = got.lz4;
  ASSERT_OK(SearchLeafBlock(want, raw2.data(), offset, "f", key, &v2, &f2, order));
  EXPECT_EQ(f1, f2) << why << " key " << key;
  EXPECT_EQ(v1, v2) << why << " key " << key;
}

TEST(LeafDigestTest, FindsTheBlockTheIndexFinds) {
  const uint64_t seed = test::TestSeed();
  std::mt19937_64 rng(seed);
  const uint64_t offset = 16 * 777;
  // Keys as compare writes them; keys that share nothing; keys of which some
  // are prefixes of others and some shorter than the prefix the rest share.
  std::vector<std::vector<std::pair<std::string, std::string>>> leaves(3);
  for (int i = 0; i < 140; ++i) {
    char key[17];
    std::snprintf(key, sizeof(key), "%016d", 3000000 + i * 13);
    leaves[0].emplace_back(key, std::string(100, 'a' + static_cast<char>(rng() % 26)));
  }
  std::set<std::string> keys;
  while (keys.size() < 40) keys.insert(std::to_string(rng() % 9) + std::to_string(rng()));
  for (const auto& k : keys) leaves[1].emplace_back(k, std::string(150, 'b'));
  keys.clear();
  keys.insert("ab");
  while (keys.size() < 90) {
    keys.insert("abc" + std::string(rng() % 3, 'c') + std::to_string(rng() % 100000));
  }
  for (const auto& k : keys) leaves[2].emplace_back(k, std::string(150, 'c'));
  for (size_t l = 0; l < leaves.size(); ++l) {
    const auto& e = leaves[l];
    const std::string stored = EncodeBlocked(LeafImage(e), offset);
    ASSERT_TRUE(IsBlockedLeaf(stored));
    const std::string why = "seed " + std::to_string(seed) + " leaf " + std::to_string(l);
    for (const auto& [k, v] : e) {
      ExpectDigestAgrees(stored, offset, k, {}, why);
      ExpectDigestAgrees(stored, offset, k + '\0', {}, why);
      ExpectDigestAgrees(stored, offset, k.substr(0, k.size() - 1), {}, why);
    }
    for (const char* k : {"", "0", "a", "abb", "abd", "z", "\xff"}) {
      ExpectDigestAgrees(stored, offset, k, {}, why);
    }
  }
}

TEST(LeafDigestTest, InAUserOrder) {
  test::ReverseOrder reverse;
  const KeyOrder order(&reverse);
  std::vector<std::pair<std::string, std::string>> e;
  for (int i = 150; i > 0; --i)
    e.emplace_back("key" + std::to_string(i * 7), std::string(120, 'r'));
  std::sort(e.begin(), e.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  const uint64_t offset = 16 * 99;
  const std::string stored = EncodeBlocked(LeafImage(e), offset);
  ASSERT_TRUE(IsBlockedLeaf(stored));
  for (const auto& [k, v] : e) {
    ExpectDigestAgrees(stored, offset, k, order, "reverse");
    ExpectDigestAgrees(stored, offset, k + "5", order, "reverse");
  }
  ExpectDigestAgrees(stored, offset, "zzz", order, "reverse");
  ExpectDigestAgrees(stored, offset, "a", order, "reverse");
}

TEST(LeafDigestTest, NoneForOlderIndexesOrWhatDoesNotFit) {
  std::vector<std::pair<std::string, std::string>> e;
  for (int i = 0; i < 120; ++i) {
    char key[17];
    std::snprintf(key, sizeof(key), "%016d", i * 11);
    e.emplace_back(key, std::string(100, 'v'));
  }
  const uint64_t offset = 16 * 5;
  const std::string stored = EncodeBlocked(LeafImage(e), offset);
  char digest[304];
  size_t bytes = 0;
  ASSERT_OK(EncodeLeafDigest(stored, offset, "f", {}, digest, sizeof(digest), &bytes));
  ASSERT_GT(bytes, 0u);
  // One byte short of what it needs: none, and nothing written past it.
  std::string small(bytes - 1 + 8, '\x5a');
  size_t none = 1;
  ASSERT_OK(EncodeLeafDigest(stored, offset, "f", {}, small.data(), bytes - 1, &none));
  EXPECT_EQ(none, 0u);
  EXPECT_EQ(small.substr(bytes - 1), std::string(8, '\x5a'));
  // The format-5 index has none.
  ASSERT_OK(EncodeLeafDigest(EncodeWide(LeafImage(e), offset), offset, "f", {}, digest,
                             sizeof(digest), &none));
  EXPECT_EQ(none, 0u);
  // A digest cut short or grown is refused, not read past its end.
  LeafBlock block;
  DigestBlock where;
  bool in_range = false;
  EXPECT_TRUE(
      LocateInDigest(std::string_view(digest, bytes), e[5].first, {}, &block, &where, &in_range));
  EXPECT_TRUE(in_range);
  EXPECT_FALSE(LocateInDigest(std::string_view(digest, bytes - 1), e[5].first, {}, &block, &where,
                              &in_range));
  EXPECT_FALSE(
      LocateInDigest(std::string_view(digest, 7), e[5].first, {}, &block, &where, &in_range));
  // A damaged index is Corruption, as a read of the head finds it.
  std::string bad = stored;
  bad[kStoredHeaderBytes + 2 + 4] ^= 0x7f;  // block 0's first-entry delta
  Status s = EncodeLeafDigest(bad, offset, "f", {}, digest, sizeof(digest), &bytes);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
}

TEST(StoredPageTest, IncompressibleStaysRaw) {
  std::mt19937_64 rng(5);
  std::string v(3000, '\0');
  for (auto& c : v) c = static_cast<char>(rng());
  std::string image = LeafImage({{"k", v}});
  std::string stored(MaxStoredBytes(image.size()), '\0');
  size_t len = EncodeStoredPage(image.data(), image.size(), true, stored.data());
  EXPECT_EQ(len, kStoredHeaderBytes + image.size());
  EXPECT_EQ(stored[9] & kStoredFlagLz4, 0);
}

TEST(StoredPageTest, LargestEntryFits) {
  std::string image =
      LeafImage({{std::string(kMaxKeyBytes, 'k'), std::string(kMaxValueBytes, 'v')}});
  EXPECT_LE(image.size(), kMaxImageBytes);
  std::string why;
  EXPECT_TRUE(ValidateImage(image.data(), image.size(), &why)) << why;
}

// Random damage to images and to stored pages (with the checksum recomputed,
// so the structural checks are what stands between the bytes and a reader):
// the decoder says no or yields an image whose every entry is in bounds.
TEST(PageFuzzTest, RandomDamageNeverEscapesBounds) {
  uint64_t seed = test::TestSeed();
  std::mt19937_64 rng(seed);
  std::vector<std::pair<std::string, std::string>> e;
  for (int i = 0; i < 40; ++i) e.emplace_back("key" + std::to_string(100 + i), std::string(i, 'v'));
  std::string leaf = LeafImage(e);
  std::string internal = InternalImage({{"", MakeAddress(16 * 1000, 100)},
                                        {"g", MakeAddress(16 * 2000, 200)},
                                        {"p", MakeAddress(16 * 3000, 300)}});
  int accepted = 0;
  for (int trial = 0; trial < 20000; ++trial) {
    std::string img = trial % 2 ? leaf : internal;
    int flips = 1 + static_cast<int>(rng() % 6);
    for (int f = 0; f < flips; ++f) img[rng() % img.size()] = static_cast<char>(rng());
    if (rng() % 8 == 0) img.resize(rng() % img.size());
    bool compress = rng() % 2;
    std::string stored(MaxStoredBytes(std::max<size_t>(img.size(), 1)), '\0');
    size_t len = EncodeStoredPage(img.data(), img.size(), compress, stored.data());
    stored.resize(len);
    if (rng() % 4 == 0) stored[rng() % len] ^= 1;  // damage the LZ4 stream too
    SealStoredPage(stored.data(), stored.size(), 4096);
    size_t n = 0;
    if (!ParseStoredPage(stored, 4096, true, "f", &n).ok()) continue;
    std::string out(n, '\0');
    if (!DecodeStoredPage(stored, 4096, "f", out.data(), n).ok()) continue;
    ++accepted;
    PageView v(out.data());
    for (uint32_t i = 0; i < v.count(); ++i) {
      std::string_view k = v.key(i);
      ASSERT_GE(k.data(), out.data());
      ASSERT_LE(k.data() + k.size(), out.data() + out.size());
      if (v.is_leaf()) {
        std::string_view val = v.value(i);
        ASSERT_LE(val.data() + val.size(), out.data() + out.size());
      }
    }
    v.is_leaf() ? (void)v.LowerBound("key120") : (void)v.ChildIndex("h");
  }
  std::printf("accepted %d damaged pages as structurally sound\n", accepted);
}

}  // namespace
}  // namespace arenakv::tree
