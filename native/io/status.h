// Status: the one error type every native layer returns. It never throws; addon/errors.cc turns it into a
// CheckpointError with code/errno/syscall/path.
#pragma once
#include <string>
#include <utility>

namespace ckptio {

enum class StatusKind { kOk, kOs, kFormat, kChecksum, kInvalidArgument, kBusy, kAborted };

struct Status {
  StatusKind kind = StatusKind::kOk;
  int sys_errno = 0;
  std::string syscall;
  std::string path;
  std::string message;

  bool ok() const { return kind == StatusKind::kOk; }

  static Status Ok() { return Status(); }
  static Status Os(int err, std::string syscall_name, std::string file_path) {
    Status s;
    s.kind = StatusKind::kOs;
    s.sys_errno = err;
    s.syscall = std::move(syscall_name);
    s.path = std::move(file_path);
    return s;
  }
  static Status Make(StatusKind kind, std::string msg, std::string file_path = std::string()) {
    Status s;
    s.kind = kind;
    s.message = std::move(msg);
    s.path = std::move(file_path);
    return s;
  }
  static Status Format(std::string msg, std::string file_path = std::string()) {
    return Make(StatusKind::kFormat, std::move(msg), std::move(file_path));
  }
  static Status Checksum(std::string msg, std::string file_path = std::string()) {
    return Make(StatusKind::kChecksum, std::move(msg), std::move(file_path));
  }
  static Status Invalid(std::string msg, std::string file_path = std::string()) {
    return Make(StatusKind::kInvalidArgument, std::move(msg), std::move(file_path));
  }
};

}  // namespace ckptio
