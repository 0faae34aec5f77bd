// Status: the outcome of every public arenakv operation.
//
// A Status is either OK or carries a code and a one-line message that names
// what failed (a file, a page, a limit). No exception crosses the arenakv API;
// errors travel as Status values, and ignoring one is a compile warning.
//
// Thread safety: a Status is a value; distinct objects may be used from
// different threads freely, one object needs external synchronization.

#ifndef ARENAKV_STATUS_H_
#define ARENAKV_STATUS_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace arenakv {

class [[nodiscard]] Status {
 public:
  enum class Code : uint8_t {
    kOk = 0,
    kNotFound,
    kCorruption,
    kIOError,
    kInvalidArgument,
    kBusy,
    kConflict,
    kMemoryLimit,
    kClosed,
    kNotSupported,
    kAborted,  // the caller stopped it (a progress callback said so)
  };

  Status() noexcept = default;

  static Status OK() { return Status(); }
  static Status NotFound(std::string_view msg) { return {Code::kNotFound, msg}; }
  static Status Corruption(std::string_view msg) { return {Code::kCorruption, msg}; }
  static Status IOError(std::string_view msg) { return {Code::kIOError, msg}; }
  // An I/O error carrying errno: the message gets strerror(err) appended.
  static Status IOError(std::string_view context, int err);
  static Status InvalidArgument(std::string_view msg) { return {Code::kInvalidArgument, msg}; }
  static Status Busy(std::string_view msg) { return {Code::kBusy, msg}; }
  static Status Conflict(std::string_view msg) { return {Code::kConflict, msg}; }
  static Status MemoryLimit(std::string_view msg) { return {Code::kMemoryLimit, msg}; }
  static Status Closed(std::string_view msg) { return {Code::kClosed, msg}; }
  static Status NotSupported(std::string_view msg) { return {Code::kNotSupported, msg}; }
  static Status Aborted(std::string_view msg) { return {Code::kAborted, msg}; }

  bool ok() const { return code_ == Code::kOk; }
  bool IsNotFound() const { return code_ == Code::kNotFound; }
  bool IsCorruption() const { return code_ == Code::kCorruption; }
  bool IsIOError() const { return code_ == Code::kIOError; }
  bool IsInvalidArgument() const { return code_ == Code::kInvalidArgument; }
  bool IsBusy() const { return code_ == Code::kBusy; }
  bool IsConflict() const { return code_ == Code::kConflict; }
  bool IsMemoryLimit() const { return code_ == Code::kMemoryLimit; }
  bool IsClosed() const { return code_ == Code::kClosed; }
  bool IsNotSupported() const { return code_ == Code::kNotSupported; }
  bool IsAborted() const { return code_ == Code::kAborted; }

  Code code() const { return code_; }
  const std::string& message() const { return msg_; }

  // "OK", or "<Kind>: <message>", e.g. "Corruption: data.akv page 4096: bad checksum".
  std::string ToString() const;

  // Marks an error as deliberately ignored (e.g. best-effort cleanup paths).
  void IgnoreError() const {}

 private:
  Status(Code code, std::string_view msg) : code_(code), msg_(msg) {}

  Code code_ = Code::kOk;
  std::string msg_;
};

}  // namespace arenakv

#endif  // ARENAKV_STATUS_H_
