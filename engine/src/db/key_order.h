// The key order a database is opened in, as the data file records it: the
// comparator's name, or empty for the bytewise order (files in bytewise
// order name none, so that builds older than custom orders read them).
//
// Thread safety: pure functions.
#ifndef ARENAKV_DB_KEY_ORDER_H_
#define ARENAKV_DB_KEY_ORDER_H_

#include <string>

#include "arenakv/comparator.h"
#include "arenakv/status.h"

namespace arenakv {

// *name gets the name the data file records for `comparator` (nullptr is
// bytewise). InvalidArgument for a name that is empty, too long or
// reserved.
Status KeyOrderName(const Comparator* comparator, std::string* name);

}  // namespace arenakv

#endif  // ARENAKV_DB_KEY_ORDER_H_
