#include "db/log_batch.h"

#include "util/coding.h"

namespace arenakv {

LogBatch::LogBatch(std::pmr::memory_resource* mr) : rep_(mr) { Clear(); }

void LogBatch::Clear() { rep_.assign(kHeaderBytes, '\0'); }

void LogBatch::Truncate(size_t bytes) {
  if (bytes < rep_.size()) rep_.resize(bytes);
  uint32_t n = 0;
  std::string_view in(rep_);
  in.remove_prefix(kHeaderBytes);
  mem::ValueType type;
  std::string_view key, value;
  while (!in.empty() && DecodeBatchOp(&in, &type, &key, &value).ok()) ++n;
  EncodeFixed32(rep_.data() + 8, n);
}

uint64_t LogBatch::sequence() const { return DecodeFixed64(rep_.data()); }
void LogBatch::SetSequence(uint64_t seq) { EncodeFixed64(rep_.data(), seq); }
uint32_t LogBatch::count() const { return DecodeFixed32(rep_.data() + 8); }

void LogBatch::Count() { EncodeFixed32(rep_.data() + 8, count() + 1); }

void LogBatch::Put(std::string_view key, std::string_view value) {
  Count();
  rep_.push_back(static_cast<char>(mem::ValueType::kValue));
  PutLengthPrefixed(&rep_, key);
  PutLengthPrefixed(&rep_, value);
}

void LogBatch::Delete(std::string_view key) {
  Count();
  rep_.push_back(static_cast<char>(mem::ValueType::kDeletion));
  PutLengthPrefixed(&rep_, key);
}

void LogBatch::Append(const LogBatch& other) {
  EncodeFixed32(rep_.data() + 8, count() + other.count());
  rep_.append(other.rep_.data() + kHeaderBytes, other.rep_.size() - kHeaderBytes);
}

Status DecodeBatchOp(std::string_view* in, mem::ValueType* type, std::string_view* key,
                     std::string_view* value) {
  if (in->empty()) return Status::Corruption("write batch: truncated op");
  auto t = static_cast<mem::ValueType>((*in)[0]);
  in->remove_prefix(1);
  if (!GetLengthPrefixed(in, key)) return Status::Corruption("write batch: bad key");
  if (t == mem::ValueType::kValue) {
    if (!GetLengthPrefixed(in, value)) return Status::Corruption("write batch: bad value");
  } else if (t == mem::ValueType::kDeletion) {
    *value = {};
  } else {
    return Status::Corruption("write batch: unknown op type");
  }
  *type = t;
  return Status::OK();
}

Status LogBatch::SetContents(std::string_view record) {
  if (record.size() < kHeaderBytes) return Status::Corruption("write batch: too short");
  rep_.assign(record.data(), record.size());
  return ForEach(
      [](uint64_t, mem::ValueType, std::string_view, std::string_view) { return Status::OK(); });
}

}  // namespace arenakv
