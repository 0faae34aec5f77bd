// Header and meta blocks of the data file.
#include "tree/data_file.h"

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

// Header: magic[8] | u32 version | u32 header bytes | u32 meta block bytes |
//         u32 page alignment | u32 page_bytes at creation | u32 reserved |
//         u64 checksum of the preceding 32 bytes
void EncodeHeaderBlock(uint32_t page_bytes, char* block) {
  std::memset(block, 0, kBlockBytes);
  std::memcpy(block, kFileMagic, 8);
  EncodeFixed32(block + 8, kFormatVersion);
  EncodeFixed32(block + 12, static_cast<uint32_t>(kBlockBytes));
  EncodeFixed32(block + 16, static_cast<uint32_t>(kBlockBytes));
  EncodeFixed32(block + 20, 16);
  EncodeFixed32(block + 24, page_bytes);
  EncodeFixed64(block + 32, BlockChecksum(block, 32, kHeaderOffset));
}

Status DecodeHeaderBlock(std::string_view block, const std::string& file) {
  if (block.size() < kHeaderEncodedBytes || std::memcmp(block.data(), kFileMagic, 8) != 0) {
    return Status::InvalidArgument(file + ": not an arenakv data file");
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
//       u64 reserved | u64 checksum of the preceding 72 bytes
void EncodeMetaBlock(const MetaState& meta, char* block) {
  int slot = static_cast<int>(meta.checkpoint_id % 2);
  std::memset(block, 0, kBlockBytes);
  std::memcpy(block, kMetaMagic, 8);
  EncodeFixed32(block + 8, kFormatVersion);
  EncodeFixed32(block + 12, static_cast<uint32_t>(slot));
  EncodeFixed64(block + 16, meta.checkpoint_id);
  EncodeFixed64(block + 24, meta.root);
  EncodeFixed64(block + 32, meta.last_sequence);
  EncodeFixed64(block + 40, meta.wal_number);
  EncodeFixed64(block + 48, meta.file_bytes);
  EncodeFixed64(block + 56, meta.key_count);
  EncodeFixed64(block + 72, BlockChecksum(block, 72, kMetaOffsets[slot]));
}

Status DecodeMetaBlock(std::string_view block, int slot, const std::string& file, MetaState* meta) {
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
  *meta = m;
  return Status::OK();
}

}  // namespace arenakv::tree
