// BlockedSignals: keeps SIGINT and SIGTERM blocked in the calling thread
// while it lives. Wrapped around DB::Open so that the database's background
// threads (which inherit the mask) never receive the user's Ctrl-C: it must
// reach the main thread, where it interrupts the line editor or a long
// command, and must not turn an engine system call into an EINTR error.
//
// Thread safety: affects the calling thread only.

#ifndef ARENAKV_TOOLS_KVTOOL_BLOCKED_SIGNALS_H_
#define ARENAKV_TOOLS_KVTOOL_BLOCKED_SIGNALS_H_

#include <pthread.h>
#include <signal.h>

namespace arenakv::kvtool {

class BlockedSignals {
 public:
  BlockedSignals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old_);
  }
  ~BlockedSignals() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  BlockedSignals(const BlockedSignals&) = delete;
  BlockedSignals& operator=(const BlockedSignals&) = delete;

 private:
  sigset_t old_;
};

}  // namespace arenakv::kvtool

#endif  // ARENAKV_TOOLS_KVTOOL_BLOCKED_SIGNALS_H_
