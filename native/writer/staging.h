// Aligned, pre-faulted blocks for O_DIRECT, owned by the writer thread and reused across its jobs (memcpy into
// fresh pages is ~10x slower than into pages already touched).
#pragma once
#include <cstddef>
#include <cstdint>

namespace ckptio::writer {

// O_DIRECT's alignment for buffers, offsets and lengths.
constexpr uint64_t kDirectAlign = 4096;
inline uint64_t RoundUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

class StagingBlocks {
 public:
  static constexpr size_t kBlockSize = 4u << 20;
  static constexpr size_t kCount = 3;
  StagingBlocks();
  ~StagingBlocks();
  StagingBlocks(const StagingBlocks&) = delete;
  StagingBlocks& operator=(const StagingBlocks&) = delete;
  unsigned char* block(size_t i) { return blocks_[i]; }
  // False when a block could not be mapped: callers then write buffered.
  bool ok() const { return blocks_[kCount - 1] != nullptr; }

 private:
  unsigned char* blocks_[kCount] = {};
};

}  // namespace ckptio::writer
