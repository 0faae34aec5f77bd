// Faults at every I/O call site (issue 12, item 4): a fixed workload (synced
// and unsynced puts, a transaction, checkpoints, Close, and the Open before
// them) is run once to count its I/O calls of each kind; then, for each
// kind and each n, it runs again with the n-th call of that kind failing
// once (EIO). Every outcome must be clean: each call returns OK or an error
// that says what failed (never Corruption for an I/O error, never a crash),
// and after reopening without faults every acknowledged commit is there with
// its value, nothing unacknowledged has a wrong value, nothing else appears,
// Verify() passes and writes work. CI tries up to 60 values of n per kind,
// spread over the calls; ARENAKV_LONG_TESTS=1 tries every one.

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "arenakv/db.h"
#include "arenakv/iterator.h"
#include "arenakv/transaction.h"
#include "db_test_util.h"
#include "fault_env.h"
#include "test_util.h"

namespace arenakv {
namespace {

using test::FaultInjectionEnv;
using test::FaultOp;

bool LongTests() { return std::getenv("ARENAKV_LONG_TESTS") != nullptr; }

struct Outcome {
  std::map<std::string, std::string> acked, maybe;
};

Options SweepOptions(std::shared_ptr<Env> env) {
  Options o;
  o.env = std::move(env);
  o.background_checkpoints = false;  // the same calls in the same order every run
  o.read_ahead = false;
  o.cache_bytes = 1 << 20;
  return o;
}

// A failed call must say what failed; an I/O error is never Corruption.
void ExpectClean(const Status& s, const std::string& what) {
  if (s.ok()) return;
  EXPECT_FALSE(s.message().empty()) << what;
  EXPECT_FALSE(s.IsCorruption()) << what << ": " << s.ToString();
}

// The workload. Stops at nothing: after a failure it goes on, as an
// application retrying would, and records what was acknowledged.
void RunWorkload(const std::string& path, std::shared_ptr<Env> env, Outcome* out) {
  std::unique_ptr<DB> db;
  Status s = DB::Open(SweepOptions(env), path, &db);
  ExpectClean(s, "Open");
  if (!s.ok()) return;
  auto put = [&](const std::string& k, bool sync) {
    const std::string v = "v-" + k + std::string(k.size() * 7 % 300, 'x');
    Status ps = db->Put(WriteOptions{.sync = sync}, k, v);
    ExpectClean(ps, "Put " + k);
    (ps.ok() ? out->acked : out->maybe)[k] = v;
  };
  for (int i = 0; i < 30; ++i) put("a" + std::to_string(i), i % 5 == 0);
  ExpectClean(db->Checkpoint(), "first Checkpoint");
  {
    std::unique_ptr<Transaction> txn = db->BeginTransaction(WriteOptions{.sync = true});
    std::map<std::string, std::string> writes;
    for (int i = 0; i < 5; ++i) {
      const std::string k = "t" + std::to_string(i);
      writes[k] = "txn-" + k;
      ExpectClean(txn->Put(k, writes[k]), "transaction Put");
    }
    Status cs = txn->Commit();
    ExpectClean(cs, "Commit");
    for (const auto& [k, v] : writes) (cs.ok() ? out->acked : out->maybe)[k] = v;
  }
  for (int i = 0; i < 20; ++i) put("b" + std::to_string(i), i % 4 == 0);
  ExpectClean(db->Checkpoint(), "second Checkpoint");
  for (int i = 0; i < 10; ++i) put("c" + std::to_string(i), false);
  ExpectClean(db->Close(), "Close");
  db.reset();
  test::ExpectPoolsReleased();
}

void CheckAfterReopen(const std::string& path, const Outcome& out, const std::string& trial) {
  std::unique_ptr<DB> db;
  Status s = DB::Open(Options{}, path, &db);
  ASSERT_TRUE(s.ok()) << trial << ": reopen: " << s.ToString();
  for (const auto& [k, v] : out.acked) {
    std::string got;
    s = db->Get(ReadOptions{}, k, &got);
    ASSERT_TRUE(s.ok()) << trial << ": acknowledged " << k << " lost: " << s.ToString();
    ASSERT_EQ(got, v) << trial << ": " << k;
  }
  std::unique_ptr<Iterator> it = db->NewIterator(ReadOptions{});
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const std::string k(it->key());
    auto m = out.maybe.find(k);
    if (out.acked.count(k) == 0) {
      ASSERT_NE(m, out.maybe.end()) << trial << ": unexpected key " << k;
      ASSERT_EQ(it->value(), m->second) << trial << ": unacknowledged " << k << " is wrong";
    }
  }
  ASSERT_OK(it->status());
  it.reset();
  VerifyReport report;
  s = db->Verify(&report);
  EXPECT_TRUE(s.ok()) << trial << ": " << s.ToString();
  ASSERT_OK(db->Put(WriteOptions{.sync = true}, "after", "reopen"));
  ASSERT_OK(db->Close());
  db.reset();
  test::ExpectPoolsReleased();
}

TEST(FaultSweepTest, EveryIoCallFailingOnceLeavesACleanDatabase) {
  test::TempDir dir;
  auto counter = std::make_shared<FaultInjectionEnv>(Env::Default());
  {
    Outcome clean;
    RunWorkload(dir.Join("count"), counter, &clean);
    ASSERT_TRUE(clean.maybe.empty()) << "the workload fails without faults";
  }
  const FaultOp kinds[] = {
      FaultOp::kRead,     FaultOp::kWrite,  FaultOp::kSync,    FaultOp::kOpen, FaultOp::kRename,
      FaultOp::kTruncate, FaultOp::kDelete, FaultOp::kSyncDir, FaultOp::kMap,  FaultOp::kPunch};
  const uint64_t max_trials = LongTests() ? UINT64_MAX : 60;
  int trials = 0;
  for (FaultOp kind : kinds) {
    const uint64_t calls = counter->Count(kind);
    std::printf("kind %d: %llu calls\n", static_cast<int>(kind),
                static_cast<unsigned long long>(calls));
    const uint64_t step = calls <= max_trials ? 1 : (calls + max_trials - 1) / max_trials;
    for (uint64_t n = 0; n < calls; n += step) {
      const std::string trial =
          "kind " + std::to_string(static_cast<int>(kind)) + ", call " + std::to_string(n);
      SCOPED_TRACE(trial);
      const std::string path = dir.Join("db" + std::to_string(trials++));
      auto env = std::make_shared<FaultInjectionEnv>(Env::Default());
      env->AddRule(
          {.file_substring = "", .op = kind, .error = EIO, .after_ops = n, .one_shot = true});
      Outcome out;
      ASSERT_NO_FATAL_FAILURE(RunWorkload(path, env, &out));
      ASSERT_NO_FATAL_FAILURE(CheckAfterReopen(path, out, trial));
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  }
  std::printf("%d trials of one failing I/O call\n", trials);
  EXPECT_GE(trials, 60);
}

}  // namespace
}  // namespace arenakv
