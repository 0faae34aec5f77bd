#include "mem/memtable.h"

#include <algorithm>
#include <new>
#include <type_traits>
#include <utility>

#include "arenakv/alloc/arena.h"
#include "util/key_compare.h"

namespace arenakv::mem {

namespace {

// Versions of one key walked one by one before a search jumps over the rest:
// a hot key can have thousands of versions in a memtable.
constexpr int kLinearSkipSteps = 8;

// A list merges into a new run once it holds an eighth of the run's
// versions, or MemTableOptions::merge_entries if that is more.
constexpr size_t kRunToListRatio = 8;

// How far ahead of a scan the run's nodes are fetched.
constexpr size_t kPrefetchAhead = 16;

// Walks the versions of a view in list order: the list's and the run's,
// merged. Of two versions with the same (key, seq) the list's, added later,
// comes first, as it would in one skiplist. `Order`: BytewiseOrder (a
// scan's hot path compares inline), or KeyOrder.
template <typename Order>
class VersionCursor {
 public:
  VersionCursor(const SkipList* list, const SortedRun* run, Order order)
      : list_(list), run_(run), run_size_(run != nullptr ? run->size() : 0), order_(order) {}

  const Order& order() const { return order_; }

  // The version at the cursor; nullptr past the end.
  const SkipNode* node() const { return cur_; }

  void SeekToFirst() {
    l_ = list_->First();
    r_ = 0;
    Settle();
  }
  // To the first version at or after (key, seq).
  void Seek(std::string_view key, uint64_t seq) {
    l_ = list_->Seek(key, seq);
    r_ = run_size_ > 0 ? run_->Seek(key, seq) : 0;
    Settle();
  }
  // To the first version of the first key after `key`.
  void SeekAfterKey(std::string_view key) {
    l_ = list_->FirstAfterKey(key);
    r_ = run_size_ > 0 ? run_->FirstAfterKey(key) : 0;
    Settle();
  }
  void Next() {
    if (cur_ == l_) {
      l_ = l_->Next(0);
    } else {
      ++r_;
      run_->Prefetch(r_ + kPrefetchAhead);
    }
    Settle();
  }

  // A version of the greatest key before `key` (nullptr if none).
  const SkipNode* LastBeforeKey(std::string_view key) const {
    const size_t i = run_size_ > 0 ? run_->Seek(key, kMaxSequence) : 0;
    return GreaterKey(list_->LastBeforeKey(key), i > 0 ? run_->node(i - 1) : nullptr);
  }
  // A version of the greatest key (nullptr if none).
  const SkipNode* Last() const {
    return GreaterKey(list_->Last(), run_size_ > 0 ? run_->node(run_size_ - 1) : nullptr);
  }

 private:
  void Settle() {
    const SkipNode* b = r_ < run_size_ ? run_->node(r_) : nullptr;
    if (b == nullptr) {
      cur_ = l_;
    } else if (l_ == nullptr) {
      cur_ = b;
    } else {
      const int c = order_.Compare(l_->key(), b->key());
      cur_ = c < 0 || (c == 0 && l_->seq() >= b->seq()) ? l_ : b;
    }
  }
  const SkipNode* GreaterKey(const SkipNode* a, const SkipNode* b) const {
    if (a == nullptr) return b;
    if (b == nullptr) return a;
    return order_.Compare(a->key(), b->key()) >= 0 ? a : b;
  }

  const SkipList* const list_;
  const SortedRun* const run_;
  const size_t run_size_;
  const Order order_;
  const SkipNode* l_ = nullptr;  // the list's next version
  size_t r_ = 0;                 // the run's next version
  const SkipNode* cur_ = nullptr;
};

// A cursor at a snapshot over the versions. Positions are always on the
// visible version of a key (the newest with seq <= snapshot). It keeps the
// run it started on, whatever merges the writer makes meanwhile.
template <typename Order>
class MemTableIterator final : public InternalIterator {
 public:
  MemTableIterator(const SkipList* list, RunRef run, uint64_t snapshot, Order order)
      : run_(std::move(run)), versions_(list, run_.get(), order), snapshot_(snapshot) {}

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
  const SkipNode* SettleForward() {
    int same_key_steps = 0;
    for (const SkipNode* x = versions_.node(); x != nullptr; x = versions_.node()) {
      if (x->seq() <= snapshot_) return x;
      versions_.Next();
      const SkipNode* next = versions_.node();
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
  const SkipNode* SettleBackward(const SkipNode* p) {
    while (p != nullptr) {
      versions_.Seek(p->key(), snapshot_);
      const SkipNode* x = versions_.node();
      if (x != nullptr && versions_.order().Equal(x->key(), p->key())) return x;
      p = versions_.LastBeforeKey(p->key());
    }
    return nullptr;
  }

  const RunRef run_;
  VersionCursor<Order> versions_;
  const uint64_t snapshot_;
  const SkipNode* node_ = nullptr;
};

}  // namespace

MemTable::MemTable(PassKey, uint64_t id, size_t merge_entries, KeyOrder order,
                   std::unique_ptr<alloc::Arena> arena)
    : id_(id),
      merge_entries_(std::max<size_t>(merge_entries, 1)),
      order_(order),
      arena_(std::move(arena)),
      merge_at_(merge_entries_) {}

MemTable::~MemTable() {
  // The runs go back to the arena before it closes.
  run_ = RunRef();
  {
    port::MutexLock l(&view_mu_);
    view_run_ = RunRef();
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
  // Blocks are bump-filled and the skiplist is walked at random: huge pages.
  arena_options.huge_pages = true;
  // While writes go on, the next memtable grows into this one's segments
  // (DBImpl::RecycleBytesLocked).
  arena_options.recycle = true;
  std::unique_ptr<alloc::Arena> arena;
  Status s = parent->NewChild(arena_options, &arena);
  if (!s.ok()) return s;
  std::unique_ptr<MemTable> t(new (parent->pool()->object_heap()) MemTable(
      PassKey(), id, options.merge_entries, options.order, std::move(arena)));
  s = t->first_list_.Init(t->arena_.get(), id, options.order);
  if (!s.ok()) return s;
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
  // Everything that can fail happens before the node is linked.
  size_t index_bytes = 0;
  Status s = index_.Reserve(1, &index_bytes);
  if (!s.ok()) return s;
  if (index_bytes != 0) {
    bytes_.store(bytes_.load(std::memory_order_relaxed) + index_bytes, std::memory_order_relaxed);
  }
  if (active_entries_ >= merge_at_) MergeActiveList();
  index_.Prefetch(hash);
  // The index points at each key's first version in list order: the newest
  // (for an equal (key, seq), the later Add). A version at or above every
  // sequence added so far is that; an older one (rare) may not be, even if
  // the active list holds no other version of its key.
  bool newest = seq >= max_seq_.load(std::memory_order_relaxed);
  if (!newest) {
    const SkipNode* head = nullptr;
    newest = !index_.Find(key, hash, &head) || head == nullptr || head->seq() <= seq;
  }
  index_.PrefetchHead(hash);  // an overwrite's older head, during the insert
  SkipList::Inserted ins;
  s = active_->Insert(seq, type, key, value, &ins);
  if (!s.ok()) return s;
  ++active_entries_;
  if (newest && ins.first_of_key) index_.SetHead(ins.node, hash);
  bytes_.store(bytes_.load(std::memory_order_relaxed) + ins.bytes, std::memory_order_relaxed);
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
  return arena_->Reserve(count * SkipList::kMaxNodeOverheadBytes + payload_bytes);
}

MemTable::View MemTable::CurrentView() const {
  port::MutexLock l(&view_mu_);
  return View{view_list_, view_run_};
}

void MemTable::MergeActiveList() {
  // The next list and its head take a segment of their own: a bump
  // allocation here could use up room Prepare() reserved for nodes.
  constexpr size_t kHeadOffset =
      (sizeof(SkipList) + alignof(SkipNode) - 1) & ~(alignof(SkipNode) - 1);
  static_assert(std::is_trivially_destructible_v<SkipList>, "lists die with their segments");
  alloc::Segment segment;
  RunRef run;
  Status s = arena_->AllocateSegment(kHeadOffset + SkipList::kHeadBytes, &segment);
  if (s.ok()) {
    s = SortedRun::Merge(arena_.get(), run_.get(), *active_, active_entries_, &run, order_);
  }
  if (!s.ok()) {
    // Short of memory: the list grows on, and the merge is tried again later.
    if (segment.valid()) arena_->ReleaseSegment(segment).IgnoreError();
    merge_at_ = active_entries_ + merge_entries_;
    merges_put_off_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  auto* list = new (segment.data) SkipList();
  list->Init(arena_.get(), id_ + merges_.load(std::memory_order_relaxed) + 1,
             segment.data + kHeadOffset, order_);
  {
    port::MutexLock l(&view_mu_);
    view_list_ = list;
    view_run_ = run;
  }
  merge_at_ = std::max(merge_entries_, run->size() / kRunToListRatio);
  run_ = std::move(run);
  active_ = list;
  active_entries_ = 0;
  merges_.fetch_add(1, std::memory_order_relaxed);
}

size_t MemTable::ApproximateBytesBetween(std::string_view begin, std::string_view end) const {
  if (order_.Compare(begin, end) >= 0 || entries() == 0) return 0;
  const View v = CurrentView();
  const size_t run_size = v.run ? v.run->size() : 0;
  const size_t total = ApproximateBytes();
  if (run_size > 0) {
    const size_t in_range = v.run->Seek(end, kMaxSequence) - v.run->Seek(begin, kMaxSequence);
    return static_cast<size_t>(static_cast<double>(total) * static_cast<double>(in_range) /
                               static_cast<double>(run_size));
  }
  // All in the list: its versions in the range, out of every version.
  size_t in_range = 0;
  for (const SkipNode* n = v.list->Seek(begin, kMaxSequence);
       n != nullptr && order_.Compare(n->key(), end) < 0; n = n->Next(0)) {
    ++in_range;
  }
  const uint64_t all = std::max<uint64_t>(entries(), in_range);
  return static_cast<size_t>(static_cast<double>(total) * static_cast<double>(in_range) /
                             static_cast<double>(all));
}

size_t MemTable::run_entries() const {
  View v = CurrentView();
  return v.run ? v.run->size() : 0;
}

const SkipNode* MemTable::FindVisible(std::string_view key, uint64_t snapshot) const {
  // Empty (the usual memtable of a database just opened or checkpointed):
  // no hash, no index probe. Anything visible at `snapshot` was counted
  // before that sequence number was published.
  if (entries() == 0) return nullptr;
  const SkipNode* n = nullptr;
  if (index_.Find(key, HashIndex::Hash(key), &n)) {
    if (n == nullptr || n->seq() <= snapshot) return n;
  }
  // An older version than the newest, or no index to ask: search.
  View v = CurrentView();
  VersionCursor<KeyOrder> c(v.list, v.run.get(), order_);
  c.Seek(key, snapshot);
  n = c.node();
  return (n != nullptr && order_.Equal(n->key(), key)) ? n : nullptr;
}

bool MemTable::Get(std::string_view key, uint64_t snapshot, std::string* value, bool* deleted,
                   uint64_t* seq_out) const {
  const SkipNode* n = FindVisible(key, snapshot);
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
  const SkipNode* n = FindVisible(key, kMaxSequence);
  return n != nullptr ? n->seq() : 0;
}

bool MemTable::WrittenInRangeAfter(const KeyRange& range, uint64_t after_seq) const {
  if (max_sequence() <= after_seq) return false;
  View v = CurrentView();
  const SkipNode* n = range.from_first ? v.list->First() : v.list->Seek(range.begin, kMaxSequence);
  for (; n != nullptr && range.NotAfter(order_, n->key()); n = n->Next(0)) {
    if (n->seq() > after_seq) return true;
  }
  if (!v.run) return false;
  for (size_t i = range.from_first ? 0 : v.run->Seek(range.begin, kMaxSequence);
       i < v.run->size() && range.NotAfter(order_, v.run->node(i)->key()); ++i) {
    if (v.run->node(i)->seq() > after_seq) return true;
  }
  return false;
}

std::unique_ptr<InternalIterator> MemTable::NewIterator(uint64_t snapshot) const {
  View v = CurrentView();
  if (order_.bytewise()) {
    return std::make_unique<MemTableIterator<BytewiseOrder>>(v.list, std::move(v.run), snapshot,
                                                             BytewiseOrder());
  }
  return std::make_unique<MemTableIterator<KeyOrder>>(v.list, std::move(v.run), snapshot, order_);
}

size_t MemTable::ArenaBytes() const { return arena_->bytes(); }

Status MemTable::Spill(const std::shared_ptr<alloc::SpillSink>& sink) {
  return arena_->Spill(sink);
}

}  // namespace arenakv::mem
