// Clang thread-safety annotations. They compile to nothing elsewhere; a clang
// build with -Wthread-safety checks that GUARDED_BY state is touched only with
// its lock held.
#ifndef ARENAKV_PORT_THREAD_ANNOTATIONS_H_
#define ARENAKV_PORT_THREAD_ANNOTATIONS_H_

#if defined(__clang__)
#define ARENAKV_TSA(x) __attribute__((x))
#else
#define ARENAKV_TSA(x)
#endif

#define CAPABILITY(x) ARENAKV_TSA(capability(x))
#define SCOPED_CAPABILITY ARENAKV_TSA(scoped_lockable)
#define GUARDED_BY(x) ARENAKV_TSA(guarded_by(x))
#define PT_GUARDED_BY(x) ARENAKV_TSA(pt_guarded_by(x))
#define ACQUIRED_BEFORE(...) ARENAKV_TSA(acquired_before(__VA_ARGS__))
#define REQUIRES(...) ARENAKV_TSA(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) ARENAKV_TSA(requires_shared_capability(__VA_ARGS__))
#define ACQUIRE(...) ARENAKV_TSA(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) ARENAKV_TSA(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) ARENAKV_TSA(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) ARENAKV_TSA(release_shared_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) ARENAKV_TSA(try_acquire_capability(__VA_ARGS__))
#define EXCLUDES(...) ARENAKV_TSA(locks_excluded(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) ARENAKV_TSA(assert_capability(x))
#define RETURN_CAPABILITY(x) ARENAKV_TSA(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS ARENAKV_TSA(no_thread_safety_analysis)

#endif  // ARENAKV_PORT_THREAD_ANNOTATIONS_H_
