// FaultInjectionEnv: an Env wrapper for tests that makes chosen operations on
// chosen files fail the way real disks fail: an errno (EIO, ENOSPC) after N
// successful operations or with a seeded probability, a short write (a prefix
// of the data reaches the file, then the error: what a full disk looks like),
// a failing fsync. It also counts every operation by kind.
//
//   auto env = std::make_shared<arenakv::test::FaultInjectionEnv>(arenakv::Env::Default());
//   env->AddRule({.file_substring = "wal", .op = FaultOp::kWrite, .error = ENOSPC,
//                 .after_ops = 10, .short_write = true});
//   options.env = env;
//
// Thread safety: every method may be called from any thread. Files opened
// through it share its rules and counters and may outlive it.
#ifndef ARENAKV_TESTS_ENGINE_FAULT_ENV_H_
#define ARENAKV_TESTS_ENGINE_FAULT_ENV_H_

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "arenakv/env.h"
#include "port/mutex.h"

namespace arenakv::test {

enum class FaultOp : int {
  kRead = 0,
  kWrite,     // File::Write and File::Append
  kSync,      // File::Sync
  kOpen,      // Env::OpenFile and Env::LockFile
  kRename,    // Env::RenameFile (matched against both names)
  kTruncate,  // File::Truncate
  kDelete,    // Env::DeleteFile
  kSyncDir,   // Env::SyncDir
  kMap,       // File::MapWritable and MapOver (stores through a mapping are unsynced until Sync)
  kPunch,     // File::PunchHole
  kCount_,
};

struct FaultRule {
  std::string file_substring;  // "" matches every file
  FaultOp op = FaultOp::kWrite;
  int error = EIO;           // errno reported
  uint64_t after_ops = 0;    // matching ops that succeed before the rule may fire
  double probability = 1.0;  // once armed, chance that a matching op fails
  bool short_write = false;  // kWrite: half the data reaches the file first
  bool one_shot = false;     // remove the rule after it fired once
};

class FaultInjectionEnv final : public Env {
 public:
  explicit FaultInjectionEnv(std::shared_ptr<Env> base)
      : state_(std::make_shared<State>(std::move(base))) {}

  void AddRule(FaultRule rule) {
    port::MutexLock l(&state_->mu);
    state_->rules.push_back({std::move(rule), 0});
  }
  void ClearRules() {
    port::MutexLock l(&state_->mu);
    state_->rules.clear();
  }
  void SetSeed(uint64_t seed) {
    port::MutexLock l(&state_->mu);
    state_->rng.seed(seed);
  }
  // Operations attempted (failed ones included) of a kind, and faults injected.
  uint64_t Count(FaultOp op) const {
    return state_->counts[static_cast<int>(op)].load(std::memory_order_relaxed);
  }
  uint64_t Injected() const { return state_->injected.load(std::memory_order_relaxed); }
  // Bytes the reads that succeeded returned.
  uint64_t BytesRead() const { return state_->bytes_read.load(std::memory_order_relaxed); }
  void ResetCounts() {
    for (auto& c : state_->counts) c.store(0, std::memory_order_relaxed);
    state_->injected.store(0, std::memory_order_relaxed);
    state_->bytes_read.store(0, std::memory_order_relaxed);
  }
  Env* base() const { return state_->base.get(); }

  Status OpenFile(const std::string& path, OpenMode mode, std::unique_ptr<File>* file) override {
    Fault f = state_->Check(FaultOp::kOpen, path);
    if (f.fire) return Injected("open", path, f.error);
    std::unique_ptr<File> inner;
    Status s = state_->base->OpenFile(path, mode, &inner);
    if (!s.ok()) return s;
    *file = std::make_unique<FaultFile>(state_, std::move(inner));
    return Status::OK();
  }
  Status CreateDir(const std::string& path) override { return state_->base->CreateDir(path); }
  bool FileExists(const std::string& path) override { return state_->base->FileExists(path); }
  Status GetChildren(const std::string& dir, std::vector<std::string>* names) override {
    return state_->base->GetChildren(dir, names);
  }
  Status DeleteFile(const std::string& path) override {
    Fault f = state_->Check(FaultOp::kDelete, path);
    if (f.fire) return Injected("delete", path, f.error);
    return state_->base->DeleteFile(path);
  }
  Status RenameFile(const std::string& from, const std::string& to) override {
    Fault f = state_->Check(FaultOp::kRename, from + "\n" + to);
    if (f.fire) return Injected("rename", from + " to " + to, f.error);
    return state_->base->RenameFile(from, to);
  }
  Status SyncDir(const std::string& dir) override {
    Fault f = state_->Check(FaultOp::kSyncDir, dir);
    if (f.fire) return Injected("fsync directory", dir, f.error);
    return state_->base->SyncDir(dir);
  }
  Status LockFile(const std::string& path, std::unique_ptr<FileLock>* lock) override {
    Fault f = state_->Check(FaultOp::kOpen, path);
    if (f.fire) return Injected("open lock file", path, f.error);
    return state_->base->LockFile(path, lock);
  }

 private:
  struct Fault {
    bool fire = false;
    int error = 0;
    bool short_write = false;
  };

  struct ArmedRule {
    FaultRule rule;
    uint64_t seen;  // matching ops so far
  };

  struct State {
    explicit State(std::shared_ptr<Env> b) : base(std::move(b)) {}

    // Counts the op and decides, under the lock, whether a rule fires.
    Fault Check(FaultOp op, const std::string& name) {
      counts[static_cast<int>(op)].fetch_add(1, std::memory_order_relaxed);
      port::MutexLock l(&mu);
      for (size_t i = 0; i < rules.size(); ++i) {
        ArmedRule& r = rules[i];
        if (r.rule.op != op || name.find(r.rule.file_substring) == std::string::npos) continue;
        if (r.seen++ < r.rule.after_ops) continue;
        if (r.rule.probability < 1.0 &&
            std::uniform_real_distribution<double>(0.0, 1.0)(rng) >= r.rule.probability) {
          continue;
        }
        Fault f{true, r.rule.error, r.rule.short_write};
        if (r.rule.one_shot) rules.erase(rules.begin() + static_cast<std::ptrdiff_t>(i));
        injected.fetch_add(1, std::memory_order_relaxed);
        return f;
      }
      return Fault{};
    }

    const std::shared_ptr<Env> base;
    port::Mutex mu;
    std::vector<ArmedRule> rules GUARDED_BY(mu);
    std::mt19937_64 rng GUARDED_BY(mu){0x5eed};
    std::array<std::atomic<uint64_t>, static_cast<size_t>(FaultOp::kCount_)> counts{};
    std::atomic<uint64_t> injected{0};
    std::atomic<uint64_t> bytes_read{0};
  };

  static Status Injected(const std::string& what, const std::string& name, int error) {
    return Status::IOError("injected fault: " + what + " " + name, error);
  }

  class FaultFile final : public File {
   public:
    FaultFile(std::shared_ptr<State> state, std::unique_ptr<File> inner)
        : state_(std::move(state)), inner_(std::move(inner)) {}

    Status Read(uint64_t offset, size_t n, char* scratch, size_t* read) override {
      Fault f = state_->Check(FaultOp::kRead, path());
      if (f.fire) {
        *read = 0;
        return Injected("read", path(), f.error);
      }
      Status s = inner_->Read(offset, n, scratch, read);
      if (s.ok()) state_->bytes_read.fetch_add(*read, std::memory_order_relaxed);
      return s;
    }
    Status Write(uint64_t offset, std::string_view data) override {
      Fault f = state_->Check(FaultOp::kWrite, path());
      if (f.fire) {
        if (f.short_write && data.size() > 1) {
          inner_->Write(offset, data.substr(0, data.size() / 2)).IgnoreError();
        }
        return Injected("write", path(), f.error);
      }
      return inner_->Write(offset, data);
    }
    Status Append(std::string_view data) override {
      Fault f = state_->Check(FaultOp::kWrite, path());
      if (f.fire) {
        if (f.short_write && data.size() > 1) {
          inner_->Append(data.substr(0, data.size() / 2)).IgnoreError();
        }
        return Injected("append", path(), f.error);
      }
      return inner_->Append(data);
    }
    Status Sync() override {
      Fault f = state_->Check(FaultOp::kSync, path());
      if (f.fire) return Injected("fdatasync", path(), f.error);
      return inner_->Sync();
    }
    Status Truncate(uint64_t size) override {
      Fault f = state_->Check(FaultOp::kTruncate, path());
      if (f.fire) return Injected("truncate", path(), f.error);
      return inner_->Truncate(size);
    }
    // Forwarded, so the write-ahead log's mapped path and the data file's
    // hole punching run under faults too. A store through the mapping is no
    // I/O call (faults cannot reach it), but it is durable only once Sync()
    // succeeds, which faults can fail.
    Status MapWritable(uint64_t offset, size_t length,
                       std::unique_ptr<MappedRegion>* region) override {
      Fault f = state_->Check(FaultOp::kMap, path());
      if (f.fire) return Injected("map", path(), f.error);
      return inner_->MapWritable(offset, length, region);
    }
    Status MapOver(void* addr, uint64_t offset, size_t length) override {
      Fault f = state_->Check(FaultOp::kMap, path());
      if (f.fire) return Injected("map", path(), f.error);
      return inner_->MapOver(addr, offset, length);
    }
    Status PunchHole(uint64_t offset, uint64_t length) override {
      Fault f = state_->Check(FaultOp::kPunch, path());
      if (f.fire) return Injected("punch hole", path(), f.error);
      return inner_->PunchHole(offset, length);
    }
    Status Size(uint64_t* size) override { return inner_->Size(size); }
    Status Close() override { return inner_->Close(); }
    const std::string& path() const override { return inner_->path(); }

   private:
    const std::shared_ptr<State> state_;
    const std::unique_ptr<File> inner_;
  };

  const std::shared_ptr<State> state_;
};

}  // namespace arenakv::test

#endif  // ARENAKV_TESTS_ENGINE_FAULT_ENV_H_
