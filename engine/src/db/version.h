// Versions: the immutable read views the engine publishes.
//
// A Version names everything a reader needs for one consistent view: the
// active memtable, the frozen ones waiting for a checkpoint, and the root of
// the checkpointed B+tree. Readers copy the current std::shared_ptr<Version>
// and never block writers; what a version holds is released deterministically
// when the last reader of it lets go.
//
// Two chains keep old state alive exactly as long as it is needed:
// - WriteHistory::newer links the write history of each memtable to the
//   next one's, so a transaction that began on memtable M can check every
//   write made since (conflict validation). Only transactions hold history
//   nodes, and a node whose memtable was checkpointed keeps a KeyRecord (its
//   keys, no values) instead of the memtable: a reader pins the memtables of
//   its own version, never the newer ones.
// - TreeRoot::newer links each tree root to the next checkpoint's root, so
//   the pages a checkpoint replaced are released only after every older root
//   is gone (a page may be shared by several consecutive roots).
//
// Thread safety: a Version is immutable once published. The `newer` links
// are written once, under DBImpl::mu_, before the version that makes them
// reachable is published. WriteHistory's mem and record change under
// DBImpl::mu_ and are read under it.
#ifndef ARENAKV_DB_VERSION_H_
#define ARENAKV_DB_VERSION_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <memory_resource>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "arenakv/alloc/segment_pool.h"
#include "arenakv/status.h"
#include "db/key_record.h"
#include "mem/memtable.h"
#include "tree/btree.h"

namespace arenakv {

// Live counts of what versions keep alive, for DB::GetStats(): old state is
// released when its last reader ends, and these show it.
struct VersionCounters {
  std::atomic<int64_t> versions{0};
  std::atomic<int64_t> memtables{0};
  std::atomic<int64_t> tree_roots{0};
  std::atomic<int64_t> retained_pages{0};  // replaced pages kept for old roots
  // Memtables freed and transactions ended: memory given back (the write
  // path retries a checkpoint that was short of memory after one).
  std::atomic<uint64_t> releases{0};
  // Versions are charged to this pool's budget while they live (set at
  // open, before the first version; dropped at close, once every version
  // is gone, so that the pool is destroyed there and then).
  std::shared_ptr<alloc::SegmentPool> pool;
};

struct WriteHistory;

struct MemRef {
  MemRef(std::unique_ptr<mem::MemTable> t, uint64_t wal, VersionCounters* c)
      : table(std::move(t)), wal_number(wal), counters(c) {
    counters->memtables.fetch_add(1, std::memory_order_relaxed);
  }
  ~MemRef() {
    table.reset();  // its memory is back before the release is counted
    counters->memtables.fetch_sub(1, std::memory_order_relaxed);
    counters->releases.fetch_add(1, std::memory_order_release);
  }
  MemRef(const MemRef&) = delete;
  MemRef& operator=(const MemRef&) = delete;

  std::unique_ptr<mem::MemTable> table;
  // The lowest WAL number holding entries of this memtable.
  const uint64_t wal_number;
  VersionCounters* const counters;
  // This memtable's node of the write history, while a transaction holds it
  // (set before the MemRef is published).
  std::weak_ptr<WriteHistory> history;
};

// The writes of one memtable, as transactions validate against them: the
// memtable itself until it is checkpointed, then its KeyRecord (or the
// memtable still, if there was no room for the record).
struct WriteHistory {
  explicit WriteHistory(std::shared_ptr<MemRef> m) : order(m->table->order()), mem(std::move(m)) {}
  WriteHistory(const WriteHistory&) = delete;
  WriteHistory& operator=(const WriteHistory&) = delete;

  // A range DeleteRange erased while this node was the newest.
  struct Erased {
    std::string begin, end;  // [begin, end)
    uint64_t sequence = 0;
  };

  uint64_t LatestSequence(std::string_view key) const {
    uint64_t seq = mem != nullptr ? mem->table->LatestSequence(key) : record->LatestSequence(key);
    for (const Erased& e : erased) {
      if (order.Compare(key, e.begin) >= 0 && order.Compare(key, e.end) < 0) {
        seq = std::max(seq, e.sequence);
      }
    }
    return seq;
  }
  bool WrittenInRangeAfter(const KeyRange& range, uint64_t after) const {
    for (const Erased& e : erased) {
      if (e.sequence > after && range.Meets(order, e.begin, e.end)) return true;
    }
    return mem != nullptr ? mem->table->WrittenInRangeAfter(range, after)
                          : record->WrittenInRangeAfter(range, after);
  }

  const KeyOrder order;               // the database's
  std::shared_ptr<MemRef> mem;        // under DBImpl::mu_
  std::unique_ptr<KeyRecord> record;  // under DBImpl::mu_
  std::vector<Erased> erased;         // under DBImpl::mu_
  // Set once, when the memtable is frozen and replaced.
  std::shared_ptr<WriteHistory> newer;
};

class TreeRoot {
 public:
  TreeRoot(tree::BTree* tree, uint64_t root, VersionCounters* c)
      : tree_(tree), root_(root), counters_(c) {
    counters_->tree_roots.fetch_add(1, std::memory_order_relaxed);
  }
  ~TreeRoot() {
    newer_.reset();  // Newer roots release their obsolete pages first...
    if (obsolete_.has_value()) {
      if (!obsolete_->empty()) tree_->ReleasePages(*obsolete_);  // ...then ours.
      counters_->retained_pages.fetch_sub(static_cast<int64_t>(obsolete_->size()),
                                          std::memory_order_relaxed);
    }
    counters_->tree_roots.fetch_sub(1, std::memory_order_relaxed);
  }
  TreeRoot(const TreeRoot&) = delete;
  TreeRoot& operator=(const TreeRoot&) = delete;

  uint64_t root() const { return root_; }

  // Called once when checkpoint `next` supersedes this root: `pages` are
  // pages of this tree that `next` no longer uses.
  void Supersede(std::shared_ptr<TreeRoot> next, std::pmr::vector<uint64_t> pages) {
    newer_ = std::move(next);
    obsolete_.emplace(std::move(pages));  // keeps the pages' memory resource
    counters_->retained_pages.fetch_add(static_cast<int64_t>(obsolete_->size()),
                                        std::memory_order_relaxed);
  }

 private:
  tree::BTree* const tree_;
  const uint64_t root_;
  VersionCounters* const counters_;
  std::shared_ptr<TreeRoot> newer_;
  // In the pool (CheckpointResult's memory): charged to the budget.
  std::optional<std::pmr::vector<uint64_t>> obsolete_;
};

struct Version {
  // What a version costs the budget: itself and what it brings along on the
  // heap (its list of frozen memtables, and the memtable reference or tree
  // root that made it new). Readers hold versions without bound, so they
  // are counted, like the handles that hold them.
  static constexpr size_t kChargeBytes = 256;

  // A new version charged to the budget: MemoryLimit when it has no room.
  static Status Make(VersionCounters* c, std::shared_ptr<Version>* out) {
    if (c->pool != nullptr) {
      Status s = c->pool->Charge(kChargeBytes);
      if (!s.ok()) return s;
    }
    *out = std::make_shared<Version>(c);
    (*out)->charged_ = c->pool != nullptr;
    return Status::OK();
  }

  explicit Version(VersionCounters* c) : counters(c) {
    counters->versions.fetch_add(1, std::memory_order_relaxed);
  }
  ~Version() {
    if (charged_ && counters->pool != nullptr) counters->pool->Uncharge(kChargeBytes);
    counters->versions.fetch_sub(1, std::memory_order_relaxed);
  }
  Version(const Version&) = delete;
  Version& operator=(const Version&) = delete;

  VersionCounters* const counters;
  std::shared_ptr<MemRef> mem;               // active memtable
  std::vector<std::shared_ptr<MemRef>> imm;  // frozen memtables, newest first
  std::shared_ptr<TreeRoot> tree;

 private:
  bool charged_ = false;
};

}  // namespace arenakv

#endif  // ARENAKV_DB_VERSION_H_
