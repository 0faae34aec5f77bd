// Checkpoint: applies a sorted batch of changes to the tree copy-on-write.
//
// The old tree is walked once, descending only into subtrees the batch
// touches; each touched leaf is merged with its changes in one pass. Rewritten
// pages are produced bottom-up (post-order), so a parent is built after its
// children have their final addresses.
//
// A checkpoint may also erase a key range (DeleteRange): changes inside it
// are skipped, subtrees wholly inside it are dropped without descending
// past their internal pages (leaves only give their entry counts), and the
// leaves at its edges are rewritten without the erased entries.
//
// Packing: the entries of consecutive rewritten siblings stream through one
// builder per level (a run), which fills every page up to page_bytes and
// rebalances only the last two of the run, so pages split by earlier
// checkpoints fill up again. A page that still ends up below a quarter full
// joins its right, else left, neighbour when both fit in one page, and a root
// with one child collapses.
//
// Memory: a new page stays pending (in a private frame) only until its right
// neighbour is known; then it is compressed into a write buffer that goes out
// in one write per 2 MiB of contiguous pages. A written page becomes a clean
// cache frame if readers had cached a page its entries came from, else its
// frame is freed; a rewritten leaf's old image leaves the cache at once. So a
// checkpoint holds a few pages, its write buffer and one children list per
// level, whatever the size of the tree or of the batch.
#include <lz4.h>

#include <algorithm>
#include <cstring>
#include <memory_resource>
#include <new>
#include <optional>

#include "arenakv/alloc/recycling_resource.h"
#include "arenakv/options.h"
#include "tree/btree.h"
#include "tree/page_format.h"

namespace arenakv::tree {

namespace {

// Pages go out in batches this large (contiguous pages, one write call).
constexpr size_t kWriteBufferBytes = size_t{2} << 20;

enum class ChildState : uint8_t { kUnchanged, kPending, kWritten };

// One page of a level under construction.
struct Child {
  explicit Child(std::pmr::memory_resource* mr) : sep(mr) {}
  std::pmr::string sep;  // lower bound of the page's key range
  uint64_t address = 0;  // kUnchanged / kWritten
  PageRef page;          // kPending: the private frame holding the image
  uint32_t bytes = 0;    // image bytes (0 = not known yet for kUnchanged)
  ChildState state = ChildState::kUnchanged;
  bool hot = true;  // kPending: stays cached once written (see NodeBuilder::SetHot)
};

// A growable byte buffer in segments of the checkpoint's arena: a segment
// it outgrows goes back to the pool at once (pmr containers of that size
// would come from the arena, which frees nothing before the checkpoint ends).
class SegmentBuffer {
 public:
  explicit SegmentBuffer(alloc::Arena* arena) : arena_(arena) {}
  SegmentBuffer(const SegmentBuffer&) = delete;
  SegmentBuffer& operator=(const SegmentBuffer&) = delete;
  ~SegmentBuffer() {
    if (seg_.valid()) arena_->ReleaseSegment(seg_).IgnoreError();
  }

  char* data() const { return seg_.data; }
  size_t size() const { return size_; }
  void clear() { size_ = 0; }
  Status Reserve(size_t n) {
    if (n <= seg_.size) return Status::OK();
    alloc::Segment bigger;
    Status s = arena_->AllocateSegment(std::max({n, 2 * seg_.size, size_t{4096}}), &bigger);
    if (!s.ok()) return s;
    if (size_ > 0) std::memcpy(bigger.data, seg_.data, size_);
    if (seg_.valid()) arena_->ReleaseSegment(seg_).IgnoreError();
    seg_ = bigger;
    return Status::OK();
  }
  Status Append(const void* p, size_t n) {
    if (size_ + n > seg_.size) {
      Status s = Reserve(size_ + n);
      if (!s.ok()) return s;
    }
    if (n > 0) std::memcpy(seg_.data + size_, p, n);
    size_ += n;
    return Status::OK();
  }

 private:
  alloc::Arena* const arena_;
  alloc::Segment seg_;
  size_t size_ = 0;
};

}  // namespace

class CheckpointWriter;
struct ChildList;

// Packs the entries of consecutive rewritten pages of one level into as few
// pages as possible: a page is cut when the next entry would overflow
// page_bytes, and only the last two pages of a run are rebalanced (Finish).
// A run spans every rewritten sibling between two pages the checkpoint leaves
// unchanged, so pages split by earlier checkpoints fill up again.
class NodeBuilder {
 public:
  NodeBuilder(CheckpointWriter* w, ChildList* out);

  // Begins a run whose first page has lower bound `lower`.
  void Start(std::string_view lower);
  bool active() const { return active_; }
  Status AddLeaf(std::string_view key, std::string_view value) {
    char h[kLeafEntryHeaderBytes];
    EncodeFixed16(h, static_cast<uint16_t>(key.size()));
    EncodeFixed32(h + 2, static_cast<uint32_t>(value.size()));
    return Add(h, sizeof(h), key, value);
  }
  Status AddChild(std::string_view sep, uint64_t child) {
    char h[kInternalEntryHeaderBytes];
    EncodeFixed16(h, static_cast<uint16_t>(sep.size()));
    EncodeFixed64(h + 2, child);
    return Add(h, sizeof(h), sep, {});
  }
  // Emits what the run holds and ends it.
  Status Finish();
  // Whether the entries added next come from a page readers had in the
  // cache. A written page is cached only if some of its entries were: a
  // checkpoint must not fill the cache with pages nobody reads (a bulk load
  // would otherwise cache the whole tree it writes). Internal pages always are.
  void SetHot(bool hot) { hot_ = hot; }

 private:
  // One page's entries in image form, back to back.
  struct Scratch {
    explicit Scratch(alloc::Arena* arena) : data(arena), offs(arena) {}
    SegmentBuffer data;
    SegmentBuffer offs;  // u32 offset of each entry in data
    size_t bytes = 0;    // sum of entry bytes including slots
    bool hot = false;    // holds an entry of a cached page
    size_t count() const { return offs.size() / sizeof(uint32_t); }
    bool empty() const { return offs.size() == 0; }
    uint32_t off(size_t i) const {
      uint32_t o;
      std::memcpy(&o, offs.data() + i * sizeof(uint32_t), sizeof(o));
      return o;
    }
    const char* entry(size_t i) const { return data.data() + off(i); }
    void clear() {
      data.clear();
      offs.clear();
      bytes = 0;
      hot = false;
    }
  };

  bool leaf() const { return level_ == 0; }
  size_t HeaderBytes() const { return leaf() ? kLeafEntryHeaderBytes : kInternalEntryHeaderBytes; }
  size_t MinEntries() const { return leaf() ? 1 : 2; }
  std::string_view KeyAt(const Scratch& s, size_t i) const {
    const char* e = s.entry(i);
    return {e + HeaderBytes(), DecodeFixed16(e)};
  }
  size_t EntryLen(const Scratch& s, size_t i) const {
    size_t end = i + 1 < s.count() ? s.off(i + 1) : s.data.size();
    return end - s.off(i);
  }
  // Appends one entry made of up to three pieces.
  static Status Append(Scratch* s, std::string_view a, std::string_view b = {},
                       std::string_view c = {}) {
    uint32_t off = static_cast<uint32_t>(s->data.size());
    Status st = s->offs.Append(&off, sizeof(off));
    if (st.ok()) st = s->data.Append(a.data(), a.size());
    if (st.ok()) st = s->data.Append(b.data(), b.size());
    if (st.ok()) st = s->data.Append(c.data(), c.size());
    s->bytes += a.size() + b.size() + c.size() + kSlotBytes;
    return st;
  }
  Status Add(const char* h, size_t hlen, std::string_view key, std::string_view value);
  Status Emit(Scratch* s);

  CheckpointWriter* const w_;
  ChildList* const out_;
  size_t page_bytes_;
  uint16_t level_ = 0;
  bool active_ = false;
  bool emitted_ = false;  // the run has emitted a page
  bool hot_ = false;
  std::pmr::string lower_;
  // pages_[cur_] is being filled; pages_[cur_ ^ 1] is the full one before it.
  // Both keep their capacity from run to run.
  Scratch pages_[2];
  Scratch joined_;
  int cur_ = 0;
  std::pmr::string last_key_;  // last key of the previous emitted leaf
};

// The pages of one level under construction, below one parent.
struct ChildList {
  ChildList(CheckpointWriter* w, uint16_t lvl, std::pmr::memory_resource* mr)
      : level(lvl), items(mr), builder(w, this) {}
  ChildList(const ChildList&) = delete;
  ChildList& operator=(const ChildList&) = delete;
  uint16_t level;
  std::pmr::vector<Child> items;
  size_t done = 0;      // items before this index are final (written or unchanged)
  NodeBuilder builder;  // the run of rewritten pages being packed into items
};

namespace {

// The shortest key s with a < s <= b (requires a < b).
std::string_view ShortestSeparator(std::string_view a, std::string_view b) {
  size_t p = 0;
  while (p < a.size() && p < b.size() && a[p] == b[p]) ++p;
  return b.substr(0, std::min(b.size(), p + 1));
}

size_t EntryBytes(const PageView& v, uint32_t i) {
  return v.is_leaf() ? LeafEntryBytes(v.key(i).size(), v.value(i).size())
                     : InternalEntryBytes(v.key(i).size());
}

}  // namespace

// The changes of a checkpoint that also erases a range, without the ones
// inside it: the range goes whole, whatever the memtables said of its keys.
class OutsideRange final : public SkippingIterator<OutsideRange> {
 public:
  OutsideRange(InternalIterator* base, const EraseRange& range, KeyOrder order)
      : SkippingIterator(base), range_(range), order_(order) {}

  void SkipForward() {
    if (base()->Valid() && Inside()) base()->Seek(range_.end);
  }
  void SkipBackward() {
    while (base()->Valid() && Inside()) base()->Prev();
  }

 private:
  bool Inside() const { return range_.Contains(base()->key(), order_); }

  const EraseRange range_;
  const KeyOrder order_;
};

class CheckpointWriter {
 public:
  CheckpointWriter(BTree* tree, std::pmr::memory_resource* mr, alloc::Arena* arena)
      : tree_(tree),
        cache_(tree->cache_.get()),
        mr_(mr),
        arena_(arena),
        page_bytes_(tree->options_.page_bytes),
        order_(tree->options_.order),
        min_fill_(tree->options_.page_bytes / 4),
        prev_key_(mr),
        written_(mr),
        abandoned_(mr),
        lists_(mr) {}
  ~CheckpointWriter() {
    std::pmr::polymorphic_allocator<ChildList> alloc(mr_);
    for (ChildList* l : lists_) {
      if (l != nullptr) alloc.delete_object(l);
    }
    if (buffer_.valid()) arena_->ReleaseSegment(buffer_).IgnoreError();
  }

  Status Run(InternalIterator* changes, uint64_t last_sequence, uint64_t wal_number,
             const EraseRange* erase, CheckpointResult* result);
  // Gives back everything a failed checkpoint took. `quarantine`: the meta
  // block may have reached the disk, so the extents must wait.
  void Abort(bool quarantine);

  // Page building (used by NodeBuilder).
  Status NewImage(size_t bytes, PageRef* ref) { return cache_->NewFrame(bytes, ref); }
  Status AddPending(ChildList* out, std::string_view sep, PageRef page, uint32_t bytes, bool hot);
  size_t page_bytes() const { return page_bytes_; }
  KeyOrder order() const { return order_; }
  // A key s with a < s <= b, as short as the order lets it be, to stand
  // between two leaves; valid until the next call.
  std::string_view Separator(std::string_view a, std::string_view b);
  std::pmr::memory_resource* mr() const { return mr_; }
  alloc::Arena* arena() const { return arena_; }

 private:
  // Run's phases.
  Status RewriteTree(uint64_t old_root, uint64_t* new_root);
  Status ShapeTop(ChildList* top, uint64_t* root);
  Status CommitMeta(const MetaState& old, uint64_t new_root, uint64_t last_sequence,
                    uint64_t wal_number);

  bool Less(std::string_view a, std::string_view b) const { return order_.Compare(a, b) < 0; }
  bool InRange(const std::string_view* upper) const {
    return changes_->Valid() && (upper == nullptr || Less(changes_->key(), *upper));
  }
  // The erased range against a page's key range [lower, upper) (upper
  // null: unbounded): whether they meet, whether it holds the page whole.
  // A lower bound "" is the tree's left edge; in the bytewise order it is
  // also the least key, in another it may be a key anywhere, and taking it
  // for the edge only makes these answers cautious (meets, not covered).
  bool EraseMeets(std::string_view lower, const std::string_view* upper) const {
    return erase_ != nullptr && (lower.empty() || Less(lower, erase_->end)) &&
           (upper == nullptr || Less(erase_->begin, *upper));
  }
  bool EraseCovers(std::string_view lower, const std::string_view* upper) const {
    return erase_ != nullptr && (order_.bytewise() || !lower.empty()) &&
           !Less(lower, erase_->begin) && upper != nullptr && !Less(erase_->end, *upper);
  }
  // Copies entry i of an old leaf into `b`, unless it is erased.
  Status KeepEntry(NodeBuilder* b, const PageView& v, uint32_t i);
  // The subtree at `address` lies inside the erased range: its pages become
  // obsolete, its keys leave the count.
  Status DropSubtree(uint64_t address, int level);
  // Applies the changes below `upper` to the page at `address` (0: the
  // empty tree), adding its replacement to out's run, or (*kept) the page
  // itself to `out` if nothing in it changes.
  Status Rewrite(uint64_t address, int level, std::string_view lower, const std::string_view* upper,
                 ChildList* out, bool* kept);
  Status RewriteLeaf(uint64_t address, std::string_view lower, const std::string_view* upper,
                     ChildList* out, bool* kept);
  Status RewriteInternal(uint64_t address, int level, std::string_view lower,
                         const std::string_view* upper, ChildList* out, bool* kept);
  Status CheckChange();
  // The (emptied) list for the children of a page of level `level` + 1. The
  // walk is depth first, so one list per level serves every page rewritten
  // there and keeps its capacity.
  ChildList* ListFor(uint16_t level);
  // Ends out's run, then appends a page this checkpoint keeps.
  Status AddUnchanged(ChildList* out, std::string_view sep, uint64_t address);
  Status Settle(ChildList* list, bool final);
  Status LoadBytes(Child* c);
  Status Merge(ChildList* list, size_t left, bool* merged);
  Status WriteChild(Child* c);
  // Writes the page; publishes it as a clean cache frame when `cache`, else
  // frees its frame.
  Status WritePage(PageRef* page, uint32_t bytes, bool cache, uint64_t* address);
  Status Allocate(uint64_t length, uint64_t* offset);
  void ReturnRun();
  Status Flush();
  Status BuildLevelAbove(ChildList* list, ChildList* above);

  BTree* const tree_;
  PageCache* const cache_;
  std::pmr::memory_resource* const mr_;
  alloc::Arena* const arena_;
  const size_t page_bytes_;
  const KeyOrder order_;
  const size_t min_fill_;

  InternalIterator* changes_ = nullptr;
  const EraseRange* erase_ = nullptr;
  std::pmr::string prev_key_;
  bool have_prev_key_ = false;
  // A user order's separator (Comparator::FindShortestSeparator takes a
  // std::string; it holds one key at a time).
  std::string separator_;
  int64_t key_delta_ = 0;

  std::pmr::vector<uint64_t> written_;    // pages this checkpoint wrote
  std::pmr::vector<uint64_t> abandoned_;  // written, then not part of the new tree
  std::pmr::vector<ChildList*> lists_;    // by level; see ListFor
  CheckpointResult* result_ = nullptr;

  // Write batching: contiguous pages accumulate in buffer_ and go out in one
  // Write at batch_offset_. Pages are carved from a run of free space.
  alloc::Segment buffer_;
  size_t buffer_used_ = 0;
  uint64_t batch_offset_ = 0;
  uint64_t run_next_ = 0, run_end_ = 0;
  bool run_at_end_ = false;
};

NodeBuilder::NodeBuilder(CheckpointWriter* w, ChildList* out)
    : w_(w),
      out_(out),
      page_bytes_(w->page_bytes()),
      lower_(w->mr()),
      pages_{Scratch(w->arena()), Scratch(w->arena())},
      joined_(w->arena()),
      last_key_(w->mr()) {}

void NodeBuilder::Start(std::string_view lower) {
  level_ = out_->level;
  hot_ = level_ > 0;
  lower_.assign(lower.data(), lower.size());
  active_ = true;
  emitted_ = false;
  cur_ = 0;
  for (Scratch& s : pages_) s.clear();
}

Status NodeBuilder::Add(const char* h, size_t hlen, std::string_view key, std::string_view value) {
  size_t len = hlen + key.size() + value.size();
  Scratch* cur = &pages_[cur_];
  if (cur->count() >= MinEntries() &&
      kImageHeaderBytes + cur->bytes + len + kSlotBytes > page_bytes_) {
    Scratch* prev = &pages_[cur_ ^ 1];
    if (!prev->empty()) {
      Status s = Emit(prev);
      if (!s.ok()) return s;
    }
    cur_ ^= 1;  // the full page becomes prev
    cur = &pages_[cur_];
  }
  cur->hot |= hot_;
  return Append(cur, std::string_view(h, hlen), key, value);
}

Status NodeBuilder::Emit(Scratch* s) {
  const bool leaf = this->leaf();
  uint32_t count = static_cast<uint32_t>(s->count());
  std::string_view first = KeyAt(*s, 0);
  // An internal page stores its first separator empty: the parent holds it.
  size_t image = kImageHeaderBytes + s->bytes - (leaf ? 0 : first.size());
  PageRef page;
  Status st = w_->NewImage(image, &page);
  if (!st.ok()) return st;
  const KeyOrder order = w_->order();
  const size_t prefix = PagePrefix(!order.bytewise(), leaf ? 0 : 1, count - 1,
                                   [&](uint32_t i) { return KeyAt(*s, i); });
  ImageWriter iw(page.frame()->data(), leaf ? PageType::kLeaf : PageType::kInternal, level_, count,
                 static_cast<uint32_t>(image), prefix);
  for (uint32_t i = 0; i < count; ++i) {
    const char* e = s->entry(i);
    std::string_view k = KeyAt(*s, i);
    if (leaf) {
      iw.Leaf(k, {e + kLeafEntryHeaderBytes + k.size(), DecodeFixed32(e + 2)});
    } else {
      iw.Internal(i == 0 ? std::string_view() : k, DecodeFixed64(e + 2));
    }
  }
  std::string_view sep;
  if (!emitted_) {
    sep = lower_;
  } else {
    sep = leaf ? w_->Separator(last_key_, first) : first;
  }
  // Copy before `s` is reused: sep may point into it.
  std::pmr::string sep_copy(sep, w_->mr());
  if (leaf) {
    std::string_view last = KeyAt(*s, count - 1);
    last_key_.assign(last.data(), last.size());
  }
  emitted_ = true;
  bool hot = s->hot;
  s->clear();
  return w_->AddPending(out_, sep_copy, std::move(page), static_cast<uint32_t>(image), hot);
}

Status NodeBuilder::Finish() {
  active_ = false;
  Scratch* prev = &pages_[cur_ ^ 1];
  Scratch* cur = &pages_[cur_];
  if (!prev->empty() && !cur->empty() && cur->bytes < page_bytes_ / 2) {
    // The last page is light: join the last two when they fit in one page,
    // else share their entries evenly.
    size_t n = prev->count() + cur->count();
    size_t total = prev->bytes + cur->bytes;
    bool join = kImageHeaderBytes + total <= page_bytes_;
    if (join || n >= 2 * MinEntries()) {
      Scratch& joined = joined_;
      joined.clear();
      Status s;
      for (size_t i = 0; s.ok() && i < prev->count(); ++i) {
        s = Append(&joined, {prev->entry(i), EntryLen(*prev, i)});
      }
      for (size_t i = 0; s.ok() && i < cur->count(); ++i) {
        s = Append(&joined, {cur->entry(i), EntryLen(*cur, i)});
      }
      if (!s.ok()) return s;
      joined.hot = prev->hot || cur->hot;
      prev->clear();
      cur->clear();
      if (join) return Emit(&joined);
      size_t left = 0, split = 0;
      while (split < n && left + EntryLen(joined, split) + kSlotBytes <= total / 2) {
        left += EntryLen(joined, split) + kSlotBytes;
        ++split;
      }
      split = std::clamp(split, MinEntries(), n - MinEntries());
      for (size_t j = 0; s.ok() && j < n; ++j) {
        s = Append(j < split ? prev : cur, {joined.entry(j), EntryLen(joined, j)});
      }
      if (!s.ok()) return s;
      prev->hot = cur->hot = joined.hot;
    }
  }
  Status s;
  if (!prev->empty()) s = Emit(prev);
  if (s.ok() && !cur->empty()) s = Emit(cur);
  return s;
}

std::string_view CheckpointWriter::Separator(std::string_view a, std::string_view b) {
  if (order_.bytewise()) return ShortestSeparator(a, b);
  // LevelDB's contract gives a <= s < b; a page's lower bound needs a < s
  // <= b, and no longer than b (a key's limit). Anything else the
  // comparator returns falls back to b.
  separator_.assign(a.data(), a.size());
  order_.user()->FindShortestSeparator(&separator_, b);
  if (separator_.size() <= b.size() && Less(a, separator_) && !Less(b, separator_)) {
    return separator_;
  }
  return b;
}

// ---- Settling and writing ---------------------------------------------------

Status CheckpointWriter::AddPending(ChildList* out, std::string_view sep, PageRef page,
                                    uint32_t bytes, bool hot) {
  out->items.emplace_back(mr_);
  Child& c = out->items.back();
  c.sep.assign(sep.data(), sep.size());
  c.page = std::move(page);
  c.bytes = bytes;
  c.state = ChildState::kPending;
  c.hot = hot;
  return Settle(out, false);
}

Status CheckpointWriter::AddUnchanged(ChildList* out, std::string_view sep, uint64_t address) {
  if (out->builder.active()) {
    Status s = out->builder.Finish();
    if (!s.ok()) return s;
  }
  out->items.emplace_back(mr_);
  Child& c = out->items.back();
  c.sep.assign(sep.data(), sep.size());
  c.address = address;
  c.state = ChildState::kUnchanged;
  return Status::OK();
}

Status CheckpointWriter::LoadBytes(Child* c) {
  if (c->bytes != 0) return Status::OK();
  PageRef ref;
  Status s = tree_->FetchPage(c->address, false, &ref);
  if (!s.ok()) return s;
  c->bytes = ref.bytes();
  return Status::OK();
}

// Joins items[left] and items[left+1] into one pending page when they fit.
Status CheckpointWriter::Merge(ChildList* list, size_t left, bool* merged) {
  *merged = false;
  Child& a = list->items[left];
  Child& b = list->items[left + 1];
  if (a.state == ChildState::kWritten || b.state == ChildState::kWritten) return Status::OK();
  Status s = LoadBytes(&a);
  if (s.ok()) s = LoadBytes(&b);
  if (!s.ok()) return s;
  bool leaf = list->level == 0;
  size_t image = a.bytes + b.bytes - kImageHeaderBytes + (leaf ? 0 : b.sep.size());
  if (image > page_bytes_) return Status::OK();
  PageRef ra, rb;
  if (a.state == ChildState::kPending) {
    ra = std::move(a.page);
  } else if (!(s = tree_->FetchPage(a.address, false, &ra)).ok()) {
    return s;
  }
  if (b.state == ChildState::kPending) {
    rb = std::move(b.page);
  } else if (!(s = tree_->FetchPage(b.address, false, &rb)).ok()) {
    a.page = std::move(ra);  // put a pending page back
    return s;
  }
  PageView va(ra.data()), vb(rb.data());
  if (va.level() != list->level || vb.level() != list->level) {
    return PageCorruption(tree_->path_, AddressOffset(a.address != 0 ? a.address : b.address),
                          "sibling pages on different levels");
  }
  uint32_t count = va.count() + vb.count();
  size_t want = kImageHeaderBytes;
  for (uint32_t i = 0; i < va.count(); ++i) want += EntryBytes(va, i);
  for (uint32_t i = 0; i < vb.count(); ++i) want += EntryBytes(vb, i);
  if (!leaf) want += b.sep.size();
  PageRef out;
  s = cache_->NewFrame(want, &out);
  if (!s.ok()) return s;
  // The keys of the joined page: a's, then b's, b's first being b.sep in
  // an internal page.
  auto joined_key = [&](uint32_t i) {
    if (i < va.count()) return va.key(i);
    i -= va.count();
    return !leaf && i == 0 ? std::string_view(b.sep) : vb.key(i);
  };
  const size_t prefix = PagePrefix(!order_.bytewise(), leaf ? 0 : 1, count - 1, joined_key);
  ImageWriter iw(out.frame()->data(), leaf ? PageType::kLeaf : PageType::kInternal, list->level,
                 count, static_cast<uint32_t>(want), prefix);
  for (uint32_t i = 0; i < va.count(); ++i) {
    if (leaf) {
      iw.Leaf(va.key(i), va.value(i));
    } else {
      iw.Internal(va.key(i), va.child(i));
    }
  }
  for (uint32_t i = 0; i < vb.count(); ++i) {
    if (leaf) {
      iw.Leaf(vb.key(i), vb.value(i));
    } else {
      iw.Internal(i == 0 ? std::string_view(b.sep) : vb.key(i), vb.child(i));
    }
  }
  if (a.state == ChildState::kUnchanged) result_->obsolete.push_back(a.address);
  if (b.state == ChildState::kUnchanged) result_->obsolete.push_back(b.address);
  a.page = std::move(out);
  a.bytes = static_cast<uint32_t>(want);
  a.state = ChildState::kPending;
  a.hot = a.hot || b.hot;
  a.address = 0;
  list->items.erase(list->items.begin() + static_cast<ptrdiff_t>(left + 1));
  *merged = true;
  return Status::OK();
}

Status CheckpointWriter::Settle(ChildList* list, bool final) {
  while (true) {
    size_t n = list->items.size();
    size_t j = list->done;
    // The last item waits for its right neighbour unless this is the end.
    if (j >= n || (!final && j + 1 >= n)) return Status::OK();
    Child& c = list->items[j];
    if (c.state != ChildState::kPending) {
      ++list->done;
      continue;
    }
    if (c.bytes < min_fill_) {
      bool merged = false;
      Status s;
      if (j + 1 < n) s = Merge(list, j, &merged);
      if (s.ok() && !merged && j > 0 && list->items[j - 1].state == ChildState::kUnchanged) {
        s = Merge(list, j - 1, &merged);
        if (s.ok() && merged) list->done = j - 1;
      }
      if (!s.ok()) return s;
      if (merged) continue;  // look at the joined page again
    }
    Status s = WriteChild(&list->items[j]);
    if (!s.ok()) return s;
    ++list->done;
  }
}

Status CheckpointWriter::WriteChild(Child* c) {
  uint64_t address = 0;
  Status s = WritePage(&c->page, c->bytes, c->hot, &address);
  if (!s.ok()) return s;
  c->address = address;
  c->state = ChildState::kWritten;
  return Status::OK();
}

Status CheckpointWriter::Allocate(uint64_t length, uint64_t* offset) {
  if (run_at_end_) {
    *offset = tree_->free_->ExtendEnd(length);
    return Status::OK();
  }
  if (run_next_ + length <= run_end_) {
    *offset = run_next_;
    run_next_ += length;
    return Status::OK();
  }
  ReturnRun();
  uint64_t begin = 0, end = 0;
  tree_->free_->TakeRun(length, &begin, &end, &run_at_end_);
  if (run_at_end_) {
    *offset = tree_->free_->ExtendEnd(length);
  } else {
    *offset = begin;
    run_next_ = begin + length;
    run_end_ = end;
  }
  if (*offset + length > kMaxFileOffset) return Status::IOError(tree_->path_ + ": data file full");
  return Status::OK();
}

void CheckpointWriter::ReturnRun() {
  if (!run_at_end_ && run_next_ < run_end_) tree_->free_->Add(run_next_, run_end_ - run_next_);
  run_next_ = run_end_ = 0;
}

Status CheckpointWriter::Flush() {
  if (buffer_used_ == 0) return Status::OK();
  Status s = tree_->file_->Write(batch_offset_, std::string_view(buffer_.data, buffer_used_));
  buffer_used_ = 0;
  ++result_->writes;
  return s;
}

Status CheckpointWriter::WritePage(PageRef* page, uint32_t bytes, bool cache, uint64_t* address) {
  size_t need = MaxStoredBytes(bytes) + kPageAlign;
  if (!buffer_.valid() || buffer_.size - buffer_used_ < need) {
    Status s = Flush();
    if (!s.ok()) return s;
    if (!buffer_.valid() || buffer_.size < need) {
      if (buffer_.valid()) arena_->ReleaseSegment(buffer_).IgnoreError();
      buffer_ = alloc::Segment();
      s = arena_->AllocateSegment(std::max(need, kWriteBufferBytes), &buffer_);
      // Short of memory (the memtables this checkpoint is to free have
      // eaten into its working reserve): a page at a time still gets it
      // done, in more write calls, where failing would leave the database
      // unable to free anything.
      if (s.IsMemoryLimit() && need < kWriteBufferBytes)
        s = arena_->AllocateSegment(need, &buffer_);
      if (!s.ok()) return s;
    }
  }
  char* dst = buffer_.data + buffer_used_;
  size_t length =
      EncodeStoredPage(page->data(), bytes, tree_->options_.compression, dst, kLeafBlockBytes);
  uint64_t extent = AlignUp(length);
  uint64_t offset = 0;
  Status s = Allocate(extent, &offset);
  if (!s.ok()) return s;
  written_.push_back(MakeAddress(offset, length));  // before any failure: its extent is ours
  if (buffer_used_ > 0 && offset != batch_offset_ + buffer_used_) {
    // Not contiguous with the batch: send the batch, keep this page.
    size_t before = buffer_used_;
    s = Flush();
    if (!s.ok()) return s;
    std::memmove(buffer_.data, buffer_.data + before, length);
    dst = buffer_.data;
  }
  if (buffer_used_ == 0) batch_offset_ = offset;
  SealStoredPage(dst, length, offset);
  std::memset(dst + length, 0, extent - length);
  buffer_used_ += extent;
  *address = MakeAddress(offset, length);
  result_->pages_written++;
  result_->bytes_written += length;
  // A frame cached under this address read the extent while it was free
  // (see BTree::FetchUnheld): the page written here replaces it.
  cache_->Erase(*address);
  if (!cache) {
    page->Reset();
    return Status::OK();
  }
  // The new page becomes a clean cached frame; nobody can reach it before
  // the meta switch, and it is never read back from disk.
  page->frame()->bytes = bytes;
  page->frame()->checksum = ImageChecksum(page->data(), bytes);
  cache_->Insert(*address, bytes, page);
  page->Reset();
  return Status::OK();
}

// ---- The walk ------------------------------------------------------------

Status CheckpointWriter::CheckChange() {
  std::string_view k = changes_->key();
  if (k.size() > kMaxKeyBytes) return Status::InvalidArgument("checkpoint: key too large");
  if (!changes_->is_tombstone() && changes_->value().size() > kMaxValueBytes) {
    return Status::InvalidArgument("checkpoint: value too large");
  }
  if (have_prev_key_ && !Less(prev_key_, k)) {
    return Status::InvalidArgument("checkpoint: changes not strictly sorted by key");
  }
  prev_key_.assign(k.data(), k.size());
  have_prev_key_ = true;
  return Status::OK();
}

ChildList* CheckpointWriter::ListFor(uint16_t level) {
  if (lists_.size() <= level) lists_.resize(size_t{level} + 1, nullptr);
  ChildList*& l = lists_[level];
  if (l == nullptr) {
    l = std::pmr::polymorphic_allocator<ChildList>(mr_).new_object<ChildList>(this, level, mr_);
  }
  l->items.clear();
  l->done = 0;
  return l;
}

Status CheckpointWriter::Rewrite(uint64_t address, int level, std::string_view lower,
                                 const std::string_view* upper, ChildList* out, bool* kept) {
  if (level == 0) return RewriteLeaf(address, lower, upper, out, kept);
  return RewriteInternal(address, level, lower, upper, out, kept);
}

Status CheckpointWriter::RewriteLeaf(uint64_t address, std::string_view lower,
                                     const std::string_view* upper, ChildList* out, bool* kept) {
  *kept = true;
  PageRef ref;
  PageView v;
  uint32_t n = 0;
  Status s;
  bool hot = false;
  if (address != 0) {
    // A leaf not in the cache is read into a private frame, not cached: the
    // checkpoint's own reads say nothing about what readers use.
    hot = cache_->Lookup(address, &ref);
    if (!hot) s = tree_->ReadPage(address, &ref);
    if (!s.ok()) return s;
    v = PageView(ref.data());
    if (!v.is_leaf())
      return PageCorruption(tree_->path_, AddressOffset(address), "expected a leaf");
    n = v.count();
  }
  // Tombstones of absent keys change nothing: skip them, and keep the page if
  // that is all the batch has for it.
  bool pending = false;  // the current change passed CheckChange and modifies the page
  while (InRange(upper)) {
    s = CheckChange();
    if (!s.ok()) return s;
    if (!changes_->is_tombstone()) {
      pending = true;
      break;
    }
    uint32_t at = n == 0 ? 0 : v.LowerBound(changes_->key(), order_);
    if (at < n && order_.Equal(v.key(at), changes_->key())) {
      pending = true;
      break;
    }
    changes_->Next();
  }
  if (!pending && n != 0 && EraseMeets(lower, upper)) {
    const uint32_t at = v.LowerBound(erase_->begin, order_);
    pending = at < n && Less(v.key(at), erase_->end);
  }
  if (!pending) {
    if (address != 0) return AddUnchanged(out, lower, address);
    return Status::OK();
  }
  *kept = false;
  NodeBuilder& b = out->builder;
  if (!b.active()) b.Start(lower);
  b.SetHot(hot);
  uint32_t i = 0;
  for (bool first = true; InRange(upper); first = false) {
    if (!first) {
      s = CheckChange();
      if (!s.ok()) return s;
    }
    std::string_view k = changes_->key();
    for (; i < n && Less(v.key(i), k); ++i) {
      s = KeepEntry(&b, v, i);
      if (!s.ok()) return s;
    }
    bool exists = i < n && order_.Equal(v.key(i), k);
    if (exists) ++i;
    if (changes_->is_tombstone()) {
      if (exists) --key_delta_;
    } else {
      s = b.AddLeaf(k, changes_->value());
      if (!s.ok()) return s;
      if (!exists) ++key_delta_;
    }
    changes_->Next();
  }
  for (; i < n; ++i) {
    s = KeepEntry(&b, v, i);
    if (!s.ok()) return s;
  }
  if (address != 0) {
    result_->obsolete.push_back(address);
    // Its entries are in the new tree now: drop the old image from the cache
    // rather than hold two copies of every rewritten leaf until the release.
    // A reader of an older root that still wants it reads it back from disk.
    ref.Reset();
    if (hot) cache_->Erase(address);
  }
  return Status::OK();
}

Status CheckpointWriter::KeepEntry(NodeBuilder* b, const PageView& v, uint32_t i) {
  const std::string_view k = v.key(i);
  if (erase_ != nullptr && erase_->Contains(k, order_)) {
    --key_delta_;
    return Status::OK();
  }
  return b->AddLeaf(k, v.value(i));
}

Status CheckpointWriter::DropSubtree(uint64_t address, int level) {
  if (level == 0) {
    uint32_t count = 0;
    Status s = tree_->LeafEntryCount(address, &count);
    if (!s.ok()) return s;
    key_delta_ -= count;
  } else {
    PageRef ref;
    Status s = tree_->FetchPage(address, false, &ref, /*fill=*/false);
    if (!s.ok()) return s;
    PageView v(ref.data());
    if (v.level() != level) {
      return PageCorruption(tree_->path_, AddressOffset(address), "unexpected page level");
    }
    for (uint32_t i = 0; i < v.count(); ++i) {
      s = DropSubtree(v.child(i), level - 1);
      if (!s.ok()) return s;
    }
  }
  result_->obsolete.push_back(address);
  return Status::OK();
}

Status CheckpointWriter::RewriteInternal(uint64_t address, int level, std::string_view lower,
                                         const std::string_view* upper, ChildList* out,
                                         bool* kept) {
  *kept = true;
  PageRef ref;
  Status s = tree_->FetchPage(address, false, &ref);
  if (!s.ok()) return s;
  PageView v(ref.data());
  if (v.level() != level) {
    return PageCorruption(tree_->path_, AddressOffset(address), "unexpected page level");
  }
  ChildList& children = *ListFor(static_cast<uint16_t>(level - 1));
  bool changed = false;
  uint32_t n = v.count();
  for (uint32_t i = 0; i < n; ++i) {
    std::string_view child_lower = i == 0 ? lower : v.key(i);
    std::string_view next_key;
    const std::string_view* child_upper = upper;
    if (i + 1 < n) {
      next_key = v.key(i + 1);
      child_upper = &next_key;
    }
    uint64_t child = v.child(i);
    if (EraseCovers(child_lower, child_upper)) {
      s = DropSubtree(child, level - 1);
      changed = true;
    } else if (!InRange(child_upper) && !EraseMeets(child_lower, child_upper)) {
      s = AddUnchanged(&children, child_lower, child);
    } else {
      bool child_kept = true;
      s = Rewrite(child, level - 1, child_lower, child_upper, &children, &child_kept);
      if (!child_kept) changed = true;
    }
    if (s.ok()) s = Settle(&children, false);
    if (!s.ok()) return s;
  }
  if (!changed) return AddUnchanged(out, lower, address);
  *kept = false;
  if (children.builder.active()) s = children.builder.Finish();
  if (s.ok()) s = Settle(&children, true);
  if (!s.ok()) return s;
  result_->obsolete.push_back(address);
  if (children.items.empty()) return Status::OK();  // every key below it was deleted
  NodeBuilder& b = out->builder;
  if (!b.active()) b.Start(lower);
  for (const Child& c : children.items) {
    s = b.AddChild(c.sep, c.address);
    if (!s.ok()) return s;
  }
  return Status::OK();
}

Status CheckpointWriter::BuildLevelAbove(ChildList* list, ChildList* above) {
  Status s = Settle(list, true);
  if (!s.ok()) return s;
  NodeBuilder& b = above->builder;
  b.Start({});
  for (const Child& c : list->items) {
    s = b.AddChild(c.sep, c.address);
    if (!s.ok()) return s;
  }
  return b.Finish();
}

// Three phases: the changes rewrite the pages they touch, bottom up (the
// top of the tree is then shaped into one root), the new pages reach the
// disk, and the meta block that names the new root makes them the tree.
Status CheckpointWriter::Run(InternalIterator* changes, uint64_t last_sequence, uint64_t wal_number,
                             const EraseRange* erase, CheckpointResult* result) {
  result_ = result;
  std::optional<OutsideRange> outside;
  if (erase != nullptr && Less(erase->begin, erase->end)) {
    erase_ = erase;
    changes = &outside.emplace(changes, *erase, order_);
  }
  changes_ = changes;
  const MetaState old = tree_->meta();
  uint64_t new_root = 0;
  Status s = RewriteTree(old.root, &new_root);
  if (s.ok()) s = Flush();
  ReturnRun();
  if (s.ok()) s = tree_->file_->Sync();
  if (!s.ok()) return s;
  return CommitMeta(old, new_root, last_sequence, wal_number);
}

Status CheckpointWriter::RewriteTree(uint64_t old_root, uint64_t* new_root) {
  int root_level = 0;
  Status s;
  if (old_root != 0) {
    PageRef ref;
    s = tree_->FetchPage(old_root, false, &ref);
    if (!s.ok()) return s;
    root_level = PageView(ref.data()).level();
  }
  changes_->SeekToFirst();
  ChildList top(this, static_cast<uint16_t>(root_level), mr_);
  bool kept = true;
  s = Rewrite(old_root, root_level, {}, nullptr, &top, &kept);
  if (s.ok() && top.builder.active()) s = top.builder.Finish();
  if (!s.ok()) return s;
  if (!changes_->status().ok()) return changes_->status();
  return ShapeTop(&top, new_root);
}

// Grows levels while the top holds several pages, and lets an internal root
// with a single child give way to it; *root stays 0 for an empty tree.
Status CheckpointWriter::ShapeTop(ChildList* top, uint64_t* root) {
  Status s;
  while (!top->items.empty()) {
    if (top->items.size() > 1) {
      ChildList above(this, static_cast<uint16_t>(top->level + 1), mr_);
      s = BuildLevelAbove(top, &above);
      if (!s.ok()) return s;
      top->items.swap(above.items);
      top->level = above.level;
      top->done = 0;
      continue;
    }
    Child& c = top->items[0];
    if (top->level > 0) {
      PageRef ref;
      if (c.state == ChildState::kPending) {
        ref = std::move(c.page);
      } else {
        s = tree_->FetchPage(c.address, false, &ref);
        if (!s.ok()) return s;
      }
      PageView v(ref.data());
      if (v.is_leaf() || v.level() != top->level) {
        return PageCorruption(tree_->path_, AddressOffset(c.address), "root on the wrong level");
      }
      if (v.count() == 1) {
        if (c.state == ChildState::kUnchanged) result_->obsolete.push_back(c.address);
        if (c.state == ChildState::kWritten) abandoned_.push_back(c.address);
        uint64_t child = v.child(0);
        bool ours = std::find(written_.begin(), written_.end(), child) != written_.end();
        c.page.Reset();
        c.address = child;
        c.bytes = 0;
        c.state = ours ? ChildState::kWritten : ChildState::kUnchanged;
        top->level--;
        continue;
      }
      if (c.state == ChildState::kPending) c.page = std::move(ref);
    }
    s = Settle(top, true);
    if (!s.ok()) return s;
    *root = top->items[0].address;
    break;
  }
  return Status::OK();
}

// Writes the meta block naming the new root and, once it is durable, makes
// it the tree's and frees what the checkpoint no longer needs.
Status CheckpointWriter::CommitMeta(const MetaState& old, uint64_t new_root, uint64_t last_sequence,
                                    uint64_t wal_number) {
  MetaState m;
  m.checkpoint_id = old.checkpoint_id + 1;
  m.root = new_root;
  m.last_sequence = last_sequence;
  m.wal_number = wal_number;
  m.file_bytes = tree_->free_->file_end();
  m.key_count = static_cast<uint64_t>(static_cast<int64_t>(old.key_count) + key_delta_);
  char block[kBlockBytes];
  EncodeMetaBlock(m, tree_->options_.comparator, block);
  Status s =
      tree_->file_->Write(kMetaOffsets[m.checkpoint_id % 2], std::string_view(block, kBlockBytes));
  if (s.ok()) s = tree_->file_->Sync();
  if (!s.ok()) {
    Abort(/*quarantine=*/true);
    written_.clear();
    return s;
  }
  // Durable. Extents held back after an earlier failed meta write are free now.
  std::vector<std::pair<uint64_t, uint64_t>> quarantined;
  {
    port::MutexLock l(&tree_->mu_);
    tree_->meta_ = m;
    quarantined.swap(tree_->quarantine_);
  }
  for (const auto& [off, len] : quarantined) tree_->free_->Add(off, len);
  for (uint64_t a : abandoned_) {
    cache_->Erase(a);
    tree_->free_->Add(AddressOffset(a), AddressExtent(a));
  }
  written_.clear();
  // By offset: ReleasePages finds the runs of contiguous pages in one pass.
  std::sort(result_->obsolete.begin(), result_->obsolete.end());
  result_->meta = m;
  return Status::OK();
}

void CheckpointWriter::Abort(bool quarantine) {
  buffer_used_ = 0;
  ReturnRun();
  for (uint64_t a : written_) {
    cache_->Erase(a);
    if (quarantine) {
      port::MutexLock l(&tree_->mu_);
      tree_->quarantine_.emplace_back(AddressOffset(a), AddressExtent(a));
    } else {
      tree_->free_->Add(AddressOffset(a), AddressExtent(a));
    }
  }
  written_.clear();
}

Status BTree::Checkpoint(InternalIterator* changes, uint64_t last_sequence, uint64_t wal_number,
                         CheckpointResult* result, const EraseRange* erase) {
  result->meta = MetaState();
  result->obsolete.clear();
  result->pages_written = result->bytes_written = result->writes = 0;
  Status s = CheckOpen();
  if (!s.ok()) return s;
  if (options_.read_only) return Status::NotSupported(path_ + " is open read-only");
  port::MutexLock checkpoint_lock(&checkpoint_mu_);
  if (closed_.load(std::memory_order_acquire)) return Status::Closed(path_ + ": tree is closed");
  // Pages are written from here on (see FetchUnheld).
  ExtentsChanging(+1);
  struct Done {
    BTree* tree;
    ~Done() { tree->ExtentsChanging(-1); }
  } done{this};
  std::unique_ptr<alloc::Arena> scratch;
  s = tree_arena_->NewChild({.name = "checkpoint"}, &scratch);
  if (!s.ok()) return s;
  {
    // Small blocks only: the pool takes larger ones from the arena, which
    // frees nothing before it closes, so everything that grows with a page
    // lives in segments (SegmentBuffer) or in lists reused level by level.
    alloc::RecyclingResource pool(scratch.get());
    CheckpointWriter w(this, &pool, scratch.get());
    try {
      s = w.Run(changes, last_sequence, wal_number, erase, result);
    } catch (const std::bad_alloc&) {
      s = Status::MemoryLimit(path_ + ": out of memory during checkpoint");
    }
    if (!s.ok()) {
      try {
        w.Abort(/*quarantine=*/false);
      } catch (const std::bad_alloc&) {
        // Free space lost until the next open; the file stays consistent.
      }
      result->obsolete.clear();
    }
  }
  scratch->Close();
  return s;
}

}  // namespace arenakv::tree
