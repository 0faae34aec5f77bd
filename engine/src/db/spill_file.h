// SpillFile: where a database moves memtables that readers keep alive after
// their checkpoint, so that a long-lived iterator, snapshot or transaction
// costs disk space rather than the writers' memory (docs/architecture.md,
// "Memory budget").
//
// The file is created in the database directory and unlinked at once: it
// lives while it is open and a crash leaves nothing behind (a leftover from
// a crash between the two steps is deleted at the next open). Copies are
// appended; a dropped copy's blocks are punched out, and the file is cut to
// nothing when no copy is left. Its contents never need to survive the
// process, so it is never synced.
//
// Thread safety: every method may be called from any thread.
#ifndef ARENAKV_DB_SPILL_FILE_H_
#define ARENAKV_DB_SPILL_FILE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "arenakv/alloc/spill_sink.h"
#include "arenakv/env.h"
#include "port/mutex.h"

namespace arenakv {

class SpillFile final : public alloc::SpillSink {
 public:
  static constexpr const char* kFileName = "SPILL";

  static Status Open(Env* env, const std::string& dir, std::shared_ptr<SpillFile>* out);

  Status Store(const char* data, size_t size, uint64_t* offset) override;
  Status MapOver(char* data, size_t size, uint64_t offset) override;
  void Drop(uint64_t offset, size_t size) override;

  // Bytes of copies stored and not dropped.
  uint64_t live_bytes() const;

  explicit SpillFile(std::unique_ptr<File> file) : file_(std::move(file)) {}

 private:
  mutable port::Mutex mu_;
  const std::unique_ptr<File> file_;
  uint64_t end_ GUARDED_BY(mu_) = 0;
  uint64_t live_ GUARDED_BY(mu_) = 0;
};

}  // namespace arenakv

#endif  // ARENAKV_DB_SPILL_FILE_H_
