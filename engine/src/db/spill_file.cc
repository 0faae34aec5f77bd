#include "db/spill_file.h"

#include <string_view>

namespace arenakv {

Status SpillFile::Open(Env* env, const std::string& dir, std::shared_ptr<SpillFile>* out) {
  const std::string path = dir + "/" + kFileName;
  std::unique_ptr<File> file;
  Status s = env->OpenFile(path, OpenMode::kCreateTruncate, &file);
  if (!s.ok()) return s;
  s = env->DeleteFile(path);
  if (!s.ok()) {
    file->Close().IgnoreError();
    return s;
  }
  *out = std::make_shared<SpillFile>(std::move(file));
  return Status::OK();
}

Status SpillFile::Store(const char* data, size_t size, uint64_t* offset) {
  port::MutexLock l(&mu_);
  // Counted live from here: a Drop() of the last other copy must not cut
  // the file under this one before it is mapped.
  const uint64_t at = end_;
  Status s = file_->Write(at, std::string_view(data, size));
  if (!s.ok()) {
    // Whatever part reached the file is cut again (or punched, if later
    // copies follow).
    if (live_ == 0) file_->Truncate(0).IgnoreError();
    return s;
  }
  end_ += size;
  live_ += size;
  *offset = at;
  return Status::OK();
}

Status SpillFile::MapOver(char* data, size_t size, uint64_t offset) {
  return file_->MapOver(data, offset, size);
}

void SpillFile::Drop(uint64_t offset, size_t size) {
  port::MutexLock l(&mu_);
  live_ -= size;
  if (live_ == 0) {
    file_->Truncate(0).IgnoreError();
    end_ = 0;
    return;
  }
  // A hint: without hole punching the space comes back when the file is
  // emptied or closed.
  file_->PunchHole(offset, size).IgnoreError();
}

uint64_t SpillFile::live_bytes() const {
  port::MutexLock l(&mu_);
  return live_;
}

}  // namespace arenakv
