// The read path: read (the whole file, mapped, optionally verified) and readHeader (the header alone, with pread).
// One AsyncWorker per call on the libuv pool, as sharp does; the file work runs there, the JS objects are built
// back on the JS thread.
#pragma once
#include <napi.h>

namespace ckptio::addon {

// read(path, {verify}) -> Promise<{tensors, metadata, bytes, verified, checksummed}>: typed arrays over one
// private mapping of the file, unmapped when the last of them is collected; ckptio's own keys are not returned.
Napi::Value Read(const Napi::CallbackInfo& info);

// readHeader(path) -> Promise<{tensors: [{name, dtype, shape, bytes}], metadata, bytes, checksummed, contentId?}>:
// the header alone, so no tensor data is read (a manifest rebuilt by scanning costs the headers, not the
// checkpoints' size). The metadata includes ckptio's own keys.
Napi::Value ReadHeader(const Napi::CallbackInfo& info);

}  // namespace ckptio::addon
