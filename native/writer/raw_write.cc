#include "raw_write.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "../io/unique_fd.h"
#include "../io/write_all.h"

namespace ckptio::writer {

Status RawWrite(io::Env* env, const std::string& path, uint64_t bytes, bool direct, StagingBlocks* staging) {
  if (!staging || !staging->ok()) return Status::Os(ENOMEM, "mmap", path);
  for (size_t i = 0; i < StagingBlocks::kCount; ++i) std::memset(staging->block(i), 0x5a, StagingBlocks::kBlockSize);
  const uint64_t total = RoundUp(bytes, kDirectAlign);
  int fd = env->Open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | (direct ? O_DIRECT : 0), 0644);
  if (fd < 0) return Status::Os(-fd, "open", path);
  io::UniqueFd file(env, fd);
  for (uint64_t off = 0; off < total; off += StagingBlocks::kBlockSize) {
    const uint64_t len = std::min<uint64_t>(StagingBlocks::kBlockSize, total - off);
    Status s = io::PwriteAll(env, file.get(), staging->block(0), len, off, path);
    if (!s.ok()) return s;
  }
  int r = env->Fsync(file.get());
  if (r < 0) return Status::Os(-r, "fsync", path);
  r = file.Close();
  if (r < 0) return Status::Os(-r, "close", path);
  return Status::Ok();
}

}  // namespace ckptio::writer
