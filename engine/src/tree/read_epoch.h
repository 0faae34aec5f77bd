// Read epochs: lets short read paths use shared memory (page cache frames,
// index arrays) without pinning it, and tells the owner of that memory when
// no such reader can still be using something it took away.
//
// A reader brackets its accesses with a ReadSection. The thread's slot (one
// cache line per thread, process-wide, never shared) then holds the global
// epoch it saw on entry; leaving clears it. An owner first unlinks an object
// so that no new reader can reach it, then calls Retire() for a tag; once
// SafeTag() >= that tag (or after WaitUntilSafe(tag)) nobody can still hold
// the object and its memory may be released or reused.
//
// Why this is sound, with G the global epoch and S the reader's slot:
//  - Enter: e = G (acquire); S = e (release); seq_cst fence; then reads.
//  - Retire: (unlink happened before) t = ++G (seq_cst read-modify-write).
//  - SafeTag: seq_cst fence; for every slot, acquire-load it: an object
//    tagged t may go once every slot is 0 or >= t.
//  A reader with e >= t read G from our increment (or a later one in its
//  release sequence), so the unlink happens before its reads: it cannot reach
//  the object. A reader with e < t that we saw as 0 had not stored S yet: by
//  the two seq_cst fences, its reads come after the unlink. Any other value
//  we saw was stored (release) after the reader left the section that used
//  e, so its reads there happen before our release of the memory.
//
// Costs: entering is a store and a fence on the thread's own line; nothing
// any other thread writes. There are kMaxSlots slots; a thread that finds
// none free (more than that many live reader threads) gets inactive sections
// and must use its pinned fallback path.
//
// Thread safety: everything may be called from any thread. Sections nest
// (only the outermost one counts). A thread inside a section must not wait
// for a tag (WaitUntilSafe) — it would wait for itself.
#ifndef ARENAKV_TREE_READ_EPOCH_H_
#define ARENAKV_TREE_READ_EPOCH_H_

#include <atomic>
#include <cstdint>

namespace arenakv::tree::epoch {

inline constexpr int kMaxSlots = 256;

struct alignas(64) Slot {
  std::atomic<uint64_t> epoch{0};  // 0: not in a section
  std::atomic<bool> taken{false};
};

namespace internal {
extern Slot g_slots[kMaxSlots];
extern std::atomic<uint64_t> g_epoch;
// -1: none yet; -2: no slot was free. Constant-initialized inline
// variables: every access is a plain thread-local load, no wrapper call.
inline thread_local int t_slot = -1;
inline thread_local int t_depth = 0;
int ClaimSlot();

// A release store followed by a seq_cst fence. ThreadSanitizer does not model
// fences; there a seq_cst exchange stands in (a full barrier on x86 as well).
inline void StoreAndFence(std::atomic<uint64_t>* a, uint64_t v) {
#if defined(__SANITIZE_THREAD__)
  a->exchange(v, std::memory_order_seq_cst);
#else
  a->store(v, std::memory_order_release);
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}
}  // namespace internal

class ReadSection {
 public:
  ReadSection() {
    if (internal::t_depth++ > 0) {
      active_ = internal::t_slot >= 0;
      return;
    }
    int s = internal::t_slot;
    if (s == -1) s = internal::ClaimSlot();
    if (s < 0) return;
    const uint64_t e = internal::g_epoch.load(std::memory_order_acquire);
    internal::StoreAndFence(&internal::g_slots[s].epoch, e);
    active_ = true;
  }
  ~ReadSection() {
    if (--internal::t_depth > 0) return;
    if (active_) internal::g_slots[internal::t_slot].epoch.store(0, std::memory_order_release);
  }
  ReadSection(const ReadSection&) = delete;
  ReadSection& operator=(const ReadSection&) = delete;

  // False: the thread has no slot; nothing is protected.
  bool active() const { return active_; }

 private:
  bool active_ = false;
};

// True while the calling thread is inside a section.
inline bool InSection() { return internal::t_depth > 0; }

// After unlinking objects: the tag they must wait for.
uint64_t Retire();
// Every object whose tag is <= the result may be released now.
uint64_t SafeTag();
// Blocks (yielding) until SafeTag() >= tag. Must not be called in a section.
void WaitUntilSafe(uint64_t tag);

}  // namespace arenakv::tree::epoch

#endif  // ARENAKV_TREE_READ_EPOCH_H_
