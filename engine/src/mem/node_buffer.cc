#include "mem/node_buffer.h"

#include <new>

#include "arenakv/alloc/arena.h"

namespace arenakv::mem {

Status NodeBuffer::Create(alloc::Arena* arena, size_t capacity, std::shared_ptr<NodeBuffer>* out) {
  if (capacity == 0) return Status::InvalidArgument("node buffer: no capacity");
  alloc::Segment segment;
  Status s = arena->AllocateSegment(capacity * sizeof(const VersionNode*), &segment);
  if (!s.ok()) return s;
  try {
    *out = std::make_shared<NodeBuffer>(PassKey(), arena, segment, capacity);
  } catch (const std::bad_alloc&) {
    arena->ReleaseSegment(segment).IgnoreError();
    return Status::MemoryLimit("node buffer: no memory for its header");
  }
  return Status::OK();
}

NodeBuffer::NodeBuffer(PassKey, alloc::Arena* arena, alloc::Segment segment, size_t capacity)
    : arena_(arena),
      segment_(segment),
      slots_(reinterpret_cast<const VersionNode**>(segment.data)),
      capacity_(capacity) {}

NodeBuffer::~NodeBuffer() { arena_->ReleaseSegment(segment_).IgnoreError(); }

}  // namespace arenakv::mem
