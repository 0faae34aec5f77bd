#include "record_format.h"

#include <cstdint>

#include "escape.h"

namespace arenakv::kvtool {

namespace {

constexpr char kBase64Alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

bool RecordFormatFromName(std::string_view name, RecordFormat* format) {
  if (name == "tsv") {
    *format = RecordFormat::kTsv;
  } else if (name == "jsonl" || name == "json" || name == "ndjson") {
    *format = RecordFormat::kJsonl;
  } else {
    return false;
  }
  return true;
}

bool RecordFormatFromPath(std::string_view path, RecordFormat* format) {
  if (EndsWith(path, ".tsv")) {
    *format = RecordFormat::kTsv;
  } else if (EndsWith(path, ".jsonl") || EndsWith(path, ".ndjson") || EndsWith(path, ".json")) {
    *format = RecordFormat::kJsonl;
  } else {
    return false;
  }
  return true;
}

const char* RecordFormatName(RecordFormat format) {
  return format == RecordFormat::kTsv ? "tsv" : "jsonl";
}

std::string FormatRecord(RecordFormat format, std::string_view key, std::string_view value) {
  if (format == RecordFormat::kTsv) {
    std::string line = Escape(key);
    line.push_back('\t');
    line.append(Escape(value));
    line.push_back('\n');
    return line;
  }
  nlohmann::ordered_json j;
  j["key"] = BytesToJson(key);
  j["value"] = BytesToJson(value);
  std::string line = j.dump();
  line.push_back('\n');
  return line;
}

bool ParseRecord(RecordFormat format, std::string_view line, std::string* key, std::string* value,
                 std::string* error) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (format == RecordFormat::kTsv) {
    const size_t tab = line.find('\t');
    if (tab == std::string_view::npos) {
      *error = "no TAB between key and value";
      return false;
    }
    if (line.find('\t', tab + 1) != std::string_view::npos) {
      *error = "more than one TAB (write a TAB inside a field as \\t)";
      return false;
    }
    std::string why;
    if (!Unescape(line.substr(0, tab), key, &why)) {
      *error = "key: " + why;
      return false;
    }
    if (!Unescape(line.substr(tab + 1), value, &why)) {
      *error = "value: " + why;
      return false;
    }
    return true;
  }
  nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    *error = "not valid JSON";
    return false;
  }
  if (!j.is_object()) {
    *error = "not a JSON object";
    return false;
  }
  std::string why;
  const auto k = j.find("key");
  if (k == j.end()) {
    *error = "no \"key\" field";
    return false;
  }
  if (!JsonToBytes(*k, key, &why)) {
    *error = "key: " + why;
    return false;
  }
  const auto v = j.find("value");
  if (v == j.end()) {
    *error = "no \"value\" field";
    return false;
  }
  if (!JsonToBytes(*v, value, &why)) {
    *error = "value: " + why;
    return false;
  }
  return true;
}

nlohmann::json BytesToJson(std::string_view bytes) {
  if (IsValidUtf8(bytes)) return std::string(bytes);
  return nlohmann::json{{"base64", Base64Encode(bytes)}};
}

bool JsonToBytes(const nlohmann::json& json, std::string* bytes, std::string* error) {
  if (json.is_string()) {
    *bytes = json.get<std::string>();
    return true;
  }
  if (json.is_object() && json.size() == 1) {
    const auto b = json.find("base64");
    if (b != json.end() && b->is_string()) {
      if (Base64Decode(b->get<std::string>(), bytes)) return true;
      *error = "bad base64";
      return false;
    }
  }
  *error = "expected a string or {\"base64\": \"...\"}";
  return false;
}

std::string Base64Encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v = (static_cast<uint8_t>(bytes[i]) << 16) |
                       (static_cast<uint8_t>(bytes[i + 1]) << 8) |
                       static_cast<uint8_t>(bytes[i + 2]);
    out.push_back(kBase64Alphabet[(v >> 18) & 63]);
    out.push_back(kBase64Alphabet[(v >> 12) & 63]);
    out.push_back(kBase64Alphabet[(v >> 6) & 63]);
    out.push_back(kBase64Alphabet[v & 63]);
  }
  const size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t v = static_cast<uint8_t>(bytes[i]) << 16;
    if (rest == 2) v |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    out.push_back(kBase64Alphabet[(v >> 18) & 63]);
    out.push_back(kBase64Alphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kBase64Alphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

bool Base64Decode(std::string_view text, std::string* bytes) {
  bytes->clear();
  if (text.size() % 4 != 0) return false;
  for (size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; k++) {
      const char c = text[i + k];
      if (c == '=' && last && k >= 2) {
        v[k] = 0;
        pad++;
      } else {
        if (pad > 0) return false;  // data after padding
        v[k] = Base64Value(c);
        if (v[k] < 0) return false;
      }
    }
    const uint32_t n = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    bytes->push_back(static_cast<char>((n >> 16) & 0xff));
    if (pad < 2) bytes->push_back(static_cast<char>((n >> 8) & 0xff));
    if (pad < 1) bytes->push_back(static_cast<char>(n & 0xff));
  }
  return true;
}

}  // namespace arenakv::kvtool
