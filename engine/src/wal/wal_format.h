// The on-disk layout of a write-ahead log, shared by the writer, the reader,
// the tests and the fuzz target. docs/format.md ("Write-ahead log") is the
// prose version of this file.
//
//   file   := header record*
//   header := magic[8] "AKVWAL\r\n" | version u32 | flags u32 | log_number u64 |
//             checksum u64 (XXH3-64, seed kWalHeader, over the first 24 bytes)
//   record := checksum u64 | length u32 | type u8 | header_check u24 | payload[length]
//
// Version 3 adds fragments, so that a commit larger than one record (64
// MiB) is logged as several: records of type 4 whose payload is position u8
// (1 first, 2 middle, 3 last) | [total u64, in the first only: the commit's
// length, so a reader allocates it once] | bytes. The commit is the concatenation of
// the bytes from a first to the next last, with nothing else between them;
// a log that ends (torn, or cleanly) inside such a run ends before its first
// fragment: the commit was never acknowledged, and is not applied.
//
// Version 2 adds the sync mark, a record of type 3 whose payload is one u64:
// the file offset up to which the log was durable (fdatasync returned) when
// the record was written. The writer puts one in front of the first record
// after each successful sync. It is what lets recovery tell a power loss
// (an unsynced record torn while a later unsynced one reached the disk: cut
// there) from corruption (a damaged record that a later mark says was
// synced). Version 1 logs, which have no marks, are read by the old rule: a
// damaged record followed by any intact one is corruption.
//
// A record's checksum is XXH3-64 over everything after it (length, type,
// header_check, payload), seeded with RecordSeed(log_number): a record left
// over from another log never validates in this one. header_check is the low
// 24 bits of XXH3-64 over length and type under the same seed, so a damaged
// length is recognized without trusting it, and a forward scan for intact
// records costs a few nanoseconds per byte.
// An LZ4 record's payload is: raw_size u32 | LZ4 block.
//
// Thread safety: constants and pure functions.
#ifndef ARENAKV_WAL_WAL_FORMAT_H_
#define ARENAKV_WAL_WAL_FORMAT_H_

#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "util/checksum.h"
#include "util/coding.h"

namespace arenakv::wal {

inline constexpr char kMagic[8] = {'A', 'K', 'V', 'W', 'A', 'L', '\r', '\n'};
inline constexpr uint32_t kFormatVersion = 3;
// The first version with sync marks.
inline constexpr uint32_t kSyncMarkVersion = 2;
// The first version with fragments.
inline constexpr uint32_t kFragmentVersion = 3;
inline constexpr size_t kFileHeaderSize = 32;
inline constexpr size_t kRecordHeaderSize = 16;

// Largest record payload as stored; a larger commit goes in fragments.
inline constexpr size_t kMaxRecordBytes = size_t{64} << 20;
// Largest commit (payload as the caller gives it, fragments put together).
inline constexpr size_t kMaxCommitBytes = size_t{1} << 30;
// Most bytes of a commit in one fragment: the record also holds the
// position byte and, in the first, the commit's length.
inline constexpr size_t kMaxFragmentBytes = kMaxRecordBytes - 1 - 8;

// Payloads at least this large are offered to LZ4 (when compression is on)
// and stored compressed when that makes them smaller.
inline constexpr size_t kMinCompressBytes = 512;

enum class RecordType : uint8_t {
  kPlain = 1,
  kLZ4 = 2,
  kSyncMark = 3,  // version 2: payload synced_through u64
  kFragment = 4,  // version 3: payload position u8 | [total u64, first only] | bytes
};

enum class FragmentPosition : uint8_t { kFirst = 1, kMiddle = 2, kLast = 3 };

inline constexpr size_t kSyncMarkPayloadSize = 8;
inline constexpr size_t kSyncMarkSize = kRecordHeaderSize + kSyncMarkPayloadSize;

inline uint64_t RecordSeed(uint64_t log_number) {
  // Mixed rather than added so that neighbouring log numbers get unrelated seeds.
  return static_cast<uint64_t>(ChecksumKind::kWalRecord) ^
         XXH3_64bits_withSeed(&log_number, sizeof(log_number), 0x9e3779b97f4a7c15ULL);
}

inline uint32_t HeaderCheck(uint64_t seed, const char* length_and_type) {
  return static_cast<uint32_t>(XXH3_64bits_withSeed(length_and_type, 5, seed)) & 0xffffff;
}

// Checksum over rec[8, kRecordHeaderSize + length), i.e. `covered`.
inline uint64_t RecordChecksum(uint64_t seed, std::string_view covered) {
  return XXH3_64bits_withSeed(covered.data(), covered.size(), seed);
}

// Fills dst[0, kRecordHeaderSize) for a record whose payload already sits at
// dst + kRecordHeaderSize.
inline void SealRecord(uint64_t seed, RecordType type, uint32_t length, char* dst) {
  EncodeFixed32(dst + 8, length);
  dst[12] = static_cast<char>(type);
  uint32_t check = HeaderCheck(seed, dst + 8);
  dst[13] = static_cast<char>(check & 0xff);
  dst[14] = static_cast<char>((check >> 8) & 0xff);
  dst[15] = static_cast<char>((check >> 16) & 0xff);
  EncodeFixed64(dst, RecordChecksum(seed, std::string_view(dst + 8, 8 + size_t{length})));
}

// Writes a whole sync mark (kSyncMarkSize bytes) at dst.
inline void EncodeSyncMark(uint64_t seed, uint64_t synced_through, char* dst) {
  EncodeFixed64(dst + kRecordHeaderSize, synced_through);
  SealRecord(seed, RecordType::kSyncMark, kSyncMarkPayloadSize, dst);
}

inline uint32_t StoredHeaderCheck(const char* rec) {
  const auto* p = reinterpret_cast<const unsigned char*>(rec);
  return uint32_t{p[13]} | (uint32_t{p[14]} << 8) | (uint32_t{p[15]} << 16);
}

inline void EncodeFileHeader(uint64_t log_number, char* dst) {
  std::memcpy(dst, kMagic, 8);
  EncodeFixed32(dst + 8, kFormatVersion);
  EncodeFixed32(dst + 12, 0);
  EncodeFixed64(dst + 16, log_number);
  EncodeFixed64(dst + 24, Checksum64(ChecksumKind::kWalHeader, std::string_view(dst, 24)));
}

}  // namespace arenakv::wal

#endif  // ARENAKV_WAL_WAL_FORMAT_H_
