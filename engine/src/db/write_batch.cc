#include "arenakv/write_batch.h"

#include <new>
#include <utility>

#include "arenakv/options.h"
#include "db/log_batch.h"

namespace arenakv {
namespace {

Status NoMemory() { return Status::MemoryLimit("write batch: no memory for the batch's buffer"); }

// The rule for key and value sizes, as DB::Put applies it.
Status CheckSizes(std::string_view key, size_t value_bytes) {
  if (key.size() > kMaxKeyBytes) {
    return Status::InvalidArgument("write batch: key of " + std::to_string(key.size()) +
                                   " bytes exceeds the limit of " + std::to_string(kMaxKeyBytes));
  }
  if (value_bytes > kMaxValueBytes) {
    return Status::InvalidArgument("write batch: value of " + std::to_string(value_bytes) +
                                   " bytes exceeds the limit of " + std::to_string(kMaxValueBytes));
  }
  return Status::OK();
}

}  // namespace

// rep_ is null only in a moved-from batch, which reads as empty and makes a
// new buffer when written to: moves stay noexcept.
WriteBatch::WriteBatch() : rep_(std::make_unique<LogBatch>()) {}
WriteBatch::~WriteBatch() = default;
WriteBatch::WriteBatch(const WriteBatch& other)
    : rep_(std::make_unique<LogBatch>(other.rep_ ? *other.rep_ : LogBatch())) {}
WriteBatch& WriteBatch::operator=(const WriteBatch& other) {
  if (this != &other) *this = WriteBatch(other);
  return *this;
}
WriteBatch::WriteBatch(WriteBatch&& other) noexcept = default;
WriteBatch& WriteBatch::operator=(WriteBatch&& other) noexcept = default;

Status WriteBatch::Writable() {
  if (rep_ != nullptr) return Status::OK();
  try {
    rep_ = std::make_unique<LogBatch>();
  } catch (const std::bad_alloc&) {
    return NoMemory();
  }
  return Status::OK();
}

Status WriteBatch::Put(std::string_view key, std::string_view value) {
  Status s = CheckSizes(key, value.size());
  if (s.ok()) s = Writable();
  if (!s.ok()) return s;
  const size_t before = rep_->ByteSize();
  try {
    rep_->Put(key, value);
  } catch (const std::bad_alloc&) {
    rep_->Truncate(before);
    return NoMemory();
  }
  return Status::OK();
}

Status WriteBatch::Delete(std::string_view key) {
  Status s = CheckSizes(key, 0);
  if (s.ok()) s = Writable();
  if (!s.ok()) return s;
  const size_t before = rep_->ByteSize();
  try {
    rep_->Delete(key);
  } catch (const std::bad_alloc&) {
    rep_->Truncate(before);
    return NoMemory();
  }
  return Status::OK();
}

Status WriteBatch::Append(const WriteBatch& source) {
  if (source.rep_ == nullptr || source.Count() == 0) return Status::OK();
  Status s = Writable();
  if (!s.ok()) return s;
  const size_t before = rep_->ByteSize();
  try {
    rep_->Append(*source.rep_);
  } catch (const std::bad_alloc&) {
    rep_->Truncate(before);
    return NoMemory();
  }
  return Status::OK();
}

void WriteBatch::Clear() {
  if (rep_ != nullptr) rep_->Clear();
}

uint32_t WriteBatch::Count() const { return rep_ == nullptr ? 0 : rep_->count(); }

size_t WriteBatch::ApproximateSize() const {
  return rep_ == nullptr ? LogBatch::kHeaderBytes : rep_->ByteSize();
}

Status WriteBatch::Iterate(Handler* handler) const {
  if (handler == nullptr) return Status::InvalidArgument("write batch: null handler");
  if (rep_ == nullptr) return Status::OK();
  return rep_->ForEach(
      [handler](uint64_t, mem::ValueType type, std::string_view key, std::string_view value) {
        return type == mem::ValueType::kValue ? handler->Put(key, value) : handler->Delete(key);
      });
}

}  // namespace arenakv
