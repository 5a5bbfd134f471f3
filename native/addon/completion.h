// How a writer job's result gets back to JavaScript: a Completion (the promise and what the job reports) that the
// job fills on the writer thread and hands to the JS thread through a thread-safe function, where
// FinishOnJsThread settles the promise. WriterJob is the base of every job the addon queues (write.cc, and the
// testing build's rawWrite); Submit queues one.
#pragma once
#include <napi.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "../io/status.h"
#include "../writer/commit.h"
#include "../writer/copy_pool.h"
#include "../writer/writer.h"

namespace ckptio::addon {

// Created on the JS thread with the job, filled by the job on the writer thread, settled and deleted on the JS
// thread. Only one thread touches it at a time (the hand-over is the thread-safe function's call), except the
// consumed notice below.
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
  // A save given after.onConsumed: called on the JS thread once the writer no longer reads the tensors (it has
  // read every byte, before the file is durable; or the job failed before that), and keep_alive is dropped then. The job then sends two messages through its
  // thread-safe function, this notice first (one function, so they arrive in that order). While the notice is
  // handled the writer thread is still working on the job, so the JS thread touches only these two members and
  // keep_alive, which the writer never does.
  Napi::FunctionReference on_consumed;
  bool notice_pending = false;  // JS thread only: the next message is the consumed notice
  explicit Completion(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

void FinishOnJsThread(Napi::Env env, Napi::Function, std::nullptr_t*, Completion* done);
using CompletionTsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, Completion, FinishOnJsThread>;

// A job that settles its Completion exactly once: by Run (through Finish), by Cancel when the writer shuts down
// with it queued, or, failing both, by its destructor (ECANCELED).
class WriterJob : public writer::Job {
 public:
  WriterJob(Completion* done, CompletionTsfn tsfn) : done_(done), tsfn_(tsfn), notice_owed_(done->notice_pending) {}
  ~WriterJob() override;
  void Cancel() override;
  // Hands the completion to the JS thread with `status`; the job must not touch done_ afterwards. Sends the
  // consumed notice first if it is still owed.
  void Finish(Status status);
  // Sends the consumed notice, once, when the completion asked for one: from the job when the bytes are read, else
  // from Finish.
  void NotifyConsumed();

 protected:
  Completion* done_;
  CompletionTsfn tsfn_;
  bool notice_owed_;  // writer thread only (set at construction, on the JS thread, before the job is posted)
};

// Queues the job `make` builds (with the thread-safe function it must finish through) on this environment's
// writer; the returned promise settles from FinishOnJsThread. A full queue rejects with ECKPT_BUSY.
Napi::Value Submit(Napi::Env env, Completion* done, const std::function<WriterJob*(CompletionTsfn)>& make);

}  // namespace ckptio::addon
