// FaultEnv: the fault-injecting twin of PosixEnv, for tests only: compiled into the testing builds of the addon
// (CKPTIO_TESTING), each Node environment's own (AddonState::faults), switched on through the addon's `faults`
// object; PosixEnv is used otherwise, so the twin costs nothing when off. The TSan test makes its own.
//
// It can (a) fail the Nth call of an operation with a chosen errno, (b) delay an operation, and
// (c) simulate a crash after the Kth operation: it then rolls the real file system back to what a power
// loss at that instant could leave, in the model of LevelDB's fault_injection_test and RocksDB's
// FaultInjectionTestFS:
//   - data written to a file created through the twin and not yet fdatasync'ed/fsync'ed is dropped
//     (the file is cut back to its last synced size), or, with `torn`, half of it survives;
//   - creates, renames and unlinks in a directory that was not fsync'ed afterwards are undone (the twin
//     hard-links a file before it is replaced or unlinked, so the old version can be put back).
// After the crash every further call fails with EIO and changes nothing, as if the process had died.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "env.h"

namespace ckptio::io {

enum class Op : int {
  kOpen, kOpenAt, kPwrite, kPread, kFallocate, kFtruncate, kFdatasync, kFsync, kClose, kRename,
  kUnlink, kSyncFileRange, kFadvise, kFstat, kMmap, kMunmap, kMprotect, kCount
};
constexpr size_t kOpCount = static_cast<size_t>(Op::kCount);
const char* OpName(Op op);
bool ParseOp(const std::string& name, Op* op);

struct FailRule {
  Op op;
  uint64_t nth;  // 1-based, counted from Configure()
  int err;
};

struct FaultConfig {
  std::vector<FailRule> failures;
  uint64_t crash_after = 0;  // 0: never; K: crash once the Kth operation (any kind) has completed
  bool torn = false;
  std::array<uint32_t, kOpCount> delay_ms{};
};

struct FaultStats {
  uint64_t total = 0;
  std::array<uint64_t, kOpCount> by_op{};
  bool crashed = false;
  uint64_t injected = 0;
};

class FaultEnv final : public Env {
 public:
  explicit FaultEnv(Env* base) : base_(base) {}
  // Starts a new experiment: counters, tracking and crash state are reset.
  void Configure(const FaultConfig& config);
  FaultStats Stats();
  // Forgets all tracking and removes the twin's backup links.
  void Reset();

  int Open(const char* path, int flags, mode_t mode) override;
  int OpenAt(int dirfd, const char* name, int flags, mode_t mode) override;
  ssize_t Pwrite(int fd, const void* buf, size_t len, uint64_t offset) override;
  ssize_t Pread(int fd, void* buf, size_t len, uint64_t offset) override;
  int Fallocate(int fd, uint64_t len) override;
  int Ftruncate(int fd, uint64_t len) override;
  int Fdatasync(int fd) override;
  int Fsync(int fd) override;
  int Close(int fd) override;
  int RenameAt(int dirfd, const char* from, const char* to, unsigned flags) override;
  int UnlinkAt(int dirfd, const char* name) override;
  int SyncFileRange(int fd, uint64_t offset, uint64_t len, unsigned flags) override;
  int FadviseDontNeed(int fd, uint64_t offset, uint64_t len) override;
  int Fstat(int fd, struct stat* st) override;
  void* Mmap(size_t len, int prot, int flags, int fd, int* err) override;
  int Munmap(void* addr, size_t len) override;
  int Mprotect(void* addr, size_t len, int prot) override;

 private:
  enum class Gate { kProceed, kFail, kDead };
  struct FileState {
    bool dirty = false;
    uint64_t synced_size = 0;
  };
  struct DirOp {
    enum Kind { kCreate, kRename, kExchange, kUnlink } kind;
    std::string dir, name, from, backup;
  };

  // Counts the call, applies delay and failure rules. On kFail, *err holds the errno to return.
  Gate Enter(Op op, int* err);
  // Called after an operation was performed; crashes if this was the Kth.
  void Leave();
  void CrashLocked();
  std::string PathOfFdLocked(int fd) const;
  std::string BackupLocked(const std::string& dir, const std::string& name);
  void SyncedLocked(int fd);

  Env* base_;
  std::mutex mu_;
  FaultConfig config_;
  FaultStats stats_;
  std::map<int, std::string> fd_paths_;
  std::map<std::string, FileState> files_;
  std::vector<DirOp> journal_;
  uint64_t backup_seq_ = 0;
};

}  // namespace ckptio::io
