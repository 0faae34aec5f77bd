#include "db/snapshot_impl.h"

#include <new>

#include "db/db_impl.h"

namespace arenakv {

SnapshotImpl::SnapshotImpl(DBImpl* db, std::shared_ptr<Version> version, uint64_t sequence)
    : db_(db), version_(std::move(version)), sequence_(sequence), registry_(db->registry()) {}

SnapshotImpl::~SnapshotImpl() { registry_->Release(this); }

bool SnapshotImpl::Register() {
  {
    port::MutexLock l(&mu_);
    if (version_ == nullptr) {
      closed_ = true;
      return false;
    }
    counted_ = true;  // before linking: Close() may release us at once
    db_->open_snapshots().fetch_add(1);
  }
  // Registry lock before handle lock: never hold mu_ here.
  Status s = registry_->Register(this, sizeof(SnapshotImpl));
  if (!s.ok()) {
    port::MutexLock l(&mu_);
    closed_ = true;
    error_ = std::move(s);
    ReleaseLocked();
    return false;
  }
  return true;
}

void SnapshotImpl::ReleaseLocked() {
  version_.reset();
  if (counted_) db_->open_snapshots().fetch_sub(1);
  counted_ = false;
}

Status SnapshotImpl::Get(DBImpl* db, std::string_view key, std::string* value,
                         bool verify_checksums) const {
  port::MutexLock l(&mu_);
  if (!error_.ok()) return error_;
  if (closed_ || db != db_) {
    return closed_ ? Status::Closed("snapshot is closed")
                   : Status::InvalidArgument("snapshot belongs to another database");
  }
  try {
    return db_->GetAt(*version_, sequence_, key, value, verify_checksums);
  } catch (const std::bad_alloc&) {
    return Status::MemoryLimit("out of memory reading a value");
  }
}

Status SnapshotImpl::View(const DBImpl* db, std::shared_ptr<Version>* version,
                          uint64_t* sequence) const {
  port::MutexLock l(&mu_);
  if (!error_.ok()) return error_;
  if (closed_) return Status::Closed("snapshot is closed");
  // Another database's version names its memtables and tree pages: reading
  // it through this database's tree is garbage, and would keep them pinned
  // past that database's Close().
  if (db != db_) return Status::InvalidArgument("snapshot belongs to another database");
  *version = version_;
  *sequence = sequence_;
  return Status::OK();
}

std::unique_ptr<Snapshot> NewSnapshot(DBImpl* db, std::shared_ptr<Version> version,
                                      uint64_t sequence) {
  auto snap = std::make_unique<SnapshotImpl>(db, std::move(version), sequence);
  snap->Register();
  return snap;
}

}  // namespace arenakv
