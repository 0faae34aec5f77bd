// The data file's fixed blocks (header, double-buffered meta) and its free
// space: meta selection at open, version and magic checks, free extents
// coalescing and their rebuild from the tree at open.
#include "tree/data_file.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "arenakv/env.h"
#include "test_util.h"
#include "tree/btree.h"
#include "tree/free_space.h"
#include "tree/page_format.h"
#include "tree_test_util.h"

namespace arenakv::tree {
namespace {

TEST(DataFileBlocksTest, HeaderRoundTripAndChecks) {
  char block[kBlockBytes];
  EncodeHeaderBlock(16384, kBytewiseFormatVersion, block);
  std::string_view b(block, kBlockBytes);
  EXPECT_OK(DecodeHeaderBlock(b, "f"));
  std::string bad(b);
  bad[0] = 'X';
  EXPECT_TRUE(DecodeHeaderBlock(bad, "f").IsInvalidArgument());
  // A version field changed without a matching checksum is damage, not a
  // newer format: Corruption, never NotSupported.
  bad = std::string(b);
  EncodeFixed32(bad.data() + 8, kFormatVersion + 1);
  Status s = DecodeHeaderBlock(bad, "f");
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  bad = std::string(b);
  bad[25] ^= 1;
  EXPECT_TRUE(DecodeHeaderBlock(bad, "f").IsCorruption());
}

TEST(DataFileBlocksTest, MetaRoundTripAndSlots) {
  MetaState m{.checkpoint_id = 41,
              .root = MakeAddress(16 * 900, 300),
              .last_sequence = 77,
              .wal_number = 5,
              .file_bytes = 123456,
              .key_count = 999};
  char block[kBlockBytes];
  EncodeMetaBlock(m, {}, block);
  MetaState out;
  std::string order = "x";
  ASSERT_OK(DecodeMetaBlock({block, kBlockBytes}, 1, "f", &out, &order));
  EXPECT_EQ(out.version, kBytewiseFormatVersion);  // readable by version-6 builds
  EXPECT_EQ(order, "");
  EXPECT_EQ(out.checkpoint_id, 41u);
  EXPECT_EQ(out.root, m.root);
  EXPECT_EQ(out.last_sequence, 77u);
  EXPECT_EQ(out.wal_number, 5u);
  EXPECT_EQ(out.file_bytes, 123456u);
  EXPECT_EQ(out.key_count, 999u);
  // Read as the other slot: the checksum (seeded with the slot's offset) fails.
  EXPECT_TRUE(DecodeMetaBlock({block, kBlockBytes}, 0, "f", &out).IsCorruption());
  for (int i = 0; i < 80; ++i) {
    std::string bad(block, kBlockBytes);
    bad[i] ^= 4;
    Status s = DecodeMetaBlock(bad, 1, "f", &out);
    EXPECT_FALSE(s.ok()) << i;
  }
  std::string zero(kBlockBytes, '\0');
  EXPECT_TRUE(DecodeMetaBlock(zero, 0, "f", &out).IsCorruption());
}

// A file in another order than bytewise names it in every meta block
// (version 7), under a checksum of its own that the block's covers.
TEST(DataFileBlocksTest, MetaNamesTheKeyOrder) {
  MetaState m{.checkpoint_id = 6, .root = MakeAddress(16 * 900, 300), .file_bytes = 99999};
  const std::string name = "example.ReverseOrder";
  char block[kBlockBytes];
  EncodeMetaBlock(m, name, block);
  MetaState out;
  std::string order;
  ASSERT_OK(DecodeMetaBlock({block, kBlockBytes}, 0, "f", &out, &order));
  EXPECT_EQ(order, name);
  EXPECT_EQ(out.version, 7u);
  EXPECT_EQ(out.root, m.root);
  // Any damaged byte of the fields or of the name fails the block.
  for (size_t i = 0; i < kMetaEncodedBytes + 2 + name.size(); ++i) {
    std::string bad(block, kBlockBytes);
    bad[i] ^= 0x10;
    Status s = DecodeMetaBlock(bad, 0, "f", &out, &order);
    EXPECT_TRUE(s.IsCorruption()) << i << ": " << s.ToString();
  }
  // A name length past the block, or 0, is damage too (resealed, so only
  // the length is wrong).
  for (uint16_t n : {uint16_t{0}, uint16_t{4096}}) {
    std::string bad(block, kBlockBytes);
    EncodeFixed16(bad.data() + kMetaEncodedBytes, n);
    Status s = DecodeMetaBlock(bad, 0, "f", &out, &order);
    EXPECT_TRUE(s.IsCorruption()) << n << ": " << s.ToString();
  }
}

TEST(FreeSpaceTest, CoalescesAndShrinksTheEnd) {
  test::TreeArena arena;
  {
    FreeSpace fs(arena.arena());
    fs.Reset(100000);
    fs.Add(1000, 100);
    fs.Add(1200, 100);
    EXPECT_EQ(fs.extents(), 2u);
    fs.Add(1100, 100);  // joins both neighbours
    EXPECT_EQ(fs.extents(), 1u);
    EXPECT_EQ(fs.free_bytes(), 300u);
    fs.Add(50000, 1000);
    uint64_t b, e;
    bool at_end;
    fs.TakeRun(500, &b, &e, &at_end);  // the largest extent first
    EXPECT_FALSE(at_end);
    EXPECT_EQ(b, 50000u);
    EXPECT_EQ(e, 51000u);
    fs.TakeRun(500, &b, &e, &at_end);  // nothing large enough: the end
    EXPECT_TRUE(at_end);
    EXPECT_EQ(b, 100000u);
    EXPECT_EQ(fs.ExtendEnd(4096), 100000u);
    EXPECT_EQ(fs.file_end(), 104096u);
    fs.Add(90000, 14096);  // reaches the end: the file shrinks instead
    EXPECT_EQ(fs.file_end(), 90000u);
    EXPECT_EQ(fs.free_bytes(), 300u);
    fs.Add(1300, 88700);  // joins [1000,1300) and reaches the end
    EXPECT_EQ(fs.file_end(), 1000u);
    EXPECT_EQ(fs.extents(), 0u);
  }
}

class DataFileTest : public ::testing::Test {
 protected:
  void SetUp() override { path_ = dir_.Join("data.akv"); }
  Status Open(bool create = true, const std::string& order = {}) {
    tree_.reset();
    return BTree::Open(Env::Default().get(), path_, create,
                       {.page_bytes = 4096, .order = {}, .comparator = order}, arena_.arena(), &tree_);
  }
  // The format version in the file's header and in meta slot `slot`.
  std::pair<uint32_t, uint32_t> Versions(int slot) {
    std::ifstream f(path_, std::ios::binary);
    std::string head(kDataStart, '\0');
    f.read(head.data(), static_cast<std::streamsize>(head.size()));
    return {DecodeFixed32(head.data() + 8), DecodeFixed32(head.data() + kMetaOffsets[slot] + 8)};
  }
  void Put(int from, int to, const std::string& v) {
    std::vector<test::VectorChanges::Entry> e;
    for (int i = from; i < to; ++i) e.emplace_back("k" + std::to_string(100000 + i), v);
    test::VectorChanges ch(std::move(e));
    CheckpointResult r;
    ASSERT_OK(tree_->Checkpoint(&ch, 1, 1, &r));
    tree_->ReleasePages(r.obsolete);
  }
  void Patch(uint64_t offset, char x) {
    std::fstream f(path_, std::ios::binary | std::ios::in | std::ios::out);
    f.seekg(static_cast<std::streamoff>(offset));
    char c;
    f.read(&c, 1);
    c ^= x;
    f.seekp(static_cast<std::streamoff>(offset));
    f.write(&c, 1);
  }

  test::TempDir dir_;
  std::string path_;
  test::TreeArena arena_;
  std::unique_ptr<BTree> tree_;
};

TEST_F(DataFileTest, NewestValidMetaWins) {
  ASSERT_OK(Open());
  Put(0, 100, "one");  // checkpoint 1 -> slot 1
  Put(0, 100, "two");  // checkpoint 2 -> slot 0
  ASSERT_OK(tree_->Close());
  ASSERT_OK(Open(false));
  EXPECT_EQ(tree_->meta().checkpoint_id, 2u);
  ASSERT_OK(tree_->Close());
  // A torn newest meta: the previous one is used.
  Patch(kMetaOffsets[0] + 30, 0x40);
  ASSERT_OK(Open(false));
  EXPECT_EQ(tree_->meta().checkpoint_id, 1u);
  ASSERT_OK(tree_->Close());
  // Neither valid: Corruption naming the file.
  Patch(kMetaOffsets[1] + 30, 0x40);
  Status s = Open(false);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.message().find("data.akv"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("no valid meta"), std::string::npos) << s.ToString();
}

TEST_F(DataFileTest, NewerMetaVersionIsRefused) {
  ASSERT_OK(Open());
  Put(0, 10, "x");
  ASSERT_OK(tree_->Close());
  Patch(kMetaOffsets[1] + 8, 0x08);  // a higher version, checksum not resealed
  Status s = Open(false);
  // Damage, not a newer format: the meta block fails its checksum first.
  EXPECT_FALSE(s.IsNotSupported()) << s.ToString();
}

// The order is recorded when the file is made and kept by every
// checkpoint; an open asking for another one (bytewise included) is refused
// and changes nothing. Bytewise files stay version 6 throughout.
TEST_F(DataFileTest, AFileOpensOnlyInTheOrderItWasWrittenIn) {
  ASSERT_OK(Open(true, "example.ReverseOrder"));
  EXPECT_EQ(Versions(0), std::make_pair(7u, 7u));
  Put(0, 10, "x");  // checkpoint 1 -> slot 1
  ASSERT_OK(tree_->Close());
  EXPECT_EQ(Versions(1).second, 7u);
  for (const std::string& other : {std::string(), std::string("example.ReverseOrder2")}) {
    Status s = Open(false, other);
    EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
    EXPECT_NE(s.message().find("example.ReverseOrder"), std::string::npos) << s.ToString();
    EXPECT_NE(s.message().find("data.akv"), std::string::npos) << s.ToString();
  }
  ASSERT_OK(Open(false, "example.ReverseOrder"));
  EXPECT_EQ(tree_->meta().checkpoint_id, 1u);
  ASSERT_OK(tree_->Close());

  std::filesystem::remove(path_);
  ASSERT_OK(Open(true));
  Put(0, 10, "x");
  ASSERT_OK(tree_->Close());
  EXPECT_EQ(Versions(0), std::make_pair(6u, 6u));
  EXPECT_EQ(Versions(1).second, 6u);
  Status s = Open(false, "example.ReverseOrder");
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_NE(s.message().find("bytewise"), std::string::npos) << s.ToString();
}

TEST_F(DataFileTest, TruncatedFileIsCorruption) {
  ASSERT_OK(Open());
  ASSERT_OK(tree_->Close());
  std::filesystem::resize_file(path_, 6000);
  Status s = Open(false);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
}

// Free space rebuilt from the tree at open equals the free space the running
// tree tracked (every replaced page having been released).
TEST_F(DataFileTest, FreeSpaceRebuiltAtOpen) {
  ASSERT_OK(Open());
  std::mt19937_64 rng(3);
  for (int round = 0; round < 20; ++round) {
    int from = static_cast<int>(rng() % 5000);
    Put(from, from + 1 + static_cast<int>(rng() % 2000), std::string(rng() % 100, 'v'));
  }
  uint64_t free_before = tree_->free_bytes(), end_before = tree_->file_bytes();
  EXPECT_GT(free_before, 0u);
  ASSERT_OK(tree_->Close());
  ASSERT_OK(Open(false));
  EXPECT_EQ(tree_->file_bytes(), end_before);
  EXPECT_EQ(tree_->free_bytes(), free_before);
  VerifyStats vs;
  EXPECT_OK(tree_->Verify(&vs));
  ASSERT_OK(tree_->Close());
  tree_.reset();
}

}  // namespace
}  // namespace arenakv::tree
