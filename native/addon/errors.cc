#include "errors.h"

#include <string.h>

#include "state.h"

namespace ckptio::addon {
namespace {

const char* KindCode(StatusKind kind) {
  switch (kind) {
    case StatusKind::kFormat: return "ECKPT_FORMAT";
    case StatusKind::kChecksum: return "ECKPT_CHECKSUM";
    case StatusKind::kInvalidArgument: return "ECKPT_ARGS";
    case StatusKind::kBusy: return "ECKPT_BUSY";
    case StatusKind::kAborted: return "ECKPT_ABORTED";
    default: return "ECKPT_INTERNAL";
  }
}

}  // namespace

std::string ErrnoName(int sys_errno) {
  const char* name = strerrorname_np(sys_errno);
  return name ? name : "E" + std::to_string(sys_errno);
}

Napi::Value MakeError(Napi::Env env, const Status& status) {
  Napi::Object info = Napi::Object::New(env);
  std::string message;
  if (status.kind == StatusKind::kOs) {
    const std::string code = ErrnoName(status.sys_errno);
    message = code + ": " + strerror(status.sys_errno) + ", " + status.syscall;
    if (!status.path.empty()) message += " '" + status.path + "'";
    info.Set("code", code);
    info.Set("errno", status.sys_errno);
    info.Set("syscall", status.syscall);
  } else {
    message = status.message;
    if (!status.path.empty()) message += " ('" + status.path + "')";
    info.Set("code", KindCode(status.kind));
  }
  if (!status.path.empty()) info.Set("path", status.path);
  AddonState* state = State(env);
  if (state && !state->error_class.IsEmpty()) {
    return state->error_class.New({Napi::String::New(env, message), info});
  }
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", info.Get("code"));
  return err.Value();
}

Napi::Value Rejected(Napi::Env env, const Status& status) {
  auto deferred = Napi::Promise::Deferred::New(env);
  deferred.Reject(MakeError(env, status));
  return deferred.Promise();
}

Napi::Value Thrown(Napi::Env env, const Status& status) {
  napi_throw(env, MakeError(env, status));
  return env.Undefined();
}

}  // namespace ckptio::addon
