// Arena::Spill: an arena's memory moved out to a file, its contents still
// readable where they were, its segments out of the budget until it closes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <vector>

#include "alloc/alloc_test_util.h"
#include "arenakv/alloc/spill_sink.h"
#include "test_util.h"

namespace arenakv::alloc {
namespace {

using test::ExpectAccountingConsistent;
using test::MakeArena;
using test::MakePool;

constexpr size_t kMiB = 1024 * 1024;

// A sink over an unnamed temporary file, failing on demand, that checks
// every copy it stored is dropped exactly once.
class FileSink final : public SpillSink {
 public:
  FileSink() : fd_(::open("/tmp", O_TMPFILE | O_RDWR, 0600)) {}
  ~FileSink() override {
    if (fd_ >= 0) ::close(fd_);
  }

  Status Store(const char* data, size_t size, uint64_t* offset) override {
    if (stores_++ == fail_store_at) return Status::IOError("store", ENOSPC);
    if (fd_ < 0) return Status::IOError("O_TMPFILE", EOPNOTSUPP);
    if (::pwrite(fd_, data, size, static_cast<off_t>(end_)) != static_cast<ssize_t>(size)) {
      return Status::IOError("pwrite", errno);
    }
    *offset = end_;
    live_[end_] = size;
    end_ += size;
    return Status::OK();
  }
  Status MapOver(char* data, size_t size, uint64_t offset) override {
    if (maps_++ == fail_map_at) return Status::IOError("map", ENOMEM);
    if (::mmap(data, size, PROT_READ, MAP_SHARED | MAP_FIXED, fd_, static_cast<off_t>(offset)) ==
        MAP_FAILED) {
      return Status::IOError("mmap", errno);
    }
    return Status::OK();
  }
  void Drop(uint64_t offset, size_t size) override {
    auto it = live_.find(offset);
    ASSERT_NE(it, live_.end()) << "dropped a copy that is not live, at " << offset;
    EXPECT_EQ(it->second, size);
    live_.erase(it);
  }

  size_t live_copies() const { return live_.size(); }
  bool usable() const { return fd_ >= 0; }

  int fail_store_at = -1;
  int fail_map_at = -1;

 private:
  const int fd_;
  uint64_t end_ = 0;
  int stores_ = 0;
  int maps_ = 0;
  std::map<uint64_t, size_t> live_;
};

// Fills an arena with `n` objects of 1000 bytes, each its index repeated.
std::vector<char*> Fill(Arena* arena, int n) {
  std::vector<char*> objects;
  for (int i = 0; i < n; ++i) {
    void* p;
    Status s = arena->Allocate(1000, 8, &p);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) break;
    std::memset(p, i & 0xff, 1000);
    objects.push_back(static_cast<char*>(p));
  }
  return objects;
}

void ExpectIntact(const std::vector<char*>& objects) {
  for (size_t i = 0; i < objects.size(); ++i) {
    for (size_t b = 0; b < 1000; b += 97) {
      ASSERT_EQ(static_cast<unsigned char>(objects[i][b]), i & 0xff) << "object " << i;
    }
  }
}

ArenaOptions SharedArena(const char* name) {
  ArenaOptions o;
  o.name = name;
  o.kind = ArenaKind::kShared;
  o.block_bytes = 256 << 10;
  return o;
}

class SpillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sink_ = std::make_shared<FileSink>();
    if (!sink_->usable()) GTEST_SKIP() << "no O_TMPFILE in /tmp";
  }
  std::shared_ptr<FileSink> sink_;
};

TEST_F(SpillTest, ContentsStayReadableWhereTheyWereAndLeaveTheBudget) {
  auto pool = MakePool();
  auto arena = MakeArena(pool, SharedArena("spilled"));
  std::vector<char*> objects = Fill(arena.get(), 8000);  // ~8 MiB in 256 KiB blocks
  const size_t held = arena->bytes();
  const size_t committed = pool->Stats().committed_bytes;
  ASSERT_GE(held, 7 * kMiB);

  Status s = arena->Spill(sink_);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ExpectIntact(objects);
  ArenaStats as = arena->Stats();
  EXPECT_EQ(as.bytes, 0u);
  EXPECT_EQ(as.spilled_bytes, held);
  PoolStats ps = pool->Stats();
  EXPECT_EQ(ps.spilled_bytes, held);
  EXPECT_EQ(ps.committed_bytes, committed - held) << pool->Report();
  ExpectAccountingConsistent(*pool);

  arena->Close();
  EXPECT_EQ(sink_->live_copies(), 0u) << "every stored copy is dropped at close";
  ps = pool->Stats();
  EXPECT_EQ(ps.spilled_bytes, 0u);
  EXPECT_EQ(ps.in_use_bytes, 0u);
  ExpectAccountingConsistent(*pool);
  ASSERT_OK(pool->Close());
}

// The spilled blocks are read-only; the arena goes on in new ones, and the
// segments it gave back are ordinary writable memory again (zeroed).
TEST_F(SpillTest, AllocationAfterSpillAndReuseAfterCloseGetWritableMemory) {
  auto pool = MakePool();
  auto arena = MakeArena(pool, SharedArena("spilled"));
  std::vector<char*> before = Fill(arena.get(), 600);
  ASSERT_OK(arena->Spill(sink_));
  std::vector<char*> after = Fill(arena.get(), 600);
  EXPECT_GT(arena->bytes(), 0u);
  ExpectIntact(before);
  ExpectIntact(after);
  // Spilling again moves the newer blocks too, into the same sink.
  ASSERT_OK(arena->Spill(sink_));
  EXPECT_EQ(arena->bytes(), 0u);
  ExpectIntact(after);
  EXPECT_TRUE(arena->Spill(std::make_shared<FileSink>()).IsInvalidArgument());
  arena->Close();

  auto reuse = MakeArena(pool, SharedArena("reuse"));
  for (int i = 0; i < 40; ++i) {
    Segment seg;
    ASSERT_OK(reuse->AllocateSegment(256 << 10, &seg));
    for (size_t b = 0; b < seg.size; b += 4096) ASSERT_EQ(seg.data[b], 0);
    std::memset(seg.data, 0x5a, seg.size);
  }
  reuse->Close();
  ExpectAccountingConsistent(*pool);
  ASSERT_OK(pool->Close());
}

// What the product needs: a pool at its budget gets room back by spilling
// an arena that only readers use.
TEST_F(SpillTest, SpillingMakesRoomUnderTheBudget) {
  PoolOptions po;
  po.budget_bytes = 16 * kMiB;
  po.retain_bytes = 0;
  auto pool = MakePool(po);
  auto held = MakeArena(pool, SharedArena("held"));
  std::vector<char*> objects = Fill(held.get(), 12000);
  auto writer = MakeArena(pool, SharedArena("writer"));
  Segment seg;
  EXPECT_TRUE(writer->AllocateSegment(8 * kMiB, &seg).IsMemoryLimit());

  ASSERT_OK(held->Spill(sink_));
  Status s = writer->AllocateSegment(8 * kMiB, &seg);
  ASSERT_TRUE(s.ok()) << s.ToString() << "\n" << pool->Report();
  std::memset(seg.data, 1, seg.size);
  ExpectIntact(objects);
  EXPECT_LE(pool->Stats().high_water_bytes, po.budget_bytes);
  writer->Close();
  held->Close();
  EXPECT_EQ(sink_->live_copies(), 0u);
  ASSERT_OK(pool->Close());
}

// A failed store or map leaves the segment in memory; what was spilled
// before stays spilled; nothing is lost either way.
TEST_F(SpillTest, FailuresLeaveTheRestInMemory) {
  for (bool fail_map : {false, true}) {
    SCOPED_TRACE(fail_map ? "map fails" : "store fails");
    auto sink = std::make_shared<FileSink>();
    (fail_map ? sink->fail_map_at : sink->fail_store_at) = 3;
    auto pool = MakePool();
    auto arena = MakeArena(pool, SharedArena("spilled"));
    std::vector<char*> objects = Fill(arena.get(), 2000);
    const size_t held = arena->bytes();
    Status s = arena->Spill(sink);
    EXPECT_TRUE(s.IsIOError()) << s.ToString();
    EXPECT_EQ(arena->Stats().spilled_bytes, 3 * (256u << 10));
    EXPECT_EQ(arena->bytes(), held - 3 * (256u << 10));
    EXPECT_EQ(sink->live_copies(), 3u) << "a copy that was not mapped is dropped at once";
    ExpectIntact(objects);
    ExpectAccountingConsistent(*pool);
    // The rest goes once the sink works again.
    ASSERT_OK(arena->Spill(sink));
    EXPECT_EQ(arena->bytes(), 0u);
    ExpectIntact(objects);
    arena->Close();
    EXPECT_EQ(sink->live_copies(), 0u);
    ASSERT_OK(pool->Close());
  }
}

// A single spilled segment given back before the arena closes goes back as
// it would at close.
TEST_F(SpillTest, ReleasingOneSpilledSegment) {
  auto pool = MakePool();
  auto arena = MakeArena(pool, SharedArena("segments"));
  Segment a, b;
  ASSERT_OK(arena->AllocateSegment(64 << 10, &a));
  ASSERT_OK(arena->AllocateSegment(64 << 10, &b));
  std::memset(a.data, 7, a.size);
  ASSERT_OK(arena->Spill(sink_));
  EXPECT_EQ(a.data[100], 7);
  ASSERT_OK(arena->ReleaseSegment(a));
  EXPECT_EQ(sink_->live_copies(), 1u);
  EXPECT_TRUE(arena->ReleaseSegment(a).IsInvalidArgument());
  EXPECT_EQ(arena->Stats().segments, 1u);
  arena->Close();
  EXPECT_EQ(sink_->live_copies(), 0u);
  EXPECT_EQ(pool->Stats().in_use_bytes, 0u);
  ASSERT_OK(pool->Close());
}

// Resident memory, not only the accounting, goes down: the anonymous pages
// are replaced by file pages the kernel may drop.
TEST_F(SpillTest, ResidentAnonymousMemoryGoesDown) {
  if (test::kSanitized) GTEST_SKIP() << "RSS is not meaningful under sanitizers";
  auto anon = [] {
    FILE* f = std::fopen("/proc/self/status", "r");
    size_t kib = 0;
    char line[256];
    while (f != nullptr && std::fgets(line, sizeof(line), f) != nullptr) {
      if (std::sscanf(line, "RssAnon: %zu kB", &kib) == 1) break;
    }
    if (f != nullptr) std::fclose(f);
    return kib * 1024;
  };
  auto pool = MakePool();
  auto arena = MakeArena(pool, SharedArena("spilled"));
  std::vector<char*> objects = Fill(arena.get(), 64000);  // ~64 MiB
  const size_t before = anon();
  ASSERT_OK(arena->Spill(sink_));
  const size_t after = anon();
  EXPECT_LT(after + 48 * kMiB, before) << "RssAnon " << before << " -> " << after;
  ExpectIntact(objects);
  arena->Close();
  ASSERT_OK(pool->Close());
}

}  // namespace
}  // namespace arenakv::alloc
