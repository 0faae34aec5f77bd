#include "mem/skiplist.h"

#include <cstring>
#include <new>

#include "arenakv/alloc/arena.h"

namespace arenakv::mem {

namespace {

// Always inlined: GCC 12 finds a function that only prefetches free of side
// effects and may drop the calls to it.
__attribute__((always_inline)) inline void Prefetch(const void* p) { __builtin_prefetch(p, 0, 3); }

}  // namespace

Status SkipList::Init(alloc::Arena* arena, uint64_t rng_seed, KeyOrder order) {
  void* mem = nullptr;
  Status s = arena->Allocate(kHeadBytes, alignof(SkipNode), &mem);
  if (!s.ok()) return s;
  Init(arena, rng_seed, mem, order);
  return Status::OK();
}

void SkipList::Init(alloc::Arena* arena, uint64_t rng_seed, void* head_memory, KeyOrder order) {
  arena_ = arena;
  order_ = order;
  // xorshift must not start at zero.
  rng_ = rng_seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
  if (rng_ == 0) rng_ = 1;
  head_ = new (head_memory) SkipNode();
  head_->height_ = kMaxHeight;
  for (int i = 0; i < kMaxHeight; ++i) {
    new (&head_->Tower()[i]) std::atomic<SkipNode*>(nullptr);
    splice_[i] = head_;
  }
}

int SkipList::RandomHeight() {
  rng_ ^= rng_ << 13;
  rng_ ^= rng_ >> 7;
  rng_ ^= rng_ << 17;
  uint64_t r = rng_;
  // Branching factor 4: each two zero bits raise the tower one level.
  int height = 1;
  while (height < kMaxHeight && (r & 3) == 0) {
    ++height;
    r >>= 2;
  }
  return height;
}

Status SkipList::Insert(uint64_t seq, ValueType type, std::string_view key, std::string_view value,
                        Inserted* inserted) {
  if (key.size() > UINT32_MAX || value.size() > UINT32_MAX) {
    return Status::InvalidArgument("memtable: key or value larger than 4 GiB");
  }
  // Search first, allocate second: nothing is published before both succeed.
  //
  // The search starts from the previous insertion's predecessors (the
  // splice): on every level from the top down where the splice node still
  // brackets the new version (splice < new <= its successor) it is the right
  // predecessor as is. Ascending keys (a sequential load, a WAL replay of
  // one) thus insert without searching at all, and for random keys only the
  // upper levels, which are in cache, are checked twice.
  SkipNode* prev[kMaxHeight];
  int level = CurrentHeight();
  while (level > 0) {
    SkipNode* p = splice_[level - 1];
    if (p != head_ && !NodeBefore(p, key, seq)) break;
    SkipNode* next = p->Tower()[level - 1].load(std::memory_order_relaxed);
    if (next != nullptr && NodeBefore(next, key, seq)) break;
    --level;
    prev[level] = p;
  }
  if (level > 0) {
    // Levels [level, height) bracket; search the rest from the lowest one.
    SkipNode* x = level < CurrentHeight() ? prev[level] : head_;
    --level;
    const SkipNode* known_after = nullptr;  // as in Seek()
    while (true) {
      SkipNode* next = x->Tower()[level].load(std::memory_order_relaxed);
      if (level > 0) Prefetch(x->Tower()[level - 1].load(std::memory_order_relaxed));
      if (next != known_after && next != nullptr && NodeBefore(next, key, seq)) {
        x = next;
      } else {
        prev[level] = x;
        if (level == 0) break;
        known_after = next;
        --level;
      }
    }
  }

  const int height = RandomHeight();
  const size_t bytes =
      sizeof(SkipNode) + height * sizeof(std::atomic<SkipNode*>) + key.size() + value.size();
  void* mem = nullptr;
  Status s = arena_->Allocate(bytes, alignof(SkipNode), &mem);
  if (!s.ok()) return s;

  SkipNode* n = new (mem) SkipNode();
  n->seq_ = seq;
  n->key_size_ = static_cast<uint32_t>(key.size());
  n->value_size_ = static_cast<uint32_t>(value.size());
  n->type_ = type;
  n->height_ = static_cast<uint8_t>(height);
  char* data = const_cast<char*>(n->KeyData());
  if (!key.empty()) std::memcpy(data, key.data(), key.size());
  if (!value.empty()) std::memcpy(data + key.size(), value.data(), value.size());

  const int old_height = CurrentHeight();
  if (height > old_height) {
    for (int i = old_height; i < height; ++i) prev[i] = head_;
    // A reader that sees the new height before the node finds null pointers in
    // the head's upper levels and simply descends.
    max_height_.store(height, std::memory_order_relaxed);
  }
  for (int i = 0; i < height; ++i) {
    new (&n->Tower()[i])
        std::atomic<SkipNode*>(prev[i]->Tower()[i].load(std::memory_order_relaxed));
    // Release: a reader that finds n also sees its contents and its tower.
    prev[i]->Tower()[i].store(n, std::memory_order_release);
  }
  const int top = height > old_height ? height : old_height;
  for (int i = 0; i < kMaxHeight; ++i) {
    splice_[i] = i < height ? n : (i < top ? prev[i] : head_);
  }
  inserted->node = n;
  inserted->bytes = bytes;
  inserted->first_of_key = prev[0] == head_ || !order_.Equal(prev[0]->key(), key);
  return Status::OK();
}

const SkipNode* SkipList::Seek(std::string_view key, uint64_t seq) const {
  const SkipNode* x = head_;
  int level = CurrentHeight() - 1;
  // The node already found to be after the target on the level above: on the
  // next level down the search often meets it again and need not compare.
  const SkipNode* known_after = nullptr;
  while (true) {
    const SkipNode* next = x->Next(level);
    // Fetch the candidate one level down in parallel with this one: if `next`
    // turns out to be past the target, that is the node examined next, and a
    // large memtable misses the cache on nearly every node it visits.
    if (level > 0) Prefetch(x->Next(level - 1));
    if (next != known_after && next != nullptr && NodeBefore(next, key, seq)) {
      x = next;
    } else {
      if (level == 0) return next;
      known_after = next;
      --level;
    }
  }
}

const SkipNode* SkipList::FirstAfterKey(std::string_view key) const {
  const SkipNode* x = head_;
  int level = CurrentHeight() - 1;
  while (true) {
    const SkipNode* next = x->Next(level);
    if (next != nullptr && order_.Compare(next->key(), key) <= 0) {
      x = next;
    } else {
      if (level == 0) return next;
      --level;
    }
  }
}

const SkipNode* SkipList::LastBeforeKey(std::string_view key) const {
  const SkipNode* x = head_;
  int level = CurrentHeight() - 1;
  while (true) {
    const SkipNode* next = x->Next(level);
    if (next != nullptr && order_.Compare(next->key(), key) < 0) {
      x = next;
    } else {
      if (level == 0) return x == head_ ? nullptr : x;
      --level;
    }
  }
}

const SkipNode* SkipList::Last() const {
  const SkipNode* x = head_;
  int level = CurrentHeight() - 1;
  while (true) {
    const SkipNode* next = x->Next(level);
    if (next != nullptr) {
      x = next;
    } else {
      if (level == 0) return x == head_ ? nullptr : x;
      --level;
    }
  }
}

}  // namespace arenakv::mem
