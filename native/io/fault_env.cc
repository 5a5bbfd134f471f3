#include "fault_env.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <chrono>
#include <thread>

namespace ckptio::io {
namespace {

constexpr const char* kOpNames[kOpCount] = {
    "open", "openat", "pwrite", "pread", "fallocate", "ftruncate", "fdatasync", "fsync", "close",
    "rename", "unlink", "sync_file_range", "fadvise", "fstat", "mmap", "munmap", "mprotect"};

std::string Join(const std::string& dir, const std::string& name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

}  // namespace

const char* OpName(Op op) { return kOpNames[static_cast<size_t>(op)]; }

bool ParseOp(const std::string& name, Op* op) {
  for (size_t i = 0; i < kOpCount; ++i) {
    if (name == kOpNames[i]) {
      *op = static_cast<Op>(i);
      return true;
    }
  }
  return false;
}

void FaultEnv::Configure(const FaultConfig& config) {
  Reset();
  std::lock_guard<std::mutex> lock(mu_);
  config_ = config;
}

FaultStats FaultEnv::Stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void FaultEnv::Reset() {
  std::lock_guard<std::mutex> lock(mu_);
  for (const DirOp& op : journal_) {
    if (!op.backup.empty()) ::unlink(op.backup.c_str());
  }
  journal_.clear();
  files_.clear();
  fd_paths_.clear();
  config_ = FaultConfig();
  stats_ = FaultStats();
}

FaultEnv::Gate FaultEnv::Enter(Op op, int* err) {
  uint32_t delay = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stats_.crashed) {
      *err = EIO;
      return Gate::kDead;
    }
    const size_t i = static_cast<size_t>(op);
    const uint64_t nth = ++stats_.by_op[i];
    ++stats_.total;
    delay = config_.delay_ms[i];
    for (const FailRule& rule : config_.failures) {
      if (rule.op == op && rule.nth == nth) {
        ++stats_.injected;
        *err = rule.err;
        return Gate::kFail;
      }
    }
  }
  if (delay) std::this_thread::sleep_for(std::chrono::milliseconds(delay));
  return Gate::kProceed;
}

void FaultEnv::Leave() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!stats_.crashed && config_.crash_after != 0 && stats_.total >= config_.crash_after) CrashLocked();
}

std::string FaultEnv::PathOfFdLocked(int fd) const {
  auto it = fd_paths_.find(fd);
  return it == fd_paths_.end() ? std::string() : it->second;
}

std::string FaultEnv::BackupLocked(const std::string& dir, const std::string& name) {
  std::string backup = Join(dir, ".ckptio-fault-backup." + std::to_string(::getpid()) + "." +
                                     std::to_string(++backup_seq_));
  if (::link(Join(dir, name).c_str(), backup.c_str()) != 0) return std::string();
  return backup;
}

void FaultEnv::CrashLocked() {
  stats_.crashed = true;
  // Unsynced file data first, while every file is still under its current name.
  for (auto& [path, state] : files_) {
    if (!state.dirty) continue;
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) continue;
    uint64_t keep = state.synced_size;
    if (config_.torn) keep = std::max<uint64_t>(keep, static_cast<uint64_t>(st.st_size) / 2);
    if (::truncate(path.c_str(), static_cast<off_t>(keep)) != 0) continue;
  }
  // Then undo the directory operations that no directory fsync made durable, newest first.
  for (auto it = journal_.rbegin(); it != journal_.rend(); ++it) {
    const std::string target = Join(it->dir, it->name);
    switch (it->kind) {
      case DirOp::kCreate:
        ::unlink(target.c_str());
        break;
      case DirOp::kRename:
        ::rename(target.c_str(), Join(it->dir, it->from).c_str());
        if (!it->backup.empty()) ::rename(it->backup.c_str(), target.c_str());
        break;
      case DirOp::kExchange:
        ::renameat2(AT_FDCWD, target.c_str(), AT_FDCWD, Join(it->dir, it->from).c_str(), RENAME_EXCHANGE);
        break;
      case DirOp::kUnlink:
        if (!it->backup.empty()) ::rename(it->backup.c_str(), target.c_str());
        break;
    }
  }
  journal_.clear();
}

void FaultEnv::SyncedLocked(int fd) {
  const std::string path = PathOfFdLocked(fd);
  auto it = files_.find(path);
  if (it != files_.end()) {
    struct stat st;
    if (::fstat(fd, &st) == 0) it->second.synced_size = static_cast<uint64_t>(st.st_size);
    it->second.dirty = false;
  }
  // An fsync'ed directory makes every entry change inside it durable.
  std::vector<DirOp> kept;
  for (DirOp& op : journal_) {
    if (op.dir == path) {
      if (!op.backup.empty()) ::unlink(op.backup.c_str());
    } else {
      kept.push_back(std::move(op));
    }
  }
  journal_.swap(kept);
}

int FaultEnv::Open(const char* path, int flags, mode_t mode) {
  int err = 0;
  if (Enter(Op::kOpen, &err) != Gate::kProceed) return -err;
  int fd = base_->Open(path, flags, mode);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (fd >= 0) fd_paths_[fd] = path;
  }
  Leave();
  return fd;
}

int FaultEnv::OpenAt(int dirfd, const char* name, int flags, mode_t mode) {
  int err = 0;
  if (Enter(Op::kOpenAt, &err) != Gate::kProceed) return -err;
  int fd = base_->OpenAt(dirfd, name, flags, mode);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (fd >= 0) {
      const std::string dir = PathOfFdLocked(dirfd);
      const std::string path = Join(dir, name);
      fd_paths_[fd] = path;
      if ((flags & O_CREAT) && (flags & O_EXCL)) {
        files_[path] = FileState();
        journal_.push_back(DirOp{DirOp::kCreate, dir, name, std::string(), std::string()});
      }
    }
  }
  Leave();
  return fd;
}

ssize_t FaultEnv::Pwrite(int fd, const void* buf, size_t len, uint64_t offset) {
  int err = 0;
  if (Enter(Op::kPwrite, &err) != Gate::kProceed) return -err;
  ssize_t r = base_->Pwrite(fd, buf, len, offset);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = files_.find(PathOfFdLocked(fd));
    if (it != files_.end()) it->second.dirty = true;
  }
  Leave();
  return r;
}

ssize_t FaultEnv::Pread(int fd, void* buf, size_t len, uint64_t offset) {
  int err = 0;
  if (Enter(Op::kPread, &err) != Gate::kProceed) return -err;
  ssize_t r = base_->Pread(fd, buf, len, offset);
  Leave();
  return r;
}

int FaultEnv::Fallocate(int fd, uint64_t len) {
  int err = 0;
  if (Enter(Op::kFallocate, &err) != Gate::kProceed) return -err;
  int r = base_->Fallocate(fd, len);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = files_.find(PathOfFdLocked(fd));
    if (it != files_.end()) it->second.dirty = true;
  }
  Leave();
  return r;
}

int FaultEnv::Ftruncate(int fd, uint64_t len) {
  int err = 0;
  if (Enter(Op::kFtruncate, &err) != Gate::kProceed) return -err;
  int r = base_->Ftruncate(fd, len);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = files_.find(PathOfFdLocked(fd));
    if (it != files_.end()) it->second.dirty = true;
  }
  Leave();
  return r;
}

int FaultEnv::Fdatasync(int fd) {
  int err = 0;
  if (Enter(Op::kFdatasync, &err) != Gate::kProceed) return -err;
  int r = base_->Fdatasync(fd);
  if (r == 0) {
    std::lock_guard<std::mutex> lock(mu_);
    SyncedLocked(fd);
  }
  Leave();
  return r;
}

int FaultEnv::Fsync(int fd) {
  int err = 0;
  if (Enter(Op::kFsync, &err) != Gate::kProceed) return -err;
  int r = base_->Fsync(fd);
  if (r == 0) {
    std::lock_guard<std::mutex> lock(mu_);
    SyncedLocked(fd);
  }
  Leave();
  return r;
}

int FaultEnv::Close(int fd) {
  int err = 0;
  Gate gate = Enter(Op::kClose, &err);
  // Linux releases the descriptor even when close reports an error, so the twin always closes for real.
  int r = base_->Close(fd);
  {
    std::lock_guard<std::mutex> lock(mu_);
    fd_paths_.erase(fd);
  }
  if (gate != Gate::kProceed) return gate == Gate::kDead ? 0 : -err;
  Leave();
  return r;
}

int FaultEnv::RenameAt(int dirfd, const char* from, const char* to, unsigned flags) {
  int err = 0;
  if (Enter(Op::kRename, &err) != Gate::kProceed) return -err;
  const bool exchange = (flags & RENAME_EXCHANGE) != 0;
  std::string backup;
  std::string dir;
  {
    std::lock_guard<std::mutex> lock(mu_);
    dir = PathOfFdLocked(dirfd);
    if (!exchange) backup = BackupLocked(dir, to);
  }
  int r = base_->RenameAt(dirfd, from, to, flags);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (r == 0) {
      const std::string from_path = Join(dir, from), to_path = Join(dir, to);
      auto it_from = files_.find(from_path);
      auto it_to = files_.find(to_path);
      FileState from_state = it_from != files_.end() ? it_from->second : FileState();
      FileState to_state = it_to != files_.end() ? it_to->second : FileState();
      const bool had_from = it_from != files_.end(), had_to = it_to != files_.end();
      files_.erase(from_path);
      files_.erase(to_path);
      if (had_from) files_[to_path] = from_state;
      if (exchange && had_to) files_[from_path] = to_state;
      journal_.push_back(DirOp{exchange ? DirOp::kExchange : DirOp::kRename, dir, to, from, backup});
    } else if (!backup.empty()) {
      ::unlink(backup.c_str());
    }
  }
  Leave();
  return r;
}

int FaultEnv::UnlinkAt(int dirfd, const char* name) {
  int err = 0;
  if (Enter(Op::kUnlink, &err) != Gate::kProceed) return -err;
  std::string backup;
  std::string dir;
  {
    std::lock_guard<std::mutex> lock(mu_);
    dir = PathOfFdLocked(dirfd);
    backup = BackupLocked(dir, name);
  }
  int r = base_->UnlinkAt(dirfd, name);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (r == 0) {
      files_.erase(Join(dir, name));
      journal_.push_back(DirOp{DirOp::kUnlink, dir, name, std::string(), backup});
    } else if (!backup.empty()) {
      ::unlink(backup.c_str());
    }
  }
  Leave();
  return r;
}

int FaultEnv::SyncFileRange(int fd, uint64_t offset, uint64_t len, unsigned flags) {
  int err = 0;
  if (Enter(Op::kSyncFileRange, &err) != Gate::kProceed) return -err;
  int r = base_->SyncFileRange(fd, offset, len, flags);
  Leave();
  return r;
}

int FaultEnv::FadviseDontNeed(int fd, uint64_t offset, uint64_t len) {
  int err = 0;
  if (Enter(Op::kFadvise, &err) != Gate::kProceed) return -err;
  int r = base_->FadviseDontNeed(fd, offset, len);
  Leave();
  return r;
}

int FaultEnv::Fstat(int fd, struct stat* st) {
  int err = 0;
  if (Enter(Op::kFstat, &err) != Gate::kProceed) return -err;
  int r = base_->Fstat(fd, st);
  Leave();
  return r;
}

void* FaultEnv::Mmap(size_t len, int prot, int flags, int fd, int* err) {
  if (Enter(Op::kMmap, err) != Gate::kProceed) return nullptr;
  void* p = base_->Mmap(len, prot, flags, fd, err);
  Leave();
  return p;
}

int FaultEnv::Munmap(void* addr, size_t len) {
  // Memory is always given back, crashed or not: the twin models the disk, not the address space.
  int err = 0;
  Gate gate = Enter(Op::kMunmap, &err);
  int r = base_->Munmap(addr, len);
  if (gate == Gate::kProceed) Leave();
  return r;
}

int FaultEnv::Mprotect(void* addr, size_t len, int prot) {
  int err = 0;
  if (Enter(Op::kMprotect, &err) != Gate::kProceed) return -err;
  int r = base_->Mprotect(addr, len, prot);
  Leave();
  return r;
}

}  // namespace ckptio::io
