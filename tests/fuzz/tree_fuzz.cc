// libFuzzer target for whole data files: the input describes pages (type,
// level, entries; an internal entry names another page by index), which are
// built into valid images, checksummed at their offsets and written behind a
// valid header and meta block whose root is the first page. Every checksum
// holds, so the fuzzer reaches what only the tree's shape can get wrong:
// empty pages, levels that disagree, unsorted keys, cycles, children on the
// wrong level. Open, Verify, point reads and a checkpoint over the file must
// each give a Status, never a crash or a hang.
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "arenakv/alloc/arena.h"
#include "arenakv/alloc/segment_pool.h"
#include "arenakv/env.h"
#include "engine/vector_changes.h"
#include "tree/btree.h"
#include "tree/data_file.h"
#include "tree/page_format.h"

namespace {

using namespace arenakv;        // NOLINT: a fuzz driver
using namespace arenakv::tree;  // NOLINT

char g_dir[4096];

std::string Path() {
  if (g_dir[0] == '\0') {
    const char* base = std::getenv("TMPDIR");
    std::snprintf(g_dir, sizeof(g_dir), "%s/arenakv-treefuzz-XXXXXX",
                  base && *base ? base : "/tmp");
    if (mkdtemp(g_dir) == nullptr) std::abort();
    std::atexit([] {
      std::string file = std::string(g_dir) + "/data.akv";
      unlink(file.c_str());
      rmdir(g_dir);
    });
  }
  return std::string(g_dir) + "/data.akv";
}

struct Entry {
  std::string key, value;
  uint8_t child = 0;  // internal: index of the page it points to
};

struct PageSpec {
  bool leaf = true;
  uint16_t level = 0;
  std::vector<Entry> entries;
};

// Reads the page specs: per page a type byte, a level byte and an entry
// count byte, then per entry a key (length byte + bytes) and a value
// (length byte + bytes) or a child index byte.
std::vector<PageSpec> Parse(std::string_view in) {
  std::vector<PageSpec> pages;
  size_t p = 0;
  auto byte = [&]() -> int { return p < in.size() ? static_cast<uint8_t>(in[p++]) : -1; };
  auto bytes = [&](size_t n) {
    std::string s(in.substr(std::min(p, in.size()), n));
    p += n;
    return s;
  };
  while (p < in.size() && pages.size() < 16) {
    PageSpec pg;
    pg.leaf = (byte() & 1) == 0;
    pg.level = static_cast<uint16_t>(byte() & 3);
    const int n = byte() & 15;
    for (int i = 0; i < n && p < in.size(); ++i) {
      Entry e;
      e.key = bytes(static_cast<size_t>(byte() & 31));
      if (pg.leaf) {
        e.value = bytes(static_cast<size_t>(byte() & 63));
      } else {
        e.child = static_cast<uint8_t>(byte() & 0xff);
      }
      pg.entries.push_back(std::move(e));
    }
    pages.push_back(std::move(pg));
  }
  return pages;
}

size_t ImageBytes(const PageSpec& pg) {
  size_t bytes = kImageHeaderBytes;
  for (const Entry& e : pg.entries) {
    bytes +=
        pg.leaf ? LeafEntryBytes(e.key.size(), e.value.size()) : InternalEntryBytes(e.key.size());
  }
  return bytes;
}

// The image of `pg`, its internal entries pointing at address[child % n].
std::string Image(const PageSpec& pg, const std::vector<uint64_t>& address) {
  std::string image(ImageBytes(pg), '\0');
  ImageWriter w(image.data(), pg.leaf ? PageType::kLeaf : PageType::kInternal, pg.level,
                static_cast<uint32_t>(pg.entries.size()), static_cast<uint32_t>(image.size()), 0);
  for (const Entry& e : pg.entries) {
    if (pg.leaf) {
      w.Leaf(e.key, e.value);
    } else {
      w.Internal(e.key, address.empty() ? 0 : address[e.child % address.size()]);
    }
  }
  return image;
}

std::string Stored(const std::string& image) {
  std::string stored(MaxStoredBytes(image.size()), '\0');
  stored.resize(EncodeStoredPage(image.data(), image.size(), false, stored.data()));
  return stored;
}

// The file: header, meta (root = page 0), then the pages, uncompressed. A
// child's address does not change its page's length, so the lengths (and
// with them the addresses) come from a first pass with null children.
std::string BuildFile(const std::vector<PageSpec>& pages) {
  std::vector<uint64_t> address;
  uint64_t offset = kDataStart;
  for (const PageSpec& pg : pages) {
    const uint64_t length = Stored(Image(pg, {})).size();
    address.push_back(MakeAddress(offset, length));
    offset += AlignUp(length);
  }
  std::string file(offset, '\0');
  for (size_t i = 0; i < pages.size(); ++i) {
    std::string stored = Stored(Image(pages[i], address));
    if (stored.size() != AddressLength(address[i])) std::abort();
    SealStoredPage(stored.data(), stored.size(), AddressOffset(address[i]));
    file.replace(AddressOffset(address[i]), stored.size(), stored);
  }
  EncodeHeaderBlock(4096, kBytewiseFormatVersion, file.data());
  MetaState m;
  m.checkpoint_id = 2;
  m.root = pages.empty() ? 0 : address[0];
  m.last_sequence = 1;
  m.wal_number = 1;
  m.file_bytes = offset;
  EncodeMetaBlock(m, {}, file.data() + kMetaOffsets[0]);
  return file;
}

void Exercise(const std::vector<PageSpec>& pages) {
  std::shared_ptr<alloc::SegmentPool> pool;
  if (!alloc::SegmentPool::Create(alloc::PoolOptions(), &pool).ok()) std::abort();
  std::unique_ptr<alloc::Arena> arena;
  if (!alloc::Arena::Create(pool, {.name = "db", .kind = alloc::ArenaKind::kShared}, &arena).ok()) {
    std::abort();
  }
  {
    TreeOptions o;
    o.page_bytes = 4096;
    o.cache_bytes = 1 << 20;
    o.compression = false;
    std::unique_ptr<BTree> tree;
    if (BTree::Open(Env::Default().get(), Path(), false, o, arena.get(), &tree).ok()) {
      VerifyStats vs;
      tree->Verify(&vs).IgnoreError();
      for (const PageSpec& pg : pages) {
        for (const Entry& e : pg.entries) {
          std::string value;
          bool found = false;
          uint64_t missed = 0;
          tree->Get(tree->meta().root, e.key, &value, &found, true, &missed).IgnoreError();
        }
      }
      std::vector<test::VectorChanges::Entry> changes;
      changes.emplace_back("k", std::string("v"));
      if (!pages.empty() && !pages[0].entries.empty()) {
        const std::string& k = pages[0].entries[0].key;
        if (k > "k") changes.emplace_back(k, std::nullopt);
      }
      test::VectorChanges it(std::move(changes));
      CheckpointResult r;
      if (tree->Checkpoint(&it, 2, 1, &r).ok()) tree->ReleasePages(r.obsolete);
      tree->Close().IgnoreError();
    }
  }
  arena.reset();
  if (!pool->Close().ok()) std::abort();  // nothing may stay outstanding
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<PageSpec> pages =
      Parse(std::string_view(reinterpret_cast<const char*>(data), size));
  const std::string file = BuildFile(pages);
  std::unique_ptr<File> f;
  if (!Env::Default()->OpenFile(Path(), OpenMode::kCreateTruncate, &f).ok()) std::abort();
  if (!f->Write(0, file).ok() || !f->Close().ok()) std::abort();
  Exercise(pages);
  return 0;
}
