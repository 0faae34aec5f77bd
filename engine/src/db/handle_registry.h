// HandleRegistry: how DB::Close() reaches every iterator, transaction and
// snapshot still alive, so that none of them can touch the database's memory
// after it is gone.
//
// Each handle has its own mutex, taken for the whole of every call on it (no
// contention: a handle is used by one thread at a time). Close() first marks
// the registry closed, then invalidates each registered handle under that
// handle's mutex — waiting for a call in flight to finish — which drops
// everything the handle holds inside the database. Only then are the
// database's arenas and pool closed ("invalidate first, unmap second").
//
// A registry may charge each handle's memory (its object and what it keeps
// on the heap) to the database's pool budget while the handle is linked: the
// number of handles a user opens is bounded by the budget like everything
// else, and Close() returns every charge before the pool closes.
//
// Thread safety: all methods are thread-safe.
#ifndef ARENAKV_DB_HANDLE_REGISTRY_H_
#define ARENAKV_DB_HANDLE_REGISTRY_H_

#include <cstddef>
#include <string>

#include "arenakv/alloc/segment_pool.h"
#include "arenakv/status.h"
#include "port/mutex.h"

namespace arenakv {

class HandleRegistry;

class Handle {
 public:
  Handle() = default;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  virtual ~Handle() = default;

 protected:
  friend class HandleRegistry;
  // Drops every resource pointing into the database. Called with mu_ held,
  // at most once, either by Close() or by the handle's own teardown.
  virtual void ReleaseLocked() REQUIRES(mu_) = 0;

  mutable port::Mutex mu_;
  bool closed_ GUARDED_BY(mu_) = false;

 private:
  Handle* prev_ = nullptr;  // registry list, guarded by HandleRegistry::mu_
  Handle* next_ = nullptr;
  bool linked_ = false;
  size_t charged_ = 0;  // charged to the registry's pool while linked
};

class HandleRegistry {
 public:
  // `pool` (may be null: nothing charged) must stay open until CloseAll().
  explicit HandleRegistry(alloc::SegmentPool* pool = nullptr) : pool_(pool) {}

  // Links a new handle, charging `bytes` to the pool. Closed once Close has
  // begun, MemoryLimit when the budget has no room; nothing linked then.
  Status Register(Handle* h, size_t bytes) EXCLUDES(mu_) {
    port::MutexLock l(&mu_);
    if (closed_) return Status::Closed("database is closed");
    if (pool_ != nullptr && bytes > 0) {
      Status s = pool_->Charge(bytes);
      if (!s.ok()) {
        return Status::MemoryLimit("no room in the memory budget for another handle (" +
                                   s.message() + ")");
      }
      h->charged_ = bytes;
    }
    h->next_ = head_;
    h->prev_ = nullptr;
    if (head_ != nullptr) head_->prev_ = h;
    head_ = h;
    h->linked_ = true;
    ++count_;
    return Status::OK();
  }

  // The handle's own teardown: releases its resources unless Close() already
  // did. Must be called from the handle's destructor (or Commit/Rollback end).
  void Release(Handle* h) EXCLUDES(mu_) {
    port::MutexLock l(&mu_);
    if (!h->linked_) return;
    Unlink(h);
    port::MutexLock hl(&h->mu_);
    if (!h->closed_) {
      h->closed_ = true;
      h->ReleaseLocked();
    }
  }

  // Close(): no new handles; every linked handle released and marked closed.
  void CloseAll() EXCLUDES(mu_) {
    port::MutexLock l(&mu_);
    closed_ = true;
    while (head_ != nullptr) {
      Handle* h = head_;
      Unlink(h);
      port::MutexLock hl(&h->mu_);
      if (!h->closed_) {
        h->closed_ = true;
        h->ReleaseLocked();
      }
    }
  }

  size_t count() EXCLUDES(mu_) {
    port::MutexLock l(&mu_);
    return count_;
  }

 private:
  void Unlink(Handle* h) REQUIRES(mu_) {
    if (h->prev_ != nullptr)
      h->prev_->next_ = h->next_;
    else
      head_ = h->next_;
    if (h->next_ != nullptr) h->next_->prev_ = h->prev_;
    h->prev_ = h->next_ = nullptr;
    h->linked_ = false;
    --count_;
    if (h->charged_ > 0) pool_->Uncharge(h->charged_);
    h->charged_ = 0;
  }

  alloc::SegmentPool* const pool_;
  port::Mutex mu_;
  bool closed_ GUARDED_BY(mu_) = false;
  Handle* head_ GUARDED_BY(mu_) = nullptr;
  size_t count_ GUARDED_BY(mu_) = 0;
};

}  // namespace arenakv

#endif  // ARENAKV_DB_HANDLE_REGISTRY_H_
