#include "wal/wal_writer.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "util/compression.h"
#include "wal/wal_format.h"

namespace arenakv::wal {
namespace {

// The assembly buffer keeps at most this much between records, so one huge
// batch does not pin its size for the life of the log.
constexpr size_t kRetainedBufferBytes = size_t{1} << 20;

// The mapped window: small, so the log adds little to resident memory (only
// the window's touched pages count, and it moves on), large enough that
// remapping is rare (once per ~1 MiB of log).
constexpr size_t kWindowBytes = size_t{1} << 20;
constexpr uint64_t kPageBytes = 4096;
constexpr size_t kMaxZeroPieceBytes = 64 * 1024;

std::pmr::memory_resource* OrDefault(std::pmr::memory_resource* r) {
  return r != nullptr ? r : std::pmr::get_default_resource();
}

}  // namespace

WalWriter::WalWriter(Token, std::unique_ptr<File> file, uint64_t log_number,
                     const WalWriterOptions& options)
    : file_(std::move(file)),
      log_number_(log_number),
      seed_(RecordSeed(log_number)),
      compression_(options.compression),
      fragment_bytes_(std::clamp<size_t>(options.fragment_bytes, 1, kMaxFragmentBytes)),
      preallocate_bytes_(options.preallocate_bytes),
      drop_behind_bytes_(std::max<size_t>(options.drop_behind_bytes, kPageBytes)),
      zero_piece_bytes_(
          std::clamp<size_t>(options.zero_piece_bytes, kPageBytes, kMaxZeroPieceBytes)),
      buf_(OrDefault(options.memory)) {}

WalWriter::~WalWriter() { Close().IgnoreError(); }

Status WalWriter::Create(Env* env, const std::string& path, uint64_t log_number,
                         const WalWriterOptions& options, std::unique_ptr<WalWriter>* writer) {
  std::unique_ptr<File> file;
  Status s = env->OpenFile(path, OpenMode::kCreate, &file);
  if (!s.ok()) return s;
  // An existing file (an empty log reused) is cut back to its header's
  // length, not to zero: ext4 flushes a file truncated to zero when it is
  // closed (auto_da_alloc), which started the writeback of the whole log at
  // the checkpoint that retired it and made its unlink wait for it (2.5 ms
  // of a tenant's open-write-read-close cycle of 40K puts, now 1 ms).
  uint64_t size = 0;
  s = file->Size(&size);
  if (s.ok() && size > kFileHeaderSize) s = file->Truncate(kFileHeaderSize);
  char header[kFileHeaderSize];
  EncodeFileHeader(log_number, header);
  if (s.ok()) s = file->Write(0, std::string_view(header, sizeof(header)));
  if (!s.ok()) {
    file->Close().IgnoreError();
    return s;
  }
  std::unique_ptr<WalWriter> w;
  try {
    w.reset(new (options.object_heap) WalWriter(Token{}, std::move(file), log_number, options));
  } catch (const std::bad_alloc&) {
    return Status::MemoryLimit("wal " + path + ": no memory for the writer");
  }
  w->size_.store(kFileHeaderSize, std::memory_order_release);
  w->allocated_ = kFileHeaderSize;
  *writer = std::move(w);
  return Status::OK();
}

Status WalWriter::AddRecord(std::string_view payload, bool sync_next) {
  if (closed_) return Status::Closed("wal " + file_->path() + " is closed");
  if (!status_.ok()) return status_;
  if (payload.size() > kMaxCommitBytes) {
    return Status::InvalidArgument("wal " + file_->path() + ": a commit of " +
                                   std::to_string(payload.size()) + " bytes exceeds the " +
                                   std::to_string(kMaxCommitBytes) + "-byte limit");
  }
  if (payload.size() > fragment_bytes_) return AddFragments(payload);
  // The mark goes in the same write as the record: no extra system call.
  const uint64_t synced = synced_;
  const size_t mark = synced > marked_ ? kSyncMarkSize : 0;
  try {
    if (buf_.capacity() > kRetainedBufferBytes &&
        mark + payload.size() + kRecordHeaderSize <= kRetainedBufferBytes) {
      std::pmr::string(buf_.get_allocator()).swap(buf_);
    }
    buf_.resize(mark + kRecordHeaderSize + payload.size());
  } catch (const std::bad_alloc&) {
    return Status::MemoryLimit("wal " + file_->path() + ": no memory to assemble a record of " +
                               std::to_string(payload.size()) + " bytes");
  }

  if (mark > 0) EncodeSyncMark(seed_, synced, buf_.data());
  char* const rec = buf_.data() + mark;
  RecordType type = RecordType::kPlain;
  size_t stored = payload.size();
  if (compression_ && payload.size() >= kMinCompressBytes) {
    // Only keep the compressed form if it (with its 4-byte raw size) is
    // strictly smaller: the capacity bound makes LZ4 give up otherwise.
    size_t compressed = 0;
    Status s =
        LZ4Compress(payload, rec + kRecordHeaderSize + 4, payload.size() - 4 - 1, &compressed);
    if (s.ok() && compressed > 0) {
      EncodeFixed32(rec + kRecordHeaderSize, static_cast<uint32_t>(payload.size()));
      type = RecordType::kLZ4;
      stored = 4 + compressed;
    }
  }
  if (type == RecordType::kPlain && !payload.empty()) {
    std::memcpy(rec + kRecordHeaderSize, payload.data(), payload.size());
  }
  SealRecord(seed_, type, static_cast<uint32_t>(stored), rec);

  const uint64_t at = size_.load(std::memory_order_relaxed);
  const std::string_view record(buf_.data(), mark + kRecordHeaderSize + stored);
  Status s;
  if (preallocate_bytes_ == 0) {
    s = file_->Append(record);
  } else {
    s = Preallocate(at + record.size());
    if (s.ok() && (sync_next || !StoreMapped(at, record))) s = file_->Write(at, record);
  }
  if (!s.ok()) {
    status_ = s;
    return s;
  }
  size_.fetch_add(record.size(), std::memory_order_acq_rel);
  marked_ = synced;
  return Status::OK();
}

Status WalWriter::AddFragments(std::string_view payload) {
  const uint64_t synced = synced_;
  const size_t mark = synced > marked_ ? kSyncMarkSize : 0;
  const size_t most = std::min(fragment_bytes_, payload.size());
  try {
    buf_.resize(mark + kRecordHeaderSize + 1 + 8 + most);
  } catch (const std::bad_alloc&) {
    return Status::MemoryLimit("wal " + file_->path() + ": no memory to assemble a fragment of " +
                               std::to_string(most) + " bytes");
  }
  uint64_t at = size_.load(std::memory_order_relaxed);
  for (size_t done = 0; done < payload.size();) {
    const size_t n = std::min(fragment_bytes_, payload.size() - done);
    const FragmentPosition position = done == 0                    ? FragmentPosition::kFirst
                                      : done + n == payload.size() ? FragmentPosition::kLast
                                                                   : FragmentPosition::kMiddle;
    const size_t lead = done == 0 ? mark : 0;  // the mark goes before the first only
    if (lead > 0) EncodeSyncMark(seed_, synced, buf_.data());
    char* const rec = buf_.data() + lead;
    rec[kRecordHeaderSize] = static_cast<char>(position);
    const size_t total = done == 0 ? 8 : 0;  // the first says how long the commit is
    if (total > 0) EncodeFixed64(rec + kRecordHeaderSize + 1, payload.size());
    std::memcpy(rec + kRecordHeaderSize + 1 + total, payload.data() + done, n);
    SealRecord(seed_, RecordType::kFragment, static_cast<uint32_t>(1 + total + n), rec);
    const std::string_view record(buf_.data(), lead + kRecordHeaderSize + 1 + total + n);
    Status s = file_->Write(at, record);
    if (!s.ok()) {
      status_ = s;  // fragments may be in the file: the log must be replaced
      return s;
    }
    at += record.size();
    // Written blocks, like the zero-filled region: the window may map them.
    allocated_ = std::max<uint64_t>(allocated_, at);
    done += n;
  }
  // Complete records only: a reader of the live log never sees half a run.
  size_.store(at, std::memory_order_release);
  marked_ = synced;
  return Status::OK();
}

Status WalWriter::Preallocate(uint64_t end) {
  if (end <= allocated_) return Status::OK();
  static const char kZeros[kMaxZeroPieceBytes] = {};
  const uint64_t target = end + preallocate_bytes_;
  while (allocated_ < target) {
    const size_t n =
        static_cast<size_t>(std::min<uint64_t>(zero_piece_bytes_, target - allocated_));
    Status s = file_->Write(allocated_, std::string_view(kZeros, n));
    if (!s.ok()) return s;
    allocated_ += n;
  }
  return Status::OK();
}

bool WalWriter::StoreMapped(uint64_t at, std::string_view record) {
  const uint64_t end = at + record.size();
  if (window_ == nullptr || at < window_start_ || end > window_start_ + window_->size()) {
    if (map_unsupported_) return false;
    const uint64_t start = at / kPageBytes * kPageBytes;
    // Map only what is zero-filled: the file must not be extended through
    // the mapping (a store past the end of the file is a SIGBUS).
    const uint64_t length = std::min<uint64_t>(kWindowBytes, allocated_ - start);
    if (end > start + length) return false;  // a record larger than a window
    window_.reset();
    Status s = file_->MapWritable(start, static_cast<size_t>(length), &window_);
    if (!s.ok()) {
      window_.reset();
      map_unsupported_ = true;  // an Env without mappings, or mmap failed
      return false;
    }
    window_start_ = start;
    dropped_to_ = start;
  }
  std::memcpy(window_->data() + (at - window_start_), record.data(), record.size());
  // The page the record ends in takes the next record: it stays.
  const uint64_t behind = end / kPageBytes * kPageBytes;
  if (behind - dropped_to_ >= drop_behind_bytes_) {
    window_->DropPages(static_cast<size_t>(dropped_to_ - window_start_),
                       static_cast<size_t>(behind - dropped_to_));
    dropped_to_ = behind;
  }
  return true;
}

Status WalWriter::Sync() {
  if (closed_) return Status::Closed("wal " + file_->path() + " is closed");
  if (!status_.ok()) return status_;
  Status s = file_->Sync();
  if (!s.ok()) {
    status_ = s;
    return s;
  }
  synced_ = size_.load(std::memory_order_relaxed);
  return s;
}

Status WalWriter::Close() {
  if (closed_) return Status::OK();
  closed_ = true;
  window_.reset();
  return file_->Close();
}

}  // namespace arenakv::wal
