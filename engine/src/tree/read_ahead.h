// ReadAhead: loads the siblings of a leaf that a point read had to read from
// disk, on the shared background threads, while the page cache has room.
//
// Reads that miss the cache come in runs: after an open, or once the data
// outgrows what was cached, every leaf is read from disk once. When a point
// read misses a leaf, its parent names the leaves around it; reading them on
// another core while the cache has free room (it never evicts for them)
// turns the misses still to come into hits, and takes the cost of decoding
// them into fresh memory off the reading threads (as a database's read-ahead
// of neighbouring pages does). A parent is queued at most once in a while.
//
// Work is posted to the process's BackgroundPool (util/background_pool.h)
// one parent at a time, only while the queue has parents: an idle database
// holds no thread, and a run of reads does not hold one against the
// checkpoints of other databases.
//
// Thread safety: Request and Stop may be called from any thread. After Stop
// returns no page is loaded any more and Request does nothing.
#ifndef ARENAKV_TREE_READ_AHEAD_H_
#define ARENAKV_TREE_READ_AHEAD_H_

#include <array>
#include <atomic>
#include <cstdint>

#include "arenakv/alloc/object_heap.h"
#include "port/mutex.h"
#include "tree/btree.h"

namespace arenakv::tree {

class ReadAhead : public alloc::HeapObject {
 public:
  explicit ReadAhead(BTree* tree) : tree_(tree) {}
  ~ReadAhead() { Stop(); }
  ReadAhead(const ReadAhead&) = delete;
  ReadAhead& operator=(const ReadAhead&) = delete;

  // Queues the children of internal page `parent`. Nothing keeps its root
  // alive meanwhile (a reader's release of old pages stays immediate):
  // BTree::LoadChildren copes with pages released under it. Does nothing
  // when the cache is full, the queue is full or `parent` was queued
  // recently.
  void Request(uint64_t parent) noexcept EXCLUDES(mu_);
  // Drops the queue and waits for the page being read (after it, nothing).
  void Stop() EXCLUDES(mu_);

  // Pages read so far.
  uint64_t pages_loaded() const { return loaded_.load(std::memory_order_relaxed); }

 private:
  static constexpr size_t kQueue = 16;
  static constexpr size_t kRecent = 64;

  void Run() EXCLUDES(mu_);
  bool RecentLocked(uint64_t parent) const REQUIRES(mu_);

  BTree* const tree_;
  port::Mutex mu_;
  std::array<uint64_t, kQueue> queue_ GUARDED_BY(mu_);  // parents, a ring
  size_t head_ GUARDED_BY(mu_) = 0;
  size_t size_ GUARDED_BY(mu_) = 0;
  // The parents requested last (a ring): not queued again while in it.
  std::array<uint64_t, kRecent> recent_ GUARDED_BY(mu_) = {};
  size_t recent_next_ GUARDED_BY(mu_) = 0;
  bool running_ GUARDED_BY(mu_) = false;  // a piece of work is posted or running
  bool stopped_ GUARDED_BY(mu_) = false;
  std::atomic<bool> stop_{false};  // read between pages
  std::atomic<uint64_t> loaded_{0};
};

}  // namespace arenakv::tree

#endif  // ARENAKV_TREE_READ_AHEAD_H_
