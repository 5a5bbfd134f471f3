#include "read.h"

#include <cstring>
#include <string>
#include <utility>

#include "../format/reader.h"
#include "../writer/file_image.h"
#include "args.h"
#include "errors.h"
#include "state.h"

namespace ckptio::addon {
// obj[key] = value as an own data property. The key is passed with its length, so a NUL in it is kept
// (Object::Set(std::string, ...) passes c_str() and cuts the key there, merging keys that differ after it),
// and the property is defined, not assigned, so a key "__proto__" stays a key.
void DefineString(Napi::Env env, Napi::Object obj, const std::string& key, const std::string& value) {
  obj.DefineProperty(Napi::PropertyDescriptor::Value(Napi::String::New(env, key), Napi::String::New(env, value),
                                                     napi_default_jsproperty));
}

// UTF-16 code units of a valid UTF-8 string (the reader rejects invalid UTF-8): JavaScript slices the joined
// names by these.
static uint32_t Utf16Length(const std::string& s) {
  uint32_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) n += c >= 0xF0 ? 2 : 1;  // a lead byte; a 4-byte sequence is a surrogate pair
  }
  return n;
}

template <typename T>
static Napi::Value Column(Napi::Env env, const std::vector<T>& values, napi_typedarray_type type) {
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(buffer.Data(), values.data(), values.size() * sizeof(T));
  napi_value out;
  napi_create_typedarray(env, type, values.size(), buffer, 0, &out);
  return Napi::Value(env, out);
}

// The tensors of a read as one packed table (src/format/file.ts turns it into views over `buffer`): a fixed
// number of N-API calls whatever the tensor count, where an object per tensor cost the JS thread a few µs each.
//   { names (joined), nameLengths: Uint32Array (UTF-16 units), dtypes: Uint8Array (codes of `readDtypes`),
//     ranks: Uint32Array, dims: Float64Array, offsets: Float64Array (into buffer), lengths: Float64Array, buffer }
Napi::Object PackedTable(Napi::Env env, const std::vector<format::TensorInfo>& infos, uint64_t data_start,
                         Napi::ArrayBuffer buffer) {
  std::string names;
  std::vector<uint32_t> name_lengths, ranks;
  std::vector<uint8_t> dtypes;
  std::vector<double> dims, offsets, lengths;
  name_lengths.reserve(infos.size());
  for (const format::TensorInfo& t : infos) {
    names += t.name;
    name_lengths.push_back(Utf16Length(t.name));
    dtypes.push_back(static_cast<uint8_t>(t.dtype));
    ranks.push_back(static_cast<uint32_t>(t.shape.size()));
    for (uint64_t d : t.shape) dims.push_back(static_cast<double>(d));
    offsets.push_back(static_cast<double>(data_start + t.begin));
    lengths.push_back(static_cast<double>(t.end - t.begin));
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("names", Napi::String::New(env, names));
  out.Set("nameLengths", Column(env, name_lengths, napi_uint32_array));
  out.Set("dtypes", Column(env, dtypes, napi_uint8_array));
  out.Set("ranks", Column(env, ranks, napi_uint32_array));
  out.Set("dims", Column(env, dims, napi_float64_array));
  out.Set("offsets", Column(env, offsets, napi_float64_array));
  out.Set("lengths", Column(env, lengths, napi_float64_array));
  out.Set("buffer", buffer);
  return out;
}

namespace {

struct MappingHint {
  io::Env* env;
  size_t len;
};

class ReadWorker final : public Napi::AsyncWorker {
 public:
  ReadWorker(Napi::Env env, std::string path, bool verify)
      : Napi::AsyncWorker(env, "ckptio.read"), deferred_(Napi::Promise::Deferred::New(env)), path_(std::move(path)),
        verify_(verify), io_env_(State(env)->env) {}
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
    Napi::Object tensors = PackedTable(env, file_.header.tensors, file_.header.data_start, whole);
    Napi::Object metadata = Napi::Object::New(env);
    for (const auto& [key, value] : file_.header.metadata) {
      if (!format::IsReservedKey(key)) DefineString(env, metadata, key, value);
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

class ReadHeaderWorker final : public Napi::AsyncWorker {
 public:
  ReadHeaderWorker(Napi::Env env, std::string path)
      : Napi::AsyncWorker(env, "ckptio.readHeader"), deferred_(Napi::Promise::Deferred::New(env)), path_(std::move(path)),
        io_env_(State(env)->env) {}
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

}  // namespace

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

}  // namespace ckptio::addon
