// The power-loss Env itself: what it keeps, drops and tears, so that the
// randomized power-loss test (db_power_loss_test) rests on a checked model.

#include "power_loss_env.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>

#include "db_test_util.h"
#include "test_util.h"

namespace arenakv::test {
namespace {

class PowerLossEnvTest : public ::testing::Test {
 protected:
  PowerLossEnvTest() : env_(std::make_shared<PowerLossEnv>(Env::Default(), dir_.path())) {}

  std::string Path(const std::string& name) const { return dir_.Join(name); }

  std::unique_ptr<File> Create(const std::string& name) {
    std::unique_ptr<File> f;
    EXPECT_OK(env_->OpenFile(Path(name), OpenMode::kCreate, &f));
    return f;
  }

  // The file's content on disk, or "<missing>".
  std::string OnDisk(const std::string& name) const {
    if (!Env::Default()->FileExists(Path(name))) return "<missing>";
    std::unique_ptr<File> f;
    EXPECT_OK(Env::Default()->OpenFile(Path(name), OpenMode::kReadOnly, &f));
    uint64_t size = 0;
    EXPECT_OK(f->Size(&size));
    std::string out(size, '\0');
    size_t got = 0;
    if (size > 0) EXPECT_OK(f->Read(0, size, out.data(), &got));
    EXPECT_OK(f->Close());
    return out;
  }

  void Crash(CrashStyle style, uint64_t seed = 1) {
    std::string what;
    ASSERT_OK(env_->WriteCrashImage(seed, style, &what));
  }

  TempDir dir_;
  std::shared_ptr<PowerLossEnv> env_;
};

TEST_F(PowerLossEnvTest, SyncedDataSurvivesUnsyncedDoesNot) {
  auto f = Create("a");
  ASSERT_OK(f->Append("durable"));
  ASSERT_OK(f->Sync());
  ASSERT_OK(env_->SyncDir(dir_.path()));
  ASSERT_OK(f->Append("+lost"));
  ASSERT_OK(f->Close());
  EXPECT_EQ(OnDisk("a"), "durable+lost");  // the page cache has it
  Crash(CrashStyle::kDropAll);
  EXPECT_EQ(OnDisk("a"), "durable");
}

TEST_F(PowerLossEnvTest, KeepAllIsWhatTheProcessWrote) {
  auto f = Create("a");
  ASSERT_OK(f->Append("never synced"));
  ASSERT_OK(f->Close());
  Crash(CrashStyle::kKeepAll);
  EXPECT_EQ(OnDisk("a"), "never synced");
}

TEST_F(PowerLossEnvTest, FileInAnUnsyncedDirectoryEntryVanishes) {
  auto f = Create("a");
  ASSERT_OK(f->Append("synced data, but not its name"));
  ASSERT_OK(f->Sync());
  ASSERT_OK(f->Close());
  Crash(CrashStyle::kDropAll);
  EXPECT_EQ(OnDisk("a"), "<missing>");
}

TEST_F(PowerLossEnvTest, UnsyncedRenameAndDeleteAreUndone) {
  auto f = Create("a");
  ASSERT_OK(f->Append("A"));
  ASSERT_OK(f->Sync());
  ASSERT_OK(f->Close());
  auto g = Create("b");
  ASSERT_OK(g->Append("B"));
  ASSERT_OK(g->Sync());
  ASSERT_OK(g->Close());
  ASSERT_OK(env_->SyncDir(dir_.path()));
  ASSERT_OK(env_->RenameFile(Path("a"), Path("c")));
  ASSERT_OK(env_->DeleteFile(Path("b")));
  EXPECT_EQ(OnDisk("a"), "<missing>");
  EXPECT_EQ(OnDisk("b"), "<missing>");
  Crash(CrashStyle::kDropAll);
  EXPECT_EQ(OnDisk("a"), "A");
  EXPECT_EQ(OnDisk("b"), "B");
  EXPECT_EQ(OnDisk("c"), "<missing>");
}

TEST_F(PowerLossEnvTest, FilesPresentAtStartAreDurable) {
  {
    std::unique_ptr<File> f;
    ASSERT_OK(Env::Default()->OpenFile(Path("old"), OpenMode::kCreate, &f));
    ASSERT_OK(f->Append("before"));
    ASSERT_OK(f->Close());
  }
  env_ = std::make_shared<PowerLossEnv>(Env::Default(), dir_.path());
  std::unique_ptr<File> f;
  ASSERT_OK(env_->OpenFile(Path("old"), OpenMode::kReadWrite, &f));
  ASSERT_OK(f->Write(0, "BEFORE"));
  ASSERT_OK(f->Close());
  Crash(CrashStyle::kDropAll);
  EXPECT_EQ(OnDisk("old"), "before");
}

TEST_F(PowerLossEnvTest, StoresThroughAMappingAreUnsyncedUntilSync) {
  auto f = Create("m");
  ASSERT_OK(f->Write(0, std::string(8192, '\0')));
  ASSERT_OK(f->Sync());
  ASSERT_OK(env_->SyncDir(dir_.path()));
  std::unique_ptr<MappedRegion> region;
  Status s = f->MapWritable(0, 8192, &region);
  if (s.IsNotSupported()) GTEST_SKIP() << "no writable mappings on this file system";
  ASSERT_OK(s);
  std::memcpy(region->data(), "synced", 6);
  ASSERT_OK(f->Sync());
  std::memcpy(region->data() + 4096, "unsynced", 8);
  region.reset();
  ASSERT_OK(f->Close());
  Crash(CrashStyle::kDropAll);
  const std::string after = OnDisk("m");
  ASSERT_EQ(after.size(), 8192u);
  EXPECT_EQ(after.substr(0, 6), "synced");
  EXPECT_EQ(after.substr(4096, 8), std::string(8, '\0'));
}

TEST_F(PowerLossEnvTest, EveryCallAfterTheCutFailsAndChangesNothing) {
  auto f = Create("a");
  ASSERT_OK(f->Append("x"));
  env_->CutAtCall(2);
  ASSERT_OK(f->Append("y"));  // call 1
  Status s = f->Sync();       // call 2: the plug is pulled inside it
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_TRUE(env_->cut());
  EXPECT_TRUE(f->Append("z").IsIOError());
  EXPECT_TRUE(env_->SyncDir(dir_.path()).IsIOError());
  std::unique_ptr<File> g;
  EXPECT_TRUE(env_->OpenFile(Path("b"), OpenMode::kCreate, &g).IsIOError());
  ASSERT_OK(f->Close());
  Crash(CrashStyle::kKeepAll);
  EXPECT_EQ(OnDisk("a"), "xy");  // what the page cache held at the cut
}

// A file cut shorter and written again past the cut reads zeros in the
// gap once synced, not the bytes the cut removed.
TEST_F(PowerLossEnvTest, TruncateThenSyncKeepsTheGapZero) {
  auto f = Create("t");
  ASSERT_OK(f->Write(0, "ABCDEFGH"));
  ASSERT_OK(f->Sync());
  ASSERT_OK(env_->SyncDir(dir_.path()));
  ASSERT_OK(f->Truncate(2));
  ASSERT_OK(f->Write(6, "XY"));
  ASSERT_OK(f->Sync());
  ASSERT_OK(f->Close());
  Crash(CrashStyle::kDropAll);
  EXPECT_EQ(OnDisk("t"), std::string("AB\0\0\0\0XY", 8));
}

// Under kRandom each differing sector holds the old or the new bytes whole,
// and both happen: a torn write, at sector granularity.
TEST_F(PowerLossEnvTest, RandomCrashTearsAtSectorBoundaries) {
  const uint64_t kSectors = 64;
  const uint64_t sector = PowerLossEnv::kSectorBytes;
  auto f = Create("t");
  ASSERT_OK(f->Write(0, std::string(kSectors * sector, 'o')));
  ASSERT_OK(f->Sync());
  ASSERT_OK(env_->SyncDir(dir_.path()));
  ASSERT_OK(f->Write(0, std::string(kSectors * sector, 'n')));
  ASSERT_OK(f->Close());
  Crash(CrashStyle::kRandom, /*seed=*/7);
  const std::string after = OnDisk("t");
  ASSERT_EQ(after.size(), kSectors * sector);
  int fresh = 0;
  for (uint64_t i = 0; i < kSectors; ++i) {
    const std::string part = after.substr(i * sector, sector);
    const bool is_new = part == std::string(sector, 'n');
    EXPECT_TRUE(is_new || part == std::string(sector, 'o')) << "sector " << i << " is mixed";
    fresh += is_new;
  }
  EXPECT_GT(fresh, 0);
  EXPECT_LT(fresh, static_cast<int>(kSectors));
}

TEST_F(PowerLossEnvTest, PrefixCrashKeepsTheFirstSectorsInOrder) {
  const uint64_t sector = PowerLossEnv::kSectorBytes;
  auto f = Create("p");
  ASSERT_OK(f->Sync());
  ASSERT_OK(env_->SyncDir(dir_.path()));
  ASSERT_OK(f->Append(std::string(32 * sector, 'n')));
  ASSERT_OK(f->Close());
  Crash(CrashStyle::kPrefix, /*seed=*/3);
  const std::string after = OnDisk("p");
  // Whatever length survived: new sectors first, then zeros, never after.
  const size_t first_zero = after.find('\0');
  if (first_zero != std::string::npos) {
    EXPECT_EQ(first_zero % sector, 0u);
    EXPECT_EQ(after.find('n', first_zero), std::string::npos);
  }
}

}  // namespace
}  // namespace arenakv::test
