#include "db/db_iter.h"

#include <atomic>
#include <new>
#include <string>
#include <thread>

#include "db/db_impl.h"
#include "db/handle_registry.h"
#include "mem/live_iterator.h"
#include "mem/memtable.h"
#include "mem/merging_iterator.h"

namespace arenakv {

namespace {

class ErrorIterator final : public Iterator {
 public:
  explicit ErrorIterator(Status s) : status_(std::move(s)) {}
  bool Valid() const override { return false; }
  void SeekToFirst() override {}
  void SeekToLast() override {}
  void Seek(std::string_view) override {}
  void Next() override {}
  void Prev() override {}
  std::string_view key() const override { return {}; }
  std::string_view value() const override { return {}; }
  Status status() const override { return status_; }

 private:
  Status status_;
};

class DBIter final : public Iterator, public Handle {
 public:
  DBIter(std::shared_ptr<Version> version, std::unique_ptr<InternalIterator> iter,
         std::shared_ptr<HandleRegistry> registry, RangeTracker* tracker, bool overlay)
      : version_(std::move(version)),
        iter_(std::move(iter)),
        registry_(std::move(registry)),
        tracker_(tracker),
        overlay_(overlay),
        unlocked_next_(!overlay && tracker == nullptr) {}

  ~DBIter() override { registry_->Release(this); }

  // Valid(), key() and value() answer from the state the last move cached,
  // without the lock: they are called once or more per key, and only the
  // thread moving the iterator writes that state. Close() on another thread
  // sets released_ (the memory the views point into is going away). The one
  // exception is a transaction's value: a Put to the key the iterator is on
  // rewrites the buffered value in place, and the iterator shows it.
  bool Valid() const override { return valid_ && !released_.load(std::memory_order_acquire); }
  std::string_view key() const override {
    return released_.load(std::memory_order_acquire) ? std::string_view() : key_;
  }
  std::string_view value() const override {
    if (overlay_) {
      port::MutexLock l(&mu_);
      return closed_ || !iter_->Valid() ? std::string_view() : iter_->value();
    }
    return released_.load(std::memory_order_acquire) ? std::string_view() : value_;
  }

  void SeekToFirst() override {
    port::MutexLock l(&mu_);
    if (closed_) return;
    iter_->SeekToFirst();
    Cache();
    Track(/*from_first=*/true, {});
  }
  void SeekToLast() override {
    port::MutexLock l(&mu_);
    if (closed_) return;
    iter_->SeekToLast();
    Cache();
    TrackFromLast();
  }
  void Seek(std::string_view target) override {
    port::MutexLock l(&mu_);
    if (closed_) return;
    iter_->Seek(target);
    Cache();
    Track(/*from_first=*/false, target);
  }
  // A scan calls Next() once a key, and the lock alone cost about a tenth
  // of a scan of cached leaves. A plain iterator (no transaction's write
  // set or range tracking) moves without it: it announces the move in
  // busy_ and checks released_ after, while a Close() on another thread
  // sets released_ and waits for busy_ to clear before it frees anything
  // (both sides sequentially consistent, so one sees the other).
  void Next() override NO_THREAD_SAFETY_ANALYSIS {
    if (unlocked_next_) {
      if (!valid_) return;
      busy_.store(true, std::memory_order_seq_cst);
      if (!released_.load(std::memory_order_seq_cst)) {
        iter_->Next();
        Cache();
      }
      busy_.store(false, std::memory_order_release);
      return;
    }
    port::MutexLock l(&mu_);
    if (closed_ || !valid_) return;
    if (tracker_ != nullptr) scratch_.assign(key_.data(), key_.size());
    iter_->Next();
    Cache();
    Track(/*from_first=*/false, scratch_);
  }
  void Prev() override {
    port::MutexLock l(&mu_);
    if (closed_ || !valid_) return;
    if (tracker_ != nullptr) scratch_.assign(key_.data(), key_.size());
    iter_->Prev();
    Cache();
    TrackBackward(scratch_);
  }
  Status status() const override {
    port::MutexLock l(&mu_);
    if (closed_) return Status::Closed("iterator used after its database or transaction closed");
    return iter_->status();
  }

 protected:
  void ReleaseLocked() override REQUIRES(mu_) {
    released_.store(true, std::memory_order_seq_cst);
    // A Next() in progress on the iterator's thread holds no lock (above).
    while (busy_.load(std::memory_order_seq_cst)) std::this_thread::yield();
    iter_.reset();
    version_.reset();
    tracker_ = nullptr;
  }

 private:
  void Cache() REQUIRES(mu_) {
    valid_ = iter_->Valid();
    if (valid_) {
      key_ = iter_->key();
      if (!overlay_) value_ = iter_->value();  // value() reads an overlay's live
    } else {
      key_ = value_ = {};
    }
  }

  // Forward moves cover [from, current key]; running off the end covers to
  // the last key.
  void Track(bool from_first, std::string_view from) REQUIRES(mu_) {
    if (tracker_ == nullptr) return;
    if (iter_->Valid()) {
      tracker_->Covered(from, from_first, iter_->key(), false);
    } else {
      tracker_->Covered(from, from_first, {}, true);
    }
  }
  void TrackFromLast() REQUIRES(mu_) {
    if (tracker_ == nullptr) return;
    const bool valid = iter_->Valid();
    tracker_->Covered(valid ? iter_->key() : std::string_view(), !valid, {}, true);
  }
  void TrackBackward(std::string_view from) REQUIRES(mu_) {
    if (tracker_ == nullptr) return;
    if (iter_->Valid()) {
      tracker_->Covered(iter_->key(), false, from, false);
    } else {
      tracker_->Covered({}, true, from, false);
    }
  }

  std::shared_ptr<Version> version_ GUARDED_BY(mu_);
  std::unique_ptr<InternalIterator> iter_ GUARDED_BY(mu_);
  const std::shared_ptr<HandleRegistry> registry_;
  RangeTracker* tracker_ GUARDED_BY(mu_);
  std::string scratch_ GUARDED_BY(mu_);
  // The position after the last move. Written only by moves, on the thread
  // using the iterator; never by ReleaseLocked, which may run on another.
  bool valid_ = false;
  std::string_view key_;
  std::string_view value_;
  std::atomic<bool> released_{false};
  std::atomic<bool> busy_{false};  // a Next() without the lock is running
  const bool overlay_;             // a transaction's write set is merged in
  const bool unlocked_next_;
};

}  // namespace

std::unique_ptr<Iterator> NewErrorIterator(Status status) {
  return std::make_unique<ErrorIterator>(std::move(status));
}

// What an iterator's cursor stack takes beside the DBIter object, charged to
// the budget while it lives.
constexpr size_t kIteratorHeapBytes = 2048;

std::unique_ptr<Iterator> NewDBIterator(DBImpl* db, std::shared_ptr<Version> version,
                                        uint64_t sequence, const ReadOptions& options,
                                        std::unique_ptr<InternalIterator> overlay,
                                        const std::shared_ptr<HandleRegistry>& registry,
                                        RangeTracker* tracker) {
  const bool has_overlay = overlay != nullptr;
  try {
    std::unique_ptr<InternalIterator> base = db->NewInternalIterator(*version, sequence, options);
    if (has_overlay) {
      std::vector<std::unique_ptr<InternalIterator>> children;
      children.push_back(std::move(overlay));
      children.push_back(std::move(base));
      base = mem::NewMergingIterator(std::move(children), db->order());
    }
    auto it = std::make_unique<DBIter>(std::move(version), mem::NewLiveIterator(std::move(base)),
                                       registry, tracker, has_overlay);
    // The cursors below it (merging, memtable and tree iterators) are on the
    // heap too; 2 KiB is more than they take for a version of a few memtables.
    Status s = registry->Register(it.get(), sizeof(DBIter) + kIteratorHeapBytes);
    if (!s.ok()) return NewErrorIterator(std::move(s));
    return it;
  } catch (const std::bad_alloc&) {
    return NewErrorIterator(Status::MemoryLimit("out of memory creating an iterator"));
  }
}

}  // namespace arenakv
