#include "writer.h"

namespace ckptio::writer {

bool Writer::Post(std::unique_ptr<Job>* job) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_ || queue_.size() >= kMaxQueued) return false;
  if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
  queue_.push_back(std::move(*job));
  cv_.notify_one();
  return true;
}

size_t Writer::queued() {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

void Writer::Shutdown() {
  std::deque<std::unique_ptr<Job>> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    dropped.swap(queue_);
    cv_.notify_one();
  }
  for (auto& job : dropped) job->Cancel();
  // Two threads may shut down at once (an environment's cleanup and an explicit close): one joins.
  std::lock_guard<std::mutex> join_lock(join_mu_);
  if (thread_.joinable()) thread_.join();
}

void Writer::Loop() {
  // Staging blocks live as long as the thread: allocated and pre-faulted once, reused by every job.
  StagingBlocks staging;
  while (true) {
    std::unique_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    job->Run(&staging);
  }
}

}  // namespace ckptio::writer
