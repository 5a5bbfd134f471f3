// The writer thread: one per Node environment (each addon instance's AddonState owns one: the main thread's and
// each worker's), its own std::thread rather than the libuv pool (which fs, dns and other addons share), started
// by the first Post and fed through a bounded queue. Jobs run one at a time, in submission order, so a
// checkpoint, the pointer update after it and the prune after that commit in that order.
#pragma once
#include <chrono>
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
  // Runs the queued jobs to the end, for at most ExitWaitMs() (then cancels those left), and joins the thread: a job
  // queued before the environment goes (a worker ends, process.exit()) still becomes durable. Idempotent; any
  // thread but the writer's.
  void Shutdown();
  // Shutdown without leaving the process's list of live writers (the exit handler's pass holds that list).
  void StopAndJoin();
  // How long Shutdown lets queued jobs run: CKPTIO_EXIT_WAIT_MS, default 30000.
  static std::chrono::milliseconds ExitWaitMs();
  // Jobs waiting (not the running one). Any thread.
  size_t queued();

 private:
  void Loop();

  // mu_ guards queue_, stopping_ and the start of thread_ (Post starts it under mu_); cv_ waits on it. Jobs run
  // outside it, so Post never waits for a running job.
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Job>> queue_;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point deadline_;  // with stopping_: when the queued jobs are cancelled
  // join_mu_ guards the join of thread_: two threads may shut down at once and only one may join. thread_ is
  // assigned once, under mu_, before the first job is queued; after stopping_ is set no Post starts it again.
  std::mutex join_mu_;
  std::thread thread_;
};

}  // namespace ckptio::writer
