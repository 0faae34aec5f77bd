// KeyRecord: the keys a checkpointed memtable held, each with the highest
// sequence that wrote it, and nothing else.
//
// A transaction validates its commit against every write made since it
// began. While those writes sit in memtables it asks the memtables; once a
// memtable has been checkpointed, keeping it alive only for validation would
// pin its values too, so it is traded for this record: one buffer of sorted
// keys and sequences, from the database's pool (charged to its budget).
//
// Thread safety: immutable after Build(); any number of readers.
#ifndef ARENAKV_DB_KEY_RECORD_H_
#define ARENAKV_DB_KEY_RECORD_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <memory_resource>
#include <string_view>

#include "arenakv/status.h"
#include "mem/memtable.h"

namespace arenakv {

class KeyRecord {
  struct Token {
    explicit Token() = default;
  };

 public:
  // The keys of `table` (frozen: nothing adds to it meanwhile). MemoryLimit
  // if `memory` cannot provide the buffer. `gauge` (may be null) counts the
  // bytes of every live record.
  static Status Build(const mem::MemTable& table, std::pmr::memory_resource* memory,
                      std::atomic<size_t>* gauge, std::unique_ptr<KeyRecord>* record);

  KeyRecord(Token, std::pmr::memory_resource* memory, std::atomic<size_t>* gauge, char* buffer,
            size_t bytes, size_t count, KeyOrder order);
  ~KeyRecord();
  KeyRecord(const KeyRecord&) = delete;
  KeyRecord& operator=(const KeyRecord&) = delete;

  // Highest sequence that wrote `key`, 0 if none (as MemTable::LatestSequence).
  uint64_t LatestSequence(std::string_view key) const;
  // True if some key in `range` was written with seq > after_seq (as
  // MemTable::WrittenInRangeAfter).
  bool WrittenInRangeAfter(const KeyRange& range, uint64_t after_seq) const;

  size_t count() const { return count_; }
  size_t bytes() const { return bytes_; }

 private:
  struct Entry {
    uint64_t seq;
    uint32_t offset;  // of the key in the key area
    uint32_t size;
  };
  const Entry* entries() const { return reinterpret_cast<const Entry*>(buffer_); }
  std::string_view KeyAt(size_t i) const;
  size_t LowerBound(std::string_view key) const;  // first index with key >= `key`

  std::pmr::memory_resource* const memory_;
  std::atomic<size_t>* const gauge_;
  char* const buffer_;  // count_ entries, then the keys back to back
  const size_t bytes_;
  const size_t count_;
  const KeyOrder order_;  // the memtable's, which its keys are sorted in
};

}  // namespace arenakv

#endif  // ARENAKV_DB_KEY_RECORD_H_
