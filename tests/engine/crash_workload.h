// The workload the crash tests share: a few writer threads, each owning a
// key namespace ("t<n>/..."), running single writes (synced or not) and
// multi-key transactions generated from a seed, so that a checker can
// regenerate every operation and compute the states a namespace may hold.
// A partial transaction or write batch matches no such state: each rewrites
// its thread's tag key along with its other writes.
#ifndef ARENAKV_TESTS_ENGINE_CRASH_WORKLOAD_H_
#define ARENAKV_TESTS_ENGINE_CRASH_WORKLOAD_H_

#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "arenakv/db.h"

namespace arenakv::test {

using Model = std::map<std::string, std::string>;

constexpr int kKeysPerThread = 40;

inline bool LongTests() {
  const char* e = std::getenv("ARENAKV_LONG_TESTS");
  return e != nullptr && *e != '\0' && *e != '0';
}

inline Options CrashOptions() {
  Options o;
  o.page_bytes = 4096;
  o.cache_bytes = size_t{2} << 20;
  // Small, so background checkpoints (and WAL recycling) happen while the
  // child may be killed.
  o.checkpoint_wal_bytes = size_t{256} << 10;
  return o;
}

// One operation of one thread: a single write or a transaction.
struct Write {
  std::string key;
  std::optional<std::string> value;  // nullopt = delete
};
struct Op {
  bool transaction = false;  // multi-key, atomic
  bool batch = false;        // ... committed as a WriteBatch, not a Transaction
  bool sync = false;
  bool checkpoint_after = false;  // thread 0 only; does not change the state
  std::vector<Write> writes;
  // A range delete of [erase_begin, erase_end) instead of writes: durable
  // once acknowledged, like a synced write, unless the range is empty (then
  // it does nothing at all, whatever `sync` says).
  bool erase = false;
  std::string erase_begin, erase_end;

  bool durable_when_acknowledged() const {
    if (erase) return checkpoint_after || erase_begin < erase_end;  // `sync` means nothing to it
    return sync || checkpoint_after;
  }
};

// The deterministic operation stream of thread `t` in the round with
// `round_seed`; parent and child both call it.
class OpStream {
 public:
  OpStream(uint64_t round_seed, int t, uint32_t round)
      : rng_(round_seed * 1000003u + static_cast<uint64_t>(t)), t_(t), round_(round) {}

  Op Next() {
    Op op;
    const uint32_t index = index_++;
    const uint64_t r = rng_() % 100;
    op.sync = rng_() % 2 == 0;
    const std::string tag = std::to_string(round_) + "." + std::to_string(index);
    auto key = [&](uint64_t k) { return "t" + std::to_string(t_) + "/k" + std::to_string(k); };
    auto value = [&](const std::string& k) {
      // Unique per write; sometimes long so a batch spans WAL blocks.
      std::string v = k + "=" + tag;
      if (rng_() % 8 == 0) v.append(200 + rng_() % 3000, static_cast<char>('a' + index % 26));
      return v;
    };
    if (r < 45) {
      std::string k = key(rng_() % kKeysPerThread);
      op.writes.push_back({k, value(k)});
    } else if (r < 55) {
      op.writes.push_back({key(rng_() % kKeysPerThread), std::nullopt});
    } else if (r < 57) {
      // A range of the thread's keys, in their byte order ("k12" < "k3").
      op.erase = true;
      op.erase_begin = key(rng_() % kKeysPerThread);
      op.erase_end = key(rng_() % kKeysPerThread);
      if (op.erase_end < op.erase_begin) std::swap(op.erase_begin, op.erase_end);
    } else {
      // Every transaction rewrites the thread's tag key, plus 1..8 (or,
      // rarely, 40) other keys; a partial transaction cannot match either
      // admissible state.
      op.transaction = true;
      op.batch = rng_() % 3 == 0;
      const std::string tag_key = "t" + std::to_string(t_) + "/tag";
      op.writes.push_back({tag_key, tag});
      const int n = r >= 98 ? 40 : 1 + static_cast<int>(rng_() % 8);
      for (int i = 0; i < n; i++) {
        std::string k = key(rng_() % kKeysPerThread);
        if (rng_() % 4 == 0) {
          op.writes.push_back({k, std::nullopt});
        } else {
          op.writes.push_back({k, value(k)});
        }
      }
    }
    op.checkpoint_after = t_ == 0 && rng_() % 50 == 0;
    return op;
  }

 private:
  std::mt19937_64 rng_;
  const int t_;
  const uint32_t round_;
  uint32_t index_ = 0;
};

inline void Apply(const Op& op, Model* model) {
  if (op.erase) {
    model->erase(model->lower_bound(op.erase_begin), model->lower_bound(op.erase_end));
  }
  for (const Write& w : op.writes) {
    if (w.value) {
      (*model)[w.key] = *w.value;
    } else {
      model->erase(w.key);
    }
  }
}

inline std::string Describe(const Model& m) {
  std::string out;
  for (const auto& [k, v] : m) out += "  " + k + " = " + v.substr(0, 40) + "\n";
  return out;
}

inline Status RunOp(DB* db, const Op& op) {
  WriteOptions wo;
  wo.sync = op.sync;
  Status s;
  if (op.erase) {
    s = db->DeleteRange(wo, op.erase_begin, op.erase_end);
  } else if (op.batch) {
    WriteBatch batch;
    for (const Write& w : op.writes) {
      s = w.value ? batch.Put(w.key, *w.value) : batch.Delete(w.key);
      if (!s.ok()) return s;
    }
    s = db->Write(wo, &batch);
  } else if (op.transaction) {
    std::unique_ptr<Transaction> txn = db->BeginTransaction(wo);
    if (txn == nullptr) return Status::IOError("BeginTransaction returned null");
    for (const Write& w : op.writes) {
      s = w.value ? txn->Put(w.key, *w.value) : txn->Delete(w.key);
      if (!s.ok()) return s;
    }
    s = txn->Commit();
  } else {
    const Write& w = op.writes[0];
    s = w.value ? db->Put(wo, w.key, *w.value) : db->Delete(wo, w.key);
  }
  if (s.ok() && op.checkpoint_after) s = db->Checkpoint();
  return s;
}

}  // namespace arenakv::test

#endif  // ARENAKV_TESTS_ENGINE_CRASH_WORKLOAD_H_
