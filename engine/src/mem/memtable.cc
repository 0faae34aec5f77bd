#include "mem/memtable.h"

#include <algorithm>
#include <utility>

#include "arenakv/alloc/arena.h"

namespace arenakv::mem {

namespace {

// Versions of one key walked one by one before a search jumps over the rest:
// a hot key can have thousands of versions in a memtable.
constexpr int kLinearSkipSteps = 8;

// A cursor at a snapshot over the version list. Positions are always on the
// visible version of a key (the newest with seq <= snapshot).
class MemTableIterator final : public InternalIterator {
 public:
  MemTableIterator(const SkipList* list, uint64_t snapshot) : list_(list), snapshot_(snapshot) {}

  bool Valid() const override { return node_ != nullptr; }
  void SeekToFirst() override { node_ = SettleForward(list_->First()); }
  void SeekToLast() override { node_ = SettleBackward(list_->Last()); }
  void Seek(std::string_view target) override {
    node_ = SettleForward(list_->Seek(target, kMaxSequence));
  }
  void Next() override { node_ = SettleForward(SkipPastKey(node_)); }
  void Prev() override { node_ = SettleBackward(list_->LastBeforeKey(node_->key())); }
  std::string_view key() const override { return node_->key(); }
  std::string_view value() const override {
    return node_->type() == ValueType::kDeletion ? std::string_view() : node_->value();
  }
  bool is_tombstone() const override { return node_->type() == ValueType::kDeletion; }
  Status status() const override { return Status::OK(); }

 private:
  // First node of the user key after n's.
  const SkipNode* SkipPastKey(const SkipNode* n) const {
    const std::string_view k = n->key();
    const SkipNode* x = n->Next(0);
    for (int i = 0; i < kLinearSkipSteps && x != nullptr; ++i) {
      if (x->key() != k) return x;
      x = x->Next(0);
    }
    return x == nullptr ? nullptr : list_->FirstAfterKey(k);
  }

  // From x, the first node that is visible. Because versions of a key are in
  // descending seq order, the first node of a key with seq <= snapshot is that
  // key's visible version; nodes newer than the snapshot are skipped.
  const SkipNode* SettleForward(const SkipNode* x) const {
    int same_key_steps = 0;
    while (x != nullptr && x->seq() > snapshot_) {
      const SkipNode* next = x->Next(0);
      if (next != nullptr && next->key() == x->key()) {
        if (++same_key_steps > kLinearSkipSteps) {
          // Lands on the key's visible version or on the next key.
          next = list_->Seek(x->key(), snapshot_);
          same_key_steps = 0;
        }
      } else {
        same_key_steps = 0;
      }
      x = next;
    }
    return x;
  }

  // p is the last node of some key (its oldest version) or null. Walks back
  // to the nearest key having a version visible at the snapshot and returns
  // that key's newest visible version.
  const SkipNode* SettleBackward(const SkipNode* p) const {
    while (p != nullptr) {
      // The oldest version is visible iff any version of the key is.
      if (p->seq() <= snapshot_) return list_->Seek(p->key(), snapshot_);
      p = list_->LastBeforeKey(p->key());
    }
    return nullptr;
  }

  const SkipList* const list_;
  const uint64_t snapshot_;
  const SkipNode* node_ = nullptr;
};

}  // namespace

MemTable::MemTable(PassKey, uint64_t id, std::unique_ptr<alloc::Arena> arena)
    : id_(id), arena_(std::move(arena)) {}

MemTable::~MemTable() {
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
  std::unique_ptr<alloc::Arena> arena;
  Status s = parent->NewChild(arena_options, &arena);
  if (!s.ok()) return s;
  auto t = std::make_unique<MemTable>(PassKey(), id, std::move(arena));
  s = t->list_.Init(t->arena_.get(), id);
  if (!s.ok()) return s;
  s = t->index_.Init(t->arena_.get());
  if (!s.ok()) return s;
  t->bytes_.store(t->arena_->Stats().used_bytes, std::memory_order_relaxed);
  *table = std::move(t);
  return Status::OK();
}

Status MemTable::Add(uint64_t seq, ValueType type, std::string_view key, std::string_view value) {
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
  const uint64_t hash = HashIndex::Hash(key);
  index_.Prefetch(hash);
  SkipList::Inserted ins;
  s = list_.Insert(seq, type, key, value, &ins);
  if (!s.ok()) return s;
  // The index points at each key's first node in list order: the newest
  // version (for an equal (key, seq), the later Add).
  if (ins.first_of_key) index_.SetHead(ins.node, hash);
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

const SkipNode* MemTable::FindVisible(std::string_view key, uint64_t snapshot) const {
  // Empty (the usual memtable of a database just opened or checkpointed):
  // no hash, no index probe. Anything visible at `snapshot` was counted
  // before that sequence number was published.
  if (entries() == 0) return nullptr;
  const SkipNode* n = nullptr;
  if (!index_.Find(key, HashIndex::Hash(key), &n)) {
    n = list_.Seek(key, snapshot);
    return (n != nullptr && n->key() == key) ? n : nullptr;
  }
  // n is the key's newest version; older ones follow it on level 0.
  for (int steps = 0; n != nullptr && n->seq() > snapshot; ++steps) {
    if (steps == kLinearSkipSteps) {
      n = list_.Seek(key, snapshot);
      break;
    }
    n = n->Next(0);
    if (n != nullptr && n->key() != key) return nullptr;
  }
  return (n != nullptr && n->key() == key) ? n : nullptr;
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

bool MemTable::WrittenInRangeAfter(std::string_view begin, std::string_view end,
                                   uint64_t after_seq) const {
  if (max_sequence() <= after_seq) return false;
  for (const SkipNode* n = list_.Seek(begin, kMaxSequence); n != nullptr; n = n->Next(0)) {
    if (!end.empty() && n->key() >= end) break;
    if (n->seq() > after_seq) return true;
  }
  return false;
}

std::unique_ptr<InternalIterator> MemTable::NewIterator(uint64_t snapshot) const {
  return std::make_unique<MemTableIterator>(&list_, snapshot);
}

size_t MemTable::ArenaBytes() const { return arena_->bytes(); }

Status MemTable::Spill(const std::shared_ptr<alloc::SpillSink>& sink) {
  return arena_->Spill(sink);
}

}  // namespace arenakv::mem
