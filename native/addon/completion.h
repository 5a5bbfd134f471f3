// How a writer job's result gets back to JavaScript. A Completion (the promise and what the job reports) is filled
// by the job on the writer thread and then put on the environment's CompletionQueue; the job's thread-safe function
// only wakes the JS thread. The queue is drained on the JS thread by that wake-up (a libuv turn) or, sooner, by a
// synchronous drain() from JavaScript (a training loop that never yields still learns what the writer finished:
// Checkpointer.save() drains first). Whichever comes first settles; the other finds nothing.
// WriterJob is the base of every job the addon queues (write.cc, and the testing build's rawWrite); Submit queues one.
#pragma once
#include <napi.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "../io/status.h"
#include "../writer/commit.h"
#include "../writer/copy_pool.h"
#include "../writer/writer.h"

namespace ckptio::addon {

// Created on the JS thread with the job, filled by the job on the writer thread, settled and deleted on the JS
// thread. Only one thread touches it at a time (the hand-over is the queue's mutex), except the consumed notice below.
struct Completion {
  Napi::Promise::Deferred deferred;
  Napi::ObjectReference keep_alive;  // the JS buffers the job reads in place
  writer::CopyPool::Buffer copy;     // or the staging copy of them
  writer::CopyPool* pool = nullptr;
  Status status;
  writer::CommitResult result;
  std::string path;
  // A save job (SaveJob) reports its later stages too: the small files it committed after the data file, the
  // names it removed, and, when it failed after the data file was durable, at which stage.
  bool is_save = false;
  bool data_durable = false;
  std::string failed_stage;
  std::vector<std::pair<std::string, int>> file_leftovers;
  std::vector<std::string> removed;
  // A save's lane (one per Checkpointer) and the lane's failure generation after the job ran: a failure raises it,
  // and every job planned at an older generation is aborted by the writer (see SaveJob).
  uint32_t lane = 0;
  uint64_t generation = 0;
  // after.onConsumed: called on the JS thread once the writer no longer reads the tensors (every byte read, before
  // the file is durable; or the job failed before that); keep_alive is dropped then. While the notice is handled
  // the writer may still run the job, so the JS thread touches only these members and keep_alive.
  Napi::FunctionReference on_consumed;
  // after.onSettled(error, result): called on the JS thread when the job settles, synchronously inside the drain
  // that finds it, before the promise settles (the promise's reactions run later, as microtasks).
  Napi::FunctionReference on_settled;
  explicit Completion(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

// What the writer thread hands over: a consumed notice, or the job's end. Notices of one job come before its end.
struct Handover {
  Completion* done;
  bool consumed_notice;
};

class CompletionQueue {
 public:
  void Push(Handover h);
  std::deque<Handover> TakeAll();

 private:
  std::mutex mu_;
  std::deque<Handover> items_;
};

// Jobs that read JavaScript memory in place and have not yet read all of it. A wasm heap must not be grown (it
// could move) while one is outstanding: the grow waits here (src/tfjs/wasm-heap.ts).
class ReadFence {
 public:
  void Enter();
  void Leave();
  // Waits until no job reads JavaScript memory; false on timeout.
  bool WaitIdle(int64_t timeout_ms);
  int outstanding();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int outstanding_ = 0;
};

// Settles every handed-over completion now, in order. JS thread only; a drain started from inside a callback it
// runs returns at once (the outer one continues in order).
void Drain(Napi::Env env);

void WakeOnJsThread(Napi::Env env, Napi::Function, std::nullptr_t*, std::nullptr_t*);
using CompletionTsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, std::nullptr_t, WakeOnJsThread>;

// A job that settles its Completion exactly once: by Run (through Finish), by Cancel when the writer shuts down
// with it queued, or, failing both, by its destructor (ECANCELED).
class WriterJob : public writer::Job {
 public:
  WriterJob(Completion* done, CompletionTsfn tsfn);
  ~WriterJob() override;
  void Cancel() override;
  // Hands the completion to the JS thread with `status`; the job must not touch done_ afterwards. Sends the
  // consumed notice first if it is still owed.
  void Finish(Status status);
  // The job no longer reads the caller's memory: leaves the read fence and sends the consumed notice (when asked
  // for). Once; from the job when the bytes are read, else from Finish.
  void NotifyConsumed();
  // Where the job hands over and, when it reads JavaScript memory in place, the fence it holds until it has read
  // it. Set by Submit, on the JS thread, before the job is posted.
  void Attach(CompletionQueue* queue, ReadFence* fence);

 protected:
  Completion* done_;
  CompletionTsfn tsfn_;
  CompletionQueue* queue_;
  ReadFence* fence_;  // set when the job reads JavaScript memory in place
  bool notice_owed_;  // writer thread only (set at construction, on the JS thread, before the job is posted)
  bool fence_owed_;
};

// Queues the job `make` builds (with the thread-safe function it wakes through) on this environment's writer; the
// returned promise settles in Drain. A full queue rejects with ECKPT_BUSY.
Napi::Value Submit(Napi::Env env, Completion* done, const std::function<WriterJob*(CompletionTsfn)>& make);

// drain(): settles, now, what the writer finished since the last drain.
Napi::Value DrainBinding(const Napi::CallbackInfo& info);
// waitReads(timeoutMs): blocks until no job reads JavaScript memory in place; false on timeout.
Napi::Value WaitReadsBinding(const Napi::CallbackInfo& info);
// writerState(): { queued, unread } for tests and the wasm heap fence.
Napi::Value WriterStateBinding(const Napi::CallbackInfo& info);

}  // namespace ckptio::addon
