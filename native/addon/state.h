// The per-environment state of the addon: one AddonState per Node environment (the main thread and each worker
// that loads the addon), created by module.cc and reached through State(env) on the JS thread. Each environment
// has its own writer thread, copy pool and error class.
#pragma once
#include <napi.h>

#include <cstdint>

#include "../writer/copy_pool.h"
#include "../writer/writer.h"

namespace ckptio::addon {

struct AddonState {
  // The CheckpointError class src/binding/native.ts hands in through init(). JS thread only.
  Napi::FunctionReference error_class;
  writer::CopyPool copy_pool;
  // Declared after the copy pool, so it is destroyed before it: its shutdown finishes the running job and cancels the queued ones
  // while the copy pool they use still exists.
  writer::Writer writer;
  // Main-thread time spent settling writer jobs (the part of a save's stall the caller cannot time). JS thread.
  uint64_t completions = 0;
  uint64_t completion_ns_total = 0;
  uint64_t completion_ns_max = 0;
};

inline AddonState* State(Napi::Env env) { return env.GetInstanceData<AddonState>(); }

}  // namespace ckptio::addon
