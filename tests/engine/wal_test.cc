// Tests of the write-ahead log: round trips, torn tails, bit flips, foreign
// and future logs, and writer behaviour under injected I/O faults.
#include "wal/wal.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "arenakv/env.h"
#include "fault_env.h"
#include "test_util.h"
#include "util/compression.h"
#include "wal/wal_format.h"

namespace arenakv::wal {
namespace {

using test::FaultInjectionEnv;
using test::FaultOp;
using test::TempDir;

Env* PosixEnv() { return Env::Default().get(); }

std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteFileBytes(const std::string& path, std::string_view bytes) {
  // Replace rather than truncate: truncating a file in place makes some file
  // systems flush it on close, which makes these loops slow.
  std::remove(path.c_str());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string Compressible(size_t n, uint64_t salt) {
  std::string s;
  s.reserve(n);
  while (s.size() < n) s += "key-" + std::to_string(salt++ % 97) + "=value;";
  s.resize(n);
  return s;
}

std::string Random(size_t n, std::mt19937_64* rng) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>((*rng)());
  return s;
}

// Writes the records; returns the end offset of each record.
// Each record's end offset. `sync_each`: a Sync() after every record, so
// that every record but the first follows a sync mark (kSyncMarkSize bytes
// at its end's predecessor) saying the ones before it are durable.
std::vector<uint64_t> WriteLog(Env* env, const std::string& path, uint64_t log_number,
                               const std::vector<std::string>& records, bool compression = true,
                               bool sync_each = false) {
  std::unique_ptr<WalWriter> w;
  WalWriterOptions opts;
  opts.compression = compression;
  Status s = WalWriter::Create(env, path, log_number, opts, &w);
  EXPECT_TRUE(s.ok()) << s.ToString();
  std::vector<uint64_t> ends;
  if (!s.ok()) return ends;
  EXPECT_EQ(w->size(), kFileHeaderSize);
  EXPECT_EQ(w->log_number(), log_number);
  for (const auto& r : records) {
    s = w->AddRecord(r);
    EXPECT_TRUE(s.ok()) << s.ToString();
    ends.push_back(w->size());
    if (sync_each) {
      EXPECT_OK(w->Sync());
    }
  }
  EXPECT_OK(w->Sync());
  EXPECT_OK(w->Close());
  EXPECT_OK(w->Close());
  return ends;
}

struct ReadOutcome {
  Status status;
  std::vector<std::string> records;
  WalReadResult result;
  bool eof = false;
};

ReadOutcome ReadLog(Env* env, const std::string& path, uint64_t log_number,
                    uint64_t max_bytes = UINT64_MAX) {
  ReadOutcome out;
  std::unique_ptr<WalReader> r;
  out.status = WalReader::Open(env, path, log_number, &r, nullptr, max_bytes);
  if (!out.status.ok()) return out;
  for (;;) {
    std::string_view rec;
    bool eof = false;
    out.status = r->ReadRecord(&rec, &eof);
    if (!out.status.ok()) break;
    if (eof) {
      out.eof = true;
      // Stays at eof.
      EXPECT_OK(r->ReadRecord(&rec, &eof));
      EXPECT_TRUE(eof);
      break;
    }
    out.records.emplace_back(rec);
  }
  out.result = r->result();
  EXPECT_EQ(out.result.records, out.records.size());
  return out;
}

// The log at `path` reads back as exactly `recs`, ending at `valid_bytes`.
void ExpectLogHolds(const std::string& path, uint64_t log_number,
                    const std::vector<std::string>& recs, uint64_t valid_bytes) {
  ReadOutcome out = ReadLog(PosixEnv(), path, log_number);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.records, recs);
  EXPECT_EQ(out.result.valid_bytes, valid_bytes);
}

// A writer on the POSIX Env that zero-fills `preallocate_bytes` ahead.
Status CreatePreallocated(const std::string& path, uint64_t log_number, size_t preallocate_bytes,
                          std::unique_ptr<WalWriter>* w) {
  WalWriterOptions opts;
  opts.preallocate_bytes = preallocate_bytes;
  return WalWriter::Create(PosixEnv(), path, log_number, opts, w);
}

std::vector<std::string> MixedRecords(std::mt19937_64* rng) {
  std::vector<std::string> recs;
  recs.emplace_back("");
  recs.emplace_back("a");
  recs.push_back(Compressible(130, 1));
  recs.push_back(Compressible(511, 2));
  recs.push_back(Compressible(512, 3));
  recs.push_back(Random(512, rng));  // incompressible: stored plain
  recs.push_back(Compressible(4096, 4));
  recs.push_back(Random(100000, rng));
  recs.push_back(Compressible(3 << 20, 5));  // larger than the reader's 1 MiB chunk
  recs.push_back(Random(1500000, rng));      // and one that is not compressed
  recs.emplace_back("");
  for (int i = 0; i < 300; ++i) recs.push_back(Random((*rng)() % 700, rng));
  recs.push_back(Compressible(10000, 6));
  return recs;
}

class WalRoundTrip : public ::testing::TestWithParam<bool> {};

TEST_P(WalRoundTrip, ManyRecords) {
  TempDir dir;
  std::mt19937_64 rng(test::TestSeed());
  auto recs = MixedRecords(&rng);
  std::string path = dir.Join("000007.wal");
  auto ends = WriteLog(PosixEnv(), path, 7, recs, GetParam());
  ReadOutcome out = ReadLog(PosixEnv(), path, 7);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  ASSERT_TRUE(out.eof);
  ASSERT_EQ(out.records.size(), recs.size());
  for (size_t i = 0; i < recs.size(); ++i) ASSERT_TRUE(out.records[i] == recs[i]) << i;
  EXPECT_FALSE(out.result.torn_tail);
  EXPECT_EQ(out.result.valid_bytes, ends.back());
  EXPECT_EQ(ReadFileBytes(path).size(), ends.back());
}

INSTANTIATE_TEST_SUITE_P(Compression, WalRoundTrip, ::testing::Bool());

TEST(Wal, CompressionShrinksCompressibleRecordsOnly) {
  TempDir dir;
  std::vector<std::string> compressible(20, Compressible(8192, 9));
  auto on = WriteLog(PosixEnv(), dir.Join("on"), 1, compressible, true);
  auto off = WriteLog(PosixEnv(), dir.Join("off"), 1, compressible, false);
  EXPECT_LT(on.back() * 4, off.back());
  EXPECT_EQ(off.back(), kFileHeaderSize + 20 * (kRecordHeaderSize + 8192));
  // Below the threshold and when incompressible, records are stored plain.
  std::mt19937_64 rng(1);
  std::vector<std::string> small{Compressible(511, 1), Random(4096, &rng)};
  auto ends = WriteLog(PosixEnv(), dir.Join("small"), 1, small, true);
  EXPECT_EQ(ends[0], kFileHeaderSize + kRecordHeaderSize + 511);
  EXPECT_EQ(ends[1], ends[0] + kRecordHeaderSize + 4096);
}

TEST(Wal, EmptyLogAndShortFiles) {
  TempDir dir;
  std::string path = dir.Join("wal");
  WriteLog(PosixEnv(), path, 3, {});
  ReadOutcome out = ReadLog(PosixEnv(), path, 3);
  ASSERT_OK(out.status);
  EXPECT_TRUE(out.eof);
  EXPECT_FALSE(out.result.torn_tail);
  EXPECT_EQ(out.result.valid_bytes, kFileHeaderSize);

  // Shorter than the header: a crash right after creating the file.
  std::string header = ReadFileBytes(path);
  for (size_t n : {size_t{0}, size_t{1}, size_t{10}, kFileHeaderSize - 1}) {
    WriteFileBytes(path, header.substr(0, n));
    out = ReadLog(PosixEnv(), path, 3);
    ASSERT_TRUE(out.status.ok()) << n << " " << out.status.ToString();
    EXPECT_TRUE(out.eof);
    EXPECT_TRUE(out.result.torn_tail);
    EXPECT_EQ(out.result.valid_bytes, 0u);
    EXPECT_TRUE(out.records.empty());
  }
  std::unique_ptr<WalReader> r;
  EXPECT_TRUE(WalReader::Open(PosixEnv(), dir.Join("missing"), 3, &r).IsNotFound());
}

TEST(Wal, ForeignAndFutureLogsAreRefused) {
  TempDir dir;
  std::string path = dir.Join("wal");
  WriteLog(PosixEnv(), path, 5, {"one", "two"});
  std::string good = ReadFileBytes(path);

  ReadOutcome out = ReadLog(PosixEnv(), path, 6);
  EXPECT_TRUE(out.status.IsCorruption()) << out.status.ToString();
  EXPECT_NE(out.status.message().find("log 5"), std::string::npos) << out.status.ToString();
  EXPECT_NE(out.status.message().find(path), std::string::npos) << out.status.ToString();

  std::string bad = good;
  bad[0] = 'X';
  WriteFileBytes(path, bad);
  out = ReadLog(PosixEnv(), path, 5);
  EXPECT_TRUE(out.status.IsCorruption()) << out.status.ToString();
  EXPECT_NE(out.status.message().find("magic"), std::string::npos) << out.status.ToString();

  // A newer format version with an intact header checksum.
  bad = good;
  EncodeFixed32(bad.data() + 8, kFormatVersion + 1);
  EncodeFixed64(bad.data() + 24,
                Checksum64(ChecksumKind::kWalHeader, std::string_view(bad).substr(0, 24)));
  WriteFileBytes(path, bad);
  out = ReadLog(PosixEnv(), path, 5);
  EXPECT_TRUE(out.status.IsNotSupported()) << out.status.ToString();

  // Unknown flags, checksum intact.
  bad = good;
  EncodeFixed32(bad.data() + 12, 1);
  EncodeFixed64(bad.data() + 24,
                Checksum64(ChecksumKind::kWalHeader, std::string_view(bad).substr(0, 24)));
  WriteFileBytes(path, bad);
  EXPECT_TRUE(ReadLog(PosixEnv(), path, 5).status.IsNotSupported());

  // A log number rewritten without fixing the checksum.
  bad = good;
  EncodeFixed64(bad.data() + 16, 6);
  WriteFileBytes(path, bad);
  out = ReadLog(PosixEnv(), path, 6);
  EXPECT_TRUE(out.status.IsCorruption()) << out.status.ToString();
  EXPECT_NE(out.status.message().find("checksum"), std::string::npos) << out.status.ToString();
}

TEST(Wal, RecordsFromAnotherLogNeverValidate) {
  TempDir dir;
  // Log 8's header followed by log 7's records: what a recycled file would
  // hold. None of them may be replayed as log 8's.
  WriteLog(PosixEnv(), dir.Join("a"), 7, {"stale-1", Compressible(2000, 1), "stale-3"});
  WriteLog(PosixEnv(), dir.Join("b"), 8, {});
  std::string mixed =
      ReadFileBytes(dir.Join("b")) + ReadFileBytes(dir.Join("a")).substr(kFileHeaderSize);
  WriteFileBytes(dir.Join("b"), mixed);
  ReadOutcome out = ReadLog(PosixEnv(), dir.Join("b"), 8);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_TRUE(out.records.empty());
  EXPECT_TRUE(out.result.torn_tail);
  EXPECT_EQ(out.result.valid_bytes, kFileHeaderSize);
}

// Cuts the log at every byte of its last record: the reader must return all
// earlier records and report a torn tail ending where the last record began.
void CheckEveryCut(const std::vector<std::string>& recs, bool compression) {
  TempDir dir;
  std::string path = dir.Join("wal");
  auto ends = WriteLog(PosixEnv(), path, 11, recs, compression);
  std::string full = ReadFileBytes(path);
  uint64_t last_start = ends.size() >= 2 ? ends[ends.size() - 2] : kFileHeaderSize;
  std::string cut_path = dir.Join("cut");
  for (uint64_t cut = last_start; cut < full.size(); ++cut) {
    WriteFileBytes(cut_path, std::string_view(full).substr(0, cut));
    ReadOutcome out = ReadLog(PosixEnv(), cut_path, 11);
    ASSERT_TRUE(out.status.ok()) << "cut " << cut << ": " << out.status.ToString();
    ASSERT_TRUE(out.eof);
    ASSERT_EQ(out.records.size(), recs.size() - 1) << "cut " << cut;
    for (size_t i = 0; i < out.records.size(); ++i) ASSERT_TRUE(out.records[i] == recs[i]);
    EXPECT_EQ(out.result.torn_tail, cut != last_start) << "cut " << cut;
    EXPECT_EQ(out.result.valid_bytes, last_start);
  }
  // Cutting the torn tail off leaves a clean log.
  WriteFileBytes(cut_path, std::string_view(full).substr(0, full.size() - 3));
  ASSERT_OK(TruncateTornTail(PosixEnv(), cut_path, 11, last_start));
  EXPECT_EQ(ReadFileBytes(cut_path).size(), last_start);
  ReadOutcome out = ReadLog(PosixEnv(), cut_path, 11);
  ASSERT_OK(out.status);
  EXPECT_FALSE(out.result.torn_tail);
  EXPECT_EQ(out.records.size(), recs.size() - 1);
  EXPECT_OK(TruncateTornTail(PosixEnv(), cut_path, 11, last_start));  // no-op
  EXPECT_TRUE(TruncateTornTail(PosixEnv(), cut_path, 11, last_start + 1).IsInvalidArgument());
}

TEST(Wal, TornTailAtEveryOffsetPlain) {
  CheckEveryCut({"first", Compressible(900, 1), std::string(300, 'z')}, false);
}

TEST(Wal, TornTailAtEveryOffsetCompressed) {
  CheckEveryCut({"first", "second", Compressible(1500, 2)}, true);
}

TEST(Wal, TornTailOfTheOnlyRecord) { CheckEveryCut({Compressible(700, 3)}, true); }

TEST(Wal, ZeroFilledTailIsACleanEnd) {
  // The writer preallocates zeros ahead of its records (and a file system
  // may expose a size-extended tail as zeros): nothing was torn there. A log
  // that is not the last one ends that way too, and recovery must not take
  // it for a torn log before later commits.
  TempDir dir;
  std::string path = dir.Join("wal");
  auto ends = WriteLog(PosixEnv(), path, 2, {"a", "b", "c"});
  WriteFileBytes(path, ReadFileBytes(path) + std::string(8192, '\0'));
  ReadOutcome out = ReadLog(PosixEnv(), path, 2);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.records.size(), 3u);
  EXPECT_FALSE(out.result.torn_tail);
  EXPECT_TRUE(out.result.zero_tail);
  EXPECT_EQ(out.result.valid_bytes, ends.back());
}

// Verify() reads the active log only up to its writer's size: a record being
// stored past it (here: damaged, with a whole one after) must not be read.
TEST(Wal, ReadingUpToALimitIgnoresWhatFollows) {
  TempDir dir;
  std::string path = dir.Join("wal");
  auto ends = WriteLog(PosixEnv(), path, 3, {"first", "second", "being stored", "after it"}, true,
                       /*sync_each=*/true);
  std::string bytes = ReadFileBytes(path);
  bytes[ends[1] + 20] ^= 0x55;  // inside the third record
  WriteFileBytes(path, bytes);
  ReadOutcome whole = ReadLog(PosixEnv(), path, 3);
  EXPECT_TRUE(whole.status.IsCorruption()) << whole.status.ToString();
  ReadOutcome limited = ReadLog(PosixEnv(), path, 3, ends[1]);
  ASSERT_TRUE(limited.status.ok()) << limited.status.ToString();
  EXPECT_EQ(limited.records, (std::vector<std::string>{"first", "second"}));
  EXPECT_FALSE(limited.result.torn_tail);
  EXPECT_EQ(limited.result.valid_bytes, ends[1]);
}

// A power cut after a log was created and preallocated but before its first
// sync leaves a header of zeros (the "bad magic" that kept a
// database from opening): the log was never synced, so it reads as empty,
// whatever unsynced records follow.
TEST(Wal, HeaderOfZerosIsAnEmptyLog) {
  TempDir dir;
  std::string path = dir.Join("wal");
  WriteLog(PosixEnv(), path, 4, {"never", "synced"});
  std::string bytes = ReadFileBytes(path);
  std::fill(bytes.begin(), bytes.begin() + kFileHeaderSize, '\0');
  WriteFileBytes(path, bytes + std::string(4096, '\0'));
  ReadOutcome out = ReadLog(PosixEnv(), path, 4);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_TRUE(out.records.empty());
  EXPECT_TRUE(out.result.torn_tail);
  EXPECT_EQ(out.result.valid_bytes, 0u);
  // A damaged header that is not all zeros is still Corruption.
  bytes[3] = 'x';
  WriteFileBytes(path, bytes);
  out = ReadLog(PosixEnv(), path, 4);
  EXPECT_TRUE(out.status.IsCorruption()) << out.status.ToString();
}

TEST(Wal, PartialRecordBeforeZerosIsTorn) {
  TempDir dir;
  std::string path = dir.Join("wal");
  auto ends = WriteLog(PosixEnv(), path, 2, {"a", "b", "c"});
  // The first bytes of a record header reached the disk, the rest did not.
  WriteFileBytes(path, ReadFileBytes(path) + std::string(5, '\x7f') + std::string(8192, '\0'));
  ReadOutcome out = ReadLog(PosixEnv(), path, 2);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.records.size(), 3u);
  EXPECT_TRUE(out.result.torn_tail);
  EXPECT_FALSE(out.result.zero_tail);
  EXPECT_EQ(out.result.valid_bytes, ends.back());
}

// With preallocation the writer zero-fills ahead of its records and
// overwrites in place: the file is longer than the log, and every record still
// reads back, the zeroed rest being the end.
TEST(Wal, PreallocatedLogReadsBackAndEndsAtTheZeros) {
  TempDir dir;
  std::string path = dir.Join("wal");
  std::unique_ptr<WalWriter> w;
  ASSERT_OK(CreatePreallocated(path, 7, 64 * 1024, &w));
  std::vector<std::string> recs;
  for (int i = 0; i < 3000; ++i) recs.push_back(std::string(40 + i % 200, char('a' + i % 26)));
  for (const auto& r : recs) ASSERT_OK(w->AddRecord(r));
  ASSERT_OK(w->Sync());
  const uint64_t logical = w->size();
  ASSERT_OK(w->Close());
  const std::string bytes = ReadFileBytes(path);
  EXPECT_GT(bytes.size(), logical);  // zero-filled ahead
  EXPECT_EQ(bytes.find_first_not_of('\0', logical), std::string::npos);
  ExpectLogHolds(path, 7, recs, logical);
}

// Write system calls made by this process so far (/proc/self/io "syscw").
uint64_t WriteSyscalls() {
  std::ifstream in("/proc/self/io");
  std::string name;
  uint64_t value = 0;
  while (in >> name >> value) {
    if (name == "syscw:") return value;
  }
  return 0;
}

// Whether the POSIX Env maps files in this directory's file system.
bool MappingSupported(const std::string& probe) {
  std::unique_ptr<File> f;
  if (!PosixEnv()->OpenFile(probe, OpenMode::kCreateTruncate, &f).ok()) return false;
  std::unique_ptr<MappedRegion> region;
  const bool ok =
      f->Write(0, std::string(4096, '\0')).ok() && f->MapWritable(0, 4096, &region).ok();
  region.reset();
  return f->Close().ok() && ok;
}

// With preallocation on the POSIX Env, records go through the mapped window:
// mixed sizes, records larger than the window (written with pwrite instead)
// and many window moves all read back, and small records cost no system call.
TEST(Wal, MappedRecordsReadBackAcrossWindowsWithoutAWriteEach) {
  TempDir dir;
  const std::string path = dir.Join("wal");
  std::mt19937_64 rng(test::TestSeed());
  std::unique_ptr<WalWriter> w;
  ASSERT_OK(CreatePreallocated(path, 9, size_t{1} << 20, &w));
  std::vector<std::string> recs;
  const uint64_t calls_before = WriteSyscalls();
  for (int i = 0; i < 5000; ++i) {
    recs.push_back(Random(20 + rng() % 300, &rng));
    ASSERT_OK(w->AddRecord(recs.back()));
  }
  const uint64_t calls = WriteSyscalls() - calls_before;
  // About 1 MiB of records: the zero-fill ahead takes ~32 writes, records
  // none -- where the file system allows mappings (see File::MapWritable).
  if (MappingSupported(dir.Join("probe"))) {
    EXPECT_LT(calls, 200u) << "records seem to be written one system call each";
  }
  recs.push_back(Random(3 << 20, &rng));  // larger than a window
  ASSERT_OK(w->AddRecord(recs.back()));
  for (int i = 0; i < 2000; ++i) {
    recs.push_back(Compressible(100 + rng() % 5000, i));
    ASSERT_OK(w->AddRecord(recs.back()));
  }
  const uint64_t logical = w->size();
  ASSERT_OK(w->Sync());
  ASSERT_OK(w->Close());
  ExpectLogHolds(path, 9, recs, logical);
}

// Resident file pages of this process (RssFile in /proc/self/status), bytes.
// Resident bytes of the mappings of `path` (exact: smaps walks the page
// tables, where the process's RSS counters are kept per CPU, pages off).
size_t MappedResidentBytes(const std::string& path) {
  std::ifstream in("/proc/self/smaps");
  std::string line;
  bool ours = false;
  size_t total = 0;
  while (std::getline(in, line)) {
    const bool header = !line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) &&
                        line.find('-') != std::string::npos && line.find(':') > line.find(' ');
    if (header) {
      ours = line.size() >= path.size() &&
             line.compare(line.size() - path.size(), path.size(), path) == 0;
    } else if (ours && line.rfind("Rss:", 0) == 0) {
      total += std::stoull(line.substr(4)) * 1024;
    }
  }
  return total;
}

// The pages records were stored into through the window are let go behind
// them: a log keeps a few pages resident, not up to a whole window (a
// thousand open databases kept 117 MiB of log pages after 2M operations).
// What was dropped is still in the file.
TEST(Wal, MappedLogKeepsOnlyItsLastPagesResident) {
  TempDir dir;
  if (!MappingSupported(dir.Join("probe"))) GTEST_SKIP() << "no mappings on this file system";
  // 16 KiB steps, and a page at a time (databases under a shared budget),
  // with zeros written 16 KiB at a time: at no point are more than about a
  // step of log pages resident. (Zeros written 64 KiB at a time, the page
  // cache mapped 32 KiB at a time whatever the step.)
  for (const size_t step : {size_t{16} << 10, size_t{4} << 10}) {
    SCOPED_TRACE("drop_behind_bytes " + std::to_string(step));
    const std::string path = dir.Join("wal-" + std::to_string(step));
    std::mt19937_64 rng(test::TestSeed());
    WalWriterOptions opts;
    opts.preallocate_bytes = size_t{1} << 20;
    opts.drop_behind_bytes = step;
    opts.zero_piece_bytes = size_t{16} << 10;
    std::unique_ptr<WalWriter> w;
    ASSERT_OK(WalWriter::Create(PosixEnv(), path, 13, opts, &w));
    std::vector<std::string> recs;
    size_t most = 0;
    while (w->size() < (900u << 10)) {  // inside the first 1 MiB window
      recs.push_back(Random(20 + rng() % 300, &rng));
      ASSERT_OK(w->AddRecord(recs.back()));
      if (recs.size() % 8 == 0) most = std::max(most, MappedResidentBytes(path));
    }
    EXPECT_GT(most, 0u);  // the window was mapped and measured
    // The step, the page being filled and one a record may spill into.
    EXPECT_LE(most, step + (8u << 10))
        << "900 KiB of records kept up to " << most / 1024 << " KiB of log pages resident";
    const uint64_t logical = w->size();
    ASSERT_OK(w->Close());
    ExpectLogHolds(path, 13, recs, logical);
  }
}

// Records about to be synced are written with pwrite, the others stored
// through the mapping, into the same pages: every one reads back, in order.
TEST(Wal, SyncedRecordsAreWrittenAndMixWithMappedOnes) {
  TempDir dir;
  const std::string path = dir.Join("wal");
  std::mt19937_64 rng(test::TestSeed());
  std::unique_ptr<WalWriter> w;
  ASSERT_OK(CreatePreallocated(path, 11, size_t{1} << 20, &w));
  std::vector<std::string> recs;
  uint64_t synced = 0;
  const uint64_t calls_before = WriteSyscalls();
  for (int i = 0; i < 3000; ++i) {
    const bool sync = rng() % 3 == 0;
    recs.push_back(Random(20 + rng() % 300, &rng));
    ASSERT_OK(w->AddRecord(recs.back(), sync));
    if (sync) {
      ASSERT_OK(w->Sync());
      ++synced;
    }
  }
  const uint64_t calls = WriteSyscalls() - calls_before;
  EXPECT_GE(calls, synced);  // one pwrite each at least
  if (MappingSupported(dir.Join("probe"))) {
    // The unsynced two thirds took none (the zero-fill ahead takes ~32).
    EXPECT_LT(calls, synced + 200);
  }
  const uint64_t logical = w->size();
  ASSERT_OK(w->Close());
  ExpectLogHolds(path, 11, recs, logical);
}

// An unsynced record stored through the mapping is in the page cache at once:
// a process that dies right after AddRecord (no Sync, no Close, no
// destructors) still leaves it in the file.
TEST(Wal, MappedUnsyncedRecordsSurviveTheProcessDying) {
  TempDir dir;
  const std::string path = dir.Join("wal");
  std::vector<std::string> recs;
  for (int i = 0; i < 1000; ++i) recs.push_back(Compressible(50 + i % 400, i));
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::unique_ptr<WalWriter> w;
    if (!CreatePreallocated(path, 4, size_t{1} << 20, &w).ok()) _exit(2);
    for (const auto& r : recs) {
      if (!w->AddRecord(r).ok()) _exit(3);
    }
    _exit(0);  // as abrupt as SIGKILL for the file: nothing is flushed or closed
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  ReadOutcome out = ReadLog(PosixEnv(), path, 4);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.records, recs);
}

// A power loss can tear an unsynced record while a later unsynced one
// reaches the disk. No sync mark after the damage says it was durable, so
// the log is cut there: every record before it, none after.
TEST(Wal, UnsyncedDamageBeforeIntactRecordsIsCut) {
  TempDir dir;
  std::string path = dir.Join("wal");
  auto ends = WriteLog(PosixEnv(), path, 5, {"one", "two", "three", "four"});
  std::string bytes = ReadFileBytes(path);
  bytes[ends[1] + 20] ^= 0x10;  // inside "three"
  WriteFileBytes(path, bytes);
  ReadOutcome out = ReadLog(PosixEnv(), path, 5);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.records, (std::vector<std::string>{"one", "two"}));
  EXPECT_TRUE(out.result.torn_tail);
  EXPECT_TRUE(out.result.intact_after_cut);
  EXPECT_EQ(out.result.valid_bytes, ends[1]);
}

// A version 1 log (no sync marks) keeps the rule it was written under:
// damage followed by an intact record is corruption.
TEST(Wal, VersionOneLogsKeepTheirRule) {
  TempDir dir;
  std::string path = dir.Join("wal");
  auto ends = WriteLog(PosixEnv(), path, 6, {"one", "two", "three"});
  std::string bytes = ReadFileBytes(path);
  EncodeFixed32(bytes.data() + 8, 1);
  EncodeFixed64(bytes.data() + 24,
                Checksum64(ChecksumKind::kWalHeader, std::string_view(bytes.data(), 24)));
  WriteFileBytes(path, bytes);
  ReadOutcome out = ReadLog(PosixEnv(), path, 6);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.records.size(), 3u);
  bytes[ends[0] + 18] ^= 0x10;  // inside "two"
  WriteFileBytes(path, bytes);
  out = ReadLog(PosixEnv(), path, 6);
  EXPECT_TRUE(out.status.IsCorruption()) << out.status.ToString();
  EXPECT_EQ(out.records.size(), 1u);
}

// Flips one bit in every byte of a log synced after every record, one byte
// at a time. A flip in the header is refused; in a record (or its sync mark)
// that a later sync mark says was durable it is Corruption naming the
// offset; in the last record it is a torn tail. Never a crash, never a
// wrong record.
TEST(Wal, BitFlipsAreDetected) {
  TempDir dir;
  std::mt19937_64 rng(test::TestSeed());
  std::vector<std::string> recs{"alpha", Compressible(800, 1),  Random(60, &rng),
                                "",      Compressible(1200, 2), Random(40, &rng)};
  std::string path = dir.Join("wal");
  auto ends = WriteLog(PosixEnv(), path, 9, recs, true, /*sync_each=*/true);
  std::string full = ReadFileBytes(path);
  const uint64_t last_start = ends[ends.size() - 2];
  std::string flip_path = dir.Join("flip");
  for (size_t pos = 0; pos < full.size(); ++pos) {
    std::string bad = full;
    bad[pos] = static_cast<char>(bad[pos] ^ (1 << (rng() % 8)));
    WriteFileBytes(flip_path, bad);
    ReadOutcome out = ReadLog(PosixEnv(), flip_path, 9);
    // Whatever came back must be a prefix of what was written.
    ASSERT_LE(out.records.size(), recs.size());
    for (size_t i = 0; i < out.records.size(); ++i) {
      ASSERT_TRUE(out.records[i] == recs[i]) << "pos " << pos << " record " << i;
    }
    if (pos < kFileHeaderSize) {
      ASSERT_FALSE(out.status.ok()) << "pos " << pos;
      bool version_field = pos >= 8 && pos < 12;
      EXPECT_TRUE(out.status.IsCorruption() || (version_field && out.status.IsNotSupported()))
          << "pos " << pos << ": " << out.status.ToString();
    } else if (pos < last_start) {
      ASSERT_TRUE(out.status.IsCorruption()) << "pos " << pos << ": " << out.status.ToString();
      // Names the file and the damaged record's offset.
      size_t rec = 0;
      while (ends[rec] <= pos) ++rec;
      uint64_t start = rec == 0 ? kFileHeaderSize : ends[rec - 1];
      // Past its sync mark, the record itself is the damaged one.
      if (rec > 0 && pos >= start + kSyncMarkSize) start += kSyncMarkSize;
      EXPECT_NE(out.status.message().find(flip_path + " offset " + std::to_string(start)),
                std::string::npos)
          << out.status.ToString();
      EXPECT_EQ(out.records.size(), rec);
    } else {
      ASSERT_TRUE(out.status.ok()) << "pos " << pos << ": " << out.status.ToString();
      EXPECT_TRUE(out.result.torn_tail);
      EXPECT_EQ(out.records.size(), recs.size() - 1);
      // The last record's sync mark reads, unless the flip is in it.
      EXPECT_EQ(out.result.valid_bytes,
                pos < last_start + kSyncMarkSize ? last_start : last_start + kSyncMarkSize);
    }
  }
}

// Records whose checksum holds but whose content is wrong can only be forged;
// they must still be refused cleanly.
TEST(Wal, ForgedRecordsAreCorruption) {
  TempDir dir;
  std::string path = dir.Join("wal");
  WriteLog(PosixEnv(), path, 4, {});
  const std::string header = ReadFileBytes(path);
  const uint64_t seed = RecordSeed(4);
  auto forge = [&](uint8_t type, std::string_view payload) {
    std::string rec(kRecordHeaderSize, '\0');
    rec.append(payload);
    SealRecord(seed, static_cast<RecordType>(type), static_cast<uint32_t>(payload.size()),
               rec.data());
    return rec;
  };
  std::string raw_size(4, '\0');

  struct Case {
    const char* name;
    std::string record;
  };
  std::vector<Case> cases;
  cases.push_back({"unknown type", forge(7, "hello")});
  cases.push_back({"short lz4", forge(2, "ab")});
  EncodeFixed32(raw_size.data(), 1u << 30);
  cases.push_back({"absurd size", forge(2, raw_size + "xxxxxxxx")});
  EncodeFixed32(raw_size.data(), 1000);
  cases.push_back({"implausible ratio", forge(2, raw_size + "x")});
  cases.push_back({"garbage lz4", forge(2, raw_size + std::string(64, '\xff'))});
  std::string lz(512, '\0');
  size_t n = 0;
  ASSERT_OK(LZ4Compress(Compressible(1000, 1), lz.data(), lz.size(), &n));
  ASSERT_GT(n, 0u);
  EncodeFixed32(raw_size.data(), 999);  // wrong decompressed size
  cases.push_back({"size mismatch", forge(2, raw_size + lz.substr(0, n))});

  for (const auto& c : cases) {
    WriteFileBytes(path, header + forge(1, "ok") + c.record);
    ReadOutcome out = ReadLog(PosixEnv(), path, 4);
    EXPECT_TRUE(out.status.IsCorruption()) << c.name << ": " << out.status.ToString();
    EXPECT_EQ(out.records, std::vector<std::string>{"ok"}) << c.name;
  }
  // And the honest version of the last one reads back.
  EncodeFixed32(raw_size.data(), 1000);
  WriteFileBytes(path, header + forge(2, raw_size + lz.substr(0, n)));
  ReadOutcome out = ReadLog(PosixEnv(), path, 4);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.records, std::vector<std::string>{Compressible(1000, 1)});
}

TEST(Wal, RandomLogsWithRandomCuts) {
  TempDir dir;
  std::mt19937_64 rng(test::TestSeed());
  for (int round = 0; round < 30; ++round) {
    std::vector<std::string> recs;
    int count = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < count; ++i) {
      size_t len = rng() % 3 == 0 ? rng() % 20000 : rng() % 300;
      recs.push_back(rng() % 2 ? Compressible(len, rng()) : Random(len, &rng));
    }
    std::string path = dir.Join("wal");
    bool compression = rng() % 2;
    auto ends = WriteLog(PosixEnv(), path, round, recs, compression);
    std::string full = ReadFileBytes(path);
    uint64_t cut = kFileHeaderSize + rng() % (full.size() - kFileHeaderSize + 1);
    WriteFileBytes(path, std::string_view(full).substr(0, cut));
    ReadOutcome out = ReadLog(PosixEnv(), path, round);
    ASSERT_TRUE(out.status.ok()) << out.status.ToString();
    size_t whole = 0;
    while (whole < ends.size() && ends[whole] <= cut) ++whole;
    ASSERT_EQ(out.records.size(), whole) << "round " << round << " cut " << cut;
    for (size_t i = 0; i < whole; ++i) ASSERT_TRUE(out.records[i] == recs[i]);
    uint64_t valid = whole == 0 ? kFileHeaderSize : ends[whole - 1];
    EXPECT_EQ(out.result.valid_bytes, valid);
    EXPECT_EQ(out.result.torn_tail, cut != valid);
  }
}

// A commit longer than a record is logged as a run of fragments and read
// back whole; records around it are untouched.
TEST(Wal, FragmentedCommitsRoundTrip) {
  TempDir dir;
  for (bool compression : {false, true}) {
    const std::string path = dir.Join(compression ? "on" : "off");
    WalWriterOptions o;
    o.compression = compression;
    o.fragment_bytes = 1000;
    o.preallocate_bytes = 4096;
    std::unique_ptr<WalWriter> w;
    ASSERT_OK(WalWriter::Create(PosixEnv(), path, 5, o, &w));
    const std::vector<std::string> recs = {"a",
                                           std::string(999, 'b'),
                                           std::string(1000, 'c'),
                                           Compressible(1001, 2),
                                           Compressible(5000, 3),
                                           "z"};
    for (size_t i = 0; i < recs.size(); ++i) {
      ASSERT_OK(w->AddRecord(recs[i], /*sync_next=*/i == 2));
      if (i == 2) {
        ASSERT_OK(w->Sync());  // a mark goes before the next run
      }
    }
    const uint64_t end = w->size();
    ASSERT_OK(w->Close());
    ReadOutcome out = ReadLog(PosixEnv(), path, 5);
    ASSERT_TRUE(out.status.ok()) << out.status.ToString();
    EXPECT_EQ(out.records, recs);
    EXPECT_FALSE(out.result.torn_tail);
    EXPECT_EQ(out.result.valid_bytes, end);
  }
}

// A log that ends anywhere inside a run of fragments (torn, cut short, or
// followed by the zeros written ahead) ends before the run: the commit was
// never whole on disk, so it is not applied, and recovery cuts there.
TEST(Wal, LogEndingInsideAFragmentRunDropsTheCommitWhole) {
  TempDir dir;
  const std::string path = dir.Join("wal");
  WalWriterOptions o;
  o.compression = false;
  o.fragment_bytes = 700;
  std::unique_ptr<WalWriter> w;
  ASSERT_OK(WalWriter::Create(PosixEnv(), path, 9, o, &w));
  ASSERT_OK(w->AddRecord("before"));
  const uint64_t run_start = w->size();
  ASSERT_OK(w->AddRecord(std::string(3000, 'f')));
  ASSERT_OK(w->Close());
  const std::string full = ReadFileBytes(path);
  const std::string cut_path = dir.Join("cut");
  for (uint64_t cut = run_start + 1; cut < full.size(); cut += 37) {
    for (bool zeros : {false, true}) {
      std::string bytes = full.substr(0, cut);
      if (zeros) bytes.append(4096, '\0');
      WriteFileBytes(cut_path, bytes);
      ReadOutcome out = ReadLog(PosixEnv(), cut_path, 9);
      ASSERT_TRUE(out.status.ok()) << "cut " << cut << ": " << out.status.ToString();
      EXPECT_EQ(out.records, std::vector<std::string>{"before"}) << "cut " << cut;
      EXPECT_TRUE(out.result.torn_tail) << "cut " << cut << (zeros ? " + zeros" : "");
      EXPECT_EQ(out.result.valid_bytes, run_start) << "cut " << cut;
    }
  }
  // Cutting there leaves a clean log, as for any torn tail.
  ASSERT_OK(TruncateTornTail(PosixEnv(), cut_path, 9, run_start));
  ReadOutcome out = ReadLog(PosixEnv(), cut_path, 9);
  EXPECT_FALSE(out.result.torn_tail);
  EXPECT_EQ(out.records, std::vector<std::string>{"before"});
}

// Past one record's limit with the default fragments: 64 MiB + 1 byte.
TEST(Wal, CommitLargerThanARecordIsLoggedInFragments) {
  if (test::UnderSanitizer()) GTEST_SKIP() << "128 MiB of buffers; the sanitizer doubles it";
  TempDir dir;
  std::unique_ptr<WalWriter> w;
  ASSERT_OK(WalWriter::Create(PosixEnv(), dir.Join("wal"), 1, {}, &w));
  std::string huge(kMaxRecordBytes + 1, 'h');
  huge[12345] = 'x';
  ASSERT_OK(w->AddRecord(huge));
  ASSERT_OK(w->AddRecord("fine"));
  ASSERT_OK(w->Close());
  EXPECT_TRUE(w->AddRecord("late").IsClosed());
  EXPECT_TRUE(w->Sync().IsClosed());
  ReadOutcome out = ReadLog(PosixEnv(), dir.Join("wal"), 1);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  ASSERT_EQ(out.records.size(), 2u);
  EXPECT_TRUE(out.records[0] == huge);
  EXPECT_EQ(out.records[1], "fine");
}

TEST(Wal, OneWritePerRecordAndNoSyncUntilAsked) {
  TempDir dir;
  FaultInjectionEnv env(Env::Default());
  std::unique_ptr<WalWriter> w;
  ASSERT_OK(WalWriter::Create(&env, dir.Join("wal"), 1, {}, &w));
  env.ResetCounts();
  std::string payload = Compressible(130, 1);
  for (int i = 0; i < 100; ++i) ASSERT_OK(w->AddRecord(payload));
  EXPECT_EQ(env.Count(FaultOp::kWrite), 100u);
  EXPECT_EQ(env.Count(FaultOp::kSync), 0u);
  ASSERT_OK(w->Sync());
  EXPECT_EQ(env.Count(FaultOp::kSync), 1u);
  EXPECT_EQ(w->size(), kFileHeaderSize + 100 * (kRecordHeaderSize + 130));

  // A rough cost figure for the group-commit path (not asserted: shared machine).
  const int n = 20000;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) ASSERT_OK(w->AddRecord(payload));
  auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  std::printf("[perf] AddRecord(130 bytes): %.0f ns/record\n", static_cast<double>(ns) / n);
}

TEST(Wal, EnospcMidAppendPoisonsTheWriter) {
  TempDir dir;
  FaultInjectionEnv env(Env::Default());
  std::string path = dir.Join("000003.wal");
  std::unique_ptr<WalWriter> w;
  ASSERT_OK(WalWriter::Create(&env, path, 3, {}, &w));
  // Records 1-4 succeed, record 5 half-lands.
  env.AddRule({.file_substring = "wal",
               .op = FaultOp::kWrite,
               .error = ENOSPC,
               .after_ops = 4,
               .short_write = true,
               .one_shot = true});
  std::vector<std::string> recs;
  for (int i = 0; i < 4; ++i) {
    recs.push_back("record-" + std::to_string(i) + std::string(100, 'r'));
    ASSERT_OK(w->AddRecord(recs.back()));
  }
  uint64_t size_before = w->size();
  Status s = w->AddRecord(Compressible(5000, 1));
  ASSERT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_NE(s.message().find("No space left on device"), std::string::npos) << s.ToString();
  EXPECT_EQ(w->size(), size_before);
  // Poisoned: the fault is gone, but the writer keeps its error.
  Status again = w->AddRecord("after");
  EXPECT_EQ(again.code(), s.code());
  EXPECT_EQ(again.message(), s.message());
  EXPECT_EQ(w->Sync().message(), s.message());
  EXPECT_OK(w->Close());

  // On disk: four records and a torn half record.
  ReadOutcome out = ReadLog(PosixEnv(), path, 3);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.records, recs);
  EXPECT_TRUE(out.result.torn_tail);
  EXPECT_EQ(out.result.valid_bytes, size_before);
}

TEST(Wal, FsyncFailurePoisonsTheWriter) {
  TempDir dir;
  FaultInjectionEnv env(Env::Default());
  std::unique_ptr<WalWriter> w;
  ASSERT_OK(WalWriter::Create(&env, dir.Join("wal"), 1, {}, &w));
  ASSERT_OK(w->AddRecord("x"));
  ASSERT_OK(w->Sync());
  env.AddRule({.file_substring = "", .op = FaultOp::kSync, .error = EIO, .one_shot = true});
  ASSERT_OK(w->AddRecord("y"));
  EXPECT_TRUE(w->Sync().IsIOError());
  EXPECT_TRUE(w->AddRecord("z").IsIOError());
  EXPECT_TRUE(w->Sync().IsIOError());
}

TEST(Wal, CreateAndOpenErrorsPropagate) {
  TempDir dir;
  FaultInjectionEnv env(Env::Default());
  std::unique_ptr<WalWriter> w;
  env.AddRule({.file_substring = "", .op = FaultOp::kWrite, .error = ENOSPC, .one_shot = true});
  EXPECT_TRUE(WalWriter::Create(&env, dir.Join("wal"), 1, {}, &w).IsIOError());
  EXPECT_EQ(w, nullptr);
  ASSERT_OK(WalWriter::Create(&env, dir.Join("wal"), 1, {}, &w));
  ASSERT_OK(w->AddRecord(Compressible(3000, 1)));
  ASSERT_OK(w->Close());
  env.AddRule({.file_substring = "", .op = FaultOp::kRead, .error = EIO, .after_ops = 1});
  std::unique_ptr<WalReader> r;
  ASSERT_OK(WalReader::Open(&env, dir.Join("wal"), 1, &r));  // read #1: header
  std::string_view rec;
  bool eof = false;
  Status s = r->ReadRecord(&rec, &eof);
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_TRUE(r->ReadRecord(&rec, &eof).IsIOError());  // sticky
  env.ClearRules();
  env.AddRule({.file_substring = "", .op = FaultOp::kTruncate, .error = EIO});
  EXPECT_TRUE(TruncateTornTail(&env, dir.Join("wal"), 1, kFileHeaderSize).IsIOError());
}

TEST(Compression, RoundTripAndBounds) {
  std::string raw = Compressible(100000, 7);
  std::string buf(LZ4CompressBound(raw.size()), '\0');
  size_t n = 0;
  ASSERT_OK(LZ4Compress(raw, buf.data(), buf.size(), &n));
  ASSERT_GT(n, 0u);
  std::string back;
  ASSERT_OK(LZ4DecompressTo(std::string_view(buf.data(), n), raw.size(), &back, "t"));
  EXPECT_TRUE(back == raw);
  // Too small an output buffer: OK, nothing written.
  ASSERT_OK(LZ4Compress(raw, buf.data(), 10, &n));
  EXPECT_EQ(n, 0u);
  // The ratio bound holds for the most compressible input there is.
  std::string zeros(8 << 20, '\0');
  std::string z(LZ4CompressBound(zeros.size()), '\0');
  ASSERT_OK(LZ4Compress(zeros, z.data(), z.size(), &n));
  EXPECT_TRUE(CheckLZ4RawSize(zeros.size(), n, "zeros").ok()) << n;
  ASSERT_OK(LZ4DecompressTo(std::string_view(z.data(), n), zeros.size(), &back, "z"));
  EXPECT_TRUE(back == zeros);
  EXPECT_TRUE(CheckLZ4RawSize(uint64_t{1} << 40, 1 << 30, "big").IsCorruption());
  EXPECT_TRUE(LZ4DecompressTo("", 10, &back, "empty").IsCorruption());
}

}  // namespace
}  // namespace arenakv::wal
