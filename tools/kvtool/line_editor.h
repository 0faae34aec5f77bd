// LineEditor: kvtool's interactive input, on top of libedit (BSD licensed):
// emacs-style line editing, a persistent history file, and tab completion of
// command names.
//
// Thread safety: one thread; one editor per terminal.

#ifndef ARENAKV_TOOLS_KVTOOL_LINE_EDITOR_H_
#define ARENAKV_TOOLS_KVTOOL_LINE_EDITOR_H_

#include <cstdio>
#include <string>
#include <vector>

struct editline;
struct history;

namespace arenakv::kvtool {

class LineEditor {
 public:
  // `history_path` may be empty (no history file). `completions` are the
  // words Tab completes at the start of a command. `interrupt_fd` (or -1) is
  // the read end of a pipe the SIGINT handler writes a byte to: a Ctrl-C
  // abandons the line being edited even when the signal lands outside read()
  // (for example before libedit has put the terminal in raw mode), which an
  // EINTR-based check would miss.
  LineEditor(const char* program, std::string history_path, std::vector<std::string> completions,
             int interrupt_fd);
  ~LineEditor();  // Saves the history.
  LineEditor(const LineEditor&) = delete;
  LineEditor& operator=(const LineEditor&) = delete;

  // Reads one line (without its newline). False at end of input (Ctrl-D).
  // A line abandoned with Ctrl-C comes back as "" with *interrupted set.
  bool ReadLine(const std::string& prompt, std::string* line, bool* interrupted);
  void AddHistory(const std::string& line);

 private:
  static char* PromptFn(editline* el);
  static unsigned char CompleteFn(editline* el, int ch);
  static unsigned char AbandonFn(editline* el, int ch);
  static int GetCharFn(editline* el, wchar_t* c);
  int GetChar(wchar_t* c);
  void DrainInterrupts();
  unsigned char Complete();

  editline* el_ = nullptr;
  history* hist_ = nullptr;
  std::string history_path_;
  std::vector<std::string> completions_;
  std::string prompt_;
  bool abandoned_ = false;  // set by the Ctrl-C key binding
  int interrupt_fd_ = -1;
};

}  // namespace arenakv::kvtool

#endif  // ARENAKV_TOOLS_KVTOOL_LINE_EDITOR_H_
