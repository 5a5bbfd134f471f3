// The hooks tests and benchmarks use, which the release addon does not export: faults (the fault-injecting Env
// twin: configure, stats, disable), rawWrite (the disk's own limit) and writerStats (queue depth, copy-pool
// bytes, main-thread completion time).
#pragma once
#include <napi.h>

namespace ckptio::addon {

// Adds rawWrite, writerStats and faults to `exports`.
void AddTestingExports(Napi::Env env, Napi::Object exports);

}  // namespace ckptio::addon
