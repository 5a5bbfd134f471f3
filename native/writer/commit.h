// The commit protocol (docs/commit-protocol.md): a checkpoint reaches its final name only as a complete,
// fdatasync'ed file, and a job reports success only after the directory entry itself is durable.
//
//   openat(dir, "<name>.tmp.<pid>.<8 hex>", O_CREAT|O_EXCL)  never the final name, never an old file
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
//
// This file is the protocol (the POSIX sink's open, fallocate, sync, rename, directory fsync); the bytes come from
// the encoder (file_image.h) through one of two sinks: direct_io.h (O_DIRECT) or buffered_io.h.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "../format/header.h"
#include "../io/env.h"
#include "../io/status.h"
#include "file_image.h"
#include "staging.h"

namespace ckptio::writer {

// The temporary name a file has until its commit renames it: "<name>.tmp.<pid>.<8 lowercase hex>", defined here
// once. TempName makes one; kTempNameRegex (the source of a JavaScript RegExp, which the addon exports as
// `tempNamePattern`; group 1 is the pid) recognizes one, so start-up can remove those a dead process left.
inline constexpr char kTempNameRegex[] = "\\.tmp\\.(\\d+)\\.[0-9a-f]{8}$";
std::string TempName(const std::string& base);

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
  // The checkpoint's content id (ContentId in file_image.h). Empty when checksums are off.
  std::string content_id;
};

// One checkpoint file: planned and encoded (file_image.h), written through the O_DIRECT sink when `staging` is
// usable and options.direct allows it, else buffered, then committed. `on_consumed`, when set, is called once
// every byte of the tensors has been read (written out, the header included), before the file is durable: from
// then on the sources may be reused.
Status CommitCheckpoint(io::Env* env, const std::string& path, std::vector<TensorSource> tensors,
                        const format::Metadata& metadata, const CommitOptions& options, StagingBlocks* staging,
                        CommitResult* result, const std::function<void()>& on_consumed = {});

// The same protocol for a small file of raw bytes (the `latest` pointer, manifests).
Status CommitBytes(io::Env* env, const std::string& path, const unsigned char* data, size_t len,
                   CommitResult* result);

// Several small files at once (a save's pointers and manifest): each file's data is written and fdatasync'ed
// under its temporary name first, then each is renamed, then each directory is fsync'ed once, not once per file.
// results gets one CommitResult per file. On a failure before the renames nothing is renamed; a failed rename
// stops the later ones, and the files renamed before it are still made durable (the status is the rename's).
struct BytesFile {
  std::string path;
  const unsigned char* data;
  size_t len;
};
Status CommitFiles(io::Env* env, const std::vector<BytesFile>& files, std::vector<CommitResult>* results);

// unlink each name (one already missing counts as removed; any other failure stops, named in the status), then
// fsync the directory once.
Status RemoveFiles(io::Env* env, const std::string& dir, const std::vector<std::string>& names);

}  // namespace ckptio::writer
