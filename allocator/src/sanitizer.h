// Manual AddressSanitizer poisoning for pooled memory. Free, pooled and closed
// segments are poisoned so that ASan reports a touch of them exactly as it
// would a heap use-after-free; outside ASan builds these compile to nothing.
#ifndef ARENAKV_ALLOC_SANITIZER_H_
#define ARENAKV_ALLOC_SANITIZER_H_

#include <cstddef>
#include <utility>
#include <vector>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENAKV_ASAN 1
#endif
#endif
#if !defined(ARENAKV_ASAN) && defined(__SANITIZE_ADDRESS__)
#define ARENAKV_ASAN 1
#endif

#if defined(ARENAKV_ASAN)
#include <sanitizer/asan_interface.h>
#endif

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ARENAKV_TSAN 1
#endif
#endif
#if !defined(ARENAKV_TSAN) && defined(__SANITIZE_THREAD__)
#define ARENAKV_TSAN 1
#endif
#if defined(ARENAKV_TSAN)
extern "C" void AnnotateIgnoreWritesBegin(const char* file, int line);
extern "C" void AnnotateIgnoreWritesEnd(const char* file, int line);
#endif

namespace arenakv::alloc::internal {

inline void Poison(const void* p, size_t n) {
#if defined(ARENAKV_ASAN)
  ASAN_POISON_MEMORY_REGION(p, n);
#else
  (void)p;
  (void)n;
#endif
}

inline void Unpoison(const void* p, size_t n) {
#if defined(ARENAKV_ASAN)
  ASAN_UNPOISON_MEMORY_REGION(p, n);
#else
  (void)p;
  (void)n;
#endif
}

// The poisoned ranges of [p, p + n), kept while the range is unpoisoned so
// that a whole segment can be copied out (Arena::Spill) and then put back
// exactly as it was. Empty outside ASan builds.
class PoisonedRanges {
 public:
  PoisonedRanges(const char* p, size_t n) {
#if defined(ARENAKV_ASAN)
    // Poisoning is tracked per 8-byte granule.
    for (size_t i = 0; i < n; i += 8) {
      if (!__asan_address_is_poisoned(p + i)) continue;
      if (!ranges_.empty() && ranges_.back().first + ranges_.back().second == p + i) {
        ranges_.back().second += 8;
      } else {
        ranges_.emplace_back(p + i, 8);
      }
    }
    Unpoison(p, n);
#else
    (void)p;
    (void)n;
#endif
  }
  ~PoisonedRanges() {
    for (const auto& [p, n] : ranges_) Poison(p, n);
  }
  PoisonedRanges(const PoisonedRanges&) = delete;
  PoisonedRanges& operator=(const PoisonedRanges&) = delete;

 private:
  std::vector<std::pair<const char*, size_t>> ranges_;
};

// ThreadSanitizer counts an mmap over a range as a write to all of it. A
// spill maps a file holding the same bytes over memory other threads are
// reading, which writes nothing they can see: while this lives, the calling
// thread's writes are not recorded (the range's history is reset instead).
class IgnoreWritesForTsan {
 public:
  IgnoreWritesForTsan() {
#if defined(ARENAKV_TSAN)
    AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
#endif
  }
  ~IgnoreWritesForTsan() {
#if defined(ARENAKV_TSAN)
    AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
#endif
  }
  IgnoreWritesForTsan(const IgnoreWritesForTsan&) = delete;
  IgnoreWritesForTsan& operator=(const IgnoreWritesForTsan&) = delete;
};

}  // namespace arenakv::alloc::internal

#endif  // ARENAKV_ALLOC_SANITIZER_H_
