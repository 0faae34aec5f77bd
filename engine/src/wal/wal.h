// The write-ahead log: WalWriter (append, sync) and WalReader (recovery),
// for code that uses both.
#ifndef ARENAKV_WAL_WAL_H_
#define ARENAKV_WAL_WAL_H_

#include "wal/wal_reader.h"
#include "wal/wal_writer.h"

#endif  // ARENAKV_WAL_WAL_H_
