// The RocksDB side of the comparison, configured like db_bench's defaults
// plus the settings the comparison fixes for both engines: a 256 MiB LRU block
// cache, LZ4 compression, a 10-bit Bloom filter, the default write buffer,
// the WAL on and unsynced unless a workload asks for sync.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "compare/engine_adapter.h"
#include "rocksdb/cache.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/optimistic_transaction_db.h"
#include "rocksdb/utilities/transaction.h"
#include "rocksdb/write_batch.h"

namespace arenakv::compare {
namespace {

void Check(const rocksdb::Status& s, const char* what) {
  if (!s.ok()) Die(std::string("rocksdb ") + what + ": " + s.ToString());
}

class RocksdbIterator final : public AdapterIterator {
 public:
  explicit RocksdbIterator(rocksdb::Iterator* it) : it_(it) {}
  void SeekToFirst() override { it_->SeekToFirst(); }
  bool Valid() const override { return it_->Valid(); }
  void Next() override { it_->Next(); }
  std::string_view key() const override {
    rocksdb::Slice k = it_->key();
    return {k.data(), k.size()};
  }
  std::string_view value() const override {
    rocksdb::Slice v = it_->value();
    return {v.data(), v.size()};
  }
  void CheckStatus() const override { Check(it_->status(), "iterator"); }

 private:
  std::unique_ptr<rocksdb::Iterator> it_;
};

class RocksdbTransaction final : public AdapterTransaction {
 public:
  explicit RocksdbTransaction(rocksdb::Transaction* txn) : txn_(txn) {}
  void Put(std::string_view key, std::string_view value) override {
    Check(txn_->Put(rocksdb::Slice(key.data(), key.size()),
                    rocksdb::Slice(value.data(), value.size())),
          "txn put");
  }
  bool Commit() override {
    rocksdb::Status s = txn_->Commit();
    // Optimistic transactions report a conflict as Busy (or TryAgain when
    // the memtable history was too short to check).
    if (s.IsBusy() || s.IsTryAgain()) {
      txn_->Rollback().PermitUncheckedError();
      return false;
    }
    Check(s, "txn commit");
    return true;
  }

 private:
  std::unique_ptr<rocksdb::Transaction> txn_;
};

class RocksdbBatch final : public AdapterTransaction {
 public:
  RocksdbBatch(rocksdb::DB* db, bool sync) : db_(db) { wo_.sync = sync; }
  void Put(std::string_view key, std::string_view value) override {
    Check(batch_.Put(rocksdb::Slice(key.data(), key.size()),
                     rocksdb::Slice(value.data(), value.size())),
          "batch put");
  }
  bool Commit() override {
    Check(db_->Write(wo_, &batch_), "write batch");
    return true;
  }

 private:
  rocksdb::DB* const db_;
  rocksdb::WriteOptions wo_;
  rocksdb::WriteBatch batch_;
};

class RocksdbAdapter final : public EngineAdapter {
 public:
  ~RocksdbAdapter() override {
    if (db_ != nullptr) Close();
  }

  const char* name() const override { return "rocksdb"; }

  void Open(const std::string& dir, bool transactional) override {
    rocksdb::Options options;
    options.create_if_missing = true;
    options.compression = rocksdb::kLZ4Compression;
    rocksdb::BlockBasedTableOptions table;
    table.block_cache = rocksdb::NewLRUCache(Memory().cache_bytes);
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    if (transactional) {
      rocksdb::OptimisticTransactionDB* txn_db = nullptr;
      Check(rocksdb::OptimisticTransactionDB::Open(options, dir, &txn_db), "open");
      txn_db_ = txn_db;
      db_.reset(txn_db);
    } else {
      rocksdb::DB* db = nullptr;
      Check(rocksdb::DB::Open(options, dir, &db), "open");
      db_.reset(db);
    }
  }

  void Put(std::string_view key, std::string_view value, bool sync) override {
    rocksdb::WriteOptions wo;
    wo.sync = sync;
    Check(db_->Put(wo, rocksdb::Slice(key.data(), key.size()),
                   rocksdb::Slice(value.data(), value.size())),
          "put");
  }

  bool Get(std::string_view key, std::string* value) override {
    rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), rocksdb::Slice(key.data(), key.size()), value);
    if (s.IsNotFound()) return false;
    Check(s, "get");
    return true;
  }

  std::unique_ptr<AdapterIterator> NewIterator() override {
    return std::make_unique<RocksdbIterator>(db_->NewIterator(rocksdb::ReadOptions()));
  }

  std::unique_ptr<AdapterTransaction> BeginTransaction(bool sync) override {
    if (txn_db_ == nullptr) Die("rocksdb: BeginTransaction on a non-transactional open");
    rocksdb::WriteOptions wo;
    wo.sync = sync;
    return std::make_unique<RocksdbTransaction>(txn_db_->BeginTransaction(wo));
  }

  std::unique_ptr<AdapterTransaction> NewWriteBatch(bool sync) override {
    return std::make_unique<RocksdbBatch>(db_.get(), sync);
  }

  void Persist() override {
    Check(db_->Flush(rocksdb::FlushOptions()), "flush");
    // Wait until no flush or compaction is running or pending, so that the
    // size on disk and the next workload see a settled tree.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(10);
    while (std::chrono::steady_clock::now() < deadline) {
      uint64_t pending = 0, compactions = 0, flushes = 0;
      db_->GetIntProperty("rocksdb.compaction-pending", &pending);
      db_->GetIntProperty("rocksdb.num-running-compactions", &compactions);
      db_->GetIntProperty("rocksdb.num-running-flushes", &flushes);
      if (pending == 0 && compactions == 0 && flushes == 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    Die("rocksdb: background compactions did not settle within 10 minutes");
  }

  void Close() override {
    if (db_ == nullptr) return;
    Check(db_->Close(), "close");
    db_.reset();
    txn_db_ = nullptr;
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::OptimisticTransactionDB* txn_db_ = nullptr;  // db_, when opened transactional
};

}  // namespace

std::unique_ptr<EngineAdapter> NewRocksdbAdapter() { return std::make_unique<RocksdbAdapter>(); }

}  // namespace arenakv::compare
