// SalvageTree: reads what can still be read of a damaged data file's tree,
// for RepairDB. It walks the tree from the newest meta block that verifies
// (the other one when the newest is damaged), page by page, checking every
// page as a normal read does; a page that fails is reported with the key
// range its parent gives it and skipped, with everything below it, and the
// walk goes on with its siblings.
//
// Thread safety: a function of its arguments; the file must not change
// meanwhile (RepairDB holds the database's lock).
#ifndef ARENAKV_TREE_SALVAGE_H_
#define ARENAKV_TREE_SALVAGE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "arenakv/env.h"
#include "arenakv/status.h"
#include "tree/data_file.h"
#include "util/key_compare.h"

namespace arenakv::tree {

struct SalvageResult {
  bool have_meta = false;  // a meta block verified: `meta` is the one used
  MetaState meta;
  // A meta slot that holds damage rather than nothing: the state used may
  // be the checkpoint before the newest.
  bool meta_damaged = false;
  uint64_t pages_read = 0;
  uint64_t pages_lost = 0;
  uint64_t entries = 0;
  std::vector<std::string> lost;  // one line per loss
};

// Calls entry(key, value) for every entry of every readable leaf, in key
// order; an entry error stops the walk and is returned. progress(bytes
// read so far, bytes of the file) returning false stops it too (Aborted).
// Errors of the file itself (it cannot be opened or read) are returned;
// damage is reported in *result.
// `order` is the key order the caller reads in, `order_name` its name (as
// TreeOptions::order and ::comparator): a file whose meta block records
// another is refused with InvalidArgument before any entry is reported.
Status SalvageTree(Env* env, const std::string& path, const std::string& order_name, KeyOrder order,
                   const std::function<Status(std::string_view, std::string_view)>& entry,
                   const std::function<bool(uint64_t, uint64_t)>& progress, SalvageResult* result);

}  // namespace arenakv::tree

#endif  // ARENAKV_TREE_SALVAGE_H_
