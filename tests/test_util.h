// Helpers shared by the test suites: ASSERT_OK / EXPECT_OK (which print the
// status), temporary directories that clean up, replayable seeds,
// resident-memory readings, and values that compress as the benchmarks' do.
#ifndef ARENAKV_TESTS_TEST_UTIL_H_
#define ARENAKV_TESTS_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include "arenakv/status.h"

#define ASSERT_OK(expr)                                     \
  do {                                                      \
    const ::arenakv::Status _s = (expr);                    \
    ASSERT_TRUE(_s.ok()) << #expr << ": " << _s.ToString(); \
  } while (0)
#define EXPECT_OK(expr)                                     \
  do {                                                      \
    const ::arenakv::Status _s = (expr);                    \
    EXPECT_TRUE(_s.ok()) << #expr << ": " << _s.ToString(); \
  } while (0)

namespace arenakv::test {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/arenakv-test-XXXXXX";
    char* made = mkdtemp(tmpl.data());
    if (made == nullptr) {
      ADD_FAILURE() << "mkdtemp failed for " << tmpl;
    }
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string Join(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The seed for a randomized test: $ARENAKV_SEED if set, otherwise random.
// Printed so that a failing run can be replayed with ARENAKV_SEED=<seed>.
inline uint64_t TestSeed() {
  const char* env = std::getenv("ARENAKV_SEED");
  uint64_t seed = env ? std::strtoull(env, nullptr, 10) : std::random_device{}();
  std::fprintf(stderr, "[seed] ARENAKV_SEED=%llu\n", static_cast<unsigned long long>(seed));
  return seed;
}

// A 100-byte value that LZ4 halves, as the benchmarks' (bench/compare's
// data_gen.h): 50 random letters drawn from `seed`, twice. Leaves of such
// values are stored in blocks; uniform values would compress to almost
// nothing and fit a leaf in one.
inline std::string HalfRandomValue(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string v(100, ' ');
  for (int j = 0; j < 50; ++j) v[j] = v[j + 50] = static_cast<char>('a' + rng() % 26);
  return v;
}

// True in AddressSanitizer and ThreadSanitizer builds, where resident memory
// and timings measure the sanitizer (shadow memory, quarantine), not us.
inline bool UnderSanitizer() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
  return true;
#else
  return false;
#endif
#else
  return false;
#endif
}

// Resident set size of this process in bytes, from /proc/self/statm.
inline size_t ResidentBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  if (n != 2) return 0;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// Anonymous resident bytes (RssAnon in /proc/self/status): the heap, the
// stacks and every mapping of the pools, without the pages of the program's
// code and libraries, which the first run of a path pages in for good.
inline size_t AnonResidentBytes() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  unsigned long kib = 0;
  bool found = false;
  while (!found && std::fgets(line, sizeof(line), f) != nullptr) {
    found = std::sscanf(line, "RssAnon: %lu kB", &kib) == 1;
  }
  std::fclose(f);
  return static_cast<size_t>(kib) << 10;
}

}  // namespace arenakv::test

#endif  // ARENAKV_TESTS_TEST_UTIL_H_
