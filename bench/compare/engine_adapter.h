// EngineAdapter: the small surface the comparison program drives on each
// engine (arenakv and the anchors it is measured against: RocksDB, LevelDB,
// LMDB and WiredTiger), so every workload is written once and every engine
// runs exactly the same loop with the same keys and values.
//
// Any unexpected error ends the process with a message (Die): a benchmark that
// skips failed operations would report speed for work it did not do. Each
// adapter lives in a forked child process that runs one workload.
//
// Thread safety: Put/Get/NewIterator/BeginTransaction may be called from
// several threads at once (every engine allows it); Open/Persist/Close only
// while no other call is in flight. An iterator or transaction is used only by
// the thread that created it (WiredTiger's sessions belong to one thread).

#ifndef ARENAKV_BENCH_COMPARE_ENGINE_ADAPTER_H_
#define ARENAKV_BENCH_COMPARE_ENGINE_ADAPTER_H_

#include <memory>
#include <string>
#include <string_view>

namespace arenakv::compare {

// Prints "compare: <what>" to stderr and ends the process with exit code 2.
[[noreturn]] void Die(const std::string& what);

class AdapterIterator {
 public:
  virtual ~AdapterIterator() = default;
  virtual void SeekToFirst() = 0;
  virtual bool Valid() const = 0;
  virtual void Next() = 0;
  virtual std::string_view key() const = 0;
  virtual std::string_view value() const = 0;
  // Dies when the iteration stopped on an error rather than at the end.
  virtual void CheckStatus() const = 0;
};

class AdapterTransaction {
 public:
  virtual ~AdapterTransaction() = default;
  virtual void Put(std::string_view key, std::string_view value) = 0;
  // True when committed; false when it lost a write-write conflict (it is
  // then rolled back and counted by the caller). Engines that serialize
  // writers (LMDB) or have no isolation (LevelDB's WriteBatch) never lose.
  virtual bool Commit() = 0;
};

class EngineAdapter {
 public:
  virtual ~EngineAdapter() = default;

  virtual const char* name() const = 0;

  // Opens (creating when missing) the database in `dir`. `transactional`
  // selects the transaction-capable flavour where an engine has two
  // (RocksDB: OptimisticTransactionDB); the other engines have one kind of
  // database.
  virtual void Open(const std::string& dir, bool transactional) = 0;
  virtual void Put(std::string_view key, std::string_view value, bool sync) = 0;
  // False when the key is absent.
  virtual bool Get(std::string_view key, std::string* value) = 0;
  virtual std::unique_ptr<AdapterIterator> NewIterator() = 0;
  // Requires Open(..., transactional = true).
  virtual std::unique_ptr<AdapterTransaction> BeginTransaction(bool sync) = 0;
  // An atomic group of puts with no isolation: the engine's WriteBatch where
  // it has one (arenakv, RocksDB, LevelDB), else its transaction (LMDB's
  // writers are serialized anyway; WiredTiger). Commit always returns true.
  virtual std::unique_ptr<AdapterTransaction> NewWriteBatch(bool sync) = 0;
  // Moves everything written so far out of the log into the engine's data
  // files and waits until background work (flushes, compactions) is idle.
  virtual void Persist() = 0;
  virtual void Close() = 0;
};

// Memory settings every adapter opens its database with (set from the
// command line before the children fork).
struct MemorySettings {
  // The block cache of arenakv, RocksDB and LevelDB and WiredTiger's cache.
  // LMDB has none: it reads through its memory map (the OS page cache).
  size_t cache_bytes = size_t{256} << 20;
  // arenakv's Options::memory_budget_bytes (0: its default). The anchors
  // have no equivalent bound on everything; they keep their defaults.
  size_t memory_budget_bytes = 0;
  // arenakv's Options::map_reads (LevelDB and LMDB map their files by
  // default; RocksDB and WiredTiger do not).
  bool map_reads = false;
};
MemorySettings& Memory();

std::unique_ptr<EngineAdapter> NewArenakvAdapter();
std::unique_ptr<EngineAdapter> NewRocksdbAdapter();
// The optional anchors: defined only when the engine was found at configure
// time (ARENAKV_COMPARE_HAVE_LEVELDB, _LMDB, _WIREDTIGER).
std::unique_ptr<EngineAdapter> NewLeveldbAdapter();
std::unique_ptr<EngineAdapter> NewLmdbAdapter();
std::unique_ptr<EngineAdapter> NewWiredtigerAdapter();

}  // namespace arenakv::compare

#endif  // ARENAKV_BENCH_COMPARE_ENGINE_ADAPTER_H_
