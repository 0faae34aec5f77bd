// libFuzzer target for the data file's header and meta blocks, the first
// things Open decodes. The first byte picks the block (0: header, 1-2: meta
// slot 0 or 1); the rest is the block, zero-padded to 4 KiB. Any input must
// give a Status (never a crash), and a meta block that decodes must encode
// back to the same fields, its comparator name included.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tree/data_file.h"

namespace {

using namespace arenakv;        // NOLINT: a fuzz driver
using namespace arenakv::tree;  // NOLINT

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int which = data[0] % 3;
  std::string block(kBlockBytes, '\0');
  std::memcpy(block.data(), data + 1, std::min<size_t>(size - 1, kBlockBytes));
  if (which == 0) {
    Status s = DecodeHeaderBlock(block, "fuzz");
    if (!s.ok() && !s.IsCorruption() && !s.IsInvalidArgument() && !s.IsNotSupported()) {
      std::abort();
    }
    return 0;
  }
  const int slot = which - 1;
  MetaState meta;
  std::string order;
  Status s = DecodeMetaBlock(block, slot, "fuzz", &meta, &order);
  if (!s.ok()) {
    if (!s.IsCorruption() && !s.IsNotSupported()) std::abort();
    return 0;
  }
  std::string again(kBlockBytes, '\0');
  EncodeMetaBlock(meta, order, again.data());
  MetaState back;
  std::string back_order;
  if (!DecodeMetaBlock(again, slot, "fuzz", &back, &back_order).ok()) std::abort();
  if (back.root != meta.root || back.checkpoint_id != meta.checkpoint_id ||
      back.last_sequence != meta.last_sequence || back.wal_number != meta.wal_number ||
      back_order != order) {
    std::abort();
  }
  return 0;
}
