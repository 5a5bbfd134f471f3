// The raw sequential writer the benchmarks compare against (testing builds only: the addon's rawWrite).
#pragma once
#include <cstdint>
#include <string>

#include "../io/env.h"
#include "../io/status.h"
#include "staging.h"

namespace ckptio::writer {

// `bytes` of a fixed pattern in 4 MiB aligned O_DIRECT blocks (or buffered), then fsync. No format, no
// checksums, no rename: the disk's own limit.
Status RawWrite(io::Env* env, const std::string& path, uint64_t bytes, bool direct, StagingBlocks* staging);

}  // namespace ckptio::writer
