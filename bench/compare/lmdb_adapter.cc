// The LMDB anchor of the comparison (liblmdb, C API), used the way LMDB's
// own documentation and its users do:
//
// - Every Put is its own write transaction (begin, put, commit). LMDB
//   serializes writers on one lock and has no group commit, so a transaction
//   of the transactional workloads is one write transaction held from
//   BeginTransaction to Commit, and Commit never loses a conflict.
// - Durability. The environment is opened with MDB_NOSYNC: an unsynced
//   commit writes its pages and its meta page to the OS (they survive a
//   crash of the process, not of the machine), like RocksDB's sync=false.
//   A synced commit (sync=true) clears MDB_NOSYNC first, so that it is
//   LMDB's real durable commit: fdatasync of the data pages, then the meta
//   page written through the O_DSYNC descriptor (two syncs, in that order).
//   A single mdb_env_sync() after an unsynced commit would be cheaper but
//   would not order the meta page after the data it points to, so a crash
//   could leave a meta page pointing at unwritten pages: not what an LMDB
//   user asking for durability gets. The flag is changed only while this
//   adapter holds the write transaction (mdb_txn_commit reads it under the
//   same lock), and only when the mode changes.
// - Reads. A thread keeps one read-only transaction, reset after each Get
//   and renewed for the next (MDB_NOTLS ties it to the object, not to the
//   thread), so a reader never pins an old snapshot between reads.
//   Iterators use their own read-only transaction and a cursor.
// - No cache setting: LMDB reads through its memory map, i.e. through the
//   OS page cache, so the comparison's cache size does not apply; pages of
//   the map a process touched count in its RSS while the map is open.
// - MDB_NORDAHEAD, as LMDB's documentation advises for random reads of a
//   database larger than the memory it gets: with read-ahead on, under
//   compare's --memory_limit_mib, every page fault read ~128 KiB and random
//   reads fell to 154/s (20 s, 3M keys, 96 MiB). It changes nothing while
//   the file fits in the page cache.
// - The map is 32 GiB of address space; without MDB_WRITEMAP the file only
//   grows as pages are written, so it stays sparse in effect.
// - Persist(): mdb_env_sync(env, 1).

#include <lmdb.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

#include "compare/engine_adapter.h"

namespace arenakv::compare {
namespace {

constexpr size_t kMapBytes = size_t{32} << 30;

void Check(int rc, const char* what) {
  if (rc != MDB_SUCCESS) Die(std::string("lmdb ") + what + ": " + mdb_strerror(rc));
}

MDB_val Val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }

std::string_view View(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

// Tells apart the adapters opened in this process, so a thread's cached
// read transaction is never used with an environment it does not belong to.
std::atomic<uint64_t> next_open_id{1};

struct ThreadReader {
  uint64_t open_id = 0;
  MDB_txn* txn = nullptr;  // reset between reads
};
thread_local ThreadReader thread_reader;

class LmdbIterator final : public AdapterIterator {
 public:
  LmdbIterator(MDB_env* env, MDB_dbi dbi) {
    Check(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn_), "iterator txn_begin");
    Check(mdb_cursor_open(txn_, dbi, &cursor_), "cursor_open");
  }
  ~LmdbIterator() override {
    mdb_cursor_close(cursor_);
    mdb_txn_abort(txn_);
  }
  void SeekToFirst() override { Step(MDB_FIRST); }
  bool Valid() const override { return valid_; }
  void Next() override { Step(MDB_NEXT); }
  std::string_view key() const override { return View(key_); }
  std::string_view value() const override { return View(value_); }
  void CheckStatus() const override { Check(status_, "cursor_get"); }

 private:
  void Step(MDB_cursor_op op) {
    int rc = mdb_cursor_get(cursor_, &key_, &value_, op);
    valid_ = rc == MDB_SUCCESS;
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) status_ = rc;
  }

  MDB_txn* txn_ = nullptr;
  MDB_cursor* cursor_ = nullptr;
  MDB_val key_{};
  MDB_val value_{};
  bool valid_ = false;
  int status_ = MDB_SUCCESS;
};

class LmdbAdapter;

// One write transaction; it holds LMDB's writer lock until Commit.
class LmdbTransaction final : public AdapterTransaction {
 public:
  LmdbTransaction(LmdbAdapter* db, bool sync);
  ~LmdbTransaction() override {
    if (txn_ != nullptr) mdb_txn_abort(txn_);
  }
  void Put(std::string_view key, std::string_view value) override;
  bool Commit() override;

 private:
  LmdbAdapter* db_;
  MDB_txn* txn_ = nullptr;
};

class LmdbAdapter final : public EngineAdapter {
 public:
  ~LmdbAdapter() override {
    if (env_ != nullptr) Close();
  }

  const char* name() const override { return "lmdb"; }

  void Open(const std::string& dir, bool /*transactional*/) override {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) Die("lmdb: cannot create " + dir + ": " + ec.message());
    Check(mdb_env_create(&env_), "env_create");
    Check(mdb_env_set_mapsize(env_, kMapBytes), "env_set_mapsize");
    Check(mdb_env_set_maxreaders(env_, 126), "env_set_maxreaders");
    Check(mdb_env_open(env_, dir.c_str(), MDB_NOSYNC | MDB_NOTLS | MDB_NORDAHEAD, 0644),
          "env_open");
    synced_mode_ = false;
    MDB_txn* txn = nullptr;
    Check(mdb_txn_begin(env_, nullptr, 0, &txn), "txn_begin");
    Check(mdb_dbi_open(txn, nullptr, 0, &dbi_), "dbi_open");
    Check(mdb_txn_commit(txn), "txn_commit");
    open_id_ = next_open_id.fetch_add(1);
  }

  void Put(std::string_view key, std::string_view value, bool sync) override {
    MDB_txn* txn = BeginWrite(sync);
    PutIn(txn, key, value);
    Check(mdb_txn_commit(txn), "txn_commit");
  }

  bool Get(std::string_view key, std::string* value) override {
    MDB_txn* txn = ThreadReadTxn();
    MDB_val k = Val(key), v;
    int rc = mdb_get(txn, dbi_, &k, &v);
    if (rc == MDB_SUCCESS) value->assign(static_cast<const char*>(v.mv_data), v.mv_size);
    mdb_txn_reset(txn);
    if (rc == MDB_NOTFOUND) return false;
    Check(rc, "get");
    return true;
  }

  std::unique_ptr<AdapterIterator> NewIterator() override {
    return std::make_unique<LmdbIterator>(env_, dbi_);
  }

  std::unique_ptr<AdapterTransaction> BeginTransaction(bool sync) override {
    return std::make_unique<LmdbTransaction>(this, sync);
  }
  std::unique_ptr<AdapterTransaction> NewWriteBatch(bool sync) override {
    return BeginTransaction(sync);
  }

  void Persist() override { Check(mdb_env_sync(env_, 1), "env_sync"); }

  void Close() override {
    if (env_ == nullptr) return;
    {
      std::lock_guard<std::mutex> lock(readers_mu_);
      for (MDB_txn* txn : readers_) mdb_txn_abort(txn);
      readers_.clear();
    }
    mdb_dbi_close(env_, dbi_);
    mdb_env_close(env_);
    env_ = nullptr;
    open_id_ = 0;
  }

  // Begins a write transaction (taking LMDB's writer lock) and, holding it,
  // puts the environment in the durability mode `sync` asks for.
  MDB_txn* BeginWrite(bool sync) {
    MDB_txn* txn = nullptr;
    Check(mdb_txn_begin(env_, nullptr, 0, &txn), "txn_begin");
    if (sync != synced_mode_) {
      Check(mdb_env_set_flags(env_, MDB_NOSYNC, sync ? 0 : 1), "env_set_flags");
      synced_mode_ = sync;
    }
    return txn;
  }

  void PutIn(MDB_txn* txn, std::string_view key, std::string_view value) {
    MDB_val k = Val(key), v = Val(value);
    int rc = mdb_put(txn, dbi_, &k, &v, 0);
    if (rc == MDB_MAP_FULL) Die("lmdb: the 32 GiB map is full (raise kMapBytes)");
    Check(rc, "put");
  }

 private:
  // The calling thread's read-only transaction, renewed (it is kept reset
  // between reads).
  MDB_txn* ThreadReadTxn() {
    ThreadReader& r = thread_reader;
    if (r.open_id != open_id_) {
      r.open_id = open_id_;
      Check(mdb_txn_begin(env_, nullptr, MDB_RDONLY, &r.txn), "read txn_begin");
      std::lock_guard<std::mutex> lock(readers_mu_);
      readers_.push_back(r.txn);
      return r.txn;
    }
    Check(mdb_txn_renew(r.txn), "txn_renew");
    return r.txn;
  }

  MDB_env* env_ = nullptr;
  MDB_dbi dbi_ = 0;
  uint64_t open_id_ = 0;
  // The durability mode MDB_NOSYNC is in; read and changed only while
  // holding a write transaction.
  bool synced_mode_ = false;
  std::mutex readers_mu_;
  std::vector<MDB_txn*> readers_;  // every thread's read transaction, for Close
};

LmdbTransaction::LmdbTransaction(LmdbAdapter* db, bool sync)
    : db_(db), txn_(db->BeginWrite(sync)) {}

void LmdbTransaction::Put(std::string_view key, std::string_view value) {
  db_->PutIn(txn_, key, value);
}

bool LmdbTransaction::Commit() {
  MDB_txn* txn = txn_;
  txn_ = nullptr;
  Check(mdb_txn_commit(txn), "txn_commit");
  return true;  // writers are serialized: nothing to conflict with
}

}  // namespace

std::unique_ptr<EngineAdapter> NewLmdbAdapter() { return std::make_unique<LmdbAdapter>(); }

}  // namespace arenakv::compare
