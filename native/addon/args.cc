#include "args.h"

namespace ckptio::addon {

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

bool GetWriteOptions(const Napi::Value& v, writer::CommitOptions* options, bool* copy, Status* error) {
  if (!v.IsObject()) return true;
  Napi::Object o = v.As<Napi::Object>();
  Napi::Value direct = o.Get("direct");
  if (direct.IsString()) {
    const std::string d = direct.As<Napi::String>().Utf8Value();
    if (d == "on") options->direct = writer::DirectIo::kOn;
    else if (d == "off") options->direct = writer::DirectIo::kOff;
    else if (d == "auto") options->direct = writer::DirectIo::kAuto;
    else {
      *error = Status::Invalid("options.direct must be 'auto', 'on' or 'off'");
      return false;
    }
  }
  Napi::Value prealloc = o.Get("preallocate");
  if (prealloc.IsBoolean()) options->preallocate = prealloc.As<Napi::Boolean>().Value();
  Napi::Value wb = o.Get("writeBehindBytes");
  if (wb.IsNumber()) {
    const double x = wb.As<Napi::Number>().DoubleValue();
    if (!(x >= 0)) {
      *error = Status::Invalid("options.writeBehindBytes must be >= 0");
      return false;
    }
    options->write_behind_bytes = static_cast<uint64_t>(x);
  }
  Napi::Value c = o.Get("copy");
  if (c.IsBoolean()) *copy = c.As<Napi::Boolean>().Value();
  Napi::Value checksum = o.Get("checksum");
  if (!checksum.IsUndefined() && !checksum.IsBoolean()) {
    *error = Status::Invalid("options.checksum must be a boolean");
    return false;
  }
  if (checksum.IsBoolean()) options->checksum = checksum.As<Napi::Boolean>().Value();
  return true;
}

bool GetSaveAfter(const Napi::Value& v, SaveAfter* after, Status* error) {
  std::vector<SmallFile>* files = &after->files;
  std::string* remove_dir = &after->remove_dir;
  std::vector<std::string>* remove = &after->remove;
  if (v.IsUndefined()) return true;
  if (!v.IsObject()) {
    *error = Status::Invalid("after must be { files: [[path, bytes]...], removeDir, remove: [names] }");
    return false;
  }
  Napi::Object o = v.As<Napi::Object>();
  Napi::Value fv = o.Get("files"), rv = o.Get("remove"), dv = o.Get("removeDir");
  for (const auto& [key, fn] : {std::pair{"onConsumed", &after->on_consumed}, std::pair{"onSettled", &after->on_settled}}) {
    Napi::Value cv = o.Get(key);
    if (cv.IsUndefined()) continue;
    if (!cv.IsFunction()) {
      *error = Status::Invalid(std::string("after.") + key + " must be a function");
      return false;
    }
    *fn = cv.As<Napi::Function>();
  }
  Napi::Value lv = o.Get("lane"), gv = o.Get("generation");
  if (!lv.IsUndefined() || !gv.IsUndefined()) {
    const double lane = lv.IsNumber() ? lv.As<Napi::Number>().DoubleValue() : -1;
    const double gen = gv.IsNumber() ? gv.As<Napi::Number>().DoubleValue() : -1;
    if (!(lane >= 1 && lane <= 4294967295.0 && lane == static_cast<double>(static_cast<uint32_t>(lane))) ||
        !(gen >= 0 && gen <= 9007199254740991.0 && gen == static_cast<double>(static_cast<uint64_t>(gen)))) {
      *error = Status::Invalid("after.lane must be an integer from 1 to 2^32-1 and after.generation an integer >= 0");
      return false;
    }
    after->lane = static_cast<uint32_t>(lane);
    after->generation = static_cast<uint64_t>(gen);
  }
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
    if (!GetNames(rv, "after.remove", remove, error)) return false;
    for (const std::string& n : *remove) {
      if (n.empty() || n.find('/') != std::string::npos || n == "." || n == ".." || n.find('\0') != std::string::npos) {
        *error = Status::Invalid("after.remove: \"" + n + "\" is not a plain file name");
        return false;
      }
    }
  }
  return true;
}

bool GetNames(const Napi::Value& v, const char* what, std::vector<std::string>* names, Status* error) {
  if (!v.IsArray()) {
    *error = Status::Invalid(std::string(what) + " must be an array of strings");
    return false;
  }
  Napi::Array arr = v.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value name = arr.Get(i);
    if (!name.IsString()) {
      *error = Status::Invalid(std::string(what) + " must be an array of strings");
      return false;
    }
    names->push_back(name.As<Napi::String>().Utf8Value());
  }
  return true;
}

}  // namespace ckptio::addon
