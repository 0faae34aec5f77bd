// kvtool: a shell for looking inside an arenakv database.
//
//   kvtool [--db] PATH                    interactive when stdin is a terminal
//   kvtool [--db] PATH -c "put a 1; get a"
//   kvtool [--db] PATH < script.kv
//
// Exit status: 0 success, 1 a command (or opening the database) failed,
// 2 usage error. Everything is caught here: kvtool ends with an exit status
// and one line on stderr, never with a signal or a stack trace.

#include <fcntl.h>
#include <langinfo.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <clocale>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "arenakv/db.h"
#include "arenakv/memory_budget.h"
#include "blocked_signals.h"
#include "command_line.h"
#include "human_units.h"
#include "line_editor.h"
#include "pager.h"
#include "progress_bar.h"
#include "shell.h"

namespace arenakv::kvtool {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

constexpr char kUsage[] =
    "usage: kvtool [OPTIONS] [--db] PATH [-c COMMANDS]\n"
    "\n"
    "A shell over the arenakv database in directory PATH (created when missing).\n"
    "Interactive when standard input is a terminal; otherwise runs the commands of\n"
    "-c, or the script on standard input, and stops at the first failure.\n"
    "\n"
    "options:\n"
    "  --db PATH           the database directory (or give PATH as an argument)\n"
    "  -c, --command CMDS  run CMDS (separated by ';' or newlines) and exit\n"
    "  --json              one JSON object per command on stdout\n"
    "  --no-create         fail instead of creating a missing database\n"
    "  --continue-on-error a failing command does not stop the ones after it (the\n"
    "                      exit status still says that one failed)\n"
    "  --read-only         open to read only: nothing is created or written, and\n"
    "                      it works beside a process writing the database (-c\n"
    "                      commands that only read open a database in use this\n"
    "                      way by themselves)\n"
    "  --cache-mb N        page cache size in MiB (default 64)\n"
    "  --shared-budget-mb N  open under a MemoryBudget of N MiB, as a process\n"
    "                      sharing one budget among its databases does\n"
    "                      (`stats` shows it)\n"
    "  --map-reads         read the data file through a mapping (Options::map_reads:\n"
    "                      faster reads past the cache; an I/O error then ends\n"
    "                      the process)\n"
    "  --strict-recovery   refuse to open a log a crash cut short, instead of\n"
    "                      cutting it (the default cuts it and says so)\n"
    "  --repair            salvage what can be read of a damaged database into\n"
    "                      one that opens (RepairDB), say what was lost, and\n"
    "                      exit; the damaged files are kept in PATH/lost\n"
    "  -h, --help          this help; `kvtool PATH -c help` lists the commands\n"
    "  --version           print the version\n"
    "\n"
    "exit status: 0 success, 1 a command failed, 2 usage error\n";

struct Flags {
  std::string db_path;
  std::string commands;
  bool have_commands = false;
  bool json = false;
  bool create = true;
  bool read_only = false;
  bool map_reads = false;
  bool continue_on_error = false;
  bool strict_recovery = false;
  bool repair = false;
  size_t cache_bytes = 0;
  size_t shared_budget_bytes = 0;
};

int UsageError(const std::string& message) {
  std::fprintf(stderr, "kvtool: %s\n(kvtool --help for usage)\n", message.c_str());
  return kExitUsage;
}

// A size in MiB, 1 to 1 TiB's worth, into bytes.
bool ParseMiB(const std::string& n, size_t* bytes) {
  char* end = nullptr;
  const unsigned long long mb = std::strtoull(n.c_str(), &end, 10);
  if (n.empty() || *end != '\0' || mb == 0 || mb > (size_t{1} << 20)) return false;
  *bytes = static_cast<size_t>(mb) << 20;
  return true;
}

// Returns -1 to go on, or an exit status.
int ParseFlags(int argc, char** argv, Flags* flags) {
  bool options_done = false;
  auto set_db = [flags](const std::string& path) {
    if (!flags->db_path.empty()) return false;
    flags->db_path = path;
    return true;
  };
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    if (options_done || arg.empty() || arg[0] != '-' || arg == "-") {
      if (!set_db(arg)) return UsageError("more than one database given ('" + arg + "')");
      continue;
    }
    std::string value;
    bool has_inline = false;
    if (arg.compare(0, 2, "--") == 0) {
      const size_t eq = arg.find('=');
      if (eq != std::string::npos) {
        value = arg.substr(eq + 1);
        arg = arg.substr(0, eq);
        has_inline = true;
      }
    }
    auto take_value = [&](std::string* out) {
      if (has_inline) {
        *out = value;
        return true;
      }
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    if (arg == "--") {
      options_done = true;
    } else if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return kExitOk;
    } else if (arg == "--version") {
      std::puts("kvtool (arenakv) 0.1.0");
      return kExitOk;
    } else if (arg == "--json") {
      flags->json = true;
    } else if (arg == "--no-create") {
      flags->create = false;
    } else if (arg == "--read-only") {
      flags->read_only = true;
    } else if (arg == "--map-reads") {
      flags->map_reads = true;
    } else if (arg == "--continue-on-error") {
      flags->continue_on_error = true;
    } else if (arg == "--strict-recovery") {
      flags->strict_recovery = true;
    } else if (arg == "--repair") {
      flags->repair = true;
    } else if (arg == "--db") {
      std::string path;
      if (!take_value(&path)) return UsageError("--db needs a path");
      if (!set_db(path)) return UsageError("more than one database given ('" + path + "')");
    } else if (arg == "-c" || arg == "--command") {
      std::string cmds;
      if (!take_value(&cmds)) return UsageError(arg + " needs commands");
      if (flags->have_commands) flags->commands += "\n";
      flags->commands += cmds;
      flags->have_commands = true;
    } else if (arg == "--cache-mb" || arg == "--shared-budget-mb") {
      std::string n;
      size_t bytes = 0;
      if (!take_value(&n) || !ParseMiB(n, &bytes)) {
        return UsageError(arg + " needs a number from 1 to 1048576");
      }
      (arg == "--cache-mb" ? flags->cache_bytes : flags->shared_budget_bytes) = bytes;
    } else {
      return UsageError("unknown option '" + arg + "'");
    }
  }
  if (flags->db_path.empty()) return UsageError("no database given");
  if (flags->repair && (flags->have_commands || flags->read_only)) {
    return UsageError("--repair runs alone (no -c, no --read-only)");
  }
  return -1;
}

// The write end of the interrupt pipe (-1 until interactive mode opens it).
int g_interrupt_pipe_write = -1;

void OnInterrupt(int) {
  const int saved = errno;
  Shell::interrupted.store(true);
  if (g_interrupt_pipe_write >= 0) {
    const char byte = 1;
    // Non-blocking: a full pipe already says "interrupted".
    [[maybe_unused]] const ssize_t r = write(g_interrupt_pipe_write, &byte, 1);
  }
  errno = saved;
}

std::string HistoryPath() {
  if (const char* p = std::getenv("KVTOOL_HISTORY")) return p;  // "" disables it
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') return "";
  return std::string(home) + "/.kvtool_history";
}

int ExitFor(CommandResult r) { return r == CommandResult::kUsage ? kExitUsage : kExitFailed; }

// -c: the whole text is checked for syntax before anything runs. A failure
// stops the rest, unless `keep_going`: then the exit status is the first
// failure's.
int RunCommands(Shell* shell, const std::string& text, bool keep_going) {
  std::vector<Words> commands;
  std::string why;
  if (!ParseCommands(text, &commands, &why)) {
    std::fprintf(stderr, "error: -c: %s\n", why.c_str());
    return kExitUsage;
  }
  int status = kExitOk;
  for (const Words& c : commands) {
    const CommandResult r = shell->Execute(c);
    if (r == CommandResult::kQuit) break;
    if (r != CommandResult::kOk) {
      if (!shell->error().empty()) std::fprintf(stderr, "%s\n", shell->error().c_str());
      if (!keep_going) return ExitFor(r);
      if (status == kExitOk) status = ExitFor(r);
    }
  }
  return status;
}

// A script on stdin, run line by line; errors name the line.
int RunScript(Shell* shell, bool keep_going) {
  std::string line;
  uint64_t line_no = 0;
  std::vector<Words> commands;
  std::string why;
  int status = kExitOk;
  while (std::getline(std::cin, line)) {
    line_no++;
    if (!ParseCommands(line, &commands, &why)) {
      std::fprintf(stderr, "error: line %llu: %s\n", static_cast<unsigned long long>(line_no),
                   why.c_str());
      if (!keep_going) return kExitUsage;
      if (status == kExitOk) status = kExitUsage;
      continue;
    }
    for (const Words& c : commands) {
      const CommandResult r = shell->Execute(c);
      if (r == CommandResult::kQuit) return status;
      if (r != CommandResult::kOk) {
        std::fprintf(stderr, "line %llu: %s\n", static_cast<unsigned long long>(line_no),
                     shell->error().c_str());
        if (!keep_going) return ExitFor(r);
        if (status == kExitOk) status = ExitFor(r);
        break;  // the rest of this line depended on it
      }
    }
  }
  return status;
}

// The line editor decodes typed bytes as the locale's characters: in the
// "C" locale every byte above 0x7f was dropped. Only LC_CTYPE changes
// (numbers keep printing the same), to the user's if it is UTF-8, else to
// C.UTF-8: keys and values are bytes, and terminals send UTF-8.
void UseUtf8ForTyping() {
  const char* chosen = std::setlocale(LC_CTYPE, "");
  const char* codeset = chosen != nullptr ? nl_langinfo(CODESET) : nullptr;
  if (codeset == nullptr || std::strcmp(codeset, "UTF-8") != 0) {
    if (std::setlocale(LC_CTYPE, "C.UTF-8") == nullptr) std::setlocale(LC_CTYPE, "C");
  }
}

// The terminal's height now (it may have been resized), 24 if unknown.
int TerminalRows() {
  struct winsize ws = {};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0) return ws.ws_row;
  return 24;
}

bool RepairProgress(uint64_t done, uint64_t total, void* arg) {
  static_cast<ProgressBar*>(arg)->Update(done, total);
  return !Shell::interrupted.load(std::memory_order_relaxed);
}

// kvtool --repair PATH: RepairDB with a progress bar, then its report.
int RunRepair(const Flags& flags) {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = &OnInterrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  Options options;
  if (flags.cache_bytes != 0) options.cache_bytes = flags.cache_bytes;
  RepairReport report;
  Status s;
  {
    ProgressBar bar(stderr, "repair", "bytes", isatty(STDERR_FILENO) != 0);
    s = RepairDB(flags.db_path, options, &report, &RepairProgress, &bar);
  }
  if (!s.ok()) {
    std::fprintf(stderr, "error: repair: %s%s\n", s.IsAborted() ? "interrupted: " : "",
                 s.ToString().c_str());
    return kExitFailed;
  }
  std::printf(
      "repaired %s: %s keys (%s tree pages read, %s lost; %s log records applied, %s "
      "log bytes lost)\n",
      flags.db_path.c_str(), GroupThousands(report.keys).c_str(),
      GroupThousands(report.pages_read).c_str(), GroupThousands(report.pages_lost).c_str(),
      GroupThousands(report.log_records).c_str(), GroupThousands(report.log_bytes_lost).c_str());
  if (report.lost.empty()) {
    std::printf("nothing was lost\n");
  } else {
    std::printf("lost:\n");
    for (const std::string& line : report.lost) std::printf("  %s\n", line.c_str());
  }
  std::printf("the original files are in %s\n", report.lost_dir.c_str());
  return kExitOk;
}

int RunInteractive(Shell* shell, const std::string& db_path) {
  UseUtf8ForTyping();
  int interrupt_pipe[2] = {-1, -1};
  if (pipe2(interrupt_pipe, O_NONBLOCK | O_CLOEXEC) == 0) {
    g_interrupt_pipe_write = interrupt_pipe[1];
  }
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = &OnInterrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: Ctrl-C interrupts the line being read
  sigaction(SIGINT, &sa, nullptr);

  std::printf("kvtool: arenakv database %s. Type help for the commands, quit or Ctrl-D to leave.\n",
              db_path.c_str());
  LineEditor editor("kvtool", HistoryPath(), Shell::CommandNames(), interrupt_pipe[0]);
  const std::string pager_command = isatty(STDOUT_FILENO) ? DefaultPagerCommand() : "";
  std::string line;
  std::vector<Words> commands;
  std::string why;
  bool interrupted = false;
  while (editor.ReadLine(shell->Prompt(), &line, &interrupted)) {
    if (interrupted || line.find_first_not_of(" \t") == std::string::npos) continue;
    editor.AddHistory(line);
    if (!ParseCommands(line, &commands, &why)) {
      std::fprintf(stderr, "error: %s\n", why.c_str());
      continue;
    }
    for (const Words& c : commands) {
      CommandResult r;
      bool reader_quit = false;
      {
        // Output longer than the screen goes through the pager.
        Pager pager(stdout, shell->paging() ? pager_command : "", TerminalRows(),
                    &Shell::output_gone);
        if (pager.file() != nullptr) shell->set_output(pager.file());
        r = shell->Execute(c);
        shell->set_output(stdout);
        pager.Finish();
        reader_quit = Shell::output_gone.load();
      }
      if (r == CommandResult::kQuit) return kExitOk;
      if (r != CommandResult::kOk) {
        // Quitting the pager early stops the command; that is no error.
        if (!reader_quit) std::fprintf(stderr, "%s\n", shell->error().c_str());
        break;  // the rest of this line depended on it
      }
    }
  }
  std::fputc('\n', stdout);  // after Ctrl-D, leave the terminal on a fresh line
  return kExitOk;
}

int Main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);  // a closed pipe is a write error, not a signal death
  Flags flags;
  const int early = ParseFlags(argc, argv, &flags);
  if (early >= 0) return early;

  if (flags.repair) return RunRepair(flags);
  // A missing database is created by a session that may write, and says so;
  // commands that only read fail instead, so a mistyped path is not taken
  // for an empty database (nor left behind as one).
  const bool exists = std::filesystem::exists(flags.db_path + "/data.akv");
  bool reads = false, writes = false;
  if (flags.have_commands) {
    std::vector<Words> commands;
    std::string why;
    if (ParseCommands(flags.commands, &commands, &why)) {
      for (const Words& c : commands) {
        if (c.empty()) continue;
        const Shell::Access a = Shell::CommandAccess(c[0]);
        reads |= a == Shell::Access::kReads;
        writes |= a == Shell::Access::kWrites;
      }
    }
  }
  if (!exists && flags.create && !flags.read_only && flags.have_commands && reads && !writes) {
    std::fprintf(stderr,
                 "error: no database at %s (the commands only read; a command that writes "
                 "creates one)\n",
                 flags.db_path.c_str());
    return kExitFailed;
  }
  Options options;
  options.create_if_missing = flags.create;
  options.read_only = flags.read_only;
  options.map_reads = flags.map_reads;
  if (flags.cache_bytes != 0) options.cache_bytes = flags.cache_bytes;
  if (flags.strict_recovery) options.wal_recovery = WalRecovery::kAbsoluteConsistency;
  if (flags.shared_budget_bytes != 0) {
    options.memory_budget = MemoryBudget::Create(flags.shared_budget_bytes);
  }
  std::unique_ptr<DB> db;
  Status s;
  {
    BlockedSignals blocked;
    s = DB::Open(options, flags.db_path, &db);
    // In use by a writer: commands that only read go on read-only, on the
    // state as of now (not a session: beside a writer the state read stays
    // intact only until the writer's next checkpoint; --read-only asks for
    // one knowingly).
    if (s.IsBusy() && !options.read_only && flags.have_commands && !writes) {
      options.read_only = true;
      s = DB::Open(options, flags.db_path, &db);
      if (s.ok()) {
        std::fprintf(stderr,
                     "note: %s is in use by another process: opened read-only, on the state as "
                     "of now\n",
                     flags.db_path.c_str());
      }
    }
  }
  if (!s.ok()) {
    if (s.IsBusy()) {
      std::fprintf(stderr,
                   "error: cannot open %s: the database is locked by another process (%s)\n",
                   flags.db_path.c_str(), s.ToString().c_str());
    } else {
      std::fprintf(stderr, "error: cannot open %s: %s\n", flags.db_path.c_str(),
                   s.ToString().c_str());
    }
    return kExitFailed;
  }
  const bool interactive = !flags.have_commands && isatty(STDIN_FILENO);
  if (!exists && interactive) {
    std::fprintf(stderr, "note: created a new database at %s\n", flags.db_path.c_str());
  }
  DBStats opened;
  if (db->GetStats(&opened).ok() && !opened.recovery_cut.empty()) {
    // What a crash cut short is gone: say so once, where a user looks.
    std::fprintf(stderr,
                 "note: recovery cut a log a crash left torn: %s (the commits after it were "
                 "never synced)\n",
                 opened.recovery_cut.c_str());
  }

  ShellOptions shell_options;
  shell_options.json = flags.json;
  shell_options.progress = !flags.json && isatty(STDERR_FILENO);
  shell_options.bench_db_options = options;
  shell_options.bench_db_options.create_if_missing = true;
  shell_options.continue_on_error = flags.continue_on_error;
  int status;
  {
    Shell shell(db.get(), flags.db_path, shell_options, stdout, stderr);
    if (flags.have_commands) {
      status = RunCommands(&shell, flags.commands, flags.continue_on_error);
    } else if (interactive) {
      status = RunInteractive(&shell, flags.db_path);
    } else {
      status = RunScript(&shell, flags.continue_on_error);
    }
    shell.RollbackOpenTransaction();
  }
  s = db->Close();
  if (!s.ok()) {
    std::fprintf(stderr, "error: close %s: %s\n", flags.db_path.c_str(), s.ToString().c_str());
    if (status == kExitOk) status = kExitFailed;
  }
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    if (status == kExitOk) status = kExitFailed;
  }
  return status;
}

}  // namespace
}  // namespace arenakv::kvtool

// libedit keeps (never frees) copies of the name and help text of a key
// function added with EL_ADDFN, made with wcsdup; that is all LeakSanitizer
// finds in an interactive session.
extern "C" const char* __lsan_default_suppressions() { return "leak:wcsdup\n"; }

int main(int argc, char** argv) {
  try {
    return arenakv::kvtool::Main(argc, argv);
  } catch (const std::bad_alloc&) {
    std::fputs("error: out of memory\n", stderr);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
  } catch (...) {
    std::fputs("error: unexpected failure\n", stderr);
  }
  return 1;
}
