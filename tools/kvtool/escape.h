// Byte escaping for kvtool: how keys and values are shown on a terminal, in
// TSV files and typed back in.
//
// Escape() turns arbitrary bytes into printable text: backslash, double
// quote, tab, newline and carriage return get C-style escapes, other control
// bytes, DEL and bytes that are not part of valid UTF-8 become \xNN. Valid
// UTF-8 text (ASCII and multi-byte characters) stays as it is. Unescape()
// reads every escape Escape() writes (and a few more), so Unescape(Escape(s))
// == s for every byte string, and the escaped text placed between double
// quotes is a valid kvtool argument for the same bytes.
//
// Thread safety: pure functions.

#ifndef ARENAKV_TOOLS_KVTOOL_ESCAPE_H_
#define ARENAKV_TOOLS_KVTOOL_ESCAPE_H_

#include <string>
#include <string_view>

namespace arenakv::kvtool {

std::string Escape(std::string_view bytes);

// Decodes the escape sequence that starts at in[*pos] (a backslash) into
// *out and advances *pos past it. Recognized: \\ \" \' \t \n \r \0 \xNN
// (two hex digits), \; \# and "\ " (a backslash before a space). On a bad
// sequence returns false with a one-line reason in *error.
bool DecodeEscape(std::string_view in, size_t* pos, std::string* out, std::string* error);

// Unescapes a whole string (no quoting rules). False with *error on a bad
// escape.
bool Unescape(std::string_view in, std::string* out, std::string* error);

// True when `bytes` is well-formed UTF-8 (no overlongs, no surrogates).
bool IsValidUtf8(std::string_view bytes);

}  // namespace arenakv::kvtool

#endif  // ARENAKV_TOOLS_KVTOOL_ESCAPE_H_
