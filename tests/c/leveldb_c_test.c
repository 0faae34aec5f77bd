/* A LevelDB C client, written against LevelDB's API and linked with
   arenakv::leveldb_c: open, put, get, delete, write batches (iterate,
   append), iterators, snapshots, properties, approximate sizes, compaction,
   options that mean nothing here, a custom comparator (the keys in its
   order, and a database refused under another), and repair.

   Usage: leveldb_c_test DIR (a scratch directory, emptied first). */
#include <leveldb/c.h>

#ifndef ARENAKV_COMPAT_LEVELDB_C_H_
#error "built against another leveldb/c.h than arenakv's"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
      return;                                                                  \
    }                                                                          \
  } while (0)

#define CHECK_NO_ERROR(err)                                                        \
  do {                                                                             \
    if ((err) != NULL) {                                                           \
      fprintf(stderr, "%s:%d: unexpected error: %s\n", __FILE__, __LINE__, (err)); \
      leveldb_free(err);                                                           \
      (err) = NULL;                                                                \
      failures++;                                                                  \
      return;                                                                      \
    }                                                                              \
  } while (0)

static char dir[4096];

static int CheckGet(leveldb_t* db, const leveldb_readoptions_t* ro, const char* key,
                    const char* expected) {
  char* err = NULL;
  size_t len;
  char* val = leveldb_get(db, ro, key, strlen(key), &len, &err);
  int ok;
  if (err != NULL) {
    fprintf(stderr, "get %s: %s\n", key, err);
    leveldb_free(err);
    return 0;
  }
  if (expected == NULL) {
    ok = val == NULL;
  } else {
    ok = val != NULL && len == strlen(expected) && memcmp(val, expected, len) == 0;
  }
  leveldb_free(val);
  return ok;
}

static void CountPut(void* state, const char* k, size_t klen, const char* v, size_t vlen) {
  (void)k;
  (void)klen;
  (void)v;
  (void)vlen;
  ((int*)state)[0]++;
}

static void CountDelete(void* state, const char* k, size_t klen) {
  (void)k;
  (void)klen;
  ((int*)state)[1]++;
}

static int CmpCompare(void* state, const char* a, size_t alen, const char* b, size_t blen) {
  size_t n = alen < blen ? alen : blen;
  int r = memcmp(a, b, n);
  (void)state;
  if (r == 0) r = alen < blen ? -1 : alen > blen ? 1 : 0;
  return -r;
}
static const char* CmpName(void* state) {
  (void)state;
  return "reverse";
}
static void CmpDestroy(void* state) { (void)state; }

static void TestClient(void) {
  char path[4200];
  char* err = NULL;
  char key[32], value[32];
  int i, n, counts[2] = {0, 0};
  size_t len;
  leveldb_env_t* env = leveldb_create_default_env();
  leveldb_cache_t* cache = leveldb_cache_create_lru(8 << 20);
  leveldb_filterpolicy_t* bloom = leveldb_filterpolicy_create_bloom(10);
  leveldb_options_t* options = leveldb_options_create();
  leveldb_readoptions_t* roptions = leveldb_readoptions_create();
  leveldb_writeoptions_t* woptions = leveldb_writeoptions_create();
  leveldb_writebatch_t *wb, *more;
  leveldb_iterator_t* iter;
  const leveldb_snapshot_t* snap;
  leveldb_t* db;
  char* prop;

  snprintf(path, sizeof(path), "%s/client", dir);
  CHECK(leveldb_major_version() >= 1);
  CHECK(leveldb_minor_version() >= 1);
  leveldb_options_set_comparator(options, NULL);
  leveldb_options_set_error_if_exists(options, 1);
  leveldb_options_set_cache(options, cache);
  leveldb_options_set_env(options, env);
  leveldb_options_set_info_log(options, NULL);
  leveldb_options_set_write_buffer_size(options, 100000);
  leveldb_options_set_paranoid_checks(options, 1);
  leveldb_options_set_max_open_files(options, 10);
  leveldb_options_set_block_size(options, 1024);
  leveldb_options_set_block_restart_interval(options, 8);
  leveldb_options_set_max_file_size(options, 3 << 20);
  leveldb_options_set_compression(options, leveldb_no_compression);
  leveldb_options_set_filter_policy(options, bloom);

  /* LevelDB's default: a missing database is an error. */
  db = leveldb_open(options, path, &err);
  CHECK(db == NULL && err != NULL);
  leveldb_free(err);
  err = NULL;
  leveldb_options_set_create_if_missing(options, 1);
  db = leveldb_open(options, path, &err);
  CHECK_NO_ERROR(err);

  leveldb_put(db, woptions, "foo", 3, "hello", 5, &err);
  CHECK_NO_ERROR(err);
  CHECK(CheckGet(db, roptions, "foo", "hello"));
  leveldb_writeoptions_set_sync(woptions, 1);
  leveldb_put(db, woptions, "box", 3, "c", 1, &err);
  CHECK_NO_ERROR(err);
  leveldb_delete(db, woptions, "foo", 3, &err);
  CHECK_NO_ERROR(err);
  CHECK(CheckGet(db, roptions, "foo", NULL));

  /* A write batch, appended to by another, iterated, then written. */
  wb = leveldb_writebatch_create();
  more = leveldb_writebatch_create();
  leveldb_writebatch_put(wb, "foo", 3, "a", 1);
  leveldb_writebatch_clear(wb);
  leveldb_writebatch_put(wb, "bar", 3, "b", 1);
  leveldb_writebatch_put(wb, "box", 3, "c", 1);
  leveldb_writebatch_delete(more, "bar", 3);
  leveldb_writebatch_put(more, "baz", 3, "z", 1);
  leveldb_writebatch_append(wb, more);
  leveldb_writebatch_iterate(wb, counts, CountPut, CountDelete);
  CHECK(counts[0] == 3 && counts[1] == 1);
  leveldb_write(db, woptions, wb, &err);
  CHECK_NO_ERROR(err);
  CHECK(CheckGet(db, roptions, "bar", NULL));
  CHECK(CheckGet(db, roptions, "baz", "z"));
  leveldb_writebatch_destroy(wb);
  leveldb_writebatch_destroy(more);

  /* Iterators. */
  for (i = 0; i < 200; i++) {
    snprintf(key, sizeof(key), "k%03d", i);
    snprintf(value, sizeof(value), "v%d", i);
    leveldb_put(db, NULL, key, strlen(key), value, strlen(value), &err);
    CHECK_NO_ERROR(err);
  }
  iter = leveldb_create_iterator(db, roptions);
  CHECK(!leveldb_iter_valid(iter));
  leveldb_iter_seek_to_first(iter);
  CHECK(leveldb_iter_valid(iter));
  CHECK(memcmp(leveldb_iter_key(iter, &len), "baz", 3) == 0 && len == 3);
  leveldb_iter_next(iter);
  CHECK(memcmp(leveldb_iter_key(iter, &len), "box", 3) == 0);
  leveldb_iter_seek(iter, "k100", 4);
  CHECK(memcmp(leveldb_iter_value(iter, &len), "v100", 4) == 0 && len == 4);
  leveldb_iter_prev(iter);
  CHECK(memcmp(leveldb_iter_key(iter, &len), "k099", 4) == 0);
  leveldb_iter_seek_to_last(iter);
  CHECK(memcmp(leveldb_iter_key(iter, &len), "k199", 4) == 0);
  for (n = 0, leveldb_iter_seek_to_first(iter); leveldb_iter_valid(iter); leveldb_iter_next(iter))
    n++;
  CHECK(n == 202);
  leveldb_iter_get_error(iter, &err);
  CHECK_NO_ERROR(err);
  leveldb_iter_destroy(iter);

  /* Snapshots. */
  snap = leveldb_create_snapshot(db);
  leveldb_put(db, woptions, "baz", 3, "later", 5, &err);
  CHECK_NO_ERROR(err);
  leveldb_readoptions_set_snapshot(roptions, snap);
  CHECK(CheckGet(db, roptions, "baz", "z"));
  leveldb_readoptions_set_snapshot(roptions, NULL);
  CHECK(CheckGet(db, roptions, "baz", "later"));
  leveldb_release_snapshot(db, snap);
  leveldb_readoptions_set_verify_checksums(roptions, 1);
  leveldb_readoptions_set_fill_cache(roptions, 0);
  CHECK(CheckGet(db, roptions, "k150", "v150"));

  /* Properties, sizes, compaction. */
  prop = leveldb_property_value(db, "leveldb.stats");
  CHECK(prop != NULL && strlen(prop) > 0);
  leveldb_free(prop);
  prop = leveldb_property_value(db, "leveldb.approximate-memory-usage");
  CHECK(prop != NULL && atoll(prop) > 0);
  leveldb_free(prop);
  CHECK(leveldb_property_value(db, "leveldb.nosuchproperty") == NULL);
  {
    const char* start[2] = {"k000", "x"};
    size_t start_len[2] = {4, 1};
    const char* limit[2] = {"k100", "z"};
    size_t limit_len[2] = {4, 1};
    uint64_t sizes[2];
    leveldb_approximate_sizes(db, 2, start, start_len, limit, limit_len, sizes);
    /* Still in the memtable: its bytes, nodes included (some 80 a version
       of these 8-byte entries). */
    CHECK(sizes[0] >= 100 * 8 && sizes[0] < 100 * 160);
    CHECK(sizes[1] == 0);
  }
  leveldb_compact_range(db, NULL, 0, NULL, 0);
  CHECK(CheckGet(db, roptions, "k150", "v150"));
  leveldb_close(db);

  /* error_if_exists; repair; and this bytewise database is refused under
     a custom comparator. */
  db = leveldb_open(options, path, &err);
  CHECK(db == NULL && err != NULL);
  leveldb_free(err);
  err = NULL;
  /* A repair of a healthy database keeps everything. */
  leveldb_repair_db(options, path, &err);
  CHECK_NO_ERROR(err);
  {
    leveldb_comparator_t* cmp = leveldb_comparator_create(NULL, CmpDestroy, CmpCompare, CmpName);
    leveldb_options_set_error_if_exists(options, 0);
    leveldb_options_set_comparator(options, cmp);
    db = leveldb_open(options, path, &err);
    CHECK(db == NULL && err != NULL && strstr(err, "reverse") != NULL);
    leveldb_free(err);
    err = NULL;
    /* A repair in another order would hand back keys the client cannot
       read in its order: refused the same way, nothing touched. */
    leveldb_repair_db(options, path, &err);
    CHECK(err != NULL && strstr(err, "reverse") != NULL);
    leveldb_free(err);
    err = NULL;
    leveldb_options_set_comparator(options, NULL);
    leveldb_comparator_destroy(cmp);
  }
  db = leveldb_open(options, path, &err);
  CHECK_NO_ERROR(err);
  CHECK(CheckGet(db, roptions, "box", "c"));
  leveldb_close(db);

  /* A database of its own in the comparator's (reverse) order. */
  {
    char rpath[4300];
    const char* keys[] = {"b", "a", "c"};
    const char* want = "cba";
    size_t i, len;
    leveldb_iterator_t* it;
    leveldb_comparator_t* cmp = leveldb_comparator_create(NULL, CmpDestroy, CmpCompare, CmpName);
    snprintf(rpath, sizeof(rpath), "%s-reverse", path);
    leveldb_options_set_create_if_missing(options, 1);
    leveldb_options_set_comparator(options, cmp);
    db = leveldb_open(options, rpath, &err);
    CHECK_NO_ERROR(err);
    for (i = 0; i < 3; i++) {
      leveldb_put(db, woptions, keys[i], 1, "v", 1, &err);
      CHECK_NO_ERROR(err);
    }
    leveldb_close(db);
    db = leveldb_open(options, rpath, &err);
    CHECK_NO_ERROR(err);
    it = leveldb_create_iterator(db, roptions);
    i = 0;
    for (leveldb_iter_seek_to_first(it); leveldb_iter_valid(it); leveldb_iter_next(it), i++) {
      const char* k = leveldb_iter_key(it, &len);
      CHECK(i < 3 && len == 1 && k[0] == want[i]);
    }
    CHECK(i == 3);
    leveldb_iter_destroy(it);
    leveldb_close(db);
    leveldb_options_set_comparator(options, NULL);
    db = leveldb_open(options, rpath, &err);
    CHECK(db == NULL && err != NULL && strstr(err, "reverse") != NULL);
    leveldb_free(err);
    err = NULL;
    leveldb_comparator_destroy(cmp);
    leveldb_destroy_db(options, rpath, &err);
    CHECK_NO_ERROR(err);
    leveldb_options_set_create_if_missing(options, 0);
  }

  leveldb_destroy_db(options, path, &err);
  CHECK_NO_ERROR(err);
  leveldb_options_set_create_if_missing(options, 0);
  db = leveldb_open(options, path, &err);
  CHECK(db == NULL && err != NULL);
  leveldb_free(err);
  err = NULL;
  {
    char* test_dir = leveldb_env_get_test_directory(env);
    CHECK(test_dir != NULL && strlen(test_dir) > 0);
    leveldb_free(test_dir);
  }

  leveldb_options_destroy(options);
  leveldb_readoptions_destroy(roptions);
  leveldb_writeoptions_destroy(woptions);
  leveldb_filterpolicy_destroy(bloom);
  leveldb_cache_destroy(cache);
  leveldb_env_destroy(env);
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
  TestClient();
  if (failures != 0) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("leveldb_c_test: all checks passed\n");
  return 0;
}
