#include "completion.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <memory>

#include "errors.h"
#include "state.h"

namespace ckptio::addon {

namespace {

// The main thread's time settling handovers; a consumed notice adds its time but is not a completion.
void AddCompletionTime(AddonState* state, std::chrono::steady_clock::time_point started, bool completion) {
  const uint64_t ns = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - started).count());
  if (completion) state->completions++;
  state->completion_ns_total += ns;
  state->completion_ns_max = std::max(state->completion_ns_max, ns);
}

Napi::Object ResultObject(Napi::Env env, Completion* done) {
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
    out.Set("generation", static_cast<double>(done->generation));
  }
  return out;
}

// A throw from the binding's own callbacks must not become the process's.
void CallQuietly(Napi::Env env, Napi::FunctionReference& fn, const std::initializer_list<napi_value>& args) {
  if (fn.IsEmpty()) return;
  Napi::FunctionReference callee = std::move(fn);
  callee.Call(args);
  if (env.IsExceptionPending()) env.GetAndClearPendingException();
}

void Settle(Napi::Env env, AddonState* state, const Handover& h) {
  const auto started = std::chrono::steady_clock::now();
  Napi::HandleScope scope(env);
  Completion* done = h.done;
  if (h.consumed_notice) {
    // The writer no longer reads the tensors: they are the caller's again. The job may still be running.
    done->keep_alive.Reset();
    CallQuietly(env, done->on_consumed, {});
    AddCompletionTime(state, started, false);
    return;
  }
  if (done->pool) done->pool->Release(done->copy);
  done->keep_alive.Reset();
  if (done->status.ok()) {
    Napi::Object out = ResultObject(env, done);
    CallQuietly(env, done->on_settled, {env.Null(), out});
    done->deferred.Resolve(out);
  } else {
    Napi::Value err = MakeError(env, done->status);
    if (done->is_save && err.IsObject()) {
      // The checkpoint itself may be durable although a pointer, the manifest or a removal failed.
      err.As<Napi::Object>().Set("dataDurable", done->data_durable);
      err.As<Napi::Object>().Set("stage", done->failed_stage);
      err.As<Napi::Object>().Set("generation", static_cast<double>(done->generation));
      if (!done->result.content_id.empty()) err.As<Napi::Object>().Set("contentId", done->result.content_id);
    }
    CallQuietly(env, done->on_settled, {err, env.Undefined()});
    done->deferred.Reject(err);
  }
  delete done;
  AddCompletionTime(state, started, true);
}

}  // namespace

void CompletionQueue::Push(Handover h) {
  std::lock_guard<std::mutex> lock(mu_);
  items_.push_back(h);
}

std::deque<Handover> CompletionQueue::TakeAll() {
  std::lock_guard<std::mutex> lock(mu_);
  std::deque<Handover> out;
  out.swap(items_);
  return out;
}

void ReadFence::Enter() {
  std::lock_guard<std::mutex> lock(mu_);
  outstanding_++;
}

void ReadFence::Leave() {
  std::lock_guard<std::mutex> lock(mu_);
  if (--outstanding_ == 0) cv_.notify_all();
}

bool ReadFence::WaitIdle(int64_t timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [this] { return outstanding_ == 0; });
}

int ReadFence::outstanding() {
  std::lock_guard<std::mutex> lock(mu_);
  return outstanding_;
}

void Drain(Napi::Env env) {
  AddonState* state = State(env);
  if (state == nullptr || state->draining) return;
  state->draining = true;
  // Taken in batches until empty: the writer may hand over more while this settles.
  for (std::deque<Handover> batch = state->handovers.TakeAll(); !batch.empty(); batch = state->handovers.TakeAll()) {
    for (const Handover& h : batch) Settle(env, state, h);
  }
  state->draining = false;
}

void WakeOnJsThread(Napi::Env env, Napi::Function, std::nullptr_t*, std::nullptr_t*) {
  // env is null while the environment is torn down: what is queued then is AddonState's to dispose of.
  if (env != nullptr) Drain(env);
}

WriterJob::WriterJob(Completion* done, CompletionTsfn tsfn)
    : done_(done), tsfn_(tsfn), queue_(nullptr), fence_(nullptr), notice_owed_(!done->on_consumed.IsEmpty()),
      fence_owed_(false) {}

WriterJob::~WriterJob() {
  if (done_) Finish(Status::Os(ECANCELED, "write", done_->path));
}

void WriterJob::Attach(CompletionQueue* queue, ReadFence* fence) {
  queue_ = queue;
  fence_ = fence;
  if (fence_) {
    fence_->Enter();
    fence_owed_ = true;
  }
}

void WriterJob::Cancel() { Finish(Status::Os(ECANCELED, "write", done_->path)); }

void WriterJob::NotifyConsumed() {
  if (fence_owed_) {
    fence_owed_ = false;
    fence_->Leave();
  }
  if (!notice_owed_) return;
  notice_owed_ = false;
  queue_->Push(Handover{done_, true});
  // A closing environment refuses the call; what is queued is then AddonState's to dispose of.
  tsfn_.NonBlockingCall(nullptr);
}

void WriterJob::Finish(Status status) {
  NotifyConsumed();
  done_->status = std::move(status);
  Completion* done = done_;
  done_ = nullptr;
  queue_->Push(Handover{done, false});
  tsfn_.NonBlockingCall(nullptr);
  tsfn_.Release();
}

Napi::Value Submit(Napi::Env env, Completion* done, const std::function<WriterJob*(CompletionTsfn)>& make) {
  AddonState* state = State(env);
  CompletionTsfn tsfn = CompletionTsfn::New(env, "ckptio.write", 0, 1, nullptr);
  Napi::Promise promise = done->deferred.Promise();
  WriterJob* made = make(tsfn);
  made->Attach(&state->handovers, done->keep_alive.IsEmpty() ? nullptr : &state->read_fence);
  std::unique_ptr<writer::Job> job(made);
  if (!state->writer.Post(&job)) {
    made->Finish(Status::Make(StatusKind::kBusy,
                              "writer queue is full (" + std::to_string(writer::Writer::kMaxQueued) +
                                  " jobs); await earlier saves first",
                              done->path));
  }
  return promise;
}

Napi::Value DrainBinding(const Napi::CallbackInfo& info) {
  Drain(info.Env());
  return info.Env().Undefined();
}

Napi::Value WaitReadsBinding(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t timeout_ms = 60000;
  if (info[0].IsNumber()) timeout_ms = std::max<int64_t>(0, info[0].As<Napi::Number>().Int64Value());
  return Napi::Boolean::New(env, State(env)->read_fence.WaitIdle(timeout_ms));
}

Napi::Value WriterStateBinding(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState* state = State(env);
  Napi::Object out = Napi::Object::New(env);
  out.Set("queued", static_cast<double>(state->writer.queued()));
  out.Set("unread", state->read_fence.outstanding());
  return out;
}

}  // namespace ckptio::addon
