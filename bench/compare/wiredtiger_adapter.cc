// The WiredTiger anchor of the comparison (libwiredtiger 3.x, C API): one
// row-store table of raw bytes (key_format=u, value_format=u), a cache of the
// comparison's cache size, and everything else at WiredTiger's defaults (no
// block compression: Debian's library has no compressor built in).
//
// - Durability. The connection has a write-ahead log (log=(enabled=true)),
//   so commits are durable through the log as in the other engines, and
//   transaction_sync=(enabled=false,method=fsync): an unsynced commit
//   (sync=false) leaves its log record in WiredTiger's in-memory log buffer,
//   written out when the buffer fills or switches files, at a checkpoint or
//   by any synced commit. That is WiredTiger's default and its documented
//   fast mode; it is weaker than RocksDB's, LevelDB's or LMDB's sync=false,
//   whose writes reach the OS before the call returns (a crash of the
//   process, not only of the machine, can lose WiredTiger's last unsynced
//   commits). A synced commit (sync=true) commits with "sync=on": the log is
//   written and fsync'ed (fdatasync where there is one) before the commit
//   returns, with WiredTiger's group commit for concurrent committers.
// - Threads. A WT_SESSION and its cursors belong to one thread at a time,
//   so every thread that calls the adapter gets its own session and cursor,
//   opened on first use (thread_local, tagged with the open they belong
//   to); WT_CONNECTION::close closes them all. A transaction and an
//   iterator use the session of the thread that created them and must stay
//   on that thread.
// - Transactions. Sessions are opened with isolation=snapshot (as MongoDB
//   opens them): under the default read-committed isolation WiredTiger 3.2
//   lets two transactions overwrite the same key with no conflict, and the
//   value of the one that committed first may be the one that stays, which
//   is not what the other engines' transactions do. begin_transaction,
//   cursor inserts, commit_transaction; an update that conflicts with a
//   concurrent transaction fails with WT_ROLLBACK at the insert or at the
//   commit, the transaction is then rolled back and Commit() returns false.
// - Persist(): WT_SESSION::checkpoint.

#include <wiredtiger.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>

#include "compare/engine_adapter.h"

namespace arenakv::compare {
namespace {

constexpr const char* kTable = "table:compare";
constexpr const char* kSessionConfig = "isolation=snapshot";

void Check(int rc, const char* what) {
  if (rc != 0) Die(std::string("wiredtiger ") + what + ": " + wiredtiger_strerror(rc));
}

WT_ITEM Item(std::string_view s) {
  WT_ITEM item{};
  item.data = s.data();
  item.size = s.size();
  return item;
}

std::string_view View(const WT_ITEM& item) {
  return {static_cast<const char*>(item.data), item.size};
}

// Tells apart the connections opened in this process, so a thread's cached
// session is never used with a connection it does not belong to.
std::atomic<uint64_t> next_open_id{1};

struct ThreadSession {
  uint64_t open_id = 0;
  WT_SESSION* session = nullptr;
  WT_CURSOR* cursor = nullptr;  // on kTable, for point reads and writes
};
thread_local ThreadSession thread_session;

// Sets the key and value of `c` and inserts (overwriting).
int Insert(WT_CURSOR* c, std::string_view key, std::string_view value) {
  WT_ITEM k = Item(key), v = Item(value);
  c->set_key(c, &k);
  c->set_value(c, &v);
  return c->insert(c);
}

class WiredtigerIterator final : public AdapterIterator {
 public:
  explicit WiredtigerIterator(WT_SESSION* session) {
    Check(session->open_cursor(session, kTable, nullptr, nullptr, &cursor_), "open_cursor");
  }
  ~WiredtigerIterator() override { cursor_->close(cursor_); }
  void SeekToFirst() override {
    Check(cursor_->reset(cursor_), "cursor reset");
    Step();
  }
  bool Valid() const override { return valid_; }
  void Next() override { Step(); }
  std::string_view key() const override { return View(key_); }
  std::string_view value() const override { return View(value_); }
  void CheckStatus() const override { Check(status_, "cursor next"); }

 private:
  void Step() {
    int rc = cursor_->next(cursor_);
    valid_ = rc == 0;
    if (valid_) {
      Check(cursor_->get_key(cursor_, &key_), "get_key");
      Check(cursor_->get_value(cursor_, &value_), "get_value");
    } else if (rc != WT_NOTFOUND) {
      status_ = rc;
    }
  }

  WT_CURSOR* cursor_ = nullptr;
  WT_ITEM key_{};
  WT_ITEM value_{};
  bool valid_ = false;
  int status_ = 0;
};

class WiredtigerTransaction final : public AdapterTransaction {
 public:
  WiredtigerTransaction(const ThreadSession& ts, bool sync)
      : session_(ts.session), cursor_(ts.cursor), sync_(sync) {
    Check(session_->begin_transaction(session_, nullptr), "begin_transaction");
    active_ = true;
  }
  ~WiredtigerTransaction() override {
    if (active_) session_->rollback_transaction(session_, nullptr);
  }
  void Put(std::string_view key, std::string_view value) override {
    if (!active_) return;  // already rolled back by a conflict
    int rc = Insert(cursor_, key, value);
    if (rc == WT_ROLLBACK) {
      Check(session_->rollback_transaction(session_, nullptr), "rollback_transaction");
      active_ = false;
      return;
    }
    Check(rc, "txn insert");
  }
  bool Commit() override {
    if (!active_) return false;
    active_ = false;
    // On any error the transaction has been rolled back.
    int rc = session_->commit_transaction(session_, sync_ ? "sync=on" : nullptr);
    if (rc == WT_ROLLBACK) return false;
    Check(rc, "commit_transaction");
    return true;
  }

 private:
  WT_SESSION* session_;
  WT_CURSOR* cursor_;
  bool sync_;
  bool active_ = false;
};

class WiredtigerAdapter final : public EngineAdapter {
 public:
  ~WiredtigerAdapter() override {
    if (conn_ != nullptr) Close();
  }

  const char* name() const override { return "wiredtiger"; }

  void Open(const std::string& dir, bool /*transactional*/) override {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) Die("wiredtiger: cannot create " + dir + ": " + ec.message());
    std::string config = "create,cache_size=" + std::to_string(Memory().cache_bytes) +
                         ",log=(enabled=true),transaction_sync=(enabled=false,method=fsync)";
    Check(wiredtiger_open(dir.c_str(), nullptr, config.c_str(), &conn_), "open");
    WT_SESSION* session = nullptr;
    Check(conn_->open_session(conn_, nullptr, kSessionConfig, &session), "open_session");
    Check(session->create(session, kTable, "key_format=u,value_format=u"), "create table");
    Check(session->close(session, nullptr), "close session");
    open_id_ = next_open_id.fetch_add(1);
  }

  void Put(std::string_view key, std::string_view value, bool sync) override {
    const ThreadSession& ts = Session();
    for (;;) {
      int rc;
      if (sync) {
        // An explicit transaction, for its synced commit.
        Check(ts.session->begin_transaction(ts.session, nullptr), "begin_transaction");
        rc = Insert(ts.cursor, key, value);
        if (rc == 0) {
          rc = ts.session->commit_transaction(ts.session, "sync=on");
        } else {
          ts.session->rollback_transaction(ts.session, nullptr);
        }
      } else {
        rc = Insert(ts.cursor, key, value);  // auto-commit
      }
      if (rc != WT_ROLLBACK) {
        Check(rc, "insert");
        return;
      }
      // A conflict with a concurrent writer of the same key: retry, as a
      // plain put must not fail.
    }
  }

  bool Get(std::string_view key, std::string* value) override {
    WT_CURSOR* c = Session().cursor;
    WT_ITEM k = Item(key);
    c->set_key(c, &k);
    int rc = c->search(c);
    if (rc == 0) {
      WT_ITEM v{};
      Check(c->get_value(c, &v), "get_value");
      value->assign(static_cast<const char*>(v.data), v.size);
    }
    // Releases the page and the snapshot the search pinned.
    Check(c->reset(c), "cursor reset");
    if (rc == WT_NOTFOUND) return false;
    Check(rc, "search");
    return true;
  }

  std::unique_ptr<AdapterIterator> NewIterator() override {
    return std::make_unique<WiredtigerIterator>(Session().session);
  }

  std::unique_ptr<AdapterTransaction> BeginTransaction(bool sync) override {
    return std::make_unique<WiredtigerTransaction>(Session(), sync);
  }
  std::unique_ptr<AdapterTransaction> NewWriteBatch(bool sync) override {
    return BeginTransaction(sync);
  }

  void Persist() override {
    WT_SESSION* session = Session().session;
    Check(session->checkpoint(session, nullptr), "checkpoint");
  }

  void Close() override {
    if (conn_ == nullptr) return;
    Check(conn_->close(conn_, nullptr), "close");  // closes every session
    conn_ = nullptr;
    open_id_ = 0;
  }

 private:
  // The calling thread's session and cursor, opened on first use.
  const ThreadSession& Session() {
    ThreadSession& ts = thread_session;
    if (ts.open_id != open_id_) {
      Check(conn_->open_session(conn_, nullptr, kSessionConfig, &ts.session), "open_session");
      Check(ts.session->open_cursor(ts.session, kTable, nullptr, nullptr, &ts.cursor),
            "open_cursor");
      ts.open_id = open_id_;
    }
    return ts;
  }

  WT_CONNECTION* conn_ = nullptr;
  uint64_t open_id_ = 0;
};

}  // namespace

std::unique_ptr<EngineAdapter> NewWiredtigerAdapter() {
  return std::make_unique<WiredtigerAdapter>();
}

}  // namespace arenakv::compare
