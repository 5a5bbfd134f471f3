// The per-environment state of the addon: one AddonState per Node environment (the main thread and each worker
// that loads the addon), created by module.cc and reached through State(env) on the JS thread. Each environment
// has its own writer thread, copy pool, Env and error class; nothing here is process-wide.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>
#include <unordered_map>

#include "../io/env.h"
#include "completion.h"
#include "../writer/copy_pool.h"
#include "../writer/writer.h"

#ifdef CKPTIO_TESTING
#include <memory>

#include "../io/fault_env.h"
#endif

namespace ckptio::addon {

// A lane's failure generation (one lane per Checkpointer): raised by each failed save, read by every later save
// of the lane, which is aborted when it was planned at an older one. Writer thread only.
struct SaveLane {
  uint64_t generation = 0;
  std::string failure;  // what the failure that raised it said
};

struct AddonState {
  // The CheckpointError class src/binding/native.ts hands in through init(). JS thread only.
  Napi::FunctionReference error_class;
#ifdef CKPTIO_TESTING
  // The fault-injecting twin (testing builds only), created by the first faults.configure() and kept as long as
  // the environment, so a job or a mapping that still holds it never sees it freed (a mapping's finalizer runs
  // before the environment's instance data is deleted). Configured on the JS thread; the twin locks itself.
  std::unique_ptr<io::FaultEnv> faults;
#endif
  // The Env each new job and read takes (and keeps for its whole run): PosixEnv(), or the twin while a testing
  // build's faults are configured. Read and written on the JS thread only.
  io::Env* env = io::PosixEnv();
  writer::CopyPool copy_pool;
  // Declared after the copy pool, so it is destroyed before it: its shutdown finishes the running job and cancels the queued ones
  // while the Env and the copy pool they use still exist.
  writer::Writer writer;
  // What the writer finished, for the JS thread to settle (completion.h); the fence in-place readers hold.
  CompletionQueue handovers;
  ReadFence read_fence;
  bool draining = false;  // JS thread only
  std::unordered_map<uint32_t, SaveLane> lanes;  // writer thread only
  ~AddonState() {
    // Queued jobs run to the end first (bounded: writer.h); then whatever they handed over that JavaScript never
    // settled is left as it is: the environment is going away and its references may not be touched.
    writer.Shutdown();
    for (const Handover& h : handovers.TakeAll()) {
      if (h.consumed_notice) continue;
      h.done->keep_alive.SuppressDestruct();
      h.done->on_consumed.SuppressDestruct();
      h.done->on_settled.SuppressDestruct();
    }
  }
  // Main-thread time spent settling writer jobs (the part of a save's stall the caller cannot time). JS thread.
  uint64_t completions = 0;
  uint64_t completion_ns_total = 0;
  uint64_t completion_ns_max = 0;
};

inline AddonState* State(Napi::Env env) { return env.GetInstanceData<AddonState>(); }

}  // namespace ckptio::addon
