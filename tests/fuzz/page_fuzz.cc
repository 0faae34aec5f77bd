// libFuzzer target for the B+tree page decoder. The first input byte picks
// how the rest is used:
//   0: a stored page as read from disk, checksum verified (the common case:
//      almost everything must be refused as Corruption);
//   1: a stored page whose checksum is recomputed first, so the fuzzer reaches
//      the header checks, LZ4 and the image validator;
//   2: a raw page image given to the validator.
// Whatever is accepted is then walked through PageView accessors and searches,
// which must stay inside the image (AddressSanitizer watches).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tree/page_format.h"

namespace {

void Walk(const std::string& image) {
  using arenakv::tree::PageView;
  PageView v(image.data());
  size_t sum = 0;
  for (uint32_t i = 0; i < v.count(); ++i) {
    sum += v.key(i).size();
    if (v.is_leaf()) {
      sum += v.value(i).size();
    } else {
      sum += v.child(i) & 1;
    }
  }
  if (v.is_leaf()) {
    sum += v.LowerBound("m");
  } else {
    sum += v.ChildIndex("m");
  }
  if (sum == 0xdeadbeef) __builtin_trap();  // keep the loop alive
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace arenakv::tree;
  if (size < 1) return 0;
  int mode = data[0] % 3;
  std::string input(reinterpret_cast<const char*>(data + 1), size - 1);
  const uint64_t offset = 4096 * 3;
  if (mode == 2) {
    std::string why;
    if (ValidateImage(input.data(), input.size(), &why)) Walk(input);
    return 0;
  }
  if (mode == 1 && input.size() >= kStoredHeaderBytes) {
    SealStoredPage(input.data(), input.size(), offset);
  }
  size_t image_bytes = 0;
  if (!ParseStoredPage(input, offset, true, "fuzz", &image_bytes).ok()) return 0;
  std::string image(image_bytes, '\0');
  if (!DecodeStoredPage(input, offset, "fuzz", image.data(), image_bytes).ok()) return 0;
  Walk(image);
  return 0;
}
