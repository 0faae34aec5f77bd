#include "tree/salvage.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "tree/page_format.h"

namespace arenakv::tree {

namespace {

bool AllZero(std::string_view block) {
  return std::all_of(block.begin(), block.end(), [](char c) { return c == 0; });
}

// Printable form of a key in a loss report (bytes outside ASCII as \xNN).
std::string Printable(std::string_view key, bool bounded, const char* unbounded) {
  if (!bounded) return unbounded;
  std::string out = "\"";
  for (unsigned char c : key.substr(0, 64)) {
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  if (key.size() > 64) out += "...";
  return out + "\"";
}

class Walker {
 public:
  Walker(File* file, std::string path, uint64_t file_bytes, KeyOrder order,
         const std::function<Status(std::string_view, std::string_view)>& entry,
         const std::function<bool(uint64_t, uint64_t)>& progress, SalvageResult* result)
      : file_(file),
        path_(std::move(path)),
        file_bytes_(file_bytes),
        order_(order),
        entry_(entry),
        progress_(progress),
        result_(result) {}

  // The subtree at `address`, whose keys its parents put in [lo, hi).
  Status Walk(uint64_t address, int expected_level, std::string_view lo, bool has_lo,
              std::string_view hi, bool has_hi, int depth) {
    std::string image;
    Status damage = ReadImage(address, &image);
    PageView v(image.data());
    if (damage.ok() && expected_level >= 0 && v.level() != expected_level) {
      damage =
          Status::Corruption(path_ + ": page at offset " + std::to_string(AddressOffset(address)) +
                             ": level " + std::to_string(v.level()) + " where its parent expects " +
                             std::to_string(expected_level));
    }
    if (damage.ok() && depth >= kMaxTreeDepth)
      damage = Status::Corruption(path_ + ": tree too deep");
    if (!damage.ok()) {
      if (damage.IsIOError() || damage.IsMemoryLimit()) return damage;  // not the file's content
      ++result_->pages_lost;
      result_->lost.push_back("keys from " + Printable(lo, has_lo, "the first") + " to " +
                              Printable(hi, has_hi, "the last") + ": " + damage.ToString());
      return Status::OK();
    }
    ++result_->pages_read;
    bytes_read_ += AddressLength(address);
    if (progress_ && !progress_(std::min(bytes_read_, file_bytes_), file_bytes_)) {
      return Status::Aborted("repair stopped after reading " + std::to_string(bytes_read_) +
                             " bytes of " + path_);
    }
    if (v.is_leaf()) {
      for (uint32_t i = 0; i < v.count(); ++i) {
        // A key outside what the parents give would come after keys it
        // must precede: a damaged page that still verifies. Keep the rest.
        const std::string_view k = v.key(i);
        if ((has_lo && order_.Compare(k, lo) < 0) || (has_hi && order_.Compare(k, hi) >= 0)) {
          continue;
        }
        Status s = entry_(k, v.value(i));
        if (!s.ok()) return s;
        ++result_->entries;
      }
      return Status::OK();
    }
    for (uint32_t i = 0; i < v.count(); ++i) {
      const bool last = i + 1 == v.count();
      // The child's bounds, copied: `image` stays alive, but keep them plain.
      const std::string child_lo = i == 0 ? std::string(lo) : std::string(v.key(i));
      const std::string child_hi = last ? std::string(hi) : std::string(v.key(i + 1));
      Status s = Walk(v.child(i), v.level() - 1, child_lo, i > 0 || has_lo, child_hi,
                      !last || has_hi, depth + 1);
      if (!s.ok()) return s;
    }
    return Status::OK();
  }

 private:
  // The page's image, checked as a normal read checks it; Corruption for
  // damage, other codes for failures of the file or of memory.
  Status ReadImage(uint64_t address, std::string* image) {
    const uint64_t offset = AddressOffset(address);
    const uint32_t length = AddressLength(address);
    if (offset < kDataStart || length < kStoredHeaderBytes + kImageHeaderBytes ||
        length > MaxStoredBytes(kMaxImageBytes) || offset + length > file_bytes_) {
      return Status::Corruption(path_ + ": bad page address " + std::to_string(address));
    }
    std::string stored;
    try {
      stored.resize(length);
    } catch (const std::bad_alloc&) {
      return Status::MemoryLimit("repair: no memory for a page");
    }
    size_t got = 0;
    Status s = file_->Read(offset, length, stored.data(), &got);
    if (!s.ok()) return s;
    if (got != length) return Status::Corruption(path_ + ": page past the end of the file");
    size_t image_bytes = 0;
    s = ParseStoredPage(stored, offset, /*verify_checksum=*/true, path_, &image_bytes, order_);
    if (!s.ok()) return s;
    try {
      image->assign(image_bytes, '\0');
    } catch (const std::bad_alloc&) {
      return Status::MemoryLimit("repair: no memory for a page");
    }
    s = DecodeStoredPage(stored, offset, path_, image->data(), image_bytes, order_);
    if (!s.ok()) return s;
    PageView v(image->data());
    if ((v.type() != PageType::kLeaf && v.type() != PageType::kInternal) ||
        v.is_leaf() != (v.level() == 0) || v.count() == 0) {
      return Status::Corruption(path_ + ": page at offset " + std::to_string(offset) +
                                ": not a tree page");
    }
    return Status::OK();
  }

  File* const file_;
  const std::string path_;
  const uint64_t file_bytes_;
  const KeyOrder order_;
  const std::function<Status(std::string_view, std::string_view)>& entry_;
  const std::function<bool(uint64_t, uint64_t)>& progress_;
  SalvageResult* const result_;
  uint64_t bytes_read_ = 0;
};

}  // namespace

Status SalvageTree(Env* env, const std::string& path, const std::string& order_name, KeyOrder order,
                   const std::function<Status(std::string_view, std::string_view)>& entry,
                   const std::function<bool(uint64_t, uint64_t)>& progress, SalvageResult* result) {
  *result = SalvageResult();
  std::unique_ptr<File> file;
  Status s = env->OpenFile(path, OpenMode::kReadOnly, &file);
  if (!s.ok()) return s;
  uint64_t size = 0;
  s = file->Size(&size);
  if (!s.ok()) return s;
  std::string head(kDataStart, '\0');
  size_t got = 0;
  s = file->Read(0, head.size(), head.data(), &got);
  if (!s.ok()) return s;
  if (got >= 8 && std::string_view(head.data(), 8) != std::string_view(kFileMagic, 8)) {
    return Status::InvalidArgument(path + std::string(kNotADataFile));
  }
  // A newer format is not damage: refuse it, as an open does, rather than
  // salvage nothing from it. A damaged header is no obstacle: pages carry
  // their own lengths.
  if (got >= kBlockBytes) {
    Status hs = DecodeHeaderBlock(std::string_view(head.data(), kBlockBytes), path);
    if (hs.IsNotSupported()) return hs;
    if (!hs.ok()) result->lost.push_back(path + ": damaged header (" + hs.ToString() + ")");
  }
  if (got < kDataStart) {
    result->lost.push_back(path + ": cut inside its meta blocks: no tree to read");
    return Status::OK();
  }
  // Pages carry no checkpoint number: only a meta block says which pages
  // make the tree, so the newest one that verifies is used.
  MetaState metas[2];
  std::string orders[2];
  bool valid[2];
  for (int slot = 0; slot < 2; ++slot) {
    const std::string_view block(head.data() + kMetaOffsets[slot], kBlockBytes);
    Status ms = DecodeMetaBlock(block, slot, path, &metas[slot], &orders[slot]);
    if (ms.IsNotSupported()) return ms;
    valid[slot] = ms.ok();
    if (!valid[slot] && !AllZero(block)) result->meta_damaged = true;
  }
  int best = -1;
  for (int slot = 0; slot < 2; ++slot) {
    if (valid[slot] && (best < 0 || metas[slot].checkpoint_id > metas[best].checkpoint_id)) {
      best = slot;
    }
  }
  if (best < 0) {
    result->lost.push_back(path + ": no meta block verifies: the tree cannot be found");
    return Status::OK();
  }
  if (orders[best] != order_name) {
    // Read in another order, the pages' keys would seem out of order and
    // the salvaged database would be sorted wrong.
    return KeyOrderMismatch(path, orders[best], order_name);
  }
  result->have_meta = true;
  result->meta = metas[best];
  if (result->meta_damaged) {
    result->lost.push_back(path + ": a meta block is damaged: the tree of checkpoint " +
                           std::to_string(metas[best].checkpoint_id) +
                           " was used, which may be the one before the newest");
  }
  if (metas[best].root == 0) return Status::OK();
  Walker walker(file.get(), path, size, order, entry, progress, result);
  return walker.Walk(metas[best].root, -1, {}, false, {}, false, 0);
}

}  // namespace arenakv::tree
