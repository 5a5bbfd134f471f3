#include "direct_io.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "../io/write_all.h"

namespace ckptio::writer {
namespace {

// The disk idles until the first block is filled: the blocks start small and double up to the staging block's
// size, so the first pwrite starts after 256 KiB is filled rather than 4 MiB.
constexpr uint64_t kFirstBlockLen = 256u << 10;
// What is copied into a block before it is hashed: small enough to be still in L2 when the hash reads it.
constexpr uint64_t kFillSliceLen = 128u << 10;
static_assert(StagingBlocks::kBlockSize % kFirstBlockLen == 0 && kFirstBlockLen % kFillSliceLen == 0);

// One I/O thread behind the filling thread: while it waits in pwrite for block k, the writer thread copies
// and hashes block k+1. With O_DIRECT the copy is otherwise dead time on the disk. The filling thread calls
// Acquire, Submit and Finish; the I/O thread runs Loop.
class IoPipeline {
 public:
  IoPipeline(io::Env* env, int fd, std::string path, StagingBlocks* staging)
      : env_(env), fd_(fd), path_(std::move(path)), staging_(staging) {
    for (size_t i = 0; i < StagingBlocks::kCount; ++i) free_.push_back(i);
    thread_ = std::thread([this] { Loop(); });
  }
  ~IoPipeline() { Finish(); }

  // Waits for a free block; returns -1 when the pipeline failed (the status says why).
  int Acquire() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !free_.empty() || !status_.ok(); });
    if (!status_.ok()) return -1;
    const int i = static_cast<int>(free_.back());
    free_.pop_back();
    return i;
  }
  // Queues the acquired `block` (filled with `len` image bytes) for writing at `offset`.
  void Submit(int block, uint64_t offset, size_t len) {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.push_back(Item{static_cast<size_t>(block), offset, len});
    cv_.notify_all();
  }
  // Writes what is queued, stops the I/O thread and returns the first failure. Idempotent.
  Status Finish() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
      cv_.notify_all();
    }
    if (thread_.joinable()) thread_.join();
    return status_;  // the I/O thread has been joined: no lock needed
  }

 private:
  struct Item {
    size_t block;
    uint64_t offset;
    size_t len;
  };
  void Loop() {
    while (true) {
      Item item;
      bool failed;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return !pending_.empty() || done_; });
        if (pending_.empty()) return;
        item = pending_.front();
        pending_.erase(pending_.begin());
        failed = !status_.ok();
      }
      // The block is this thread's until it is put back on free_: written without the lock.
      Status s = failed ? Status::Ok()
                        : io::PwriteAll(env_, fd_, staging_->block(item.block), item.len, item.offset, path_);
      std::lock_guard<std::mutex> lock(mu_);
      if (!s.ok() && status_.ok()) status_ = s;
      free_.push_back(item.block);
      cv_.notify_all();
    }
  }

  // Set at construction, then read-only (both threads).
  io::Env* const env_;
  const int fd_;
  const std::string path_;
  StagingBlocks* const staging_;
  // mu_ guards free_, pending_, done_ and status_ (cv_ waits on it). A block index is in free_ (nobody's), held
  // by the filling thread between Acquire and Submit, in pending_, or held by the I/O thread while it writes it:
  // the block's bytes belong to whoever holds the index, so they are touched without the lock.
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<size_t> free_;
  std::vector<Item> pending_;
  bool done_ = false;
  Status status_;  // the first write failure
  std::thread thread_;  // started by the constructor, joined by Finish (filling thread only)
};

}  // namespace

Status WriteDirect(io::Env* env, int fd, const std::string& path, const FileImage& image, uint64_t header_size,
                   uint64_t total, StagingBlocks* staging, TensorHasher* hasher,
                   const std::function<std::string()>& render_header, std::string* header) {
  const uint64_t aligned_total = RoundUp(total, kDirectAlign);
  const uint64_t head_end = std::min(RoundUp(header_size, kDirectAlign), aligned_total);
  // Data that shares the header's blocks is hashed first, so the digests see the data region in order.
  image.HashFromSources(header_size, head_end - header_size, hasher);
  {
    IoPipeline pipeline(env, fd, path, staging);
    uint64_t block_len = kFirstBlockLen;
    for (uint64_t off = head_end; off < aligned_total;) {
      const uint64_t len = std::min<uint64_t>(block_len, aligned_total - off);
      const int block = pipeline.Acquire();
      if (block < 0) break;
      unsigned char* dst = staging->block(static_cast<size_t>(block));
      // Copied and hashed a slice at a time, so the hash reads bytes still in cache from the copy rather than
      // a second pass over the whole block from memory.
      for (uint64_t done = 0; done < len; done += kFillSliceLen) {
        const uint64_t slice = std::min<uint64_t>(kFillSliceLen, len - done);
        image.Copy(off + done, slice, dst + done);
        if (off + done < total) hasher->Feed(off + done - header_size, dst + done, std::min(off + done + slice, total) - (off + done));
      }
      pipeline.Submit(block, off, len);
      off += len;
      block_len = std::min<uint64_t>(block_len * 2, StagingBlocks::kBlockSize);
    }
    Status s = pipeline.Finish();
    if (!s.ok()) return s;
  }
  *header = render_header();
  for (uint64_t off = 0; off < head_end; off += StagingBlocks::kBlockSize) {
    const uint64_t len = std::min<uint64_t>(StagingBlocks::kBlockSize, head_end - off);
    image.Copy(off, len, staging->block(0));
    Status s = io::PwriteAll(env, fd, staging->block(0), len, off, path);
    if (!s.ok()) return s;
  }
  if (aligned_total != total) {
    int r = env->Ftruncate(fd, total);
    if (r < 0) return Status::Os(-r, "ftruncate", path);
  }
  return Status::Ok();
}

}  // namespace ckptio::writer
