// TSV and JSON-lines records, and the JSON byte convention.
#include "record_format.h"

#include <gtest/gtest.h>

#include <random>

#include "human_units.h"
#include "progress_bar.h"
#include "test_util.h"

namespace arenakv::kvtool {
namespace {

TEST(RecordFormatTest, FormatFromNameAndPath) {
  RecordFormat f;
  ASSERT_TRUE(RecordFormatFromPath("dump.tsv", &f));
  EXPECT_EQ(f, RecordFormat::kTsv);
  ASSERT_TRUE(RecordFormatFromPath("dir.x/dump.jsonl", &f));
  EXPECT_EQ(f, RecordFormat::kJsonl);
  EXPECT_FALSE(RecordFormatFromPath("dump.txt", &f));
  ASSERT_TRUE(RecordFormatFromName("tsv", &f));
  EXPECT_EQ(f, RecordFormat::kTsv);
  ASSERT_TRUE(RecordFormatFromName("jsonl", &f));
  EXPECT_EQ(f, RecordFormat::kJsonl);
  EXPECT_FALSE(RecordFormatFromName("csv", &f));
}

TEST(RecordFormatTest, TsvLines) {
  EXPECT_EQ(FormatRecord(RecordFormat::kTsv, std::string("k\0", 2), "a\tb"), "k\\x00\ta\\tb\n");
  std::string k, v, error;
  ASSERT_TRUE(ParseRecord(RecordFormat::kTsv, "k\\x00\ta\\tb\r", &k, &v, &error)) << error;
  EXPECT_EQ(k, std::string("k\0", 2));
  EXPECT_EQ(v, "a\tb");
  ASSERT_TRUE(ParseRecord(RecordFormat::kTsv, "\t", &k, &v, &error));  // empty key and value
  EXPECT_EQ(k, "");
  EXPECT_EQ(v, "");
  EXPECT_FALSE(ParseRecord(RecordFormat::kTsv, "no tab here", &k, &v, &error));
  EXPECT_NE(error.find("no TAB"), std::string::npos);
  EXPECT_FALSE(ParseRecord(RecordFormat::kTsv, "a\tb\tc", &k, &v, &error));
  EXPECT_NE(error.find("more than one TAB"), std::string::npos);
  EXPECT_FALSE(ParseRecord(RecordFormat::kTsv, "a\\z\tb", &k, &v, &error));
  EXPECT_NE(error.find("key: unknown escape"), std::string::npos);
}

TEST(RecordFormatTest, JsonLines) {
  EXPECT_EQ(FormatRecord(RecordFormat::kJsonl, "caf\xc3\xa9", std::string("\0x", 2)),
            "{\"key\":\"caf\xc3\xa9\",\"value\":\"\\u0000x\"}\n");
  EXPECT_EQ(FormatRecord(RecordFormat::kJsonl, "k", "\xff\xfe"),
            "{\"key\":\"k\",\"value\":{\"base64\":\"//4=\"}}\n");
  std::string k, v, error;
  ASSERT_TRUE(ParseRecord(RecordFormat::kJsonl,
                          R"({"value":{"base64":"//4="},"key":"a b","extra":1})", &k, &v, &error))
      << error;
  EXPECT_EQ(k, "a b");
  EXPECT_EQ(v, "\xff\xfe");
  EXPECT_FALSE(ParseRecord(RecordFormat::kJsonl, R"({"key":"a"})", &k, &v, &error));
  EXPECT_NE(error.find("no \"value\""), std::string::npos);
  EXPECT_FALSE(ParseRecord(RecordFormat::kJsonl, R"({"key":"a","value":3})", &k, &v, &error));
  EXPECT_NE(error.find("value: expected a string"), std::string::npos);
  EXPECT_FALSE(ParseRecord(RecordFormat::kJsonl, R"({"key":"a","value":)", &k, &v, &error));
  EXPECT_NE(error.find("not valid JSON"), std::string::npos);
  EXPECT_FALSE(ParseRecord(RecordFormat::kJsonl, R"(["a","b"])", &k, &v, &error));
  EXPECT_FALSE(
      ParseRecord(RecordFormat::kJsonl, R"({"key":{"base64":"!!"},"value":""})", &k, &v, &error));
  EXPECT_NE(error.find("bad base64"), std::string::npos);
}

TEST(RecordFormatTest, RandomRecordsRoundTripInBothFormats) {
  std::mt19937_64 rng(test::TestSeed());
  for (RecordFormat format : {RecordFormat::kTsv, RecordFormat::kJsonl}) {
    for (int i = 0; i < 1000; i++) {
      std::string key(rng() % 20, '\0'), value(rng() % 50, '\0');
      for (char& c : key) c = static_cast<char>(rng() % 3 == 0 ? rng() : 'a' + rng() % 26);
      for (char& c : value) c = static_cast<char>(rng());
      std::string line = FormatRecord(format, key, value);
      ASSERT_EQ(line.back(), '\n');
      line.pop_back();
      ASSERT_EQ(line.find('\n'), std::string::npos);
      std::string k, v, error;
      ASSERT_TRUE(ParseRecord(format, line, &k, &v, &error)) << error << ": " << line;
      ASSERT_EQ(k, key);
      ASSERT_EQ(v, value);
    }
  }
}

TEST(RecordFormatTest, Base64) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  std::string out;
  ASSERT_TRUE(Base64Decode("Zm9vYg==", &out));
  EXPECT_EQ(out, "foob");
  EXPECT_FALSE(Base64Decode("Zm9", &out));
  EXPECT_FALSE(Base64Decode("Z=9v", &out));
  EXPECT_FALSE(Base64Decode("Zm9v*A==", &out));
}

TEST(HumanUnitsTest, Bytes) {
  EXPECT_EQ(HumanBytes(0), "0 B");
  EXPECT_EQ(HumanBytes(1023), "1023 B");
  EXPECT_EQ(HumanBytes(4096), "4.0 KiB");
  EXPECT_EQ(HumanBytes(1536 * 1024), "1.5 MiB");
  EXPECT_EQ(HumanBytes(uint64_t{3} << 30), "3.0 GiB");
  EXPECT_EQ(HumanBytes(SIZE_MAX), "unlimited");
  EXPECT_EQ(GroupThousands(0), "0");
  EXPECT_EQ(GroupThousands(999), "999");
  EXPECT_EQ(GroupThousands(1234567), "1,234,567");
  EXPECT_EQ(GroupThousands(100000), "100,000");
}

TEST(ProgressBarTest, Render) {
  EXPECT_EQ(ProgressBar::Render("verify", "pages", 5, 10, 10),
            "verify [#####-----]  50%  5/10 pages");
  EXPECT_EQ(ProgressBar::Render("verify", "pages", 0, 0, 4), "verify [####] 100%  0/0 pages");
  EXPECT_EQ(ProgressBar::Render("x", "b", 2000, 1000, 2), "x [##] 100%  2,000/2,000 b");
}

}  // namespace
}  // namespace arenakv::kvtool
