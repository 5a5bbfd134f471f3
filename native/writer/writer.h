// The writer thread: one per process, its own std::thread rather than the libuv pool (which fs, dns and
// other addons share), fed through a bounded queue. Jobs run one at a time, in submission order, so a
// checkpoint, the pointer update after it and the prune after that commit in that order.
#pragma once
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "staging.h"

namespace ckptio::writer {

class Job {
 public:
  virtual ~Job() = default;
  // Runs on the writer thread. Must not touch JavaScript; completion is signalled by the job itself.
  virtual void Run(StagingBlocks* staging) = 0;
  // Called instead of Run when the writer shuts down with the job still queued.
  virtual void Cancel() = 0;
};

class Writer {
 public:
  static constexpr size_t kMaxQueued = 64;
  Writer() = default;
  ~Writer() { Shutdown(); }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Takes the job, or returns false and leaves it with the caller when the queue is full or the writer is
  // stopping (the caller rejects instead of blocking the JS thread).
  bool Post(std::unique_ptr<Job>* job);
  // Finishes the running job, cancels the queued ones, joins the thread. Idempotent.
  void Shutdown();
  size_t queued();

 private:
  void Loop();

  std::mutex mu_;
  std::mutex join_mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Job>> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace ckptio::writer
