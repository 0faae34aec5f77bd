#include "pager.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <sstream>
#include <utility>

namespace arenakv::kvtool {

std::string DefaultPagerCommand() {
  if (const char* p = std::getenv("PAGER"); p != nullptr) return p;
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (!dir.empty() && access((dir + "/less").c_str(), X_OK) == 0) return "less -FRX";
  }
  return "";
}

Pager::Pager(FILE* terminal, std::string command, int rows, std::atomic<bool>* reader_gone)
    : terminal_(terminal),
      command_(std::move(command)),
      rows_(static_cast<size_t>(std::max(rows, 2))),
      reader_gone_(reader_gone) {
  cookie_io_functions_t io = {};
  io.write = &Pager::WriteCookie;
  file_ = fopencookie(this, "w", io);
}

Pager::~Pager() { Finish(); }

void Pager::Finish() {
  if (file_ != nullptr) {
    std::fclose(file_);  // flushes into Write
    file_ = nullptr;
  }
  if (pipe_ != nullptr) {
    pclose(pipe_);  // waits for the reader to leave the pager
    pipe_ = nullptr;
    paged_ = true;
  } else if (!held_.empty()) {
    std::fwrite(held_.data(), 1, held_.size(), terminal_);
    held_.clear();
  }
  std::fflush(terminal_);
}

ssize_t Pager::WriteCookie(void* cookie, const char* data, size_t n) {
  return static_cast<Pager*>(cookie)->Write(data, n);
}

ssize_t Pager::Write(const char* data, size_t n) {
  const auto given = static_cast<ssize_t>(n);
  if (pipe_ == nullptr) {
    held_.append(data, n);
    lines_ += static_cast<size_t>(std::count(data, data + n, '\n'));
    // A screenful less the prompt line: the rest goes through the pager.
    if (lines_ < rows_ - 1 || command_.empty() || !StartPager()) {
      if (command_.empty() || held_.size() > (size_t{1} << 20)) {
        // No pager (or none could start): the terminal takes it as it comes.
        std::fwrite(held_.data(), 1, held_.size(), terminal_);
        held_.clear();
      }
      return given;
    }
    data = held_.data();
    n = held_.size();
  }
  const size_t wrote = std::fwrite(data, 1, n, pipe_);
  held_.clear();
  if (wrote != n || std::fflush(pipe_) != 0) {
    // The reader quit the pager: nobody reads the rest.
    if (reader_gone_ != nullptr) reader_gone_->store(true);
    errno = EPIPE;
    return -1;
  }
  return given;
}

bool Pager::StartPager() {
  std::fflush(terminal_);
  pipe_ = popen(command_.c_str(), "w");
  return pipe_ != nullptr;
}

}  // namespace arenakv::kvtool
