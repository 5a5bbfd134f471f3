// The buffered sink, for file systems without O_DIRECT (or direct: 'off'): each tensor is pwritten from the
// caller's memory through the page cache in 8 MiB chunks, hashed as it goes; with write-behind, writeback of each
// chunk is started and the one before it waited for and dropped from the cache, so a large save does not fill
// the cache and then stall in fdatasync. The header, rendered once every digest is known, goes last.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "../io/env.h"
#include "../io/status.h"
#include "file_image.h"

namespace ckptio::writer {

// Writes `sources` (file order) after `header_size` bytes of header space, then *header = render_header() at 0.
// write_behind_bytes: 0 turns write-behind off. `path` names the file in errors. Not durable yet: the commit's
// fdatasync is the caller's.
Status WriteBuffered(io::Env* env, int fd, const std::string& path, const std::vector<TensorSource>& sources,
                     uint64_t header_size, uint64_t write_behind_bytes, TensorHasher* hasher,
                     const std::function<std::string()>& render_header, std::string* header);

}  // namespace ckptio::writer
