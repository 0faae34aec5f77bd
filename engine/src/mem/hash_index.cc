#include "mem/hash_index.h"

#include <xxhash.h>

#include <new>

#include "arenakv/alloc/arena.h"
#include "util/key_compare.h"

namespace arenakv::mem {

namespace {

// Small: every open database's active memtable has a table, and an idle
// one's is most of what it touches (1,024 slots were 8 KiB resident of an
// idle tenant's 50); a busy one doubles its way up at little cost.
constexpr size_t kInitialCapacity = 256;

}  // namespace

uint64_t HashIndex::Hash(std::string_view key) { return XXH3_64bits(key.data(), key.size()); }

Status HashIndex::NewTable(size_t capacity, Table** table) {
  void* mem = nullptr;
  Status s = arena_->Allocate(TableBytes(capacity), alignof(std::atomic<uint64_t>), &mem);
  if (!s.ok()) return s;
  Table* t = new (mem) Table();
  t->mask = capacity - 1;
  t->shift = 64 - __builtin_ctzll(capacity);
  t->slots = reinterpret_cast<std::atomic<uint64_t>*>(t + 1);
  for (size_t i = 0; i < capacity; ++i) new (&t->slots[i]) std::atomic<uint64_t>(0);
  *table = t;
  return Status::OK();
}

Status HashIndex::Init(alloc::Arena* arena) {
  arena_ = arena;
  Table* t = nullptr;
  Status s = NewTable(kInitialCapacity, &t);
  if (!s.ok()) return s;
  table_.store(t, std::memory_order_release);
  return Status::OK();
}

bool HashIndex::Find(std::string_view key, uint64_t hash, const VersionNode** head) const {
  if (disabled_.load(std::memory_order_acquire)) return false;
  const Table* t = table_.load(std::memory_order_acquire);
  const uint64_t tag = TagOf(t, hash);
  for (size_t i = Home(t, hash);; i = (i + 1) & t->mask) {
    const uint64_t slot = t->slots[i].load(std::memory_order_acquire);
    if (slot == 0) break;
    if ((slot >> kPointerBits) == tag) {
      const VersionNode* n = NodeOf(slot);
      if (KeysEqual(n->key(), key)) {
        *head = n;
        return true;
      }
    }
  }
  *head = nullptr;
  return true;
}

bool HashIndex::Place(Table* t, const VersionNode* node, uint64_t hash) {
  const uint64_t tag = TagOf(t, hash);
  const uint64_t value = (tag << kPointerBits) | reinterpret_cast<uintptr_t>(node);
  for (size_t i = Home(t, hash);; i = (i + 1) & t->mask) {
    const uint64_t slot = t->slots[i].load(std::memory_order_relaxed);
    if (slot == 0) {
      // Release: a reader that finds the slot sees the node's contents.
      t->slots[i].store(value, std::memory_order_release);
      return true;
    }
    if ((slot >> kPointerBits) == tag && KeysEqual(NodeOf(slot)->key(), node->key())) {
      t->slots[i].store(value, std::memory_order_release);
      return false;
    }
  }
}

Status HashIndex::Reserve(size_t more_keys, size_t* allocated_bytes) {
  *allocated_bytes = 0;
  if (disabled_.load(std::memory_order_relaxed)) return Status::OK();
  Table* old = table_.load(std::memory_order_relaxed);
  const size_t capacity = old->mask + 1;
  if ((keys_ + more_keys) * 4 <= capacity * 3) return Status::OK();
  size_t grown = capacity * 2;
  while ((keys_ + more_keys) * 4 > grown * 3) grown *= 2;
  Table* t = nullptr;
  Status s = NewTable(grown, &t);
  if (!s.ok()) return s;
  // Up to 64K slots a home slot comes from the top 16 bits of the hash,
  // which the tag holds. Beyond, rehashing reads every key, in hash order:
  // random nodes. The loads are independent, so fetching a few slots ahead
  // overlaps their misses.
  const bool from_tags = t->shift >= kPointerBits;
  constexpr size_t kAhead = 8;
  for (size_t i = 0; i < capacity; ++i) {
    if (!from_tags && i + kAhead < capacity) {
      __builtin_prefetch(NodeOf(old->slots[i + kAhead].load(std::memory_order_relaxed)));
    }
    const uint64_t slot = old->slots[i].load(std::memory_order_relaxed);
    if (slot == 0) continue;
    if (from_tags) {
      PlaceMoved(t, slot, (slot >> kPointerBits) << kPointerBits);
    } else {
      const uint64_t hash = Hash(NodeOf(slot)->key());
      PlaceMoved(t, (TagOf(t, hash) << kPointerBits) | (slot & kPointerMask), hash);
    }
  }
  // Release: readers that load the new table see it fully built. The old one
  // is never written again but stays valid for readers already inside it.
  table_.store(t, std::memory_order_release);
  *allocated_bytes = TableBytes(grown);
  return Status::OK();
}

void HashIndex::PlaceMoved(Table* t, uint64_t slot, uint64_t hash) {
  for (size_t i = Home(t, hash);; i = (i + 1) & t->mask) {
    if (t->slots[i].load(std::memory_order_relaxed) == 0) {
      // Relaxed: the table is published whole by a release store.
      t->slots[i].store(slot, std::memory_order_relaxed);
      return;
    }
  }
}

void HashIndex::SetHead(const VersionNode* node, uint64_t hash) {
  if (disabled_.load(std::memory_order_relaxed)) return;
  if ((reinterpret_cast<uintptr_t>(node) & ~kPointerMask) != 0) {
    disabled_.store(true, std::memory_order_release);
    return;
  }
  if (Place(table_.load(std::memory_order_relaxed), node, hash)) ++keys_;
}

}  // namespace arenakv::mem
