#include "mem/memtable.h"

#include <algorithm>
#include <array>
#include <iterator>
#include <new>
#include <utility>
#include <vector>

#include "arenakv/alloc/arena.h"
#include "util/key_compare.h"

namespace arenakv::mem {

namespace {

// Versions of one key walked one by one before a search jumps over the rest:
// a hot key can have thousands of versions in a memtable.
constexpr int kLinearSkipSteps = 8;

// The middle run merges into a new main run once it holds an eighth of the
// main run's versions, or MemTableOptions::merge_entries if that is more.
constexpr size_t kRunToMiddleRatio = 8;

// How far ahead of a scan the runs' nodes are fetched.
constexpr size_t kPrefetchAhead = 16;

// A buffer's nodes sorted in list order, for a reader that walks them in
// order: a private copy, since the writer appends to the buffer meanwhile.
std::vector<const VersionNode*> SortedCopy(const NodeBuffer* buffer, KeyOrder order) {
  std::vector<const VersionNode*> nodes;
  if (buffer == nullptr) return nodes;
  const size_t n = buffer->size();
  // Of an equal (key, seq) the later one first: sort a reversed copy
  // stably.
  nodes.assign(std::make_reverse_iterator(buffer->nodes() + n),
               std::make_reverse_iterator(buffer->nodes()));
  std::stable_sort(nodes.begin(), nodes.end(), [order](const VersionNode* a, const VersionNode* b) {
    return VersionBefore(order, a, b->key(), b->seq());
  });
  return nodes;
}

// Walks the versions of a view in list order: the buffer's (a sorted copy)
// and each run's, merged. Of versions with the same (key, seq) the newest
// tier's comes first, as the later insertion does. `Order`: BytewiseOrder
// (a scan's hot path compares inline), or KeyOrder.
//
// Tier 0 is the buffer's copy, tiers 1.. the runs, newest first. The tier
// at the cursor stays there while its next version comes before the best of
// the others (`rival_`), so a scan through long stretches of one run makes
// one comparison a step.
template <typename Order>
class VersionCursor {
 public:
  static constexpr int kTiers = 1 + kRunTiers;

  VersionCursor(const std::vector<const VersionNode*>* newest, const RunTiers& runs, Order order)
      : newest_(newest), order_(order) {
    sizes_[0] = newest->size();
    for (int t = 1; t < kTiers; ++t) {
      runs_[t] = runs[t - 1].get();
      sizes_[t] = runs_[t] != nullptr ? runs_[t]->size() : 0;
    }
  }

  const Order& order() const { return order_; }

  // The version at the cursor; nullptr past the end.
  const VersionNode* node() const { return cur_; }

  void SeekToFirst() {
    pos_.fill(0);
    Settle();
  }
  // To the first version at or after (key, seq).
  void Seek(std::string_view key, uint64_t seq) {
    pos_[0] = std::partition_point(
                  newest_->begin(), newest_->end(),
                  [&](const VersionNode* n) { return VersionBefore(order_, n, key, seq); }) -
              newest_->begin();
    for (int t = 1; t < kTiers; ++t) pos_[t] = sizes_[t] > 0 ? runs_[t]->Seek(key, seq) : 0;
    Settle();
  }
  // To the first version of the first key after `key`.
  void SeekAfterKey(std::string_view key) {
    pos_[0] = std::partition_point(
                  newest_->begin(), newest_->end(),
                  [&](const VersionNode* n) { return order_.Compare(n->key(), key) <= 0; }) -
              newest_->begin();
    for (int t = 1; t < kTiers; ++t) pos_[t] = sizes_[t] > 0 ? runs_[t]->FirstAfterKey(key) : 0;
    Settle();
  }
  void Next() {
    const int t = cur_tier_;
    const size_t i = ++pos_[t];
    if (t > 0) runs_[t]->Prefetch(i + kPrefetchAhead);
    const VersionNode* n = At(t);
    if (n != nullptr && (rival_ == nullptr || Precedes(n, t, rival_, rival_tier_))) {
      cur_ = n;
      return;
    }
    Settle();
  }

  // A version of the greatest key before `key` (nullptr if none).
  const VersionNode* LastBeforeKey(std::string_view key) const {
    const size_t b = std::partition_point(
                         newest_->begin(), newest_->end(),
                         [&](const VersionNode* n) { return order_.Compare(n->key(), key) < 0; }) -
                     newest_->begin();
    const VersionNode* best = b > 0 ? (*newest_)[b - 1] : nullptr;
    for (int t = 1; t < kTiers; ++t) {
      if (sizes_[t] == 0) continue;
      const size_t i = runs_[t]->Seek(key, kMaxSequence);
      if (i > 0) best = GreaterKey(best, runs_[t]->node(i - 1));
    }
    return best;
  }
  // A version of the greatest key (nullptr if none).
  const VersionNode* Last() const {
    const VersionNode* best = sizes_[0] > 0 ? newest_->back() : nullptr;
    for (int t = 1; t < kTiers; ++t) {
      if (sizes_[t] > 0) best = GreaterKey(best, runs_[t]->node(sizes_[t] - 1));
    }
    return best;
  }

 private:
  // Whether tier ta's version a comes before tier tb's b: list order, and
  // of an equal (key, seq) the newer tier's.
  bool Precedes(const VersionNode* a, int ta, const VersionNode* b, int tb) const {
    const int c = order_.Compare(a->key(), b->key());
    if (c != 0) return c < 0;
    return a->seq() != b->seq() ? a->seq() > b->seq() : ta < tb;
  }
  const VersionNode* At(int t) const {
    if (pos_[t] >= sizes_[t]) return nullptr;
    return t == 0 ? (*newest_)[pos_[t]] : runs_[t]->node(pos_[t]);
  }
  // The first version of all tiers at the cursor, and the best of the rest.
  void Settle() {
    cur_ = rival_ = nullptr;
    cur_tier_ = rival_tier_ = 0;
    for (int t = 0; t < kTiers; ++t) {
      const VersionNode* n = At(t);
      if (n == nullptr) continue;
      if (cur_ == nullptr || Precedes(n, t, cur_, cur_tier_)) {
        rival_ = cur_;
        rival_tier_ = cur_tier_;
        cur_ = n;
        cur_tier_ = t;
      } else if (rival_ == nullptr || Precedes(n, t, rival_, rival_tier_)) {
        rival_ = n;
        rival_tier_ = t;
      }
    }
  }
  const VersionNode* GreaterKey(const VersionNode* a, const VersionNode* b) const {
    if (a == nullptr) return b;
    if (b == nullptr) return a;
    return order_.Compare(a->key(), b->key()) >= 0 ? a : b;
  }

  const std::vector<const VersionNode*>* const newest_;
  std::array<const SortedRun*, kTiers> runs_{};  // [0] unused: the copy
  std::array<size_t, kTiers> sizes_{};
  const Order order_;
  std::array<size_t, kTiers> pos_{};  // the next version of each tier
  const VersionNode* cur_ = nullptr;
  int cur_tier_ = 0;
  const VersionNode* rival_ = nullptr;  // the first version of the other tiers
  int rival_tier_ = 0;
};

// A cursor at a snapshot over the versions. Positions are always on the
// visible version of a key (the newest with seq <= snapshot). It keeps the
// runs it started on and its copy of the buffer, whatever the writer adds
// and merges meanwhile.
template <typename Order>
class MemTableIterator final : public InternalIterator {
 public:
  MemTableIterator(std::vector<const VersionNode*> newest, RunTiers runs, uint64_t snapshot,
                   Order order)
      : newest_(std::move(newest)),
        runs_(std::move(runs)),
        versions_(&newest_, runs_, order),
        snapshot_(snapshot) {}

  bool Valid() const override { return node_ != nullptr; }
  void SeekToFirst() override {
    versions_.SeekToFirst();
    node_ = SettleForward();
  }
  void SeekToLast() override { node_ = SettleBackward(versions_.Last()); }
  void Seek(std::string_view target) override {
    versions_.Seek(target, kMaxSequence);
    node_ = SettleForward();
  }
  void Next() override {
    SkipPastKey(node_->key());
    node_ = SettleForward();
  }
  void Prev() override { node_ = SettleBackward(versions_.LastBeforeKey(node_->key())); }
  std::string_view key() const override { return node_->key(); }
  std::string_view value() const override {
    return node_->type() == ValueType::kDeletion ? std::string_view() : node_->value();
  }
  bool is_tombstone() const override { return node_->type() == ValueType::kDeletion; }
  Status status() const override { return Status::OK(); }

 private:
  // Moves the cursor to the first version of the key after k.
  void SkipPastKey(std::string_view k) {
    for (int i = 0; i <= kLinearSkipSteps; ++i) {
      versions_.Next();
      if (versions_.node() == nullptr || !versions_.order().Equal(versions_.node()->key(), k)) {
        return;
      }
    }
    versions_.SeekAfterKey(k);
  }

  // From the cursor, the first version that is visible. Because versions of
  // a key are in descending seq order, the first one with seq <= snapshot is
  // that key's visible version; versions newer than the snapshot are skipped.
  const VersionNode* SettleForward() {
    int same_key_steps = 0;
    for (const VersionNode* x = versions_.node(); x != nullptr; x = versions_.node()) {
      if (x->seq() <= snapshot_) return x;
      versions_.Next();
      const VersionNode* next = versions_.node();
      if (next == nullptr || !versions_.order().Equal(next->key(), x->key())) {
        same_key_steps = 0;
      } else if (++same_key_steps > kLinearSkipSteps) {
        // Lands on the key's visible version or on the next key.
        versions_.Seek(x->key(), snapshot_);
        same_key_steps = 0;
      }
    }
    return nullptr;
  }

  // p is a version of some key, or null. Walks back to the nearest key having
  // a version visible at the snapshot and returns that key's newest visible
  // version, with the cursor on it.
  const VersionNode* SettleBackward(const VersionNode* p) {
    while (p != nullptr) {
      versions_.Seek(p->key(), snapshot_);
      const VersionNode* x = versions_.node();
      if (x != nullptr && versions_.order().Equal(x->key(), p->key())) return x;
      p = versions_.LastBeforeKey(p->key());
    }
    return nullptr;
  }

  const std::vector<const VersionNode*> newest_;  // the buffer's, sorted
  const RunTiers runs_;
  VersionCursor<Order> versions_;
  const uint64_t snapshot_;
  const VersionNode* node_ = nullptr;
};

}  // namespace

MemTable::MemTable(PassKey, uint64_t id, const MemTableOptions& options,
                   std::unique_ptr<alloc::Arena> arena)
    : id_(id),
      merge_entries_(std::max<size_t>(options.merge_entries, 1)),
      buffer_entries_(std::clamp<size_t>(options.buffer_entries, 1, merge_entries_)),
      order_(options.order),
      arena_(std::move(arena)),
      merge_at_(merge_entries_) {}

MemTable::~MemTable() {
  // The buffer and runs go back to the arena before it closes.
  buffer_.reset();
  runs_ = RunTiers();
  {
    port::MutexLock l(&view_mu_);
    view_buffer_.reset();
    view_runs_ = RunTiers();
  }
  if (arena_ != nullptr) arena_->Close();
}

Status MemTable::Create(alloc::Arena* parent, uint64_t id, std::unique_ptr<MemTable>* table) {
  return Create(parent, id, MemTableOptions(), table);
}

Status MemTable::Create(alloc::Arena* parent, uint64_t id, const MemTableOptions& options,
                        std::unique_ptr<MemTable>* table) {
  if (parent == nullptr) return Status::InvalidArgument("memtable: no parent arena");
  alloc::ArenaOptions arena_options;
  arena_options.name = "memtable-" + std::to_string(id);
  // The writer is whichever thread leads the commit group, so the arena must
  // not be confined to one thread.
  arena_options.kind = alloc::ArenaKind::kShared;
  arena_options.limit_bytes = options.limit_bytes;
  arena_options.block_bytes = options.block_bytes;
  // Small first: most memtables of a process with many databases stay
  // nearly empty (an idle database's costs 16 KiB, not 256).
  arena_options.first_block_bytes = std::min<size_t>(options.block_bytes, 16 << 10);
  // Blocks are bump-filled and nodes are reached at random: huge pages.
  arena_options.huge_pages = true;
  // While writes go on, the next memtable grows into this one's segments
  // (DBImpl::RecycleBytesLocked).
  arena_options.recycle = true;
  std::unique_ptr<alloc::Arena> arena;
  Status s = parent->NewChild(arena_options, &arena);
  if (!s.ok()) return s;
  std::unique_ptr<MemTable> t(new (parent->pool()->object_heap())
                                  MemTable(PassKey(), id, options, std::move(arena)));
  s = t->index_.Init(t->arena_.get());
  if (!s.ok()) return s;
  if (!options.order.bytewise()) t->index_.Disable();
  t->bytes_.store(t->arena_->Stats().used_bytes, std::memory_order_relaxed);
  *table = std::move(t);
  return Status::OK();
}

Status MemTable::Add(uint64_t seq, ValueType type, std::string_view key, std::string_view value,
                     uint64_t hash) {
  if (type != ValueType::kValue && type != ValueType::kDeletion) {
    return Status::InvalidArgument("memtable: bad value type");
  }
  if (type == ValueType::kDeletion) value = {};
  // Everything that can fail happens before the node is published.
  size_t index_bytes = 0;
  Status s = index_.Reserve(1, &index_bytes);
  if (!s.ok()) return s;
  if (index_bytes != 0) {
    bytes_.store(bytes_.load(std::memory_order_relaxed) + index_bytes, std::memory_order_relaxed);
  }
  if (buffer_ == nullptr || buffer_->full()) {
    s = SortBuffer(1);
    if (!s.ok()) return s;
  }
  index_.Prefetch(hash);
  const VersionNode* node = nullptr;
  size_t node_bytes = 0;
  s = VersionNode::New(arena_.get(), seq, type, key, value, &node, &node_bytes);
  if (!s.ok()) return s;
  // The index points at each key's first version in list order: the newest
  // (for an equal (key, seq), the later Add). A version at or above every
  // sequence added so far is that; an older one (rare) may not be.
  bool newest = seq >= max_seq_.load(std::memory_order_relaxed);
  if (!newest) {
    const VersionNode* head = nullptr;
    newest = !index_.Find(key, hash, &head) || head == nullptr || head->seq() <= seq;
  }
  buffer_->Append(node);
  if (newest) index_.SetHead(node, hash);
  bytes_.store(bytes_.load(std::memory_order_relaxed) + node_bytes, std::memory_order_relaxed);
  uint64_t n = entries_.load(std::memory_order_relaxed);
  entries_.store(n + 1, std::memory_order_relaxed);
  if (n == 0 || seq < min_seq_.load(std::memory_order_relaxed)) {
    min_seq_.store(seq, std::memory_order_relaxed);
  }
  if (seq > max_seq_.load(std::memory_order_relaxed)) {
    max_seq_.store(seq, std::memory_order_relaxed);
  }
  return Status::OK();
}

Status MemTable::Prepare(size_t count, size_t payload_bytes) {
  size_t index_bytes = 0;
  Status s = index_.Reserve(count, &index_bytes);
  if (!s.ok()) return s;
  if (index_bytes != 0) {
    bytes_.store(bytes_.load(std::memory_order_relaxed) + index_bytes, std::memory_order_relaxed);
  }
  // The nodes' room first: it is the large allocation, and a commit it
  // refuses then leaves the budget as it found it.
  s = arena_->Reserve(count * kMaxNodeOverheadBytes + payload_bytes);
  if (!s.ok()) return s;
  if (count > 0 && (buffer_ == nullptr || buffer_->size() + count > buffer_->capacity())) {
    s = SortBuffer(count);
  }
  return s;
}

MemTable::View MemTable::CurrentView() const {
  port::MutexLock l(&view_mu_);
  return View{view_buffer_, view_runs_};
}

Status MemTable::SortBuffer(size_t room) {
  std::shared_ptr<NodeBuffer> next;
  Status s = NodeBuffer::Create(arena_.get(), std::max(buffer_entries_, room), &next);
  if (!s.ok()) return s;
  RunTiers runs = runs_;
  RunRef& tail = runs[kTail];
  if (const size_t n = buffer_ != nullptr ? buffer_->size() : 0; n > 0) {
    RunRef sorted;
    s = SortedRun::Sort(arena_.get(), buffer_->nodes(), n, &sorted, order_);
    if (s.ok() && tail != nullptr)
      s = SortedRun::Merge(arena_.get(), tail.get(), *sorted, &tail, order_);
    if (!s.ok()) return s;
    if (tail == nullptr) tail = std::move(sorted);
  }
  // Each tier passes down whole once it is large enough; a merge short of
  // memory is put off, the tier growing on until the next sort.
  for (int t = kTail; t < kMain; ++t) {
    const size_t at = t == kTail ? merge_entries_ : merge_at_;
    if (runs[t] == nullptr || runs[t]->size() < at) break;
    RunRef merged = runs[t];  // into an empty tier as it is
    if (runs[t + 1] != nullptr) {
      s = SortedRun::Merge(arena_.get(), runs[t + 1].get(), *runs[t], &merged, order_);
      if (!s.ok()) {
        merges_put_off_.fetch_add(1, std::memory_order_relaxed);
        break;
      }
    }
    runs[t + 1] = std::move(merged);
    runs[t] = RunRef();
    if (t + 1 == kMain) {
      merge_at_ = std::max(merge_entries_, runs[kMain]->size() / kRunToMiddleRatio);
      merges_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  {
    port::MutexLock l(&view_mu_);
    view_buffer_ = next;
    view_runs_ = runs;
  }
  buffer_ = std::move(next);
  runs_ = std::move(runs);
  return Status::OK();
}

size_t MemTable::ApproximateBytesBetween(std::string_view begin, std::string_view end) const {
  if (order_.Compare(begin, end) >= 0 || entries() == 0) return 0;
  const View v = CurrentView();
  size_t sorted = 0, in_range = 0;
  for (const RunRef& r : v.runs) {
    if (r == nullptr) continue;
    sorted += r->size();
    in_range += r->Seek(end, kMaxSequence) - r->Seek(begin, kMaxSequence);
  }
  const size_t total = ApproximateBytes();
  if (sorted > 0) {
    return static_cast<size_t>(static_cast<double>(total) * static_cast<double>(in_range) /
                               static_cast<double>(sorted));
  }
  // All in the buffer: its versions in the range, out of every version.
  const size_t n = v.buffer != nullptr ? v.buffer->size() : 0;
  for (size_t i = 0; i < n; ++i) {
    const std::string_view k = v.buffer->node(i)->key();
    if (order_.Compare(k, begin) >= 0 && order_.Compare(k, end) < 0) ++in_range;
  }
  const uint64_t all = std::max<uint64_t>(entries(), in_range);
  return static_cast<size_t>(static_cast<double>(total) * static_cast<double>(in_range) /
                             static_cast<double>(all));
}

size_t MemTable::run_entries() const {
  View v = CurrentView();
  return v.runs[kMain] ? v.runs[kMain]->size() : 0;
}

const VersionNode* MemTable::FindVisible(std::string_view key, uint64_t snapshot) const {
  // Empty (the usual memtable of a database just opened or checkpointed):
  // no hash, no index probe. Anything visible at `snapshot` was counted
  // before that sequence number was published.
  if (entries() == 0) return nullptr;
  const VersionNode* best = nullptr;
  if (index_.Find(key, HashIndex::Hash(key), &best)) {
    if (best == nullptr || best->seq() <= snapshot) return best;
    best = nullptr;
  }
  // An older version than the newest, or no index to ask: the buffer's
  // newest visible version (of an equal sequence the later one), then each
  // run's, a newer tier winning a tie.
  const View v = CurrentView();
  const size_t n = v.buffer != nullptr ? v.buffer->size() : 0;
  for (size_t i = 0; i < n; ++i) {
    const VersionNode* x = v.buffer->node(i);
    if (x->seq() <= snapshot && (best == nullptr || x->seq() >= best->seq()) &&
        order_.Equal(x->key(), key)) {
      best = x;
    }
  }
  for (const RunRef& r : v.runs) {  // newest first
    if (r == nullptr) continue;
    const size_t i = r->Seek(key, snapshot);
    if (i == r->size()) continue;
    const VersionNode* x = r->node(i);
    if ((best == nullptr || x->seq() > best->seq()) && order_.Equal(x->key(), key)) best = x;
  }
  return best;
}

bool MemTable::Get(std::string_view key, uint64_t snapshot, std::string* value, bool* deleted,
                   uint64_t* seq_out) const {
  const VersionNode* n = FindVisible(key, snapshot);
  if (n == nullptr) return false;
  const bool is_deletion = n->type() == ValueType::kDeletion;
  if (deleted != nullptr) *deleted = is_deletion;
  if (value != nullptr) {
    if (is_deletion) {
      value->clear();
    } else {
      value->assign(n->value());
    }
  }
  if (seq_out != nullptr) *seq_out = n->seq();
  return true;
}

uint64_t MemTable::LatestSequence(std::string_view key) const {
  const VersionNode* n = FindVisible(key, kMaxSequence);
  return n != nullptr ? n->seq() : 0;
}

bool MemTable::WrittenInRangeAfter(const KeyRange& range, uint64_t after_seq) const {
  if (max_sequence() <= after_seq) return false;
  const View v = CurrentView();
  const size_t n = v.buffer != nullptr ? v.buffer->size() : 0;
  for (size_t i = 0; i < n; ++i) {
    const VersionNode* x = v.buffer->node(i);
    if (x->seq() > after_seq && range.Contains(order_, x->key())) return true;
  }
  for (const RunRef& r : v.runs) {
    if (r == nullptr) continue;
    for (size_t i = range.from_first ? 0 : r->Seek(range.begin, kMaxSequence);
         i < r->size() && range.NotAfter(order_, r->node(i)->key()); ++i) {
      if (r->node(i)->seq() > after_seq) return true;
    }
  }
  return false;
}

std::unique_ptr<InternalIterator> MemTable::NewIterator(uint64_t snapshot) const {
  View v = CurrentView();
  std::vector<const VersionNode*> newest = SortedCopy(v.buffer.get(), order_);
  if (order_.bytewise()) {
    return std::make_unique<MemTableIterator<BytewiseOrder>>(std::move(newest), std::move(v.runs),
                                                             snapshot, BytewiseOrder());
  }
  return std::make_unique<MemTableIterator<KeyOrder>>(std::move(newest), std::move(v.runs),
                                                      snapshot, order_);
}

size_t MemTable::ArenaBytes() const { return arena_->bytes(); }

Status MemTable::Spill(const std::shared_ptr<alloc::SpillSink>& sink) {
  return arena_->Spill(sink);
}

}  // namespace arenakv::mem
