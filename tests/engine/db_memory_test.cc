// Memory tests: the product's promise is that closing a database or ending a
// transaction gives the memory back at once. These tests measure resident
// memory (/proc/self/statm) and the process-wide pool accounting around
// Open/Close and around large transactions, and time Close() with a big
// cache.
//
// Resident memory is read as anonymous memory (RssAnon), without
// malloc_trim: a trim would hide exactly the residue a close must not
// leave, and the pages of the code a first cycle runs (some 0.8 MiB) are
// no memory a database keeps. The test's own strings reuse their buffers.

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "arenakv/alloc/segment_pool.h"
#include "arenakv/db.h"
#include "db_test_util.h"
#include "test_util.h"

namespace arenakv {
namespace {

using test::ExpectPoolsReleased;

constexpr size_t kMiB = size_t{1} << 20;

bool LongTests() {
  const char* e = std::getenv("ARENAKV_LONG_TESTS");
  return e != nullptr && *e != '\0' && *e != '0';
}

size_t AnonResident() { return test::AnonResidentBytes(); }

double MiB(size_t bytes) { return static_cast<double>(bytes) / kMiB; }

// Writes `n` keys with values of ~`value_bytes`, reusing two string buffers
// so that the test itself does not grow the heap.
void Load(DB* db, int n, size_t value_bytes, uint64_t salt = 0) {
  std::string key, value(value_bytes, 'x');
  for (int i = 0; i < n; i++) {
    key = "key/" + std::to_string((static_cast<uint64_t>(i) * 2654435761u + salt) % 100000007);
    value[i % value_bytes] = static_cast<char>('a' + i % 26);
    ASSERT_OK(db->Put(WriteOptions{}, key, value));
  }
}

// Reads every key back, filling the cache (a plain scan of cold data would
// stop filling it after 64 leaves: see ScanCaching).
void ReadAll(DB* db) {
  ReadOptions warm;
  warm.scan_caching = ScanCaching::kAlways;
  std::unique_ptr<Iterator> it = db->NewIterator(warm);
  size_t n = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) n++;
  ASSERT_OK(it->status());
  ASSERT_GT(n, 0u);
}

TEST(MemoryTest, CloseReturnsResidentMemoryToPreOpenLevel) {
  if (test::UnderSanitizer()) {
    GTEST_SKIP() << "resident memory and timing measure the sanitizer here; pool accounting is "
                    "checked by PoolAccountingDuringAndAfter";
  }
  test::TempDir dir;
  Options options;
  options.cache_bytes = 64 * kMiB;
  const size_t before = AnonResident();
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(options, dir.Join("db"), &db));
  ASSERT_NO_FATAL_FAILURE(Load(db.get(), 100000, 200));
  ASSERT_OK(db->Checkpoint());
  ASSERT_NO_FATAL_FAILURE(ReadAll(db.get()));
  const size_t open_rss = AnonResident();
  DBStats stats;
  ASSERT_OK(db->GetStats(&stats));
  // The database really held memory, otherwise this test proves nothing.
  EXPECT_GT(open_rss, before + 8 * kMiB) << "resident memory barely grew while open";
  EXPECT_GT(alloc::GetProcessPoolStats().mapped_bytes, 0u);
  ASSERT_OK(db->Close());
  ExpectPoolsReleased();
  const size_t after_close = AnonResident();
  db.reset();
  const size_t after_destroy = AnonResident();
  std::fprintf(stderr,
               "[memory] before open %.1f MiB, open %.1f MiB (cache used %.1f MiB), after Close "
               "%.1f MiB, after destruction %.1f MiB\n",
               MiB(before), MiB(open_rss), MiB(stats.cache.used_bytes), MiB(after_close),
               MiB(after_destroy));
  EXPECT_LE(after_close, before + kMiB) << "Close() did not give the memory back";
  EXPECT_LE(after_destroy, before + kMiB);
  ExpectPoolsReleased();
}

TEST(MemoryTest, RepeatedOpenLoadCloseDoesNotGrow) {
  if (test::UnderSanitizer()) {
    GTEST_SKIP() << "resident memory and timing measure the sanitizer here; pool accounting is "
                    "checked by PoolAccountingDuringAndAfter";
  }
  const int cycles = 20;
  Options options;
  options.cache_bytes = 64 * kMiB;
  std::vector<size_t> after(cycles);
  size_t first_before = 0;
  for (int c = 0; c < cycles; c++) {
    test::TempDir dir;
    if (c == 0) first_before = AnonResident();
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(options, dir.Join("db"), &db));
    ASSERT_NO_FATAL_FAILURE(Load(db.get(), 100000, 100, static_cast<uint64_t>(c)));
    ASSERT_NO_FATAL_FAILURE(ReadAll(db.get()));
    ASSERT_OK(db->Close());
    db.reset();
    ExpectPoolsReleased();
    after[c] = AnonResident();
  }
  std::string series;
  for (size_t a : after) series += std::to_string(a >> 10) + " ";
  std::fprintf(stderr, "[memory] before %zu KiB; after each cycle (KiB): %s\n", first_before >> 10,
               series.c_str());
  // Cycle 0 may settle one-time state (thread stacks, Env::Default, locale).
  // 40 KiB here: the stack a first read touches.
  EXPECT_LE(after[cycles - 1], after[0] + kMiB / 4) << "resident memory grows across cycles";
  EXPECT_LE(after[cycles - 1], first_before + kMiB / 4) << "memory not back to pre-open level";
}

// Shared body: buffer ~60 MB in a transaction, then end it with `finish`.
// The transaction deletes its own keys before committing, so a commit leaves
// only tombstones behind in the database and the measurement isolates the
// transaction's buffers.
template <typename Finish>
void BufferSixtyMegabytes(Finish finish, const char* what) {
  test::TempDir dir;
  Options options;
  options.cache_bytes = 16 * kMiB;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(options, dir.Join("db"), &db));
  ASSERT_NO_FATAL_FAILURE(Load(db.get(), 1000, 100));
  const size_t before = AnonResident();
  {
    std::unique_ptr<Transaction> txn = db->BeginTransaction(WriteOptions{});
    ASSERT_NE(txn, nullptr);
    std::string key, value(64 << 10, 'v');
    const int n = 960;  // 960 x 64 KiB = 60 MiB
    for (int i = 0; i < n; i++) {
      key = "txn/" + std::to_string(i);
      std::snprintf(value.data(), 16, "%015d", i);  // distinct, unshared values
      ASSERT_OK(txn->Put(key, value));
    }
    EXPECT_GE(txn->BufferBytes(), size_t{60} * 1000 * 1000);
    const size_t during = AnonResident();
    EXPECT_GT(during, before + 50 * kMiB) << "the transaction buffers are not resident?";
    for (int i = 0; i < n; i++) {
      key = "txn/" + std::to_string(i);
      ASSERT_OK(txn->Delete(key));
    }
    // Rollback and Commit are measured while the ended handle still exists.
    ASSERT_NO_FATAL_FAILURE(finish(txn));
    const size_t after = AnonResident();
    DBStats stats;
    ASSERT_OK(db->GetStats(&stats));
    std::fprintf(stderr,
                 "[memory] %s: before %.1f MiB, during %.1f MiB, after %.1f MiB (pool: committed "
                 "%.1f MiB, in use %.1f MiB, retained %.1f MiB)\n",
                 what, MiB(before), MiB(during), MiB(after), MiB(stats.pool.committed_bytes),
                 MiB(stats.pool.in_use_bytes), MiB(stats.pool.retained_bytes));
    EXPECT_LE(after, before + 4 * kMiB) << what << " did not give the buffers back";
  }
  std::string v;
  EXPECT_TRUE(db->Get(ReadOptions{}, "txn/0", &v).IsNotFound());
  ASSERT_OK(db->Close());
  db.reset();
  ExpectPoolsReleased();
}

TEST(MemoryTest, RollbackReturnsTransactionBuffers) {
  if (test::UnderSanitizer()) {
    GTEST_SKIP() << "resident memory and timing measure the sanitizer here; pool accounting is "
                    "checked by PoolAccountingDuringAndAfter";
  }
  BufferSixtyMegabytes([](std::unique_ptr<Transaction>& txn) { ASSERT_OK(txn->Rollback()); },
                       "Rollback");
}

TEST(MemoryTest, CommitReturnsTransactionBuffers) {
  if (test::UnderSanitizer()) {
    GTEST_SKIP() << "resident memory and timing measure the sanitizer here; pool accounting is "
                    "checked by PoolAccountingDuringAndAfter";
  }
  BufferSixtyMegabytes([](std::unique_ptr<Transaction>& txn) { ASSERT_OK(txn->Commit()); },
                       "Commit");
}

TEST(MemoryTest, DestroyingTransactionReturnsBuffers) {
  if (test::UnderSanitizer()) {
    GTEST_SKIP() << "resident memory and timing measure the sanitizer here; pool accounting is "
                    "checked by PoolAccountingDuringAndAfter";
  }
  BufferSixtyMegabytes([](std::unique_ptr<Transaction>& txn) { txn.reset(); }, "destruction");
}

// Closing a clean database with a large cache costs O(segments), not
// O(bytes): no page-by-page freeing, no write-back.
void CloseWithCachedBytes(size_t cached_target, double max_close_ms) {
  test::TempDir dir;
  Options options;
  options.cache_bytes = cached_target;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(options, dir.Join("db"), &db));
  // 8 KiB values: compressible on disk, full size in the cache.
  const size_t value_bytes = 8 << 10;
  const int n = static_cast<int>(cached_target / value_bytes) + 256;
  ASSERT_NO_FATAL_FAILURE(Load(db.get(), n, value_bytes));
  ASSERT_OK(db->Checkpoint());  // clean: Close() has nothing to write
  ASSERT_NO_FATAL_FAILURE(ReadAll(db.get()));
  DBStats stats;
  ASSERT_OK(db->GetStats(&stats));
  ASSERT_GE(stats.cache.used_bytes, cached_target * 3 / 4)
      << "the cache did not fill up; the timing below would mean nothing";
  const auto start = std::chrono::steady_clock::now();
  ASSERT_OK(db->Close());
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  ExpectPoolsReleased();
  std::fprintf(stderr, "[memory] Close() with %.0f MiB cached took %.1f ms\n",
               MiB(stats.cache.used_bytes), ms);
  EXPECT_LT(ms, max_close_ms);
  db.reset();
  ExpectPoolsReleased();
}

TEST(MemoryTest, CloseWithLargeCacheIsFast) {
  if (test::UnderSanitizer()) {
    GTEST_SKIP() << "resident memory and timing measure the sanitizer here; pool accounting is "
                    "checked by PoolAccountingDuringAndAfter";
  }
  ASSERT_NO_FATAL_FAILURE(CloseWithCachedBytes(256 * kMiB, 200.0));
}

// What the kernel alone charges to give back `bytes` of touched anonymous
// memory (one munmap), in milliseconds.
double KernelUnmapMs(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return 0;
  std::memset(p, 1, bytes);
  const auto start = std::chrono::steady_clock::now();
  munmap(p, bytes);
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

// "Closing a clean database with 1 GiB cached takes milliseconds": beyond
// the kernel's own price for unmapping 1 GiB (hundreds of milliseconds on a
// small virtual machine), Close() may add little.
TEST(MemoryTest, CloseWithOneGigabyteCachedIsFast) {
  if (test::UnderSanitizer()) {
    GTEST_SKIP() << "resident memory and timing measure the sanitizer here; pool accounting is "
                    "checked by PoolAccountingDuringAndAfter";
  }
  if (!LongTests()) GTEST_SKIP() << "set ARENAKV_LONG_TESTS=1 (loads 1 GiB)";
  const double kernel_ms = KernelUnmapMs(1024 * kMiB);
  const double bar = std::max(200.0, 1.5 * kernel_ms + 50.0);
  std::fprintf(stderr,
               "[memory] munmap of 1 GiB touched memory: %.1f ms; bar for Close(): %.0f ms\n",
               kernel_ms, bar);
  ASSERT_NO_FATAL_FAILURE(CloseWithCachedBytes(1024 * kMiB, bar));
}

// The pool's own accounting agrees: while open, memory is mapped and the
// arenas are named; after Close, nothing.
TEST(MemoryTest, PoolAccountingDuringAndAfter) {
  ExpectPoolsReleased();
  test::TempDir dir;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(Options{}, dir.Join("db"), &db));
  ASSERT_NO_FATAL_FAILURE(Load(db.get(), 10000, 100));
  const alloc::ProcessPoolStats open_stats = alloc::GetProcessPoolStats();
  EXPECT_GE(open_stats.live_pools, 1u);
  EXPECT_GT(open_stats.mapped_bytes, 0u);
  EXPECT_GT(open_stats.in_use_bytes, 0u);
  DBStats stats;
  ASSERT_OK(db->GetStats(&stats));
  EXPECT_FALSE(stats.arenas.empty());
  std::unique_ptr<Transaction> txn = db->BeginTransaction(WriteOptions{});
  ASSERT_OK(txn->Put("a", std::string(100000, 'a')));
  EXPECT_GT(txn->BufferBytes(), 100000u);
  DBStats with_txn;
  ASSERT_OK(db->GetStats(&with_txn));
  EXPECT_GT(with_txn.arenas.size(), stats.arenas.size()) << "the transaction has no arena?";
  ASSERT_OK(db->Close());  // closes the transaction's arena too
  ExpectPoolsReleased();
  EXPECT_TRUE(txn->Commit().IsClosed());
  txn.reset();
  db.reset();
  ExpectPoolsReleased();
}

// While writes go on, a memtable a checkpoint retires leaves its segments
// in the pool for the next one (pages already faulted in and zeroed); a
// checkpoint the user asks for, or the end of the writes, gives them back.
TEST(MemoryTest, RetiredMemtablesAreRecycledWhileWritesGoOn) {
  test::TempDir dir;
  Options options;
  options.background_checkpoints = false;  // each checkpoint in the writer's path
  options.checkpoint_wal_bytes = 1 * kMiB;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(options, dir.Join("db"), &db));
  ASSERT_NO_FATAL_FAILURE(Load(db.get(), 40000, 200));  // about 8 MiB of log
  DBStats stats;
  ASSERT_OK(db->GetStats(&stats));
  ASSERT_GE(stats.checkpoints, 3u);
  EXPECT_GT(stats.pool.recycled_bytes, 0u);
  EXPECT_LE(stats.pool.recycled_bytes, stats.pool.retained_bytes);
  ASSERT_OK(db->Checkpoint());
  ASSERT_OK(db->GetStats(&stats));
  EXPECT_EQ(stats.pool.recycled_bytes, 0u);
  EXPECT_LE(stats.pool.retained_bytes, 3 * kMiB) << "the recycled segments were not given back";
  std::string v;
  ASSERT_OK(db->Get(ReadOptions{}, "key/0", &v));
  ASSERT_OK(db->Close());
  db.reset();
  ExpectPoolsReleased();
}

}  // namespace
}  // namespace arenakv
