// BTree: the copy-on-write B+tree of one data file, with its page cache,
// checkpoints, free space and verification.
//
// Between checkpoints the tree is read-only. A checkpoint applies a sorted
// batch of changes to the tree of meta().root copy-on-write: rewritten pages
// go to free space (children before parents, so parents record their
// children's final addresses and no page map is needed), the file is synced,
// then the meta slot not holding the current state is written and synced.
// Pages the new tree replaced stay readable for readers of older roots until
// the owner calls ReleasePages; only then do their extents become free.
//
// Invariant: an extent is reused only when no page reachable from the latest
// durable meta, and no page of a root still held by a reader, lies in it.
// Pages written by a checkpoint whose meta write may have reached the disk are
// never reused before a later meta is durable.
//
// Thread safety: any number of concurrent readers (Get / NewIterator on any
// root they hold) alongside one Checkpoint at a time; ReleasePages,
// EvictForReclaim and the stats may be called from any thread. Close()
// requires that no iterator is alive and no other call is running.
#ifndef ARENAKV_TREE_BTREE_H_
#define ARENAKV_TREE_BTREE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <memory_resource>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "arenakv/alloc/arena.h"
#include "arenakv/alloc/object_heap.h"
#include "arenakv/db.h"
#include "arenakv/env.h"
#include "arenakv/status.h"
#include "port/mutex.h"
#include "tree/data_file.h"
#include "tree/free_space.h"
#include "tree/leaf_digest.h"
#include "tree/page_cache.h"
#include "tree/read_map.h"
#include "util/internal_iterator.h"
#include "util/key_compare.h"

namespace arenakv::tree {

struct TreeOptions {
  size_t page_bytes = 16 * 1024;  // 1 KiB .. 1 MiB
  size_t cache_bytes = 64 << 20;
  bool compression = true;
  // The file is opened read-only and its free space is not rebuilt: no
  // checkpoint may run.
  bool read_only = false;
  // Writers: the lowest checkpoint id below `limit` that a read-only open
  // (in any process) holds, or `limit` when none does. The pages of that
  // state and later ones are kept: pages replaced since are not reused
  // while it is held, and a writer that opens below it appends to the file
  // instead of filling its free space. Unset: there are no such readers.
  std::function<uint64_t(uint64_t limit)> lowest_reader = nullptr;
  // Where the lists of pages kept for them live (charged to the budget).
  std::pmr::memory_resource* held_memory = std::pmr::get_default_resource();
  // The key order: pages are searched, built and checked in it.
  KeyOrder order;
  // Its name, recorded in a new file's meta blocks; empty for bytewise. An
  // existing file recorded under another name (or bytewise when one is
  // given) is refused with InvalidArgument: its pages are sorted in an
  // order this open would not search by.
  std::string comparator;
  // Pages the cache misses are read through a read-only mapping of the
  // file once it is larger than the cache, while `map_budget` has room for
  // it (read_map.h). Off: every miss is a pread.
  bool map_reads = false;
  ReadMap::Budget map_budget = {};
};

struct CheckpointResult {
  // `memory` holds the list of obsolete pages: it lives as long as readers
  // of the old tree do, so the database charges it to its budget.
  explicit CheckpointResult(std::pmr::memory_resource* memory = std::pmr::get_default_resource())
      : obsolete(memory) {}
  MetaState meta;                       // the new durable state
  std::pmr::vector<uint64_t> obsolete;  // addresses of pages the new tree replaced
  uint64_t pages_written = 0, bytes_written = 0;
  uint64_t writes = 0;  // write calls the pages took
};

// Keys a checkpoint erases besides its changes (BTree::Checkpoint).
struct EraseRange {
  std::string_view begin;  // inclusive
  std::string_view end;    // exclusive

  bool Contains(std::string_view key, KeyOrder order = {}) const {
    return order.Compare(key, begin) >= 0 && order.Compare(key, end) < 0;
  }
};

struct VerifyStats {
  uint64_t pages = 0, keys = 0;
};

class PageView;
struct LeafBlock;

class BTree : public alloc::HeapObject {
 public:
  // Opens or creates `path` (one data file). On open reads both meta blocks,
  // takes the newest valid one (Corruption naming the file if neither is),
  // refuses unknown format versions (NotSupported), and rebuilds free space by
  // walking the internal pages. `db_arena` is the database arena; the tree
  // makes its "tree" and "cache" child arenas from it.
  static Status Open(Env* env, const std::string& path, bool create_if_missing,
                     const TreeOptions& options, alloc::Arena* db_arena,
                     std::unique_ptr<BTree>* tree);
  ~BTree();
  BTree(const BTree&) = delete;
  BTree& operator=(const BTree&) = delete;

  MetaState meta() const;  // the current durable meta

  // *missed_parent, when given, is set to the internal page whose child
  // had to be read from disk (the deepest such), else left alone.
  Status Get(uint64_t root, std::string_view key, std::string* value, bool* found,
             bool verify_checksums = false, uint64_t* missed_parent = nullptr);
  // Where GetCached stopped at a leaf that is not cached.
  struct LeafMiss {
    uint64_t address = 0;        // 0: it stopped elsewhere (or answered)
    uint64_t parent = 0;         // the internal page that names the leaf
    uint64_t generation = 0;     // the extent generation while the root was held
    uint64_t levels_cached = 0;  // the internal pages found on the way (hits)
  };
  // Get over cached pages only, peeking inside a read epoch section (its own,
  // or the caller's). False when it cannot answer: a page is not cached, or
  // the thread has no epoch slot; *miss, when given, is then filled if the
  // missing page is a leaf. Takes no lock and pins nothing.
  bool GetCached(uint64_t root, std::string_view key, std::string* value, bool* found,
                 Status* status, LeafMiss* miss = nullptr);
  // Finishes a point read at the leaf GetCached missed, after its section
  // (and with it the root) is gone. *valid is false when extents changed
  // since the miss: the bytes read may not be that leaf, the result means
  // nothing, and the caller reads again with a root held (Get).
  Status GetLeafUnheld(const LeafMiss& miss, std::string_view key, std::string* value, bool* found,
                       bool* valid);
  // Never yields tombstones. Pins at most one page per tree level.
  std::unique_ptr<InternalIterator> NewIterator(uint64_t root, bool verify_checksums = false,
                                                ScanCaching caching = ScanCaching::kAuto);

  // Applies `changes` (sorted by key, one entry per key; a tombstone deletes
  // the key, absent keys are ignored) to meta().root copy-on-write, writes the
  // new pages to free space, syncs, writes the other meta block, syncs. On
  // failure nothing durable changed and meta() stays in force.
  // With `erase`, every key in [erase->begin, erase->end) goes too, and
  // changes inside it are ignored: subtrees wholly inside are dropped
  // without reading their leaves' entries, so the cost grows with the pages
  // at its edges and the number of pages inside, not with its keys.
  Status Checkpoint(InternalIterator* changes, uint64_t last_sequence, uint64_t wal_number,
                    CheckpointResult* result, const EraseRange* erase = nullptr);
  // No reader of this process can reach these pages any more: their extents
  // become free space and their cache frames are dropped, unless a
  // read-only open holds an older state (TreeOptions::lowest_reader). Then
  // they are kept aside, and go with a later call once it is gone.
  void ReleasePages(std::span<const uint64_t> obsolete);
  // Read-only trees: a reader lock holds this tree's state, and the file's
  // writers keep its pages, so reads need not check that the state is
  // still current (CheckStateCurrent).
  void SetStateHeld() { state_held_.store(true, std::memory_order_release); }
  // Read-only trees: OK while the file's newest meta block is still the
  // state this tree opened, Busy once a writer has checkpointed since.
  Status CheckStateCurrent();

  // Reads every page reachable from meta().root from disk; checks checksums,
  // key order within and across pages, separator bounds, levels, overlapping
  // extents and the key count. `progress` returning false stops it
  // (Aborted).
  Status Verify(VerifyStats* stats,
                const std::function<bool(uint64_t done, uint64_t total)>& progress = {});

  // Reads the children of internal page `parent` that are not cached into
  // the cache, while it has room for another page without evicting and
  // `stop` is false. *loaded counts the pages read. The caller holds no
  // root, so `parent` may have been released and its extent reused: see
  // FetchUnheld for why what it publishes is still right.
  Status LoadChildren(uint64_t parent, const std::atomic<bool>& stop, uint64_t* loaded);
  // Whether the cache could take another page of the usual size without
  // evicting anything.
  bool CacheHasRoom() const;

  size_t EvictForReclaim(size_t wanted_bytes);
  CacheStats cache_stats() const;
  size_t cache_used_bytes() const;  // cheap, for memory decisions
  // Maps the file as it is now for reads, if asked to (ReadMap::Cover):
  // after a checkpoint, once the memory it freed is back, so that the
  // budget's room is measured without the memtables it wrote.
  void CoverFile();
  size_t mapped_bytes() const;  // of the read mapping, charged to the budget
  uint64_t map_drops() const;   // times a reclaim took the mapping back
  // Where `key` falls among the tree's leaves, in [0, 1), read from the
  // internal pages alone (no leaf is read; a root leaf, already at hand, is
  // the one exception): at each level the key's child takes an even share of
  // its parent's. Precise to about one leaf.
  Status ApproximatePosition(uint64_t root, std::string_view key, double* position);
  // Bytes of live pages in the file (file_bytes() less free extents); a
  // read-only tree, which keeps no free space, counts up to the end its
  // meta block records, free extents included.
  uint64_t live_bytes() const;
  uint64_t file_bytes() const;  // logical end of the data (pages beyond it are free)
  uint64_t free_bytes() const;  // free extents below file_bytes()
  const std::string& path() const { return path_; }
  PageCache* cache() { return cache_.get(); }

  Status Close();  // idempotent; no checkpoint here

 private:
  friend class CheckpointWriter;
  friend class TreeIterator;

  BTree(Env* env, const std::string& path, const TreeOptions& options);
  Status OpenFile(bool create_if_missing, alloc::Arena* db_arena);
  // InvalidArgument unless `recorded` (the order the file names) is the
  // order this open was asked for.
  Status CheckKeyOrder(const std::string& recorded) const;
  // `append_only`: a read-only open holds an older state, whose pages may
  // lie anywhere outside this one's: new pages go after every byte of the
  // file, and its free extents stay unused until an open without one.
  Status RebuildFreeSpace(uint64_t root, bool append_only);
  // The page at `address`, pinned: from the cache, else read, checked and
  // decoded from disk into a new frame, which is published in the cache
  // unless `fill` is false (then it stays private to *ref). `verify`
  // re-checks a cached image. *hit, when given, says whether it was cached.
  Status FetchPage(uint64_t address, bool verify, PageRef* ref, bool fill = true,
                   bool* hit = nullptr);
  // Reads, checks and decodes a page from disk into a private frame.
  // `for_cache`: the frame may be published, so it records the image's
  // checksum for later re-verification.
  Status ReadPage(uint64_t address, PageRef* ref, bool for_cache = true);
  // Reads and checks the page at `address` into *image (resized to it),
  // leaving the cache as it was.
  Status ReadPageUncached(uint64_t address, std::pmr::vector<char>* image);
  // Decodes a stored page into `image` and checks its shape: every page
  // image, cached or not, enters memory through here.
  Status DecodeChecked(std::string_view stored, uint64_t offset, char* image,
                       size_t image_bytes) const;
  // A leaf's entry count, from its cached image or its stored header (the
  // stored page checked, not decoded).
  Status LeafEntryCount(uint64_t address, uint32_t* count);
  // ReadPage's parts: the address's bounds; the stored page read into `dst`
  // (AddressLength bytes) with its header and checksum checked; the stored
  // page decoded into a private frame.
  Status CheckAddress(uint64_t address) const;
  Status ReadStored(uint64_t address, char* dst, size_t* image_bytes);
  // ReadStored after CheckAddress, into the caller's stack buffer, or into a
  // frame when the page is larger (btree.cc).
  struct StoredRead;
  Status ReadStoredPage(uint64_t address, StoredRead* r);
  // n bytes at offset, all of them (a short read is Corruption).
  Status ReadBytes(uint64_t offset, size_t n, char* dst);
  void EncodeNewFileHead(char* head) const;  // kDataStart bytes
  Status CreateDataFile();
  // `s`, the outcome of reads of the file, unless this is a read-only tree
  // whose state the writer may have let go: then that state's check.
  Status StateAfterRead(Status s);
  Status GetFromBlock(uint64_t address, std::string_view key, std::string* value, bool* found,
                      StoredRead* r, bool* done, const uint64_t* unheld_generation);
  // Reads the head of the leaf at `address` into r->stack and sets
  // *head_bytes to the bytes read; makes its digest in `digest` (room for
  // LeafHeadTable::kMaxHeadBytes; *digest_bytes 0 when it has none) and
  // keeps it in the cache's table. *head_bytes is 0 when the leaf is not
  // one a block read can serve.
  Status ReadLeafHead(uint64_t address, StoredRead* r, size_t* head_bytes, char* digest,
                      size_t* digest_bytes, const uint64_t* unheld_generation);
  Status SearchStoredBlock(uint64_t address, const DigestBlock& where, size_t have,
                           LeafBlock* block, StoredRead* r, std::string_view key,
                           std::string* value, bool* found);
  Status SearchUncachedLeaf(uint64_t address, std::string_view stored, size_t image_bytes,
                            std::string_view key, std::string* value, bool* found);
  // The value of `key` in the decoded leaf `image` (Corruption when it is
  // not a leaf).
  Status SearchLeafImage(const char* image, uint64_t offset, std::string_view key,
                         std::string* value, bool* found) const;
  Status SearchBlock(const LeafBlock& block, uint64_t offset, std::string_view key,
                     std::string* value, bool* found);
  // ReleasePages' work once it is decided.
  void ReleaseNow(std::span<const uint64_t> obsolete);
  Status DecodeStored(uint64_t address, std::string_view stored, size_t image_bytes, bool for_cache,
                      PageRef* ref);
  // A point read of `key` in the leaf at `address`, which is not cached:
  // read whole and cached if the cache admits it (PageCache::AdmitLeaf),
  // else answered from the one block that may hold the key.
  // With `unheld_generation`, no root holds the page: a leaf read whole is
  // cached only if the extent generation is still that one (FetchUnheld).
  // Callers start loading the leaf's head first (PageCache::PrefetchLeafHead).
  Status GetFromDisk(uint64_t address, std::string_view key, std::string* value, bool* found,
                     const uint64_t* unheld_generation = nullptr);
  Status CheckPageShape(const PageView& v, uint64_t offset) const;
  Status CheckOpen() const;
  // LoadChildren's page fetch, holding no root; *read: it came from disk. An
  // empty *ref (and OK) when the read may have raced a change of extents.
  Status FetchUnheld(uint64_t address, PageRef* ref, bool* read);
  // Extents change only inside a checkpoint (pages written) and in
  // ReleasePages (pages freed). Both move extent_generation_ on, and a
  // checkpoint counts in extent_writers_ while it runs.
  void ExtentsChanging(int writers_delta) EXCLUDES(extent_mu_);
  struct VerifyState;
  Status VerifyInternal(VerifyState* vs, uint64_t address, int level, std::string_view lo,
                        bool has_lo, std::string_view hi, bool has_hi);

  Env* const env_;
  const std::string path_;
  const TreeOptions options_;
  std::unique_ptr<File> file_;
  // With TreeOptions::map_reads; set at open. It outlives Close() (a
  // mapping needs no descriptor), so that a reclaim racing Close() never
  // meets it destroyed; the destructor unmaps it and returns its charge.
  std::unique_ptr<ReadMap> map_;
  std::unique_ptr<alloc::Arena> tree_arena_;
  std::unique_ptr<alloc::Arena> cache_arena_;
  std::unique_ptr<PageCache> cache_;
  std::unique_ptr<FreeSpace> free_;
  std::atomic<bool> closed_{false};

  port::Mutex checkpoint_mu_;  // one checkpoint at a time; held across it
  port::Mutex extent_mu_;
  // Moved on under extent_mu_; an atomic so that GetCached can note it
  // inside a read section without the lock.
  std::atomic<uint64_t> extent_generation_{0};
  int extent_writers_ GUARDED_BY(extent_mu_) = 0;
  mutable port::Mutex mu_;
  MetaState meta_ GUARDED_BY(mu_);
  // Extents of a checkpoint whose meta write failed: its meta block may still
  // have reached the disk, so they stay unused until a later meta is durable.
  std::vector<std::pair<uint64_t, uint64_t>> quarantine_ GUARDED_BY(mu_);
  // Obsolete pages kept for read-only opens: each list goes once no reader
  // holds a state below its bound (the checkpoint id when it was kept).
  struct HeldPages {
    uint64_t bound = 0;
    std::pmr::vector<uint64_t> pages;
  };
  mutable port::Mutex held_mu_;
  std::pmr::vector<HeldPages> held_ GUARDED_BY(held_mu_){options_.held_memory};
  std::atomic<bool> state_held_{false};
};

}  // namespace arenakv::tree

#endif  // ARENAKV_TREE_BTREE_H_
