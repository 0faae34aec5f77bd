/* The C API from C: databases, reads and writes (bytes with NULs), errors,
   write batches, iterators in both directions, snapshots, transactions and
   their conflicts, checkpoint, verify, backup, properties, approximate
   sizes, read-only opens, a shared memory budget and a key order of the
   caller's (a numeric comparator); after each part, the
   process's pools are all gone (nothing mapped, nothing in use), and one
   part runs under the smallest budget its cache allows.

   Usage: c_api_test DIR (a scratch directory, emptied first). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arenakv/c.h"

static int failures = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
      return;                                                                  \
    }                                                                          \
  } while (0)

/* No error, or print it and fail. */
#define CHECK_NO_ERROR(err)                                                        \
  do {                                                                             \
    if ((err) != NULL) {                                                           \
      fprintf(stderr, "%s:%d: unexpected error: %s\n", __FILE__, __LINE__, (err)); \
      arenakv_free(err);                                                           \
      (err) = NULL;                                                                \
      failures++;                                                                  \
      return;                                                                      \
    }                                                                              \
  } while (0)

static char dir[4096];

static void PathOf(char* out, size_t n, const char* name) { snprintf(out, n, "%s/%s", dir, name); }

/* Whether `key` holds `want` (NULL: holds nothing). */
static int Holds(arenakv_t* db, const arenakv_readoptions_t* ro, const char* key, size_t keylen,
                 const char* want, size_t wantlen) {
  char* err = NULL;
  size_t len = 0;
  char* got = arenakv_get(db, ro, key, keylen, &len, &err);
  int ok;
  if (err != NULL) {
    fprintf(stderr, "get: %s\n", err);
    arenakv_free(err);
    return 0;
  }
  if (want == NULL) {
    ok = got == NULL;
  } else {
    ok = got != NULL && len == wantlen && memcmp(got, want, len) == 0;
  }
  arenakv_free(got);
  return ok;
}

static void TestReadsWritesAndErrors(void) {
  char path[4200];
  char* err = NULL;
  arenakv_options_t* options = arenakv_options_create();
  arenakv_readoptions_t* ro = arenakv_readoptions_create();
  arenakv_writeoptions_t* wo = arenakv_writeoptions_create();
  arenakv_t* db;
  PathOf(path, sizeof(path), "basic");
  arenakv_options_set_create_if_missing(options, 1);
  arenakv_options_set_cache_size(options, 8 << 20);
  db = arenakv_open(options, path, &err);
  CHECK_NO_ERROR(err);
  CHECK(db != NULL);

  /* Bytes, NULs included. */
  arenakv_put(db, wo, "k\0ey", 4, "v\0alue", 6, &err);
  CHECK_NO_ERROR(err);
  CHECK(Holds(db, ro, "k\0ey", 4, "v\0alue", 6));
  CHECK(Holds(db, ro, "k", 1, NULL, 0));
  arenakv_writeoptions_set_sync(wo, 1);
  arenakv_put(db, wo, "empty", 5, "", 0, &err);
  CHECK_NO_ERROR(err);
  CHECK(Holds(db, ro, "empty", 5, "", 0));
  arenakv_delete(db, wo, "k\0ey", 4, &err);
  CHECK_NO_ERROR(err);
  CHECK(Holds(db, ro, "k\0ey", 4, NULL, 0));

  /* A failure is a message, and a second one replaces the first. */
  {
    char big[20000];
    memset(big, 'x', sizeof(big));
    arenakv_put(db, wo, big, sizeof(big), "v", 1, &err);
    CHECK(err != NULL);
    CHECK(strstr(err, "InvalidArgument") != NULL);
    arenakv_put(db, wo, big, sizeof(big), "v", 1, &err);
    CHECK(err != NULL);
    arenakv_free(err);
    err = NULL;
  }
  arenakv_checkpoint(db, &err);
  CHECK_NO_ERROR(err);
  arenakv_verify(db, &err);
  CHECK_NO_ERROR(err);
  {
    char* stats = arenakv_stats(db);
    CHECK(stats != NULL && strlen(stats) > 0);
    arenakv_free(stats);
  }
  CHECK(arenakv_memory_bytes(db) > 0);
  {
    char* prop = arenakv_property_value(db, "arenakv.last-sequence");
    CHECK(prop != NULL && strcmp(prop, "3") == 0);
    arenakv_free(prop);
    prop = arenakv_property_value(db, "arenakv.stats");
    CHECK(prop != NULL && strstr(prop, "cache") != NULL);
    arenakv_free(prop);
    CHECK(arenakv_property_value(db, "arenakv.nosuchproperty") == NULL);
  }
  {
    /* Checkpointed: "empty" is in the tree, nothing past it. */
    const char* start[2] = {"a", "f"};
    size_t start_len[2] = {1, 1};
    const char* limit[2] = {"f", "z"};
    size_t limit_len[2] = {1, 1};
    uint64_t sizes[2] = {1, 1};
    arenakv_approximate_sizes(db, 2, start, start_len, limit, limit_len, sizes, &err);
    CHECK_NO_ERROR(err);
    CHECK(sizes[1] == 0);
  }
  arenakv_close(db, &err);
  CHECK_NO_ERROR(err);

  /* A repair of a healthy database loses nothing and keeps it openable. */
  {
    char* report = NULL;
    arenakv_repair_db(path, &report, &err);
    CHECK_NO_ERROR(err);
    CHECK(report != NULL && strlen(report) == 0);
    arenakv_free(report);
    db = arenakv_open(options, path, &err);
    CHECK_NO_ERROR(err);
    CHECK(Holds(db, ro, "empty", 5, "", 0));
    arenakv_close(db, &err);
    CHECK_NO_ERROR(err);
    arenakv_repair_db("no/such/database", NULL, &err);
    CHECK(err != NULL && strstr(err, "NotFound") != NULL);
    arenakv_free(err);
    err = NULL;
  }

  /* error_if_exists on an existing database. */
  arenakv_options_set_error_if_exists(options, 1);
  db = arenakv_open(options, path, &err);
  CHECK(db == NULL);
  CHECK(err != NULL && strstr(err, "exists") != NULL);
  arenakv_free(err);
  err = NULL;

  arenakv_destroy_db(path, &err);
  CHECK_NO_ERROR(err);
  arenakv_options_set_error_if_exists(options, 0);
  arenakv_options_set_create_if_missing(options, 0);
  db = arenakv_open(options, path, &err);
  CHECK(db == NULL);
  CHECK(err != NULL);
  arenakv_free(err);
  err = NULL;
  arenakv_options_destroy(options);
  arenakv_readoptions_destroy(ro);
  arenakv_writeoptions_destroy(wo);
}

struct Seen {
  int puts, deletes;
  char last_put[16];
};

static void OnPut(void* state, const char* k, size_t klen, const char* v, size_t vlen) {
  struct Seen* seen = (struct Seen*)state;
  (void)v;
  (void)vlen;
  seen->puts++;
  if (klen < sizeof(seen->last_put)) {
    memcpy(seen->last_put, k, klen);
    seen->last_put[klen] = '\0';
  }
}

static void OnDelete(void* state, const char* k, size_t klen) {
  (void)k;
  (void)klen;
  ((struct Seen*)state)->deletes++;
}

static void TestBatchesIteratorsAndSnapshots(void) {
  char path[4200];
  char key[16], value[16];
  char* err = NULL;
  int i, n;
  size_t len;
  struct Seen seen;
  arenakv_options_t* options = arenakv_options_create();
  arenakv_t* db;
  arenakv_writebatch_t* batch = arenakv_writebatch_create();
  arenakv_iterator_t* it;
  const arenakv_snapshot_t* snap;
  arenakv_readoptions_t* at_snap = arenakv_readoptions_create();
  PathOf(path, sizeof(path), "batches");
  db = arenakv_open(options, path, &err);
  CHECK_NO_ERROR(err);

  for (i = 0; i < 100; i++) {
    snprintf(key, sizeof(key), "key%03d", i);
    snprintf(value, sizeof(value), "value%d", i);
    arenakv_writebatch_put(batch, key, strlen(key), value, strlen(value));
  }
  arenakv_writebatch_delete(batch, "key050", 6);
  CHECK(arenakv_writebatch_count(batch) == 101);
  CHECK(arenakv_writebatch_approximate_size(batch) > 100 * 14);
  memset(&seen, 0, sizeof(seen));
  arenakv_writebatch_iterate(batch, &seen, OnPut, OnDelete);
  CHECK(seen.puts == 100 && seen.deletes == 1);
  CHECK(strcmp(seen.last_put, "key099") == 0);
  arenakv_write(db, NULL, batch, &err);
  CHECK_NO_ERROR(err);
  arenakv_writebatch_clear(batch);
  CHECK(arenakv_writebatch_count(batch) == 0);

  /* Forward, every key in order but the deleted one. */
  it = arenakv_create_iterator(db, NULL);
  CHECK(it != NULL);
  n = 0;
  for (arenakv_iter_seek_to_first(it); arenakv_iter_valid(it); arenakv_iter_next(it)) {
    const char* k = arenakv_iter_key(it, &len);
    snprintf(key, sizeof(key), "key%03d", n < 50 ? n : n + 1);
    CHECK(len == 6 && memcmp(k, key, 6) == 0);
    n++;
  }
  CHECK(n == 99);
  arenakv_iter_get_error(it, &err);
  CHECK_NO_ERROR(err);
  /* Seek lands on the next key; backward from the end. */
  arenakv_iter_seek(it, "key050", 6);
  CHECK(arenakv_iter_valid(it));
  CHECK(memcmp(arenakv_iter_key(it, &len), "key051", 6) == 0);
  CHECK(memcmp(arenakv_iter_value(it, &len), "value51", 7) == 0 && len == 7);
  arenakv_iter_prev(it);
  CHECK(memcmp(arenakv_iter_key(it, &len), "key049", 6) == 0);
  arenakv_iter_seek_to_last(it);
  CHECK(memcmp(arenakv_iter_key(it, &len), "key099", 6) == 0);
  arenakv_iter_destroy(it);

  /* A range goes in one commit. */
  arenakv_delete_range(db, NULL, "key090", 6, "key095", 6, &err);
  CHECK_NO_ERROR(err);
  CHECK(Holds(db, NULL, "key089", 6, "value89", 7));
  CHECK(Holds(db, NULL, "key092", 6, NULL, 0));
  CHECK(Holds(db, NULL, "key095", 6, "value95", 7));

  /* A snapshot keeps the old value across a write. */
  snap = arenakv_create_snapshot(db);
  CHECK(snap != NULL);
  arenakv_put(db, NULL, "key007", 6, "new", 3, &err);
  CHECK_NO_ERROR(err);
  arenakv_readoptions_set_snapshot(at_snap, snap);
  CHECK(Holds(db, at_snap, "key007", 6, "value7", 6));
  CHECK(Holds(db, NULL, "key007", 6, "new", 3));
  it = arenakv_create_iterator(db, at_snap);
  arenakv_iter_seek(it, "key007", 6);
  CHECK(memcmp(arenakv_iter_value(it, &len), "value7", 6) == 0);
  arenakv_iter_destroy(it);
  arenakv_readoptions_set_snapshot(at_snap, NULL);
  arenakv_release_snapshot(db, snap);

  /* A refused put is reported when the batch is written; nothing lands. */
  {
    char big[20000];
    memset(big, 'x', sizeof(big));
    arenakv_writebatch_put(batch, "fine", 4, "1", 1);
    arenakv_writebatch_put(batch, big, sizeof(big), "v", 1);
    arenakv_write(db, NULL, batch, &err);
    CHECK(err != NULL && strstr(err, "InvalidArgument") != NULL);
    arenakv_free(err);
    err = NULL;
    CHECK(Holds(db, NULL, "fine", 4, NULL, 0));
  }
  arenakv_writebatch_destroy(batch);
  arenakv_readoptions_destroy(at_snap);
  arenakv_close(db, &err);
  CHECK_NO_ERROR(err);
  arenakv_options_destroy(options);
}

static void TestTransactions(void) {
  char path[4200];
  char* err = NULL;
  char* v;
  size_t len;
  arenakv_t* db;
  arenakv_transaction_t *a, *b;
  arenakv_iterator_t* it;
  int n = 0;
  PathOf(path, sizeof(path), "txn");
  db = arenakv_open(NULL, path, &err);
  CHECK_NO_ERROR(err);
  arenakv_put(db, NULL, "shared", 6, "0", 1, &err);
  CHECK_NO_ERROR(err);

  a = arenakv_begin(db, NULL, arenakv_isolation_snapshot);
  b = arenakv_begin(db, NULL, arenakv_isolation_serializable);
  CHECK(a != NULL && b != NULL);
  arenakv_transaction_put(a, "shared", 6, "a", 1, &err);
  CHECK_NO_ERROR(err);
  arenakv_transaction_put(a, "own", 3, "x", 1, &err);
  CHECK_NO_ERROR(err);
  v = arenakv_transaction_get(a, "own", 3, &len, &err);
  CHECK_NO_ERROR(err);
  CHECK(v != NULL && len == 1 && v[0] == 'x');
  arenakv_free(v);
  CHECK(Holds(db, NULL, "own", 3, NULL, 0)); /* not visible outside yet */
  it = arenakv_transaction_create_iterator(a);
  for (arenakv_iter_seek_to_first(it); arenakv_iter_valid(it); arenakv_iter_next(it)) n++;
  CHECK(n == 2);
  arenakv_iter_destroy(it);
  arenakv_transaction_put(b, "shared", 6, "b", 1, &err);
  CHECK_NO_ERROR(err);
  arenakv_transaction_commit(a, &err);
  CHECK_NO_ERROR(err);
  arenakv_transaction_commit(b, &err);
  CHECK(err != NULL && strstr(err, "Conflict") != NULL);
  arenakv_free(err);
  err = NULL;
  arenakv_transaction_destroy(a);
  arenakv_transaction_destroy(b);
  CHECK(Holds(db, NULL, "shared", 6, "a", 1));

  /* Rolled back, and destroyed while open: nothing lands. */
  a = arenakv_begin(db, NULL, arenakv_isolation_snapshot);
  arenakv_transaction_put(a, "gone", 4, "1", 1, &err);
  CHECK_NO_ERROR(err);
  arenakv_transaction_rollback(a, &err);
  CHECK_NO_ERROR(err);
  arenakv_transaction_destroy(a);
  a = arenakv_begin(db, NULL, arenakv_isolation_snapshot);
  arenakv_transaction_put(a, "gone", 4, "2", 1, &err);
  CHECK_NO_ERROR(err);
  arenakv_transaction_destroy(a);
  CHECK(Holds(db, NULL, "gone", 4, NULL, 0));
  arenakv_close(db, &err);
  CHECK_NO_ERROR(err);
}

/* Decimal numbers by value: fewer digits first, then bytewise. */
static int destroyed = 0;
static int NumericCompare(void* state, const char* a, size_t alen, const char* b, size_t blen) {
  int c;
  (void)state;
  if (alen != blen) return alen < blen ? -1 : 1;
  c = memcmp(a, b, alen);
  return c < 0 ? -1 : c > 0;
}
static const char* NumericName(void* state) {
  (void)state;
  return "test.numeric";
}
static void NumericDestroy(void* state) { ++*(int*)state; }

static void TestComparator(void) {
  static const char* const kKeys[] = {"100", "9", "20", "1000", "3"};
  static const char* const kOrder[] = {"3", "9", "20", "100", "1000"};
  char path[4200];
  char* err = NULL;
  arenakv_t* db;
  arenakv_iterator_t* it;
  arenakv_options_t* options = arenakv_options_create();
  arenakv_comparator_t* numeric =
      arenakv_comparator_create(&destroyed, NumericDestroy, NumericCompare, NumericName);
  size_t i, len;
  int pass;
  CHECK(numeric != NULL);
  CHECK(arenakv_comparator_create(NULL, NULL, NULL, NumericName) == NULL);
  PathOf(path, sizeof(path), "numeric");
  arenakv_options_set_comparator(options, numeric);
  /* Written, then read again after a reopen (the log) and a checkpoint
     (the tree). */
  for (pass = 0; pass < 3; pass++) {
    db = arenakv_open(options, path, &err);
    CHECK_NO_ERROR(err);
    if (pass == 0) {
      for (i = 0; i < 5; i++) {
        arenakv_put(db, NULL, kKeys[i], strlen(kKeys[i]), "v", 1, &err);
        CHECK_NO_ERROR(err);
      }
    }
    it = arenakv_create_iterator(db, NULL);
    i = 0;
    for (arenakv_iter_seek_to_first(it); arenakv_iter_valid(it); arenakv_iter_next(it), i++) {
      const char* k = arenakv_iter_key(it, &len);
      CHECK(i < 5 && len == strlen(kOrder[i]) && memcmp(k, kOrder[i], len) == 0);
    }
    CHECK(i == 5);
    arenakv_iter_seek(it, "10", 2); /* between 9 and 20 */
    CHECK(arenakv_iter_valid(it));
    CHECK(memcmp(arenakv_iter_key(it, &len), "20", 2) == 0 && len == 2);
    arenakv_iter_destroy(it);
    if (pass == 1) {
      arenakv_checkpoint(db, &err);
      CHECK_NO_ERROR(err);
    }
    arenakv_close(db, &err);
    CHECK_NO_ERROR(err);
  }
  /* Without it, or under another name, the database is refused. */
  arenakv_options_set_comparator(options, NULL);
  db = arenakv_open(options, path, &err);
  CHECK(db == NULL && err != NULL && strstr(err, "test.numeric") != NULL);
  arenakv_free(err);
  err = NULL;
  arenakv_options_destroy(options);
  CHECK(destroyed == 0);
  arenakv_comparator_destroy(numeric);
  CHECK(destroyed == 1);
}

static void TestBackupReadOnlyAndSharedBudget(void) {
  char path[4200], copy[4200], other[4200];
  char* err = NULL;
  arenakv_memory_budget_t* budget = arenakv_memory_budget_create(64 << 20);
  arenakv_options_t* options = arenakv_options_create();
  arenakv_t *db, *db2, *reader;
  PathOf(path, sizeof(path), "shared1");
  PathOf(other, sizeof(other), "shared2");
  PathOf(copy, sizeof(copy), "copy");
  arenakv_options_set_memory_budget(options, budget);
  arenakv_options_set_cache_size(options, 4 << 20);
  db = arenakv_open(options, path, &err);
  CHECK_NO_ERROR(err);
  db2 = arenakv_open(options, other, &err);
  CHECK_NO_ERROR(err);
  CHECK(arenakv_memory_budget_capacity(budget) == (size_t)64 << 20);
  CHECK(arenakv_memory_budget_used(budget) > 0);
  arenakv_put(db, NULL, "a", 1, "1", 1, &err);
  CHECK_NO_ERROR(err);
  arenakv_put(db2, NULL, "b", 1, "2", 1, &err);
  CHECK_NO_ERROR(err);

  arenakv_backup(db, copy, &err);
  CHECK_NO_ERROR(err);
  arenakv_close(db, &err);
  CHECK_NO_ERROR(err);
  arenakv_close(db2, &err);
  CHECK_NO_ERROR(err);
  CHECK(arenakv_memory_budget_used(budget) == 0);
  CHECK(arenakv_memory_budget_peak(budget) > 0);
  /* The options still hold the budget: dropping this handle first is fine. */
  arenakv_memory_budget_destroy(budget);
  arenakv_options_destroy(options);

  options = arenakv_options_create();
  arenakv_options_set_read_only(options, 1);
  reader = arenakv_open(options, copy, &err);
  CHECK_NO_ERROR(err);
  CHECK(Holds(reader, NULL, "a", 1, "1", 1));
  arenakv_put(reader, NULL, "x", 1, "y", 1, &err);
  CHECK(err != NULL && strstr(err, "read-only") != NULL);
  arenakv_free(err);
  err = NULL;
  arenakv_close(reader, &err);
  CHECK_NO_ERROR(err);
  arenakv_options_destroy(options);
}

/* Once a part has closed its databases, no pool may be left in the process. */
static void CheckNothingLeft(const char* part) {
  size_t pools = 1, mapped = 1, in_use = 1;
  arenakv_process_memory(&pools, &mapped, &in_use);
  if (pools != 0 || mapped != 0 || in_use != 0) {
    fprintf(stderr, "after %s: %zu pool(s), %zu bytes mapped, %zu in use\n", part, pools, mapped,
            in_use);
    failures++;
  }
}

/* The smallest budget a 4 MiB cache allows (cache + 1/8 + 8 MiB, here with
   half a MiB to spare), the normal case for an embedder: writes far beyond
   it (checkpoints make room), reads, a checkpoint, approximate sizes and a
   verify all work, and the pool is back to nothing after. */
static void TestTightBudget(void) {
  char path[4200];
  char* err = NULL;
  char key[32];
  char value[200];
  int i, j;
  unsigned rng = 12345;
  arenakv_options_t* options = arenakv_options_create();
  arenakv_writeoptions_t* wo = arenakv_writeoptions_create();
  arenakv_t* db;
  PathOf(path, sizeof(path), "tight");
  arenakv_options_set_create_if_missing(options, 1);
  arenakv_options_set_cache_size(options, 4 << 20);
  arenakv_options_set_memory_budget_bytes(options, (4 << 20) + (1 << 19) + (8 << 20) + (1 << 19));
  db = arenakv_open(options, path, &err);
  CHECK_NO_ERROR(err);
  CHECK(db != NULL);
  for (i = 0; i < 100000; i++) { /* about 20 MiB of values that LZ4 shrinks little */
    snprintf(key, sizeof(key), "key%06d", i);
    snprintf(value, sizeof(value), "value%06d", i);
    for (j = 11; j < (int)sizeof(value); j++) {
      rng = rng * 1103515245u + 12345u;
      value[j] = (char)('a' + (rng >> 16) % 26);
    }
    arenakv_put(db, wo, key, strlen(key), value, sizeof(value), &err);
    CHECK_NO_ERROR(err);
  }
  {
    arenakv_readoptions_t* ro = arenakv_readoptions_create();
    size_t len = 0;
    char* got = arenakv_get(db, ro, "key012345", 9, &len, &err); /* long since checkpointed */
    CHECK_NO_ERROR(err);
    CHECK(got != NULL && len == sizeof(value) && memcmp(got, "value012345", 11) == 0);
    arenakv_free(got);
    arenakv_readoptions_destroy(ro);
  }
  arenakv_checkpoint(db, &err);
  CHECK_NO_ERROR(err);
  {
    /* The data outgrew the budget: what was written went through checkpoints. */
    char* bytes = arenakv_property_value(db, "arenakv.data-file-bytes");
    CHECK(bytes != NULL && strtoull(bytes, NULL, 10) > (14u << 20));
    arenakv_free(bytes);
  }
  {
    const char* start = "key000000";
    const char* limit = "key050000";
    size_t start_len = 9, limit_len = 9;
    uint64_t size = 0;
    arenakv_approximate_sizes(db, 1, &start, &start_len, &limit, &limit_len, &size, &err);
    CHECK_NO_ERROR(err);
    /* Half the keys: about 10 MiB of values, some 7 MiB compressed. */
    CHECK(size > (4 << 20) && size < (16 << 20));
  }
  arenakv_verify(db, &err);
  CHECK_NO_ERROR(err);
  arenakv_close(db, &err);
  CHECK_NO_ERROR(err);
  arenakv_writeoptions_destroy(wo);
  arenakv_options_destroy(options);
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  snprintf(dir, sizeof(dir), "%s", argv[1]);
  {
    char cmd[8300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    if (system(cmd) != 0) return 2;
  }
  arenakv_set_background_threads(2);
  TestReadsWritesAndErrors();
  CheckNothingLeft("reads, writes and errors");
  TestBatchesIteratorsAndSnapshots();
  CheckNothingLeft("batches, iterators and snapshots");
  TestTransactions();
  CheckNothingLeft("transactions");
  TestComparator();
  CheckNothingLeft("a comparator");
  TestBackupReadOnlyAndSharedBudget();
  CheckNothingLeft("backup, read-only opens and a shared budget");
  TestTightBudget();
  CheckNothingLeft("a tight budget");
  if (failures != 0) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("c_api_test: all checks passed\n");
  return 0;
}
