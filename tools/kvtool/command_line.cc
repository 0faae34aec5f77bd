#include "command_line.h"

#include "escape.h"

namespace arenakv::kvtool {

namespace {

bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

}  // namespace

bool ParseCommands(std::string_view text, std::vector<Words>* commands, std::string* error) {
  commands->clear();
  Words words;
  std::string word;
  bool in_word = false;
  auto end_word = [&] {
    if (in_word) words.push_back(std::move(word));
    word.clear();
    in_word = false;
  };
  auto end_command = [&] {
    end_word();
    if (!words.empty()) commands->push_back(std::move(words));
    words.clear();
  };

  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    const char c = text[i];
    if (IsBlank(c)) {
      end_word();
      i++;
    } else if (c == '\n' || c == ';') {
      end_command();
      i++;
    } else if (c == '#' && !in_word) {
      while (i < n && text[i] != '\n') i++;
    } else if (c == '"') {
      in_word = true;
      i++;
      for (;;) {
        if (i >= n) {
          *error = "unterminated double quote";
          return false;
        }
        if (text[i] == '"') {
          i++;
          break;
        }
        if (text[i] == '\\') {
          if (!DecodeEscape(text, &i, &word, error)) return false;
        } else {
          word.push_back(text[i++]);
        }
      }
    } else if (c == '\'') {
      in_word = true;
      const size_t close = text.find('\'', i + 1);
      if (close == std::string_view::npos) {
        *error = "unterminated single quote";
        return false;
      }
      word.append(text.substr(i + 1, close - i - 1));
      i = close + 1;
    } else if (c == '\\') {
      in_word = true;
      if (!DecodeEscape(text, &i, &word, error)) return false;
    } else {
      in_word = true;
      word.push_back(c);
      i++;
    }
  }
  end_command();
  return true;
}

bool CompletingCommandName(std::string_view before_cursor, std::string* partial) {
  // Walk the text with the lexer's quoting rules, remembering where the
  // current command starts and how many words it has begun.
  size_t words_started = 0;
  size_t word_start = 0;
  bool in_word = false;
  bool quoted = false;  // the current word contains a quote: not a command name
  size_t i = 0;
  const size_t n = before_cursor.size();
  while (i < n) {
    const char c = before_cursor[i];
    if (IsBlank(c)) {
      in_word = false;
      i++;
    } else if (c == '\n' || c == ';') {
      in_word = false;
      words_started = 0;
      i++;
    } else if (c == '#' && !in_word) {
      return false;  // a comment runs to the end of the line
    } else {
      if (!in_word) {
        in_word = true;
        words_started++;
        word_start = i;
        quoted = false;
      }
      if (c == '"' || c == '\'') {
        quoted = true;
        const size_t close = before_cursor.find(c, i + 1);
        if (close == std::string_view::npos) return false;  // inside quotes
        i = close + 1;
      } else if (c == '\\') {
        quoted = true;
        i += 2;
      } else {
        i++;
      }
    }
  }
  if (!in_word) {
    if (words_started != 0) return false;
    partial->clear();
    return true;
  }
  if (words_started != 1 || quoted) return false;
  *partial = std::string(before_cursor.substr(word_start));
  return true;
}

}  // namespace arenakv::kvtool
