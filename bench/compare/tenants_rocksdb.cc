// tenants_rocksdb: bench/tenants' load on RocksDB, configured as a server
// with a database per tenant would share memory there: one LRU block cache
// and one WriteBufferManager for every database (half the budget each,
// the buffer manager charging its memtables to the cache), 4 MiB write
// buffers, LZ4, a 10-bit Bloom filter. Same phases, keys, values, Zipf
// sequence and report lines as tenants.cc, so the two outputs read side by
// side; bench/tenants/run_both runs them one after the other.
//
//   tenants_rocksdb [--dbs N (1000)] [--budget_mib M (256)] [--keys K (10000)]
//                   [--ops N (2000000)] [--put_pct P (70)] [--zipf S (0.99)]
//                   [--dir DIR (the databases go in DIR/rocksdb)]
//                   [--cache_kib K] [--threads T] (tenants' flags, accepted and unused)
//
// Memory is read from /proc/self/statm with no malloc_trim.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "rocksdb/cache.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/write_buffer_manager.h"
#include "tenants/tenants_util.h"

namespace {

using tenants::Clock;
using tenants::CountEntries;
using tenants::Flags;
using tenants::Key;
using tenants::ResidentBytes;
using tenants::Seconds;
using tenants::Zipf;

int Fail(const char* what, const rocksdb::Status& s) {
  std::fprintf(stderr, "tenants_rocksdb: %s: %s\n", what, s.ToString().c_str());
  return 1;
}

// Every file of a thousand databases open at once needs more descriptors
// than the usual soft limit.
void RaiseFileLimit() {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  if (!tenants::ParseFlags("tenants_rocksdb", argc, argv, &f)) return 2;
  RaiseFileLimit();
  // A directory of its own under --dir: run_both passes tenants' --dir
  // to both programs.
  std::string root = f.dir.empty() ? "" : f.dir + "/rocksdb";
  if (!root.empty()) std::filesystem::create_directories(root);
  bool temp = false;
  if (root.empty()) {
    char tmpl[] = "/tmp/rocksdb-tenants-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return 1;
    root = tmpl;
    temp = true;
  }
  const size_t budget = f.budget_mib << 20;
  std::shared_ptr<rocksdb::Cache> cache = rocksdb::NewLRUCache(budget / 2);
  auto buffers = std::make_shared<rocksdb::WriteBufferManager>(budget / 2, cache);
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  rocksdb::Options o;
  o.create_if_missing = true;
  o.compression = rocksdb::kLZ4Compression;
  o.write_buffer_size = size_t{4} << 20;
  o.write_buffer_manager = buffers;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  auto path = [&](int d) { return root + "/t" + std::to_string(d); };
  std::vector<std::unique_ptr<rocksdb::DB>> dbs(f.dbs);
  auto open = [&](int d) {
    rocksdb::DB* db = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(o, path(d), &db);
    dbs[d].reset(db);
    return s;
  };
  auto close_all = [&]() {
    for (auto& db : dbs) {
      if (db == nullptr) continue;
      rocksdb::Status s = db->Close();
      if (!s.ok()) return s;
      db.reset();
    }
    return rocksdb::Status::OK();
  };

  for (int d = 0; d < f.dbs; ++d) {  // created, then closed
    rocksdb::Status s = open(d);
    if (!s.ok()) return Fail("create", s);
  }
  if (rocksdb::Status s = close_all(); !s.ok()) return Fail("close", s);
  Zipf zipf(f.dbs, f.zipf);
  const size_t rss0 = ResidentBytes();
  const size_t fds0 = CountEntries("/proc/self/fd");
  const size_t threads0 = CountEntries("/proc/self/task");
  auto t = Clock::now();
  for (int d = 0; d < f.dbs; ++d) {
    rocksdb::Status s = open(d);
    if (!s.ok()) return Fail("open", s);
  }
  const double open_s = Seconds(t);
  const size_t idle_rss = ResidentBytes() - rss0;
  std::printf(
      "databases                 %d (RocksDB: one %zu MiB block cache, one %zu MiB "
      "write buffer manager)\n",
      f.dbs, f.budget_mib / 2, f.budget_mib / 2);
  std::printf("open all (warm files)     %.3f s, %.2f ms each\n", open_s, 1e3 * open_s / f.dbs);
  std::printf("idle, per database        %.1f KiB resident, %.2f fds, %.2f threads\n",
              idle_rss / 1024.0 / f.dbs,
              static_cast<double>(CountEntries("/proc/self/fd") - fds0) / f.dbs,
              static_cast<double>(CountEntries("/proc/self/task") - threads0) / f.dbs);

  std::mt19937_64 rng(301);
  const std::string value(100, 'v');
  std::string got;
  long errors = 0;
  size_t peak_rss = ResidentBytes();
  t = Clock::now();
  for (long i = 0; i < f.ops; ++i) {
    const int d = zipf.Next(&rng);
    const std::string k = Key(static_cast<int>(rng() % f.keys));
    rocksdb::Status s;
    if (static_cast<int>(rng() % 100) < f.put_pct) {
      s = dbs[d]->Put(rocksdb::WriteOptions(), k, value);
    } else {
      s = dbs[d]->Get(rocksdb::ReadOptions(), k, &got);
      if (s.IsNotFound()) s = rocksdb::Status::OK();
    }
    if (!s.ok()) ++errors;
    if ((i & 0xffff) == 0) peak_rss = std::max(peak_rss, ResidentBytes());
  }
  const double load_s = Seconds(t);
  peak_rss = std::max(peak_rss, ResidentBytes());
  std::printf(
      "load                      %ld ops (%d%% puts, zipf %.2f) in %.2f s: %.0f ops/s, "
      "%ld errors\n",
      f.ops, f.put_pct, f.zipf, load_s, f.ops / std::max(load_s, 1e-9), errors);
  std::printf("peak                      +%.1f MiB resident, %zu threads in all\n",
              (peak_rss - rss0) / 1048576.0, CountEntries("/proc/self/task"));

  t = Clock::now();
  if (rocksdb::Status s = close_all(); !s.ok()) return Fail("close", s);
  const double close_s = Seconds(t);
  std::printf("close all                 %.3f s; after: %+.1f MiB resident\n", close_s,
              (static_cast<double>(ResidentBytes()) - rss0) / 1048576.0);

  std::FILE* drop = std::fopen("/proc/sys/vm/drop_caches", "w");
  const bool cold = drop != nullptr && std::fputs("1", drop) >= 0;
  if (drop != nullptr) std::fclose(drop);
  t = Clock::now();
  for (int d = 0; d < f.dbs; ++d) {
    rocksdb::Status s = open(d);
    if (!s.ok()) return Fail("reopen", s);
  }
  const double reopen_s = Seconds(t);
  std::printf("%s reopen all           %.3f s, %.2f ms each\n", cold ? "cold" : "warm", reopen_s,
              1e3 * reopen_s / f.dbs);
  if (rocksdb::Status s = close_all(); !s.ok()) return Fail("close", s);
  dbs.clear();
  if (temp) std::filesystem::remove_all(root);
  return errors == 0 ? 0 : 1;
}
