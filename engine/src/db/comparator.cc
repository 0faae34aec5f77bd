// The bytewise order, and the name a data file records for an order.
#include "arenakv/comparator.h"

#include <new>
#include <string>
#include <string_view>

#include "db/key_order.h"
#include "tree/data_file.h"
#include "util/key_compare.h"

namespace arenakv {
namespace {

constexpr char kBytewiseName[] = "arenakv.BytewiseComparator";
constexpr std::string_view kReservedPrefix = "arenakv.";

class Bytewise final : public Comparator {
 public:
  int Compare(std::string_view a, std::string_view b) const override { return CompareKeys(a, b); }
  const char* Name() const override { return kBytewiseName; }
};

}  // namespace

const Comparator* BytewiseComparator() {
  // Never destroyed (built in static storage): databases may still be
  // closed by other static destructors.
  alignas(Bytewise) static unsigned char storage[sizeof(Bytewise)];
  static const Bytewise* const kBytewise = ::new (storage) Bytewise();
  return kBytewise;
}

Status KeyOrderName(const Comparator* comparator, std::string* name) {
  name->clear();
  if (comparator == nullptr || comparator == BytewiseComparator()) return Status::OK();
  const char* n = comparator->Name();
  const std::string_view shown = n == nullptr ? std::string_view() : std::string_view(n);
  if (shown.empty()) return Status::InvalidArgument("the comparator's Name() is empty");
  if (shown.size() > tree::kMaxComparatorNameBytes) {
    return Status::InvalidArgument("the comparator's name is longer than " +
                                   std::to_string(tree::kMaxComparatorNameBytes) + " bytes");
  }
  if (shown.substr(0, kReservedPrefix.size()) == kReservedPrefix) {
    return Status::InvalidArgument("comparator '" + std::string(shown) +
                                   "': names beginning with \"arenakv.\" are reserved");
  }
  name->assign(shown);
  return Status::OK();
}

}  // namespace arenakv
