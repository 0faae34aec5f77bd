#include "shell.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>

#include "blocked_signals.h"
#include "escape.h"
#include "human_units.h"
#include "progress_bar.h"
#include "record_format.h"

namespace arenakv::kvtool {

std::atomic<bool> Shell::interrupted{false};
std::atomic<bool> Shell::output_gone{false};

struct Shell::Command {
  const char* name;
  const char* synopsis;
  const char* description;
  CommandResult (Shell::*run)(const Words& args);
};

struct Shell::Range {
  std::string lower;  // inclusive
  bool has_upper = false;
  std::string upper;  // exclusive
};

namespace {

constexpr uint64_t kNoLimit = UINT64_MAX;

using Json = nlohmann::ordered_json;

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> flags;  // "--limit" -> "10"; switches map to ""
  bool Has(const std::string& flag) const { return flags.count(flag) != 0; }
};

// Splits a command's words into positionals and --flags. `with_value` and
// `switches` name the flags it accepts; "--" ends the flags so that a key may
// start with dashes.
bool ParseArgs(const Words& words, std::initializer_list<const char*> with_value,
               std::initializer_list<const char*> switches, Args* args, std::string* error) {
  bool flags_done = false;
  for (size_t i = 1; i < words.size(); i++) {
    const std::string& w = words[i];
    if (flags_done || w.size() < 3 || w.compare(0, 2, "--") != 0) {
      if (!flags_done && w == "--") {
        flags_done = true;
        continue;
      }
      args->positional.push_back(w);
      continue;
    }
    std::string name = w;
    std::string value;
    bool inline_value = false;
    const size_t eq = w.find('=');
    if (eq != std::string::npos) {
      name = w.substr(0, eq);
      value = w.substr(eq + 1);
      inline_value = true;
    }
    bool known = false;
    for (const char* f : with_value) {
      if (name == f) {
        known = true;
        if (!inline_value) {
          if (i + 1 >= words.size()) {
            *error = name + " needs a value";
            return false;
          }
          value = words[++i];
        }
      }
    }
    for (const char* f : switches) {
      if (name == f) {
        known = true;
        if (inline_value) {
          *error = name + " takes no value";
          return false;
        }
      }
    }
    if (!known) {
      *error = "unknown option " + Escape(name);
      return false;
    }
    args->flags[name] = value;
  }
  return true;
}

bool ParseCount(const std::string& text, uint64_t* n) {
  if (text.empty() || text.size() > 18) return false;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *n = v;
  return true;
}

// The smallest key greater than every key starting with `prefix`; false when
// there is none (the prefix is empty or all 0xff).
bool PrefixSuccessor(std::string prefix, std::string* out) {
  while (!prefix.empty()) {
    auto last = static_cast<unsigned char>(prefix.back());
    if (last != 0xff) {
      prefix.back() = static_cast<char>(last + 1);
      *out = prefix;
      return true;
    }
    prefix.pop_back();
  }
  return false;
}

const char* CodeName(const Status& s) {
  switch (s.code()) {
    case Status::Code::kOk:
      return "OK";
    case Status::Code::kNotFound:
      return "NotFound";
    case Status::Code::kCorruption:
      return "Corruption";
    case Status::Code::kIOError:
      return "IOError";
    case Status::Code::kInvalidArgument:
      return "InvalidArgument";
    case Status::Code::kBusy:
      return "Busy";
    case Status::Code::kConflict:
      return "Conflict";
    case Status::Code::kMemoryLimit:
      return "MemoryLimit";
    case Status::Code::kClosed:
      return "Closed";
    case Status::Code::kNotSupported:
      return "NotSupported";
    case Status::Code::kAborted:
      return "Aborted";
  }
  return "Failed";
}

std::string Dump(const Json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Depth of each arena in a depth-first listing where every entry says how
// many children follow it.
std::vector<int> ArenaDepths(const std::vector<alloc::ArenaStats>& arenas) {
  std::vector<int> depths(arenas.size(), 0);
  std::function<void(size_t*, int)> walk = [&](size_t* i, int depth) {
    const size_t me = (*i)++;
    depths[me] = depth;
    for (size_t c = 0; c < arenas[me].children && *i < arenas.size(); c++) walk(i, depth + 1);
  };
  size_t i = 0;
  while (i < arenas.size()) walk(&i, 0);
  return depths;
}

// A key as named in an error line: escaped, and cut short when long so that
// the line stays readable.
std::string KeyForError(std::string_view key) {
  constexpr size_t kMaxShown = 64;
  if (key.size() <= kMaxShown) return Escape(key);
  return Escape(key.substr(0, kMaxShown)) + "... (" + std::to_string(key.size()) + " bytes)";
}

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

const std::vector<Shell::Command>& Shell::Commands() {
  static const std::vector<Command> commands = {
      {"get", "get KEY", "Prints the value of KEY (escaped). A missing key is an error.",
       &Shell::Get},
      {"put", "put KEY VALUE", "Sets KEY to VALUE.", &Shell::Put},
      {"del", "del KEY", "Deletes KEY (deleting a missing key is not an error).", &Shell::Del},
      {"deleterange", "deleterange FROM TO | deleterange --prefix P",
       "Deletes every key from FROM (inclusive) to TO (exclusive), or starting with P,\n"
       "in one atomic commit (keys other writers put there meanwhile go too).",
       &Shell::DeleteRange},
      {"scan", "scan [FROM [TO]] [--prefix P] [--limit N] [--reverse] [--keys-only] [--hex|--csv]",
       "Prints key<TAB>value lines in key order, from FROM (inclusive) to TO (exclusive),\n"
       "only keys starting with P, at most N, or in descending order; --keys-only prints\n"
       "the keys alone, --hex every byte as two hex digits, --csv comma-separated fields\n"
       "quoted as RFC 4180 says (bytes as they are).",
       &Shell::Scan},
      {"count", "count [FROM [TO]] [--prefix P] [--approx]",
       "Prints the number of keys (in the range). --approx answers at once, without a\n"
       "scan, for the whole database: the keys of the last checkpoint plus every write\n"
       "since (high by the overwrites and deletes made since).",
       &Shell::Count},
      {"begin", "begin",
       "Starts a transaction: the commands after it read its snapshot plus its own writes\n"
       "and write into it, until commit or rollback.",
       &Shell::Begin},
      {"commit", "commit", "Commits the open transaction (Conflict if another writer won).",
       &Shell::Commit},
      {"rollback", "rollback", "Discards the open transaction.", &Shell::Rollback},
      {"stats", "stats",
       "Shows memory (pool: reserved, committed, in use, retained; every arena), the page\n"
       "cache and the files. An open transaction's arena shows until it ends.",
       &Shell::Stats},
      {"checkpoint", "checkpoint",
       "Writes buffered changes into the B+tree file and recycles the write-ahead log.",
       &Shell::Checkpoint},
      {"backup", "backup PATH",
       "Writes a copy of the database as of now into the new directory PATH, a database\n"
       "that opens on its own. Reads and writes go on meanwhile.",
       &Shell::Backup},
      {"verify", "verify",
       "Reads every page and WAL record and checks checksums and key order. Fails naming\n"
       "what is broken.",
       &Shell::Verify},
      {"import", "import [--format tsv|jsonl] [--atomic] FILE",
       "Loads key/value records from FILE. The whole file is checked first: a malformed\n"
       "line imports nothing and names the line. Then it streams in batches of 8 MiB,\n"
       "any size within the memory budget; --atomic commits it as one transaction\n"
       "instead (at most the 512 MiB a transaction may buffer). The format comes from\n"
       "the extension (.tsv, .jsonl) unless --format is given.",
       &Shell::Import},
      {"export", "export [--format tsv|jsonl] [--prefix P] FILE",
       "Writes every record (or those starting with P) to FILE through a temporary file\n"
       "that is renamed into place when complete (through a symbolic link, at its\n"
       "target). FILE '-' or /dev/stdout is standard output (TSV unless --format says\n"
       "otherwise); a pipe, terminal or device is written in place.",
       &Shell::Export},
      {"bench", "bench [--keys N]",
       "A quick workload on a scratch database (removed afterwards): puts N random keys\n"
       "(default 100000), reads them back, prints ops/s for each phase.",
       &Shell::Bench},
      {".read", ".read FILE",
       "Runs the commands in FILE, line by line, as if typed; stops at the first that\n"
       "fails (naming FILE and the line) unless kvtool runs with --continue-on-error.",
       &Shell::ReadCommands},
      {"snapshot", "snapshot [off]",
       "Reads after it (get, scan, count, export; outside a transaction) see the\n"
       "database as it is now, whatever is written meanwhile, until snapshot off.",
       &Shell::TakeSnapshot},
      {"timer", "timer [on|off]",
       "With timer on, each command's wall-clock time is printed on stderr after it.",
       &Shell::Timer},
      {"pager", "pager [on|off]",
       "In the interactive shell, output longer than the screen goes through $PAGER (less "
       "-FRX by default, when installed). On by default.",
       &Shell::Paging},
      {"help", "help [COMMAND]", "Lists the commands, or explains one.", &Shell::Help},
      {"quit", "quit", "Leaves the shell (an open transaction is rolled back). Also: exit.",
       &Shell::Quit},
  };
  return commands;
}

const Shell::Command* Shell::Find(std::string_view name) {
  if (name == "exit") name = "quit";
  if (name == "delete") name = "del";
  for (const Command& c : Commands()) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

std::vector<std::string> Shell::CommandNames() {
  std::vector<std::string> names;
  for (const Command& c : Commands()) names.emplace_back(c.name);
  names.emplace_back("exit");
  return names;
}

Shell::Access Shell::CommandAccess(std::string_view name) {
  for (std::string_view reader : {"get", "scan", "count", "stats", "verify", "export"}) {
    if (name == reader) return Access::kReads;
  }
  for (std::string_view neutral :
       {"begin", "rollback", "help", "quit", "exit", "timer", "pager", "snapshot"}) {
    if (name == neutral) return Access::kNone;
  }
  // bench among them: it works on a scratch database of its own, but a
  // session that runs it may as well create the one it names.
  return Access::kWrites;
}

Shell::Shell(DB* db, std::string label, ShellOptions options, FILE* out, FILE* err)
    : db_(db), label_(std::move(label)), options_(std::move(options)), out_(out), err_(err) {}

Shell::~Shell() = default;

std::string Shell::Prompt() const {
  return "arenakv " + label_ + (txn_ ? " [txn]> " : snapshot_ ? " [snapshot]> " : "> ");
}

bool Shell::RollbackOpenTransaction() {
  if (!txn_) return false;
  Status s = txn_->Rollback();
  txn_.reset();
  if (s.ok()) {
    std::fprintf(err_, "rolled back the open transaction\n");
  } else {
    std::fprintf(err_, "rolled back the open transaction (%s)\n", s.ToString().c_str());
  }
  return true;
}

CommandResult Shell::Execute(const Words& words) {
  error_.clear();
  error_code_.clear();
  if (words.empty()) return CommandResult::kOk;
  interrupted.store(false);
  output_gone.store(false);
  const Command* command = Find(words[0]);
  current_ = command ? command->name : words[0];
  if (command == nullptr) {
    return Usage("unknown command '" + Escape(words[0]) + "' (try help)");
  }
  CommandResult r;
  const auto start = std::chrono::steady_clock::now();
  try {
    r = (this->*command->run)(words);
  } catch (const std::bad_alloc&) {
    r = Fail("out of memory");
  } catch (const std::exception& e) {
    r = Fail(e.what());
  }
  std::fflush(out_);
  if (timer_ && command->run != &Shell::Timer && command->run != &Shell::ReadCommands) {
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(err_, "time: %.3f ms\n", ms);
  }
  return r;
}

CommandResult Shell::TakeSnapshot(const Words& words) {
  if (words.size() > 2 || (words.size() == 2 && words[1] != "off")) {
    return Usage("usage: snapshot [off]");
  }
  if (words.size() == 2) {
    if (!snapshot_) return Fail("error: snapshot off: no snapshot is held");
    snapshot_.reset();
    Print("snapshot released\n");
    Reply({});
    return CommandResult::kOk;
  }
  std::unique_ptr<Snapshot> snap = db_->GetSnapshot();
  if (!snap) return Fail("error: snapshot: the database could not take one");
  snapshot_ = std::move(snap);
  Print("snapshot at sequence " + std::to_string(snapshot_->sequence()) + "\n");
  Reply({{"sequence", snapshot_->sequence()}});
  return CommandResult::kOk;
}

// `NAME [on|off]`: sets the switch, or flips it without an argument.
CommandResult Shell::Toggle(const Words& words, const char* name, bool* flag) {
  if (words.size() > 2 || (words.size() == 2 && words[1] != "on" && words[1] != "off")) {
    return Usage(std::string("usage: ") + name + " [on|off]");
  }
  *flag = words.size() == 1 ? !*flag : words[1] == "on";
  Print(std::string(name) + (*flag ? " on" : " off") + "\n");
  Reply({{name, *flag}});
  return CommandResult::kOk;
}

CommandResult Shell::Timer(const Words& words) { return Toggle(words, "timer", &timer_); }

CommandResult Shell::Paging(const Words& words) { return Toggle(words, "pager", &paging_); }

CommandResult Shell::ReadCommands(const Words& words) {
  constexpr int kMaxDepth = 8;
  if (words.size() != 2) return Usage("usage: .read FILE");
  if (read_depth_ >= kMaxDepth) {
    return Fail("error: .read: files read each other more than " + std::to_string(kMaxDepth) +
                " deep");
  }
  std::ifstream in(words[1]);
  if (!in) return Fail("error: .read: cannot open " + words[1] + ": " + std::strerror(errno));
  ++read_depth_;
  CommandResult first_failure = CommandResult::kOk;
  std::string first_error;
  std::string line;
  std::vector<Words> commands;
  std::string why;
  for (uint64_t line_no = 1; std::getline(in, line); ++line_no) {
    const std::string where = words[1] + ":" + std::to_string(line_no) + ": ";
    CommandResult r = CommandResult::kOk;
    std::string error;
    if (!ParseCommands(line, &commands, &why)) {
      r = CommandResult::kUsage;
      error = where + "error: " + why;
    } else {
      for (const Words& c : commands) {
        r = Execute(c);
        if (r == CommandResult::kQuit) break;
        if (r != CommandResult::kOk) {
          error = where + error_;
          break;
        }
      }
    }
    if (r == CommandResult::kQuit) {
      --read_depth_;
      return r;
    }
    if (r == CommandResult::kOk) continue;
    if (!options_.continue_on_error) {
      --read_depth_;
      error_ = error;
      return r;
    }
    std::fprintf(err_, "%s\n", error.c_str());
    if (first_failure == CommandResult::kOk) {
      first_failure = r;
      first_error = error;
    }
  }
  --read_depth_;
  current_ = ".read";
  if (first_failure != CommandResult::kOk) {
    error_ = first_error + " (and the rest of " + words[1] + " ran)";
    return first_failure;
  }
  return CommandResult::kOk;
}

CommandResult Shell::Fail(std::string message, const char* code) {
  error_ = std::move(message);
  error_code_ = code;
  if (options_.json) {
    Json j;
    j["cmd"] = current_;
    j["ok"] = false;
    j["code"] = error_code_;
    j["error"] = error_;
    std::fprintf(out_, "%s\n", Dump(j).c_str());
  }
  return CommandResult::kFailed;
}

CommandResult Shell::Fail(std::string_view context, const Status& s) {
  return Fail("error: " + std::string(context) + ": " + s.ToString(), CodeName(s));
}

CommandResult Shell::Usage(std::string message) {
  Fail("error: " + message, "Usage");
  return CommandResult::kUsage;
}

void Shell::Reply(Json fields) {
  if (!options_.json) return;
  Json j;
  j["cmd"] = current_;
  j["ok"] = true;
  for (auto& [k, v] : fields.items()) j[k] = std::move(v);
  std::fprintf(out_, "%s\n", Dump(j).c_str());
}

void Shell::Print(std::string_view text) {
  if (options_.json) return;
  std::fwrite(text.data(), 1, text.size(), out_);
}

ReadOptions Shell::Reading() const {
  ReadOptions ro;
  ro.snapshot = snapshot_.get();
  return ro;
}

std::unique_ptr<Iterator> Shell::NewIterator() {
  return txn_ ? txn_->NewIterator(ReadOptions{}) : db_->NewIterator(Reading());
}

bool Shell::CheckInterrupted() {
  return interrupted.load(std::memory_order_relaxed) || output_gone.load(std::memory_order_relaxed);
}

// ---- data commands ----

CommandResult Shell::Get(const Words& words) {
  if (words.size() != 2) return Usage("usage: get KEY");
  const std::string& key = words[1];
  std::string value;
  Status s = txn_ ? txn_->Get(ReadOptions{}, key, &value) : db_->Get(Reading(), key, &value);
  if (s.IsNotFound()) return Fail("not found: " + KeyForError(key), "NotFound");
  if (!s.ok()) return Fail("get " + KeyForError(key), s);
  Print(Escape(value) + "\n");
  Reply({{"key", BytesToJson(key)}, {"value", BytesToJson(value)}});
  return CommandResult::kOk;
}

CommandResult Shell::Put(const Words& words) {
  if (words.size() != 3) return Usage("usage: put KEY VALUE (quote words with spaces)");
  Status s = txn_ ? txn_->Put(words[1], words[2]) : db_->Put(WriteOptions{}, words[1], words[2]);
  if (!s.ok()) return Fail("put " + KeyForError(words[1]), s);
  Reply({{"key", BytesToJson(words[1])}});
  return CommandResult::kOk;
}

CommandResult Shell::Del(const Words& words) {
  if (words.size() != 2) return Usage("usage: del KEY");
  Status s = txn_ ? txn_->Delete(words[1]) : db_->Delete(WriteOptions{}, words[1]);
  if (!s.ok()) return Fail("del " + KeyForError(words[1]), s);
  Reply({{"key", BytesToJson(words[1])}});
  return CommandResult::kOk;
}

namespace {

// Every byte as two lowercase hex digits.
std::string HexBytes(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

// A CSV field (RFC 4180): quoted when it holds a comma, a quote, a line
// break or starts or ends with a space, quotes doubled; other bytes as they
// are.
std::string CsvField(std::string_view bytes) {
  const bool quote = bytes.find_first_of(",\"\r\n") != std::string_view::npos ||
                     (!bytes.empty() && (bytes.front() == ' ' || bytes.back() == ' '));
  if (!quote) return std::string(bytes);
  std::string out = "\"";
  for (char c : bytes) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

// Reads FROM/TO positionals and --prefix into a key range.
bool MakeRange(const Args& args, std::string* lower, bool* has_upper, std::string* upper,
               std::string* error) {
  if (args.positional.size() > 2) {
    *error = "too many arguments";
    return false;
  }
  lower->clear();
  *has_upper = false;
  if (!args.positional.empty()) *lower = args.positional[0];
  if (args.positional.size() == 2) {
    *upper = args.positional[1];
    *has_upper = true;
  }
  auto p = args.flags.find("--prefix");
  if (p != args.flags.end()) {
    const std::string& prefix = p->second;
    if (prefix > *lower) *lower = prefix;
    std::string succ;
    if (PrefixSuccessor(prefix, &succ) && (!*has_upper || succ < *upper)) {
      *upper = succ;
      *has_upper = true;
    }
  }
  return true;
}

}  // namespace

CommandResult Shell::DeleteRange(const Words& words) {
  Args args;
  std::string why;
  Range range;
  if (!ParseArgs(words, {"--prefix"}, {}, &args, &why) ||
      !MakeRange(args, &range.lower, &range.has_upper, &range.upper, &why)) {
    return Usage("deleterange: " + why + "; usage: " + Find("deleterange")->synopsis);
  }
  const bool prefix = args.Has("--prefix");
  if (prefix ? !args.positional.empty() : args.positional.size() != 2) {
    return Usage(std::string("usage: ") + Find("deleterange")->synopsis);
  }
  if (txn_) {
    return Fail("error: deleterange: a transaction is open; commit or roll it back first");
  }
  // A prefix of 0xff bytes has no successor: every key after it is larger
  // than no key can be.
  if (!range.has_upper) range.upper.assign(kMaxKeyBytes + 1, '\xff');
  Status s = db_->DeleteRange(WriteOptions{}, range.lower, range.upper);
  if (!s.ok()) return Fail("deleterange", s);
  Reply({});
  return CommandResult::kOk;
}

CommandResult Shell::Scan(const Words& words) {
  Args args;
  std::string why;
  Range range;
  if (!ParseArgs(words, {"--prefix", "--limit"}, {"--reverse", "--keys-only", "--hex", "--csv"},
                 &args, &why) ||
      !MakeRange(args, &range.lower, &range.has_upper, &range.upper, &why)) {
    return Usage("scan: " + why + "; usage: " + Find("scan")->synopsis);
  }
  uint64_t limit = kNoLimit;
  if (args.Has("--limit") && !ParseCount(args.flags["--limit"], &limit)) {
    return Usage("scan: --limit needs a number");
  }
  const bool reverse = args.Has("--reverse");
  const bool keys_only = args.Has("--keys-only"), hex = args.Has("--hex"), csv = args.Has("--csv");
  if (hex && csv) return Usage("scan: --hex or --csv, not both");
  auto field = [&](std::string_view bytes) {
    return hex ? HexBytes(bytes) : csv ? CsvField(bytes) : Escape(bytes);
  };

  std::unique_ptr<Iterator> it = NewIterator();
  if (!it) return Fail("error: scan: could not create an iterator");
  Json items = Json::array();
  uint64_t n = 0;
  std::string line;
  if (!reverse) {
    it->Seek(range.lower);
  } else if (range.has_upper) {
    it->Seek(range.upper);
    if (it->Valid()) {
      it->Prev();
    } else if (it->status().ok()) {
      it->SeekToLast();
    }
  } else {
    it->SeekToLast();
  }
  while (it->Valid() && n < limit) {
    const std::string_view key = it->key();
    if (!reverse && range.has_upper && key >= range.upper) break;
    if (reverse && key < range.lower) break;
    if (CheckInterrupted()) return Fail("error: scan: interrupted");
    if (options_.json) {
      if (keys_only) {
        items.push_back({{"key", BytesToJson(key)}});
      } else {
        items.push_back({{"key", BytesToJson(key)}, {"value", BytesToJson(it->value())}});
      }
    } else {
      line = field(key);
      if (!keys_only) {
        line.push_back(csv ? ',' : '\t');
        line.append(field(it->value()));
      }
      line.push_back('\n');
      Print(line);
      if (std::ferror(out_)) {
        // A reader that went away (scan | head) needs no message.
        return Fail(errno == EPIPE
                        ? ""
                        : "error: scan: cannot write output: " + std::string(std::strerror(errno)));
      }
    }
    n++;
    if (reverse) {
      it->Prev();
    } else {
      it->Next();
    }
  }
  if (!it->status().ok()) return Fail("scan", it->status());
  Reply({{"count", n}, {"items", std::move(items)}});
  return CommandResult::kOk;
}

CommandResult Shell::Count(const Words& words) {
  Args args;
  std::string why;
  Range range;
  if (!ParseArgs(words, {"--prefix"}, {"--approx"}, &args, &why) ||
      !MakeRange(args, &range.lower, &range.has_upper, &range.upper, &why)) {
    return Usage("count: " + why + "; usage: " + Find("count")->synopsis);
  }
  if (args.Has("--approx")) {
    if (!args.positional.empty() || args.Has("--prefix")) {
      return Usage(std::string("count: --approx counts the whole database; usage: ") +
                   Find("count")->synopsis);
    }
    DBStats st;
    Status s = db_->GetStats(&st);
    if (!s.ok()) return Fail("count", s);
    Print("~" + std::to_string(st.approximate_keys) + "\n");
    Reply({{"count", st.approximate_keys}, {"approximate", true}});
    return CommandResult::kOk;
  }
  std::unique_ptr<Iterator> it = NewIterator();
  if (!it) return Fail("error: count: could not create an iterator");
  uint64_t n = 0;
  for (it->Seek(range.lower); it->Valid(); it->Next()) {
    if (range.has_upper && it->key() >= range.upper) break;
    if ((n & 0xfff) == 0 && CheckInterrupted()) return Fail("error: count: interrupted");
    n++;
  }
  if (!it->status().ok()) return Fail("count", it->status());
  Print(std::to_string(n) + "\n");
  Reply({{"count", n}});
  return CommandResult::kOk;
}

// ---- transactions ----

CommandResult Shell::Begin(const Words& words) {
  if (words.size() != 1) return Usage("usage: begin");
  if (txn_) return Fail("error: begin: a transaction is already open (commit or rollback first)");
  txn_ = db_->BeginTransaction(WriteOptions{});
  if (!txn_) return Fail("error: begin: the database could not start a transaction");
  Reply({});
  return CommandResult::kOk;
}

CommandResult Shell::Commit(const Words& words) {
  if (words.size() != 1) return Usage("usage: commit");
  if (!txn_) return Fail("error: commit: no transaction is open (use begin)");
  Status s = txn_->Commit();
  txn_.reset();  // committed or not, the transaction is over
  if (!s.ok()) {
    return Fail("error: commit: " + s.ToString() + " (the transaction was rolled back)",
                CodeName(s));
  }
  Reply({});
  return CommandResult::kOk;
}

CommandResult Shell::Rollback(const Words& words) {
  if (words.size() != 1) return Usage("usage: rollback");
  if (!txn_) return Fail("error: rollback: no transaction is open");
  Status s = txn_->Rollback();
  txn_.reset();
  if (!s.ok()) return Fail("rollback", s);
  Reply({});
  return CommandResult::kOk;
}

// ---- maintenance ----

CommandResult Shell::Stats(const Words& words) {
  if (words.size() != 1) return Usage("usage: stats");
  DBStats st;
  Status s = db_->GetStats(&st);
  if (!s.ok()) return Fail("stats", s);
  const std::vector<int> depths = ArenaDepths(st.arenas);
  const size_t txn_bytes = txn_ ? txn_->BufferBytes() : 0;

  if (options_.json) {
    Json arenas = Json::array();
    for (size_t i = 0; i < st.arenas.size(); i++) {
      const alloc::ArenaStats& a = st.arenas[i];
      arenas.push_back({{"name", a.name},
                        {"depth", depths[i]},
                        {"bytes", a.bytes},
                        {"used_bytes", a.used_bytes},
                        {"segments", a.segments},
                        {"limit_bytes", a.limit_bytes},
                        {"children", a.children},
                        {"closed", a.closed}});
    }
    Json classes = Json::array();
    for (const alloc::ClassStats& c : st.pool.classes) {
      classes.push_back({{"class_bytes", c.class_bytes},
                         {"in_use_segments", c.in_use_segments},
                         {"free_segments", c.free_segments}});
    }
    Reply({{"pool",
            {{"name", st.pool.name},
             {"reserved_bytes", st.pool.reserved_bytes},
             {"committed_bytes", st.pool.committed_bytes},
             {"in_use_bytes", st.pool.in_use_bytes},
             {"retained_bytes", st.pool.retained_bytes},
             {"recycled_bytes", st.pool.recycled_bytes},
             {"dedicated_bytes", st.pool.dedicated_bytes},
             {"charged_bytes", st.pool.charged_bytes},
             {"spilled_bytes", st.pool.spilled_bytes},
             {"high_water_bytes", st.pool.high_water_bytes},
             {"budget_bytes", st.pool.budget_bytes},
             {"open_arenas", st.pool.open_arenas},
             {"mmap_calls", st.pool.mmap_calls},
             {"munmap_calls", st.pool.munmap_calls},
             {"madvise_calls", st.pool.madvise_calls},
             {"classes", std::move(classes)}}},
           {"arenas", std::move(arenas)},
           {"cache",
            {{"capacity_bytes", st.cache.capacity_bytes},
             {"used_bytes", st.cache.used_bytes},
             {"pages", st.cache.pages},
             {"pinned_pages", st.cache.pinned_pages},
             {"hits", st.cache.hits},
             {"misses", st.cache.misses},
             {"evictions", st.cache.evictions},
             {"read_ahead_pages", st.cache.read_ahead_pages},
             {"block_reads", st.cache.block_reads},
             {"leaf_head_bytes", st.cache.leaf_head_bytes}}},
           {"mapped_bytes", st.mapped_bytes},
           {"mapped_drops", st.mapped_drops},
           {"memtable_bytes", st.memtable_bytes},
           {"live_versions", st.live_versions},
           {"open_transactions", st.open_transactions},
           {"open_snapshots", st.open_snapshots},
           {"last_sequence", st.last_sequence},
           {"approximate_keys", st.approximate_keys},
           {"checkpoints", st.checkpoints},
           {"wal_bytes", st.wal_bytes},
           {"data_file_bytes", st.data_file_bytes},
           {"wal_syncs", st.wal_syncs},
           {"commit_groups", st.commit_groups},
           {"budget",
            {{"memtable_share_bytes", st.memtable_budget_bytes},
             {"write_slowdowns", st.write_slowdowns},
             {"write_stalls", st.write_stalls},
             {"stall_micros", st.stall_micros},
             {"memory_limit_errors", st.memory_limit_errors},
             {"checkpoint_memory_failures", st.checkpoint_memory_failures},
             {"recovery_checkpoints", st.recovery_checkpoints},
             {"recovery_cut", st.recovery_cut},
             {"memtable_spills", st.memtable_spills},
             {"spilled_bytes", st.spilled_bytes},
             {"spill_failures", st.spill_failures}}},
           {"shared_budget",
            {{"capacity_bytes", st.shared_budget_capacity_bytes},
             {"used_bytes", st.shared_budget_used_bytes},
             {"own_bytes", st.shared_budget_own_bytes},
             {"databases", st.shared_budget_databases}}},
           {"transaction", {{"open", txn_ != nullptr}, {"buffer_bytes", txn_bytes}}}});
    return CommandResult::kOk;
  }

  const alloc::PoolStats& p = st.pool;
  std::string t;
  auto row = [&t](const char* name, const std::string& value) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "  %-11s", name);
    t += buf + value + "\n";
  };
  t += "pool " + (p.name.empty() ? std::string("(unnamed)") : p.name) + "\n";
  row("reserved", HumanBytes(p.reserved_bytes));
  row("committed", HumanBytes(p.committed_bytes) + "  (high water " +
                       HumanBytes(p.high_water_bytes) + ", budget " + HumanBytes(p.budget_bytes) +
                       ")");
  row("in use", HumanBytes(p.in_use_bytes));
  row("retained", HumanBytes(p.retained_bytes) +
                      (p.recycled_bytes > 0
                           ? "  (" + HumanBytes(p.recycled_bytes) + " kept for the next memtable)"
                           : std::string()));
  row("dedicated", HumanBytes(p.dedicated_bytes));
  if (p.spilled_bytes > 0) row("spilled", HumanBytes(p.spilled_bytes) + "  (in use, on disk)");
  // The file's read mapping is charged too; it has a line of its own.
  const size_t handles = p.charged_bytes - std::min(p.charged_bytes, st.mapped_bytes);
  row("handles", HumanBytes(handles) + "  (iterators, snapshots, transactions)");
  row("syscalls", std::to_string(p.mmap_calls) + " mmap, " + std::to_string(p.munmap_calls) +
                      " munmap, " + std::to_string(p.madvise_calls) + " madvise");
  t += "arenas (" + std::to_string(st.arenas.size()) + ")\n";
  for (size_t i = 0; i < st.arenas.size(); i++) {
    const alloc::ArenaStats& a = st.arenas[i];
    const std::string name = std::string(2 + 2 * depths[i], ' ') + a.name;
    char buf[256];
    std::snprintf(buf, sizeof(buf), "%-28s %10s  used %10s  %zu segment%s%s\n", name.c_str(),
                  HumanBytes(a.bytes).c_str(), HumanBytes(a.used_bytes).c_str(), a.segments,
                  a.segments == 1 ? "" : "s", a.closed ? "  (closed)" : "");
    t += buf;
  }
  const CacheStats& c = st.cache;
  t += "page cache\n";
  row("used", HumanBytes(c.used_bytes) + " of " + HumanBytes(c.capacity_bytes) + ", " +
                  std::to_string(c.pages) + " pages (" + std::to_string(c.pinned_pages) +
                  " pinned)" +
                  (c.leaf_head_bytes > 0
                       ? ", " + HumanBytes(c.leaf_head_bytes) + " of heads of uncached leaves"
                       : ""));
  row("lookups", GroupThousands(c.hits) + " hits, " + GroupThousands(c.misses) + " misses, " +
                     GroupThousands(c.evictions) + " evictions, " +
                     GroupThousands(c.read_ahead_pages) + " pages read ahead, " +
                     GroupThousands(c.block_reads) + " read by block");
  if (st.mapped_bytes > 0 || st.mapped_drops > 0) {
    row("mapped", HumanBytes(st.mapped_bytes) + " of the file for reads, taken back " +
                      GroupThousands(st.mapped_drops) + " times");
  }
  t += "database\n";
  row("memtable", HumanBytes(st.memtable_bytes) + " buffered in " +
                      std::to_string(st.live_memtables) + " memtables");
  row("versions", std::to_string(st.live_versions) + " live, " +
                      std::to_string(st.live_tree_roots) + " tree roots, " +
                      std::to_string(st.retained_old_pages) + " old pages kept for readers");
  row("readers", std::to_string(st.open_transactions) + " open transactions, " +
                     std::to_string(st.open_snapshots) + " snapshots");
  row("files", "data " + HumanBytes(st.data_file_bytes) + ", wal " + HumanBytes(st.wal_bytes));
  row("keys", "about " + GroupThousands(st.approximate_keys) + " (count --approx)");
  row("writes", "last sequence " + std::to_string(st.last_sequence) + ", " +
                    std::to_string(st.checkpoints) + " checkpoints, " +
                    std::to_string(st.wal_syncs) + " WAL syncs, " +
                    std::to_string(st.commit_groups) + " commit groups");
  row("budget",
      "memtable share " + HumanBytes(st.memtable_budget_bytes) + ", " +
          GroupThousands(st.write_slowdowns) + " slowdowns, " + GroupThousands(st.write_stalls) +
          " stalls (" + GroupThousands(st.stall_micros / 1000) + " ms), " +
          GroupThousands(st.memory_limit_errors) + " refused for memory, " +
          GroupThousands(st.checkpoint_memory_failures) + " checkpoints short of memory, " +
          GroupThousands(st.recovery_checkpoints) + " while recovering");
  row("shared", st.shared_budget_capacity_bytes == 0
                    ? std::string("no shared budget (--shared-budget-mb)")
                    : "budget " + HumanBytes(st.shared_budget_capacity_bytes) + ", " +
                          HumanBytes(st.shared_budget_used_bytes) + " used by " +
                          GroupThousands(st.shared_budget_databases) + " databases, " +
                          HumanBytes(st.shared_budget_own_bytes) + " by this one");
  if (!st.recovery_cut.empty()) row("recovery", "cut a torn tail: " + st.recovery_cut);
  if (st.memtable_spills > 0 || st.spill_failures > 0) {
    row("spilled", GroupThousands(st.memtable_spills) + " memtables readers held, " +
                       HumanBytes(st.spilled_bytes) + " on disk now, " +
                       GroupThousands(st.spill_failures) + " failed");
  }
  if (txn_) {
    t += "transaction (this shell)\n";
    row("buffers", HumanBytes(txn_bytes));
  }
  Print(t);
  return CommandResult::kOk;
}

namespace {

// The bar moves; Ctrl-C stops the work (false).
bool ProgressOrStop(uint64_t done, uint64_t total, void* arg) {
  static_cast<ProgressBar*>(arg)->Update(done, total);
  return !Shell::interrupted.load(std::memory_order_relaxed);
}

}  // namespace

CommandResult Shell::Backup(const Words& words) {
  if (words.size() != 2) return Usage("usage: backup PATH");
  Status s;
  {
    ProgressBar bar(err_, "backup", "bytes", options_.progress);
    BackupOptions options;
    options.progress = &ProgressOrStop;
    options.arg = &bar;
    s = db_->Backup(words[1], options);
  }
  if (s.IsAborted()) return Fail("error: backup: interrupted: " + s.message());
  if (!s.ok()) return Fail("backup", s);
  Reply({});
  return CommandResult::kOk;
}

CommandResult Shell::Checkpoint(const Words& words) {
  if (words.size() != 1) return Usage("usage: checkpoint");
  Status s = db_->Checkpoint();
  if (!s.ok()) return Fail("checkpoint", s);
  Reply({});
  return CommandResult::kOk;
}

CommandResult Shell::Verify(const Words& words) {
  if (words.size() != 1) return Usage("usage: verify");
  VerifyReport report;
  Status s;
  {
    ProgressBar bar(err_, "verify", "pages", options_.progress);
    s = db_->Verify(&report, &ProgressOrStop, &bar);
  }
  if (s.IsAborted()) return Fail("error: verify: interrupted: " + s.message());
  if (!s.ok()) return Fail("verify", s);
  Print("ok: " + GroupThousands(report.pages) + " pages, " + GroupThousands(report.keys) +
        " keys, " + GroupThousands(report.wal_records) + " WAL records verified\n");
  Reply({{"pages", report.pages}, {"keys", report.keys}, {"wal_records", report.wal_records}});
  return CommandResult::kOk;
}

// ---- import / export ----

namespace {

bool ChooseFormat(const Args& args, const std::string& path, RecordFormat* format,
                  std::string* error) {
  auto f = args.flags.find("--format");
  if (f != args.flags.end()) {
    if (RecordFormatFromName(f->second, format)) return true;
    *error = "unknown format '" + Escape(f->second) + "' (tsv or jsonl)";
    return false;
  }
  if (RecordFormatFromPath(path, format)) return true;
  *error = "cannot tell the format of " + Escape(path) +
           " from its name (.tsv or .jsonl); give --format tsv|jsonl";
  return false;
}

}  // namespace

namespace {

// Records per line of an import file: calls `record` for each (key, value)
// with its line number until it returns false; `why` and `line_no` say where
// a malformed line is. Returns false on a malformed line or a read error.
template <typename OnRecord>
bool ReadRecords(std::istream& in, RecordFormat format, OnRecord record, uint64_t* line_no,
                 uint64_t* bytes_read, std::string* why) {
  std::string line, key, value;
  *line_no = 0;
  *bytes_read = 0;
  while (std::getline(in, line)) {
    ++*line_no;
    *bytes_read += line.size() + 1;
    if (line.empty() || line == "\r") continue;
    if (!ParseRecord(format, line, &key, &value, why)) return false;
    if (!record(key, value)) return false;
  }
  if (in.bad()) {
    *why = std::string("read error: ") + std::strerror(errno);
    return false;
  }
  return true;
}

}  // namespace

CommandResult Shell::Import(const Words& words) {
  Args args;
  std::string why;
  if (!ParseArgs(words, {"--format"}, {"--atomic"}, &args, &why)) return Usage("import: " + why);
  if (args.positional.size() != 1) return Usage(std::string("usage: ") + Find("import")->synopsis);
  const std::string& path = args.positional[0];
  RecordFormat format;
  if (!ChooseFormat(args, path, &format, &why)) return Usage("import: " + why);
  if (txn_) {
    return Fail(
        "error: import: a transaction is open; commit or roll it back first "
        "(an import is a transaction of its own)");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail("error: import: cannot open " + Escape(path) + ": " + std::strerror(errno));
  std::error_code ec;
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  if (args.Has("--atomic")) return ImportAtomic(in, path, format, ec ? 0 : file_size);

  // First the whole file's syntax: a malformed line imports nothing.
  uint64_t line_no = 0, bytes_read = 0, records = 0;
  {
    ProgressBar bar(err_, "check", "bytes", options_.progress && !ec);
    const bool ok = ReadRecords(
        in, format,
        [&](const std::string&, const std::string&) {
          if ((++records & 0x3fff) == 0) {
            if (CheckInterrupted()) return false;
            bar.Update(bytes_read, file_size);
          }
          return true;
        },
        &line_no, &bytes_read, &why);
    if (!ok) {
      if (CheckInterrupted()) why = "interrupted";
      return Fail("error: import: " + Escape(path) + ": line " + std::to_string(line_no) + ": " +
                  why + "; nothing was imported");
    }
  }
  in.clear();
  in.seekg(0);
  if (!in) return Fail("error: import: " + Escape(path) + ": cannot read it a second time");

  // Then batches, committed as they fill: memory stays bounded whatever
  // the file's size.
  constexpr size_t kBatchBytes = size_t{8} << 20;
  WriteBatch batch;
  uint64_t imported = 0, batch_first_line = 1;
  records = 0;
  Status s;
  auto commit = [&] {
    s = db_->Write(WriteOptions{}, &batch);
    if (s.ok()) imported += batch.Count();
    batch.Clear();
    return s.ok();
  };
  ProgressBar bar(err_, "import", "bytes", options_.progress && !ec);
  const bool ok = ReadRecords(
      in, format,
      [&](const std::string& key, const std::string& value) {
        if (batch.Count() == 0) batch_first_line = line_no;
        s = batch.Put(key, value);
        if (!s.ok()) return false;
        if (batch.ApproximateSize() >= kBatchBytes && !commit()) return false;
        if ((++records & 0x3ff) == 0) {
          if (CheckInterrupted()) return false;
          bar.Update(bytes_read, file_size);
        }
        return true;
      },
      &line_no, &bytes_read, &why);
  if (ok && batch.Count() > 0) commit();
  bar.Clear();
  if (!ok || !s.ok()) {
    const std::string cause = !s.ok() ? s.ToString() : CheckInterrupted() ? "interrupted" : why;
    return Fail("error: import: " + Escape(path) + ": line " + std::to_string(line_no) + ": " +
                    cause + "; " + GroupThousands(imported) + " records before line " +
                    std::to_string(batch_first_line) + " were imported, the rest was not",
                s.ok() ? "Failed" : CodeName(s));
  }
  Print("imported " + GroupThousands(imported) + (imported == 1 ? " record" : " records") +
        " from " + Escape(path) + "\n");
  Reply({{"file", path}, {"format", RecordFormatName(format)}, {"records", imported}});
  return CommandResult::kOk;
}

// import --atomic: one transaction, all or nothing. Its limit is said before
// anything is read, not found out after buffering.
CommandResult Shell::ImportAtomic(std::istream& in, const std::string& path, RecordFormat format,
                                  uint64_t file_size) {
  const size_t limit = TransactionOptions{}.buffer_budget_bytes;
  if (file_size > limit) {
    return Fail("error: import --atomic: " + Escape(path) + " is " + HumanBytes(file_size) +
                ", more than the " + HumanBytes(limit) +
                " one transaction may buffer; without --atomic it is imported in batches");
  }
  std::unique_ptr<Transaction> txn = db_->BeginTransaction(WriteOptions{});
  if (!txn) return Fail("error: import: the database could not start a transaction");
  // On any failure below `txn` is rolled back, so nothing of the file lands.
  auto abort = [&](std::string message) {
    txn->Rollback().IgnoreError();
    return Fail("error: import: " + Escape(path) + ": " + message + "; nothing was imported");
  };
  ProgressBar bar(err_, "import", "bytes", options_.progress && file_size > 0);
  uint64_t line_no = 0, bytes_read = 0, records = 0;
  std::string why;
  Status s;
  const bool ok = ReadRecords(
      in, format,
      [&](const std::string& key, const std::string& value) {
        s = txn->Put(key, value);
        if (!s.ok()) return false;
        if ((++records & 0x3ff) == 0) {
          if (CheckInterrupted()) return false;
          bar.Update(bytes_read, file_size);
        }
        return true;
      },
      &line_no, &bytes_read, &why);
  if (!ok) {
    return abort("line " + std::to_string(line_no) + ": " +
                 (!s.ok()              ? s.ToString()
                  : CheckInterrupted() ? "interrupted"
                                       : why));
  }
  bar.Clear();
  s = txn->Commit();
  if (!s.ok()) {
    return Fail(
        "error: import: " + Escape(path) + ": commit: " + s.ToString() + "; nothing was imported",
        CodeName(s));
  }
  Print("imported " + GroupThousands(records) + (records == 1 ? " record" : " records") + " from " +
        Escape(path) + "\n");
  Reply({{"file", path}, {"format", RecordFormatName(format)}, {"records", records}});
  return CommandResult::kOk;
}

namespace {

// Where an export's bytes go. A regular file (or a new one) is written
// through a temporary file renamed over it when complete, so a reader never
// sees half an export; a symbolic link to one is replaced at its target,
// and stays a link. Standard output ("-", /dev/stdout) and anything that is
// not a regular file (a pipe, a terminal, a device, /proc/self/fd/N) is
// written in place: renaming over those would replace the name, not write
// to what it names.
enum class ExportTarget { kStdout, kInPlace, kReplace };

ExportTarget ChooseExportTarget(const std::string& path, std::string* replace_path) {
  *replace_path = path;
  if (path == "-" || path == "/dev/stdout" || path == "/proc/self/fd/1") {
    return ExportTarget::kStdout;
  }
  if (path.rfind("/dev/", 0) == 0 || path.rfind("/proc/", 0) == 0) return ExportTarget::kInPlace;
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return ExportTarget::kReplace;  // a new file
  if (S_ISREG(st.st_mode)) return ExportTarget::kReplace;
  if (!S_ISLNK(st.st_mode)) return ExportTarget::kInPlace;
  std::error_code ec;
  const std::filesystem::path target = std::filesystem::canonical(path, ec);
  if (ec) return ExportTarget::kReplace;  // a dangling link: replaced like a new file
  const std::string t = target.string();
  if (t.rfind("/dev/", 0) == 0 || t.rfind("/proc/", 0) == 0) return ExportTarget::kInPlace;
  if (stat(t.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) return ExportTarget::kInPlace;
  *replace_path = t;
  return ExportTarget::kReplace;
}

}  // namespace

CommandResult Shell::Export(const Words& words) {
  Args args;
  std::string why;
  if (!ParseArgs(words, {"--format", "--prefix"}, {}, &args, &why)) {
    return Usage("export: " + why);
  }
  if (args.positional.size() != 1) return Usage(std::string("usage: ") + Find("export")->synopsis);
  const std::string path = args.positional[0];
  std::string replace_path;
  const ExportTarget target = ChooseExportTarget(path, &replace_path);
  // A stream whose name says nothing of a format gets TSV; a file must be
  // named for its format (or be given --format), as import requires.
  RecordFormat format = RecordFormat::kTsv;
  const bool unnamed_stream = target != ExportTarget::kReplace &&
                              args.flags.count("--format") == 0 &&
                              !RecordFormatFromPath(path, &format);
  if (!unnamed_stream && !ChooseFormat(args, path, &format, &why)) {
    return Usage("export: " + why);
  }
  std::string lower, upper;
  bool has_upper = false;
  Args range_args;
  range_args.flags = args.flags;
  MakeRange(range_args, &lower, &has_upper, &upper, &why);

  FILE* f = nullptr;
  std::string tmp;
  if (target == ExportTarget::kStdout) {
    std::fflush(out_);
    f = out_;
  } else if (target == ExportTarget::kInPlace) {
    const int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) return Fail("error: export: " + Escape(path) + ": " + std::strerror(errno));
    f = fdopen(fd, "ab");
    if (f == nullptr) {
      close(fd);
      return Fail("error: export: " + std::string(std::strerror(errno)));
    }
  } else {
    // Next to the target, so that the final rename stays on one file system.
    tmp = replace_path + ".tmp-XXXXXX";
    const int fd = mkstemp(tmp.data());
    if (fd < 0) {
      return Fail("error: export: cannot create a temporary file next to " + Escape(path) + ": " +
                  std::strerror(errno));
    }
    f = fdopen(fd, "wb");
    if (f == nullptr) {
      close(fd);
      unlink(tmp.c_str());
      return Fail("error: export: " + std::string(std::strerror(errno)));
    }
  }
  auto finish = [&]() -> int {
    if (f == out_) return std::fflush(f);
    return std::fclose(f);
  };
  auto abort = [&](std::string message) {
    finish();
    if (!tmp.empty()) unlink(tmp.c_str());
    return Fail("error: export: " + Escape(path) + ": " + message +
                (target == ExportTarget::kReplace ? "" : " (what was written stays written)"));
  };
  std::unique_ptr<Iterator> it = NewIterator();
  if (!it) return abort("could not create an iterator");
  uint64_t records = 0;
  for (it->Seek(lower); it->Valid(); it->Next()) {
    if (has_upper && it->key() >= upper) break;
    const std::string line = FormatRecord(format, it->key(), it->value());
    if (std::fwrite(line.data(), 1, line.size(), f) != line.size()) {
      return abort(std::string("write failed: ") + std::strerror(errno));
    }
    records++;
    if ((records & 0x3ff) == 0 && CheckInterrupted()) return abort("interrupted");
  }
  if (!it->status().ok()) return abort(it->status().ToString());
  if (std::fflush(f) != 0) return abort(std::string("write failed: ") + std::strerror(errno));
  if (target == ExportTarget::kReplace) {
    if (fsync(fileno(f)) != 0) return abort(std::string("write failed: ") + std::strerror(errno));
    // mkstemp makes the file private; give it the usual permissions.
    const mode_t mask = umask(0);
    umask(mask);
    fchmod(fileno(f), 0666 & ~mask);
  }
  if (finish() != 0) {
    if (!tmp.empty()) unlink(tmp.c_str());
    return Fail("error: export: " + Escape(path) + ": " + std::strerror(errno));
  }
  if (target == ExportTarget::kReplace && std::rename(tmp.c_str(), replace_path.c_str()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    return Fail("error: export: cannot rename into " + Escape(replace_path) + ": " +
                std::strerror(err));
  }
  const std::string summary =
      "exported " + GroupThousands(records) + (records == 1 ? " record" : " records") + " to " +
      (target == ExportTarget::kStdout ? "standard output" : Escape(path)) + "\n";
  if (target == ExportTarget::kStdout) {
    // The records are the output; the summary must not mix with them.
    if (!options_.json) std::fputs(summary.c_str(), err_);
  } else {
    Print(summary);
  }
  Reply({{"file", path}, {"format", RecordFormatName(format)}, {"records", records}});
  return CommandResult::kOk;
}

// ---- bench ----

CommandResult Shell::Bench(const Words& words) {
  Args args;
  std::string why;
  if (!ParseArgs(words, {"--keys"}, {}, &args, &why) || !args.positional.empty()) {
    return Usage("bench: " + (why.empty() ? "unexpected argument" : why) +
                 "; usage: " + Find("bench")->synopsis);
  }
  uint64_t keys = 100000;
  if (args.Has("--keys") &&
      (!ParseCount(args.flags["--keys"], &keys) || keys == 0 || keys > 100000000)) {
    return Usage("bench: --keys needs a number from 1 to 100000000");
  }

  const char* base = std::getenv("TMPDIR");
  std::string dir = std::string(base && *base ? base : "/tmp") + "/kvtool-bench-XXXXXX";
  if (mkdtemp(dir.data()) == nullptr) {
    return Fail("error: bench: cannot create a scratch directory: " +
                std::string(std::strerror(errno)));
  }
  const std::string db_path = dir + "/db";
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{dir};

  std::unique_ptr<DB> db;
  Options options = options_.bench_db_options;
  options.create_if_missing = true;
  options.error_if_exists = false;
  Status s;
  {
    BlockedSignals blocked;
    s = DB::Open(options, db_path, &db);
  }
  if (!s.ok()) return Fail("bench: open scratch database", s);

  std::mt19937_64 rng(std::random_device{}());
  std::vector<std::string> key_list;
  key_list.reserve(keys);
  char buf[32];
  for (uint64_t i = 0; i < keys; i++) {
    std::snprintf(buf, sizeof(buf), "bench%016llx", static_cast<unsigned long long>(rng()));
    key_list.emplace_back(buf);
  }
  std::string value(100, 'v');
  auto value_for = [&value](const std::string& key) {
    std::copy(key.begin(), key.end(), value.begin());
    return std::string_view(value);
  };

  struct Phase {
    const char* name;
    uint64_t ops;
    double seconds;
  };
  std::vector<Phase> phases;

  auto start = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < keys; i++) {
    s = db->Put(WriteOptions{}, key_list[i], value_for(key_list[i]));
    if (!s.ok()) return Fail("bench: fill", s);
    if ((i & 0xfff) == 0 && CheckInterrupted()) return Fail("error: bench: interrupted");
  }
  phases.push_back({"fill", keys, Seconds(std::chrono::steady_clock::now() - start)});

  std::shuffle(key_list.begin(), key_list.end(), rng);
  std::string got;
  start = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < keys; i++) {
    s = db->Get(ReadOptions{}, key_list[i], &got);
    if (!s.ok()) return Fail("bench: read " + key_list[i], s);
    if (got != value_for(key_list[i])) {
      return Fail("error: bench: read " + key_list[i] + ": wrong value", "Corruption");
    }
    if ((i & 0xfff) == 0 && CheckInterrupted()) return Fail("error: bench: interrupted");
  }
  phases.push_back({"read", keys, Seconds(std::chrono::steady_clock::now() - start)});

  start = std::chrono::steady_clock::now();
  uint64_t scanned = 0;
  {
    std::unique_ptr<Iterator> it = db->NewIterator(ReadOptions{});
    for (it->SeekToFirst(); it->Valid(); it->Next()) scanned++;
    if (!it->status().ok()) return Fail("bench: scan", it->status());
  }
  phases.push_back({"scan", scanned, Seconds(std::chrono::steady_clock::now() - start)});

  s = db->Close();
  if (!s.ok()) return Fail("bench: close scratch database", s);
  db.reset();

  Json jphases = Json::array();
  std::string t = "bench: " + GroupThousands(keys) +
                  " random keys (21-byte keys, 100-byte values) in a scratch database\n";
  for (const Phase& p : phases) {
    const double rate = p.seconds > 0 ? p.ops / p.seconds : 0;
    std::snprintf(buf, sizeof(buf), "%.3f", p.seconds);
    char line[160];
    std::snprintf(line, sizeof(line), "  %-5s %12s ops  %8s s  %14s ops/s\n", p.name,
                  GroupThousands(p.ops).c_str(), buf,
                  GroupThousands(static_cast<uint64_t>(rate)).c_str());
    t += line;
    jphases.push_back(
        {{"name", p.name}, {"ops", p.ops}, {"seconds", p.seconds}, {"ops_per_sec", rate}});
  }
  Print(t);
  Reply({{"keys", keys}, {"phases", std::move(jphases)}});
  return CommandResult::kOk;
}

// ---- help / quit ----

CommandResult Shell::Help(const Words& words) {
  if (words.size() > 2) return Usage("usage: help [COMMAND]");
  std::string t;
  if (words.size() == 2) {
    const Command* c = Find(words[1]);
    if (c == nullptr) return Usage("help: unknown command '" + Escape(words[1]) + "'");
    t = std::string("usage: ") + c->synopsis + "\n" + c->description + "\n";
  } else {
    t = "commands (separate several with ';'; quote words with spaces; escapes: \\xNN \\t \\n "
        "\\\\ \\\"):\n";
    for (const Command& c : Commands()) {
      char line[128];
      std::snprintf(line, sizeof(line), "  %s\n", c.synopsis);
      t += line;
    }
    t += "help COMMAND explains one.\n";
  }
  Print(t);
  Reply({{"text", t}});
  return CommandResult::kOk;
}

CommandResult Shell::Quit(const Words& words) {
  if (words.size() != 1) return Usage("usage: quit");
  Reply({});
  return CommandResult::kQuit;
}

}  // namespace arenakv::kvtool
