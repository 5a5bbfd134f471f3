// The addon's entry point: one AddonState per Node environment and the table of exports. Bindings only: argument
// checks, JS <-> native conversion and promise plumbing live in addon/, the work in io/, format/ and writer/.
// No C++ exception crosses this boundary (node-addon-api is built without them); every failure becomes a
// rejected promise or a thrown CheckpointError (the class is handed in by src/binding/native.ts through init(),
// as better-sqlite3 does).
//
//   args.cc          argument checks            errors.cc   Status -> CheckpointError
//   completion.cc    job -> JS handover, drain    write.cc    write, save, writeFile, remove (the writer jobs)
//   read.cc          read, readHeader           lock.cc     lock, unlock
//   tensor_table.cc  the packed tensor table    testing.cc  test hooks (testing builds only, CKPTIO_TESTING)
#include <napi.h>

#include "../format/checksum.h"
#include "../format/dtype.h"
#include "../writer/commit.h"
#include "args.h"
#include "completion.h"
#include "lock.h"
#include "codec.h"
#include "read.h"
#include "state.h"
#include "write.h"
#ifdef CKPTIO_TESTING
#include "testing.h"
#endif

namespace ckptio::addon {
namespace {

// init(ErrorClass): the class every failure is an instance of.
Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) {
    Napi::TypeError::New(env, "init(ErrorClass) needs a constructor").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  State(env)->error_class = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

// xxh3(bytes) -> 16 hex digits: the digest the headers carry.
Napi::Value Xxh3(const Napi::CallbackInfo& info) {
  const unsigned char* data = nullptr;
  size_t len = 0;
  Status error;
  if (!GetBytes(info[0], "data", &data, &len, &error)) {
    Napi::TypeError::New(info.Env(), error.message).ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  return Napi::String::New(info.Env(), format::Hex(format::Hash64(data, len)));
}

// dtypes: [{name, bytes}] in code order, the table the packed tensor table's dtype codes index (TS derives its
// own from it).
Napi::Array DTypes(Napi::Env env) {
  Napi::Array dtypes = Napi::Array::New(env, format::DTypeCount());
  for (size_t i = 0; i < format::DTypeCount(); ++i) {
    const format::DTypeInfo& info = format::Info(static_cast<format::DType>(i));
    Napi::Object d = Napi::Object::New(env);
    d.Set("name", info.js_name);
    d.Set("bytes", static_cast<double>(info.size));
    dtypes.Set(static_cast<uint32_t>(i), d);
  }
  return dtypes;
}

// readDtypes: every dtype name a read can return, in code order (the codes of read's packed table).
Napi::Array ReadDTypes(Napi::Env env) {
  Napi::Array names = Napi::Array::New(env, format::ReadableDTypeCount());
  for (size_t i = 0; i < format::ReadableDTypeCount(); ++i) {
    names.Set(static_cast<uint32_t>(i), format::Info(static_cast<format::DType>(i)).js_name);
  }
  return names;
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
  exports.Set("read", Napi::Function::New(env, Read));
  exports.Set("encode", Napi::Function::New(env, Encode));
  exports.Set("decode", Napi::Function::New(env, Decode));
  exports.Set("drain", Napi::Function::New(env, DrainBinding));
  exports.Set("waitReads", Napi::Function::New(env, WaitReadsBinding));
  exports.Set("writerState", Napi::Function::New(env, WriterStateBinding));
  exports.Set("dtypes", DTypes(env));
  exports.Set("readDtypes", ReadDTypes(env));
  exports.Set("xxh3", Napi::Function::New(env, Xxh3));
  // The writer's temporary names as a RegExp source (group 1: the pid), for start-up's stale-temporary sweep.
  exports.Set("tempNamePattern", Napi::String::New(env, writer::kTempNameRegex));
#ifdef CKPTIO_TESTING
  AddTestingExports(env, exports);  // the testing build only: the release addon exports none of them
#endif
  return exports;
}

}  // namespace
}  // namespace ckptio::addon

static Napi::Object RegisterModule(Napi::Env env, Napi::Object exports) {
  return ckptio::addon::InitModule(env, exports);
}

NODE_API_MODULE(ckptio, RegisterModule)
