// Key orders for the tests of custom comparators: reverse bytewise (bytes
// say the opposite of the order), numeric (decimal numbers: "9" < "10",
// so keys between two that share a prefix need not share it), and case
// folding (keys of different bytes that are the same key). Each comes with
// a less-than for std::map models kept in it, and a check of an iterator's
// scans against such a model.
//
// Thread safety: stateless.
#ifndef ARENAKV_TESTS_ENGINE_TEST_ORDERS_H_
#define ARENAKV_TESTS_ENGINE_TEST_ORDERS_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <string_view>

#include "arenakv/comparator.h"
#include "test_util.h"

namespace arenakv::test {

class ReverseOrder final : public Comparator {
 public:
  int Compare(std::string_view a, std::string_view b) const override { return b.compare(a); }
  const char* Name() const override { return "test.ReverseOrder"; }
};

// The reverse order with LevelDB's FindShortestSeparator: *start cut just
// past where it differs from limit (a prefix of start, which sorts after
// it in reverse; start itself when start is that short). Counts its calls.
class ShortReverseOrder final : public Comparator {
 public:
  int Compare(std::string_view a, std::string_view b) const override { return b.compare(a); }
  const char* Name() const override { return "test.ShortReverseOrder"; }
  void FindShortestSeparator(std::string* start, std::string_view limit) const override {
    calls.fetch_add(1, std::memory_order_relaxed);
    size_t p = 0;
    while (p < start->size() && p < limit.size() && (*start)[p] == limit[p]) ++p;
    if (p < start->size()) start->resize(p + 1);
  }
  mutable std::atomic<uint64_t> calls{0};
};

// The reverse order whose FindShortestSeparator breaks the "short" of its
// contract: it returns limit with 20,000 bytes appended, which sorts
// between start and limit but is longer than any key may be.
class LongSeparatorOrder final : public Comparator {
 public:
  int Compare(std::string_view a, std::string_view b) const override { return b.compare(a); }
  const char* Name() const override { return "test.LongSeparatorOrder"; }
  void FindShortestSeparator(std::string* start, std::string_view limit) const override {
    start->assign(limit);
    start->append(20000, 'x');
  }
};

// Keys of decimal digits as numbers (no leading zeros are written): fewer
// digits first, then bytewise. Any other byte sorts as in bytewise after
// the digits' length, which keeps the order total.
class NumericOrder final : public Comparator {
 public:
  int Compare(std::string_view a, std::string_view b) const override {
    if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
    return a.compare(b);
  }
  const char* Name() const override { return "test.NumericOrder"; }
};

class CaseFolding final : public Comparator {
 public:
  int Compare(std::string_view a, std::string_view b) const override {
    const size_t n = std::min(a.size(), b.size());
    for (size_t i = 0; i < n; ++i) {
      const int x = Fold(a[i]), y = Fold(b[i]);
      if (x != y) return x < y ? -1 : 1;
    }
    return a.size() < b.size() ? -1 : (a.size() > b.size() ? 1 : 0);
  }
  const char* Name() const override { return "test.CaseFolding"; }

 private:
  static int Fold(char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 'A' && u <= 'Z' ? u - 'A' + 'a' : u;
  }
};

// std::map's order for a model kept in `order` (nullptr: bytewise).
struct OrderLess {
  const Comparator* order = nullptr;
  bool operator()(std::string_view a, std::string_view b) const {
    return order != nullptr ? order->Compare(a, b) < 0 : a < b;
  }
};

// Scans `it` (a database's or the tree's iterator) forward and backward and
// expects exactly the model's keys in its order, and forward its values.
// Call under ASSERT_NO_FATAL_FAILURE.
template <typename Iter, typename Model>
void ExpectScansMatch(Iter* it, const Model& model, uint64_t seed) {
  auto m = model.begin();
  for (it->SeekToFirst(); it->Valid(); it->Next(), ++m) {
    ASSERT_NE(m, model.end()) << "seed " << seed;
    ASSERT_EQ(it->key(), m->first) << "seed " << seed;
    ASSERT_EQ(it->value(), m->second) << "seed " << seed;
  }
  ASSERT_OK(it->status());
  ASSERT_EQ(m, model.end()) << "seed " << seed;
  auto r = model.rbegin();
  for (it->SeekToLast(); it->Valid(); it->Prev(), ++r) {
    ASSERT_NE(r, model.rend()) << "seed " << seed;
    ASSERT_EQ(it->key(), r->first) << "seed " << seed;
  }
  ASSERT_EQ(r, model.rend()) << "seed " << seed;
}

}  // namespace arenakv::test

#endif  // ARENAKV_TESTS_ENGINE_TEST_ORDERS_H_
