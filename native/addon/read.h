// The read path: read (the whole file, mapped, optionally verified) and readHeader (the header alone, with pread).
// One AsyncWorker per call on the libuv pool, as sharp does; the file work runs there, the JS objects are built
// back on the JS thread.
#pragma once
#include <napi.h>

#include <string>
#include <vector>

#include "../format/header.h"

namespace ckptio::addon {

// obj[key] = value as an own data property (a NUL in the key kept, "__proto__" a plain key).
void DefineString(Napi::Env env, Napi::Object obj, const std::string& key, const std::string& value);

// The tensors of a read as one packed table over `buffer` (offsets are data_start + each tensor's begin):
//   { names (joined), nameLengths: Uint32Array (UTF-16 units), dtypes: Uint8Array (codes of `readDtypes`),
//     ranks: Uint32Array, dims: Float64Array, offsets: Float64Array (into buffer), lengths: Float64Array, buffer }
Napi::Object PackedTable(Napi::Env env, const std::vector<format::TensorInfo>& infos, uint64_t data_start,
                         Napi::ArrayBuffer buffer);

// read(path, {verify}) -> Promise<{tensors, metadata, bytes, verified, checksummed}>: typed arrays over one
// private mapping of the file, unmapped when the last of them is collected; ckptio's own keys are not returned.
Napi::Value Read(const Napi::CallbackInfo& info);

// readHeader(path) -> Promise<{tensors: [{name, dtype, shape, bytes}], metadata, bytes, checksummed, contentId?}>:
// the header alone, so no tensor data is read (a manifest rebuilt by scanning costs the headers, not the
// checkpoints' size). The metadata includes ckptio's own keys.
Napi::Value ReadHeader(const Napi::CallbackInfo& info);

}  // namespace ckptio::addon
