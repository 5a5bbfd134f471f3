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
  // nullptr data when the allocation failed (errno in *err).
  Buffer Acquire(size_t size, int* err);
  void Release(Buffer buffer);  // any thread
  size_t retained_bytes();

 private:
  std::mutex mu_;
  std::vector<Buffer> free_;
};

}  // namespace ckptio::writer
