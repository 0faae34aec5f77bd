// compare: runs db_bench-style workloads on arenakv and on the anchor engines
// (RocksDB, and LevelDB, LMDB and WiredTiger where they were found at
// configure time) with the same keys, values and key orders, and reports
// throughput, ratios, size on disk and memory as a table, JSON and an SVG
// chart.
//
// Every (workload, engine, repetition) runs in its own forked child, so that
// the child's peak RSS and its RSS after close belong to that engine alone.
// Engines alternate workload by workload (arenakv, rocksdb, leveldb, lmdb,
// wiredtiger, arenakv, ...) and the whole sequence repeats --reps times; the
// report shows medians.
//
//   compare [--keys N] [--reps R] [--workloads a,b,c] [--engine all|both|e1,e2,...]
//           [--dir DIR] [--seconds S] [--seed N] [--json FILE] [--plot FILE.svg]
//           [--cache_mib N] [--budget_mib N]   (cache of every engine; arenakv's budget)
//           [--map_reads]   (arenakv's Options::map_reads)
//           [--memory_limit_mib N]   (each timed child in a memory cgroup of N MiB,
//                                     its page cache included; see memory_limit.h;
//                                     random reads then stop after --seconds)

#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "compare/engine_adapter.h"
#include "compare/memory_limit.h"
#include "compare/report.h"
#include "compare/sys_stats.h"
#include "compare/workload.h"

namespace arenakv::compare {

void Die(const std::string& what) {
  std::fflush(stdout);
  std::fprintf(stderr, "compare: %s\n", what.c_str());
  std::fflush(stderr);
  _exit(2);
}

MemorySettings& Memory() {
  static MemorySettings settings;
  return settings;
}

namespace {

constexpr int kChildTimeoutSeconds = 1800;

// Whether `engine` was compiled into this program: arenakv and RocksDB
// always; the other anchors when CMake found them.
bool EngineBuilt(int engine) {
  switch (engine) {
    case kArenakv:
    case kRocksdb:
      return true;
    case kLeveldb:
#ifdef ARENAKV_COMPARE_HAVE_LEVELDB
      return true;
#else
      return false;
#endif
    case kLmdb:
#ifdef ARENAKV_COMPARE_HAVE_LMDB
      return true;
#else
      return false;
#endif
    case kWiredtiger:
#ifdef ARENAKV_COMPARE_HAVE_WIREDTIGER
      return true;
#else
      return false;
#endif
  }
  return false;
}

std::unique_ptr<EngineAdapter> NewAdapter(int engine) {
  switch (engine) {
    case kArenakv:
      return NewArenakvAdapter();
    case kRocksdb:
      return NewRocksdbAdapter();
#ifdef ARENAKV_COMPARE_HAVE_LEVELDB
    case kLeveldb:
      return NewLeveldbAdapter();
#endif
#ifdef ARENAKV_COMPARE_HAVE_LMDB
    case kLmdb:
      return NewLmdbAdapter();
#endif
#ifdef ARENAKV_COMPARE_HAVE_WIREDTIGER
    case kWiredtiger:
      return NewWiredtigerAdapter();
#endif
  }
  Die(std::string("engine ") + kEngineNames[engine] + " is not built");
}

struct Flags {
  uint64_t keys = 1'000'000;
  int reps = 3;
  std::vector<Workload> workloads;
  std::array<bool, kEngineCount> engines{true, true, true, true, true};
  std::string dir;
  double seconds = 3.0;
  uint64_t seed = 301;
  std::string json;
  std::string plot;
  size_t memory_limit_mib = 0;  // 0: no cgroup
};

void Usage() {
  std::fprintf(stderr,
               "usage: compare [--keys N] [--reps R] [--workloads a,b,c] "
               "[--engine all|both|ENGINE,ENGINE...]\n"
               "               [--dir DIR] [--seconds S] [--seed N] [--json FILE] "
               "[--plot FILE.svg]\n"
               "               [--cache_mib N (256)] [--budget_mib N (arenakv's default)]\n"
               "               [--map_reads (arenakv reads its file through a mapping)]\n"
               "               [--memory_limit_mib N (timed children in a memory cgroup)]\n"
               "engines (all, the default; both = arenakv,rocksdb):");
  for (int e = 0; e < kEngineCount; ++e) {
    std::fprintf(stderr, " %s%s", kEngineNames[e], EngineBuilt(e) ? "" : " (not built)");
  }
  std::fprintf(stderr, "\nworkloads:");
  for (const WorkloadInfo& info : AllWorkloads()) std::fprintf(stderr, " %s", info.name);
  std::fprintf(stderr, "\n");
}

bool ParseFlags(int argc, char** argv, Flags* flags) {
  bool workloads_given = false;
  std::vector<bool> wanted(kWorkloadCount, false);
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string value;
    size_t eq = arg.find('=');
    std::string_view name = arg.substr(0, eq);
    auto next = [&]() -> bool {
      if (eq != std::string_view::npos) {
        value = std::string(arg.substr(eq + 1));
        return true;
      }
      if (i + 1 >= argc) {
        std::fprintf(stderr, "compare: %s needs a value\n", argv[i]);
        return false;
      }
      value = argv[++i];
      return true;
    };
    try {
      if (name == "--help" || name == "-h") {
        Usage();
        std::exit(0);
      } else if (name == "--cache_mib") {
        if (!next()) return false;
        Memory().cache_bytes = static_cast<size_t>(std::stoull(value)) << 20;
      } else if (name == "--map_reads") {
        Memory().map_reads = true;
      } else if (name == "--budget_mib") {
        if (!next()) return false;
        Memory().memory_budget_bytes = static_cast<size_t>(std::stoull(value)) << 20;
      } else if (name == "--memory_limit_mib") {
        if (!next()) return false;
        flags->memory_limit_mib = static_cast<size_t>(std::stoull(value));
      } else if (name == "--keys") {
        if (!next()) return false;
        flags->keys = std::stoull(value);
      } else if (name == "--reps") {
        if (!next()) return false;
        flags->reps = std::stoi(value);
      } else if (name == "--seconds") {
        if (!next()) return false;
        flags->seconds = std::stod(value);
      } else if (name == "--seed") {
        if (!next()) return false;
        flags->seed = std::stoull(value);
      } else if (name == "--dir") {
        if (!next()) return false;
        flags->dir = value;
      } else if (name == "--json") {
        if (!next()) return false;
        flags->json = value;
      } else if (name == "--plot") {
        if (!next()) return false;
        flags->plot = value;
      } else if (name == "--engine") {
        if (!next()) return false;
        flags->engines.fill(false);
        size_t pos = 0;
        while (pos <= value.size()) {
          size_t comma = value.find(',', pos);
          if (comma == std::string::npos) comma = value.size();
          std::string item = value.substr(pos, comma - pos);
          pos = comma + 1;
          if (item.empty()) continue;
          if (item == "all") {
            flags->engines.fill(true);
            continue;
          }
          if (item == "both") {  // the two engines of the first comparison
            flags->engines[kArenakv] = flags->engines[kRocksdb] = true;
            continue;
          }
          int found = -1;
          for (int e = 0; e < kEngineCount; ++e) {
            if (item == kEngineNames[e]) found = e;
          }
          if (found < 0) {
            std::fprintf(stderr, "compare: unknown engine '%s'\n", item.c_str());
            Usage();
            return false;
          }
          flags->engines[found] = true;
        }
      } else if (name == "--workloads") {
        if (!next()) return false;
        workloads_given = true;
        size_t pos = 0;
        while (pos <= value.size()) {
          size_t comma = value.find(',', pos);
          if (comma == std::string::npos) comma = value.size();
          std::string item = value.substr(pos, comma - pos);
          pos = comma + 1;
          if (item.empty()) continue;
          if (item == "all") {
            wanted.assign(kWorkloadCount, true);
            continue;
          }
          std::optional<Workload> w = ParseWorkload(item);
          if (!w) {
            std::fprintf(stderr, "compare: unknown workload '%s'\n", item.c_str());
            Usage();
            return false;
          }
          wanted[static_cast<int>(*w)] = true;
        }
      } else {
        std::fprintf(stderr, "compare: unknown option '%s'\n", argv[i]);
        Usage();
        return false;
      }
    } catch (const std::exception&) {
      std::fprintf(stderr, "compare: bad value '%s' for %s\n", value.c_str(),
                   std::string(name).c_str());
      return false;
    }
  }
  if (flags->keys < 10 || flags->keys > 0xFFFFFFFFull) {
    std::fprintf(stderr, "compare: --keys must be between 10 and 2^32-1\n");
    return false;
  }
  if (flags->reps < 1) {
    std::fprintf(stderr, "compare: --reps must be at least 1\n");
    return false;
  }
  if (!workloads_given) wanted.assign(kWorkloadCount, true);
  // Always the canonical order: later workloads rely on the state earlier
  // ones leave (reads verify the versions the writes left).
  for (const WorkloadInfo& info : AllWorkloads()) {
    if (wanted[static_cast<int>(info.id)]) flags->workloads.push_back(info.id);
  }
  if (flags->workloads.empty()) {
    std::fprintf(stderr, "compare: no workload selected\n");
    return false;
  }
  // An anchor this program was built without is left out (and shown as
  // "not built" in the report), not an error.
  bool any = false;
  for (int e = 0; e < kEngineCount; ++e) {
    if (flags->engines[e] && !EngineBuilt(e)) {
      std::fprintf(stderr,
                   "compare: %s was not found when this program was configured: not run "
                   "(install its development package and reconfigure)\n",
                   kEngineNames[e]);
      flags->engines[e] = false;
    }
    any |= flags->engines[e];
  }
  if (!any) {
    std::fprintf(stderr, "compare: no engine selected\n");
    return false;
  }
  return true;
}

// Runs one workload on one engine in a forked child and collects its result.
// `limit`, when active, holds the child (memory_limit.h); its data's cached
// pages are dropped first.
RunRecord RunChild(int engine, Workload w, const std::string& dir, const WorkloadConfig& config,
                   const MemoryLimit* limit = nullptr) {
  RunRecord record;
  if (limit != nullptr && limit->active()) EvictPageCache(dir);
  int fds[2];
  if (::pipe(fds) != 0) {
    record.error = std::string("pipe: ") + std::strerror(errno);
    return record;
  }
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = ::fork();
  if (pid < 0) {
    record.error = std::string("fork: ") + std::strerror(errno);
    ::close(fds[0]);
    ::close(fds[1]);
    return record;
  }
  if (pid == 0) {
    ::close(fds[0]);
    std::string error;
    if (limit != nullptr && limit->active() && !limit->Join(&error)) {
      std::fprintf(stderr, "compare: %s\n", error.c_str());
      _exit(4);
    }
    std::unique_ptr<EngineAdapter> adapter = NewAdapter(engine);
    PhaseResult result = RunPhase(adapter.get(), w, dir, config);
    adapter.reset();
    const char* p = reinterpret_cast<const char*>(&result);
    size_t left = sizeof(result);
    while (left > 0) {
      ssize_t n = ::write(fds[1], p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) _exit(3);
      p += n;
      left -= static_cast<size_t>(n);
    }
    _exit(0);
  }

  ::close(fds[1]);
  PhaseResult result;
  char* p = reinterpret_cast<char*>(&result);
  size_t got = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kChildTimeoutSeconds);
  bool timed_out = false;
  while (got < sizeof(result)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    struct pollfd pfd = {fds[0], POLLIN, 0};
    int ready = ::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left.count(), 60'000)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    ssize_t n = ::read(fds[0], p + got, sizeof(result) - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fds[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    record.error = "timed out after " + std::to_string(kChildTimeoutSeconds) + " s";
  } else if (WIFSIGNALED(status)) {
    record.error = std::string("child killed by signal ") + strsignal(WTERMSIG(status));
  } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    record.error = "child exited with status " + std::to_string(WEXITSTATUS(status)) +
                   " (its message is above)";
  } else if (got != sizeof(result)) {
    record.error = "child sent a short result";
  } else {
    record.ok = true;
    record.phase = result;
  }
  return record;
}

std::string SlotDir(const std::string& root, int engine, DbSlot slot) {
  const char* name = slot == DbSlot::kSeq ? "/seq" : slot == DbSlot::kFresh ? "/fresh" : "/main";
  return root + "/" + kEngineNames[engine] + name;
}

void RemoveAll(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

// What an engine's "main" database holds at a point of the run.
struct EngineState {
  bool main_filled = false;
  uint32_t version = kVersionFill;
};

void PrintProgress(int rep, int reps, Workload w, int engine, const RunRecord& r) {
  const WorkloadInfo& info = InfoOf(w);
  if (!r.ok) {
    std::fprintf(stderr, "[rep %d/%d] %-18s %-10s FAILED: %s\n", rep + 1, reps, info.name,
                 kEngineNames[engine], r.error.c_str());
    return;
  }
  const PhaseResult& p = r.phase;
  char prep[48] = "";
  if (p.prep_seconds > 0) {
    std::snprintf(prep, sizeof(prep), "untimed fill %.2f s, ", p.prep_seconds);
  }
  double rate = p.seconds > 0 ? static_cast<double>(p.ops) / p.seconds : 0;
  std::fprintf(stderr,
               "[rep %d/%d] %-18s %-10s %12.0f %-9s (%.2f s; %sopen %.2f s, persist %.2f s, "
               "close %.2f s) peak RSS %.1f MiB, after close %+.1f MiB",
               rep + 1, reps, info.name, kEngineNames[engine], rate, info.unit, p.seconds, prep,
               p.open_seconds, p.persist_seconds, p.close_seconds,
               static_cast<double>(p.rss_peak) / 1048576.0,
               static_cast<double>(p.rss_after_close - p.rss_before_open) / 1048576.0);
  if (info.fills) {
    std::fprintf(stderr, ", disk %.1f MiB",
                 static_cast<double>(r.disk.allocated_bytes) / 1048576.0);
  }
  if (p.not_found > 0 || p.mismatches > 0) {
    std::fprintf(stderr, " VERIFY FAILED: %llu not found, %llu wrong",
                 static_cast<unsigned long long>(p.not_found),
                 static_cast<unsigned long long>(p.mismatches));
  }
  if (p.conflicts > 0) {
    std::fprintf(stderr, ", %llu conflicts", static_cast<unsigned long long>(p.conflicts));
  }
  std::fprintf(stderr, "\n");
}

bool WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    std::fprintf(stderr, "compare: cannot write %s\n", path.c_str());
    return false;
  }
  return true;
}

int Main(int argc, char** argv) {
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) return 1;

  bool temp_root = flags.dir.empty();
  std::string root = flags.dir;
  if (temp_root) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "arenakv-compare-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::fprintf(stderr, "compare: mkdtemp: %s\n", std::strerror(errno));
      return 1;
    }
    root = tmpl;
  } else {
    std::error_code ec;
    std::filesystem::create_directories(root, ec);
    if (ec) {
      std::fprintf(stderr, "compare: cannot create %s: %s\n", root.c_str(), ec.message().c_str());
      return 1;
    }
  }

  MemoryLimit limit;
  if (flags.memory_limit_mib > 0) {
    std::string error;
    if (!MemoryLimit::Create(flags.memory_limit_mib << 20, &limit, &error)) {
      std::fprintf(stderr, "compare: --memory_limit_mib: %s\n", error.c_str());
      return 1;
    }
    std::fprintf(stderr, "compare: every timed run in a memory cgroup: %s\n",
                 limit.Describe().c_str());
  }

  ComparisonRun run;
  run.machine = DescribeMachine(root);
  run.load_at_start = LoadAverage();
  for (int i = 0; i < argc; ++i) {
    if (i > 0) run.command += ' ';
    run.command += i == 0 ? std::filesystem::path(argv[0]).filename().string() : argv[i];
  }
  run.config.keys = flags.keys;
  run.config.seconds = flags.seconds;
  run.config.seed = flags.seed;
  if (flags.memory_limit_mib > 0) run.config.read_seconds = flags.seconds;
  run.reps = flags.reps;
  run.engines = flags.engines;
  for (int e = 0; e < kEngineCount; ++e) run.built[e] = EngineBuilt(e);
  for (Workload w : flags.workloads) run.workloads.push_back(WorkloadRuns{w, {}});

  std::fprintf(stderr, "compare: %s; %u cpus, %s, %s; disk %s; data in %s\n", run.command.c_str(),
               run.machine.cpus, run.machine.cpu_model.c_str(), run.machine.kernel.c_str(),
               run.machine.disk.c_str(), root.c_str());

  for (int rep = 0; rep < flags.reps; ++rep) {
    std::array<EngineState, kEngineCount> state{};
    for (int e = 0; e < kEngineCount; ++e) RemoveAll(root + "/" + kEngineNames[e]);
    for (WorkloadRuns& wr : run.workloads) {
      const WorkloadInfo& info = InfoOf(wr.workload);
      for (int e = 0; e < kEngineCount; ++e) {
        if (!flags.engines[e]) continue;
        std::string dir = SlotDir(root, e, info.slot);
        std::filesystem::create_directories(root + "/" + kEngineNames[e]);
        if (info.fills) {
          RemoveAll(dir);
        } else if (!state[e].main_filled) {
          // A workload that needs a loaded database, selected without
          // fillrandom: load it first, untimed and unreported.
          WorkloadConfig prep = run.config;
          RunRecord r = RunChild(e, Workload::kFillRandom, dir, prep);
          if (!r.ok) {
            std::fprintf(stderr, "compare: preparing %s for %s failed: %s\n", kEngineNames[e],
                         info.name, r.error.c_str());
          }
          state[e].main_filled = true;
          state[e].version = kVersionFill;
        }
        WorkloadConfig config = run.config;
        config.version = state[e].version;
        RunRecord r = RunChild(e, wr.workload, dir, config, &limit);
        if (info.fills) r.disk = MeasureDiskUsage(dir);
        PrintProgress(rep, flags.reps, wr.workload, e, r);
        wr.runs[e].push_back(r);
        switch (wr.workload) {
          case Workload::kFillSeq:
          case Workload::kReadSeqFresh:
          case Workload::kChurn:
            RemoveAll(dir);  // measured; only "main" is used further
            break;
          case Workload::kFillRandom:
            state[e].main_filled = true;
            state[e].version = kVersionFill;
            break;
          case Workload::kOverwrite:
            state[e].version = kVersionOverwrite;
            break;
          default:
            break;
        }
      }
    }
  }
  run.load_at_end = LoadAverage();
  if (temp_root) RemoveAll(root);

  std::printf("machine: %u cpus, %s, %s, %.1f GiB RAM, disk %s\n", run.machine.cpus,
              run.machine.cpu_model.c_str(), run.machine.kernel.c_str(),
              static_cast<double>(run.machine.memory_bytes) / (1024.0 * 1024 * 1024),
              run.machine.disk.c_str());
  std::printf("command: %s\n", run.command.c_str());
  std::printf("load average (1, 5, 15 min): %s at the start, %s at the end\n",
              run.load_at_start.c_str(), run.load_at_end.c_str());
  std::printf(
      "%llu keys of 16 bytes, values of 100 bytes (half compressible), %zu MiB cache "
      "(LMDB: none, the OS page cache), arenakv budget %s%s; medians of %d reps\n\n",
      static_cast<unsigned long long>(flags.keys), Memory().cache_bytes >> 20,
      Memory().memory_budget_bytes == 0
          ? "default"
          : (std::to_string(Memory().memory_budget_bytes >> 20) + " MiB").c_str(),
      Memory().map_reads ? ", reads through a mapping" : "", flags.reps);
  std::fputs(FormatTable(run).c_str(), stdout);

  bool ok = true;
  if (!flags.json.empty()) ok &= WriteFile(flags.json, FormatJson(run));
  if (!flags.plot.empty()) ok &= WriteFile(flags.plot, FormatSvg(run));
  if (!AllRunsClean(run)) {
    std::fprintf(stderr, "compare: some runs failed or read wrong data (see notes)\n");
    return 3;
  }
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace arenakv::compare

int main(int argc, char** argv) { return arenakv::compare::Main(argc, argv); }
