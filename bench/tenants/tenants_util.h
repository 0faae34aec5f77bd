// What bench/tenants and its RocksDB twin (bench/compare/tenants_rocksdb.cc)
// share, so that the two loads and their measurements are the same: the
// flags, the clock, resident memory from /proc/self/statm (no malloc_trim),
// entry counts of /proc directories, the tenants' Zipf choice and the keys.
#ifndef ARENAKV_BENCH_TENANTS_TENANTS_UTIL_H_
#define ARENAKV_BENCH_TENANTS_TENANTS_UTIL_H_

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

namespace tenants {

// Both programs take the same flags, so that run_both can pass them to
// each; cache_kib and threads shape arenakv only (RocksDB's cache and
// threads are shared and sized from the budget).
struct Flags {
  int dbs = 1000;
  size_t budget_mib = 256;
  size_t cache_kib = 256;
  int keys = 10000;
  long ops = 2000000;
  int put_pct = 70;
  double zipf = 0.99;
  int threads = 2;
  std::string dir;
};

// False, after a line on stderr naming `program`, for an unknown or
// incomplete flag, and for counts out of range.
inline bool ParseFlags(const char* program, int argc, char** argv, Flags* f) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--dbs" && (v = value())) {
      f->dbs = std::atoi(v);
    } else if (a == "--budget_mib" && (v = value())) {
      f->budget_mib = std::strtoull(v, nullptr, 10);
    } else if (a == "--cache_kib" && (v = value())) {
      f->cache_kib = std::strtoull(v, nullptr, 10);
    } else if (a == "--keys" && (v = value())) {
      f->keys = std::atoi(v);
    } else if (a == "--ops" && (v = value())) {
      f->ops = std::atol(v);
    } else if (a == "--put_pct" && (v = value())) {
      f->put_pct = std::atoi(v);
    } else if (a == "--zipf" && (v = value())) {
      f->zipf = std::atof(v);
    } else if (a == "--threads" && (v = value())) {
      f->threads = std::atoi(v);
    } else if (a == "--dir" && (v = value())) {
      f->dir = v;
    } else {
      std::fprintf(stderr, "%s: unknown or incomplete flag %s (see the file's header)\n", program,
                   a.c_str());
      return false;
    }
  }
  return f->dbs > 0 && f->keys > 0 && f->ops >= 0;
}

using Clock = std::chrono::steady_clock;

inline double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

inline size_t ResidentBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  if (std::fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
  std::fclose(f);
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

inline size_t CountEntries(const char* dir) {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    (void)e;
    ++n;
  }
  return n;
}

// Tenant i with probability proportional to 1 / (i + 1)^s.
class Zipf {
 public:
  Zipf(int n, double s) : cdf_(n) {
    double sum = 0;
    for (int i = 0; i < n; ++i) cdf_[i] = (sum += 1.0 / std::pow(i + 1, s));
    for (double& c : cdf_) c /= sum;
  }
  int Next(std::mt19937_64* rng) {
    const double u = std::uniform_real_distribution<double>(0, 1)(*rng);
    return static_cast<int>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
  }

 private:
  std::vector<double> cdf_;
};

inline std::string Key(int k) {
  char b[16];
  std::snprintf(b, sizeof(b), "key%08d", k);
  return b;
}

}  // namespace tenants

#endif  // ARENAKV_BENCH_TENANTS_TENANTS_UTIL_H_
