// Read epochs: the slot registry and the reclaimer's side.
#include "tree/read_epoch.h"

#include <thread>

#include "util/sync_point.h"

namespace arenakv::tree::epoch {

namespace internal {

Slot g_slots[kMaxSlots];
std::atomic<uint64_t> g_epoch{1};

namespace {

// Highest slot index ever claimed, plus one: scans stop there.
std::atomic<int> g_limit{0};

// Gives the thread's slot back when the thread ends.
struct SlotOwner {
  bool owns = false;
  ~SlotOwner() {
    if (t_slot >= 0) {
      g_slots[t_slot].epoch.store(0, std::memory_order_release);
      g_slots[t_slot].taken.store(false, std::memory_order_release);
      t_slot = -2;  // any section after this (another destructor) is inactive
    }
  }
};
thread_local SlotOwner t_owner;

}  // namespace

int ClaimSlot() {
  for (int i = 0; i < kMaxSlots; ++i) {
    bool expected = false;
    if (!g_slots[i].taken.load(std::memory_order_relaxed) &&
        g_slots[i].taken.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
      int limit = g_limit.load(std::memory_order_relaxed);
      while (limit < i + 1 &&
             !g_limit.compare_exchange_weak(limit, i + 1, std::memory_order_release)) {
      }
      t_slot = i;
      t_owner.owns = true;  // constructs the owner: its destructor frees the slot
      return i;
    }
  }
  t_slot = -2;
  return -2;
}

}  // namespace internal

using internal::g_epoch;
using internal::g_slots;

uint64_t Retire() { return g_epoch.fetch_add(1, std::memory_order_seq_cst) + 1; }

uint64_t SafeTag() {
  uint64_t safe = g_epoch.load(std::memory_order_acquire);
#if defined(__SANITIZE_THREAD__)
  g_epoch.fetch_add(0, std::memory_order_seq_cst);
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
  const int limit = internal::g_limit.load(std::memory_order_acquire);
  for (int i = 0; i < limit; ++i) {
    const uint64_t e = g_slots[i].epoch.load(std::memory_order_acquire);
    if (e != 0 && e <= safe) safe = e;  // a reader at e: objects tagged <= e are safe
  }
  return safe;
}

void WaitUntilSafe(uint64_t tag) {
  for (int spins = 0; SafeTag() < tag; ++spins) {
    TEST_SYNC_POINT_CALLBACK("ReadEpoch::WaitUntilSafe:NotYetSafe", &tag);
    if (spins > 16) std::this_thread::yield();
  }
}

}  // namespace arenakv::tree::epoch
