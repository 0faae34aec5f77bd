// TransactionImpl: a transaction's buffers (write set, read set, iterator
// state) live in an arena of its own, a child of the database arena, bounded
// by TransactionOptions::buffer_budget_bytes. Commit, Rollback, destruction
// or DB::Close() close that arena at once.
//
// Thread safety: one thread at a time (as arenakv::Transaction); DB::Close()
// from another thread waits for a call in flight.
#ifndef ARENAKV_DB_TRANSACTION_IMPL_H_
#define ARENAKV_DB_TRANSACTION_IMPL_H_

#include <memory>

#include "arenakv/transaction.h"
#include "db/version.h"

namespace arenakv {

class DBImpl;

std::unique_ptr<Transaction> NewTransaction(DBImpl* db, const WriteOptions& options,
                                            const TransactionOptions& txn_options,
                                            std::shared_ptr<Version> version,
                                            std::shared_ptr<WriteHistory> history,
                                            uint64_t sequence);
// A transaction on a closed database: every call returns Closed.
std::unique_ptr<Transaction> NewClosedTransaction();

}  // namespace arenakv

#endif  // ARENAKV_DB_TRANSACTION_IMPL_H_
