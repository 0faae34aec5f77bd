// DB::Backup: an online copy of a live database, as LMDB's mdb_env_copy and
// RocksDB's Checkpoint make one.
//
// While no checkpoint runs, nothing writes the data file's pages of the
// current tree (a checkpoint writes only into free space and switches the
// meta block last) and no log is deleted (only a checkpoint makes a log
// obsolete). So with the checkpoint mutex held, the data file up to the end
// the meta block records, the logs from the one that meta block names, and
// the active log up to its last complete record make a consistent state: the
// checkpoint plus a prefix of the commits after it. Writers go on appending
// to the active log past the captured end meanwhile.
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "db/db_impl.h"
#include "db/filename.h"
#include "util/sync_point.h"
#include "wal/wal_writer.h"

namespace arenakv {

namespace {
constexpr size_t kCopyChunkBytes = size_t{1} << 20;
}  // namespace

// What one backup has written, and how far it has come.
struct DBImpl::BackupCopy {
  BackupCopy(Env* e, const std::string& p, const BackupOptions& o) : env(e), path(p), options(o) {}
  Env* env;
  const std::string& path;
  const BackupOptions& options;
  bool made_dir = false;  // the directory did not exist before
  uint64_t done = 0, total = 0;
  std::vector<std::string> written;

  bool Stopped() const {
    return options.progress != nullptr && !options.progress(done, total, options.arg);
  }
  // A failed or stopped backup leaves nothing behind: the directory is as
  // it was (empty, or not there).
  void RemoveWritten() {
    for (const std::string& name : written) env->DeleteFile(path + "/" + name).IgnoreError();
    if (!made_dir) return;
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
};

Status DBImpl::Backup(const std::string& path, const BackupOptions& options) {
  port::ReaderLock l(&rw_);
  if (closed_) return Status::Closed("database is closed");
  if (options_.read_only) return ReadOnlyError();
  if (path.empty()) return Status::InvalidArgument("backup: empty path");
  BackupCopy copy{env_.get(), path, options};
  copy.made_dir = !env_->FileExists(path);
  if (!copy.made_dir) {
    std::vector<std::string> names;
    Status s = env_->GetChildren(path, &names);
    if (!s.ok()) return s;
    if (!names.empty()) return Status::InvalidArgument("backup: " + path + " is not empty");
  }
  Status s = env_->CreateDir(path);
  if (s.ok()) s = env_->SyncDir(ParentDir(path));
  try {
    if (s.ok()) s = CopyForBackup(&copy);
  } catch (const std::bad_alloc&) {
    s = Status::MemoryLimit("backup: out of memory");
  }
  if (!s.ok()) copy.RemoveWritten();
  return s;
}

Status DBImpl::CopyForBackup(BackupCopy* copy) {
  const std::string& path = copy->path;
  Status s;

  port::MutexLock cl(&checkpoint_mu_);
  backup_running_.store(true, std::memory_order_release);
  struct Done {
    std::atomic<bool>* flag;
    ~Done() { flag->store(false, std::memory_order_release); }
  } done{&backup_running_};
  uint64_t active_log = 0, active_end = 0;
  {
    port::MutexLock ml(&mu_);
    active_log = wal_->log_number();
    // The last commit group published, not the log's size: a record past
    // it may belong to a commit whose sync fails and that is cut again.
    active_end = published_wal_end_;
  }
  const tree::MetaState meta = tree_->meta();
  TEST_SYNC_POINT("DBImpl::Backup:Captured");
  // What to copy, and how much: the data file up to the meta block's end,
  // the logs from the one it names.
  std::vector<std::pair<std::string, uint64_t>> files{{kDataFileName, meta.file_bytes}};
  std::vector<std::string> names;
  s = env_->GetChildren(path_, &names);
  if (!s.ok()) return s;
  for (const std::string& name : names) {
    uint64_t n;
    if (!ParseWalName(name, &n) || n < meta.wal_number || n > active_log) continue;
    uint64_t bytes = active_end;
    if (n != active_log) {
      std::unique_ptr<File> f;
      s = env_->OpenFile(path_ + "/" + name, OpenMode::kReadOnly, &f);
      if (s.ok()) s = f->Size(&bytes);
      if (!s.ok()) return s;
    }
    files.emplace_back(name, bytes);
  }
  for (const auto& [name, bytes] : files) copy->total += bytes;
  for (const auto& [name, bytes] : files) {
    copy->written.push_back(name);
    s = CopyFile(path_ + "/" + name, bytes, path + "/" + name, copy);
    if (!s.ok()) return s;
  }
  return env_->SyncDir(path);
}

// Copies the first `bytes` of `from` into a new file `to`, synced.
Status DBImpl::CopyFile(const std::string& from, uint64_t bytes, const std::string& to,
                        BackupCopy* copy) {
  std::unique_ptr<File> in, out;
  Status s = env_->OpenFile(from, OpenMode::kReadOnly, &in);
  if (s.ok()) s = env_->OpenFile(to, OpenMode::kCreateTruncate, &out);
  if (!s.ok()) return s;
  std::string buffer;
  try {
    buffer.resize(static_cast<size_t>(std::min<uint64_t>(bytes, kCopyChunkBytes)));
  } catch (const std::bad_alloc&) {
    return Status::MemoryLimit("backup: no memory for a copy buffer");
  }
  for (uint64_t at = 0; at < bytes && s.ok();) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(bytes - at, buffer.size()));
    size_t got = 0;
    s = in->Read(at, want, buffer.data(), &got);
    if (s.ok() && got != want) {
      s = Status::IOError(from + ": shorter than expected (" + std::to_string(at + got) +
                          " bytes, " + std::to_string(bytes) + " expected)");
    }
    if (s.ok()) s = out->Write(at, std::string_view(buffer.data(), got));
    at += got;
    copy->done += got;
    if (s.ok() && copy->Stopped()) {
      s = Status::Aborted("backup stopped after " + std::to_string(copy->done) + " of " +
                          std::to_string(copy->total) + " bytes; the partial copy was removed");
    }
  }
  if (s.ok()) s = out->Sync();
  Status c = out->Close();
  if (s.ok()) s = c;
  return s;
}

}  // namespace arenakv
