#include "arenakv/status.h"

#include <cstring>

namespace arenakv {

Status Status::IOError(std::string_view context, int err) {
  std::string msg(context);
  msg += ": ";
  char buf[128];
  // GNU strerror_r may return a static string instead of filling buf.
  msg += strerror_r(err, buf, sizeof(buf));
  return Status(Code::kIOError, msg);
}

std::string Status::ToString() const {
  const char* kind = "OK";
  switch (code_) {
    case Code::kOk:
      return "OK";
    case Code::kNotFound:
      kind = "NotFound";
      break;
    case Code::kCorruption:
      kind = "Corruption";
      break;
    case Code::kIOError:
      kind = "IOError";
      break;
    case Code::kInvalidArgument:
      kind = "InvalidArgument";
      break;
    case Code::kBusy:
      kind = "Busy";
      break;
    case Code::kConflict:
      kind = "Conflict";
      break;
    case Code::kMemoryLimit:
      kind = "MemoryLimit";
      break;
    case Code::kClosed:
      kind = "Closed";
      break;
    case Code::kNotSupported:
      kind = "NotSupported";
      break;
    case Code::kAborted:
      kind = "Aborted";
      break;
  }
  std::string out(kind);
  if (!msg_.empty()) {
    out += ": ";
    out += msg_;
  }
  return out;
}

}  // namespace arenakv
