// Runs the built kvtool binary for the end-to-end tests: arguments, a file
// or text on standard input, captured stdout/stderr and the exit status.
#ifndef ARENAKV_TESTS_KVTOOL_KVTOOL_RUNNER_H_
#define ARENAKV_TESTS_KVTOOL_KVTOOL_RUNNER_H_

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

extern char** environ;

namespace arenakv::test {

struct KvtoolResult {
  int exit_code = -1;  // -1 when it did not exit normally
  int signal = 0;      // the signal that ended it, or 0
  std::string out;
  std::string err;
};

inline std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void WriteFileBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// Runs kvtool with `args`; `input` is its standard input (not a terminal).
inline KvtoolResult RunKvtool(const std::vector<std::string>& args, const std::string& input = "") {
  TempDir io;
  const std::string in_path = io.Join("stdin"), out_path = io.Join("stdout"),
                    err_path = io.Join("stderr");
  WriteFileBytes(in_path, input);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, in_path.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  std::vector<std::string> argv_strings = {KVTOOL_PATH};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  KvtoolResult r;
  const int rc = posix_spawn(&pid, KVTOOL_PATH, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    ADD_FAILURE() << "cannot start " << KVTOOL_PATH;
    return r;
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  r.out = ReadFileBytes(out_path);
  r.err = ReadFileBytes(err_path);
  return r;
}

// kvtool DB -c COMMANDS [extra args]
inline KvtoolResult Kv(const std::string& db, const std::string& commands,
                       std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {db, "-c", commands};
  args.insert(args.end(), extra.begin(), extra.end());
  return RunKvtool(args);
}

inline std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

}  // namespace arenakv::test

#endif  // ARENAKV_TESTS_KVTOOL_KVTOOL_RUNNER_H_
