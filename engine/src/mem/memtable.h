// MemTable: the newest committed writes, kept as versions (user key, sequence,
// value or tombstone) in nodes that live in the memtable's own arena, with a
// hash index from each key to its newest version for point reads. The
// versions are kept in tiers, like a small LSM tree in memory: an unsorted
// buffer takes the inserts (node_buffer.h); a full buffer is sorted and
// merged into the tail run, the tail passes down to a middle run and the
// middle into the main run (sorted_run.h, RunTiers below), each when it has
// grown enough for its merge to cost a bounded share of the inserts. An
// insert thus costs an append, a share of one sort of a few hundred versions
// and a bounded share of sequential merges, instead of a search of an
// ordered list that outgrows the CPU cache, and scans of a large memtable
// read flat arrays. Readers read at a snapshot sequence S and see, for each
// key, the newest version with seq <= S. Entries are never removed; all
// memory goes back to the pool at once when the memtable (its arena) is
// destroyed.
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

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "arenakv/alloc/object_heap.h"
#include "arenakv/status.h"
#include "mem/hash_index.h"
#include "mem/node_buffer.h"
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
  // The tail run passes down to the middle run once it holds this many
  // versions, and the middle to the main run once it holds this many or an
  // eighth of the main run's if that is more, so that a merge (one pass
  // over the run) costs a bounded share of the inserts that led to it.
  size_t merge_entries = 4096;
  // The buffer taking inserts is sorted into the tail once it holds this
  // many versions (at most merge_entries): sorting 256 costs about 45 ns a
  // version. Readers that need order pay for the buffer too: an iterator
  // sorts a copy of it, a point read the hash index cannot answer walks it.
  size_t buffer_entries = 256;
  // The order of the keys (bytewise by default). In another order the hash
  // index is off: point reads walk the buffer and search the runs.
  KeyOrder order{};
};

// The sorted runs of a memtable, newest first (memtable.cc): the tail, which
// takes each sorted buffer; the middle, which takes the tail whenever it
// holds merge_entries versions; and the main run, which takes the middle
// once it holds an eighth of the main run's. Any may be null.
inline constexpr int kRunTiers = 3;
using RunTiers = std::array<RunRef, kRunTiers>;

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

  // Second step, some time after PrefetchForAdd: starts loading the key's
  // newest version, which the Add of an overwrite compares (its own cache
  // miss, once the slot is in).
  void PrefetchHeadForAdd(uint64_t hash) const { index_.PrefetchHead(hash); }

  // MemoryLimit (from the arena or the pool) leaves the table unchanged;
  // InvalidArgument for a key or value over 4 GiB.
  Status Add(uint64_t seq, ValueType type, std::string_view key, std::string_view value) {
    return Add(seq, type, key, value, HashIndex::Hash(key));
  }
  // The same, with `hash` from PrefetchForAdd(key).
  Status Add(uint64_t seq, ValueType type, std::string_view key, std::string_view value,
             uint64_t hash);

  // Makes sure the next Add()s of up to `count` versions whose keys and
  // values total `payload_bytes` cannot fail for memory: their nodes have
  // room in the arena and their pointers in the buffer (a full buffer is
  // sorted away here). The commit path calls it before it logs a group, so
  // that a commit refused for memory has changed nothing, in the log or
  // here. MemoryLimit leaves the contents as they were (the table may keep
  // the room it did get).
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
  // a walk: the runs' share of the range (binary searches) applied to the
  // whole table. A table still all in its buffer is walked instead.
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
  // Versions in the main run, and main runs built so far (for tests and
  // stats).
  size_t run_entries() const;
  uint64_t merges() const { return merges_.load(std::memory_order_relaxed); }
  // Merges into a lower tier put off for want of memory (the tier above
  // grew on).
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
  MemTable(PassKey, uint64_t id, const MemTableOptions& options,
           std::unique_ptr<alloc::Arena> arena);

 private:
  // What a reader sees: the buffer current when it looked (it may have
  // received more since: that is safe, slots are only ever appended) and
  // the runs of everything added before that buffer began. Each may be
  // null: a table takes its first buffer at its first Add or Prepare (an
  // idle database's memtable holds none).
  struct View {
    BufferRef buffer;
    RunTiers runs;
  };
  static constexpr int kTail = 0, kMain = kRunTiers - 1;
  View CurrentView() const;

  // Newest version of key at snapshot, or nullptr.
  const VersionNode* FindVisible(std::string_view key, uint64_t snapshot) const;
  // Writer: sorts the buffer into the tail, passes each run tier grown
  // large enough down to the next, and starts a buffer with room for at
  // least `room` versions. MemoryLimit (no memory for the new buffer or
  // the tail) changes nothing; a merge into a lower tier put off for memory
  // is tried again at the next call.
  Status SortBuffer(size_t room);

  const uint64_t id_;
  const size_t merge_entries_;
  const size_t buffer_entries_;
  const KeyOrder order_;
  std::unique_ptr<alloc::Arena> arena_;
  HashIndex index_;
  // Writer only: the buffer taking inserts, the runs (also in the view),
  // and the middle run's size that makes it merge into the main run.
  std::shared_ptr<NodeBuffer> buffer_;
  RunTiers runs_;
  size_t merge_at_ = 0;
  mutable port::Mutex view_mu_;
  BufferRef view_buffer_ GUARDED_BY(view_mu_);
  RunTiers view_runs_ GUARDED_BY(view_mu_);
  std::atomic<uint64_t> merges_{0};
  std::atomic<uint64_t> merges_put_off_{0};
  // Bytes handed out by the arena's blocks: nodes and index tables (the
  // block slack, buffers and runs not counted).
  std::atomic<size_t> bytes_{0};
  std::atomic<uint64_t> entries_{0};
  std::atomic<uint64_t> min_seq_{0};
  std::atomic<uint64_t> max_seq_{0};
};

}  // namespace arenakv::mem

#endif  // ARENAKV_MEM_MEMTABLE_H_
