// kvtool's interactive mode through a pseudo-terminal: the prompt, commands,
// tab completion, the transaction marker, history, and leaving with an open
// transaction.
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "kvtool_runner.h"
#include "test_util.h"

namespace arenakv::test {
namespace {

// A kvtool child on a pseudo-terminal.
class PtySession {
 public:
  // `lc_all`: the child's LC_ALL ("" leaves it unset); `pager`: its PAGER
  // ("": none).
  PtySession(const std::string& db, const std::string& history, const std::string& lc_all = "",
             const std::string& pager = "") {
    struct winsize ws = {};
    ws.ws_row = 40;
    ws.ws_col = 200;
    pid_ = forkpty(&fd_, nullptr, nullptr, &ws);
    if (pid_ == 0) {
      setenv("KVTOOL_HISTORY", history.c_str(), 1);
      setenv("TERM", "xterm", 1);
      setenv("PAGER", pager.c_str(), 1);
      unsetenv("LC_ALL");
      unsetenv("LANG");
      unsetenv("LC_CTYPE");
      if (!lc_all.empty()) setenv("LC_ALL", lc_all.c_str(), 1);
      execl(KVTOOL_PATH, KVTOOL_PATH, db.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  ~PtySession() {
    if (pid_ > 0 && !waited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) close(fd_);
  }

  bool started() const { return pid_ > 0; }

  void Send(const std::string& keys) {
    ASSERT_EQ(write(fd_, keys.data(), keys.size()), static_cast<ssize_t>(keys.size()));
  }

  // Reads until `needle` appears in the output after the read position;
  // consumes the output up to and including it.
  bool Expect(const std::string& needle, int timeout_ms = 10000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      const size_t at = buffer_.find(needle);
      if (at != std::string::npos) {
        seen_ += buffer_.substr(0, at + needle.size());
        buffer_.erase(0, at + needle.size());
        return true;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            deadline - std::chrono::steady_clock::now())
                            .count();
      if (left <= 0 || !ReadSome(static_cast<int>(left))) {
        ADD_FAILURE() << "did not see '" << needle << "'; output so far:\n" << seen_ << buffer_;
        return false;
      }
    }
  }

  // Waits for the child to exit; returns its exit status (-1 on a signal).
  int Wait() {
    // Drain output so the child never blocks on a full terminal buffer.
    while (ReadSome(5000)) {
    }
    int status = 0;
    waitpid(pid_, &status, 0);
    waited_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::string all_output() const { return seen_ + buffer_; }

 private:
  bool ReadSome(int timeout_ms) {
    struct pollfd p = {fd_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return false;
    char buf[4096];
    const ssize_t n = read(fd_, buf, sizeof(buf));
    if (n <= 0) return false;  // EIO once the child has gone
    buffer_.append(buf, static_cast<size_t>(n));
    return true;
  }

  pid_t pid_ = -1;
  int fd_ = -1;
  bool waited_ = false;
  std::string buffer_;
  std::string seen_;
};

TEST(KvtoolInteractiveTest, PromptCommandsCompletionAndRollbackOnExit) {
  TempDir dir;
  const std::string db = dir.Join("db");
  const std::string prompt = "arenakv " + db + "> ";
  const std::string txn_prompt = "arenakv " + db + " [txn]> ";
  {
    PtySession s(db, dir.Join("history"));
    ASSERT_TRUE(s.started());
    ASSERT_TRUE(s.Expect("Type help"));
    ASSERT_TRUE(s.Expect(prompt));
    s.Send("put greeting \"hello there\"\r");
    ASSERT_TRUE(s.Expect(prompt));
    s.Send("get greeting\r");
    ASSERT_TRUE(s.Expect("hello there\r\n"));
    ASSERT_TRUE(s.Expect(prompt));

    // Tab completes a unique command prefix; the completed line runs.
    s.Send("coun\t");
    ASSERT_TRUE(s.Expect("t "));
    s.Send("\r");
    ASSERT_TRUE(s.Expect("1\r\n"));
    ASSERT_TRUE(s.Expect(prompt));
    // An ambiguous prefix lists the candidates.
    s.Send("c\t");
    ASSERT_TRUE(s.Expect("commit"));
    ASSERT_TRUE(s.Expect("checkpoint"));
    s.Send("\x15");  // Ctrl-U: drop the line
    s.Send("\r");
    ASSERT_TRUE(s.Expect(prompt));

    // An error is one line and the shell goes on.
    s.Send("get nothing\r");
    ASSERT_TRUE(s.Expect("not found: nothing"));
    ASSERT_TRUE(s.Expect(prompt));

    // verify draws a progress bar on the terminal, then clears it.
    s.Send("checkpoint; verify\r");
    ASSERT_TRUE(s.Expect("verify ["));
    ASSERT_TRUE(s.Expect("pages"));
    ASSERT_TRUE(s.Expect("ok: "));
    ASSERT_TRUE(s.Expect(prompt));

    // The prompt shows the open transaction; leaving rolls it back.
    s.Send("begin\r");
    ASSERT_TRUE(s.Expect(txn_prompt));
    s.Send("put pending 1\r");
    ASSERT_TRUE(s.Expect(txn_prompt));
    s.Send("quit\r");
    ASSERT_TRUE(s.Expect("rolled back the open transaction"));
    EXPECT_EQ(s.Wait(), 0) << s.all_output();
  }
  KvtoolResult r = Kv(db, "get pending");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  r = Kv(db, "get greeting");
  EXPECT_EQ(r.out, "hello there\n");
  // History persisted to the file.
  const std::string history = ReadFileBytes(dir.Join("history"));
  EXPECT_NE(history.find("greeting"), std::string::npos) << history;

  // History is loaded again: Up recalls the last line of the previous session.
  {
    PtySession s(db, dir.Join("history"));
    ASSERT_TRUE(s.Expect(prompt));
    s.Send("\x1b[A");
    ASSERT_TRUE(s.Expect("quit"));
    s.Send("\x15");
    s.Send("\x04");  // Ctrl-D on an empty line leaves
    EXPECT_EQ(s.Wait(), 0) << s.all_output();
  }
}

// Output longer than the screen (40 rows here) goes through $PAGER; shorter
// output, and everything after `pager off`, does not.
TEST(KvtoolInteractiveTest, LongOutputGoesThroughThePager) {
  TempDir dir;
  const std::string db = dir.Join("db");
  const std::string prompt = "arenakv " + db + "> ";
  std::string puts;
  for (int i = 0; i < 60; ++i) puts += "put key" + std::to_string(100 + i) + " v; ";
  ASSERT_EQ(Kv(db, puts).exit_code, 0);
  PtySession s(db, dir.Join("history"), "", "sed 's/^/paged: /'");
  ASSERT_TRUE(s.Expect(prompt));
  s.Send("get key100\r");
  ASSERT_TRUE(s.Expect("get key100\r\n"));
  ASSERT_TRUE(s.Expect("v\r\n"));
  ASSERT_TRUE(s.Expect(prompt));
  EXPECT_EQ(s.all_output().find("paged:"), std::string::npos) << s.all_output();
  s.Send("scan\r");
  ASSERT_TRUE(s.Expect("paged: key100"));
  ASSERT_TRUE(s.Expect("paged: key159"));
  ASSERT_TRUE(s.Expect(prompt));
  s.Send("pager off\r");
  ASSERT_TRUE(s.Expect("pager off"));
  ASSERT_TRUE(s.Expect(prompt));
  s.Send("scan --prefix key15\r");
  ASSERT_TRUE(s.Expect("key159"));
  ASSERT_TRUE(s.Expect(prompt));
  s.Send("scan\r");
  ASSERT_TRUE(s.Expect("\nkey159"));
  ASSERT_TRUE(s.Expect(prompt));
  s.Send("exit\r");
  EXPECT_EQ(s.Wait(), 0) << s.all_output();
}

TEST(KvtoolInteractiveTest, CtrlCAbandonsTheLineAndKeepsTheShell) {
  TempDir dir;
  const std::string db = dir.Join("db");
  const std::string prompt = "arenakv " + db + "> ";
  PtySession s(db, dir.Join("history"));
  ASSERT_TRUE(s.Expect(prompt));
  s.Send("put half");
  ASSERT_TRUE(s.Expect("put half"));
  s.Send("\x03");
  ASSERT_TRUE(s.Expect(prompt));
  // Ctrl-C typed right behind other keys, while the editor is still busy
  // with them, must abandon the line too (a signal-based Ctrl-C lost these).
  for (int i = 0; i < 20; i++) {
    s.Send("put lost" + std::to_string(i) + " x\x03");
    ASSERT_TRUE(s.Expect(prompt)) << "round " << i;
  }
  s.Send("count\r");
  ASSERT_TRUE(s.Expect("0\r\n"));
  ASSERT_TRUE(s.Expect(prompt));
  s.Send("exit\r");
  EXPECT_EQ(s.Wait(), 0) << s.all_output();
}

// Non-ASCII typed at the prompt reaches the database whole, whether the
// locale is UTF-8 or unset. The line editor ran in the "C" locale and
// dropped every byte above 0x7f: "put café naïve→日本" stored "caf" = "nave".
TEST(KvtoolInteractiveTest, NonAsciiTypedAtThePromptIsStoredWhole) {
  for (const std::string lc_all : {"C.UTF-8", ""}) {
    TempDir dir;
    const std::string db = dir.Join("db");
    {
      PtySession s(db, dir.Join("history"), lc_all);
      ASSERT_TRUE(s.Expect("arenakv " + db + "> "));
      s.Send("put caf\xc3\xa9 na\xc3\xafve\xe2\x86\x92\xe6\x97\xa5\xe6\x9c\xac\r");
      ASSERT_TRUE(s.Expect("arenakv " + db + "> "));
      s.Send("quit\r");
      EXPECT_EQ(s.Wait(), 0) << s.all_output();
    }
    KvtoolResult r = Kv(db, "scan");
    EXPECT_EQ(r.out, "caf\xc3\xa9\tna\xc3\xafve\xe2\x86\x92\xe6\x97\xa5\xe6\x9c\xac\n")
        << "LC_ALL=" << lc_all << "\n"
        << r.err;
  }
}

}  // namespace
}  // namespace arenakv::test
