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
bool NodeFirst(KeyOrder order, const VersionNode* a, const VersionNode* b, bool a_newer) {
  const int c = order.Compare(a->key(), b->key());
  if (c != 0) return c < 0;
  return a->seq() > b->seq() || (a->seq() == b->seq() && a_newer);
}

// What Sort() orders: an entry and when its node was added.
struct SortItem {
  uint64_t prefix;
  const VersionNode* node;
  size_t added;
};

}  // namespace

uint64_t SortedRun::PrefixOf(std::string_view key, size_t shared) {
  unsigned char bytes[8] = {};
  if (key.size() > shared)
    std::memcpy(bytes, key.data() + shared, std::min<size_t>(8, key.size() - shared));
  uint64_t p = 0;
  for (unsigned char b : bytes) p = (p << 8) | b;
  return p;
}

Status SortedRun::NewRun(alloc::Arena* arena, size_t size, std::string_view lo, std::string_view hi,
                         KeyOrder order, std::shared_ptr<SortedRun>* out) {
  // Every key of the run lies between lo and hi, so it shares their common
  // prefix.
  const size_t shared = order.bytewise() ? CommonPrefix(lo, hi) : 0;
  std::shared_ptr<SortedRun> run;
  try {
    run = std::make_shared<SortedRun>(PassKey(), arena, size, shared, order);
  } catch (const std::bad_alloc&) {
    return Status::MemoryLimit("sorted run: no memory for its header");
  }
  Status s = run->AllocateChunks();
  if (!s.ok()) return s;
  *out = std::move(run);
  return Status::OK();
}

Status SortedRun::Sort(alloc::Arena* arena, const VersionNode* const* nodes, size_t n, RunRef* out,
                       KeyOrder order) {
  if (n == 0) return Status::InvalidArgument("sorted run: nothing to sort");
  // The common prefix of every key is that of the first key and each other.
  std::string_view lo = nodes[0]->key(), hi = lo;
  size_t min_key = lo.size(), max_key = lo.size();
  uint64_t min_seq = nodes[0]->seq(), max_seq = min_seq;
  for (size_t i = 1; i < n; ++i) {
    const std::string_view k = nodes[i]->key();
    if (order.Compare(k, lo) < 0) lo = k;
    if (order.Compare(k, hi) > 0) hi = k;
    min_key = std::min(min_key, k.size());
    max_key = std::max(max_key, k.size());
    min_seq = std::min(min_seq, nodes[i]->seq());
    max_seq = std::max(max_seq, nodes[i]->seq());
  }
  std::shared_ptr<SortedRun> run;
  Status s = NewRun(arena, n, lo, hi, order, &run);
  if (!s.ok()) return s;
  run->min_key_bytes_ = min_key;
  run->max_key_bytes_ = max_key;
  run->min_seq_ = min_seq;
  run->max_seq_ = max_seq;
  // The items carry the insertion order that breaks ties of (key, seq); they
  // are sorted in a segment of their own, given back at once.
  alloc::Segment scratch;
  s = arena->AllocateSegment(n * sizeof(SortItem), &scratch);
  if (!s.ok()) return s;
  auto* items = reinterpret_cast<SortItem*>(scratch.data);
  for (size_t i = 0; i < n; ++i) items[i] = SortItem{run->Prefix(nodes[i]->key()), nodes[i], i};
  std::sort(items, items + n, [order](const SortItem& a, const SortItem& b) {
    if (a.prefix != b.prefix) return a.prefix < b.prefix;
    return NodeFirst(order, a.node, b.node, a.added > b.added);
  });
  for (size_t i = 0; i < n; ++i) run->mutable_entry(i) = Entry{items[i].prefix, items[i].node};
  arena->ReleaseSegment(scratch).IgnoreError();
  *out = std::move(run);
  return Status::OK();
}

Status SortedRun::Merge(alloc::Arena* arena, const SortedRun* older, const SortedRun& newer,
                        RunRef* out, KeyOrder order) {
  const size_t older_size = older != nullptr ? older->size_ : 0;
  const size_t newer_size = newer.size_;
  std::string_view lo = newer.node(0)->key();
  std::string_view hi = newer.node(newer_size - 1)->key();
  if (older_size > 0) {
    const std::string_view older_lo = older->node(0)->key();
    const std::string_view older_hi = older->node(older_size - 1)->key();
    if (order.Compare(older_lo, lo) < 0) lo = older_lo;
    if (order.Compare(older_hi, hi) > 0) hi = older_hi;
  }
  std::shared_ptr<SortedRun> run;
  Status s = NewRun(arena, older_size + newer_size, lo, hi, order, &run);
  if (!s.ok()) return s;
  run->min_key_bytes_ = newer.min_key_bytes_;
  run->max_key_bytes_ = newer.max_key_bytes_;
  run->min_seq_ = newer.min_seq_;
  run->max_seq_ = newer.max_seq_;
  // Keys all of one length, within the eight bytes after the new run's
  // shared prefix, are equal when their eight bytes are; and when every
  // newer version is at least as new as every older one, of two versions
  // of one key the newer run's comes first.
  bool same_key_newer = false;
  if (older_size > 0) {
    run->min_key_bytes_ = std::min(run->min_key_bytes_, older->min_key_bytes_);
    run->max_key_bytes_ = std::max(run->max_key_bytes_, older->max_key_bytes_);
    run->min_seq_ = std::min(run->min_seq_, older->min_seq_);
    run->max_seq_ = std::max(run->max_seq_, older->max_seq_);
    same_key_newer = order.bytewise() && run->min_key_bytes_ == run->max_key_bytes_ &&
                     run->max_key_bytes_ <= run->shared_ + 8 && newer.min_seq_ >= older->max_seq_;
  }

  // Each version of the newer run goes after the stretch of older ones
  // before it, found by galloping from the last stretch's end and copied
  // whole: the newer run is the smaller (a sorted buffer into the tail, a
  // tier into one eight times its size), so most entries move in bulk.
  const size_t shared = run->shared_;
  size_t out_i = 0, i = 0;
  for (size_t j = 0; j < newer_size; ++j) {
    const Entry b = newer.EntryFor(j, shared);
    if (older_size > 0) {
      const size_t k = older->FirstNotBefore(b, i, shared, same_key_newer);
      run->CopyFrom(*older, i, k, out_i);
      out_i += k - i;
      i = k;
    }
    run->mutable_entry(out_i++) = b;
  }
  if (i < older_size) run->CopyFrom(*older, i, older_size, out_i);
  *out = std::move(run);
  return Status::OK();
}

size_t SortedRun::FirstNotBefore(const Entry& b, size_t from, size_t shared,
                                 bool same_key_newer) const {
  auto before = [&](size_t k) {
    const Entry a = EntryFor(k, shared);
    return a.prefix < b.prefix ||
           (a.prefix == b.prefix && !same_key_newer && NodeFirst(order_, a.node, b.node, false));
  };
  // Gallop to a bracket [lo, hi) holding the answer, then halve it.
  size_t lo = from, step = 1;
  size_t hi = from;
  while (hi < size_ && before(hi)) {
    lo = hi + 1;
    hi = std::min(size_, hi + step);
    step *= 2;
  }
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (before(mid)) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

void SortedRun::CopyFrom(const SortedRun& src, size_t from, size_t to, size_t at) {
  if (src.shared_ != shared_ && order_.bytewise()) {
    for (; from < to; ++from) mutable_entry(at++) = src.EntryFor(from, shared_);
    return;
  }
  while (from < to) {
    const size_t n = std::min({to - from, kChunkEntries - (from & (kChunkEntries - 1)),
                               kChunkEntries - (at & (kChunkEntries - 1))});
    std::memcpy(&mutable_entry(at), &src.entry(from), n * sizeof(Entry));
    from += n;
    at += n;
  }
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
  return LowerBound(key, [&](const VersionNode* n) { return VersionBefore(order_, n, key, seq); });
}

size_t SortedRun::FirstAfterKey(std::string_view key) const {
  return LowerBound(key, [&](const VersionNode* n) { return order_.Compare(n->key(), key) <= 0; });
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
