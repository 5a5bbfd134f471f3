#include "commit.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <cstdio>
#include <mutex>
#include <random>
#include <thread>

#include "../format/checksum.h"
#include "../io/unique_fd.h"

namespace ckptio::writer {
namespace {

constexpr uint64_t kAlign = 4096;

uint64_t RoundUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

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

std::string TempName(const std::string& base) {
  static thread_local std::mt19937_64 rng(std::random_device{}() ^ static_cast<uint64_t>(::getpid()));
  char suffix[64];
  std::snprintf(suffix, sizeof suffix, ".tmp.%d.%08llx", static_cast<int>(::getpid()),
                static_cast<unsigned long long>(rng() & 0xffffffffull));
  return base + suffix;
}

Status PwriteAll(io::Env* env, int fd, const unsigned char* data, size_t len, uint64_t offset,
                 const std::string& path) {
  while (len > 0) {
    ssize_t n = env->Pwrite(fd, data, len, offset);
    if (n == -EINTR) continue;
    if (n < 0) return Status::Os(static_cast<int>(-n), "pwrite", path);
    if (n == 0) return Status::Os(EIO, "pwrite", path);  // no progress: never spin
    data += n;
    len -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return Status::Ok();
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

  Status Commit(CommitResult* result) {
    bool* exchanged = &result->exchanged;
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

    r = env_->RenameAt(dir_fd_.get(), tmp_.c_str(), base_.c_str(), RENAME_EXCHANGE);
    *exchanged = r == 0;
    if (r == -ENOENT || r == -EINVAL || r == -ENOSYS || r == -EOPNOTSUPP) {
      // No old file to swap with (ENOENT), or no exchange on this file system: a plain atomic rename.
      r = env_->RenameAt(dir_fd_.get(), tmp_.c_str(), base_.c_str(), 0);
    }
    if (r < 0) return Status::Os(-r, "rename", path_);
#ifdef CKPTIO_BROKEN_SKIP_DIR_SYNC
    r = 0;  // deliberately broken build (tests prove they catch it); never shipped
#else
    r = env_->Fsync(dir_fd_.get());
#endif
    if (r < 0) {
      Status s = Status::Os(-r, "fsync", dir_);
      if (*exchanged) {
        // Put the previous checkpoint back; the new one is removed with the temporary name.
        env_->RenameAt(dir_fd_.get(), tmp_.c_str(), base_.c_str(), RENAME_EXCHANGE);
      } else {
        tmp_.clear();  // the new file is at the final name now; there is no old one to restore
      }
      return s;
    }
    if (*exchanged) {
      // The temporary name now holds the previous checkpoint. Its removal need not be durable: a crash
      // leaves a stale temporary file, which start-up removes.
      r = env_->UnlinkAt(dir_fd_.get(), tmp_.c_str());
      if (r < 0) {
        result->leftover = tmp_path();
        result->leftover_errno = -r;
      }
    }
    tmp_.clear();
    return Status::Ok();
  }

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
};

// Feeds the data region to the per-tensor digests in file order, from wherever the bytes are (the
// caller's memory or a staging block that was just filled from it, so they are hashed while hot).
class TensorHasher {
 public:
  TensorHasher(const std::vector<format::TensorInfo>& tensors, bool enabled)
      : tensors_(tensors), hashes_(enabled ? tensors.size() : 0), enabled_(enabled) {}
  // `bytes` are data-region bytes [offset, offset+len); calls must come in increasing, gapless order.
  void Feed(uint64_t offset, const unsigned char* bytes, uint64_t len) {
    if (!enabled_) return;
    while (len > 0) {
      while (index_ < tensors_.size() && tensors_[index_].end <= offset) ++index_;
      if (index_ >= tensors_.size()) return;
      const uint64_t take = std::min(len, tensors_[index_].end - offset);
      hashes_[index_].Update(bytes, take);
      bytes += take;
      offset += take;
      len -= take;
    }
  }
  std::vector<uint64_t> Digests() const {
    std::vector<uint64_t> out;
    for (const auto& h : hashes_) out.push_back(h.Digest());
    return out;
  }

 private:
  const std::vector<format::TensorInfo>& tensors_;
  std::vector<format::StreamingHash> hashes_;
  bool enabled_;
  size_t index_ = 0;
};

// The file image: header bytes followed by the tensors, materialized on demand into a buffer.
class FileImage {
 public:
  FileImage(const std::vector<TensorSource>& sources, uint64_t header_size, uint64_t total)
      : sources_(sources), header_size_(header_size), total_(total) {}
  void set_header(const std::string* header) { header_ = header; }
  // Copies image bytes [offset, offset+len) into dst, zero-filling past the end of the file.
  void Copy(uint64_t offset, uint64_t len, unsigned char* dst) const {
    const uint64_t end = offset + len;
    if (offset < header_size_) {
      const uint64_t n = std::min(end, header_size_) - offset;
      if (header_) std::memcpy(dst, header_->data() + offset, n);
      else std::memset(dst, 0, n);
      dst += n;
      offset += n;
    }
    for (const TensorSource& s : sources_) {
      if (offset >= end || offset >= total_) break;
      const uint64_t tb = header_size_ + s.info.begin, te = header_size_ + s.info.end;
      if (te <= offset) continue;
      const uint64_t n = std::min(end, te) - offset;
      std::memcpy(dst, s.data + (offset - tb), n);
      dst += n;
      offset += n;
    }
    if (offset < end) std::memset(dst, 0, end - offset);
  }
  // Hashes data-region bytes of image range [offset, offset+len) straight from the sources.
  void HashFromSources(uint64_t offset, uint64_t len, TensorHasher* hasher) const {
    const uint64_t end = std::min(offset + len, total_);
    for (const TensorSource& s : sources_) {
      const uint64_t tb = header_size_ + s.info.begin, te = header_size_ + s.info.end;
      if (te <= offset || tb >= end) continue;
      const uint64_t from = std::max(tb, offset), to = std::min(te, end);
      hasher->Feed(from - header_size_, s.data + (from - tb), to - from);
    }
  }

 private:
  const std::vector<TensorSource>& sources_;
  const std::string* header_ = nullptr;
  uint64_t header_size_, total_;
};

// One I/O thread behind the filling thread: while it waits in pwrite for block k, the writer thread copies
// and hashes block k+1. With O_DIRECT the copy is otherwise dead time on the disk.
class IoPipeline {
 public:
  IoPipeline(io::Env* env, int fd, std::string path, StagingBlocks* staging)
      : env_(env), fd_(fd), path_(std::move(path)), staging_(staging) {
    for (size_t i = 0; i < StagingBlocks::kCount; ++i) free_.push_back(i);
    thread_ = std::thread([this] { Loop(); });
  }
  ~IoPipeline() { Finish(); }

  // Waits for a free block; returns -1 when the pipeline failed (the status says why).
  int Acquire() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !free_.empty() || !status_.ok(); });
    if (!status_.ok()) return -1;
    const int i = static_cast<int>(free_.back());
    free_.pop_back();
    return i;
  }
  void Submit(int block, uint64_t offset, size_t len) {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.push_back(Item{static_cast<size_t>(block), offset, len});
    cv_.notify_all();
  }
  Status Finish() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
      cv_.notify_all();
    }
    if (thread_.joinable()) thread_.join();
    return status_;
  }

 private:
  struct Item {
    size_t block;
    uint64_t offset;
    size_t len;
  };
  void Loop() {
    while (true) {
      Item item;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return !pending_.empty() || done_; });
        if (pending_.empty()) return;
        item = pending_.front();
        pending_.erase(pending_.begin());
      }
      Status s = status_.ok() ? PwriteAll(env_, fd_, staging_->block(item.block), item.len, item.offset, path_)
                              : Status::Ok();
      std::lock_guard<std::mutex> lock(mu_);
      if (!s.ok() && status_.ok()) status_ = s;
      free_.push_back(item.block);
      cv_.notify_all();
    }
  }

  io::Env* env_;
  int fd_;
  std::string path_;
  StagingBlocks* staging_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<size_t> free_;
  std::vector<Item> pending_;
  bool done_ = false;
  Status status_;
  std::thread thread_;
};

Status WriteDirect(io::Env* env, PendingFile* file, const FileImage& image, uint64_t header_size, uint64_t total,
                   StagingBlocks* staging, TensorHasher* hasher, const std::function<std::string()>& render_header,
                   std::string* header) {
  const uint64_t aligned_total = RoundUp(total, kAlign);
  const uint64_t head_end = std::min(RoundUp(header_size, kAlign), aligned_total);
  // Data that shares the header's blocks is hashed first, so the digests see the data region in order.
  image.HashFromSources(header_size, head_end - header_size, hasher);
  {
    IoPipeline pipeline(env, file->fd(), file->tmp_path(), staging);
    for (uint64_t off = head_end; off < aligned_total; off += StagingBlocks::kBlockSize) {
      const uint64_t len = std::min<uint64_t>(StagingBlocks::kBlockSize, aligned_total - off);
      const int block = pipeline.Acquire();
      if (block < 0) break;
      unsigned char* dst = staging->block(static_cast<size_t>(block));
      image.Copy(off, len, dst);
      const uint64_t data_len = std::min(off + len, total) - off;
      hasher->Feed(off - header_size, dst, data_len);
      pipeline.Submit(block, off, len);
    }
    Status s = pipeline.Finish();
    if (!s.ok()) return s;
  }
  *header = render_header();
  for (uint64_t off = 0; off < head_end; off += StagingBlocks::kBlockSize) {
    const uint64_t len = std::min<uint64_t>(StagingBlocks::kBlockSize, head_end - off);
    image.Copy(off, len, staging->block(0));
    Status s = PwriteAll(env, file->fd(), staging->block(0), len, off, file->tmp_path());
    if (!s.ok()) return s;
  }
  if (aligned_total != total) {
    int r = env->Ftruncate(file->fd(), total);
    if (r < 0) return Status::Os(-r, "ftruncate", file->tmp_path());
  }
  return Status::Ok();
}

Status WriteBuffered(io::Env* env, PendingFile* file, const std::vector<TensorSource>& sources,
                     uint64_t header_size, const CommitOptions& options, TensorHasher* hasher,
                     const std::function<std::string()>& render_header, std::string* header) {
  const uint64_t chunk = 8u << 20;
  uint64_t since_flush = 0, flush_start = header_size, prev_start = 0, prev_len = 0;
  for (const TensorSource& s : sources) {
    const uint64_t len = s.info.end - s.info.begin;
    for (uint64_t done = 0; done < len;) {
      const uint64_t n = std::min(chunk, len - done);
      hasher->Feed(s.info.begin + done, s.data + done, n);
      Status st = PwriteAll(env, file->fd(), s.data + done, n, header_size + s.info.begin + done, file->tmp_path());
      if (!st.ok()) return st;
      done += n;
      since_flush += n;
      if (options.write_behind_bytes && since_flush >= options.write_behind_bytes) {
        // Start writeback of this chunk; wait for the previous one and drop it from the page cache.
        env->SyncFileRange(file->fd(), flush_start, since_flush, SYNC_FILE_RANGE_WRITE);
        if (prev_len) {
          env->SyncFileRange(file->fd(), prev_start, prev_len,
                             SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
          env->FadviseDontNeed(file->fd(), prev_start, prev_len);
        }
        prev_start = flush_start;
        prev_len = since_flush;
        flush_start += since_flush;
        since_flush = 0;
      }
    }
  }
  *header = render_header();
  return PwriteAll(env, file->fd(), reinterpret_cast<const unsigned char*>(header->data()), header->size(), 0,
                   file->tmp_path());
}

}  // namespace

StagingBlocks::StagingBlocks() {
  for (size_t i = 0; i < kCount; ++i) {
    void* p = ::mmap(nullptr, kBlockSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) return;
    blocks_[i] = static_cast<unsigned char*>(p);
  }
}

StagingBlocks::~StagingBlocks() {
  for (unsigned char* p : blocks_) {
    if (p) ::munmap(p, kBlockSize);
  }
}

Status CommitCheckpoint(io::Env* env, const std::string& path, std::vector<TensorSource> tensors,
                        const format::Metadata& metadata, const CommitOptions& options, StagingBlocks* staging,
                        CommitResult* result) {
  Status s = format::CheckUserMetadata(metadata);
  if (!s.ok()) return s;
  std::vector<format::TensorInfo> infos;
  for (const TensorSource& t : tensors) infos.push_back(t.info);
  uint64_t data_len = 0;
  s = format::PlanLayout(&infos, &data_len);
  if (!s.ok()) return s;
  // Put the sources in file order with their offsets.
  std::sort(tensors.begin(), tensors.end(), [](const TensorSource& a, const TensorSource& b) { return a.info.name < b.info.name; });
  std::vector<TensorSource> ordered;
  for (const format::TensorInfo& info : infos) {
    auto it = std::lower_bound(tensors.begin(), tensors.end(), info.name,
                               [](const TensorSource& t, const std::string& n) { return t.info.name < n; });
    ordered.push_back(TensorSource{info, it->data});
  }
  const std::vector<uint64_t> placeholder(infos.size(), 0);
  const uint64_t header_size = format::RenderHeader(infos, metadata, options.checksum ? &placeholder : nullptr).size();
  const uint64_t total = header_size + data_len;
  // What every reader (ckptio's, the reference's) refuses to parse is not written either.
  if (header_size - 8 > format::kMaxHeaderLen) {
    return Status::Invalid("the header would be " + std::to_string(header_size - 8) + " bytes, above the " +
                               std::to_string(format::kMaxHeaderLen) + "-byte cap readers enforce (too many tensors or too much metadata)",
                           path);
  }

  PendingFile file(env, path);
  s = file.Open(staging && staging->ok() ? options.direct : DirectIo::kOff);
  if (!s.ok()) return s;
  result->direct = file.direct();
  if (options.preallocate && total > 0) {
    int r = env->Fallocate(file.fd(), total);
    if (r == 0) {
      result->preallocated = true;
    } else if (r != -EOPNOTSUPP && r != -ENOSYS) {
      return Status::Os(-r, "fallocate", file.tmp_path());
    }
  }
  TensorHasher hasher(infos, options.checksum);
  auto render = [&] {
    const std::vector<uint64_t> digests = hasher.Digests();
    return format::RenderHeader(infos, metadata, options.checksum ? &digests : nullptr);
  };
  std::string header;
  FileImage image(ordered, header_size, total);
  image.set_header(&header);
  s = file.direct() ? WriteDirect(env, &file, image, header_size, total, staging, &hasher, render, &header)
                    : WriteBuffered(env, &file, ordered, header_size, options, &hasher, render, &header);
  if (!s.ok()) return s;
  if (header.size() != header_size) return Status::Invalid("internal error: header size changed while writing", path);
  s = file.Commit(result);
  if (!s.ok()) return s;
  result->bytes = total;
  if (options.checksum) result->content_id = ContentId(infos, hasher.Digests());
  return Status::Ok();
}

std::string ContentId(const std::vector<format::TensorInfo>& infos, const std::vector<uint64_t>& digests) {
  std::string text;
  for (size_t i = 0; i < infos.size() && i < digests.size(); ++i) {
    text += infos[i].name;
    text += ':';
    text += format::Hex(digests[i]);
    text += '\n';
  }
  return format::Hex(format::Hash64(text.data(), text.size()));
}

Status CommitBytes(io::Env* env, const std::string& path, const unsigned char* data, size_t len,
                   CommitResult* result) {
  PendingFile file(env, path);
  Status s = file.Open(DirectIo::kOff);
  if (!s.ok()) return s;
  s = PwriteAll(env, file.fd(), data, len, 0, file.tmp_path());
  if (!s.ok()) return s;
  s = file.Commit(result);
  if (!s.ok()) return s;
  result->bytes = len;
  return Status::Ok();
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

Status RawWrite(io::Env* env, const std::string& path, uint64_t bytes, bool direct, StagingBlocks* staging) {
  if (!staging || !staging->ok()) return Status::Os(ENOMEM, "mmap", path);
  for (size_t i = 0; i < StagingBlocks::kCount; ++i) std::memset(staging->block(i), 0x5a, StagingBlocks::kBlockSize);
  const uint64_t total = RoundUp(bytes, kAlign);
  int fd = env->Open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | (direct ? O_DIRECT : 0), 0644);
  if (fd < 0) return Status::Os(-fd, "open", path);
  io::UniqueFd file(env, fd);
  for (uint64_t off = 0; off < total; off += StagingBlocks::kBlockSize) {
    const uint64_t len = std::min<uint64_t>(StagingBlocks::kBlockSize, total - off);
    Status s = PwriteAll(env, file.get(), staging->block(0), len, off, path);
    if (!s.ok()) return s;
  }
  int r = env->Fsync(file.get());
  if (r < 0) return Status::Os(-r, "fsync", path);
  r = file.Close();
  if (r < 0) return Status::Os(-r, "close", path);
  return Status::Ok();
}

}  // namespace ckptio::writer
