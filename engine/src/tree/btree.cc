// BTree: open/recovery of the data file, the read path, iterators, release of
// obsolete pages and verification. Checkpoints live in checkpoint.cc.
#include "tree/btree.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <memory_resource>
#include <new>
#include <optional>

#include "arenakv/alloc/recycling_resource.h"
#include "tree/leaf_digest.h"
#include "tree/leaf_head_table.h"
#include "tree/page_format.h"
#include "tree/read_epoch.h"
#include "util/sync_point.h"

namespace arenakv::tree {

namespace {
// Released runs shorter than this keep their blocks: they are reused soon,
// and a syscall per page would cost more than the space.
constexpr uint64_t kMinPunchBytes = 256 * 1024;
constexpr uint64_t kPunchAlign = 4096;  // file system block
// The first block of the tree's, the cache's and the open scan's arenas: a
// thousand idle databases each keep their tree's free space and their
// cache's frame structs, a few hundred bytes when the tree is small, and a
// 64 KiB first block apiece was 128 KiB of the budget an idle database with
// data held. Each next block doubles, as in every arena.
constexpr size_t kSmallFirstBlock = 4 << 10;
// The open's scan of a tree of a few hundred leaves (its extents, its
// stack and one page image of the default 16 KiB) needs no more.
constexpr size_t kOpenScanStackBytes = 24 << 10;
}  // namespace

namespace {

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

BTree::BTree(Env* env, const std::string& path, const TreeOptions& options)
    : env_(env), path_(path), options_(options) {}

BTree::~BTree() { Close().IgnoreError(); }

Status BTree::Open(Env* env, const std::string& path, bool create_if_missing,
                   const TreeOptions& options, alloc::Arena* db_arena,
                   std::unique_ptr<BTree>* tree) {
  if (options.page_bytes < 1024 || options.page_bytes > (size_t{1} << 20)) {
    return Status::InvalidArgument("page_bytes must be between 1 KiB and 1 MiB");
  }
  if (env == nullptr || db_arena == nullptr) {
    return Status::InvalidArgument("BTree::Open needs an Env and an arena");
  }
  std::unique_ptr<BTree> t(new (db_arena->pool()->object_heap()) BTree(env, path, options));
  Status s;
  try {
    s = t->OpenFile(create_if_missing, db_arena);
  } catch (const std::bad_alloc&) {
    s = Status::MemoryLimit(path + ": out of memory while opening");
  }
  if (!s.ok()) {
    t->Close().IgnoreError();
    return s;
  }
  *tree = std::move(t);
  return Status::OK();
}

Status BTree::OpenFile(bool create_if_missing, alloc::Arena* db_arena) {
  Status s = db_arena->NewChild(
      {.name = "tree", .kind = alloc::ArenaKind::kShared, .first_block_bytes = kSmallFirstBlock},
      &tree_arena_);
  if (s.ok()) {
    // Page images are whole segments, filled and read at random: huge pages.
    s = db_arena->NewChild({.name = "cache",
                            .kind = alloc::ArenaKind::kShared,
                            .first_block_bytes = kSmallFirstBlock,
                            .huge_pages = true},
                           &cache_arena_);
  }
  if (s.ok()) s = PageCache::Create(cache_arena_.get(), options_.cache_bytes, &cache_);
  if (!s.ok()) return s;
  free_ = std::make_unique<FreeSpace>(tree_arena_.get());

  bool exists = env_->FileExists(path_);
  if (options_.read_only) create_if_missing = false;
  if (!exists && !create_if_missing) return Status::NotFound(path_ + ": data file does not exist");
  if (!exists) {
    s = CreateDataFile();
    if (!s.ok()) return s;
    exists = true;
  }
  const OpenMode mode = options_.read_only  ? OpenMode::kReadOnly
                        : create_if_missing ? OpenMode::kCreate
                                            : OpenMode::kReadWrite;
  s = env_->OpenFile(path_, mode, &file_);
  if (!s.ok()) return s;
  uint64_t size = 0;
  s = file_->Size(&size);
  if (!s.ok()) return s;

  std::array<char, kDataStart> head{};
  if (size == 0 && create_if_missing) {
    // Left empty by a build that created the file in place: started anew.
    EncodeNewFileHead(head.data());
    s = file_->Write(0, std::string_view(head.data(), head.size()));
    if (s.ok()) s = file_->Sync();
    if (!s.ok()) return s;
  }
  size_t got = 0;
  s = file_->Read(0, head.size(), head.data(), &got);
  if (!s.ok()) return s;
  // A short file or a foreign magic is InvalidArgument (kNotADataFile) there.
  s = DecodeHeaderBlock(std::string_view(head.data(), std::min<size_t>(got, kBlockBytes)), path_);
  if (!s.ok()) return s;
  if (got < kDataStart)
    return Status::Corruption(path_ + ": file truncated inside its meta blocks");

  MetaState metas[2];
  std::string orders[2];
  Status ms[2];
  for (int slot = 0; slot < 2; ++slot) {
    ms[slot] = DecodeMetaBlock(std::string_view(head.data() + kMetaOffsets[slot], kBlockBytes),
                               slot, path_, &metas[slot], &orders[slot]);
    if (ms[slot].IsNotSupported()) return ms[slot];
  }
  int best = -1;
  for (int slot = 0; slot < 2; ++slot) {
    if (ms[slot].ok() && (best < 0 || metas[slot].checkpoint_id > metas[best].checkpoint_id)) {
      best = slot;
    }
  }
  if (best < 0) {
    return Status::Corruption(path_ + ": no valid meta block (" + ms[0].message() + "; " +
                              ms[1].message() + ")");
  }
  s = CheckKeyOrder(orders[best]);
  if (!s.ok()) return s;
  {
    port::MutexLock l(&mu_);
    meta_ = metas[best];
  }
  if (options_.map_reads) {
    map_ = std::make_unique<ReadMap>(file_.get(), options_.cache_bytes, options_.map_budget);
  }
  if (options_.read_only) {
    CoverFile();
    return Status::OK();
  }
  const uint64_t id = metas[best].checkpoint_id;
  const bool older_reader = options_.lowest_reader && options_.lowest_reader(id) < id;
  s = RebuildFreeSpace(metas[best].root, older_reader);
  if (s.ok()) CoverFile();
  return s;
}

void BTree::CoverFile() {
  uint64_t size = 0;
  if (map_ != nullptr && file_->Size(&size).ok()) map_->Cover(size);
}

// Header, meta 0 (the empty tree), meta 1 blank (invalid).
void BTree::EncodeNewFileHead(char* head) const {
  std::memset(head, 0, kDataStart);
  EncodeHeaderBlock(static_cast<uint32_t>(options_.page_bytes),
                    FormatVersionFor(options_.comparator), head);
  MetaState m;
  m.file_bytes = kDataStart;
  EncodeMetaBlock(m, options_.comparator, head + kMetaOffsets[0]);
}

// A new data file appears whole or not at all: written under a temporary
// name, synced, renamed into place, and the directory synced. Written in
// place, a power cut could leave the header without its meta blocks, which
// an open must take for damage (a file is never shorter than both once it
// exists); now it leaves at most the temporary, which the next creation
// overwrites.
Status BTree::CreateDataFile() {
  const std::string tmp = path_ + kNewDataFileSuffix;
  std::unique_ptr<File> f;
  Status s = env_->OpenFile(tmp, OpenMode::kCreateTruncate, &f);
  if (!s.ok()) return s;
  std::array<char, kDataStart> head{};
  EncodeNewFileHead(head.data());
  s = f->Write(0, std::string_view(head.data(), head.size()));
  if (s.ok()) s = f->Sync();
  Status c = f->Close();
  if (s.ok()) s = c;
  if (s.ok()) s = env_->RenameFile(tmp, path_);
  if (!s.ok()) {
    env_->DeleteFile(tmp).IgnoreError();
    return s;
  }
  return env_->SyncDir(DirName(path_));
}

Status BTree::CheckKeyOrder(const std::string& recorded) const {
  if (recorded == options_.comparator) return Status::OK();
  return KeyOrderMismatch(path_, recorded, options_.comparator);
}

Status BTree::RebuildFreeSpace(uint64_t root, bool append_only) {
  // Every byte after the fixed blocks not covered by a page of the durable
  // tree is free. Leaf extents are known from their parents' addresses, so
  // only internal pages are read, and not into the cache: a thousand idle
  // databases would each keep their root there (a page and the cache's
  // first frame structs, 16 KiB of the budget), where a first read fetches
  // it again for a few microseconds.
  std::unique_ptr<alloc::Arena> scratch;
  Status s =
      tree_arena_->NewChild({.name = "open-scan", .first_block_bytes = kSmallFirstBlock}, &scratch);
  if (!s.ok()) return s;
  // A small tree's scan fits on the stack; a large one's goes on in the
  // arena, whose blocks the pool would otherwise keep as its reserve.
  alignas(16) std::array<char, kOpenScanStackBytes> local;
  std::pmr::monotonic_buffer_resource mem(local.data(), local.size(), scratch.get());
  std::pmr::vector<std::pair<uint64_t, uint64_t>> extents(&mem);
  struct Item {
    uint64_t address;
    int level;
  };
  std::pmr::vector<Item> stack(&mem);
  std::pmr::vector<char> image(&mem);
  if (root != 0) stack.push_back({root, -1});
  while (!stack.empty()) {
    Item it = stack.back();
    stack.pop_back();
    extents.emplace_back(AddressOffset(it.address), AddressExtent(it.address));
    if (it.level == 0) continue;
    s = ReadPageUncached(it.address, &image);
    if (!s.ok()) return s;
    PageView v(image.data());
    if (it.level > 0 && v.level() != it.level) {
      return PageCorruption(path_, AddressOffset(it.address), "unexpected page level");
    }
    if (v.is_leaf()) continue;
    for (uint32_t i = 0; i < v.count(); ++i) {
      stack.push_back({v.child(i), v.level() - 1});
    }
  }
  std::sort(extents.begin(), extents.end());
  uint64_t pos = kDataStart;
  std::pmr::vector<std::pair<uint64_t, uint64_t>> gaps(&mem);
  for (const auto& [off, len] : extents) {
    if (off < pos) {
      return PageCorruption(path_, off, "page overlaps another page or the file header");
    }
    if (off > pos) gaps.emplace_back(pos, off - pos);
    pos = off + len;
  }
  if (append_only) {
    uint64_t size = 0;
    s = file_->Size(&size);
    if (!s.ok()) return s;
    free_->Reset(std::max(pos, (size + kPageAlign - 1) & ~(kPageAlign - 1)));
    return Status::OK();
  }
  free_->Reset(pos);
  for (const auto& [off, len] : gaps) free_->Add(off, len);
  return Status::OK();
}

Status BTree::CheckOpen() const {
  if (closed_.load(std::memory_order_acquire)) return Status::Closed(path_ + ": tree is closed");
  return Status::OK();
}

MetaState BTree::meta() const {
  port::MutexLock l(&mu_);
  return meta_;
}

// A checksum proves the bytes are what was written, not that a tree could
// have written them. Every walk relies on these: a leaf at level 0, an
// internal page above it, and at least one entry (an empty page would have
// it read entry count-1, that is entry 0xFFFFFFFF).
Status BTree::CheckPageShape(const PageView& v, uint64_t offset) const {
  if (v.type() != PageType::kLeaf && v.type() != PageType::kInternal) {
    return PageCorruption(path_, offset, "unknown page type");
  }
  if (v.is_leaf() != (v.level() == 0)) {
    return PageCorruption(path_, offset,
                          "page type and level disagree (level " + std::to_string(v.level()) + ")");
  }
  if (v.count() == 0) return PageCorruption(path_, offset, "empty page");
  return Status::OK();
}

Status BTree::CheckAddress(uint64_t address) const {
  uint64_t offset = AddressOffset(address);
  uint32_t length = AddressLength(address);
  if (offset < kDataStart || length < kStoredHeaderBytes + kImageHeaderBytes ||
      length > MaxStoredBytes(kMaxImageBytes)) {
    return PageCorruption(path_, offset, "bad page address " + std::to_string(address));
  }
  return Status::OK();
}

Status BTree::ReadStored(uint64_t address, char* dst, size_t* image_bytes) {
  const uint64_t offset = AddressOffset(address);
  const uint32_t length = AddressLength(address);
  Status s = ReadBytes(offset, length, dst);
  if (s.ok())
    s = ParseStoredPage(std::string_view(dst, length), offset, true, path_, image_bytes,
                        options_.order);
  return StateAfterRead(std::move(s));
}

Status BTree::StateAfterRead(Status s) {
  // Whatever the read found, a failure included, it says nothing of this
  // tree if the writer has moved on meanwhile, unless the writer keeps this
  // state's pages.
  if (options_.read_only && !state_held_.load(std::memory_order_acquire)) {
    Status current = CheckStateCurrent();
    if (!current.ok()) return current;
  }
  return s;
}

// A read-only tree beside a writer in another process: the pages of the
// state it opened stay as they were until the writer's next checkpoint
// commits; only after that may the writer punch them out or write other
// pages into them (a checkpoint writes its pages before its meta block).
// So a page read before the meta blocks still name this state's checkpoint
// is this state's page; otherwise it may be anything, and the read fails
// with Busy rather than return a page of another tree.
Status BTree::CheckStateCurrent() {
  std::array<char, kDataStart - kMetaOffsets[0]> blocks{};
  size_t got = 0;
  Status s = file_->Read(kMetaOffsets[0], blocks.size(), blocks.data(), &got);
  if (!s.ok()) return s;
  const uint64_t ours = meta().checkpoint_id;
  uint64_t newest = 0;
  bool any = false;
  for (int slot = 0; slot < 2 && got == blocks.size(); ++slot) {
    MetaState m;
    const std::string_view block(blocks.data() + (kMetaOffsets[slot] - kMetaOffsets[0]),
                                 kBlockBytes);
    if (DecodeMetaBlock(block, slot, path_, &m).ok()) {
      newest = std::max(newest, m.checkpoint_id);
      any = true;
    }
  }
  if (any && newest == ours) return Status::OK();
  return Status::Busy(path_ +
                      ": its writer has checkpointed since this read-only open (checkpoint " +
                      std::to_string(ours) + " then, " + (any ? std::to_string(newest) : "?") +
                      " now): reopen to read the newer state");
}

Status BTree::DecodeChecked(std::string_view stored, uint64_t offset, char* image,
                            size_t image_bytes) const {
  Status s = DecodeStoredPage(stored, offset, path_, image, image_bytes, options_.order);
  if (s.ok()) s = CheckPageShape(PageView(image), offset);
  return s;
}

Status BTree::DecodeStored(uint64_t address, std::string_view stored, size_t image_bytes,
                           bool for_cache, PageRef* ref) {
  const uint64_t offset = AddressOffset(address);
  Status s = cache_->NewFrame(image_bytes, ref);
  if (!s.ok()) return s;
  s = DecodeChecked(stored, offset, ref->frame()->data(), image_bytes);
  if (!s.ok()) {
    ref->Reset();
    return s;
  }
  ref->frame()->bytes = static_cast<uint32_t>(image_bytes);
  ref->frame()->entries.store(PageView(ref->frame()->data()).count(), std::memory_order_relaxed);
  if (for_cache) ref->frame()->checksum = ImageChecksum(ref->frame()->data(), image_bytes);
  return Status::OK();
}

namespace {

// Room on the stack for the transient bytes of a read: a stored 16 KiB page
// and, for a point read's miss, one of its blocks. A frame from the cache
// would evict a cached page to make room for bytes dropped a microsecond
// later (and, being other memory each time, costs the read's copy more
// cache misses: a scan of uncached leaves runs 2% faster this way). Larger
// pages and blocks (big values) take a frame.
constexpr size_t kStackStoredBytes = 16 << 10;
constexpr size_t kStackBlockBytes = 8 << 10;
// A leaf of the default size decoded for one read it was not cached for.
constexpr size_t kStackImageBytes = 16 << 10;

}  // namespace

struct BTree::StoredRead {
  alignas(16) char stack[kStackStoredBytes];
  PageRef frame;  // holds the bytes when they do not fit `stack`
  std::string_view stored;
  size_t image_bytes = 0;
};

Status BTree::ReadStoredPage(uint64_t address, StoredRead* r) {
  Status s = CheckAddress(address);
  if (!s.ok()) return s;
  const uint32_t length = AddressLength(address);
  char* buf = r->stack;
  if (length > sizeof(r->stack)) {
    s = cache_->NewFrame(length, &r->frame);
    if (!s.ok()) return s;
    buf = r->frame.frame()->data();
  }
  s = ReadStored(address, buf, &r->image_bytes);
  if (s.ok()) r->stored = std::string_view(buf, length);
  return s;
}

Status BTree::ReadPage(uint64_t address, PageRef* ref, bool for_cache) {
  StoredRead r;
  Status s = ReadStoredPage(address, &r);
  if (!s.ok()) return s;
  return DecodeStored(address, r.stored, r.image_bytes, for_cache, ref);
}

Status BTree::ReadPageUncached(uint64_t address, std::pmr::vector<char>* image) {
  StoredRead r;
  Status s = ReadStoredPage(address, &r);
  if (!s.ok()) return s;
  const uint64_t offset = AddressOffset(address);
  image->resize(r.image_bytes);
  return DecodeChecked(r.stored, offset, image->data(), r.image_bytes);
}

Status BTree::LeafEntryCount(uint64_t address, uint32_t* count) {
  PageRef ref;
  if (cache_->Lookup(address, &ref)) {
    PageView v(ref.data());
    if (!v.is_leaf()) return PageCorruption(path_, AddressOffset(address), "expected a leaf");
    *count = v.count();
    return Status::OK();
  }
  StoredRead r;
  Status s = ReadStoredPage(address, &r);
  if (!s.ok()) return s;
  if (!IsStoredLeaf(r.stored)) {
    return PageCorruption(path_, AddressOffset(address), "expected a leaf");
  }
  *count = StoredEntryCount(r.stored);
  return Status::OK();
}

Status BTree::ReadBytes(uint64_t offset, size_t n, char* dst) {
  if (map_ != nullptr && map_->Read(offset, n, dst)) return Status::OK();
  size_t got = 0;
  Status s = file_->Read(offset, n, dst, &got);
  if (s.ok() && got != n)
    s = PageCorruption(path_, offset, "page extends past the end of the file");
  return s;
}

Status BTree::SearchBlock(const LeafBlock& block, uint64_t offset, std::string_view key,
                          std::string* value, bool* found) {
  alignas(16) char stack_block[kStackBlockBytes];
  PageRef scratch;
  char* out = stack_block;
  if (block.raw_bytes > sizeof(stack_block)) {
    Status s = cache_->NewFrame(block.raw_bytes, &scratch);
    if (!s.ok()) return s;
    out = scratch.frame()->data();
  }
  std::string_view v;
  Status s = SearchLeafBlock(block, out, offset, path_, key, &v, found, options_.order);
  if (s.ok() && *found) value->assign(v.data(), v.size());
  cache_->AddBlockRead();
  return s;
}

Status BTree::ReadLeafHead(uint64_t address, StoredRead* r, size_t* head_bytes, char* digest,
                           size_t* digest_bytes, const uint64_t* unheld_generation) {
  *head_bytes = 0;
  *digest_bytes = 0;
  const uint64_t offset = AddressOffset(address);
  const uint32_t length = AddressLength(address);
  Status s = ReadBytes(offset, kStoredHeadBytes, r->stack);
  bool usable = false;
  if (s.ok()) {
    s = ParseStoredHead(std::string_view(r->stack, kStoredHeadBytes), length, offset, path_,
                        &usable);
  }
  if (!s.ok() || !usable) return s;
  *head_bytes = kStoredHeadBytes;
  TEST_SYNC_POINT("BTree::ReadLeafHead:Read");
  s = EncodeLeafDigest(std::string_view(r->stack, length), offset, path_, options_.order, digest,
                       LeafHeadTable::kMaxHeadBytes, digest_bytes);
  if (!s.ok() || *digest_bytes == 0) return s;
  if (!cache_->MakeLeafHeadTable(live_bytes())) return s;  // before extent_mu_: it allocates
  const std::string_view kept(digest, *digest_bytes);
  if (unheld_generation == nullptr) {
    cache_->KeepLeafHead(address, kept);
  } else {
    // As for a leaf read whole (GetFromDisk): not if the extent may have
    // been freed since, or the digest would outlive its page.
    port::MutexLock l(&extent_mu_);
    if (extent_generation_.load(std::memory_order_relaxed) == *unheld_generation) {
      cache_->KeepLeafHead(address, kept);
    }
  }
  return s;
}

// The block `where` of the leaf at `address` (its other fields in *block),
// searched for key. Its bytes come from the first `have` bytes of the page
// in r->stack when they hold it, else from the mapped file in place, else
// from a read.
Status BTree::SearchStoredBlock(uint64_t address, const DigestBlock& where, size_t have,
                                LeafBlock* block, StoredRead* r, std::string_view key,
                                std::string* value, bool* found) {
  const uint64_t offset = AddressOffset(address);
  const size_t end = size_t{where.lz4_offset} + where.lz4_bytes;
  if (end > AddressLength(address)) return PageCorruption(path_, offset, "block out of bounds");
  const uint64_t at = offset + where.lz4_offset;
  const char* bytes = end <= have ? r->stack + where.lz4_offset : nullptr;
  if (bytes == nullptr && map_ != nullptr) bytes = map_->View(at, where.lz4_bytes);
  Status s;
  if (bytes == nullptr) {
    s = ReadBytes(at, where.lz4_bytes, r->stack);  // the leaf fits the stack (GetFromDisk)
    bytes = r->stack;
  }
  s = StateAfterRead(std::move(s));
  if (!s.ok()) return s;
  block->lz4 = std::string_view(bytes, where.lz4_bytes);
  return SearchBlock(*block, offset, key, value, found);
}

// A leaf the cache does not admit, stored in blocks with block checksums:
// the block that may hold the key (a sixteenth of a leaf of 100-byte
// values), found through the leaf's digest: the one the cache keeps, else
// one made from the leaf's head, read first. *done is false when the page
// is not of that kind (or its index is longer than the head): then it is
// read whole.
Status BTree::GetFromBlock(uint64_t address, std::string_view key, std::string* value, bool* found,
                           StoredRead* r, bool* done, const uint64_t* unheld_generation) {
  *done = false;
  alignas(8) char digest[LeafHeadTable::kMaxHeadBytes];
  size_t digest_bytes = 0, head_bytes = 0;
  LeafBlock block;
  bool in_range = false;
  DigestBlock where;
  auto locate = [&] {
    return LocateInDigest(std::string_view(digest, digest_bytes), key, options_.order, &block,
                          &where, &in_range);
  };
  Status s;
  bool located = cache_->FindLeafHead(address, digest, &digest_bytes) && locate();
  if (!located) {
    s = ReadLeafHead(address, r, &head_bytes, digest, &digest_bytes, unheld_generation);
    if (s.ok() && head_bytes == 0) return s;  // read whole instead (ReadStored)
    located = s.ok() && digest_bytes > 0 && locate();
  }
  *done = true;
  if (located) {
    if (!in_range) return Status::OK();
    return SearchStoredBlock(address, where, head_bytes, &block, r, key, value, found);
  }
  // A head without a digest (an older index, or too long for one).
  const uint64_t offset = AddressOffset(address);
  if (s.ok()) {
    s = LocateLeafBlock(std::string_view(r->stack, AddressLength(address)), offset, path_, key,
                        &block, &in_range, options_.order);
  }
  if (s.ok() && in_range) {
    const size_t at = static_cast<size_t>(block.lz4.data() - r->stack);
    if (at + block.lz4.size() > head_bytes) {
      // The block's bytes before the head's end are already there.
      const size_t from = std::max(at, head_bytes);
      s = ReadBytes(offset + from, at + block.lz4.size() - from, r->stack + from);
    }
  }
  s = StateAfterRead(std::move(s));
  if (!s.ok() || !in_range) return s;
  return SearchBlock(block, offset, key, value, found);
}

Status BTree::GetFromDisk(uint64_t address, std::string_view key, std::string* value, bool* found,
                          const uint64_t* unheld_generation) {
  Status s = CheckAddress(address);
  if (!s.ok()) return s;
  StoredRead r;
  // Whether a leaf read for one key is worth decoding and caching whole is
  // decided before reading it, so that one that is not costs only its block.
  // (The caller started loading the leaf's head: PrefetchLeafHead.)
  const bool admitted = cache_->AdmitLeaf(address, options_.page_bytes);
  const uint32_t length = AddressLength(address);
  // Below four heads, two reads cost more than the bytes they save.
  if (!admitted && length >= 4 * kStoredHeadBytes && length <= sizeof(r.stack)) {
    bool done = false;
    s = GetFromBlock(address, key, value, found, &r, &done, unheld_generation);
    if (done) return s;
  }
  s = ReadStoredPage(address, &r);
  if (!s.ok()) return s;
  const uint64_t offset = AddressOffset(address);
  const std::string_view stored = r.stored;
  const size_t image_bytes = r.image_bytes;
  if (IsBlockedLeaf(stored) && !admitted) {
    LeafBlock block;
    bool in_range = false;
    s = LocateLeafBlock(stored, offset, path_, key, &block, &in_range, options_.order);
    if (!s.ok() || !in_range) return s;
    block.has_checksum = false;  // ParseStoredPage checked every block of it
    return SearchBlock(block, offset, key, value, found);
  }
  if (!admitted && image_bytes <= kStackImageBytes) {
    return SearchUncachedLeaf(address, stored, image_bytes, key, value, found);
  }
  PageRef page;
  s = DecodeStored(address, stored, image_bytes, /*for_cache=*/true, &page);
  if (!s.ok()) return s;
  r.frame.Reset();
  if (unheld_generation == nullptr) {
    cache_->Insert(address, page.bytes(), &page);
  } else {
    port::MutexLock l(&extent_mu_);  // releases erase frames under it, after the move
    if (extent_generation_.load(std::memory_order_relaxed) == *unheld_generation) {
      cache_->Insert(address, page.bytes(), &page);
    }
  }
  return SearchLeafImage(page.data(), offset, key, value, found);
}

// A leaf the cache did not admit, decoded on the stack: a frame for it
// would evict a cached page, or under a full shared budget take memory
// from another database, for bytes dropped a microsecond later.
Status BTree::SearchUncachedLeaf(uint64_t address, std::string_view stored, size_t image_bytes,
                                 std::string_view key, std::string* value, bool* found) {
  alignas(16) char image[kStackImageBytes];
  const uint64_t offset = AddressOffset(address);
  Status s = DecodeChecked(stored, offset, image, image_bytes);
  if (!s.ok()) return s;
  return SearchLeafImage(image, offset, key, value, found);
}

Status BTree::SearchLeafImage(const char* image, uint64_t offset, std::string_view key,
                              std::string* value, bool* found) const {
  PageView v(image);
  if (!v.is_leaf()) return PageCorruption(path_, offset, "unexpected page level");
  uint32_t i = v.Find(key, options_.order);
  if (i < v.count()) {
    std::string_view val = v.value(i);
    value->assign(val.data(), val.size());
    *found = true;
  }
  return Status::OK();
}

Status BTree::FetchPage(uint64_t address, bool verify, PageRef* ref, bool fill, bool* hit) {
  const bool cached = cache_->Lookup(address, ref);
  if (hit != nullptr) *hit = cached;
  if (cached) {
    TEST_SYNC_POINT_CALLBACK("BTree::FetchPage:Cached", ref);
    if (verify && ImageChecksum(ref->data(), ref->bytes()) != ref->frame()->checksum) {
      ref->Reset();
      return PageCorruption(path_, AddressOffset(address), "cached page checksum mismatch");
    }
    return Status::OK();
  }
  PageRef fresh;
  Status s = ReadPage(address, &fresh, fill);
  if (!s.ok()) return s;
  if (fill) cache_->Insert(address, fresh.bytes(), &fresh);
  *ref = std::move(fresh);
  return Status::OK();
}

bool BTree::GetCached(uint64_t root, std::string_view key, std::string* value, bool* found,
                      Status* status, LeafMiss* miss) {
  epoch::ReadSection section;
  if (!section.active()) return false;
  uint64_t address = root;
  int expected_level = -1;
  uint64_t levels = 0;
  const Frame* parent = nullptr;  // the internal page the descent came from
  uint64_t parent_address = 0;
  uint32_t child_index = 0;
  while (address != 0) {
    bool prefetched = false;
    const Frame* f = parent == nullptr
                         ? cache_->Peek(address)
                         : cache_->PeekChild(parent, child_index, address, &prefetched);
    if (f == nullptr) {
      if (miss != nullptr && expected_level == 0) {
        // The set of the leaf's head starts loading here, while the miss
        // goes back up and down to GetFromDisk (3% of a read at 3M keys).
        cache_->PrefetchLeafHead(address);
        // The root is held until the section ends, so no release has freed
        // this leaf yet: a later one moves the generation past this.
        *miss = {address, parent_address, extent_generation_.load(std::memory_order_seq_cst),
                 levels};
      }
      return false;
    }
    ++levels;
    PageView v(f->data());
    // A leaf's header and search array at once (see PageView::Prefetch).
    // Internal pages are few and mostly in the CPU cache already: issuing up
    // to 64 prefetches for one only fills the miss buffers the leaf needs.
    uint32_t entries = f->entries.load(std::memory_order_relaxed);
    if (!prefetched && expected_level <= 0) v.Prefetch(entries);
    if (entries == 0) f->entries.store(v.count(), std::memory_order_relaxed);
    if (expected_level >= 0 && v.level() != expected_level) {
      *status = PageCorruption(path_, AddressOffset(address), "unexpected page level");
      return true;
    }
    if (v.is_leaf()) {
      uint32_t i = v.Find(key, options_.order);
      if (i < v.count()) {
        std::string_view val = v.value(i);
        value->assign(val.data(), val.size());  // may throw: the section ends on unwinding
        *found = true;
      }
      cache_->AddPeekHits(levels);
      return true;
    }
    expected_level = v.level() - 1;
    child_index = v.ChildIndex(key, options_.order);
    parent_address = address;
    address = v.child(child_index);
    parent = f;
  }
  return true;
}

// Saves a miss the second descent, the version's lock and its reference:
// the leaf's address is all the read needs, and a release or a checkpoint's
// write of any extent moves the generation on first (ExtentsChanging), so
// an unchanged generation after the read means the extent held that leaf
// all along.
Status BTree::GetLeafUnheld(const LeafMiss& miss, std::string_view key, std::string* value,
                            bool* found, bool* valid) {
  *found = false;
  *valid = false;
  Status s = CheckOpen();
  if (!s.ok()) return s;
  s = GetFromDisk(miss.address, key, value, found, &miss.generation);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  *valid = extent_generation_.load(std::memory_order_seq_cst) == miss.generation;
  if (*valid) {
    cache_->AddPeekHits(miss.levels_cached);
    cache_->AddPeekMiss();
  }
  return s;
}

Status BTree::Get(uint64_t root, std::string_view key, std::string* value, bool* found,
                  bool verify_checksums, uint64_t* missed_parent) {
  *found = false;
  Status s = CheckOpen();
  if (!s.ok()) return s;
  // Every page cached (the usual case): no lock, no pin, nothing written
  // that another reader reads. Otherwise, or to re-verify cached images, the
  // pinned path below, which reads what is missing.
  if (!verify_checksums && GetCached(root, key, value, found, &s)) return s;
  uint64_t address = root;
  uint64_t parent = 0;
  int expected_level = -1;
  PageRef ref;
  while (address != 0) {
    bool hit = true;
    if (expected_level == 0 && !verify_checksums) {
      if (!cache_->Lookup(address, &ref)) {
        if (missed_parent != nullptr) *missed_parent = parent;
        cache_->PrefetchLeafHead(address);
        return GetFromDisk(address, key, value, found);
      }
    } else {
      s = FetchPage(address, verify_checksums, &ref, /*fill=*/true, &hit);
      if (!s.ok()) return s;
    }
    if (!hit && parent != 0 && missed_parent != nullptr) *missed_parent = parent;
    PageView v(ref.data());
    v.Prefetch(ref.frame()->entries.load(std::memory_order_relaxed));
    if (expected_level >= 0 && v.level() != expected_level) {
      return PageCorruption(path_, AddressOffset(address), "unexpected page level");
    }
    if (v.is_leaf()) {
      uint32_t i = v.Find(key, options_.order);
      if (i < v.count()) {
        std::string_view val = v.value(i);
        value->assign(val.data(), val.size());
        *found = true;
      }
      return Status::OK();
    }
    expected_level = v.level() - 1;
    parent = address;
    address = v.child(v.ChildIndex(key, options_.order));
  }
  return Status::OK();
}

Status BTree::ApproximatePosition(uint64_t root, std::string_view key, double* position) {
  *position = 0;
  Status s = CheckOpen();
  if (!s.ok()) return s;
  double start = 0, width = 1;
  uint64_t address = root;
  for (int depth = 0; address != 0 && depth < kMaxTreeDepth; ++depth) {
    PageRef ref;
    s = FetchPage(address, /*verify=*/false, &ref);
    if (!s.ok()) return s;
    PageView v(ref.data());
    const uint32_t n = v.count();
    if (n == 0) break;
    const uint32_t i =
        v.is_leaf() ? v.LowerBound(key, options_.order) : v.ChildIndex(key, options_.order);
    width /= n;
    start += width * i;
    if (v.level() <= 1) break;  // its children are leaves
    address = v.child(i);
  }
  *position = start;
  return Status::OK();
}

bool BTree::CacheHasRoom() const { return cache_->HasRoom(2 * options_.page_bytes); }

void BTree::ExtentsChanging(int writers_delta) {
  port::MutexLock l(&extent_mu_);
  ++extent_generation_;
  extent_writers_ += writers_delta;
}

// Without a root held, the extent at `address` may be free or reused. The
// page is published only if no extent changed while it was read (the
// generation did not move and no checkpoint ran), so what was read is what
// the extent held all along: the live page at that address, or a free
// extent's leftover, which no reader looks up and which the checkpoint that
// reuses the extent replaces (it erases the address before caching its own
// page there). A cached frame is always its address's page: releasing a
// page erases its frame.
Status BTree::FetchUnheld(uint64_t address, PageRef* ref, bool* read) {
  *read = false;
  if (cache_->Lookup(address, ref)) return Status::OK();
  uint64_t generation;
  {
    port::MutexLock l(&extent_mu_);
    if (extent_writers_ != 0) return Status::OK();
    generation = extent_generation_;
  }
  PageRef fresh;
  Status s = ReadPage(address, &fresh);
  if (!s.ok()) return s;
  port::MutexLock l(&extent_mu_);
  if (extent_generation_ != generation || extent_writers_ != 0) return Status::OK();
  cache_->Insert(address, fresh.bytes(), &fresh);
  *ref = std::move(fresh);
  *read = true;
  return Status::OK();
}

Status BTree::LoadChildren(uint64_t parent, const std::atomic<bool>& stop, uint64_t* loaded) {
  Status s = CheckOpen();
  if (!s.ok()) return s;
  PageRef ref;
  bool read = false;
  s = FetchUnheld(parent, &ref, &read);
  if (!s.ok() || !ref) return s;
  PageView v(ref.data());
  if (v.is_leaf()) return Status::OK();
  PageRef child;
  for (uint32_t i = 0; i < v.count(); ++i) {
    if (stop.load(std::memory_order_relaxed) || !CacheHasRoom()) break;
    s = FetchUnheld(v.child(i), &child, &read);
    if (!s.ok()) return s;
    child.Reset();
    if (read) ++*loaded;
  }
  return Status::OK();
}

// ---- Iterator --------------------------------------------------------------

class TreeIterator final : public InternalIterator {
 public:
  TreeIterator(BTree* tree, uint64_t root, bool verify, ScanCaching caching)
      : tree_(tree),
        root_(root),
        verify_(verify),
        caching_(caching),
        bulk_(caching == ScanCaching::kNever) {}

  bool Valid() const override { return valid_; }
  void SeekToFirst() override { Start(Mode::kFirst, {}); }
  void SeekToLast() override { Start(Mode::kLast, {}); }
  void Seek(std::string_view target) override { Start(Mode::kSeek, target); }
  void Next() override {
    Level& leaf = stack_[depth_ - 1];
    if (++leaf.idx < leaf.view.count()) return;
    Advance(true);
  }
  void Prev() override {
    Level& leaf = stack_[depth_ - 1];
    if (leaf.idx > 0) {
      --leaf.idx;
      return;
    }
    Advance(false);
  }
  std::string_view key() const override { return Top().view.key(Top().idx); }
  std::string_view value() const override { return Top().view.value(Top().idx); }
  bool is_tombstone() const override { return false; }
  bool never_tombstones() const override { return true; }
  Status status() const override { return status_; }

 private:
  enum class Mode { kFirst, kLast, kSeek };
  struct Level {
    PageRef ref;
    PageView view;
    uint32_t idx = 0;
  };

  const Level& Top() const { return stack_[depth_ - 1]; }

  void Clear() {
    while (depth_ > 0) stack_[--depth_].ref.Reset();
    valid_ = false;
  }
  void Fail(Status s) {
    Clear();
    status_ = std::move(s);
  }

  // Pushes pages from `address` down to a leaf; false on error. `step`: the
  // descent moves the cursor to the neighbouring leaf (a scan's next page).
  bool Descend(uint64_t address, int expected_level, Mode mode, std::string_view target,
               bool step = false) {
    while (true) {
      if (depth_ >= kMaxTreeDepth) {
        Fail(PageCorruption(tree_->path_, AddressOffset(address), "tree too deep"));
        return false;
      }
      Level& l = stack_[depth_];
      Status s = expected_level == 0 && (step || bulk_)
                     ? FetchLeaf(address, &l.ref)
                     : tree_->FetchPage(address, verify_, &l.ref);
      if (!s.ok()) {
        Fail(std::move(s));
        return false;
      }
      ++depth_;
      l.view = PageView(l.ref.data());
      if (expected_level >= 0 && l.view.level() != expected_level) {
        Fail(PageCorruption(tree_->path_, AddressOffset(address), "unexpected page level"));
        return false;
      }
      uint32_t n = l.view.count();
      if (l.view.is_leaf()) {
        l.idx = mode == Mode::kFirst  ? 0
                : mode == Mode::kLast ? (n == 0 ? 0 : n - 1)
                                      : l.view.LowerBound(target, tree_->options_.order);
        return true;
      }
      l.idx = mode == Mode::kFirst  ? 0
              : mode == Mode::kLast ? n - 1
                                    : l.view.ChildIndex(target, tree_->options_.order);
      expected_level = l.view.level() - 1;
      address = l.view.child(l.idx);
    }
  }

  void Start(Mode mode, std::string_view target) {
    Clear();
    status_ = Status::OK();
    if (Status s = tree_->CheckOpen(); !s.ok()) {
      Fail(std::move(s));
      return;
    }
    if (root_ == 0) return;
    if (!Descend(root_, -1, mode, target)) return;
    valid_ = true;
    const Level& leaf = Top();
    if (mode == Mode::kLast ? leaf.view.count() == 0 : leaf.idx >= leaf.view.count()) {
      Advance(mode != Mode::kLast);
    }
  }

  // Moves to the first entry of the next leaf (forward) or the last entry of
  // the previous one, skipping empty leaves; invalid at either end.
  void Advance(bool forward) {
    while (true) {
      stack_[--depth_].ref.Reset();
      while (depth_ > 0) {
        Level& l = stack_[depth_ - 1];
        if (forward ? l.idx + 1 < l.view.count() : l.idx > 0) break;
        stack_[--depth_].ref.Reset();
      }
      if (depth_ == 0) {
        valid_ = false;
        return;
      }
      Level& parent = stack_[depth_ - 1];
      parent.idx += forward ? 1 : -1;
      if (!Descend(parent.view.child(parent.idx), parent.view.level() - 1,
                   forward ? Mode::kFirst : Mode::kLast, {}, /*step=*/true)) {
        return;
      }
      if (Top().view.count() > 0) return;
    }
  }

  // A leaf for a scan step (or any leaf, once bulk). Under kAuto, once
  // kBulkScanLeaves leaves in a row were not cached, the scan is reading cold
  // data in bulk: leaves it reads from disk from then on go into private
  // frames, freed as the cursor leaves them, instead of the cache. Such a
  // scan would otherwise fill the cache with pages read once (evicting the
  // working set when the data is larger than the cache), and each page would
  // take fresh memory; a private frame reuses the memory the previous one
  // just gave back. Leaves that are cached are still used.
  Status FetchLeaf(uint64_t address, PageRef* ref) {
    bool hit = false;
    Status s = tree_->FetchPage(address, verify_, ref, /*fill=*/!bulk_, &hit);
    if (!bulk_ && caching_ == ScanCaching::kAuto) {
      cold_run_ = hit ? 0 : cold_run_ + 1;
      bulk_ = cold_run_ >= kBulkScanLeaves;
    }
    return s;
  }

  static constexpr uint32_t kBulkScanLeaves = 64;

  BTree* const tree_;
  const uint64_t root_;
  const bool verify_;
  const ScanCaching caching_;
  bool bulk_;              // leaves read from disk stay private
  uint32_t cold_run_ = 0;  // leaves in a row read from disk, while !bulk_
  bool valid_ = false;
  Status status_;
  int depth_ = 0;
  std::array<Level, kMaxTreeDepth> stack_;
};

std::unique_ptr<InternalIterator> BTree::NewIterator(uint64_t root, bool verify_checksums,
                                                     ScanCaching caching) {
  return std::make_unique<TreeIterator>(this, root, verify_checksums, caching);
}

// ---- Release, stats, close -----------------------------------------------

void BTree::ReleasePages(std::span<const uint64_t> obsolete) {
  if (closed_.load(std::memory_order_acquire)) return;
  if (!options_.lowest_reader) return ReleaseNow(obsolete);
  // A reader of state r needs every page reachable from it, and any list
  // of pages replaced after r may hold some. The current id bounds the
  // checkpoint that replaced these pages from above: keeping them while a
  // reader is below it errs on the safe side.
  const uint64_t current = meta().checkpoint_id;
  const uint64_t lowest = options_.lowest_reader(current);
  std::pmr::vector<HeldPages> go(options_.held_memory);
  {
    port::MutexLock l(&held_mu_);
    auto keep = std::partition(held_.begin(), held_.end(),
                               [&](const HeldPages& h) { return h.bound > lowest; });
    try {
      std::move(keep, held_.end(), std::back_inserter(go));
    } catch (const std::bad_alloc&) {
      go.clear();
      keep = held_.end();  // kept for a later call
    }
    held_.erase(keep, held_.end());
    if (lowest < current && !obsolete.empty()) {
      try {
        held_.push_back({current, std::pmr::vector<uint64_t>(obsolete.begin(), obsolete.end(),
                                                             options_.held_memory)});
      } catch (const std::bad_alloc&) {
        // Not released either: the extents stay unused until the next open.
      }
      obsolete = {};
    }
  }
  for (const HeldPages& h : go) ReleaseNow(h.pages);
  if (!obsolete.empty()) ReleaseNow(obsolete);
}

void BTree::ReleaseNow(std::span<const uint64_t> obsolete) {
  ExtentsChanging(0);  // before any extent changes (see FetchUnheld)
  // Give the file system the blocks of long runs of released pages first: a
  // checkpoint that rewrote the whole tree leaves the previous copy behind,
  // and the file would otherwise keep about twice the tree's blocks. Before
  // the extents become free, so no checkpoint can be writing into them.
  // Checkpoints list obsolete pages by offset, so runs are found in one pass.
  uint64_t run_begin = 0, run_end = 0;
  auto punch = [&] {
    uint64_t b = (run_begin + kPunchAlign - 1) & ~(kPunchAlign - 1);
    uint64_t e = run_end & ~(kPunchAlign - 1);
    if (e > b && e - b >= kMinPunchBytes) file_->PunchHole(b, e - b).IgnoreError();
  };
  for (uint64_t address : obsolete) {
    uint64_t off = AddressOffset(address);
    if (off != run_end) {
      punch();
      run_begin = off;
    }
    run_end = off + AddressExtent(address);
  }
  punch();
  try {
    for (uint64_t address : obsolete) {
      cache_->Erase(address);
      free_->Add(AddressOffset(address), AddressExtent(address));
    }
  } catch (const std::bad_alloc&) {
    // The extents stay unused until the next open rebuilds free space.
  }
}

size_t BTree::EvictForReclaim(size_t wanted_bytes) {
  if (closed_.load(std::memory_order_acquire)) return 0;
  // The mapping first: its pages stay in the OS's page cache, and reads
  // only lose the shortcut to them; an evicted cache page costs a read.
  const size_t unmapped = map_ != nullptr ? map_->Drop() : 0;
  if (unmapped >= wanted_bytes) return unmapped;
  return unmapped + cache_->Evict(wanted_bytes - unmapped);
}

size_t BTree::mapped_bytes() const {
  if (map_ == nullptr || closed_.load(std::memory_order_acquire)) return 0;
  return map_->mapped_bytes();
}

uint64_t BTree::map_drops() const {
  if (map_ == nullptr || closed_.load(std::memory_order_acquire)) return 0;
  return map_->drops();
}

size_t BTree::cache_used_bytes() const {
  if (cache_ == nullptr || closed_.load(std::memory_order_acquire)) return 0;
  return cache_->used_bytes();
}

CacheStats BTree::cache_stats() const {
  if (cache_ == nullptr || closed_.load(std::memory_order_acquire)) return {};
  return cache_->Stats();
}

uint64_t BTree::file_bytes() const {
  return free_ != nullptr && !closed_.load(std::memory_order_acquire) ? free_->file_end() : 0;
}

uint64_t BTree::live_bytes() const {
  if (closed_.load(std::memory_order_acquire)) return 0;
  if (options_.read_only) {
    const uint64_t end = meta().file_bytes;
    return end > kDataStart ? end - kDataStart : 0;
  }
  // Two readings that a checkpoint may separate: never below zero.
  const uint64_t end = file_bytes(), free = free_bytes();
  return end > free ? end - free : 0;
}

uint64_t BTree::free_bytes() const {
  return free_ != nullptr && !closed_.load(std::memory_order_acquire) ? free_->free_bytes() : 0;
}

Status BTree::Close() {
  if (closed_.exchange(true)) return Status::OK();
  port::MutexLock checkpoint_lock(&checkpoint_mu_);
  Status s;
  if (file_ != nullptr) s = file_->Close();
  file_.reset();
  // A closed arena (the database closed it first) has already taken the
  // memory these structures point into: forget them without touching it.
  bool tree_arena_open = tree_arena_ != nullptr && !tree_arena_->closed();
  if (free_ != nullptr) {
    if (tree_arena_open) {
      free_.reset();
    } else {
      (void)free_.release();
    }
  }
  if (cache_ != nullptr) cache_->Close();  // frames go back with the arena, at once
  cache_.reset();
  if (cache_arena_ != nullptr) cache_arena_->Close();
  cache_arena_.reset();
  if (tree_arena_ != nullptr) tree_arena_->Close();
  tree_arena_.reset();
  return s;
}

// ---- Verify ----------------------------------------------------------------

struct BTree::VerifyState {
  explicit VerifyState(std::pmr::memory_resource* mr) : leaves(mr), extents(mr), mr(mr) {}
  struct LeafTask {
    uint64_t address;
    std::pmr::string lo, hi;  // bounds its parents give: [lo, hi)
    bool has_lo, has_hi;
  };
  std::pmr::vector<LeafTask> leaves;
  std::pmr::vector<std::pair<uint64_t, uint64_t>> extents;
  std::pmr::memory_resource* mr;
  uint64_t internal_pages = 0;
};

Status BTree::VerifyInternal(VerifyState* vs, uint64_t address, int level, std::string_view lo,
                             bool has_lo, std::string_view hi, bool has_hi) {
  uint64_t off = AddressOffset(address);
  vs->extents.emplace_back(off, AddressExtent(address));
  if (level == 0) {
    vs->leaves.push_back(
        {address, std::pmr::string(lo, vs->mr), std::pmr::string(hi, vs->mr), has_lo, has_hi});
    return Status::OK();
  }
  PageRef ref;
  Status s = ReadPage(address, &ref);  // from disk: the on-disk checksum is what we verify
  if (!s.ok()) return s;
  PageView v(ref.data());
  if (level > 0 && v.level() != level) return PageCorruption(path_, off, "unexpected page level");
  if (v.is_leaf()) {  // a root leaf
    vs->extents.pop_back();
    return VerifyInternal(vs, address, 0, lo, has_lo, hi, has_hi);
  }
  ++vs->internal_pages;
  for (uint32_t i = 1; i < v.count(); ++i) {
    std::string_view k = v.key(i);
    const KeyOrder order = options_.order;
    if ((has_lo && order.Compare(k, lo) <= 0) || (has_hi && order.Compare(k, hi) >= 0)) {
      return PageCorruption(path_, off, "separator outside the range its parent gives");
    }
  }
  for (uint32_t i = 0; i < v.count(); ++i) {
    bool last = i + 1 == v.count();
    s = VerifyInternal(vs, v.child(i), v.level() - 1, i == 0 ? lo : v.key(i), i > 0 || has_lo,
                       last ? hi : v.key(i + 1), !last || has_hi);
    if (!s.ok()) return s;
  }
  return Status::OK();
}

Status BTree::Verify(VerifyStats* stats,
                     const std::function<bool(uint64_t done, uint64_t total)>& progress) {
  *stats = VerifyStats();
  Status s = CheckOpen();
  if (!s.ok()) return s;
  MetaState m = meta();
  std::unique_ptr<alloc::Arena> scratch;
  s = tree_arena_->NewChild({.name = "verify"}, &scratch);
  if (!s.ok()) return s;
  try {
    alloc::RecyclingResource pool(scratch.get());
    VerifyState vs(&pool);
    // Pass 1: internal pages, collecting every leaf with the range its
    // parents give it (so progress knows the total).
    if (m.root != 0) s = VerifyInternal(&vs, m.root, -1, {}, false, {}, false);
    if (!s.ok()) return s;
    uint64_t total = vs.internal_pages + vs.leaves.size();
    uint64_t done = vs.internal_pages;
    auto stopped = [&] {
      return progress && !progress(done, total)
                 ? Status::Aborted("verify stopped after " + std::to_string(done) + " of " +
                                   std::to_string(total) + " pages, nothing wrong so far")
                 : Status::OK();
    };
    s = stopped();
    if (!s.ok()) return s;
    // Pass 2: leaves, in key order.
    std::pmr::string prev_last(&pool);
    bool have_prev = false;
    for (const auto& task : vs.leaves) {
      uint64_t off = AddressOffset(task.address);
      PageRef ref;
      s = ReadPage(task.address, &ref);
      if (!s.ok()) return s;
      PageView v(ref.data());
      if (!v.is_leaf()) return PageCorruption(path_, off, "expected a leaf");
      if (v.count() == 0) return PageCorruption(path_, off, "empty leaf");
      std::string_view first = v.key(0), last = v.key(v.count() - 1);
      const KeyOrder order = options_.order;
      if ((task.has_lo && order.Compare(first, task.lo) < 0) ||
          (task.has_hi && order.Compare(last, task.hi) >= 0)) {
        return PageCorruption(path_, off, "key outside the range its parent gives");
      }
      if (have_prev && order.Compare(prev_last, first) >= 0) {
        return PageCorruption(path_, off, "keys out of order across leaves");
      }
      prev_last.assign(last.data(), last.size());
      have_prev = true;
      stats->keys += v.count();
      ++done;
      if (done % 64 == 0 || done == total) {
        s = stopped();
        if (!s.ok()) return s;
      }
    }
    stats->pages = total;
    std::sort(vs.extents.begin(), vs.extents.end());
    // A read-only tree keeps no free space: its meta block says where its
    // data ends.
    uint64_t pos = kDataStart, end = options_.read_only ? m.file_bytes : free_->file_end();
    for (const auto& [o, len] : vs.extents) {
      if (o < pos) return PageCorruption(path_, o, "page overlaps another page");
      if (o + len > end) return PageCorruption(path_, o, "page beyond the end of the data");
      pos = o + len;
    }
    if (stats->keys != m.key_count) {
      return Status::Corruption(path_ + ": meta block counts " + std::to_string(m.key_count) +
                                " keys, the tree holds " + std::to_string(stats->keys));
    }
    return Status::OK();
  } catch (const std::bad_alloc&) {
    return Status::MemoryLimit(path_ + ": out of memory while verifying");
  }
}

}  // namespace arenakv::tree
