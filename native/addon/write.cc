// The writer jobs behind write, save, writeFile and remove. They run on the environment's writer thread, one at a
// time in submission order, and must not touch JavaScript: each reports through its Completion.
#include "write.h"

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "args.h"
#include "completion.h"
#include "errors.h"
#include "state.h"
#include "tensor_table.h"

namespace ckptio::addon {
namespace {

class CheckpointJob final : public WriterJob {
 public:
  CheckpointJob(Completion* done, CompletionTsfn tsfn, io::Env* env, PackedTensors tensors, format::Metadata metadata,
                writer::CommitOptions options)
      : WriterJob(done, tsfn), env_(env), tensors_(std::move(tensors)), metadata_(std::move(metadata)),
        options_(options) {}
  void Run(writer::StagingBlocks* staging) override {
    std::vector<writer::TensorSource> sources;
    Status s = UnpackTensors(tensors_, &sources);
    if (s.ok()) s = writer::CommitCheckpoint(env_, done_->path, std::move(sources), metadata_, options_, staging, &done_->result);
    Finish(std::move(s));
  }

 private:
  io::Env* env_;
  PackedTensors tensors_;
  format::Metadata metadata_;
  writer::CommitOptions options_;
};

// The JSON value a save's small files may contain where the new checkpoint's content id belongs: the id is
// known only once the writer has hashed the tensors, and the files are rendered when the save is queued. Only
// the whole quoted value is replaced (never text that merely contains the token), by null without checksums.
constexpr char kContentIdToken[] = "\"@ckptio.content_id@\"";

// One save as one job: the data file, then the small files decided when the save was queued (pointers, the
// manifest; committed together, one directory fsync for all), then the removals the retention policy decided,
// then one completion. Nothing waits on the JS thread between the stages, and a failure stops the later stages
// (so nothing a pointer still names goes).
class SaveJob final : public WriterJob {
 public:
  SaveJob(Completion* done, CompletionTsfn tsfn, io::Env* env, PackedTensors tensors, format::Metadata metadata,
          writer::CommitOptions options, SaveAfter after, SaveLane* lane)
      : WriterJob(done, tsfn), env_(env), tensors_(std::move(tensors)), metadata_(std::move(metadata)), options_(options),
        files_(std::move(after.files)), remove_dir_(std::move(after.remove_dir)), remove_(std::move(after.remove)),
        lane_(lane), planned_generation_(after.generation) {}
  void Run(writer::StagingBlocks* staging) override {
    done_->is_save = true;
    if (lane_ != nullptr && lane_->generation != planned_generation_) {
      // Planned before JavaScript learned of an earlier failure in this lane: its pointers, manifest and removals
      // assumed that save committed, so none of it may happen.
      done_->generation = lane_->generation;
      done_->failed_stage = "planned";
      return Finish(Status::Make(StatusKind::kAborted,
                                 "aborted before writing: it was planned while an earlier save of this run was "
                                 "committing, and that save failed (" + lane_->failure + ")",
                                 done_->path));
    }
    Status s = Commit(staging);
    if (lane_ != nullptr) {
      if (!s.ok()) {
        lane_->generation++;
        lane_->failure = "step file " + done_->path + ", stage " + done_->failed_stage + ": " + Describe(s);
      }
      done_->generation = lane_->generation;
    }
    if (s.ok()) done_->failed_stage.clear();
    Finish(std::move(s));
  }

 private:
  static std::string Describe(const Status& s) {
    if (s.kind == StatusKind::kOs) return ErrnoName(s.sys_errno) + " on " + s.syscall;
    return s.message;
  }

  Status Commit(writer::StagingBlocks* staging) {
    done_->failed_stage = "data";
    std::vector<writer::TensorSource> sources;
    Status s = UnpackTensors(tensors_, &sources);
    if (s.ok()) {
      s = writer::CommitCheckpoint(env_, done_->path, std::move(sources), metadata_, options_, staging, &done_->result,
                                   [this] { NotifyConsumed(); });
    }
    if (!s.ok()) return s;
    done_->data_durable = true;
    done_->failed_stage = "files";
    std::vector<writer::BytesFile> files;
    for (SmallFile& f : files_) {
      const std::string value = done_->result.content_id.empty() ? "null" : "\"" + done_->result.content_id + "\"";
      for (size_t at = f.data.find(kContentIdToken); at != std::string::npos; at = f.data.find(kContentIdToken, at)) {
        f.data.replace(at, sizeof(kContentIdToken) - 1, value);
        at += value.size();
      }
      files.push_back(writer::BytesFile{f.path, reinterpret_cast<const unsigned char*>(f.data.data()), f.data.size()});
    }
    std::vector<writer::CommitResult> results;
    s = writer::CommitFiles(env_, files, &results);
    for (const writer::CommitResult& r : results) {
      if (!r.leftover.empty()) done_->file_leftovers.emplace_back(r.leftover, r.leftover_errno);
    }
    if (!s.ok()) return s;
    if (!remove_.empty()) {
      done_->failed_stage = "remove";
      s = writer::RemoveFiles(env_, remove_dir_, remove_);
      if (!s.ok()) return s;
      done_->removed = remove_;
    }
    return Status::Ok();
  }

  io::Env* env_;
  PackedTensors tensors_;
  format::Metadata metadata_;
  writer::CommitOptions options_;
  std::vector<SmallFile> files_;
  std::string remove_dir_;
  std::vector<std::string> remove_;
  SaveLane* lane_;  // AddonState's, writer thread only; null without a lane
  uint64_t planned_generation_;
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

Napi::Value WriteOrSave(const Napi::CallbackInfo& info, bool is_save) {
  Napi::Env env = info.Env();
  Status error;
  std::string path;
  PackedTensors tensors;
  format::Metadata metadata;
  if (!GetPath(info[0], "path", &path, &error) || !GetTensors(env, info[1], &tensors, &error) ||
      !GetMetadata(env, info[2], &metadata, &error)) {
    if (env.IsExceptionPending()) env.GetAndClearPendingException();
    return Rejected(env, error);
  }
  writer::CommitOptions options;
  bool copy = false;
  if (!GetWriteOptions(info[3], &options, &copy, &error)) return Rejected(env, error);

  SaveAfter after;
  if (is_save && !GetSaveAfter(info[4], &after, &error)) {
    if (env.IsExceptionPending()) env.GetAndClearPendingException();
    return Rejected(env, error);
  }

  AddonState* state = State(env);
  auto* done = new Completion(env);
  done->path = path;
  done->lane = after.lane;
  if (!after.on_consumed.IsEmpty()) done->on_consumed = Napi::Persistent(after.on_consumed);
  if (!after.on_settled.IsEmpty()) done->on_settled = Napi::Persistent(after.on_settled);
  // The lane's entry is made here, on the JS thread, while no job of a new lane can be running (a lane's first
  // save is its own first job); from then on only the writer thread reads and writes it.
  SaveLane* lane = nullptr;
  if (after.lane != 0) {
    auto found = state->lanes.find(after.lane);
    if (found == state->lanes.end()) found = state->lanes.emplace(after.lane, SaveLane{}).first;
    lane = &found->second;
  }
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
  io::Env* io_env = State(env)->env;
  return Submit(env, done, [&](CompletionTsfn tsfn) -> WriterJob* {
    if (is_save) {
      return new SaveJob(done, tsfn, io_env, std::move(tensors), std::move(metadata), options, std::move(after), lane);
    }
    return new CheckpointJob(done, tsfn, io_env, std::move(tensors), std::move(metadata), options);
  });
}

}  // namespace

Napi::Value Write(const Napi::CallbackInfo& info) { return WriteOrSave(info, false); }
Napi::Value Save(const Napi::CallbackInfo& info) { return WriteOrSave(info, true); }

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
  io::Env* io_env = State(env)->env;
  return Submit(env, done, [&](CompletionTsfn tsfn) { return new BytesJob(done, tsfn, io_env, data, len); });
}

Napi::Value Remove(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Status error;
  std::string dir;
  std::vector<std::string> names;
  if (!GetPath(info[0], "dir", &dir, &error) || !GetNames(info[1], "names", &names, &error)) return Rejected(env, error);
  auto* done = new Completion(env);
  done->path = dir;
  io::Env* io_env = State(env)->env;
  return Submit(env, done, [&](CompletionTsfn tsfn) { return new RemoveJob(done, tsfn, io_env, std::move(names)); });
}

}  // namespace ckptio::addon
