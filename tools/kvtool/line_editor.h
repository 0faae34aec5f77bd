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
  // words Tab completes at the start of a command.
  LineEditor(const char* program, std::string history_path, std::vector<std::string> completions);
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
  unsigned char Complete();

  editline* el_ = nullptr;
  history* hist_ = nullptr;
  std::string history_path_;
  std::vector<std::string> completions_;
  std::string prompt_;
  bool abandoned_ = false;  // set by the Ctrl-C key binding
};

}  // namespace arenakv::kvtool

#endif  // ARENAKV_TOOLS_KVTOOL_LINE_EDITOR_H_
