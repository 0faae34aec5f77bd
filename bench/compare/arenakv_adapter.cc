// The arenakv side of the comparison: the public API only, with the one
// setting the comparison fixes for both engines (a 256 MiB cache) and every
// other option at its default.

#include <memory>
#include <string>

#include "arenakv/db.h"
#include "compare/engine_adapter.h"

namespace arenakv::compare {
namespace {

void Check(const Status& s, const char* what) {
  if (!s.ok()) Die(std::string("arenakv ") + what + ": " + s.ToString());
}

class ArenakvIterator final : public AdapterIterator {
 public:
  explicit ArenakvIterator(std::unique_ptr<Iterator> it) : it_(std::move(it)) {}
  void SeekToFirst() override { it_->SeekToFirst(); }
  bool Valid() const override { return it_->Valid(); }
  void Next() override { it_->Next(); }
  std::string_view key() const override { return it_->key(); }
  std::string_view value() const override { return it_->value(); }
  void CheckStatus() const override { Check(it_->status(), "iterator"); }

 private:
  std::unique_ptr<Iterator> it_;
};

class ArenakvTransaction final : public AdapterTransaction {
 public:
  explicit ArenakvTransaction(std::unique_ptr<Transaction> txn) : txn_(std::move(txn)) {}
  void Put(std::string_view key, std::string_view value) override {
    Check(txn_->Put(key, value), "txn put");
  }
  bool Commit() override {
    Status s = txn_->Commit();
    if (s.IsConflict()) return false;
    Check(s, "txn commit");
    return true;
  }

 private:
  std::unique_ptr<Transaction> txn_;
};

class ArenakvBatch final : public AdapterTransaction {
 public:
  ArenakvBatch(DB* db, bool sync) : db_(db) { wo_.sync = sync; }
  void Put(std::string_view key, std::string_view value) override {
    Check(batch_.Put(key, value), "batch put");
  }
  bool Commit() override {
    Check(db_->Write(wo_, &batch_), "write batch");
    return true;
  }

 private:
  DB* const db_;
  WriteOptions wo_;
  WriteBatch batch_;
};

class ArenakvAdapter final : public EngineAdapter {
 public:
  ~ArenakvAdapter() override {
    if (db_ != nullptr) Close();
  }

  const char* name() const override { return "arenakv"; }

  void Open(const std::string& dir, bool /*transactional*/) override {
    Options options;
    options.cache_bytes = Memory().cache_bytes;
    options.memory_budget_bytes = Memory().memory_budget_bytes;
    options.map_reads = Memory().map_reads;
    Check(DB::Open(options, dir, &db_), "open");
  }

  void Put(std::string_view key, std::string_view value, bool sync) override {
    WriteOptions wo;
    wo.sync = sync;
    Check(db_->Put(wo, key, value), "put");
  }

  bool Get(std::string_view key, std::string* value) override {
    Status s = db_->Get(ReadOptions(), key, value);
    if (s.IsNotFound()) return false;
    Check(s, "get");
    return true;
  }

  std::unique_ptr<AdapterIterator> NewIterator() override {
    std::unique_ptr<Iterator> it = db_->NewIterator(ReadOptions());
    if (it == nullptr) Die("arenakv: NewIterator returned null");
    return std::make_unique<ArenakvIterator>(std::move(it));
  }

  std::unique_ptr<AdapterTransaction> BeginTransaction(bool sync) override {
    WriteOptions wo;
    wo.sync = sync;
    std::unique_ptr<Transaction> txn = db_->BeginTransaction(wo);
    if (txn == nullptr) Die("arenakv: BeginTransaction returned null");
    return std::make_unique<ArenakvTransaction>(std::move(txn));
  }

  std::unique_ptr<AdapterTransaction> NewWriteBatch(bool sync) override {
    return std::make_unique<ArenakvBatch>(db_.get(), sync);
  }

  void Persist() override { Check(db_->Checkpoint(), "checkpoint"); }

  void Close() override {
    if (db_ == nullptr) return;
    Check(db_->Close(), "close");
    db_.reset();
  }

 private:
  std::unique_ptr<DB> db_;
};

}  // namespace

std::unique_ptr<EngineAdapter> NewArenakvAdapter() { return std::make_unique<ArenakvAdapter>(); }

}  // namespace arenakv::compare
