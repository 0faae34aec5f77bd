// MemoryBudget and its Rep: the shared budget's members and reclaim order.
#include <algorithm>

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
    const alloc::SegmentPool* pool, std::function<size_t(size_t, bool)> reclaim,
    std::function<uint64_t()> activity, std::function<size_t()> release_memtable) {
  auto m = std::make_shared<Member>();
  m->pool = pool;
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

size_t MemoryBudget::Rep::Reclaim(size_t wanted, const alloc::SegmentPool* asking) {
  std::vector<std::shared_ptr<Member>> members;
  {
    port::MutexLock l(&mu_);
    members = members_;
  }
  // How much each was used since the last reclaim: the least used first,
  // the asking database last whatever its use.
  struct Candidate {
    uint64_t use;
    bool asking;
    Member* m;
  };
  // Inside a read section this thread must not wait for a member: the
  // thread reclaiming from it may be waiting (in the cache's eviction) for
  // every read section to end. Busy members are skipped instead.
  const bool may_wait = !tree::epoch::InSection();
  std::vector<Candidate> order;
  order.reserve(members.size());
  for (const auto& m : members) {
    if (!LockMember(m.get(), may_wait)) continue;
    if (m->alive) {
      const uint64_t now = m->activity();
      order.push_back({now - m->seen, m->pool == asking, m.get()});
      m->seen = now;
    }
    m->mu.Unlock();
  }
  std::stable_sort(order.begin(), order.end(), [](const Candidate& a, const Candidate& b) {
    return a.asking != b.asking ? b.asking : a.use < b.use;
  });
  const size_t want = std::max(wanted, kMinReclaimBytes);
  size_t freed = 0;
  for (const Candidate& c : order) {
    if (freed >= want) break;
    if (!LockMember(c.m, may_wait)) continue;
    // The asking pool drops its own free segments itself (it is inside an
    // allocation); every other gives them back to the OS here.
    if (c.m->alive) freed += c.m->reclaim(want - freed, /*trim=*/!c.asking);
    c.m->mu.Unlock();
  }
  // Not enough clean pages: memtables of the others, the least used first,
  // are checkpointed in the background (the asking database checkpoints its
  // own in its write path).
  size_t coming = 0;
  for (const Candidate& c : order) {
    if (freed + coming >= want) break;
    if (c.asking || !LockMember(c.m, may_wait)) continue;
    if (c.m->alive) coming += c.m->release_memtable();
    c.m->mu.Unlock();
  }
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

}  // namespace arenakv
