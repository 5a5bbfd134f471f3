// The tensors of one write as they cross from JavaScript: the packed table src/format/tensor-list.ts builds.
// The JS thread only copies its columns and locates each tensor's memory (GetTensors); the writer thread decodes
// names and shapes and checks sizes (UnpackTensors), so a save's main-thread cost per tensor is two N-API calls.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../io/status.h"
#include "../writer/file_image.h"

namespace ckptio::addon {

// The table as it crossed: its columns copied, each tensor's memory located.
//   { names: all names concatenated, nameLengths: Uint32Array (UTF-16 units), dtypes: Uint8Array (codes in the
//     order of the exported `dtypes` table), ranks: Uint8Array, dims: Float64Array (concatenated), data: [view] }
struct PackedTensors {
  std::u16string names;
  std::vector<uint32_t> name_lengths;
  std::vector<uint8_t> dtypes, ranks;
  std::vector<double> dims;
  std::vector<const unsigned char*> data;
  std::vector<size_t> sizes;
};

// On the JS thread: reads `v` (a packed table) into `out`; the tensors' memory stays the caller's.
bool GetTensors(Napi::Env env, const Napi::Value& v, PackedTensors* out, Status* error);

// On the writer thread: names to UTF-8, shapes, and each view's size against shape x dtype.
Status UnpackTensors(const PackedTensors& in, std::vector<writer::TensorSource>* out);

// A typed array's or DataView's memory and byte length; false for anything else.
bool ViewBytes(napi_env env, napi_value v, const unsigned char** data, size_t* len);

}  // namespace ckptio::addon
