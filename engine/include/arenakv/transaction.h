// Transaction: a unit of work reading one consistent snapshot and writing
// atomically at Commit().
//
// Reads see the snapshot taken at BeginTransaction() merged with the
// transaction's own writes (its deletes included). Commit() validates
// (first committer wins; serializable also checks the read set) and returns
// Conflict when another transaction got there first: nothing is left behind
// and the caller may retry with a new transaction. The buffers live in an
// arena of their own, released when the transaction commits, rolls back or is
// destroyed. After the database closes every call returns Closed.
//
// Thread safety: one transaction is used by one thread at a time; different
// transactions may run on different threads concurrently.

#ifndef ARENAKV_TRANSACTION_H_
#define ARENAKV_TRANSACTION_H_

#include <memory>
#include <string>
#include <string_view>

#include "arenakv/iterator.h"
#include "arenakv/options.h"
#include "arenakv/status.h"

namespace arenakv {

class Transaction {
 public:
  Transaction() = default;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  // Rolls back when neither committed nor rolled back.
  virtual ~Transaction() = default;

  virtual Status Put(std::string_view key, std::string_view value) = 0;
  virtual Status Delete(std::string_view key) = 0;
  // The snapshot of options is ignored: a transaction reads its own.
  virtual Status Get(const ReadOptions& options, std::string_view key, std::string* value) = 0;
  virtual std::unique_ptr<Iterator> NewIterator(const ReadOptions& options) = 0;
  virtual Status Commit() = 0;
  virtual Status Rollback() = 0;

  // Bytes held by this transaction's arena (write set, read set, iterators).
  virtual size_t BufferBytes() const = 0;
};

}  // namespace arenakv

#endif  // ARENAKV_TRANSACTION_H_
