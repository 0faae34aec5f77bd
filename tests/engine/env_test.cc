// Tests of the POSIX Env and of the fault-injecting wrapper the other suites use.
#include "arenakv/env.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "fault_env.h"
#include "test_util.h"

namespace arenakv {
namespace {

using test::FaultInjectionEnv;
using test::FaultOp;
using test::FaultRule;
using test::TempDir;

std::string ReadAll(Env* env, const std::string& path) {
  std::unique_ptr<File> f;
  EXPECT_OK(env->OpenFile(path, OpenMode::kReadOnly, &f));
  if (f == nullptr) return "";
  uint64_t size = 0;
  EXPECT_OK(f->Size(&size));
  std::string out(size + 16, '\0');
  size_t got = 0;
  EXPECT_OK(f->Read(0, out.size(), out.data(), &got));
  out.resize(got);
  return out;
}

TEST(PosixEnv, DefaultIsOneSharedInstance) {
  auto a = Env::Default();
  auto b = Env::Default();
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a.get(), b.get());
}

TEST(PosixEnv, WriteAppendReadTruncateSize) {
  TempDir dir;
  Env* env = Env::Default().get();
  std::string path = dir.Join("f");
  std::unique_ptr<File> f;
  ASSERT_OK(env->OpenFile(path, OpenMode::kCreateTruncate, &f));
  EXPECT_EQ(f->path(), path);
  ASSERT_OK(f->Append("hello "));
  ASSERT_OK(f->Append("world"));
  ASSERT_OK(f->Write(0, "J"));
  // Append continues after a positional write that extended the file.
  ASSERT_OK(f->Write(20, "X"));
  ASSERT_OK(f->Append("!"));
  uint64_t size = 0;
  ASSERT_OK(f->Size(&size));
  EXPECT_EQ(size, 22u);
  char buf[64];
  size_t got = 0;
  ASSERT_OK(f->Read(0, 11, buf, &got));
  EXPECT_EQ(std::string(buf, got), "Jello world");
  // A read past the end returns what there is.
  ASSERT_OK(f->Read(18, 10, buf, &got));
  EXPECT_EQ(got, 4u);
  EXPECT_EQ(std::string(buf + 2, 2), "X!");
  ASSERT_OK(f->Read(100, 10, buf, &got));
  EXPECT_EQ(got, 0u);

  ASSERT_OK(f->Truncate(5));
  ASSERT_OK(f->Append("!"));  // appends at the new end
  ASSERT_OK(f->Sync());
  ASSERT_OK(f->Size(&size));
  EXPECT_EQ(size, 6u);
  ASSERT_OK(f->Close());
  ASSERT_OK(f->Close());  // idempotent
  EXPECT_TRUE(f->Append("x").IsClosed());
  EXPECT_EQ(ReadAll(env, path), "Jello!");

  // Reopening keeps or empties contents by mode; Append starts at the end.
  ASSERT_OK(env->OpenFile(path, OpenMode::kReadWrite, &f));
  ASSERT_OK(f->Append("?"));
  f.reset();
  EXPECT_EQ(ReadAll(env, path), "Jello!?");
  ASSERT_OK(env->OpenFile(path, OpenMode::kCreate, &f));
  f.reset();
  EXPECT_EQ(ReadAll(env, path), "Jello!?");
  ASSERT_OK(env->OpenFile(path, OpenMode::kCreateTruncate, &f));
  f.reset();
  EXPECT_EQ(ReadAll(env, path), "");
}

TEST(PosixEnv, ReadOnlyRefusesWritesAndMissingFiles) {
  TempDir dir;
  Env* env = Env::Default().get();
  std::unique_ptr<File> f;
  Status s = env->OpenFile(dir.Join("missing"), OpenMode::kReadOnly, &f);
  EXPECT_TRUE(s.IsNotFound()) << s.ToString();
  EXPECT_NE(s.message().find("missing"), std::string::npos);
  EXPECT_TRUE(env->OpenFile(dir.Join("missing"), OpenMode::kReadWrite, &f).IsNotFound());

  ASSERT_OK(env->OpenFile(dir.Join("ro"), OpenMode::kCreate, &f));
  f.reset();
  ASSERT_OK(env->OpenFile(dir.Join("ro"), OpenMode::kReadOnly, &f));
  s = f->Append("x");
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_NE(s.message().find(dir.Join("ro")), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("Bad file descriptor"), std::string::npos) << s.ToString();
  // Opening a directory as a file is refused.
  EXPECT_FALSE(env->OpenFile(dir.path(), OpenMode::kReadOnly, &f).ok());
}

TEST(PosixEnv, LargeWriteRoundTrips) {
  TempDir dir;
  Env* env = Env::Default().get();
  std::string data(5 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 + (i >> 12));
  std::unique_ptr<File> f;
  ASSERT_OK(env->OpenFile(dir.Join("big"), OpenMode::kCreateTruncate, &f));
  ASSERT_OK(f->Append(data));
  f.reset();
  EXPECT_TRUE(ReadAll(env, dir.Join("big")) == data);
}

// A writable mapping stores into the file itself: what is stored is read
// back through the file without any write call; bad ranges are refused.
TEST(PosixEnv, MapWritableStoresIntoTheFile) {
  TempDir dir;
  Env* env = Env::Default().get();
  std::unique_ptr<File> f;
  ASSERT_OK(env->OpenFile(dir.Join("mapped"), OpenMode::kCreateTruncate, &f));
  ASSERT_OK(f->Write(0, std::string(3 * 4096, '\0')));
  std::unique_ptr<MappedRegion> region;
  EXPECT_TRUE(f->MapWritable(100, 4096, &region).IsInvalidArgument());
  EXPECT_TRUE(f->MapWritable(0, 0, &region).IsInvalidArgument());
  Status s = f->MapWritable(4096, 2 * 4096, &region);
  if (s.IsNotSupported()) GTEST_SKIP() << s.ToString();  // a copy-on-write file system
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(region->size(), 2u * 4096);
  std::memcpy(region->data() + 10, "mapped bytes", 12);
  char buf[12];
  size_t got = 0;
  ASSERT_OK(f->Read(4096 + 10, sizeof(buf), buf, &got));
  ASSERT_EQ(got, sizeof(buf));
  EXPECT_EQ(std::string(buf, got), "mapped bytes");
  ASSERT_OK(f->Sync());
  region.reset();
  ASSERT_OK(f->Close());
  const std::string all = ReadAll(env, dir.Join("mapped"));
  EXPECT_EQ(all.size(), 3u * 4096);  // a mapping never changes the size
  EXPECT_EQ(all.substr(4096 + 10, 12), "mapped bytes");
}

TEST(PosixEnv, DirectoryOperations) {
  TempDir dir;
  Env* env = Env::Default().get();
  std::string sub = dir.Join("sub");
  ASSERT_OK(env->CreateDir(sub));
  ASSERT_OK(env->CreateDir(sub));  // exists: fine
  std::unique_ptr<File> f;
  ASSERT_OK(env->OpenFile(sub + "/a", OpenMode::kCreate, &f));
  ASSERT_OK(env->OpenFile(sub + "/b", OpenMode::kCreate, &f));
  f.reset();
  EXPECT_TRUE(env->CreateDir(sub + "/a").IsIOError());  // a file is in the way
  std::vector<std::string> names;
  ASSERT_OK(env->GetChildren(sub, &names));
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b"}));

  ASSERT_OK(env->RenameFile(sub + "/a", sub + "/c"));
  EXPECT_FALSE(env->FileExists(sub + "/a"));
  EXPECT_TRUE(env->FileExists(sub + "/c"));
  ASSERT_OK(env->SyncDir(sub));
  ASSERT_OK(env->DeleteFile(sub + "/c"));
  EXPECT_TRUE(env->DeleteFile(sub + "/c").IsNotFound());
  EXPECT_FALSE(env->RenameFile(sub + "/nope", sub + "/x").ok());
  ASSERT_OK(env->GetChildren(sub, &names));
  EXPECT_EQ(names, std::vector<std::string>{"b"});
  EXPECT_TRUE(env->GetChildren(dir.Join("none"), &names).IsNotFound());
  EXPECT_FALSE(env->SyncDir(dir.Join("none")).ok());
}

TEST(PosixEnv, LockIsExclusiveInProcess) {
  TempDir dir;
  Env* env = Env::Default().get();
  std::string path = dir.Join("LOCK");
  std::unique_ptr<FileLock> lock;
  ASSERT_OK(env->LockFile(path, &lock));
  std::unique_ptr<FileLock> second;
  Status s = env->LockFile(path, &second);
  EXPECT_TRUE(s.IsBusy()) << s.ToString();
  EXPECT_NE(s.message().find("locked"), std::string::npos);
  // Another spelling of the same file is the same lock.
  s = env->LockFile(dir.path() + "/./LOCK", &second);
  EXPECT_TRUE(s.IsBusy()) << s.ToString();
  lock.reset();
  ASSERT_OK(env->LockFile(path, &second));
  second.reset();
  ASSERT_OK(env->LockFile(path, &lock));
}

// Exit code of a forked child that tries to take `path`: 0 locked, 1 Busy, 2 other.
int LockFromChild(const std::string& path) {
  pid_t pid = fork();
  if (pid == 0) {
    std::unique_ptr<FileLock> lock;
    Status s = Env::Default()->LockFile(path, &lock);
    _exit(s.ok() ? 0 : s.IsBusy() ? 1 : 2);
  }
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, 0), pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(PosixEnv, LockIsExclusiveAcrossProcesses) {
  TempDir dir;
  std::string path = dir.Join("LOCK");
  EXPECT_EQ(LockFromChild(path), 0);  // free: the child gets it (released at exit)
  std::unique_ptr<FileLock> lock;
  ASSERT_OK(Env::Default()->LockFile(path, &lock));
  EXPECT_EQ(LockFromChild(path), 1);
  lock.reset();
  EXPECT_EQ(LockFromChild(path), 0);
}

// --- FaultInjectionEnv ---

TEST(FaultEnv, PassesThroughAndCounts) {
  TempDir dir;
  FaultInjectionEnv env(Env::Default());
  std::unique_ptr<File> f;
  ASSERT_OK(env.OpenFile(dir.Join("x"), OpenMode::kCreateTruncate, &f));
  ASSERT_OK(f->Append("abc"));
  ASSERT_OK(f->Write(3, "def"));
  ASSERT_OK(f->Sync());
  char buf[8];
  size_t got = 0;
  ASSERT_OK(f->Read(0, 6, buf, &got));
  EXPECT_EQ(std::string(buf, got), "abcdef");
  EXPECT_EQ(env.Count(FaultOp::kOpen), 1u);
  EXPECT_EQ(env.Count(FaultOp::kWrite), 2u);
  EXPECT_EQ(env.Count(FaultOp::kSync), 1u);
  EXPECT_EQ(env.Count(FaultOp::kRead), 1u);
  EXPECT_EQ(env.Injected(), 0u);
}

TEST(FaultEnv, EioAfterNOpsOnMatchingFilesOnly) {
  TempDir dir;
  FaultInjectionEnv env(Env::Default());
  env.AddRule({.file_substring = "wal", .op = FaultOp::kWrite, .error = EIO, .after_ops = 3});
  std::unique_ptr<File> wal, data;
  ASSERT_OK(env.OpenFile(dir.Join("000001.wal"), OpenMode::kCreateTruncate, &wal));
  ASSERT_OK(env.OpenFile(dir.Join("data"), OpenMode::kCreateTruncate, &data));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(wal->Append("x").ok()) << i;
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(data->Append("y").ok()) << i;
  Status s = wal->Append("x");
  EXPECT_TRUE(s.IsIOError());
  EXPECT_NE(s.message().find("Input/output error"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("000001.wal"), std::string::npos) << s.ToString();
  EXPECT_TRUE(wal->Append("x").IsIOError());  // not one-shot: keeps failing
  EXPECT_EQ(env.Injected(), 2u);
  env.ClearRules();
  EXPECT_OK(wal->Append("x"));
  wal.reset();
  EXPECT_EQ(ReadAll(Env::Default().get(), dir.Join("000001.wal")), "xxxx");
}

TEST(FaultEnv, ShortWriteLeavesPrefix) {
  TempDir dir;
  FaultInjectionEnv env(Env::Default());
  env.AddRule({.file_substring = "",
               .op = FaultOp::kWrite,
               .error = ENOSPC,
               .after_ops = 1,
               .short_write = true,
               .one_shot = true});
  std::unique_ptr<File> f;
  ASSERT_OK(env.OpenFile(dir.Join("f"), OpenMode::kCreateTruncate, &f));
  ASSERT_OK(f->Append("head-"));
  Status s = f->Append("0123456789");
  EXPECT_TRUE(s.IsIOError());
  EXPECT_NE(s.message().find("No space left on device"), std::string::npos) << s.ToString();
  ASSERT_OK(f->Append("|"));  // one-shot: the rule is gone
  f.reset();
  EXPECT_EQ(ReadAll(Env::Default().get(), dir.Join("f")), "head-01234|");
}

TEST(FaultEnv, FsyncFailureAndOtherOps) {
  TempDir dir;
  FaultInjectionEnv env(Env::Default());
  env.AddRule({.file_substring = "", .op = FaultOp::kSync, .error = EIO});
  env.AddRule({.file_substring = "data", .op = FaultOp::kRename, .error = EIO});
  env.AddRule({.file_substring = "locked", .op = FaultOp::kOpen, .error = EACCES});
  env.AddRule({.file_substring = "", .op = FaultOp::kTruncate, .error = EIO, .one_shot = true});
  env.AddRule({.file_substring = "", .op = FaultOp::kSyncDir, .error = EIO, .one_shot = true});
  std::unique_ptr<File> f;
  ASSERT_OK(env.OpenFile(dir.Join("f"), OpenMode::kCreateTruncate, &f));
  ASSERT_OK(f->Append("abc"));
  EXPECT_TRUE(f->Sync().IsIOError());
  EXPECT_TRUE(f->Truncate(1).IsIOError());
  EXPECT_OK(f->Truncate(1));
  EXPECT_TRUE(env.RenameFile(dir.Join("f"), dir.Join("data")).IsIOError());
  EXPECT_TRUE(env.FileExists(dir.Join("f")));
  EXPECT_OK(env.RenameFile(dir.Join("f"), dir.Join("g")));
  EXPECT_TRUE(env.OpenFile(dir.Join("locked"), OpenMode::kCreate, &f).IsIOError());
  std::unique_ptr<FileLock> lock;
  EXPECT_TRUE(env.LockFile(dir.Join("locked"), &lock).IsIOError());
  EXPECT_TRUE(env.SyncDir(dir.path()).IsIOError());
  EXPECT_OK(env.SyncDir(dir.path()));
  EXPECT_EQ(env.Count(FaultOp::kSync), 1u);
  EXPECT_EQ(env.Count(FaultOp::kRename), 2u);
}

// MapWritable and PunchHole go through to the real file (the log's mapped
// path and the data file's hole punching used to run only without faults),
// and rules can fail them.
TEST(FaultEnv, MapWritableAndPunchHoleAreForwarded) {
  TempDir dir;
  FaultInjectionEnv env(Env::Default());
  std::unique_ptr<File> f;
  ASSERT_OK(env.OpenFile(dir.Join("f"), OpenMode::kCreateTruncate, &f));
  ASSERT_OK(f->Write(0, std::string(3 * 4096, 'a')));
  std::unique_ptr<MappedRegion> region;
  Status s = f->MapWritable(0, 4096, &region);
  if (s.IsNotSupported()) GTEST_SKIP() << "no writable mappings here: " << s.ToString();
  ASSERT_TRUE(s.ok()) << s.ToString();
  std::memcpy(region->data(), "mapped", 6);
  region.reset();
  ASSERT_OK(f->Sync());
  s = f->PunchHole(4096, 4096);
  const bool punched = s.ok();
  EXPECT_TRUE(s.ok() || s.IsNotSupported()) << s.ToString();
  f.reset();
  const std::string bytes = ReadAll(Env::Default().get(), dir.Join("f"));
  EXPECT_EQ(bytes.substr(0, 7), "mappeda");
  if (punched) {
    EXPECT_EQ(bytes.substr(4096, 4096), std::string(4096, '\0'));
  }
  EXPECT_EQ(env.Count(FaultOp::kMap), 1u);
  EXPECT_EQ(env.Count(FaultOp::kPunch), 1u);

  env.AddRule({.file_substring = "f", .op = FaultOp::kMap, .error = ENOMEM});
  env.AddRule({.file_substring = "f", .op = FaultOp::kPunch, .error = EIO});
  ASSERT_OK(env.OpenFile(dir.Join("f"), OpenMode::kReadWrite, &f));
  EXPECT_TRUE(f->MapWritable(0, 4096, &region).IsIOError());
  EXPECT_TRUE(f->PunchHole(0, 4096).IsIOError());
  EXPECT_EQ(env.Injected(), 2u);
}

TEST(FaultEnv, ProbabilityIsSeededAndRoughlyRight) {
  TempDir dir;
  uint64_t seed = test::TestSeed();
  auto run = [&](uint64_t s) {
    FaultInjectionEnv env(Env::Default());
    env.SetSeed(s);
    env.AddRule({.file_substring = "", .op = FaultOp::kWrite, .error = EIO, .probability = 0.25});
    std::unique_ptr<File> f;
    EXPECT_OK(env.OpenFile(dir.Join("p"), OpenMode::kCreateTruncate, &f));
    std::string pattern;
    for (int i = 0; i < 2000; ++i) pattern += f->Append("z").ok() ? '.' : 'x';
    return pattern;
  };
  std::string a = run(seed), b = run(seed);
  EXPECT_EQ(a, b);  // replayable
  auto failures = std::count(a.begin(), a.end(), 'x');
  EXPECT_GT(failures, 350);
  EXPECT_LT(failures, 650);
}

TEST(FaultEnv, ThreadSafeCounting) {
  TempDir dir;
  auto env = std::make_shared<FaultInjectionEnv>(Env::Default());
  env->AddRule({.file_substring = "t", .op = FaultOp::kWrite, .error = EIO, .after_ops = 1000});
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::unique_ptr<File> f;
      std::string path = dir.Join("t");
      path += std::to_string(t);
      ASSERT_OK(env->OpenFile(path, OpenMode::kCreateTruncate, &f));
      for (int i = 0; i < 500; ++i) {
        if (!f->Append("q").ok()) failures++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(env->Count(FaultOp::kWrite), 2000u);
  EXPECT_EQ(failures.load(), 1000);
  EXPECT_EQ(env->Injected(), 1000u);
}

}  // namespace
}  // namespace arenakv
