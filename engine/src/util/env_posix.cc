// The POSIX file layer behind Env::Default(): pread/pwrite loops that survive
// EINTR and short transfers, fdatasync for Sync, directory fsync, and an
// exclusive lock that is both an flock(2) (other processes) and an entry in a
// process-wide table (other handles in this process).
//
// Thread safety: PosixEnv is stateless apart from the lock table, which is
// mutex-protected. A PosixFile may be read from many threads at once; writes
// to one file are serialized by the caller (see env.h).

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <limits>
#include <map>
#include <utility>

#include "arenakv/env.h"
#include "port/mutex.h"

namespace arenakv {
namespace {

Status ErrnoStatus(const std::string& what, const std::string& path, int err) {
  if (err == ENOENT) {
    std::string msg = what + " " + path + ": No such file or directory";
    return Status::NotFound(msg);
  }
  return Status::IOError(what + " " + path, err);
}

// File systems that overwrite allocated blocks in place. A store into a
// shared mapping cannot report an error: on a copy-on-write file system
// (btrfs, ZFS) writing back an overwritten page needs new blocks, and a full
// disk would turn the store into SIGBUS instead of an ENOSPC status. So
// mappings are offered only where that cannot happen; elsewhere callers use
// pwrite.
bool OverwritesInPlace(int fd) {
  struct statfs st;
  if (::fstatfs(fd, &st) != 0) return false;
  switch (static_cast<unsigned long>(st.f_type)) {
    case 0xEF53UL:      // ext2/3/4
    case 0x58465342UL:  // XFS
    case 0x01021994UL:  // tmpfs
      return true;
    default:
      return false;
  }
}

class PosixMappedRegion final : public MappedRegion {
 public:
  PosixMappedRegion(char* data, size_t size) : data_(data), size_(size) {}
  ~PosixMappedRegion() override { ::munmap(data_, size_); }
  char* data() override { return data_; }
  size_t size() const override { return size_; }
  using MappedRegion::DropPages;
  void DropPages(size_t offset, size_t length) override {
    static const size_t kPage = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    const size_t begin = (offset + kPage - 1) / kPage * kPage;
    // The mapping's end needs no rounding (the kernel rounds a length up).
    const size_t end =
        length >= size_ - std::min(offset, size_) ? size_ : (offset + length) / kPage * kPage;
    // For a shared mapping the stores stay in the file's pages (dirty ones
    // are written back as usual); only this process's mapping of them goes.
    if (begin < end) ::madvise(data_ + begin, end - begin, MADV_DONTNEED);
  }

 private:
  char* const data_;
  const size_t size_;
};

class PosixFile final : public File {
 public:
  PosixFile(std::string path, int fd, uint64_t size)
      : path_(std::move(path)), fd_(fd), end_(size) {}
  ~PosixFile() override { Close().IgnoreError(); }

  Status Read(uint64_t offset, size_t n, char* scratch, size_t* read) override {
    *read = 0;
    if (fd_ < 0) return Status::Closed("read " + path_ + ": file is closed");
    size_t done = 0;
    while (done < n) {
      ssize_t r = ::pread(fd_, scratch + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        *read = done;
        return Status::IOError("read " + path_ + " at " + std::to_string(offset + done), errno);
      }
      if (r == 0) break;  // end of file
      done += static_cast<size_t>(r);
    }
    *read = done;
    return Status::OK();
  }

  Status Write(uint64_t offset, std::string_view data) override {
    if (fd_ < 0) return Status::Closed("write " + path_ + ": file is closed");
    return WriteAt(offset, data);
  }

  Status Append(std::string_view data) override {
    if (fd_ < 0) return Status::Closed("append " + path_ + ": file is closed");
    // pwrite at the cached end rather than O_APPEND: Linux ignores the offset
    // of pwrite on O_APPEND descriptors, which would break Write().
    return WriteAt(end_.load(std::memory_order_relaxed), data);
  }

  Status Sync() override {
    if (fd_ < 0) return Status::Closed("sync " + path_ + ": file is closed");
    int r;
    do {
      r = ::fdatasync(fd_);
    } while (r != 0 && errno == EINTR);
    if (r != 0) return Status::IOError("fdatasync " + path_, errno);
    return Status::OK();
  }

  Status Truncate(uint64_t size) override {
    if (fd_ < 0) return Status::Closed("truncate " + path_ + ": file is closed");
    int r;
    do {
      r = ::ftruncate(fd_, static_cast<off_t>(size));
    } while (r != 0 && errno == EINTR);
    if (r != 0) return Status::IOError("truncate " + path_, errno);
    end_.store(size, std::memory_order_relaxed);
    return Status::OK();
  }

  Status PunchHole(uint64_t offset, uint64_t length) override {
    if (fd_ < 0) return Status::Closed("punch hole " + path_ + ": file is closed");
    int r;
    do {
      r = ::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                      static_cast<off_t>(length));
    } while (r != 0 && errno == EINTR);
    if (r != 0) return Status::IOError("punch hole " + path_, errno);
    return Status::OK();
  }

  Status MapWritable(uint64_t offset, size_t length,
                     std::unique_ptr<MappedRegion>* region) override {
    if (fd_ < 0) return Status::Closed("map " + path_ + ": file is closed");
    if (offset % 4096 != 0 || length == 0) {
      return Status::InvalidArgument("map " + path_ + ": unaligned or empty range");
    }
    if (!OverwritesInPlace(fd_)) {
      return Status::NotSupported("map " + path_ + ": not on an overwrite-in-place file system");
    }
    void* p = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd_,
                     static_cast<off_t>(offset));
    if (p == MAP_FAILED) return Status::IOError("mmap " + path_, errno);
    *region = std::make_unique<PosixMappedRegion>(static_cast<char*>(p), length);
    return Status::OK();
  }

  Status MapReadOnly(size_t length, std::unique_ptr<MappedRegion>* region) override {
    if (fd_ < 0) return Status::Closed("map " + path_ + ": file is closed");
    if (length == 0) return Status::InvalidArgument("map " + path_ + ": empty range");
    void* p = ::mmap(nullptr, length, PROT_READ, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) return Status::IOError("mmap " + path_, errno);
    *region = std::make_unique<PosixMappedRegion>(static_cast<char*>(p), length);
    return Status::OK();
  }

  Status MapOver(void* addr, uint64_t offset, size_t length) override {
    if (fd_ < 0) return Status::Closed("map " + path_ + ": file is closed");
    if (offset % 4096 != 0 || length == 0 || reinterpret_cast<uintptr_t>(addr) % 4096 != 0) {
      return Status::InvalidArgument("map " + path_ + ": unaligned or empty range");
    }
    if (::mmap(addr, length, PROT_READ, MAP_SHARED | MAP_FIXED, fd_, static_cast<off_t>(offset)) !=
        MAP_FAILED) {
      return Status::OK();
    }
    const int err = errno;
    // A failed MAP_FIXED may already have unmapped the range: put memory
    // back and fill it from the copy, so that it holds what it held.
    if (::mmap(addr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
               0) != MAP_FAILED) {
      size_t got = 0;
      Status s = Read(offset, length, static_cast<char*>(addr), &got);
      if (s.ok() && got == length) return Status::IOError("mmap " + path_, err);
    }
    return Status::Corruption("mmap " + path_ + " failed and the memory under it was lost");
  }

  Status Size(uint64_t* size) override {
    if (fd_ < 0) return Status::Closed("stat " + path_ + ": file is closed");
    struct stat st;
    if (::fstat(fd_, &st) != 0) return Status::IOError("stat " + path_, errno);
    *size = static_cast<uint64_t>(st.st_size);
    return Status::OK();
  }

  Status Close() override {
    if (fd_ < 0) return Status::OK();
    int fd = fd_;
    fd_ = -1;
    // close(2) is not retried on EINTR: on Linux the descriptor is gone anyway.
    if (::close(fd) != 0 && errno != EINTR) return Status::IOError("close " + path_, errno);
    return Status::OK();
  }

  const std::string& path() const override { return path_; }

 private:
  Status WriteAt(uint64_t offset, std::string_view data) {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t r =
          ::pwrite(fd_, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        NoteWritten(offset, done);
        return Status::IOError("write " + path_ + " at " + std::to_string(offset + done), err);
      }
      if (r == 0) {
        // A write that makes no progress would loop forever; a full device is
        // the usual cause.
        NoteWritten(offset, done);
        return Status::IOError(
            "write " + path_ + " at " + std::to_string(offset + done) + " made no progress",
            ENOSPC);
      }
      done += static_cast<size_t>(r);
    }
    NoteWritten(offset, done);
    return Status::OK();
  }

  // Bytes that reached the file move the end even when the write failed
  // later, so the next Append does not leave a hole or overwrite them.
  void NoteWritten(uint64_t offset, size_t n) {
    uint64_t end = offset + n;
    if (end > end_.load(std::memory_order_relaxed)) end_.store(end, std::memory_order_relaxed);
  }

  const std::string path_;
  int fd_;
  std::atomic<uint64_t> end_;
};

// Locks held by this process, keyed by the locked file's identity so that two
// spellings of one path still collide. The pid makes entries inherited by a
// forked child count as not ours: the child must go through flock.
struct LockKey {
  dev_t dev;
  ino_t ino;
  bool operator<(const LockKey& o) const { return dev != o.dev ? dev < o.dev : ino < o.ino; }
};

class LockTable {
 public:
  // True if the key was free (and is now taken by this process).
  bool Insert(const LockKey& key) {
    port::MutexLock l(&mu_);
    pid_t self = ::getpid();
    auto it = held_.find(key);
    if (it != held_.end() && it->second == self) return false;
    held_[key] = self;
    return true;
  }
  void Erase(const LockKey& key) {
    port::MutexLock l(&mu_);
    auto it = held_.find(key);
    if (it != held_.end() && it->second == ::getpid()) held_.erase(it);
  }

 private:
  port::Mutex mu_;
  std::map<LockKey, pid_t> held_ GUARDED_BY(mu_);
};

LockTable& Locks() {
  static LockTable table;
  return table;
}

class PosixFileLock final : public FileLock {
 public:
  PosixFileLock(int fd, LockKey key) : fd_(fd), key_(key) {}
  ~PosixFileLock() override {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
    Locks().Erase(key_);
  }

 private:
  const int fd_;
  const LockKey key_;
};

// A LockShared lock: closing the descriptor drops it.
class SharedByteLock final : public FileLock {
 public:
  explicit SharedByteLock(int fd) : fd_(fd) {}
  ~SharedByteLock() override { ::close(fd_); }

 private:
  const int fd_;
};

int OpenRetrying(const std::string& path, int flags) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags, 0644);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

class PosixEnv final : public Env {
 public:
  Status OpenFile(const std::string& path, OpenMode mode, std::unique_ptr<File>* file) override {
    int flags = O_CLOEXEC;
    switch (mode) {
      case OpenMode::kReadOnly:
        flags |= O_RDONLY;
        break;
      case OpenMode::kReadWrite:
        flags |= O_RDWR;
        break;
      case OpenMode::kCreate:
        flags |= O_RDWR | O_CREAT;
        break;
      case OpenMode::kCreateTruncate:
        flags |= O_RDWR | O_CREAT | O_TRUNC;
        break;
    }
    // No access times: nothing reads them, and keeping them up to date is
    // a check on every read (about 3% of a point read that misses the
    // cache). Only the file's owner may ask; anyone else opens it as before.
    int fd = OpenRetrying(path, flags | O_NOATIME);
    if (fd < 0 && errno == EPERM) fd = OpenRetrying(path, flags);
    if (fd < 0) return ErrnoStatus("open", path, errno);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return Status::IOError("stat " + path, err);
    }
    if (S_ISDIR(st.st_mode)) {
      ::close(fd);
      return Status::IOError("open " + path, EISDIR);
    }
    *file = std::make_unique<PosixFile>(path, fd, static_cast<uint64_t>(st.st_size));
    return Status::OK();
  }

  Status CreateDir(const std::string& path) override {
    if (::mkdir(path.c_str(), 0755) == 0) return Status::OK();
    int err = errno;
    if (err == EEXIST) {
      struct stat st;
      if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return Status::OK();
      return Status::IOError("mkdir " + path + ": exists and is not a directory");
    }
    if (err == ENOENT) {
      // Only the last component is created, as mkdir(1) without -p does.
      return Status::NotFound("mkdir " + path + ": its parent directory does not exist");
    }
    return ErrnoStatus("mkdir", path, err);
  }

  bool FileExists(const std::string& path) override { return ::access(path.c_str(), F_OK) == 0; }

  Status GetChildren(const std::string& dir, std::vector<std::string>* names) override {
    names->clear();
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return ErrnoStatus("opendir", dir, errno);
    errno = 0;
    while (struct dirent* e = ::readdir(d)) {
      std::string_view name(e->d_name);
      if (name != "." && name != "..") names->emplace_back(name);
      errno = 0;
    }
    int err = errno;
    ::closedir(d);
    if (err != 0) return Status::IOError("readdir " + dir, err);
    return Status::OK();
  }

  Status DeleteFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return ErrnoStatus("unlink", path, errno);
    return Status::OK();
  }

  Status RenameFile(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return ErrnoStatus("rename", from + " to " + to, errno);
    }
    return Status::OK();
  }

  Status SyncDir(const std::string& dir) override {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("open directory", dir, errno);
    int r;
    do {
      r = ::fsync(fd);
    } while (r != 0 && errno == EINTR);
    int err = errno;
    ::close(fd);
    // Some file systems cannot fsync a directory (EINVAL); their entries are
    // as durable as they will get.
    if (r != 0 && err != EINVAL) return Status::IOError("fsync directory " + dir, err);
    return Status::OK();
  }

  // DestroyDB unlinks the lock file while it holds the lock. An opener that
  // opened the file before the unlink may get its flock after the release:
  // a lock on a file no longer at `path`, while a later opener creates and
  // locks a new one. So the lock counts only if `path` still names the
  // locked file; otherwise the attempt starts over on the new file.
  Status LockShared(const std::string& path, uint64_t byte,
                    std::unique_ptr<FileLock>* lock) override {
    if (byte > static_cast<uint64_t>(std::numeric_limits<off_t>::max())) {
      return Status::InvalidArgument("lock " + path + ": byte out of range");
    }
    int fd;
    do {
      fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return ErrnoStatus("open lock file", path, errno);
    // An open file description lock: owned by this descriptor, not by the
    // process, so two databases of one process hold and see their own.
    struct flock fl {};
    fl.l_type = F_RDLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = static_cast<off_t>(byte);
    fl.l_len = 1;
    int r;
    do {
      r = ::fcntl(fd, F_OFD_SETLK, &fl);
    } while (r != 0 && errno == EINTR);
    if (r != 0) {
      const int err = errno;
      ::close(fd);
      return Status::IOError("lock " + path, err);
    }
    *lock = std::make_unique<SharedByteLock>(fd);
    return Status::OK();
  }

  Status LowestSharedLock(const std::string& path, uint64_t first, uint64_t limit,
                          uint64_t* lowest) override {
    *lowest = limit;
    if (first >= limit) return Status::OK();
    int fd;
    do {
      fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return ErrnoStatus("open lock file", path, errno);
    // F_OFD_GETLK names one conflicting lock, not the lowest: narrow the
    // range below each one found until none is left.
    Status s;
    uint64_t end = limit;
    while (end > first) {
      struct flock fl {};
      fl.l_type = F_WRLCK;
      fl.l_whence = SEEK_SET;
      fl.l_start = static_cast<off_t>(first);
      fl.l_len = static_cast<off_t>(end - first);
      if (::fcntl(fd, F_OFD_GETLK, &fl) != 0) {
        s = Status::IOError("query locks of " + path, errno);
        break;
      }
      if (fl.l_type == F_UNLCK) break;
      const uint64_t at = std::max<uint64_t>(static_cast<uint64_t>(fl.l_start), first);
      *lowest = at;
      end = at;
    }
    ::close(fd);
    return s;
  }

  Status LockFile(const std::string& path, std::unique_ptr<FileLock>* lock) override {
    for (int attempt = 0;; ++attempt) {
      bool stale = false;
      Status s = LockFileOnce(path, lock, &stale);
      if (!stale) return s;
      if (attempt == 3) return Status::Busy(path + " is being replaced by another process");
    }
  }

 private:
  Status LockFileOnce(const std::string& path, std::unique_ptr<FileLock>* lock, bool* stale) {
    int fd;
    do {
      fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return ErrnoStatus("open lock file", path, errno);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return Status::IOError("stat " + path, err);
    }
    LockKey key{st.st_dev, st.st_ino};
    if (!Locks().Insert(key)) {
      ::close(fd);
      return Status::Busy(path + " is locked by another process or handle");
    }
    int r;
    do {
      r = ::flock(fd, LOCK_EX | LOCK_NB);
    } while (r != 0 && errno == EINTR);
    if (r != 0) {
      int err = errno;
      ::close(fd);
      Locks().Erase(key);
      if (err == EWOULDBLOCK) {
        return Status::Busy(path + " is locked by another process or handle");
      }
      return Status::IOError("flock " + path, err);
    }
    auto held = std::make_unique<PosixFileLock>(fd, key);
    struct stat now;
    if (::stat(path.c_str(), &now) != 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino) {
      *stale = true;  // `held` unlocks and closes the unlinked file
      return Status::OK();
    }
    *lock = std::move(held);
    return Status::OK();
  }
};

}  // namespace

std::shared_ptr<Env> Env::Default() {
  // Handed out as a shared_ptr so that holders keep it alive past static
  // destruction order.
  static const std::shared_ptr<Env> env = std::make_shared<PosixEnv>();
  return env;
}

}  // namespace arenakv
