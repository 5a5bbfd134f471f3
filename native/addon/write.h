// The exported functions that queue writer jobs: write, save, writeFile, remove. Each checks its arguments on the
// JS thread, builds one job (write.cc) and returns the promise the job settles (completion.h).
#pragma once
#include <napi.h>

namespace ckptio::addon {

// write(path, tensors, metadata, options) -> Promise<WriteResult>: one checkpoint file through the commit protocol.
Napi::Value Write(const Napi::CallbackInfo& info);
// save(path, tensors, metadata, options, after) -> Promise<SaveResult>: the same data file plus, in the same writer
// job, the small files and removals in `after`.
Napi::Value Save(const Napi::CallbackInfo& info);
// writeFile(path, bytes) -> Promise<WriteResult>: the same commit protocol for a small file (pointers, manifests).
Napi::Value WriteFile(const Napi::CallbackInfo& info);
// remove(dir, names) -> Promise<WriteResult>: unlink names, then fsync(dir); ordered after every job queued before.
Napi::Value Remove(const Napi::CallbackInfo& info);

}  // namespace ckptio::addon
