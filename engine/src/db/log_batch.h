// LogBatch: the ops of one commit group, as they are logged in one WAL
// record and then applied to the memtable.
//
// Encoding (little-endian):
//   fixed64 first_sequence | fixed32 count | count x op
//   op := u8 type (1 = put, 2 = delete) | varint klen | key | [varint vlen | value]
// Op i carries sequence first_sequence + i.
//
// Thread safety: a value type; one thread at a time.
#ifndef ARENAKV_DB_LOG_BATCH_H_
#define ARENAKV_DB_LOG_BATCH_H_

#include <cstdint>
#include <memory_resource>
#include <string>
#include <string_view>

#include "arenakv/status.h"
#include "mem/memtable.h"

namespace arenakv {

class LogBatch {
 public:
  static constexpr size_t kHeaderBytes = 12;

  explicit LogBatch(std::pmr::memory_resource* mr = std::pmr::get_default_resource());

  void Put(std::string_view key, std::string_view value);
  void Delete(std::string_view key);
  // Appends every op of `other` (its sequence is ignored).
  void Append(const LogBatch& other);
  void Clear();
  // Drops the op that made the encoding longer than `bytes` (an op whose
  // append threw), restoring the count.
  void Truncate(size_t bytes);
  // Makes room for `bytes` of encoding in one allocation (see OpBytesBound).
  void Reserve(size_t bytes) { rep_.reserve(bytes); }
  // At most the bytes one op adds to the encoding.
  static constexpr size_t OpBytesBound(size_t key_bytes, size_t value_bytes) {
    return 1 + 5 + key_bytes + 5 + value_bytes;
  }

  void SetSequence(uint64_t seq);
  uint64_t sequence() const;
  uint32_t count() const;
  size_t ByteSize() const { return rep_.size(); }
  std::string_view contents() const { return rep_; }

  // Replaces the contents with a logged record; Corruption if malformed.
  Status SetContents(std::string_view record);

  // Calls fn(seq, type, key, value) for each op; Corruption if malformed.
  template <typename Fn>
  Status ForEach(Fn&& fn) const;

 private:
  void Count();
  std::pmr::string rep_;
};

// Parses ops; shared by ForEach and SetContents validation.
Status DecodeBatchOp(std::string_view* in, mem::ValueType* type, std::string_view* key,
                     std::string_view* value);

template <typename Fn>
Status LogBatch::ForEach(Fn&& fn) const {
  std::string_view in(rep_);
  in.remove_prefix(kHeaderBytes);
  uint64_t seq = sequence();
  for (uint32_t i = 0, n = count(); i < n; ++i) {
    mem::ValueType type;
    std::string_view key, value;
    Status s = DecodeBatchOp(&in, &type, &key, &value);
    if (!s.ok()) return s;
    s = fn(seq + i, type, key, value);
    if (!s.ok()) return s;
  }
  if (!in.empty()) return Status::Corruption("write batch: trailing bytes");
  return Status::OK();
}

}  // namespace arenakv

#endif  // ARENAKV_DB_LOG_BATCH_H_
