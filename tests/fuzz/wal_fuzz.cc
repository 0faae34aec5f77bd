// libFuzzer target for the WAL reader (and, as an oracle, the writer).
//
// The first input byte picks how the rest becomes a log file, so that the
// fuzzer gets past the checksums it cannot compute:
//   0: the bytes are the whole file (header checks);
//   1: a valid header, then the bytes (record framing, torn-tail scan);
//   2: a valid header, then records built from the bytes and sealed with
//      valid checksums (types, LZ4 decoding, size checks), then cut;
//   3: the bytes split into payloads, written by WalWriter (longer ones in
//      fragments), read back: every payload must come back identical, and a
//      cut must yield a prefix.
// Any crash, sanitizer report or abort() is a finding.
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "arenakv/env.h"
#include "util/coding.h"
#include "wal/wal.h"
#include "wal/wal_format.h"

namespace {

using namespace arenakv;  // NOLINT: a fuzz driver

constexpr uint64_t kLog = 42;

// A plain array, not a std::string: the exit handler that removes the
// directory runs after static destructors would have freed a string.
char g_dir[4096];

std::string Dir() {
  if (g_dir[0] == '\0') {
    const char* base = std::getenv("TMPDIR");
    std::snprintf(g_dir, sizeof(g_dir), "%s/arenakv-walfuzz-XXXXXX", base && *base ? base : "/tmp");
    if (mkdtemp(g_dir) == nullptr) std::abort();
    std::atexit([] {
      std::string file = std::string(g_dir) + "/wal";
      unlink(file.c_str());
      rmdir(g_dir);
    });
  }
  return g_dir;
}

void WriteFile(const std::string& path, std::string_view bytes) {
  std::unique_ptr<File> f;
  if (!Env::Default()->OpenFile(path, OpenMode::kCreateTruncate, &f).ok()) std::abort();
  if (!f->Append(bytes).ok()) std::abort();
}

struct Outcome {
  Status status;
  std::vector<std::string> records;
  wal::WalReadResult result;
};

Outcome ReadAll(const std::string& path) {
  Outcome out;
  std::unique_ptr<wal::WalReader> r;
  out.status = wal::WalReader::Open(Env::Default().get(), path, kLog, &r);
  if (!out.status.ok()) return out;
  for (;;) {
    std::string_view rec;
    bool eof = false;
    out.status = r->ReadRecord(&rec, &eof);
    if (!out.status.ok() || eof) break;
    out.records.emplace_back(rec);
  }
  out.result = r->result();
  if (out.result.records != out.records.size()) std::abort();
  return out;
}

std::string Header() {
  std::string h(wal::kFileHeaderSize, '\0');
  wal::EncodeFileHeader(kLog, h.data());
  return h;
}

// Mode 2: [type u8][len u16][bytes]... sealed with valid checksums.
std::string SealedRecords(std::string_view in, size_t* cut) {
  std::string body = Header();
  const uint64_t seed = wal::RecordSeed(kLog);
  *cut = in.empty() ? 0 : static_cast<unsigned char>(in.back());
  while (in.size() >= 3) {
    uint8_t type = static_cast<uint8_t>(in[0]);
    size_t len = DecodeFixed16(in.data() + 1);
    in.remove_prefix(3);
    if (len > in.size()) len = in.size();
    std::string rec(wal::kRecordHeaderSize, '\0');
    rec.append(in.substr(0, len));
    in.remove_prefix(len);
    wal::SealRecord(seed, static_cast<wal::RecordType>(type % 5), static_cast<uint32_t>(len),
                    rec.data());
    body += rec;
  }
  return body;
}

void RoundTrip(std::string_view in, const std::string& path) {
  // Payload boundaries at each 0xff byte; the first byte sets compression.
  bool compression = !in.empty() && (in[0] & 1);
  std::vector<std::string> payloads;
  std::string cur;
  for (size_t i = 1; i < in.size(); ++i) {
    if (static_cast<unsigned char>(in[i]) == 0xff) {
      // Repeat it so compression has something to find.
      std::string rep;
      while (rep.size() < cur.size() * 8 && rep.size() < 4096) rep += cur;
      payloads.push_back(cur + rep);
      cur.clear();
    } else {
      cur.push_back(in[i]);
    }
  }
  payloads.push_back(cur);

  std::unique_ptr<wal::WalWriter> w;
  wal::WalWriterOptions opts;
  opts.compression = compression;
  // Small fragments, so that longer payloads go in runs of them (version 3).
  opts.fragment_bytes = 64 + in.size() % 1024;
  if (!wal::WalWriter::Create(Env::Default().get(), path, kLog, opts, &w).ok()) std::abort();
  std::vector<uint64_t> ends;
  for (const auto& p : payloads) {
    if (!w->AddRecord(p).ok()) std::abort();
    ends.push_back(w->size());
  }
  if (!w->Close().ok()) std::abort();
  Outcome out = ReadAll(path);
  if (!out.status.ok() || out.result.torn_tail || out.records != payloads) std::abort();

  // Cut somewhere inside the records: the reader must return exactly the
  // records that ended before the cut, and a torn tail if it cut one.
  uint64_t total = ends.back();
  uint64_t cut = wal::kFileHeaderSize + (in.size() * 7919) % (total - wal::kFileHeaderSize + 1);
  if (truncate(path.c_str(), static_cast<off_t>(cut)) != 0) std::abort();
  out = ReadAll(path);
  size_t whole = 0;
  while (whole < ends.size() && ends[whole] <= cut) ++whole;
  if (!out.status.ok() || out.records.size() != whole) std::abort();
  for (size_t i = 0; i < whole; ++i) {
    if (out.records[i] != payloads[i]) std::abort();
  }
  uint64_t valid = whole == 0 ? wal::kFileHeaderSize : ends[whole - 1];
  // A cut record reads as torn, unless the part left is all zeros (the
  // first bytes of its checksum were): that reads as the clean end of a
  // preallocated log, at the same place.
  const bool cut_one = cut != valid;
  if (out.result.valid_bytes != valid ||
      (out.result.torn_tail || out.result.zero_tail) != cut_one ||
      (out.result.torn_tail && out.result.zero_tail)) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string path = Dir() + "/wal";
  // A fresh file each time: emptying one in place makes some file systems
  // flush it on close, which slows fuzzing tenfold.
  unlink(path.c_str());
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      WriteFile(path, in);
      ReadAll(path);
      break;
    case 1:
      WriteFile(path, Header() + std::string(in));
      ReadAll(path);
      break;
    case 2: {
      size_t cut = 0;
      std::string file = SealedRecords(in, &cut);
      // Cut off up to 255 bytes from the end to make torn tails.
      if (cut > 0 && cut < file.size()) file.resize(file.size() - cut);
      WriteFile(path, file);
      ReadAll(path);
      break;
    }
    case 3:
      RoundTrip(in, path);
      break;
  }
  return 0;
}
