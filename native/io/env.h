// Env: every file operation the writer and the reader perform goes through this interface (the LevelDB /
// RocksDB Env idea), so that tests can swap in FaultEnv (testing builds only) to fail the Nth call or simulate a
// crash. Each Node environment's addon instance picks its Env (AddonState::env); a job or a read keeps the one it
// started with.
//
// Conventions, for every method unless its comment says otherwise:
//   - Errors: the call returns >= 0 on success and -errno on failure (never -1 with errno set; errno itself is
//     unspecified afterwards). Nothing throws.
//   - EINTR: returned as -EINTR, never retried inside (the caller decides: PwriteAll retries, a short pwrite
//     stays visible so the caller can continue where it stopped).
//   - Paths and names are NUL-terminated; a `name` in the *At calls is relative to `dirfd` (a directory opened
//     with O_DIRECTORY), never containing '/'.
//   - Thread safety: every method may be called from any thread at once (the writer thread, a save's I/O thread,
//     the libuv pool's read workers, the JS thread's finalizers). PosixEnv is stateless; FaultEnv locks itself.
//     The descriptors and mappings passed in belong to the caller, which must not use one from two threads
//     without its own ordering.
//   - Ownership: a descriptor from Open/OpenAt is closed with Close (or io::UniqueFd) through the same Env, a
//     mapping from Mmap with Munmap (or io::Mapping) through the same Env, so the fault twin sees both ends.
#pragma once
#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace ckptio::io {

class Env {
 public:
  virtual ~Env() = default;
  // open(2): the new descriptor (>= 0), or -errno. `flags` and `mode` as for open(2).
  virtual int Open(const char* path, int flags, mode_t mode) = 0;
  // openat(2) relative to `dirfd`: the new descriptor, or -errno (-EEXIST with O_EXCL on an existing name,
  // -EINVAL for O_DIRECT on a file system without it).
  virtual int OpenAt(int dirfd, const char* name, int flags, mode_t mode) = 0;
  // pwrite(2) of at most `len` bytes at `offset`: the number written (possibly fewer than `len`; 0 means no
  // progress), or -errno. The caller loops (PwriteAll).
  virtual ssize_t Pwrite(int fd, const void* buf, size_t len, uint64_t offset) = 0;
  // pread(2) of at most `len` bytes at `offset`: the number read (0 at end of file), or -errno.
  virtual ssize_t Pread(int fd, void* buf, size_t len, uint64_t offset) = 0;
  // posix_fallocate(fd, 0, len): 0, or -errno (-EOPNOTSUPP / -ENOSYS where the file system cannot, which callers
  // treat as "not preallocated", not as a failure).
  virtual int Fallocate(int fd, uint64_t len) = 0;
  // ftruncate(2) to `len` bytes: 0, or -errno.
  virtual int Ftruncate(int fd, uint64_t len) = 0;
  // fdatasync(2): 0, or -errno. After a failure the file's unwritten data may be gone and the error is not
  // reported again: the caller must abandon the file, never sync it a second time and take it as good.
  virtual int Fdatasync(int fd) = 0;
  // fsync(2) (of a file or of a directory, which makes the names in it durable): 0, or -errno.
  virtual int Fsync(int fd) = 0;
  // close(2): 0, or -errno; the descriptor is released either way (never closed twice). A failure can mean lost
  // data (NFS, quota), so the commit protocol checks it.
  virtual int Close(int fd) = 0;
  // renameat2(dirfd, from, dirfd, to, flags) within one directory; flags: 0, RENAME_EXCHANGE or
  // RENAME_NOREPLACE. 0, or -errno (-ENOENT for an exchange with no file at `to`; -EINVAL / -ENOSYS /
  // -EOPNOTSUPP where the file system has no exchange).
  virtual int RenameAt(int dirfd, const char* from, const char* to, unsigned flags) = 0;
  // unlinkat(dirfd, name, 0): 0, or -errno (-ENOENT when already gone).
  virtual int UnlinkAt(int dirfd, const char* name) = 0;
  // sync_file_range(2): 0, or -errno. Write-behind only, never durability: callers ignore its result.
  virtual int SyncFileRange(int fd, uint64_t offset, uint64_t len, unsigned flags) = 0;
  // posix_fadvise(POSIX_FADV_DONTNEED) over the range: 0, or -errno. Advice only: callers ignore its result.
  virtual int FadviseDontNeed(int fd, uint64_t offset, uint64_t len) = 0;
  // fstat(2) into *st: 0, or -errno.
  virtual int Fstat(int fd, struct stat* st) = 0;
  // mmap(nullptr, len, prot, flags, fd, 0): the mapping, or nullptr with *err set to the errno (positive; the
  // one exception to the -errno convention, since a pointer cannot carry it).
  virtual void* Mmap(size_t len, int prot, int flags, int fd, int* err) = 0;
  // munmap(2) of a whole mapping from Mmap: 0, or -errno.
  virtual int Munmap(void* addr, size_t len) = 0;
  // mprotect(2): 0, or -errno.
  virtual int Mprotect(void* addr, size_t len, int prot) = 0;
};

// The real thing: thin wrappers over the syscalls. One stateless instance for the process, safe from any thread.
Env* PosixEnv();

}  // namespace ckptio::io
