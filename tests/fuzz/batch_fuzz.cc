// libFuzzer target for the decoding of a logged commit (a LogBatch record):
// the bytes of one WAL record's payload, as recovery hands them to
// LogBatch::SetContents and then ForEach. Malformed input must give
// Corruption; accepted input must decode to exactly count() operations, and
// what it decodes to must encode to a batch that decodes the same way.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "db/log_batch.h"

namespace {

using namespace arenakv;  // NOLINT: a fuzz driver

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view record(reinterpret_cast<const char*>(data), size);
  LogBatch batch;
  Status s = batch.SetContents(record);
  if (!s.ok()) {
    if (!s.IsCorruption()) std::abort();
    return 0;
  }
  LogBatch again;
  uint32_t ops = 0;
  s = batch.ForEach(
      [&](uint64_t, mem::ValueType type, std::string_view key, std::string_view value) {
        ++ops;
        if (type == mem::ValueType::kDeletion) {
          again.Delete(key);
        } else {
          again.Put(key, value);
        }
        return Status::OK();
      });
  if (!s.ok()) std::abort();  // SetContents accepted it: ForEach must too
  if (ops != batch.count()) std::abort();
  again.SetSequence(batch.sequence());
  LogBatch reread;
  if (!reread.SetContents(again.contents()).ok() || reread.count() != ops) std::abort();
  return 0;
}
