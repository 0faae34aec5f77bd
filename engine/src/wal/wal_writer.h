// WalWriter: appends commit-group batches to a write-ahead log file, one
// checksummed (optionally LZ4-compressed) record per AddRecord; durability
// only at Sync(). Format: wal/wal_format.h.
//
// With preallocation, records are stored through a small shared mapping of
// the zero-filled region ahead (File::MapWritable) instead of one write(2)
// each: a store into a shared mapping is in the page cache as soon as it is
// made, so an unsynced commit still survives a killed process, and the
// system call per commit is gone. Where the file layer cannot map (an Env
// wrapper, a failed mmap), a record does not fit the window, or the record
// is about to be synced (see AddRecord), pwrite.
//
// Thread safety: thread-compatible. One thread at a time (the group-commit
// leader) calls AddRecord/Sync/Close; size() and log_number() may be read
// from any thread.
#ifndef ARENAKV_WAL_WAL_WRITER_H_
#define ARENAKV_WAL_WAL_WRITER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <memory_resource>
#include <string>
#include <string_view>

#include "arenakv/alloc/object_heap.h"
#include "arenakv/env.h"
#include "arenakv/status.h"
#include "wal/wal_format.h"

namespace arenakv::wal {

struct WalWriterOptions {
  // LZ4-compress payloads of at least kMinCompressBytes when that makes them smaller.
  bool compression = true;
  // Where the record assembly buffer lives (nullptr: the default resource).
  // It is reused across records and shrunk after an unusually large one.
  std::pmr::memory_resource* memory = nullptr;
  // Zero-fill the file ahead of the records in steps of this many bytes
  // (0: plain appends). Records then overwrite blocks that already exist, so
  // an fdatasync flushes data only: no block allocation and no file-size
  // change to journal on every synced commit. Readers take the zeroed tail
  // for the end of the log.
  size_t preallocate_bytes = 0;
  // With a mapped window, whole pages behind the records are let go (the
  // file's pages, resident outside any budget) in steps of this many bytes:
  // a thousand databases that each wrote part of a window would otherwise
  // keep up to a window each. One madvise per step.
  size_t drop_behind_bytes = size_t{16} << 10;
  // The zeros ahead are written in pieces of this many bytes (4 to 64 KiB).
  // The page cache maps a file's pages into the process in groups (folios)
  // as large as the write that made them: 64 KiB pieces made groups of 32
  // KiB, resident whatever drop_behind_bytes is. Smaller pieces cost more
  // writes (a pwrite each).
  size_t zero_piece_bytes = size_t{64} << 10;
  // Where the writer object lives (object_heap.h); none: the C++ heap.
  alloc::ObjectHeap* object_heap = nullptr;
  // Payloads longer than this go in fragments of at most this many bytes
  // (tests lower it; at most kMaxFragmentBytes).
  size_t fragment_bytes = kMaxFragmentBytes;
};

class WalWriter : public alloc::HeapObject {
  struct Token {
    explicit Token() = default;
  };

 public:
  // Creates `path` (an existing file is cut to the header's length) and
  // writes the file header. Neither the file nor the directory entry is
  // synced: the first Sync() makes the header durable, the caller syncs
  // the directory.
  static Status Create(Env* env, const std::string& path, uint64_t log_number,
                       const WalWriterOptions& options, std::unique_ptr<WalWriter>* writer);

  // Use Create(); public only for std::make_unique (Token is private).
  WalWriter(Token, std::unique_ptr<File> file, uint64_t log_number,
            const WalWriterOptions& options);
  ~WalWriter();
  WalWriter(const WalWriter&) = delete;
  WalWriter& operator=(const WalWriter&) = delete;

  // Appends one record (a whole commit group's batch), preceded by a sync
  // mark when the log was synced since the last one; a payload longer than
  // a record goes in fragments, written one after the other. Not durable
  // until Sync(). InvalidArgument (writer still usable) for a payload over
  // kMaxCommitBytes. Any I/O error poisons the writer: every later
  // AddRecord/Sync returns that error, and the log must be replaced, because
  // part of the record may be in the file.
  //
  // `sync_next`: the caller calls Sync() right after. The record is then
  // written with pwrite even where it could be stored through the mapping:
  // the sync's writeback would write-protect a mapped page again (a TLB
  // shootdown across every CPU the process runs on) and the next store
  // would fault it back in, which together cost more than the system call.
  Status AddRecord(std::string_view payload, bool sync_next = false);
  // fdatasync. A failure poisons the writer too: after a failed fsync the
  // kernel may have dropped the dirty pages, so nothing unsynced can be trusted.
  Status Sync();
  // Whether an I/O error has poisoned the writer: only then may the file
  // hold part or all of a record that AddRecord or Sync reported as failed.
  // Other errors (a record over the limit, no memory to assemble it) come
  // before anything is written and leave the file as it was.
  bool poisoned() const { return !status_.ok(); }
  // Bytes in the file that belong to complete records (header included).
  uint64_t size() const { return size_.load(std::memory_order_acquire); }
  uint64_t log_number() const { return log_number_; }
  // Closes the file; idempotent. Later AddRecord/Sync return Closed.
  Status Close();

 private:
  std::unique_ptr<File> file_;
  const uint64_t log_number_;
  const uint64_t seed_;
  const bool compression_;
  const size_t fragment_bytes_;
  // Grows the zero-filled region to cover at least `end`.
  Status Preallocate(uint64_t end);
  // AddRecord for a payload over fragment_bytes_: each fragment written with
  // pwrite (they are larger than the mapped window).
  Status AddFragments(std::string_view payload);
  // Stores `record` at `at` (inside the zero-filled region) through the
  // window, moving the window forward if needed; false if it cannot.
  bool StoreMapped(uint64_t at, std::string_view record);

  const size_t preallocate_bytes_;
  const size_t drop_behind_bytes_;
  const size_t zero_piece_bytes_;
  uint64_t allocated_ = 0;                // the file's zero-filled length
  std::unique_ptr<MappedRegion> window_;  // maps [window_start_, + size)
  uint64_t window_start_ = 0;
  uint64_t dropped_to_ = 0;  // the window's pages before this are not mapped in
  bool map_unsupported_ = false;
  std::atomic<uint64_t> size_{0};
  // The log is durable up to synced_ (the last successful Sync); the last
  // sync mark written says marked_. AddRecord puts a mark in front of its
  // record while they differ.
  uint64_t synced_ = 0;
  uint64_t marked_ = 0;
  Status status_;  // sticky error
  bool closed_ = false;
  std::pmr::string buf_;
};

}  // namespace arenakv::wal

#endif  // ARENAKV_WAL_WAL_WRITER_H_
