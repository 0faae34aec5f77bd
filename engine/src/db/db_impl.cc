#include "db/db_impl.h"

#include <algorithm>
#include <cinttypes>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <memory_resource>
#include <new>

#include "arenakv/alloc/shared_budget.h"
#include "db/budget_rep.h"
#include "db/budget_split.h"
#include "db/db_iter.h"
#include "db/filename.h"
#include "db/key_order.h"
#include "db/snapshot_impl.h"
#include "db/spill_file.h"
#include "db/transaction_impl.h"
#include "mem/merging_iterator.h"
#include "tree/read_epoch.h"
#include "util/background_pool.h"
#include "util/sync_point.h"
#include "wal/wal_format.h"
#include "wal/wal_reader.h"

namespace arenakv {

namespace {

constexpr size_t kMaxGroupBytes = size_t{1} << 20;
// A checkpoint that ran out of memory is tried again after this long, then
// after twice as long each time it fails again, up to the maximum.
constexpr int64_t kCheckpointRetryNs = 20'000'000;
// How long a writer waits, past the memtables' share, for a checkpoint that
// is short of memory, before it gets MemoryLimit.
constexpr int64_t kMaxMemoryStallNs = 2'000'000'000;
// The freeze threshold never drops below this, however much readers pin.
constexpr size_t kMinFreezeBytes = size_t{1} << 20;
constexpr int64_t kMaxCheckpointRetryNs = 1'000'000'000;

// I/O errors and corruption met by a write or a checkpoint stop every later
// write: the page cache and the log can no longer be trusted to match.
Status ReadOnlyUntilReopened(const Status& s) {
  const std::string msg = s.message() + "; the database is read-only until it is reopened";
  if (s.IsIOError()) return Status::IOError(msg);
  if (s.IsCorruption()) return Status::Corruption(msg);
  return s;
}

}  // namespace

// A queued commit (or checkpoint request), on its caller's stack. Written by
// the leader under mu_. A writer waiting awake returns as soon as it sees
// `done`, without taking mu_, and its Writer is gone with it: `status` is
// written before `done` (release), and `done` is the last thing the leader
// touches of a writer that is not `sleeping`.
// A commit group being led: its members in queue order (writers that
// failed validation are left out) and the last writer it covers.
struct DBImpl::Group {
  // Members in a buffer of the leader's stack, the pool's memory only past
  // kInline of them: a commit took a heap allocation for its group of one.
  static constexpr size_t kInline = 16;
  explicit Group(std::pmr::memory_resource* upstream)
      : mr(inline_members, sizeof(inline_members), upstream) {
    members.reserve(kInline);
  }
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  alignas(Writer*) std::byte inline_members[kInline * sizeof(Writer*)];
  std::pmr::monotonic_buffer_resource mr;
  std::pmr::vector<Writer*> members{&mr};  // bounded by the queue length
  Writer* last = nullptr;
  bool sync = false;
  uint64_t count = 0;
  size_t bytes = 0;
};

struct DBImpl::Writer {
  explicit Writer(port::Mutex* mu) : cv(mu) {}
  const CommitRequest* req = nullptr;       // null: a checkpoint or range delete
  const tree::EraseRange* erase = nullptr;  // a range delete (DeleteRange)
  std::atomic<bool> done{false};
  Status status;
  port::CondVar cv;
  bool sleeping = false;  // in cv.Wait (under mu_): the leader must Signal
  // Set (under mu_) when the writer becomes the front of the queue, for a
  // writer still waiting awake.
  std::atomic<bool> signalled{false};
};

// ---------------------------------------------------------------- open/close

Status DB::Open(const Options& options, const std::string& path, std::unique_ptr<DB>* db) {
  db->reset();
  if (path.empty()) return Status::InvalidArgument("empty database path");
  {
    // Half-way through RepairDB's file swap, the directory holds neither
    // database whole: opening would serve (or create) a state that never
    // existed. Running the repair again finishes the swap.
    std::shared_ptr<Env> env = options.env ? options.env : Env::Default();
    if (env->FileExists(path + "/" + kRepairDirName + "/" + kRepairCompleteName)) {
      return Status::Corruption(path +
                                ": a repair was interrupted while it swapped the files; "
                                "run RepairDB (kvtool --repair) again to finish it");
    }
  }
  // Beside a writer, a read-only open can lose a race: a checkpoint between
  // its reading the meta block and the logs deletes logs it was to read.
  // It opens again on the newer state, a few times at most.
  constexpr int kReadOnlyAttempts = 4;
  std::unique_ptr<DBImpl> impl;
  Status s;
  for (int attempt = 1;; ++attempt) {
    // The database's objects go in a heap of their own, unmapped once the
    // last of them is freed (object_heap.h); without one, the C++ heap.
    // The DBImpl's block holds the heap from here on.
    alloc::ObjectHeap* heap = alloc::ObjectHeap::Create();
    try {
      impl.reset(new (heap) DBImpl(options, path));
      if (heap != nullptr) heap->Unref();
      heap = nullptr;
      s = impl->OpenImpl();
    } catch (const std::bad_alloc&) {
      if (heap != nullptr) heap->Unref();  // DBImpl was not made
      s = Status::MemoryLimit(path + ": out of memory while opening");
    }
    const bool lost_race =
        s.IsCorruption() || s.IsIOError() ||
        (s.IsNotFound() && s.message().find("no database at") == std::string::npos);
    if (s.ok() || !options.read_only || !lost_race || attempt == kReadOnlyAttempts) break;
    impl.reset();
  }
  if (!s.ok()) return s;  // impl's destructor releases whatever was acquired
  *db = std::move(impl);
  return Status::OK();
}

DBImpl::DBImpl(const Options& options, std::string path)
    : options_(options),
      path_(std::move(path)),
      env_(options.env ? options.env : Env::Default()),
      writers_(ObjectMemory()) {}

std::pmr::memory_resource* DBImpl::ObjectMemory() const {
  return alloc::ResourceOf(alloc::HeapObject::HeapOf(this));  // made by new, in DB::Open
}

DBImpl::~DBImpl() { Close().IgnoreError(); }

std::string DBImpl::WalPath(uint64_t number) const {
  char name[64];
  std::snprintf(name, sizeof(name), "/wal-%06" PRIu64 ".log", number);
  return path_ + name;
}

Status DBImpl::OpenImpl() {
  if (options_.page_bytes < 1024 || options_.page_bytes > (size_t{1} << 20)) {
    return Status::InvalidArgument("page_bytes must be between 1 KiB and 1 MiB");
  }
  Status os = KeyOrderName(options_.comparator, &key_order_);
  if (!os.ok()) return os;  // refused before anything is created
  order_ = KeyOrder(options_.comparator);
  size_t min_share = 0;
  Status bs = MemoryBudgetFor(options_, &budget_bytes_, &min_share);
  if (!bs.ok()) return bs;  // refused before anything is created
  const bool dir_exists = env_->FileExists(path_);
  if (options_.read_only) return OpenReadOnly();
  if (!dir_exists) {
    if (!options_.create_if_missing) {
      return Status::InvalidArgument(path_ + " does not exist (create_if_missing is false)");
    }
    Status s = env_->CreateDir(path_);
    // The new directory's entry in its parent is durable only once the
    // parent is synced: without it a power cut can take the whole database.
    if (s.ok()) s = env_->SyncDir(ParentDir(path_));
    if (!s.ok()) return s;
  }
  Status s = env_->LockFile(path_ + "/" + kLockFileName, &lock_);
  if (!s.ok()) return s;
  // Left by a crash between creating the spill file and unlinking it.
  const std::string spill_path = path_ + "/" + SpillFile::kFileName;
  if (env_->FileExists(spill_path)) {
    s = env_->DeleteFile(spill_path);
    if (!s.ok()) return s;
  }
  const std::string data_path = path_ + "/" + kDataFileName;
  const bool exists = env_->FileExists(data_path);
  if (exists && options_.error_if_exists) {
    return Status::InvalidArgument(path_ + " already exists (error_if_exists is true)");
  }
  if (!exists && !options_.create_if_missing) {
    return Status::InvalidArgument(data_path + " does not exist (create_if_missing is false)");
  }

  s = OpenTree(data_path, exists);
  if (!s.ok()) return s;
  uint64_t max_wal = 0;
  s = Recover(&max_wal);
  if (!s.ok()) return s;
  if (!exists) {
    s = env_->SyncDir(path_);
    if (!s.ok()) return s;
  }
  return Status::OK();
}

// No file is created, written or deleted: no LOCK, no log, no cut tail.
Status DBImpl::OpenReadOnly() {
  const std::string data_path = path_ + "/" + kDataFileName;
  if (!env_->FileExists(data_path)) {
    return Status::NotFound("no database at " + path_ + " (" + kDataFileName +
                            " is missing; a read-only open creates nothing)");
  }
  Status s = OpenTree(data_path, /*exists=*/true);
  if (!s.ok()) return s;
  uint64_t max_wal = 0;
  s = Recover(&max_wal);
  if (s.ok()) HoldTreeState();
  return s;
}

// A read-only open asks the writers to keep the pages of the state it
// opened: a shared lock on byte kReaderLockBase + its checkpoint id of LOCK,
// which writers look for before they reuse pages (TreeOptions::
// lowest_reader). The lock counts only if no checkpoint committed before it
// was taken: a writer that released the state's pages did so after the
// next checkpoint. Files of format 4 on are written only by writers that
// look. Without the lock (no LOCK file, an Env without shared locks, an
// older file, a lost race) every page read checks that the state is still
// the newest, as before, and reads fail with Busy once it is not.
void DBImpl::HoldTreeState() {
  const tree::MetaState m = tree_->meta();
  if (m.version < 4) return;
  std::unique_ptr<FileLock> held;
  if (!env_->LockShared(path_ + "/" + kLockFileName, kReaderLockBase + m.checkpoint_id, &held)
           .ok()) {
    return;
  }
  TEST_SYNC_POINT("DBImpl::HoldTreeState:Locked");
  if (!tree_->CheckStateCurrent().ok()) return;  // `held` unlocks
  lock_ = std::move(held);
  tree_->SetStateHeld();
}

// The pool, the arenas and the tree, over an existing or a new data file.
Status DBImpl::OpenTree(const std::string& data_path, bool exists) {
  alloc::PoolOptions po;
  po.name = path_;
  // A small reserve of free segments serves cache churn; anything beyond goes
  // back to the OS, so a finished transaction leaves no resident residue.
  po.retain_bytes = size_t{2} << 20;
  // Past one 2 MiB chunk of a size class (see PoolOptions): caches and
  // memtables past it take far fewer TLB misses and page faults (a churn
  // cycle of 40K puts 4-9% faster than from the fifth chunk), while a small
  // database (an idle tenant's memtable) keeps 4 KiB pages. Under a shared
  // budget from the fifth: a partly used huge page is resident whole,
  // beyond what the budget counts, and a thousand tenants have many.
  po.huge_pages_after_chunks = options_.memory_budget != nullptr ? 4 : 1;
  po.budget_bytes = budget_bytes_;
  po.object_heap = alloc::HeapObject::HeapOf(this);
  if (options_.memory_budget != nullptr) {
    po.shared_budget = options_.memory_budget->rep()->shared;
    if (options_.memory_budget_bytes == 0) po.budget_bytes = SIZE_MAX;  // the shared one binds
  }
  Status s = alloc::SegmentPool::Create(po, &pool_);
  if (!s.ok()) return s;
  counters_.pool = pool_;
  s = alloc::Arena::Create(pool_, {.name = "db", .kind = alloc::ArenaKind::kShared}, &arena_);
  if (!s.ok()) return s;
  scratch_mr_.emplace(pool_.get());
  leader_mr_.emplace(&*scratch_mr_);
  // Handles are charged to the budget from now on (none exists yet).
  registry_ = std::allocate_shared<HandleRegistry>(
      std::pmr::polymorphic_allocator<HandleRegistry>(ObjectMemory()), pool_.get());

  s = CheckDataFileBesideLogs(data_path);
  if (!s.ok()) return s;
  tree::TreeOptions to;
  to.page_bytes = options_.page_bytes;
  to.cache_bytes = options_.cache_bytes;
  to.compression = options_.compression;
  to.read_only = options_.read_only;
  to.held_memory = &*scratch_mr_;
  to.order = order_;
  to.comparator = key_order_;
  to.map_reads = options_.map_reads;
  alloc::SegmentPool* pool = pool_.get();
  to.map_budget.charge = [pool](size_t bytes) { return pool->ChargeIfRoom(bytes).ok(); };
  to.map_budget.uncharge = [pool](size_t bytes) { pool->Uncharge(bytes); };
  if (!options_.read_only) {
    to.lowest_reader = [env = env_.get(), lock = path_ + "/" + kLockFileName](uint64_t limit) {
      uint64_t lowest = kReaderLockBase + limit;
      // Without the query (an Env without shared locks) there are no readers
      // to keep pages for: read-only opens then check each page they read.
      if (!env->LowestSharedLock(lock, kReaderLockBase, kReaderLockBase + limit, &lowest).ok()) {
        return limit;
      }
      return lowest - kReaderLockBase;
    };
  }
  s = tree::BTree::Open(env_.get(), data_path, options_.create_if_missing, to, arena_.get(),
                        &tree_);
  if (tree::IsNotADataFile(s) && exists) {
    // The tree calls a file that is not its format an invalid argument; in a
    // database directory it is the database's own file, damaged. A file in
    // another key order stays InvalidArgument: it is whole, opened wrongly.
    return Status::Corruption(s.message());
  }
  if (!s.ok()) return s;
  // Under memory pressure the cache shrinks first; only then do allocations fail.
  tree::BTree* tree = tree_.get();
  pool_->SetReclaimCallback([tree](size_t wanted) { return tree->EvictForReclaim(wanted); });
  if (options_.memory_budget != nullptr) JoinSharedBudget();
  if (options_.read_ahead) read_ahead_.reset(new (pool_->object_heap()) tree::ReadAhead(tree));
  return Status::OK();
}

// The data file is created and synced, with its directory entry, before the
// first log; logs holding records beside a missing or empty data file mean
// the checkpointed state they build on is lost. Creating it anew would serve
// the logs' tail as the whole database.
Status DBImpl::CheckDataFileBesideLogs(const std::string& data_path) {
  uint64_t data_bytes = 0;
  if (env_->FileExists(data_path)) {
    std::unique_ptr<File> f;
    Status s = env_->OpenFile(data_path, OpenMode::kReadOnly, &f);
    if (s.ok()) s = f->Size(&data_bytes);
    if (!s.ok()) return s;
    if (data_bytes > 0) return Status::OK();
  }
  std::vector<std::string> names;
  Status s = env_->GetChildren(path_, &names);
  if (!s.ok()) return s;
  for (const auto& name : names) {
    uint64_t n;
    bool holds = false;
    if (!ParseWalName(name, &n)) continue;
    s = LogHoldsRecords(path_ + "/" + name, n, &holds);
    if (!s.ok()) return s;
    if (holds) {
      return Status::Corruption(
          data_path + " is " +
          (data_bytes == 0 && env_->FileExists(data_path) ? "empty" : "missing") + " but " + name +
          " holds commits: the checkpointed data is lost");
    }
  }
  return Status::OK();
}

Status DBImpl::Recover(uint64_t* max_wal_number) {
  const tree::MetaState meta = tree_->meta();
  TEST_SYNC_POINT("DBImpl::Recover:MetaRead");
  std::vector<std::string> names;
  Status s = env_->GetChildren(path_, &names);
  if (!s.ok()) return s;
  std::vector<uint64_t> wals;
  for (const auto& name : names) {
    uint64_t n;
    if (ParseWalName(name, &n)) {
      if (n >= meta.wal_number) {
        wals.push_back(n);
      } else {
        // Covered by the tree (a read-only open leaves it to the writer).
        if (!options_.read_only) env_->DeleteFile(path_ + "/" + name).IgnoreError();
      }
    }
  }
  std::sort(wals.begin(), wals.end());
  // The checkpoint names the first log it does not cover; that log is created
  // (and its directory entry synced) before the meta block is written, and
  // deleted only after a newer meta is durable. Missing, it means the meta
  // block in force is not the newest one (the newest is damaged) and the
  // changes between them are gone: refuse rather than serve a past state.
  if (meta.checkpoint_id > 0 && meta.wal_number > 0 &&
      (wals.empty() || wals.front() != meta.wal_number)) {
    char name[64];
    std::snprintf(name, sizeof(name), "wal-%06" PRIu64 ".log", meta.wal_number);
    return Status::Corruption(path_ + "/" + kDataFileName + ": checkpoint " +
                              std::to_string(meta.checkpoint_id) + " needs " + name +
                              ", which is missing (a newer meta block may be damaged)");
  }
  for (size_t i = 1; i < wals.size(); ++i) {
    if (wals[i] != wals[i - 1] + 1) {
      return Status::Corruption(path_ + ": write-ahead log " + std::to_string(wals[i - 1] + 1) +
                                " is missing between " + std::to_string(wals[i - 1]) + " and " +
                                std::to_string(wals[i]));
    }
  }

  const uint64_t first_wal = wals.empty() ? std::max<uint64_t>(meta.wal_number, 1) : wals.front();
  Replay replay;
  replay.last_seq = meta.last_sequence;
  s = mem::MemTable::Create(arena_.get(), first_wal, {.order = order_}, &replay.table);
  if (!s.ok()) return s;
  replay.table_wal = first_wal;
  // The last log holding a record: only it (and the empty ones after it)
  // may have been torn by a crash.
  size_t last_with_records = 0;
  for (size_t j = wals.size(); j-- > 1;) {
    bool holds = false;
    s = LogHoldsRecords(WalPath(wals[j]), wals[j], &holds);
    if (!s.ok()) return s;
    if (holds) {
      last_with_records = j;
      break;
    }
  }
  for (size_t i = 0; i < wals.size(); ++i) {
    replay.later_records = i < last_with_records;
    s = ReplayWal(WalPath(wals[i]), wals[i], &replay);
    if (!s.ok()) return s;
  }
  *max_wal_number = wals.empty() ? 0 : wals.back();
  replay_checkpoints_ = replay.checkpoints;
  recovery_cut_ = replay.cut;
  // What was replayed may still be only in the page cache (the process that
  // wrote it crashed, or its close could not checkpoint): it is made
  // durable before a new log takes commits, or a power loss could keep a
  // synced commit of the new log and lose older ones of these.
  if (replay.records > 0 && !options_.read_only) {
    for (uint64_t n : wals) {
      if (!env_->FileExists(WalPath(n))) continue;  // checkpointed while replaying
      s = SyncLogFile(WalPath(n));
      if (!s.ok()) return s;
    }
  }

  const uint64_t reuse =
      replay.records == 0 && !options_.read_only ? ReuseEmptyLogs(wals, max_wal_number) : 0;

  port::MutexLock l(&mu_);
  last_sequence_ = replay.last_seq;
  next_wal_number_ =
      reuse != 0 ? reuse : std::max<uint64_t>({meta.wal_number, *max_wal_number + 1, 1});
  std::shared_ptr<Version> v;
  s = Version::Make(&counters_, &v);
  if (!s.ok()) return s;
  v->mem = std::make_shared<MemRef>(std::move(replay.table), replay.table_wal, &counters_);
  v->tree = std::make_shared<TreeRoot>(tree_.get(), tree_->meta().root, &counters_);
  current_ = std::move(v);
  StartHistoryLocked();
  PublishReadViewLocked();
  if (options_.read_only) return Status::OK();  // no log: nothing is written
  return RotateWalLocked();
}

// When no log holds a record, the first one is written again from its
// header instead of a new log being created after them: an open that writes
// nothing leaves no file behind, and opens do not slow down as empty logs
// pile up. The others go first, from the last down, so that a crash between
// two deletions still leaves an unbroken run of logs. Returns the log to
// reuse, or 0 when a deletion failed: a new log then follows the last one
// left (*max_wal_number), so that the numbering has no gap.
uint64_t DBImpl::ReuseEmptyLogs(const std::vector<uint64_t>& wals, uint64_t* max_wal_number) {
  if (wals.empty()) return 0;
  for (size_t i = wals.size(); i-- > 1;) {
    if (!env_->DeleteFile(WalPath(wals[i])).ok()) {
      *max_wal_number = wals[i];
      return 0;
    }
  }
  return wals.front();
}

// Whether the log at `path` holds at least one intact record (its file may
// be longer than its header without any: the writer preallocates zeros).
Status DBImpl::LogHoldsRecords(const std::string& path, uint64_t number, bool* holds) {
  *holds = false;
  std::unique_ptr<wal::WalReader> reader;
  Status s = wal::WalReader::Open(env_.get(), path, number, &reader, &*scratch_mr_);
  if (!s.ok()) return s.IsCorruption() ? Status::OK() : s;  // its own replay will say
  std::string_view record;
  bool eof = false;
  s = reader->ReadRecord(&record, &eof);
  *holds = s.ok() && !eof;
  return s.IsCorruption() ? Status::OK() : s;
}

// Recovery works under the budget the database ran with: a memtable that
// reaches the freeze threshold is checkpointed into the tree before the
// replay goes on, instead of every log landing in one memtable. The record
// buffers come from the pool and go back to it.
Status DBImpl::ReplayWal(const std::string& file, uint64_t number, Replay* replay) {
  std::unique_ptr<wal::WalReader> reader;
  Status s = wal::WalReader::Open(env_.get(), file, number, &reader, &*scratch_mr_);
  if (!s.ok()) return s;
  LogBatch batch(&*scratch_mr_);
  // Only a checkpoint changes what the threshold depends on (the cache's
  // use, what is pinned): taken again after each, not for every record.
  size_t threshold = ReplayThreshold();
  for (;;) {
    std::string_view record;
    bool eof = false;
    s = reader->ReadRecord(&record, &eof);
    if (!s.ok()) return s;
    if (eof) break;
    s = batch.SetContents(record);
    if (!s.ok()) return Status::Corruption(file + ": " + s.message());
    ++replay->records;
    // A read-only open keeps every replayed change in memory. As on the
    // write path, what the memtable costs the budget (its arena's blocks)
    // with the record at hand.
    if (!options_.read_only && replay->table->entries() > 0 &&
        replay->table->ArenaBytes() + CommitCost(batch) >= threshold) {
      s = CheckpointReplayed(number, replay);
      if (!s.ok()) return s;
      threshold = ReplayThreshold();
    }
    s = ApplyReplayed(batch, replay);
    if (s.IsMemoryLimit() && replay->table->entries() > 0 && !options_.read_only) {
      // The part applied goes to the tree (the log still holds the rest,
      // and ops at or below the new floor are skipped), then the record
      // is applied again in an empty memtable.
      s = CheckpointReplayed(number, replay);
      if (s.ok()) threshold = ReplayThreshold();
      if (s.ok()) {
        s = ApplyReplayed(batch, replay);
      } else if (s.IsMemoryLimit()) {
        return Status::MemoryLimit(file + ": the memory budget is too small to replay it (" +
                                   s.message() + "); reopen with a larger memory_budget_bytes");
      }
    }
    if (s.IsMemoryLimit()) {
      return Status::MemoryLimit(file + ": a record of " + std::to_string(record.size()) +
                                 " bytes does not fit in the memory budget (" + s.message() +
                                 "); reopen with a larger memory_budget_bytes");
    }
    if (!s.ok()) return s;
  }
  replayed_last_log_ = number;
  replayed_last_end_ = reader->result().valid_bytes;
  if (reader->result().torn_tail) {
    // A log is synced before the next one is created, so only the last log
    // holding commits can have been torn by a crash. A torn log with
    // commits after it is damage: cutting it and replaying the later logs
    // would serve a state that never existed.
    if (replay->later_records) {
      return Status::Corruption(file + ": torn at offset " +
                                std::to_string(reader->result().valid_bytes) +
                                ", but later logs hold commits (a log is synced before the next "
                                "is created, so this is damage, not a crash)");
    }
    // A log without a header holds nothing: there is nothing to refuse.
    if (options_.wal_recovery == WalRecovery::kAbsoluteConsistency && reader->version() != 0) {
      return Status::Corruption(file + ": ends in a torn record at offset " +
                                std::to_string(reader->result().valid_bytes) +
                                " (what a crash leaves); wal_recovery is kAbsoluteConsistency, so "
                                "nothing was cut: open with kPointInTime to cut it there");
    }
    // Cut the tail so that nothing is ever appended after garbage (a
    // read-only open only stops there: the tail may be a writer's record
    // being stored).
    if (!options_.read_only) {
      s = wal::TruncateTornTail(env_.get(), file, number, reader->result().valid_bytes);
    }
    if (s.ok()) {
      const size_t slash = file.rfind('/');
      replay->cut = file.substr(slash == std::string::npos ? 0 : slash + 1) + " at offset " +
                    std::to_string(reader->result().valid_bytes);
    }
  }
  return s;
}

Status DBImpl::ApplyReplayed(const LogBatch& batch, Replay* replay) {
  const uint64_t floor = tree_->meta().last_sequence;
  mem::MemTable* table = replay->table.get();
  return batch.ForEach(
      [&](uint64_t seq, mem::ValueType type, std::string_view k, std::string_view v) -> Status {
        if (seq <= floor) return Status::OK();  // already in the tree
        Status s = table->Add(seq, type, k, v);
        if (s.ok()) replay->last_seq = std::max(replay->last_seq, seq);
        return s;
      });
}

size_t DBImpl::ReplayThreshold() {
  port::MutexLock l(&mu_);
  return FreezeThresholdLocked();
}

// Writes the replayed memtable into the tree. The log being replayed is only
// partly covered, so it stays the first log the new checkpoint needs.
Status DBImpl::CheckpointReplayed(uint64_t wal_number, Replay* replay) {
  std::unique_ptr<InternalIterator> changes = replay->table->NewIterator(UINT64_MAX);
  tree::CheckpointResult result(&*scratch_mr_);
  Status s;
  try {
    s = tree_->Checkpoint(changes.get(), std::max(replay->last_seq, tree_->meta().last_sequence),
                          wal_number, &result);
  } catch (const std::bad_alloc&) {
    s = Status::MemoryLimit("out of memory during a checkpoint at recovery");
  }
  changes.reset();
  if (!s.ok()) return s;
  tree_->ReleasePages(result.obsolete);  // nothing reads the old tree yet
  replay->table.reset();
  replay->checkpoints++;
  s = mem::MemTable::Create(arena_.get(), wal_number, {.order = order_}, &replay->table);
  if (!s.ok()) return s;
  replay->table_wal = wal_number;
  DeleteObsoleteWals(wal_number);
  return Status::OK();
}

Status DBImpl::RotateWalLocked() {
  // The number is used up only when its file exists: recovery treats a gap
  // in the numbering as a lost log.
  const uint64_t number = next_wal_number_;
  if (wal_ != nullptr && !final_freeze_) {
    // Commits in the old log must not be lost while a synced commit in the
    // new one survives: the old one is durable before the new one exists,
    // so a log that is not the last is never torn. A poisoned writer's file
    // was cut back to its last whole record; it is synced through a fresh
    // handle. If that fails, what the old log holds is unknown: no later
    // commit may be acknowledged on top of it. (Close's last freeze skips
    // this: no commit follows it, so the old log stays the last one holding
    // records, which recovery may cut; its synced commits are durable
    // already, and once the checkpoint covers it, it is deleted before its
    // pages are ever written back.)
    Status ss = wal_->poisoned() ? SyncLogFile(WalPath(wal_->log_number())) : wal_->Sync();
    if (!ss.ok()) {
      bg_error_ = ReadOnlyUntilReopened(
          Status::IOError("syncing " + WalPath(wal_->log_number()) + " before leaving it failed (" +
                          ss.ToString() + "); commits not yet synced may be lost"));
      return bg_error_;
    }
  }
  std::unique_ptr<wal::WalWriter> w;
  wal::WalWriterOptions wo;
  wo.compression = options_.compression;
  wo.preallocate_bytes = size_t{1} << 20;
  // The log's pages behind its records are outside every budget: a thousand
  // tenants that kept up to 32 KiB each held about 20 MiB at the peak of
  // their load (bench/tenants: 117 MiB before any was let go). Under a
  // shared budget they go a page at a time, over zeros written 16 KiB at a
  // time (see WalWriterOptions): 8 KiB at most stay, 17 MiB less at that
  // peak. Alone, every 16 KiB over 64 KiB zero writes: the syscalls would
  // cost a single database's churn cycle (open, 40K puts, close) a few
  // percent, for 32 KiB.
  if (options_.memory_budget != nullptr) {
    wo.drop_behind_bytes = 4096;
    wo.zero_piece_bytes = size_t{16} << 10;
  }
  wo.object_heap = pool_->object_heap();
  wo.memory = &*leader_mr_;  // only the group-commit leader writes
  Status s = wal::WalWriter::Create(env_.get(), WalPath(number), number, wo, &w);
  if (s.ok()) s = env_->SyncDir(path_);
  if (!s.ok()) return s;
  ++next_wal_number_;
  if (wal_ != nullptr) wal_->Close().IgnoreError();
  wal_ = std::move(w);
  published_wal_end_ = wal_->size();
  return Status::OK();
}

Status DBImpl::SyncLogFile(const std::string& path) {
  std::unique_ptr<File> f;
  Status s = env_->OpenFile(path, OpenMode::kReadWrite, &f);
  if (s.ok()) s = f->Sync();
  if (f != nullptr) {
    Status c = f->Close();
    if (s.ok()) s = c;
  }
  return s;
}

Status DBImpl::Close() {
  // A second caller waits for the first: memory is back when Close() returns.
  port::MutexLock close_lock(&close_mu_);
  // Point reads stop first: they take no lock, or rw_ shared only now and
  // then, and a stream of them would keep the writer lock below waiting
  // (rw_ prefers readers: seen as Closes of 5-30 s beside 4 readers).
  read_closed_.store(true, std::memory_order_seq_cst);
  TEST_SYNC_POINT("DBImpl::Close:ReadsClosed");
  {
    port::WriterLock l(&rw_);
    if (closed_) return Status::OK();
    closed_ = true;  // From here on every new call returns Closed.
  }
  TEST_SYNC_POINT("DBImpl::Close:Marked");
  // Wait for every lock-free read that may not have seen the mark.
  tree::epoch::WaitUntilSafe(tree::epoch::Retire());
  // Invalidate first: every iterator, snapshot and transaction drops what it
  // holds in the database (waiting for a call in flight on it to finish).
  registry_->CloseAll();
  if (read_ahead_ != nullptr) read_ahead_->Stop();
  {
    port::MutexLock l(&mu_);
    shutting_down_ = true;
    bg_cv_.SignalAll();
  }
  // No other database's reclaim posts work for this one from here on.
  LeaveSharedBudget();
  // Background work of this database that has not started never will; the
  // piece running (a checkpoint) finishes first.
  BackgroundPool::Default()->Cancel(this);
  if (options_.memory_budget != nullptr) EndBudgetRelease(false);  // cancelled before it ran
  TEST_SYNC_POINT("DBImpl::Close:Checkpoint");

  Status s;
  if (tree_ != nullptr && wal_ != nullptr) {
    bool clean;
    {
      port::MutexLock l(&mu_);
      clean = bg_error_.ok();
      // The final checkpoint cannot run: say why (the logs keep every
      // acknowledged commit for the next open).
      if (!clean) s = bg_error_;
    }
    if (clean) {
      port::MutexLock l(&mu_);
      final_freeze_ = true;
    }
    // Two rounds: a memtable frozen earlier may still wait for its checkpoint.
    for (int round = 0; clean && s.ok() && round < 2; ++round) {
      Writer w(&mu_);
      s = RunWriter(&w);                    // freeze the memtable...
      if (s.ok()) s = RunTreeCheckpoint();  // ...and checkpoint it
    }
  }
  Teardown();
  return s;
}

// A member of the shared budget frees its clean cache pages (and, when not
// the one allocating, gives its pool's free segments back to the OS, which
// is what returns them to the budget). Its use: cached point reads, block
// reads and commits, all counters that exist anyway.
void DBImpl::JoinSharedBudget() {
  tree::BTree* tree = tree_.get();
  alloc::SegmentPool* pool = pool_.get();
  budget_member_ = options_.memory_budget->rep()->Join(
      pool, path_,
      [tree, pool](size_t wanted, bool trim) {
        const size_t freed = tree->EvictForReclaim(wanted);
        if (trim) pool->Trim();
        return freed;
      },
      [this, tree] {
        return tree->cache()->Activity() + read_seq_.load(std::memory_order_relaxed);
      },
      [this] { return StartBudgetRelease(); });
}

// Once it returns no reclaim touches this database, and no release of it
// is posted any more.
void DBImpl::LeaveSharedBudget() {
  if (budget_member_ == nullptr) return;
  options_.memory_budget->rep()->Leave(budget_member_);
  budget_member_.reset();
}

size_t DBImpl::StartBudgetRelease() {
  // Below this a checkpoint costs more than the memory it gives back.
  constexpr size_t kMinReleaseBytes = size_t{256} << 10;
  const size_t bytes = memtable_bytes_hint_.load(std::memory_order_relaxed) +
                       frozen_bytes_hint_.load(std::memory_order_relaxed);
  if (options_.read_only || bytes < kMinReleaseBytes) return 0;
  if (budget_release_pending_.exchange(true)) return 0;
  options_.memory_budget->rep()->ReleaseStarted();
  // Asked by a checkpoint (its own allocation failed), a release does not
  // retry a checkpoint that failed for memory before its back-off: two
  // databases short of memory would otherwise retry each other's for good.
  const bool for_writer = !alloc::SharedBudget::ReleaseScope::Active();
  try {
    BackgroundPool::Default()->Post(this, [this, for_writer] { CheckpointForBudget(for_writer); });
  } catch (...) {  // no memory or no thread for it: the release ends here
    EndBudgetRelease(false);
    return 0;
  }
  return bytes;
}

void DBImpl::CheckpointForBudget(bool for_writer) {
  // The freeze takes a new memtable and the checkpoint some pages before
  // the frozen memtable gives its memory back: both may use the budget's
  // reserve, or a budget full of memtables could never free any.
  alloc::SharedBudget::ReleaseScope release;
  bool run = false;
  {
    port::MutexLock l(&mu_);
    if (!bg_error_.ok()) {
      // Read-only until reopened: nothing here will be checkpointed, so
      // the budget stops asking.
      memtable_bytes_hint_.store(0, std::memory_order_relaxed);
      frozen_bytes_hint_.store(0, std::memory_order_relaxed);
    } else if (!shutting_down_ && !backup_running_.load(std::memory_order_acquire)) {
      run = current_->imm.empty()
                ? FreezeForBudgetLocked()
                : !checkpoint_running_ && (for_writer || CheckpointRetryDueLocked());
    }
  }
  bool freed = false;
  if (run) {
    freed = RunTreeCheckpoint().ok();  // failures land in bg_error_
    pool_->Trim();
  }
  EndBudgetRelease(freed);
}

// With a commit group under way this database is being written: its own
// write path freezes and checkpoints it when it must, and waiting here
// behind a leader that may itself wait for memory would hold a background
// thread. (A frozen memtable is checkpointed whatever the writers do: a
// checkpoint already under way gives memory back by itself, and waiting for
// it could hold every background thread; one that ran out of memory, the
// others' checkpoints holding the reserve, runs again for a writer or
// reader that needs the memory now, or once due.)
bool DBImpl::FreezeForBudgetLocked() {
  if (!writers_.empty()) return false;
  Writer w(&mu_);
  writers_.push_back(&w);
  return WriteLocked(&w).ok();  // at the front: freezes at once
}

void DBImpl::EndBudgetRelease(bool freed) {
  if (budget_release_pending_.exchange(false)) {
    options_.memory_budget->rep()->ReleaseFinished(freed);
  }
}

Status DBImpl::ReadOnlyError() const {
  return Status::NotSupported(path_ + " is open read-only (Options::read_only)");
}

uint64_t DBImpl::BudgetReleaseMark() const {
  return options_.memory_budget != nullptr ? options_.memory_budget->rep()->ReleaseMark() : 0;
}

uint64_t DBImpl::BudgetFreedMark() const {
  return options_.memory_budget != nullptr ? options_.memory_budget->rep()->FreedMark() : 0;
}

bool DBImpl::CheckpointRetryDueLocked() const {
  return checkpoint_memory_error_.ok() ||
         YieldPolicy::NowNs() - checkpoint_memory_error_ns_ >= kCheckpointRetryNs ||
         ReleasesSinceMemoryError() != 0;
}

bool DBImpl::AwaitBudgetReleaseLocked(uint64_t mark) {
  if (options_.memory_budget == nullptr) return false;
  pool_->ReleaseThreadCache();  // as AwaitCheckpointLocked
  mu_.Unlock();
  const bool waited = options_.memory_budget->rep()->AwaitRelease(mark);
  mu_.Lock();
  return waited;
}

void DBImpl::Teardown() {
  // Before the tree closes.
  LeaveSharedBudget();
  if (read_ahead_ != nullptr) read_ahead_->Stop();  // it reads through the tree
  // Unmap second. The tree closes before the last versions go, so that
  // their release does not evict the cache page by page: the cache arena
  // hands every frame back at once.
  if (wal_ != nullptr) {
    wal_->Close().IgnoreError();
    wal_.reset();
  }
  if (tree_ != nullptr) tree_->Close().IgnoreError();
  {
    port::MutexLock l(&mu_);
    current_.reset();
    history_.reset();  // transactions, closed first, held the older nodes
    PublishReadViewLocked();
  }
  ReleaseRetiredViews(/*wait=*/true);  // before the tree their roots release pages into
  tree_.reset();
  leader_mr_.reset();  // gives its memory back to the pool before it closes
  scratch_mr_.reset();
  if (arena_ != nullptr) {
    arena_->Close();
    arena_.reset();
  }
  {
    port::MutexLock l(&checkpoint_mu_);
    spill_file_.reset();  // closes it, once the arenas spilled into it are gone
  }
  counters_.pool.reset();  // every version is gone: handles dropped theirs
  if (pool_ != nullptr) {
    pool_->Close().IgnoreError();
    pool_.reset();
  }
  lock_.reset();
}

// ---------------------------------------------------------------- reads

Status DBImpl::CheckKey(std::string_view key) {
  if (key.size() > kMaxKeyBytes) {
    return Status::InvalidArgument("key of " + std::to_string(key.size()) +
                                   " bytes exceeds the limit of " + std::to_string(kMaxKeyBytes));
  }
  return Status::OK();
}

Status DBImpl::CheckValue(std::string_view value) {
  if (value.size() > kMaxValueBytes) {
    return Status::InvalidArgument("value of " + std::to_string(value.size()) +
                                   " bytes exceeds the limit of " + std::to_string(kMaxValueBytes));
  }
  return Status::OK();
}

void DBImpl::CurrentView(std::shared_ptr<Version>* version, uint64_t* sequence,
                         std::shared_ptr<WriteHistory>* history) {
  port::MutexLock l(&mu_);
  *version = current_;
  *sequence = last_sequence_;
  if (history != nullptr) *history = history_;
}

Status DBImpl::GetAt(const Version& v, uint64_t seq, std::string_view key, std::string* value,
                     bool verify_checksums) {
  bool deleted = false;
  if (v.mem->table->Get(key, seq, value, &deleted, nullptr)) {
    return deleted ? Status::NotFound(key) : Status::OK();
  }
  for (const auto& m : v.imm) {
    if (m->table->Get(key, seq, value, &deleted, nullptr)) {
      return deleted ? Status::NotFound(key) : Status::OK();
    }
  }
  bool found = false;
  uint64_t missed_parent = 0;
  Status s = tree_->Get(v.tree->root(), key, value, &found,
                        verify_checksums || options_.paranoid_checks, &missed_parent);
  if (missed_parent != 0 && read_ahead_ != nullptr) read_ahead_->Request(missed_parent);
  if (!s.ok()) return s;
  return found ? Status::OK() : Status::NotFound(key);
}

// ---- lock-free point reads
//
// Get without a snapshot reads (read_version_, read_seq_) inside a read epoch
// section instead of taking rw_, mu_ and a shared_ptr copy (several atomic
// read-modify-writes on lines every reader shares). Three rules make it right:
//
// Consistency. Every change of current_ or last_sequence_ is followed, under
// mu_, by PublishReadViewLocked(), which stores the version (release) and the
// sequence (release). The reader loads V = read_version_, then S = read_seq_,
// then read_version_ again, and uses (V, S) only if both loads gave V (a
// version is never published twice, and V cannot be freed and its address
// reused while the section is open). So V was the published version at the
// moment S was read, and:
//  - every commit <= S is in V: a commit goes into the memtable of the
//    version current when it was applied, and its sequence is published after
//    that version; if that version were newer than V, loading S (acquire)
//    would make the second load see it, not V;
//  - V's tree holds nothing newer than S: a checkpoint's tree holds frozen
//    memtables whose commits were all published before the version that
//    carries it, so loading V (acquire) then S gives S >= all of them.
// Memtable entries <= S were added before S was stored (release), so the
// lock-free memtable lookups see them.
//
// Lifetime. read_ref_ keeps the published version alive; when another
// replaces it, the old reference is retired with an epoch tag and dropped
// only once no section that could have loaded it is open
// (ReleaseRetiredViews): by the checkpoint that replaced it (waiting for
// those short sections), or by the last point read that held it. The tree's
// pages are peeked under the same section (BTree::GetCached); anything not
// cached sends the read to the locked path below.
//
// Close. Close() sets read_closed_ and then waits for every section open at
// that moment: a read that did not see the mark has ended before the
// database is torn down.

void DBImpl::PublishReadViewLocked() {
  read_seq_.store(last_sequence_, std::memory_order_release);
  Version* v = current_.get();
  if (v == read_version_.load(std::memory_order_relaxed)) return;
  read_version_.store(v, std::memory_order_release);
  if (read_ref_ != nullptr) {
    const uint64_t tag = tree::epoch::Retire();
    port::MutexLock l(&retired_mu_);
    retired_views_.emplace_back(tag, std::move(read_ref_));
    retired_count_.store(retired_views_.size(), std::memory_order_relaxed);
  }
  read_ref_ = current_;
}

void DBImpl::ReleaseRetiredViews(bool wait) {
  if (wait && !tree::epoch::InSection()) {
    uint64_t tag = 0;
    {
      port::MutexLock l(&retired_mu_);
      if (!retired_views_.empty()) tag = retired_views_.back().first;
    }
    if (tag != 0) tree::epoch::WaitUntilSafe(tag);
  }
  std::vector<std::shared_ptr<Version>> done;  // dropped outside the lock
  {
    port::MutexLock l(&retired_mu_);
    if (retired_views_.empty()) return;
    const uint64_t safe = tree::epoch::SafeTag();
    size_t n = 0;
    while (n < retired_views_.size() && retired_views_[n].first <= safe) ++n;  // in tag order
    for (size_t i = 0; i < n; ++i) done.push_back(std::move(retired_views_[i].second));
    retired_views_.erase(retired_views_.begin(), retired_views_.begin() + n);
    retired_count_.store(retired_views_.size(), std::memory_order_relaxed);
  }
}

bool DBImpl::GetLockFree(std::string_view key, std::string* value, Status* status,
                         tree::BTree::LeafMiss* miss) {
  tree::epoch::ReadSection section;
  if (!section.active()) return false;
  if (read_closed_.load(std::memory_order_acquire)) {
    *status = Status::Closed("database is closed");
    return true;
  }
  TEST_SYNC_POINT("DBImpl::GetLockFree:Reading");
  Version* v = read_version_.load(std::memory_order_acquire);
  if (v == nullptr) return false;
  const uint64_t seq = read_seq_.load(std::memory_order_acquire);
  if (read_version_.load(std::memory_order_acquire) != v) return false;  // just replaced
  *status = CheckKey(key);
  if (!status->ok()) return true;
  bool deleted = false;
  if (v->mem->table->Get(key, seq, value, &deleted, nullptr)) {
    *status = deleted ? Status::NotFound(key) : Status::OK();
    return true;
  }
  for (const auto& m : v->imm) {
    if (m->table->Get(key, seq, value, &deleted, nullptr)) {
      *status = deleted ? Status::NotFound(key) : Status::OK();
      return true;
    }
  }
  bool found = false;
  Status s;
  if (!tree_->GetCached(v->tree->root(), key, value, &found, &s, miss)) return false;
  *status = !s.ok() ? s : found ? Status::OK() : Status::NotFound(key);
  return true;
}

// A read that missed a leaf needs neither the version nor a second descent:
// only the leaf's address, read under rw_ so that Close() waits for it.
bool DBImpl::GetMissedLeaf(const tree::BTree::LeafMiss& miss, std::string_view key,
                           std::string* value, Status* status) {
  // Not once Close() has begun: a stream of misses must not keep its writer
  // lock waiting (see Close).
  if (read_closed_.load(std::memory_order_acquire)) return false;
  port::ReaderLock l(&rw_);
  if (closed_) return false;  // the locked path says so
  TEST_SYNC_POINT("DBImpl::GetMissedLeaf:Reading");
  bool found = false, valid = false;
  Status s = tree_->GetLeafUnheld(miss, key, value, &found, &valid);
  if (!valid) return false;
  if (miss.parent != 0 && read_ahead_ != nullptr) read_ahead_->Request(miss.parent);
  *status = !s.ok() ? s : found ? Status::OK() : Status::NotFound(key);
  return true;
}

Status DBImpl::Get(const ReadOptions& options, std::string_view key, std::string* value) {
  // Under a shared budget full of memtables a read finds no clean page to
  // evict for the one it reads; the reclaim that failed asked the others'
  // memtables to be checkpointed: the read waits for those, a few times at
  // most, as a commit does (LogGroupLocked).
  constexpr int kMaxBudgetWaits = 8;
  for (int attempt = 0;; ++attempt) {
    const uint64_t mark = BudgetReleaseMark();
    Status s = GetOnce(options, key, value);
    if (!s.IsMemoryLimit() || options_.memory_budget == nullptr || attempt == kMaxBudgetWaits) {
      return s;
    }
    if (!options_.memory_budget->rep()->AwaitRelease(mark)) return s;
  }
}

Status DBImpl::GetOnce(const ReadOptions& options, std::string_view key, std::string* value) {
  if (options.snapshot == nullptr && !options.verify_checksums && !options_.paranoid_checks) {
    Status s;
    bool done;
    tree::BTree::LeafMiss miss;
    try {
      done = GetLockFree(key, value, &s, &miss);
    } catch (const std::bad_alloc&) {
      done = true;
      s = Status::MemoryLimit("out of memory reading a value");
    }
    // The last read that could hold a replaced version lets it go: under
    // rw_, so that Close() cannot tear the tree down while a dropped
    // version's root gives its pages back (~TreeRoot -> ReleasePages). Rare:
    // only between a checkpoint and the end of the reads it overlapped.
    if (retired_count_.load(std::memory_order_relaxed) != 0 &&
        !read_closed_.load(std::memory_order_acquire)) {
      port::ReaderLock l(&rw_);
      if (!closed_) ReleaseRetiredViews(false);
    }
    if (done) return s;
    if (miss.address != 0) TEST_SYNC_POINT("DBImpl::Get:LeafMissed");
    try {
      if (miss.address != 0 && GetMissedLeaf(miss, key, value, &s)) return s;
    } catch (const std::bad_alloc&) {
      return Status::MemoryLimit("out of memory reading a value");
    }
  }
  if (read_closed_.load(std::memory_order_acquire)) return Status::Closed("database is closed");
  port::ReaderLock l(&rw_);
  if (closed_) return Status::Closed("database is closed");
  Status s = CheckKey(key);
  if (!s.ok()) return s;
  if (options.snapshot != nullptr) {
    return static_cast<const SnapshotImpl*>(options.snapshot)
        ->Get(this, key, value, options.verify_checksums);
  }
  std::shared_ptr<Version> v;
  uint64_t seq;
  CurrentView(&v, &seq);
  try {
    return GetAt(*v, seq, key, value, options.verify_checksums);
  } catch (const std::bad_alloc&) {
    return Status::MemoryLimit("out of memory reading a value");
  }
}

std::unique_ptr<InternalIterator> DBImpl::NewInternalIterator(const Version& v, uint64_t seq,
                                                              const ReadOptions& options) {
  // A memtable with nothing visible at seq adds no key: leave it out, so
  // that a view whose memtables are empty (or hold only newer writes) is
  // the tree's own cursor, without a merge step per key. Every entry with a
  // sequence <= seq was added before seq was published, so its count and
  // sequence are seen here; writes after that carry larger sequences.
  auto visible = [seq](const mem::MemTable& t) {
    return t.entries() != 0 && t.min_sequence() <= seq;
  };
  std::vector<std::unique_ptr<InternalIterator>> children;
  children.reserve(2 + v.imm.size());
  if (visible(*v.mem->table)) children.push_back(v.mem->table->NewIterator(seq));
  for (const auto& m : v.imm) {
    if (visible(*m->table)) children.push_back(m->table->NewIterator(seq));
  }
  children.push_back(tree_->NewIterator(
      v.tree->root(), options.verify_checksums || options_.paranoid_checks, options.scan_caching));
  return mem::NewMergingIterator(std::move(children), order_);
}

std::unique_ptr<Iterator> DBImpl::NewIterator(const ReadOptions& options) {
  port::ReaderLock l(&rw_);
  if (closed_) return NewErrorIterator(Status::Closed("database is closed"));
  std::shared_ptr<Version> v;
  uint64_t seq;
  if (options.snapshot != nullptr) {
    Status s = static_cast<const SnapshotImpl*>(options.snapshot)->View(this, &v, &seq);
    if (!s.ok()) return NewErrorIterator(std::move(s));
  } else {
    CurrentView(&v, &seq);
  }
  return NewDBIterator(this, std::move(v), seq, options, nullptr, registry_);
}

std::unique_ptr<Snapshot> DBImpl::GetSnapshot() {
  port::ReaderLock l(&rw_);
  std::shared_ptr<Version> v;
  uint64_t seq = 0;
  if (!closed_) CurrentView(&v, &seq);
  return NewSnapshot(this, std::move(v), seq);
}

std::unique_ptr<Transaction> DBImpl::BeginTransaction(const WriteOptions& options,
                                                      const TransactionOptions& txn_options) {
  port::ReaderLock l(&rw_);
  if (closed_) return NewClosedTransaction();
  std::shared_ptr<Version> v;
  std::shared_ptr<WriteHistory> history;
  uint64_t seq;
  CurrentView(&v, &seq, &history);
  return NewTransaction(this, options, txn_options, std::move(v), std::move(history), seq);
}

// ---------------------------------------------------------------- writes

Status DBImpl::Put(const WriteOptions& options, std::string_view key, std::string_view value) {
  port::ReaderLock l(&rw_);
  if (closed_) return Status::Closed("database is closed");
  Status s = CheckKey(key);
  if (s.ok()) s = CheckValue(value);
  if (!s.ok()) return s;
  // A small batch on the stack: single puts must not touch the heap.
  char buf[512];
  std::pmr::monotonic_buffer_resource mr(buf, sizeof(buf), &*scratch_mr_);
  try {
    LogBatch batch(&mr);
    batch.Put(key, value);
    CommitRequest req{.batch = &batch, .sync = options.sync};
    return Commit(req);
  } catch (const std::bad_alloc&) {
    return Status::MemoryLimit("out of memory buffering a write");
  }
}

Status DBImpl::Delete(const WriteOptions& options, std::string_view key) {
  port::ReaderLock l(&rw_);
  if (closed_) return Status::Closed("database is closed");
  Status s = CheckKey(key);
  if (!s.ok()) return s;
  char buf[256];
  std::pmr::monotonic_buffer_resource mr(buf, sizeof(buf), &*scratch_mr_);
  try {
    LogBatch batch(&mr);
    batch.Delete(key);
    CommitRequest req{.batch = &batch, .sync = options.sync};
    return Commit(req);
  } catch (const std::bad_alloc&) {
    return Status::MemoryLimit("out of memory buffering a write");
  }
}

Status DBImpl::DeleteRange(const WriteOptions& /*options*/, std::string_view begin,
                           std::string_view end) {
  const int c = order_.Compare(begin, end);
  if (c > 0) return Status::InvalidArgument("delete range: begin is after end");
  if (c == 0) return Status::OK();
  if (options_.read_only) return ReadOnlyError();
  port::ReaderLock l(&rw_);
  if (closed_) return Status::Closed("database is closed");
  const tree::EraseRange erase{begin, end};
  Writer w(&mu_);
  w.erase = &erase;
  return RunWriter(&w);
}

// A range delete is a checkpoint that also erases the range from the tree,
// run by the commit queue's leader so that no commit lands beside it: every
// earlier write is in the frozen memtables it checkpoints (those in the
// range are dropped with it), every later one follows it in the log. The
// tree drops the subtrees inside the range whole, so the cost grows with
// the pages, not the keys. It is durable when it returns (the checkpoint
// syncs), and all or nothing: until the meta block commits, the tree and
// the logs hold the state before it.
Status DBImpl::EraseRangeLocked(const tree::EraseRange& erase) {
  Status s;
  for (;;) {
    s = MakeRoomForWrite(/*force=*/true);
    if (!s.ok()) return s;
    if (current_->mem->table->entries() == 0) break;
    // Without background checkpoints a frozen memtable waits for its
    // caller before the next can freeze: checkpoint it first.
    mu_.Unlock();
    s = RunTreeCheckpoint();
    mu_.Lock();
    if (!s.ok()) return s;
  }
  const uint64_t sequence = last_sequence_ + 1;
  // Transactions that began before it, or begin while it runs (they read
  // the state before it), conflict with it on the range: the newest node of
  // the write history names it.
  std::shared_ptr<WriteHistory> node = history_;
  try {
    node->erased.push_back({std::string(erase.begin), std::string(erase.end), sequence});
  } catch (const std::bad_alloc&) {
    return Status::MemoryLimit("out of memory deleting a range; nothing was deleted");
  }
  mu_.Unlock();
  s = RunTreeCheckpoint(&erase, sequence);
  mu_.Lock();
  if (!s.ok()) {
    auto& list = node->erased;
    list.erase(
        std::remove_if(list.begin(), list.end(),
                       [&](const WriteHistory::Erased& e) { return e.sequence == sequence; }),
        list.end());
    if (s.IsMemoryLimit()) {
      return Status::MemoryLimit("delete range: " + s.message() + "; nothing was deleted");
    }
  }
  return s;
}

Status DBImpl::Write(const WriteOptions& options, WriteBatch* batch) {
  port::ReaderLock l(&rw_);
  if (closed_) return Status::Closed("database is closed");
  if (batch == nullptr) return Status::InvalidArgument("write: null batch");
  // The batch checked its keys and values as they went in; it is logged as
  // it is when it commits alone (the commit path stamps its sequence).
  if (batch->Count() == 0) return Status::OK();
  try {
    CommitRequest req{.batch = batch->rep(), .sync = options.sync};
    return Commit(req);
  } catch (const std::bad_alloc&) {
    return Status::MemoryLimit("out of memory committing a write batch; nothing was written");
  }
}

Status DBImpl::Commit(const CommitRequest& request) {
  if (options_.read_only) return ReadOnlyError();
  Writer w(&mu_);
  w.req = &request;
  return RunWriter(&w);
}

// Synced commits from several threads come in waves: while a leader is in
// fdatasync the others queue up, and when it returns they are released
// together, so the next leader often finds itself alone and groups alternate
// between many members and one. When the last synced group was larger than
// the queue is now, the leader waits briefly -- far less than an fdatasync --
// for its peers to come back, so that one sync serves them all. A lone writer
// never waits; a peer that has gone away costs one wait, after which the
// remembered group size has dropped. The leader yields rather than sleeps:
// its peers need the CPU to come back (there may be fewer cores than
// writers), and a sleeping leader would add one more wake-up, about a
// quarter of a small machine's fdatasync, to every group.
void DBImpl::GatherSyncGroupLocked() {
  constexpr int64_t kGatherWaitNs = 100'000;
  const size_t want = last_sync_group_;
  if (want <= 1 || writers_.size() >= want) return;
  const int64_t deadline = YieldPolicy::NowNs() + kGatherWaitNs;
  while (writers_.size() < want) {
    mu_.Unlock();
    const bool yielded = YieldToPeers(deadline);
    mu_.Lock();
    if (!yielded) break;
  }
  // Yielding does not pay now (other work holds the CPUs): wait asleep for
  // the rest of the time; RunWriter() signals when the queue is long enough.
  gather_want_ = want;
  while (writers_.size() < want) {
    const int64_t left = deadline - YieldPolicy::NowNs();
    if (left <= 0) break;
    gather_cv_.WaitFor(std::chrono::nanoseconds(left));
  }
  gather_want_ = 0;
}

// One yield while waiting for a peer, unless `deadline_ns` (YieldPolicy's
// clock) has passed or yielding does not pay now (YieldPolicy: other work
// holds the CPUs). Returns whether it yielded: false, stop waiting awake.
bool DBImpl::YieldToPeers(int64_t deadline_ns) {
  const int64_t before = YieldPolicy::NowNs();
  if (before >= deadline_ns || !yield_policy_.MayYield(before)) return false;
  std::this_thread::yield();
  return yield_policy_.Yielded(before, YieldPolicy::NowNs());
}

Status DBImpl::RunWriter(Writer* w) {
  {
    port::MutexLock l(&mu_);
    writers_.push_back(w);
    TEST_SYNC_POINT("DBImpl::RunWriter:Queued");
    if (gather_want_ != 0 && writers_.size() >= gather_want_) gather_cv_.Signal();
    if (w == writers_.front() || w->req == nullptr || !w->req->sync) return WriteLocked(w);
  }
  // A synced member's group is done within about one fdatasync: wait for it
  // awake (yielding) for that long before sleeping, so that on a small
  // machine the wake-up is not a halted CPU's; and return without the mutex,
  // which the leader still holds while it wakes the group.
  const int64_t deadline = YieldPolicy::NowNs() + 250'000;
  while (!w->done.load(std::memory_order_acquire) &&
         !w->signalled.load(std::memory_order_acquire) && YieldToPeers(deadline)) {
  }
  if (w->done.load(std::memory_order_acquire)) return w->status;
  port::MutexLock l(&mu_);
  return WriteLocked(w);
}

Status DBImpl::WriteLocked(Writer* w) {
  w->sleeping = true;
  while (!w->done.load(std::memory_order_relaxed) && w != writers_.front()) w->cv.Wait();
  w->sleeping = false;
  if (w->done.load(std::memory_order_relaxed)) return w->status;

  if (w->erase != nullptr) {
    w->status = EraseRangeLocked(*w->erase);
    HandOnLocked(w, w);
    return w->status;
  }
  // This thread leads a commit group.
  if (w->req != nullptr && w->req->sync) GatherSyncGroupLocked();
  Status s = w->req == nullptr ? MakeRoomForWrite(/*force=*/true)
                               : MakeRoomForWrite(/*force=*/false, CommitCost(*w->req->batch));
  Group group(&*leader_mr_);
  group.last = w;
  if (s.ok() && w->req != nullptr) {
    s = CommitGroupLocked(w, &group);
    for (Writer* m : group.members) m->status = s;
    if (group.sync) last_sync_group_ = group.members.size();
  } else {
    w->status = s;
    if (s.IsMemoryLimit() && w->req != nullptr) {
      memory_limit_errors_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  HandOnLocked(w, group.last);
  return w->status;
}

// Takes the writers behind the leader that can share its record: up to
// kMaxGroupBytes, not past a checkpoint request, and no synced member behind
// an unsynced leader (it would slow the leader down with its fsync). Members
// that fail validation get their Conflict and stay out of the group.
void DBImpl::GatherGroupLocked(Writer* w, Group* g,
                               std::pmr::vector<std::string_view>* group_keys) {
  const size_t max_bytes = MaxGroupBytesLocked();
  // Only a member that validates reads the keys of those before it: they
  // are listed when one comes, so a group of plain writes (a lone put,
  // most often) lists none.
  size_t listed = 0;  // members whose keys are in *group_keys
  for (Writer* m : writers_) {
    if (m->req == nullptr) break;  // a checkpoint request leads its own group
    if (m != w && (g->bytes + m->req->batch->ByteSize() > max_bytes)) break;
    if (m != w && m->req->sync && !w->req->sync && !g->sync) break;
    g->last = m;
    if (m->req->validate) {
      for (; listed < g->members.size(); ++listed) {
        (void)g->members[listed]->req->batch->ForEach(
            [&](uint64_t, mem::ValueType, std::string_view k, std::string_view) {
              group_keys->push_back(k);
              return Status::OK();
            });
      }
    }
    Status vs = ValidateLocked(*m, *group_keys);
    if (!vs.ok()) {
      m->status = vs;
      continue;
    }
    g->members.push_back(m);
    g->sync |= m->req->sync;
    g->bytes += m->req->batch->ByteSize();
    g->count += m->req->batch->count();
  }
}

Status DBImpl::CommitGroupLocked(Writer* w, Group* g) {
  std::pmr::vector<std::string_view> group_keys(&*leader_mr_);
  LogBatch merged(&*leader_mr_);
  LogBatch* batch = nullptr;
  try {
    GatherGroupLocked(w, g, &group_keys);
    if (g->count == 0) return Status::OK();  // every member failed validation
    // A lone member's batch is logged as it is: a large transaction is not
    // copied once more. Several are merged into one record.
    batch = g->members.front()->req->batch;
    if (g->members.size() > 1) {
      merged.Reserve(g->bytes);
      for (Writer* m : g->members) merged.Append(*m->req->batch);
      batch = &merged;
    }
  } catch (const std::bad_alloc&) {
    // No memory to assemble the group (the database is at its budget): it
    // fails as a whole, nothing is logged, and the queue still moves on.
    Status s = Status::MemoryLimit("out of memory assembling a commit group");
    for (Writer* m : writers_) {
      if (m->status.ok()) m->status = s;
      if (m == g->last) break;
    }
    g->members.clear();
    memory_limit_errors_.fetch_add(1, std::memory_order_relaxed);
    return s;
  }
  batch->SetSequence(last_sequence_ + 1);
  return LogGroupLocked(*batch, *g);
}

Status DBImpl::LogGroupLocked(const LogBatch& batch, const Group& g) {
  // Short of memory, the group is retried for as long as memory is being
  // given back somewhere: by this database's checkpoint, or by the
  // checkpoints of the other databases of a shared budget (the allocation
  // that failed asked for them). Those compete for the budget's reserve, so
  // this database's checkpoint may fail while theirs run: it is retried
  // after each of theirs. It fails only when neither frees anything, or
  // after kMaxAttempts.
  constexpr int kMaxAttempts = 16;
  Status s;
  Status stall;  // why the last checkpoint for room failed, if it did
  bool logged = false;
  for (int attempt = 1;; ++attempt) {
    const uint64_t mark = BudgetReleaseMark();
    // Only a leader replaces the active memtable, and this thread leads: it
    // stays the same while mu_ is released.
    mem::MemTable* table = current_->mem->table.get();
    mu_.Unlock();
    TEST_SYNC_POINT("DBImpl::CommitGroup:Logging");
    s = LogAndApply(table, batch, g.sync, &logged);
    mu_.Lock();
    if (logged || !s.IsMemoryLimit()) break;
    if (attempt == kMaxAttempts) {
      if (!stall.ok()) s = stall;
      break;
    }
    // No room for the group: checkpoint to free memory, then try again.
    if (attempt == 1) write_stalls_.fetch_add(1, std::memory_order_relaxed);
    stall = StallForMemoryLocked();
    if (stall.ok()) continue;
    s = stall;
    if (!stall.IsMemoryLimit() || !AwaitBudgetReleaseLocked(mark)) break;
  }
  if (s.ok()) {
    published_wal_end_ = wal_->size();
    last_sequence_ += g.count;  // publish: the group becomes visible
    PublishReadViewLocked();
    commit_groups_.fetch_add(1, std::memory_order_relaxed);
  } else if (!logged && s.IsMemoryLimit()) {
    memory_limit_errors_.fetch_add(g.members.size(), std::memory_order_relaxed);
  } else if (bg_error_.ok() && !s.IsMemoryLimit()) {
    // The WAL may hold part of a failed record: continue in a fresh file
    // (recovery cuts the old one's torn tail).
    Status rs = RotateWalLocked();
    if (!rs.ok()) bg_error_ = ReadOnlyUntilReopened(rs);
  }
  return s;
}

// Wakes every writer the group covered and hands leadership on.
void DBImpl::HandOnLocked(Writer* w, Writer* last) {
  for (bool more = true; more;) {
    Writer* front = writers_.front();
    writers_.pop_front();
    more = front != last;
    if (front != w) {
      const bool sleeping = front->sleeping;
      front->done.store(true, std::memory_order_release);  // may end *front
      if (sleeping) front->cv.Signal();
    }
  }
  if (!writers_.empty()) {
    // Not done: it needs mu_ to go on, so it is still there after the store.
    writers_.front()->signalled.store(true, std::memory_order_release);
    if (writers_.front()->sleeping) writers_.front()->cv.Signal();
  }
}

Status DBImpl::LogAndApply(mem::MemTable* table, const LogBatch& batch, bool sync, bool* logged) {
  *logged = false;
  // Room in the memtable before the log: a commit refused for memory must
  // not be in the log, or the next open would apply what the caller was
  // told failed. A small commit's index slots load while the memtable makes
  // room and its log record is written; then the versions they point at
  // (an overwrite's, which the add compares) start loading. The hashes are
  // kept for the adds.
  constexpr size_t kPrefetchedPuts = 16;
  uint64_t hashes[kPrefetchedPuts];
  size_t hashed = 0;
  if (batch.count() <= kPrefetchedPuts) {
    batch
        .ForEach([&](uint64_t, mem::ValueType, std::string_view k, std::string_view) {
          if (hashed < kPrefetchedPuts) hashes[hashed++] = table->PrefetchForAdd(k);
          return Status::OK();
        })
        .IgnoreError();
  }
  Status s = table->Prepare(batch.count(), batch.ByteSize());
  if (!s.ok()) {
    if (!s.IsMemoryLimit()) return s;
    return Status::MemoryLimit("no room in the memory budget for the commit (" + s.message() +
                               "); nothing was written");
  }
  const uint64_t logged_before = wal_->size();
  s = wal_->AddRecord(batch.contents(), /*sync_next=*/sync);
  for (size_t i = 0; i < hashed; ++i) table->PrefetchHeadForAdd(hashes[i]);
  // Anything but a MemoryLimit (no memory to assemble the record, checked
  // before a byte is written) may have reached the file.
  *logged = !s.IsMemoryLimit();
  bool sync_failed = false;
  if (s.ok() && sync) {
    s = wal_->Sync();
    sync_failed = !s.ok();
    wal_syncs_.fetch_add(1, std::memory_order_relaxed);
  }
  if (!s.ok()) {
    // After an I/O error the record may be in the file, whole (a failed
    // fsync) or torn: cut it back out, so that recovery can never resurrect
    // a commit reported as failed. Any other error came before a byte was
    // written, and the file must stay as it is: cutting it would also cut
    // off the zero-filled region ahead that the writer stores records into.
    if (!wal_->poisoned()) return s;
    Status ts = wal::TruncateTornTail(env_.get(), WalPath(wal_->log_number()), wal_->log_number(),
                                      logged_before);
    if (!ts.ok()) {
      port::MutexLock l(&mu_);
      bg_error_ = ReadOnlyUntilReopened(
          Status::IOError("a failed commit could not be cut from the log (" + ts.ToString() + ")"));
    } else if (sync_failed) {
      // After a failed fdatasync the kernel may have dropped the log's dirty
      // pages and cleared the error: earlier unsynced commits may be gone,
      // and a later sync that succeeds would prove nothing. Acknowledging
      // more commits could leave a state that never existed.
      port::MutexLock l(&mu_);
      bg_error_ = ReadOnlyUntilReopened(Status::IOError(
          "fdatasync of " + WalPath(wal_->log_number()) + " failed (" + s.ToString() +
          "); the commit was not applied, earlier unsynced commits may be lost"));
    }
    return s;
  }
  wal_bytes_.fetch_add(batch.ByteSize(), std::memory_order_relaxed);
  size_t i = 0;
  s = batch.ForEach([&](uint64_t seq, mem::ValueType type, std::string_view k, std::string_view v) {
    return i < hashed ? table->Add(seq, type, k, v, hashes[i++]) : table->Add(seq, type, k, v);
  });
  memtable_bytes_hint_.store(table->ApproximateBytes(), std::memory_order_relaxed);
  if (!s.ok()) {
    // Cannot happen after Prepare(); should it, the commit is logged but not
    // applied, and the database must not diverge from its log.
    port::MutexLock l(&mu_);
    bg_error_ = ReadOnlyUntilReopened(
        Status::Corruption("a logged commit could not be applied (" + s.ToString() + ")"));
    return bg_error_;
  }
  return Status::OK();
}

Status DBImpl::ValidateLocked(const Writer& w,
                              const std::pmr::vector<std::string_view>& group_keys) {
  const CommitRequest& r = *w.req;
  if (!r.validate) return Status::OK();
  auto written_since = [&](std::string_view key) {
    for (const WriteHistory* h = r.history; h != nullptr; h = h->newer.get()) {
      if (h->LatestSequence(key) > r.snapshot_seq) return true;
    }
    // Earlier members of this group, not in a memtable yet: a key the order
    // calls equal is the same key, whatever its bytes.
    return std::any_of(group_keys.begin(), group_keys.end(),
                       [&](std::string_view g) { return order_.Equal(g, key); });
  };
  Status conflict;
  (void)r.batch->ForEach([&](uint64_t, mem::ValueType, std::string_view k, std::string_view) {
    if (written_since(k)) {
      conflict = Status::Conflict("key written by a transaction that committed first");
      return conflict;
    }
    return Status::OK();
  });
  if (!conflict.ok()) return conflict;
  if (r.reads == nullptr) return Status::OK();
  for (const auto& k : r.reads->keys) {
    if (written_since(k)) {
      return Status::Conflict("a key this transaction read was written since (serializable)");
    }
  }
  for (const auto& range : r.reads->ranges) {
    const KeyRange scanned = range.view();
    for (const WriteHistory* h = r.history; h != nullptr; h = h->newer.get()) {
      if (h->WrittenInRangeAfter(scanned, r.snapshot_seq)) {
        return Status::Conflict("a range this transaction scanned was written (serializable)");
      }
    }
    for (std::string_view k : group_keys) {
      if (scanned.Contains(order_, k)) {
        return Status::Conflict("a range this transaction scanned was written (serializable)");
      }
    }
  }
  return Status::OK();
}

// The memtables' share is what the budget leaves beside the working reserve
// and the cache. A cache that is not full lends the memtables the room it
// does not use, down to a quarter of its size (as it fills again, the
// budget's reclaim evicts from it, and the share shrinks back): more room
// per memtable means fewer checkpoints for the same writes.
size_t DBImpl::MemtableShare() const {
  const size_t cache = options_.cache_bytes;
  const size_t cache_term = std::min(cache, std::max(tree_->cache_used_bytes(), cache / 4));
  return budget_bytes_ - WorkingReserve(cache) - cache_term;
}

// A reader that outlives a checkpoint keeps the memtables of its version
// (not the newer ones) and its tree root's list of replaced pages, and a
// transaction the key records of what was written since it began: what they
// hold comes out of the share, so that the memtables written meanwhile are
// checkpointed sooner instead of filling the budget. 1 MiB at least, or
// nothing would get written at all.
size_t DBImpl::FreezeThreshold(size_t share, size_t pinned) const {
  const size_t left = share > pinned ? share - pinned : 0;
  return std::max(left / 2, kMinFreezeBytes);
}

size_t DBImpl::FreezeThresholdLocked() {
  return FreezeThreshold(MemtableShare(), PinnedMemtableBytesLocked());
}

// Arena bytes, not the tables' approximate sizes: the blocks' unused rest
// (some 6%) is budget too, and over three memtables it is the checkpoint's
// write buffer.
size_t DBImpl::MemtableBytesLocked(size_t pinned) {
  size_t bytes = current_->mem->table->ArenaBytes() + pinned;
  for (const auto& m : current_->imm) bytes += m->table->ArenaBytes();
  return bytes;
}

size_t DBImpl::PinnedMemtableBytesLocked() {
  // Old roots' lists of replaced pages, at up to twice their size (vectors).
  const int64_t old_pages = counters_.retained_pages.load(std::memory_order_relaxed);
  size_t bytes = history_record_bytes_.load(std::memory_order_relaxed) +
                 static_cast<size_t>(std::max<int64_t>(old_pages, 0)) * 2 * sizeof(uint64_t);
  std::erase_if(retired_mems_, [&](const std::weak_ptr<MemRef>& w) {
    std::shared_ptr<MemRef> m = w.lock();
    if (m == nullptr) return true;
    bytes += m->table->ArenaBytes();
    return false;
  });
  return bytes;
}

// Writers get slower, then stall, as the memtables fill their share of the
// budget, so that a checkpoint can catch up rather than the budget run out.
// Past three quarters of the threshold, while a checkpoint runs, each group
// waits up to 100 us, more the closer the active memtable is to the
// threshold; at the threshold, writers wait for the checkpoint (a stall).
void DBImpl::MaybeSlowDownLocked(size_t active_bytes, size_t threshold) {
  const size_t start = threshold / 4 * 3;
  if (active_bytes < start || threshold <= start) return;
  const int64_t delay_us =
      1 + static_cast<int64_t>(99 * (active_bytes - start) / (threshold - start));
  write_slowdowns_.fetch_add(1, std::memory_order_relaxed);
  stall_micros_.fetch_add(static_cast<uint64_t>(delay_us), std::memory_order_relaxed);
  mu_.Unlock();
  std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
  mu_.Lock();
}

Status DBImpl::AwaitCheckpointLocked() {
  // This thread waits for memory the checkpoint frees, and the checkpoint
  // may be short of what this thread keeps cached for itself.
  pool_->ReleaseThreadCache();
  // A checkpoint that just ran out of memory is retried in the background
  // (BackgroundWork), not by every writer that finds the memtables full.
  // Unless a reader or transaction has ended since, or a release of the
  // shared budget, giving memory back: the writer after the last reader
  // must not find the database still refusing.
  if (!checkpoint_running_ && !CheckpointRetryDueLocked()) return checkpoint_memory_error_;
  if (!options_.background_checkpoints || shutting_down_) {
    mu_.Unlock();
    Status s = RunTreeCheckpoint();
    mu_.Lock();
    return s;
  }
  const uint64_t seen = checkpoint_attempts_;
  if (!checkpoint_running_) ScheduleCheckpointLocked();
  while (checkpoint_attempts_ == seen && bg_error_.ok() && !current_->imm.empty() &&
         !shutting_down_) {
    bg_cv_.Wait();
  }
  if (!bg_error_.ok()) return bg_error_;
  return current_->imm.empty() ? Status::OK() : checkpoint_memory_error_;
}

Status DBImpl::StallForMemoryLocked() {
  const int64_t start = YieldPolicy::NowNs();
  Status s;
  if (current_->imm.empty() && current_->mem->table->entries() == 0) {
    s = Status::MemoryLimit("the memory budget is full and no memtable can be checkpointed");
  } else {
    if (current_->imm.empty()) {
      alloc::SharedBudget::ReleaseScope release;  // as CheckpointForBudget
      s = MakeRoomForWrite(/*force=*/true);       // freezes
    }
    if (s.ok() && !current_->imm.empty()) s = AwaitCheckpointLocked();
  }
  stall_micros_.fetch_add(static_cast<uint64_t>(YieldPolicy::NowNs() - start) / 1000,
                          std::memory_order_relaxed);
  if (!s.ok() && !s.IsMemoryLimit()) return s;
  if (!s.ok()) {
    return Status::MemoryLimit("the memory budget is full (" + s.message() +
                               "); nothing was written");
  }
  return s;
}

size_t DBImpl::CommitCost(const LogBatch& batch) {
  return batch.ByteSize() + batch.count() * mem::kMaxNodeOverheadBytes;
}

size_t DBImpl::MaxGroupBytesLocked() {
  return std::clamp(FreezeThresholdLocked() / 8, size_t{64} << 10, kMaxGroupBytes);
}

Status DBImpl::MakeRoomForWrite(bool force, size_t incoming) {
  int64_t give_up_ns = 0;  // while a checkpoint is short of memory
  for (;;) {
    if (!bg_error_.ok()) return bg_error_;
    // What the active memtable costs the budget: its arena's blocks, not the
    // bytes of its versions. A commit's reservation takes a block of its
    // own when the last one has less room left, so large batches can hold
    // nearly twice their versions' bytes; counted by versions, a memtable
    // froze that late and its checkpoint found no room to run in.
    const size_t bytes = current_->mem->table->ArenaBytes();
    const size_t share = MemtableShare();
    const size_t pinned = PinnedMemtableBytesLocked();
    const size_t threshold = FreezeThreshold(share, pinned);
    // While a checkpoint runs, the active memtable also stops where all the
    // memtables (frozen and pinned ones too) reach their share: past it they
    // would eat the working reserve that checkpoint needs.
    // Options::checkpoint_wal_bytes bounds the active log (what recovery
    // would replay); the budget bounds the memtable's memory.
    const bool log_full = wal_ != nullptr && wal_->size() >= options_.checkpoint_wal_bytes;
    // The commit counts too: a large one would carry the memtable far past
    // the threshold, into the reserve the checkpoint freeing it works in.
    // An empty memtable takes any commit (the commit path fails it cleanly
    // if it cannot fit at all).
    const bool empty = current_->mem->table->entries() == 0;
    if (!force && !log_full && (empty || bytes + incoming < threshold) &&
        (current_->imm.empty() || MemtableBytesLocked(pinned) + incoming < share)) {
      if (!current_->imm.empty()) MaybeSlowDownLocked(bytes, threshold);
      return Status::OK();
    }
    if (force && current_->mem->table->entries() == 0) return Status::OK();
    if (!current_->imm.empty()) {
      // The previous checkpoint has not finished.
      if (force && !options_.background_checkpoints) return Status::OK();  // the caller runs it
      const int64_t start = YieldPolicy::NowNs();
      if (!force) write_stalls_.fetch_add(1, std::memory_order_relaxed);
      Status s = AwaitCheckpointLocked();
      if (!force) {
        stall_micros_.fetch_add(static_cast<uint64_t>(YieldPolicy::NowNs() - start) / 1000,
                                std::memory_order_relaxed);
      }
      if (s.IsMemoryLimit() && !force) {
        // A checkpoint short of memory does not refuse the write by itself
        // while the memtables stay within their share. Beyond it they would
        // eat the working reserve the checkpoint needs to free them: wait
        // for its retries instead, a bounded time.
        // (The mutex was released meanwhile: measured anew.)
        if (MemtableBytesLocked(PinnedMemtableBytesLocked()) < MemtableShare()) {
          return Status::OK();
        }
        const int64_t now = YieldPolicy::NowNs();
        if (give_up_ns == 0) give_up_ns = now + kMaxMemoryStallNs;
        if (now >= give_up_ns) {
          return Status::MemoryLimit("the memtables fill their share of the budget (" +
                                     s.message() + "); nothing was written");
        }
        pool_->ReleaseThreadCache();  // as AwaitCheckpointLocked
        bg_cv_.WaitFor(std::chrono::nanoseconds(kCheckpointRetryNs));
        stall_micros_.fetch_add(static_cast<uint64_t>(YieldPolicy::NowNs() - now) / 1000,
                                std::memory_order_relaxed);
        continue;
      }
      if (!s.ok()) return s;
      continue;
    }
    // Freeze the active memtable; a new one and a new WAL take over.
    std::unique_ptr<mem::MemTable> table;
    std::shared_ptr<Version> v;
    Status s = mem::MemTable::Create(arena_.get(), next_wal_number_, {.order = order_}, &table);
    if (s.ok()) s = Version::Make(&counters_, &v);
    // Without room for a new memtable the write may still fit in this one.
    if (s.IsMemoryLimit() && !force) return Status::OK();
    if (!s.ok()) return s;
    const uint64_t wal_number = next_wal_number_;
    s = RotateWalLocked();
    if (!s.ok()) return s;
    auto fresh = std::make_shared<MemRef>(std::move(table), wal_number, &counters_);
    v->mem = fresh;
    v->imm.push_back(current_->mem);
    v->imm.insert(v->imm.end(), current_->imm.begin(), current_->imm.end());
    v->tree = current_->tree;
    current_ = std::move(v);
    memtable_bytes_hint_.store(0, std::memory_order_relaxed);
    frozen_bytes_hint_.store(FrozenBytesLocked(), std::memory_order_relaxed);
    StartHistoryLocked();
    PublishReadViewLocked();
    if (force) return Status::OK();  // the caller runs the checkpoint next
    if (options_.background_checkpoints) {
      ScheduleCheckpointLocked();
      return Status::OK();
    }
    mu_.Unlock();
    s = RunTreeCheckpoint();
    mu_.Lock();
    // Short of memory, the frozen memtable waits for the next attempt.
    if (s.IsMemoryLimit()) return Status::OK();
    return s;
  }
}

// ---------------------------------------------------------------- checkpoints

Status DBImpl::Checkpoint() {
  port::ReaderLock l(&rw_);
  if (closed_) return Status::Closed("database is closed");
  if (options_.read_only) return ReadOnlyError();
  Writer w(&mu_);
  Status s = RunWriter(&w);
  if (!s.ok()) return s;
  s = RunTreeCheckpoint();
  // Asked for by the user: everything it wrote is in the tree, and the
  // memory its memtables held goes back now, recycled or not.
  pool_->SetRecycleBytes(0);
  return s;
}

// While writes go on, the segments of the memtables a checkpoint retires
// stay in the pool for the active memtable to grow into: pages already
// faulted in and zeroed once, instead of fresh ones the kernel must zero
// (at 1M sequential puts that was about a fifth of the writer's time).
// The active memtable is expected to grow to the size of the one before
// it, so only what it still lacks is kept: the memory held at the peak (a
// frozen memtable and the active one) does not grow. Once writes stop (no
// writer waits and the active memtable is empty when the checkpoint ends,
// as after one the shared budget asked for) or the database closes, it
// all goes back.
size_t DBImpl::RecycleBytesLocked(const Version& checkpointed) {
  if (final_freeze_ || (writers_.empty() && current_->mem->table->entries() == 0)) return 0;
  size_t bytes = 0;
  for (const auto& m : checkpointed.imm) bytes = std::max(bytes, m->table->ArenaBytes());
  const size_t active = current_->mem->table->ArenaBytes();
  return std::min(bytes > active ? bytes - active : 0, MemtableShare());
}

Status DBImpl::RunTreeCheckpoint(const tree::EraseRange* erase, uint64_t erase_sequence) {
  alloc::SharedBudget::ReleaseScope release;  // it frees memtables: see CheckpointForBudget
  port::MutexLock cl(&checkpoint_mu_);
  std::shared_ptr<Version> base;
  {
    port::MutexLock l(&mu_);
    if (current_->imm.empty() && erase == nullptr) return bg_error_;
    if (erase != nullptr && !bg_error_.ok()) return bg_error_;
    base = current_;
    checkpoint_running_ = true;
  }
  std::vector<std::unique_ptr<InternalIterator>> children;
  for (const auto& m : base->imm) children.push_back(m->table->NewIterator(UINT64_MAX));
  auto changes = mem::NewMergingIterator(std::move(children), order_);
  const uint64_t last_seq =
      std::max(base->imm.empty() ? 0 : base->imm.front()->table->max_sequence(), erase_sequence);
  const uint64_t wal_number = base->mem->wal_number;
  tree::CheckpointResult result(&*scratch_mr_);
  // Made first: once the tree is written, publishing it must not fail.
  std::shared_ptr<Version> next;
  Status s = Version::Make(&counters_, &next);
#ifdef ARENAKV_SYNC_POINTS
  CheckpointStartPoint point{path_, &s};
  if (s.ok()) TEST_SYNC_POINT_CALLBACK("DBImpl::RunTreeCheckpoint:Start", &point);
#endif
  try {
    if (s.ok()) {
      s = tree_->Checkpoint(changes.get(), std::max(last_seq, tree_->meta().last_sequence),
                            wal_number, &result, erase);
    }
  } catch (const std::bad_alloc&) {
    s = Status::MemoryLimit("out of memory during checkpoint");
  }
  changes.reset();

  std::shared_ptr<Version> old;
  size_t recycle = 0;
  {
    port::MutexLock l(&mu_);
    checkpoint_running_ = false;
    ++checkpoint_attempts_;
    if (!s.ok()) {
      // The frozen memtable stays readable; the tree keeps its last durable
      // state. Short of memory, the checkpoint is retried (BackgroundWork,
      // and writers that need the room); after an I/O error or corruption
      // the database is read-only until it is reopened.
      if (s.IsMemoryLimit()) {
        checkpoint_memory_error_ = s;
        checkpoint_memory_error_ns_ = YieldPolicy::NowNs();
        releases_at_memory_error_ = counters_.releases.load(std::memory_order_acquire);
        budget_freed_at_memory_error_ = BudgetFreedMark();
        checkpoint_memory_failures_.fetch_add(1, std::memory_order_relaxed);
      } else {
        bg_error_ = ReadOnlyUntilReopened(s);
      }
      bg_cv_.SignalAll();
    } else {
      // The range delete takes its sequence as it becomes visible: later
      // snapshots and transactions see it, earlier ones do not.
      last_sequence_ = std::max(last_sequence_, erase_sequence);
      old = PublishCheckpointLocked(*base, &result, std::move(next));
      recycle = RecycleBytesLocked(*base);
    }
  }
  // Before the checkpointed memtables can die (with `old` and `base`).
  if (s.ok()) pool_->SetRecycleBytes(recycle);
  old.reset();
  if (!s.ok()) {
    // Memtables readers hold may be what left the checkpoint short.
    if (s.IsMemoryLimit()) SpillPinnedMemtables();
    return s;
  }
  CompactHistory(base->imm);
  base.reset();
  ReleaseRetiredViews(/*wait=*/true);  // the old version, once no point read holds it
  tree_->CoverFile();                  // the file may have grown; the memtables are gone
  checkpoints_.fetch_add(1, std::memory_order_relaxed);
  DeleteObsoleteWals(wal_number);
  SpillPinnedMemtables();
  return Status::OK();
}

// The checkpoint's root becomes current: a new version without the frozen
// memtables it covers, which stay readable, as retired, for whoever holds
// them. Returns the superseded version, for the caller to release outside
// the lock.
std::shared_ptr<Version> DBImpl::PublishCheckpointLocked(const Version& base,
                                                         tree::CheckpointResult* result,
                                                         std::shared_ptr<Version> v) {
  checkpoint_memory_error_ = Status::OK();
  auto root = std::make_shared<TreeRoot>(tree_.get(), result->meta.root, &counters_);
  v->mem = current_->mem;
  for (const auto& m : current_->imm) {
    if (std::find(base.imm.begin(), base.imm.end(), m) == base.imm.end()) v->imm.push_back(m);
  }
  v->tree = root;
  for (const auto& m : base.imm) retired_mems_.push_back(m);
  current_->tree->Supersede(root, std::move(result->obsolete));
  std::shared_ptr<Version> old = std::move(current_);
  current_ = std::move(v);
  frozen_bytes_hint_.store(FrozenBytesLocked(), std::memory_order_relaxed);
  PublishReadViewLocked();
  bg_cv_.SignalAll();
  return old;
}

size_t DBImpl::FrozenBytesLocked() const {
  size_t bytes = 0;
  for (const auto& m : current_->imm) bytes += m->table->ApproximateBytes();
  return bytes;
}

// Memtables that readers keep past their checkpoint move to the spill file
// once they hold more than a quarter of the memtables' share, oldest first
// (the longest-lived readers hold them), until an eighth is left: a
// forgotten iterator then costs disk space, not the writers' memory. Readers
// go on reading them where they are; the kernel pages them in from the file.
void DBImpl::SpillPinnedMemtables() {
  std::vector<std::shared_ptr<MemRef>> victims;
  {
    port::MutexLock l(&mu_);
    const size_t share = MemtableShare();
    size_t pinned = PinnedMemtableBytesLocked();
    if (pinned <= share / 4) return;
    for (const auto& w : retired_mems_) {
      if (pinned <= share / 8) break;
      std::shared_ptr<MemRef> m = w.lock();
      const size_t bytes = m != nullptr ? m->table->ArenaBytes() : 0;
      if (bytes == 0) continue;
      pinned -= std::min(pinned, bytes);
      victims.push_back(std::move(m));
    }
  }
  Status s;
  if (!victims.empty() && spill_file_ == nullptr) {
    s = SpillFile::Open(env_.get(), path_, &spill_file_);
  }
  for (const auto& m : victims) {
    if (!s.ok()) break;
    s = m->table->Spill(spill_file_);
    if (s.ok()) memtable_spills_.fetch_add(1, std::memory_order_relaxed);
  }
  // Without room on disk the memtables stay in memory, and writers get
  // MemoryLimit as before; reads are unaffected either way.
  if (!s.ok()) spill_failures_.fetch_add(1, std::memory_order_relaxed);
  // `victims` go here, outside mu_: readers may have let go meanwhile.
}

// A new active memtable gets its history node; the previous node links to
// it, so a transaction that holds an older node sees every later write.
void DBImpl::StartHistoryLocked() {
  auto node = std::make_shared<WriteHistory>(current_->mem);
  current_->mem->history = node;
  if (history_ != nullptr) history_->newer = node;
  history_ = std::move(node);
}

// Only a transaction that began before the checkpoint keeps these memtables'
// history; it needs their keys and sequences, not their values. Without
// room for the record the node keeps its memtable (validation is the same).
void DBImpl::CompactHistory(const std::vector<std::shared_ptr<MemRef>>& done) {
  for (const auto& m : done) {
    std::shared_ptr<WriteHistory> h = m->history.lock();
    if (h == nullptr) continue;  // no transaction holds it
    std::unique_ptr<KeyRecord> record;
    if (!KeyRecord::Build(*m->table, &*scratch_mr_, &history_record_bytes_, &record).ok()) {
      continue;
    }
    std::shared_ptr<MemRef> table;
    {
      port::MutexLock l(&mu_);
      if (h->mem == nullptr) continue;
      h->record = std::move(record);
      table = std::move(h->mem);
    }
    history_records_.fetch_add(1, std::memory_order_relaxed);
    // `table` goes here, outside mu_, unless a reader still holds it.
  }
}

void DBImpl::DeleteObsoleteWals(uint64_t below) {
  std::vector<std::string> names;
  if (!env_->GetChildren(path_, &names).ok()) return;
  for (const auto& name : names) {
    uint64_t n;
    if (ParseWalName(name, &n) && n < below) env_->DeleteFile(path_ + "/" + name).IgnoreError();
  }
}

void DBImpl::ScheduleCheckpointLocked() {
  checkpoint_scheduled_ = true;
  bg_cv_.SignalAll();
  if (bg_posted_now_ || shutting_down_) return;
  bg_posted_now_ = true;
  BackgroundPool::Default()->Post(this, [this] { BackgroundWork(/*delayed=*/false); });
}

// Runs on a thread of the shared BackgroundPool: the checkpoints asked for,
// then, after one that ran out of memory, its retry (posted again with a
// delay doubling while they keep failing: memory comes back when readers
// end, transactions finish or the cache gives some up).
void DBImpl::BackgroundWork(bool delayed) {
  port::MutexLock l(&mu_);
  (delayed ? bg_posted_later_ : bg_posted_now_) = false;
  if (bg_backoff_ns_ == 0) bg_backoff_ns_ = kCheckpointRetryNs;
  while (!shutting_down_) {
    if (!checkpoint_scheduled_) {
      if (checkpoint_memory_error_.ok() || current_->imm.empty()) {
        bg_backoff_ns_ = kCheckpointRetryNs;
        return;
      }
      const int64_t due = checkpoint_memory_error_ns_ + bg_backoff_ns_;
      const int64_t now = YieldPolicy::NowNs();
      if (now < due) {
        if (!bg_posted_later_) {
          bg_posted_later_ = true;
          BackgroundPool::Default()->Post(
              this, [this] { BackgroundWork(/*delayed=*/true); },
              std::chrono::nanoseconds(due - now));
        }
        return;
      }
      bg_backoff_ns_ = std::min<int64_t>(bg_backoff_ns_ * 2, kMaxCheckpointRetryNs);
    }
    checkpoint_scheduled_ = false;
    mu_.Unlock();
    RunTreeCheckpoint().IgnoreError();  // failures land in bg_error_
    mu_.Lock();
  }
}

// ---------------------------------------------------------------- verify/stats

Status DBImpl::Verify(VerifyReport* report, bool (*progress)(uint64_t, uint64_t, void*),
                      void* arg) {
  port::ReaderLock l(&rw_);
  if (closed_) return Status::Closed("database is closed");
  // Holding the current root holds every newer one (TreeRoot::newer_), so no
  // checkpoint meanwhile can free, and reuse, a page of the tree walked below.
  std::shared_ptr<Version> pinned;
  // The active log is read only up to the records complete now: beyond,
  // the leader may be storing one, and a half-stored record with a whole
  // one after it would read as Corruption.
  // A read-only open has no log of its own: it reads the logs as far as
  // its replay did (a writer beside it may be storing a record past that).
  uint64_t active_log = replayed_last_log_, active_end = replayed_last_end_;
  {
    port::MutexLock ml(&mu_);
    pinned = current_;
    if (wal_ != nullptr) {
      active_log = wal_->log_number();
      active_end = wal_->size();
    }
  }
  tree::VerifyStats vs;
  Status s = tree_->Verify(&vs, [&](uint64_t done, uint64_t total) {
    return progress == nullptr || progress(done, total, arg);
  });
  if (!s.ok()) return s;
  // Every WAL record still on disk is read and checksummed too.
  uint64_t records = 0;
  std::vector<std::string> names;
  s = env_->GetChildren(path_, &names);
  if (!s.ok()) return s;
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    uint64_t n;
    if (!ParseWalName(name, &n) || n < tree_->meta().wal_number || n > active_log) continue;
    std::unique_ptr<wal::WalReader> reader;
    s = wal::WalReader::Open(env_.get(), path_ + "/" + name, n, &reader, &*scratch_mr_,
                             n == active_log ? active_end : UINT64_MAX);
    if (!s.ok() && !env_->FileExists(path_ + "/" + name)) continue;  // a checkpoint deleted it
    if (!s.ok()) return s;
    for (;;) {
      std::string_view rec;
      bool eof = false;
      s = reader->ReadRecord(&rec, &eof);
      if (!s.ok()) return s;
      if (eof) break;
      ++records;
    }
  }
  if (report != nullptr) {
    report->pages = vs.pages;
    report->keys = vs.keys;
    report->wal_records = records;
  }
  return Status::OK();
}

Status DBImpl::GetStats(DBStats* stats) {
  port::ReaderLock l(&rw_);
  if (closed_) return Status::Closed("database is closed");
  *stats = DBStats{};
  stats->pool = pool_->Stats();
  stats->arenas = arena_->TreeStats();
  stats->cache = tree_->cache_stats();
  stats->mapped_bytes = tree_->mapped_bytes();
  stats->mapped_drops = tree_->map_drops();
  if (read_ahead_ != nullptr) stats->cache.read_ahead_pages = read_ahead_->pages_loaded();
  {
    port::MutexLock ml(&mu_);
    stats->memtable_bytes = current_->mem->table->ApproximateBytes();
    stats->approximate_keys = tree_->meta().key_count + current_->mem->table->entries();
    for (const auto& m : current_->imm) {
      stats->memtable_bytes += m->table->ApproximateBytes();
      stats->approximate_keys += m->table->entries();
    }
    stats->last_sequence = last_sequence_;
  }
  stats->live_versions = static_cast<size_t>(counters_.versions.load());
  stats->live_memtables = static_cast<size_t>(counters_.memtables.load());
  stats->live_tree_roots = static_cast<size_t>(counters_.tree_roots.load());
  stats->retained_old_pages = static_cast<size_t>(counters_.retained_pages.load());
  stats->open_transactions = open_transactions_.load();
  stats->open_snapshots = open_snapshots_.load();
  stats->checkpoints = checkpoints_.load();
  stats->wal_bytes = wal_bytes_.load();
  stats->wal_syncs = wal_syncs_.load();
  stats->commit_groups = commit_groups_.load();
  stats->data_file_bytes = tree_->file_bytes();
  stats->memtable_budget_bytes = MemtableShare();
  if (options_.memory_budget != nullptr) {
    const MemoryBudget& b = *options_.memory_budget;
    stats->shared_budget_capacity_bytes = b.capacity_bytes();
    stats->shared_budget_used_bytes = b.used_bytes();
    stats->shared_budget_own_bytes = stats->pool.committed_bytes + stats->pool.charged_bytes;
    stats->shared_budget_databases = b.databases();
  }
  stats->write_slowdowns = write_slowdowns_.load();
  stats->write_stalls = write_stalls_.load();
  stats->stall_micros = stall_micros_.load();
  stats->memory_limit_errors = memory_limit_errors_.load();
  stats->checkpoint_memory_failures = checkpoint_memory_failures_.load();
  stats->recovery_checkpoints = replay_checkpoints_;
  stats->recovery_cut = recovery_cut_;
  stats->history_records = history_records_.load();
  stats->history_record_bytes = history_record_bytes_.load();
  stats->memtable_spills = memtable_spills_.load();
  stats->spilled_bytes = stats->pool.spilled_bytes;
  stats->spill_failures = spill_failures_.load();
  return Status::OK();
}

Status DestroyDB(const std::string& path, const Options& options) {
  std::shared_ptr<Env> env = options.env ? options.env : Env::Default();
  std::unique_ptr<FileLock> lock;
  if (!env->FileExists(path)) return Status::OK();
  Status s = env->LockFile(path + "/" + kLockFileName, &lock);
  if (!s.ok()) return s;
  std::vector<std::string> names;
  s = env->GetChildren(path, &names);
  if (!s.ok()) return s;
  for (const auto& name : names) {
    uint64_t n;
    if (name == kDataFileName || name == std::string(kDataFileName) + tree::kNewDataFileSuffix ||
        ParseWalName(name, &n)) {
      s = env->DeleteFile(path + "/" + name);
      if (!s.ok()) return s;
    }
  }
  // Unlinked while still held: released first, the file could be locked
  // by an opener that opened it before, while another creates a new one.
  env->DeleteFile(path + "/" + kLockFileName).IgnoreError();
  lock.reset();
  std::error_code ec;
  std::filesystem::remove(path, ec);  // only if empty: foreign files are left alone
  return Status::OK();
}

}  // namespace arenakv
