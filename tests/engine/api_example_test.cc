// A complete example of embedding arenakv, written to be read: open a
// database, write and read keys, iterate, run a transaction with a retry
// loop, read from a snapshot, and close. It runs as a test so the example
// can never go stale.

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "arenakv/alloc/segment_pool.h"
#include "arenakv/db.h"
#include "test_util.h"

namespace {

// Moves `amount` from one account to another. Balances are decimal strings.
// Another thread may change the same accounts at the same time: if it
// commits first, our Commit() returns Conflict and we simply try again with
// a fresh transaction (which sees the other thread's result).
arenakv::Status Transfer(arenakv::DB* db, const std::string& from, const std::string& to,
                         long amount) {
  for (int attempt = 0; attempt < 10; attempt++) {
    std::unique_ptr<arenakv::Transaction> txn =
        db->BeginTransaction(arenakv::WriteOptions{.sync = true});

    std::string from_balance, to_balance;
    arenakv::Status s = txn->Get(arenakv::ReadOptions{}, from, &from_balance);
    if (s.ok()) s = txn->Get(arenakv::ReadOptions{}, to, &to_balance);
    if (!s.ok()) return s;  // returning destroys txn, which rolls it back
    if (std::stol(from_balance) < amount) {
      return arenakv::Status::InvalidArgument("insufficient funds in " + from);
    }
    s = txn->Put(from, std::to_string(std::stol(from_balance) - amount));
    if (s.ok()) s = txn->Put(to, std::to_string(std::stol(to_balance) + amount));
    if (s.ok()) s = txn->Commit();
    if (!s.IsConflict()) return s;  // committed, or a real error
    // Conflict: nothing of ours was written. Retry.
  }
  return arenakv::Status::Busy("too much contention on " + from + " / " + to);
}

TEST(ApiExample, EmbeddingArenakv) {
  arenakv::test::TempDir dir;
  const std::string path = dir.Join("bank");

  // 1. Open (creating the database when it does not exist yet). The page
  //    cache is bounded by cache_bytes and lives in the database's own
  //    memory pool.
  arenakv::Options options;
  options.create_if_missing = true;
  options.cache_bytes = 32 << 20;
  std::unique_ptr<arenakv::DB> db;
  arenakv::Status s = arenakv::DB::Open(options, path, &db);
  ASSERT_TRUE(s.ok()) << s.ToString();

  // 2. Plain writes and reads. Keys and values are arbitrary bytes.
  ASSERT_OK(db->Put(arenakv::WriteOptions{}, "account/alice", "100"));
  ASSERT_OK(db->Put(arenakv::WriteOptions{}, "account/bob", "50"));
  ASSERT_OK(db->Put(arenakv::WriteOptions{}, "account/carol", "0"));
  // sync = true: Put returns once the write is on stable storage.
  ASSERT_OK(db->Put(arenakv::WriteOptions{.sync = true}, "bank/name", "Example Bank"));

  std::string value;
  s = db->Get(arenakv::ReadOptions{}, "account/alice", &value);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(value, "100");
  s = db->Get(arenakv::ReadOptions{}, "account/nobody", &value);
  EXPECT_TRUE(s.IsNotFound());  // absence is a status, not an empty string

  // 3. Iterate over a key range in order: every key starting "account/".
  std::vector<std::string> accounts;
  std::unique_ptr<arenakv::Iterator> it = db->NewIterator(arenakv::ReadOptions{});
  for (it->Seek("account/"); it->Valid() && it->key().starts_with("account/"); it->Next()) {
    accounts.emplace_back(it->key());
  }
  ASSERT_TRUE(it->status().ok()) << it->status().ToString();  // check after the loop
  it.reset();
  EXPECT_EQ(accounts, (std::vector<std::string>{"account/alice", "account/bob", "account/carol"}));

  // 4. A snapshot: a consistent read view that later writes do not change.
  std::unique_ptr<arenakv::Snapshot> before_transfer = db->GetSnapshot();

  // 5. Transactions, with a retry loop on Conflict (see Transfer above).
  s = Transfer(db.get(), "account/alice", "account/carol", 30);
  ASSERT_TRUE(s.ok()) << s.ToString();
  s = Transfer(db.get(), "account/bob", "account/carol", 500);
  EXPECT_TRUE(s.IsInvalidArgument());  // refused; nothing changed

  ASSERT_OK(db->Get(arenakv::ReadOptions{}, "account/carol", &value));
  EXPECT_EQ(value, "30");
  arenakv::ReadOptions as_of_snapshot;
  as_of_snapshot.snapshot = before_transfer.get();
  ASSERT_OK(db->Get(as_of_snapshot, "account/carol", &value));
  EXPECT_EQ(value, "0");    // the snapshot still sees the old balance
  before_transfer.reset();  // release the view (and the old versions it kept)

  // 6. Look at the memory the database holds, then close. Close() writes a
  //    checkpoint and gives every byte of the cache and buffers back.
  arenakv::DBStats stats;
  ASSERT_OK(db->GetStats(&stats));
  std::printf("%s", db->StatsReport().c_str());
  s = db->Close();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(arenakv::alloc::GetProcessPoolStats().mapped_bytes, 0u);
  EXPECT_EQ(arenakv::alloc::GetProcessPoolStats().live_pools, 0u);
  db.reset();

  // 7. Reopen: everything committed is still there.
  ASSERT_OK(arenakv::DB::Open(options, path, &db));
  ASSERT_OK(db->Get(arenakv::ReadOptions{}, "account/alice", &value));
  EXPECT_EQ(value, "70");
  ASSERT_OK(db->Close());
  db.reset();
  EXPECT_EQ(arenakv::alloc::GetProcessPoolStats().mapped_bytes, 0u);
  EXPECT_EQ(arenakv::alloc::GetProcessPoolStats().live_pools, 0u);
}

}  // namespace
