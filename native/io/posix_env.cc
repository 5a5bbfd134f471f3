#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "env.h"

namespace ckptio::io {
namespace {

int Ret(int r) { return r < 0 ? -errno : r; }

class Posix final : public Env {
 public:
  int Open(const char* path, int flags, mode_t mode) override { return Ret(::open(path, flags, mode)); }
  int OpenAt(int dirfd, const char* name, int flags, mode_t mode) override {
    return Ret(::openat(dirfd, name, flags, mode));
  }
  ssize_t Pwrite(int fd, const void* buf, size_t len, uint64_t offset) override {
    ssize_t r = ::pwrite(fd, buf, len, static_cast<off_t>(offset));
    return r < 0 ? -errno : r;
  }
  ssize_t Pread(int fd, void* buf, size_t len, uint64_t offset) override {
    ssize_t r = ::pread(fd, buf, len, static_cast<off_t>(offset));
    return r < 0 ? -errno : r;
  }
  int Fallocate(int fd, uint64_t len) override {
    // posix_fallocate returns the error instead of setting errno.
    return -::posix_fallocate(fd, 0, static_cast<off_t>(len));
  }
  int Ftruncate(int fd, uint64_t len) override { return Ret(::ftruncate(fd, static_cast<off_t>(len))); }
  int Fdatasync(int fd) override { return Ret(::fdatasync(fd)); }
  int Fsync(int fd) override { return Ret(::fsync(fd)); }
  int Close(int fd) override { return Ret(::close(fd)); }
  int RenameAt(int dirfd, const char* from, const char* to, unsigned flags) override {
    return Ret(::renameat2(dirfd, from, dirfd, to, flags));
  }
  int UnlinkAt(int dirfd, const char* name) override { return Ret(::unlinkat(dirfd, name, 0)); }
  int SyncFileRange(int fd, uint64_t offset, uint64_t len, unsigned flags) override {
    return Ret(::sync_file_range(fd, static_cast<off_t>(offset), static_cast<off_t>(len), flags));
  }
  int FadviseDontNeed(int fd, uint64_t offset, uint64_t len) override {
    return -::posix_fadvise(fd, static_cast<off_t>(offset), static_cast<off_t>(len), POSIX_FADV_DONTNEED);
  }
  int Fstat(int fd, struct stat* st) override { return Ret(::fstat(fd, st)); }
  void* Mmap(size_t len, int prot, int flags, int fd, int* err) override {
    void* p = ::mmap(nullptr, len, prot, flags, fd, 0);
    if (p == MAP_FAILED) {
      *err = errno;
      return nullptr;
    }
    return p;
  }
  int Munmap(void* addr, size_t len) override { return Ret(::munmap(addr, len)); }
  int Mprotect(void* addr, size_t len, int prot) override { return Ret(::mprotect(addr, len, prot)); }
};

Posix g_posix;

}  // namespace

Env* PosixEnv() { return &g_posix; }

}  // namespace ckptio::io
