#include "write_all.h"

#include <cerrno>

namespace ckptio::io {

Status PwriteAll(Env* env, int fd, const unsigned char* data, size_t len, uint64_t offset, const std::string& path) {
  while (len > 0) {
    ssize_t n = env->Pwrite(fd, data, len, offset);
    if (n == -EINTR) continue;
    if (n < 0) return Status::Os(static_cast<int>(-n), "pwrite", path);
    if (n == 0) return Status::Os(EIO, "pwrite", path);  // no progress: never spin
    data += n;
    len -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

}  // namespace ckptio::io
