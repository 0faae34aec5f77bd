// Helpers for the suites that open whole databases: Status assertions and
// the check that a closed database left no pool and no mapping behind.
//
// Thread safety: test code; ExpectPoolsReleased reads process-wide counters.
#ifndef ARENAKV_TESTS_ENGINE_DB_TEST_UTIL_H_
#define ARENAKV_TESTS_ENGINE_DB_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "arenakv/alloc/segment_pool.h"
#include "arenakv/db.h"
#include "arenakv/iterator.h"
#include "arenakv/status.h"
#include "arenakv/transaction.h"
#include "test_util.h"

namespace arenakv::test {

// The proof that a closed database left nothing mapped behind: every pool
// in the process is gone and no byte is mapped.
inline void ExpectPoolsReleased() {
  const alloc::ProcessPoolStats stats = alloc::GetProcessPoolStats();
  EXPECT_EQ(stats.mapped_bytes, 0u) << "memory still mapped after Close()";
  EXPECT_EQ(stats.live_pools, 0u) << "a pool is still alive after Close()";
}

// Puts 4 KiB values into `filler` until the database's pool has no more
// than `headroom` bytes left under `budget` (its memory budget): for tests
// that make a later allocation, and only it, fail.
inline void FillBudgetUntil(DB* db, Transaction* filler, size_t budget, size_t headroom) {
  const std::string chunk(4 << 10, 'f');
  for (int i = 0;; ++i) {
    DBStats st;
    ASSERT_OK(db->GetStats(&st));
    if (st.pool.in_use_bytes + headroom >= budget) return;
    ASSERT_OK(filler->Put("filler" + std::to_string(i), chunk));
  }
}

// Every key and value of the database, read through an iterator.
inline std::map<std::string, std::string> Contents(DB* db) {
  std::map<std::string, std::string> m;
  std::unique_ptr<Iterator> it = db->NewIterator(ReadOptions());
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    m.emplace(std::string(it->key()), std::string(it->value()));
  }
  EXPECT_OK(it->status());
  return m;
}

// Opens the closed database at `path` (not creating it), checks it with
// Verify() and returns its contents: what a copy or a repair must pass.
inline std::map<std::string, std::string> OpenVerifyContents(const std::string& path) {
  std::unique_ptr<DB> db;
  Options options;
  options.create_if_missing = false;
  Status s = DB::Open(options, path, &db);
  EXPECT_TRUE(s.ok()) << path << ": " << s.ToString();
  if (!s.ok()) return {};
  VerifyReport report;
  s = db->Verify(&report);
  EXPECT_TRUE(s.ok()) << path << ": " << s.ToString();
  auto contents = Contents(db.get());
  s = db->Close();
  EXPECT_TRUE(s.ok()) << path << ": " << s.ToString();
  return contents;
}

}  // namespace arenakv::test

#endif  // ARENAKV_TESTS_ENGINE_DB_TEST_UTIL_H_
