// Pager: one interactive command's output, shown through a pager (the
// user's $PAGER, else `less -FRX` when it is installed) once it is longer
// than the terminal; shorter output goes straight to the terminal. Lines
// are held until a screenful is reached, so a short answer never starts a
// pager, and a long one streams through it (a scan of millions of keys is
// not held in memory).
//
// Thread safety: one thread, like the shell it serves.
#ifndef ARENAKV_TOOLS_KVTOOL_PAGER_H_
#define ARENAKV_TOOLS_KVTOOL_PAGER_H_

#include <sys/types.h>

#include <atomic>
#include <cstdio>
#include <string>

namespace arenakv::kvtool {

// The pager to use: $PAGER if set (empty: none), else "less -FRX" if less is
// on the PATH, else "" (none).
std::string DefaultPagerCommand();

class Pager {
 public:
  // `command` "" writes everything to `terminal` directly. `rows`: the
  // terminal's height. `reader_gone` is set when the pager quits before
  // the output ends (the command may stop: nobody reads it).
  Pager(FILE* terminal, std::string command, int rows, std::atomic<bool>* reader_gone);
  ~Pager();  // Finish()
  Pager(const Pager&) = delete;
  Pager& operator=(const Pager&) = delete;

  // Where the command writes; null if it could not be made (then write to
  // the terminal).
  FILE* file() const { return file_; }
  // Flushes: short output to the terminal, or closes the pager's input and
  // waits for the reader to leave it. Idempotent.
  void Finish();
  // Whether a pager was started (the output outgrew the screen).
  bool paged() const { return pipe_ != nullptr || paged_; }

 private:
  static ssize_t WriteCookie(void* cookie, const char* data, size_t n);
  ssize_t Write(const char* data, size_t n);
  bool StartPager();

  FILE* const terminal_;
  const std::string command_;
  const size_t rows_;
  std::atomic<bool>* const reader_gone_;
  std::string held_;  // output not yet shown, less than a screenful
  size_t lines_ = 0;
  FILE* pipe_ = nullptr;
  bool paged_ = false;
  FILE* file_ = nullptr;
};

}  // namespace arenakv::kvtool

#endif  // ARENAKV_TOOLS_KVTOOL_PAGER_H_
