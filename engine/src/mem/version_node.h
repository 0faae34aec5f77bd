// VersionNode: one version of a key in a memtable (user key, sequence, type,
// value), laid out as [header][key][value] in one bump allocation of the
// memtable's arena, and dead with the arena. Nodes are immutable once
// published; the memtable orders pointers to them (node_buffer.h,
// sorted_run.h) and indexes them by key (hash_index.h).
//
// List order, the order every sorted structure of the memtable keeps: user
// key ascending (in the memtable's KeyOrder), then sequence descending, so
// that the first version at or after (key, S) is the newest version of key
// visible at snapshot S. Of two versions with the same key and sequence the
// one added later comes first.
//
// Thread safety: immutable once built; readers need only the pointer,
// published with release by the structure that holds it.
#ifndef ARENAKV_MEM_VERSION_NODE_H_
#define ARENAKV_MEM_VERSION_NODE_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "arenakv/status.h"
#include "util/key_compare.h"

namespace arenakv::alloc {
class Arena;
}

namespace arenakv::mem {

enum class ValueType : uint8_t { kValue = 1, kDeletion = 2 };

inline constexpr uint64_t kMaxSequence = UINT64_MAX;

class VersionNode {
 public:
  VersionNode(const VersionNode&) = delete;
  VersionNode& operator=(const VersionNode&) = delete;

  // Builds a node in `arena`. InvalidArgument for a key or value over 4 GiB,
  // MemoryLimit from the arena; *bytes gets what was taken from it.
  static Status New(alloc::Arena* arena, uint64_t seq, ValueType type, std::string_view key,
                    std::string_view value, const VersionNode** node, size_t* bytes);

  uint64_t seq() const { return seq_; }
  ValueType type() const { return type_; }
  std::string_view key() const { return {Data(), key_size_}; }
  std::string_view value() const { return {Data() + key_size_, value_size_}; }

 private:
  VersionNode() = default;
  const char* Data() const { return reinterpret_cast<const char*>(this + 1); }

  uint64_t seq_ = 0;
  uint32_t key_size_ = 0;
  uint32_t value_size_ = 0;
  ValueType type_ = ValueType::kValue;
};

// The most VersionNode::New() takes from the arena beyond the key and value
// bytes: the header and its alignment.
inline constexpr size_t kMaxNodeOverheadBytes = sizeof(VersionNode) + alignof(VersionNode) - 1;

// Whether `a` comes before the version (key, seq) in list order. `Order`:
// KeyOrder, or BytewiseOrder for a hot path that compares inline.
template <typename Order>
inline bool VersionBefore(const Order& order, const VersionNode* a, std::string_view key,
                          uint64_t seq) {
  const int c = order.Compare(a->key(), key);
  return c < 0 || (c == 0 && a->seq() > seq);
}

}  // namespace arenakv::mem

#endif  // ARENAKV_MEM_VERSION_NODE_H_
