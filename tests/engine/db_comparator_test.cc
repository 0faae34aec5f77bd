// Options::comparator: the bytewise order, the name a data file records
// for its order, and the refusals while only the bytewise order is kept
// (arenakv/comparator.h).

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "arenakv/comparator.h"
#include "arenakv/db.h"
#include "arenakv/env.h"
#include "db_test_util.h"
#include "test_util.h"
#include "tree/btree.h"
#include "tree_test_util.h"

namespace arenakv {
namespace {

namespace fs = std::filesystem;

class NamedOrder final : public Comparator {
 public:
  explicit NamedOrder(const char* name) : name_(name) {}
  int Compare(std::string_view a, std::string_view b) const override { return b.compare(a); }
  const char* Name() const override { return name_; }

 private:
  const char* const name_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(ComparatorTest, BytewiseIsUnsignedWithShorterKeysFirst) {
  const Comparator* c = BytewiseComparator();
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c, BytewiseComparator());
  EXPECT_STREQ(c->Name(), "arenakv.BytewiseComparator");
  EXPECT_LT(c->Compare("a", "b"), 0);
  EXPECT_GT(c->Compare("b", "a"), 0);
  EXPECT_EQ(c->Compare("abc", "abc"), 0);
  EXPECT_LT(c->Compare("ab", "abc"), 0);                    // a prefix first
  EXPECT_LT(c->Compare("", std::string_view("\0", 1)), 0);  // even of a zero byte
  EXPECT_GT(c->Compare("\xff", "a"), 0);                    // bytes are unsigned
  EXPECT_LT(c->Compare("a\x7f", "a\x80"), 0);
}

// Passing the bytewise comparator is the same as passing none: the file
// names no order and is read by either.
TEST(ComparatorTest, TheBytewiseComparatorIsTheDefault) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  {
    Options o;
    o.comparator = BytewiseComparator();
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(o, path, &db));
    ASSERT_OK(db->Put(WriteOptions(), "b", "2"));
    ASSERT_OK(db->Put(WriteOptions(), "a", "1"));
    ASSERT_OK(db->Close());
  }
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(Options(), path, &db));
  std::unique_ptr<Iterator> it = db->NewIterator(ReadOptions());
  it->SeekToFirst();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "a");
  it.reset();
  ASSERT_OK(db->Close());
  test::ExpectPoolsReleased();
}

// Until the engine keeps other orders, asking for one is refused before
// anything is created; so are names a data file could not record.
TEST(ComparatorTest, AnotherOrderIsRefusedBeforeAnythingIsCreated) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  struct Case {
    const char* name;
    bool not_supported;  // else InvalidArgument
  };
  const std::string long_name(256, 'n');
  const Case cases[] = {{"example.ReverseOrder", true},
                        {"", false},
                        {"arenakv.Mine", false},
                        {long_name.c_str(), false}};
  for (const Case& c : cases) {
    NamedOrder order(c.name);
    Options o;
    o.comparator = &order;
    std::unique_ptr<DB> db;
    Status s = DB::Open(o, path, &db);
    EXPECT_EQ(db, nullptr);
    if (c.not_supported) {
      EXPECT_TRUE(s.IsNotSupported()) << s.ToString();
      EXPECT_NE(s.message().find(c.name), std::string::npos) << s.ToString();
    } else {
      EXPECT_TRUE(s.IsInvalidArgument())
          << std::string(c.name).substr(0, 20) << ": " << s.ToString();
    }
    EXPECT_FALSE(fs::exists(path)) << std::string(c.name).substr(0, 20);
    RepairReport report;
    Status rs = RepairDB(path, o, &report);
    EXPECT_FALSE(rs.ok());
  }
  test::ExpectPoolsReleased();
}

// A data file that records another order (as a build that keeps custom
// orders writes it) is neither opened nor repaired in bytewise order: its
// pages are sorted in an order the bytewise search would misread. Nothing
// is written to it.
TEST(ComparatorTest, AFileInAnotherOrderIsNeitherOpenedNorRepaired) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  const std::string data = path + "/data.akv";
  fs::create_directories(path);
  {
    test::TreeArena arena;
    std::unique_ptr<tree::BTree> t;
    ASSERT_OK(tree::BTree::Open(Env::Default().get(), data, true,
                                {.page_bytes = 4096, .order = {}, .comparator = "example.ReverseOrder"},
                                arena.arena(), &t));
    ASSERT_OK(t->Close());
  }
  const std::string before = ReadFile(data);
  std::unique_ptr<DB> db;
  Status s = DB::Open(Options(), path, &db);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_NE(s.message().find("example.ReverseOrder"), std::string::npos) << s.ToString();
  Options ro;
  ro.read_only = true;
  s = DB::Open(ro, path, &db);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  RepairReport report;
  s = RepairDB(path, Options(), &report);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_NE(s.message().find("example.ReverseOrder"), std::string::npos) << s.ToString();
  EXPECT_EQ(ReadFile(data), before);
  EXPECT_FALSE(fs::exists(path + "/lost"));
  test::ExpectPoolsReleased();
}

}  // namespace
}  // namespace arenakv
