// Bindings only: argument checks, JS <-> native conversion, and promise plumbing. The work is in io/,
// format/ and writer/. No C++ exception crosses this boundary (node-addon-api is built without them);
// every failure becomes a rejected promise carrying a CheckpointError (the class is handed in by
// src/binding/native.ts through init(), as better-sqlite3 does).
#include <napi.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "format/checksum.h"
#include "addon/tensor_table.h"
#include "format/reader.h"
#include "io/fault_env.h"
#include "writer/commit.h"
#include "writer/copy_pool.h"
#include "writer/writer.h"

namespace ckptio {
namespace {

struct AddonState {
  Napi::FunctionReference error_class;
  writer::Writer writer;
  writer::CopyPool copy_pool;
  // Main-thread time spent settling writer jobs (the part of a save's stall the caller cannot time).
  uint64_t completions = 0;
  uint64_t completion_ns_total = 0;
  uint64_t completion_ns_max = 0;
};

AddonState* State(Napi::Env env) { return env.GetInstanceData<AddonState>(); }

const char* KindCode(StatusKind kind) {
  switch (kind) {
    case StatusKind::kFormat: return "ECKPT_FORMAT";
    case StatusKind::kChecksum: return "ECKPT_CHECKSUM";
    case StatusKind::kInvalidArgument: return "ECKPT_ARGS";
    case StatusKind::kBusy: return "ECKPT_BUSY";
    default: return "ECKPT_INTERNAL";
  }
}

std::string ErrnoName(int sys_errno) {
  const char* name = strerrorname_np(sys_errno);
  return name ? name : "E" + std::to_string(sys_errno);
}

Napi::Value MakeError(Napi::Env env, const Status& status) {
  Napi::Object info = Napi::Object::New(env);
  std::string message;
  if (status.kind == StatusKind::kOs) {
    const std::string code = ErrnoName(status.sys_errno);
    message = code + ": " + strerror(status.sys_errno) + ", " + status.syscall;
    if (!status.path.empty()) message += " '" + status.path + "'";
    info.Set("code", code);
    info.Set("errno", status.sys_errno);
    info.Set("syscall", status.syscall);
  } else {
    message = status.message;
    if (!status.path.empty()) message += " ('" + status.path + "')";
    info.Set("code", KindCode(status.kind));
  }
  if (!status.path.empty()) info.Set("path", status.path);
  AddonState* state = State(env);
  if (state && !state->error_class.IsEmpty()) {
    return state->error_class.New({Napi::String::New(env, message), info});
  }
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", info.Get("code"));
  return err.Value();
}

Napi::Value Rejected(Napi::Env env, const Status& status) {
  auto deferred = Napi::Promise::Deferred::New(env);
  deferred.Reject(MakeError(env, status));
  return deferred.Promise();
}

// ---- Completion of writer jobs on the JS thread ---------------------------------------------------------

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
  explicit Completion(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

void FinishOnJsThread(Napi::Env env, Napi::Function, std::nullptr_t*, Completion* done);
using CompletionTsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, Completion, FinishOnJsThread>;

void FinishOnJsThread(Napi::Env env, Napi::Function, std::nullptr_t*, Completion* done) {
  if (done->pool) done->pool->Release(done->copy);
  if (env == nullptr) {
    // The environment is going away: there is no promise to settle and no reference may be touched, so the
    // completion is deliberately leaked (the process or worker is exiting).
    done->keep_alive.SuppressDestruct();
    return;
  }
  const auto started = std::chrono::steady_clock::now();
  Napi::HandleScope scope(env);
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
  if (AddonState* state = State(env)) {
    const uint64_t ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::steady_clock::now() - started).count());
    state->completions++;
    state->completion_ns_total += ns;
    state->completion_ns_max = std::max(state->completion_ns_max, ns);
  }
}

class WriterJob : public writer::Job {
 public:
  WriterJob(Completion* done, CompletionTsfn tsfn) : done_(done), tsfn_(tsfn) {}
  ~WriterJob() override {
    if (done_) Finish(Status::Os(ECANCELED, "write", done_->path));
  }
  void Cancel() override { Finish(Status::Os(ECANCELED, "write", done_->path)); }

  void Finish(Status status) {
    done_->status = std::move(status);
    Completion* done = done_;
    done_ = nullptr;
    if (tsfn_.BlockingCall(done) != napi_ok) {
      // Closing environment: the promise can no longer settle. Drop the JS handles without touching JS.
      done->keep_alive.SuppressDestruct();
    }
    tsfn_.Release();
  }

 protected:
  Completion* done_;
  CompletionTsfn tsfn_;
};

class CheckpointJob final : public WriterJob {
 public:
  CheckpointJob(Completion* done, CompletionTsfn tsfn, io::Env* env, addon::PackedTensors tensors,
                format::Metadata metadata, writer::CommitOptions options)
      : WriterJob(done, tsfn), env_(env), tensors_(std::move(tensors)), metadata_(std::move(metadata)),
        options_(options) {}
  void Run(writer::StagingBlocks* staging) override {
    std::vector<writer::TensorSource> sources;
    Status s = addon::UnpackTensors(tensors_, &sources);
    if (s.ok()) s = writer::CommitCheckpoint(env_, done_->path, std::move(sources), metadata_, options_, staging, &done_->result);
    Finish(std::move(s));
  }

 private:
  io::Env* env_;
  addon::PackedTensors tensors_;
  format::Metadata metadata_;
  writer::CommitOptions options_;
};

struct SmallFile {
  std::string path;
  std::string data;
};

// The JSON value a save's small files may contain where the new checkpoint's content id belongs: the id is
// known only once the writer has hashed the tensors, and the files are rendered when the save is queued. Only
// the whole quoted value is replaced (never text that merely contains the token), by null without checksums.
constexpr char kContentIdToken[] = "\"@ckptio.content_id@\"";

// One save as one job: the data file, then the small files decided when the save was queued (pointers, the
// manifest), then the removals the retention policy decided, then one completion. Nothing waits on the JS
// thread between the stages, and a failure stops the later stages (so nothing a pointer still names goes).
class SaveJob final : public WriterJob {
 public:
  SaveJob(Completion* done, CompletionTsfn tsfn, io::Env* env, addon::PackedTensors tensors,
          format::Metadata metadata, writer::CommitOptions options, std::vector<SmallFile> files, std::string remove_dir,
          std::vector<std::string> remove)
      : WriterJob(done, tsfn), env_(env), tensors_(std::move(tensors)), metadata_(std::move(metadata)), options_(options),
        files_(std::move(files)), remove_dir_(std::move(remove_dir)), remove_(std::move(remove)) {}
  void Run(writer::StagingBlocks* staging) override {
    done_->is_save = true;
    done_->failed_stage = "data";
    std::vector<writer::TensorSource> sources;
    Status s = addon::UnpackTensors(tensors_, &sources);
    if (s.ok()) s = writer::CommitCheckpoint(env_, done_->path, std::move(sources), metadata_, options_, staging, &done_->result);
    if (!s.ok()) return Finish(std::move(s));
    done_->data_durable = true;
    done_->failed_stage = "files";
    for (SmallFile& f : files_) {
      const std::string value = done_->result.content_id.empty() ? "null" : "\"" + done_->result.content_id + "\"";
      for (size_t at = f.data.find(kContentIdToken); at != std::string::npos; at = f.data.find(kContentIdToken, at)) {
        f.data.replace(at, sizeof(kContentIdToken) - 1, value);
        at += value.size();
      }
      writer::CommitResult r;
      s = writer::CommitBytes(env_, f.path, reinterpret_cast<const unsigned char*>(f.data.data()), f.data.size(), &r);
      if (!s.ok()) return Finish(std::move(s));
      if (!r.leftover.empty()) done_->file_leftovers.emplace_back(r.leftover, r.leftover_errno);
    }
    if (!remove_.empty()) {
      done_->failed_stage = "remove";
      s = writer::RemoveFiles(env_, remove_dir_, remove_);
      if (!s.ok()) return Finish(std::move(s));
      done_->removed = remove_;
    }
    done_->failed_stage.clear();
    Finish(Status::Ok());
  }

 private:
  io::Env* env_;
  addon::PackedTensors tensors_;
  format::Metadata metadata_;
  writer::CommitOptions options_;
  std::vector<SmallFile> files_;
  std::string remove_dir_;
  std::vector<std::string> remove_;
};

class BytesJob final : public WriterJob {
 public:
  BytesJob(Completion* done, CompletionTsfn tsfn, io::Env* env, const unsigned char* data, size_t len)
      : WriterJob(done, tsfn), env_(env), data_(data), len_(len) {}
  void Run(writer::StagingBlocks*) override {
    Finish(writer::CommitBytes(env_, done_->path, data_, len_, &done_->result));
  }

 private:
  io::Env* env_;
  const unsigned char* data_;
  size_t len_;
};

class RemoveJob final : public WriterJob {
 public:
  RemoveJob(Completion* done, CompletionTsfn tsfn, io::Env* env, std::vector<std::string> names)
      : WriterJob(done, tsfn), env_(env), names_(std::move(names)) {}
  void Run(writer::StagingBlocks*) override { Finish(writer::RemoveFiles(env_, done_->path, names_)); }

 private:
  io::Env* env_;
  std::vector<std::string> names_;
};

class RawWriteJob final : public WriterJob {
 public:
  RawWriteJob(Completion* done, CompletionTsfn tsfn, io::Env* env, uint64_t bytes, bool direct)
      : WriterJob(done, tsfn), env_(env), bytes_(bytes), direct_(direct) {}
  void Run(writer::StagingBlocks* staging) override {
    done_->result.bytes = bytes_;
    done_->result.direct = direct_;
    Finish(writer::RawWrite(env_, done_->path, bytes_, direct_, staging));
  }

 private:
  io::Env* env_;
  uint64_t bytes_;
  bool direct_;
};

// Queues a job; the returned promise settles from FinishOnJsThread.
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

// ---- Argument checks ------------------------------------------------------------------------------------

bool GetPath(const Napi::Value& v, const char* what, std::string* out, Status* error) {
  if (!v.IsString()) {
    *error = Status::Invalid(std::string(what) + " must be a string");
    return false;
  }
  *out = v.As<Napi::String>().Utf8Value();
  if (out->empty() || out->find('\0') != std::string::npos) {
    *error = Status::Invalid(std::string(what) + " must be a non-empty string without NUL bytes");
    return false;
  }
  return true;
}

bool GetBytes(const Napi::Value& v, const std::string& what, const unsigned char** data, size_t* len, Status* error) {
  if (!v.IsTypedArray() && !v.IsDataView()) {
    *error = Status::Invalid(what + " must be a TypedArray, Buffer or DataView");
    return false;
  }
  // Raw N-API rather than Napi::ArrayBuffer: the backing store may be a SharedArrayBuffer, which
  // Napi::ArrayBuffer's methods reject with a pending exception instead of a status we can report.
  napi_env env = v.Env();
  void* base = nullptr;
  size_t length = 0;
  napi_value buffer = nullptr;
  napi_status st;
  if (v.IsTypedArray()) {
    napi_typedarray_type type;
    size_t elements = 0;
    st = napi_get_typedarray_info(env, v, &type, &elements, &base, &buffer, nullptr);
    length = v.As<Napi::TypedArray>().ByteLength();
  } else {
    st = napi_get_dataview_info(env, v, &length, &base, &buffer, nullptr);
  }
  bool is_array_buffer = false, detached = false;
  if (st == napi_ok) st = napi_is_arraybuffer(env, buffer, &is_array_buffer);
  if (st == napi_ok && is_array_buffer) st = napi_is_detached_arraybuffer(env, buffer, &detached);
  if (st != napi_ok) {
    *error = Status::Invalid(what + ": its memory could not be read");
    return false;
  }
  if (detached) {
    *error = Status::Invalid(what + " is backed by a detached ArrayBuffer");
    return false;
  }
  *data = static_cast<const unsigned char*>(base);  // already at the view's byte offset
  *len = length;
  return true;
}

bool GetMetadata(Napi::Env env, const Napi::Value& v, format::Metadata* out, Status* error) {
  if (v.IsUndefined() || v.IsNull()) return true;
  if (!v.IsObject()) {
    *error = Status::Invalid("metadata must be an object of strings");
    return false;
  }
  Napi::Object obj = v.As<Napi::Object>();
  Napi::Array keys = obj.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    Napi::Value key = keys.Get(i);
    Napi::Value value = obj.Get(key);
    if (env.IsExceptionPending() || !value.IsString()) {
      *error = Status::Invalid("metadata value for \"" + key.ToString().Utf8Value() + "\" must be a string");
      return false;
    }
    out->emplace_back(key.ToString().Utf8Value(), value.As<Napi::String>().Utf8Value());
  }
  return true;
}

// ---- Exported functions ---------------------------------------------------------------------------------

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) {
    Napi::TypeError::New(env, "init(ErrorClass) needs a constructor").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  State(env)->error_class = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

// write(path, tensors, metadata, options) -> Promise<WriteResult>
bool GetSaveFiles(const Napi::Value& v, std::vector<SmallFile>* files, std::string* remove_dir,
                  std::vector<std::string>* remove, Status* error) {
  if (v.IsUndefined()) return true;
  if (!v.IsObject()) {
    *error = Status::Invalid("after must be { files: [[path, bytes]...], removeDir, remove: [names] }");
    return false;
  }
  Napi::Object o = v.As<Napi::Object>();
  Napi::Value fv = o.Get("files"), rv = o.Get("remove"), dv = o.Get("removeDir");
  if (!fv.IsUndefined()) {
    if (!fv.IsArray()) {
      *error = Status::Invalid("after.files must be an array of [path, bytes]");
      return false;
    }
    Napi::Array arr = fv.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      Napi::Value pair = arr.Get(i);
      if (!pair.IsArray() || pair.As<Napi::Array>().Length() != 2) {
        *error = Status::Invalid("after.files[" + std::to_string(i) + "] must be [path, bytes]");
        return false;
      }
      SmallFile f;
      const unsigned char* data = nullptr;
      size_t len = 0;
      if (!GetPath(pair.As<Napi::Array>().Get(0u), "after.files path", &f.path, error) ||
          !GetBytes(pair.As<Napi::Array>().Get(1u), "after.files bytes", &data, &len, error)) {
        return false;
      }
      f.data.assign(reinterpret_cast<const char*>(data), len);  // small: copied, so the caller's buffer is free
      files->push_back(std::move(f));
    }
  }
  if (!rv.IsUndefined()) {
    if (!rv.IsArray() || !GetPath(dv, "after.removeDir", remove_dir, error)) {
      if (error->ok()) *error = Status::Invalid("after.remove must be an array of names");
      return false;
    }
    Napi::Array arr = rv.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      Napi::Value name = arr.Get(i);
      if (!name.IsString()) {
        *error = Status::Invalid("after.remove must be an array of names");
        return false;
      }
      const std::string n = name.As<Napi::String>().Utf8Value();
      if (n.empty() || n.find('/') != std::string::npos || n == "." || n == ".." || n.find('\0') != std::string::npos) {
        *error = Status::Invalid("after.remove: \"" + n + "\" is not a plain file name");
        return false;
      }
      remove->push_back(n);
    }
  }
  return true;
}

// write(path, tensors, metadata, options) and save(path, tensors, metadata, options, after): `save` is the
// same data file plus, in the same writer job, the small files and removals in `after`.
Napi::Value WriteOrSave(const Napi::CallbackInfo& info, bool is_save) {
  Napi::Env env = info.Env();
  Status error;
  std::string path;
  addon::PackedTensors tensors;
  format::Metadata metadata;
  if (!GetPath(info[0], "path", &path, &error) || !addon::GetTensors(env, info[1], &tensors, &error) ||
      !GetMetadata(env, info[2], &metadata, &error)) {
    if (env.IsExceptionPending()) env.GetAndClearPendingException();
    return Rejected(env, error);
  }
  writer::CommitOptions options;
  bool copy = false;
  if (info[3].IsObject()) {
    Napi::Object o = info[3].As<Napi::Object>();
    Napi::Value direct = o.Get("direct");
    if (direct.IsString()) {
      const std::string d = direct.As<Napi::String>().Utf8Value();
      if (d == "on") options.direct = writer::DirectIo::kOn;
      else if (d == "off") options.direct = writer::DirectIo::kOff;
      else if (d == "auto") options.direct = writer::DirectIo::kAuto;
      else return Rejected(env, Status::Invalid("options.direct must be 'auto', 'on' or 'off'"));
    }
    Napi::Value prealloc = o.Get("preallocate");
    if (prealloc.IsBoolean()) options.preallocate = prealloc.As<Napi::Boolean>().Value();
    Napi::Value wb = o.Get("writeBehindBytes");
    if (wb.IsNumber()) {
      const double x = wb.As<Napi::Number>().DoubleValue();
      if (!(x >= 0)) return Rejected(env, Status::Invalid("options.writeBehindBytes must be >= 0"));
      options.write_behind_bytes = static_cast<uint64_t>(x);
    }
    Napi::Value c = o.Get("copy");
    if (c.IsBoolean()) copy = c.As<Napi::Boolean>().Value();
    Napi::Value checksum = o.Get("checksum");
    if (!checksum.IsUndefined() && !checksum.IsBoolean()) return Rejected(env, Status::Invalid("options.checksum must be a boolean"));
    if (checksum.IsBoolean()) options.checksum = checksum.As<Napi::Boolean>().Value();
  }

  std::vector<SmallFile> files;
  std::string remove_dir;
  std::vector<std::string> remove;
  if (is_save && !GetSaveFiles(info[4], &files, &remove_dir, &remove, &error)) {
    if (env.IsExceptionPending()) env.GetAndClearPendingException();
    return Rejected(env, error);
  }

  AddonState* state = State(env);
  auto* done = new Completion(env);
  done->path = path;
  if (copy) {
    size_t total = 0;
    for (size_t s : tensors.sizes) total += s;
    int err = 0;
    done->copy = state->copy_pool.Acquire(total, &err);
    if (!done->copy.data) {
      delete done;
      return Rejected(env, Status::Os(err, "mmap", path));
    }
    done->pool = &state->copy_pool;
    size_t at = 0;
    for (size_t i = 0; i < tensors.data.size(); ++i) {
      if (tensors.sizes[i]) std::memcpy(done->copy.data + at, tensors.data[i], tensors.sizes[i]);
      tensors.data[i] = done->copy.data + at;
      at += tensors.sizes[i];
    }
  } else {
    done->keep_alive = Napi::Persistent(info[1].As<Napi::Object>());
  }
  io::Env* io_env = io::CurrentEnv();
  return Submit(env, done, [&](CompletionTsfn tsfn) -> WriterJob* {
    if (is_save) {
      return new SaveJob(done, tsfn, io_env, std::move(tensors), std::move(metadata), options, std::move(files),
                         std::move(remove_dir), std::move(remove));
    }
    return new CheckpointJob(done, tsfn, io_env, std::move(tensors), std::move(metadata), options);
  });
}

Napi::Value Write(const Napi::CallbackInfo& info) { return WriteOrSave(info, false); }
Napi::Value Save(const Napi::CallbackInfo& info) { return WriteOrSave(info, true); }

// writeFile(path, bytes) -> Promise: the same commit protocol for a small file (pointers, manifests).
Napi::Value WriteFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Status error;
  std::string path;
  const unsigned char* data = nullptr;
  size_t len = 0;
  if (!GetPath(info[0], "path", &path, &error) || !GetBytes(info[1], "data", &data, &len, &error)) {
    return Rejected(env, error);
  }
  auto* done = new Completion(env);
  done->path = path;
  done->keep_alive = Napi::Persistent(info[1].As<Napi::Object>());
  io::Env* io_env = io::CurrentEnv();
  return Submit(env, done, [&](CompletionTsfn tsfn) { return new BytesJob(done, tsfn, io_env, data, len); });
}

// remove(dir, names) -> Promise: unlink names, then fsync(dir); ordered after every job queued before it.
Napi::Value Remove(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Status error;
  std::string dir;
  if (!GetPath(info[0], "dir", &dir, &error)) return Rejected(env, error);
  if (!info[1].IsArray()) return Rejected(env, Status::Invalid("names must be an array of strings"));
  std::vector<std::string> names;
  Napi::Array arr = info[1].As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value v = arr.Get(i);
    if (!v.IsString()) return Rejected(env, Status::Invalid("names must be an array of strings"));
    names.push_back(v.As<Napi::String>().Utf8Value());
  }
  auto* done = new Completion(env);
  done->path = dir;
  io::Env* io_env = io::CurrentEnv();
  return Submit(env, done, [&](CompletionTsfn tsfn) { return new RemoveJob(done, tsfn, io_env, std::move(names)); });
}

// rawWrite(path, bytes, direct) -> Promise: the disk's own limit, for benchmarks.
Napi::Value RawWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Status error;
  std::string path;
  if (!GetPath(info[0], "path", &path, &error)) return Rejected(env, error);
  if (!info[1].IsNumber()) return Rejected(env, Status::Invalid("bytes must be a number"));
  const double bytes = info[1].As<Napi::Number>().DoubleValue();
  if (!(bytes >= 0)) return Rejected(env, Status::Invalid("bytes must be >= 0"));
  const bool direct = info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
  auto* done = new Completion(env);
  done->path = path;
  io::Env* io_env = io::CurrentEnv();
  return Submit(env, done, [&](CompletionTsfn tsfn) {
    return new RawWriteJob(done, tsfn, io_env, static_cast<uint64_t>(bytes), direct);
  });
}

// ---- Reading: one AsyncWorker per read on the libuv pool, as sharp does ----------------------------------

struct MappingHint {
  io::Env* env;
  size_t len;
};

// obj[key] = value as an own data property. The key is passed with its length, so a NUL in it is kept
// (Object::Set(std::string, ...) passes c_str() and cuts the key there, merging keys that differ after it),
// and the property is defined, not assigned, so a key "__proto__" stays a key.
void DefineString(Napi::Env env, Napi::Object obj, const std::string& key, const std::string& value) {
  obj.DefineProperty(Napi::PropertyDescriptor::Value(Napi::String::New(env, key), Napi::String::New(env, value),
                                                     napi_default_jsproperty));
}

class ReadWorker final : public Napi::AsyncWorker {
 public:
  ReadWorker(Napi::Env env, std::string path, bool verify)
      : Napi::AsyncWorker(env, "ckptio.read"), deferred_(Napi::Promise::Deferred::New(env)), path_(std::move(path)),
        verify_(verify), io_env_(io::CurrentEnv()) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override { status_ = format::ReadCheckpointFile(io_env_, path_, verify_, &file_); }
  void OnOK() override {
    Napi::Env env = Env();
    if (!status_.ok()) {
      deferred_.Reject(MakeError(env, status_));
      return;
    }
    const size_t len = file_.mapping.size();
    void* base = file_.mapping.Release();
    // Every returned view shares this one buffer; the mapping is unmapped when the last view is collected.
    Napi::ArrayBuffer whole = Napi::ArrayBuffer::New(
        env, base, len, [](Napi::Env, void* data, MappingHint* hint) {
          hint->env->Munmap(data, hint->len);
          delete hint;
        },
        new MappingHint{io_env_, len});
    Napi::Array tensors = Napi::Array::New(env, file_.header.tensors.size());
    uint32_t i = 0;
    for (const format::TensorInfo& t : file_.header.tensors) {
      const format::DTypeInfo& dt = format::Info(t.dtype);
      const uint64_t offset = file_.header.data_start + t.begin;
      const size_t count = static_cast<size_t>((t.end - t.begin) / dt.size);
      Napi::ArrayBuffer ab = whole;
      size_t at = static_cast<size_t>(offset);
      if (offset % dt.size != 0) {
        // A foreign file with a misaligned tensor: typed arrays need alignment, so this one is copied.
        ab = Napi::ArrayBuffer::New(env, t.end - t.begin);
        std::memcpy(ab.Data(), static_cast<unsigned char*>(base) + offset, t.end - t.begin);
        at = 0;
      }
      napi_typedarray_type type;
      switch (t.dtype) {
        case format::DType::kF64: type = napi_float64_array; break;
        case format::DType::kF32: type = napi_float32_array; break;
        case format::DType::kI64: type = napi_bigint64_array; break;
        case format::DType::kU64: type = napi_biguint64_array; break;
        case format::DType::kI32: type = napi_int32_array; break;
        case format::DType::kU32: type = napi_uint32_array; break;
        case format::DType::kI16: type = napi_int16_array; break;
        case format::DType::kF16: case format::DType::kBF16: case format::DType::kU16: type = napi_uint16_array; break;
        case format::DType::kI8: type = napi_int8_array; break;
        default: type = napi_uint8_array; break;
      }
      napi_value typed;
      napi_create_typedarray(env, type, count, ab, at, &typed);
      Napi::Object entry = Napi::Object::New(env);
      entry.Set("name", t.name);
      entry.Set("dtype", dt.js_name);
      Napi::Array shape = Napi::Array::New(env, t.shape.size());
      for (uint32_t d = 0; d < t.shape.size(); ++d) shape.Set(d, static_cast<double>(t.shape[d]));
      entry.Set("shape", shape);
      entry.Set("data", Napi::Value(env, typed));
      tensors.Set(i++, entry);
    }
    Napi::Object metadata = Napi::Object::New(env);
    for (const auto& [key, value] : file_.header.metadata) {
      if (key.rfind("ckptio.", 0) == 0 && (key == format::kFormatKey || key == format::kChecksumKey ||
                                           key == format::kTensorHashesKey || key == format::kHeaderHashKey)) {
        continue;
      }
      DefineString(env, metadata, key, value);
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("tensors", tensors);
    out.Set("metadata", metadata);
    out.Set("bytes", static_cast<double>(file_.file_size));
    out.Set("verified", file_.verified);
    out.Set("checksummed", file_.header.has_checksums);
    deferred_.Resolve(out);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::string path_;
  bool verify_;
  io::Env* io_env_;
  Status status_;
  format::LoadedFile file_;
};

// read(path, {verify}) -> Promise<{tensors, metadata, bytes, verified, checksummed}>
Napi::Value Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Status error;
  std::string path;
  if (!GetPath(info[0], "path", &path, &error)) return Rejected(env, error);
  bool verify = true;
  if (info[1].IsObject()) {
    Napi::Value v = info[1].As<Napi::Object>().Get("verify");
    if (v.IsBoolean()) verify = v.As<Napi::Boolean>().Value();
  }
  auto* worker = new ReadWorker(env, path, verify);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// ---- Header-only read and the run lock --------------------------------------------------------------------

// readHeader(path) -> Promise<{tensors: [{name, dtype, shape, bytes}], metadata, bytes, checksummed, contentId?}>:
// the header alone, with pread, so no tensor data is read (a manifest rebuilt by scanning costs the headers,
// not the checkpoints' size).
class ReadHeaderWorker final : public Napi::AsyncWorker {
 public:
  ReadHeaderWorker(Napi::Env env, std::string path)
      : Napi::AsyncWorker(env, "ckptio.readHeader"), deferred_(Napi::Promise::Deferred::New(env)), path_(std::move(path)),
        io_env_(io::CurrentEnv()) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    status_ = format::ReadCheckpointHeader(io_env_, path_, &header_, &file_size_);
    if (!status_.ok()) return;
    if (header_.has_checksums) content_id_ = writer::ContentId(header_.tensors, header_.tensor_hashes);
  }
  void OnOK() override {
    Napi::Env env = Env();
    if (!status_.ok()) {
      deferred_.Reject(MakeError(env, status_));
      return;
    }
    Napi::Array tensors = Napi::Array::New(env, header_.tensors.size());
    uint32_t i = 0;
    for (const format::TensorInfo& t : header_.tensors) {
      Napi::Object entry = Napi::Object::New(env);
      entry.Set("name", t.name);
      entry.Set("dtype", format::Info(t.dtype).js_name);
      Napi::Array shape = Napi::Array::New(env, t.shape.size());
      for (uint32_t d = 0; d < t.shape.size(); ++d) shape.Set(d, static_cast<double>(t.shape[d]));
      entry.Set("shape", shape);
      entry.Set("bytes", static_cast<double>(t.end - t.begin));
      tensors.Set(i++, entry);
    }
    Napi::Object metadata = Napi::Object::New(env);
    for (const auto& [key, value] : header_.metadata) DefineString(env, metadata, key, value);
    Napi::Object out = Napi::Object::New(env);
    out.Set("tensors", tensors);
    out.Set("metadata", metadata);
    out.Set("bytes", static_cast<double>(file_size_));
    out.Set("checksummed", header_.has_checksums);
    if (!content_id_.empty()) out.Set("contentId", content_id_);
    deferred_.Resolve(out);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::string path_;
  io::Env* io_env_;
  Status status_;
  uint64_t file_size_ = 0;
  format::ParsedHeader header_;
  std::string content_id_;
};

Napi::Value ReadHeader(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Status error;
  std::string path;
  if (!GetPath(info[0], "path", &path, &error)) return Rejected(env, error);
  auto* worker = new ReadHeaderWorker(env, path);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value Thrown(Napi::Env env, const Status& status) {
  napi_throw(env, MakeError(env, status));
  return env.Undefined();
}

// lock(path, holder) -> { fd } | { locked: true, holder }: an open-file-description lock (F_OFD_SETLK) on
// `path`, which the kernel drops when the process dies, however it dies: a killed holder never blocks the next
// run, and a live one is never taken over (unlike a pid file). `holder` (who holds it) is written into the
// file for the error the next contender reports. Synchronous: one open and one fcntl.
Napi::Value Lock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Status error;
  std::string path, holder;
  if (!GetPath(info[0], "path", &path, &error)) return Thrown(env, error);
  if (!info[1].IsString()) return Thrown(env, Status::Invalid("holder must be a string"));
  holder = info[1].As<Napi::String>().Utf8Value();
  // O_NOFOLLOW and a regular-file check: a lock "file" that is a symlink (an unpacked archive) is never followed
  // and truncated.
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
  if (fd < 0) return Thrown(env, Status::Os(errno, "open", path));
  struct stat st;
  if (::fstat(fd, &st) < 0) {
    const int err = errno;
    ::close(fd);
    return Thrown(env, Status::Os(err, "fstat", path));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Thrown(env, Status::Format("the lock file is not a regular file", path));
  }
  struct flock fl;
  std::memset(&fl, 0, sizeof fl);
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  if (::fcntl(fd, F_OFD_SETLK, &fl) < 0) {
    const int err = errno;
    if (err == EAGAIN || err == EACCES) {
      char buf[4096];
      const ssize_t n = ::pread(fd, buf, sizeof buf, 0);
      ::close(fd);
      Napi::Object out = Napi::Object::New(env);
      out.Set("locked", true);
      out.Set("holder", std::string(buf, n > 0 ? static_cast<size_t>(n) : 0));
      return out;
    }
    ::close(fd);
    return Thrown(env, Status::Os(err, "fcntl", path));
  }
  if (::ftruncate(fd, 0) < 0) {
    const int err = errno;
    ::close(fd);
    return Thrown(env, Status::Os(err, "ftruncate", path));
  }
  for (size_t done = 0; done < holder.size();) {
    const ssize_t n = ::pwrite(fd, holder.data() + done, holder.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      ::close(fd);
      return Thrown(env, Status::Os(err, "pwrite", path));
    }
    done += static_cast<size_t>(n);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", fd);
  return out;
}

// unlock(fd): closing the descriptor releases the lock.
Napi::Value Unlock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) return Thrown(env, Status::Invalid("fd must be a number"));
  if (::close(info[0].As<Napi::Number>().Int32Value()) < 0) return Thrown(env, Status::Os(errno, "close", ""));
  return env.Undefined();
}

// ---- The fault twin (tests only) ------------------------------------------------------------------------

Napi::Value FaultsConfigure(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  io::FaultConfig config;
  if (!info[0].IsObject()) {
    Napi::TypeError::New(env, "faults.configure(config) needs an object").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object o = info[0].As<Napi::Object>();
  Napi::Value failures = o.Get("failures");
  if (failures.IsArray()) {
    Napi::Array arr = failures.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      Napi::Object f = arr.Get(i).As<Napi::Object>();
      io::FailRule rule;
      if (!f.Get("op").IsString() || !io::ParseOp(f.Get("op").As<Napi::String>().Utf8Value(), &rule.op)) {
        Napi::TypeError::New(env, "unknown fault op").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      rule.nth = f.Get("nth").IsNumber() ? f.Get("nth").As<Napi::Number>().Int64Value() : 1;
      rule.err = f.Get("errno").IsNumber() ? f.Get("errno").As<Napi::Number>().Int32Value() : EIO;
      config.failures.push_back(rule);
    }
  }
  if (o.Get("crashAfter").IsNumber()) config.crash_after = o.Get("crashAfter").As<Napi::Number>().Int64Value();
  if (o.Get("torn").IsBoolean()) config.torn = o.Get("torn").As<Napi::Boolean>().Value();
  Napi::Value delays = o.Get("delayMs");
  if (delays.IsObject()) {
    Napi::Object d = delays.As<Napi::Object>();
    Napi::Array keys = d.GetPropertyNames();
    for (uint32_t i = 0; i < keys.Length(); ++i) {
      io::Op op;
      const std::string name = keys.Get(i).ToString().Utf8Value();
      if (!io::ParseOp(name, &op)) {
        Napi::TypeError::New(env, "unknown fault op " + name).ThrowAsJavaScriptException();
        return env.Undefined();
      }
      config.delay_ms[static_cast<size_t>(op)] = d.Get(keys.Get(i)).As<Napi::Number>().Uint32Value();
    }
  }
  io::TheFaultEnv()->Configure(config);
  io::SetCurrentEnv(io::TheFaultEnv());
  return env.Undefined();
}

Napi::Value FaultsStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  io::FaultStats stats = io::TheFaultEnv()->Stats();
  Napi::Object out = Napi::Object::New(env);
  out.Set("total", static_cast<double>(stats.total));
  out.Set("crashed", stats.crashed);
  out.Set("injected", static_cast<double>(stats.injected));
  Napi::Object by_op = Napi::Object::New(env);
  for (size_t i = 0; i < io::kOpCount; ++i) {
    if (stats.by_op[i]) by_op.Set(io::OpName(static_cast<io::Op>(i)), static_cast<double>(stats.by_op[i]));
  }
  out.Set("byOp", by_op);
  return out;
}

Napi::Value FaultsDisable(const Napi::CallbackInfo& info) {
  io::SetCurrentEnv(nullptr);
  io::TheFaultEnv()->Reset();
  return info.Env().Undefined();
}

Napi::Value WriterStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("queued", static_cast<double>(State(env)->writer.queued()));
  out.Set("copyPoolBytes", static_cast<double>(State(env)->copy_pool.retained_bytes()));
  AddonState* state = State(env);
  out.Set("completions", static_cast<double>(state->completions));
  out.Set("completionMsTotal", static_cast<double>(state->completion_ns_total) / 1e6);
  out.Set("completionMsMax", static_cast<double>(state->completion_ns_max) / 1e6);
  if (info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value()) {  // reset the completion counters
    state->completions = state->completion_ns_total = state->completion_ns_max = 0;
  }
  return out;
}

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData<AddonState>(new AddonState());
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("write", Napi::Function::New(env, Write));
  exports.Set("save", Napi::Function::New(env, Save));
  exports.Set("readHeader", Napi::Function::New(env, ReadHeader));
  exports.Set("lock", Napi::Function::New(env, Lock));
  exports.Set("unlock", Napi::Function::New(env, Unlock));
  exports.Set("writeFile", Napi::Function::New(env, WriteFile));
  exports.Set("remove", Napi::Function::New(env, Remove));
  exports.Set("rawWrite", Napi::Function::New(env, RawWrite));
  exports.Set("read", Napi::Function::New(env, Read));
  exports.Set("writerStats", Napi::Function::New(env, WriterStats));
  Napi::Object faults = Napi::Object::New(env);
  faults.Set("configure", Napi::Function::New(env, FaultsConfigure));
  faults.Set("stats", Napi::Function::New(env, FaultsStats));
  faults.Set("disable", Napi::Function::New(env, FaultsDisable));
  exports.Set("faults", faults);
  Napi::Array dtypes = Napi::Array::New(env, format::DTypeCount());
  for (size_t i = 0; i < format::DTypeCount(); ++i) {
    const format::DTypeInfo& info = format::Info(static_cast<format::DType>(i));
    Napi::Object d = Napi::Object::New(env);
    d.Set("name", info.js_name);
    d.Set("bytes", static_cast<double>(info.size));
    dtypes.Set(static_cast<uint32_t>(i), d);
  }
  exports.Set("dtypes", dtypes);
  exports.Set("xxh3", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    const unsigned char* data = nullptr;
    size_t len = 0;
    Status error;
    if (!GetBytes(info[0], "data", &data, &len, &error)) {
      Napi::TypeError::New(info.Env(), error.message).ThrowAsJavaScriptException();
      return info.Env().Undefined();
    }
    return Napi::String::New(info.Env(), format::Hex(format::Hash64(data, len)));
  }));
  return exports;
}

}  // namespace
}  // namespace ckptio

static Napi::Object RegisterModule(Napi::Env env, Napi::Object exports) { return ckptio::InitModule(env, exports); }

NODE_API_MODULE(ckptio, RegisterModule)
