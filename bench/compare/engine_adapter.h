// EngineAdapter: the small surface the comparison program drives on each
// engine (arenakv and RocksDB), so every workload is written once and both
// engines run exactly the same loop with the same keys and values.
//
// Any unexpected error ends the process with a message (Die): a benchmark that
// skips failed operations would report speed for work it did not do. Each
// adapter lives in a forked child process that runs one workload.
//
// Thread safety: Put/Get/NewIterator/BeginTransaction may be called from
// several threads at once (both engines allow it); Open/Persist/Close only
// while no other call is in flight. An iterator or transaction is used by one
// thread at a time.

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
  // then rolled back and counted by the caller).
  virtual bool Commit() = 0;
};

class EngineAdapter {
 public:
  virtual ~EngineAdapter() = default;

  virtual const char* name() const = 0;

  // Opens (creating when missing) the database in `dir`. `transactional`
  // selects the transaction-capable flavour where an engine has two
  // (RocksDB: OptimisticTransactionDB); arenakv has one kind of database.
  virtual void Open(const std::string& dir, bool transactional) = 0;
  virtual void Put(std::string_view key, std::string_view value, bool sync) = 0;
  // False when the key is absent.
  virtual bool Get(std::string_view key, std::string* value) = 0;
  virtual std::unique_ptr<AdapterIterator> NewIterator() = 0;
  // Requires Open(..., transactional = true).
  virtual std::unique_ptr<AdapterTransaction> BeginTransaction(bool sync) = 0;
  // Moves everything written so far out of the log into the engine's data
  // files and waits until background work (flushes, compactions) is idle.
  virtual void Persist() = 0;
  virtual void Close() = 0;
};

// Memory settings every adapter opens its database with (set from the
// command line before the children fork).
struct MemorySettings {
  size_t cache_bytes = size_t{256} << 20;
  // arenakv's Options::memory_budget_bytes (0: its default). RocksDB has no
  // equivalent bound on everything; it keeps its defaults.
  size_t memory_budget_bytes = 0;
};
MemorySettings& Memory();

std::unique_ptr<EngineAdapter> NewArenakvAdapter();
std::unique_ptr<EngineAdapter> NewRocksdbAdapter();

}  // namespace arenakv::compare

#endif  // ARENAKV_BENCH_COMPARE_ENGINE_ADAPTER_H_
