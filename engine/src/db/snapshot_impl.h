// SnapshotImpl: a read view pinned to one Version at one sequence, released
// when the user's handle is destroyed or when the database closes.
//
// Thread safety: thread-safe (its own mutex).
#ifndef ARENAKV_DB_SNAPSHOT_IMPL_H_
#define ARENAKV_DB_SNAPSHOT_IMPL_H_

#include <memory>

#include "arenakv/db.h"
#include "db/version.h"

namespace arenakv {

class DBImpl;

class SnapshotImpl;
std::unique_ptr<Snapshot> NewSnapshot(DBImpl* db, std::shared_ptr<Version> version,
                                      uint64_t sequence);

}  // namespace arenakv

#include "db/handle_registry.h"

namespace arenakv {

class SnapshotImpl final : public Snapshot, public Handle {
 public:
  SnapshotImpl(DBImpl* db, std::shared_ptr<Version> version, uint64_t sequence);
  ~SnapshotImpl() override;

  uint64_t sequence() const override { return sequence_; }
  // Closed once the database closed (or the snapshot was never opened).
  Status Get(DBImpl* db, std::string_view key, std::string* value, bool verify_checksums) const;
  // The view to read `db` at: Closed once the database closed, InvalidArgument
  // for a snapshot of another database.
  Status View(const DBImpl* db, std::shared_ptr<Version>* version, uint64_t* sequence) const;
  // Links into the database's registry; false if it is closed.
  bool Register();

 protected:
  void ReleaseLocked() override REQUIRES(mu_);

 private:
  DBImpl* const db_;
  std::shared_ptr<Version> version_ GUARDED_BY(mu_);
  const uint64_t sequence_;
  std::shared_ptr<HandleRegistry> registry_;
  bool counted_ GUARDED_BY(mu_) = false;
  Status error_ GUARDED_BY(mu_);  // why registering failed (MemoryLimit), if it did
};

}  // namespace arenakv

#endif  // ARENAKV_DB_SNAPSHOT_IMPL_H_
