// RandomCursorWalk: drives an InternalIterator through random Seek,
// SeekToFirst, SeekToLast, Next and Prev calls and checks every position
// against the expected view (a sorted vector of entries with key, value and
// a tombstone flag), so that a cursor's behaviour is tested the same way
// wherever one is built.
//
// Thread safety: test code, one thread.
#ifndef ARENAKV_TESTS_ENGINE_CURSOR_WALK_H_
#define ARENAKV_TESTS_ENGINE_CURSOR_WALK_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "arenakv/comparator.h"
#include "util/internal_iterator.h"

namespace arenakv::test {

// `view` entries have `key` and `value` strings and the tombstone flag named
// by `tombstone`, sorted in `order` (nullptr: bytewise); `random_target()`
// gives Seek targets; `where` is printed with any failure (the seed, the
// round). Stops at the first failure.
template <typename Entry, typename Rng, typename TargetFn>
void RandomCursorWalk(InternalIterator* it, const std::vector<Entry>& view, bool Entry::*tombstone,
                      Rng& rng, TargetFn random_target, int steps, const std::string& where,
                      const Comparator* order = nullptr) {
  size_t pos = view.size();  // == size: invalid
  for (int i = 0; i < steps; ++i) {
    int op = static_cast<int>(rng() % 10);
    if (pos == view.size()) op %= 3;  // only positioning calls while invalid
    switch (op) {
      case 0: {
        const std::string target = random_target();
        it->Seek(target);
        pos = std::lower_bound(view.begin(), view.end(), target,
                               [order](const Entry& e, const std::string& t) {
                                 return order != nullptr ? order->Compare(e.key, t) < 0 : e.key < t;
                               }) -
              view.begin();
        break;
      }
      case 1:
        it->SeekToFirst();
        pos = 0;
        break;
      case 2:
        it->SeekToLast();
        pos = view.empty() ? 0 : view.size() - 1;
        break;
      case 3:
      case 4:
      case 5:
        it->Next();
        ++pos;
        break;
      default:
        it->Prev();
        pos = pos == 0 ? view.size() : pos - 1;
        break;
    }
    if (pos > view.size()) pos = view.size();
    ASSERT_EQ(it->Valid(), pos < view.size()) << where << " step " << i;
    if (pos < view.size()) {
      ASSERT_EQ(it->key(), view[pos].key) << where << " step " << i;
      ASSERT_EQ(it->is_tombstone(), view[pos].*tombstone) << where << " step " << i;
      ASSERT_EQ(it->value(), view[pos].value) << where << " step " << i;
    }
  }
}

}  // namespace arenakv::test

#endif  // ARENAKV_TESTS_ENGINE_CURSOR_WALK_H_
