// tenants: many small databases in one process under one MemoryBudget, as a
// server with a database per tenant runs them. Reports, for N databases:
// the open time and what an idle open database costs (resident memory,
// budget bytes, file descriptors, threads), the throughput and memory of a
// skewed load (tenants chosen by Zipf, puts and gets of 100-byte values),
// what closing them all leaves behind, and a cold reopen.
//
//   tenants [--dbs N (1000)] [--budget_mib M (256)] [--cache_kib K (256)]
//           [--keys K (10000, per tenant)] [--ops N (2000000)] [--put_pct P (70)]
//           [--zipf S (0.99)] [--dir DIR] [--threads T (2, background)]
//
// Memory is read from /proc/self/statm (resident pages) with no
// malloc_trim: what the process really holds.
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "arenakv/db.h"
#include "arenakv/memory_budget.h"
#include "tenants/tenants_util.h"

namespace {

using tenants::Clock;
using tenants::CountEntries;
using tenants::Flags;
using tenants::Key;
using tenants::ResidentBytes;
using tenants::Seconds;
using tenants::Zipf;

int Fail(const char* what, const arenakv::Status& s) {
  std::fprintf(stderr, "tenants: %s: %s\n", what, s.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  if (!tenants::ParseFlags("tenants", argc, argv, &f)) return 2;
  std::string root = f.dir;
  bool temp = false;
  if (root.empty()) {
    char tmpl[] = "/tmp/arenakv-tenants-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return 1;
    root = tmpl;
    temp = true;
  }
  arenakv::SetBackgroundThreads(f.threads);
  auto budget = arenakv::MemoryBudget::Create(f.budget_mib << 20);
  arenakv::Options o;
  o.memory_budget = budget;
  o.cache_bytes = f.cache_kib << 10;
  auto path = [&](int d) { return root + "/t" + std::to_string(d); };
  std::vector<std::unique_ptr<arenakv::DB>> dbs(f.dbs);

  // Created, then closed: the opens measured below find databases on disk.
  for (int d = 0; d < f.dbs; ++d) {
    arenakv::Status s = arenakv::DB::Open(o, path(d), &dbs[d]);
    if (!s.ok()) return Fail("create", s);
    dbs[d].reset();
  }
  const size_t rss0 = ResidentBytes();
  const size_t fds0 = CountEntries("/proc/self/fd");
  const size_t threads0 = CountEntries("/proc/self/task");
  auto t = Clock::now();
  for (int d = 0; d < f.dbs; ++d) {
    arenakv::Status s = arenakv::DB::Open(o, path(d), &dbs[d]);
    if (!s.ok()) return Fail("open", s);
  }
  const double open_s = Seconds(t);
  const size_t idle_rss = ResidentBytes() - rss0;
  const size_t idle_budget = budget->used_bytes();
  const size_t idle_fds = CountEntries("/proc/self/fd") - fds0;
  const size_t idle_threads = CountEntries("/proc/self/task") - threads0;
  std::printf("databases                 %d (budget %zu MiB, cache %zu KiB each)\n", f.dbs,
              f.budget_mib, f.cache_kib);
  std::printf("open all (warm files)     %.3f s, %.2f ms each\n", open_s, 1e3 * open_s / f.dbs);
  std::printf(
      "idle, per database        %.1f KiB resident, %.1f KiB of the budget, %.2f fds, "
      "%.2f threads\n",
      idle_rss / 1024.0 / f.dbs, idle_budget / 1024.0 / f.dbs,
      static_cast<double>(idle_fds) / f.dbs, static_cast<double>(idle_threads) / f.dbs);

  // The load: each tenant starts empty; puts of new or existing keys, gets
  // of keys written (misses count as gets too).
  Zipf zipf(f.dbs, f.zipf);
  std::mt19937_64 rng(301);
  const std::string value(100, 'v');
  std::string got;
  long memory_errors = 0;
  size_t peak_rss = ResidentBytes();
  t = Clock::now();
  for (long i = 0; i < f.ops; ++i) {
    const int d = zipf.Next(&rng);
    const std::string k = Key(static_cast<int>(rng() % f.keys));
    arenakv::Status s;
    if (static_cast<int>(rng() % 100) < f.put_pct) {
      s = dbs[d]->Put(arenakv::WriteOptions(), k, value);
    } else {
      s = dbs[d]->Get(arenakv::ReadOptions(), k, &got);
      if (s.IsNotFound()) s = arenakv::Status::OK();
    }
    if (s.IsMemoryLimit()) {
      ++memory_errors;
    } else if (!s.ok()) {
      return Fail("load", s);
    }
    if ((i & 0xffff) == 0) peak_rss = std::max(peak_rss, ResidentBytes());
  }
  const double load_s = Seconds(t);
  peak_rss = std::max(peak_rss, ResidentBytes());
  std::printf(
      "load                      %ld ops (%d%% puts, zipf %.2f) in %.2f s: %.0f ops/s, "
      "%ld MemoryLimit\n",
      f.ops, f.put_pct, f.zipf, load_s, f.ops / std::max(load_s, 1e-9), memory_errors);
  std::printf(
      "peak                      +%.1f MiB resident, budget peak %.1f MiB of %zu, "
      "%zu threads in all\n",
      (peak_rss - rss0) / 1048576.0, budget->peak_bytes() / 1048576.0, f.budget_mib,
      CountEntries("/proc/self/task"));

  t = Clock::now();
  for (auto& db : dbs) {
    arenakv::Status s = db->Close();
    if (!s.ok()) return Fail("close", s);
    db.reset();
  }
  const double close_s = Seconds(t);
  std::printf("close all                 %.3f s; after: %+.1f MiB resident, budget %zu bytes\n",
              close_s, (static_cast<double>(ResidentBytes()) - rss0) / 1048576.0,
              budget->used_bytes());

  // Cold: the files' pages dropped from the OS cache where we may.
  std::FILE* drop = std::fopen("/proc/sys/vm/drop_caches", "w");
  const bool cold = drop != nullptr && std::fputs("1", drop) >= 0;
  if (drop != nullptr) std::fclose(drop);
  t = Clock::now();
  for (int d = 0; d < f.dbs; ++d) {
    arenakv::Status s = arenakv::DB::Open(o, path(d), &dbs[d]);
    if (!s.ok()) return Fail("reopen", s);
  }
  const double reopen_s = Seconds(t);
  std::printf("%s reopen all           %.3f s, %.2f ms each\n", cold ? "cold" : "warm", reopen_s,
              1e3 * reopen_s / f.dbs);
  for (auto& db : dbs) {
    arenakv::Status s = db->Close();
    if (!s.ok()) return Fail("close", s);
  }
  dbs.clear();
  if (temp) std::filesystem::remove_all(root);
  return 0;
}
