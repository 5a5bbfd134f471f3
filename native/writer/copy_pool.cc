#include "copy_pool.h"

#include <sys/mman.h>

#include <cerrno>

namespace ckptio::writer {

CopyPool::~CopyPool() {
  for (Buffer& b : free_) ::munmap(b.data, b.capacity);
}

CopyPool::Buffer CopyPool::Acquire(size_t size, int* err) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    size_t best = free_.size();
    for (size_t i = 0; i < free_.size(); ++i) {
      if (free_[i].capacity >= size && (best == free_.size() || free_[i].capacity < free_[best].capacity)) best = i;
    }
    if (best != free_.size()) {
      Buffer b = free_[best];
      free_.erase(free_.begin() + static_cast<long>(best));
      return b;
    }
  }
  const size_t granule = 2u << 20;
  Buffer b;
  b.capacity = size == 0 ? granule : (size + granule - 1) / granule * granule;
  void* p = ::mmap(nullptr, b.capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED) {
    *err = errno;
    return Buffer();
  }
  b.data = static_cast<unsigned char*>(p);
  return b;
}

void CopyPool::Release(Buffer buffer) {
  if (!buffer.data) return;
  std::lock_guard<std::mutex> lock(mu_);
  free_.push_back(buffer);
  if (free_.size() > kMaxFree) {
    // Keep the largest buffers: the next save is most likely the same size as the last ones.
    size_t smallest = 0;
    for (size_t i = 1; i < free_.size(); ++i) {
      if (free_[i].capacity < free_[smallest].capacity) smallest = i;
    }
    ::munmap(free_[smallest].data, free_[smallest].capacity);
    free_.erase(free_.begin() + static_cast<long>(smallest));
  }
}

size_t CopyPool::retained_bytes() {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const Buffer& b : free_) n += b.capacity;
  return n;
}

}  // namespace ckptio::writer
