// HashIndex: user key -> the first node of that key's versions in the
// memtable's list order (its newest version). Point reads and conflict checks
// go through it instead of a search of the memtable's buffer and runs: one
// probe of a flat slot array and one node instead of a binary search in each
// run and a walk of the buffer, and a key the
// memtable does not hold (the common case for a read that ends in the B+tree)
// usually costs one cache miss.
//
// Open addressing with linear probing over 64-bit slots, each holding a
// 16-bit hash tag and a 48-bit node pointer, so a probe compares tags
// without touching nodes and one atomic store publishes a slot. A key's home
// slot is taken from the hash's top bits. Up to 64K slots the tag is the top
// 16 bits, which hold the home, so such a table is rebuilt from the tags
// alone, without reading a node or hashing a key again. A larger table's tag
// is the 16 bits below the home's: keys probing the same stretch of slots
// share their top bits, and a tag taken from those would match at every
// probe and cost a node's cache miss each time. Keys are never
// removed. When the load passes 3/4 the writer builds a table twice the size
// and publishes it with one pointer store; the old table stays readable (it
// lives in the arena until the memtable dies), so a reader that loaded it
// still sees every Add that completed before the switch.
//
// Thread safety: Reserve() and SetHead() need external serialization (the
// memtable's single writer); Find() may run concurrently from any thread.
#ifndef ARENAKV_MEM_HASH_INDEX_H_
#define ARENAKV_MEM_HASH_INDEX_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "arenakv/status.h"
#include "mem/version_node.h"

namespace arenakv::alloc {
class Arena;
}

namespace arenakv::mem {

class HashIndex {
 public:
  HashIndex() = default;
  HashIndex(const HashIndex&) = delete;
  HashIndex& operator=(const HashIndex&) = delete;

  // Allocates the first table in `arena`, which must outlive the index.
  Status Init(alloc::Arena* arena);
  // Before any other call: Find() answers "cannot tell" from now on. For
  // keys in an order other than bytewise, where keys of different bytes may
  // be the same key and the hash of the bytes would tell them apart.
  void Disable() { disabled_.store(true, std::memory_order_relaxed); }

  static uint64_t Hash(std::string_view key);

  // The first node of `key`, or nullptr if the key has none. Returns false
  // when the index cannot answer (disabled: see SetHead) and the caller must
  // search the memtable.
  bool Find(std::string_view key, uint64_t hash, const VersionNode** head) const;

  // Writer: makes sure `more_keys` more keys fit, growing the table if
  // needed. Called before anything is linked, so a MemoryLimit here changes
  // nothing. *allocated_bytes gets the bytes a new table took (0 if none).
  Status Reserve(size_t more_keys, size_t* allocated_bytes);

  // Starts loading the slot `hash` lands on, so that its cache miss overlaps
  // other work (building the node) before SetHead().
  void Prefetch(uint64_t hash) const {
    const Table* t = table_.load(std::memory_order_relaxed);
    __builtin_prefetch(&t->slots[Home(t, hash)], 1, 3);
  }

  // Writer, after Prefetch() and some other work: loads the slot (cached by
  // then) and, if it holds a version with `hash`'s tag, starts loading that
  // node's key, which SetHead() compares when the key is already indexed
  // (an overwrite: a miss of its own after the slot's).
  void PrefetchHead(uint64_t hash) const {
    const Table* t = table_.load(std::memory_order_relaxed);
    const uint64_t slot = t->slots[Home(t, hash)].load(std::memory_order_relaxed);
    if (slot != 0 && (slot >> kPointerBits) == TagOf(t, hash)) {
      const char* node = reinterpret_cast<const char*>(NodeOf(slot));
      __builtin_prefetch(node);  // the header and the key right after it
    }
  }

  // Writer: `node` is now the first node of its key (a new key, or a newer
  // version). Needs a prior Reserve().
  void SetHead(const VersionNode* node, uint64_t hash);

  size_t keys() const { return keys_; }  // writer only

  // The tag a table of `capacity` slots (a power of two) stores for `hash`.
  static uint64_t TagFor(size_t capacity, uint64_t hash) {
    const int home_bits = __builtin_ctzll(capacity);
    return home_bits <= 64 - kPointerBits ? hash >> kPointerBits
                                          : (hash << home_bits) >> kPointerBits;
  }

 private:
  struct Table {
    size_t mask;  // capacity - 1
    int shift;    // 64 - log2(capacity): a hash's home slot is hash >> shift
    std::atomic<uint64_t>* slots;
  };
  static size_t Home(const Table* t, uint64_t hash) { return hash >> t->shift; }

  static constexpr int kPointerBits = 48;
  static constexpr uint64_t kPointerMask = (uint64_t{1} << kPointerBits) - 1;
  static uint64_t TagOf(const Table* t, uint64_t hash) { return TagFor(t->mask + 1, hash); }
  static const VersionNode* NodeOf(uint64_t slot) {
    return reinterpret_cast<const VersionNode*>(slot & kPointerMask);
  }

  static size_t TableBytes(size_t capacity) {
    return sizeof(Table) + capacity * sizeof(std::atomic<uint64_t>);
  }
  Status NewTable(size_t capacity, Table** table);
  // Puts `node` in `t`: replaces the slot of its key or takes an empty one.
  // Returns true if it took an empty slot.
  static bool Place(Table* t, const VersionNode* node, uint64_t hash);
  // Puts a slot of an older table into a new one, whose keys are all
  // distinct: the first empty slot from its home.
  static void PlaceMoved(Table* t, uint64_t slot, uint64_t hash);

  alloc::Arena* arena_ = nullptr;
  std::atomic<Table*> table_{nullptr};
  // Set for good if a node address does not fit in 48 bits (never on
  // today's x86-64 and arm64 user space, but not worth a wrong answer).
  std::atomic<bool> disabled_{false};
  size_t keys_ = 0;  // writer only
};

}  // namespace arenakv::mem

#endif  // ARENAKV_MEM_HASH_INDEX_H_
