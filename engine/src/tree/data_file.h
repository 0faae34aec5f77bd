// The data file's fixed blocks: the file header (magic, format version) and
// the two meta blocks that alternate between checkpoints. Pages live after
// them at the addresses the tree records (see page_format.h).
//
//   [0, 4096)      header block
//   [4096, 8192)   meta slot 0 (even checkpoint ids)
//   [8192, 12288)  meta slot 1 (odd checkpoint ids)
//   [12288, ...)   pages and free space
//
// Thread safety: pure encode/decode functions.
#ifndef ARENAKV_TREE_DATA_FILE_H_
#define ARENAKV_TREE_DATA_FILE_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "arenakv/status.h"

namespace arenakv::tree {

inline constexpr char kFileMagic[8] = {'A', 'R', 'E', 'N', 'A', 'K', 'V', '1'};
inline constexpr char kMetaMagic[8] = {'A', 'K', 'V', 'M', 'E', 'T', 'A', '1'};
// 2: slotless stored pages; 3: leaves stored in blocks; 4: written by a
// writer that keeps the pages of states read-only opens hold (reader locks
// on the LOCK file), so that no build that ignores them writes it again;
// 5: leaves in blocks carry a checksum per block (kStoredFlagBlockSums);
// 6: their block index is compact (kStoredFlagCompactIndex), blocks 1 KiB;
// 7: the meta blocks name the key order (a comparator other than bytewise).
// Files in bytewise order are written as version 6 still (header and meta
// blocks), so that a version-6 build keeps reading them; only a file in
// another order is version 7, which older builds refuse.
inline constexpr uint32_t kFormatVersion = 7;
inline constexpr uint32_t kBytewiseFormatVersion = 6;
// The longest comparator name a meta block holds.
inline constexpr size_t kMaxComparatorNameBytes = 255;
inline constexpr uint64_t kBlockBytes = 4096;
inline constexpr uint64_t kHeaderOffset = 0;
inline constexpr uint64_t kMetaOffsets[2] = {4096, 8192};
inline constexpr uint64_t kDataStart = 12288;
inline constexpr size_t kHeaderEncodedBytes = 40;
inline constexpr size_t kMetaEncodedBytes = 80;
// A data file being created is written under its name plus this, then
// renamed into place (BTree::CreateDataFile).
inline constexpr char kNewDataFileSuffix[] = ".new";

// What a meta block records (plus the format version and a checksum).
struct MetaState {
  uint64_t checkpoint_id = 0;
  uint64_t root = 0;           // page address, 0 = empty tree
  uint64_t last_sequence = 0;  // highest sequence number contained in the tree
  uint64_t wal_number = 0;     // WALs numbered >= this must be replayed on recovery
  uint64_t file_bytes = 0;
  uint64_t key_count = 0;
  uint32_t version = kFormatVersion;  // of the block it was read from
};

// The format version of a file in the order `comparator` names (empty:
// bytewise).
inline uint32_t FormatVersionFor(std::string_view comparator) {
  return comparator.empty() ? kBytewiseFormatVersion : kFormatVersion;
}

// What InvalidArgument says of a file that is not an arenakv data file (after
// the file's name), and how a caller tells that case from the others (a key
// order other than the one asked for).
inline constexpr std::string_view kNotADataFile = ": not an arenakv data file";
inline bool IsNotADataFile(const Status& s) {
  const std::string& m = s.message();
  return s.IsInvalidArgument() && m.size() >= kNotADataFile.size() &&
         m.compare(m.size() - kNotADataFile.size(), kNotADataFile.size(), kNotADataFile) == 0;
}

// InvalidArgument naming `file`, the order it records and the one asked for
// (empty names: bytewise).
Status KeyOrderMismatch(const std::string& file, const std::string& recorded,
                        const std::string& asked);

// Fills a kBlockBytes block.
void EncodeHeaderBlock(uint32_t page_bytes, uint32_t version, char* block);
// InvalidArgument for a file that is not an arenakv data file, NotSupported
// for a newer format version, Corruption for a damaged header.
Status DecodeHeaderBlock(std::string_view block, const std::string& file);

// Fills a kBlockBytes block for meta slot checkpoint_id % 2. `comparator`
// names the file's key order, empty for bytewise (a version-6 block); at
// most kMaxComparatorNameBytes.
void EncodeMetaBlock(const MetaState& meta, std::string_view comparator, char* block);
// Corruption when the slot holds no valid meta (never written, torn, damaged),
// NotSupported for a newer format version. *comparator (if given) gets the
// name of the file's key order, empty for bytewise.
Status DecodeMetaBlock(std::string_view block, int slot, const std::string& file, MetaState* meta,
                       std::string* comparator = nullptr);

}  // namespace arenakv::tree

#endif  // ARENAKV_TREE_DATA_FILE_H_
