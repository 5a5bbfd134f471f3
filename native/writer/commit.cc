#include "commit.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <random>

#include "../io/unique_fd.h"
#include "../io/write_all.h"
#include "buffered_io.h"
#include "direct_io.h"

namespace ckptio::writer {
namespace {

void SplitPath(const std::string& path, std::string* dir, std::string* base) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) {
    *dir = ".";
    *base = path;
  } else {
    *dir = slash == 0 ? "/" : path.substr(0, slash);
    *base = path.substr(slash + 1);
  }
}

// A file under a temporary name in the target directory until Commit() moves it into place. If it is
// destroyed uncommitted, the temporary file is removed.
class PendingFile {
 public:
  PendingFile(io::Env* env, std::string path) : env_(env), path_(std::move(path)) { SplitPath(path_, &dir_, &base_); }
  ~PendingFile() { Abandon(); }

  Status Open(DirectIo direct) {
    int dfd = env_->Open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (dfd < 0) return Status::Os(-dfd, "open", dir_);
    dir_fd_ = io::UniqueFd(env_, dfd);
    if (base_.empty() || base_ == "." || base_ == "..") return Status::Invalid("path names a directory", path_);
    const int flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
    if (direct != DirectIo::kOff) {
      tmp_ = TempName(base_);
      int fd = env_->OpenAt(dir_fd_.get(), tmp_.c_str(), flags | O_DIRECT, 0644);
      if (fd >= 0) {
        fd_ = io::UniqueFd(env_, fd);
        direct_ = true;
        return Status::Ok();
      }
      // EINVAL: this file system does not do O_DIRECT. With 'auto' we write buffered and say so in the
      // result; with 'on' it is an error.
      if (fd != -EINVAL || direct == DirectIo::kOn) {
        Status s = Status::Os(-fd, "openat", dir_ + "/" + tmp_);
        tmp_.clear();
        return s;
      }
      env_->UnlinkAt(dir_fd_.get(), tmp_.c_str());
    }
    tmp_ = TempName(base_);
    int fd = env_->OpenAt(dir_fd_.get(), tmp_.c_str(), flags, 0644);
    if (fd < 0) {
      Status s = Status::Os(-fd, "openat", dir_ + "/" + tmp_);
      tmp_.clear();
      return s;
    }
    fd_ = io::UniqueFd(env_, fd);
    return Status::Ok();
  }

  int fd() const { return fd_.get(); }
  bool direct() const { return direct_; }
  std::string tmp_path() const { return dir_ + "/" + tmp_; }

  // The whole protocol for this one file: its data, its name, the directory, the replaced file.
  Status Commit(CommitResult* result) {
    Status s = SyncData();
    if (!s.ok()) return s;
    s = Rename(&result->exchanged);
    if (!s.ok()) return s;
    s = SyncDir();
    if (!s.ok()) {
      Restore();
      return s;
    }
    DropReplaced(result);
    return Status::Ok();
  }

  // The stages of Commit, for CommitFiles, which syncs a directory once for several files.
  Status SyncData() {
#ifdef CKPTIO_BROKEN_SKIP_DATA_SYNC
    int r = 0;  // deliberately broken build (tests prove they catch it); never shipped
#else
    int r = env_->Fdatasync(fd_.get());
#endif
    // After a failed fdatasync the kernel may have dropped the dirty pages and will not report the error
    // again: the file is abandoned, never synced a second time and taken as good.
    if (r < 0) return Status::Os(-r, "fdatasync", tmp_path());
    r = fd_.Close();
    if (r < 0) return Status::Os(-r, "close", tmp_path());
    return Status::Ok();
  }
  Status Rename(bool* exchanged) {
    int r = env_->RenameAt(dir_fd_.get(), tmp_.c_str(), base_.c_str(), RENAME_EXCHANGE);
    exchanged_ = r == 0;
    *exchanged = exchanged_;
    if (r == -ENOENT || r == -EINVAL || r == -ENOSYS || r == -EOPNOTSUPP) {
      // No old file to swap with (ENOENT), or no exchange on this file system: a plain atomic rename.
      r = env_->RenameAt(dir_fd_.get(), tmp_.c_str(), base_.c_str(), 0);
    }
    if (r < 0) return Status::Os(-r, "rename", path_);
    renamed_ = true;
    return Status::Ok();
  }
  Status SyncDir() {
#ifdef CKPTIO_BROKEN_SKIP_DIR_SYNC
    int r = 0;  // deliberately broken build (tests prove they catch it); never shipped
#else
    int r = env_->Fsync(dir_fd_.get());
#endif
    if (r < 0) return Status::Os(-r, "fsync", dir_);
    return Status::Ok();
  }
  // After a failed directory fsync: the previous file goes back to the path; the new one is removed with the
  // temporary name.
  void Restore() {
    if (!renamed_) return;
    if (exchanged_) {
      env_->RenameAt(dir_fd_.get(), tmp_.c_str(), base_.c_str(), RENAME_EXCHANGE);
    } else {
      tmp_.clear();  // the new file is at the final name now; there is no old one to restore
    }
  }
  // After the directory fsync: the replaced file, now under the temporary name, goes. Its removal need not be
  // durable: a crash leaves a stale temporary file, which start-up removes.
  void DropReplaced(CommitResult* result) {
    if (exchanged_) {
      int r = env_->UnlinkAt(dir_fd_.get(), tmp_.c_str());
      if (r < 0) {
        result->leftover = tmp_path();
        result->leftover_errno = -r;
      }
    }
    tmp_.clear();
  }
  const std::string& dir() const { return dir_; }

 private:
  void Abandon() {
    if (fd_.valid()) fd_.Close();
    if (!tmp_.empty() && dir_fd_.valid()) env_->UnlinkAt(dir_fd_.get(), tmp_.c_str());
    tmp_.clear();
  }

  io::Env* env_;
  std::string path_, dir_, base_, tmp_;
  io::UniqueFd dir_fd_, fd_;
  bool direct_ = false;
  bool renamed_ = false, exchanged_ = false;
};

}  // namespace

std::string TempName(const std::string& base) {
  static thread_local std::mt19937_64 rng(std::random_device{}() ^ static_cast<uint64_t>(::getpid()));
  char suffix[64];
  std::snprintf(suffix, sizeof suffix, ".tmp.%d.%08llx", static_cast<int>(::getpid()),
                static_cast<unsigned long long>(rng() & 0xffffffffull));
  return base + suffix;
}

Status CommitCheckpoint(io::Env* env, const std::string& path, std::vector<TensorSource> tensors,
                        const format::Metadata& metadata, const CommitOptions& options, StagingBlocks* staging,
                        CommitResult* result, const std::function<void()>& on_consumed) {
  FilePlan plan;
  Status s = PlanFile(std::move(tensors), metadata, options.checksum, path, &plan);
  if (!s.ok()) return s;

  PendingFile file(env, path);
  s = file.Open(staging && staging->ok() ? options.direct : DirectIo::kOff);
  if (!s.ok()) return s;
  result->direct = file.direct();
  if (options.preallocate && plan.total > 0) {
    int r = env->Fallocate(file.fd(), plan.total);
    if (r == 0) {
      result->preallocated = true;
    } else if (r != -EOPNOTSUPP && r != -ENOSYS) {
      return Status::Os(-r, "fallocate", file.tmp_path());
    }
  }
  TensorHasher hasher(plan.infos, options.checksum);
  auto render = [&] {
    const std::vector<uint64_t> digests = hasher.Digests();
    return format::RenderHeader(plan.infos, metadata, options.checksum ? &digests : nullptr);
  };
  std::string header;
  FileImage image(plan.ordered, plan.header_size, plan.total);
  image.set_header(&header);
  s = file.direct() ? WriteDirect(env, file.fd(), file.tmp_path(), image, plan.header_size, plan.total, staging,
                                  &hasher, render, &header)
                    : WriteBuffered(env, file.fd(), file.tmp_path(), plan.ordered, plan.header_size,
                                    options.write_behind_bytes, &hasher, render, &header);
  if (!s.ok()) return s;
  if (on_consumed) on_consumed();
  if (header.size() != plan.header_size) return Status::Invalid("internal error: header size changed while writing", path);
  s = file.Commit(result);
  if (!s.ok()) return s;
  result->bytes = plan.total;
  if (options.checksum) result->content_id = ContentId(plan.infos, hasher.Digests());
  return Status::Ok();
}

Status CommitBytes(io::Env* env, const std::string& path, const unsigned char* data, size_t len,
                   CommitResult* result) {
  PendingFile file(env, path);
  Status s = file.Open(DirectIo::kOff);
  if (!s.ok()) return s;
  s = io::PwriteAll(env, file.fd(), data, len, 0, file.tmp_path());
  if (!s.ok()) return s;
  s = file.Commit(result);
  if (!s.ok()) return s;
  result->bytes = len;
  return Status::Ok();
}

Status CommitFiles(io::Env* env, const std::vector<BytesFile>& files, std::vector<CommitResult>* results) {
  results->assign(files.size(), CommitResult{});
  std::vector<std::unique_ptr<PendingFile>> pending;
  for (const BytesFile& f : files) {
    // Until every file's data is durable nothing is renamed: a failure here leaves only temporary files, which
    // the PendingFiles' destructors remove.
    auto file = std::make_unique<PendingFile>(env, f.path);
    Status s = file->Open(DirectIo::kOff);
    if (!s.ok()) return s;
    s = io::PwriteAll(env, file->fd(), f.data, f.len, 0, file->tmp_path());
    if (!s.ok()) return s;
    s = file->SyncData();
    if (!s.ok()) return s;
    pending.push_back(std::move(file));
  }
  // Each rename is atomic and each file it installs is already durable, so a crash before the directory fsync
  // leaves every name with its old file or its new one: any mix is a consistent directory.
  Status renamed = Status::Ok();
  size_t n = 0;
  for (; n < pending.size(); ++n) {
    renamed = pending[n]->Rename(&(*results)[n].exchanged);
    if (!renamed.ok()) break;
  }
  // What was renamed before a failed rename is made durable all the same: the earlier files are committed.
  std::vector<std::string> synced;
  for (size_t i = 0; i < n; ++i) {
    if (std::find(synced.begin(), synced.end(), pending[i]->dir()) != synced.end()) continue;
    Status s = pending[i]->SyncDir();
    if (!s.ok()) {
      for (size_t j = 0; j < n; ++j) pending[j]->Restore();
      return s;
    }
    synced.push_back(pending[i]->dir());
  }
  for (size_t i = 0; i < n; ++i) {
    pending[i]->DropReplaced(&(*results)[i]);
    (*results)[i].bytes = files[i].len;
  }
  return renamed;
}

Status RemoveFiles(io::Env* env, const std::string& dir, const std::vector<std::string>& names) {
  int dfd = env->Open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (dfd < 0) return Status::Os(-dfd, "open", dir);
  io::UniqueFd dir_fd(env, dfd);
  for (const std::string& name : names) {
    if (name.empty() || name.find('/') != std::string::npos) return Status::Invalid("not a file name: " + name, dir);
    int r = env->UnlinkAt(dir_fd.get(), name.c_str());
    // Already gone (removed by hand, or by an earlier attempt that failed later) is what was asked for.
    if (r < 0 && r != -ENOENT) return Status::Os(-r, "unlink", dir + "/" + name);
  }
#ifdef CKPTIO_BROKEN_SKIP_DIR_SYNC
  int r = 0;  // the broken build skips every directory fsync, not only the commit's
#else
  int r = env->Fsync(dir_fd.get());
#endif
  if (r < 0) return Status::Os(-r, "fsync", dir);
  return Status::Ok();
}

}  // namespace ckptio::writer
