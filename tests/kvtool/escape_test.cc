// Escaping of keys and values for display, TSV and the command line.
#include "escape.h"

#include <gtest/gtest.h>

#include <random>

#include "test_util.h"

namespace arenakv::kvtool {
namespace {

TEST(EscapeTest, PrintableTextIsUnchanged) {
  EXPECT_EQ(Escape("hello world"), "hello world");
  EXPECT_EQ(Escape("caf\xc3\xa9 \xe2\x82\xac"), "caf\xc3\xa9 \xe2\x82\xac");  // valid UTF-8
}

TEST(EscapeTest, SpecialBytesAreEscaped) {
  EXPECT_EQ(Escape(std::string("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(Escape("t\tn\nr\r"), "t\\tn\\nr\\r");
  EXPECT_EQ(Escape("back\\slash \"q\""), "back\\\\slash \\\"q\\\"");
  EXPECT_EQ(Escape("\x7f\x01"), "\\x7f\\x01");
  EXPECT_EQ(Escape("\xff\xfe"), "\\xff\\xfe");           // not UTF-8
  EXPECT_EQ(Escape("\xc3"), "\\xc3");                    // truncated sequence
  EXPECT_EQ(Escape("\xc0\x80"), "\\xc0\\x80");           // overlong NUL
  EXPECT_EQ(Escape("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // surrogate
  EXPECT_EQ(Escape("\xc2\x85"), "\\xc2\\x85");           // C1 control
}

TEST(EscapeTest, UnescapeReadsEverySequence) {
  std::string out, error;
  ASSERT_TRUE(Unescape("a\\x00b\\t\\n\\r\\\\\\\"\\'\\;\\#\\ \\0\\xFF", &out, &error)) << error;
  EXPECT_EQ(out, std::string("a\0b\t\n\r\\\"';# \0\xff", 14));
}

TEST(EscapeTest, UnescapeRejectsBadSequences) {
  std::string out, error;
  EXPECT_FALSE(Unescape("a\\q", &out, &error));
  EXPECT_NE(error.find("unknown escape"), std::string::npos);
  EXPECT_FALSE(Unescape("a\\x4", &out, &error));
  EXPECT_NE(error.find("two hex digits"), std::string::npos);
  EXPECT_FALSE(Unescape("a\\xg0", &out, &error));
  EXPECT_FALSE(Unescape("a\\", &out, &error));
  EXPECT_NE(error.find("end of input"), std::string::npos);
}

TEST(EscapeTest, RandomBytesRoundTrip) {
  std::mt19937_64 rng(test::TestSeed());
  for (int i = 0; i < 2000; i++) {
    std::string bytes(rng() % 40, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    const std::string escaped = Escape(bytes);
    for (char c : escaped) {
      ASSERT_FALSE(c == '\t' || c == '\n' || c == '\r' || c == '\0') << escaped;
    }
    std::string back, error;
    ASSERT_TRUE(Unescape(escaped, &back, &error)) << error;
    ASSERT_EQ(back, bytes);
  }
}

TEST(EscapeTest, Utf8Validity) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8(std::string("nul\0inside", 10)));
  EXPECT_TRUE(IsValidUtf8("\xf0\x9f\x98\x80"));   // U+1F600
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // > U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\x80"));
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));
}

}  // namespace
}  // namespace arenakv::kvtool
