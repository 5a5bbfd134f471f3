#include "staging.h"

#include <sys/mman.h>

namespace ckptio::writer {

StagingBlocks::StagingBlocks() {
  for (size_t i = 0; i < kCount; ++i) {
    void* p = ::mmap(nullptr, kBlockSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) return;
    blocks_[i] = static_cast<unsigned char*>(p);
  }
}

StagingBlocks::~StagingBlocks() {
  for (unsigned char* p : blocks_) {
    if (p) ::munmap(p, kBlockSize);
  }
}

}  // namespace ckptio::writer
