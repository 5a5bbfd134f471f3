// Status -> JavaScript: the CheckpointError (the class src/binding/native.ts hands in through init()) that every
// failure becomes, with code, errno, syscall and path. No C++ exception crosses the addon's boundary
// (node-addon-api is built without them).
#pragma once
#include <napi.h>

#include <string>

#include "../io/status.h"

namespace ckptio::addon {

// "ENOENT" for ENOENT; "E<n>" for an errno the C library has no name for.
std::string ErrnoName(int sys_errno);

// A CheckpointError for `status` (a plain Error with `code` before init() ran).
Napi::Value MakeError(Napi::Env env, const Status& status);

// A promise already rejected with MakeError(status): what an asynchronous export returns for bad arguments.
Napi::Value Rejected(Napi::Env env, const Status& status);

// Throws MakeError(status) and returns undefined: what a synchronous export returns on failure.
Napi::Value Thrown(Napi::Env env, const Status& status);

}  // namespace ckptio::addon
