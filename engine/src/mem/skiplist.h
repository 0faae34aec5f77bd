// SkipList: the memtable's ordered index of versions. Every node holds one
// version (user key, sequence, type, value) and lives in the memtable's arena
// with its key, value and tower inline, so a node costs one bump allocation
// and dies with the arena. Nodes are ordered by user key (in the list's KeyOrder)
// ascending, then by sequence descending, so the first node at or after
// (key, S) is the newest version of key visible at snapshot S.
//
// Thread safety: Insert() needs external serialization (one writer at a
// time); every const method may run concurrently with it and with each other
// without locks. A node is published by a release store of the pointer to it
// and read through acquire loads, and nodes are never unlinked, so a reader
// always walks a consistent, possibly slightly stale, list.
#ifndef ARENAKV_MEM_SKIPLIST_H_
#define ARENAKV_MEM_SKIPLIST_H_

#include <atomic>
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

// Arena layout: [SkipNode][tower: height x atomic<SkipNode*>][key][value].
// The tower sits right after the header so that a search, which reads the
// header, the tower slot and the key, touches as few cache lines as possible.
class SkipNode {
 public:
  SkipNode(const SkipNode&) = delete;
  SkipNode& operator=(const SkipNode&) = delete;

  uint64_t seq() const { return seq_; }
  ValueType type() const { return type_; }
  int height() const { return height_; }
  std::string_view key() const { return {KeyData(), key_size_}; }
  std::string_view value() const { return {KeyData() + key_size_, value_size_}; }

  const SkipNode* Next(int level) const { return Tower()[level].load(std::memory_order_acquire); }

 private:
  friend class SkipList;
  SkipNode() = default;

  std::atomic<SkipNode*>* Tower() { return reinterpret_cast<std::atomic<SkipNode*>*>(this + 1); }
  const std::atomic<SkipNode*>* Tower() const {
    return reinterpret_cast<const std::atomic<SkipNode*>*>(this + 1);
  }
  const char* KeyData() const { return reinterpret_cast<const char*>(Tower() + height_); }

  uint64_t seq_ = 0;
  uint32_t key_size_ = 0;
  uint32_t value_size_ = 0;
  ValueType type_ = ValueType::kValue;
  uint8_t height_ = 0;
};

class SkipList {
 public:
  // 4^14 nodes before the top level stops being sparse: far above any
  // memtable size.
  static constexpr int kMaxHeight = 14;
  // The most Insert() takes from the arena beyond the key and value bytes:
  // the node, its tallest tower and its alignment.
  static constexpr size_t kMaxNodeOverheadBytes =
      sizeof(SkipNode) + kMaxHeight * sizeof(std::atomic<SkipNode*>) + alignof(SkipNode) - 1;

  SkipList() = default;
  SkipList(const SkipList&) = delete;
  SkipList& operator=(const SkipList&) = delete;

  // Bytes of the list head (a node with the tallest tower).
  static constexpr size_t kHeadBytes =
      sizeof(SkipNode) + kMaxHeight * sizeof(std::atomic<SkipNode*>);

  // Allocates the list head in `arena`, which must outlive the list, and
  // takes the nodes from it; keys are kept in `order`. Called once, before
  // any other method.
  Status Init(alloc::Arena* arena, uint64_t rng_seed, KeyOrder order = KeyOrder());
  // The same, with the head placed at `head_memory` (kHeadBytes, aligned
  // for a SkipNode), which must outlive the list.
  void Init(alloc::Arena* arena, uint64_t rng_seed, void* head_memory, KeyOrder order = KeyOrder());

  // Writer only. Links a new version; a version equal to an existing
  // (key, seq) goes before it, so the later insertion is the one found. On
  // error (MemoryLimit from the arena) the list is unchanged.
  struct Inserted {
    const SkipNode* node = nullptr;
    size_t bytes = 0;           // taken from the arena
    bool first_of_key = false;  // no version of the key precedes it
  };
  Status Insert(uint64_t seq, ValueType type, std::string_view key, std::string_view value,
                Inserted* inserted);

  // First node at or after (key, seq) in list order, nullptr at the end.
  const SkipNode* Seek(std::string_view key, uint64_t seq) const;
  // First node whose user key is > key.
  const SkipNode* FirstAfterKey(std::string_view key) const;
  // Last node whose user key is < key (the oldest version of that key).
  const SkipNode* LastBeforeKey(std::string_view key) const;
  const SkipNode* First() const { return head_->Next(0); }
  KeyOrder order() const { return order_; }
  const SkipNode* Last() const;

 private:
  // Ordering of a node against (key, seq): key ascending, seq descending.
  bool NodeBefore(const SkipNode* n, std::string_view key, uint64_t seq) const {
    int c = order_.Compare(n->key(), key);
    return c < 0 || (c == 0 && n->seq() > seq);
  }
  int RandomHeight();
  int CurrentHeight() const { return max_height_.load(std::memory_order_relaxed); }

  alloc::Arena* arena_ = nullptr;
  KeyOrder order_;
  SkipNode* head_ = nullptr;
  std::atomic<int> max_height_{1};
  uint64_t rng_ = 0;  // writer only
  // Writer only: the last insertion's predecessor on each level (the new
  // node itself below its height).
  SkipNode* splice_[kMaxHeight] = {};
};

}  // namespace arenakv::mem

#endif  // ARENAKV_MEM_SKIPLIST_H_
