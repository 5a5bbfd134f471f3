// Env: every file operation the writer and the reader perform goes through this interface (the LevelDB /
// RocksDB Env idea), so that tests can swap in FaultEnv to fail the Nth call or simulate a crash.
// Convention: calls return >= 0 on success and -errno on failure; they never throw and never retry EINTR
// themselves except where noted (Pwrite loops are the caller's job so short writes stay visible).
#pragma once
#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace ckptio::io {

class Env {
 public:
  virtual ~Env() = default;
  virtual int Open(const char* path, int flags, mode_t mode) = 0;
  virtual int OpenAt(int dirfd, const char* name, int flags, mode_t mode) = 0;
  virtual ssize_t Pwrite(int fd, const void* buf, size_t len, uint64_t offset) = 0;
  virtual ssize_t Pread(int fd, void* buf, size_t len, uint64_t offset) = 0;
  virtual int Fallocate(int fd, uint64_t len) = 0;
  virtual int Ftruncate(int fd, uint64_t len) = 0;
  virtual int Fdatasync(int fd) = 0;
  virtual int Fsync(int fd) = 0;
  virtual int Close(int fd) = 0;
  // flags: 0, RENAME_EXCHANGE or RENAME_NOREPLACE (renameat2).
  virtual int RenameAt(int dirfd, const char* from, const char* to, unsigned flags) = 0;
  virtual int UnlinkAt(int dirfd, const char* name) = 0;
  virtual int SyncFileRange(int fd, uint64_t offset, uint64_t len, unsigned flags) = 0;
  virtual int FadviseDontNeed(int fd, uint64_t offset, uint64_t len) = 0;
  virtual int Fstat(int fd, struct stat* st) = 0;
  // Returns the mapping or nullptr with *err set to errno.
  virtual void* Mmap(size_t len, int prot, int flags, int fd, int* err) = 0;
  virtual int Munmap(void* addr, size_t len) = 0;
  virtual int Mprotect(void* addr, size_t len, int prot) = 0;
};

// The real thing: thin wrappers over the syscalls. One stateless instance for the process.
Env* PosixEnv();

}  // namespace ckptio::io
