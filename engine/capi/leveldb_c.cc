// LevelDB's C API (arenakv/compat/leveldb/c.h) over arenakv's C++ API, so a
// LevelDB C client relinks and runs unchanged. The header says which
// options mean nothing here; the handles own the C++ objects they stand
// for, and no exception crosses into C.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <utility>

#include "arenakv/compat/leveldb/c.h"
#include "arenakv/db.h"
#include "c_common.h"

using arenakv::DB;
using arenakv::Status;

struct leveldb_t {
  std::unique_ptr<DB> rep;
};
struct leveldb_comparator_t final : arenakv::capi::CallbackComparator {
  using CallbackComparator::CallbackComparator;
};
struct leveldb_filterpolicy_t {
  void* state;
  void (*destructor)(void*);
};
struct leveldb_cache_t {
  size_t capacity;
};
struct leveldb_env_t {
  bool is_default;
};
struct leveldb_options_t {
  arenakv::Options rep;
};
struct leveldb_readoptions_t {
  arenakv::ReadOptions rep;
};
struct leveldb_writeoptions_t {
  arenakv::WriteOptions rep;
};
struct leveldb_iterator_t {
  std::unique_ptr<arenakv::Iterator> rep;
};
struct leveldb_writebatch_t {
  arenakv::WriteBatch rep;
  Status error;  // the first put or delete refused; reported by leveldb_write
};
struct leveldb_snapshot_t {
  std::unique_ptr<arenakv::Snapshot> rep;
};

namespace {

using arenakv::capi::CopyString;
using arenakv::capi::Destroy;
using arenakv::capi::Make;
using arenakv::capi::ReturnValue;
using arenakv::capi::SaveError;
using arenakv::capi::SaveMemoryError;
using arenakv::capi::View;

const arenakv::ReadOptions& ReadOpts(const leveldb_readoptions_t* o) {
  static const arenakv::ReadOptions kDefault;
  return o != nullptr ? o->rep : kDefault;
}
const arenakv::WriteOptions& WriteOpts(const leveldb_writeoptions_t* o) {
  static const arenakv::WriteOptions kDefault;
  return o != nullptr ? o->rep : kDefault;
}

}  // namespace

extern "C" {

leveldb_t* leveldb_open(const leveldb_options_t* options, const char* name, char** errptr) {
  try {
    std::unique_ptr<DB> db;
    arenakv::Options o = options != nullptr ? options->rep : arenakv::Options{};
    if (options == nullptr) o.create_if_missing = false;  // LevelDB's default
    if (SaveError(errptr, DB::Open(o, name != nullptr ? name : "", &db))) return nullptr;
    return std::make_unique<leveldb_t>(leveldb_t{std::move(db)}).release();
  } catch (const std::bad_alloc&) {
    SaveMemoryError(errptr, "leveldb_open");
    return nullptr;
  }
}

void leveldb_close(leveldb_t* db) {
  if (db == nullptr) return;
  std::unique_ptr<leveldb_t> owned(db);
  db->rep->Close().IgnoreError();  // LevelDB's close reports nothing
}

void leveldb_put(leveldb_t* db, const leveldb_writeoptions_t* options, const char* key,
                 size_t keylen, const char* val, size_t vallen, char** errptr) {
  SaveError(errptr, db->rep->Put(WriteOpts(options), View(key, keylen), View(val, vallen)));
}

void leveldb_delete(leveldb_t* db, const leveldb_writeoptions_t* options, const char* key,
                    size_t keylen, char** errptr) {
  SaveError(errptr, db->rep->Delete(WriteOpts(options), View(key, keylen)));
}

void leveldb_write(leveldb_t* db, const leveldb_writeoptions_t* options,
                   leveldb_writebatch_t* batch, char** errptr) {
  if (SaveError(errptr, batch->error)) return;
  SaveError(errptr, db->rep->Write(WriteOpts(options), &batch->rep));
}

char* leveldb_get(leveldb_t* db, const leveldb_readoptions_t* options, const char* key,
                  size_t keylen, size_t* vallen, char** errptr) {
  *vallen = 0;
  try {
    std::string value;
    Status s = db->rep->Get(ReadOpts(options), View(key, keylen), &value);
    return ReturnValue(s, value, vallen, errptr, "leveldb_get");
  } catch (const std::bad_alloc&) {
    SaveMemoryError(errptr, "leveldb_get");
    return nullptr;
  }
}

leveldb_iterator_t* leveldb_create_iterator(leveldb_t* db, const leveldb_readoptions_t* options) {
  try {
    return Make<leveldb_iterator_t>(db->rep->NewIterator(ReadOpts(options)));
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

const leveldb_snapshot_t* leveldb_create_snapshot(leveldb_t* db) {
  try {
    return Make<leveldb_snapshot_t>(db->rep->GetSnapshot());
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

void leveldb_release_snapshot(leveldb_t*, const leveldb_snapshot_t* snapshot) {
  Destroy(const_cast<leveldb_snapshot_t*>(snapshot));
}

char* leveldb_property_value(leveldb_t* db, const char* propname) {
  if (propname == nullptr) return nullptr;
  try {
    const std::string name = propname;
    std::string value;
    if (name == "leveldb.stats") {
      value = db->rep->StatsReport();
    } else if (name == "leveldb.approximate-memory-usage") {
      if (!db->rep->GetProperty("arenakv.memory-bytes", &value).ok()) return nullptr;
    } else if (!db->rep->GetProperty(name, &value).ok()) {
      return nullptr;  // LevelDB's answer to an unknown name
    }
    return CopyString(value);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

void leveldb_approximate_sizes(leveldb_t* db, int num_ranges, const char* const* range_start_key,
                               const size_t* range_start_key_len,
                               const char* const* range_limit_key,
                               const size_t* range_limit_key_len, uint64_t* sizes) {
  // LevelDB reports nothing on failure either: the sizes are then 0.
  for (int i = 0; i < num_ranges; ++i) {
    const arenakv::Range range{View(range_start_key[i], range_start_key_len[i]),
                               View(range_limit_key[i], range_limit_key_len[i])};
    sizes[i] = 0;
    db->rep->GetApproximateSizes(&range, 1, &sizes[i]).IgnoreError();
  }
}

void leveldb_compact_range(leveldb_t* db, const char*, size_t, const char*, size_t) {
  db->rep->Checkpoint().IgnoreError();  // LevelDB's reports nothing either
}

void leveldb_destroy_db(const leveldb_options_t*, const char* name, char** errptr) {
  try {
    SaveError(errptr, arenakv::DestroyDB(name != nullptr ? name : ""));
  } catch (const std::bad_alloc&) {
    SaveMemoryError(errptr, "leveldb_destroy_db");
  }
}

void leveldb_repair_db(const leveldb_options_t* options, const char* name, char** errptr) {
  // In the options' order: a database that records another is refused
  // (InvalidArgument), as a repair in it would misread every page.
  try {
    SaveError(errptr, arenakv::RepairDB(name != nullptr ? name : "",
                                        options != nullptr ? options->rep : arenakv::Options{}));
  } catch (const std::bad_alloc&) {
    SaveMemoryError(errptr, "leveldb_repair_db");
  }
}

void leveldb_iter_destroy(leveldb_iterator_t* it) { Destroy(it); }
uint8_t leveldb_iter_valid(const leveldb_iterator_t* it) { return it->rep->Valid(); }
void leveldb_iter_seek_to_first(leveldb_iterator_t* it) { it->rep->SeekToFirst(); }
void leveldb_iter_seek_to_last(leveldb_iterator_t* it) { it->rep->SeekToLast(); }
void leveldb_iter_seek(leveldb_iterator_t* it, const char* k, size_t klen) {
  it->rep->Seek(View(k, klen));
}
void leveldb_iter_next(leveldb_iterator_t* it) { it->rep->Next(); }
void leveldb_iter_prev(leveldb_iterator_t* it) { it->rep->Prev(); }
const char* leveldb_iter_key(const leveldb_iterator_t* it, size_t* klen) {
  const std::string_view k = it->rep->key();
  *klen = k.size();
  return k.data();
}
const char* leveldb_iter_value(const leveldb_iterator_t* it, size_t* vlen) {
  const std::string_view v = it->rep->value();
  *vlen = v.size();
  return v.data();
}
void leveldb_iter_get_error(const leveldb_iterator_t* it, char** errptr) {
  SaveError(errptr, it->rep->status());
}

leveldb_writebatch_t* leveldb_writebatch_create(void) { return Make<leveldb_writebatch_t>(); }
void leveldb_writebatch_destroy(leveldb_writebatch_t* b) { Destroy(b); }
void leveldb_writebatch_clear(leveldb_writebatch_t* b) {
  b->rep.Clear();
  b->error = Status::OK();
}
void leveldb_writebatch_put(leveldb_writebatch_t* b, const char* key, size_t klen, const char* val,
                            size_t vlen) {
  Status s = b->rep.Put(View(key, klen), View(val, vlen));
  if (!s.ok() && b->error.ok()) b->error = s;
}
void leveldb_writebatch_delete(leveldb_writebatch_t* b, const char* key, size_t klen) {
  Status s = b->rep.Delete(View(key, klen));
  if (!s.ok() && b->error.ok()) b->error = s;
}
void leveldb_writebatch_iterate(const leveldb_writebatch_t* b, void* state,
                                void (*put)(void*, const char* k, size_t klen, const char* v,
                                            size_t vlen),
                                void (*deleted)(void*, const char* k, size_t klen)) {
  arenakv::capi::IterateBatch(b->rep, state, put, deleted);
}
void leveldb_writebatch_append(leveldb_writebatch_t* destination,
                               const leveldb_writebatch_t* source) {
  Status s = destination->rep.Append(source->rep);
  if (s.ok() && !source->error.ok()) s = source->error;
  if (!s.ok() && destination->error.ok()) destination->error = s;
}

leveldb_options_t* leveldb_options_create(void) {
  leveldb_options_t* o = Make<leveldb_options_t>();
  if (o != nullptr) o->rep.create_if_missing = false;  // LevelDB's default
  return o;
}
void leveldb_options_destroy(leveldb_options_t* o) { Destroy(o); }
void leveldb_options_set_comparator(leveldb_options_t* o, leveldb_comparator_t* cmp) {
  o->rep.comparator = cmp;
}
void leveldb_options_set_filter_policy(leveldb_options_t*, leveldb_filterpolicy_t*) {}
void leveldb_options_set_create_if_missing(leveldb_options_t* o, uint8_t v) {
  o->rep.create_if_missing = v != 0;
}
void leveldb_options_set_error_if_exists(leveldb_options_t* o, uint8_t v) {
  o->rep.error_if_exists = v != 0;
}
void leveldb_options_set_paranoid_checks(leveldb_options_t* o, uint8_t v) {
  o->rep.paranoid_checks = v != 0;
}
void leveldb_options_set_env(leveldb_options_t*, leveldb_env_t*) {}
void leveldb_options_set_info_log(leveldb_options_t*, leveldb_logger_t*) {}
void leveldb_options_set_write_buffer_size(leveldb_options_t*, size_t) {}
void leveldb_options_set_max_open_files(leveldb_options_t*, int) {}
void leveldb_options_set_cache(leveldb_options_t* o, leveldb_cache_t* cache) {
  if (cache != nullptr) o->rep.cache_bytes = cache->capacity;
}
void leveldb_options_set_block_size(leveldb_options_t*, size_t) {}
void leveldb_options_set_block_restart_interval(leveldb_options_t*, int) {}
void leveldb_options_set_max_file_size(leveldb_options_t*, size_t) {}
void leveldb_options_set_compression(leveldb_options_t* o, int kind) {
  o->rep.compression = kind != leveldb_no_compression;
}

leveldb_comparator_t* leveldb_comparator_create(void* state, void (*destructor)(void*),
                                                int (*compare)(void*, const char* a, size_t alen,
                                                               const char* b, size_t blen),
                                                const char* (*name)(void*)) {
  try {
    return std::make_unique<leveldb_comparator_t>(state, destructor, compare, name).release();
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void leveldb_comparator_destroy(leveldb_comparator_t* cmp) { Destroy(cmp); }

leveldb_filterpolicy_t* leveldb_filterpolicy_create(
    void* state, void (*destructor)(void*),
    char* (*)(void*, const char* const*, const size_t*, int, size_t*),
    uint8_t (*)(void*, const char*, size_t, const char*, size_t), const char* (*)(void*)) {
  return Make<leveldb_filterpolicy_t>(state, destructor);
}
void leveldb_filterpolicy_destroy(leveldb_filterpolicy_t* policy) {
  if (policy != nullptr && policy->destructor != nullptr) policy->destructor(policy->state);
  Destroy(policy);
}
leveldb_filterpolicy_t* leveldb_filterpolicy_create_bloom(int) {
  return Make<leveldb_filterpolicy_t>(nullptr, nullptr);
}

leveldb_readoptions_t* leveldb_readoptions_create(void) { return Make<leveldb_readoptions_t>(); }
void leveldb_readoptions_destroy(leveldb_readoptions_t* o) { Destroy(o); }
void leveldb_readoptions_set_verify_checksums(leveldb_readoptions_t* o, uint8_t v) {
  o->rep.verify_checksums = v != 0;
}
void leveldb_readoptions_set_fill_cache(leveldb_readoptions_t* o, uint8_t v) {
  o->rep.scan_caching = v != 0 ? arenakv::ScanCaching::kAuto : arenakv::ScanCaching::kNever;
}
void leveldb_readoptions_set_snapshot(leveldb_readoptions_t* o,
                                      const leveldb_snapshot_t* snapshot) {
  o->rep.snapshot = snapshot != nullptr ? snapshot->rep.get() : nullptr;
}

leveldb_writeoptions_t* leveldb_writeoptions_create(void) { return Make<leveldb_writeoptions_t>(); }
void leveldb_writeoptions_destroy(leveldb_writeoptions_t* o) { Destroy(o); }
void leveldb_writeoptions_set_sync(leveldb_writeoptions_t* o, uint8_t v) { o->rep.sync = v != 0; }

leveldb_cache_t* leveldb_cache_create_lru(size_t capacity) {
  return Make<leveldb_cache_t>(capacity);
}
void leveldb_cache_destroy(leveldb_cache_t* cache) { Destroy(cache); }

leveldb_env_t* leveldb_create_default_env(void) { return Make<leveldb_env_t>(true); }
void leveldb_env_destroy(leveldb_env_t* env) { Destroy(env); }
char* leveldb_env_get_test_directory(leveldb_env_t*) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir = base != nullptr && *base != '\0'
                        ? std::string(base)
                        : "/tmp/arenakv-leveldb-test-" + std::to_string(geteuid());
  mkdir(dir.c_str(), 0755);  // may exist
  return CopyString(dir);
}

void leveldb_free(void* ptr) { std::free(ptr); }
int leveldb_major_version(void) { return 1; }
int leveldb_minor_version(void) { return 23; }

}  // extern "C"
