// WriteBatch: puts and deletes applied together by DB::Write, all or none,
// with no isolation (a batch reads nothing; LevelDB's WriteBatch is the
// model). Use a Transaction to read and write one consistent state.
//
//   arenakv::WriteBatch batch;
//   ASSERT_OK(batch.Put("k1", "v1"));
//   ASSERT_OK(batch.Delete("k2"));
//   Status s = db->Write(arenakv::WriteOptions{}, &batch);
//
// The batch keeps its operations in one buffer, encoded as they are logged,
// so DB::Write logs it without copying it when it commits alone. The buffer
// is the caller's memory, like the strings passed to Put, until Write runs;
// a commit that would not fit the database's memory budget returns
// MemoryLimit and applies nothing. Later operations on the same key win.
//
// Thread safety: a value type. One thread at a time may change a batch;
// several may read one (Count, Iterate, DB::Write of a batch no one changes
// is not allowed: Write stamps the batch's sequence).

#ifndef ARENAKV_WRITE_BATCH_H_
#define ARENAKV_WRITE_BATCH_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "arenakv/status.h"

namespace arenakv {

class LogBatch;  // the encoding, internal

class WriteBatch {
 public:
  WriteBatch();
  ~WriteBatch();
  WriteBatch(const WriteBatch& other);
  WriteBatch& operator=(const WriteBatch& other);
  WriteBatch(WriteBatch&& other) noexcept;
  WriteBatch& operator=(WriteBatch&& other) noexcept;

  // InvalidArgument past the key or value limit (options.h), MemoryLimit
  // when no memory is left for the buffer; the batch is then unchanged.
  Status Put(std::string_view key, std::string_view value);
  Status Delete(std::string_view key);
  // Appends every operation of `source`, after this batch's own.
  Status Append(const WriteBatch& source);
  // Empties the batch; keeps its buffer for reuse.
  void Clear();

  // Operations in the batch.
  uint32_t Count() const;
  // The bytes the batch's log record takes (its buffer's size).
  size_t ApproximateSize() const;

  // Receives the batch's operations in order (Iterate).
  class Handler {
   public:
    virtual ~Handler() = default;
    virtual Status Put(std::string_view key, std::string_view value) = 0;
    virtual Status Delete(std::string_view key) = 0;
  };
  // Calls the handler for each operation, stopping at its first error.
  Status Iterate(Handler* handler) const;

  // For the engine (DB::Write); not for callers. Null when empty after a move.
  LogBatch* rep() { return rep_.get(); }

 private:
  Status Writable();  // makes the buffer a moved-from batch lacks

  std::unique_ptr<LogBatch> rep_;
};

}  // namespace arenakv

#endif  // ARENAKV_WRITE_BATCH_H_
