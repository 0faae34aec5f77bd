// MemoryBudget and its Rep: the shared budget's members and reclaim order.
#include <algorithm>
#include <new>

#include "db/budget_rep.h"
#include "tree/read_epoch.h"

namespace arenakv {

namespace {
// A reclaim frees at least this much: memory is short again at once
// otherwise, and every reclaim walks every member.
constexpr size_t kMinReclaimBytes = size_t{1} << 20;
constexpr size_t kMinCapacity = size_t{1} << 20;
}  // namespace

MemoryBudget::Rep::Rep(size_t capacity) : shared(std::make_shared<alloc::SharedBudget>(capacity)) {
  shared->SetReclaim(
      [this](size_t wanted, const alloc::SegmentPool* asking) { return Reclaim(wanted, asking); });
}

MemoryBudget::Rep::~Rep() { shared->SetReclaim(nullptr); }

std::shared_ptr<MemoryBudget::Rep::Member> MemoryBudget::Rep::Join(
    const alloc::SegmentPool* pool, const std::string& path,
    std::function<size_t(size_t, bool)> reclaim, std::function<uint64_t()> activity,
    std::function<size_t()> release_memtable) {
  auto m = std::make_shared<Member>();
  m->pool = pool;
  m->path = path;
  m->reclaim = std::move(reclaim);
  m->activity = std::move(activity);
  m->release_memtable = std::move(release_memtable);
  {
    port::MutexLock ml(&m->mu);
    m->seen = m->activity();
  }
  port::MutexLock l(&mu_);
  members_.push_back(m);
  return m;
}

void MemoryBudget::Rep::Leave(const std::shared_ptr<Member>& member) {
  {
    port::MutexLock l(&mu_);
    members_.erase(std::remove(members_.begin(), members_.end(), member), members_.end());
  }
  port::MutexLock ml(&member->mu);  // waits for a reclaim running on it
  member->alive = false;
}

size_t MemoryBudget::Rep::databases() const {
  port::MutexLock l(&mu_);
  return members_.size();
}

// Each member's pool under its lock: a database that leaves meanwhile is
// left out (its pool may be gone once Leave returns).
Status MemoryBudget::Rep::GetDatabases(std::vector<BudgetDatabase>* out) const {
  try {
    std::vector<std::shared_ptr<Member>> members;
    {
      port::MutexLock l(&mu_);
      members = members_;
    }
    std::vector<BudgetDatabase> list;
    list.reserve(members.size());
    for (const auto& m : members) {
      port::MutexLock ml(&m->mu);
      if (!m->alive) continue;
      const alloc::PoolStats st = m->pool->Stats();
      list.push_back({m->path, st.committed_bytes + st.charged_bytes});
    }
    *out = std::move(list);
    return Status::OK();
  } catch (const std::bad_alloc&) {
    return Status::MemoryLimit("memory budget: no memory to list its databases");
  }
}

// A clock over the members: from where the last reclaim stopped, a member
// used since the hand last passed it is passed over once (its use noted),
// the others give; a second lap takes from the busy ones too, and the
// asking database gives last. A reclaim then visits about as many members
// as it takes memory from, not every one: with a thousand databases and the
// budget full, walking and sorting them all at each reclaim (their locks,
// activity counters and pools) took more than half of a load's time.
size_t MemoryBudget::Rep::Reclaim(size_t wanted, const alloc::SegmentPool* asking) {
  std::vector<std::shared_ptr<Member>> members;
  size_t start = 0;
  {
    port::MutexLock l(&mu_);
    members = members_;
    if (!members.empty()) start = hand_ % members.size();
  }
  // Inside a read section this thread must not wait for a member: the
  // thread reclaiming from it may be waiting (in the cache's eviction) for
  // every read section to end. Busy members are skipped instead.
  const bool may_wait = !tree::epoch::InSection();
  const size_t want = std::max(wanted, kMinReclaimBytes);
  const size_t n = members.size();
  size_t freed = 0;
  size_t last = start;  // the member the hand stops at
  Member* self = nullptr;
  for (int lap = 0; lap < 2 && freed < want; ++lap) {
    for (size_t k = 0; k < n && freed < want; ++k) {
      const size_t i = (start + k) % n;
      Member* m = members[i].get();
      if (m->pool == asking) {
        self = m;
        continue;
      }
      if (!LockMember(m, may_wait)) continue;
      if (m->alive) {
        const uint64_t now = m->activity();
        if (lap == 0 && now != m->seen) {
          m->seen = now;  // a second chance
        } else {
          // Every member but the asking one gives its pool's free segments
          // back to the OS here.
          freed += m->reclaim(want - freed, /*trim=*/true);
          last = i;
        }
      }
      m->mu.Unlock();
    }
  }
  // The asking pool drops its own free segments itself (it is inside an
  // allocation).
  if (freed < want && self != nullptr && LockMember(self, may_wait)) {
    if (self->alive) freed += self->reclaim(want - freed, /*trim=*/false);
    self->mu.Unlock();
  }
  // Not enough clean pages: memtables of the others, from the hand on, are
  // checkpointed in the background (the asking database checkpoints its own
  // in its write path).
  size_t coming = 0;
  for (size_t k = 0; k < n && freed + coming < want; ++k) {
    Member* m = members[(start + k) % n].get();
    if (m->pool == asking || !LockMember(m, may_wait)) continue;
    if (m->alive) coming += m->release_memtable();
    m->mu.Unlock();
  }
  port::MutexLock l(&mu_);
  hand_ = last;  // the member that gave last may have more
  return freed;
}

void MemoryBudget::Rep::ReleaseStarted() {
  port::MutexLock l(&release_mu_);
  ++releases_started_;
}

void MemoryBudget::Rep::ReleaseFinished(bool freed) {
  port::MutexLock l(&release_mu_);
  releases_finished_.fetch_add(1, std::memory_order_release);
  if (freed) releases_freed_.fetch_add(1, std::memory_order_release);
  release_cv_.SignalAll();
}

uint64_t MemoryBudget::Rep::ReleaseMark() {
  return releases_finished_.load(std::memory_order_acquire);
}

uint64_t MemoryBudget::Rep::FreedMark() { return releases_freed_.load(std::memory_order_acquire); }

bool MemoryBudget::Rep::AwaitRelease(uint64_t mark) {
  port::MutexLock l(&release_mu_);
  if (releases_finished_ > mark) return true;  // memory came back meanwhile
  const uint64_t target = releases_started_;
  if (releases_finished_ >= target) return false;
  while (releases_finished_ < target) release_cv_.Wait();
  return true;
}

bool MemoryBudget::Rep::LockMember(Member* m, bool may_wait) {
  if (!may_wait) return m->mu.TryLock();
  m->mu.Lock();
  return true;
}

std::shared_ptr<MemoryBudget> MemoryBudget::Create(size_t capacity_bytes) {
  return std::shared_ptr<MemoryBudget>(new MemoryBudget(std::max(capacity_bytes, kMinCapacity)));
}

MemoryBudget::MemoryBudget(size_t capacity_bytes) : rep_(std::make_unique<Rep>(capacity_bytes)) {}
MemoryBudget::~MemoryBudget() = default;

size_t MemoryBudget::capacity_bytes() const { return rep_->shared->capacity(); }
size_t MemoryBudget::used_bytes() const { return rep_->shared->used(); }
size_t MemoryBudget::peak_bytes() const { return rep_->shared->high_water(); }
size_t MemoryBudget::databases() const { return rep_->databases(); }
Status MemoryBudget::GetDatabases(std::vector<BudgetDatabase>* out) const {
  return rep_->GetDatabases(out);
}

}  // namespace arenakv
