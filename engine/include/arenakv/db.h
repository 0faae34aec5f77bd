// arenakv: an embedded key-value store whose page cache and transaction
// buffers live in arena-scoped memory pools, given back to the operating
// system the moment a database or a transaction closes.
//
//   std::unique_ptr<arenakv::DB> db;
//   arenakv::Status s = arenakv::DB::Open(arenakv::Options{}, "/path/db", &db);
//   if (s.ok()) s = db->Put(arenakv::WriteOptions{}, "key", "value");
//   std::string v;
//   if (s.ok()) s = db->Get(arenakv::ReadOptions{}, "key", &v);
//   if (s.ok()) s = db->Close();
//
// Thread safety: a DB is safe for concurrent use from many threads. Readers
// never block writers. Close() waits for calls in flight on other threads,
// then turns every remaining handle (iterator, transaction, snapshot) into a
// closed one whose calls return Closed.

#ifndef ARENAKV_DB_H_
#define ARENAKV_DB_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "arenakv/alloc/stats.h"
#include "arenakv/comparator.h"
#include "arenakv/env.h"
#include "arenakv/iterator.h"
#include "arenakv/options.h"
#include "arenakv/status.h"
#include "arenakv/transaction.h"
#include "arenakv/write_batch.h"

namespace arenakv {

// A consistent read view; pass it in ReadOptions::snapshot. Destroying it
// releases the view (and the old page versions only it kept alive).
// Only the database makes snapshots (GetSnapshot()); the class cannot be
// derived from outside the engine, since ReadOptions hands it back in.
class Snapshot {
 public:
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;
  virtual ~Snapshot() = default;
  virtual uint64_t sequence() const = 0;

 private:
  friend class SnapshotImpl;  // the engine's one implementation
  Snapshot() = default;
};

struct CacheStats {
  size_t capacity_bytes = 0;
  size_t used_bytes = 0;
  size_t pages = 0;
  size_t pinned_pages = 0;
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t evictions = 0;
  uint64_t read_ahead_pages = 0;  // pages read by Options::read_ahead
  // Misses of a full cache answered by decompressing the one block of a
  // leaf that holds the key, the leaf left uncached (seen once so far).
  uint64_t block_reads = 0;
  // Of used_bytes: the table of those leaves' heads (header and block
  // index), so that a miss of one reads its block alone.
  size_t leaf_head_bytes = 0;
};

struct DBStats {
  alloc::PoolStats pool;
  std::vector<alloc::ArenaStats> arenas;  // the database's arena tree
  CacheStats cache;
  // The data file mapped for reads (Options::map_reads), charged to the
  // budget; 0 when off, when the file fits the cache or the budget had no
  // room.
  size_t mapped_bytes = 0;
  uint64_t mapped_drops = 0;  // times the budget took the mapping back
  size_t memtable_bytes = 0;  // buffered changes not yet checkpointed
  // Old state kept alive for readers (snapshots, iterators, transactions),
  // released when the last of them ends.
  size_t live_versions = 0;       // Version objects (the current one included)
  size_t live_memtables = 0;      // active, frozen, and old ones kept for readers
  size_t live_tree_roots = 0;     // checkpointed tree roots still readable
  size_t retained_old_pages = 0;  // pages replaced by checkpoints, kept for old roots
  size_t open_transactions = 0;
  size_t open_snapshots = 0;
  uint64_t last_sequence = 0;
  // Keys at once, without a scan: those of the last checkpoint plus every
  // version written since (an overwrite or a delete counts as one more, so
  // it errs high until the next checkpoint; exact right after one).
  uint64_t approximate_keys = 0;
  uint64_t checkpoints = 0;
  uint64_t wal_bytes = 0;
  uint64_t data_file_bytes = 0;
  uint64_t wal_syncs = 0;
  uint64_t commit_groups = 0;
  // The memory budget at work (docs/api.md, "Memory budget").
  size_t memtable_budget_bytes = 0;         // the memtables' share of the budget
  uint64_t write_slowdowns = 0;             // commit groups delayed while a checkpoint ran
  uint64_t write_stalls = 0;                // commits that waited for a checkpoint to free memory
  uint64_t stall_micros = 0;                // time spent in both
  uint64_t memory_limit_errors = 0;         // commits refused with MemoryLimit (nothing applied)
  uint64_t checkpoint_memory_failures = 0;  // checkpoints that ran out of memory (retried)
  uint64_t recovery_checkpoints = 0;        // checkpoints Open took to replay the logs in budget
  // The budget shared with other databases (Options::memory_budget); all 0
  // without one. Its capacity, what every database on it holds now, what
  // this one holds (its pool's committed and charged bytes), and how many
  // databases draw from it.
  size_t shared_budget_capacity_bytes = 0;
  size_t shared_budget_used_bytes = 0;
  size_t shared_budget_own_bytes = 0;
  size_t shared_budget_databases = 0;
  // What Open cut from the end of the last log, torn by a crash: "" if
  // nothing, else "<log file> at offset <n>" (what followed was not a whole
  // commit, so no acknowledged synced commit was in it).
  std::string recovery_cut;
  // Checkpointed memtables an open transaction validated against, kept as
  // their keys only (not pinned whole): how many were made, bytes live now.
  uint64_t history_records = 0;
  size_t history_record_bytes = 0;
  // Checkpointed memtables readers still held, moved to a temporary file so
  // that they cost disk, not memory: how many were moved, the bytes on disk
  // now, and spills that failed (disk full: they stayed in memory).
  uint64_t memtable_spills = 0;
  size_t spilled_bytes = 0;
  uint64_t spill_failures = 0;
};

// Keys from start up to, not including, limit (GetApproximateSizes).
struct Range {
  std::string_view start;
  std::string_view limit;
};

struct BackupOptions {
  // Called as the copy goes, with the bytes copied and the bytes to copy;
  // returning false stops it: Backup removes what it wrote and returns
  // Aborted. May be null.
  bool (*progress)(uint64_t done, uint64_t total, void* arg) = nullptr;
  void* arg = nullptr;
};

// What Verify() found.
struct VerifyReport {
  uint64_t pages = 0;
  uint64_t keys = 0;
  uint64_t wal_records = 0;
};

class DB {
 public:
  // Opens (or creates, with create_if_missing) the database in directory
  // `path`. Busy when another process or handle has it open; Corruption
  // naming the file and page when its files are damaged.
  static Status Open(const Options& options, const std::string& path, std::unique_ptr<DB>* db);

  DB() = default;
  DB(const DB&) = delete;
  DB& operator=(const DB&) = delete;
  // Closes if still open (errors are dropped; call Close() to see them).
  virtual ~DB() = default;

  virtual Status Put(const WriteOptions& options, std::string_view key, std::string_view value) = 0;
  virtual Status Delete(const WriteOptions& options, std::string_view key) = 0;
  // Deletes every key in [begin, end) atomically and durably (whatever
  // options.sync says): commits wait while it runs, and every key written
  // before it goes. It runs as a checkpoint that drops the pages wholly
  // inside the range without reading their entries, so its cost grows with
  // the pages at the range's edges and the number of pages inside, not with
  // the keys. Transactions that began before it and read, wrote or scanned
  // into the range get Conflict at commit. On an error nothing is deleted.
  // begin > end is InvalidArgument; begin == end deletes nothing.
  virtual Status DeleteRange(const WriteOptions& options, std::string_view begin,
                             std::string_view end) = 0;
  // Applies every operation of `batch` atomically: after a crash all of them
  // are there or none. An empty batch is OK and writes nothing. The batch
  // may be reused (Clear) or destroyed once Write returns.
  virtual Status Write(const WriteOptions& options, WriteBatch* batch) = 0;
  // NotFound when the key is absent.
  virtual Status Get(const ReadOptions& options, std::string_view key, std::string* value) = 0;
  virtual std::unique_ptr<Iterator> NewIterator(const ReadOptions& options) = 0;

  virtual std::unique_ptr<Transaction> BeginTransaction(
      const WriteOptions& options, const TransactionOptions& txn_options = {}) = 0;
  virtual std::unique_ptr<Snapshot> GetSnapshot() = 0;

  // Writes every buffered change into the B+tree file and switches the meta
  // block to it; the write-ahead log is then recycled.
  virtual Status Checkpoint() = 0;

  // Writes a copy of the database as of the call into the directory `path`
  // (created; InvalidArgument if it exists and is not empty): its data file
  // as of the last checkpoint and the logs after it, up to the last commit
  // acknowledged when the call began, synced, a database that opens on its
  // own. Readers and writers go on meanwhile; checkpoints wait until the
  // copy is made (so writers stall only if the memtables fill up before).
  // NotSupported on a read-only database.
  // On failure, or when stopped, what it wrote is removed again.
  virtual Status Backup(const std::string& path, const BackupOptions& options = {}) = 0;
  // Reads every page and WAL record and checks checksums and tree order.
  // `progress` (may be null) is called with (done, total) page counts;
  // returning false stops the check, and Verify returns Aborted.
  virtual Status Verify(VerifyReport* report,
                        bool (*progress)(uint64_t done, uint64_t total, void* arg) = nullptr,
                        void* arg = nullptr) = 0;

  virtual Status GetStats(DBStats* stats) = 0;
  // Multi-line human-readable memory report (pool, arenas, cache).
  virtual std::string StatsReport() = 0;
  // A named fact about the database as text; NotFound for an unknown name.
  //   arenakv.stats            StatsReport()
  //   arenakv.memory           the pool: committed, in use, budget (one line)
  //   arenakv.cache            the page cache: size, pages, hits, misses
  //   arenakv.checkpoints      checkpoints so far, the last sequence covered
  //   arenakv.approximate-keys   DBStats::approximate_keys
  //   arenakv.memory-bytes     bytes the database holds in memory (committed)
  //   arenakv.cache-bytes      bytes of the page cache in use
  //   arenakv.memtable-bytes   changes not yet checkpointed
  //   arenakv.data-file-bytes  bytes of live pages in the data file
  //   arenakv.last-sequence    the last commit's sequence number
  // (the -bytes, -keys and -sequence ones are plain decimal numbers).
  virtual Status GetProperty(std::string_view name, std::string* value) = 0;
  // Bytes the keys of each range take, sizes[i] for ranges[i], without
  // reading them: the checkpointed tree's share of its live pages, from its
  // internal pages alone (precise to about one leaf: a range inside one
  // leaf may count as 0), plus the memtables' bytes in the range (from
  // their sorted runs' positions). A range whose limit does not come after
  // its start takes 0.
  virtual Status GetApproximateSizes(const Range* ranges, size_t n, uint64_t* sizes) = 0;

  // Checkpoints, closes every arena and the memory pool. Idempotent.
  virtual Status Close() = 0;
};

// Deletes a closed database's files and directory.
Status DestroyDB(const std::string& path, const Options& options = {});

// What RepairDB salvaged, and what it could not.
struct RepairReport {
  uint64_t keys = 0;              // keys the repaired database holds
  uint64_t pages_read = 0;        // tree pages salvaged
  uint64_t pages_lost = 0;        // tree pages that failed (what hung below them is lost too)
  uint64_t log_records = 0;       // log records applied
  uint64_t log_bytes_lost = 0;    // log bytes passed over as damaged
  std::string lost_dir;           // where the original files were moved
  std::vector<std::string> lost;  // what was lost or may have been, one line each
};

// Salvages what can be read of a damaged database (not open anywhere) into
// a consistent one that opens: the tree of the newest meta block that
// verifies (the other one when it is damaged), skipping pages that fail
// their checks with everything below them, then the commits of the logs
// after it, passing over damaged records. What the repaired database holds
// is what could be read; it may miss commits an intact database had, and
// the report says where. The original files are moved to a "lost"
// directory inside the database's, for inspection. `progress` (may be
// null) is called with the bytes read and the bytes to read; returning
// false stops the repair before anything is changed (Aborted). Busy while
// the database is open.
Status RepairDB(const std::string& path, const Options& options = {},
                RepairReport* report = nullptr,
                bool (*progress)(uint64_t done, uint64_t total, void* arg) = nullptr,
                void* arg = nullptr);

// The most background threads the process runs at once, shared by every
// open database for its checkpoints and read-ahead; 2 by default (at least
// 1). They run only while there is work: an idle process holds none.
// Lowering it lets threads already running finish what is queued.
void SetBackgroundThreads(int threads);

}  // namespace arenakv

#endif  // ARENAKV_DB_H_
