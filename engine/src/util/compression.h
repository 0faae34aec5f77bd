// LZ4 block compression for WAL records and on-disk pages, with the bounds
// checks a decoder of untrusted bytes needs: every size read from disk is
// checked before anything is allocated, and a malformed block is Corruption,
// never a crash or an overrun.
//
// Thread safety: free functions without shared state.
#ifndef ARENAKV_UTIL_COMPRESSION_H_
#define ARENAKV_UTIL_COMPRESSION_H_

#include <cstddef>
#include <cstdint>
#include <new>
#include <string_view>

#include "arenakv/status.h"

namespace arenakv {

// Largest input LZ4 accepts, and the largest decompressed size arenakv ever
// asks for (a WAL record or a page is far smaller).
inline constexpr size_t kMaxLZ4InputBytes = 0x7E000000;  // LZ4_MAX_INPUT_SIZE
inline constexpr uint64_t kMaxLZ4DecompressedBytes = uint64_t{256} << 20;

// Worst-case compressed size of n input bytes; 0 when n is too large for LZ4.
size_t LZ4CompressBound(size_t n);

// Compresses raw into dst[0, dst_capacity). OK with *compressed_size == 0 when
// the result does not fit: pass a capacity below raw.size() to compress only
// when it pays. InvalidArgument when raw is too large for LZ4.
Status LZ4Compress(std::string_view raw, char* dst, size_t dst_capacity, size_t* compressed_size);

// Refuses raw sizes that cannot come from `compressed_size` bytes of LZ4
// (LZ4 expands at most ~255:1) or exceed kMaxLZ4DecompressedBytes; call it
// before allocating raw_size bytes. `what` names the block in the message.
Status CheckLZ4RawSize(uint64_t raw_size, size_t compressed_size, std::string_view what);

// Decompresses exactly raw_size bytes into dst (which holds raw_size bytes).
// Corruption, naming `what`, if the input is malformed or decodes to another
// size.
Status LZ4Decompress(std::string_view compressed, size_t raw_size, char* dst,
                     std::string_view what);

// Decompresses into *out (any string-like container with resize() and data(),
// e.g. std::pmr::string), after CheckLZ4RawSize.
template <typename S>
Status LZ4DecompressTo(std::string_view compressed, uint64_t raw_size, S* out,
                       std::string_view what) {
  Status s = CheckLZ4RawSize(raw_size, compressed.size(), what);
  if (!s.ok()) return s;
  try {
    out->resize(static_cast<size_t>(raw_size));
  } catch (const std::bad_alloc&) {
    return Status::MemoryLimit(std::string(what) + ": no memory to decompress " +
                               std::to_string(raw_size) + " bytes");
  }
  return LZ4Decompress(compressed, static_cast<size_t>(raw_size), out->data(), what);
}

}  // namespace arenakv

#endif  // ARENAKV_UTIL_COMPRESSION_H_
