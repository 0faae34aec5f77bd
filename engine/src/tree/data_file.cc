// Header and meta blocks of the data file.
#include "tree/data_file.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "util/checksum.h"
#include "util/coding.h"

namespace arenakv::tree {

namespace {

uint64_t BlockChecksum(const char* p, size_t n, uint64_t offset) {
  // Seeded with the block's offset: a meta block copied to the other slot fails.
  return XXH3_64bits_withSeed(
      p, n, static_cast<uint64_t>(ChecksumKind::kMeta) ^ (offset * 0x9E3779B97F4A7C15ULL));
}

}  // namespace

Status KeyOrderMismatch(const std::string& file, const std::string& recorded,
                        const std::string& asked) {
  auto name = [](const std::string& n) {
    return n.empty() ? std::string("bytewise") : "comparator '" + n + "'";
  };
  return Status::InvalidArgument(file + ": its keys are in the order of " + name(recorded) +
                                 ", not of " + name(asked) + " as asked");
}

// Header: magic[8] | u32 version | u32 header bytes | u32 meta block bytes |
//         u32 page alignment | u32 page_bytes at creation | u32 reserved |
//         u64 checksum of the preceding 32 bytes
void EncodeHeaderBlock(uint32_t page_bytes, uint32_t version, char* block) {
  std::memset(block, 0, kBlockBytes);
  std::memcpy(block, kFileMagic, 8);
  EncodeFixed32(block + 8, version);
  EncodeFixed32(block + 12, static_cast<uint32_t>(kBlockBytes));
  EncodeFixed32(block + 16, static_cast<uint32_t>(kBlockBytes));
  EncodeFixed32(block + 20, 16);
  EncodeFixed32(block + 24, page_bytes);
  EncodeFixed64(block + 32, BlockChecksum(block, 32, kHeaderOffset));
}

Status DecodeHeaderBlock(std::string_view block, const std::string& file) {
  if (block.size() < kHeaderEncodedBytes || std::memcmp(block.data(), kFileMagic, 8) != 0) {
    return Status::InvalidArgument(file + std::string(kNotADataFile));
  }
  const char* p = block.data();
  // Checksum first: a damaged header must read as Corruption, never as a
  // "newer version". The checksummed layout is the same in every version.
  if (DecodeFixed64(p + 32) != BlockChecksum(p, 32, kHeaderOffset)) {
    return Status::Corruption(file + ": file header checksum mismatch");
  }
  uint32_t version = DecodeFixed32(p + 8);
  if (version > kFormatVersion) {
    return Status::NotSupported(file + ": data file format version " + std::to_string(version) +
                                " is newer than this build supports (" +
                                std::to_string(kFormatVersion) + ")");
  }
  if (version == 0 || DecodeFixed32(p + 12) != kBlockBytes ||
      DecodeFixed32(p + 16) != kBlockBytes || DecodeFixed32(p + 20) != 16) {
    return Status::Corruption(file + ": file header has unexpected geometry");
  }
  return Status::OK();
}

// Meta: magic[8] | u32 version | u32 slot | u64 checkpoint id | u64 root |
//       u64 last sequence | u64 wal number | u64 file bytes | u64 key count |
//       u64 name checksum (version 7; 0 before) | u64 checksum of the
//       preceding 72 bytes | version 7: u16 name length | name bytes.
// The name's own checksum sits inside the checksummed 72 bytes, so the
// block's validity is decided as in every version, and the name is checked
// against it.
void EncodeMetaBlock(const MetaState& meta, std::string_view comparator, char* block) {
  int slot = static_cast<int>(meta.checkpoint_id % 2);
  std::memset(block, 0, kBlockBytes);
  std::memcpy(block, kMetaMagic, 8);
  EncodeFixed32(block + 8, FormatVersionFor(comparator));
  EncodeFixed32(block + 12, static_cast<uint32_t>(slot));
  EncodeFixed64(block + 16, meta.checkpoint_id);
  EncodeFixed64(block + 24, meta.root);
  EncodeFixed64(block + 32, meta.last_sequence);
  EncodeFixed64(block + 40, meta.wal_number);
  EncodeFixed64(block + 48, meta.file_bytes);
  EncodeFixed64(block + 56, meta.key_count);
  if (!comparator.empty()) {
    const size_t n = std::min(comparator.size(), kMaxComparatorNameBytes);
    char* name = block + kMetaEncodedBytes;
    EncodeFixed16(name, static_cast<uint16_t>(n));
    std::memcpy(name + 2, comparator.data(), n);
    EncodeFixed64(block + 64, BlockChecksum(name, 2 + n, kMetaOffsets[slot] + kMetaEncodedBytes));
  }
  EncodeFixed64(block + 72, BlockChecksum(block, 72, kMetaOffsets[slot]));
}

Status DecodeMetaBlock(std::string_view block, int slot, const std::string& file, MetaState* meta,
                       std::string* comparator) {
  std::string where = file + " meta block " + std::to_string(slot);
  if (block.size() < kMetaEncodedBytes || std::memcmp(block.data(), kMetaMagic, 8) != 0) {
    return Status::Corruption(where + ": not a meta block");
  }
  const char* p = block.data();
  if (DecodeFixed64(p + 72) != BlockChecksum(p, 72, kMetaOffsets[slot])) {
    return Status::Corruption(where + ": checksum mismatch");
  }
  uint32_t version = DecodeFixed32(p + 8);
  if (version > kFormatVersion) {
    return Status::NotSupported(where + ": format version " + std::to_string(version) +
                                " is newer than this build supports (" +
                                std::to_string(kFormatVersion) + ")");
  }
  MetaState m;
  m.checkpoint_id = DecodeFixed64(p + 16);
  m.root = DecodeFixed64(p + 24);
  m.last_sequence = DecodeFixed64(p + 32);
  m.wal_number = DecodeFixed64(p + 40);
  m.file_bytes = DecodeFixed64(p + 48);
  m.key_count = DecodeFixed64(p + 56);
  m.version = version;
  if (version == 0 || DecodeFixed32(p + 12) != static_cast<uint32_t>(slot) ||
      m.checkpoint_id % 2 != static_cast<uint64_t>(slot)) {
    return Status::Corruption(where + ": inconsistent fields");
  }
  std::string_view name;
  const uint64_t name_sum = DecodeFixed64(p + 64);
  if (version >= 7) {  // names an order: bytewise files are version 6
    const char* at = p + kMetaEncodedBytes;
    const size_t n = block.size() >= kMetaEncodedBytes + 2 ? DecodeFixed16(at) : SIZE_MAX;
    if (n == 0 || n > kMaxComparatorNameBytes || kMetaEncodedBytes + 2 + n > block.size() ||
        name_sum != BlockChecksum(at, 2 + n, kMetaOffsets[slot] + kMetaEncodedBytes)) {
      return Status::Corruption(where + ": comparator name damaged");
    }
    name = std::string_view(at + 2, n);
  } else if (name_sum != 0) {
    return Status::Corruption(where + ": inconsistent fields");
  }
  *meta = m;
  if (comparator != nullptr) comparator->assign(name.data(), name.size());
  return Status::OK();
}

}  // namespace arenakv::tree
