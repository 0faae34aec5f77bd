#include "compare/workload.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "compare/data_gen.h"
#include "compare/sys_stats.h"

namespace arenakv::compare {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Per-thread tallies, on their own cache lines.
struct alignas(64) Tally {
  uint64_t ops = 0;
  uint64_t not_found = 0;
  uint64_t mismatches = 0;
  uint64_t conflicts = 0;
};

// Runs body(thread_index, tally) on `threads` threads; returns the wall time
// from the first start to the last finish and adds the tallies into `result`.
double RunThreads(int threads, const std::function<void(int, Tally*)>& body, PhaseResult* result) {
  std::vector<Tally> tallies(threads);
  Clock::time_point start = Clock::now();
  if (threads == 1) {
    body(0, &tallies[0]);
  } else {
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) workers.emplace_back(body, t, &tallies[t]);
    for (std::thread& w : workers) w.join();
  }
  double seconds = SecondsSince(start);
  for (const Tally& t : tallies) {
    result->ops += t.ops;
    result->not_found += t.not_found;
    result->mismatches += t.mismatches;
    result->conflicts += t.conflicts;
  }
  return seconds;
}

// Starts and joins a few threads that use malloc and some stack, so that the
// thread stacks and malloc arenas the workload's own threads will reuse exist
// before the pre-open RSS is taken: what stays resident after close is then
// the engine's, not the benchmark's.
void WarmUpThreads(int threads) {
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([] {
      volatile char stack[64 * 1024];
      for (size_t i = 0; i < sizeof(stack); i += 4096) stack[i] = 1;
      std::vector<std::string> strings;
      for (int i = 0; i < 4096; ++i) strings.emplace_back(kValueBytes, 'x');
    });
  }
  for (std::thread& w : workers) w.join();
}

void Fill(EngineAdapter* db, const std::vector<uint32_t>* order, uint64_t keys, uint32_t version,
          PhaseResult* result) {
  result->seconds = RunThreads(
      1,
      [&](int, Tally* tally) {
        Record rec;
        for (uint64_t i = 0; i < keys; ++i) {
          uint64_t k = order == nullptr ? i : (*order)[i];
          db->Put(rec.Key(k), rec.Value(k, version), /*sync=*/false);
        }
        tally->ops = keys;
      },
      result);
}

void ReadRandom(EngineAdapter* db, int threads, const WorkloadConfig& config, PhaseResult* result) {
  result->seconds = RunThreads(
      threads,
      [&](int t, Tally* tally) {
        Rng rng(config.seed * 7919 + 0x3333 + static_cast<uint64_t>(t));
        Record rec;
        std::string value;
        char expected[kValueBytes];
        uint64_t n = config.keys / threads;
        const auto start = std::chrono::steady_clock::now();
        for (uint64_t i = 0; i < n; ++i) {
          if (config.read_seconds > 0 && i % 256 == 0 && i > 0 &&
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >
                  config.read_seconds) {
            n = i;
            break;
          }
          uint64_t k = rng.Uniform(config.keys);
          if (!db->Get(rec.Key(k), &value)) {
            ++tally->not_found;
            continue;
          }
          FormatValue(k, config.version, expected);
          if (value.size() != kValueBytes ||
              std::memcmp(value.data(), expected, kValueBytes) != 0) {
            ++tally->mismatches;
          }
        }
        tally->ops = n;
      },
      result);
}

void ReadSeq(EngineAdapter* db, const WorkloadConfig& config, PhaseResult* result) {
  result->seconds = RunThreads(
      1,
      [&](int, Tally* tally) {
        std::unique_ptr<AdapterIterator> it = db->NewIterator();
        char expected[kValueBytes];
        // The expected key, advanced in place (a decimal increment touches
        // one digit nearly always): formatting all 16 digits per key would
        // cost as much as the engine's own step and blur the comparison.
        char key[kKeyBytes];
        FormatKey(0, key);
        uint64_t i = 0;
        for (it->SeekToFirst(); it->Valid(); it->Next(), ++i, IncrementKey(key)) {
          std::string_view value = it->value();
          if (it->key() != std::string_view(key, kKeyBytes) || value.size() != kValueBytes) {
            ++tally->mismatches;
          } else if (i % 16 == 0) {
            // Every 16th value in full: enough to catch wrong data without
            // letting value generation dominate a fast scan.
            FormatValue(i, config.version, expected);
            if (std::memcmp(value.data(), expected, kValueBytes) != 0) ++tally->mismatches;
          }
        }
        it->CheckStatus();
        if (i < config.keys) tally->not_found += config.keys - i;
        if (i > config.keys) tally->mismatches += i - config.keys;
        tally->ops = i;
      },
      result);
}

// `batch`: the engine's write batch (atomic, no isolation) instead of a
// transaction.
void Txn10(EngineAdapter* db, bool batch, const WorkloadConfig& config, PhaseResult* result) {
  result->seconds = RunThreads(
      1,
      [&](int, Tally* tally) {
        Rng rng(config.seed * 7919 + 0x5555);
        Record rec;
        uint64_t txns = std::max<uint64_t>(1, config.keys / 10);
        for (uint64_t i = 0; i < txns; ++i) {
          std::unique_ptr<AdapterTransaction> txn =
              batch ? db->NewWriteBatch(/*sync=*/false) : db->BeginTransaction(/*sync=*/false);
          for (int p = 0; p < 10; ++p) {
            uint64_t k = rng.Uniform(config.keys);
            txn->Put(rec.Key(k), rec.Value(k, kVersionTxn10));
          }
          if (!txn->Commit()) ++tally->conflicts;
        }
        tally->ops = txns;
      },
      result);
}

// `busy_threads`: that many threads spin on the CPU beside the committing
// ones for the whole loop, the way an application's own work competes with
// its database for the cores.
void SyncCommits(EngineAdapter* db, int threads, int busy_threads, const WorkloadConfig& config,
                 PhaseResult* result) {
  std::atomic<bool> stop_busy{false};
  std::atomic<uint64_t> sink{0};  // keeps the busy loops' work observable
  std::vector<std::thread> busy;
  for (int i = 0; i < busy_threads; ++i) {
    busy.emplace_back([&stop_busy, &sink] {
      uint64_t x = 1;
      while (!stop_busy.load(std::memory_order_relaxed)) {
        for (int j = 0; j < 1000; ++j) x = x * 6364136223846793005u + 1442695040888963407u;
        sink.store(x, std::memory_order_relaxed);
      }
    });
  }
  Clock::time_point deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                  std::chrono::duration<double>(config.seconds));
  result->seconds = RunThreads(
      threads,
      [&](int t, Tally* tally) {
        Rng rng(config.seed * 7919 + 0x6666 + static_cast<uint64_t>(t));
        Record rec;
        while (Clock::now() < deadline) {
          uint64_t k = rng.Uniform(config.keys);
          std::unique_ptr<AdapterTransaction> txn = db->BeginTransaction(/*sync=*/true);
          txn->Put(rec.Key(k), rec.Value(k, kVersionSyncCommit));
          if (txn->Commit()) {
            ++tally->ops;
          } else {
            ++tally->conflicts;
          }
        }
      },
      result);
  stop_busy.store(true);
  for (std::thread& b : busy) b.join();
}

// YCSB workload A: 50% reads, 50% updates (each update a one-put
// transaction), keys from a scrambled zipfian, 2 threads, at most `keys`
// operations or `seconds`, whichever comes first.
void YcsbA(EngineAdapter* db, const ScrambledZipfian& zipf, const WorkloadConfig& config,
           PhaseResult* result) {
  constexpr int kThreads = 2;
  Clock::time_point deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                  std::chrono::duration<double>(config.seconds));
  result->seconds = RunThreads(
      kThreads,
      [&](int t, Tally* tally) {
        Rng rng(config.seed * 7919 + 0x7777 + static_cast<uint64_t>(t));
        Record rec;
        std::string value;
        char expected[kValueBytes];
        uint64_t n = config.keys / kThreads;
        for (uint64_t i = 0; i < n; ++i) {
          if (i % 64 == 0 && Clock::now() >= deadline) break;
          uint64_t k = zipf.Next(&rng);
          ++tally->ops;
          if (rng.Next() & 1) {
            if (!db->Get(rec.Key(k), &value)) {
              ++tally->not_found;
              continue;
            }
            // Earlier workloads of this run left each key at one of the
            // known versions; any of them is a correct answer.
            bool match = false;
            for (uint32_t v = kVersionFill; v <= kVersionYcsb && !match; ++v) {
              FormatValue(k, v, expected);
              match = value.size() == kValueBytes &&
                      std::memcmp(value.data(), expected, kValueBytes) == 0;
            }
            if (!match) ++tally->mismatches;
          } else {
            std::unique_ptr<AdapterTransaction> txn = db->BeginTransaction(/*sync=*/false);
            txn->Put(rec.Key(k), rec.Value(k, kVersionYcsb));
            if (!txn->Commit()) ++tally->conflicts;
          }
        }
      },
      result);
}

// A database per tenant, opened, written, read and closed over and over:
// 4 tenants by turns, each cycle 40K puts of random keys of 40K and 20K
// gets of keys the cycle wrote, until --seconds pass (4 cycles at least).
void Churn(EngineAdapter* db, const std::string& dir, const WorkloadConfig& config,
           PhaseResult* result) {
  db->Close();  // the phase opened `dir`; the tenants are its subdirectories
  constexpr int kPuts = 40000, kGets = 20000, kTenants = 4;
  result->seconds = RunThreads(
      1,
      [&](int, Tally* tally) {
        Rng rng(config.seed * 7919 + 0x5555);
        Record rec;
        std::string value;
        char expected[kValueBytes];
        std::vector<uint32_t> written(kPuts);
        const auto start = Clock::now();
        uint64_t cycles = 0;
        do {
          db->Open(dir + "/tenant" + std::to_string(cycles % kTenants), false);
          for (int i = 0; i < kPuts; ++i) {
            written[i] = static_cast<uint32_t>(rng.Uniform(kPuts));
            db->Put(rec.Key(written[i]), rec.Value(written[i], kVersionFill), /*sync=*/false);
          }
          for (int i = 0; i < kGets; ++i) {
            const uint64_t k = written[rng.Uniform(kPuts)];
            if (!db->Get(rec.Key(k), &value)) {
              ++tally->not_found;
              continue;
            }
            FormatValue(k, kVersionFill, expected);
            if (value.size() != kValueBytes || std::memcmp(value.data(), expected, kValueBytes)) {
              ++tally->mismatches;
            }
          }
          db->Close();
          ++cycles;
        } while (cycles < kTenants || SecondsSince(start) < config.seconds);
        tally->ops = cycles;
      },
      result);
  db->Open(dir, false);  // for the phase's own close
}

}  // namespace

const std::vector<WorkloadInfo>& AllWorkloads() {
  static const std::vector<WorkloadInfo> kAll = {
      {Workload::kFillSeq, "fillseq", "ops/s", DbSlot::kSeq, true, true, false, 2.0,
       "N puts in key order into an empty database"},
      {Workload::kFillRandom, "fillrandom", "ops/s", DbSlot::kMain, true, true, false, 2.0,
       "N puts in a random permutation of the keys into an empty database"},
      {Workload::kOverwrite, "overwrite", "ops/s", DbSlot::kMain, false, true, false, 2.0,
       "N puts of new values, another random permutation, into the filled database"},
      {Workload::kReadRandom, "readrandom", "ops/s", DbSlot::kMain, false, false, false, 5.0,
       "N point reads of uniformly random keys, 1 thread, values verified"},
      {Workload::kReadRandom2, "readrandom-2t", "ops/s", DbSlot::kMain, false, false, false, 0.0,
       "N point reads of uniformly random keys split over 2 threads, values verified"},
      {Workload::kReadSeq, "readseq", "ops/s", DbSlot::kMain, false, false, false, 4.0,
       "one full scan with an iterator, keys and values verified"},
      {Workload::kReadSeqFresh, "readseq-fresh", "ops/s", DbSlot::kFresh, true, false, false, 0.0,
       "fillrandom's puts into an empty database (untimed), then at once one full scan, before "
       "any checkpoint, flush or compaction the benchmark asks for (a scan right after an "
       "import)"},
      {Workload::kTxn10, "txn10", "txn/s", DbSlot::kMain, false, false, true, 2.0,
       "N/10 transactions of 10 random puts each, 1 thread"},
      {Workload::kBatch10, "batch10", "batch/s", DbSlot::kMain, false, false, false, 0.0,
       "N/10 write batches of 10 random puts each (atomic, no isolation; LMDB and WiredTiger "
       "use a transaction), 1 thread"},
      {Workload::kSyncCommit1, "synccommit-1t", "commits/s", DbSlot::kMain, false, false, true, 0.0,
       "transactions of one put committed with sync=true, 1 thread, time-capped"},
      {Workload::kSyncCommit4, "synccommit-4t", "commits/s", DbSlot::kMain, false, false, true, 2.0,
       "transactions of one put committed with sync=true, 4 threads, time-capped"},
      {Workload::kSyncCommit4Busy, "synccommit-4t-busy", "commits/s", DbSlot::kMain, false, false,
       true, 0.0,
       "synccommit-4t with 2 more threads spinning on the CPU beside the 4 (an application busy "
       "with its own work)"},
      {Workload::kYcsbA, "ycsb-a", "ops/s", DbSlot::kMain, false, false, true, 0.0,
       "50% reads, 50% one-put transactions, scrambled zipfian keys (theta 0.99), 2 threads"},
      {Workload::kChurn, "churn", "cycles/s", DbSlot::kFresh, true, false, false, 0.0,
       "a database per tenant: open, 40K random puts, 20K gets of keys written, close; 4 "
       "tenants by turns, time-capped"},
  };
  return kAll;
}

const WorkloadInfo& InfoOf(Workload w) { return AllWorkloads()[static_cast<int>(w)]; }

std::optional<Workload> ParseWorkload(std::string_view name) {
  for (const WorkloadInfo& info : AllWorkloads()) {
    if (name == info.name) return info.id;
  }
  return std::nullopt;
}

PhaseResult RunPhase(EngineAdapter* engine, Workload w, const std::string& dir,
                     const WorkloadConfig& config) {
  const WorkloadInfo& info = InfoOf(w);
  PhaseResult result;

  // Everything the loop needs that is not the engine's is built before the
  // pre-open RSS is taken.
  std::vector<uint32_t> order;
  if (w == Workload::kFillRandom || w == Workload::kReadSeqFresh) {
    order = Permutation(config.keys, config.seed * 7919 + 0x1111);
  }
  if (w == Workload::kOverwrite) order = Permutation(config.keys, config.seed * 7919 + 0x2222);
  std::unique_ptr<ScrambledZipfian> zipf;
  if (w == Workload::kYcsbA) zipf = std::make_unique<ScrambledZipfian>(config.keys);
  WarmUpThreads(4);
  PrefaultCode();

  result.rss_before_open = CurrentRssBytes();
  result.anon_rss_before_open = AnonRssBytes();
  result.peak_reset = ResetPeakRss();

  Clock::time_point start = Clock::now();
  engine->Open(dir, info.transactional);
  result.open_seconds = SecondsSince(start);

  switch (w) {
    case Workload::kFillSeq:
      Fill(engine, nullptr, config.keys, kVersionFill, &result);
      break;
    case Workload::kFillRandom:
      Fill(engine, &order, config.keys, kVersionFill, &result);
      break;
    case Workload::kOverwrite:
      Fill(engine, &order, config.keys, kVersionOverwrite, &result);
      break;
    case Workload::kReadRandom:
      ReadRandom(engine, 1, config, &result);
      break;
    case Workload::kReadRandom2:
      ReadRandom(engine, 2, config, &result);
      break;
    case Workload::kReadSeq:
      ReadSeq(engine, config, &result);
      break;
    case Workload::kReadSeqFresh: {
      // The same puts as fillrandom, untimed, then the scan straight away:
      // whatever the engine still holds in memtables, logs or unmerged
      // files is what the scan has to read through.
      PhaseResult fill;
      Fill(engine, &order, config.keys, kVersionFill, &fill);
      result.prep_seconds = fill.seconds;
      WorkloadConfig scan = config;
      scan.version = kVersionFill;
      ReadSeq(engine, scan, &result);
      break;
    }
    case Workload::kTxn10:
      Txn10(engine, /*batch=*/false, config, &result);
      break;
    case Workload::kBatch10:
      Txn10(engine, /*batch=*/true, config, &result);
      break;
    case Workload::kSyncCommit1:
      SyncCommits(engine, 1, 0, config, &result);
      break;
    case Workload::kSyncCommit4:
      SyncCommits(engine, 4, 0, config, &result);
      break;
    case Workload::kSyncCommit4Busy:
      SyncCommits(engine, 4, 2, config, &result);
      break;
    case Workload::kYcsbA:
      YcsbA(engine, *zipf, config, &result);
      break;
    case Workload::kChurn:
      Churn(engine, dir, config, &result);
      break;
  }

  if (info.persists) {
    start = Clock::now();
    engine->Persist();
    result.persist_seconds = SecondsSince(start);
  }
  start = Clock::now();
  engine->Close();
  result.close_seconds = SecondsSince(start);

  result.rss_peak = PeakRssBytes();
  result.rss_after_close = CurrentRssBytes();
  result.anon_rss_after_close = AnonRssBytes();
  return result;
}

}  // namespace arenakv::compare
