// The commit protocol (docs/commit-protocol.md): a checkpoint reaches its final name only as a complete,
// fdatasync'ed file, and a job reports success only after the directory entry itself is durable.
//
//   openat(dir, "<name>.tmp.<pid>.<rand>", O_CREAT|O_EXCL)   never the final name, never an old file
//   fallocate                                                 ENOSPC before the first byte
//   pwrite ... (data first, header last)                      short writes and EINTR handled
//   fdatasync(tmp)                                            an error is final: no second fsync
//   close(tmp)                                                its result is checked
//   renameat2(tmp, name, RENAME_EXCHANGE) or renameat(tmp, name)
//   fsync(dir)                                                without it the rename itself may vanish
//   unlink(tmp)                                               (only after an exchange: the old file)
//
// The exchange keeps the old file reachable until the directory fsync succeeds: if that fsync fails the
// exchange is undone, so the previous checkpoint stays at the target path and the save is rejected.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "../format/header.h"
#include "../io/env.h"
#include "../io/status.h"

namespace ckptio::writer {

struct TensorSource {
  format::TensorInfo info;    // name, dtype, shape; offsets are assigned by the commit
  const unsigned char* data;  // shape x dtype size bytes, kept alive by the caller until the commit ends
};

enum class DirectIo { kAuto, kOn, kOff };

struct CommitOptions {
  DirectIo direct = DirectIo::kAuto;
  bool preallocate = true;
  // Buffered mode only: start writeback of every chunk of this size and drop the one before it from the
  // page cache (smooths I/O; not durability). 0 turns it off.
  uint64_t write_behind_bytes = 64ull << 20;
  // Off: no digests are computed and no ckptio keys written (a plain safetensors file, which loads only
  // with verification off). For measuring what the checksums cost, and for users who must skip it.
  bool checksum = true;
};

struct CommitResult {
  uint64_t bytes = 0;
  bool direct = false;
  bool preallocated = false;
  bool exchanged = false;  // true when an older file at the path was swapped out atomically
  // The commit is durable, but the previous file, swapped to this temporary name, could not be removed
  // (errno in leftover_errno). Reported, never hidden; a later start-up removes it as a stale temporary.
  std::string leftover;
  int leftover_errno = 0;
  // XXH3-64 (hex) of "<name>:<tensor digest hex>\n" for every tensor in file order: the checkpoint's content
  // id, the same for the same tensors whatever the metadata. Empty when checksums are off.
  std::string content_id;
};

// The content id of tensors given in file order with their digests (see CommitResult::content_id).
std::string ContentId(const std::vector<format::TensorInfo>& infos, const std::vector<uint64_t>& digests);

// Aligned, pre-faulted blocks for O_DIRECT, reused across jobs (memcpy into fresh pages is ~10x slower).
class StagingBlocks {
 public:
  static constexpr size_t kBlockSize = 4u << 20;
  static constexpr size_t kCount = 3;
  StagingBlocks();
  ~StagingBlocks();
  StagingBlocks(const StagingBlocks&) = delete;
  StagingBlocks& operator=(const StagingBlocks&) = delete;
  unsigned char* block(size_t i) { return blocks_[i]; }
  bool ok() const { return blocks_[kCount - 1] != nullptr; }

 private:
  unsigned char* blocks_[kCount] = {};
};

Status CommitCheckpoint(io::Env* env, const std::string& path, std::vector<TensorSource> tensors,
                        const format::Metadata& metadata, const CommitOptions& options, StagingBlocks* staging,
                        CommitResult* result);

// The same protocol for a small file of raw bytes (the `latest` pointer, manifests).
Status CommitBytes(io::Env* env, const std::string& path, const unsigned char* data, size_t len,
                   CommitResult* result);

// unlink each name (one already missing counts as removed; any other failure stops, named in the status), then
// fsync the directory once.
Status RemoveFiles(io::Env* env, const std::string& dir, const std::vector<std::string>& names);

// The raw sequential writer the benchmarks compare against: `bytes` of a fixed pattern in 4 MiB aligned
// O_DIRECT blocks (or buffered), then fsync. No format, no checksums, no rename.
Status RawWrite(io::Env* env, const std::string& path, uint64_t bytes, bool direct, StagingBlocks* staging);

}  // namespace ckptio::writer
