#include "completion.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <memory>

#include "errors.h"
#include "state.h"

namespace ckptio::addon {

namespace {

// The main thread's time in the callbacks; a consumed notice adds its time but is not a completion.
void AddCompletionTime(Napi::Env env, std::chrono::steady_clock::time_point started, bool completion) {
  if (AddonState* state = State(env)) {
    const uint64_t ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::steady_clock::now() - started).count());
    if (completion) state->completions++;
    state->completion_ns_total += ns;
    state->completion_ns_max = std::max(state->completion_ns_max, ns);
  }
}

}  // namespace

void FinishOnJsThread(Napi::Env env, Napi::Function, std::nullptr_t*, Completion* done) {
  if (env == nullptr) {
    // The environment is going away: there is no promise to settle and no reference may be touched, so the
    // completion is deliberately leaked (the process or worker is exiting).
    done->keep_alive.SuppressDestruct();
    done->on_consumed.SuppressDestruct();
    return;
  }
  const auto started = std::chrono::steady_clock::now();
  Napi::HandleScope scope(env);
  if (done->notice_pending) {
    // The writer no longer reads the tensors (it has read every byte, or the job failed before that and its
    // completion follows): they are the caller's again. The job may still be running.
    done->notice_pending = false;
    done->keep_alive.Reset();
    Napi::FunctionReference fn = std::move(done->on_consumed);
    fn.Call({});
    // The binding's callers pass a callback that catches; an exception here must not become the process's.
    if (env.IsExceptionPending()) env.GetAndClearPendingException();
    AddCompletionTime(env, started, false);
    return;
  }
  if (done->pool) done->pool->Release(done->copy);
  if (done->status.ok()) {
    Napi::Object out = Napi::Object::New(env);
    out.Set("path", done->path);
    out.Set("bytes", static_cast<double>(done->result.bytes));
    out.Set("direct", done->result.direct);
    out.Set("preallocated", done->result.preallocated);
    out.Set("replaced", done->result.exchanged);
    out.Set("copied", done->copy.data != nullptr);
    if (!done->result.leftover.empty()) {
      Napi::Object leftover = Napi::Object::New(env);
      leftover.Set("path", done->result.leftover);
      leftover.Set("errno", done->result.leftover_errno);
      leftover.Set("code", ErrnoName(done->result.leftover_errno));
      out.Set("leftover", leftover);
    }
    if (!done->result.content_id.empty()) out.Set("contentId", done->result.content_id);
    if (done->is_save) {
      Napi::Array leftovers = Napi::Array::New(env, done->file_leftovers.size());
      for (size_t i = 0; i < done->file_leftovers.size(); ++i) {
        Napi::Object l = Napi::Object::New(env);
        l.Set("path", done->file_leftovers[i].first);
        l.Set("errno", done->file_leftovers[i].second);
        l.Set("code", ErrnoName(done->file_leftovers[i].second));
        leftovers.Set(static_cast<uint32_t>(i), l);
      }
      out.Set("fileLeftovers", leftovers);
      Napi::Array removed = Napi::Array::New(env, done->removed.size());
      for (size_t i = 0; i < done->removed.size(); ++i) removed.Set(static_cast<uint32_t>(i), done->removed[i]);
      out.Set("removed", removed);
    }
    done->deferred.Resolve(out);
  } else {
    Napi::Value err = MakeError(env, done->status);
    if (done->is_save && err.IsObject()) {
      // The checkpoint itself may be durable although a pointer, the manifest or a removal failed.
      err.As<Napi::Object>().Set("dataDurable", done->data_durable);
      err.As<Napi::Object>().Set("stage", done->failed_stage);
      if (!done->result.content_id.empty()) err.As<Napi::Object>().Set("contentId", done->result.content_id);
    }
    done->deferred.Reject(err);
  }
  delete done;
  AddCompletionTime(env, started, true);
}

WriterJob::~WriterJob() {
  if (done_) Finish(Status::Os(ECANCELED, "write", done_->path));
}

void WriterJob::Cancel() { Finish(Status::Os(ECANCELED, "write", done_->path)); }

void WriterJob::NotifyConsumed() {
  if (!notice_owed_) return;
  notice_owed_ = false;
  // A closing environment refuses the call; the finish message that follows is refused too and handles that.
  tsfn_.BlockingCall(done_);
}

void WriterJob::Finish(Status status) {
  NotifyConsumed();
  done_->status = std::move(status);
  Completion* done = done_;
  done_ = nullptr;
  if (tsfn_.BlockingCall(done) != napi_ok) {
    // Closing environment: the promise can no longer settle. Drop the JS handles without touching JS.
    done->keep_alive.SuppressDestruct();
  }
  tsfn_.Release();
}

Napi::Value Submit(Napi::Env env, Completion* done, const std::function<WriterJob*(CompletionTsfn)>& make) {
  CompletionTsfn tsfn = CompletionTsfn::New(env, "ckptio.write", 0, 1, nullptr);
  Napi::Promise promise = done->deferred.Promise();
  std::unique_ptr<writer::Job> job(make(tsfn));
  if (!State(env)->writer.Post(&job)) {
    static_cast<WriterJob*>(job.get())->Finish(Status::Make(
        StatusKind::kBusy, "writer queue is full (" + std::to_string(writer::Writer::kMaxQueued) +
                               " jobs); await earlier saves first", done->path));
  }
  return promise;
}

}  // namespace ckptio::addon
