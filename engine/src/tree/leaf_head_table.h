// LeafHeadTable: the heads (stored header and block index) of leaves the
// page cache does not hold whole, so that a point read that misses reads
// only the block that may hold its key: one read from the file instead of
// two. With data ten times the cache, the read of a leaf's 512-byte head
// cost a quarter of a miss, nearly all of it cold memory in the kernel
// (its page lookups and the copy), not the bytes themselves. The table
// holds bytes for an address; the tree keeps a head's digest there
// (tree/leaf_digest.h), searched without rebuilding the index.
//
// Two-way set-associative, each slot 320 bytes with the head inline, so a
// lookup touches one place in memory; a head longer than a slot is not
// kept (the read then fetches it, as before). A head is only ever put in
// after its checksum was checked, and is trusted as a cached page is: it
// describes the page at its address until that extent is freed, when the
// owner erases it.
//
// Every slot is a sequence lock: a reader copies the head out without
// locking and treats a copy torn by a writer as a miss; a writer takes the
// slot's sequence word by compare-and-swap. Its stores are releases and the
// reader's loads acquires, so that a reader that sees any of them sees the
// odd sequence number the writer took first. Insert gives up on a busy slot
// (a head is only a shortcut); Erase and Clear wait for it (a head must not
// outlive its page).
//
// Memory: one arena segment, given at construction; the owner accounts for
// it and releases it (here: with the page cache's arena).
//
// Thread safety: all methods may be called concurrently.
#ifndef ARENAKV_TREE_LEAF_HEAD_TABLE_H_
#define ARENAKV_TREE_LEAF_HEAD_TABLE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace arenakv::tree {

class LeafHeadTable {
 public:
  static constexpr size_t kSlotBytes = 320;
  static constexpr size_t kWays = 2;
  // The longest head a slot holds.
  static constexpr size_t kMaxHeadBytes = kSlotBytes - 16;
  // The memory `sets` sets take (64-byte aligned).
  static constexpr size_t BytesFor(size_t sets) { return sets * kWays * kSlotBytes; }
  // Where the set of `address` lies in a table of `sets` sets at `slots`
  // (the memory given at construction); pure arithmetic, no access.
  static const char* SetAddress(const char* slots, size_t sets, uint64_t address) {
    const uint64_t hash = address * 0x9E3779B97F4A7C15ULL;
    const auto set = static_cast<size_t>((static_cast<unsigned __int128>(hash) * sets) >> 64);
    return slots + set * BytesFor(1);
  }

  // Over `memory` (BytesFor(sets) bytes, 64-byte aligned, not owned), which
  // it initializes.
  LeafHeadTable(char* memory, size_t sets);
  LeafHeadTable(const LeafHeadTable&) = delete;
  LeafHeadTable& operator=(const LeafHeadTable&) = delete;

  // Copies the head kept for `address` into out (room for kMaxHeadBytes,
  // rounded up to 8) and sets *bytes; false if none is kept or a writer was
  // changing it.
  bool Find(uint64_t address, char* out, size_t* bytes) const;
  // Keeps `head` for `address` (nothing if it is longer than a slot holds or
  // its slot is busy), replacing one of the set's heads when both are taken.
  void Insert(uint64_t address, std::string_view head);
  // Forgets the head of `address`, if kept.
  void Erase(uint64_t address);
  // Forgets every head.
  void Clear();

 private:
  static constexpr size_t kWords = kMaxHeadBytes / 8;
  struct alignas(64) Slot {
    std::atomic<uint32_t> seq;  // odd while a writer changes the slot
    std::atomic<uint32_t> bytes;
    std::atomic<uint64_t> address;  // 0: empty
    std::atomic<uint64_t> words[kWords];
  };
  static_assert(sizeof(Slot) == kSlotBytes);

  Slot* SetFor(uint64_t address) const;
  // Takes the slot's sequence word (false if a writer holds it and `wait`
  // is false); Unlock publishes what was written.
  static bool Lock(Slot& slot, bool wait, uint32_t* seq);
  static void Unlock(Slot& slot, uint32_t seq);
  static void EraseIfHolds(Slot& slot, uint64_t address);

  Slot* const slots_;
  const size_t sets_;
};

}  // namespace arenakv::tree

#endif  // ARENAKV_TREE_LEAF_HEAD_TABLE_H_
