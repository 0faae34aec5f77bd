// What the two C APIs (arenakv/c.h and LevelDB's c.h) share: malloc'ed
// strings and values handed to C, errors stored in *errptr, handles made
// and freed without an exception reaching C, and write batches iterated
// through C callbacks.
//
// Thread safety: pure functions over their arguments.
#ifndef ARENAKV_CAPI_C_COMMON_H_
#define ARENAKV_CAPI_C_COMMON_H_

#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <utility>

#include "arenakv/comparator.h"
#include "arenakv/status.h"
#include "arenakv/write_batch.h"

namespace arenakv::capi {

// Copies `s` into a malloc'ed, NUL-terminated buffer (NULL if malloc fails).
inline char* CopyString(std::string_view s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  if (out == nullptr) return nullptr;
  std::memcpy(out, s.data(), s.size());
  out[s.size()] = '\0';
  return out;
}

// Stores a failure in *errptr (replacing a message already there); true if
// there was one.
inline bool SaveError(char** errptr, const Status& s) {
  if (s.ok()) return false;
  if (errptr != nullptr) {
    std::free(*errptr);
    *errptr = CopyString(s.ToString());
  }
  return true;
}

inline void SaveMemoryError(char** errptr, const char* what) {
  SaveError(errptr, Status::MemoryLimit(std::string("out of memory in ") + what));
}

// A value read by `s` returned to C: malloc'ed with its length, or NULL for
// not found (errptr untouched) and for a failure (errptr set).
inline char* ReturnValue(const Status& s, const std::string& value, size_t* vallen, char** errptr,
                         const char* what) {
  *vallen = 0;
  if (s.IsNotFound() || SaveError(errptr, s)) return nullptr;
  char* out = static_cast<char*>(std::malloc(value.empty() ? 1 : value.size()));
  if (out == nullptr) {
    SaveMemoryError(errptr, what);
    return nullptr;
  }
  if (!value.empty()) std::memcpy(out, value.data(), value.size());
  *vallen = value.size();
  return out;
}

// A new handle, or NULL when there is no memory for it.
template <typename T, typename... Args>
T* Make(Args&&... args) {
  try {
    return std::make_unique<T>(T{std::forward<Args>(args)...}).release();
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

template <typename T>
void Destroy(T* handle) {
  std::unique_ptr<T> owned(handle);
}

inline std::string_view View(const char* p, size_t n) { return std::string_view(p, n); }

// A key order given as C callbacks, the shape of both C APIs'
// comparators: compare(state, a, alen, b, blen), name(state), and
// destructor(state) (may be NULL) when the handle is destroyed. The C
// handle types derive from it.
class CallbackComparator : public Comparator {
 public:
  using CompareFn = int (*)(void*, const char*, size_t, const char*, size_t);
  using NameFn = const char* (*)(void*);
  CallbackComparator(void* state, void (*destructor)(void*), CompareFn compare, NameFn name)
      : state_(state), destructor_(destructor), compare_(compare), name_(name) {}
  ~CallbackComparator() override {
    if (destructor_ != nullptr) destructor_(state_);
  }
  int Compare(std::string_view a, std::string_view b) const override {
    return compare_(state_, a.data(), a.size(), b.data(), b.size());
  }
  const char* Name() const override { return name_ != nullptr ? name_(state_) : nullptr; }

 private:
  void* const state_;
  void (*const destructor_)(void*);
  const CompareFn compare_;
  const NameFn name_;
};

using PutCallback = void (*)(void*, const char* k, size_t klen, const char* v, size_t vlen);
using DeleteCallback = void (*)(void*, const char* k, size_t klen);

// Calls `put` or `deleted` for each operation of `batch`, in order.
inline void IterateBatch(const WriteBatch& batch, void* state, PutCallback put,
                         DeleteCallback deleted) {
  class Forward final : public WriteBatch::Handler {
   public:
    Forward(void* state, PutCallback put, DeleteCallback deleted)
        : state_(state), put_(put), deleted_(deleted) {}
    Status Put(std::string_view k, std::string_view v) override {
      put_(state_, k.data(), k.size(), v.data(), v.size());
      return Status::OK();
    }
    Status Delete(std::string_view k) override {
      deleted_(state_, k.data(), k.size());
      return Status::OK();
    }

   private:
    void* const state_;
    const PutCallback put_;
    const DeleteCallback deleted_;
  };
  Forward handler(state, put, deleted);
  batch.Iterate(&handler).IgnoreError();  // the callbacks cannot fail
}

}  // namespace arenakv::capi

#endif  // ARENAKV_CAPI_C_COMMON_H_
