// MemoryLimit: a memory cgroup that caps what a benchmark child may hold,
// its own pages and the page cache its reads fill together, so that an
// engine that reads through the operating system's cache (LMDB's map,
// every engine's pread) gets no more memory than one that caches itself.
//
// Works with cgroup v2 (memory.max) and v1 (memory.limit_in_bytes); needs
// the right to create a cgroup (root). EvictPageCache drops a directory's
// cached file pages first: pages read in by an untimed preparation outside
// the cgroup would otherwise be read for free.
//
// Thread safety: none needed; one per process, used between forks.
#ifndef ARENAKV_BENCH_COMPARE_MEMORY_LIMIT_H_
#define ARENAKV_BENCH_COMPARE_MEMORY_LIMIT_H_

#include <cstddef>
#include <string>

namespace arenakv::compare {

class MemoryLimit {
 public:
  // Creates the cgroup with `bytes` as its limit; false and *error if it
  // cannot (no memory controller mounted, no permission).
  static bool Create(size_t bytes, MemoryLimit* limit, std::string* error);
  MemoryLimit() = default;
  MemoryLimit(const MemoryLimit&) = delete;
  MemoryLimit& operator=(const MemoryLimit&) = delete;
  MemoryLimit(MemoryLimit&& other) noexcept;
  MemoryLimit& operator=(MemoryLimit&& other) noexcept;
  ~MemoryLimit();  // removes the cgroup (it must be empty by then)

  bool active() const { return !dir_.empty(); }
  // Moves the calling process into the cgroup (the forked child calls it).
  bool Join(std::string* error) const;
  // "cgroup v2, 96 MiB (process + page cache)"
  std::string Describe() const;

 private:
  std::string dir_;
  std::string limit_file_;
  int version_ = 0;
  size_t bytes_ = 0;
};

// Writes back and drops from the page cache every regular file under `dir`.
void EvictPageCache(const std::string& dir);

}  // namespace arenakv::compare

#endif  // ARENAKV_BENCH_COMPARE_MEMORY_LIMIT_H_
