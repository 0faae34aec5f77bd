// Pages whose checksums are valid but whose shape no tree could have written
// (an empty leaf, an internal page on level 0) are Corruption naming the
// file and offset, for every reader and for the checkpoint: never a crash.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "arenakv/env.h"
#include "db_test_util.h"
#include "test_util.h"
#include "tree/btree.h"
#include "tree/page_format.h"
#include "tree_test_util.h"

namespace arenakv::tree {
namespace {

std::string Key(int i) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "key%06d", i);
  return buf;
}

class PageShapeTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (tree_ != nullptr) EXPECT_OK(tree_->Close());
    tree_.reset();
    arena_.reset();  // checks that the pool accounting is back to zero
  }

  std::string path() const { return dir_.Join("data.akv"); }

  void Open() {
    arena_ = std::make_unique<test::TreeArena>();
    TreeOptions o;
    o.page_bytes = 4096;
    o.compression = false;  // stored length = f(image length): a page can be swapped in place
    ASSERT_OK(BTree::Open(Env::Default().get(), path(), true, o, arena_->arena(), &tree_));
  }

  void Reopen() {
    ASSERT_OK(tree_->Close());
    tree_.reset();
    arena_.reset();
    Open();
  }

  // Two levels: a root over leaves of 4 KiB.
  void Build() {
    std::map<std::string, std::optional<std::string>> batch;
    for (int i = 0; i < 2000; ++i) batch[Key(i)] = std::string(40, 'v');
    test::VectorChanges changes(batch);
    CheckpointResult r;
    ASSERT_OK(tree_->Checkpoint(&changes, 1, 1, &r));
    tree_->ReleasePages(r.obsolete);
  }

  // The image of the page at `address`, read from the file.
  std::string ReadImage(uint64_t address) {
    std::ifstream f(path(), std::ios::binary);
    std::string stored(AddressLength(address), '\0');
    f.seekg(static_cast<std::streamoff>(AddressOffset(address)));
    f.read(stored.data(), static_cast<std::streamsize>(stored.size()));
    size_t image_bytes = 0;
    EXPECT_OK(ParseStoredPage(stored, AddressOffset(address), true, path(), &image_bytes));
    std::string image(image_bytes, '\0');
    EXPECT_OK(DecodeStoredPage(stored, AddressOffset(address), path(), image.data(), image_bytes));
    return image;
  }

  // Writes `image` over the page at `address`, checksummed as a real page.
  void WriteImage(uint64_t address, const std::string& image) {
    std::string stored(MaxStoredBytes(image.size()), '\0');
    const size_t length = EncodeStoredPage(image.data(), image.size(), false, stored.data());
    ASSERT_EQ(length, AddressLength(address)) << "the replacement must keep the page's length";
    SealStoredPage(stored.data(), length, AddressOffset(address));
    std::fstream f(path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(AddressOffset(address)));
    f.write(stored.data(), static_cast<std::streamsize>(length));
  }

  // Replaces the page at `address` with one of the same size holding no
  // entry (or, `wrong_level`, an internal page on level 0 with one entry).
  void Replace(uint64_t address, PageType type, uint16_t level, uint32_t count) {
    const std::string old = ReadImage(address);
    std::string image(old.size(), '\0');
    ImageWriter w(image.data(), type, level, count, static_cast<uint32_t>(image.size()), 0);
    if (count == 1) w.Internal("", address);
    WriteImage(address, image);
  }

  uint64_t FirstLeaf() {
    const std::string root = ReadImage(tree_->meta().root);
    PageView v(root.data());
    EXPECT_FALSE(v.is_leaf());
    EXPECT_GT(v.count(), 1u);
    return v.child(0);
  }

  void ExpectCorruptEverywhere(const std::string& key, uint64_t offset) {
    const std::string where = std::to_string(offset);
    std::string value;
    bool found = false;
    uint64_t missed = 0;
    Status s = tree_->Get(tree_->meta().root, key, &value, &found, true, &missed);
    EXPECT_TRUE(s.IsCorruption()) << s.ToString();
    EXPECT_NE(s.ToString().find(where), std::string::npos) << s.ToString();
    VerifyStats vs;
    s = tree_->Verify(&vs);
    EXPECT_TRUE(s.IsCorruption()) << s.ToString();
    // A checkpoint that rewrites the damaged page: refused, tree unchanged.
    const MetaState before = tree_->meta();
    std::map<std::string, std::optional<std::string>> batch{{key, std::string("new")}};
    test::VectorChanges changes(batch);
    CheckpointResult r;
    s = tree_->Checkpoint(&changes, before.last_sequence + 1, 2, &r);
    EXPECT_TRUE(s.IsCorruption()) << s.ToString();
    EXPECT_EQ(tree_->meta().root, before.root);
  }

  test::TempDir dir_;
  std::unique_ptr<test::TreeArena> arena_;
  std::unique_ptr<BTree> tree_;
};

TEST_F(PageShapeTest, EmptyLeafIsCorruption) {
  Open();
  Build();
  const uint64_t leaf = FirstLeaf();
  Reopen();
  Replace(leaf, PageType::kLeaf, 0, 0);
  Reopen();
  ExpectCorruptEverywhere(Key(0), AddressOffset(leaf));
}

TEST_F(PageShapeTest, InternalPageOnLevelZeroIsCorruption) {
  Open();
  Build();
  const uint64_t leaf = FirstLeaf();
  Reopen();
  Replace(leaf, PageType::kInternal, 0, 1);
  Reopen();
  ExpectCorruptEverywhere(Key(0), AddressOffset(leaf));
}

// A root that is a leaf on level 1 (checksums valid): Open's walk of the
// internal pages refuses it, before any checkpoint could collapse the root
// into child(0) of a leaf.
TEST_F(PageShapeTest, RootOnTheWrongLevelIsRefusedAtOpen) {
  Open();
  Build();
  const uint64_t root = tree_->meta().root;
  ASSERT_OK(tree_->Close());
  tree_.reset();
  arena_.reset();
  Replace(root, PageType::kLeaf, 1, 0);
  arena_ = std::make_unique<test::TreeArena>();
  TreeOptions o;
  o.page_bytes = 4096;
  o.compression = false;
  Status s = BTree::Open(Env::Default().get(), path(), true, o, arena_->arena(), &tree_);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.ToString().find(std::to_string(AddressOffset(root))), std::string::npos)
      << s.ToString();
}

}  // namespace
}  // namespace arenakv::tree
