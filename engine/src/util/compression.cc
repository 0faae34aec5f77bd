#include "util/compression.h"

#include <lz4.h>

#include <string>

namespace arenakv {

static_assert(kMaxLZ4InputBytes == LZ4_MAX_INPUT_SIZE);

size_t LZ4CompressBound(size_t n) {
  if (n > kMaxLZ4InputBytes) return 0;
  return static_cast<size_t>(LZ4_compressBound(static_cast<int>(n)));
}

Status LZ4Compress(std::string_view raw, char* dst, size_t dst_capacity, size_t* compressed_size) {
  *compressed_size = 0;
  if (raw.size() > kMaxLZ4InputBytes) {
    return Status::InvalidArgument("LZ4: input of " + std::to_string(raw.size()) +
                                   " bytes is too large");
  }
  int cap =
      dst_capacity > static_cast<size_t>(INT32_MAX) ? INT32_MAX : static_cast<int>(dst_capacity);
  if (cap == 0) return Status::OK();
  int n = LZ4_compress_default(raw.data(), dst, static_cast<int>(raw.size()), cap);
  if (n > 0) *compressed_size = static_cast<size_t>(n);
  return Status::OK();
}

Status CheckLZ4RawSize(uint64_t raw_size, size_t compressed_size, std::string_view what) {
  if (raw_size > kMaxLZ4DecompressedBytes) {
    return Status::Corruption(std::string(what) + ": implausible decompressed size " +
                              std::to_string(raw_size));
  }
  // An LZ4 sequence of n bytes encodes at most about 255 * n bytes of output.
  if (raw_size > uint64_t{compressed_size} * 255 + 16) {
    return Status::Corruption(std::string(what) + ": decompressed size " +
                              std::to_string(raw_size) + " cannot come from " +
                              std::to_string(compressed_size) + " compressed bytes");
  }
  return Status::OK();
}

Status LZ4Decompress(std::string_view compressed, size_t raw_size, char* dst,
                     std::string_view what) {
  if (compressed.size() > kMaxLZ4InputBytes || raw_size > kMaxLZ4DecompressedBytes) {
    return Status::Corruption(std::string(what) + ": compressed block too large");
  }
  int n = LZ4_decompress_safe(compressed.data(), dst, static_cast<int>(compressed.size()),
                              static_cast<int>(raw_size));
  if (n < 0 || static_cast<size_t>(n) != raw_size) {
    return Status::Corruption(std::string(what) + ": malformed LZ4 data");
  }
  return Status::OK();
}

}  // namespace arenakv
