#include "lock.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "args.h"
#include "errors.h"

namespace ckptio::addon {

Napi::Value Lock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Status error;
  std::string path, holder;
  if (!GetPath(info[0], "path", &path, &error)) return Thrown(env, error);
  if (!info[1].IsString()) return Thrown(env, Status::Invalid("holder must be a string"));
  holder = info[1].As<Napi::String>().Utf8Value();
  // O_NOFOLLOW and a regular-file check: a lock "file" that is a symlink (an unpacked archive) is never followed
  // and truncated.
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
  if (fd < 0) return Thrown(env, Status::Os(errno, "open", path));
  struct stat st;
  if (::fstat(fd, &st) < 0) {
    const int err = errno;
    ::close(fd);
    return Thrown(env, Status::Os(err, "fstat", path));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Thrown(env, Status::Format("the lock file is not a regular file", path));
  }
  struct flock fl;
  std::memset(&fl, 0, sizeof fl);
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  if (::fcntl(fd, F_OFD_SETLK, &fl) < 0) {
    const int err = errno;
    if (err == EAGAIN || err == EACCES) {
      char buf[4096];
      const ssize_t n = ::pread(fd, buf, sizeof buf, 0);
      ::close(fd);
      Napi::Object out = Napi::Object::New(env);
      out.Set("locked", true);
      out.Set("holder", std::string(buf, n > 0 ? static_cast<size_t>(n) : 0));
      return out;
    }
    ::close(fd);
    return Thrown(env, Status::Os(err, "fcntl", path));
  }
  if (::ftruncate(fd, 0) < 0) {
    const int err = errno;
    ::close(fd);
    return Thrown(env, Status::Os(err, "ftruncate", path));
  }
  for (size_t done = 0; done < holder.size();) {
    const ssize_t n = ::pwrite(fd, holder.data() + done, holder.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      ::close(fd);
      return Thrown(env, Status::Os(err, "pwrite", path));
    }
    done += static_cast<size_t>(n);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", fd);
  return out;
}

Napi::Value Unlock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) return Thrown(env, Status::Invalid("fd must be a number"));
  if (::close(info[0].As<Napi::Number>().Int32Value()) < 0) return Thrown(env, Status::Os(errno, "close", ""));
  return env.Undefined();
}

}  // namespace ckptio::addon
