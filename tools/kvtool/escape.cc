#include "escape.h"

#include <cstdint>

namespace arenakv::kvtool {

namespace {

constexpr char kHex[] = "0123456789abcdef";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Length of the well-formed UTF-8 sequence starting at s[i], or 0 when the
// bytes there are not one.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) return 1;
  size_t len;
  uint32_t cp;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    len = 2;
    cp = b0 & 0x1f;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    len = 3;
    cp = b0 & 0x0f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    len = 4;
    cp = b0 & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; k++) {
    const auto b = static_cast<uint8_t>(s[i + k]);
    if ((b & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3f);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff))) return 0;
  if (cp >= 0xd800 && cp <= 0xdfff) return 0;
  return len;
}

// C1 control characters (U+0080..U+009F) are valid UTF-8 but not printable.
bool IsC1Control(std::string_view s, size_t i, size_t len) {
  return len == 2 && static_cast<uint8_t>(s[i]) == 0xc2 && static_cast<uint8_t>(s[i + 1]) < 0xa0;
}

void AppendHexByte(uint8_t b, std::string* out) {
  out->append("\\x");
  out->push_back(kHex[b >> 4]);
  out->push_back(kHex[b & 0xf]);
}

}  // namespace

std::string Escape(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    const char c = bytes[i];
    const auto b = static_cast<uint8_t>(c);
    switch (c) {
      case '\\':
        out.append("\\\\");
        i++;
        continue;
      case '"':
        out.append("\\\"");
        i++;
        continue;
      case '\t':
        out.append("\\t");
        i++;
        continue;
      case '\n':
        out.append("\\n");
        i++;
        continue;
      case '\r':
        out.append("\\r");
        i++;
        continue;
      default:
        break;
    }
    if (b < 0x20 || b == 0x7f) {
      AppendHexByte(b, &out);
      i++;
      continue;
    }
    if (b < 0x80) {
      out.push_back(c);
      i++;
      continue;
    }
    const size_t len = Utf8SequenceLength(bytes, i);
    if (len == 0 || IsC1Control(bytes, i, len)) {
      AppendHexByte(b, &out);
      i++;
    } else {
      out.append(bytes.substr(i, len));
      i += len;
    }
  }
  return out;
}

bool DecodeEscape(std::string_view in, size_t* pos, std::string* out, std::string* error) {
  size_t i = *pos;  // in[i] == '\\'
  if (i + 1 >= in.size()) {
    *error = "backslash at end of input";
    return false;
  }
  const char c = in[i + 1];
  switch (c) {
    case '\\':
    case '"':
    case '\'':
    case ';':
    case '#':
    case ' ':
      out->push_back(c);
      break;
    case 't':
      out->push_back('\t');
      break;
    case 'n':
      out->push_back('\n');
      break;
    case 'r':
      out->push_back('\r');
      break;
    case '0':
      out->push_back('\0');
      break;
    case 'x': {
      const int hi = i + 2 < in.size() ? HexValue(in[i + 2]) : -1;
      const int lo = i + 3 < in.size() ? HexValue(in[i + 3]) : -1;
      if (hi < 0 || lo < 0) {
        *error = "\\x must be followed by two hex digits";
        return false;
      }
      out->push_back(static_cast<char>((hi << 4) | lo));
      *pos = i + 4;
      return true;
    }
    default:
      *error = std::string("unknown escape \\") + Escape(std::string_view(&in[i + 1], 1));
      return false;
  }
  *pos = i + 2;
  return true;
}

bool Unescape(std::string_view in, std::string* out, std::string* error) {
  out->clear();
  size_t i = 0;
  while (i < in.size()) {
    if (in[i] == '\\') {
      if (!DecodeEscape(in, &i, out, error)) return false;
    } else {
      out->push_back(in[i++]);
    }
  }
  return true;
}

bool IsValidUtf8(std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    const size_t len = Utf8SequenceLength(bytes, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

}  // namespace arenakv::kvtool
