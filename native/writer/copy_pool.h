// Staging memory for `copy: true` saves: the caller's bytes are copied on the calling thread (that is the
// point of the option) into buffers that are pre-faulted and reused, because memcpy into fresh pages is
// about 10x slower than into pages already touched.
#pragma once
#include <cstddef>
#include <mutex>
#include <vector>

namespace ckptio::writer {

class CopyPool {
 public:
  struct Buffer {
    unsigned char* data = nullptr;
    size_t capacity = 0;
  };
  static constexpr size_t kMaxFree = 4;
  ~CopyPool();
  // The smallest free buffer of at least `size` bytes, else a new one (rounded up to 2 MiB, pre-faulted); nullptr
  // data when the allocation failed (errno in *err). Any thread (the JS thread, in practice).
  Buffer Acquire(size_t size, int* err);
  // Gives a buffer back for reuse; at most kMaxFree are kept (the largest). Any thread.
  void Release(Buffer buffer);
  // Bytes held by free buffers. Any thread.
  size_t retained_bytes();

 private:
  // mu_ guards free_. A buffer out of free_ belongs to whoever Acquired it, and is not touched by the pool until
  // Released. New buffers are mapped outside the lock; a surplus one is unmapped under it (it is in nobody's hands).
  std::mutex mu_;
  std::vector<Buffer> free_;
};

}  // namespace ckptio::writer
