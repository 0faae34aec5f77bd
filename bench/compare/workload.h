// The comparison's workloads: what each one does to a database, and the loop
// that runs one of them on one engine inside a child process, measuring its
// throughput and the child's memory around it.
//
// Thread safety: RunPhase is called once per child process; it starts and
// joins its own worker threads.

#ifndef ARENAKV_BENCH_COMPARE_WORKLOAD_H_
#define ARENAKV_BENCH_COMPARE_WORKLOAD_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "compare/engine_adapter.h"

namespace arenakv::compare {

enum class Workload : int {
  kFillSeq,
  kFillRandom,
  kOverwrite,
  kReadRandom,
  kReadRandom2,
  kReadSeq,
  kReadSeqFresh,
  kTxn10,
  kBatch10,
  kSyncCommit1,
  kSyncCommit4,
  kSyncCommit4Busy,
  kYcsbA,
  kChurn,
};
inline constexpr int kWorkloadCount = 14;

// Which database directory of an engine a workload works on. "seq" is filled
// by fillseq and measured, then removed; "main" is filled by fillrandom and
// used by every later workload; "fresh" is filled and scanned by
// readseq-fresh in one child, then removed.
enum class DbSlot { kSeq, kMain, kFresh };

struct WorkloadInfo {
  Workload id;
  const char* name;
  const char* unit;  // of the throughput: ops/s, txn/s, commits/s
  DbSlot slot;
  bool fills;          // starts from an empty directory
  bool persists;       // checkpoints/flushes (untimed) before closing
  bool transactional;  // RocksDB opens an OptimisticTransactionDB
  double target;       // the design target for arenakv/rocksdb; 0 = none
  const char* what;    // one line for the report
};

// In canonical run order (the order of the enum).
const std::vector<WorkloadInfo>& AllWorkloads();
const WorkloadInfo& InfoOf(Workload w);
std::optional<Workload> ParseWorkload(std::string_view name);

// Value versions, so that reads know which value every key must hold.
inline constexpr uint32_t kVersionFill = 0;
inline constexpr uint32_t kVersionOverwrite = 1;
inline constexpr uint32_t kVersionTxn10 = 2;
inline constexpr uint32_t kVersionSyncCommit = 3;
inline constexpr uint32_t kVersionYcsb = 4;

struct WorkloadConfig {
  uint64_t keys = 1'000'000;
  double seconds = 3.0;  // time cap of the synced-commit and YCSB workloads
  uint64_t seed = 301;
  // The version every key of "main" holds when the workload starts (reads
  // verify against it); ignored by workloads that do not verify exact values.
  uint32_t version = kVersionFill;
  // Random reads stop after this long (0: never). Set under a memory limit,
  // where a read may wait for the disk and N of them could take an hour.
  double read_seconds = 0;
};

// What one child measured. Trivially copyable: it crosses a pipe.
struct PhaseResult {
  uint64_t ops = 0;
  uint64_t not_found = 0;   // reads of keys that must exist but did not
  uint64_t mismatches = 0;  // reads that returned a wrong value or key
  uint64_t conflicts = 0;   // transactions that lost a write-write conflict
  double seconds = 0;       // the timed loop only
  double prep_seconds = 0;  // untimed preparation inside the child (readseq-fresh's fill)
  double open_seconds = 0;
  double persist_seconds = 0;
  double close_seconds = 0;
  int64_t rss_before_open = -1;  // bytes
  int64_t rss_peak = -1;         // VmHWM at the end of the child
  int64_t rss_after_close = -1;
  int64_t anon_rss_before_open = -1;  // RssAnon: without file-backed code pages
  int64_t anon_rss_after_close = -1;
  bool peak_reset = false;  // VmHWM was reset to the pre-open RSS
};

// Runs `w` on `engine` in `dir`. Dies (ends the process) on engine errors.
PhaseResult RunPhase(EngineAdapter* engine, Workload w, const std::string& dir,
                     const WorkloadConfig& config);

}  // namespace arenakv::compare

#endif  // ARENAKV_BENCH_COMPARE_WORKLOAD_H_
