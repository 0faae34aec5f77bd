// LeafHeadTable: sequence-locked slots of leaf heads.
#include "tree/leaf_head_table.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <thread>

namespace arenakv::tree {

LeafHeadTable::LeafHeadTable(char* memory, size_t sets)
    : slots_(reinterpret_cast<Slot*>(memory)), sets_(sets) {
  for (size_t i = 0; i < sets * kWays; ++i) std::construct_at(&slots_[i]);
}

LeafHeadTable::Slot* LeafHeadTable::SetFor(uint64_t address) const {
  return reinterpret_cast<Slot*>(
      const_cast<char*>(SetAddress(reinterpret_cast<const char*>(slots_), sets_, address)));
}

bool LeafHeadTable::Lock(Slot& slot, bool wait, uint32_t* seq) {
  for (;;) {
    uint32_t s = slot.seq.load(std::memory_order_relaxed);
    // Acquire: this writer's stores come after the last writer's, whose
    // Unlock released them.
    if ((s & 1) == 0 && slot.seq.compare_exchange_weak(s, s + 1, std::memory_order_acquire,
                                                       std::memory_order_relaxed)) {
      *seq = s + 1;
      return true;
    }
    if (!wait) return false;
    std::this_thread::yield();  // a writer holds it for a few stores
  }
}

void LeafHeadTable::Unlock(Slot& slot, uint32_t seq) {
  slot.seq.store(seq + 1, std::memory_order_release);
}

bool LeafHeadTable::Find(uint64_t address, char* out, size_t* bytes) const {
  const Slot* set = SetFor(address);
  for (size_t w = 0; w < kWays; ++w) {
    const Slot& slot = set[w];
    const uint32_t seq = slot.seq.load(std::memory_order_acquire);
    // Acquire loads of what writers store with release: a load that sees a
    // writer's store makes the writer's odd number (taken before it) seen
    // by the last check. On x86 these are plain moves; no fences, which the
    // thread sanitizer does not model.
    if ((seq & 1) != 0 || slot.address.load(std::memory_order_acquire) != address) continue;
    const size_t n = slot.bytes.load(std::memory_order_acquire);  // never above kMaxHeadBytes
    for (size_t i = 0; i < (n + 7) / 8; ++i) {
      const uint64_t word = slot.words[i].load(std::memory_order_acquire);
      std::memcpy(out + 8 * i, &word, 8);
    }
    if (slot.seq.load(std::memory_order_relaxed) != seq) return false;  // torn by a writer
    *bytes = n;
    return true;
  }
  return false;
}

void LeafHeadTable::Insert(uint64_t address, std::string_view head) {
  if (address == 0 || head.size() > kMaxHeadBytes) return;
  Slot* set = SetFor(address);
  Slot* slot = nullptr;
  for (size_t w = 0; w < kWays; ++w) {
    const uint64_t kept = set[w].address.load(std::memory_order_relaxed);
    if (kept == address) return;  // a live address's head never changes
    if (kept == 0 && slot == nullptr) slot = &set[w];
  }
  if (slot == nullptr) {
    // Both taken: every write moves one slot's number on by two, so this
    // takes the ways by turns.
    const uint32_t turns =
        set[0].seq.load(std::memory_order_relaxed) + set[1].seq.load(std::memory_order_relaxed);
    slot = &set[(turns >> 1) % kWays];
  }
  uint32_t seq;
  if (!Lock(*slot, /*wait=*/false, &seq)) return;
  slot->address.store(address, std::memory_order_release);
  slot->bytes.store(static_cast<uint32_t>(head.size()), std::memory_order_release);
  for (size_t i = 0; i * 8 < head.size(); ++i) {
    uint64_t word = 0;
    std::memcpy(&word, head.data() + 8 * i, std::min<size_t>(8, head.size() - 8 * i));
    slot->words[i].store(word, std::memory_order_release);
  }
  Unlock(*slot, seq);
}

void LeafHeadTable::EraseIfHolds(Slot& slot, uint64_t address) {
  if (slot.address.load(std::memory_order_relaxed) != address) return;
  uint32_t seq;
  (void)Lock(slot, /*wait=*/true, &seq);  // waiting, it always takes the slot
  if (slot.address.load(std::memory_order_relaxed) == address) {
    slot.address.store(0, std::memory_order_release);
    slot.bytes.store(0, std::memory_order_release);
  }
  Unlock(slot, seq);
}

void LeafHeadTable::Erase(uint64_t address) {
  if (address == 0) return;
  Slot* set = SetFor(address);
  for (size_t w = 0; w < kWays; ++w) EraseIfHolds(set[w], address);
}

void LeafHeadTable::Clear() {
  for (size_t i = 0; i < sets_ * kWays; ++i) {
    const uint64_t kept = slots_[i].address.load(std::memory_order_relaxed);
    if (kept != 0) EraseIfHolds(slots_[i], kept);
  }
}

}  // namespace arenakv::tree
