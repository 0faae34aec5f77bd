// What the comparison measures about the process and the machine rather than
// the engines: resident memory (from /proc/self/status), size on disk of a
// directory (as du counts it), and a description of the machine.
//
// Thread safety: every function may be called from any thread.

#ifndef ARENAKV_BENCH_COMPARE_SYS_STATS_H_
#define ARENAKV_BENCH_COMPARE_SYS_STATS_H_

#include <cstdint>
#include <string>

namespace arenakv::compare {

// The process's current resident set (VmRSS), in bytes; -1 if unknown.
int64_t CurrentRssBytes();
// The anonymous part of the resident set (RssAnon: heap, mmap'ed memory,
// stacks), in bytes; -1 if unknown. The rest is mostly file-backed code.
int64_t AnonRssBytes();
// The process's peak resident set (VmHWM), in bytes; -1 if unknown.
int64_t PeakRssBytes();
// Resets VmHWM to the current RSS (writes 5 to /proc/self/clear_refs), so the
// peak that follows belongs to what runs next. False when the kernel refuses.
bool ResetPeakRss();

// Reads one byte of every page of the process's file-backed executable
// mappings (the program and its shared libraries), so that code the engines
// fault in on first use is resident before the pre-open RSS is taken: the
// RSS-after-close figure is then memory an engine holds, not the program's
// code. Both engines get the same treatment (they share one binary).
void PrefaultCode();

struct DiskUsage {
  uint64_t allocated_bytes = 0;  // sum of st_blocks * 512, what du reports
  uint64_t apparent_bytes = 0;   // sum of st_size
  uint64_t files = 0;
};
// Walks `dir` recursively; zeroes when it does not exist.
DiskUsage MeasureDiskUsage(const std::string& dir);

struct MachineInfo {
  unsigned cpus = 0;
  std::string cpu_model;
  std::string kernel;
  uint64_t memory_bytes = 0;
  std::string disk;  // the block device under `dir` and whether it rotates
};
MachineInfo DescribeMachine(const std::string& dir);

// The first three fields of /proc/loadavg: the machine is shared, and a busy
// machine explains noisy numbers.
std::string LoadAverage();

}  // namespace arenakv::compare

#endif  // ARENAKV_BENCH_COMPARE_SYS_STATS_H_
