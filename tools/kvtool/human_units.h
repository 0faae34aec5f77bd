// Numbers for people: byte counts in binary units ("1.5 MiB") and rates
// with thousands separators ("123,456"). Used by kvtool's stats and bench.
//
// Thread safety: pure functions.

#ifndef ARENAKV_TOOLS_KVTOOL_HUMAN_UNITS_H_
#define ARENAKV_TOOLS_KVTOOL_HUMAN_UNITS_H_

#include <cstdint>
#include <string>

namespace arenakv::kvtool {

// "0 B", "512 B", "4.0 KiB", "1.5 MiB", "2.0 GiB"; SIZE_MAX is "unlimited".
std::string HumanBytes(uint64_t bytes);
// 1234567 -> "1,234,567".
std::string GroupThousands(uint64_t n);

}  // namespace arenakv::kvtool

#endif  // ARENAKV_TOOLS_KVTOOL_HUMAN_UNITS_H_
