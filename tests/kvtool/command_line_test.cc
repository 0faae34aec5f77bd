// The kvtool command language: splitting, quoting, escapes, comments.
#include "command_line.h"

#include <gtest/gtest.h>

namespace arenakv::kvtool {
namespace {

std::vector<Words> Parse(std::string_view text) {
  std::vector<Words> commands;
  std::string error;
  EXPECT_TRUE(ParseCommands(text, &commands, &error)) << text << ": " << error;
  return commands;
}

std::string ParseError(std::string_view text) {
  std::vector<Words> commands;
  std::string error;
  EXPECT_FALSE(ParseCommands(text, &commands, &error)) << text;
  return error;
}

TEST(CommandLineTest, SplitsCommandsAndWords) {
  auto c = Parse("put a 1; get a\n  scan  --limit 3 ;;\n");
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0], (Words{"put", "a", "1"}));
  EXPECT_EQ(c[1], (Words{"get", "a"}));
  EXPECT_EQ(c[2], (Words{"scan", "--limit", "3"}));
  EXPECT_TRUE(Parse("  ; ;\n\t").empty());
}

TEST(CommandLineTest, QuotesKeepSpacesAndSemicolons) {
  auto c = Parse("put \"b c\" 'two words; still one'; get \"x;y\"");
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0], (Words{"put", "b c", "two words; still one"}));
  EXPECT_EQ(c[1], (Words{"get", "x;y"}));
}

TEST(CommandLineTest, AdjacentPartsJoinAndEmptyQuotesAreWords) {
  auto c = Parse("put a\"b c\"'d' \"\"");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0], (Words{"put", "ab cd", ""}));
}

TEST(CommandLineTest, EscapesInBareAndDoubleQuotedWords) {
  auto c = Parse("put a\\x00b \"tab\\there \\\"q\\\" \\\\\" c\\ d");
  ASSERT_EQ(c.size(), 1u);
  ASSERT_EQ(c[0].size(), 4u);
  EXPECT_EQ(c[0][1], std::string("a\0b", 3));
  EXPECT_EQ(c[0][2], "tab\there \"q\" \\");
  EXPECT_EQ(c[0][3], "c d");
}

TEST(CommandLineTest, SingleQuotesAreLiteral) {
  auto c = Parse("put 'a\\x00b' '\"'");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0], (Words{"put", "a\\x00b", "\""}));
}

TEST(CommandLineTest, EscapedSemicolonDoesNotSplit) {
  auto c = Parse("put a\\;b 1");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0], (Words{"put", "a;b", "1"}));
}

TEST(CommandLineTest, Comments) {
  auto c = Parse("put a 1 # set a\n# whole line\nget a#not-a-comment");
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0], (Words{"put", "a", "1"}));
  EXPECT_EQ(c[1], (Words{"get", "a#not-a-comment"}));
  EXPECT_EQ(Parse("put \"# kept\" 1")[0][1], "# kept");
}

TEST(CommandLineTest, Errors) {
  EXPECT_NE(ParseError("put \"abc").find("unterminated double quote"), std::string::npos);
  EXPECT_NE(ParseError("put 'abc").find("unterminated single quote"), std::string::npos);
  EXPECT_NE(ParseError("put \\q 1").find("unknown escape"), std::string::npos);
  EXPECT_NE(ParseError("put \"\\x1\" 1").find("hex"), std::string::npos);
  EXPECT_NE(ParseError("put a\\").find("end of input"), std::string::npos);
}

TEST(CommandLineTest, CompletionContext) {
  std::string partial;
  EXPECT_TRUE(CompletingCommandName("", &partial));
  EXPECT_EQ(partial, "");
  EXPECT_TRUE(CompletingCommandName("sc", &partial));
  EXPECT_EQ(partial, "sc");
  EXPECT_TRUE(CompletingCommandName("put a 1; ch", &partial));
  EXPECT_EQ(partial, "ch");
  EXPECT_TRUE(CompletingCommandName("put a 1;  ", &partial));
  EXPECT_EQ(partial, "");
  EXPECT_FALSE(CompletingCommandName("get ", &partial));
  EXPECT_FALSE(CompletingCommandName("get ke", &partial));
  EXPECT_FALSE(CompletingCommandName("put \"a; b", &partial));  // inside quotes
  EXPECT_FALSE(CompletingCommandName("put 'x' \"", &partial));
}

}  // namespace
}  // namespace arenakv::kvtool
