// PowerLossEnv: an Env wrapper for tests that can pull the plug.
//
// It keeps, for every file of one directory, the content the file had at its
// last successful Sync() (its durable image), and the directory's entries as
// of its last SyncDir(). PowerCut() records what the page cache holds at that
// moment and makes every later mutating call fail with EIO, as a dead disk
// would. Once the database is closed, WriteCrashImage() rewrites the
// directory into a state a power loss could have left:
//   - each 512-byte sector that differs between the durable image and the
//     cut-time content holds either one (all new, all old, each chosen at
//     random, or the first few in file order: a torn write);
//   - a file's length is anywhere between its durable and its cut-time one;
//   - of the directory's entry changes since its last sync (creates, renames,
//     deletes), only a prefix survives, as a journaling file system keeps
//     them in order.
// Stores through a MappedRegion make no call; they count as unsynced until
// the next Sync() of their file, as the page cache treats them. Reads pass
// through untouched. Files outside the directory pass through too.
//
//   auto env = std::make_shared<test::PowerLossEnv>(Env::Default(), dir);
//   options.env = env;  ... writers ...  env->PowerCut();  db->Close();
//   ASSERT_OK(env->WriteCrashImage(seed, &description));
//
// LevelDB's FaultInjectionTestEnv and RocksDB's FaultInjectionTestFS are the
// models: this one adds sectors, torn writes and mappings.
//
// Thread safety: every method may be called from any thread. Mutating calls
// are serialized by one mutex (a test Env: simple beats fast).
#ifndef ARENAKV_TESTS_ENGINE_POWER_LOSS_ENV_H_
#define ARENAKV_TESTS_ENGINE_POWER_LOSS_ENV_H_

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "arenakv/env.h"
#include "port/mutex.h"

namespace arenakv::test {

// How the unsynced sectors of each file fare in WriteCrashImage().
enum class CrashStyle {
  kKeepAll,  // every write reached the disk (as after a SIGKILL)
  kDropAll,  // none did: the durable images exactly
  kRandom,   // each sector independently
  kPrefix,   // the first n differing sectors of each file, in offset order
  kMixed,    // one of the above per file, chosen at random
};

class PowerLossEnv final : public Env {
 public:
  static constexpr uint64_t kSectorBytes = 512;

  // Tracks the files directly in `dir`; whatever they hold now counts as
  // durable, and their names as synced.
  PowerLossEnv(std::shared_ptr<Env> base, std::string dir)
      : state_(std::make_shared<State>(std::move(base), std::move(dir))) {
    state_->Scan();
  }

  // Pulls the plug now.
  void PowerCut() {
    port::MutexLock l(&state_->mu);
    state_->CutLocked();
  }
  // Pulls the plug inside the n-th mutating call from now (n >= 1): that
  // call, and every later one, fails.
  void CutAtCall(uint64_t n) {
    port::MutexLock l(&state_->mu);
    state_->cut_at = state_->calls + n;
  }
  bool cut() const {
    port::MutexLock l(&state_->mu);
    return state_->cut;
  }
  // Mutating calls made so far (writes, syncs, truncates, maps, punches,
  // creates, renames, deletes, directory syncs), failed ones included.
  uint64_t calls() const {
    port::MutexLock l(&state_->mu);
    return state_->calls;
  }

  // Cuts the power if that has not happened, then rewrites the directory as
  // the cut could have left it, chosen by `seed`. Call it with no database
  // open on the directory. *description says what was kept, for a failure
  // message.
  Status WriteCrashImage(uint64_t seed, CrashStyle style, std::string* description) {
    port::MutexLock l(&state_->mu);
    if (!state_->cut) state_->CutLocked();
    return state_->WriteImageLocked(seed, style, description);
  }

  Status OpenFile(const std::string& path, OpenMode mode, std::unique_ptr<File>* file) override {
    std::unique_ptr<File> inner;
    uint64_t id = 0;
    {
      port::MutexLock l(&state_->mu);
      const bool tracked = state_->Tracked(path);
      const bool creates = mode == OpenMode::kCreate || mode == OpenMode::kCreateTruncate;
      if (creates && state_->Call()) return Dead("open", path);
      if (tracked) state_->AdoptLocked(path);
      const bool existed = state_->live.count(path) > 0;
      Status s = state_->base->OpenFile(path, mode, &inner);
      if (!s.ok()) return s;
      if (!tracked) {
        *file = std::move(inner);
        return Status::OK();
      }
      if (existed) {
        id = state_->live[path];
        // O_TRUNC emptied it: everything it held is unsynced change.
        FileImage* f = state_->files[id].get();
        if (mode == OpenMode::kCreateTruncate && !f->durable.empty()) {
          f->dirty.push_back({0, f->durable.size()});
        }
      } else {
        id = state_->NewFileLocked();
        state_->live[path] = id;
        state_->ops.push_back({NameOp::kCreate, path, {}, id});
      }
    }
    *file = std::make_unique<PowerLossFile>(state_, std::move(inner), id);
    return Status::OK();
  }
  Status CreateDir(const std::string& path) override { return state_->base->CreateDir(path); }
  bool FileExists(const std::string& path) override { return state_->base->FileExists(path); }
  Status GetChildren(const std::string& dir, std::vector<std::string>* names) override {
    return state_->base->GetChildren(dir, names);
  }
  Status DeleteFile(const std::string& path) override {
    port::MutexLock l(&state_->mu);
    if (state_->Call()) return Dead("delete", path);
    if (state_->Tracked(path)) state_->AdoptLocked(path);
    Status s = state_->base->DeleteFile(path);
    if (s.ok() && state_->Tracked(path) && state_->live.count(path) > 0) {
      state_->ops.push_back({NameOp::kDelete, path, {}, state_->live[path]});
      state_->live.erase(path);
    }
    return s;
  }
  Status RenameFile(const std::string& from, const std::string& to) override {
    port::MutexLock l(&state_->mu);
    if (state_->Call()) return Dead("rename", from);
    const bool tracked = state_->Tracked(from) && state_->Tracked(to);
    if (tracked) {
      state_->AdoptLocked(from);
      state_->AdoptLocked(to);
    }
    Status s = state_->base->RenameFile(from, to);
    if (s.ok() && tracked && state_->live.count(from) > 0) {
      const uint64_t id = state_->live[from];
      state_->ops.push_back({NameOp::kRename, from, to, id});
      state_->live.erase(from);
      state_->live[to] = id;
    }
    return s;
  }
  Status SyncDir(const std::string& dir) override {
    port::MutexLock l(&state_->mu);
    if (state_->Call()) return Dead("fsync directory", dir);
    Status s = state_->base->SyncDir(dir);
    if (s.ok() && dir == state_->dir) {
      state_->durable_names = state_->live;
      state_->ops.clear();
    }
    return s;
  }
  Status LockFile(const std::string& path, std::unique_ptr<FileLock>* lock) override {
    return state_->base->LockFile(path, lock);
  }

 private:
  struct Range {
    uint64_t begin;
    uint64_t end;
  };

  struct FileImage {
    std::string durable;                       // content as of the last successful Sync()
    std::vector<Range> dirty;                  // written since, by calls
    std::multimap<uint64_t, uint64_t> mapped;  // live writable mappings: offset -> end
    std::string at_cut;                        // what the page cache held at the cut
    bool captured = false;
  };

  enum class NameOp { kCreate, kDelete, kRename };
  struct NameChange {
    NameOp op;
    std::string from;
    std::string to;  // kRename only
    uint64_t id;
  };

  struct State {
    State(std::shared_ptr<Env> b, std::string d) : base(std::move(b)), dir(std::move(d)) {}

    bool Tracked(const std::string& path) const {
      const size_t slash = path.rfind('/');
      return slash != std::string::npos && path.compare(0, slash, dir) == 0 &&
             slash == dir.size() && path.find('/', slash + 1) == std::string::npos &&
             path.compare(slash + 1, std::string::npos, "LOCK") != 0;
    }

    // Counts a mutating call; true when the power is (or just went) off.
    bool Call() REQUIRES(mu) {
      ++calls;
      if (!cut && cut_at != 0 && calls >= cut_at) CutLocked();
      return cut;
    }

    uint64_t NewFileLocked() REQUIRES(mu) {
      const uint64_t id = next_id++;
      files[id] = std::make_unique<FileImage>();
      return id;
    }

    static Status ReadAll(Env* env, const std::string& path, std::string* out) {
      std::unique_ptr<File> f;
      Status s = env->OpenFile(path, OpenMode::kReadOnly, &f);
      uint64_t size = 0;
      if (s.ok()) s = f->Size(&size);
      out->assign(size, '\0');
      size_t got = 0;
      if (s.ok() && size > 0) s = f->Read(0, size, out->data(), &got);
      out->resize(got);
      if (f != nullptr) f->Close().IgnoreError();
      return s;
    }

    // Starts tracking a file that exists on disk but not here (made before
    // this Env, or by another route) as durable.
    void AdoptLocked(const std::string& path) REQUIRES(mu) {
      if (live.count(path) > 0 || !base->FileExists(path)) return;
      const uint64_t id = NewFileLocked();
      ReadAll(base.get(), path, &files[id]->durable).IgnoreError();
      live[path] = id;
      durable_names[path] = id;
    }

    void Scan() {
      port::MutexLock l(&mu);
      std::vector<std::string> names;
      if (!base->GetChildren(dir, &names).ok()) return;
      for (const std::string& n : names) {
        const std::string path = dir + "/" + n;
        if (n != "." && n != ".." && Tracked(path)) AdoptLocked(path);
      }
    }

    void CutLocked() REQUIRES(mu) {
      if (cut) return;
      cut = true;
      for (const auto& [path, id] : live) {
        FileImage* f = files[id].get();
        if (!ReadAll(base.get(), path, &f->at_cut).ok()) f->at_cut = f->durable;
        f->captured = true;
      }
    }

    Status WriteImageLocked(uint64_t seed, CrashStyle style, std::string* description) REQUIRES(mu);

    const std::shared_ptr<Env> base;
    const std::string dir;
    mutable port::Mutex mu;
    std::map<uint64_t, std::unique_ptr<FileImage>> files GUARDED_BY(mu);
    std::map<std::string, uint64_t> live GUARDED_BY(mu);           // names now
    std::map<std::string, uint64_t> durable_names GUARDED_BY(mu);  // as of the last SyncDir
    std::vector<NameChange> ops GUARDED_BY(mu);                    // since then, in order
    uint64_t next_id GUARDED_BY(mu) = 1;
    uint64_t calls GUARDED_BY(mu) = 0;
    uint64_t cut_at GUARDED_BY(mu) = 0;
    bool cut GUARDED_BY(mu) = false;
    bool image_written GUARDED_BY(mu) = false;
  };

  static Status Dead(const std::string& what, const std::string& path) {
    return Status::IOError("power lost: " + what + " " + path, EIO);
  }

  class Region final : public MappedRegion {
   public:
    Region(std::shared_ptr<State> state, uint64_t id, std::unique_ptr<MappedRegion> inner,
           std::multimap<uint64_t, uint64_t>::iterator entry)
        : state_(std::move(state)), id_(id), inner_(std::move(inner)), entry_(entry) {}
    ~Region() override {
      port::MutexLock l(&state_->mu);
      FileImage* f = state_->files[id_].get();
      // Stores made through it stay unsynced until the next Sync().
      f->dirty.push_back({entry_->first, entry_->second});
      f->mapped.erase(entry_);
    }
    char* data() override { return inner_->data(); }
    size_t size() const override { return inner_->size(); }

   private:
    const std::shared_ptr<State> state_;
    const uint64_t id_;
    const std::unique_ptr<MappedRegion> inner_;
    const std::multimap<uint64_t, uint64_t>::iterator entry_;
  };

  class PowerLossFile final : public File {
   public:
    PowerLossFile(std::shared_ptr<State> state, std::unique_ptr<File> inner, uint64_t id)
        : state_(std::move(state)), inner_(std::move(inner)), id_(id) {}

    Status Read(uint64_t offset, size_t n, char* scratch, size_t* read) override {
      return inner_->Read(offset, n, scratch, read);
    }
    Status Write(uint64_t offset, std::string_view data) override {
      port::MutexLock l(&state_->mu);
      if (state_->Call()) return Dead("write", path());
      Image()->dirty.push_back({offset, offset + data.size()});
      return inner_->Write(offset, data);
    }
    // At the file's size, as O_APPEND would: a handle's own idea of its end
    // may be stale after another handle cut the file.
    Status Append(std::string_view data) override {
      port::MutexLock l(&state_->mu);
      if (state_->Call()) return Dead("append", path());
      uint64_t size = 0;
      Status s = inner_->Size(&size);
      if (!s.ok()) return s;
      Image()->dirty.push_back({size, size + data.size()});
      return inner_->Write(size, data);
    }
    // The new length is taken at the next Sync(); what the cut dropped is
    // dirty, so that bytes written there later (zeros first) are read back.
    Status Truncate(uint64_t size) override {
      port::MutexLock l(&state_->mu);
      if (state_->Call()) return Dead("truncate", path());
      uint64_t old = 0;
      Status s = inner_->Size(&old);
      if (!s.ok()) return s;
      FileImage* f = Image();
      const uint64_t end = std::max<uint64_t>(old, f->durable.size());
      if (end > size) f->dirty.push_back({size, end});
      return inner_->Truncate(size);
    }
    Status PunchHole(uint64_t offset, uint64_t length) override {
      port::MutexLock l(&state_->mu);
      if (state_->Call()) return Dead("punch hole", path());
      Image()->dirty.push_back({offset, offset + length});
      return inner_->PunchHole(offset, length);
    }
    // What was written (and stored through mappings) before the inner sync
    // starts is durable once it succeeds; what lands during it may or may
    // not be, and counts as not.
    Status Sync() override {
      port::MutexLock l(&state_->mu);
      if (state_->Call()) return Dead("fdatasync", path());
      FileImage* f = Image();
      uint64_t size = 0;
      Status s = inner_->Size(&size);
      std::vector<Range> ranges = f->dirty;
      for (const auto& [begin, end] : f->mapped) ranges.push_back({begin, end});
      std::vector<std::pair<uint64_t, std::string>> copies;
      for (const Range& r : ranges) {
        if (!s.ok() || r.begin >= size) continue;
        std::string bytes(std::min(r.end, size) - r.begin, '\0');
        size_t got = 0;
        s = inner_->Read(r.begin, bytes.size(), bytes.data(), &got);
        bytes.resize(got);
        copies.emplace_back(r.begin, std::move(bytes));
      }
      if (s.ok()) s = inner_->Sync();
      if (!s.ok()) return s;
      f->durable.resize(size, '\0');
      for (const auto& [at, bytes] : copies) f->durable.replace(at, bytes.size(), bytes);
      f->dirty.clear();
      return s;
    }
    Status MapWritable(uint64_t offset, size_t length,
                       std::unique_ptr<MappedRegion>* region) override {
      port::MutexLock l(&state_->mu);
      if (state_->Call()) return Dead("map", path());
      std::unique_ptr<MappedRegion> inner;
      Status s = inner_->MapWritable(offset, length, &inner);
      if (!s.ok()) return s;
      auto entry = Image()->mapped.emplace(offset, offset + inner->size());
      *region = std::make_unique<Region>(state_, id_, std::move(inner), entry);
      return s;
    }
    Status MapOver(void* addr, uint64_t offset, size_t length) override {
      port::MutexLock l(&state_->mu);
      if (state_->Call()) return Dead("map", path());
      return inner_->MapOver(addr, offset, length);
    }
    Status Size(uint64_t* size) override { return inner_->Size(size); }
    Status Close() override { return inner_->Close(); }
    const std::string& path() const override { return inner_->path(); }

   private:
    FileImage* Image() REQUIRES(state_->mu) { return state_->files[id_].get(); }

    const std::shared_ptr<State> state_;
    const std::unique_ptr<File> inner_;
    const uint64_t id_;
  };

  const std::shared_ptr<State> state_;
};

inline Status PowerLossEnv::State::WriteImageLocked(uint64_t seed, CrashStyle style,
                                                    std::string* description) {
  if (image_written) return Status::InvalidArgument("crash image already written");
  image_written = true;
  std::mt19937_64 rng(seed);
  auto coin = [&] { return rng() % 2 == 0; };
  std::string what;

  // Which entry changes survived: a prefix, in the order they were made.
  const size_t kept_ops = style == CrashStyle::kKeepAll   ? ops.size()
                          : style == CrashStyle::kDropAll ? 0
                                                          : rng() % (ops.size() + 1);
  std::map<std::string, uint64_t> names = durable_names;
  for (size_t i = 0; i < kept_ops; ++i) {
    const NameChange& c = ops[i];
    if (c.op == NameOp::kCreate) names[c.from] = c.id;
    if (c.op == NameOp::kDelete) names.erase(c.from);
    if (c.op == NameOp::kRename) {
      names.erase(c.from);
      names[c.to] = c.id;
    }
  }
  what += "entry changes kept " + std::to_string(kept_ops) + "/" + std::to_string(ops.size());

  // Clear the directory, then lay the chosen images down.
  std::vector<std::string> children;
  Status s = base->GetChildren(dir, &children);
  for (const std::string& n : children) {
    const std::string path = dir + "/" + n;
    if (s.ok() && n != "." && n != ".." && Tracked(path)) s = base->DeleteFile(path);
  }
  for (const auto& [path, id] : names) {
    if (!s.ok()) break;
    const FileImage& f = *files[id];
    const std::string& old_bytes = f.durable;
    const std::string& new_bytes = f.captured ? f.at_cut : f.durable;
    CrashStyle mine = style;
    if (mine == CrashStyle::kMixed) mine = static_cast<CrashStyle>(rng() % 4);
    // The length: anywhere between the two, on a sector boundary or at
    // either end.
    const uint64_t lo = std::min(old_bytes.size(), new_bytes.size());
    const uint64_t hi = std::max(old_bytes.size(), new_bytes.size());
    uint64_t length = mine == CrashStyle::kKeepAll   ? new_bytes.size()
                      : mine == CrashStyle::kDropAll ? old_bytes.size()
                                                     : lo + rng() % (hi - lo + 1);
    if (length != lo && length != hi && length % kSectorBytes != 0) {
      length = std::max(lo, length / kSectorBytes * kSectorBytes);
    }
    std::string image(length, '\0');
    auto byte_at = [](const std::string& b, uint64_t i) { return i < b.size() ? b[i] : '\0'; };
    uint64_t differing = 0, taken = 0;
    std::vector<uint64_t> changed;
    for (uint64_t sector = 0; sector * kSectorBytes < length; ++sector) {
      const uint64_t b = sector * kSectorBytes, e = std::min(length, b + kSectorBytes);
      bool same = true;
      for (uint64_t i = b; i < e && same; ++i)
        same = byte_at(old_bytes, i) == byte_at(new_bytes, i);
      if (!same) changed.push_back(sector);
      for (uint64_t i = b; i < e; ++i) image[i] = byte_at(old_bytes, i);
    }
    differing = changed.size();
    const uint64_t prefix = mine == CrashStyle::kPrefix ? rng() % (differing + 1) : 0;
    for (uint64_t k = 0; k < changed.size(); ++k) {
      bool take_new = mine == CrashStyle::kKeepAll || (mine == CrashStyle::kRandom && coin()) ||
                      (mine == CrashStyle::kPrefix && k < prefix);
      if (!take_new) continue;
      ++taken;
      const uint64_t b = changed[k] * kSectorBytes, e = std::min(length, b + kSectorBytes);
      for (uint64_t i = b; i < e; ++i) image[i] = byte_at(new_bytes, i);
    }
    what += "; " + path.substr(dir.size() + 1) + ": " + std::to_string(old_bytes.size()) + " -> " +
            std::to_string(new_bytes.size()) + " bytes, kept " + std::to_string(length) + " with " +
            std::to_string(taken) + "/" + std::to_string(differing) + " new sectors";
    std::unique_ptr<File> out;
    s = base->OpenFile(path, OpenMode::kCreateTruncate, &out);
    if (s.ok() && !image.empty()) s = out->Write(0, image);
    if (s.ok()) s = out->Sync();
    if (out != nullptr) {
      Status c = out->Close();
      if (s.ok()) s = c;
    }
  }
  if (s.ok()) s = base->SyncDir(dir);
  if (description != nullptr) *description = what;
  return s;
}

}  // namespace arenakv::test

#endif  // ARENAKV_TESTS_ENGINE_POWER_LOSS_ENV_H_
