// Turns the runs of a comparison into what people read: the medians and
// ratios as a text table, the whole run (every repetition) as JSON, and the
// ratios as an SVG bar chart. Also the summary rows (sizes, RSS, commit
// scaling) each of those shows, with the design targets next to them.
//
// Thread safety: pure functions of their arguments.

#ifndef ARENAKV_BENCH_COMPARE_REPORT_H_
#define ARENAKV_BENCH_COMPARE_REPORT_H_

#include <array>
#include <string>
#include <vector>

#include "compare/sys_stats.h"
#include "compare/workload.h"

namespace arenakv::compare {

// arenakv and the anchors it is measured against, in the order they run and
// are shown. Every engine but arenakv is an anchor; RocksDB is the one the
// design targets are set against.
enum EngineId { kArenakv = 0, kRocksdb = 1, kLeveldb = 2, kLmdb = 3, kWiredtiger = 4 };
inline constexpr int kEngineCount = 5;
inline constexpr const char* kEngineNames[kEngineCount] = {"arenakv", "rocksdb", "leveldb", "lmdb",
                                                           "wiredtiger"};

// One child's run of one workload on one engine.
struct RunRecord {
  bool ok = false;
  std::string error;  // when !ok
  PhaseResult phase;
  DiskUsage disk;  // after the run, for the workloads that fill a database
};

struct WorkloadRuns {
  Workload workload;
  std::array<std::vector<RunRecord>, kEngineCount> runs;  // one per repetition
};

struct ComparisonRun {
  MachineInfo machine;
  std::string command;
  WorkloadConfig config;
  int reps = 0;
  std::array<bool, kEngineCount> engines{};  // selected and built: these ran
  std::array<bool, kEngineCount> built{};    // compiled into this program
  std::vector<WorkloadRuns> workloads;       // in run order
  std::string load_at_start;                 // /proc/loadavg at the start and the end
  std::string load_at_end;
};

// A row of the summary: a throughput, a size or a memory figure for every
// engine, arenakv's ratio to RocksDB and to the best anchor, and the design
// target it is held against.
struct SummaryRow {
  std::string label;
  std::string unit;
  std::array<double, kEngineCount> value{};  // NaN when not measured
  double ratio = 0;                          // arenakv / rocksdb; NaN when n/a
  // arenakv / the best of the other engines (highest throughput, smallest
  // size or memory); NaN when n/a. best_anchor is that engine, -1 when none.
  double ratio_best = 0;
  int best_anchor = -1;
  std::string target;  // "" when the row has none
  int met = -1;        // 1 met, 0 missed, -1 no target/unknown
  std::string note;    // verification failures, conflicts
  bool throughput = false;
};

std::vector<SummaryRow> Summarize(const ComparisonRun& run);
// True when every run succeeded and every read verified.
bool AllRunsClean(const ComparisonRun& run);

std::string FormatTable(const ComparisonRun& run);
std::string FormatJson(const ComparisonRun& run);
std::string FormatSvg(const ComparisonRun& run);

}  // namespace arenakv::compare

#endif  // ARENAKV_BENCH_COMPARE_REPORT_H_
