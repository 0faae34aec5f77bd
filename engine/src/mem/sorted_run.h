// SortedRun: versions of a memtable as one sorted array of node pointers,
// in list order (version_node.h).
//
// A memtable appends its inserts to a small unsorted buffer (node_buffer.h);
// a full buffer is sorted into a run (Sort), which is merged into the
// memtable's tail run, and a tail grown to an eighth of the main run is
// merged into that (Merge; MemTable::SortBuffer). A run is read from a flat
// array, so a scan can fetch the nodes it will need next while it works on
// the current one, and a merge is one sequential pass.
//
// Each entry keeps, beside its node, eight bytes of the node's key: the
// bytes right after the prefix every key of the run shares (the common
// prefix of its first and last keys), zero-padded. Two entries whose eight
// bytes differ are ordered by them alone, so sorts, merges and searches
// rarely touch a node.
//
// The array lives in segments of the memtable's arena, in chunks of 4,096
// entries (64 KiB; the last one smaller): every run a memtable builds, small
// or large, takes its chunks from the same size class, so a merge reuses the
// chunks the last run gave back instead of faulting in fresh memory for each
// larger run (a table of 40,000 versions went through five classes), and
// goes back to the arena when the last reference goes (RunRef, a shared
// pointer to the small header kept on the heap: a spilled memtable's
// segments are read-only, so no count can live in them). An iterator keeps
// the run it started on, and the memtable's next merge does not wait for it.
//
// Thread safety: immutable once built; any number of threads read it and
// hold references to it. The arena must outlive every reference.
#ifndef ARENAKV_MEM_SORTED_RUN_H_
#define ARENAKV_MEM_SORTED_RUN_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "arenakv/alloc/segment_pool.h"
#include "arenakv/status.h"
#include "mem/version_node.h"

namespace arenakv::alloc {
class Arena;
}

namespace arenakv::mem {

class SortedRun;
using RunRef = std::shared_ptr<const SortedRun>;

class SortedRun {
 public:
  ~SortedRun();  // gives the array's segments back to the arena
  SortedRun(const SortedRun&) = delete;
  SortedRun& operator=(const SortedRun&) = delete;

  // Builds in `arena` the run of the `n` (> 0) nodes at `nodes`, given in
  // the order they were added: of two versions with the same key and
  // sequence, the later one comes first. MemoryLimit (no memory for the
  // array or the sort) leaves everything as it was.
  // Keys are in `order`; in an order other than bytewise, bytes say nothing
  // of it: every entry's eight bytes are 0 and the nodes are compared.
  static Status Sort(alloc::Arena* arena, const VersionNode* const* nodes, size_t n, RunRef* out,
                     KeyOrder order = KeyOrder());
  // Builds in `arena` the run of `older`'s versions (older may be null) and
  // `newer`'s, which were all added after them: of two versions with the
  // same key and sequence, newer's comes first. MemoryLimit leaves
  // everything as it was. Both runs are in `order`.
  static Status Merge(alloc::Arena* arena, const SortedRun* older, const SortedRun& newer,
                      RunRef* out, KeyOrder order = KeyOrder());

  size_t size() const { return size_; }
  const VersionNode* node(size_t i) const { return entry(i).node; }
  // Starts loading entry i's node, if there is one. Always inlined: GCC 12
  // finds a function that only prefetches free of side effects and drops
  // the calls to it.
  __attribute__((always_inline)) void Prefetch(size_t i) const {
    if (i >= size_) return;
    // The header and key, and most of a small value.
    const char* p = reinterpret_cast<const char*>(entry(i).node);
    __builtin_prefetch(p, 0, 3);
    __builtin_prefetch(p + 64, 0, 3);
  }

  // Index of the first version at or after (key, seq) in list order; size()
  // if there is none.
  size_t Seek(std::string_view key, uint64_t seq) const;
  // Index of the first version whose key is greater than `key`.
  size_t FirstAfterKey(std::string_view key) const;

 private:
  // Lets Merge() use std::make_shared while keeping construction private.
  struct PassKey {
    explicit PassKey() = default;
  };

 public:
  SortedRun(PassKey, alloc::Arena* arena, size_t size, size_t shared, KeyOrder order)
      : arena_(arena), size_(size), shared_(shared), order_(order) {}

 private:
  struct Entry {
    uint64_t prefix;  // key bytes [shared_, shared_ + 8), big-endian, zero-padded
    const VersionNode* node;
  };
  static constexpr size_t kChunkShift = 12;
  static constexpr size_t kChunkEntries = size_t{1} << kChunkShift;
  static_assert(sizeof(Entry) << kChunkShift == size_t{64} << 10);

  const Entry& entry(size_t i) const { return chunks_[i >> kChunkShift][i & (kChunkEntries - 1)]; }
  // A new run of `size` entries whose keys all lie between `lo` and `hi`,
  // its segments taken. MemoryLimit leaves nothing.
  static Status NewRun(alloc::Arena* arena, size_t size, std::string_view lo, std::string_view hi,
                       KeyOrder order, std::shared_ptr<SortedRun>* out);
  // Takes the segments for size_ entries. MemoryLimit: the run is unusable
  // (its destructor gives back what it got).
  Status AllocateChunks();
  Entry& mutable_entry(size_t i) { return chunks_[i >> kChunkShift][i & (kChunkEntries - 1)]; }
  // The first index from `from` on whose entry does not come before `b`
  // (eight bytes for a run sharing `shared`) in list order, b being newer.
  // `same_key_newer`: equal eight bytes mean the same key, and b's version
  // is the newer (Merge), so no node is read.
  size_t FirstNotBefore(const Entry& b, size_t from, size_t shared, bool same_key_newer) const;
  // Copies src's entries [from, to) to this run's entries from `at` on.
  void CopyFrom(const SortedRun& src, size_t from, size_t to, size_t at);
  // Entry i of this run with its eight bytes for a run sharing `shared` bytes.
  Entry EntryFor(size_t i, size_t shared) const {
    const Entry& e = entry(i);
    if (shared == shared_ || !order_.bytewise()) return e;
    return Entry{PrefixOf(e.node->key(), shared), e.node};
  }

  static uint64_t PrefixOf(std::string_view key, size_t shared);
  // PrefixOf(key, shared_) in the bytewise order, 0 in any other.
  uint64_t Prefix(std::string_view key) const {
    return order_.bytewise() ? PrefixOf(key, shared_) : 0;
  }
  // The first index whose entry is not before the target; `before(node)`
  // settles entries whose prefix equals the target's.
  template <typename Before>
  size_t LowerBound(std::string_view key, Before before) const;

  alloc::Arena* const arena_;
  const size_t size_;
  const size_t shared_;  // bytes every key of the run begins with
  const KeyOrder order_;
  // Bounds of the keys' lengths and of the sequences, set as the run is
  // built: they let a merge order two versions with equal eight bytes
  // without reading either node (Merge).
  size_t min_key_bytes_ = 0, max_key_bytes_ = 0;
  uint64_t min_seq_ = 0, max_seq_ = 0;
  std::vector<alloc::Segment> segments_;
  std::vector<Entry*> chunks_;  // chunks_[c] = entries [c << kChunkShift, ...)
};

}  // namespace arenakv::mem

#endif  // ARENAKV_MEM_SORTED_RUN_H_
