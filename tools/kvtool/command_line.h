// The kvtool command language: commands separated by ';' or newlines, words
// separated by blanks, quoting like a shell.
//
//   put "b c" 'two words'; get "b c"   # a comment
//
// Double quotes and bare words understand the escapes of escape.h (\x00,
// \t, \n, \\, \" ...); single quotes take everything literally up to the
// next single quote. Quoted parts next to each other join into one word
// (a"b c" is `ab c`), "" is an empty word, and ';' or '#' inside quotes is
// an ordinary character. A '#' that starts a word begins a comment that runs
// to the end of the line.
//
// Thread safety: pure functions.

#ifndef ARENAKV_TOOLS_KVTOOL_COMMAND_LINE_H_
#define ARENAKV_TOOLS_KVTOOL_COMMAND_LINE_H_

#include <string>
#include <string_view>
#include <vector>

namespace arenakv::kvtool {

using Words = std::vector<std::string>;

// Splits `text` into commands, each a non-empty list of words; empty
// commands (blank lines, ";;", comments) are dropped. On a syntax error
// (unterminated quote, bad escape) returns false with a one-line reason in
// *error and leaves *commands unspecified.
bool ParseCommands(std::string_view text, std::vector<Words>* commands, std::string* error);

// For tab completion: looks at the text before the cursor and returns true
// when the cursor is inside (or right at the start of) the first word of a
// command, setting *partial to what has been typed of that word so far.
bool CompletingCommandName(std::string_view before_cursor, std::string* partial);

}  // namespace arenakv::kvtool

#endif  // ARENAKV_TOOLS_KVTOOL_COMMAND_LINE_H_
