// The database read path: iterators leave out memtables with nothing
// visible at their sequence, and point reads agree with a model while
// writers, checkpoints and other readers run.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "arenakv/alloc/segment_pool.h"
#include "arenakv/db.h"
#include "arenakv/iterator.h"
#include "db_test_util.h"
#include "fault_env.h"
#include "sync_point_util.h"
#include "test_util.h"

namespace arenakv {
namespace {

using test::ExpectPoolsReleased;

std::map<std::string, std::string> ScanAll(DB* db, const Snapshot* snap = nullptr) {
  ReadOptions ro;
  ro.snapshot = snap;
  std::unique_ptr<Iterator> it = db->NewIterator(ro);
  std::map<std::string, std::string> out;
  for (it->SeekToFirst(); it->Valid(); it->Next()) out[std::string(it->key())] = it->value();
  EXPECT_TRUE(it->status().ok()) << it->status().ToString();
  return out;
}

// Key i of the databases CreateClosed builds.
std::string Key(int i) { return "k" + std::to_string(100000 + i); }

// Creates a database at `path` holding keys Key(0..n) with 100-byte values
// and closes it, so that the next open starts with a cold cache. *model (if
// given) receives what was written.
void CreateClosed(const Options& o, const std::string& path, int n,
                  std::map<std::string, std::string>* model = nullptr) {
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(o, path, &db));
  for (int i = 0; i < n; ++i) {
    std::string v(100, static_cast<char>('a' + i % 26));
    ASSERT_OK(db->Put(WriteOptions(), Key(i), v));
    if (model != nullptr) (*model)[Key(i)] = v;
  }
  ASSERT_OK(db->Close());
}

// Like CreateClosed with 40000 keys, but values half random, as the
// benchmarks' (compare's data_gen.h): leaves of about 9 KiB stored, in
// blocks, where other values would compress to almost nothing.
void CreateHalfRandom(const Options& o, const std::string& path,
                      std::map<std::string, std::string>* model) {
  std::mt19937_64 rng(test::TestSeed());
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(o, path, &db));
  for (int i = 0; i < 40000; ++i) {
    std::string v(100, 'v');
    for (int j = 0; j < 50; ++j) v[j] = static_cast<char>('a' + rng() % 26);
    ASSERT_OK(db->Put(WriteOptions(), Key(i), v));
    (*model)[Key(i)] = v;
  }
  ASSERT_OK(db->Close());
}

// The open reads internal pages around the cache: a read of the first key
// caches them (and the first leaf, far from those the tests then miss).
void CacheInternalPages(DB* db) {
  std::string v;
  ASSERT_OK(db->Get(ReadOptions(), Key(0), &v));
}

CacheStats CacheOf(DB* db) {
  DBStats st;
  EXPECT_OK(db->GetStats(&st));
  return st.cache;
}

// What the read-ahead thread does, seen through its sync points while this
// lives (processing is on meanwhile). Requests are queued synchronously by
// the read that missed; pages are loaded and the thread goes idle later.
class ReadAheadEvents {
 public:
  ReadAheadEvents() {
    SyncPoint* sp = SyncPoint::Get();
    sp->SetCallBack("ReadAhead::Request:Queued", [this](void*) {
      queued_.fetch_add(1);
      notifier_.Notify();
    });
    sp->SetCallBack("ReadAhead::Run:Loaded", [this](void* arg) {
      pages_.fetch_add(*static_cast<uint64_t*>(arg));
      notifier_.Notify();
    });
    sp->SetCallBack("ReadAhead::Run:Idle", [this](void*) {
      idles_.fetch_add(1);
      notifier_.Notify();
    });
    sp->EnableProcessing();
  }

  // Parents queued for read-ahead.
  int queued() const { return queued_.load(); }
  // Pages the thread loaded.
  uint64_t pages() const { return pages_.load(); }
  // Times the thread found its queue empty and ended.
  int idles() const { return idles_.load(); }
  void WaitUntil(const std::function<bool()>& done) { notifier_.WaitUntil(done); }

 private:
  std::atomic<int> queued_{0};
  std::atomic<uint64_t> pages_{0};
  std::atomic<int> idles_{0};
  test::Notifier notifier_;
  test::SyncPointScope scope_;  // last: the callbacks go before what they use
};

// A snapshot taken when every write was in the tree reads the tree alone;
// writes made after it (in the memtable) stay invisible to it, and visible
// to a new iterator, deletions included.
TEST(ReadPathTest, IteratorsSkipMemtablesWithNothingVisible) {
  test::TempDir dir;
  Options o;
  o.background_checkpoints = false;
  o.page_bytes = 4096;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(o, dir.Join("db"), &db));
  std::map<std::string, std::string> model;
  for (int i = 0; i < 500; ++i) {
    std::string k = "k" + std::to_string(1000 + i);
    ASSERT_OK(db->Put(WriteOptions(), k, "v" + std::to_string(i)));
    model[k] = "v" + std::to_string(i);
  }
  EXPECT_EQ(ScanAll(db.get()), model);  // memtable and (empty) tree
  ASSERT_OK(db->Checkpoint());
  EXPECT_EQ(ScanAll(db.get()), model);  // tree only

  std::unique_ptr<Snapshot> snap = db->GetSnapshot();
  const std::map<std::string, std::string> before = model;
  ASSERT_OK(db->Put(WriteOptions(), "k1007", "changed"));
  ASSERT_OK(db->Delete(WriteOptions(), "k1100"));
  ASSERT_OK(db->Put(WriteOptions(), "k0", "first"));
  ASSERT_OK(db->Put(WriteOptions(), "z", "last"));
  model["k1007"] = "changed";
  model.erase("k1100");
  model["k0"] = "first";
  model["z"] = "last";
  EXPECT_EQ(ScanAll(db.get(), snap.get()), before);
  EXPECT_EQ(ScanAll(db.get()), model);
  std::string v;
  ReadOptions ro;
  ro.snapshot = snap.get();
  ASSERT_OK(db->Get(ro, "k1100", &v));
  EXPECT_TRUE(db->Get(ReadOptions(), "k1100", &v).IsNotFound());
  snap.reset();
  ASSERT_OK(db->Close());
  db.reset();
  ExpectPoolsReleased();
}

// Readers never see a value older than one whose Put returned before their
// Get began, while a writer overwrites keys, memtables rotate and background
// checkpoints replace the tree under them. `cold`: the database is reopened
// after loading, with a cache large enough that the readers' misses start
// read-ahead, which then runs while checkpoints write and release pages.
// `by_block`: leaves of 16 KiB and values half random, so that the
// readers' misses of a small cache read blocks, by heads the cache keeps,
// while checkpoints release leaves and write others into their extents;
// every value read is then checked whole. `map_reads`: the misses read the
// file through its mapping (Options::map_reads), extents released and
// rewritten under it.
void PointReadsAcrossCheckpoints(int keys, size_t cache_bytes, bool cold, bool by_block = false,
                                 bool map_reads = false) {
  const uint64_t seed = test::TestSeed();
  test::TempDir dir;
  Options o;
  o.checkpoint_wal_bytes = 64 << 10;  // many memtable rotations and checkpoints
  if (!by_block) o.page_bytes = 4096;
  o.cache_bytes = cache_bytes;
  o.map_reads = map_reads;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(o, dir.Join("db"), &db));
  auto key = [](int k) { return "key" + std::to_string(100000 + k); };
  // The value of version `version` of key k: "version:" and a body.
  auto body = [by_block](int k, char filler) {
    return by_block ? test::HalfRandomValue(k) : std::string(100, filler);
  };
  // committed[k]: the last version of key k whose Put has returned.
  std::vector<std::atomic<int>> committed(keys);
  for (int k = 0; k < keys; ++k) {
    ASSERT_OK(db->Put(WriteOptions(), key(k), "0:" + body(k, 'x')));
    committed[k].store(0);
  }
  if (cold) {
    ASSERT_OK(db->Close());
    db.reset();
    ASSERT_OK(DB::Open(o, dir.Join("db"), &db));
    // One miss before anything else runs, so that read-ahead certainly has
    // leaves to load (the readers below could otherwise load every leaf
    // themselves first, and a checkpoint in progress makes read-ahead skip).
    // Later checkpoints write new, uncached pages: the readers' misses on
    // them start read-ahead again while further checkpoints run.
    {
      ReadAheadEvents events;
      std::string v;
      ASSERT_OK(db->Get(ReadOptions(), key(keys / 2), &v));
      ASSERT_GE(events.queued(), 1);  // the miss queued its parent
      // Until the thread has loaded pages, or has ended without any.
      events.WaitUntil([&] { return events.pages() > 0 || events.idles() > 0; });
    }
    DBStats st;
    ASSERT_OK(db->GetStats(&st));
    ASSERT_GT(st.cache.read_ahead_pages, 0u);
  }
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::atomic<uint64_t> reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      std::mt19937_64 rng(seed + t);
      std::string v;
      while (!stop.load()) {
        int k = static_cast<int>(rng() % keys);
        int floor = committed[k].load();
        Status s = db->Get(ReadOptions(), key(k), &v);
        const size_t colon = v.find(':');
        if (!s.ok() || colon == std::string::npos || std::stoi(v.substr(0, colon)) < floor ||
            (by_block && v.substr(colon + 1) != body(k, 'x'))) {
          bad++;
        }
        reads.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  std::mt19937_64 rng(seed);
  for (int i = 1; i <= 6000; ++i) {
    int k = static_cast<int>(rng() % keys);
    int version = committed[k].load() + 1;
    ASSERT_OK(db->Put(WriteOptions(), key(k), std::to_string(version) + ":" + body(k, 'y')));
    committed[k].store(version);
  }
  stop.store(true);
  for (auto& r : readers) r.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(reads.load(), 0u);
  DBStats st;
  ASSERT_OK(db->GetStats(&st));
  EXPECT_GT(st.checkpoints, 3u);
  if (by_block) {
    EXPECT_GT(st.cache.block_reads, 0u);
    EXPECT_GT(st.cache.leaf_head_bytes, 0u);
  }
  if (map_reads) {
    EXPECT_GT(st.mapped_bytes, cache_bytes);
    EXPECT_LE(st.mapped_bytes, std::filesystem::file_size(dir.Join("db") + "/data.akv"));
    EXPECT_GE(st.pool.charged_bytes, st.mapped_bytes);
  } else {
    EXPECT_EQ(st.mapped_bytes, 0u);
  }
  ASSERT_OK(db->Close());
  db.reset();
  ExpectPoolsReleased();
}

TEST(ReadPathTest, PointReadsSeeEveryEarlierCommitAcrossCheckpoints) {
  // A small cache: reads also take the path that loads pages.
  PointReadsAcrossCheckpoints(200, 1 << 20, /*cold=*/false);
}

TEST(ReadPathTest, PointReadsSeeEveryEarlierCommitWhileReadingAhead) {
  PointReadsAcrossCheckpoints(3000, 64 << 20, /*cold=*/true);
}

TEST(ReadPathTest, PointReadsByBlockSeeEveryEarlierCommitAcrossCheckpoints) {
  PointReadsAcrossCheckpoints(20000, 256 << 10, /*cold=*/false, /*by_block=*/true);
}

TEST(ReadPathTest, PointReadsThroughTheMappingSeeEveryEarlierCommitAcrossCheckpoints) {
  PointReadsAcrossCheckpoints(20000, 256 << 10, /*cold=*/false, /*by_block=*/true,
                              /*map_reads=*/true);
}

// Close() while other threads keep reading: every read returns a value or
// Closed, none touches the closed database. One reader is held inside a
// lock-free read, past its closed check, until Close() has marked the
// database closed and is seen waiting for that read's section, again and
// again, without going on; then the read finishes and Close() goes on.
TEST(ReadPathTest, CloseWhileReading) {
  test::TempDir dir;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(Options(), dir.Join("db"), &db));
  for (int k = 0; k < 1000; ++k) {
    ASSERT_OK(db->Put(WriteOptions(), "k" + std::to_string(k), "v"));
  }
  ASSERT_OK(db->Checkpoint());
  std::atomic<int> bad{0};
  std::atomic<int> closed_seen{0};
  std::atomic<int> reads[2] = {0, 0};
  std::atomic<int> reached{0};  // lock-free reads at DBImpl::GetLockFree:Reading
  std::atomic<bool> reads_closed{false};
  std::atomic<int> close_held_back{0};     // Close() found a section still open
  std::atomic<bool> close_went_on{false};  // Close() is past its wait for reads
  std::atomic<bool> early_close{false};    // ...while the held read was in its section
  const std::thread::id closer = std::this_thread::get_id();
  test::Notifier notifier;
  test::SyncPointScope scope;
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      std::string v;
      for (int i = 0;; ++i) {
        Status s = db->Get(ReadOptions(), "k" + std::to_string((i * 7 + t) % 1000), &v);
        if (s.IsClosed()) {
          closed_seen.fetch_add(1);
          return;
        }
        if (!s.ok() || v != "v") bad++;
        reads[t].fetch_add(1);
      }
    });
  }
  // Both readers are reading (with every page cached by now, mostly on the
  // lock-free path).
  while (reads[0].load() < 1000 || reads[1].load() < 1000) std::this_thread::yield();
  SyncPoint* sp = SyncPoint::Get();
  sp->SetCallBack("DBImpl::GetLockFree:Reading", [&](void*) {
    if (reached.fetch_add(1) != 0) return;
    notifier.Notify();
    notifier.WaitUntil([&] { return close_held_back.load() >= 100 || close_went_on.load(); });
    if (close_went_on.load()) early_close.store(true);
  });
  sp->SetCallBack("DBImpl::Close:ReadsClosed", [&](void*) { reads_closed.store(true); });
  sp->SetCallBack("ReadEpoch::WaitUntilSafe:NotYetSafe", [&](void*) {
    if (std::this_thread::get_id() != closer || !reads_closed.load()) return;
    close_held_back.fetch_add(1);
    notifier.Notify();
  });
  sp->SetCallBack("DBImpl::Close:Checkpoint", [&](void*) {
    close_went_on.store(true);
    notifier.Notify();
  });
  sp->EnableProcessing();
  notifier.WaitUntil([&] { return reached.load() > 0; });
  ASSERT_OK(db->Close());
  for (auto& r : readers) r.join();
  EXPECT_GE(close_held_back.load(), 100);
  EXPECT_FALSE(early_close.load()) << "Close() went on while a read was in its section";
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(closed_seen.load(), 2);
  db.reset();
  ExpectPoolsReleased();
}

// A plain scan of cold data stops filling the cache after 64 leaves read in
// a row from disk; ScanCaching::kAlways fills it (for transactions'
// iterators too), and a later scan then reads nothing from disk.
TEST(ReadPathTest, BulkScansLeaveTheCacheAloneUnlessAsked) {
  test::TempDir dir;
  Options o;
  o.background_checkpoints = false;
  o.page_bytes = 4096;
  std::map<std::string, std::string> model;
  ASSERT_NO_FATAL_FAILURE(CreateClosed(o, dir.Join("db"), 30000, &model));
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(o, dir.Join("db"), &db));

  EXPECT_EQ(ScanAll(db.get()), model);
  const size_t after_bulk = CacheOf(db.get()).pages;
  EXPECT_LT(after_bulk, 100u);

  std::unique_ptr<Transaction> txn = db->BeginTransaction(WriteOptions());
  ReadOptions warm;
  warm.scan_caching = ScanCaching::kAlways;
  std::unique_ptr<Iterator> it = txn->NewIterator(warm);
  size_t n = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next(), ++n) {
  }
  ASSERT_OK(it->status());
  EXPECT_EQ(n, model.size());
  it.reset();
  ASSERT_OK(txn->Rollback());
  const CacheStats filled = CacheOf(db.get());
  EXPECT_GT(filled.pages, 5 * after_bulk);

  EXPECT_EQ(ScanAll(db.get()), model);
  EXPECT_EQ(CacheOf(db.get()).misses, filled.misses);
  ASSERT_OK(db->Close());
  db.reset();
  ExpectPoolsReleased();
}

// A point read that reads a leaf from disk has its neighbours (the other
// children of its parent) read into the cache in the background while the
// cache has room; never evicting anything for them. Off with the option.
TEST(ReadPathTest, ReadAheadLoadsTheNeighboursOfAMissedLeaf) {
  test::TempDir dir;
  Options o;
  o.background_checkpoints = false;
  o.page_bytes = 4096;
  ASSERT_NO_FATAL_FAILURE(CreateClosed(o, dir.Join("db"), 30000));
  for (size_t cache_bytes : {size_t{64} << 20, size_t{256} << 10}) {
    SCOPED_TRACE(cache_bytes);
    o.cache_bytes = cache_bytes;
    ReadAheadEvents events;
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(o, dir.Join("db"), &db));
    std::string v;
    ASSERT_OK(db->Get(ReadOptions(), Key(15000), &v));
    // The miss queued the leaf's parent; once the thread has served it and
    // found its queue empty, nothing adds pages any more.
    ASSERT_EQ(events.queued(), 1);
    events.WaitUntil([&] { return events.idles() > 0; });
    const CacheStats after = CacheOf(db.get());
    EXPECT_EQ(after.read_ahead_pages, events.pages());
    EXPECT_GT(after.read_ahead_pages, 20u);
    EXPECT_GT(after.pages, after.read_ahead_pages);
    EXPECT_EQ(after.evictions, 0u);
    EXPECT_LE(after.used_bytes, after.capacity_bytes);
    if (cache_bytes > (size_t{1} << 20)) {
      // A neighbour of the leaf read first is a cache hit now.
      ASSERT_OK(db->Get(ReadOptions(), Key(15020), &v));
      EXPECT_EQ(CacheOf(db.get()).misses, after.misses);
    }
    ASSERT_OK(db->Close());
  }
  o.read_ahead = false;
  o.cache_bytes = size_t{64} << 20;
  ReadAheadEvents events;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(o, dir.Join("db"), &db));
  std::string v;
  EXPECT_EQ(CacheOf(db.get()).pages, 0u);  // the open read internal pages around it
  ASSERT_NO_FATAL_FAILURE(CacheInternalPages(db.get()));
  const CacheStats opened = CacheOf(db.get());
  ASSERT_OK(db->Get(ReadOptions(), Key(15000), &v));
  // Nothing was queued (a request is queued by the read itself), so no
  // thread can add pages after this.
  EXPECT_EQ(events.queued(), 0);
  const CacheStats off = CacheOf(db.get());
  EXPECT_EQ(off.read_ahead_pages, 0u);
  EXPECT_GT(off.pages, opened.pages);
  EXPECT_LE(off.pages, opened.pages + 2);  // the leaf and its parent, no neighbour
  ASSERT_OK(db->Close());
  db.reset();
  ExpectPoolsReleased();
}

// A database of CreateHalfRandom's keys, reopened with a cache of 512 KiB
// (about 30 of its 300 leaves), its reads counted at the file.
class BlockReadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_ = std::make_shared<test::FaultInjectionEnv>(Env::Default());
    Options o;
    o.env = env_;
    o.background_checkpoints = false;
    o.read_ahead = false;
    ASSERT_NO_FATAL_FAILURE(CreateHalfRandom(o, dir_.Join("db"), &model_));
    o.cache_bytes = size_t{512} << 10;
    ASSERT_OK(DB::Open(o, dir_.Join("db"), &db_));
  }
  void TearDown() override {
    if (db_ != nullptr) EXPECT_OK(db_->Close());
    db_.reset();
    ExpectPoolsReleased();
  }
  // Reads Key(i), checks it against the model and resets the counts first:
  // after it, env_ counts the reads it made.
  void ReadCounted(int i) {
    env_->ResetCounts();
    std::string v;
    ASSERT_OK(db_->Get(ReadOptions(), Key(i), &v));
    ASSERT_EQ(v, model_[Key(i)]) << Key(i);
  }

  test::TempDir dir_;
  std::shared_ptr<test::FaultInjectionEnv> env_;
  std::map<std::string, std::string> model_;
  std::unique_ptr<DB> db_;
};

// A leaf read for the first time for one key and not admitted costs its
// header, its index and one block (format 5; 1 KiB blocks and the compact
// index of format 6): under a fifth of the page, counted at the file.
// Before, the whole stored page was read and checked for every such miss.
TEST_F(BlockReadTest, ABlockReadReadsAFifthOfTheLeaf) {
  // Fills the cache with leaves of the first half of the keys.
  for (int i = 0; i < 20000; i += 7) ASSERT_NO_FATAL_FAILURE(ReadCounted(i));
  // Each leaf of the second half met once is read by block; read again at
  // once, it is admitted and read whole: the same leaf both ways.
  uint64_t leaves = 0, block_bytes = 0, whole_bytes = 0;
  for (int i = 20003; i < 40000; i += 101) {
    const CacheStats before = CacheOf(db_.get());
    ASSERT_NO_FATAL_FAILURE(ReadCounted(i));
    if (CacheOf(db_.get()).block_reads == before.block_reads) continue;
    const uint64_t block = env_->BytesRead();
    const uint64_t reads = env_->Count(test::FaultOp::kRead);
    ASSERT_NO_FATAL_FAILURE(ReadCounted(i));
    // Only pairs where neither read also fetched an internal page (the
    // first: the head, then the block).
    if (reads != 2 || env_->Count(test::FaultOp::kRead) != 1) continue;
    ++leaves;
    block_bytes += block;
    whole_bytes += env_->BytesRead();
  }
  ASSERT_GT(leaves, 10u);
  EXPECT_LT(block_bytes * 5, whole_bytes) << leaves << " leaves";
}

// A leaf read by block once and still not admitted: the cache kept its
// head (header and block index), so the next read of it is of the block
// alone, one read at the file. Before, every block read also read the
// leaf's first 512 bytes.
TEST_F(BlockReadTest, ALeafMetAgainReadsItsBlockAlone) {
  // Fills the cache, then meets every leaf once more: those the first pass
  // cached whole while there was room are read by block now.
  for (int pass = 0; pass < 2; ++pass) {
    for (int i = pass; i < 40000; i += 7) ASSERT_NO_FATAL_FAILURE(ReadCounted(i));
  }
  uint64_t block_reads = 0, one_read = 0, bytes = 0;
  for (int i = 3; i < 40000; i += 101) {
    const CacheStats before = CacheOf(db_.get());
    ASSERT_NO_FATAL_FAILURE(ReadCounted(i));
    if (CacheOf(db_.get()).block_reads == before.block_reads) continue;  // hit or whole
    ++block_reads;
    if (env_->Count(test::FaultOp::kRead) == 1) {
      ++one_read;
      bytes += env_->BytesRead();
    }
  }
  ASSERT_GT(block_reads, 20u);
  // Not all: heads of leaves that share a set of the table with two others
  // push each other out (a fifth to a third of them here, by the seed's
  // layout of the file).
  EXPECT_GT(one_read * 2, block_reads) << one_read << " of " << block_reads;
  EXPECT_LT(bytes, one_read * 1024) << "a compressed block each";
  const CacheStats st = CacheOf(db_.get());
  EXPECT_GT(st.leaf_head_bytes, 0u);
  // The tree is over four times the cache: the table may take three
  // quarters of it, never more, whatever size class its segment falls in
  // (asked for 384 KiB, it once got a class of 512: all of the cache).
  EXPECT_LE(st.leaf_head_bytes, st.capacity_bytes / 4 * 3);
}

// With the cache full, a leaf a point read misses for the first time is not
// decoded and cached: the one block that may hold the key is read. A second
// miss of the same leaf admits it, and the read after that is a hit.
TEST(ReadPathTest, AFullCacheReadsOneBlockOfALeafMetOnce) {
  test::TempDir dir;
  Options o;
  o.background_checkpoints = false;
  o.read_ahead = false;  // only the reads below fill the cache
  std::map<std::string, std::string> model;
  ASSERT_NO_FATAL_FAILURE(CreateClosed(o, dir.Join("db"), 40000, &model));
  o.cache_bytes = size_t{256} << 10;  // ~16 pages of ~300 leaves
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(o, dir.Join("db"), &db));
  std::string v;
  for (int i = 0; i < 40000; i += 7) {
    ASSERT_OK(db->Get(ReadOptions(), Key(i), &v));
    ASSERT_EQ(v, model[Key(i)]) << Key(i);
  }
  ASSERT_TRUE(db->Get(ReadOptions(), "k0", &v).IsNotFound());              // below every key
  ASSERT_TRUE(db->Get(ReadOptions(), Key(20000) + "x", &v).IsNotFound());  // inside a block
  CacheStats st = CacheOf(db.get());
  EXPECT_GT(st.block_reads, 100u);
  EXPECT_GT(st.used_bytes + o.page_bytes, st.capacity_bytes);  // full: admission decides
  EXPECT_LE(st.used_bytes, st.capacity_bytes);

  // A key whose leaf is not cached: the first read that takes a block.
  int k = -1;
  CacheStats first;
  for (int i = 1; i < 40000 && k < 0; i += 997) {
    ASSERT_OK(db->Get(ReadOptions(), Key(i), &v));
    first = CacheOf(db.get());
    if (first.block_reads > st.block_reads) k = i;
    st = first;
  }
  ASSERT_GE(k, 0) << "every leaf probed was cached";
  EXPECT_EQ(v, model[Key(k)]);
  ASSERT_OK(db->Get(ReadOptions(), Key(k), &v));  // the leaf's second miss: admitted
  EXPECT_EQ(v, model[Key(k)]);
  const CacheStats second = CacheOf(db.get());
  EXPECT_EQ(second.block_reads, first.block_reads);
  EXPECT_EQ(second.misses, first.misses + 1);
  ASSERT_OK(db->Get(ReadOptions(), Key(k), &v));  // now a hit
  EXPECT_EQ(v, model[Key(k)]);
  const CacheStats third = CacheOf(db.get());
  EXPECT_EQ(third.misses, second.misses);
  EXPECT_EQ(third.block_reads, second.block_reads);

  VerifyReport report;
  ASSERT_OK(db->Verify(&report));
  ASSERT_OK(db->Close());
  db.reset();
  ExpectPoolsReleased();
}

// A lock-free point read that misses a leaf finishes outside its read
// section, holding only the leaf's address. When checkpoints release that
// leaf and write other pages meanwhile, what it read means nothing: it reads
// again with the new version held, and finds the new value.
TEST(ReadPathTest, AReadWhoseLeafIsReleasedMeanwhileReadsAgain) {
  test::TempDir dir;
  Options o;
  o.background_checkpoints = false;
  o.read_ahead = false;
  constexpr int kKeys = 20000;
  ASSERT_NO_FATAL_FAILURE(CreateClosed(o, dir.Join("db"), kKeys));
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(o, dir.Join("db"), &db));
  ASSERT_NO_FATAL_FAILURE(CacheInternalPages(db.get()));  // and none of the leaves below
  auto value = [](int round, int i) {
    return "r" + std::to_string(round) + std::string(90, 'a' + i % 26);
  };

  test::SyncPointScope scope;
  int missed = 0;
  bool rewrite = false;
  SyncPoint::Get()->SetCallBack("DBImpl::GetMissedLeaf:Reading", [&](void*) {
    ++missed;
    if (!rewrite) return;
    rewrite = false;
    // Two full rewrites: the first releases the leaf's extent, the second
    // may write a page into it (or its blocks were given back already).
    for (int round = 1; round <= 2; ++round) {
      for (int i = 0; i < kKeys; ++i) ASSERT_OK(db->Put(WriteOptions(), Key(i), value(round, i)));
      ASSERT_OK(db->Checkpoint());
    }
  });
  SyncPoint::Get()->EnableProcessing();
  std::string v;
  ASSERT_OK(db->Get(ReadOptions(), Key(1000), &v));  // a plain miss takes that path
  EXPECT_EQ(missed, 1);
  EXPECT_EQ(v, std::string(100, 'a' + 1000 % 26));
  rewrite = true;
  ASSERT_OK(db->Get(ReadOptions(), Key(15000), &v));
  EXPECT_EQ(missed, 2);
  EXPECT_EQ(v, value(2, 15000));
  scope.Reset();

  VerifyReport report;
  ASSERT_OK(db->Verify(&report));
  ASSERT_OK(db->Close());
  db.reset();
  ExpectPoolsReleased();
}

// The same race for a read by block: the head it read belongs to a leaf
// that checkpoints release, and whose extent a page of the same keys and
// length may take, before the read keeps the head. It must not keep it: a
// later read of the new page would follow the old index.
TEST(ReadPathTest, AHeadReadWhileItsLeafIsReleasedIsNotKept) {
  test::TempDir dir;
  Options o;
  o.background_checkpoints = false;
  o.read_ahead = false;
  constexpr int kKeys = 20000;
  // Half random (leaves read by block), and one byte per round: the
  // rewritten leaves compress to the same lengths.
  auto value = [](int round, int i) {
    std::string v = test::HalfRandomValue(i);
    v[7] = static_cast<char>('A' + round);
    return v;
  };
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(o, dir.Join("db"), &db));
  for (int i = 0; i < kKeys; ++i) ASSERT_OK(db->Put(WriteOptions(), Key(i), value(0, i)));
  ASSERT_OK(db->Close());
  o.cache_bytes = size_t{256} << 10;
  ASSERT_OK(DB::Open(o, dir.Join("db"), &db));
  std::string v;
  for (int i = 0; i < kKeys; i += 7) ASSERT_OK(db->Get(ReadOptions(), Key(i), &v));  // full

  test::SyncPointScope scope;
  int rewrites = 0;
  int round = 0;
  SyncPoint::Get()->SetCallBack("BTree::ReadLeafHead:Read", [&](void*) {
    if (rewrites == 3) return;
    ++rewrites;
    // Two full rewrites: the first releases the leaf's extent, the second
    // may write a page of the same keys into it.
    for (int r = 0; r < 2; ++r) {
      ++round;
      for (int i = 0; i < kKeys; ++i) ASSERT_OK(db->Put(WriteOptions(), Key(i), value(round, i)));
      ASSERT_OK(db->Checkpoint());
    }
  });
  SyncPoint::Get()->EnableProcessing();
  for (int i = 5; i < kKeys && rewrites < 3; i += 211)
    ASSERT_OK(db->Get(ReadOptions(), Key(i), &v));
  ASSERT_EQ(rewrites, 3) << "no read took a leaf's head from the file";
  scope.Reset();
  // Twice: the first pass keeps the heads the second reads by.
  for (int pass = 0; pass < 2; ++pass) {
    for (int i = 0; i < kKeys; ++i) {
      ASSERT_OK(db->Get(ReadOptions(), Key(i), &v));
      ASSERT_EQ(v, value(round, i)) << Key(i);
    }
  }
  VerifyReport report;
  ASSERT_OK(db->Verify(&report));
  ASSERT_OK(db->Close());
  db.reset();
  ExpectPoolsReleased();
}

// A read that missed its leaf and goes on after Close() has begun takes the
// locked path, which answers Closed: it does not take the close lock
// (rw_ prefers readers, and a stream of such reads would keep Close()
// waiting for its writer lock).
TEST(ReadPathTest, ALeafMissAfterCloseBeganAnswersClosed) {
  test::TempDir dir;
  Options o;
  o.background_checkpoints = false;
  o.read_ahead = false;
  ASSERT_NO_FATAL_FAILURE(CreateClosed(o, dir.Join("db"), 20000));
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(o, dir.Join("db"), &db));
  ASSERT_NO_FATAL_FAILURE(CacheInternalPages(db.get()));  // and none of the leaves below
  std::atomic<bool> missed{false}, closing{false}, read_done{false};
  test::Notifier notifier;
  test::SyncPointScope scope;
  SyncPoint::Get()->SetCallBack("DBImpl::Get:LeafMissed", [&](void*) {
    missed.store(true);
    notifier.Notify();
    notifier.WaitUntil([&] { return closing.load(); });
  });
  SyncPoint::Get()->SetCallBack("DBImpl::Close:ReadsClosed", [&](void*) {
    closing.store(true);
    notifier.Notify();
    notifier.WaitUntil([&] { return read_done.load(); });
  });
  SyncPoint::Get()->EnableProcessing();
  Status read;
  std::thread reader([&] {
    std::string v;
    read = db->Get(ReadOptions(), Key(12345), &v);
    read_done.store(true);
    notifier.Notify();
  });
  notifier.WaitUntil([&] { return missed.load(); });
  ASSERT_OK(db->Close());
  reader.join();
  scope.Reset();
  EXPECT_TRUE(read.IsClosed()) << read.ToString();
  db.reset();
  ExpectPoolsReleased();
}

// Closing while the read-ahead thread is reading leaves nothing behind.
// Close() meets the thread in three ways, by turns:
//  0: at once, wherever the thread is (it may not even have started);
//  1: the thread takes a parent but starts reading its children only once
//     Close() has begun, so that the reading and Close() run together;
//  2: Close() begins once the thread has read one parent's children, while
//     it may go on with the next.
TEST(ReadPathTest, CloseWhileReadingAhead) {
  test::TempDir dir;
  Options o;
  o.page_bytes = 4096;
  ASSERT_NO_FATAL_FAILURE(CreateClosed(o, dir.Join("db"), 20000));
  for (int round = 0; round < 21; ++round) {
    SCOPED_TRACE(round);
    ReadAheadEvents events;
    if (round % 3 == 1) {
      SyncPoint::Get()->LoadDependency({{"DBImpl::Close:Marked", "ReadAhead::Run:Load"}});
    } else if (round % 3 == 2) {
      SyncPoint::Get()->LoadDependency({{"ReadAhead::Run:Loaded", "ReadPathTest::Close"}});
    }
    std::unique_ptr<DB> db;
    ASSERT_OK(DB::Open(o, dir.Join("db"), &db));
    std::string v;
    for (int i = 0; i < 20000; i += 2000) {
      ASSERT_OK(db->Get(ReadOptions(), Key(i), &v));
    }
    ASSERT_GE(events.queued(), 1);  // there is a thread to meet
    TEST_SYNC_POINT("ReadPathTest::Close");
    ASSERT_OK(db->Close());
    db.reset();
    ExpectPoolsReleased();
  }
}

// An iterator moving on one thread while another closes the database ends
// invalid with Closed, never reading freed state.
TEST(ReadPathTest, IteratorOnAnotherThreadSeesClose) {
  test::TempDir dir;
  std::unique_ptr<DB> db;
  ASSERT_OK(DB::Open(Options(), dir.Join("db"), &db));
  for (int k = 0; k < 2000; ++k) ASSERT_OK(db->Put(WriteOptions(), "k" + std::to_string(k), "v"));
  ASSERT_OK(db->Checkpoint());
  std::unique_ptr<Iterator> it = db->NewIterator(ReadOptions());
  std::atomic<bool> started{false};
  std::atomic<uint64_t> keys{0};
  std::thread reader([&] {
    started.store(true);
    while (true) {
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        if (!it->key().empty() && !it->value().empty()) keys.fetch_add(1);
      }
      if (!it->status().ok()) return;
    }
  });
  while (!started.load()) std::this_thread::yield();
  while (keys.load() < 5000) std::this_thread::yield();
  ASSERT_OK(db->Close());
  reader.join();
  EXPECT_TRUE(it->status().IsClosed()) << it->status().ToString();
  EXPECT_FALSE(it->Valid());
  EXPECT_TRUE(it->key().empty());
  it.reset();
  db.reset();
  ExpectPoolsReleased();
}

}  // namespace
}  // namespace arenakv
