#include "db/write_batch.h"

#include "util/coding.h"

namespace arenakv {

WriteBatch::WriteBatch(std::pmr::memory_resource* mr) : rep_(mr) { Clear(); }

void WriteBatch::Clear() { rep_.assign(kHeaderBytes, '\0'); }

uint64_t WriteBatch::sequence() const { return DecodeFixed64(rep_.data()); }
void WriteBatch::SetSequence(uint64_t seq) { EncodeFixed64(rep_.data(), seq); }
uint32_t WriteBatch::count() const { return DecodeFixed32(rep_.data() + 8); }

void WriteBatch::Count() { EncodeFixed32(rep_.data() + 8, count() + 1); }

void WriteBatch::Put(std::string_view key, std::string_view value) {
  Count();
  rep_.push_back(static_cast<char>(mem::ValueType::kValue));
  PutLengthPrefixed(&rep_, key);
  PutLengthPrefixed(&rep_, value);
}

void WriteBatch::Delete(std::string_view key) {
  Count();
  rep_.push_back(static_cast<char>(mem::ValueType::kDeletion));
  PutLengthPrefixed(&rep_, key);
}

void WriteBatch::Append(const WriteBatch& other) {
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

Status WriteBatch::SetContents(std::string_view record) {
  if (record.size() < kHeaderBytes) return Status::Corruption("write batch: too short");
  rep_.assign(record.data(), record.size());
  return ForEach(
      [](uint64_t, mem::ValueType, std::string_view, std::string_view) { return Status::OK(); });
}

}  // namespace arenakv
