#include "mem/sorted_run.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "arenakv/alloc/arena.h"

namespace arenakv::mem {

namespace {

size_t CommonPrefix(std::string_view a, std::string_view b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

// Of two nodes with equal prefixes, whether `a` comes first in list order;
// `a_newer`: on an equal (key, seq), a was added later and comes first.
bool NodeFirst(KeyOrder order, const SkipNode* a, const SkipNode* b, bool a_newer) {
  const int c = order.Compare(a->key(), b->key());
  if (c != 0) return c < 0;
  return a->seq() > b->seq() || (a->seq() == b->seq() && a_newer);
}

}  // namespace

uint64_t SortedRun::PrefixOf(std::string_view key, size_t shared) {
  unsigned char bytes[8] = {};
  if (key.size() > shared)
    std::memcpy(bytes, key.data() + shared, std::min<size_t>(8, key.size() - shared));
  uint64_t p = 0;
  for (unsigned char b : bytes) p = (p << 8) | b;
  return p;
}

Status SortedRun::Merge(alloc::Arena* arena, const SortedRun* older, const SkipList& list,
                        size_t count, RunRef* out, KeyOrder order) {
  const size_t older_size = older != nullptr ? older->size_ : 0;
  const size_t size = older_size + count;
  if (size == 0) return Status::InvalidArgument("sorted run: nothing to merge");
  // Every key of the new run lies between its first and last, so it shares
  // their common prefix.
  std::string_view lo, hi;
  if (count > 0) {
    lo = list.First()->key();
    hi = list.Last()->key();
  }
  if (older_size > 0) {
    const std::string_view older_lo = older->node(0)->key();
    const std::string_view older_hi = older->node(older_size - 1)->key();
    if (count == 0 || order.Compare(older_lo, lo) < 0) lo = older_lo;
    if (count == 0 || order.Compare(older_hi, hi) > 0) hi = older_hi;
  }
  const size_t shared = order.bytewise() ? CommonPrefix(lo, hi) : 0;

  std::shared_ptr<SortedRun> run;
  try {
    run = std::make_shared<SortedRun>(PassKey(), arena, size, shared, order);
  } catch (const std::bad_alloc&) {
    return Status::MemoryLimit("sorted run: no memory for its header");
  }
  Status s = run->AllocateChunks();
  if (!s.ok()) return s;

  // One pass over both, in order. The older run's eight bytes are reused
  // unless the shared prefix shrank.
  const bool same_prefix = older != nullptr && older->shared_ == shared;
  size_t out_i = 0;
  auto put = [&](const Entry& e) {
    run->chunks_[out_i >> kChunkShift][out_i & (kChunkEntries - 1)] = e;
    ++out_i;
  };
  size_t i = 0;
  const SkipNode* x = list.First();
  auto older_entry = [&](size_t k) {
    return same_prefix ? older->entry(k)
                       : Entry{run->Prefix(older->node(k)->key()), older->node(k)};
  };
  Entry a = i < older_size ? older_entry(i) : Entry{};
  while (x != nullptr && out_i != size) {
    const Entry b{run->Prefix(x->key()), x};
    while (i < older_size && (a.prefix < b.prefix ||
                              (a.prefix == b.prefix && NodeFirst(order, a.node, b.node, false)))) {
      put(a);
      if (++i < older_size) a = older_entry(i);
    }
    if (out_i == size) break;  // more nodes than counted: refused below
    put(b);
    x = x->Next(0);
  }
  while (i < older_size) {
    put(a);
    if (++i < older_size) a = older_entry(i);
  }
  if (out_i != size || x != nullptr) {
    // The list held another number of nodes than its memtable counted.
    return Status::Corruption("sorted run: the skiplist's node count changed while merging");
  }
  *out = std::move(run);
  return Status::OK();
}

template <typename Before>
size_t SortedRun::LowerBound(std::string_view key, Before before) const {
  // A key outside the shared prefix is before or after every entry.
  const std::string_view shared = node(0)->key().substr(0, shared_);
  const int c = key.substr(0, shared_).compare(shared);
  if (c != 0) return c < 0 ? 0 : size_;
  const uint64_t prefix = Prefix(key);
  size_t lo = 0, n = size_;
  while (n > 0) {
    const size_t half = n / 2;
    const Entry& e = entry(lo + half);
    if (e.prefix < prefix || (e.prefix == prefix && before(e.node))) {
      lo += half + 1;
      n -= half + 1;
    } else {
      n = half;
    }
  }
  return lo;
}

size_t SortedRun::Seek(std::string_view key, uint64_t seq) const {
  return LowerBound(key, [&](const SkipNode* n) {
    const int c = order_.Compare(n->key(), key);
    return c < 0 || (c == 0 && n->seq() > seq);
  });
}

size_t SortedRun::FirstAfterKey(std::string_view key) const {
  return LowerBound(key, [&](const SkipNode* n) { return order_.Compare(n->key(), key) <= 0; });
}

Status SortedRun::AllocateChunks() {
  try {
    const size_t chunks = (size_ + kChunkEntries - 1) >> kChunkShift;
    segments_.reserve(chunks);
    chunks_.reserve(chunks);
    for (size_t c = 0; c < chunks; ++c) {
      const size_t entries = std::min(kChunkEntries, size_ - (c << kChunkShift));
      alloc::Segment segment;
      Status s = arena_->AllocateSegment(entries * sizeof(Entry), &segment);
      if (!s.ok()) return s;
      segments_.push_back(segment);
      chunks_.push_back(reinterpret_cast<Entry*>(segment.data));
    }
  } catch (const std::bad_alloc&) {
    return Status::MemoryLimit("sorted run: no memory for its chunk list");
  }
  return Status::OK();
}

SortedRun::~SortedRun() {
  for (const alloc::Segment& segment : segments_) arena_->ReleaseSegment(segment).IgnoreError();
}

}  // namespace arenakv::mem
