// PwriteAll: the one loop every writer uses to put a whole buffer at an offset through an Env.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "env.h"
#include "status.h"

namespace ckptio::io {

// pwrite until all `len` bytes are written: a short write continues where it stopped, EINTR retries, a write
// that makes no progress fails with EIO (never spins). A failure is a Status::Os naming "pwrite" and `path`.
Status PwriteAll(Env* env, int fd, const unsigned char* data, size_t len, uint64_t offset, const std::string& path);

}  // namespace ckptio::io
