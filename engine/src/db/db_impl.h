// DBImpl: the engine behind arenakv::DB.
//
// Writes: every commit (a single Put/Delete or a transaction) joins a queue of
// writers; the writer at the front becomes the leader, validates the group's
// transactions (first committer wins), logs the whole group as one WAL record
// with at most one fdatasync, inserts it into the active memtable and then
// publishes the group's last sequence number. Readers see exactly the
// sequences published, so a group becomes visible atomically.
//
// Checkpoints: the active memtable is frozen (a new one and a new WAL take
// over), a background thread applies it to the copy-on-write B+tree, and a
// new Version with the new root is published; WALs the tree now covers are
// deleted.
//
// Memory: one SegmentPool per database (budget = Options::memory_budget),
// one database arena; below it the page cache arena, one arena per memtable
// and one per transaction. Close() invalidates every handle, then closes the
// arenas and the pool, so the memory goes back to the OS when it returns.
//
// Thread safety: as DB. Lock order: HandleRegistry::mu_ -> Handle::mu_ ->
// checkpoint_mu_ -> mu_. rw_ is held shared by every DB call in flight and
// exclusively by Close() while it marks the database closed.
#ifndef ARENAKV_DB_DB_IMPL_H_
#define ARENAKV_DB_DB_IMPL_H_

#include <atomic>
#include <deque>
#include <memory>
#include <memory_resource>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "arenakv/alloc/object_heap.h"
#include "arenakv/alloc/recycling_resource.h"
#include "arenakv/db.h"
#include "db/budget_rep.h"
#include "db/handle_registry.h"
#include "db/log_batch.h"
#include "db/pool_resource.h"
#include "db/spill_file.h"
#include "db/version.h"
#include "db/yield_policy.h"
#include "port/mutex.h"
#include "tree/btree.h"
#include "tree/read_ahead.h"
#include "wal/wal_writer.h"

namespace arenakv {

// What a transaction asks the commit path to validate besides its writes.
struct ReadSet {
  explicit ReadSet(std::pmr::memory_resource* mr) : keys(mr), ranges(mr) {}
  struct Range {  // a KeyRange, both bounds inclusive
    std::pmr::string begin, end;
    bool from_first = false, to_last = false;
    KeyRange view() const { return {begin, end, from_first, to_last}; }
  };
  std::pmr::vector<std::pmr::string> keys;
  std::pmr::vector<Range> ranges;
};

class DBImpl final : public DB, public alloc::HeapObject {
 public:
  // The argument of sync point DBImpl::RunTreeCheckpoint:Start.
  struct CheckpointStartPoint {
    const std::string& path;  // the database's
    Status* status;           // a callback may set a MemoryLimit
  };

  DBImpl(const Options& options, std::string path);
  ~DBImpl() override;

  Status OpenImpl();

  Status Put(const WriteOptions& options, std::string_view key, std::string_view value) override;
  Status Delete(const WriteOptions& options, std::string_view key) override;
  Status DeleteRange(const WriteOptions& options, std::string_view begin,
                     std::string_view end) override;
  Status Write(const WriteOptions& options, WriteBatch* batch) override;
  Status Get(const ReadOptions& options, std::string_view key, std::string* value) override;
  std::unique_ptr<Iterator> NewIterator(const ReadOptions& options) override;
  std::unique_ptr<Transaction> BeginTransaction(const WriteOptions& options,
                                                const TransactionOptions& txn_options) override;
  std::unique_ptr<Snapshot> GetSnapshot() override;
  Status Checkpoint() override;
  Status Backup(const std::string& path, const BackupOptions& options) override;
  Status Verify(VerifyReport* report, bool (*progress)(uint64_t, uint64_t, void*),
                void* arg) override;
  Status GetStats(DBStats* stats) override;
  std::string StatsReport() override;
  Status GetProperty(std::string_view name, std::string* value) override;
  Status GetApproximateSizes(const Range* ranges, size_t n, uint64_t* sizes) override;
  Status Close() override;

  // ---- used by handles (transactions, iterators, snapshots) ----

  // The current version and the sequence it is consistent at.
  // `history` (may be null): the write history's node for that version's
  // active memtable, which a transaction validates from.
  void CurrentView(std::shared_ptr<Version>* version, uint64_t* sequence,
                   std::shared_ptr<WriteHistory>* history = nullptr) EXCLUDES(mu_);
  Status GetAt(const Version& v, uint64_t seq, std::string_view key, std::string* value,
               bool verify_checksums);
  // A cursor over `v` at `seq`, tombstones included (callers add a live
  // filter); the version must outlive it.
  std::unique_ptr<InternalIterator> NewInternalIterator(const Version& v, uint64_t seq,
                                                        const ReadOptions& options);

  struct CommitRequest {
    // Committed as it is when it is alone in its group: the commit path
    // stamps the group's first sequence into it.
    LogBatch* batch = nullptr;
    bool sync = false;
    // Transactions: validate against writes published after snapshot_seq.
    bool validate = false;
    uint64_t snapshot_seq = 0;
    const WriteHistory* history = nullptr;  // held by the transaction
    const ReadSet* reads = nullptr;         // serializable only
  };
  Status Commit(const CommitRequest& request);

  const std::shared_ptr<HandleRegistry>& registry() { return registry_; }
  // The database's object heap (made by DB::Open), for objects and
  // containers that live as long as it does.
  std::pmr::memory_resource* ObjectMemory() const;
  alloc::SegmentPool* pool() { return pool_.get(); }
  alloc::Arena* arena() { return arena_.get(); }
  KeyOrder order() const { return order_; }
  // For a commit's batch: from the pool (charged to the budget, given back
  // after the commit), not from a transaction's arena.
  std::pmr::memory_resource* commit_memory() { return &*scratch_mr_; }
  std::atomic<size_t>& open_transactions() { return open_transactions_; }
  std::atomic<size_t>& open_snapshots() { return open_snapshots_; }
  // A reader or transaction ended (it may have given memory back).
  void NoteRelease() { counters_.releases.fetch_add(1, std::memory_order_release); }

  static Status CheckKey(std::string_view key);
  static Status CheckValue(std::string_view value);

 private:
  struct Writer;

  // GetProperty's body, which may throw bad_alloc.
  Status PropertyOf(std::string_view name, std::string* value);

  Status RunWriter(Writer* w) EXCLUDES(mu_);
  struct Group;
  // The phases of a commit group's leader: gather the members, commit them
  // (assemble one record, log it, apply it, publish), hand leadership on.
  Status WriteLocked(Writer* w) REQUIRES(mu_);
  void GatherGroupLocked(Writer* w, Group* g, std::pmr::vector<std::string_view>* group_keys)
      REQUIRES(mu_);
  Status CommitGroupLocked(Writer* w, Group* g) REQUIRES(mu_);
  Status LogGroupLocked(const LogBatch& batch, const Group& g) REQUIRES(mu_);
  void HandOnLocked(Writer* w, Writer* last) REQUIRES(mu_);
  // Makes room in the active memtable for a commit that will take up to
  // `incoming` bytes of it (CommitCost): freezes it first when the commit
  // would carry it past the freeze threshold, or all memtables past their
  // share while a checkpoint runs. `force` freezes a non-empty one anyway.
  Status MakeRoomForWrite(bool force, size_t incoming = 0) REQUIRES(mu_);
  // What a commit of `batch` takes from a memtable at most: what
  // MemTable::Prepare reserves for it.
  static size_t CommitCost(const LogBatch& batch);
  // The most bytes of batches a commit group gathers: 1 MiB, less under a
  // budget whose memtables would not take a group that large in their
  // stride.
  size_t MaxGroupBytesLocked() REQUIRES(mu_);
  // Memtable bytes at which the active memtable is frozen and checkpointed:
  // half of what the memtables' share of the budget leaves beside the
  // memtables only readers still hold, at most checkpoint_wal_bytes.
  size_t FreezeThresholdLocked() REQUIRES(mu_);
  size_t FreezeThreshold(size_t share, size_t pinned) const;
  // Bytes of checkpointed memtables that readers (iterators, snapshots,
  // transactions) still hold, and of the transactions' key records.
  size_t PinnedMemtableBytesLocked() REQUIRES(mu_);
  // Every memtable byte the database holds: active, frozen, and `pinned`
  // (from PinnedMemtableBytesLocked).
  size_t MemtableBytesLocked(size_t pinned) REQUIRES(mu_);
  // The memtables' share of the budget now.
  size_t MemtableShare() const;
  // What the pool keeps of memtables a checkpoint retires (SetRecycleBytes).
  size_t RecycleBytesLocked(const Version& checkpointed) REQUIRES(mu_);
  // While a checkpoint runs and the active memtable nears the threshold,
  // delays the leader briefly so that the checkpoint catches up.
  void MaybeSlowDownLocked(size_t active_bytes, size_t threshold) REQUIRES(mu_);
  // Waits for the checkpoint of the frozen memtable (starting or retrying
  // it as needed). OK once it is done; MemoryLimit when it could not get
  // memory; the sticky error when the database is read-only.
  Status AwaitCheckpointLocked() REQUIRES(mu_);
  // The group's memtable room could not be reserved: frees memory by
  // checkpointing the memtables. MemoryLimit when there is nothing to free
  // or the checkpoint found no memory either.
  Status StallForMemoryLocked() REQUIRES(mu_);
  // Readers and transactions that ended since the last checkpoint ran out
  // of memory, and the shared budget's releases since that freed memory
  // (either may have given back what it lacked).
  uint64_t ReleasesSinceMemoryError() const REQUIRES(mu_) {
    return counters_.releases.load(std::memory_order_acquire) - releases_at_memory_error_ +
           (BudgetFreedMark() - budget_freed_at_memory_error_);
  }
  // Whether the checkpoint may run (again): none failed for memory, or the
  // back-off since has passed, or memory came back since.
  bool CheckpointRetryDueLocked() const REQUIRES(mu_);
  // Logs `batch` and applies it to `table`, the active memtable (which only
  // the leader, the caller, replaces). MemoryLimit before anything was
  // logged when the memtable has no room for it (*logged false).
  Status LogAndApply(mem::MemTable* table, const LogBatch& batch, bool sync, bool* logged)
      EXCLUDES(mu_);
  void GatherSyncGroupLocked() REQUIRES(mu_);
  bool YieldToPeers(int64_t deadline_ns);
  Status ValidateLocked(const Writer& w, const std::pmr::vector<std::string_view>& group_keys)
      REQUIRES(mu_);
  Status RotateWalLocked() REQUIRES(mu_);
  Status SyncLogFile(const std::string& path);
  // With `erase`, the checkpoint also deletes its range, at `erase_sequence`
  // (DeleteRange), and runs even with no frozen memtable.
  Status RunTreeCheckpoint(const tree::EraseRange* erase = nullptr, uint64_t erase_sequence = 0)
      EXCLUDES(mu_);
  // DeleteRange's body, run by the commit queue's leader: no commit runs
  // beside it.
  Status EraseRangeLocked(const tree::EraseRange& erase) REQUIRES(mu_);
  // `v`: the new version, made (and charged) before the checkpoint ran.
  std::shared_ptr<Version> PublishCheckpointLocked(const Version& base,
                                                   tree::CheckpointResult* result,
                                                   std::shared_ptr<Version> v) REQUIRES(mu_);
  void SpillPinnedMemtables() REQUIRES(checkpoint_mu_) EXCLUDES(mu_);
  // After a checkpoint of `done`: a history node a transaction still holds
  // trades its memtable for a KeyRecord.
  void CompactHistory(const std::vector<std::shared_ptr<MemRef>>& done) EXCLUDES(mu_);
  void StartHistoryLocked() REQUIRES(mu_);
  // Background checkpoints, on the shared BackgroundPool.
  void ScheduleCheckpointLocked() REQUIRES(mu_);
  void BackgroundWork(bool delayed) EXCLUDES(mu_);
  void DeleteObsoleteWals(uint64_t below);
  Status CheckDataFileBesideLogs(const std::string& data_path);
  Status Recover(uint64_t* max_wal_number);
  // Recovery's state while it replays the logs.
  struct Replay {
    std::unique_ptr<mem::MemTable> table;
    uint64_t table_wal = 0;  // the first log whose records `table` may hold
    uint64_t last_seq = 0;
    uint64_t checkpoints = 0;
    uint64_t records = 0;        // whole records replayed, over every log
    bool later_records = false;  // a log after the one being replayed is not empty
    std::string cut;             // the torn tail cut, if any: "<log> at offset <n>"
  };
  Status LogHoldsRecords(const std::string& path, uint64_t number, bool* holds);
  uint64_t ReuseEmptyLogs(const std::vector<uint64_t>& wals, uint64_t* max_wal_number);
  Status ReplayWal(const std::string& file, uint64_t number, Replay* replay);
  Status ApplyReplayed(const LogBatch& batch, Replay* replay);
  Status CheckpointReplayed(uint64_t wal_number, Replay* replay);
  size_t ReplayThreshold() EXCLUDES(mu_);
  void Teardown();
  Status OpenReadOnly();
  void HoldTreeState();
  // Backup's pieces (db/backup.cc).
  struct BackupCopy;
  Status CopyForBackup(BackupCopy* copy);
  Status CopyFile(const std::string& from, uint64_t bytes, const std::string& to, BackupCopy* copy);
  Status OpenTree(const std::string& data_path, bool exists);
  Status ReadOnlyError() const;
  void JoinSharedBudget();
  void LeaveSharedBudget();
  // A member of a shared budget asked for memory (MemoryBudget::Rep's
  // release): posts CheckpointForBudget unless one is under way or the
  // memtable is too small to matter; returns the bytes it should free.
  // Takes no lock of this database: it runs inside another one's
  // allocation.
  size_t StartBudgetRelease();
  // The posted work: freezes and checkpoints the memtable, unless a writer
  // leads a commit group now (then this database's own writes decide), or
  // checkpoints the frozen one whose checkpoint ran out of memory (when a
  // writer or reader asked, `for_writer`, or a retry is due); and gives the
  // pool's free segments back.
  void CheckpointForBudget(bool for_writer) EXCLUDES(mu_);
  // Freezes the memtable unless a commit group is under way; true if it did.
  bool FreezeForBudgetLocked() REQUIRES(mu_);
  void EndBudgetRelease(bool freed);
  // MemoryBudget::Rep::ReleaseMark and FreedMark, 0 without a shared budget.
  uint64_t BudgetReleaseMark() const;
  uint64_t BudgetFreedMark() const;
  size_t FrozenBytesLocked() const REQUIRES(mu_);
  // Waits (without mu_) for the releases of the shared budget under way;
  // false when there is no shared budget, or none ended since `mark` and
  // none is under way.
  bool AwaitBudgetReleaseLocked(uint64_t mark) REQUIRES(mu_);
  // Lock-free point reads (see the comment above DBImpl::Get in db_impl.cc).
  // After every change of current_ or last_sequence_.
  void PublishReadViewLocked() REQUIRES(mu_);
  // Drops replaced read views no open section can hold; `wait`: first waits
  // for the sections that could (never from inside a section).
  void ReleaseRetiredViews(bool wait) EXCLUDES(retired_mu_);
  // Get without waiting for the memory a shared budget is freeing.
  Status GetOnce(const ReadOptions& options, std::string_view key, std::string* value);
  // False: take the locked path (a page is not cached, no epoch slot, or the
  // view changed while it was being read).
  // *miss names the uncached leaf where it stopped, if it stopped at one.
  bool GetLockFree(std::string_view key, std::string* value, Status* status,
                   tree::BTree::LeafMiss* miss);
  // Ends a lock-free read at the leaf it missed (BTree::GetLeafUnheld).
  // False: take the locked path (extents changed meanwhile, or closed).
  bool GetMissedLeaf(const tree::BTree::LeafMiss& miss, std::string_view key, std::string* value,
                     Status* status) EXCLUDES(rw_);
  std::string WalPath(uint64_t number) const;

  const Options options_;
  // The order the data file records (KeyOrderName): set once by OpenImpl.
  std::string key_order_;  // its name, as the data file records it
  KeyOrder order_;
  const std::string path_;
  // Declared before everything that holds versions, so it outlives them.
  VersionCounters counters_;
  std::shared_ptr<Env> env_;
  std::unique_ptr<FileLock> lock_;
  std::shared_ptr<alloc::SegmentPool> pool_;
  // This database in Options::memory_budget's members (null without one).
  std::shared_ptr<MemoryBudget::Rep::Member> budget_member_;
  // A release for the shared budget is posted or running.
  std::atomic<bool> budget_release_pending_{false};
  // The active memtable's size as of the last commit: read by
  // StartBudgetRelease, which may not take mu_.
  std::atomic<size_t> memtable_bytes_hint_{0};
  // The frozen memtables' size, not yet checkpointed (one whose checkpoint
  // ran out of memory is worth asking for too).
  std::atomic<size_t> frozen_bytes_hint_{0};
  std::unique_ptr<alloc::Arena> arena_;
  std::unique_ptr<tree::BTree> tree_;
  // Set at open (Options::read_ahead) and kept until destruction; stopped
  // before the tree closes.
  std::unique_ptr<tree::ReadAhead> read_ahead_;
  // Shared with every handle: it must outlive the database for them.
  std::shared_ptr<HandleRegistry> registry_ = std::make_shared<HandleRegistry>();

  // Held by Close() from start to end, before any other lock.
  port::Mutex close_mu_;
  // Held shared by every DB call in flight; exclusively by Close().
  port::SharedMutex rw_;
  bool closed_ GUARDED_BY(rw_) = false;

  port::Mutex mu_;
  port::CondVar bg_cv_{&mu_};
  std::shared_ptr<Version> current_ GUARDED_BY(mu_);
  // Memtables checkpointed away, while someone may still hold them.
  std::vector<std::weak_ptr<MemRef>> retired_mems_ GUARDED_BY(mu_);
  // The write history's node for current_->mem (see version.h).
  std::shared_ptr<WriteHistory> history_ GUARDED_BY(mu_);
  uint64_t last_sequence_ GUARDED_BY(mu_) = 0;
  // What lock-free point reads see: copies of current_ and last_sequence_.
  std::atomic<Version*> read_version_{nullptr};
  std::atomic<uint64_t> read_seq_{0};
  std::atomic<bool> read_closed_{false};
  std::shared_ptr<Version> read_ref_ GUARDED_BY(mu_);  // keeps read_version_ alive
  port::Mutex retired_mu_;                             // taken inside mu_, never the other way
  // Replaced read views with their epoch tags, in tag order.
  std::vector<std::pair<uint64_t, std::shared_ptr<Version>>> retired_views_ GUARDED_BY(retired_mu_);
  std::atomic<size_t> retired_count_{0};
  std::pmr::deque<Writer*> writers_ GUARDED_BY(mu_);  // its blocks in ObjectMemory()
  // Group gathering for synced commits (GatherSyncGroupLocked).
  size_t last_sync_group_ GUARDED_BY(mu_) = 0;
  // While a leader gathers asleep: the queue length it waits for (0: none),
  // and where RunWriter() wakes it when the queue reaches that length.
  size_t gather_want_ GUARDED_BY(mu_) = 0;
  port::CondVar gather_cv_{&mu_};
  YieldPolicy yield_policy_;             // for the waits of group commit
  std::unique_ptr<wal::WalWriter> wal_;  // used by the leader only
  uint64_t next_wal_number_ GUARDED_BY(mu_) = 1;
  // Sticky: an I/O error or corruption; the database is read-only until it
  // is reopened.
  Status bg_error_ GUARDED_BY(mu_);
  // Not sticky: the last checkpoint ran out of memory (OK once one
  // succeeds). The background thread retries it, backing off.
  Status checkpoint_memory_error_ GUARDED_BY(mu_);
  int64_t checkpoint_memory_error_ns_ GUARDED_BY(mu_) = 0;     // when (YieldPolicy's clock)
  uint64_t releases_at_memory_error_ GUARDED_BY(mu_) = 0;      // counters_.releases then
  uint64_t budget_freed_at_memory_error_ GUARDED_BY(mu_) = 0;  // BudgetFreedMark() then
  uint64_t checkpoint_attempts_ GUARDED_BY(mu_) = 0;           // finished, either way
  // The pool's budget (set at open).
  size_t budget_bytes_ = 0;
  bool checkpoint_scheduled_ GUARDED_BY(mu_) = false;
  bool checkpoint_running_ GUARDED_BY(mu_) = false;
  bool shutting_down_ GUARDED_BY(mu_) = false;
  // The active log's end after the last commit group published: what a
  // backup copies (a record past it may still be cut as failed).
  uint64_t published_wal_end_ GUARDED_BY(mu_) = 0;
  // A backup holds the checkpoint mutex: a release for the shared budget
  // would wait for it, holding a background thread.
  std::atomic<bool> backup_running_{false};
  // A read-only open's last log and where its replay ended: Verify reads
  // no further (a writer beside it may be storing a record there).
  uint64_t replayed_last_log_ = 0;
  uint64_t replayed_last_end_ = 0;
  // Close() is freezing for its last checkpoint: no commit follows, so the
  // log left behind need not be synced first (see RotateWalLocked).
  bool final_freeze_ GUARDED_BY(mu_) = false;
  // Background work posted to the shared BackgroundPool and not started:
  // a checkpoint to run now, a retry after a delay (at most one of each).
  bool bg_posted_now_ GUARDED_BY(mu_) = false;
  bool bg_posted_later_ GUARDED_BY(mu_) = false;
  int64_t bg_backoff_ns_ GUARDED_BY(mu_) = 0;  // the next retry's delay
  // Write-path scratch (Put batches; below leader_mr_): from the pool, not
  // the arena, so that it is freed and the database arena does not grow.
  std::optional<PoolResource> scratch_mr_;
  // Leader-only scratch for group batches, key lists and WAL records.
  std::optional<alloc::RecyclingResource> leader_mr_;

  port::Mutex checkpoint_mu_ ACQUIRED_BEFORE(mu_);
  // Where memtables readers keep past their checkpoint go; opened at the
  // first spill (SpillPinnedMemtables).
  std::shared_ptr<SpillFile> spill_file_ GUARDED_BY(checkpoint_mu_);

  std::atomic<size_t> open_transactions_{0};
  std::atomic<size_t> open_snapshots_{0};
  std::atomic<uint64_t> checkpoints_{0};
  std::atomic<uint64_t> wal_syncs_{0};
  std::atomic<uint64_t> commit_groups_{0};
  std::atomic<uint64_t> wal_bytes_{0};
  std::atomic<uint64_t> write_slowdowns_{0};
  std::atomic<uint64_t> write_stalls_{0};
  std::atomic<uint64_t> stall_micros_{0};
  std::atomic<uint64_t> memory_limit_errors_{0};
  std::atomic<uint64_t> checkpoint_memory_failures_{0};
  std::atomic<uint64_t> history_records_{0};
  std::atomic<uint64_t> memtable_spills_{0};
  std::atomic<uint64_t> spill_failures_{0};
  std::atomic<size_t> history_record_bytes_{0};  // live KeyRecords
  uint64_t replay_checkpoints_ = 0;
  std::string recovery_cut_;  // set by Recover, then read-only
};

}  // namespace arenakv

#endif  // ARENAKV_DB_DB_IMPL_H_
