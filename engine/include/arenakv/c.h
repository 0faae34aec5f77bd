/* arenakv/c.h: the C API, for C programs and for language bindings.

   It follows LevelDB's C API conventions:
   - Objects are opaque handles made by arenakv_*_create (or arenakv_open,
     arenakv_begin, ...) and freed by the matching *_destroy or arenakv_close.
   - A function that can fail takes `char** errptr` last. On success it leaves
     *errptr alone; on failure it stores a message in *errptr, allocated with
     malloc: free it with arenakv_free. *errptr must be NULL on entry (a
     message still there is freed and replaced).
   - Keys and values are (pointer, length) pairs of arbitrary bytes. A value
     returned to the caller (arenakv_get, arenakv_transaction_get) is a
     malloc'ed buffer to free with arenakv_free; NULL with *errptr untouched
     means "not found".
   - Every function is thread-safe on a database handle, as the C++ DB is; an
     iterator, a write batch or a transaction is used by one thread at a time.
   - Closing a database turns its open iterators, snapshots and transactions
     into closed ones (their calls fail with "Closed"); they must still be
     destroyed.

   Link with the CMake target arenakv::c (it brings arenakv::engine). */
#ifndef ARENAKV_C_H_
#define ARENAKV_C_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct arenakv_t arenakv_t;
typedef struct arenakv_options_t arenakv_options_t;
typedef struct arenakv_readoptions_t arenakv_readoptions_t;
typedef struct arenakv_writeoptions_t arenakv_writeoptions_t;
typedef struct arenakv_iterator_t arenakv_iterator_t;
typedef struct arenakv_writebatch_t arenakv_writebatch_t;
typedef struct arenakv_snapshot_t arenakv_snapshot_t;
typedef struct arenakv_transaction_t arenakv_transaction_t;
typedef struct arenakv_memory_budget_t arenakv_memory_budget_t;
typedef struct arenakv_comparator_t arenakv_comparator_t;

/* ---- Databases ---- */

/* Opens (creating it if the options say so) the database in directory
   `path`. NULL on failure, with *errptr set. */
arenakv_t* arenakv_open(const arenakv_options_t* options, const char* path, char** errptr);

/* Closes the database: its final checkpoint, then every byte of its memory
   back to the operating system. An error of the final checkpoint is
   reported in *errptr (errptr may be NULL to ignore it); the handle is
   freed either way. */
void arenakv_close(arenakv_t* db, char** errptr);

/* Deletes the database's files and its directory. */
void arenakv_destroy_db(const char* path, char** errptr);
/* Salvages what can be read of a damaged, closed database into one that
   opens (RepairDB in arenakv/db.h); the damaged files go to PATH/lost.
   `report` (may be NULL) gets a malloc'ed text of what was lost, one line
   each ("" when nothing was), to free with arenakv_free. */
void arenakv_repair_db(const char* path, char** report, char** errptr);

void arenakv_put(arenakv_t* db, const arenakv_writeoptions_t* options, const char* key,
                 size_t keylen, const char* val, size_t vallen, char** errptr);
void arenakv_delete(arenakv_t* db, const arenakv_writeoptions_t* options, const char* key,
                    size_t keylen, char** errptr);
/* Deletes every key in [begin, end) in one atomic, durable step
   (DB::DeleteRange). */
void arenakv_delete_range(arenakv_t* db, const arenakv_writeoptions_t* options, const char* begin,
                          size_t beginlen, const char* end, size_t endlen, char** errptr);
/* Applies every operation of the batch atomically. */
void arenakv_write(arenakv_t* db, const arenakv_writeoptions_t* options,
                   arenakv_writebatch_t* batch, char** errptr);
/* The value of `key` (malloc'ed, *vallen bytes) or NULL if it has none. */
char* arenakv_get(arenakv_t* db, const arenakv_readoptions_t* options, const char* key,
                  size_t keylen, size_t* vallen, char** errptr);

/* Writes the buffered changes into the data file. */
void arenakv_checkpoint(arenakv_t* db, char** errptr);
/* Reads every page and log record and checks them; *errptr names the damage. */
void arenakv_verify(arenakv_t* db, char** errptr);
/* Writes a copy of the database as of now into the new directory `path`. */
void arenakv_backup(arenakv_t* db, const char* path, char** errptr);
/* The database's statistics as text (memory, cache, files), malloc'ed. */
char* arenakv_stats(arenakv_t* db);
/* Memory the database holds now (its pool: committed and charged bytes). */
uint64_t arenakv_memory_bytes(arenakv_t* db);
/* A named property (arenakv/db.h, DB::GetProperty, lists the names:
   "arenakv.stats", "arenakv.approximate-keys", ...) as a malloc'ed string;
   NULL for an unknown name or a closed database. */
char* arenakv_property_value(arenakv_t* db, const char* name);
/* Bytes the keys of each range [start_keys[i], limit_keys[i]) take, into
   sizes[i], estimated without reading the keys (DB::GetApproximateSizes):
   the data file's share from the tree's internal pages, plus the
   memtables'. */
void arenakv_approximate_sizes(arenakv_t* db, int num_ranges, const char* const* start_keys,
                               const size_t* start_key_lens, const char* const* limit_keys,
                               const size_t* limit_key_lens, uint64_t* sizes, char** errptr);

/* ---- Iterators ---- */

/* Reads at `options`' snapshot, or at the state when it was made. */
arenakv_iterator_t* arenakv_create_iterator(arenakv_t* db, const arenakv_readoptions_t* options);
void arenakv_iter_destroy(arenakv_iterator_t* it);
/* 1 while positioned on an entry, 0 otherwise. */
unsigned char arenakv_iter_valid(const arenakv_iterator_t* it);
void arenakv_iter_seek_to_first(arenakv_iterator_t* it);
void arenakv_iter_seek_to_last(arenakv_iterator_t* it);
/* To the first key >= k. */
void arenakv_iter_seek(arenakv_iterator_t* it, const char* k, size_t klen);
void arenakv_iter_next(arenakv_iterator_t* it);
void arenakv_iter_prev(arenakv_iterator_t* it);
/* The entry's key and value, valid until the iterator moves. */
const char* arenakv_iter_key(const arenakv_iterator_t* it, size_t* klen);
const char* arenakv_iter_value(const arenakv_iterator_t* it, size_t* vlen);
/* Why iteration stopped early (I/O error, corruption, closed), if it did. */
void arenakv_iter_get_error(const arenakv_iterator_t* it, char** errptr);

/* ---- Write batches ---- */

arenakv_writebatch_t* arenakv_writebatch_create(void);
void arenakv_writebatch_destroy(arenakv_writebatch_t* b);
void arenakv_writebatch_clear(arenakv_writebatch_t* b);
/* A key or value over the limits, or no memory, leaves the batch as it was
   and is reported by arenakv_write (LevelDB's put cannot fail). */
void arenakv_writebatch_put(arenakv_writebatch_t* b, const char* key, size_t klen, const char* val,
                            size_t vlen);
void arenakv_writebatch_delete(arenakv_writebatch_t* b, const char* key, size_t klen);
int arenakv_writebatch_count(const arenakv_writebatch_t* b);
size_t arenakv_writebatch_approximate_size(const arenakv_writebatch_t* b);
/* Calls put or deleted for each operation, in order. */
void arenakv_writebatch_iterate(const arenakv_writebatch_t* b, void* state,
                                void (*put)(void*, const char* k, size_t klen, const char* v,
                                            size_t vlen),
                                void (*deleted)(void*, const char* k, size_t klen));

/* ---- Snapshots ---- */

const arenakv_snapshot_t* arenakv_create_snapshot(arenakv_t* db);
void arenakv_release_snapshot(arenakv_t* db, const arenakv_snapshot_t* snapshot);

/* ---- Transactions ---- */

enum { arenakv_isolation_snapshot = 0, arenakv_isolation_serializable = 1 };

/* A transaction reading its snapshot plus its own writes; `isolation` is
   one of arenakv_isolation_*. */
arenakv_transaction_t* arenakv_begin(arenakv_t* db, const arenakv_writeoptions_t* options,
                                     int isolation);
void arenakv_transaction_put(arenakv_transaction_t* txn, const char* key, size_t keylen,
                             const char* val, size_t vallen, char** errptr);
void arenakv_transaction_delete(arenakv_transaction_t* txn, const char* key, size_t keylen,
                                char** errptr);
char* arenakv_transaction_get(arenakv_transaction_t* txn, const char* key, size_t keylen,
                              size_t* vallen, char** errptr);
arenakv_iterator_t* arenakv_transaction_create_iterator(arenakv_transaction_t* txn);
/* A conflict with another writer is reported as "Conflict: ..." in *errptr;
   either way the transaction is over (destroy it). */
void arenakv_transaction_commit(arenakv_transaction_t* txn, char** errptr);
void arenakv_transaction_rollback(arenakv_transaction_t* txn, char** errptr);
/* Rolls back a transaction still open. */
void arenakv_transaction_destroy(arenakv_transaction_t* txn);

/* ---- Options ---- */

arenakv_options_t* arenakv_options_create(void);
void arenakv_options_destroy(arenakv_options_t* o);
void arenakv_options_set_create_if_missing(arenakv_options_t* o, unsigned char v);
void arenakv_options_set_error_if_exists(arenakv_options_t* o, unsigned char v);
void arenakv_options_set_read_only(arenakv_options_t* o, unsigned char v);
void arenakv_options_set_cache_size(arenakv_options_t* o, size_t bytes);
/* 0: the default (4 x cache + 512 MiB). */
void arenakv_options_set_memory_budget_bytes(arenakv_options_t* o, size_t bytes);
/* Shares `budget` with every database opened with these options (NULL: none).
   The options keep a reference: the budget may be destroyed before them. */
void arenakv_options_set_memory_budget(arenakv_options_t* o, arenakv_memory_budget_t* budget);
void arenakv_options_set_compression(arenakv_options_t* o, unsigned char v);
/* The order of the keys (NULL: bytewise, the default). The comparator must
   outlive every database opened with it. */
void arenakv_options_set_comparator(arenakv_options_t* o, arenakv_comparator_t* cmp);

/* ---- Key orders ---- */

/* A key order: compare(state, a, alen, b, blen) returns a negative, zero or
   positive number as a sorts before, with or after b (keys that compare
   equal are one key; it must be a total order, and is called from any
   thread). name(state) is recorded in the database, which later opens only
   under the same name: at most 255 bytes, not empty, not beginning with
   "arenakv.". destructor(state) (may be NULL) runs at
   arenakv_comparator_destroy. NULL when compare or name is NULL, or there
   is no memory. */
arenakv_comparator_t* arenakv_comparator_create(
    void* state, void (*destructor)(void* state),
    int (*compare)(void* state, const char* a, size_t alen, const char* b, size_t blen),
    const char* (*name)(void* state));
void arenakv_comparator_destroy(arenakv_comparator_t* cmp);

arenakv_readoptions_t* arenakv_readoptions_create(void);
void arenakv_readoptions_destroy(arenakv_readoptions_t* o);
/* NULL: the latest state. The snapshot must outlive the options' use. */
void arenakv_readoptions_set_snapshot(arenakv_readoptions_t* o, const arenakv_snapshot_t* s);
void arenakv_readoptions_set_verify_checksums(arenakv_readoptions_t* o, unsigned char v);

arenakv_writeoptions_t* arenakv_writeoptions_create(void);
void arenakv_writeoptions_destroy(arenakv_writeoptions_t* o);
/* 1: return only once the commit is on disk (fdatasync). */
void arenakv_writeoptions_set_sync(arenakv_writeoptions_t* o, unsigned char v);

/* ---- Memory budgets shared by databases ---- */

arenakv_memory_budget_t* arenakv_memory_budget_create(size_t capacity_bytes);
/* Drops this handle; the budget lives on while databases or options use it. */
void arenakv_memory_budget_destroy(arenakv_memory_budget_t* b);
size_t arenakv_memory_budget_used(const arenakv_memory_budget_t* b);
size_t arenakv_memory_budget_peak(const arenakv_memory_budget_t* b);
size_t arenakv_memory_budget_capacity(const arenakv_memory_budget_t* b);

/* Every memory pool alive in this process (one per database, or one per
   shared budget): how many, the bytes they map, the bytes in use. All three
   are 0 once every database and budget is closed: a closed database leaves
   no memory behind. Any argument may be NULL. */
void arenakv_process_memory(size_t* live_pools, size_t* mapped_bytes, size_t* in_use_bytes);

/* ---- Utility ---- */

/* Frees what this API malloc'ed: error messages, values, stats text. */
void arenakv_free(void* ptr);
/* The number of shared background threads (checkpoints, read-ahead). */
void arenakv_set_background_threads(int threads);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* ARENAKV_C_H_ */
