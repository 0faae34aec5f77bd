#include "progress_bar.h"

#include "human_units.h"

namespace arenakv::kvtool {

ProgressBar::ProgressBar(FILE* out, std::string label, std::string unit, bool enabled)
    : out_(out), label_(std::move(label)), unit_(std::move(unit)), enabled_(enabled) {}

ProgressBar::~ProgressBar() { Clear(); }

std::string ProgressBar::Render(const std::string& label, const std::string& unit, uint64_t done,
                                uint64_t total, int width) {
  if (total < done) total = done;
  const double fraction = total == 0 ? 1.0 : static_cast<double>(done) / static_cast<double>(total);
  const int filled = static_cast<int>(fraction * width);
  std::string bar = label + " [";
  bar.append(static_cast<size_t>(filled), '#');
  bar.append(static_cast<size_t>(width - filled), '-');
  char pct[16];
  std::snprintf(pct, sizeof(pct), "] %3d%%  ", static_cast<int>(fraction * 100));
  bar.append(pct);
  bar.append(GroupThousands(done) + "/" + GroupThousands(total) + " " + unit);
  return bar;
}

void ProgressBar::Update(uint64_t done, uint64_t total) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  const int percent =
      total == 0 ? 100 : static_cast<int>(done * 100 / (total < done ? done : total));
  if (drawn_ && percent == last_percent_ && now - last_draw_ < std::chrono::milliseconds(200)) {
    return;
  }
  last_percent_ = percent;
  last_draw_ = now;
  drawn_ = true;
  std::fprintf(out_, "\r%s\033[K", Render(label_, unit_, done, total, 30).c_str());
  std::fflush(out_);
}

void ProgressBar::Clear() {
  if (!drawn_) return;
  std::fprintf(out_, "\r\033[K");
  std::fflush(out_);
  drawn_ = false;
}

}  // namespace arenakv::kvtool
