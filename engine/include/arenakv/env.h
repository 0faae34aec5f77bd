// Env: the file layer arenakv does all its I/O through.
//
// The default Env is the POSIX file system. Tests and embedders may wrap it
// (Options::env) to inject faults (EIO, ENOSPC, short writes, failing fsync)
// or to count I/O. Every method returns a Status; none throws.
//
// Thread safety: an Env is used from many threads at once. A File may be read
// (Read) concurrently; writes to one File are serialized by the engine.

#ifndef ARENAKV_ENV_H_
#define ARENAKV_ENV_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "arenakv/status.h"

namespace arenakv {

// A writable shared mapping of part of a File (File::MapWritable). Stores
// into data() land in the file's page cache at once, so they survive the
// process being killed, exactly as a completed write(2) does; File::Sync()
// makes them durable (on Linux fdatasync also writes back mapped pages).
// Unmapped when destroyed.
class MappedRegion {
 public:
  MappedRegion() = default;
  MappedRegion(const MappedRegion&) = delete;
  MappedRegion& operator=(const MappedRegion&) = delete;
  virtual ~MappedRegion() = default;
  virtual char* data() = 0;
  virtual size_t size() const = 0;
  // Drops the pages this process has mapped, so that they no longer count
  // as its memory; the region stays usable (a later access maps them again
  // from the file's pages, stores made through a shared mapping included).
  virtual void DropPages() { DropPages(0, size()); }
  // The same for the whole pages in [offset, offset + length).
  virtual void DropPages(size_t offset, size_t length) {
    (void)offset;
    (void)length;
  }
};

class File {
 public:
  File() = default;
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  virtual ~File() = default;

  // Reads up to n bytes at offset into scratch; *read < n only at end of file.
  virtual Status Read(uint64_t offset, size_t n, char* scratch, size_t* read) = 0;
  // Writes all of data at offset (a short write is retried, then an error).
  virtual Status Write(uint64_t offset, std::string_view data) = 0;
  // Writes all of data at the end of the file.
  virtual Status Append(std::string_view data) = 0;
  // fdatasync: the file's data is on stable storage when this returns OK.
  virtual Status Sync() = 0;
  virtual Status Truncate(uint64_t size) = 0;
  // Gives the file system back the blocks of [offset, offset + length): reads
  // there return zeros, the file's size does not change. Optional (the
  // default says NotSupported); callers treat it as a hint.
  virtual Status PunchHole(uint64_t offset, uint64_t length) {
    (void)offset;
    (void)length;
    return Status::NotSupported("punch hole");
  }
  // Maps [offset, offset + length) of the file, which must already exist
  // (not past its end) with its blocks allocated (written), shared and
  // writable; offset is a multiple of 4096. Optional: the default says
  // NotSupported and callers fall back to Write. The POSIX Env maps only on
  // file systems that overwrite in place (ext4, XFS, tmpfs), where a store
  // into allocated blocks cannot fail for lack of space.
  // The caller must not store into the region after truncating the file
  // below its end, nor use it after Close().
  virtual Status MapWritable(uint64_t offset, size_t length,
                             std::unique_ptr<MappedRegion>* region) {
    (void)offset;
    (void)length;
    (void)region;
    return Status::NotSupported("map writable");
  }
  // Maps [offset, offset + length) of the file, read-only and shared, over
  // the memory at `addr` (page aligned), replacing it: the file holds a copy
  // of those bytes, and the memory is being moved out to it (a memtable
  // readers still hold, spilled to disk). On failure the memory at `addr`
  // holds what it held. The file must stay at least offset + length long
  // while the mapping exists. Optional: the default says NotSupported and
  // the memory stays where it is.
  virtual Status MapOver(void* addr, uint64_t offset, size_t length) {
    (void)addr;
    (void)offset;
    (void)length;
    return Status::NotSupported("map over memory");
  }
  // Maps [0, length) of the file read-only and shared: data() shows the
  // file's bytes as Read would, without a system call per read. The file
  // must stay at least `length` long while the mapping exists: a read past
  // its end is a SIGBUS, and so is an I/O error reading a page the OS does
  // not hold, which Read would have returned as a Status. Nothing may be
  // stored through data(). Optional: the default says NotSupported.
  virtual Status MapReadOnly(size_t length, std::unique_ptr<MappedRegion>* region) {
    (void)length;
    (void)region;
    return Status::NotSupported("map read-only");
  }
  virtual Status Size(uint64_t* size) = 0;
  virtual Status Close() = 0;
  virtual const std::string& path() const = 0;
};

// Held while a database is open; releasing it (destruction) unlocks.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

enum class OpenMode {
  kReadOnly,        // must exist
  kReadWrite,       // must exist
  kCreate,          // read-write, created when missing
  kCreateTruncate,  // read-write, created or emptied
};

class Env {
 public:
  virtual ~Env() = default;

  // The process-wide POSIX Env.
  static std::shared_ptr<Env> Default();

  virtual Status OpenFile(const std::string& path, OpenMode mode, std::unique_ptr<File>* file) = 0;
  virtual Status CreateDir(const std::string& path) = 0;  // OK if it exists
  virtual bool FileExists(const std::string& path) = 0;
  virtual Status GetChildren(const std::string& dir, std::vector<std::string>* names) = 0;
  virtual Status DeleteFile(const std::string& path) = 0;
  virtual Status RenameFile(const std::string& from, const std::string& to) = 0;
  // fsync of a directory, so that created/renamed entries are durable.
  virtual Status SyncDir(const std::string& dir) = 0;
  // An exclusive lock on `path` (created if missing): Busy when another
  // process, or another open database in this process, holds it.
  virtual Status LockFile(const std::string& path, std::unique_ptr<FileLock>* lock) = 0;

  // Reader locks: a shared lock on byte `byte` of the existing file `path`
  // (opened read-only, so a reader needs no write permission), held until
  // `lock` is destroyed; any number of holders, in any processes, share it,
  // and it does not conflict with LockFile. A read-only database holds one
  // at its checkpoint id so that the writer keeps that state's pages.
  // Optional: the default says NotSupported.
  virtual Status LockShared(const std::string& path, uint64_t byte,
                            std::unique_ptr<FileLock>* lock) {
    (void)path;
    (void)byte;
    (void)lock;
    return Status::NotSupported("shared locks");
  }
  // The lowest byte in [first, limit) of `path` on which a LockShared lock is
  // held, by any process; `limit` when there is none. Optional: the default
  // says NotSupported (callers then assume no reader).
  virtual Status LowestSharedLock(const std::string& path, uint64_t first, uint64_t limit,
                                  uint64_t* lowest) {
    (void)path;
    (void)first;
    (void)limit;
    *lowest = limit;
    return Status::NotSupported("shared locks");
  }
};

}  // namespace arenakv

#endif  // ARENAKV_ENV_H_
