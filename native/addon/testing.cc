// The testing build's hooks (how tests reach them: testing() in src/binding/native.ts): the fault twin, the raw
// writer the benchmarks compare against, and the writer's counters. Each acts on its own environment's
// AddonState: faults.configure() switches that environment's Env to its twin, nobody else's.
#ifndef CKPTIO_TESTING
#error "addon/testing.cc is built into the testing variants only (cmake -DCKPTIO_TESTING=ON)"
#endif
#include "testing.h"

#include <memory>

#include <cerrno>
#include <string>

#include "../io/fault_env.h"
#include "../writer/raw_write.h"
#include "args.h"
#include "completion.h"
#include "errors.h"
#include "state.h"

namespace ckptio::addon {
namespace {

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
  io::Env* io_env = State(env)->env;
  return Submit(env, done, [&](CompletionTsfn tsfn) {
    return new RawWriteJob(done, tsfn, io_env, static_cast<uint64_t>(bytes), direct);
  });
}

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
  AddonState* state = State(env);
  if (!state->faults) state->faults = std::make_unique<io::FaultEnv>(io::PosixEnv());
  state->faults->Configure(config);
  state->env = state->faults.get();
  return env.Undefined();
}

Napi::Value FaultsStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState* state = State(env);
  const io::FaultStats stats = state->faults ? state->faults->Stats() : io::FaultStats();
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
  AddonState* state = State(info.Env());
  state->env = io::PosixEnv();
  if (state->faults) state->faults->Reset();
  return info.Env().Undefined();
}

Napi::Value WriterStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  AddonState* state = State(env);
  out.Set("queued", static_cast<double>(state->writer.queued()));
  out.Set("copyPoolBytes", static_cast<double>(state->copy_pool.retained_bytes()));
  out.Set("completions", static_cast<double>(state->completions));
  out.Set("completionMsTotal", static_cast<double>(state->completion_ns_total) / 1e6);
  out.Set("completionMsMax", static_cast<double>(state->completion_ns_max) / 1e6);
  if (info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value()) {  // reset the completion counters
    state->completions = state->completion_ns_total = state->completion_ns_max = 0;
  }
  return out;
}

}  // namespace

void AddTestingExports(Napi::Env env, Napi::Object exports) {
  exports.Set("rawWrite", Napi::Function::New(env, RawWrite));
  exports.Set("writerStats", Napi::Function::New(env, WriterStats));
  Napi::Object faults = Napi::Object::New(env);
  faults.Set("configure", Napi::Function::New(env, FaultsConfigure));
  faults.Set("stats", Napi::Function::New(env, FaultsStats));
  faults.Set("disable", Napi::Function::New(env, FaultsDisable));
  exports.Set("faults", faults);
}

}  // namespace ckptio::addon
