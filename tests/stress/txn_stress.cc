// txn_stress: proves arenakv's transactions under concurrency, close/reopen
// and crashes. Workloads (each on its own key prefix, all in one database):
//
//   bank     transfers between accounts from several threads; readers check
//            in every snapshot (GetSnapshot, iterators, transactions) that
//            the total is constant and no balance is negative.
//   counter  read-modify-write increments with retry on Conflict; the final
//            sum equals the number of committed increments (no lost update).
//   skew     the write-skew ("on-call doctors") workload: serializable
//            transactions must never break the invariant x + y >= 1;
//            snapshot-isolation ones may (documented); their anomalies are
//            counted and reported.
//   mixed    random inserts, deletes, scans (both directions) and aborted
//            transactions per thread, checked against a per-thread model.
//   crash    a child process commits (synced and not) and is SIGKILLed at a
//            random moment; every acknowledged commit must survive reopen.
//   all      bank + counter + skew + mixed together, then crash.
//
// While workloads run, a coordinator closes and reopens the database at
// random moments -- sometimes after quiescing the workers, sometimes under
// their feet (their calls then return Closed and they wait for the reopen).
// After every Close() the process's pool accounting must be zero.
//
// Exit status: 0 when no invariant was violated, 1 otherwise (the seed is
// printed at start and with every violation), 2 for bad flags.

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "arenakv/alloc/segment_pool.h"
#include "arenakv/db.h"

namespace arenakv::stress {
namespace {

using Clock = std::chrono::steady_clock;

// ------------------------------------------------------------------ flags

struct Flags {
  double seconds = 5;
  uint64_t seed = 0;
  bool seed_given = false;
  int threads = 4;
  std::string dir;
  std::string mode = "all";
  bool verbose = false;
};

Flags g_flags;
std::atomic<uint64_t> g_violations{0};
std::mutex g_print_mu;

void Log(const char* fmt, ...) {
  std::lock_guard<std::mutex> l(g_print_mu);
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stdout, fmt, ap);
  va_end(ap);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

// Reports a broken invariant. Only the first few are printed: one bug
// tends to repeat in every later check.
void Violation(const char* fmt, ...) {
  if (g_violations.fetch_add(1) >= 20) return;
  std::lock_guard<std::mutex> l(g_print_mu);
  std::fprintf(stdout, "VIOLATION (seed %llu): ", static_cast<unsigned long long>(g_flags.seed));
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stdout, fmt, ap);
  va_end(ap);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

void Usage() {
  std::fprintf(stderr,
               "usage: txn_stress [--seconds N] [--seed S] [--threads T] [--dir D]\n"
               "                  [--mode all|bank|counter|skew|mixed|crash] [--verbose]\n");
}

bool ParseFlags(int argc, char** argv) {
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i], value;
    size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (arg != "--help" && arg != "--verbose" && i + 1 < argc) {
      value = argv[++i];
    }
    if (arg == "--seconds") {
      g_flags.seconds = std::atof(value.c_str());
    } else if (arg == "--seed") {
      g_flags.seed = std::strtoull(value.c_str(), nullptr, 10);
      g_flags.seed_given = true;
    } else if (arg == "--threads") {
      g_flags.threads = std::atoi(value.c_str());
    } else if (arg == "--dir") {
      g_flags.dir = value;
    } else if (arg == "--mode") {
      g_flags.mode = value;
    } else if (arg == "--verbose") {
      g_flags.verbose = true;
    } else {
      return false;
    }
  }
  const std::string m = g_flags.mode;
  if (m != "all" && m != "bank" && m != "counter" && m != "skew" && m != "mixed" && m != "crash") {
    return false;
  }
  return g_flags.seconds > 0 && g_flags.threads > 0;
}

// ------------------------------------------------------------------ helpers

void CheckPoolsReleased(const char* where) {
  const alloc::ProcessPoolStats s = alloc::GetProcessPoolStats();
  if (s.mapped_bytes != 0 || s.live_pools != 0) {
    Violation("%s: pool accounting not zero after Close(): %zu bytes mapped, %zu live pools", where,
              s.mapped_bytes, s.live_pools);
  }
}

Options StressOptions() {
  Options o;
  o.page_bytes = 4096;
  o.cache_bytes = size_t{8} << 20;
  o.checkpoint_wal_bytes = size_t{1} << 20;  // background checkpoints during the run
  return o;
}

std::string Key(const char* prefix, int i) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%s%05d", prefix, i);
  return buf;
}

long ToLong(const std::string& s) { return std::strtol(s.c_str(), nullptr, 10); }

// The database handle the workers share, replaced by the coordinator on
// reopen. Workers take a reference per unit of work; a closed handle stays
// valid (its calls return Closed) until the last reference goes.
class DbHolder {
 public:
  explicit DbHolder(std::string path) : path_(std::move(path)) {}

  Status Open() {
    std::unique_ptr<DB> db;
    Status s = DB::Open(StressOptions(), path_, &db);
    if (!s.ok()) return s;
    std::lock_guard<std::mutex> l(mu_);
    db_ = std::shared_ptr<DB>(std::move(db));
    generation_++;
    cv_.notify_all();
    return s;
  }

  std::shared_ptr<DB> Get(uint64_t* generation) {
    std::lock_guard<std::mutex> l(mu_);
    *generation = generation_;
    return db_;
  }

  // Closes the current database; workers see Closed until the next Open().
  Status Close() {
    std::shared_ptr<DB> db;
    {
      std::lock_guard<std::mutex> l(mu_);
      db = db_;
    }
    return db == nullptr ? Status::OK() : db->Close();
  }

  // Blocks until a database newer than `generation` is published or `stop`.
  void WaitNewer(uint64_t generation, const std::atomic<bool>& stop) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_for(l, std::chrono::seconds(30),
                 [&] { return generation_ > generation || stop.load(); });
  }
  void Wake() { cv_.notify_all(); }

  const std::string& path() const { return path_; }

 private:
  const std::string path_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<DB> db_;
  uint64_t generation_ = 0;
};

// Lets the coordinator pause every worker between units of work.
class Gate {
 public:
  void Enter() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return !closing_; });
    active_++;
  }
  void Exit() {
    std::lock_guard<std::mutex> l(mu_);
    if (--active_ == 0) cv_.notify_all();
  }
  void Close() {
    std::unique_lock<std::mutex> l(mu_);
    closing_ = true;
    cv_.wait(l, [&] { return active_ == 0; });
  }
  void Open() {
    std::lock_guard<std::mutex> l(mu_);
    closing_ = false;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int active_ = 0;
  bool closing_ = false;
};

struct Shared {
  explicit Shared(const std::string& path) : holder(path) {}
  DbHolder holder;
  Gate gate;
  std::atomic<bool> stop{false};
};

// One unit of work: runs `fn` with the current database inside the gate.
// Returns its status; Closed means "the database closed under us": the
// caller waits for the reopen and tries again.
template <typename Fn>
Status Unit(Shared* sh, Fn&& fn) {
  sh->gate.Enter();
  uint64_t gen = 0;
  std::shared_ptr<DB> db = sh->holder.Get(&gen);
  Status s = fn(db.get());
  sh->gate.Exit();
  if (s.IsClosed()) sh->holder.WaitNewer(gen, sh->stop);
  return s;
}

bool Unexpected(const Status& s, const char* where) {
  if (s.ok() || s.IsConflict() || s.IsClosed() || s.IsNotFound()) return false;
  Violation("%s: unexpected status %s", where, s.ToString().c_str());
  return true;
}

// ------------------------------------------------------------------ bank

constexpr int kAccounts = 64;
constexpr long kInitialBalance = 1000;
constexpr char kBankPrefix[] = "bank/";

struct BankStats {
  std::atomic<uint64_t> transfers{0}, conflicts{0}, aborts{0}, checks{0};
};

Status BankSetup(DB* db) {
  std::string v;
  Status s = db->Get(ReadOptions{}, Key(kBankPrefix, 0), &v);
  if (s.ok()) return s;  // already there (reopened database)
  std::unique_ptr<Transaction> txn = db->BeginTransaction(WriteOptions{.sync = true});
  for (int i = 0; i < kAccounts; i++) {
    s = txn->Put(Key(kBankPrefix, i), std::to_string(kInitialBalance));
    if (!s.ok()) return s;
  }
  return txn->Commit();
}

// Held shared while a thread reads key()/value() views, exclusively around a
// Close() under load: the views point into memory Close() takes back, so by
// the Iterator contract they must not be read across a concurrent Close.
// Every other call (puts, gets, commits, iterator moves) still races Close().
std::shared_mutex g_view_mu;

// Sums the accounts through an iterator; returns false (after reporting)
// when the snapshot is inconsistent.
Status BankCheckIterator(Iterator* it, const char* how) {
  std::shared_lock<std::shared_mutex> views(g_view_mu);
  long total = 0;
  int n = 0;
  for (it->Seek(kBankPrefix); it->Valid() && it->key().starts_with(kBankPrefix); it->Next()) {
    long b = ToLong(std::string(it->value()));
    if (b < 0) Violation("bank (%s): negative balance %ld", how, b);
    total += b;
    n++;
  }
  if (!it->status().ok()) return it->status();
  if (n != kAccounts || total != kAccounts * kInitialBalance) {
    Violation("bank (%s): %d accounts, total %ld, expected %d accounts totalling %ld", how, n,
              total, kAccounts, kAccounts * kInitialBalance);
  }
  return Status::OK();
}

Status BankCheckOnce(DB* db, std::mt19937_64& rng) {
  switch (rng() % 4) {
    case 0: {  // a snapshot and point reads
      std::unique_ptr<Snapshot> snap = db->GetSnapshot();
      if (snap == nullptr) return Status::Closed("no snapshot");
      ReadOptions ro;
      ro.snapshot = snap.get();
      long total = 0;
      for (int i = 0; i < kAccounts; i++) {
        std::string v;
        Status s = db->Get(ro, Key(kBankPrefix, i), &v);
        if (!s.ok()) {
          if (s.IsNotFound()) Violation("bank (snapshot get): account %d missing", i);
          return s;
        }
        total += ToLong(v);
      }
      if (total != kAccounts * kInitialBalance) {
        Violation("bank (snapshot get): total %ld, expected %ld", total,
                  kAccounts * kInitialBalance);
      }
      return Status::OK();
    }
    case 1: {  // a snapshot and an iterator
      std::unique_ptr<Snapshot> snap = db->GetSnapshot();
      if (snap == nullptr) return Status::Closed("no snapshot");
      ReadOptions ro;
      ro.snapshot = snap.get();
      std::unique_ptr<Iterator> it = db->NewIterator(ro);
      if (it == nullptr) return Status::Closed("no iterator");
      return BankCheckIterator(it.get(), "snapshot iterator");
    }
    case 2: {  // a plain iterator (its own snapshot), scanned backwards too
      std::unique_ptr<Iterator> it = db->NewIterator(ReadOptions{});
      if (it == nullptr) return Status::Closed("no iterator");
      Status s = BankCheckIterator(it.get(), "iterator");
      if (!s.ok()) return s;
      std::shared_lock<std::shared_mutex> views(g_view_mu);
      long total = 0;
      it->Seek("bank0");  // just past the prefix
      if (it->Valid()) {
        it->Prev();
      } else {
        it->SeekToLast();
      }
      for (; it->Valid() && it->key().starts_with(kBankPrefix); it->Prev()) {
        total += ToLong(std::string(it->value()));
      }
      if (!it->status().ok()) return it->status();
      if (total != kAccounts * kInitialBalance) {
        Violation("bank (reverse iterator): total %ld, expected %ld", total,
                  kAccounts * kInitialBalance);
      }
      return Status::OK();
    }
    default: {  // a read-only transaction
      std::unique_ptr<Transaction> txn = db->BeginTransaction(WriteOptions{});
      if (txn == nullptr) return Status::Closed("no transaction");
      std::unique_ptr<Iterator> it = txn->NewIterator(ReadOptions{});
      if (it == nullptr) return Status::Closed("no iterator");
      Status s = BankCheckIterator(it.get(), "transaction iterator");
      it.reset();
      if (!s.ok()) return s;
      return txn->Rollback();
    }
  }
}

Status BankTransfer(DB* db, std::mt19937_64& rng, BankStats* stats) {
  const int a = static_cast<int>(rng() % kAccounts);
  int b = static_cast<int>(rng() % (kAccounts - 1));
  if (b >= a) b++;
  const long amount = 1 + static_cast<long>(rng() % 100);
  const bool abort = rng() % 20 == 0;
  std::unique_ptr<Transaction> txn = db->BeginTransaction(WriteOptions{.sync = rng() % 8 == 0});
  if (txn == nullptr) return Status::Closed("no transaction");
  std::string va, vb;
  Status s = txn->Get(ReadOptions{}, Key(kBankPrefix, a), &va);
  if (s.ok()) s = txn->Get(ReadOptions{}, Key(kBankPrefix, b), &vb);
  if (s.IsNotFound()) Violation("bank: account missing inside a transaction");
  if (!s.ok()) return s;
  const long ba = ToLong(va), bb = ToLong(vb);
  if (ba < amount) return txn->Rollback();
  s = txn->Put(Key(kBankPrefix, a), std::to_string(ba - amount));
  if (s.ok()) s = txn->Put(Key(kBankPrefix, b), std::to_string(bb + amount));
  if (!s.ok()) return s;
  // The transaction sees its own writes.
  std::string check;
  s = txn->Get(ReadOptions{}, Key(kBankPrefix, a), &check);
  if (s.ok() && ToLong(check) != ba - amount) Violation("bank: transaction misses its own write");
  if (abort) {
    stats->aborts++;
    return txn->Rollback();
  }
  s = txn->Commit();
  if (s.ok()) stats->transfers++;
  if (s.IsConflict()) stats->conflicts++;
  return s;
}

// ------------------------------------------------------------------ counter

constexpr int kCounters = 8;
constexpr char kCounterPrefix[] = "ctr/";

struct CounterStats {
  std::atomic<uint64_t> committed{0}, conflicts{0};
};

Status CounterIncrement(DB* db, std::mt19937_64& rng, bool sync, int* which) {
  const int c = static_cast<int>(rng() % kCounters);
  *which = c;
  std::unique_ptr<Transaction> txn = db->BeginTransaction(WriteOptions{.sync = sync});
  if (txn == nullptr) return Status::Closed("no transaction");
  std::string v;
  Status s = txn->Get(ReadOptions{}, Key(kCounterPrefix, c), &v);
  long n = 0;
  if (s.ok()) {
    n = ToLong(v);
  } else if (!s.IsNotFound()) {
    return s;
  }
  s = txn->Put(Key(kCounterPrefix, c), std::to_string(n + 1));
  if (!s.ok()) return s;
  return txn->Commit();
}

Status CounterSum(DB* db, long* sum) {
  *sum = 0;
  std::unique_ptr<Iterator> it = db->NewIterator(ReadOptions{});
  if (it == nullptr) return Status::Closed("no iterator");
  std::shared_lock<std::shared_mutex> views(g_view_mu);
  for (it->Seek(kCounterPrefix); it->Valid() && it->key().starts_with(kCounterPrefix); it->Next()) {
    *sum += ToLong(std::string(it->value()));
  }
  return it->status();
}

// ------------------------------------------------------------------ skew

constexpr int kPairs = 4;

struct SkewStats {
  std::atomic<uint64_t> commits{0}, conflicts{0};
  std::atomic<uint64_t> anomalies_in_txn{0}, anomalies_in_snapshots{0};
};

// Pair i is <prefix>i/x and <prefix>i/y, both "1" initially; invariant
// x + y >= 1. A transaction that sees both on takes one off; one that sees
// one on may put both back on (so the game goes on); one that sees both off
// (an anomaly already committed) repairs it.
Status SkewStep(DB* db, const std::string& prefix, IsolationLevel level, std::mt19937_64& rng,
                SkewStats* stats) {
  const int p = static_cast<int>(rng() % kPairs);
  const std::string kx = prefix + std::to_string(p) + "/x";
  const std::string ky = prefix + std::to_string(p) + "/y";
  TransactionOptions topt;
  topt.isolation = level;
  std::unique_ptr<Transaction> txn = db->BeginTransaction(WriteOptions{}, topt);
  if (txn == nullptr) return Status::Closed("no transaction");
  std::string vx, vy;
  Status s = txn->Get(ReadOptions{}, kx, &vx);
  if (s.IsNotFound()) {
    vx = "1";
    s = Status::OK();
  }
  if (s.ok()) s = txn->Get(ReadOptions{}, ky, &vy);
  if (s.IsNotFound()) {
    vy = "1";
    s = Status::OK();
  }
  if (!s.ok()) return s;
  const long sum = ToLong(vx) + ToLong(vy);
  if (sum == 2) {
    // A little work between the read and the write widens the window.
    if (rng() % 2 == 0) std::this_thread::yield();
    s = txn->Put(rng() % 2 ? kx : ky, "0");
  } else if (sum == 1) {
    if (rng() % 2 == 0) return txn->Rollback();
    s = txn->Put(kx, "1");
    if (s.ok()) s = txn->Put(ky, "1");
  } else {
    stats->anomalies_in_txn++;
    if (level == IsolationLevel::kSerializable) {
      Violation("skew: a serializable transaction saw %s and %s both off", kx.c_str(), ky.c_str());
    }
    s = txn->Put(kx, "1");
  }
  if (!s.ok()) return s;
  s = txn->Commit();
  if (s.ok()) stats->commits++;
  if (s.IsConflict()) stats->conflicts++;
  return s;
}

Status SkewCheckSnapshot(DB* db, const std::string& prefix, IsolationLevel level,
                         SkewStats* stats) {
  std::unique_ptr<Snapshot> snap = db->GetSnapshot();
  if (snap == nullptr) return Status::Closed("no snapshot");
  ReadOptions ro;
  ro.snapshot = snap.get();
  for (int p = 0; p < kPairs; p++) {
    long sum = 0;
    for (const char* side : {"/x", "/y"}) {
      std::string v;
      Status s = db->Get(ro, prefix + std::to_string(p) + side, &v);
      if (s.IsNotFound()) {
        v = "1";
      } else if (!s.ok()) {
        return s;
      }
      sum += ToLong(v);
    }
    if (sum < 1) {
      stats->anomalies_in_snapshots++;
      if (level == IsolationLevel::kSerializable) {
        Violation("skew: serializable pair %d has both off in a snapshot", p);
      }
    }
  }
  return Status::OK();
}

// ------------------------------------------------------------------ mixed

struct MixedThread {
  int id = 0;
  std::map<std::string, std::string> model;  // this thread's namespace
  uint64_t ops = 0, aborts = 0, scans = 0;
};

std::string MixedPrefix(int id) { return "mix/" + std::to_string(id) + "/"; }

// Compares the thread's namespace, read through `it`, with its model.
// A database closed by another thread before the scan turns the iterator
// invalid (key() then returns an empty view): a difference seen together with
// status() == Closed is that, not a violation.
bool MixedCompare(Iterator* it, const std::map<std::string, std::string>& model,
                  const std::string& prefix, bool reverse, const char* how, Status* status) {
  std::shared_lock<std::shared_mutex> views(g_view_mu);
  auto closed = [&] {
    *status = it->status();
    return status->IsClosed();
  };
  auto m = model.begin();
  auto r = model.rbegin();
  if (!reverse) {
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next(), ++m) {
      if (m == model.end() || it->key() != m->first || it->value() != m->second) {
        if (closed()) return true;
        Violation(
            "mixed (%s): namespace %s differs from the model: got key '%s' (%zu bytes), "
            "expected '%s'%s",
            how, prefix.c_str(), std::string(it->key()).c_str(), it->key().size(),
            m == model.end() ? "<end>" : m->first.c_str(),
            m != model.end() && it->key() == m->first ? " (value differs)" : "");
        return false;
      }
    }
    if (it->status().ok() && m != model.end()) {
      Violation("mixed (%s): key %s missing", how, m->first.c_str());
      return false;
    }
  } else {
    std::string end = prefix;
    end.back()++;
    it->Seek(end);
    if (it->Valid()) {
      it->Prev();
    } else {
      it->SeekToLast();
    }
    for (; it->Valid() && it->key().starts_with(prefix); it->Prev(), ++r) {
      if (r == model.rend() || it->key() != r->first) {
        if (closed()) return true;
        Violation(
            "mixed (%s, reverse): namespace %s differs from the model: got key '%s' "
            "(%zu bytes), expected '%s' (%zu keys in the model)",
            how, prefix.c_str(), std::string(it->key()).c_str(), it->key().size(),
            r == model.rend() ? "<end>" : r->first.c_str(), model.size());
        return false;
      }
    }
    if (it->status().ok() && r != model.rend()) {
      Violation("mixed (%s, reverse): key %s missing", how, r->first.c_str());
      return false;
    }
  }
  *status = it->status();
  return true;
}

Status MixedStep(DB* db, MixedThread* t, std::mt19937_64& rng) {
  const std::string prefix = MixedPrefix(t->id);
  auto key = [&] { return prefix + Key("k", static_cast<int>(rng() % 300)); };
  auto value = [&] { return std::string(1 + rng() % 200, static_cast<char>('a' + rng() % 26)); };
  t->ops++;
  const uint64_t r = rng() % 100;
  if (r < 30) {
    std::string k = key(), v = value();
    Status s = db->Put(WriteOptions{.sync = rng() % 16 == 0}, k, v);
    if (s.ok()) t->model[k] = v;
    return s;
  }
  if (r < 45) {
    std::string k = key();
    Status s = db->Delete(WriteOptions{}, k);
    if (s.ok()) t->model.erase(k);
    return s;
  }
  if (r < 60) {
    std::string k = key(), v;
    Status s = db->Get(ReadOptions{}, k, &v);
    auto m = t->model.find(k);
    if (s.ok() && (m == t->model.end() || m->second != v)) {
      Violation("mixed: Get %s returned a value the model does not have", k.c_str());
    } else if (s.IsNotFound() && m != t->model.end()) {
      Violation("mixed: Get %s returned NotFound, the model has it", k.c_str());
    }
    return s.IsNotFound() ? Status::OK() : s;
  }
  if (r < 75) {
    t->scans++;
    std::unique_ptr<Iterator> it = db->NewIterator(ReadOptions{});
    if (it == nullptr) return Status::Closed("no iterator");
    Status s;
    MixedCompare(it.get(), t->model, prefix, rng() % 2 == 0, "db iterator", &s);
    return s;
  }
  // A transaction of several writes, checked through its own iterator, then
  // committed or aborted.
  std::unique_ptr<Transaction> txn = db->BeginTransaction(WriteOptions{});
  if (txn == nullptr) return Status::Closed("no transaction");
  std::map<std::string, std::string> pending = t->model;
  const int n = 1 + static_cast<int>(rng() % 10);
  for (int i = 0; i < n; i++) {
    std::string k = key();
    Status s;
    if (rng() % 3 == 0) {
      s = txn->Delete(k);
      pending.erase(k);
    } else {
      std::string v = value();
      s = txn->Put(k, v);
      pending[k] = v;
    }
    if (!s.ok()) return s;
  }
  if (rng() % 3 == 0) {
    std::unique_ptr<Iterator> it = txn->NewIterator(ReadOptions{});
    if (it == nullptr) return Status::Closed("no iterator");
    Status s;
    MixedCompare(it.get(), pending, prefix, rng() % 2 == 0, "transaction iterator", &s);
    if (!s.ok()) return s;
  }
  if (rng() % 4 == 0) {
    t->aborts++;
    Status s = txn->Rollback();
    if (!s.ok()) return s;
    // Nothing of the aborted transaction is visible.
    std::unique_ptr<Iterator> it = db->NewIterator(ReadOptions{});
    if (it == nullptr) return Status::Closed("no iterator");
    MixedCompare(it.get(), t->model, prefix, false, "after rollback", &s);
    return s;
  }
  Status s = txn->Commit();
  if (s.ok()) t->model = std::move(pending);
  if (s.IsConflict()) Violation("mixed: conflict on a thread-private namespace");
  return s;
}

// ------------------------------------------------------------------ run

struct RunState {
  BankStats bank;
  CounterStats counter;
  SkewStats skew_serializable, skew_snapshot;
  std::vector<std::unique_ptr<MixedThread>> mixed;
  std::atomic<uint64_t> reopens{0}, hard_closes{0}, closed_seen{0};
};

// Whole-database checks run while the workers are paused (and at the end).
void QuiescedChecks(DB* db, RunState* st, bool bank, bool counter, bool mixed, bool skew,
                    const char* when) {
  std::mt19937_64 rng(1);
  if (bank) {
    std::unique_ptr<Iterator> it = db->NewIterator(ReadOptions{});
    Status s = BankCheckIterator(it.get(), when);
    if (!s.ok()) Violation("%s: bank scan failed: %s", when, s.ToString().c_str());
  }
  if (counter) {
    long sum = 0;
    Status s = CounterSum(db, &sum);
    if (!s.ok()) {
      Violation("%s: counter scan failed: %s", when, s.ToString().c_str());
    } else if (sum != static_cast<long>(st->counter.committed.load())) {
      Violation("%s: counters sum to %ld but %llu increments committed (lost or phantom update)",
                when, sum, static_cast<unsigned long long>(st->counter.committed.load()));
    }
  }
  if (mixed) {
    for (auto& t : st->mixed) {
      std::unique_ptr<Iterator> it = db->NewIterator(ReadOptions{});
      Status s;
      MixedCompare(it.get(), t->model, MixedPrefix(t->id), false, when, &s);
      if (!s.ok()) Violation("%s: mixed scan failed: %s", when, s.ToString().c_str());
    }
  }
  if (skew) {
    Status s =
        SkewCheckSnapshot(db, "skewS/", IsolationLevel::kSerializable, &st->skew_serializable);
    if (!s.ok()) Violation("%s: skew check failed: %s", when, s.ToString().c_str());
  }
  VerifyReport report;
  Status s = db->Verify(&report);
  if (!s.ok()) Violation("%s: Verify: %s", when, s.ToString().c_str());
}

// Runs the chosen in-process workloads for `seconds`, with reopens.
void RunConcurrent(const std::string& path, double seconds, bool bank, bool counter, bool skew,
                   bool mixed) {
  Shared sh(path);
  RunState st;
  Status s = sh.holder.Open();
  if (!s.ok()) {
    Violation("open %s: %s", path.c_str(), s.ToString().c_str());
    return;
  }
  {
    uint64_t gen;
    std::shared_ptr<DB> db = sh.holder.Get(&gen);
    if (bank && !(s = BankSetup(db.get())).ok()) Violation("bank setup: %s", s.ToString().c_str());
    if (counter) {
      // Counters may exist from an earlier run in the same directory.
      long sum = 0;
      s = CounterSum(db.get(), &sum);
      if (!s.ok()) Violation("counter setup: %s", s.ToString().c_str());
      st.counter.committed = static_cast<uint64_t>(sum);
    }
  }
  const int T = g_flags.threads;
  std::vector<std::thread> threads;
  auto spawn = [&](uint64_t salt, std::function<Status(DB*, std::mt19937_64&)> step,
                   const char* name) {
    threads.emplace_back([&sh, &st, salt, step, name] {
      std::mt19937_64 rng(g_flags.seed * 0x9e3779b97f4a7c15ULL + salt);
      while (!sh.stop.load()) {
        Status s = Unit(&sh, [&](DB* db) { return step(db, rng); });
        if (s.IsClosed()) st.closed_seen++;
        Unexpected(s, name);
      }
    });
  };
  if (bank) {
    for (int i = 0; i < T; i++) {
      spawn(
          100 + i, [&st](DB* db, std::mt19937_64& rng) { return BankTransfer(db, rng, &st.bank); },
          "bank transfer");
    }
    for (int i = 0; i < std::max(1, T / 2); i++) {
      spawn(
          200 + i,
          [&st](DB* db, std::mt19937_64& rng) {
            st.bank.checks++;
            return BankCheckOnce(db, rng);
          },
          "bank check");
    }
  }
  if (counter) {
    for (int i = 0; i < T; i++) {
      spawn(
          300 + i,
          [&st](DB* db, std::mt19937_64& rng) {
            int which = 0;
            Status s = CounterIncrement(db, rng, rng() % 8 == 0, &which);
            // Counted inside the unit, so a quiesced check sees it.
            if (s.ok()) st.counter.committed++;
            if (s.IsConflict()) st.counter.conflicts++;
            return s;
          },
          "counter");
    }
  }
  if (skew) {
    // At least two threads per isolation level, or no two transactions of
    // a level ever overlap.
    for (int i = 0; i < 2 * std::max(2, T); i++) {
      const bool ser = i % 2 == 0;
      spawn(
          400 + i,
          [&st, ser](DB* db, std::mt19937_64& rng) {
            return ser ? SkewStep(db, "skewS/", IsolationLevel::kSerializable, rng,
                                  &st.skew_serializable)
                       : SkewStep(db, "skewI/", IsolationLevel::kSnapshot, rng, &st.skew_snapshot);
          },
          "skew");
    }
    spawn(
        500,
        [&st](DB* db, std::mt19937_64&) {
          Status s =
              SkewCheckSnapshot(db, "skewS/", IsolationLevel::kSerializable, &st.skew_serializable);
          if (s.ok())
            s = SkewCheckSnapshot(db, "skewI/", IsolationLevel::kSnapshot, &st.skew_snapshot);
          return s;
        },
        "skew check");
  }
  if (mixed) {
    for (int i = 0; i < T; i++) {
      st.mixed.push_back(std::make_unique<MixedThread>());
      st.mixed.back()->id = i;
    }
    for (int i = 0; i < T; i++) {
      MixedThread* t = st.mixed[static_cast<size_t>(i)].get();
      spawn(
          600 + i, [t](DB* db, std::mt19937_64& rng) { return MixedStep(db, t, rng); }, "mixed");
    }
  }

  // The coordinator: close and reopen at random moments.
  std::mt19937_64 rng(g_flags.seed ^ 0xc0ffee);
  const Clock::time_point end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                   std::chrono::duration<double>(seconds));
  while (Clock::now() < end && g_violations.load() == 0) {
    const Clock::time_point next = Clock::now() + std::chrono::milliseconds(300 + rng() % 1200);
    while (Clock::now() < std::min(next, end) && g_violations.load() == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (Clock::now() >= end) break;
    const bool quiesce = rng() % 2 == 0;
    if (g_flags.verbose) {
      Log("reopen %llu: %s", (unsigned long long)st.reopens.load() + 1,
          quiesce ? "quiesced" : "under load");
    }
    if (quiesce) {
      sh.gate.Close();
      uint64_t gen;
      std::shared_ptr<DB> db = sh.holder.Get(&gen);
      QuiescedChecks(db.get(), &st, bank, counter, mixed, skew, "before reopen");
    } else {
      st.hard_closes++;
    }
    {
      std::unique_lock<std::shared_mutex> no_views(g_view_mu);
      s = sh.holder.Close();
    }
    if (!s.ok()) Violation("Close(): %s", s.ToString().c_str());
    CheckPoolsReleased(quiesce ? "quiesced close" : "close under load");
    s = sh.holder.Open();
    if (!s.ok()) {
      Violation("reopen: %s", s.ToString().c_str());
      sh.stop = true;
    }
    st.reopens++;
    if (quiesce) {
      uint64_t gen;
      std::shared_ptr<DB> db = sh.holder.Get(&gen);
      QuiescedChecks(db.get(), &st, bank, counter, mixed, skew, "after reopen");
      sh.gate.Open();
    }
  }
  sh.stop = true;
  sh.holder.Wake();
  for (auto& t : threads) t.join();

  // Final checks, then once more after a last close/reopen.
  {
    uint64_t gen;
    std::shared_ptr<DB> db = sh.holder.Get(&gen);
    QuiescedChecks(db.get(), &st, bank, counter, mixed, skew, "end of run");
  }
  s = sh.holder.Close();
  if (!s.ok()) Violation("final Close(): %s", s.ToString().c_str());
  CheckPoolsReleased("final close");
  s = sh.holder.Open();
  if (!s.ok()) {
    Violation("final reopen: %s", s.ToString().c_str());
  } else {
    uint64_t gen;
    std::shared_ptr<DB> db = sh.holder.Get(&gen);
    QuiescedChecks(db.get(), &st, bank, counter, mixed, skew, "after final reopen");
    {
      std::unique_lock<std::shared_mutex> no_views(g_view_mu);
      s = sh.holder.Close();
    }
    if (!s.ok()) Violation("Close(): %s", s.ToString().c_str());
    CheckPoolsReleased("last close");
  }

  uint64_t mixed_ops = 0, mixed_aborts = 0;
  for (auto& t : st.mixed) {
    mixed_ops += t->ops;
    mixed_aborts += t->aborts;
  }
  Log("concurrent phase: %.1f s, %llu reopens (%llu under load, %llu calls saw Closed)", seconds,
      (unsigned long long)st.reopens.load(), (unsigned long long)st.hard_closes.load(),
      (unsigned long long)st.closed_seen.load());
  if (bank) {
    Log("  bank: %llu transfers, %llu conflicts, %llu aborts, %llu snapshot checks",
        (unsigned long long)st.bank.transfers.load(), (unsigned long long)st.bank.conflicts.load(),
        (unsigned long long)st.bank.aborts.load(), (unsigned long long)st.bank.checks.load());
  }
  if (counter) {
    Log("  counter: %llu increments committed, %llu conflicts",
        (unsigned long long)st.counter.committed.load(),
        (unsigned long long)st.counter.conflicts.load());
  }
  if (skew) {
    Log("  skew serializable: %llu commits, %llu conflicts, %llu anomalies (must be 0)",
        (unsigned long long)st.skew_serializable.commits.load(),
        (unsigned long long)st.skew_serializable.conflicts.load(),
        (unsigned long long)(st.skew_serializable.anomalies_in_txn.load() +
                             st.skew_serializable.anomalies_in_snapshots.load()));
    Log("  skew snapshot isolation: %llu commits, %llu conflicts, write-skew anomalies seen: "
        "%llu in transactions, %llu in snapshots (allowed under snapshot isolation)",
        (unsigned long long)st.skew_snapshot.commits.load(),
        (unsigned long long)st.skew_snapshot.conflicts.load(),
        (unsigned long long)st.skew_snapshot.anomalies_in_txn.load(),
        (unsigned long long)st.skew_snapshot.anomalies_in_snapshots.load());
  }
  if (mixed) {
    Log("  mixed: %llu ops, %llu aborted transactions", (unsigned long long)mixed_ops,
        (unsigned long long)mixed_aborts);
  }
  if (bank && st.bank.transfers.load() == 0) Violation("bank: no transfer ever committed");
  if (counter && st.counter.committed.load() == 0) Violation("counter: nothing committed");
}

// ------------------------------------------------------------------ crash

// The child: bank transfers and counter increments from several threads,
// each committed counter increment acknowledged through `ack_fd`.
[[noreturn]] void CrashChild(const std::string& path, uint64_t seed, int ack_fd) {
  std::unique_ptr<DB> db;
  Status s = DB::Open(StressOptions(), path, &db);
  if (!s.ok()) {
    std::fprintf(stderr, "crash child: open: %s\n", s.ToString().c_str());
    _exit(3);
  }
  s = BankSetup(db.get());
  if (!s.ok()) _exit(4);
  char ready = 'R';
  if (write(ack_fd, &ready, 1) != 1) _exit(5);
  BankStats bank;
  std::vector<std::thread> threads;
  const int T = g_flags.threads;
  for (int i = 0; i < T; i++) {
    threads.emplace_back([&, i] {
      std::mt19937_64 rng(seed + static_cast<uint64_t>(i));
      for (;;) {
        Status st;
        if (i % 2 == 0) {
          int which = 0;
          st = CounterIncrement(db.get(), rng, rng() % 2 == 0, &which);
          if (st.ok()) {
            char c = 'I';
            if (write(ack_fd, &c, 1) != 1) _exit(6);
          }
        } else {
          st = BankTransfer(db.get(), rng, &bank);
        }
        if (!st.ok() && !st.IsConflict()) {
          std::fprintf(stderr, "crash child: %s\n", st.ToString().c_str());
          char c = 'E';
          if (write(ack_fd, &c, 1) != 1) _exit(7);
          _exit(8);
        }
      }
    });
  }
  for (;;) pause();
}

void RunCrash(const std::string& path, double seconds) {
  std::mt19937_64 rng(g_flags.seed ^ 0xdead);
  const Clock::time_point end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                   std::chrono::duration<double>(seconds));
  long base = 0;  // counter sum before this round
  int rounds = 0;
  uint64_t total_acked = 0;
  while ((Clock::now() < end || rounds == 0) && g_violations.load() == 0) {
    int fds[2];
    if (pipe(fds) != 0) {
      Violation("pipe failed");
      return;
    }
    const uint64_t child_seed = g_flags.seed + static_cast<uint64_t>(rounds) * 7919;
    const pid_t pid = fork();
    if (pid < 0) {
      Violation("fork failed");
      return;
    }
    if (pid == 0) {
      close(fds[0]);
      CrashChild(path, child_seed, fds[1]);
    }
    close(fds[1]);
    // Let it get going (it says 'R' once open), then kill at a random moment.
    char c = 0;
    long acked = 0;
    bool error = false, ready = false;
    ssize_t n = read(fds[0], &c, 1);
    if (n == 1 && c == 'R') ready = true;
    if (!ready) {
      Violation("crash round %d: the child failed to open the database", rounds);
      kill(pid, SIGKILL);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 400));
      kill(pid, SIGKILL);
    }
    int wstatus = 0;
    waitpid(pid, &wstatus, 0);
    char buf[4096];
    while ((n = read(fds[0], buf, sizeof(buf))) > 0) {
      for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == 'I') acked++;
        if (buf[i] == 'E') error = true;
      }
    }
    close(fds[0]);
    if (error) Violation("crash round %d: a database call failed in the child", rounds);

    std::unique_ptr<DB> db;
    Status s = DB::Open(StressOptions(), path, &db);
    if (!s.ok()) {
      Violation("crash round %d: reopen after SIGKILL: %s", rounds, s.ToString().c_str());
      return;
    }
    long sum = 0;
    s = CounterSum(db.get(), &sum);
    if (!s.ok()) Violation("crash round %d: counter scan: %s", rounds, s.ToString().c_str());
    const int counter_threads = (g_flags.threads + 1) / 2;
    if (sum < base + acked || sum > base + acked + counter_threads) {
      Violation(
          "crash round %d (child seed %llu): counters sum to %ld; expected between %ld "
          "(acknowledged) and %ld (plus one in flight per thread)",
          rounds, (unsigned long long)child_seed, sum, base + acked,
          base + acked + counter_threads);
    }
    if (ready) {
      std::unique_ptr<Iterator> it = db->NewIterator(ReadOptions{});
      s = BankCheckIterator(it.get(), "after crash");
      if (!s.ok()) Violation("crash round %d: bank scan: %s", rounds, s.ToString().c_str());
    }
    VerifyReport report;
    s = db->Verify(&report);
    if (!s.ok()) Violation("crash round %d: Verify: %s", rounds, s.ToString().c_str());
    s = db->Close();
    if (!s.ok()) Violation("crash round %d: Close: %s", rounds, s.ToString().c_str());
    db.reset();
    CheckPoolsReleased("crash round");
    base = sum;
    total_acked += static_cast<uint64_t>(acked);
    rounds++;
  }
  Log("crash phase: %d rounds, %llu acknowledged increments, final counter sum %ld", rounds,
      (unsigned long long)total_acked, base);
  if (total_acked == 0) Violation("crash: the children never committed anything");
}

int Main(int argc, char** argv) {
  if (!ParseFlags(argc, argv)) {
    Usage();
    return 2;
  }
  if (!g_flags.seed_given) g_flags.seed = std::random_device{}();
  Log("txn_stress: mode %s, %.1f s, %d threads, seed %llu (replay with --seed %llu)",
      g_flags.mode.c_str(), g_flags.seconds, g_flags.threads, (unsigned long long)g_flags.seed,
      (unsigned long long)g_flags.seed);

  std::string dir = g_flags.dir;
  bool remove_dir = false;
  if (dir.empty()) {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/txn_stress-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp");
      return 2;
    }
    dir = tmpl;
    remove_dir = true;
  } else {
    std::filesystem::create_directories(dir);
  }

  const std::string& m = g_flags.mode;
  const double S = g_flags.seconds;
  if (m == "all") {
    RunConcurrent(dir + "/db", S * 0.7, true, true, true, true);
    if (g_violations.load() == 0) RunCrash(dir + "/crash", S * 0.3);
  } else if (m == "crash") {
    RunCrash(dir + "/crash", S);
  } else {
    RunConcurrent(dir + "/db", S, m == "bank", m == "counter", m == "skew", m == "mixed");
  }
  CheckPoolsReleased("exit");

  if (remove_dir) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  const uint64_t v = g_violations.load();
  if (v != 0) {
    Log("FAILED: %llu violation(s); replay with --seed %llu --mode %s", (unsigned long long)v,
        (unsigned long long)g_flags.seed, m.c_str());
    return 1;
  }
  Log("OK");
  return 0;
}

}  // namespace
}  // namespace arenakv::stress

int main(int argc, char** argv) { return arenakv::stress::Main(argc, argv); }
