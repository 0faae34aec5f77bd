// Shell: kvtool's commands (get, put, scan, begin/commit, stats, verify,
// import/export, bench, ...) run against one open database.
//
// The shell reads nothing itself: the interactive loop, -c and scripts hand
// it one parsed command at a time (see command_line.h). Output goes to `out`
// (text, or one JSON object per command in JSON mode); on failure Execute()
// returns kFailed or kUsage and error() holds the one line to show, which
// the caller prints to stderr with whatever context it has (a line number).
// Between `begin` and `commit`/`rollback` every read and write goes through
// the open transaction.
//
// Thread safety: one thread. The DB must outlive the shell.

#ifndef ARENAKV_TOOLS_KVTOOL_SHELL_H_
#define ARENAKV_TOOLS_KVTOOL_SHELL_H_

#include <atomic>
#include <cstdio>
#include <istream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "arenakv/db.h"
#include "command_line.h"
#include "record_format.h"

namespace arenakv::kvtool {

enum class CommandResult {
  kOk,
  kFailed,  // the command ran and failed (not found, corruption, I/O ...)
  kUsage,   // unknown command or bad arguments
  kQuit,
};

struct ShellOptions {
  bool json = false;
  // Draw progress bars (verify, import, export) on stderr.
  bool progress = false;
  // Options for the scratch database `bench` creates.
  Options bench_db_options;
  // A failing command in a file `.read` runs does not stop the rest.
  bool continue_on_error = false;
};

class Shell {
 public:
  Shell(DB* db, std::string label, ShellOptions options, FILE* out, FILE* err);
  ~Shell();
  Shell(const Shell&) = delete;
  Shell& operator=(const Shell&) = delete;

  CommandResult Execute(const Words& words);
  // The message of the last failed command, one line without newline.
  const std::string& error() const { return error_; }

  bool in_transaction() const { return txn_ != nullptr; }
  // "arenakv LABEL> " or "arenakv LABEL [txn]> ".
  std::string Prompt() const;
  // Rolls back an open transaction and tells stderr so. True if one was open.
  bool RollbackOpenTransaction();

  // Every command name, in help order.
  static std::vector<std::string> CommandNames();
  // What a command does to the database: reads what is in it (get, scan,
  // count, stats, verify, export), touches nothing stored (begin, rollback,
  // help, quit, exit), or may write (everything else, unknown names too).
  enum class Access { kReads, kNone, kWrites };
  static Access CommandAccess(std::string_view name);

  // Set from a SIGINT handler: long-running commands stop with "interrupted".
  static std::atomic<bool> interrupted;
  // Set when the reader quit the pager: long-running commands stop too.
  static std::atomic<bool> output_gone;

  // Where command output goes (a pager's input, for one command).
  void set_output(FILE* out) { out_ = out; }
  // `pager on|off`: interactive output longer than the screen is paged.
  bool paging() const { return paging_; }

 private:
  struct Command;
  struct Range;
  static const std::vector<Command>& Commands();
  static const Command* Find(std::string_view name);

  CommandResult Get(const Words& args);
  CommandResult Put(const Words& args);
  CommandResult Del(const Words& args);
  CommandResult Scan(const Words& args);
  CommandResult Count(const Words& args);
  CommandResult Begin(const Words& args);
  CommandResult Commit(const Words& args);
  CommandResult Rollback(const Words& args);
  CommandResult Stats(const Words& args);
  CommandResult Checkpoint(const Words& args);
  CommandResult ReadCommands(const Words& args);
  CommandResult Timer(const Words& args);
  CommandResult Paging(const Words& args);
  CommandResult Toggle(const Words& args, const char* name, bool* flag);
  CommandResult DeleteRange(const Words& args);
  CommandResult TakeSnapshot(const Words& args);
  ReadOptions Reading() const;
  CommandResult Backup(const Words& args);
  CommandResult Verify(const Words& args);
  CommandResult Import(const Words& args);
  CommandResult ImportAtomic(std::istream& in, const std::string& path, RecordFormat format,
                             uint64_t file_size);
  CommandResult Export(const Words& args);
  CommandResult Bench(const Words& args);
  CommandResult Help(const Words& args);
  CommandResult Quit(const Words& args);

  // Failures: set error_ (and the JSON error code) and return the result.
  CommandResult Fail(std::string message, const char* code = "Failed");
  CommandResult Fail(std::string_view context, const Status& s);
  CommandResult Usage(std::string message);

  // Emits the JSON reply for the current command (adds "cmd" and "ok").
  void Reply(nlohmann::ordered_json fields);
  void Print(std::string_view text);

  std::unique_ptr<Iterator> NewIterator();
  bool CheckInterrupted();

  DB* const db_;
  const std::string label_;
  const ShellOptions options_;
  FILE* out_;
  FILE* const err_;
  std::unique_ptr<Transaction> txn_;
  // `snapshot`: reads outside a transaction see this state until released.
  std::unique_ptr<Snapshot> snapshot_;
  std::string current_;  // name of the command being run
  bool timer_ = false;   // `timer on`: each command's time on stderr
  bool paging_ = true;   // `pager off`: never page
  int read_depth_ = 0;   // files `.read` is running, nested
  std::string error_;
  std::string error_code_;
};

}  // namespace arenakv::kvtool

#endif  // ARENAKV_TOOLS_KVTOOL_SHELL_H_
