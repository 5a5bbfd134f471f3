// The writer's concurrency tests, built with ThreadSanitizer by scripts/run-tsan-tests.js (Node itself is
// not instrumented, so these drive native/writer directly instead of through the addon): the queue under
// several producers, backpressure when it is full, shutdown while a save is in flight, the O_DIRECT fill/
// write pipeline's two threads, the copy pool from many threads, the fault twin shared by them, and temporary
// names made on many threads (each matching the one pattern start-up's sweep uses).
// Exits non-zero on the first failed check; TSan exits non-zero on any race.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "format/header.h"
#include "format/reader.h"
#include "io/env.h"
#include "io/fault_env.h"
#include "writer/commit.h"
#include "writer/copy_pool.h"
#include "writer/writer.h"

namespace {

using namespace ckptio;

int failures = 0;

#define CHECK(cond)                                                               \
  do {                                                                            \
    if (!(cond)) {                                                                \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                                 \
    }                                                                             \
  } while (0)

std::string MakeTempDir() {
  char tmpl[] = "/tmp/ckptio-tsan-XXXXXX";
  const char* dir = mkdtemp(tmpl);
  if (!dir) std::abort();
  return dir;
}

class Gate {
 public:
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Records the order in which jobs run or are cancelled; `gate` (optional) holds the job inside Run.
struct Journal {
  std::mutex mu;
  std::vector<int> ran, cancelled;
  std::atomic<int> running{0};
};

class RecordingJob : public writer::Job {
 public:
  RecordingJob(Journal* journal, int id, Gate* gate, Gate* started = nullptr)
      : journal_(journal), id_(id), gate_(gate), started_(started) {}
  void Run(writer::StagingBlocks*) override {
    journal_->running++;
    if (started_) started_->Open();
    if (gate_) gate_->Wait();
    std::lock_guard<std::mutex> lock(journal_->mu);
    journal_->ran.push_back(id_);
    journal_->running--;
  }
  void Cancel() override {
    std::lock_guard<std::mutex> lock(journal_->mu);
    journal_->cancelled.push_back(id_);
  }

 private:
  Journal* journal_;
  int id_;
  Gate* gate_;
  Gate* started_;
};

// A real save on the writer thread; the data is owned by the job (as the addon's keep-alive does).
class SaveJob : public writer::Job {
 public:
  SaveJob(io::Env* env, std::string path, size_t floats, float fill, writer::DirectIo direct,
          std::atomic<int>* ok, std::atomic<int>* done)
      : env_(env), path_(std::move(path)), data_(floats, fill), direct_(direct), ok_(ok), done_(done) {}
  void Run(writer::StagingBlocks* staging) override {
    format::TensorInfo info;
    info.name = "w";
    info.dtype = format::DType::kF32;
    info.shape = {data_.size()};
    std::vector<writer::TensorSource> tensors = {{info, reinterpret_cast<const unsigned char*>(data_.data())}};
    writer::CommitOptions options;
    options.direct = direct_;
    writer::CommitResult result;
    if (writer::CommitCheckpoint(env_, path_, tensors, {}, options, staging, &result).ok()) (*ok_)++;
    (*done_)++;
  }
  void Cancel() override { (*done_)++; }

 private:
  io::Env* env_;
  std::string path_;
  std::vector<float> data_;
  writer::DirectIo direct_;
  std::atomic<int>* ok_;
  std::atomic<int>* done_;
};

void TestManyProducersKeepSubmissionOrder() {
  writer::Writer w;
  Journal journal;
  std::mutex order_mu;
  std::vector<int> posted;
  std::vector<std::thread> producers;
  for (int p = 0; p < 4; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < 200; ++i) {
        const int id = p * 1000 + i;
        for (;;) {
          // Post and the order record happen under one lock so `posted` is the queue's order.
          std::lock_guard<std::mutex> lock(order_mu);
          std::unique_ptr<writer::Job> job(new RecordingJob(&journal, id, nullptr));
          if (w.Post(&job)) {
            posted.push_back(id);
            break;
          }
          CHECK(job != nullptr);  // a refused job stays with the caller
        }
      }
    });
  }
  for (auto& t : producers) t.join();
  w.Shutdown();
  std::lock_guard<std::mutex> lock(journal.mu);
  CHECK(journal.ran.size() + journal.cancelled.size() == 800);
  std::vector<int> all = journal.ran;
  all.insert(all.end(), journal.cancelled.begin(), journal.cancelled.end());
  CHECK(all == posted);
}

void TestBackpressureRefusesWhenFull() {
  writer::Writer w;
  Journal journal;
  Gate gate, started;
  std::unique_ptr<writer::Job> blocker(new RecordingJob(&journal, -1, &gate, &started));
  CHECK(w.Post(&blocker));
  started.Wait();  // the blocker is running, so the queue holds exactly what we post next
  int accepted = 0;
  for (int i = 0; i < 100; ++i) {
    std::unique_ptr<writer::Job> job(new RecordingJob(&journal, i, nullptr));
    if (w.Post(&job)) accepted++;
    else CHECK(job != nullptr);
  }
  CHECK(accepted == static_cast<int>(writer::Writer::kMaxQueued));
  CHECK(w.queued() == writer::Writer::kMaxQueued);
  gate.Open();
  w.Shutdown();
  std::lock_guard<std::mutex> lock(journal.mu);
  CHECK(journal.ran.size() + journal.cancelled.size() == writer::Writer::kMaxQueued + 1);
}

void TestShutdownDuringInFlightSave() {
  const std::string dir = MakeTempDir();
  io::FaultEnv faults(io::PosixEnv());
  io::FaultConfig config;
  config.delay_ms[static_cast<size_t>(io::Op::kFdatasync)] = 50;  // keep the first save in flight
  faults.Configure(config);
  std::atomic<int> ok{0}, done{0};
  {
    writer::Writer w;
    for (int i = 0; i < 10; ++i) {
      std::unique_ptr<writer::Job> job(new SaveJob(&faults, dir + "/ckpt-" + std::to_string(i) + ".safetensors",
                                                   (1u << 20) + 7 * i, 1.0f + i, writer::DirectIo::kAuto, &ok, &done));
      CHECK(w.Post(&job));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::thread closer([&] { w.Shutdown(); });
    w.Shutdown();  // from two threads at once: idempotent
    closer.join();
    std::unique_ptr<writer::Job> late(new SaveJob(&faults, dir + "/late.safetensors", 16, 0.f, writer::DirectIo::kAuto, &ok, &done));
    CHECK(!w.Post(&late));
    CHECK(late != nullptr);
  }
  CHECK(done.load() == 10);
  CHECK(ok.load() >= 1);  // the save in flight finished rather than being torn down
  // Every file at a final name is complete and valid; cancelled saves left nothing behind.
  int files = 0;
  for (int i = 0; i < 10; ++i) {
    const std::string path = dir + "/ckpt-" + std::to_string(i) + ".safetensors";
    if (access(path.c_str(), F_OK) != 0) continue;
    files++;
    format::LoadedFile loaded;
    CHECK(format::ReadCheckpointFile(io::PosixEnv(), path, true, &loaded).ok());
  }
  CHECK(files == ok.load());
  faults.Reset();
  std::string cmd = "rm -rf " + dir;
  CHECK(std::system(cmd.c_str()) == 0);
}

void TestDirectPipelineAndSharedFaultTwin() {
  const std::string dir = MakeTempDir();
  io::FaultEnv faults(io::PosixEnv());
  faults.Configure(io::FaultConfig{});
  std::atomic<int> ok{0}, done{0};
  {
    writer::Writer w;
    // 10 MiB + a bit: several 4 MiB staging blocks, so the fill and write threads overlap.
    for (int i = 0; i < 6; ++i) {
      std::unique_ptr<writer::Job> job(new SaveJob(&faults, dir + "/big.safetensors", (10u << 18) + 1000 * i, 0.5f * i,
                                                   i % 2 ? writer::DirectIo::kOn : writer::DirectIo::kOff, &ok, &done));
      while (!w.Post(&job)) std::this_thread::yield();
    }
    while (done.load() < 6) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(ok.load() == 6);
  CHECK(faults.Stats().total > 0);
  format::LoadedFile loaded;
  CHECK(format::ReadCheckpointFile(io::PosixEnv(), dir + "/big.safetensors", true, &loaded).ok());
  faults.Reset();
  std::string cmd = "rm -rf " + dir;
  CHECK(std::system(cmd.c_str()) == 0);
}

void TestCopyPoolFromManyThreads() {
  writer::CopyPool pool;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        int err = 0;
        writer::CopyPool::Buffer b = pool.Acquire(4096 * (1 + (i + t) % 5), &err);
        CHECK(b.data != nullptr);
        if (b.data) std::memset(b.data, t, 4096);
        pool.Release(b);
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(pool.retained_bytes() > 0);
}

void TestTempNamesMatchThePatternOnEveryThread() {
  const std::regex pattern(writer::kTempNameRegex, std::regex::ECMAScript);
  std::mutex mu;
  std::set<std::string> names;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        const std::string name = writer::TempName("ckpt-7.safetensors");
        std::smatch m;
        CHECK(name.rfind("ckpt-7.safetensors.tmp.", 0) == 0);
        CHECK(std::regex_search(name, m, pattern) && m[1].str() == std::to_string(::getpid()));
        std::lock_guard<std::mutex> lock(mu);
        names.insert(name);
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(names.size() == 400);  // 32 random bits per name, per-thread generators: no repeats
}

// Shutdown runs what is queued to the end (an acknowledged save survives the environment going away), within
// CKPTIO_EXIT_WAIT_MS; past it the rest is cancelled.
void TestShutdownRunsQueuedJobsWithinTheBound() {
  for (const char* wait : {"30000", "0"}) {
    setenv("CKPTIO_EXIT_WAIT_MS", wait, 1);
    Journal journal;
    Gate gate, started;
    {
      writer::Writer w;
      std::unique_ptr<writer::Job> blocker(new RecordingJob(&journal, -1, &gate, &started));
      CHECK(w.Post(&blocker));
      started.Wait();
      for (int i = 0; i < 20; ++i) {
        std::unique_ptr<writer::Job> job(new RecordingJob(&journal, i, nullptr));
        CHECK(w.Post(&job));
      }
      std::thread opener([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        gate.Open();
      });
      w.Shutdown();
      opener.join();
    }
    std::lock_guard<std::mutex> lock(journal.mu);
    if (std::string(wait) == "0") {
      CHECK(journal.ran.size() == 1 && journal.cancelled.size() == 20);  // only the running job finished
    } else {
      CHECK(journal.ran.size() == 21 && journal.cancelled.empty());  // every queued job ran, in order
      for (int i = 0; i < 20; ++i) CHECK(journal.ran[static_cast<size_t>(i) + 1] == i);
    }
  }
  unsetenv("CKPTIO_EXIT_WAIT_MS");
}

}  // namespace

int main() {
  TestShutdownRunsQueuedJobsWithinTheBound();
  TestManyProducersKeepSubmissionOrder();
  TestBackpressureRefusesWhenFull();
  TestShutdownDuringInFlightSave();
  TestDirectPipelineAndSharedFaultTwin();
  TestCopyPoolFromManyThreads();
  TestTempNamesMatchThePatternOnEveryThread();
  if (failures) {
    std::fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  std::printf("writer concurrency: all checks passed\n");
  return 0;
}
