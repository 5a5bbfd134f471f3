// Opens a checkpoint file read-only, maps it, and validates it before anything in it is trusted.
#pragma once
#include <string>

#include "../io/env.h"
#include "../io/unique_fd.h"
#include "header.h"

namespace ckptio::format {

struct LoadedFile {
  // A private (copy-on-write) mapping of the whole file: callers may write into views over it without
  // touching the file. Views keep it alive; see addon/read.cc for the finalizer that unmaps it.
  io::Mapping mapping;
  uint64_t file_size = 0;
  ParsedHeader header;
  bool verified = false;
};

Status ReadCheckpointFile(io::Env* env, const std::string& path, bool verify, LoadedFile* out);

// The header alone, read with pread (8 bytes, then the header): no byte of tensor data is read, mapped or
// prefetched. The header digest is verified; the tensor digests are not (that needs the data); the layout is
// checked against the file size.
Status ReadCheckpointHeader(io::Env* env, const std::string& path, ParsedHeader* out, uint64_t* file_size);

}  // namespace ckptio::format
