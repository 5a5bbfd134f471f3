#include "tensor_table.h"

#include <cmath>

#include "../format/dtype.h"
#include "../format/header.h"
#include "../format/json.h"

namespace ckptio::addon {
namespace {

// UTF-16 as JavaScript holds it to UTF-8; false for a lone surrogate.
bool Utf16ToUtf8(const char16_t* s, size_t n, std::string* out) {
  out->reserve(out->size() + n);
  for (size_t i = 0; i < n; ++i) {
    uint32_t c = s[i];
    if (c < 0x80) {
      out->push_back(static_cast<char>(c));
      continue;
    }
    if (c >= 0xD800 && c <= 0xDBFF && i + 1 < n && s[i + 1] >= 0xDC00 && s[i + 1] <= 0xDFFF) {
      c = 0x10000 + ((c - 0xD800) << 10) + (s[i + 1] - 0xDC00);
      ++i;
    } else if (c >= 0xD800 && c <= 0xDFFF) {
      return false;  // a lone surrogate has no UTF-8 form: replacing it would rename the tensor
    }
    format::AppendUtf8(c, out);
  }
  return true;
}

// A typed array of exactly `type`, or an error naming `what`.
template <typename T>
bool GetTypedArray(const Napi::Value& v, napi_typedarray_type type, const char* what, const T** data, size_t* count,
                   Status* error) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) {
    *error = Status::Invalid(std::string("tensors.") + what + " has the wrong type");
    return false;
  }
  // The data pointer from napi_get_typedarray_info (already at the view's offset): Napi::ArrayBuffer::Data() is
  // null, with an exception pending, for a view over a SharedArrayBuffer.
  napi_typedarray_type actual;
  void* base = nullptr;
  if (napi_get_typedarray_info(v.Env(), v, &actual, count, &base, nullptr, nullptr) != napi_ok ||
      (base == nullptr && *count > 0)) {
    *error = Status::Invalid(std::string("tensors.") + what + ": its memory could not be read");
    return false;
  }
  *data = static_cast<const T*>(base);
  return true;
}

bool Detached(napi_env env, napi_value view) {
  napi_value buffer = nullptr;
  bool is_array_buffer = false, detached = false;
  if (napi_get_typedarray_info(env, view, nullptr, nullptr, nullptr, &buffer, nullptr) != napi_ok &&
      napi_get_dataview_info(env, view, nullptr, nullptr, &buffer, nullptr) != napi_ok) {
    return false;
  }
  return napi_is_arraybuffer(env, buffer, &is_array_buffer) == napi_ok && is_array_buffer &&
         napi_is_detached_arraybuffer(env, buffer, &detached) == napi_ok && detached;
}

}  // namespace

// A tensor's bytes, in one N-API call: its view's memory and length. A detached buffer reads as 0 bytes (the
// caller checks for one only then).
bool ViewBytes(napi_env env, napi_value v, const unsigned char** data, size_t* len) {
  napi_typedarray_type type;
  size_t count = 0;
  void* base = nullptr;
  if (napi_get_typedarray_info(env, v, &type, &count, &base, nullptr, nullptr) == napi_ok) {
    size_t element = 1;
    switch (type) {
      case napi_int16_array: case napi_uint16_array: element = 2; break;
      case napi_int32_array: case napi_uint32_array: case napi_float32_array: element = 4; break;
      case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: element = 8; break;
      case napi_int8_array: case napi_uint8_array: case napi_uint8_clamped_array: element = 1; break;
      default: return false;  // a view type newer than this addon: its element size is unknown here
    }
    *len = count * element;
  } else if (napi_get_dataview_info(env, v, len, &base, nullptr, nullptr) != napi_ok) {
    return false;
  }
  *data = static_cast<const unsigned char*>(base);
  return true;
}

bool GetTensors(Napi::Env env, const Napi::Value& v, PackedTensors* out, Status* error) {
  if (!v.IsObject() || v.IsArray()) {
    *error = Status::Invalid("tensors must be a packed tensor table");
    return false;
  }
  Napi::Object table = v.As<Napi::Object>();
  Napi::Value names_v = table.Get("names"), data_v = table.Get("data");
  const uint32_t* name_lengths = nullptr;
  const uint8_t *dtypes = nullptr, *ranks = nullptr;
  const double* dims = nullptr;
  size_t n = 0, n_dtypes = 0, n_ranks = 0, n_dims = 0;
  if (env.IsExceptionPending() || !names_v.IsString() || !data_v.IsArray() ||
      !GetTypedArray(table.Get("nameLengths"), napi_uint32_array, "nameLengths", &name_lengths, &n, error) ||
      !GetTypedArray(table.Get("dtypes"), napi_uint8_array, "dtypes", &dtypes, &n_dtypes, error) ||
      !GetTypedArray(table.Get("ranks"), napi_uint8_array, "ranks", &ranks, &n_ranks, error) ||
      !GetTypedArray(table.Get("dims"), napi_float64_array, "dims", &dims, &n_dims, error)) {
    if (error->ok()) *error = Status::Invalid("tensors must be a packed tensor table");
    return false;
  }
  Napi::Array data = data_v.As<Napi::Array>();
  if (n_dtypes != n || n_ranks != n || data.Length() != n) {
    *error = Status::Invalid("tensors: the packed table's columns differ in length");
    return false;
  }
  size_t units = 0;
  if (napi_get_value_string_utf16(env, names_v, nullptr, 0, &units) != napi_ok) {
    *error = Status::Invalid("tensors.names must be a string");
    return false;
  }
  out->names.resize(units);
  size_t copied = 0;
  napi_get_value_string_utf16(env, names_v, out->names.data(), units + 1, &copied);
  out->name_lengths.assign(name_lengths, name_lengths + n);
  out->dtypes.assign(dtypes, dtypes + n);
  out->ranks.assign(ranks, ranks + n);
  out->dims.assign(dims, dims + n_dims);
  out->data.resize(n);
  out->sizes.resize(n);
  // Every element is read before any view's memory is located: reading one may run JavaScript (an index getter)
  // that transfers or detaches another's buffer, which must not happen after its pointer was taken.
  napi_value array = data;
  std::vector<napi_value> items(n);
  for (size_t i = 0; i < n; ++i) {
    if (napi_get_element(env, array, static_cast<uint32_t>(i), &items[i]) != napi_ok) {
      *error = Status::Invalid("tensor #" + std::to_string(i) + ": data could not be read");
      return false;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    napi_value item = items[i];
    if (!ViewBytes(env, item, &out->data[i], &out->sizes[i])) {
      *error = Status::Invalid("tensor #" + std::to_string(i) + ": data must be a TypedArray, Buffer or DataView");
      return false;
    }
    if (out->sizes[i] == 0 && Detached(env, item)) {  // a detached buffer reads as 0 bytes: only then can it be one
      *error = Status::Invalid("tensor #" + std::to_string(i) + ": data is backed by a detached ArrayBuffer");
      return false;
    }
  }
  return true;
}

Status UnpackTensors(const PackedTensors& in, std::vector<writer::TensorSource>* out) {
  const size_t n = in.data.size();
  out->resize(n);
  size_t name_at = 0, dim_at = 0;
  auto label = [](const writer::TensorSource& t) { return "tensor \"" + t.info.name + "\""; };
  for (size_t i = 0; i < n; ++i) {
    writer::TensorSource& src = (*out)[i];
    if (in.name_lengths[i] > in.names.size() - name_at) return Status::Invalid("tensors: the name lengths exceed the names");
    if (!Utf16ToUtf8(in.names.data() + name_at, in.name_lengths[i], &src.info.name)) {
      return Status::Invalid("tensor #" + std::to_string(i) + ": its name holds a lone UTF-16 surrogate, which has no UTF-8 form");
    }
    name_at += in.name_lengths[i];
    if (in.dtypes[i] >= format::DTypeCount()) return Status::Invalid(label(src) + ": unknown dtype");
    src.info.dtype = static_cast<format::DType>(in.dtypes[i]);
    if (in.ranks[i] > in.dims.size() - dim_at) return Status::Invalid("tensors: the ranks exceed the dims");
    src.info.shape.reserve(in.ranks[i]);
    for (uint8_t d = 0; d < in.ranks[i]; ++d) {
      const double x = in.dims[dim_at++];
      if (!(x >= 0) || x > 9007199254740991.0 || std::floor(x) != x) {
        return Status::Invalid(label(src) + ": shape must be an array of non-negative integers");
      }
      src.info.shape.push_back(static_cast<uint64_t>(x));
    }
    src.data = in.data[i];
    uint64_t expected;
    Status s = format::TensorBytes(src.info, &expected);
    if (!s.ok() || expected != in.sizes[i]) {
      return Status::Invalid(label(src) + ": data is " + std::to_string(in.sizes[i]) + " bytes but shape x dtype needs " +
                             (s.ok() ? std::to_string(expected) : std::string("more than 2^64")));
    }
  }
  if (name_at != in.names.size() || dim_at != in.dims.size()) {
    return Status::Invalid("tensors: the packed table has names or dims left over");
  }
  return Status::Ok();
}

}  // namespace ckptio::addon
