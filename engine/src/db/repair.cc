// RepairDB: salvage a damaged database into a new one, then swap the files.
//
// The salvaged state is built as a database of its own in a work directory
// inside the damaged one (through the ordinary write path, so that it is
// checkpointed, checksummed and within the memory budget like any other),
// and only when it is complete are the damaged files moved aside and its
// files moved in. A failure or a stop before that leaves the database as it
// was, apart from the work directory, which the next repair clears.
#include <algorithm>
#include <cinttypes>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "arenakv/db.h"
#include "arenakv/write_batch.h"
#include "db/budget_split.h"
#include "db/filename.h"
#include "db/key_order.h"
#include "db/log_batch.h"
#include "tree/salvage.h"
#include "wal/wal_reader.h"

namespace arenakv {

namespace {

// The salvaged tree goes into the work database in batches of a 32nd of
// its memory budget (64 KiB to 4 MiB): a batch is held three times over
// while it commits (the batch, its log record, the memtable), and a fixed
// 4 MiB failed with MemoryLimit under the smallest budgets, where an
// embedder's database is most likely to live. A budget too small for the
// cache is refused when the work database opens.
size_t BatchBytes(const Options& o) {
  size_t budget = 0, share = 0;
  MemoryBudgetFor(o, &budget, &share).IgnoreError();
  return std::clamp(budget / 32, size_t{64} << 10, size_t{4} << 20);
}

class Repairer {
 public:
  Repairer(std::string path, const Options& options, RepairReport* report,
           bool (*progress)(uint64_t, uint64_t, void*), void* arg)
      : path_(std::move(path)),
        options_(options),
        env_(options.env ? options.env : Env::Default()),
        report_(report),
        progress_(progress),
        arg_(arg) {}

  Status Run() {
    if (!env_->FileExists(path_)) return Status::NotFound(path_ + ": no database there");
    std::unique_ptr<FileLock> lock;
    Status s = env_->LockFile(path_ + "/" + kLockFileName, &lock);
    if (!s.ok()) return s;
    std::string lost;
    if (ReadMarker(kRepairCompleteName, &lost).ok()) {
      // An earlier repair was stopped inside its swap: finish it.
      report_->lost.push_back("an interrupted repair was finished (its report was not kept)");
      return SwapFiles(lost);
    }
    s = ListLogs();
    if (s.ok()) s = OpenWorkDatabase();
    if (s.ok()) s = SalvageTree();
    if (s.ok()) s = ReplayLogs();
    if (s.ok()) s = FinishWorkDatabase();
    if (!s.ok()) {
      if (work_db_ != nullptr) work_db_->Close().IgnoreError();
      work_db_.reset();
      return s;
    }
    // From here the swap can always be finished: the marker says the
    // salvaged database is whole and where the originals go.
    lost = path_ + "/lost";
    for (int i = 2; env_->FileExists(lost); ++i) lost = path_ + "/lost-" + std::to_string(i);
    s = WriteMarker(kRepairCompleteName, lost);
    if (!s.ok()) return s;
    return SwapFiles(lost);
  }

 private:
  std::string Work() const { return path_ + "/" + kRepairDirName; }

  Status ListLogs() {
    std::vector<std::string> names;
    Status s = env_->GetChildren(path_, &names);
    if (!s.ok()) return s;
    for (const std::string& name : names) {
      uint64_t n;
      if (!ParseWalName(name, &n)) continue;
      const uint64_t bytes = FileBytes(path_ + "/" + name);
      logs_.push_back({n, name, bytes});
      total_ += bytes;
    }
    std::sort(logs_.begin(), logs_.end(),
              [](const Log& a, const Log& b) { return a.number < b.number; });
    data_bytes_ = FileBytes(path_ + "/" + kDataFileName);
    total_ += data_bytes_;
    return Status::OK();
  }

  uint64_t FileBytes(const std::string& file) {
    std::unique_ptr<File> f;
    uint64_t bytes = 0;
    if (env_->OpenFile(file, OpenMode::kReadOnly, &f).ok()) f->Size(&bytes).IgnoreError();
    return bytes;
  }

  bool Progress(uint64_t done) {
    return progress_ == nullptr || progress_(std::min(done, total_), total_, arg_);
  }

  Status OpenWorkDatabase() {
    // What an interrupted repair left (a swap that ended between deleting
    // its two markers left the second).
    env_->DeleteFile(Work() + "/" + kRepairOldMovedName).IgnoreError();
    Status s = DestroyDB(Work(), options_);
    if (!s.ok()) return s;
    Options o = options_;
    o.env = env_;
    o.read_only = false;
    o.create_if_missing = true;
    o.error_if_exists = true;
    return DB::Open(o, Work(), &work_db_);
  }

  Status Flush() {
    if (batch_.Count() == 0) return Status::OK();
    Status s = work_db_->Write(WriteOptions{}, &batch_);
    batch_.Clear();
    return s;
  }

  Status SalvageTree() {
    const std::string data = path_ + "/" + kDataFileName;
    if (!env_->FileExists(data)) {
      report_->lost.push_back(data + ": missing: only the logs were read");
      return Status::OK();
    }
    std::string order;
    Status s = KeyOrderName(options_.comparator, &order);
    if (!s.ok()) return s;
    s = tree::SalvageTree(
        env_.get(), data, order, KeyOrder(options_.comparator),
        [&](std::string_view key, std::string_view value) {
          Status ws = batch_.Put(key, value);
          if (ws.ok() && batch_.ApproximateSize() >= batch_bytes_) ws = Flush();
          return ws;
        },
        [&](uint64_t done, uint64_t) { return Progress(done); }, &tree_);
    if (s.ok()) s = Flush();
    if (!s.ok()) return s;
    report_->pages_read = tree_.pages_read;
    report_->pages_lost = tree_.pages_lost;
    for (std::string& line : tree_.lost) report_->lost.push_back(std::move(line));
    done_ = data_bytes_;
    return Status::OK();
  }

  // The logs the tree does not cover, in order; a commit the tree already
  // holds (its sequence at or below the tree's) is not applied again.
  Status ReplayLogs() {
    const uint64_t first_log = tree_.have_meta ? tree_.meta.wal_number : 0;
    const uint64_t covered = tree_.have_meta ? tree_.meta.last_sequence : 0;
    for (const auto& [number, name, bytes] : logs_) {
      const std::string file = path_ + "/" + name;
      if (number < first_log) {
        done_ += bytes;
        continue;
      }
      std::unique_ptr<wal::WalReader> reader;
      Status s = wal::WalReader::Open(env_.get(), file, number, &reader);
      if (s.IsCorruption()) {
        report_->lost.push_back(file + ": not read (" + s.ToString() + ")");
        done_ += bytes;
        continue;
      }
      if (!s.ok()) return s;
      reader->Salvage();
      s = ReplayLog(reader.get(), file, covered);
      if (!s.ok()) return s;
      const wal::WalReadResult& r = reader->result();
      if (r.skipped_bytes > 0) {
        report_->log_bytes_lost += r.skipped_bytes;
        report_->lost.push_back(file + ": " + std::to_string(r.skipped_bytes) + " bytes in " +
                                std::to_string(r.skipped_regions) +
                                " places passed over as damaged (the commits in them are lost)");
      }
      done_ += bytes;
      if (!Progress(done_)) return Stopped();
    }
    return Flush();
  }

  Status ReplayLog(wal::WalReader* reader, const std::string& file, uint64_t covered) {
    LogBatch record;
    for (;;) {
      std::string_view payload;
      bool eof = false;
      Status s = reader->ReadRecord(&payload, &eof);
      if (s.IsCorruption()) {
        // Damage the salvage could not pass (a broken run of fragments):
        // the rest of this log is lost.
        report_->lost.push_back(file + ": read stopped: " + s.ToString());
        return Status::OK();
      }
      if (!s.ok()) return s;
      if (eof) return Status::OK();
      s = record.SetContents(payload);
      if (!s.ok()) {
        report_->lost.push_back(file + ": a commit that does not decode: " + s.ToString());
        continue;
      }
      // A commit is applied whole: its ops into one batch of their own.
      s = Flush();
      if (s.ok()) {
        s = record.ForEach([&](uint64_t seq, mem::ValueType type, std::string_view key,
                               std::string_view value) {
          if (seq <= covered) return Status::OK();
          return type == mem::ValueType::kDeletion ? batch_.Delete(key) : batch_.Put(key, value);
        });
      }
      if (s.ok()) s = Flush();
      if (!s.ok()) return s;
      ++report_->log_records;
    }
  }

  Status FinishWorkDatabase() {
    if (!Progress(done_)) return Stopped();
    Status s = work_db_->Checkpoint();
    DBStats stats;
    if (s.ok()) s = work_db_->GetStats(&stats);
    if (s.ok()) report_->keys = stats.approximate_keys;  // exact right after a checkpoint
    Status c = work_db_->Close();
    work_db_.reset();
    return s.ok() ? c : s;
  }

  Status Stopped() const {
    return Status::Aborted("repair stopped before changing " + path_ + " (read " +
                           std::to_string(done_) + " of " + std::to_string(total_) + " bytes)");
  }

  Status WriteMarker(const char* name, const std::string& text) {
    std::unique_ptr<File> f;
    Status s = env_->OpenFile(Work() + "/" + name, OpenMode::kCreateTruncate, &f);
    if (s.ok()) s = f->Write(0, text);
    if (s.ok()) s = f->Sync();
    if (f != nullptr) {
      Status c = f->Close();
      if (s.ok()) s = c;
    }
    if (s.ok()) s = env_->SyncDir(Work());
    return s;
  }

  Status ReadMarker(const char* name, std::string* text) {
    std::unique_ptr<File> f;
    Status s = env_->OpenFile(Work() + "/" + name, OpenMode::kReadOnly, &f);
    uint64_t size = 0;
    if (s.ok()) s = f->Size(&size);
    if (!s.ok()) return s;
    text->assign(static_cast<size_t>(std::min<uint64_t>(size, 4096)), '\0');
    size_t got = 0;
    s = f->Read(0, text->size(), text->data(), &got);
    text->resize(got);
    return s;
  }

  // The damaged files go to `lost`, the salvaged ones take their place. A
  // step at a time, each marked, so that a repair run again after a crash
  // anywhere here finishes the swap instead of salvaging a half-swapped
  // directory (and an open refuses such a directory).
  Status SwapFiles(const std::string& lost) {
    Status s = env_->CreateDir(lost);
    if (!s.ok()) return s;
    report_->lost_dir = lost;
    auto move_db_files = [&](const std::string& from, const std::string& to) {
      std::vector<std::string> names;
      Status ms = env_->GetChildren(from, &names);
      for (const std::string& name : names) {
        uint64_t n;
        if (!ms.ok()) break;
        if (name == kDataFileName || ParseWalName(name, &n)) {
          ms = env_->RenameFile(from + "/" + name, to + "/" + name);
        }
      }
      return ms;
    };
    if (!env_->FileExists(Work() + "/" + kRepairOldMovedName)) {
      s = move_db_files(path_, lost);
      if (s.ok()) s = env_->SyncDir(lost);
      if (s.ok()) s = env_->SyncDir(path_);
      if (s.ok()) s = WriteMarker(kRepairOldMovedName, lost);
    }
    if (s.ok()) s = move_db_files(Work(), path_);
    if (s.ok()) s = env_->SyncDir(path_);
    // The markers go last: the complete one after the other.
    if (s.ok()) s = env_->DeleteFile(Work() + "/" + kRepairOldMovedName);
    if (s.ok()) s = env_->DeleteFile(Work() + "/" + kRepairCompleteName);
    if (s.ok()) s = DestroyDB(Work(), options_);
    return s;
  }

  const std::string path_;
  const Options& options_;
  const std::shared_ptr<Env> env_;
  RepairReport* const report_;
  bool (*const progress_)(uint64_t, uint64_t, void*);
  void* const arg_;
  struct Log {
    uint64_t number;
    std::string name;
    uint64_t bytes;  // as listed: progress counts them once
  };
  std::vector<Log> logs_;
  uint64_t data_bytes_ = 0;
  uint64_t total_ = 0, done_ = 0;
  tree::SalvageResult tree_;
  std::unique_ptr<DB> work_db_;
  WriteBatch batch_;
  const size_t batch_bytes_ = BatchBytes(options_);
};

}  // namespace

Status RepairDB(const std::string& path, const Options& options, RepairReport* report,
                bool (*progress)(uint64_t, uint64_t, void*), void* arg) {
  RepairReport scratch;
  if (report == nullptr) report = &scratch;
  *report = RepairReport();
  if (options.read_only) return Status::InvalidArgument("RepairDB: a read-only Options");
  try {
    Repairer repairer(path, options, report, progress, arg);
    return repairer.Run();
  } catch (const std::bad_alloc&) {
    return Status::MemoryLimit("RepairDB: out of memory");
  }
}

}  // namespace arenakv
