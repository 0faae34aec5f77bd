// Databases sharing one MemoryBudget: the sum of what they hold stays under
// it, closing gives each one's memory back at once, and when it is full the
// clean cache pages of the least used databases go first.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "arenakv/alloc/object_heap.h"
#include "arenakv/db.h"
#include "arenakv/memory_budget.h"
#include "arenakv/transaction.h"
#include "db/budget_rep.h"
#include "db/db_impl.h"
#include "db_test_util.h"
#include "sync_point_util.h"
#include "test_util.h"
#include "tree/read_epoch.h"

namespace arenakv {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

std::string Key(int i) {
  char k[16];
  std::snprintf(k, sizeof(k), "key%08d", i);
  return k;
}
std::string Value(int i, int db) {
  return std::string(100, static_cast<char>('a' + (i + db) % 26));
}

Options Shared(const std::shared_ptr<MemoryBudget>& budget, size_t cache) {
  Options o;
  o.memory_budget = budget;
  o.cache_bytes = cache;
  o.read_ahead = false;  // caches fill only through the reads below
  return o;
}

// Fills `db` with `n` keys and checkpoints them into the tree.
void Fill(DB* db, int n, int id) {
  for (int i = 0; i < n; ++i) ASSERT_OK(db->Put(WriteOptions(), Key(i), Value(i, id)));
  ASSERT_OK(db->Checkpoint());
}

void ReadAll(DB* db, int n, int id) {
  std::string v;
  for (int i = 0; i < n; ++i) {
    ASSERT_OK(db->Get(ReadOptions(), Key(i), &v));
    ASSERT_EQ(v, Value(i, id)) << Key(i);
  }
}

std::vector<DB*> Raw(const std::vector<std::unique_ptr<DB>>& dbs) {
  std::vector<DB*> raw;
  for (const auto& db : dbs) raw.push_back(db.get());
  return raw;
}

// Where a shared budget's memory is, database by database: printed when a
// put is refused, so that a failure says what held the budget.
std::string BudgetReport(const std::vector<DB*>& dbs) {
  std::string out;
  for (size_t d = 0; d < dbs.size(); ++d) {
    DBStats st;
    if (!dbs[d]->GetStats(&st).ok()) continue;
    char line[256];
    std::snprintf(
        line, sizeof(line),
        "database %zu: committed %zu KiB (in use %zu, retained %zu), memtables %zu KiB in %zu, "
        "cache %zu KiB, checkpoints %llu (%llu out of memory), stalls %llu\n",
        d, st.pool.committed_bytes >> 10, st.pool.in_use_bytes >> 10, st.pool.retained_bytes >> 10,
        st.memtable_bytes >> 10, st.live_memtables, st.cache.used_bytes >> 10,
        static_cast<unsigned long long>(st.checkpoints),
        static_cast<unsigned long long>(st.checkpoint_memory_failures),
        static_cast<unsigned long long>(st.write_stalls));
    out += line;
  }
  return out;
}

size_t CacheUsed(DB* db) {
  DBStats st;
  EXPECT_OK(db->GetStats(&st));
  return st.cache.used_bytes;
}

TEST(SharedBudgetTest, ManyDatabasesStayUnderOneBudgetAndGiveItBackOnClose) {
  test::TempDir dir;
  auto budget = MemoryBudget::Create(96 * kMiB);
  EXPECT_EQ(budget->capacity_bytes(), 96 * kMiB);
  constexpr int kDbs = 24;
  std::vector<std::unique_ptr<DB>> dbs(kDbs);
  for (int d = 0; d < kDbs; ++d) {
    ASSERT_OK(DB::Open(Shared(budget, 2 * kMiB), dir.Join("db" + std::to_string(d)), &dbs[d]));
  }
  EXPECT_EQ(budget->databases(), static_cast<size_t>(kDbs));
  // 24 caches of 2 MiB and their memtables would need more than the budget.
  for (int d = 0; d < kDbs; ++d) ASSERT_NO_FATAL_FAILURE(Fill(dbs[d].get(), 20000, d));
  for (int round = 0; round < 2; ++round) {
    for (int d = 0; d < kDbs; ++d) ASSERT_NO_FATAL_FAILURE(ReadAll(dbs[d].get(), 20000, d));
  }
  EXPECT_LE(budget->peak_bytes(), budget->capacity_bytes());
  EXPECT_GT(budget->used_bytes(), 0u);
  for (int d = 0; d < kDbs; ++d) {
    const size_t before = budget->used_bytes();
    ASSERT_OK(dbs[d]->Close());
    dbs[d].reset();
    EXPECT_LT(budget->used_bytes(), before) << "closing db " << d << " gave nothing back";
  }
  EXPECT_EQ(budget->used_bytes(), 0u);
  EXPECT_EQ(budget->databases(), 0u);
  test::ExpectPoolsReleased();
}

// A hot database may use most of the budget while the others are idle:
// their cache pages are what it takes.
TEST(SharedBudgetTest, AHotDatabaseTakesTheCacheOfIdleOnes) {
  test::TempDir dir;
  auto budget = MemoryBudget::Create(64 * kMiB);
  std::unique_ptr<DB> hot, idle1, idle2;
  ASSERT_OK(DB::Open(Shared(budget, 40 * kMiB), dir.Join("hot"), &hot));
  ASSERT_OK(DB::Open(Shared(budget, 40 * kMiB), dir.Join("idle1"), &idle1));
  ASSERT_OK(DB::Open(Shared(budget, 40 * kMiB), dir.Join("idle2"), &idle2));
  ASSERT_NO_FATAL_FAILURE(Fill(idle1.get(), 120000, 1));
  ASSERT_NO_FATAL_FAILURE(Fill(idle2.get(), 120000, 2));
  ASSERT_NO_FATAL_FAILURE(Fill(hot.get(), 300000, 0));  // ~38 MiB of leaves
  ASSERT_NO_FATAL_FAILURE(ReadAll(idle1.get(), 120000, 1));
  ASSERT_NO_FATAL_FAILURE(ReadAll(idle2.get(), 120000, 2));
  const size_t idle_before = CacheUsed(idle1.get()) + CacheUsed(idle2.get());
  EXPECT_GT(idle_before, 16 * kMiB);
  for (int round = 0; round < 3; ++round) ASSERT_NO_FATAL_FAILURE(ReadAll(hot.get(), 300000, 0));
  const size_t hot_cache = CacheUsed(hot.get());
  const size_t idle_after = CacheUsed(idle1.get()) + CacheUsed(idle2.get());
  EXPECT_GT(hot_cache, 32 * kMiB);  // all its leaves: half the budget
  EXPECT_LT(idle_after + 4 * kMiB, idle_before);
  EXPECT_LE(budget->peak_bytes(), budget->capacity_bytes());
  // The idle ones still read right (from disk now).
  ASSERT_NO_FATAL_FAILURE(ReadAll(idle1.get(), 1000, 1));
  ASSERT_OK(hot->Close());
  ASSERT_OK(idle1->Close());
  ASSERT_OK(idle2->Close());
  hot.reset();
  idle1.reset();
  idle2.reset();
  EXPECT_EQ(budget->used_bytes(), 0u);
  test::ExpectPoolsReleased();
}

// A database read by block keeps a table of its leaves' heads in its cache;
// when it is idle and others need the budget, the table goes after its
// pages: an idle database keeps no memory busy ones need.
TEST(SharedBudgetTest, AnIdleDatabaseGivesItsLeafHeadTableBack) {
  test::TempDir dir;
  auto budget = MemoryBudget::Create(64 * kMiB);
  std::unique_ptr<DB> hot1, hot2, idle;
  // Opened first: of databases equally idle, the first to join gives first.
  ASSERT_OK(DB::Open(Shared(budget, 4 * kMiB), dir.Join("idle"), &idle));
  ASSERT_OK(DB::Open(Shared(budget, 40 * kMiB), dir.Join("hot1"), &hot1));
  ASSERT_OK(DB::Open(Shared(budget, 40 * kMiB), dir.Join("hot2"), &hot2));
  // Half-random values: leaves stored in blocks, more of them than the
  // idle database's cache holds.
  auto value = [](int i) { return test::HalfRandomValue(i); };
  constexpr int kIdleKeys = 60000;
  for (int i = 0; i < kIdleKeys; ++i) ASSERT_OK(idle->Put(WriteOptions(), Key(i), value(i)));
  ASSERT_OK(idle->Checkpoint());
  std::string v;
  for (int pass = 0; pass < 2; ++pass) {
    for (int i = pass; i < kIdleKeys; i += 7) {
      ASSERT_OK(idle->Get(ReadOptions(), Key(i), &v));
      ASSERT_EQ(v, value(i));
    }
  }
  DBStats st;
  ASSERT_OK(idle->GetStats(&st));
  ASSERT_GT(st.cache.leaf_head_bytes, 0u);
  ASSERT_GT(st.cache.block_reads, 0u);

  // Two databases that want more than the whole budget between them.
  ASSERT_NO_FATAL_FAILURE(Fill(hot1.get(), 300000, 1));  // ~38 MiB of leaves
  ASSERT_NO_FATAL_FAILURE(Fill(hot2.get(), 300000, 2));
  for (int round = 0; round < 2; ++round) {
    ASSERT_NO_FATAL_FAILURE(ReadAll(hot1.get(), 300000, 1));
    ASSERT_NO_FATAL_FAILURE(ReadAll(hot2.get(), 300000, 2));
  }
  ASSERT_OK(idle->GetStats(&st));
  EXPECT_EQ(st.cache.leaf_head_bytes, 0u);
  EXPECT_LT(st.cache.used_bytes, 1 * kMiB);
  EXPECT_LE(budget->peak_bytes(), budget->capacity_bytes());
  // It still reads right, its misses reading their heads again.
  for (int i = 3; i < kIdleKeys; i += 101) {
    ASSERT_OK(idle->Get(ReadOptions(), Key(i), &v));
    ASSERT_EQ(v, value(i));
  }
  for (std::unique_ptr<DB>* db : {&hot1, &hot2, &idle}) {
    ASSERT_OK((*db)->Close());
    db->reset();
  }
  EXPECT_EQ(budget->used_bytes(), 0u);
  test::ExpectPoolsReleased();
}

// The least used database since the last time memory was short gives first.
TEST(SharedBudgetTest, TheLeastUsedDatabaseGivesFirst) {
  test::TempDir dir;
  auto budget = MemoryBudget::Create(50 * kMiB);
  std::unique_ptr<DB> quiet, busy, asking;
  ASSERT_OK(DB::Open(Shared(budget, 12 * kMiB), dir.Join("quiet"), &quiet));
  ASSERT_OK(DB::Open(Shared(budget, 12 * kMiB), dir.Join("busy"), &busy));
  ASSERT_OK(DB::Open(Shared(budget, 36 * kMiB), dir.Join("asking"), &asking));
  ASSERT_NO_FATAL_FAILURE(Fill(quiet.get(), 50000, 1));
  ASSERT_NO_FATAL_FAILURE(Fill(busy.get(), 50000, 2));
  ASSERT_NO_FATAL_FAILURE(Fill(asking.get(), 290000, 3));  // more than the budget has left
  ASSERT_NO_FATAL_FAILURE(ReadAll(quiet.get(), 50000, 1));
  ASSERT_NO_FATAL_FAILURE(ReadAll(busy.get(), 50000, 2));
  const size_t quiet_before = CacheUsed(quiet.get());
  const size_t busy_before = CacheUsed(busy.get());
  ASSERT_GT(quiet_before, 4 * kMiB);
  ASSERT_GT(busy_before, 4 * kMiB);
  // From here on only `busy` is used, then `asking` needs memory; reading
  // `busy` again between the reclaims keeps it the busier one.
  for (int round = 0; round < 4; ++round) {
    ASSERT_NO_FATAL_FAILURE(ReadAll(busy.get(), 50000, 2));
    ASSERT_NO_FATAL_FAILURE(ReadAll(asking.get(), 290000, 3));
  }
  const size_t quiet_after = CacheUsed(quiet.get());
  const size_t busy_after = CacheUsed(busy.get());
  // `asking` got all it needed (its whole data), from `quiet` alone.
  EXPECT_GT(CacheUsed(asking.get()), 34 * kMiB);
  EXPECT_LE(quiet_after + kMiB, quiet_before) << "the quiet database kept its cache";
  EXPECT_GE(busy_after, busy_before) << "the busy database gave before the quiet one";
  EXPECT_LE(budget->peak_bytes(), budget->capacity_bytes());
  for (auto* db : {&quiet, &busy, &asking}) {
    ASSERT_OK((*db)->Close());
    db->reset();
  }
  EXPECT_EQ(budget->used_bytes(), 0u);
  test::ExpectPoolsReleased();
}

// MemoryLimit comes only once nothing can be freed: the other database's
// cache goes first, the failed write changes nothing, and both go on.
TEST(SharedBudgetTest, MemoryLimitOnlyWhenNothingCanBeFreed) {
  test::TempDir dir;
  auto budget = MemoryBudget::Create(40 * kMiB);
  std::unique_ptr<DB> reader, writer;
  ASSERT_OK(DB::Open(Shared(budget, 24 * kMiB), dir.Join("reader"), &reader));
  ASSERT_OK(DB::Open(Shared(budget, 1 * kMiB), dir.Join("writer"), &writer));
  ASSERT_NO_FATAL_FAILURE(Fill(reader.get(), 200000, 1));
  ASSERT_NO_FATAL_FAILURE(ReadAll(reader.get(), 200000, 1));
  const size_t reader_cache = CacheUsed(reader.get());
  ASSERT_GT(reader_cache, 20 * kMiB);

  std::unique_ptr<Transaction> txn = writer->BeginTransaction(WriteOptions(), TransactionOptions());
  const std::string big(kMiB / 2, 'x');
  Status s;
  int puts = 0;
  for (; puts < 200; ++puts) {
    s = txn->Put(Key(puts), big);
    if (!s.ok()) break;
  }
  EXPECT_TRUE(s.IsMemoryLimit()) << s.ToString();
  // More than the budget had free beside the reader's cache.
  EXPECT_GT(puts * big.size(), budget->capacity_bytes() - reader_cache)
      << "failed before the reader's cache was freed";
  EXPECT_LT(CacheUsed(reader.get()), 2 * kMiB);
  EXPECT_LE(budget->peak_bytes(), budget->capacity_bytes());
  ASSERT_OK(txn->Rollback());
  txn.reset();
  std::string v;
  EXPECT_TRUE(writer->Get(ReadOptions(), Key(0), &v).IsNotFound());
  ASSERT_OK(writer->Put(WriteOptions(), "after", "works"));
  ASSERT_NO_FATAL_FAILURE(ReadAll(reader.get(), 200000, 1));
  ASSERT_OK(reader->Close());
  ASSERT_OK(writer->Close());
  reader.reset();
  writer.reset();
  EXPECT_EQ(budget->used_bytes(), 0u);
  test::ExpectPoolsReleased();
}

// A database that wrote much and went quiet holds most of the budget in its
// memtable (no checkpoint of its own is due). Another one then commits a
// large batch: the budget asks the quiet one to checkpoint, its memtable's
// memory comes back, and the batch goes in after a wait bounded by that
// checkpoint, with nothing lost on either side.
TEST(SharedBudgetTest, AnIdleDatabasesMemtableIsCheckpointedForAnother) {
  test::TempDir dir;
  auto budget = MemoryBudget::Create(40 * kMiB);
  Options quiet_options = Shared(budget, kMiB);
  quiet_options.checkpoint_wal_bytes = size_t{1} << 30;  // never due by itself
  std::unique_ptr<DB> quiet, busy;
  ASSERT_OK(DB::Open(quiet_options, dir.Join("quiet"), &quiet));
  ASSERT_OK(DB::Open(Shared(budget, kMiB), dir.Join("busy"), &busy));
  constexpr int kQuietKeys = 80000;
  for (int i = 0; i < kQuietKeys; ++i) {
    ASSERT_OK(quiet->Put(WriteOptions(), Key(i), Value(i, 1)));
  }
  DBStats st;
  ASSERT_OK(quiet->GetStats(&st));
  ASSERT_EQ(st.checkpoints, 0u);
  ASSERT_EQ(st.live_memtables, 1u) << "no checkpoint under way";
  ASSERT_GT(st.memtable_bytes, 12 * kMiB);
  const uint64_t quiet_checkpoints = st.checkpoints;

  // 14 MiB in one atomic batch, which takes its size twice while it
  // commits (its log record and its memtable's room): more than the
  // budget has left.
  WriteBatch batch;
  const std::string big(64 << 10, 'b');
  for (int i = 0; i < 224; ++i) ASSERT_OK(batch.Put(Key(i), big));
  ASSERT_GT(2 * batch.ApproximateSize() + budget->used_bytes(), budget->capacity_bytes());
  ASSERT_OK(busy->Write(WriteOptions(), &batch));

  ASSERT_OK(quiet->GetStats(&st));
  EXPECT_GT(st.checkpoints, quiet_checkpoints) << "the quiet database gave its memtable back";
  EXPECT_LE(budget->peak_bytes(), budget->capacity_bytes());
  std::string v;
  ASSERT_OK(busy->Get(ReadOptions(), Key(223), &v));
  EXPECT_EQ(v, big);
  ASSERT_NO_FATAL_FAILURE(ReadAll(quiet.get(), kQuietKeys, 1));
  ASSERT_OK(quiet->Close());
  ASSERT_OK(busy->Close());
  quiet.reset();
  busy.reset();
  EXPECT_EQ(budget->used_bytes(), 0u);
  test::ExpectPoolsReleased();
}

// Readers of some databases reclaim from the others while those are being
// closed and reopened: a reclaim (or a listing of the budget's databases)
// never touches a database that has left (ThreadSanitizer and
// AddressSanitizer watch), and the budget ends at zero.
TEST(SharedBudgetTest, ReclaimRacesCloseAndReopen) {
  const uint64_t seed = test::TestSeed();
  test::TempDir dir;
  auto budget = MemoryBudget::Create(48 * kMiB);
  constexpr int kDbs = 6;
  constexpr int kKeys = 30000;
  for (int d = 0; d < kDbs; ++d) {
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(Shared(budget, 8 * kMiB), dir.Join("db" + std::to_string(d)), &db));
    ASSERT_NO_FATAL_FAILURE(Fill(db.get(), kKeys, d));
    ASSERT_OK(db->Close());
  }
  // Databases 0-2 stay open and are read; 3-5 are closed and reopened.
  std::vector<std::unique_ptr<DB>> steady(3);
  for (int d = 0; d < 3; ++d) {
    ASSERT_OK(DB::Open(Shared(budget, 8 * kMiB), dir.Join("db" + std::to_string(d)), &steady[d]));
  }
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      std::mt19937_64 rng(seed + t);
      std::string v;
      while (!stop.load()) {
        const int d = static_cast<int>(rng() % 3);
        const int i = static_cast<int>(rng() % kKeys);
        Status s = steady[d]->Get(ReadOptions(), Key(i), &v);
        if (!s.ok() || v != Value(i, d)) errors.fetch_add(1);
      }
    });
  }
  // And the budget is listed meanwhile: the three steady databases and at
  // most one of the others, never one that has left.
  std::thread lister([&] {
    std::vector<BudgetDatabase> list;
    while (!stop.load()) {
      if (!budget->GetDatabases(&list).ok() || list.size() < 3 || list.size() > 4) {
        errors.fetch_add(1);
      }
      for (const auto& db : list) {
        // (A closing one may be listed with 0 bytes: its pool gave all
        // back before it left.)
        if (db.path.rfind(dir.Join("db"), 0) != 0) errors.fetch_add(1);
      }
    }
  });
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 12; ++round) {
    const int d = 3 + static_cast<int>(rng() % 3);
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(Shared(budget, 8 * kMiB), dir.Join("db" + std::to_string(d)), &db));
    ASSERT_NO_FATAL_FAILURE(ReadAll(db.get(), kKeys, d));
    ASSERT_OK(db->Close());
  }
  stop.store(true);
  for (auto& r : readers) r.join();
  lister.join();
  EXPECT_EQ(errors.load(), 0) << "seed " << seed;
  EXPECT_LE(budget->peak_bytes(), budget->capacity_bytes());
  for (auto& db : steady) {
    ASSERT_OK(db->Close());
    db.reset();
  }
  EXPECT_EQ(budget->used_bytes(), 0u);
  EXPECT_EQ(budget->databases(), 0u);
  test::ExpectPoolsReleased();
}

// Several threads open, fill, read and close databases of their own under
// one budget at once, while another lists the budget's databases: every
// open and every write succeeds (the budget holds them all), no database
// sees another's keys, and the budget and the pools end at zero
// (ThreadSanitizer watches Join, Leave and the listing).
TEST(SharedBudgetTest, ThreadsOpenAndCloseDatabasesAtOnce) {
  const uint64_t seed = test::TestSeed();
  test::TempDir dir;
  auto budget = MemoryBudget::Create(64 * kMiB);
  constexpr int kThreads = 4;
  constexpr int kRounds = 6;
  constexpr int kKeys = 1500;
  std::atomic<int> errors{0};
  std::atomic<int> running{kThreads};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed + t);
      for (int round = 0; round < kRounds; ++round) {
        const int d = t * 10 + static_cast<int>(rng() % 3);  // its own three
        std::unique_ptr<DB> db;
        if (!DB::Open(Shared(budget, 2 * kMiB), dir.Join("db" + std::to_string(d)), &db).ok()) {
          errors.fetch_add(1);
          continue;
        }
        for (int i = 0; i < kKeys; ++i) {
          if (!db->Put(WriteOptions(), Key(i), Value(i, d)).ok()) errors.fetch_add(1);
        }
        if (round % 2 == 1 && !db->Checkpoint().ok()) errors.fetch_add(1);
        std::string v;
        for (int i = 0; i < kKeys; i += 7) {
          if (!db->Get(ReadOptions(), Key(i), &v).ok() || v != Value(i, d)) errors.fetch_add(1);
        }
        if (!db->Close().ok()) errors.fetch_add(1);
      }
      running.fetch_sub(1);
    });
  }
  std::thread lister([&] {
    std::vector<BudgetDatabase> list;
    while (running.load() > 0) {
      if (!budget->GetDatabases(&list).ok() || list.size() > kThreads) errors.fetch_add(1);
    }
  });
  for (auto& t : threads) t.join();
  lister.join();
  EXPECT_EQ(errors.load(), 0) << "seed " << seed;
  EXPECT_LE(budget->peak_bytes(), budget->capacity_bytes());
  EXPECT_EQ(budget->used_bytes(), 0u);
  EXPECT_EQ(budget->databases(), 0u);
  test::ExpectPoolsReleased();
}

// A thread reclaiming from a database holds that member while its cache
// evicts, and eviction waits for every read section to end. A reclaim asked
// for from inside a read section (an allocation there found the budget
// full) must then pass that member by, not wait for it: before, the two
// threads waited for each other for ever.
TEST(SharedBudgetTest, AReclaimInsideAReadSectionPassesABusyMemberBy) {
  test::TempDir dir;
  auto budget = MemoryBudget::Create(64 * kMiB);
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(Shared(budget, 16 * kMiB), dir.Join("db"), &db));
  ASSERT_NO_FATAL_FAILURE(Fill(db.get(), 50000, 0));
  ASSERT_NO_FATAL_FAILURE(ReadAll(db.get(), 50000, 0));
  ASSERT_GT(CacheUsed(db.get()), 4 * kMiB);

  // 1: the reader is in its section; 2: the reclaimer holds the database
  // and waits for that section; 3: the reader's own reclaim returned.
  std::atomic<int> stage{0};
  test::SyncPointScope scope;
  SyncPoint::Get()->SetCallBack("PageCache::Evict:WaitForReaders", [&](void*) {
    int one = 1;
    stage.compare_exchange_strong(one, 2);
  });
  SyncPoint::Get()->EnableProcessing();
  std::thread reader([&] {
    tree::epoch::ReadSection section;
    stage.store(1);
    while (stage.load() < 2) std::this_thread::yield();
    budget->rep()->Reclaim(kMiB, nullptr);
    stage.store(3);
  });
  while (stage.load() < 1) std::this_thread::yield();
  const size_t freed = budget->rep()->Reclaim(64 * kMiB, nullptr);
  reader.join();
  EXPECT_EQ(stage.load(), 3);
  EXPECT_GT(freed, 4 * kMiB);
  EXPECT_LT(CacheUsed(db.get()), kMiB);
  SyncPoint::Get()->DisableProcessing();
  ASSERT_NO_FATAL_FAILURE(ReadAll(db.get(), 1000, 0));
  ASSERT_OK(db->Close());
  db.reset();
  EXPECT_EQ(budget->used_bytes(), 0u);
  test::ExpectPoolsReleased();
}

// Every database writes and none checkpoints by itself, so the budget
// fills with memtables alone. A memtable is freed by a checkpoint, which
// first takes a little memory (the next memtable, pages to write): from the
// budget's reserve, or with every byte in memtables no checkpoint could
// start and the writers would wait for each other for good (a thousand
// tenants under one budget stopped that way). Every put succeeds.
TEST(SharedBudgetTest, ABudgetFullOfMemtablesStillCheckpoints) {
  test::TempDir dir;
  auto budget = MemoryBudget::Create(16 * kMiB);
  constexpr int kDbs = 8;
  constexpr int kRounds = 40000;
  std::vector<std::unique_ptr<DB>> dbs(kDbs);
  for (int d = 0; d < kDbs; ++d) {
    Options o = Shared(budget, 256 << 10);
    o.checkpoint_wal_bytes = size_t{1} << 30;  // only the budget checkpoints
    ASSERT_OK(DB::Open(o, dir.Join("db" + std::to_string(d)), &dbs[d]));
  }
  // About 6 MiB of versions a database, 48 MiB in all, three times the
  // budget, written by turns so that each memtable is about the size of
  // every other when the budget fills.
  for (int i = 0; i < kRounds; ++i) {
    for (int d = 0; d < kDbs; ++d) {
      Status s = dbs[d]->Put(WriteOptions(), Key(i), Value(i, d));
      ASSERT_TRUE(s.ok()) << "database " << d << ", put " << i << ": " << s.ToString() << "\n"
                          << BudgetReport(Raw(dbs));
    }
  }
  uint64_t checkpoints = 0;
  for (int d = 0; d < kDbs; ++d) {
    DBStats st;
    ASSERT_OK(dbs[d]->GetStats(&st));
    checkpoints += st.checkpoints;
    EXPECT_EQ(st.memory_limit_errors, 0u) << "database " << d;
  }
  EXPECT_GE(checkpoints, static_cast<uint64_t>(kDbs)) << "the budget freed no memtables";
  EXPECT_LE(budget->peak_bytes(), budget->capacity_bytes());
  for (int d = 0; d < kDbs; ++d) ASSERT_NO_FATAL_FAILURE(ReadAll(dbs[d].get(), kRounds, d));
  for (auto& db : dbs) {
    ASSERT_OK(db->Close());
    db.reset();
  }
  EXPECT_EQ(budget->used_bytes(), 0u);
  test::ExpectPoolsReleased();
}

// A checkpoint that ran out of memory leaves its memtable frozen, and in a
// database no longer written nothing retries it: when another database's
// writer runs short, that database is asked for memory (its frozen bytes
// count) and runs the checkpoint again. (It was not asked, with no active
// memtable to speak of, nor would it have retried; the memory stayed held
// and the other's writes failed.) The writing database's own checkpoints
// fail here until the idle one's has begun, so only that can make room.
TEST(SharedBudgetTest, AFailedCheckpointIsRetriedWhenTheBudgetAsks) {
  test::TempDir dir;
  auto budget = MemoryBudget::Create(24 * kMiB);
  Options o = Shared(budget, 256 << 10);
  o.checkpoint_wal_bytes = size_t{1} << 30;  // only the budget checkpoints
  std::unique_ptr<DB> idle, busy;
  ASSERT_OK(DB::Open(o, dir.Join("idle"), &idle));
  ASSERT_OK(DB::Open(o, dir.Join("busy"), &busy));
  // About 8 MiB of memtable, below the freeze threshold (half the
  // memtables' share of the budget, 10 MiB); with the other database's
  // share (20 MiB) it is more than the budget.
  constexpr int kIdleKeys = 48000;
  for (int i = 0; i < kIdleKeys; ++i) ASSERT_OK(idle->Put(WriteOptions(), Key(i), Value(i, 0)));

  test::SyncPointScope scope;
  std::atomic<int> idle_failures{1};
  std::atomic<bool> idle_checkpointed{false};
  std::atomic<int> busy_failures{0};
  SyncPoint::Get()->SetCallBack("DBImpl::RunTreeCheckpoint:Start", [&](void* arg) {
    auto* point = static_cast<DBImpl::CheckpointStartPoint*>(arg);
    if (point->path == dir.Join("idle")) {
      if (idle_failures.fetch_sub(1) > 0) {
        *point->status = Status::MemoryLimit("injected");
      } else {
        idle_checkpointed = true;
      }
    } else if (!idle_checkpointed) {
      busy_failures.fetch_add(1);
      *point->status = Status::MemoryLimit("injected");
    }
  });
  SyncPoint::Get()->EnableProcessing();
  Status s = idle->Checkpoint();
  ASSERT_TRUE(s.IsMemoryLimit()) << s.ToString();
  DBStats st;
  ASSERT_OK(idle->GetStats(&st));
  ASSERT_EQ(st.checkpoints, 0u);
  ASSERT_EQ(st.live_memtables, 2u);  // the frozen one and an empty one
  const size_t held = st.memtable_bytes;
  ASSERT_GE(held, 7 * kMiB);
  ASSERT_LT(held, st.memtable_budget_bytes / 2);

  constexpr int kBusyKeys = 250000;  // twice the budget
  for (int i = 0; i < kBusyKeys; ++i) {
    s = busy->Put(WriteOptions(), Key(i), Value(i, 1));
    ASSERT_TRUE(s.ok()) << "put " << i << ": " << s.ToString() << "\n"
                        << BudgetReport({idle.get(), busy.get()});
  }
  EXPECT_GE(busy_failures.load(), 1)
      << "the writing database never checkpointed before the idle one";
  ASSERT_OK(idle->GetStats(&st));
  EXPECT_GE(st.checkpoints, 1u) << "the frozen memtable was never checkpointed again";
  EXPECT_LE(st.memtable_bytes, held - 6 * kMiB);
  scope.Reset();
  ASSERT_NO_FATAL_FAILURE(ReadAll(idle.get(), kIdleKeys, 0));
  ASSERT_NO_FATAL_FAILURE(ReadAll(busy.get(), kBusyKeys, 1));
  ASSERT_OK(idle->Close());
  ASSERT_OK(busy->Close());
  idle.reset();
  busy.reset();
  EXPECT_EQ(budget->used_bytes(), 0u);
  test::ExpectPoolsReleased();
}

// A database made read-only by a failed checkpoint (an I/O error) keeps its
// frozen memtable until it is reopened: the budget must stop asking it for
// memory after one release finds nothing to do, and ask the others. (It
// kept asking it first, as the least used, and the writer that needed the
// memory failed without another database being asked.) The writer's own
// checkpoints fail until the healthy idle database's has begun.
TEST(SharedBudgetTest, AReadOnlyDatabaseIsNotAskedForMemoryAgain) {
  test::TempDir dir;
  auto budget = MemoryBudget::Create(24 * kMiB);
  Options o = Shared(budget, 256 << 10);
  o.checkpoint_wal_bytes = size_t{1} << 30;   // only the budget checkpoints
  std::unique_ptr<DB> broken, healthy, busy;  // joined in this order
  ASSERT_OK(DB::Open(o, dir.Join("broken"), &broken));
  ASSERT_OK(DB::Open(o, dir.Join("healthy"), &healthy));
  ASSERT_OK(DB::Open(o, dir.Join("busy"), &busy));
  constexpr int kIdleKeys = 48000;  // about 8 MiB each, as above
  for (int i = 0; i < kIdleKeys; ++i) {
    ASSERT_OK(broken->Put(WriteOptions(), Key(i), Value(i, 0)));
    ASSERT_OK(healthy->Put(WriteOptions(), Key(i), Value(i, 1)));
  }

  test::SyncPointScope scope;
  std::atomic<bool> healthy_checkpointed{false};
  SyncPoint::Get()->SetCallBack("DBImpl::RunTreeCheckpoint:Start", [&](void* arg) {
    auto* point = static_cast<DBImpl::CheckpointStartPoint*>(arg);
    if (point->path == dir.Join("broken")) {
      *point->status = Status::IOError("injected");
    } else if (point->path == dir.Join("healthy")) {
      healthy_checkpointed = true;
    } else if (!healthy_checkpointed) {
      *point->status = Status::MemoryLimit("injected");
    }
  });
  SyncPoint::Get()->EnableProcessing();
  Status s = broken->Checkpoint();
  ASSERT_TRUE(s.IsIOError()) << s.ToString();
  DBStats st;
  ASSERT_OK(broken->GetStats(&st));
  ASSERT_GE(st.memtable_bytes, 7 * kMiB);  // frozen, for good

  // About 7 MiB: the budget is full half way, and once the healthy
  // database has given its memory back the rest fits (more would have this
  // database's memtables outgrow what the broken one leaves of the budget).
  constexpr int kBusyKeys = 40000;
  for (int i = 0; i < kBusyKeys; ++i) {
    s = busy->Put(WriteOptions(), Key(i), Value(i, 2));
    ASSERT_TRUE(s.ok()) << "put " << i << ": " << s.ToString() << "\n"
                        << BudgetReport({broken.get(), healthy.get(), busy.get()});
  }
  ASSERT_OK(healthy->GetStats(&st));
  EXPECT_GE(st.checkpoints, 1u) << "the healthy database was never asked";
  scope.Reset();
  ASSERT_NO_FATAL_FAILURE(ReadAll(broken.get(), kIdleKeys, 0));
  ASSERT_NO_FATAL_FAILURE(ReadAll(healthy.get(), kIdleKeys, 1));
  ASSERT_NO_FATAL_FAILURE(ReadAll(busy.get(), kBusyKeys, 2));
  EXPECT_TRUE(broken->Close().IsIOError());  // it says why it could not checkpoint
  ASSERT_OK(healthy->Close());
  ASSERT_OK(busy->Close());
  broken.reset();
  healthy.reset();
  busy.reset();
  EXPECT_EQ(budget->used_bytes(), 0u);
  test::ExpectPoolsReleased();
}

size_t Entries(const char* dir) {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    (void)e;
    ++n;
  }
  return n;
}

// What a server with many tenants pays for each open database that is not
// being used: its memory (a small memtable block, no cache bucket arrays
// until it reads), three files (data, log, LOCK) and no thread.
TEST(SharedBudgetTest, AnIdleOpenDatabaseCostsLittle) {
  test::TempDir dir;
  auto budget = MemoryBudget::Create(256 * kMiB);
  constexpr int kDbs = 100;
  std::vector<std::unique_ptr<DB>> dbs(kDbs);
  for (int d = 0; d < kDbs; ++d) {  // created once: the opens below find them
    ASSERT_OK(DB::Open(Shared(budget, 256 << 10), dir.Join("db" + std::to_string(d)), &dbs[d]));
    ASSERT_OK(dbs[d]->Close());
  }
  const size_t fds = Entries("/proc/self/fd");
  const size_t threads = Entries("/proc/self/task");
  const size_t rss = test::ResidentBytes();
  for (int d = 0; d < kDbs; ++d) {
    ASSERT_OK(DB::Open(Shared(budget, 256 << 10), dir.Join("db" + std::to_string(d)), &dbs[d]));
  }
  EXPECT_LE(budget->used_bytes() / kDbs, 48u << 10) << budget->used_bytes() << " bytes in all";
  // Resident, everything counted: the budget's part, the database objects,
  // the tables of their pools. 27 KiB a database here (no read-ahead; 42
  // in bench/tenants, against the ~48 asked); 35 when a new memtable's hash
  // index took 8 KiB.
  if (!test::UnderSanitizer()) {
    const size_t grown = test::ResidentBytes() - rss;
    EXPECT_LE(grown / kDbs, 32u << 10) << grown / kDbs << " bytes resident a database";
  }
  EXPECT_LE(Entries("/proc/self/fd") - fds, 3u * kDbs);
  EXPECT_EQ(Entries("/proc/self/task"), threads);
  for (auto& db : dbs) {
    ASSERT_OK(db->Close());
    db.reset();
  }
  EXPECT_EQ(budget->used_bytes(), 0u);
  test::ExpectPoolsReleased();
}

// What a budget and its databases say about it: the budget lists its
// databases and what each holds, in the order they opened; each database's
// stats name the budget, what all hold and its own part.
TEST(SharedBudgetTest, TheBudgetAndItsDatabasesReportIt) {
  test::TempDir dir;
  auto budget = MemoryBudget::Create(64 * kMiB);
  std::unique_ptr<DB> busy, idle;
  ASSERT_OK(DB::Open(Shared(budget, 2 * kMiB), dir.Join("busy"), &busy));
  ASSERT_OK(DB::Open(Shared(budget, 2 * kMiB), dir.Join("idle"), &idle));
  ASSERT_NO_FATAL_FAILURE(Fill(busy.get(), 5000, 1));
  ASSERT_NO_FATAL_FAILURE(ReadAll(busy.get(), 5000, 1));  // its cache fills

  std::vector<BudgetDatabase> list;
  ASSERT_OK(budget->GetDatabases(&list));
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].path, dir.Join("busy"));
  EXPECT_EQ(list[1].path, dir.Join("idle"));
  EXPECT_GT(list[0].bytes, list[1].bytes + kMiB);
  EXPECT_GT(list[1].bytes, 0u);  // its first memtable block
  EXPECT_LE(list[0].bytes + list[1].bytes, budget->used_bytes());

  DBStats st;
  ASSERT_OK(busy->GetStats(&st));
  EXPECT_EQ(st.shared_budget_capacity_bytes, 64 * kMiB);
  EXPECT_EQ(st.shared_budget_databases, 2u);
  EXPECT_EQ(st.shared_budget_own_bytes, st.pool.committed_bytes + st.pool.charged_bytes);
  EXPECT_GE(st.shared_budget_own_bytes, list[0].bytes / 2);
  EXPECT_GE(st.shared_budget_used_bytes, st.shared_budget_own_bytes);
  EXPECT_LE(st.shared_budget_used_bytes, st.shared_budget_capacity_bytes);

  ASSERT_OK(busy->Close());
  busy.reset();
  ASSERT_OK(budget->GetDatabases(&list));
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].path, dir.Join("idle"));
  EXPECT_EQ(list[0].bytes, budget->used_bytes());  // the only one left
  ASSERT_OK(idle->GetStats(&st));
  EXPECT_EQ(st.shared_budget_databases, 1u);
  ASSERT_OK(idle->Close());
  idle.reset();
  ASSERT_OK(budget->GetDatabases(&list));
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(budget->used_bytes(), 0u);

  // A database of its own reports none.
  std::unique_ptr<DB> alone;
  ASSERT_OK(DB::Open(Options(), dir.Join("alone"), &alone));
  ASSERT_OK(alone->GetStats(&st));
  EXPECT_EQ(st.shared_budget_capacity_bytes, 0u);
  EXPECT_EQ(st.shared_budget_databases, 0u);
  ASSERT_OK(alone->Close());
  alone.reset();
  test::ExpectPoolsReleased();
}

// The same for databases that hold data (a server restarting with its
// tenants): the open reads the tree's internal pages to rebuild its free
// space. The tree's and the cache's arenas, and the open's scratch arena,
// each took a 64 KiB first block: 168 KiB of the budget an idle database
// (bench/tenants run a second time on its directory), the thousand of them
// two thirds of a 256 MiB budget. Then the open kept the root cached and
// its scratch blocks stayed in the pool as its reserve: 44 KiB of the
// budget and 70 KiB resident a database in bench/tenants.
TEST(SharedBudgetTest, AnIdleOpenDatabaseWithDataCostsLittle) {
  test::TempDir dir;
  auto budget = MemoryBudget::Create(256 * kMiB);
  constexpr int kDbs = 50;
  std::vector<std::unique_ptr<DB>> dbs(kDbs);
  for (int d = 0; d < kDbs; ++d) {
    ASSERT_OK(DB::Open(Shared(budget, 256 << 10), dir.Join("db" + std::to_string(d)), &dbs[d]));
    ASSERT_NO_FATAL_FAILURE(Fill(dbs[d].get(), 3000, d));  // ~40 leaves under one root
    ASSERT_OK(dbs[d]->Close());
  }
  const size_t rss = test::ResidentBytes();
  for (int d = 0; d < kDbs; ++d) {
    ASSERT_OK(DB::Open(Shared(budget, 256 << 10), dir.Join("db" + std::to_string(d)), &dbs[d]));
  }
  // A small memtable block and the tree's free space: 24 KiB.
  EXPECT_LE(budget->used_bytes() / kDbs, 32u << 10) << BudgetReport(Raw(dbs));
  DBStats st;
  ASSERT_OK(dbs[0]->GetStats(&st));
  EXPECT_EQ(st.cache.used_bytes, 0u) << "the open's scan filled the cache";
  EXPECT_EQ(st.pool.retained_bytes, 0u) << "the open's scratch stayed in the pool";
  // 43 KiB a database in bench/tenants, where 1,000 of them share the
  // pages of the process's tables.
  if (!test::UnderSanitizer()) {
    const size_t grown = test::ResidentBytes() - rss;
    EXPECT_LE(grown / kDbs, 48u << 10) << grown / kDbs << " bytes resident a database";
  }
  for (int d = 0; d < kDbs; d += 7) ASSERT_NO_FATAL_FAILURE(ReadAll(dbs[d].get(), 3000, d));
  for (auto& db : dbs) {
    ASSERT_OK(db->Close());
    db.reset();
  }
  EXPECT_EQ(budget->used_bytes(), 0u);
  test::ExpectPoolsReleased();
}

// Whether the page at `p` is mapped (mincore fails with ENOMEM if not).
bool Mapped(const void* p) {
  const uintptr_t page = reinterpret_cast<uintptr_t>(p) & ~uintptr_t{4095};
  unsigned char vec = 0;
  return mincore(reinterpret_cast<void*>(page), 4096, &vec) == 0;
}

// A database's objects (the database, its pool, arenas, cache, tree,
// memtables and log writer) live in an object heap of its own, unmapped at
// its close in whatever order the databases close: in the C library's heap
// a thousand tenants' objects stayed resident (+14 MiB) after every close.
TEST(SharedBudgetTest, ClosedDatabasesLeaveNoObjectsBehind) {
  test::TempDir dir;
  auto budget = MemoryBudget::Create(64 * kMiB);
  constexpr int kDbs = 8;
  std::vector<std::unique_ptr<DB>> dbs(kDbs);
  std::vector<const alloc::ObjectHeap*> heaps(kDbs);
  for (int d = 0; d < kDbs; ++d) {
    ASSERT_OK(DB::Open(Shared(budget, 256 << 10), dir.Join("db" + std::to_string(d)), &dbs[d]));
    ASSERT_NO_FATAL_FAILURE(Fill(dbs[d].get(), 2000, d));
    heaps[d] = alloc::HeapObject::HeapOf(static_cast<DBImpl*>(dbs[d].get()));
    ASSERT_NE(heaps[d], nullptr);
    EXPECT_GT(heaps[d]->live_blocks(), 10u);  // the pool, arenas, cache, tree...
  }
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::vector<int> order(kDbs);
  for (int d = 0; d < kDbs; ++d) order[d] = d;
  std::shuffle(order.begin(), order.end(), std::mt19937(seed));
  for (int d : order) {
    ASSERT_NO_FATAL_FAILURE(ReadAll(dbs[d].get(), 2000, d));
    ASSERT_OK(dbs[d]->Close());
    EXPECT_TRUE(Mapped(heaps[d]));  // the handle's object is still there
    dbs[d].reset();
  }
  for (int d = 0; d < kDbs; ++d) EXPECT_FALSE(Mapped(heaps[d])) << "db " << d;
  EXPECT_EQ(budget->used_bytes(), 0u);
  test::ExpectPoolsReleased();
}

TEST(SharedBudgetTest, ABudgetTooSmallForOneDatabaseIsRefused) {
  test::TempDir dir;
  auto budget = MemoryBudget::Create(8 * kMiB);
  std::unique_ptr<DB> db;
  Status s = DB::Open(Shared(budget, 4 * kMiB), dir.Join("db"), &db);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  // It names the shared budget, not memory_budget_bytes, which was not set.
  EXPECT_NE(s.ToString().find("shared memory budget"), std::string::npos) << s.ToString();
  EXPECT_EQ(budget->databases(), 0u);
  EXPECT_EQ(budget->used_bytes(), 0u);
}

}  // namespace
}  // namespace arenakv
