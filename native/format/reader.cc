#include "reader.h"

#include <fcntl.h>
#include <sys/mman.h>

#include <cstring>
#include <vector>

namespace ckptio::format {
namespace {

// Opens a checkpoint read-only and checks that it is a regular file; its size goes to *size.
Status OpenRegular(io::Env* env, const std::string& path, io::UniqueFd* file, uint64_t* size) {
  const int fd = env->Open(path.c_str(), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return Status::Os(-fd, "open", path);
  *file = io::UniqueFd(env, fd);
  struct stat st;
  const int r = env->Fstat(file->get(), &st);
  if (r < 0) return Status::Os(-r, "fstat", path);
  if (!S_ISREG(st.st_mode)) return Status::Format("not a regular file", path);
  *size = static_cast<uint64_t>(st.st_size);
  return Status::Ok();
}

}  // namespace

Status ReadCheckpointFile(io::Env* env, const std::string& path, bool verify, LoadedFile* out) {
  io::UniqueFd file;
  Status opened = OpenRegular(env, path, &file, &out->file_size);
  if (!opened.ok()) return opened;
  int r = 0;
  if (out->file_size < 8) {
    return Status::Format("file is " + std::to_string(out->file_size) +
                              " bytes, too short for the 8-byte header length",
                          path);
  }
  int err = 0;
  // Verification touches every page, so populate the mapping in one go instead of faulting page by page. The
  // mapping is read-only while populated: MAP_POPULATE on a writable private mapping write-faults every page,
  // which copies the whole file into anonymous memory (measured: 7x slower than the read-only populate, and
  // the file's size again in RSS). Write access, copy-on-write per page, is added once the checks are done.
  void* addr = env->Mmap(out->file_size, PROT_READ, MAP_PRIVATE | (verify ? MAP_POPULATE : 0), file.get(), &err);
  if (!addr) return Status::Os(err, "mmap", path);
  out->mapping = io::Mapping(env, addr, out->file_size);
  file.Close();

  Status s = ParseHeader(out->mapping.data(), out->file_size, &out->header);
  if (!s.ok()) {
    s.path = path;
    return s;
  }
  if (verify) {
    s = VerifyChecksums(out->header, out->mapping.data());
    if (!s.ok()) {
      s.path = path;
      return s;
    }
  }
  r = env->Mprotect(out->mapping.mutable_data(), out->file_size, PROT_READ | PROT_WRITE);
  if (r < 0) return Status::Os(-r, "mprotect", path);
  out->verified = verify;
  return Status::Ok();
}

Status ReadCheckpointHeader(io::Env* env, const std::string& path, ParsedHeader* out, uint64_t* file_size) {
  io::UniqueFd file;
  Status opened = OpenRegular(env, path, &file, file_size);
  if (!opened.ok()) return opened;
  auto read_exact = [&](unsigned char* buf, size_t len, uint64_t offset) -> Status {
    size_t done = 0;
    while (done < len) {
      const ssize_t n = env->Pread(file.get(), buf + done, len - done, offset + done);
      if (n < 0) return Status::Os(static_cast<int>(-n), "pread", path);
      if (n == 0) return Status::Format("file ends inside its header (truncated)", path);
      done += static_cast<size_t>(n);
    }
    return Status::Ok();
  };
  unsigned char len_bytes[8] = {};
  if (*file_size < 8) return Status::Format("file is " + std::to_string(*file_size) + " bytes, too short for the 8-byte header length", path);
  Status s = read_exact(len_bytes, 8, 0);
  if (!s.ok()) return s;
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  // ParseHeader repeats these checks; they are needed here first, to size the buffer it reads.
  if (n > kMaxHeaderLen) {
    return Status::Format("header length " + std::to_string(n) + " exceeds the " + std::to_string(kMaxHeaderLen) + "-byte cap", path);
  }
  if (n > *file_size - 8) {
    return Status::Format("header length " + std::to_string(n) + " runs past the end of the file (" +
                              std::to_string(*file_size) + " bytes): truncated or corrupt", path);
  }
  std::vector<unsigned char> buf(static_cast<size_t>(8 + n));
  std::memcpy(buf.data(), len_bytes, 8);
  s = read_exact(buf.data() + 8, static_cast<size_t>(n), 8);
  if (!s.ok()) return s;
  // ParseHeader reads only the first 8 + n bytes; the size passed is the file's, for the layout checks.
  s = ParseHeader(buf.data(), *file_size, out);
  if (s.ok()) s = VerifyHeaderDigest(*out);
  if (!s.ok()) s.path = path;
  return s;
}

}  // namespace ckptio::format
