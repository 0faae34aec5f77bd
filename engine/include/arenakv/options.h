// Options for opening a database, reading, writing and transactions.
//
// All are plain aggregates with defaults that suit a new user; copy and
// change the fields you need. Thread safety: values, no shared state.

#ifndef ARENAKV_OPTIONS_H_
#define ARENAKV_OPTIONS_H_

#include <cstddef>
#include <cstdint>
#include <memory>

namespace arenakv {

class Comparator;
class Env;
class MemoryBudget;
class Snapshot;

// Limits on what one record may hold; beyond them InvalidArgument.
inline constexpr size_t kMaxKeyBytes = 16 * 1024;
inline constexpr size_t kMaxValueBytes = 1024 * 1024;

// Recovery's choice at a log that a crash or a power loss cut short. Damage
// that no crash explains (a damaged record followed by a synced one, a torn
// log before later logs, a damaged page or meta block) is Corruption under
// both.
enum class WalRecovery {
  // Cut the log at the damage and open at the last whole commit before it,
  // a prefix of the commit order holding every commit acknowledged with
  // sync=true. DBStats::recovery_cut says what was cut. The default.
  kPointInTime,
  // Refuse instead: Open returns Corruption naming the log and offset and
  // leaves that log as it is, so it can be examined (or copied) first; a
  // later open with kPointInTime cuts it. Recovery may already have
  // checkpointed the commits of earlier logs into the data file, which loses
  // nothing.
  kAbsoluteConsistency,
};

struct Options {
  // Open to read only: no file is created, written or deleted (no LOCK, no
  // log), so it works on a read-only directory and beside a writer, even one
  // in another process. It reads the state as of the open: the last durable
  // checkpoint plus the logs after it, replayed in memory (a torn tail is
  // left as it is, not cut). Put, Delete, Write, Checkpoint and transaction
  // commits return NotSupported. Beside a writer, the pages of that state
  // stay in the file only until the writer's next checkpoint, which frees
  // (and may punch out or reuse) them: after it, what the open holds in
  // memory (its cache, the replayed logs) still reads, and a read that needs
  // a page from the file returns Busy ("reopen to read the newer state"),
  // never a page of another state. Keep such opens short and reopen to read
  // a newer state (Backup makes a copy that stays consistent).
  // create_if_missing is ignored: a missing database is NotFound.
  bool read_only = false;
  // Create the database directory and files when they do not exist.
  bool create_if_missing = true;
  // Fail with InvalidArgument when the database already exists.
  bool error_if_exists = false;
  // The order of the keys (arenakv/comparator.h); nullptr = bytewise.
  const Comparator* comparator = nullptr;

  // Bound on the page cache (decoded B+tree pages), in bytes.
  size_t cache_bytes = size_t{64} << 20;
  // When a point read has to read a leaf from disk and the cache has free
  // room, read the leaves next to it too, on a background thread (which runs
  // only while there is such work). It never evicts a page to make room.
  bool read_ahead = true;
  // Read the data file through a read-only mapping, as LMDB does, once it
  // is larger than the cache: a point read that misses the cache then
  // copies its block out of the OS's page cache instead of making a system
  // call (about 1.5x the point reads at ten times the cache, docs/
  // benchmarks.md). The mapped bytes count against the memory budget, only
  // while it has room for them, and are the first memory it takes back
  // (DBStats::mapped_bytes). The price: an I/O error reading the file, or
  // the file cut short by another program, ends the process with SIGBUS
  // instead of returning a Status, as in every engine that maps its files.
  bool map_reads = false;
  // One budget for everything the database holds in memory: page cache,
  // memtables and every transaction's buffers. 0 = 4 x cache_bytes + 512 MiB.
  size_t memory_budget_bytes = 0;
  // A budget shared with other databases (arenakv/memory_budget.h): this
  // database draws its cache, memtables and buffers from it too. With it,
  // memory_budget_bytes = 0 means no limit of the database's own.
  std::shared_ptr<MemoryBudget> memory_budget;

  // Checkpoint trigger: once the active write-ahead log holds this many
  // bytes, its memtable is frozen and checkpointed into the B+tree file (and
  // the log then deleted), which bounds what an open after a crash replays.
  // The memory budget may trigger it sooner: a memtable never outgrows its
  // share of the budget.
  size_t checkpoint_wal_bytes = size_t{64} << 20;
  // Run checkpoints on a background thread (otherwise only on Checkpoint(),
  // Close() and when the write path must make room).
  bool background_checkpoints = true;

  // LZ4-compress pages on disk and large WAL batches.
  bool compression = true;
  // Target size of a B+tree page; a page holding a large value may be larger.
  size_t page_bytes = 16 * 1024;

  // Pages read from disk are always checked against their checksums; this
  // re-checks cached pages at every read too, as ReadOptions::verify_checksums
  // does for one read, so that memory corrupted after a page was read is
  // found (at the cost of a checksum per page visited).
  bool paranoid_checks = false;

  // What recovery does when a log ends in a torn or damaged record that no
  // synced record follows: what a crash or a power loss leaves behind.
  WalRecovery wal_recovery = WalRecovery::kPointInTime;

  // The file layer. nullptr = the POSIX file system. Tests inject faults here.
  std::shared_ptr<Env> env;
};

// Which leaves an iterator keeps in the page cache when it reads them from
// disk (internal pages and point reads always fill the cache).
enum class ScanCaching {
  // Every leaf until the scan turns out to be a bulk scan: once 64 leaves in
  // a row were not cached, it reads the rest into its own buffers, so one
  // pass over cold data neither pushes the working set out of the cache nor
  // takes fresh memory for pages read once. Cached leaves are still used.
  kAuto,
  // Every leaf it reads (a scan meant to warm the cache).
  kAlways,
  // None.
  kNever,
};

struct ReadOptions {
  // Read as of this snapshot (from DB::GetSnapshot()); nullptr = latest.
  const Snapshot* snapshot = nullptr;
  // Re-verify checksums of pages served from the cache as well.
  bool verify_checksums = false;
  // Iterators only: see ScanCaching.
  ScanCaching scan_caching = ScanCaching::kAuto;
};

struct WriteOptions {
  // Return only after the write is on stable storage (fdatasync). Without it
  // a write survives a killed process but not a power failure.
  bool sync = false;
};

enum class IsolationLevel { kSnapshot, kSerializable };

struct TransactionOptions {
  // kSnapshot: first committer wins on write-write conflicts (write skew is
  // possible). kSerializable: the read set is validated too.
  IsolationLevel isolation = IsolationLevel::kSnapshot;
  // Bound on the transaction's buffers (write set, read set, iterators).
  size_t buffer_budget_bytes = size_t{512} << 20;
};

}  // namespace arenakv

#endif  // ARENAKV_OPTIONS_H_
