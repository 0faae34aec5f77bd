// Corruption tests: flip random bits and bytes in every file of a closed
// database (data file, write-ahead logs, and whatever else the directory
// holds), then open, read every key, scan, and Verify(). Each step must
// either report Corruption naming the damaged file or return correct data:
// never crash, never hang, never return data that was not written.
//
// "Correct" is judged against a model of every write: the full final state;
// or, when a write-ahead log was damaged or truncated, the state after some
// prefix of the writes logged since the last checkpoint (recovery may stop
// at a damaged record, but may not invent or reorder anything). Damage to
// any other file allows only the full state or Corruption.
//
// Each trial runs in a forked child so a crash is reported (with the seed,
// the file and the offsets) instead of killing the test program.
// ARENAKV_SEED replays; ARENAKV_LONG_TESTS=1 runs ten times more trials.

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "arenakv/alloc/segment_pool.h"
#include "arenakv/db.h"
#include "test_util.h"

namespace arenakv {
namespace {

namespace fs = std::filesystem;
using Model = std::map<std::string, std::string>;

bool LongTests() {
  const char* e = std::getenv("ARENAKV_LONG_TESTS");
  return e != nullptr && *e != '\0' && *e != '0';
}

Options FixtureOptions() {
  Options o;
  o.page_bytes = 4096;
  o.cache_bytes = size_t{1} << 20;
  o.background_checkpoints = false;  // checkpoints exactly where the fixture says
  return o;
}

struct WriteOp {
  std::string key;
  std::optional<std::string> value;  // nullopt = delete
};

void Apply(const WriteOp& op, Model* m) {
  if (op.value) {
    (*m)[op.key] = *op.value;
  } else {
    m->erase(op.key);
  }
}

// The fixture's write history: ops [0, a) then Checkpoint, [a, b) then
// Checkpoint, [b, c) left in the WAL (crashed) or checkpointed by Close().
struct History {
  std::vector<WriteOp> ops;
  size_t a = 0, b = 0, c = 0;
};

History MakeHistory(uint64_t seed) {
  std::mt19937_64 rng(seed);
  History h;
  auto value = [&](size_t i) {
    size_t len = rng() % 10 == 0 ? 1000 + rng() % 6000 : rng() % 300;
    std::string v = "v" + std::to_string(i) + ":";
    v.resize(std::max(len, v.size()), static_cast<char>('a' + i % 26));
    if (rng() % 3 == 0) {
      for (size_t j = v.size() / 2; j < v.size(); j++) v[j] = static_cast<char>(rng());
    }
    return v;
  };
  auto key = [&](uint64_t k) { return "key/" + std::to_string(k * 7 % 3001); };
  for (size_t i = 0; i < 2000; i++) h.ops.push_back({key(i), value(i)});
  h.a = h.ops.size();
  for (size_t i = 0; i < 1200; i++) {
    if (rng() % 4 == 0) {
      h.ops.push_back({key(rng() % 2500), std::nullopt});
    } else {
      h.ops.push_back({key(rng() % 2500), value(h.ops.size())});
    }
  }
  h.b = h.ops.size();
  for (size_t i = 0; i < 600; i++) {
    if (rng() % 4 == 0) {
      h.ops.push_back({key(rng() % 2500), std::nullopt});
    } else {
      h.ops.push_back({key(rng() % 2500 + 600), value(h.ops.size())});
    }
  }
  h.c = h.ops.size();
  return h;
}

// Builds the fixture in a child process: `crashed` leaves the last phase in
// the WAL by exiting without Close().
::testing::AssertionResult BuildFixture(const std::string& path, const History& h, bool crashed) {
  pid_t pid = fork();
  if (pid < 0) return ::testing::AssertionFailure() << "fork failed";
  if (pid == 0) {
    std::unique_ptr<DB> db;
    if (!DB::Open(FixtureOptions(), path, &db).ok()) _exit(2);
    for (size_t i = 0; i < h.c; i++) {
      const WriteOp& op = h.ops[i];
      Status s = op.value ? db->Put(WriteOptions{}, op.key, *op.value)
                          : db->Delete(WriteOptions{}, op.key);
      if (!s.ok()) _exit(3);
      if ((i + 1 == h.a || i + 1 == h.b) && !db->Checkpoint().ok()) _exit(4);
    }
    if (crashed) _exit(0);  // no Close(): the last phase lives in the WAL only
    if (!db->Close().ok()) _exit(5);
    _exit(0);
  }
  int wstatus = 0;
  if (waitpid(pid, &wstatus, 0) != pid || !WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    return ::testing::AssertionFailure() << "fixture child failed, status " << wstatus;
  }
  return ::testing::AssertionSuccess();
}

// What a trial observed, judged in the child.
struct Judge {
  const History* h;
  size_t lowest_prefix;  // the oldest admissible state (ops [0, lowest_prefix))
  std::string file;      // the damaged file's name
  std::string failure;   // first violation, "" if none
  bool saw_corruption = false;
  bool stale = false;  // a prefix state older than the full one was served

  void Fail(const std::string& what) {
    if (failure.empty()) failure = what;
  }

  // A non-OK status from a read path: only Corruption naming the file.
  void CheckError(const Status& s, const std::string& where) {
    if (s.IsCorruption()) {
      saw_corruption = true;
      if (s.message().find(file) == std::string::npos) {
        Fail(where + ": Corruption does not name the damaged file " + file + ": " + s.ToString());
      }
    } else {
      Fail(where + ": expected Corruption or correct data, got " + s.ToString());
    }
  }

  // The largest p in [lowest_prefix, c] with state(p) == observed, or -1.
  long FindPrefix(const Model& observed) const {
    Model state;
    for (size_t i = 0; i < lowest_prefix; i++) Apply(h->ops[i], &state);
    auto same = [&](const std::string& k) {
      auto s = state.find(k);
      auto o = observed.find(k);
      if (s == state.end() || o == observed.end()) return s == state.end() && o == observed.end();
      return s->second == o->second;
    };
    long mismatches = 0;
    std::set<std::string> keys;
    for (const auto& kv : state) keys.insert(kv.first);
    for (const auto& kv : observed) keys.insert(kv.first);
    for (const auto& k : keys) mismatches += same(k) ? 0 : 1;
    long found = mismatches == 0 ? static_cast<long>(lowest_prefix) : -1;
    for (size_t p = lowest_prefix; p < h->c; p++) {
      const std::string& k = h->ops[p].key;
      const bool before = same(k);
      Apply(h->ops[p], &state);
      const bool after = same(k);
      mismatches += (before ? 1 : 0) - (after ? 1 : 0);
      if (mismatches == 0) found = static_cast<long>(p + 1);
    }
    return found;
  }

  // For a failure message: how far `observed` is from a few telling states,
  // e.g. "the checkpoint before last plus the WAL" (a fallback to an older
  // meta block replayed with a log that does not cover the gap).
  std::string Diagnose(const Model& observed) const {
    auto distance = [&](const Model& m) {
      size_t d = 0;
      for (const auto& [k, v] : m) {
        auto o = observed.find(k);
        if (o == observed.end() || o->second != v) d++;
      }
      for (const auto& kv : observed) d += m.count(kv.first) ? 0 : 1;
      return d;
    };
    Model at_a, at_b, at_c, a_plus_c;
    for (size_t i = 0; i < h->c; i++) {
      if (i < h->a) Apply(h->ops[i], &at_a);
      if (i < h->b) Apply(h->ops[i], &at_b);
      Apply(h->ops[i], &at_c);
      if (i < h->a || i >= h->b) Apply(h->ops[i], &a_plus_c);
    }
    return "keys differing from: first checkpoint " + std::to_string(distance(at_a)) +
           ", second checkpoint " + std::to_string(distance(at_b)) + ", full state " +
           std::to_string(distance(at_c)) + ", first checkpoint + last phase's WAL " +
           std::to_string(distance(a_plus_c));
  }

  // Values a key may have in any admissible state (nullopt = absent).
  std::vector<std::optional<std::string>> Admissible(const std::string& key) const {
    std::optional<std::string> v;
    for (size_t i = 0; i < lowest_prefix; i++) {
      if (h->ops[i].key == key) v = h->ops[i].value;
    }
    std::vector<std::optional<std::string>> out{v};
    for (size_t i = lowest_prefix; i < h->c; i++) {
      if (h->ops[i].key == key) out.push_back(h->ops[i].value);
    }
    return out;
  }
};

// Runs in the trial child: open, scan, get every key, verify, close.
// Returns "OK <outcome>" or "FAIL <reason>".
std::string RunTrial(const std::string& path, Judge* j) {
  std::unique_ptr<DB> db;
  Status s = DB::Open(FixtureOptions(), path, &db);
  if (!s.ok()) {
    j->CheckError(s, "Open");
    return j->failure.empty() ? "OK corruption-at-open" : "FAIL " + j->failure;
  }
  // Full scan.
  Model observed;
  bool scan_ok = false;
  {
    std::unique_ptr<Iterator> it = db->NewIterator(ReadOptions{});
    std::string last;
    bool first = true;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      std::string k(it->key());
      if (!first && k <= last) j->Fail("scan out of order at " + k);
      first = false;
      last = k;
      observed[k] = std::string(it->value());
      if (observed.size() > 100000) {
        j->Fail("scan does not end");
        break;
      }
    }
    if (it->status().ok()) {
      scan_ok = true;
    } else {
      j->CheckError(it->status(), "scan");
    }
  }
  long prefix = -1;
  if (scan_ok) {
    prefix = j->FindPrefix(observed);
    if (prefix < 0) {
      j->Fail("scan returned data matching no admissible state (" +
              std::to_string(observed.size()) + " keys; " + j->Diagnose(observed) + ")");
    } else if (static_cast<size_t>(prefix) < j->h->c) {
      j->stale = true;
    }
  }
  // Point reads of every key ever written.
  std::set<std::string> keys;
  for (const WriteOp& op : j->h->ops) keys.insert(op.key);
  for (const std::string& k : keys) {
    std::string v;
    s = db->Get(ReadOptions{}, k, &v);
    if (!s.ok() && !s.IsNotFound()) {
      j->CheckError(s, "Get " + k);
      continue;
    }
    std::optional<std::string> got;
    if (s.ok()) got = v;
    if (prefix >= 0) {
      // Consistent with what the scan showed.
      auto o = observed.find(k);
      std::optional<std::string> want;
      if (o != observed.end()) want = o->second;
      if (got != want) j->Fail("Get " + k + " disagrees with the scan");
    } else {
      auto adm = j->Admissible(k);
      if (std::find(adm.begin(), adm.end(), got) == adm.end()) {
        j->Fail("Get " + k + " returned a value never written at that point");
      }
    }
  }
  VerifyReport report;
  s = db->Verify(&report);
  if (!s.ok()) {
    j->CheckError(s, "Verify");
  } else if (j->saw_corruption) {
    j->Fail("Verify() passed although reads reported Corruption");
  }
  db->Close().IgnoreError();
  db.reset();
  const alloc::ProcessPoolStats ps = alloc::GetProcessPoolStats();
  if (ps.mapped_bytes != 0 || ps.live_pools != 0) j->Fail("pool memory left after Close()");
  if (!j->failure.empty()) return "FAIL " + j->failure;
  if (j->saw_corruption) return "OK corruption";
  return j->stale ? "OK stale-prefix" : "OK intact";
}

struct Damage {
  std::string description;
};

// Flips bits / overwrites bytes of `file` in place.
Damage DamageFile(const std::string& file, std::mt19937_64& rng) {
  const uint64_t size = fs::file_size(file);
  Damage d;
  if (size == 0) {
    d.description = "empty file, unchanged";
    return d;
  }
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  auto flip_at = [&](uint64_t off, unsigned char mask) {
    f.seekg(static_cast<std::streamoff>(off));
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(static_cast<unsigned char>(c) ^ mask);
    f.seekp(static_cast<std::streamoff>(off));
    f.write(&c, 1);
    d.description += " " + std::to_string(off) + "^" + std::to_string(mask);
  };
  switch (rng() % 4) {
    case 0:  // a few single-bit flips anywhere
    case 1: {
      int n = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < n; i++) {
        flip_at(rng() % size, static_cast<unsigned char>(1u << (rng() % 8)));
      }
      break;
    }
    case 2: {  // a byte in the first 8 KiB (headers, meta blocks)
      flip_at(rng() % std::min<uint64_t>(size, 8192), static_cast<unsigned char>(1 + rng() % 255));
      break;
    }
    default: {  // a 16-byte run of garbage
      uint64_t off = rng() % size;
      for (uint64_t i = off; i < std::min(size, off + 16); i++) {
        flip_at(i, static_cast<unsigned char>(1 + rng() % 255));
      }
      break;
    }
  }
  return d;
}

class CorruptionTest : public ::testing::TestWithParam<bool> {};

TEST_P(CorruptionTest, DamagedFilesGiveCorruptionOrCorrectData) {
  const bool crashed = GetParam();
  const uint64_t seed = test::TestSeed();
  std::mt19937_64 rng(seed);
  const History h = MakeHistory(seed);
  test::TempDir dir;
  const std::string pristine = dir.Join("pristine");
  ASSERT_TRUE(BuildFixture(pristine, h, crashed));

  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(pristine)) {
    if (e.is_regular_file()) files.push_back(e.path().filename().string());
  }
  std::sort(files.begin(), files.end());
  std::string listing;
  for (const auto& f : files) {
    listing += " " + f + "(" + std::to_string(fs::file_size(pristine + "/" + f)) + ")";
  }
  std::fprintf(stderr, "[corruption] %s fixture files:%s\n", crashed ? "crashed" : "clean",
               listing.c_str());
  auto has = [&](const char* part) {
    return std::any_of(files.begin(), files.end(),
                       [&](const std::string& f) { return f.find(part) != std::string::npos; });
  };
  ASSERT_TRUE(has("data")) << "no data file in" << listing;
  if (crashed) {
    ASSERT_TRUE(has("wal")) << "a crashed database without a WAL:" << listing;
  }

  const int trials_per_file = LongTests() ? 200 : 20;
  std::map<std::string, int> outcomes;
  int failures = 0;
  for (const std::string& file : files) {
    const bool is_wal = file.find("wal") != std::string::npos;
    for (int trial = 0; trial < trials_per_file; trial++) {
      const std::string work = dir.Join("work");
      fs::remove_all(work);
      fs::copy(pristine, work, fs::copy_options::recursive);
      Damage d;
      // A quarter of the WAL trials truncate instead: a torn tail.
      if (is_wal && trial % 4 == 3) {
        const uint64_t size = fs::file_size(work + "/" + file);
        const uint64_t keep = size == 0 ? 0 : rng() % size;
        fs::resize_file(work + "/" + file, keep);
        d.description = " truncated to " + std::to_string(keep) + " of " + std::to_string(size);
      } else {
        d = DamageFile(work + "/" + file, rng);
      }

      Judge judge;
      judge.h = &h;
      judge.file = file;
      // Damage to a WAL may cost the writes it logged since the last
      // checkpoint (the crashed fixture's last phase), nothing older.
      judge.lowest_prefix = is_wal && crashed ? h.b : h.c;

      int fds[2];
      ASSERT_EQ(pipe(fds), 0);
      pid_t pid = fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) {
        close(fds[0]);
        alarm(60);  // a hang is a failure too
        std::string result = RunTrial(work, &judge);
        if (write(fds[1], result.data(), result.size()) < 0) _exit(9);
        _exit(result.rfind("OK", 0) == 0 ? 0 : 1);
      }
      close(fds[1]);
      std::string result;
      char buf[512];
      ssize_t n;
      while ((n = read(fds[0], buf, sizeof(buf))) > 0) result.append(buf, static_cast<size_t>(n));
      close(fds[0]);
      int wstatus = 0;
      ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
      if (WIFSIGNALED(wstatus)) {
        result = "FAIL killed by signal " + std::to_string(WTERMSIG(wstatus)) +
                 (WTERMSIG(wstatus) == SIGALRM ? " (hang)" : "");
      }
      if (result.rfind("OK", 0) != 0) {
        failures++;
        ADD_FAILURE() << "seed " << seed << (crashed ? " crashed" : " clean") << " fixture, file "
                      << file << ", trial " << trial << ", damage:" << d.description << ": "
                      << (result.empty() ? "no result" : result);
      } else {
        outcomes[file + " " + result.substr(3)]++;
      }
    }
  }
  std::string summary;
  for (const auto& [k, v] : outcomes) summary += "\n  " + k + ": " + std::to_string(v);
  std::fprintf(stderr, "[corruption] seed %llu %s fixture, outcomes:%s\n",
               static_cast<unsigned long long>(seed), crashed ? "crashed" : "clean",
               summary.c_str());
  EXPECT_EQ(failures, 0);
  // Flips in the data file must be caught somewhere most of the time; if
  // every trial read back intact data the damage was not reaching anything.
  int data_detected = 0;
  for (const auto& [k, v] : outcomes) {
    if (k.find("data") != std::string::npos && k.find("corruption") != std::string::npos) {
      data_detected += v;
    }
  }
  EXPECT_GT(data_detected, 0) << "no damage to the data file was ever detected";
  const alloc::ProcessPoolStats ps = alloc::GetProcessPoolStats();
  EXPECT_EQ(ps.mapped_bytes, 0u);
  EXPECT_EQ(ps.live_pools, 0u);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CorruptionTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("Crashed") : std::string("Clean");
                         });

}  // namespace
}  // namespace arenakv
