// NodeBuffer: a memtable's newest versions, in the order they were added,
// before they are sorted into its runs (memtable.h). Appending a version is
// a store and a counter bump: the memtable's writer pays for ordering only
// once a buffer is full, when sorting its few hundred versions at once costs
// a third of what inserting them one by one into an ordered list did (every
// insert a search of a list that outgrows the CPU cache).
//
// The slots live in a segment of the memtable's arena and go back to it
// when the last reference goes (BufferRef: the writer's, and every reader
// view's that was taken while the buffer was current).
//
// Thread safety: one writer appends; any number of readers read size() and
// the nodes below it concurrently (the count is stored with release after
// the slot, loaded with acquire). The arena must outlive every reference.
#ifndef ARENAKV_MEM_NODE_BUFFER_H_
#define ARENAKV_MEM_NODE_BUFFER_H_

#include <atomic>
#include <cstddef>
#include <memory>

#include "arenakv/alloc/segment_pool.h"
#include "arenakv/status.h"
#include "mem/version_node.h"

namespace arenakv::alloc {
class Arena;
}

namespace arenakv::mem {

class NodeBuffer;
using BufferRef = std::shared_ptr<const NodeBuffer>;

class NodeBuffer {
  struct PassKey {
    explicit PassKey() = default;
  };

 public:
  // A buffer of `capacity` slots in `arena`. MemoryLimit leaves nothing.
  static Status Create(alloc::Arena* arena, size_t capacity, std::shared_ptr<NodeBuffer>* out);

  NodeBuffer(PassKey, alloc::Arena* arena, alloc::Segment segment, size_t capacity);
  ~NodeBuffer();  // gives the slots back to the arena
  NodeBuffer(const NodeBuffer&) = delete;
  NodeBuffer& operator=(const NodeBuffer&) = delete;

  size_t capacity() const { return capacity_; }
  size_t size() const { return size_.load(std::memory_order_acquire); }
  bool full() const { return size() == capacity_; }
  const VersionNode* node(size_t i) const { return slots_[i]; }
  // The first `n` slots (n <= size()).
  const VersionNode* const* nodes() const { return slots_; }

  // Writer only; the buffer must not be full.
  void Append(const VersionNode* node) {
    const size_t n = size_.load(std::memory_order_relaxed);
    slots_[n] = node;
    size_.store(n + 1, std::memory_order_release);
  }

 private:
  alloc::Arena* const arena_;
  const alloc::Segment segment_;
  const VersionNode** const slots_;
  const size_t capacity_;
  std::atomic<size_t> size_{0};
};

}  // namespace arenakv::mem

#endif  // ARENAKV_MEM_NODE_BUFFER_H_
