#include "writer.h"

#include <cstdlib>
#include <set>
#include <string>

namespace ckptio::writer {

namespace {

// process.exit() ends the process with exit(3) without tearing the environment down, so no destructor of the
// addon's state runs: the writers still running are finished by an atexit handler instead (while the process's
// memory, the wasm heap included, is still mapped).
std::mutex& LiveMutex() {
  static std::mutex* mu = new std::mutex();  // never destroyed: used from atexit
  return *mu;
}
std::set<Writer*>& Live() {
  static std::set<Writer*>* live = new std::set<Writer*>();
  return *live;
}
// Holds the live list's lock for the whole pass: a worker environment tearing its writer down meanwhile waits in
// Shutdown until the pass is over, so no writer is freed under it.
void ShutdownAllAtExit() {
  std::lock_guard<std::mutex> lock(LiveMutex());
  for (Writer* w : Live()) w->StopAndJoin();
  Live().clear();
}

}  // namespace

std::chrono::milliseconds Writer::ExitWaitMs() {
  const char* v = std::getenv("CKPTIO_EXIT_WAIT_MS");
  if (v != nullptr && *v != '\0') {
    char* end = nullptr;
    const long long ms = std::strtoll(v, &end, 10);
    if (end != nullptr && *end == '\0' && ms >= 0) return std::chrono::milliseconds(ms);
  }
  return std::chrono::milliseconds(30000);
}

bool Writer::Post(std::unique_ptr<Job>* job) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_ || queue_.size() >= kMaxQueued) return false;
  if (!thread_.joinable()) {
    {
      static const bool registered = (std::atexit(ShutdownAllAtExit) == 0);
      (void)registered;
      std::lock_guard<std::mutex> live(LiveMutex());
      Live().insert(this);
    }
    thread_ = std::thread([this] { Loop(); });
  }
  queue_.push_back(std::move(*job));
  cv_.notify_one();
  return true;
}

size_t Writer::queued() {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

void Writer::Shutdown() {
  {
    std::lock_guard<std::mutex> live(LiveMutex());
    Live().erase(this);
  }
  StopAndJoin();
}

void Writer::StopAndJoin() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      stopping_ = true;
      deadline_ = std::chrono::steady_clock::now() + ExitWaitMs();
    }
    cv_.notify_one();
  }
  // Two threads may shut down at once (an environment's cleanup and an explicit close): one joins.
  std::lock_guard<std::mutex> join_lock(join_mu_);
  if (thread_.joinable()) thread_.join();
  // A writer that never started has nothing queued; one that ran past its deadline left the rest here.
  std::deque<std::unique_ptr<Job>> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    dropped.swap(queue_);
  }
  for (auto& job : dropped) job->Cancel();
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
      if (stopping_ && std::chrono::steady_clock::now() >= deadline_) return;  // Shutdown cancels the rest
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    job->Run(&staging);
  }
}

}  // namespace ckptio::writer
