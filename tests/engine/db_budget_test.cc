// The memory budget as a bound users live within: writers slow down and
// stall rather than fail; MemoryLimit comes only when nothing can be
// reclaimed, changes nothing, and never leaves the database write-disabled.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "arenakv/db.h"
#include "arenakv/iterator.h"
#include "arenakv/transaction.h"
#include "arenakv/write_batch.h"
#include "db/version.h"
#include "db_test_util.h"
#include "test_util.h"

namespace arenakv {
namespace {

constexpr size_t kKiB = size_t{1} << 10;
constexpr size_t kMiB = size_t{1} << 20;

using Model = std::map<std::string, std::string>;
using test::Contents;

Options BudgetOptions(size_t cache, size_t budget) {
  Options o;
  o.cache_bytes = cache;
  o.memory_budget_bytes = budget;
  return o;
}

std::string RandomKey(std::mt19937_64* rng, int keys) {
  char k[24];
  std::snprintf(k, sizeof(k), "key%08d", static_cast<int>((*rng)() % keys));
  return k;
}

TEST(BudgetTest, OpenRefusesABudgetTooSmallForTheCacheAndCreatesNothing) {
  test::TempDir dir;
  std::unique_ptr<DB> db;
  Status s = DB::Open(BudgetOptions(64 * kMiB, 16 * kMiB), dir.Join("db"), &db);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_NE(s.ToString().find("minimum of 80.0 MiB"), std::string::npos) << s.ToString();
  EXPECT_FALSE(std::filesystem::exists(dir.Join("db")));
  // The minimum itself is accepted.
  ASSERT_OK(DB::Open(BudgetOptions(64 * kMiB, 80 * kMiB), dir.Join("db"), &db));
  ASSERT_OK(db->Close());
  db.reset();
  test::ExpectPoolsReleased();
}

// Options::map_reads: the file's mapping is charged to the budget only
// while there is room for it, and is the first memory a reclaim takes back:
// writers that need the room get it, without MemoryLimit, and reads stay
// right before, while and after it goes.
TEST(BudgetTest, TheReadMappingIsTheFirstMemoryTheBudgetTakesBack) {
  test::TempDir dir;
  Options options = BudgetOptions(256 * kKiB, 256 * kKiB + 9 * kMiB);
  options.map_reads = true;
  options.checkpoint_wal_bytes = size_t{1} << 30;  // checkpoints by the budget only
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(options, dir.Join("db"), &db));
  auto key = [](int i) { return "key" + std::to_string(1000000 + i); };
  // About 6 MiB on disk: it fits the room an empty memtable leaves, not
  // the room beside a memtable at its freeze threshold (about 2.6 MiB).
  constexpr int keys = 100000;
  for (int i = 0; i < keys; ++i) ASSERT_OK(db->Put({}, key(i), test::HalfRandomValue(i)));
  ASSERT_OK(db->Checkpoint());
  DBStats st;
  ASSERT_OK(db->GetStats(&st));
  ASSERT_GT(st.mapped_bytes, options.cache_bytes) << "the file should fit the budget's room";
  const uint64_t drops = st.mapped_drops;
  const uint64_t reclaims = st.pool.reclaim_calls;
  std::string v;
  for (int i = 0; i < keys; i += 97) {
    ASSERT_OK(db->Get({}, key(i), &v));
    ASSERT_EQ(v, test::HalfRandomValue(i));
  }
  // The mapping holds about the room the memtables leave: the first one to
  // reach its freeze threshold needs some of it back.
  for (int i = 0; i < keys; ++i) ASSERT_OK(db->Put({}, key(i), std::string(200, 'w')));
  ASSERT_OK(db->GetStats(&st));
  // Whether the writers needed the room depends on how far the cache and
  // the checkpoints' buffers had grown (they did in every release run, not
  // always under TSan); when the pool had to reclaim, the mapping went first.
  if (st.pool.reclaim_calls > reclaims) {
    EXPECT_GT(st.mapped_drops, drops) << "a reclaim left the mapping in place";
  }
  EXPECT_EQ(st.memory_limit_errors, 0u);
  EXPECT_LE(st.pool.high_water_bytes, options.memory_budget_bytes);
  for (int i = 0; i < keys; i += 97) {
    ASSERT_OK(db->Get({}, key(i), &v));
    ASSERT_EQ(v, std::string(200, 'w'));
  }
  ASSERT_OK(db->Close());
  db.reset();
  test::ExpectPoolsReleased();
}

// The first report: random puts under a budget twice the cache hit
// MemoryLimit after ~366K puts and the database stayed write-disabled.
TEST(BudgetTest, RandomPutsUnderATightBudgetAllSucceed) {
  test::TempDir dir;
  const Options options = BudgetOptions(2 * kMiB, 12 * kMiB);
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(options, dir.Join("db"), &db));
  std::mt19937_64 rng(7);
  const int kPuts = 150000;
  for (int i = 0; i < kPuts; ++i) {
    Status s = db->Put(WriteOptions(), RandomKey(&rng, 1 << 30), std::string(100, 'v'));
    ASSERT_TRUE(s.ok()) << "put " << i << ": " << s.ToString();
  }
  DBStats st;
  ASSERT_OK(db->GetStats(&st));
  EXPECT_LE(st.pool.high_water_bytes, options.memory_budget_bytes);
  EXPECT_GT(st.checkpoints, 3u) << "the budget, not checkpoint_wal_bytes, should freeze memtables";
  EXPECT_LE(st.memtable_budget_bytes, options.memory_budget_bytes - options.cache_bytes / 4);
  EXPECT_EQ(st.memory_limit_errors, 0u);
  ASSERT_OK(db->Close());
  db.reset();
  test::ExpectPoolsReleased();
}

// Write batches of a 32nd of the smallest budget a 256 KiB cache allows,
// keys in order (a repair's salvage writes so). Each commit's reservation
// took a block of its own, so the memtable held nearly twice its versions'
// bytes; counted by its versions it froze far past its share, in the
// reserve the checkpoint freeing it works in, whose 2 MiB write buffer then
// did not fit: the checkpoint failed again and again and every writer got
// MemoryLimit (1 run in 6 under load even once memtables froze by their
// arena's bytes). A memtable now freezes by its arena's bytes and before a
// commit that would carry it past the threshold, commit groups stay within
// an eighth of the threshold, and a checkpoint short of memory writes a
// page at a time.
TEST(BudgetTest, LargeBatchesUnderTheSmallestBudgetAllSucceed) {
  const size_t cache = 256 << 10;
  const Options options = BudgetOptions(cache, cache + cache / 8 + 8 * kMiB);
  const std::string value(100, 'v');
  // One writer, then three at once (their batches merge into commit
  // groups); each writes 100 batches of its own keys.
  for (const int writers : {1, 3}) {
    SCOPED_TRACE(std::to_string(writers) + " writer(s)");
    test::TempDir dir;
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(options, dir.Join("db"), &db));
    std::vector<std::string> failures(writers);
    std::vector<std::thread> threads;
    for (int t = 0; t < writers; ++t) {
      threads.emplace_back([&, t] {
        int key = 0;
        for (int b = 0; b < 100 && failures[t].empty(); ++b) {
          WriteBatch batch;
          while (batch.ApproximateSize() < options.memory_budget_bytes / 32) {
            char k[24];
            std::snprintf(k, sizeof(k), "t%d-k%08d", t, key++);
            if (!batch.Put(k, value).ok()) failures[t] = "put into the batch failed";
          }
          Status s = db->Write(WriteOptions(), &batch);
          if (!s.ok()) {
            std::string stats;
            (void)db->GetProperty("arenakv.stats", &stats);
            failures[t] = "batch " + std::to_string(b) + ": " + s.ToString() + "\n" + stats;
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    for (const std::string& f : failures) EXPECT_EQ(f, "");
    DBStats st;
    ASSERT_OK(db->GetStats(&st));
    EXPECT_LE(st.pool.high_water_bytes, options.memory_budget_bytes);
    EXPECT_GT(st.checkpoints, 3u);
    EXPECT_EQ(st.memory_limit_errors, 0u);
    for (int t = 0; t < writers; ++t) {
      std::string v;
      ASSERT_OK(db->Get(ReadOptions(), "t" + std::to_string(t) + "-k00012345", &v));
      EXPECT_EQ(v, value);
    }
    ASSERT_OK(db->Close());
    db.reset();
    test::ExpectPoolsReleased();
  }
}

// The logs of such batches, left by a process that never closed, replay
// under the same budget: recovery checkpoints as it goes, as writes do.
TEST(BudgetTest, LogsOfLargeBatchesReplayUnderTheSmallestBudget) {
  test::TempDir dir;
  const size_t cache = 256 << 10;
  Options options = BudgetOptions(cache, cache + cache / 8 + 8 * kMiB);
  options.checkpoint_wal_bytes = 64 * kMiB;  // the budget alone freezes
  const std::string path = dir.Join("db");
  const std::string value(100, 'v');
  constexpr int kBatches = 60;
  int keys_per_batch = 0;
  {
    WriteBatch probe;
    while (probe.ApproximateSize() < options.memory_budget_bytes / 32) {
      ASSERT_OK(probe.Put("k00000000", value));
      ++keys_per_batch;
    }
  }
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // No background checkpoints: the logs keep everything written.
    Options o = options;
    o.background_checkpoints = false;
    o.memory_budget_bytes = 0;  // the writer is not the one under test
    std::unique_ptr<DB> db;
    if (!DB::Open(o, path, &db).ok()) _exit(2);
    int key = 0;
    for (int b = 0; b < kBatches; ++b) {
      WriteBatch batch;
      for (int i = 0; i < keys_per_batch; ++i) {
        char k[16];
        std::snprintf(k, sizeof(k), "k%08d", key++);
        if (!batch.Put(k, value).ok()) _exit(3);
      }
      if (!db->Write(WriteOptions(), &batch).ok()) _exit(4);
    }
    _exit(0);  // no Close: every batch is only in the logs
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(options, path, &db));
  DBStats st;
  ASSERT_OK(db->GetStats(&st));
  EXPECT_GT(st.recovery_checkpoints, 2u);
  EXPECT_LE(st.pool.high_water_bytes, options.memory_budget_bytes);
  for (int k = 0; k < kBatches * keys_per_batch; k += 997) {
    char key[16];
    std::snprintf(key, sizeof(key), "k%08d", k);
    std::string v;
    ASSERT_OK(db->Get(ReadOptions(), key, &v));
    EXPECT_EQ(v, value) << key;
  }
  ASSERT_OK(db->Close());
  db.reset();
  test::ExpectPoolsReleased();
}

// A transaction that reached its buffer budget commits what it buffered:
// the commit's batch is not built inside the transaction's arena.
TEST(BudgetTest, TransactionAtItsBufferBudgetCommitsWhatItBuffered) {
  test::TempDir dir;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(Options(), dir.Join("db"), &db));
  TransactionOptions to;
  to.buffer_budget_bytes = 1 * kMiB;
  std::unique_ptr<Transaction> txn = db->BeginTransaction(WriteOptions(), to);
  Model buffered;
  const std::string value(4 * kKiB, 'b');
  for (int i = 0;; ++i) {
    const std::string key = "t" + std::to_string(i);
    Status s = txn->Put(key, value);
    if (s.IsMemoryLimit()) break;
    ASSERT_OK(s);
    buffered[key] = value;
    ASSERT_LT(i, 10000) << "the buffer budget never ran out";
  }
  ASSERT_GT(buffered.size(), 100u);
  ASSERT_OK(txn->Commit());
  txn.reset();
  EXPECT_EQ(Contents(db.get()), buffered);
  ASSERT_OK(db->Close());
  db.reset();
  test::ExpectPoolsReleased();
}

// Item 4: a database that ran with a large budget and crashed with 30 MiB of
// commits in its logs reopens under a budget a third of that. Recovery used
// to replay every log into one memtable and fail Open with MemoryLimit; it
// now checkpoints as it goes, within the budget.
TEST(BudgetTest, RecoveryReplaysLogsLargerThanTheBudget) {
  test::TempDir dir;
  const std::string path = dir.Join("db");
  const int kPuts = 100000;
  const auto key = [](int i) {
    char k[16];
    std::snprintf(k, sizeof(k), "k%08d", i);
    return std::string(k);
  };
  const auto value = [](int i) { return std::string(300, static_cast<char>('a' + i % 26)); };
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    Options loose;
    loose.cache_bytes = 4 * kMiB;
    loose.memory_budget_bytes = 512 * kMiB;
    loose.background_checkpoints = false;
    loose.checkpoint_wal_bytes = size_t{1} << 30;  // everything stays in the logs
    std::unique_ptr<DB> db;
    if (!DB::Open(loose, path, &db).ok()) _exit(2);
    for (int i = 0; i < kPuts; ++i) {
      if (!db->Put(WriteOptions(), key(i), value(i)).ok()) _exit(3);
    }
    _exit(0);  // no Close(): a crash, the commits live in the logs only
  }
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << "child status " << wstatus;

  const size_t kBudget = 16 * kMiB;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(BudgetOptions(4 * kMiB, kBudget), path, &db));
  DBStats st;
  ASSERT_OK(db->GetStats(&st));
  EXPECT_GT(st.recovery_checkpoints, 2u);
  EXPECT_LE(st.pool.high_water_bytes, kBudget);
  size_t logs = 0;
  for (const auto& e : std::filesystem::directory_iterator(path)) {
    if (e.path().extension() == ".log") ++logs;
  }
  EXPECT_LE(logs, 2u) << "logs covered by recovery's checkpoints are deleted";
  std::unique_ptr<Iterator> it = db->NewIterator(ReadOptions());
  int n = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next(), ++n) {
    ASSERT_EQ(it->key(), key(n));
    ASSERT_EQ(it->value(), value(n));
  }
  ASSERT_OK(it->status());
  it.reset();
  EXPECT_EQ(n, kPuts);
  ASSERT_OK(db->Put(WriteOptions(), "after", "recovery"));
  ASSERT_OK(db->Close());
  db.reset();
  test::ExpectPoolsReleased();
}

// Item 3: a forgotten iterator, snapshot or transaction pins the memtables
// of its own version, not every newer one. They used to hold the whole
// chain of memtables written after them, so under a budget writers soon got
// MemoryLimit. 40 MiB of puts under a 24 MiB budget now all succeed: the
// memtable they began on (some 40% of the budget: it grows to half the
// share before it is frozen) moves to the spill file after its checkpoint,
// and the transactions still see every conflicting write made since they
// began.
TEST(BudgetTest, LongLivedReadersPinOnlyTheStateTheyRead) {
  test::TempDir dir;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(BudgetOptions(2 * kMiB, 24 * kMiB), dir.Join("db"), &db));
  Model before;
  for (int i = 0; i < 100; ++i) {
    const std::string k = "a" + std::to_string(i);
    ASSERT_OK(db->Put(WriteOptions(), k, "old"));
    before[k] = "old";
  }
  std::unique_ptr<Iterator> it = db->NewIterator(ReadOptions());
  it->SeekToFirst();
  ASSERT_TRUE(it->Valid());
  std::unique_ptr<Snapshot> snap = db->GetSnapshot();
  std::unique_ptr<Transaction> loser = db->BeginTransaction(WriteOptions());
  std::unique_ptr<Transaction> winner = db->BeginTransaction(WriteOptions());
  TransactionOptions serializable;
  serializable.isolation = IsolationLevel::kSerializable;
  std::unique_ptr<Transaction> scanner = db->BeginTransaction(WriteOptions(), serializable);
  {
    std::unique_ptr<Iterator> scan = scanner->NewIterator(ReadOptions());
    for (scan->Seek("r"); scan->Valid() && scan->key() < "s"; scan->Next()) {
    }
    ASSERT_OK(scan->status());
  }
  // Written after the transactions began, then checkpointed far away.
  ASSERT_OK(db->Put(WriteOptions(), "contested", "first"));
  ASSERT_OK(db->Put(WriteOptions(), "r-range", "written"));

  std::mt19937_64 rng(11);
  const std::string value(400, 'v');
  for (int i = 0; i < 100000; ++i) {
    Status s = db->Put(WriteOptions(), RandomKey(&rng, 1 << 30), value);
    if (!s.ok()) std::fprintf(stderr, "%s", db->StatsReport().c_str());
    ASSERT_TRUE(s.ok()) << "put " << i << ": " << s.ToString();
  }
  DBStats st;
  ASSERT_OK(db->GetStats(&st));
  EXPECT_GE(st.checkpoints, 3u);
  EXPECT_LE(st.live_memtables, 6u) << "readers pin the memtables written after them";
  EXPECT_GE(st.memtable_spills, 1u) << "the memtable the readers hold should be on disk";
  EXPECT_GT(st.history_records, 0u);
  EXPECT_LE(st.pool.high_water_bytes, 24 * kMiB);

  ASSERT_OK(loser->Put("contested", "second"));
  Status s = loser->Commit();
  EXPECT_TRUE(s.IsConflict()) << s.ToString();
  ASSERT_OK(winner->Put("uncontested", "yes"));
  ASSERT_OK(winner->Commit());
  ASSERT_OK(scanner->Put("elsewhere", "x"));
  s = scanner->Commit();
  EXPECT_TRUE(s.IsConflict()) << s.ToString();

  // The old readers still read their own state.
  Model seen;
  for (; it->Valid(); it->Next()) seen.emplace(std::string(it->key()), std::string(it->value()));
  ASSERT_OK(it->status());
  EXPECT_EQ(seen, before);
  ReadOptions at;
  at.snapshot = snap.get();
  std::string v;
  EXPECT_TRUE(db->Get(at, "contested", &v).IsNotFound());
  ASSERT_OK(db->Get(ReadOptions(), "contested", &v));
  EXPECT_EQ(v, "first");
  it.reset();
  snap.reset();
  loser.reset();
  winner.reset();
  scanner.reset();
  ASSERT_OK(db->Close());
  db.reset();
  test::ExpectPoolsReleased();
}

// Item 6: handles are charged to the budget while they live, so opening
// them without end meets MemoryLimit instead of growing the heap without
// bound; closing them gives the room back.
TEST(BudgetTest, HandlesAreChargedToTheBudget) {
  test::TempDir dir;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(BudgetOptions(1 * kMiB, 10 * kMiB), dir.Join("db"), &db));
  ASSERT_OK(db->Put(WriteOptions(), "k", "v"));
  // Versions are charged too, from the first.
  DBStats idle;
  ASSERT_OK(db->GetStats(&idle));
  EXPECT_GE(idle.live_versions, 1u);
  EXPECT_EQ(idle.pool.charged_bytes, idle.live_versions * Version::kChargeBytes);
  std::vector<std::unique_ptr<Iterator>> iterators;
  Status refused;
  for (int i = 0; i < 100000 && refused.ok(); ++i) {
    iterators.push_back(db->NewIterator(ReadOptions()));
    refused = iterators.back()->status();
  }
  EXPECT_TRUE(refused.IsMemoryLimit()) << refused.ToString();
  EXPECT_LT(iterators.size(), 10000u);
  DBStats st;
  ASSERT_OK(db->GetStats(&st));
  EXPECT_GT(st.pool.charged_bytes, 5 * kMiB);
  EXPECT_LE(st.pool.high_water_bytes, 10 * kMiB);
  // Snapshots (smaller) fill what is left, then are refused the same way,
  // and say why; so is a transaction.
  std::vector<std::unique_ptr<Snapshot>> snapshots;
  std::string v;
  Status s;
  for (int i = 0; i < 1000 && s.ok(); ++i) {
    snapshots.push_back(db->GetSnapshot());
    s = db->Get(ReadOptions{.snapshot = snapshots.back().get()}, "k", &v);
  }
  EXPECT_TRUE(s.IsMemoryLimit()) << s.ToString();
  std::unique_ptr<Transaction> txn = db->BeginTransaction(WriteOptions());
  s = txn->Put("t", "1");
  EXPECT_TRUE(s.IsMemoryLimit()) << s.ToString();
  txn.reset();
  iterators.clear();
  snapshots.clear();
  ASSERT_OK(db->GetStats(&st));
  EXPECT_EQ(st.pool.charged_bytes, st.live_versions * Version::kChargeBytes);
  std::unique_ptr<Snapshot> snap = db->GetSnapshot();
  ASSERT_OK(db->Get(ReadOptions{.snapshot = snap.get()}, "k", &v));
  txn = db->BeginTransaction(WriteOptions());
  ASSERT_OK(txn->Put("t", "1"));
  ASSERT_OK(txn->Commit());
  // A handle still open at Close() gives its charge back then.
  std::unique_ptr<Iterator> left_open = db->NewIterator(ReadOptions());
  ASSERT_OK(left_open->status());
  txn.reset();
  ASSERT_OK(db->Close());
  EXPECT_TRUE(left_open->status().IsClosed()) << left_open->status().ToString();
  snap.reset();
  db.reset();
  left_open.reset();
  test::ExpectPoolsReleased();
}

// What the workload expects under a key: a value made from a seed, so that
// its model keeps a few bytes per key, not the value (resident memory is
// measured around it, and glibc keeps freed heap memory resident).
struct Expected {
  uint64_t seed = 0;
  size_t max_bytes = 0;
  std::string Value() const {
    std::mt19937_64 rng(seed);
    std::string v(1 + rng() % max_bytes, '\0');
    for (char& c : v) c = static_cast<char>('a' + rng() % 26);
    return v;
  }
};

// The seeded workload of the budget's acceptance: puts, deletes,
// transactions, snapshots, iterators, checkpoints and reopens under budgets
// from tight to loose. After every operation it either succeeded or returned
// MemoryLimit having changed nothing (the model is checked at every reopen
// and by point reads); whenever no reader is open a write succeeds;
// resident memory stays within the budget + 8 MiB.
class BudgetWorkload {
 public:
  BudgetWorkload(const std::string& path, Options options, uint64_t seed)
      : path_(path), options_(options), rng_(seed) {}

  void Run(int ops) {
    const size_t base_rss = test::ResidentBytes();
    ASSERT_OK(DB::Open(options_, path_, &db_));
    for (int i = 0; i < ops; ++i) {
      SCOPED_TRACE("op " + std::to_string(i));
      ASSERT_NO_FATAL_FAILURE(Step());
      if (!test::UnderSanitizer()) {
        const size_t rss = test::ResidentBytes();
        peak_rss_ = std::max(peak_rss_, rss > base_rss ? rss - base_rss : 0);
      }
    }
    DBStats st;
    ASSERT_OK(db_->GetStats(&st));
    std::fprintf(
        stderr,
        "budget %zu MiB: %d refused, %llu stalls, %llu slowdowns, %llu checkpoints since "
        "the last open, %llu short of memory, pool high water %zu KiB, peak RSS +%zu KiB\n",
        options_.memory_budget_bytes >> 20, refused_,
        static_cast<unsigned long long>(st.write_stalls),
        static_cast<unsigned long long>(st.write_slowdowns),
        static_cast<unsigned long long>(st.checkpoints),
        static_cast<unsigned long long>(st.checkpoint_memory_failures),
        st.pool.high_water_bytes >> 10, peak_rss_ >> 10);
    EXPECT_LE(st.pool.high_water_bytes, options_.memory_budget_bytes);
    DropReaders();
    ASSERT_NO_FATAL_FAILURE(Reopen());
    ASSERT_OK(db_->Close());
    db_.reset();
    test::ExpectPoolsReleased();
    if (!test::UnderSanitizer()) {
      EXPECT_LE(peak_rss_, options_.memory_budget_bytes + 8 * kMiB)
          << "resident memory went past the budget + 8 MiB";
    }
  }

 private:
  void Step() {
    const int op = static_cast<int>(rng_() % 100);
    if (op < 55) {
      ASSERT_NO_FATAL_FAILURE(Write(/*del=*/false));
    } else if (op < 63) {
      ASSERT_NO_FATAL_FAILURE(Write(/*del=*/true));
    } else if (op < 77) {
      ASSERT_NO_FATAL_FAILURE(RunTransaction());
    } else if (op < 83) {
      // Readers are held for a while: they pin memtables.
      if (snapshots_.size() < 3) snapshots_.push_back(db_->GetSnapshot());
    } else if (op < 90) {
      ASSERT_NO_FATAL_FAILURE(UseIterator());
    } else if (op < 91 && rng_() % 4 == 0) {
      DropReaders();
      // With no reader open, memory can always be reclaimed: a write succeeds.
      const std::string key = RandomKey(&rng_, kKeys);
      const Expected e{rng_(), 64};
      Status s = db_->Put(WriteOptions(), key, e.Value());
      ASSERT_TRUE(s.ok()) << "write-disabled with no reader open: " << s.ToString();
      model_[key] = e;
    } else if (op < 93) {
      Status s = db_->Checkpoint();
      ASSERT_TRUE(s.ok() || s.IsMemoryLimit()) << s.ToString();
    } else if (op < 99 || rng_() % 8 != 0) {
      ASSERT_NO_FATAL_FAILURE(CheckRead(RandomKey(&rng_, kKeys)));
    } else {
      DropReaders();
      ASSERT_NO_FATAL_FAILURE(Reopen());
    }
  }

  void CheckRead(const std::string& key) {
    std::string v;
    Status s = db_->Get(ReadOptions(), key, &v);
    // A read that must load a page may find the budget full while readers
    // pin memtables (they cost memory until they end; docs/api.md).
    if (s.IsMemoryLimit() && !(snapshots_.empty() && iterators_.empty())) {
      ++refused_;
      return;
    }
    auto it = model_.find(key);
    if (it == model_.end()) {
      ASSERT_TRUE(s.IsNotFound()) << key << ": " << s.ToString();
    } else {
      ASSERT_OK(s);
      ASSERT_TRUE(v == it->second.Value()) << key << " has a wrong value";
    }
  }

  void Write(bool del) {
    const std::string key = RandomKey(&rng_, kKeys);
    if (del) {
      Status s = db_->Delete(WriteOptions(), key);
      if (!Refused(s)) {
        ASSERT_OK(s);
        model_.erase(key);
      }
    } else {
      const Expected e{rng_(), kMaxValue};
      Status s = db_->Put(WriteOptions(), key, e.Value());
      if (!Refused(s)) {
        ASSERT_OK(s);
        model_[key] = e;
      }
    }
    // A refused write changed nothing; an accepted one is read back.
    ASSERT_NO_FATAL_FAILURE(CheckRead(key));
  }

  void RunTransaction() {
    std::unique_ptr<Transaction> txn = db_->BeginTransaction(WriteOptions());
    std::map<std::string, std::optional<Expected>> writes;  // nullopt: deleted
    const int n = 1 + static_cast<int>(rng_() % 20);
    for (int i = 0; i < n; ++i) {
      const std::string key = RandomKey(&rng_, kKeys);
      Status s;
      if (rng_() % 5 == 0) {
        s = txn->Delete(key);
        if (s.ok()) writes[key] = std::nullopt;
      } else {
        const Expected e{rng_(), kMaxValue / 4};
        s = txn->Put(key, e.Value());
        if (s.ok()) writes[key] = e;
      }
      if (Refused(s)) return;  // rolled back by its destructor
      ASSERT_OK(s);
    }
    Status s = txn->Commit();
    if (!Refused(s)) {
      ASSERT_OK(s);
      for (const auto& [k, e] : writes) {
        if (e.has_value()) {
          model_[k] = *e;
        } else {
          model_.erase(k);
        }
      }
    }
    for (const auto& [k, e] : writes) ASSERT_NO_FATAL_FAILURE(CheckRead(k));
  }

  void UseIterator() {
    if (iterators_.size() < 2 && rng_() % 2 == 0) {
      iterators_.push_back(db_->NewIterator(ReadOptions()));
      iterators_.back()->Seek(RandomKey(&rng_, kKeys));
      const Status s = iterators_.back()->status();
      ASSERT_TRUE(s.ok() || s.IsMemoryLimit()) << s.ToString();
    } else if (!iterators_.empty()) {
      iterators_.erase(iterators_.begin());
    }
  }

  bool Refused(const Status& s) {
    if (!s.IsMemoryLimit()) return false;
    ++refused_;
    return true;
  }

  void DropReaders() {
    iterators_.clear();
    snapshots_.clear();
  }

  // Reopens and compares the whole database with the model, streaming.
  void Reopen() {
    ASSERT_OK(db_->Close());
    db_.reset();
    test::ExpectPoolsReleased();
    ASSERT_OK(DB::Open(options_, path_, &db_));
    std::unique_ptr<Iterator> it = db_->NewIterator(ReadOptions());
    auto m = model_.begin();
    for (it->SeekToFirst(); it->Valid(); it->Next(), ++m) {
      ASSERT_TRUE(m != model_.end()) << "unexpected key " << it->key() << " after a reopen";
      ASSERT_EQ(it->key(), m->first) << "after a reopen";
      ASSERT_TRUE(it->value() == m->second.Value()) << m->first << " has a wrong value";
    }
    ASSERT_OK(it->status());
    ASSERT_TRUE(m == model_.end()) << m->first << " is missing after a reopen";
  }

  static constexpr int kKeys = 5000;
  static constexpr size_t kMaxValue = 32 * kKiB;
  const std::string path_;
  const Options options_;
  std::mt19937_64 rng_;
  std::unique_ptr<DB> db_;
  std::map<std::string, Expected> model_;
  std::vector<std::unique_ptr<Snapshot>> snapshots_;
  std::vector<std::unique_ptr<Iterator>> iterators_;
  int refused_ = 0;
  size_t peak_rss_ = 0;
};

TEST(BudgetTest, SeededWorkloadUnderBudgetsFromTightToLoose) {
  const uint64_t seed = test::TestSeed();
  for (size_t budget : {10 * kMiB, 16 * kMiB, 48 * kMiB}) {
    SCOPED_TRACE("budget " + std::to_string(budget >> 20) + " MiB, seed " + std::to_string(seed));
    test::TempDir dir;
    BudgetWorkload w(dir.Join("db"), BudgetOptions(1 * kMiB, budget), seed + budget);
    ASSERT_NO_FATAL_FAILURE(w.Run(6000));
  }
}

}  // namespace
}  // namespace arenakv
