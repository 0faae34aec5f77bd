// ReadMap: the data file seen through read-only mappings, for reads of
// pages the cache does not hold (Options::map_reads). A miss then costs a
// copy out of the OS's page cache instead of a pread: on machines where a
// system call is dear, that is a third or more of a point read at ten
// times the cache.
//
// The mapped bytes are charged to the database's budget, only while there
// is room for them as things are (nothing is evicted to make it), and they
// are the first memory a reclaim takes back: Drop() lets the OS take the
// pages (resident memory falls at once) and reads go back to pread until
// the next Cover() finds room again. The file only grows while it is open
// (it is never truncated), so a mapping made up to its size stays valid;
// a larger file gets a new mapping, and replaced ones stay mapped, their
// pages dropped, until the map is destroyed: a reader that loaded an
// older one may still be copying from it.
//
// Thread safety: Read() and mapped_bytes() from any thread, lock-free;
// Cover() and Drop() from any thread (serialized inside). The File must
// outlive the map, and the map every Read().
#ifndef ARENAKV_TREE_READ_MAP_H_
#define ARENAKV_TREE_READ_MAP_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "arenakv/env.h"
#include "port/mutex.h"

namespace arenakv::tree {

class ReadMap {
 public:
  struct Budget {
    // Charges the bytes if they fit without reclaiming anything; false if not.
    std::function<bool(size_t)> charge = nullptr;
    std::function<void(size_t)> uncharge = nullptr;
  };

  // Maps nothing until the file is larger than `min_file_bytes` (a file the
  // cache holds gains nothing from a mapping).
  ReadMap(File* file, uint64_t min_file_bytes, Budget budget);
  ~ReadMap();  // unmaps everything and returns the charge
  ReadMap(const ReadMap&) = delete;
  ReadMap& operator=(const ReadMap&) = delete;

  // The file is now `file_bytes` long: maps it whole if it grew by an
  // eighth since the last mapping (or none is in use) and the budget has
  // room. Failing to map is not an error: reads use pread.
  void Cover(uint64_t file_bytes);

  // Copies [offset, offset + n) into dst when the mapping in use holds it.
  bool Read(uint64_t offset, size_t n, char* dst) const {
    const uint64_t length = length_.load(std::memory_order_acquire);
    if (offset > length || n > length - offset) return false;
    // Acquire: a reader that loaded an older length may still see the newer
    // mapping, which it must see made (the length's acquire does not order
    // that).
    std::memcpy(dst, data_.load(std::memory_order_acquire) + offset, n);
    return true;
  }

  // Where [offset, offset + n) lies in the mapping in use, or nullptr when
  // it holds none of it. The bytes stay readable until the map is destroyed
  // (a Drop() or a newer mapping only lets the OS take their pages, which
  // a later access maps again).
  const char* View(uint64_t offset, size_t n) const {
    const uint64_t length = length_.load(std::memory_order_acquire);
    if (offset > length || n > length - offset) return nullptr;
    return data_.load(std::memory_order_acquire) + offset;  // acquire: as in Read()
  }

  // Stops reading through the mappings and gives their pages and their
  // charge back. Returns the bytes uncharged.
  size_t Drop();

  // Bytes mapped and charged now.
  size_t mapped_bytes() const { return length_.load(std::memory_order_relaxed); }
  // Drop()s that gave something back.
  uint64_t drops() const { return drops_.load(std::memory_order_relaxed); }

 private:
  File* const file_;
  const uint64_t min_file_bytes_;
  const Budget budget_;
  port::Mutex mu_;
  // Every mapping made; the last is the one in use unless dropped.
  std::vector<std::unique_ptr<MappedRegion>> regions_ GUARDED_BY(mu_);
  size_t charged_ GUARDED_BY(mu_) = 0;
  // The mapping in use: data_ is stored before length_ (both release), so a
  // reader that sees a length sees a mapping at least that long, and one
  // that sees a mapping sees it made.
  std::atomic<const char*> data_{nullptr};
  std::atomic<uint64_t> length_{0};
  std::atomic<uint64_t> drops_{0};
};

}  // namespace arenakv::tree

#endif  // ARENAKV_TREE_READ_MAP_H_
