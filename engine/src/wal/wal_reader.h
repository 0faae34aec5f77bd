// WalReader: reads a write-ahead log back at recovery, record by record,
// verifying every checksum. It tells a torn tail (the crash cut or garbled
// the last record: expected, the log simply ends there) from corruption
// (damage with intact records after it: data was lost, so it is an error).
// Format and the exact rule: wal/wal_format.h, docs/format.md.
//
// The file is read in chunks of 1 MiB (the buffer grows for a larger record,
// up to kMaxRecordBytes), never whole.
//
// Thread safety: thread-compatible; one thread uses a reader.
#ifndef ARENAKV_WAL_WAL_READER_H_
#define ARENAKV_WAL_WAL_READER_H_

#include <cstdint>
#include <memory>
#include <memory_resource>
#include <string>
#include <string_view>

#include "arenakv/env.h"
#include "arenakv/status.h"

namespace arenakv::wal {

struct WalReadResult {
  uint64_t records = 0;      // records returned so far
  uint64_t valid_bytes = 0;  // end of the last good record (or of the header)
  bool torn_tail = false;    // the log ended in a cut or garbled last record
  bool zero_tail = false;    // the log ended in the zeros preallocated ahead (a clean end)
  // The cut was at a damaged record with intact unsynced ones after it: what
  // a power loss leaves when the disk wrote a later sector before an
  // earlier one (version 2 logs; see wal_format.h).
  bool intact_after_cut = false;
  // Salvage only: damage passed over, and the bytes it took.
  uint64_t skipped_regions = 0;
  uint64_t skipped_bytes = 0;
};

class WalReader {
  struct Token {
    explicit Token() = default;
  };

 public:
  // Opens `path` and checks its header: Corruption for a damaged header, a
  // file that is not a WAL, or a log number other than expected_log_number;
  // NotSupported for a newer format version. A file shorter than the header
  // (a crash right after creation) opens as an empty log with a torn tail.
  // `memory` holds the read buffers (nullptr: the default resource). Only
  // the first `max_bytes` of the file are read: a log still being written
  // is read up to the records its writer has completed.
  static Status Open(Env* env, const std::string& path, uint64_t expected_log_number,
                     std::unique_ptr<WalReader>* reader,
                     std::pmr::memory_resource* memory = nullptr, uint64_t max_bytes = UINT64_MAX);

  // Use Open(); public only for std::make_unique (Token is private).
  WalReader(Token, std::unique_ptr<File> file, uint64_t file_size, uint64_t log_number,
            std::pmr::memory_resource* memory);
  ~WalReader();
  WalReader(const WalReader&) = delete;
  WalReader& operator=(const WalReader&) = delete;

  // The next record in *record (valid until the next call), or *eof = true at
  // the clean end or at a torn tail (see result()). A damaged record that is
  // followed by an intact record is Corruption naming the file and offset
  // when a later sync mark says it was durable (or, in a version 1 log,
  // always). Sync marks are not returned. Errors are sticky.
  Status ReadRecord(std::string_view* record, bool* eof);

  const WalReadResult& result() const { return result_; }
  // For RepairDB: a damaged record is passed over instead of ending the log
  // or failing, and reading resumes at the next intact record (result()
  // counts what was skipped). A commit in fragments that the damage cut is
  // dropped whole.
  void Salvage() { salvage_ = true; }
  // The file's format version; 0 for a log whose header never reached the
  // disk (it holds nothing).
  uint32_t version() const { return version_; }

 private:
  // Makes file bytes [offset, offset + n) available at Buffered(offset);
  // *complete = false when the file ends first. offset never moves backwards.
  Status Fill(uint64_t offset, size_t n, bool* complete);
  const char* Buffered(uint64_t offset) const {
    return buf_.data() + static_cast<size_t>(offset - buf_offset_);
  }
  // One record, a sync mark (*mark, nothing returned) or the end.
  Status ReadOne(std::string_view* record, bool* eof, bool* mark);
  // The record at `offset` is bad: torn tail unless it is known durable.
  Status BadRecord(uint64_t offset, const std::string& why, bool* eof);
  Status RestIsZero(uint64_t offset, bool* zero);
  Status FindIntact(uint64_t from, uint64_t* at, uint32_t* length);
  // A fragment's payload: kept until its run's last one, which returns the
  // whole commit in *record.
  Status Fragment(uint64_t offset, std::string_view payload, std::string_view* record, bool* more);
  Status Fail(Status s);

  std::unique_ptr<File> file_;
  const uint64_t file_size_;
  const uint64_t seed_;
  uint64_t pos_;          // offset of the next record
  std::pmr::string buf_;  // file bytes [buf_offset_, buf_offset_ + buf_len_)
  uint64_t buf_offset_ = 0;
  size_t buf_len_ = 0;
  std::pmr::string raw_;  // the last decompressed record
  // A run of fragments being put together, and where its first one starts
  // (a log that ends inside the run is cut there).
  std::pmr::string assembled_;
  bool assembling_ = false;
  uint64_t assembly_start_ = 0;
  uint64_t assembly_total_ = 0;  // the commit's length, from its first fragment
  WalReadResult result_;
  Status status_;  // sticky error
  bool done_ = false;
  bool salvage_ = false;
  bool resumed_ = false;  // salvage passed over damage: read on
  uint32_t version_ = 0;  // of the file's format (0: no header)
};

// Cuts a torn tail so that new records are not appended after garbage:
// truncates `path` to valid_bytes (from WalReadResult) and syncs it. A log
// cut before the end of its header gets its header back: an empty log.
Status TruncateTornTail(Env* env, const std::string& path, uint64_t log_number,
                        uint64_t valid_bytes);

}  // namespace arenakv::wal

#endif  // ARENAKV_WAL_WAL_READER_H_
