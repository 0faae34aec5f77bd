// The LevelDB anchor of the comparison (libleveldb, C++ API), configured like
// LevelDB's db_bench plus the settings the comparison fixes for every
// engine: an LRU block cache of the comparison's cache size and a 10-bit
// Bloom filter. Everything else is LevelDB's default (4 MiB write buffer,
// Snappy compression as Debian builds it); the log is always on and
// WriteOptions::sync is honoured.
//
// LevelDB has no transactions. The transactional workloads' transaction is a
// WriteBatch applied with DB::Write at Commit: atomic, but with no isolation
// and no conflict detection, so Commit never reports a conflict.
//
// Persist() is CompactRange(nullptr, nullptr): LevelDB has no flush call, so
// the memtable is written out by a full manual compaction, which also leaves
// the tree fully compacted (a smaller size on disk than a flush alone).

#include <filesystem>
#include <memory>
#include <string>
#include <system_error>

#include "compare/engine_adapter.h"
#include "leveldb/cache.h"
#include "leveldb/db.h"
#include "leveldb/filter_policy.h"
#include "leveldb/options.h"
#include "leveldb/write_batch.h"

namespace arenakv::compare {
namespace {

void Check(const leveldb::Status& s, const char* what) {
  if (!s.ok()) Die(std::string("leveldb ") + what + ": " + s.ToString());
}

leveldb::Slice ToSlice(std::string_view s) { return {s.data(), s.size()}; }

class LeveldbIterator final : public AdapterIterator {
 public:
  explicit LeveldbIterator(leveldb::Iterator* it) : it_(it) {}
  void SeekToFirst() override { it_->SeekToFirst(); }
  bool Valid() const override { return it_->Valid(); }
  void Next() override { it_->Next(); }
  std::string_view key() const override {
    leveldb::Slice k = it_->key();
    return {k.data(), k.size()};
  }
  std::string_view value() const override {
    leveldb::Slice v = it_->value();
    return {v.data(), v.size()};
  }
  void CheckStatus() const override { Check(it_->status(), "iterator"); }

 private:
  std::unique_ptr<leveldb::Iterator> it_;
};

class LeveldbTransaction final : public AdapterTransaction {
 public:
  LeveldbTransaction(leveldb::DB* db, bool sync) : db_(db) { wo_.sync = sync; }
  void Put(std::string_view key, std::string_view value) override {
    batch_.Put(ToSlice(key), ToSlice(value));
  }
  bool Commit() override {
    Check(db_->Write(wo_, &batch_), "write batch");
    return true;
  }

 private:
  leveldb::DB* db_;
  leveldb::WriteOptions wo_;
  leveldb::WriteBatch batch_;
};

class LeveldbAdapter final : public EngineAdapter {
 public:
  ~LeveldbAdapter() override {
    if (db_ != nullptr) Close();
  }

  const char* name() const override { return "leveldb"; }

  void Open(const std::string& dir, bool /*transactional*/) override {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) Die("leveldb: cannot create " + dir + ": " + ec.message());
    cache_.reset(leveldb::NewLRUCache(Memory().cache_bytes));
    filter_.reset(leveldb::NewBloomFilterPolicy(10));
    leveldb::Options options;
    options.create_if_missing = true;
    options.block_cache = cache_.get();
    options.filter_policy = filter_.get();
    leveldb::DB* db = nullptr;
    Check(leveldb::DB::Open(options, dir, &db), "open");
    db_.reset(db);
  }

  void Put(std::string_view key, std::string_view value, bool sync) override {
    leveldb::WriteOptions wo;
    wo.sync = sync;
    Check(db_->Put(wo, ToSlice(key), ToSlice(value)), "put");
  }

  bool Get(std::string_view key, std::string* value) override {
    leveldb::Status s = db_->Get(leveldb::ReadOptions(), ToSlice(key), value);
    if (s.IsNotFound()) return false;
    Check(s, "get");
    return true;
  }

  std::unique_ptr<AdapterIterator> NewIterator() override {
    return std::make_unique<LeveldbIterator>(db_->NewIterator(leveldb::ReadOptions()));
  }

  std::unique_ptr<AdapterTransaction> BeginTransaction(bool sync) override {
    return std::make_unique<LeveldbTransaction>(db_.get(), sync);
  }

  std::unique_ptr<AdapterTransaction> NewWriteBatch(bool sync) override {
    return std::make_unique<LeveldbTransaction>(db_.get(), sync);
  }

  void Persist() override { db_->CompactRange(nullptr, nullptr); }

  void Close() override {
    if (db_ == nullptr) return;
    db_.reset();  // before the cache and the filter policy it uses
    cache_.reset();
    filter_.reset();
  }

 private:
  std::unique_ptr<leveldb::Cache> cache_;
  std::unique_ptr<const leveldb::FilterPolicy> filter_;
  std::unique_ptr<leveldb::DB> db_;
};

}  // namespace

std::unique_ptr<EngineAdapter> NewLeveldbAdapter() { return std::make_unique<LeveldbAdapter>(); }

}  // namespace arenakv::compare
