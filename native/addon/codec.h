// The file codec without a file: encode tensors to the bytes of a checkpoint file, decode (and verify) the bytes
// of one. The same encoder and parser the writer and the reader use (writer/file_image.h, format/header.h), so
// the bytes are the ones writeCheckpoint puts on disk for the same input. Stores without a local file (memory, an
// object store) commit and read through these. Each call is one AsyncWorker on the libuv pool.
#pragma once
#include <napi.h>

namespace ckptio::addon {

// encode(table, metadata, {checksum}) -> Promise<{ bytes: Uint8Array, contentId?: string }>. The table's memory
// is read on the pool: the caller keeps it unchanged until the promise settles (the table is referenced until then).
Napi::Value Encode(const Napi::CallbackInfo& info);

// decode(bytes, {verify}) -> Promise<{tensors, metadata, bytes, verified, checksummed, contentId?}>, the shape read()
// returns (and the content id readHeader() reports),
// the tensors as views over `bytes`' own buffer (the caller must not change it while they are in use).
Napi::Value Decode(const Napi::CallbackInfo& info);

}  // namespace ckptio::addon
