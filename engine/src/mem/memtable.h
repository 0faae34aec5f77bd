// MemTable: the newest committed writes, kept as versions (user key, sequence,
// value or tombstone) in nodes that live in the memtable's own arena, with a
// hash index from each key to its newest version for point reads. The
// versions are ordered by a small skiplist that takes the inserts and a
// sorted run of everything older (sorted_run.h): every so many inserts the
// list is merged into a new run and a new list begins, so that inserts and
// scans of a large memtable do not miss the cache at every step. Readers read at a snapshot
// sequence S and see, for each key, the newest version with seq <= S. Entries are never removed;
// all memory goes back to the pool at once when the memtable (its arena) is destroyed.
//
// Sequences start at 1: LatestSequence() uses 0 for "never written here".
// Adding the same (key, seq) twice keeps both; the later Add is the one read.
//
// Thread safety: one writer at a time (Add is externally serialized: the
// group-commit leader; the writer thread may change between calls as long as
// the handover synchronizes); any number of concurrent readers (Get,
// LatestSequence, WrittenInRangeAfter, iterators, the counters) without
// locks, concurrently with the writer. The table must outlive its iterators.
#ifndef ARENAKV_MEM_MEMTABLE_H_
#define ARENAKV_MEM_MEMTABLE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "arenakv/alloc/object_heap.h"
#include "arenakv/status.h"
#include "mem/hash_index.h"
#include "mem/skiplist.h"
#include "mem/sorted_run.h"
#include "port/mutex.h"
#include "util/internal_iterator.h"

namespace arenakv::alloc {
class Arena;
class SpillSink;
}  // namespace arenakv::alloc

namespace arenakv::mem {

struct MemTableOptions {
  // Byte limit of the memtable's arena (SIZE_MAX: only the pool's budget).
  size_t limit_bytes = SIZE_MAX;
  // Size of the arena blocks nodes are carved from.
  size_t block_bytes = size_t{256} << 10;
  // The skiplist taking inserts is merged into the sorted run once it holds
  // this many versions, or an eighth of the run's if that is more: a list
  // this size (about 600 KiB of 100-byte values) stays in the CPU's L2
  // cache, and a merge (one pass over the run) costs a bounded share of the
  // inserts that led to it. It matters to small memtables (a tenant's 40K
  // puts: 5% faster a cycle than with 16,384); large ones merge at an
  // eighth of their run either way.
  size_t merge_entries = 4096;
  // The order of the keys (bytewise by default). In another order the hash
  // index is off: point reads search the list and the run.
  KeyOrder order{};
};

class MemTable : public alloc::HeapObject {
 public:
  // Creates the memtable's own child arena of `parent` (kShared, named
  // "memtable-<id>").
  static Status Create(alloc::Arena* parent, uint64_t id, std::unique_ptr<MemTable>* table);
  static Status Create(alloc::Arena* parent, uint64_t id, const MemTableOptions& options,
                       std::unique_ptr<MemTable>* table);

  ~MemTable();  // Closes the arena: every node and iterator position dies here.
  MemTable(const MemTable&) = delete;
  MemTable& operator=(const MemTable&) = delete;

  // Starts loading what an Add() of `key` touches first (its hash index
  // slot), for a caller with other work to do before it; returns the key's
  // hash, for that Add().
  uint64_t PrefetchForAdd(std::string_view key) const {
    const uint64_t hash = HashIndex::Hash(key);
    index_.Prefetch(hash);
    return hash;
  }

  // MemoryLimit (from the arena or the pool) leaves the table unchanged;
  // InvalidArgument for a key or value over 4 GiB.
  Status Add(uint64_t seq, ValueType type, std::string_view key, std::string_view value) {
    return Add(seq, type, key, value, HashIndex::Hash(key));
  }
  // The same, with `hash` from PrefetchForAdd(key).
  Status Add(uint64_t seq, ValueType type, std::string_view key, std::string_view value,
             uint64_t hash);

  // Makes sure the next Add()s of up to `count` versions whose keys and
  // values total `payload_bytes` cannot fail for memory. The commit path
  // calls it before it logs a group, so that a commit refused for memory has
  // changed nothing, in the log or here. MemoryLimit leaves the contents as
  // they were (the table may keep the room it did get).
  Status Prepare(size_t count, size_t payload_bytes);

  // Newest version of key with seq <= snapshot. True if one exists: then
  // *deleted tells a tombstone, else *value (may be null) gets the value;
  // *seq_out (may be null) gets its sequence.
  bool Get(std::string_view key, uint64_t snapshot, std::string* value, bool* deleted,
           uint64_t* seq_out) const;

  // Highest sequence that wrote `key` in this table, 0 if none.
  uint64_t LatestSequence(std::string_view key) const;

  // True if some key in `range` was written with seq > after_seq. Walks the
  // versions in the range.
  bool WrittenInRangeAfter(const KeyRange& range, uint64_t after_seq) const;

  KeyOrder order() const { return order_; }

  // One entry per key (its newest version <= snapshot), tombstones included.
  // The iterator allocates from the heap, not the arena: it is a fixed-size
  // cursor, and the arena may be at its limit.
  std::unique_ptr<InternalIterator> NewIterator(uint64_t snapshot) const;

  size_t ApproximateBytes() const { return bytes_.load(std::memory_order_relaxed); }
  // Bytes of the versions whose keys are in [begin, end), estimated without
  // a walk: the sorted run's share of the range (two binary searches)
  // applied to the whole table. A table still all in its list (at most
  // merge_entries versions) is walked instead.
  size_t ApproximateBytesBetween(std::string_view begin, std::string_view end) const;
  // Bytes of pool segments the table holds (its arena's blocks, the unused
  // rest of the last one included): what it costs the budget.
  size_t ArenaBytes() const;
  // Moves the table's memory out to `sink` (alloc::Arena::Spill), for a
  // table no one adds to any more: reads go on, served from the sink's file,
  // and ArenaBytes() drops to what stayed in memory.
  Status Spill(const std::shared_ptr<alloc::SpillSink>& sink);
  uint64_t entries() const { return entries_.load(std::memory_order_relaxed); }
  uint64_t id() const { return id_; }
  // Versions in the sorted run, and runs built so far (for tests and stats).
  size_t run_entries() const;
  uint64_t merges() const { return merges_.load(std::memory_order_relaxed); }
  // Merges put off for want of memory (inserts went on into the list).
  uint64_t merges_put_off() const { return merges_put_off_.load(std::memory_order_relaxed); }
  uint64_t min_sequence() const { return min_seq_.load(std::memory_order_relaxed); }
  uint64_t max_sequence() const { return max_seq_.load(std::memory_order_relaxed); }
  alloc::Arena* arena() const { return arena_.get(); }

 private:
  // Lets Create() use std::make_unique while keeping construction private.
  struct PassKey {
    explicit PassKey() = default;
  };

 public:
  MemTable(PassKey, uint64_t id, size_t merge_entries, KeyOrder order,
           std::unique_ptr<alloc::Arena> arena);

 private:
  // What a reader orders versions by: the list taking inserts when it was
  // read (it may have received more since: that is safe, nodes are only
  // ever added) and the run of everything merged before that list began.
  struct View {
    const SkipList* list;
    RunRef run;
  };
  View CurrentView() const;

  // Newest version of key at snapshot, or nullptr.
  const SkipNode* FindVisible(std::string_view key, uint64_t snapshot) const;
  // Writer: merges the active list into a new run and starts a new list. On
  // MemoryLimit nothing changes and inserts go on into the same list.
  void MergeActiveList();

  const uint64_t id_;
  const size_t merge_entries_;
  const KeyOrder order_;
  std::unique_ptr<alloc::Arena> arena_;
  SkipList first_list_;
  HashIndex index_;
  // Writer only: the list taking inserts, its versions, when to merge it,
  // and the newest run (also in the view).
  SkipList* active_ = &first_list_;
  size_t active_entries_ = 0;
  size_t merge_at_ = 0;
  RunRef run_;
  mutable port::Mutex view_mu_;
  const SkipList* view_list_ GUARDED_BY(view_mu_) = &first_list_;
  RunRef view_run_ GUARDED_BY(view_mu_);
  std::atomic<uint64_t> merges_{0};
  std::atomic<uint64_t> merges_put_off_{0};
  // Bytes handed out by the arena: nodes and index tables (the arena's block
  // slack not counted).
  std::atomic<size_t> bytes_{0};
  std::atomic<uint64_t> entries_{0};
  std::atomic<uint64_t> min_seq_{0};
  std::atomic<uint64_t> max_seq_{0};
};

}  // namespace arenakv::mem

#endif  // ARENAKV_MEM_MEMTABLE_H_
