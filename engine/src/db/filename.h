// The names of a database directory's files, and the directory's parent.
//
// Thread safety: constants and pure functions.
#ifndef ARENAKV_DB_FILENAME_H_
#define ARENAKV_DB_FILENAME_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace arenakv {

inline constexpr char kDataFileName[] = "data.akv";
inline constexpr char kLockFileName[] = "LOCK";
// Read-only opens hold a shared lock on byte kReaderLockBase + checkpoint id
// of LOCK (Env::LockShared); writers lock the whole file with flock, which
// does not conflict.
inline constexpr uint64_t kReaderLockBase = 4096;
// RepairDB's work directory inside the database's, and the markers of its
// file swap: the salvaged database is complete (the file names where the
// originals go), and the originals have been moved there.
inline constexpr char kRepairDirName[] = "repair.tmp";
inline constexpr char kRepairCompleteName[] = "COMPLETE";
inline constexpr char kRepairOldMovedName[] = "ORIGINALS-MOVED";

// The directory holding `path` ("." for a bare name).
std::string ParentDir(const std::string& path);

// "wal-<decimal digits>.log", nothing else: sscanf's %llu would also take a
// sign, spaces or a number past 2^64 (wrapped), naming a log that was never
// written as one that was.
bool ParseWalName(std::string_view name, uint64_t* number);

}  // namespace arenakv

#endif  // ARENAKV_DB_FILENAME_H_
