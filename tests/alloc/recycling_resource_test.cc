#include "arenakv/alloc/recycling_resource.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <memory_resource>
#include <new>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "alloc/alloc_test_util.h"
#include "test_util.h"

namespace arenakv::alloc {
namespace {

// An upstream that counts what it holds and throws std::bad_alloc on chosen
// calls, the way an Arena at its budget does.
class FailingUpstream final : public std::pmr::memory_resource {
 public:
  void FailCall(int n) { fail_.insert(n); }
  void FailFrom(int n) { fail_from_ = n; }
  void Heal() {
    fail_.clear();
    fail_from_ = 0;
  }
  int calls() const { return calls_; }
  size_t held_bytes() const { return held_; }
  size_t held_blocks() const { return blocks_.size(); }

 private:
  void* do_allocate(size_t bytes, size_t align) override {
    ++calls_;
    if (fail_.count(calls_) != 0 || (fail_from_ != 0 && calls_ >= fail_from_)) {
      throw std::bad_alloc();
    }
    void* p = ::operator new(bytes, std::align_val_t(align));
    blocks_[p] = bytes;
    held_ += bytes;
    return p;
  }
  void do_deallocate(void* p, size_t bytes, size_t align) override {
    auto it = blocks_.find(p);
    ASSERT_NE(it, blocks_.end()) << "deallocate of a block upstream never gave";
    EXPECT_EQ(it->second, bytes) << "deallocate with another size";
    held_ -= bytes;
    blocks_.erase(it);
    ::operator delete(p, std::align_val_t(align));
  }
  bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override {
    return this == &o;
  }

  int calls_ = 0;
  int fail_from_ = 0;
  std::set<int> fail_;
  std::map<void*, size_t> blocks_;
  size_t held_ = 0;
};

TEST(RecyclingResourceTest, FreedBlocksAreReused) {
  FailingUpstream up;
  RecyclingResource r(&up);
  void* a = r.allocate(40, 8);
  void* b = r.allocate(40, 8);
  EXPECT_NE(a, b);
  r.deallocate(a, 40, 8);
  // Same size class (64 bytes): the freed block comes back.
  EXPECT_EQ(r.allocate(50, 8), a);
  const int calls = up.calls();
  for (int i = 0; i < 1000; ++i) {
    void* p = r.allocate(100, 8);
    r.deallocate(p, 100, 8);
  }
  EXPECT_EQ(up.calls(), calls) << "a steady alloc/free cycle must not go upstream";
  r.deallocate(b, 40, 8);
}

TEST(RecyclingResourceTest, BlocksAreAlignedAndDisjoint) {
  FailingUpstream up;
  RecyclingResource r(&up);
  std::mt19937_64 rng(arenakv::test::TestSeed());
  struct Block {
    char* p;
    size_t bytes, align;
  };
  std::vector<Block> live;
  for (int i = 0; i < 20000; ++i) {
    if (!live.empty() && rng() % 3 == 0) {
      size_t k = rng() % live.size();
      Block b = live[k];
      for (size_t j = 0; j < b.bytes; ++j) {
        ASSERT_EQ(b.p[j], static_cast<char>(reinterpret_cast<uintptr_t>(b.p) + b.bytes))
            << "block overwritten by another";
      }
      r.deallocate(b.p, b.bytes, b.align);
      live[k] = live.back();
      live.pop_back();
      continue;
    }
    const size_t align = size_t{1} << (rng() % 7);  // 1 .. 64
    const size_t bytes = rng() % 4 == 0 ? 1 + rng() % 20000 : 1 + rng() % 300;
    auto* p = static_cast<char*>(r.allocate(bytes, align));
    ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u);
    std::memset(p, static_cast<char>(reinterpret_cast<uintptr_t>(p) + bytes), bytes);
    live.push_back({p, bytes, align});
  }
  for (const Block& b : live) r.deallocate(b.p, b.bytes, b.align);
}

TEST(RecyclingResourceTest, LargeBlocksGoBackUpstreamAtOnce) {
  FailingUpstream up;
  RecyclingResource r(&up);
  void* p = r.allocate(1 << 20, 16);
  EXPECT_GE(up.held_bytes(), size_t{1} << 20);
  r.deallocate(p, 1 << 20, 16);
  EXPECT_EQ(up.held_bytes(), 0u);
  EXPECT_EQ(r.upstream_bytes(), 0u);
}

TEST(RecyclingResourceTest, DestructionReturnsEverythingUpstream) {
  FailingUpstream up;
  {
    RecyclingResource r(&up);
    std::pmr::vector<std::pmr::string> v(&r);
    for (int i = 0; i < 5000; ++i) v.emplace_back(std::string(40 + i % 100, 'x'));
    (void)r.allocate(100000, 8);  // never deallocated by its user
    EXPECT_GT(up.held_bytes(), 0u);
    EXPECT_EQ(up.held_bytes(), r.upstream_bytes());
  }
  EXPECT_EQ(up.held_bytes(), 0u);
  EXPECT_EQ(up.held_blocks(), 0u);
}

// The reason this resource exists: libstdc++ 12's unsynchronized_pool_resource
// swallows an upstream bad_alloc while it grows its chunk list and then
// crashes (a checkpoint at the memory budget died in it). Every upstream call
// that can fail is failed here in turn; each failure must surface as
// bad_alloc, and the resource must keep working once memory is back.
TEST(RecyclingResourceTest, UpstreamFailureLeavesItUsable) {
  for (int fail = 1; fail <= 40; ++fail) {
    SCOPED_TRACE("failing upstream call #" + std::to_string(fail));
    FailingUpstream up;
    RecyclingResource r(&up);
    up.FailCall(fail);
    int thrown = 0;
    std::vector<std::pair<void*, size_t>> live;
    for (int i = 0; i < 3000; ++i) {
      const size_t bytes = i % 50 == 49 ? 8000 : 16 + (i % 9) * 40;
      try {
        void* p = r.allocate(bytes, 8);
        std::memset(p, 0x5a, bytes);
        live.emplace_back(p, bytes);
      } catch (const std::bad_alloc&) {
        ++thrown;
      }
    }
    EXPECT_EQ(thrown, fail <= up.calls() ? 1 : 0);
    for (auto [p, bytes] : live) r.deallocate(p, bytes, 8);
    // Every small block freed can be allocated again without going upstream.
    const int calls = up.calls();
    for (auto [p, bytes] : live) {
      if (bytes <= RecyclingResource::kMaxPooledBytes) {
        EXPECT_NE(r.allocate(bytes, 8), nullptr);
      }
    }
    EXPECT_EQ(up.calls(), calls);
  }
}

TEST(RecyclingResourceTest, ContainersSurviveAnExhaustedUpstream) {
  FailingUpstream up;
  RecyclingResource r(&up);
  std::pmr::vector<std::pmr::string> v(&r);
  for (int i = 0; i < 100; ++i) v.emplace_back(std::string(64, 'a'));
  up.FailFrom(up.calls() + 1);
  bool threw = false;
  try {
    for (int i = 0; i < 100000; ++i) v.emplace_back(std::string(64, 'b'));
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  ASSERT_TRUE(threw);
  const size_t kept = v.size();
  up.Heal();
  for (int i = 0; i < 1000; ++i) v.emplace_back(std::string(64, 'c'));
  EXPECT_EQ(v.size(), kept + 1000);
  EXPECT_EQ(std::string_view(v.front()), std::string(64, 'a'));
  EXPECT_EQ(std::string_view(v.back()), std::string(64, 'c'));
}

TEST(RecyclingResourceTest, OverAnArenaAtItsLimit) {
  auto pool = test::MakePool();
  ArenaOptions o;
  o.limit_bytes = 256 * 1024;
  o.block_bytes = 64 * 1024;
  auto arena = test::MakeArena(pool, o);
  {
    RecyclingResource r(arena.get());
    std::pmr::vector<std::pmr::string> v(&r);
    bool threw = false;
    try {
      for (int i = 0; i < 100000; ++i) v.emplace_back(std::string(100, 'z'));
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    EXPECT_TRUE(threw);
    // Freed blocks serve new ones although the arena has nothing left.
    const size_t n = v.size();
    ASSERT_GT(n, 100u);
    v.resize(n / 2);
    for (size_t i = 0; i < n / 4; ++i) v.emplace_back(std::string(100, 'y'));
    EXPECT_EQ(v.size(), n / 2 + n / 4);
  }
  arena->Close();
  EXPECT_EQ(pool->Stats().in_use_bytes, 0u);
}

}  // namespace
}  // namespace arenakv::alloc
