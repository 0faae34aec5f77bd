// Manual AddressSanitizer poisoning for pooled memory. Free, pooled and closed
// segments are poisoned so that ASan reports a touch of them exactly as it
// would a heap use-after-free; outside ASan builds these compile to nothing.
#ifndef ARENAKV_ALLOC_SANITIZER_H_
#define ARENAKV_ALLOC_SANITIZER_H_

#include <cstddef>

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

}  // namespace arenakv::alloc::internal

#endif  // ARENAKV_ALLOC_SANITIZER_H_
