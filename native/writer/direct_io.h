// The O_DIRECT sink: the file image goes through the writer thread's staging blocks, filled and hashed there
// while one I/O thread per save (IoPipeline, in direct_io.cc) pwrites the block before; the header, rendered
// once every digest is known, goes last. No page cache, so what fdatasync must flush is only the metadata.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "../io/env.h"
#include "../io/status.h"
#include "file_image.h"
#include "staging.h"

namespace ckptio::writer {

// Writes `image` (`total` bytes, the header's `header_size` first) to `fd`, opened with O_DIRECT, in aligned
// blocks, feeding the data region to `hasher` in file order; then *header = render_header() and the header's
// blocks. The file ends up exactly `total` bytes (the last block's padding is cut off). `path` names the file in
// errors. Not durable yet: the commit's fdatasync is the caller's.
Status WriteDirect(io::Env* env, int fd, const std::string& path, const FileImage& image, uint64_t header_size,
                   uint64_t total, StagingBlocks* staging, TensorHasher* hasher,
                   const std::function<std::string()>& render_header, std::string* header);

}  // namespace ckptio::writer
