// RAII owners for a file descriptor and a mapping, both released through the Env that made them.
#pragma once
#include <cstddef>

#include "env.h"

namespace ckptio::io {

class UniqueFd {
 public:
  UniqueFd() = default;
  UniqueFd(Env* env, int fd) : env_(env), fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& o) noexcept : env_(o.env_), fd_(o.fd_) { o.fd_ = -1; }
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      if (fd_ >= 0) env_->Close(fd_);
      env_ = o.env_;
      fd_ = o.fd_;
      o.fd_ = -1;
    }
    return *this;
  }
  ~UniqueFd() {
    if (fd_ >= 0) env_->Close(fd_);
  }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Closes now and reports the result: a failed close can mean lost data (NFS, quota), so the commit
  // protocol checks it instead of leaving it to the destructor.
  int Close() {
    int fd = fd_;
    fd_ = -1;
    return fd >= 0 ? env_->Close(fd) : 0;
  }

 private:
  Env* env_ = nullptr;
  int fd_ = -1;
};

class Mapping {
 public:
  Mapping() = default;
  Mapping(Env* env, void* addr, size_t len) : env_(env), addr_(addr), len_(len) {}
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  Mapping(Mapping&& o) noexcept : env_(o.env_), addr_(o.addr_), len_(o.len_) { o.addr_ = nullptr; }
  Mapping& operator=(Mapping&& o) noexcept {
    if (this != &o) {
      if (addr_) env_->Munmap(addr_, len_);
      env_ = o.env_;
      addr_ = o.addr_;
      len_ = o.len_;
      o.addr_ = nullptr;
    }
    return *this;
  }
  ~Mapping() {
    if (addr_) env_->Munmap(addr_, len_);
  }
  const unsigned char* data() const { return static_cast<const unsigned char*>(addr_); }
  unsigned char* mutable_data() { return static_cast<unsigned char*>(addr_); }
  size_t size() const { return len_; }
  // Hands ownership to the caller (the addon ties the unmap to a JS ArrayBuffer's finalizer).
  void* Release() {
    void* p = addr_;
    addr_ = nullptr;
    return p;
  }

 private:
  Env* env_ = nullptr;
  void* addr_ = nullptr;
  size_t len_ = 0;
};

}  // namespace ckptio::io
