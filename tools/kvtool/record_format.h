// The two file formats of kvtool's import and export, one record per line:
//
//   TSV          key<TAB>value, both escaped as in escape.h (so a literal TAB
//                or newline never appears inside a field).
//   JSON lines   {"key":K,"value":V}, where K and V are JSON strings when the
//                bytes are valid UTF-8, and {"base64":"..."} (RFC 4648, with
//                padding) otherwise.
//
// The same byte convention is used by kvtool's --json output.
//
// Thread safety: pure functions.

#ifndef ARENAKV_TOOLS_KVTOOL_RECORD_FORMAT_H_
#define ARENAKV_TOOLS_KVTOOL_RECORD_FORMAT_H_

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace arenakv::kvtool {

enum class RecordFormat { kTsv, kJsonl };

// "tsv" or "jsonl" (also "json", "ndjson").
bool RecordFormatFromName(std::string_view name, RecordFormat* format);
// By extension: .tsv, .jsonl / .ndjson / .json.
bool RecordFormatFromPath(std::string_view path, RecordFormat* format);
const char* RecordFormatName(RecordFormat format);

// One line, newline included.
std::string FormatRecord(RecordFormat format, std::string_view key, std::string_view value);
// Parses one line (without its newline; a trailing '\r' is ignored). False
// with a one-line reason in *error when the line is malformed.
bool ParseRecord(RecordFormat format, std::string_view line, std::string* key, std::string* value,
                 std::string* error);

// Bytes as JSON: a string when valid UTF-8, else {"base64": "..."}.
nlohmann::json BytesToJson(std::string_view bytes);
// The inverse; false with *error for anything else.
bool JsonToBytes(const nlohmann::json& json, std::string* bytes, std::string* error);

std::string Base64Encode(std::string_view bytes);
bool Base64Decode(std::string_view text, std::string* bytes);

}  // namespace arenakv::kvtool

#endif  // ARENAKV_TOOLS_KVTOOL_RECORD_FORMAT_H_
