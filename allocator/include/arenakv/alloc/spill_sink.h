// SpillSink: where an arena's memory goes when it is moved out to disk.
//
// Arena::Spill() hands each of its segments to a sink, which stores a copy
// (in a file) and then maps that copy over the segment, read-only, at the
// same address. Pointers into the arena stay valid; reads are served from
// the kernel's page cache, which can drop the pages and read them again, so
// the segment no longer counts against the pool's budget. When the arena
// closes, the pool maps fresh anonymous memory back over the segment and
// tells the sink that the copy is no longer needed.
//
// Thread safety: a sink may be called from several threads at once (arenas
// spilled and closed concurrently); implementations synchronize themselves.
#ifndef ARENAKV_ALLOC_SPILL_SINK_H_
#define ARENAKV_ALLOC_SPILL_SINK_H_

#include <cstddef>
#include <cstdint>

#include "arenakv/status.h"

namespace arenakv::alloc {

class SpillSink {
 public:
  SpillSink() = default;
  SpillSink(const SpillSink&) = delete;
  SpillSink& operator=(const SpillSink&) = delete;
  virtual ~SpillSink() = default;

  // Stores a copy of [data, data + size) (size a multiple of the page size)
  // and says where: *offset, a multiple of the page size.
  virtual Status Store(const char* data, size_t size, uint64_t* offset) = 0;
  // Replaces the memory at [data, data + size) with a read-only mapping of
  // the copy stored at `offset`. On failure the memory is as it was.
  virtual Status MapOver(char* data, size_t size, uint64_t offset) = 0;
  // The copy at `offset` is mapped nowhere any more: its space may be
  // given back or reused.
  virtual void Drop(uint64_t offset, size_t size) = 0;
};

}  // namespace arenakv::alloc

#endif  // ARENAKV_ALLOC_SPILL_SINK_H_
