#include "line_editor.h"

#include <histedit.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cwchar>

#include "command_line.h"

namespace arenakv::kvtool {

namespace {
constexpr wchar_t kCtrlC = 0x03;
}  // namespace

LineEditor::LineEditor(const char* program, std::string history_path,
                       std::vector<std::string> completions, int interrupt_fd)
    : history_path_(std::move(history_path)),
      completions_(std::move(completions)),
      interrupt_fd_(interrupt_fd) {
  HistEvent ev;
  hist_ = history_init();
  history(hist_, &ev, H_SETSIZE, 2000);
  history(hist_, &ev, H_SETUNIQUE, 1);
  if (!history_path_.empty()) history(hist_, &ev, H_LOAD, history_path_.c_str());

  el_ = el_init(program, stdin, stdout, stderr);
  el_set(el_, EL_CLIENTDATA, this);
  el_set(el_, EL_EDITOR, "emacs");
  el_set(el_, EL_PROMPT, &LineEditor::PromptFn);
  el_set(el_, EL_HIST, history, hist_);
  el_set(el_, EL_ADDFN, "kvtool-complete", "Complete a command name", &LineEditor::CompleteFn);
  el_set(el_, EL_BIND, "^I", "kvtool-complete", nullptr);
  // Ctrl-C while editing is a key, not a signal: a SIGINT that lands outside
  // libedit's read() would be lost and leave the user at a dead line. The
  // terminal is back in cooked mode (ISIG on) while a command runs, so Ctrl-C
  // still interrupts long commands through the SIGINT handler.
  el_set(el_, EL_SETTY, "-d", "-isig", nullptr);
  el_set(el_, EL_ADDFN, "kvtool-abandon", "Abandon the line", &LineEditor::AbandonFn);
  el_set(el_, EL_BIND, "^C", "kvtool-abandon", nullptr);
  if (interrupt_fd_ >= 0) el_set(el_, EL_GETCFN, &LineEditor::GetCharFn);
  // ~/.editrc may rebind keys, as in other libedit programs.
  el_source(el_, nullptr);
}

LineEditor::~LineEditor() {
  if (el_ != nullptr) el_end(el_);
  if (hist_ != nullptr) {
    HistEvent ev;
    if (!history_path_.empty()) history(hist_, &ev, H_SAVE, history_path_.c_str());
    history_end(hist_);
  }
}

char* LineEditor::PromptFn(editline* el) {
  void* self = nullptr;
  el_get(el, EL_CLIENTDATA, &self);
  return static_cast<LineEditor*>(self)->prompt_.data();
}

unsigned char LineEditor::CompleteFn(editline* el, int /*ch*/) {
  void* self = nullptr;
  el_get(el, EL_CLIENTDATA, &self);
  return static_cast<LineEditor*>(self)->Complete();
}

unsigned char LineEditor::AbandonFn(editline* el, int /*ch*/) {
  void* self = nullptr;
  el_get(el, EL_CLIENTDATA, &self);
  static_cast<LineEditor*>(self)->abandoned_ = true;
  return CC_NEWLINE;
}

int LineEditor::GetCharFn(editline* el, wchar_t* c) {
  void* self = nullptr;
  el_get(el, EL_CLIENTDATA, &self);
  return static_cast<LineEditor*>(self)->GetChar(c);
}

// libedit's own reader, plus the interrupt pipe: a SIGINT becomes the Ctrl-C
// key. Returns 1 with a character, 0 at end of input, -1 on error.
int LineEditor::GetChar(wchar_t* c) {
  char bytes[MB_LEN_MAX];
  size_t n = 0;
  for (;;) {
    struct pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {interrupt_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;  // the handler has written to the pipe
      return -1;
    }
    if (fds[1].revents & POLLIN) {
      DrainInterrupts();
      *c = kCtrlC;
      return 1;
    }
    if (fds[0].revents == 0) continue;
    const ssize_t r = read(STDIN_FILENO, &bytes[n], 1);
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return -1;
    }
    if (r == 0) return 0;
    ++n;
    std::mbstate_t state{};
    wchar_t wc = 0;
    const size_t used = std::mbrtowc(&wc, bytes, n, &state);
    if (used == static_cast<size_t>(-2) && n < sizeof(bytes)) continue;  // more bytes to come
    // An invalid sequence passes its first byte through, as libedit does.
    *c = used > n ? static_cast<wchar_t>(static_cast<unsigned char>(bytes[0])) : wc;
    return 1;
  }
}

void LineEditor::DrainInterrupts() {
  if (interrupt_fd_ < 0) return;
  char sink[64];
  while (read(interrupt_fd_, sink, sizeof(sink)) > 0) {
  }
}

unsigned char LineEditor::Complete() {
  const LineInfo* li = el_line(el_);
  const std::string before(li->buffer, static_cast<size_t>(li->cursor - li->buffer));
  std::string partial;
  if (!CompletingCommandName(before, &partial)) return CC_REFRESH_BEEP;
  std::vector<const std::string*> matches;
  for (const std::string& c : completions_) {
    if (c.compare(0, partial.size(), partial) == 0) matches.push_back(&c);
  }
  if (matches.empty()) return CC_REFRESH_BEEP;
  if (matches.size() == 1) {
    const std::string rest = matches[0]->substr(partial.size()) + " ";
    el_insertstr(el_, rest.c_str());
    return CC_REFRESH;
  }
  // Several: extend to their common prefix, or list them when there is none.
  size_t common = matches[0]->size();
  for (const std::string* m : matches) {
    size_t k = 0;
    while (k < common && k < m->size() && (*m)[k] == (*matches[0])[k]) k++;
    common = k;
  }
  if (common > partial.size()) {
    el_insertstr(el_, matches[0]->substr(partial.size(), common - partial.size()).c_str());
    return CC_REFRESH;
  }
  std::fputc('\n', stdout);
  for (const std::string* m : matches) std::fprintf(stdout, "%s  ", m->c_str());
  std::fputc('\n', stdout);
  std::fflush(stdout);
  return CC_REDISPLAY;
}

bool LineEditor::ReadLine(const std::string& prompt, std::string* line, bool* interrupted) {
  prompt_ = prompt;
  *interrupted = false;
  abandoned_ = false;
  // A Ctrl-C that interrupted the previous command must not abandon this line.
  DrainInterrupts();
  int count = 0;
  errno = 0;
  const char* got = el_gets(el_, &count);
  if (abandoned_ || got == nullptr) {
    if (abandoned_ || (count < 0 && errno == EINTR)) {
      // Ctrl-C: abandon the line, keep the shell.
      std::fputc('\n', stdout);
      line->clear();
      *interrupted = true;
      return true;
    }
    return false;
  }
  line->assign(got, static_cast<size_t>(count));
  while (!line->empty() && (line->back() == '\n' || line->back() == '\r')) line->pop_back();
  return true;
}

void LineEditor::AddHistory(const std::string& line) {
  HistEvent ev;
  history(hist_, &ev, H_ENTER, line.c_str());
  if (!history_path_.empty()) history(hist_, &ev, H_SAVE, history_path_.c_str());
}

}  // namespace arenakv::kvtool
