// KeyRecord: built in two passes over a frozen memtable (sizes, then
// contents) so that its one buffer is allocated exactly once.

#include "db/key_record.h"

#include <cstring>
#include <limits>
#include <new>

namespace arenakv {

Status KeyRecord::Build(const mem::MemTable& table, std::pmr::memory_resource* memory,
                        std::atomic<size_t>* gauge, std::unique_ptr<KeyRecord>* record) {
  record->reset();
  std::unique_ptr<InternalIterator> it = table.NewIterator(UINT64_MAX);
  size_t count = 0, key_bytes = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    ++count;
    key_bytes += it->key().size();
  }
  if (!it->status().ok()) return it->status();
  if (key_bytes > std::numeric_limits<uint32_t>::max()) {
    return Status::MemoryLimit("a memtable's keys exceed 4 GiB");
  }
  const size_t bytes = count * sizeof(Entry) + key_bytes;
  char* buffer = nullptr;
  try {
    buffer = static_cast<char*>(memory->allocate(bytes == 0 ? 1 : bytes, alignof(Entry)));
    *record =
        std::make_unique<KeyRecord>(Token(), memory, gauge, buffer, bytes, count, table.order());
  } catch (const std::bad_alloc&) {
    if (buffer != nullptr) memory->deallocate(buffer, bytes == 0 ? 1 : bytes, alignof(Entry));
    return Status::MemoryLimit("no room for the key record of a checkpointed memtable (" +
                               std::to_string(bytes) + " bytes)");
  }
  auto* entry = reinterpret_cast<Entry*>(buffer);
  char* keys = buffer + count * sizeof(Entry);
  uint32_t offset = 0;
  size_t i = 0;
  for (it->SeekToFirst(); it->Valid() && i < count; it->Next(), ++i) {
    const std::string_view k = it->key();
    entry[i] = Entry{table.LatestSequence(k), offset, static_cast<uint32_t>(k.size())};
    std::memcpy(keys + offset, k.data(), k.size());
    offset += static_cast<uint32_t>(k.size());
  }
  return it->status();
}

KeyRecord::KeyRecord(Token, std::pmr::memory_resource* memory, std::atomic<size_t>* gauge,
                     char* buffer, size_t bytes, size_t count, KeyOrder order)
    : memory_(memory), gauge_(gauge), buffer_(buffer), bytes_(bytes), count_(count), order_(order) {
  if (gauge_ != nullptr) gauge_->fetch_add(bytes_, std::memory_order_relaxed);
}

KeyRecord::~KeyRecord() {
  memory_->deallocate(buffer_, bytes_ == 0 ? 1 : bytes_, alignof(Entry));
  if (gauge_ != nullptr) gauge_->fetch_sub(bytes_, std::memory_order_relaxed);
}

std::string_view KeyRecord::KeyAt(size_t i) const {
  const Entry& e = entries()[i];
  return std::string_view(buffer_ + count_ * sizeof(Entry) + e.offset, e.size);
}

size_t KeyRecord::LowerBound(std::string_view key) const {
  size_t lo = 0, hi = count_;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (order_.Compare(KeyAt(mid), key) < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

uint64_t KeyRecord::LatestSequence(std::string_view key) const {
  const size_t i = LowerBound(key);
  return i < count_ && order_.Equal(KeyAt(i), key) ? entries()[i].seq : 0;
}

bool KeyRecord::WrittenInRangeAfter(const KeyRange& range, uint64_t after_seq) const {
  for (size_t i = range.from_first ? 0 : LowerBound(range.begin);
       i < count_ && range.NotAfter(order_, KeyAt(i)); ++i) {
    if (entries()[i].seq > after_seq) return true;
  }
  return false;
}

}  // namespace arenakv
