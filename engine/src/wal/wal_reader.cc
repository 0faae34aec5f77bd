#include "wal/wal_reader.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "util/compression.h"
#include "wal/wal_format.h"

namespace arenakv::wal {
namespace {

constexpr size_t kChunkBytes = size_t{1} << 20;

std::pmr::memory_resource* OrDefault(std::pmr::memory_resource* r) {
  return r != nullptr ? r : std::pmr::get_default_resource();
}

std::string Where(const std::string& path, uint64_t offset) {
  return "wal " + path + " offset " + std::to_string(offset);
}

}  // namespace

WalReader::WalReader(Token, std::unique_ptr<File> file, uint64_t file_size, uint64_t log_number,
                     std::pmr::memory_resource* memory)
    : file_(std::move(file)),
      file_size_(file_size),
      seed_(RecordSeed(log_number)),
      pos_(kFileHeaderSize),
      buf_(OrDefault(memory)),
      raw_(OrDefault(memory)),
      assembled_(OrDefault(memory)) {}

WalReader::~WalReader() { file_->Close().IgnoreError(); }

Status WalReader::Open(Env* env, const std::string& path, uint64_t expected_log_number,
                       std::unique_ptr<WalReader>* reader, std::pmr::memory_resource* memory,
                       uint64_t max_bytes) {
  std::unique_ptr<File> file;
  Status s = env->OpenFile(path, OpenMode::kReadOnly, &file);
  if (!s.ok()) return s;
  uint64_t size = 0;
  s = file->Size(&size);
  if (!s.ok()) return s;
  size = std::min(size, max_bytes);

  char header[kFileHeaderSize];
  uint32_t version = 0;
  size_t got = 0;
  if (size >= kFileHeaderSize) {
    s = file->Read(0, kFileHeaderSize, header, &got);
    if (!s.ok()) return s;
    if (got < kFileHeaderSize) size = got;  // shrank under us: treat as short
  }
  // A header of zeros was never written to the disk: a power cut after the
  // file was created (and preallocated) but before its first sync, which
  // would have made the header durable with the records. None of its
  // records was ever synced, so the log is taken as empty, like a file
  // shorter than its header.
  const bool never_synced = size >= kFileHeaderSize && std::all_of(header, header + kFileHeaderSize,
                                                                   [](char c) { return c == 0; });
  if (size >= kFileHeaderSize && !never_synced) {
    if (std::memcmp(header, kMagic, sizeof(kMagic)) != 0) {
      return Status::Corruption("wal " + path + ": not an arenakv write-ahead log (bad magic)");
    }
    // The checksum comes first: a damaged header must read as Corruption, not
    // as a "newer version". The 32-byte header's layout and checksum are fixed
    // for every format version (docs/format.md), so a newer file still
    // verifies here and is then refused as NotSupported.
    version = DecodeFixed32(header + 8);
    uint64_t want = Checksum64(ChecksumKind::kWalHeader, std::string_view(header, 24));
    if (DecodeFixed64(header + 24) != want) {
      return Status::Corruption("wal " + path + ": file header checksum mismatch");
    }
    if (version > kFormatVersion) {
      return Status::NotSupported("wal " + path + ": format version " + std::to_string(version) +
                                  " is newer than the supported version " +
                                  std::to_string(kFormatVersion));
    }
    if (version == 0) return Status::Corruption("wal " + path + ": format version 0");
    uint32_t flags = DecodeFixed32(header + 12);
    if (flags != 0) {
      return Status::NotSupported("wal " + path + ": unknown header flags " +
                                  std::to_string(flags));
    }
    uint64_t log_number = DecodeFixed64(header + 16);
    if (log_number != expected_log_number) {
      return Status::Corruption("wal " + path + ": belongs to log " + std::to_string(log_number) +
                                ", expected log " + std::to_string(expected_log_number));
    }
  }

  std::unique_ptr<WalReader> r;
  try {
    r = std::make_unique<WalReader>(Token{}, std::move(file), size, expected_log_number, memory);
  } catch (const std::bad_alloc&) {
    return Status::MemoryLimit("wal " + path + ": no memory for the reader");
  }
  if (size < kFileHeaderSize || never_synced) {
    // A crash between creating the file and writing its header: an empty log.
    r->done_ = true;
    r->result_.torn_tail = true;
    r->result_.valid_bytes = 0;
  } else {
    r->result_.valid_bytes = kFileHeaderSize;
  }
  r->version_ = version;
  *reader = std::move(r);
  return Status::OK();
}

Status WalReader::Fail(Status s) {
  status_ = s;
  return s;
}

Status WalReader::Fill(uint64_t offset, size_t n, bool* complete) {
  uint64_t buf_end = buf_offset_ + buf_len_;
  if (offset >= buf_offset_ && offset + n <= buf_end) {
    *complete = true;
    return Status::OK();
  }
  if (offset + n > file_size_) {
    *complete = false;
    return Status::OK();
  }
  // Keep the wanted bytes already read, move them to the front, read the rest.
  size_t keep = offset < buf_end ? static_cast<size_t>(buf_end - offset) : 0;
  // A chunk at a time, but no more than the file holds (small logs are common).
  size_t want = kChunkBytes;
  if (file_size_ - offset < want) want = static_cast<size_t>(file_size_ - offset);
  if (n > want) want = n;
  try {
    if (buf_.size() < want || (buf_.size() > kChunkBytes && want <= kChunkBytes)) {
      // Grow for a large record; shrink back once past it.
      std::pmr::string fresh(want, '\0', buf_.get_allocator());
      if (keep > 0) std::memcpy(fresh.data(), Buffered(offset), keep);
      buf_.swap(fresh);
    } else if (keep > 0) {
      std::memmove(buf_.data(), Buffered(offset), keep);
    }
  } catch (const std::bad_alloc&) {
    return Status::MemoryLimit(Where(file_->path(), offset) + ": no memory for a read buffer of " +
                               std::to_string(want) + " bytes");
  }
  buf_offset_ = offset;
  buf_len_ = keep;
  uint64_t end = buf_offset_ + buf_len_;
  size_t to_read = buf_.size() - buf_len_;
  if (end + to_read > file_size_) to_read = static_cast<size_t>(file_size_ - end);
  size_t got = 0;
  Status s = file_->Read(end, to_read, buf_.data() + buf_len_, &got);
  if (!s.ok()) return s;
  buf_len_ += got;
  *complete = offset + n <= buf_offset_ + buf_len_;
  return Status::OK();
}

Status WalReader::RestIsZero(uint64_t offset, bool* zero) {
  *zero = false;
  for (uint64_t p = offset; p < file_size_;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunkBytes, file_size_ - p));
    bool complete = false;
    Status s = Fill(p, n, &complete);
    if (!s.ok()) return Fail(s);
    if (!complete) return Status::OK();
    const char* b = Buffered(p);
    for (size_t i = 0; i < n; ++i) {
      if (b[i] != 0) return Status::OK();
    }
    p += n;
  }
  *zero = true;
  return Status::OK();
}

Status WalReader::BadRecord(uint64_t offset, const std::string& why, bool* eof) {
  // The writer preallocates zeros ahead of its records: a log that ends in
  // nothing but zeros ended cleanly, whether it is the last log or not.
  // Inside a run of fragments the commit is incomplete: the log is cut
  // before its first fragment, even where it ends in zeros.
  const uint64_t cut = assembling_ ? assembly_start_ : offset;
  bool zero = false;
  Status zs = RestIsZero(offset, &zero);
  if (!zs.ok()) return zs;
  if (zero && !assembling_) {
    done_ = true;
    result_.zero_tail = true;
    result_.valid_bytes = offset;
    *eof = true;
    return Status::OK();
  }
  if (salvage_ && !zero) {
    // Salvage: pass over the damage to the next intact record.
    uint64_t at = 0;
    uint32_t len = 0;
    Status s = FindIntact(offset + 1, &at, &len);
    if (!s.ok()) return s;
    if (at != 0) {
      result_.skipped_bytes += at - cut;
      ++result_.skipped_regions;
      assembling_ = false;
      assembled_.clear();
      pos_ = at;
      resumed_ = true;
      return Status::OK();
    }
  }
  // Look for any intact record after the damage.
  if (!zero && file_size_ >= kRecordHeaderSize) {
    for (uint64_t p = offset + 1;;) {
      uint64_t at = 0;
      uint32_t len = 0;
      Status s = FindIntact(p, &at, &len);
      if (!s.ok()) return s;
      if (at == 0) break;
      p = at;
      const char* h = Buffered(p);
      if (version_ < kSyncMarkVersion) {
        return Fail(Status::Corruption(Where(file_->path(), offset) + ": " + why +
                                       " (an intact record follows at offset " + std::to_string(p) +
                                       ")"));
      }
      // Since version 2 an intact record after the damage is corruption
      // only if a sync mark says the damaged one was durable; otherwise
      // both were unsynced, and a power loss can keep the later and tear
      // the earlier. The log is then cut at the damage.
      if (static_cast<uint8_t>(h[12]) == static_cast<uint8_t>(RecordType::kSyncMark) &&
          len == kSyncMarkPayloadSize && DecodeFixed64(h + kRecordHeaderSize) > offset) {
        return Fail(Status::Corruption(
            Where(file_->path(), offset) + ": " + why + " in the synced part of the log (the sync" +
            " mark at offset " + std::to_string(p) + " says it was durable up to offset " +
            std::to_string(DecodeFixed64(h + kRecordHeaderSize)) + ")"));
      }
      result_.intact_after_cut = true;
      p += kRecordHeaderSize + len;  // just past it
    }
  }
  done_ = true;
  result_.torn_tail = true;
  result_.valid_bytes = cut;
  assembling_ = false;
  *eof = true;
  return Status::OK();
}

// The first intact record at or after `from` (*at = 0: none), left in the
// buffer. The 24-bit header check filters candidate offsets cheaply; a
// candidate counts only if its full 64-bit checksum, seeded with this log's
// number, verifies.
Status WalReader::FindIntact(uint64_t from, uint64_t* at, uint32_t* length) {
  *at = 0;
  for (uint64_t p = from; p + kRecordHeaderSize <= file_size_; ++p) {
    bool complete = false;
    Status s = Fill(p, kRecordHeaderSize, &complete);
    if (!s.ok()) return Fail(s);
    if (!complete) break;
    const char* h = Buffered(p);
    if (StoredHeaderCheck(h) != HeaderCheck(seed_, h + 8)) continue;
    const uint32_t len = DecodeFixed32(h + 8);
    if (len > kMaxRecordBytes || p + kRecordHeaderSize + len > file_size_) continue;
    s = Fill(p, kRecordHeaderSize + len, &complete);
    if (!s.ok()) return Fail(s);
    if (!complete) continue;
    h = Buffered(p);
    if (DecodeFixed64(h) != RecordChecksum(seed_, std::string_view(h + 8, 8 + size_t{len}))) {
      continue;
    }
    *at = p;
    *length = len;
    return Status::OK();
  }
  return Status::OK();
}

Status WalReader::Fragment(uint64_t offset, std::string_view payload, std::string_view* record,
                           bool* more) {
  auto bad = [&](const std::string& what) {
    if (salvage_) {
      // A run of fragments that damage broke: the commit is dropped whole,
      // and reading goes on with the record after this fragment.
      result_.skipped_bytes += kRecordHeaderSize + payload.size();
      ++result_.skipped_regions;
      assembling_ = false;
      assembled_.clear();
      *more = true;
      return Status::OK();
    }
    return Fail(Status::Corruption(Where(file_->path(), offset) + ": " + what));
  };
  if (payload.empty()) return bad("empty fragment");
  const auto position = static_cast<FragmentPosition>(payload[0]);
  payload.remove_prefix(1);
  if (position == FragmentPosition::kFirst) {
    if (assembling_) return bad("a first fragment inside a run of fragments");
    if (payload.size() < 8) return bad("first fragment without the commit's length");
    const uint64_t total = DecodeFixed64(payload.data());
    payload.remove_prefix(8);
    if (total > kMaxCommitBytes || total < payload.size()) {
      return bad("implausible commit length " + std::to_string(total));
    }
    assembling_ = true;
    assembly_start_ = offset;
    assembly_total_ = total;
    assembled_.clear();
    try {
      assembled_.reserve(total);  // once: a commit is not doubled into place
    } catch (const std::bad_alloc&) {
      return Fail(Status::MemoryLimit(Where(file_->path(), offset) +
                                      ": no memory to put together a commit of " +
                                      std::to_string(total) + " bytes"));
    }
  } else if (position != FragmentPosition::kMiddle && position != FragmentPosition::kLast) {
    return bad("unknown fragment position " + std::to_string(static_cast<int>(position)));
  } else if (!assembling_) {
    return bad("a fragment without a first one");
  }
  if (payload.size() > assembly_total_ - assembled_.size()) {
    return bad("fragments add up to more than the commit's length " +
               std::to_string(assembly_total_));
  }
  try {
    assembled_.append(payload.data(), payload.size());
  } catch (const std::bad_alloc&) {
    return Fail(Status::MemoryLimit(Where(file_->path(), offset) +
                                    ": no memory to put together a commit of " +
                                    std::to_string(assembled_.size() + payload.size()) + " bytes"));
  }
  *more = position != FragmentPosition::kLast;
  if (!*more) {
    if (assembled_.size() != assembly_total_) {
      return bad("fragments add up to " + std::to_string(assembled_.size()) +
                 " bytes, not the commit's length " + std::to_string(assembly_total_));
    }
    assembling_ = false;
    *record = std::string_view(assembled_.data(), assembled_.size());
  }
  return Status::OK();
}

Status WalReader::ReadRecord(std::string_view* record, bool* eof) {
  bool mark;
  Status s;
  do {
    resumed_ = false;
    s = ReadOne(record, eof, &mark);
  } while (s.ok() && (mark || resumed_));
  return s;
}

Status WalReader::ReadOne(std::string_view* record, bool* eof, bool* mark) {
  *record = std::string_view();
  *eof = false;
  *mark = false;
  if (!assembling_ && assembled_.capacity() > kChunkBytes) {
    // The caller is done with the last commit put together: give its
    // buffer back rather than pin it for the rest of the log.
    std::pmr::string(assembled_.get_allocator()).swap(assembled_);
  }
  if (!status_.ok()) return status_;
  if (done_) {
    *eof = true;
    return Status::OK();
  }
  const uint64_t off = pos_;
  const uint64_t remaining = file_size_ - off;
  if (remaining == 0) {
    done_ = true;
    *eof = true;
    if (assembling_) {  // the file ends inside a run: an incomplete commit
      assembling_ = false;
      result_.torn_tail = true;
      result_.valid_bytes = assembly_start_;
    }
    return Status::OK();
  }
  if (remaining < kRecordHeaderSize) return BadRecord(off, "truncated record header", eof);

  bool complete = false;
  Status s = Fill(off, kRecordHeaderSize, &complete);
  if (!s.ok()) return Fail(s);
  if (!complete) return BadRecord(off, "truncated record header", eof);
  const char* h = Buffered(off);
  if (StoredHeaderCheck(h) != HeaderCheck(seed_, h + 8)) {
    return BadRecord(off, "damaged record header", eof);
  }
  const uint32_t len = DecodeFixed32(h + 8);
  const auto type = static_cast<uint8_t>(h[12]);
  if (len > kMaxRecordBytes) return BadRecord(off, "record length out of range", eof);
  if (kRecordHeaderSize + len > remaining) {
    return BadRecord(off, "record runs past the end of the file", eof);
  }
  s = Fill(off, kRecordHeaderSize + len, &complete);
  if (!s.ok()) return Fail(s);
  if (!complete) return BadRecord(off, "record runs past the end of the file", eof);
  h = Buffered(off);
  if (DecodeFixed64(h) != RecordChecksum(seed_, std::string_view(h + 8, 8 + size_t{len}))) {
    return BadRecord(off, "record checksum mismatch", eof);
  }

  // The checksum holds: anything wrong from here on was written that way,
  // which no torn write explains.
  std::string_view payload(h + kRecordHeaderSize, len);
  if (type == static_cast<uint8_t>(RecordType::kFragment) && version_ >= kFragmentVersion) {
    bool more = false;
    s = Fragment(off, payload, record, &more);
    if (!s.ok()) return s;
    pos_ = off + kRecordHeaderSize + len;
    if (more) {
      *mark = true;  // nothing to return yet; valid_bytes stays before the run
      return Status::OK();
    }
    result_.records++;
    result_.valid_bytes = pos_;
    return Status::OK();
  }
  if (assembling_) {
    return Fail(
        Status::Corruption(Where(file_->path(), off) + ": a record inside a run of fragments"));
  }
  if (type == static_cast<uint8_t>(RecordType::kPlain)) {
    *record = payload;
  } else if (type == static_cast<uint8_t>(RecordType::kLZ4)) {
    if (payload.size() < 4) {
      return Fail(Status::Corruption(Where(file_->path(), off) + ": LZ4 record too short"));
    }
    uint32_t raw_size = DecodeFixed32(payload.data());
    if (raw_size > kMaxRecordBytes) {
      return Fail(Status::Corruption(Where(file_->path(), off) +
                                     ": implausible decompressed size " +
                                     std::to_string(raw_size)));
    }
    s = LZ4DecompressTo(payload.substr(4), raw_size, &raw_, Where(file_->path(), off));
    if (!s.ok()) return Fail(s);
    *record = std::string_view(raw_.data(), raw_.size());
  } else if (type == static_cast<uint8_t>(RecordType::kSyncMark) && version_ >= kSyncMarkVersion) {
    if (payload.size() != kSyncMarkPayloadSize || DecodeFixed64(payload.data()) > off) {
      return Fail(Status::Corruption(Where(file_->path(), off) + ": malformed sync mark"));
    }
    *mark = true;
    pos_ = off + kRecordHeaderSize + len;
    result_.valid_bytes = pos_;
    return Status::OK();
  } else {
    return Fail(Status::Corruption(Where(file_->path(), off) + ": unknown record type " +
                                   std::to_string(type)));
  }
  pos_ = off + kRecordHeaderSize + len;
  result_.records++;
  result_.valid_bytes = pos_;
  return Status::OK();
}

Status TruncateTornTail(Env* env, const std::string& path, uint64_t log_number,
                        uint64_t valid_bytes) {
  std::unique_ptr<File> file;
  Status s = env->OpenFile(path, OpenMode::kReadWrite, &file);
  if (!s.ok()) return s;
  uint64_t size = 0;
  s = file->Size(&size);
  if (s.ok() && size < valid_bytes) {
    s = Status::InvalidArgument("wal " + path + ": cannot cut to " + std::to_string(valid_bytes) +
                                " bytes, the file has only " + std::to_string(size));
  }
  if (s.ok() && valid_bytes < kFileHeaderSize) {
    // Its header never reached the disk: write it, so the log reads as an
    // empty one wherever it sits (a headerless log before a later one would
    // read as damage), and the checkpoint that names it still finds it.
    char header[kFileHeaderSize];
    EncodeFileHeader(log_number, header);
    s = file->Truncate(0);
    if (s.ok()) s = file->Write(0, std::string_view(header, sizeof(header)));
    if (s.ok()) s = file->Sync();
  } else if (s.ok() && size > valid_bytes) {
    s = file->Truncate(valid_bytes);
    if (s.ok()) s = file->Sync();
  }
  Status c = file->Close();
  return s.ok() ? c : s;
}

}  // namespace arenakv::wal
