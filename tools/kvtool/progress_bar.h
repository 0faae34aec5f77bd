// A one-line progress bar on a terminal (stderr), redrawn in place:
//
//   verify [##########----------]  50%  1,024/2,048 pages
//
// Disabled bars draw nothing, so callers need not check whether stderr is a
// terminal themselves. Redraws are throttled to a few per second.
//
// Thread safety: one thread at a time.

#ifndef ARENAKV_TOOLS_KVTOOL_PROGRESS_BAR_H_
#define ARENAKV_TOOLS_KVTOOL_PROGRESS_BAR_H_

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace arenakv::kvtool {

class ProgressBar {
 public:
  ProgressBar(FILE* out, std::string label, std::string unit, bool enabled);
  ~ProgressBar();  // Clears the line.
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void Update(uint64_t done, uint64_t total);
  void Clear();

  // The text of the bar for these counts (no carriage return).
  static std::string Render(const std::string& label, const std::string& unit, uint64_t done,
                            uint64_t total, int width);

 private:
  FILE* out_;
  std::string label_;
  std::string unit_;
  bool enabled_;
  bool drawn_ = false;
  int last_percent_ = -1;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace arenakv::kvtool

#endif  // ARENAKV_TOOLS_KVTOOL_PROGRESS_BAR_H_
