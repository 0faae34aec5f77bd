// The C API (arenakv/c.h) over the C++ one: each handle owns the C++ object
// it stands for, every Status becomes a malloc'ed message in *errptr, and no
// exception crosses into C (an allocation failure is a MemoryLimit message,
// or NULL from a constructor).
#include "arenakv/c.h"

#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <utility>

#include "arenakv/alloc/stats.h"
#include "arenakv/db.h"
#include "arenakv/memory_budget.h"
#include "c_common.h"

using arenakv::DB;
using arenakv::Status;

struct arenakv_t {
  std::unique_ptr<DB> rep;
};
struct arenakv_options_t {
  arenakv::Options rep;
};
struct arenakv_comparator_t final : arenakv::capi::CallbackComparator {
  using CallbackComparator::CallbackComparator;
};
struct arenakv_readoptions_t {
  arenakv::ReadOptions rep;
};
struct arenakv_writeoptions_t {
  arenakv::WriteOptions rep;
};
struct arenakv_iterator_t {
  std::unique_ptr<arenakv::Iterator> rep;
};
struct arenakv_writebatch_t {
  arenakv::WriteBatch rep;
  Status error;  // the first put or delete the batch refused; reported by arenakv_write
};
struct arenakv_snapshot_t {
  std::unique_ptr<arenakv::Snapshot> rep;
};
struct arenakv_transaction_t {
  std::unique_ptr<arenakv::Transaction> rep;
};
struct arenakv_memory_budget_t {
  std::shared_ptr<arenakv::MemoryBudget> rep;
};

namespace {

using arenakv::capi::CopyString;
using arenakv::capi::Destroy;
using arenakv::capi::Make;
using arenakv::capi::ReturnValue;
using arenakv::capi::SaveError;
using arenakv::capi::SaveMemoryError;
using arenakv::capi::View;

const arenakv::ReadOptions& ReadOpts(const arenakv_readoptions_t* o) {
  static const arenakv::ReadOptions kDefault;
  return o != nullptr ? o->rep : kDefault;
}
const arenakv::WriteOptions& WriteOpts(const arenakv_writeoptions_t* o) {
  static const arenakv::WriteOptions kDefault;
  return o != nullptr ? o->rep : kDefault;
}

}  // namespace

extern "C" {

// ---- Databases ----

arenakv_t* arenakv_open(const arenakv_options_t* options, const char* path, char** errptr) {
  try {
    std::unique_ptr<DB> db;
    const arenakv::Options o = options != nullptr ? options->rep : arenakv::Options{};
    if (SaveError(errptr, DB::Open(o, path != nullptr ? path : "", &db))) return nullptr;
    return std::make_unique<arenakv_t>(arenakv_t{std::move(db)}).release();
  } catch (const std::bad_alloc&) {
    SaveMemoryError(errptr, "arenakv_open");
    return nullptr;
  }
}

void arenakv_close(arenakv_t* db, char** errptr) {
  if (db == nullptr) return;
  std::unique_ptr<arenakv_t> owned(db);
  SaveError(errptr, db->rep->Close());
}

void arenakv_repair_db(const char* path, char** report, char** errptr) {
  try {
    arenakv::RepairReport r;
    if (SaveError(errptr, arenakv::RepairDB(path != nullptr ? path : "", {}, &r))) return;
    if (report == nullptr) return;
    std::string text;
    for (const std::string& line : r.lost) text += line + "\n";
    *report = CopyString(text);
  } catch (const std::bad_alloc&) {
    SaveMemoryError(errptr, "arenakv_repair_db");
  }
}

void arenakv_destroy_db(const char* path, char** errptr) {
  try {
    SaveError(errptr, arenakv::DestroyDB(path != nullptr ? path : ""));
  } catch (const std::bad_alloc&) {
    SaveMemoryError(errptr, "arenakv_destroy_db");
  }
}

void arenakv_put(arenakv_t* db, const arenakv_writeoptions_t* options, const char* key,
                 size_t keylen, const char* val, size_t vallen, char** errptr) {
  SaveError(errptr, db->rep->Put(WriteOpts(options), View(key, keylen), View(val, vallen)));
}

void arenakv_delete(arenakv_t* db, const arenakv_writeoptions_t* options, const char* key,
                    size_t keylen, char** errptr) {
  SaveError(errptr, db->rep->Delete(WriteOpts(options), View(key, keylen)));
}

void arenakv_delete_range(arenakv_t* db, const arenakv_writeoptions_t* options, const char* begin,
                          size_t beginlen, const char* end, size_t endlen, char** errptr) {
  SaveError(errptr,
            db->rep->DeleteRange(WriteOpts(options), View(begin, beginlen), View(end, endlen)));
}

void arenakv_write(arenakv_t* db, const arenakv_writeoptions_t* options,
                   arenakv_writebatch_t* batch, char** errptr) {
  if (SaveError(errptr, batch->error)) return;
  SaveError(errptr, db->rep->Write(WriteOpts(options), &batch->rep));
}

char* arenakv_get(arenakv_t* db, const arenakv_readoptions_t* options, const char* key,
                  size_t keylen, size_t* vallen, char** errptr) {
  *vallen = 0;
  try {
    std::string value;
    Status s = db->rep->Get(ReadOpts(options), View(key, keylen), &value);
    return ReturnValue(s, value, vallen, errptr, "arenakv_get");
  } catch (const std::bad_alloc&) {
    SaveMemoryError(errptr, "arenakv_get");
    return nullptr;
  }
}

void arenakv_checkpoint(arenakv_t* db, char** errptr) { SaveError(errptr, db->rep->Checkpoint()); }

void arenakv_verify(arenakv_t* db, char** errptr) {
  arenakv::VerifyReport report;
  SaveError(errptr, db->rep->Verify(&report));
}

void arenakv_backup(arenakv_t* db, const char* path, char** errptr) {
  try {
    SaveError(errptr, db->rep->Backup(path != nullptr ? path : ""));
  } catch (const std::bad_alloc&) {
    SaveMemoryError(errptr, "arenakv_backup");
  }
}

char* arenakv_stats(arenakv_t* db) {
  try {
    return CopyString(db->rep->StatsReport());
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

char* arenakv_property_value(arenakv_t* db, const char* name) {
  if (name == nullptr) return nullptr;
  try {
    std::string value;
    if (!db->rep->GetProperty(name, &value).ok()) return nullptr;
    return CopyString(value);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

void arenakv_approximate_sizes(arenakv_t* db, int num_ranges, const char* const* start_keys,
                               const size_t* start_key_lens, const char* const* limit_keys,
                               const size_t* limit_key_lens, uint64_t* sizes, char** errptr) {
  for (int i = 0; i < num_ranges; ++i) {
    const arenakv::Range range{View(start_keys[i], start_key_lens[i]),
                               View(limit_keys[i], limit_key_lens[i])};
    Status s = db->rep->GetApproximateSizes(&range, 1, &sizes[i]);
    if (!s.ok()) {
      SaveError(errptr, s);
      return;
    }
  }
}

uint64_t arenakv_memory_bytes(arenakv_t* db) {
  try {
    arenakv::DBStats st;
    if (!db->rep->GetStats(&st).ok()) return 0;
    return st.pool.committed_bytes + st.pool.charged_bytes;
  } catch (const std::bad_alloc&) {
    return 0;
  }
}

// ---- Iterators ----

arenakv_iterator_t* arenakv_create_iterator(arenakv_t* db, const arenakv_readoptions_t* options) {
  try {
    return Make<arenakv_iterator_t>(db->rep->NewIterator(ReadOpts(options)));
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

void arenakv_iter_destroy(arenakv_iterator_t* it) { Destroy(it); }
unsigned char arenakv_iter_valid(const arenakv_iterator_t* it) { return it->rep->Valid(); }
void arenakv_iter_seek_to_first(arenakv_iterator_t* it) { it->rep->SeekToFirst(); }
void arenakv_iter_seek_to_last(arenakv_iterator_t* it) { it->rep->SeekToLast(); }
void arenakv_iter_seek(arenakv_iterator_t* it, const char* k, size_t klen) {
  it->rep->Seek(View(k, klen));
}
void arenakv_iter_next(arenakv_iterator_t* it) { it->rep->Next(); }
void arenakv_iter_prev(arenakv_iterator_t* it) { it->rep->Prev(); }

const char* arenakv_iter_key(const arenakv_iterator_t* it, size_t* klen) {
  const std::string_view k = it->rep->key();
  *klen = k.size();
  return k.data();
}

const char* arenakv_iter_value(const arenakv_iterator_t* it, size_t* vlen) {
  const std::string_view v = it->rep->value();
  *vlen = v.size();
  return v.data();
}

void arenakv_iter_get_error(const arenakv_iterator_t* it, char** errptr) {
  SaveError(errptr, it->rep->status());
}

// ---- Write batches ----

arenakv_writebatch_t* arenakv_writebatch_create(void) { return Make<arenakv_writebatch_t>(); }
void arenakv_writebatch_destroy(arenakv_writebatch_t* b) { Destroy(b); }

void arenakv_writebatch_clear(arenakv_writebatch_t* b) {
  b->rep.Clear();
  b->error = Status::OK();
}

void arenakv_writebatch_put(arenakv_writebatch_t* b, const char* key, size_t klen, const char* val,
                            size_t vlen) {
  Status s = b->rep.Put(View(key, klen), View(val, vlen));
  if (!s.ok() && b->error.ok()) b->error = s;
}

void arenakv_writebatch_delete(arenakv_writebatch_t* b, const char* key, size_t klen) {
  Status s = b->rep.Delete(View(key, klen));
  if (!s.ok() && b->error.ok()) b->error = s;
}

int arenakv_writebatch_count(const arenakv_writebatch_t* b) {
  return static_cast<int>(b->rep.Count());
}

size_t arenakv_writebatch_approximate_size(const arenakv_writebatch_t* b) {
  return b->rep.ApproximateSize();
}

void arenakv_writebatch_iterate(const arenakv_writebatch_t* b, void* state,
                                void (*put)(void*, const char* k, size_t klen, const char* v,
                                            size_t vlen),
                                void (*deleted)(void*, const char* k, size_t klen)) {
  arenakv::capi::IterateBatch(b->rep, state, put, deleted);
}

// ---- Snapshots ----

const arenakv_snapshot_t* arenakv_create_snapshot(arenakv_t* db) {
  try {
    return Make<arenakv_snapshot_t>(db->rep->GetSnapshot());
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

void arenakv_release_snapshot(arenakv_t*, const arenakv_snapshot_t* snapshot) {
  Destroy(const_cast<arenakv_snapshot_t*>(snapshot));
}

// ---- Transactions ----

arenakv_transaction_t* arenakv_begin(arenakv_t* db, const arenakv_writeoptions_t* options,
                                     int isolation) {
  try {
    arenakv::TransactionOptions to;
    to.isolation = isolation == arenakv_isolation_serializable
                       ? arenakv::IsolationLevel::kSerializable
                       : arenakv::IsolationLevel::kSnapshot;
    return Make<arenakv_transaction_t>(db->rep->BeginTransaction(WriteOpts(options), to));
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

void arenakv_transaction_put(arenakv_transaction_t* txn, const char* key, size_t keylen,
                             const char* val, size_t vallen, char** errptr) {
  SaveError(errptr, txn->rep->Put(View(key, keylen), View(val, vallen)));
}

void arenakv_transaction_delete(arenakv_transaction_t* txn, const char* key, size_t keylen,
                                char** errptr) {
  SaveError(errptr, txn->rep->Delete(View(key, keylen)));
}

char* arenakv_transaction_get(arenakv_transaction_t* txn, const char* key, size_t keylen,
                              size_t* vallen, char** errptr) {
  *vallen = 0;
  try {
    std::string value;
    Status s = txn->rep->Get(arenakv::ReadOptions{}, View(key, keylen), &value);
    return ReturnValue(s, value, vallen, errptr, "arenakv_transaction_get");
  } catch (const std::bad_alloc&) {
    SaveMemoryError(errptr, "arenakv_transaction_get");
    return nullptr;
  }
}

arenakv_iterator_t* arenakv_transaction_create_iterator(arenakv_transaction_t* txn) {
  try {
    return Make<arenakv_iterator_t>(txn->rep->NewIterator(arenakv::ReadOptions{}));
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

void arenakv_transaction_commit(arenakv_transaction_t* txn, char** errptr) {
  SaveError(errptr, txn->rep->Commit());
}

void arenakv_transaction_rollback(arenakv_transaction_t* txn, char** errptr) {
  SaveError(errptr, txn->rep->Rollback());
}

void arenakv_transaction_destroy(arenakv_transaction_t* txn) { Destroy(txn); }

// ---- Options ----

arenakv_options_t* arenakv_options_create(void) { return Make<arenakv_options_t>(); }
void arenakv_options_destroy(arenakv_options_t* o) { Destroy(o); }
void arenakv_options_set_create_if_missing(arenakv_options_t* o, unsigned char v) {
  o->rep.create_if_missing = v != 0;
}
void arenakv_options_set_error_if_exists(arenakv_options_t* o, unsigned char v) {
  o->rep.error_if_exists = v != 0;
}
void arenakv_options_set_read_only(arenakv_options_t* o, unsigned char v) {
  o->rep.read_only = v != 0;
}
void arenakv_options_set_cache_size(arenakv_options_t* o, size_t bytes) {
  o->rep.cache_bytes = bytes;
}
void arenakv_options_set_memory_budget_bytes(arenakv_options_t* o, size_t bytes) {
  o->rep.memory_budget_bytes = bytes;
}
void arenakv_options_set_memory_budget(arenakv_options_t* o, arenakv_memory_budget_t* budget) {
  o->rep.memory_budget = budget != nullptr ? budget->rep : nullptr;
}
void arenakv_options_set_compression(arenakv_options_t* o, unsigned char v) {
  o->rep.compression = v != 0;
}
void arenakv_options_set_comparator(arenakv_options_t* o, arenakv_comparator_t* cmp) {
  o->rep.comparator = cmp;
}

arenakv_comparator_t* arenakv_comparator_create(void* state, void (*destructor)(void*),
                                                int (*compare)(void*, const char*, size_t,
                                                               const char*, size_t),
                                                const char* (*name)(void*)) {
  if (compare == nullptr || name == nullptr) return nullptr;
  try {
    return std::make_unique<arenakv_comparator_t>(state, destructor, compare, name).release();
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void arenakv_comparator_destroy(arenakv_comparator_t* cmp) { Destroy(cmp); }

arenakv_readoptions_t* arenakv_readoptions_create(void) { return Make<arenakv_readoptions_t>(); }
void arenakv_readoptions_destroy(arenakv_readoptions_t* o) { Destroy(o); }
void arenakv_readoptions_set_snapshot(arenakv_readoptions_t* o, const arenakv_snapshot_t* s) {
  o->rep.snapshot = s != nullptr ? s->rep.get() : nullptr;
}
void arenakv_readoptions_set_verify_checksums(arenakv_readoptions_t* o, unsigned char v) {
  o->rep.verify_checksums = v != 0;
}

arenakv_writeoptions_t* arenakv_writeoptions_create(void) { return Make<arenakv_writeoptions_t>(); }
void arenakv_writeoptions_destroy(arenakv_writeoptions_t* o) { Destroy(o); }
void arenakv_writeoptions_set_sync(arenakv_writeoptions_t* o, unsigned char v) {
  o->rep.sync = v != 0;
}

// ---- Memory budgets ----

arenakv_memory_budget_t* arenakv_memory_budget_create(size_t capacity_bytes) {
  try {
    return Make<arenakv_memory_budget_t>(arenakv::MemoryBudget::Create(capacity_bytes));
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void arenakv_memory_budget_destroy(arenakv_memory_budget_t* b) { Destroy(b); }
size_t arenakv_memory_budget_used(const arenakv_memory_budget_t* b) { return b->rep->used_bytes(); }
size_t arenakv_memory_budget_peak(const arenakv_memory_budget_t* b) { return b->rep->peak_bytes(); }
size_t arenakv_memory_budget_capacity(const arenakv_memory_budget_t* b) {
  return b->rep->capacity_bytes();
}

void arenakv_process_memory(size_t* live_pools, size_t* mapped_bytes, size_t* in_use_bytes) {
  const arenakv::alloc::ProcessPoolStats s = arenakv::alloc::GetProcessPoolStats();
  if (live_pools != nullptr) *live_pools = s.live_pools;
  if (mapped_bytes != nullptr) *mapped_bytes = s.mapped_bytes;
  if (in_use_bytes != nullptr) *in_use_bytes = s.in_use_bytes;
}

// ---- Utility ----

void arenakv_free(void* ptr) { std::free(ptr); }
void arenakv_set_background_threads(int threads) { arenakv::SetBackgroundThreads(threads); }

}  // extern "C"
