#include "db/transaction_impl.h"

#include <map>
#include <new>
#include <optional>

#include "db/db_impl.h"
#include "db/db_iter.h"
#include "db/handle_registry.h"

namespace arenakv {

namespace {

struct WriteEntry {
  bool deleted = false;
  std::pmr::string value;
};
// The database's order, taking string_views for lookups.
struct KeyLess {
  using is_transparent = void;
  KeyOrder order;
  bool operator()(std::string_view a, std::string_view b) const { return order.Compare(a, b) < 0; }
};
using WriteSet = std::pmr::map<std::pmr::string, WriteEntry, KeyLess>;

// The write set as a cursor, deletions as tombstones, for merging above the
// snapshot.
class WriteSetIterator final : public InternalIterator {
 public:
  explicit WriteSetIterator(const WriteSet* ws) : ws_(ws), it_(ws->end()) {}
  bool Valid() const override { return it_ != ws_->end(); }
  void SeekToFirst() override { it_ = ws_->begin(); }
  void SeekToLast() override {
    it_ = ws_->end();
    if (!ws_->empty()) --it_;
  }
  void Seek(std::string_view target) override { it_ = ws_->lower_bound(target); }
  void Next() override { ++it_; }
  void Prev() override {
    if (it_ == ws_->begin()) {
      it_ = ws_->end();
    } else {
      --it_;
    }
  }
  std::string_view key() const override { return it_->first; }
  std::string_view value() const override { return it_->second.value; }
  bool is_tombstone() const override { return it_->second.deleted; }
  Status status() const override { return Status::OK(); }

 private:
  const WriteSet* ws_;
  WriteSet::const_iterator it_;
};

// A transaction that could not start (database closed, or no memory for its
// arena): every call reports why.
class ErrorTransaction final : public Transaction {
 public:
  explicit ErrorTransaction(Status status) : status_(std::move(status)) {}
  Status Put(std::string_view, std::string_view) override { return Closed(); }
  Status Delete(std::string_view) override { return Closed(); }
  Status Get(const ReadOptions&, std::string_view, std::string*) override { return Closed(); }
  std::unique_ptr<Iterator> NewIterator(const ReadOptions&) override {
    return NewErrorIterator(Closed());
  }
  Status Commit() override { return Closed(); }
  Status Rollback() override { return Closed(); }
  size_t BufferBytes() const override { return 0; }

 private:
  Status Closed() const { return status_; }
  Status status_;
};

class TransactionImpl final : public Transaction, public Handle, public RangeTracker {
 public:
  TransactionImpl(DBImpl* db, const WriteOptions& options, const TransactionOptions& txn_options,
                  std::shared_ptr<Version> version, std::shared_ptr<WriteHistory> history,
                  uint64_t sequence)
      : db_(db),
        options_(options),
        txn_options_(txn_options),
        registry_(db->registry()),
        iterators_(std::make_shared<HandleRegistry>(db->pool())),
        version_(std::move(version)),
        history_(std::move(history)),
        sequence_(sequence) {}

  ~TransactionImpl() override { registry_->Release(this); }

  Status Start() {
    port::MutexLock l(&mu_);
    if (closed_) return Status::Closed("database is closed");
    alloc::ArenaOptions ao;
    ao.name = "txn@" + std::to_string(sequence_);
    ao.kind = alloc::ArenaKind::kShared;
    ao.limit_bytes = txn_options_.buffer_budget_bytes;
    ao.block_bytes = 16 * 1024;
    Status s = db_->arena()->NewChild(ao, &arena_);
    if (!s.ok()) return s;
    try {
      writes_.emplace(KeyLess{db_->order()}, arena_.get());
      if (txn_options_.isolation == IsolationLevel::kSerializable) reads_.emplace(arena_.get());
    } catch (const std::bad_alloc&) {
      return Status::MemoryLimit("transaction buffer budget exhausted");
    }
    db_->open_transactions().fetch_add(1);
    counted_ = true;
    return Status::OK();
  }

  Status Put(std::string_view key, std::string_view value) override {
    port::MutexLock l(&mu_);
    Status s = Usable();
    if (s.ok()) s = DBImpl::CheckKey(key);
    if (s.ok()) s = DBImpl::CheckValue(value);
    if (!s.ok()) return s;
    return Buffer(key, false, value);
  }

  Status Delete(std::string_view key) override {
    port::MutexLock l(&mu_);
    Status s = Usable();
    if (s.ok()) s = DBImpl::CheckKey(key);
    if (!s.ok()) return s;
    return Buffer(key, true, {});
  }

  Status Get(const ReadOptions& options, std::string_view key, std::string* value) override {
    port::MutexLock l(&mu_);
    Status s = Usable();
    if (s.ok()) s = DBImpl::CheckKey(key);
    if (!s.ok()) return s;
    try {
      auto it = writes_->find(key);
      if (it != writes_->end()) {
        if (it->second.deleted) return Status::NotFound(key);
        value->assign(it->second.value.data(), it->second.value.size());
        return Status::OK();
      }
      if (reads_.has_value()) reads_->keys.emplace_back(key);
      return db_->GetAt(*version_, sequence_, key, value, options.verify_checksums);
    } catch (const std::bad_alloc&) {
      return Status::MemoryLimit("transaction buffer budget exhausted");
    }
  }

  std::unique_ptr<Iterator> NewIterator(const ReadOptions& options) override {
    port::MutexLock l(&mu_);
    Status s = Usable();
    if (!s.ok()) return NewErrorIterator(s);
    return NewDBIterator(db_, version_, sequence_, options,
                         std::make_unique<WriteSetIterator>(&*writes_), iterators_,
                         reads_.has_value() ? this : nullptr);
  }

  Status Commit() override {
    port::MutexLock l(&mu_);
    Status s = Usable();
    if (!s.ok()) {
      // A read set that could not be recorded cannot be validated: the
      // transaction ends without writing anything.
      if (Ended().ok()) Finish();
      return s;
    }
    if (!writes_->empty()) {
      try {
        // The batch comes from the database's pool, sized once: the arena
        // never frees, so a batch growing in it by doubling took up to twice
        // the write set again, and a transaction at its buffer budget could
        // not commit what it had buffered.
        size_t bytes = LogBatch::kHeaderBytes;
        for (const auto& [k, e] : *writes_) {
          bytes += LogBatch::OpBytesBound(k.size(), e.deleted ? 0 : e.value.size());
        }
        char buf[1024];
        std::pmr::monotonic_buffer_resource mr(buf, sizeof(buf), db_->commit_memory());
        LogBatch batch(&mr);
        batch.Reserve(bytes);
        for (const auto& [k, e] : *writes_) {
          if (e.deleted) {
            batch.Delete(k);
          } else {
            batch.Put(k, e.value);
          }
        }
        DBImpl::CommitRequest req;
        req.batch = &batch;
        req.sync = options_.sync;
        req.validate = true;
        req.snapshot_seq = sequence_;
        req.history = history_.get();
        req.reads = reads_.has_value() ? &*reads_ : nullptr;
        s = db_->Commit(req);
      } catch (const std::bad_alloc&) {
        s = Status::MemoryLimit(
            "no room in the memory budget to commit the transaction; nothing was written");
      }
    }
    Finish();
    return s;
  }

  Status Rollback() override {
    port::MutexLock l(&mu_);
    Status s = Ended();  // a transaction over its budget can always roll back
    if (!s.ok()) return s;
    Finish();
    return Status::OK();
  }

  size_t BufferBytes() const override {
    port::MutexLock l(&mu_);
    return arena_ == nullptr ? 0 : arena_->Stats().bytes;
  }

  // RangeTracker: merges with the previous range when they overlap, so a
  // long scan records one range, not one per step.
  void Covered(std::string_view begin, bool to_first, std::string_view end, bool to_last) override {
    try {
      const KeyOrder order = db_->order();
      auto& ranges = reads_->ranges;
      if (!ranges.empty()) {
        auto& last = ranges.back();
        const KeyRange l = last.view();
        // [begin, end] meets [last.begin, last.end]?
        if ((to_first || l.NotAfter(order, begin)) && (to_last || l.NotBefore(order, end))) {
          if (to_first) {
            last.from_first = true;
          } else if (!last.from_first && order.Compare(begin, last.begin) < 0) {
            last.begin.assign(begin.data(), begin.size());
          }
          if (to_last) {
            last.to_last = true;
          } else if (!last.to_last && order.Compare(end, last.end) > 0) {
            last.end.assign(end.data(), end.size());
          }
          return;
        }
      }
      const auto alloc = reads_->ranges.get_allocator();
      ranges.push_back(ReadSet::Range{
          std::pmr::string(to_first ? std::string_view() : begin, alloc),
          std::pmr::string(to_last ? std::string_view() : end, alloc), to_first, to_last});
    } catch (const std::bad_alloc&) {
      // Cannot record the read: make commit fail safe (conflict) rather than
      // risk a serializability violation.
      overflowed_ = true;
    }
  }

 protected:
  void ReleaseLocked() override REQUIRES(mu_) { Finish(); }

 private:
  Status Ended() REQUIRES(mu_) {
    if (closed_) return Status::Closed("transaction used after its database closed");
    if (finished_) return Status::InvalidArgument("transaction already committed or rolled back");
    return Status::OK();
  }
  Status Usable() REQUIRES(mu_) {
    Status s = Ended();
    if (s.ok() && overflowed_) s = Status::MemoryLimit("transaction buffer budget exhausted");
    return s;
  }

  Status Buffer(std::string_view key, bool deleted, std::string_view value) REQUIRES(mu_) {
    try {
      auto it = writes_->find(key);
      if (it != writes_->end()) {
        // A rewrite reuses the entry's buffer: the arena never frees, so a
        // fresh copy per rewrite would grow the transaction without bound.
        it->second.value.assign(value.data(), value.size());
        it->second.deleted = deleted;
        if (it->first != key) {
          // Equal in the order, other bytes: the latest write's, as the
          // database keeps them.
          auto node = writes_->extract(it);
          node.key().assign(key.data(), key.size());
          writes_->insert(std::move(node));
        }
        return Status::OK();
      }
      std::pmr::string k(key, arena_.get());
      WriteEntry e{deleted, std::pmr::string(value, arena_.get())};
      writes_->emplace(std::move(k), std::move(e));
      return Status::OK();
    } catch (const std::bad_alloc&) {
      return Status::MemoryLimit("transaction buffer budget of " +
                                 std::to_string(txn_options_.buffer_budget_bytes) +
                                 " bytes exhausted");
    }
  }

  // Everything the transaction holds goes back at once.
  void Finish() REQUIRES(mu_) {
    if (finished_) return;
    finished_ = true;
    iterators_->CloseAll();
    reads_.reset();
    writes_.reset();
    version_.reset();
    history_.reset();
    if (arena_ != nullptr) {
      arena_->Close();
      arena_.reset();
    }
    if (counted_) {
      db_->open_transactions().fetch_sub(1);
      db_->NoteRelease();
    }
    counted_ = false;
  }

  DBImpl* const db_;
  const WriteOptions options_;
  const TransactionOptions txn_options_;
  const std::shared_ptr<HandleRegistry> registry_;
  // The transaction's own iterators: closed when it finishes.
  const std::shared_ptr<HandleRegistry> iterators_;
  std::shared_ptr<Version> version_ GUARDED_BY(mu_);
  // The writes made since the transaction began, for validation: the node
  // of the memtable that was active then, which links to every newer one.
  std::shared_ptr<WriteHistory> history_ GUARDED_BY(mu_);
  const uint64_t sequence_;
  std::unique_ptr<alloc::Arena> arena_ GUARDED_BY(mu_);
  std::optional<WriteSet> writes_ GUARDED_BY(mu_);
  std::optional<ReadSet> reads_;  // touched by Covered() under mu_ (from iterators)
  bool finished_ GUARDED_BY(mu_) = false;
  bool overflowed_ = false;
  bool counted_ GUARDED_BY(mu_) = false;
};

}  // namespace

std::unique_ptr<Transaction> NewClosedTransaction() {
  return std::make_unique<ErrorTransaction>(Status::Closed("database is closed"));
}

std::unique_ptr<Transaction> NewTransaction(DBImpl* db, const WriteOptions& options,
                                            const TransactionOptions& txn_options,
                                            std::shared_ptr<Version> version,
                                            std::shared_ptr<WriteHistory> history,
                                            uint64_t sequence) {
  auto txn = std::make_unique<TransactionImpl>(db, options, txn_options, std::move(version),
                                               std::move(history), sequence);
  Status s = db->registry()->Register(txn.get(), sizeof(TransactionImpl) + sizeof(HandleRegistry));
  if (!s.ok()) return std::make_unique<ErrorTransaction>(std::move(s));
  s = txn->Start();
  if (!s.ok()) return std::make_unique<ErrorTransaction>(std::move(s));
  return txn;
}

}  // namespace arenakv
