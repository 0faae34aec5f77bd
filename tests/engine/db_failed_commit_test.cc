// A commit reported as failed must never reappear after a reopen: when the
// WAL write or its fdatasync fails, the record is cut back out of the log.
#include <gtest/gtest.h>

#include <cerrno>
#include <memory>
#include <string>

#include "arenakv/alloc/segment_pool.h"
#include "arenakv/db.h"
#include "db_test_util.h"
#include "fault_env.h"
#include "test_util.h"

namespace arenakv {
namespace {

using test::ExpectPoolsReleased;

using test::FaultInjectionEnv;
using test::FaultOp;

// `op` fails once on the WAL during a synced Put; after reopening, the Put
// that failed is absent and everything acknowledged is present.
void FailedPutStaysFailed(FaultOp op) {
  test::TempDir dir;
  auto env = std::make_shared<FaultInjectionEnv>(Env::Default());
  Options options;
  options.env = env;
  std::unique_ptr<DB> db;
  ASSERT_TRUE(DB::Open(options, dir.Join("db"), &db).ok());
  ASSERT_TRUE(db->Put(WriteOptions{.sync = true}, "before", "1").ok());
  env->AddRule({.file_substring = "wal", .op = op, .error = EIO, .one_shot = true});
  Status s = db->Put(WriteOptions{.sync = true}, "failed", "2");
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  env->ClearRules();
  std::string v;
  EXPECT_TRUE(db->Get(ReadOptions{}, "failed", &v).IsNotFound());
  // The database keeps working in a fresh log.
  ASSERT_TRUE(db->Put(WriteOptions{.sync = true}, "after", "3").ok());
  // Close()'s checkpoint fails, so the reopen below must recover from the
  // logs alone: they, not a checkpoint, must carry the truth.
  env->AddRule({.file_substring = "data", .op = FaultOp::kWrite, .error = EIO});
  EXPECT_FALSE(db->Close().ok());
  db.reset();
  env->ClearRules();
  ExpectPoolsReleased();

  ASSERT_TRUE(DB::Open(options, dir.Join("db"), &db).ok());
  EXPECT_TRUE(db->Get(ReadOptions{}, "failed", &v).IsNotFound()) << "resurrected: " << v;
  ASSERT_TRUE(db->Get(ReadOptions{}, "before", &v).ok());
  EXPECT_EQ(v, "1");
  ASSERT_TRUE(db->Get(ReadOptions{}, "after", &v).ok());
  EXPECT_EQ(v, "3");
  ASSERT_TRUE(db->Close().ok());
  db.reset();
  ExpectPoolsReleased();
}

TEST(FailedCommitTest, FailedFsyncIsCutFromTheLog) { FailedPutStaysFailed(FaultOp::kSync); }

TEST(FailedCommitTest, FailedWriteIsCutFromTheLog) { FailedPutStaysFailed(FaultOp::kWrite); }

}  // namespace
}  // namespace arenakv
